//! ID-token validation (OIDC Core §3.1.3.7), with jsonwebtoken doing the signature.
//!
//! In order: the header's `alg` must be in [`ALGORITHMS_ALLOWED`] (so `none` and HMAC are
//! refused before any key is looked at); the key is the provider's, found by `kid`
//! ([`JwksCache`]), and must be meant for that `alg`; the signature must verify; then
//! `iss` equals the issuer, `aud` contains our client id (and with several audiences
//! `azp` is our client id), `exp` is after now, `iat` is not in the future, and `nonce`
//! equals the one the flow sent (compared in constant time). `exp`, `iat` and the leeway
//! are checked here against the time passed in, never a clock of the library's.

use serde::Deserialize;
use subtle::ConstantTimeEq;
use tessera_core::Timestamp;

use super::client::{UpstreamClient, excerpt};
use super::jwks::{ALGORITHMS_ALLOWED, JwksCache, JwksError, VerifyingKey};
use super::oauth::{ExternalUser, UpstreamToken};
use jsonwebtoken::Algorithm;

/// Clock difference tolerated between us and the provider, in seconds.
pub const LEEWAY_SECS_DEFAULT: u64 = 60;

/// What a valid ID token must say.
#[derive(Clone, Copy)]
pub struct Expectations<'a> {
    /// The configured issuer, compared exactly.
    pub issuer: &'a str,
    /// Our client id at the provider.
    pub client_id: &'a str,
    /// The nonce the flow put in the authorization request.
    pub nonce: &'a str,
    pub leeway_secs: u64,
}

impl std::fmt::Debug for Expectations<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expectations")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

/// The claims of a valid ID token that the flow uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    /// Seconds since the epoch.
    pub iat: u64,
    pub exp: u64,
    pub auth_time: Option<u64>,
}

impl IdTokenClaims {
    /// The signed-in user as the flow sees it.
    pub fn into_external_user(self) -> ExternalUser {
        ExternalUser {
            subject: self.sub,
            username: self.preferred_username,
            email_verified: self.email_verified && self.email.is_some(),
            email: self.email,
            name: self.name,
            amr: self.amr,
            acr: self.acr,
        }
    }
}

/// Why an ID token was refused. Messages never contain the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is not a well-formed JWT")]
    Malformed,
    #[error("the ID token is signed with {0}, which is not accepted (RS256, PS256, ES256, EdDSA)")]
    AlgorithmNotAllowed(String),
    #[error("no key: {0}")]
    Key(#[from] JwksError),
    #[error("the provider's key {kid:?} is not meant for {alg:?}")]
    KeyAlgorithmMismatch { kid: Option<String>, alg: Algorithm },
    #[error("the ID token's signature does not verify")]
    BadSignature,
    #[error("the ID token's claims are malformed or incomplete")]
    BadClaims,
    #[error("the ID token was issued by {0}, not the configured issuer")]
    WrongIssuer(String),
    #[error("the ID token is not meant for this client")]
    WrongAudience,
    #[error("the ID token names several audiences and its azp is not this client")]
    WrongAuthorizedParty,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token claims to be issued in the future")]
    IssuedInFuture,
    #[error("the ID token's nonce does not match this sign-in")]
    WrongNonce,
}

/// What the header says: the algorithm (allowed) and the key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Reads the header and refuses any algorithm outside the allow-list. The `alg` is read as
/// text first, so `none` (which jsonwebtoken cannot even parse) is named in the error.
pub fn header_of(token: &str) -> Result<TokenHeader, IdTokenError> {
    #[derive(Deserialize)]
    struct Wire {
        alg: String,
        kid: Option<String>,
    }
    let first = token.split('.').next().ok_or(IdTokenError::Malformed)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(first.as_bytes())
        .map_err(|_| IdTokenError::Malformed)?;
    let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed)?;
    let alg = wire
        .alg
        .parse::<Algorithm>()
        .ok()
        .filter(|a| ALGORITHMS_ALLOWED.contains(a))
        .ok_or_else(|| IdTokenError::AlgorithmNotAllowed(excerpt(wire.alg.as_bytes())))?;
    Ok(TokenHeader { alg, kid: wire.kid })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Wire {
    iss: String,
    sub: String,
    aud: Audience,
    exp: u64,
    iat: u64,
    nonce: Option<String>,
    azp: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: serde_json::Value,
    name: Option<String>,
    preferred_username: Option<String>,
    #[serde(default)]
    amr: Vec<String>,
    acr: Option<String>,
    auth_time: Option<u64>,
}

/// Validates `token` against `key` and `expect` at time `now`. Pure: no IO, no clock.
pub fn validate_with_key(
    token: &str,
    key: &VerifyingKey,
    expect: &Expectations<'_>,
    now: Timestamp,
) -> Result<IdTokenClaims, IdTokenError> {
    let header = header_of(token)?;
    if !key.algorithms.contains(&header.alg) {
        return Err(IdTokenError::KeyAlgorithmMismatch {
            kid: key.kid.clone(),
            alg: header.alg,
        });
    }
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    // Every claim is checked below against `now` and `expect`, with our own errors.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<Wire>(token, &key.key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::Json(_) | jsonwebtoken::errors::ErrorKind::Utf8(_) => {
                IdTokenError::BadClaims
            }
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                IdTokenError::KeyAlgorithmMismatch {
                    kid: key.kid.clone(),
                    alg: header.alg,
                }
            }
            _ => IdTokenError::Malformed,
        })?;
    check_claims(data.claims, expect, now)
}

fn check_claims(
    wire: Wire,
    expect: &Expectations<'_>,
    now: Timestamp,
) -> Result<IdTokenClaims, IdTokenError> {
    if wire.iss != expect.issuer {
        return Err(IdTokenError::WrongIssuer(excerpt(wire.iss.as_bytes())));
    }
    match &wire.aud {
        Audience::One(aud) if aud == expect.client_id => {}
        Audience::Many(auds) if auds.iter().any(|a| a == expect.client_id) => {
            // OIDC Core §3.1.3.7 (4, 5): with other audiences, azp must name us.
            if auds.len() > 1 && wire.azp.as_deref() != Some(expect.client_id) {
                return Err(IdTokenError::WrongAuthorizedParty);
            }
        }
        _ => return Err(IdTokenError::WrongAudience),
    }
    if let Some(azp) = &wire.azp
        && azp != expect.client_id
    {
        return Err(IdTokenError::WrongAuthorizedParty);
    }
    let now_secs = now.0 / 1000;
    if wire.exp.saturating_add(expect.leeway_secs) <= now_secs {
        return Err(IdTokenError::Expired);
    }
    if wire.iat > now_secs.saturating_add(expect.leeway_secs) {
        return Err(IdTokenError::IssuedInFuture);
    }
    let nonce = wire.nonce.as_deref().unwrap_or("");
    let same: bool = nonce.as_bytes().ct_eq(expect.nonce.as_bytes()).into();
    if !same || expect.nonce.is_empty() {
        return Err(IdTokenError::WrongNonce);
    }
    if wire.sub.is_empty() {
        return Err(IdTokenError::BadClaims);
    }
    let email_verified = match wire.email_verified {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::String(s) => s == "true",
        _ => false,
    };
    Ok(IdTokenClaims {
        sub: wire.sub,
        email: wire.email,
        email_verified,
        name: wire.name,
        preferred_username: wire.preferred_username,
        amr: wire.amr,
        acr: wire.acr,
        iat: wire.iat,
        exp: wire.exp,
        auth_time: wire.auth_time,
    })
}

/// Validates an ID token with the provider's key from `jwks` (fetched at most once here,
/// on a stale set or an unknown kid, as [`JwksCache::key`] rules).
pub async fn verify_id_token(
    client: &UpstreamClient,
    jwks: &JwksCache,
    token: &UpstreamToken,
    expect: &Expectations<'_>,
    now: Timestamp,
) -> Result<IdTokenClaims, IdTokenError> {
    let header = header_of(token.expose())?;
    let key = jwks
        .key(client, header.kid.as_deref(), header.alg, now)
        .await?;
    validate_with_key(token.expose(), &key, expect, now)
}
