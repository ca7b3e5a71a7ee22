//! Access tokens: short-lived JWTs signed with EdDSA (RFC 9068 profile of RFC 7519).
//!
//! ```text
//!   decide (writer) ──▶ AccessClaims ──▶ Signer::sign (caller, any thread) ──▶ compact JWT
//!
//!   presented JWT ──▶ verify_access_token (pure, parallel)              ──▶ AccessClaims
//!                       1. length ≤ ACCESS_TOKEN_BYTES_MAX, three base64url parts
//!                       2. header: alg == EdDSA (allow-list of one), typ == at+jwt,
//!                          no `crit`, kid published at `now`     ── before any crypto
//!                       3. Ed25519 signature under that kid's public key
//!                       4. claims: exp, nbf, iat against the injected `now` ± leeway,
//!                          iss, aud, exactly one of sid / fam
//!                 ──▶ check_not_revoked (pure, on the views)            ──▶ accepted
//!                       jti revoked? family revoked or gone? session ended?
//!                       account disabled, or its not-before later than iat?
//! ```
//!
//! Why this shape:
//! - The algorithm is never taken from the token (RFC 8725 §2.1, §3.1): anything but
//!   `EdDSA`, including `none` and `HS256` keyed with our public key (algorithm
//!   confusion), is refused before a key is even looked up. The key comes from the `kid`,
//!   looked up in the key set the log publishes, never from `jku`, `jwk` or `x5u`.
//! - Explicit typing (RFC 8725 §3.11, RFC 9068 §2.1): `typ: at+jwt`, so that an ID token or
//!   any other JWT we might sign cannot be replayed as an access token.
//! - Time is the caller's (`now`), never the system clock: jsonwebtoken's own `exp`/`nbf`
//!   checks read `SystemTime`, so we check the claims ourselves.
//! - Signing happens outside the serial writer: `decide` only builds the claims (they
//!   need nothing recorded: the family or session id they carry is already in the log).
//!
//! Refresh tokens are opaque and live in [`crate::refresh`]; revocation of access tokens
//! is in [`crate::blocklist`]; keys in [`crate::signing_key`].

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};

use crate::id::uuid_v7;
use crate::policy::TokenPolicy;
use crate::signing_key::KeySet;
use crate::{AccountId, Env, FamilyId, SessionId, Timestamp, TokenId};

/// Shortest access-token lifetime a policy may set.
pub const ACCESS_TTL_SECS_MIN: u64 = 5 * 60;
/// Longest access-token lifetime a policy may set. The views keep blocklist entries and
/// retired keys this long (plus [`LEEWAY_SECS_MAX`]), whatever the current policy says.
pub const ACCESS_TTL_SECS_MAX: u64 = 30 * 60;
/// Most clock skew a policy may tolerate.
pub const LEEWAY_SECS_MAX: u64 = 60;
/// Longest reuse-grace window a policy may set.
pub const REUSE_GRACE_SECS_MAX: u64 = 60;
/// Longest presented access token we parse. Ours are about 600 bytes.
pub const ACCESS_TOKEN_BYTES_MAX: usize = 4 * 1024;
/// The JOSE `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The only accepted JOSE `alg`.
pub const ALGORITHM: &str = "EdDSA";

/// How long after a token's `exp` (or a not-before time) any record that could refuse it
/// must be kept: the leeway, plus one second for `exp` being rounded down to seconds.
pub const REVOCATION_MARGIN_MS: u64 = (LEEWAY_SECS_MAX + 1) * 1000;
/// How long after a family is revoked, or a not-before time set, an access token issued
/// before it can still be unexpired.
pub const ACCESS_TOKEN_OUTLIVES_MS: u64 = ACCESS_TTL_SECS_MAX * 1000 + REVOCATION_MARGIN_MS;

const _: () = assert!(ACCESS_TTL_SECS_MIN <= ACCESS_TTL_SECS_MAX);
const _: () = assert!(REUSE_GRACE_SECS_MAX < ACCESS_TTL_SECS_MIN);

/// The claims of an access token (RFC 9068 §2.2). Times are whole seconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// `iss` (RFC 7519 §4.1.1): the issuer, the policy's `token.issuer`; checked exactly.
    pub iss: String,
    /// `aud` (RFC 7519 §4.1.3): the one audience, the policy's `token.audience`; checked
    /// exactly.
    pub aud: String,
    /// `sub` (RFC 7519 §4.1.2): the account the token was issued to.
    pub sub: AccountId,
    /// `exp` (RFC 7519 §4.1.4): expiry, in whole seconds since the epoch. The policy's
    /// access-token lifetime after issue, never after the family's or session's deadline.
    pub exp: u64,
    /// `iat` (RFC 7519 §4.1.6): time of issue, in whole seconds since the epoch, rounded
    /// down. Compared with the account's not-before time.
    pub iat: u64,
    /// `nbf` (RFC 7519 §4.1.5): not valid before, in whole seconds since the epoch; the time
    /// of issue.
    pub nbf: u64,
    /// `jti` (RFC 7519 §4.1.7): the token's unique id, by which it can be revoked.
    pub jti: TokenId,
    /// The session the token was issued through, for session-bound tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    /// The refresh family the token was issued in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<FamilyId>,
    /// `scope` (RFC 9068 §2.2.3, RFC 8693 §4.2): the scope granted at login (RFC 6749 §3.3),
    /// if any; a family's tokens all carry the family's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 9068 §2.2 requires `client_id`; first-party logins use the issuer's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `auth_time` (OpenID Connect Core §2): when the holder last authenticated (the login
    /// that started the family), in whole seconds since the epoch, rounded down. Unlike
    /// `iat`, a refresh carries it unchanged: a refreshed token is not a new authentication.
    /// Sensitive actions require it to be recent; a token without it never is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
}

impl AccessClaims {
    /// `expires_in` for a token response: seconds from issue to expiry.
    pub fn expires_in_secs(&self) -> u64 {
        self.exp.saturating_sub(self.iat)
    }

    /// When the holder last authenticated (`auth_time`), as a [`Timestamp`], if the token
    /// says.
    pub fn authenticated_at(&self) -> Option<Timestamp> {
        self.auth_time
            .map(|s| Timestamp::from_millis(s.saturating_mul(1000)))
    }

    /// When the token expires, as a [`Timestamp`].
    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_millis(self.exp.saturating_mul(1000))
    }
}

/// What an access token is bound to. Exactly one, so every token can be revoked through
/// something the views track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenBinding {
    /// Issued through a session: the token carries it as `sid`, and dies with it.
    Session(SessionId),
    /// Issued in a refresh family: the token carries it as `fam`, and dies with it.
    Family(FamilyId),
}

/// Builds the claims of a new access token at `env.now`. Its expiry is the policy's TTL,
/// cut short at `not_after` (the family's or session's own deadline), so that no access
/// token outlives what it was issued from.
pub(crate) fn issue(
    account: AccountId,
    binding: TokenBinding,
    scope: Option<String>,
    client_id: Option<String>,
    not_after: Timestamp,
    auth_time: Timestamp,
    env: &mut Env<'_>,
) -> AccessClaims {
    let policy = &env.policy.token;
    let now = env.now;
    let expires = now.plus_ms(policy.access_ttl_ms()).min(not_after);
    let (sid, fam) = match binding {
        TokenBinding::Session(s) => (Some(s), None),
        TokenBinding::Family(f) => (None, Some(f)),
    };
    AccessClaims {
        iss: policy.issuer.clone(),
        aud: policy.audience.clone(),
        sub: account,
        exp: expires.as_secs(),
        iat: now.as_secs(),
        nbf: now.as_secs(),
        jti: TokenId(uuid_v7(now, env.random_bytes())),
        sid,
        fam,
        scope,
        client_id,
        auth_time: Some(auth_time.as_secs()),
    }
}

/// Why a presented access token was refused. Every variant maps to HTTP 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1); the code and slug are
/// for logs and metrics, not for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Longer than [`ACCESS_TOKEN_BYTES_MAX`] bytes: refused before any parsing.
    #[error("the token is longer than {ACCESS_TOKEN_BYTES_MAX} bytes")]
    TooLong,
    /// Not three base64url parts with JSON header and claims, or claims binding the token
    /// to both or neither of a session and a family.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// A refresh token (prefix [`crate::refresh::REFRESH_TOKEN_PREFIX`]) was presented as
    /// an access token.
    #[error("a refresh token was presented where an access token belongs")]
    RefreshTokenPresented,
    /// The header's `alg` is not [`ALGORITHM`] (RFC 8725 §3.1); checked before any key is
    /// looked up.
    #[error("the token's algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The header's `typ` is missing or not [`ACCESS_TOKEN_TYPE`] (RFC 9068 §2.1).
    #[error("the token is not an access token (typ)")]
    WrongType,
    /// The header has a `crit` parameter (RFC 7515 §4.1.11); none is supported.
    #[error("the token's header carries an unsupported critical parameter")]
    CriticalHeader,
    /// The header's `kid` is missing, or names no key published at the time of the check.
    #[error("the token names no published signing key")]
    UnknownKey,
    /// The Ed25519 signature does not verify under the named key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` has passed, even allowing the policy's leeway.
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future, even allowing the policy's leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the policy's issuer.
    #[error("the token was issued by someone else")]
    WrongIssuer,
    /// `aud` is not the policy's audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// Its `jti` was revoked (RFC 7009).
    #[error("the token was revoked")]
    Revoked,
    /// Its `fam` names a family that is revoked, past its deadline, gone, or another
    /// account's.
    #[error("the token's refresh family was revoked or has ended")]
    FamilyRevoked,
    /// Its `sid` names a session that has ended, is past its deadline, or is another
    /// account's.
    #[error("the token's session has ended")]
    SessionEnded,
    /// Its account is gone or disabled, or signed out everywhere (or changed its password)
    /// after the token was issued.
    #[error("the account signed out everywhere, or is disabled, after the token was issued")]
    AccountRevoked,
}

impl TokenRejection {
    /// Stable codes, 41xx: token verification (40xx are the writer's token rejections).
    pub fn code(&self) -> u16 {
        match self {
            Self::TooLong => 4101,
            Self::Malformed => 4102,
            Self::RefreshTokenPresented => 4103,
            Self::AlgorithmNotAllowed => 4104,
            Self::WrongType => 4105,
            Self::CriticalHeader => 4106,
            Self::UnknownKey => 4107,
            Self::BadSignature => 4108,
            Self::Expired => 4109,
            Self::NotYetValid => 4110,
            Self::WrongIssuer => 4111,
            Self::WrongAudience => 4112,
            Self::Revoked => 4113,
            Self::FamilyRevoked => 4114,
            Self::SessionEnded => 4115,
            Self::AccountRevoked => 4116,
        }
    }

    /// A stable kebab-case name for logs and metrics, e.g. `token-expired`.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::TooLong => "token-too-long",
            Self::Malformed => "token-malformed",
            Self::RefreshTokenPresented => "refresh-token-presented",
            Self::AlgorithmNotAllowed => "algorithm-not-allowed",
            Self::WrongType => "wrong-token-type",
            Self::CriticalHeader => "critical-header",
            Self::UnknownKey => "unknown-key",
            Self::BadSignature => "bad-signature",
            Self::Expired => "token-expired",
            Self::NotYetValid => "token-not-yet-valid",
            Self::WrongIssuer => "wrong-issuer",
            Self::WrongAudience => "wrong-audience",
            Self::Revoked => "token-revoked",
            Self::FamilyRevoked => "family-revoked",
            Self::SessionEnded => "session-ended",
            Self::AccountRevoked => "account-revoked",
        }
    }
}

/// Selects aws-lc-rs as jsonwebtoken's crypto provider for this process (without a
/// provider installed, jsonwebtoken panics on the first sign or verify). Idempotent; call it at start-up,
/// and in every test that signs or verifies. [`crate::signing_key::Signer::from_seed`]
/// calls it too.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: the first call's, or one the embedding
    // program chose. Either way there is one, which is all we need.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// The JOSE header fields we look at. Anything else is ignored, never used to find a key.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    /// Whether the header has a `crit` member at all: `"crit": null` is no more allowed than
    /// any other value (RFC 7515 §4.1.11), and an `Option` would read it as absent.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// Deserializes any value, even `null`, as `true`; with `#[serde(default)]` an absent member
/// is `false`.
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(value).map(|_| true)
}

fn b64_part(part: &str) -> Result<Vec<u8>, TokenRejection> {
    BASE64URL_NOPAD
        .decode(part.as_bytes())
        .map_err(|_| TokenRejection::Malformed)
}

/// `at+jwt`, compared case-insensitively, with or without the `application/` prefix
/// (RFC 7515 §4.1.9).
fn is_access_type(typ: &str) -> bool {
    let t = typ.strip_prefix("application/").unwrap_or(typ);
    t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
}

/// Verifies a presented access token's form, header, signature and claims against the key
/// set at `now`. Pure: no clock, no IO; safe to run on any thread. Does *not* consult the
/// blocklist: call [`crate::blocklist::check_not_revoked`] on the result.
pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    now: Timestamp,
    policy: &TokenPolicy,
) -> Result<AccessClaims, TokenRejection> {
    let claims: AccessClaims = verify_signed(token, keys, now)?;
    check_claims(&claims, now, policy)?;
    Ok(claims)
}

/// Steps 1 to 3 of [`verify_access_token`] (form, header, signature), then the claims
/// parsed as `C`. The caller checks the claims' times, issuer and audience.
pub(crate) fn verify_signed<C: serde::de::DeserializeOwned>(
    token: &str,
    keys: &KeySet,
    now: Timestamp,
) -> Result<C, TokenRejection> {
    if token.len() > ACCESS_TOKEN_BYTES_MAX {
        return Err(TokenRejection::TooLong);
    }
    if token.starts_with(crate::refresh::REFRESH_TOKEN_PREFIX) {
        return Err(TokenRejection::RefreshTokenPresented);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejection::Malformed);
    };
    let header: RawHeader =
        serde_json::from_slice(&b64_part(header_b64)?).map_err(|_| TokenRejection::Malformed)?;
    if header.alg != ALGORITHM {
        return Err(TokenRejection::AlgorithmNotAllowed);
    }
    if !header.typ.as_deref().is_some_and(is_access_type) {
        return Err(TokenRejection::WrongType);
    }
    if header.crit {
        return Err(TokenRejection::CriticalHeader);
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.published(kid, now))
        .ok_or(TokenRejection::UnknownKey)?;
    let signed_len = header_b64.len() + 1 + claims_b64.len();
    let message = token.get(..signed_len).ok_or(TokenRejection::Malformed)?;
    let decoding = jsonwebtoken::DecodingKey::from_ed_der(&key.public_key);
    match jsonwebtoken::crypto::verify(
        signature_b64,
        message.as_bytes(),
        &decoding,
        jsonwebtoken::Algorithm::EdDSA,
    ) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(TokenRejection::BadSignature),
    }
    serde_json::from_slice(&b64_part(claims_b64)?).map_err(|_| TokenRejection::Malformed)
}

/// Checks a token's times against `now` with the policy's leeway.
pub(crate) fn check_times(
    exp: u64,
    nbf: u64,
    iat: u64,
    now: Timestamp,
    policy: &TokenPolicy,
) -> Result<(), TokenRejection> {
    let now_secs = now.as_secs();
    let leeway = policy.leeway_secs.min(LEEWAY_SECS_MAX);
    if now_secs >= exp.saturating_add(leeway) {
        return Err(TokenRejection::Expired);
    }
    if nbf > now_secs.saturating_add(leeway) || iat > now_secs.saturating_add(leeway) {
        return Err(TokenRejection::NotYetValid);
    }
    Ok(())
}

fn check_claims(
    claims: &AccessClaims,
    now: Timestamp,
    policy: &TokenPolicy,
) -> Result<(), TokenRejection> {
    check_times(claims.exp, claims.nbf, claims.iat, now, policy)?;
    if claims.iss != policy.issuer {
        return Err(TokenRejection::WrongIssuer);
    }
    if claims.aud != policy.audience {
        return Err(TokenRejection::WrongAudience);
    }
    if claims.sid.is_some() == claims.fam.is_some() {
        return Err(TokenRejection::Malformed);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
