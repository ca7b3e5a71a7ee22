//! External identities: signing in with an outside provider (OpenID Connect, or OAuth 2 with
//! a user-info endpoint), and the rules that link such an identity to an account.
//!
//! ```text
//!  browser ─GET /v1/login/{p}─▶ PendingSignIn::start (state, PKCE verifier, nonce, where to go)
//!          ◀─302 to the provider, the pending sign-in sealed in a __Host- cookie─
//!  provider ─302 /v1/login/{p}/callback?code&state─▶ check_callback (cookie, state, provider)
//!          ─▶ (adapter) code exchange, ID token or user info ─▶ accept_id_token ─▶ UpstreamProfile
//!          ─▶ ExternalSignIn (writer) ─┬─ linked, live ─────────▶ ExternalSignInRecorded + session
//!                                      │                          (or the account's MFA challenge)
//!                                      ├─ unknown, policy create ▶ ExternalAccountCreated + the same
//!                                      ├─ unknown, e-mail of an account ─▶ refused (link from there)
//!                                      ├─ unknown, link_only ────▶ refused
//!                                      └─ state already spent ───▶ refused
//!  signed in ─POST /v1/identities/{p}─▶ the same redirect, purpose Link
//!          ─callback─▶ LinkIdentity ─▶ ExternalIdentityLinked (never one linked elsewhere)
//!  DELETE /v1/identities/{p} ─▶ UnlinkIdentity ─▶ ExternalIdentityUnlinked (never the last way in)
//! ```
//!
//! An identity is keyed by (provider, subject): the provider's stable id for the user
//! (OpenID Connect Core 1.0 §5.7: `sub` with `iss` is the only claim that identifies a user;
//! an e-mail address can be reassigned or unverified). So an identity whose e-mail matches a
//! local account is never linked to it silently: that would let whoever controls the address
//! at the provider take over the account. The user signs in to the account and links from
//! there.
//!
//! The network work (the code exchange, the ID token's signature against the provider's
//! keys, the user-info fetch) happens in the HTTP adapter; this module receives its results
//! as facts ([`IdTokenFacts`], [`UpstreamProfile`]) so that the simulator can drive the same
//! checks with modelled answers.

use std::net::IpAddr;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::account::{USERNAME_CHARS_MAX, USERNAME_CHARS_MIN, username_key};
use crate::event::{Event, LoginFailure, Pending};
use crate::id::uuid_v7;
use crate::password::PasswordHash;
use crate::secret::SecretDigest;
use crate::session::{LoginReply, complete_login, end_superseded};
use crate::{AccountId, Decide, Decision, Env, LoginMode, Rejection, SessionId, Timestamp, Views};

/// The longest provider name (the `{provider}` in URLs).
pub const PROVIDER_NAME_CHARS_MAX: usize = 32;
/// How long a started sign-in may take, from the redirect to the callback.
pub const SIGN_IN_TTL_MS: u64 = 10 * 60 * 1000;
/// Bytes of entropy in the state, the PKCE verifier and the nonce.
pub const SIGN_IN_SECRET_BYTES: usize = 32;
/// How many numbered variants of a provider's username a first sign-in tries before it falls
/// back to one made from the account id.
pub const USERNAME_SUFFIXES_MAX: u32 = 100;

/// Whether `name` may name a provider: 1 to [`PROVIDER_NAME_CHARS_MAX`] lower-case ASCII
/// letters, digits and dashes, not starting or ending with a dash (it is a URL segment and
/// part of an environment variable's name).
pub fn provider_name_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= PROVIDER_NAME_CHARS_MAX
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What a first sign-in with an unknown identity does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstSignIn {
    /// Creates an account for the identity (with no password).
    #[default]
    Create,
    /// Refuses: only identities already linked to an account sign in.
    LinkOnly,
}

/// What a started sign-in is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignInPurpose {
    /// Sign in (or create the account, by the provider's policy).
    Login,
    /// Link the identity to this signed-in account.
    Link {
        /// The account that asked.
        account: AccountId,
    },
}

/// A sign-in started in one browser: what the adapter seals into a short-lived cookie, so
/// that only the browser that started it can finish it (RFC 6749 §10.12, RFC 9700 §4.7).
/// `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The provider it was started with.
    pub provider: String,
    /// The `state` sent to the provider, which its answer must carry back.
    pub state: String,
    /// The PKCE code verifier (RFC 7636); its S256 challenge went to the provider.
    pub verifier: String,
    /// The OpenID Connect nonce the ID token must carry; `None` for plain OAuth 2.
    pub nonce: Option<String>,
    /// Where the browser continues once signed in (a local path).
    pub return_to: String,
    /// Sign in, or link to a signed-in account.
    pub purpose: SignInPurpose,
    /// The callback is refused from this time on.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("provider", &self.provider)
            .field("return_to", &self.return_to)
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PendingSignIn {
    /// A new sign-in with `provider`: fresh random state, verifier and (for OpenID Connect)
    /// nonce, valid for [`SIGN_IN_TTL_MS`].
    pub fn start(
        provider: &str,
        oidc: bool,
        return_to: &str,
        purpose: SignInPurpose,
        now: Timestamp,
        rng: &mut dyn CryptoRng,
    ) -> Self {
        let mut secret = || {
            let mut raw = [0u8; SIGN_IN_SECRET_BYTES];
            rng.fill_bytes(&mut raw);
            data_encoding::BASE64URL_NOPAD.encode(&raw)
        };
        let state = secret();
        let verifier = secret();
        let nonce = oidc.then(&mut secret);
        Self {
            provider: provider.to_owned(),
            state,
            verifier,
            nonce,
            return_to: return_to.to_owned(),
            purpose,
            expires_at: now.plus_ms(SIGN_IN_TTL_MS),
        }
    }

    /// The PKCE S256 challenge of the verifier (RFC 7636 §4.2).
    pub fn challenge(&self) -> String {
        use sha2::Digest as _;
        data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha256::digest(self.verifier.as_bytes()))
    }

    /// The digest the log keeps of the state once spent, so that it is spent once.
    pub fn state_digest(&self) -> SecretDigest {
        SecretDigest::of(&self.state)
    }
}

impl PendingSignIn {
    /// The cookie value: the sign-in sealed (XChaCha20-Poly1305, `nonce` fresh from the
    /// caller's randomness) and base64url-encoded, so the browser can neither read nor
    /// forge it.
    pub fn seal(&self, keys: &crate::mfa::MfaKeys, nonce: [u8; 24]) -> String {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(self).unwrap_or_default());
        data_encoding::BASE64URL_NOPAD.encode(&keys.seal_sign_in(&plain, nonce))
    }

    /// The sign-in a cookie value holds; `None` for anything this server did not seal.
    pub fn open(cookie: &str, keys: &crate::mfa::MfaKeys) -> Option<Self> {
        if cookie.len() > SEALED_COOKIE_CHARS_MAX {
            return None;
        }
        let sealed = data_encoding::BASE64URL_NOPAD
            .decode(cookie.as_bytes())
            .ok()?;
        let plain = keys.open_sign_in(&sealed)?;
        serde_json::from_slice(&plain).ok()
    }
}

/// The longest sealed sign-in cookie opened: the return path is at most 2 KiB.
pub const SEALED_COOKIE_CHARS_MAX: usize = 4096;

/// Checks a callback against the sign-in this browser started: there must be one (the
/// cookie), for this provider, not expired, whose state equals the returned one (compared in
/// constant time). A callback from another browser, a forged state, or an answer meant for
/// another provider is refused before any code is exchanged (login CSRF, RFC 6749 §10.12).
pub fn check_callback<'p>(
    pending: Option<&'p PendingSignIn>,
    provider: &str,
    returned_state: Option<&str>,
    now: Timestamp,
) -> Result<&'p PendingSignIn, Rejection> {
    let pending = pending.ok_or(Rejection::ExternalSignInNotStarted)?;
    if now >= pending.expires_at {
        return Err(Rejection::ExternalSignInNotStarted);
    }
    let returned = returned_state.unwrap_or("");
    let same_state: bool = returned.as_bytes().ct_eq(pending.state.as_bytes()).into();
    if !same_state || returned.is_empty() || pending.provider != provider {
        return Err(Rejection::ExternalStateMismatch);
    }
    Ok(pending)
}

/// The claims of an ID token whose signature the adapter verified against the provider's
/// published keys, as this module checks them against the sign-in they answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdTokenFacts {
    /// `iss`.
    pub issuer: String,
    /// `aud` (one or more).
    pub audience: Vec<String>,
    /// `azp`, if present.
    pub authorized_party: Option<String>,
    /// `sub`.
    pub subject: String,
    /// `nonce`, if present.
    pub nonce: Option<String>,
    /// `exp`.
    pub expires_at: Timestamp,
    /// `amr` (RFC 8176), if present.
    pub amr: Vec<String>,
    /// `acr`, if present.
    pub acr: Option<String>,
}

/// What the provider is expected to have said in an ID token.
#[derive(Clone, Copy, Debug)]
pub struct IdTokenExpectation<'a> {
    /// The provider's issuer identifier.
    pub issuer: &'a str,
    /// This server's client id at the provider.
    pub client_id: &'a str,
}

/// Accepts an ID token's claims as the answer to `pending` (OpenID Connect Core 1.0
/// §3.1.3.7): the issuer is the provider's, this client is an audience (and the authorized
/// party when there are several), the token is not expired, and its nonce is the one this
/// browser's sign-in sent. A token minted for another client, or replayed from another
/// sign-in, is refused here even if its signature is good.
pub fn accept_id_token(
    facts: &IdTokenFacts,
    expected: IdTokenExpectation<'_>,
    pending: &PendingSignIn,
    now: Timestamp,
) -> Result<(), Rejection> {
    let refuse = |reason: IdTokenProblem| Err(Rejection::IdTokenRejected(reason));
    if facts.issuer != expected.issuer {
        return refuse(IdTokenProblem::Issuer);
    }
    if !facts.audience.iter().any(|a| a == expected.client_id)
        || facts.audience.len() > 1 && facts.authorized_party.as_deref() != Some(expected.client_id)
        || facts
            .authorized_party
            .as_deref()
            .is_some_and(|azp| azp != expected.client_id)
    {
        return refuse(IdTokenProblem::Audience);
    }
    if now >= facts.expires_at {
        return refuse(IdTokenProblem::Expired);
    }
    let nonce_ok = match (&pending.nonce, &facts.nonce) {
        (Some(sent), Some(got)) => bool::from(sent.as_bytes().ct_eq(got.as_bytes())),
        _ => false,
    };
    if !nonce_ok {
        return refuse(IdTokenProblem::Nonce);
    }
    if facts.subject.is_empty() {
        return refuse(IdTokenProblem::Subject);
    }
    Ok(())
}

/// Why an ID token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenProblem {
    /// `iss` is not the provider's.
    #[error("it was issued by someone else")]
    Issuer,
    /// This server is not its audience: it was minted for another client.
    #[error("it was issued to another application")]
    Audience,
    /// It has expired.
    #[error("it has expired")]
    Expired,
    /// Its nonce is not the one this sign-in sent: it answers another sign-in.
    #[error("it answers another sign-in")]
    Nonce,
    /// It names no user.
    #[error("it names no user")]
    Subject,
}

/// Whether the ID token asserts that the user passed more than one factor at the provider:
/// `amr` (RFC 8176) lists `mfa`, or `acr` names a multi-factor policy.
pub fn mfa_asserted(facts: &IdTokenFacts) -> bool {
    const MULTI_FACTOR_ACR: [&str; 2] = [
        "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
        "urn:mace:incommon:iap:silver",
    ];
    facts.amr.iter().any(|m| m == "mfa")
        || facts
            .acr
            .as_deref()
            .is_some_and(|acr| MULTI_FACTOR_ACR.contains(&acr))
}

/// Who the provider says the user is, after the exchange and the checks above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamProfile {
    /// The configured provider's name.
    pub provider: String,
    /// The provider's stable id for the user.
    pub subject: String,
    /// The provider's username for the user, if it has one (a starting point for ours).
    pub username: Option<String>,
    /// The user's e-mail address at the provider, if given.
    pub email: Option<String>,
    /// The provider asserted a multi-factor sign-in ([`mfa_asserted`]).
    pub mfa_asserted: bool,
}

/// One linked identity, as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityView {
    /// The provider's name.
    pub provider: String,
    /// The provider's id for the user.
    pub subject: String,
    /// The account it signs in to.
    pub account: AccountId,
    /// When it was linked.
    pub linked_at: Timestamp,
    /// When it last signed in, if it has.
    pub last_sign_in_at: Option<Timestamp>,
}

/// A state spent by a completed callback, kept until the sign-in it belonged to would have
/// expired anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpentState {
    /// The digest of the state.
    pub digest: SecretDigest,
    /// When the record may go: the sign-in's own deadline.
    pub expires_at: Timestamp,
}

/// A spent state, for a decision to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateSpent {
    /// The state's digest ([`PendingSignIn::state_digest`]).
    pub digest: SecretDigest,
    /// The sign-in's deadline ([`PendingSignIn::expires_at`]).
    pub expires_at: Timestamp,
}

impl From<&PendingSignIn> for StateSpent {
    fn from(p: &PendingSignIn) -> Self {
        Self {
            digest: p.state_digest(),
            expires_at: p.expires_at,
        }
    }
}

/// The settings of the provider a sign-in came through, as the decision needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderRules {
    /// What a first sign-in with an unknown identity does.
    pub first_sign_in: FirstSignIn,
    /// Whether the provider's multi-factor assertion replaces the account's own second
    /// factor.
    pub trusted_for_mfa: bool,
}

/// What an external sign-in answered: the login's reply, and whether the account is new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalSignedIn {
    /// The account signed in to.
    pub account: AccountId,
    /// Whether the sign-in created it.
    pub created: bool,
    /// As a password login answers: a session, or the account's MFA challenge.
    pub login: LoginReply,
}

/// A callback whose identity the adapter established: sign in with it (GET
/// /v1/login/{provider}/callback, purpose [`SignInPurpose::Login`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalSignIn {
    /// Who the provider says the user is.
    pub profile: UpstreamProfile,
    /// The provider's settings.
    pub rules: ProviderRules,
    /// The state this callback spends.
    pub state: StateSpent,
    /// Session or tokens (the browser flow asks for a session).
    pub mode: LoginMode,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
    /// The live session whose cookie the callback arrived with, which the sign-in ends.
    pub supersedes: Option<SessionId>,
}

impl Decide for ExternalSignIn {
    type Reply = ExternalSignedIn;

    fn kind(&self) -> &'static str {
        "external_sign_in"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<ExternalSignedIn> {
        if let Err(r) = precheck(views, &self.state, self.client, env) {
            return Decision::refuse(vec![], r);
        }
        let p = &self.profile;
        let (account, created, mut events) = match views.identity(&p.provider, &p.subject) {
            Some(linked) => (linked.account, false, vec![]),
            None => match first_sign_in(views, p, self.rules.first_sign_in, env) {
                Ok((account, created)) => (account, true, vec![created]),
                Err(r) => return Decision::refuse(vec![], r),
            },
        };
        if let Some(a) = views.account(&account) {
            let wait =
                crate::throttle::account_wait_ms(views, &account, env.now, &env.policy.throttle);
            let failure = if a.disabled {
                Some((
                    LoginFailure::AccountDisabled,
                    Rejection::ExternalAccountDisabled,
                ))
            } else if wait > 0 {
                Some((LoginFailure::Throttled, crate::throttle::throttled(wait)))
            } else {
                None
            };
            if let Some((reason, rejection)) = failure {
                let failed = Event::LoginFailed {
                    account,
                    reason,
                    client: self.client,
                };
                return Decision::refuse(vec![failed.into()], rejection);
            }
        }
        events.push(
            Event::ExternalSignInRecorded {
                account,
                provider: p.provider.clone(),
                state: self.state.digest,
                state_expires_at: self.state.expires_at,
                client: self.client,
            }
            .into(),
        );
        let mfa_skipped = self.rules.trusted_for_mfa && p.mfa_asserted;
        // A registered WebAuthn credential is a second factor, as TOTP is.
        let totp = views.mfa(&account).filter(|m| m.enabled());
        let webauthn = views.credentials_of(&account).next().is_some();
        if (totp.is_some() || webauthn) && !mfa_skipped {
            let (started, issued) =
                crate::mfa::start_challenge(account, self.mode, totp, webauthn, env);
            events.push(started);
            return Decision::ok(
                events,
                ExternalSignedIn {
                    account,
                    created,
                    login: LoginReply::MfaRequired(issued),
                },
            );
        }
        end_superseded(views, self.supersedes, env.now, &mut events);
        let done = complete_login(account, self.mode, env, &mut events);
        Decision::ok(
            events,
            ExternalSignedIn {
                account,
                created,
                login: LoginReply::Completed(done),
            },
        )
    }
}

/// The checks every callback passes before its identity is looked at: the address is not
/// throttled, and the state was not spent by an earlier callback.
fn precheck(
    views: &Views,
    state: &StateSpent,
    client: Option<IpAddr>,
    env: &Env<'_>,
) -> Result<(), Rejection> {
    crate::throttle::check_address(views, client, env.now, &env.policy.throttle)?;
    if views.state_spent(&state.digest) || env.now >= state.expires_at {
        return Err(Rejection::ExternalStateSpent);
    }
    Ok(())
}

/// The first sign-in of an identity no account has: the account it creates, or why not.
fn first_sign_in(
    views: &Views,
    p: &UpstreamProfile,
    policy: FirstSignIn,
    env: &mut Env<'_>,
) -> Result<(AccountId, Pending), Rejection> {
    if policy == FirstSignIn::LinkOnly {
        return Err(Rejection::ExternalSignInNotLinked {
            provider: p.provider.clone(),
        });
    }
    // Never linked by e-mail: the holder of the matching account signs in and links.
    if p.email
        .as_deref()
        .is_some_and(|e| views.accounts_with_email(e).next().is_some())
    {
        return Err(Rejection::ExternalEmailInUse {
            provider: p.provider.clone(),
        });
    }
    let account = AccountId(uuid_v7(env.now, env.random_bytes()));
    let username = unique_username(views, p, account);
    let email = p
        .email
        .clone()
        .filter(|e| crate::account::email_plausible(e));
    Ok((
        account,
        Event::ExternalAccountCreated {
            account,
            username,
            email,
            provider: p.provider.clone(),
            subject: p.subject.clone(),
        }
        .into(),
    ))
}

/// A username for a new account, from the provider's username (else the e-mail's local
/// part, else the provider's name): reduced to the characters usernames allow, then made
/// unique deterministically by the first free `-2`, `-3`, … suffix.
pub fn unique_username(views: &Views, p: &UpstreamProfile, account: AccountId) -> String {
    let wanted = p
        .username
        .as_deref()
        .or_else(|| p.email.as_deref().and_then(|e| e.split('@').next()))
        .unwrap_or(&p.provider);
    let mut base: String = wanted
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
        .collect();
    if base.len() < USERNAME_CHARS_MIN {
        base = format!("{}-{base}", p.provider);
    }
    // Room for a suffix of up to four characters.
    base.truncate(USERNAME_CHARS_MAX - 4);
    let free = |name: &str| username_key(name).is_ok() && views.account_by_username(name).is_none();
    if free(&base) {
        return base;
    }
    (2..=USERNAME_SUFFIXES_MAX)
        .map(|n| format!("{base}-{n}"))
        .find(|name| free(name))
        .unwrap_or_else(|| {
            let id = data_encoding::HEXLOWER.encode(account.as_bytes());
            format!("{}-{}", p.provider, id.get(..16).unwrap_or(&id))
        })
}

/// A callback whose identity the adapter established, for a signed-in account: link it
/// (purpose [`SignInPurpose::Link`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkIdentity {
    /// The signed-in account that started the link.
    pub account: AccountId,
    /// Who the provider says the user is.
    pub profile: UpstreamProfile,
    /// The state this callback spends.
    pub state: StateSpent,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
}

impl Decide for LinkIdentity {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "link_identity"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        if let Err(r) = precheck(views, &self.state, self.client, env) {
            return Decision::refuse(vec![], r);
        }
        let p = &self.profile;
        match views.account(&self.account) {
            Some(a) if !a.disabled => {}
            _ => return Decision::refuse(vec![], Rejection::Unauthenticated),
        }
        match views.identity(&p.provider, &p.subject) {
            Some(linked) if linked.account == self.account => return Decision::ok(vec![], ()),
            Some(_) => {
                return Decision::refuse(
                    vec![],
                    Rejection::IdentityLinkedElsewhere {
                        provider: p.provider.clone(),
                    },
                );
            }
            None => {}
        }
        if views
            .identities_of(&self.account)
            .any(|i| i.provider == p.provider)
        {
            return Decision::refuse(
                vec![],
                Rejection::ProviderAlreadyLinked {
                    provider: p.provider.clone(),
                },
            );
        }
        let linked = Event::ExternalIdentityLinked {
            account: self.account,
            provider: p.provider.clone(),
            subject: p.subject.clone(),
            state: self.state.digest,
            state_expires_at: self.state.expires_at,
        };
        Decision::ok(vec![linked.into()], ())
    }
}

/// DELETE /v1/identities/{provider}: the holder unlinks the identity of a provider, unless
/// it is the account's last way to sign in (no password and no other identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnlinkIdentity {
    /// The signed-in holder.
    pub account: AccountId,
    /// The provider whose identity goes.
    pub provider: String,
}

impl Decide for UnlinkIdentity {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "unlink_identity"
    }

    fn decide(self, views: &Views, _env: &mut Env<'_>) -> Decision<()> {
        let Some(account) = views.account(&self.account) else {
            return Decision::refuse(vec![], Rejection::AccountNotFound);
        };
        let Some(identity) = views
            .identities_of(&self.account)
            .find(|i| i.provider == self.provider)
        else {
            return Decision::refuse(vec![], Rejection::IdentityNotLinked);
        };
        let others = views.identities_of(&self.account).count().saturating_sub(1);
        if account.password_hash.is_absent() && others == 0 {
            return Decision::refuse(vec![], Rejection::LastWayToSignIn);
        }
        let unlinked = Event::ExternalIdentityUnlinked {
            account: self.account,
            provider: identity.provider.clone(),
            subject: identity.subject.clone(),
        };
        Decision::ok(vec![unlinked.into()], ())
    }
}

/// A callback refused before any identity was established (no or a forged state, a
/// provider that failed): it counts against the caller's address like a failed login, so
/// the callback cannot be used to probe faster than the login form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedCallback {
    /// Where the request came from.
    pub client: Option<IpAddr>,
}

impl Decide for FailedCallback {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "failed_callback"
    }

    fn decide(self, _views: &Views, _env: &mut Env<'_>) -> Decision<()> {
        let failed = Event::UnknownAccountLoginFailed {
            client: self.client,
        };
        Decision::ok(vec![failed.into()], ())
    }
}

/// The hash an account created by an external sign-in holds: none. No password verifies
/// against it, and [`PasswordHash::is_absent`] tells the unlink rule there is no password.
pub fn no_password() -> PasswordHash {
    PasswordHash::absent()
}

#[cfg(test)]
mod tests;
