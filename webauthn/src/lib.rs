//! WebAuthn ceremonies: the one place that runs webauthn-rs (W3C Web Authentication
//! Level 2, §7.1 registration and §7.2 assertion), for every driver.
//!
//! # What this crate owns
//! - The relying party ([`Ceremonies::new`]): its id and origin come from the server's
//!   public URL, so a response made for another origin or RP id never verifies.
//! - The pending ceremonies: the webauthn-rs state between a `start` and its `finish`, kept in
//!   memory, single-use, bound to what started it (an account for a registration, an MFA
//!   challenge for a second factor, the holder of the ceremony id for a passwordless login),
//!   expiring after [`Limits::ttl_ms`], and bounded by [`Limits::capacity`] so that a flood of
//!   `start` requests cannot exhaust memory.
//! - Turning a verified response into the facts core decides on: a
//!   [`tessera_core::webauthn::NewCredential`] or a
//!   [`tessera_core::webauthn::VerifiedAssertion`].
//!
//! # What it must not do
//! Decide anything that must be replayed. The records, the counters, the counter policy, the
//! attempt limits and every event belong to core's `webauthn` module; this crate only checks
//! signatures and client data. webauthn-rs draws its challenges from the OS random source,
//! so this crate cannot live in core; the challenges never reach the log, so the simulator's
//! log stays byte-deterministic for a seed although the challenges are not.
//!
//! # How to drive it
//! ```text
//!   register:  start_registration(views, account, kind)  ─▶ {ceremony, publicKey options}
//!              finish_registration(ceremony, account, credential JSON) ─▶ NewCredential
//!                 ─▶ core RegisterCredential (with the step-up)
//!   2nd factor: start_second_factor(views, challenge)      ─▶ options (allowCredentials)
//!              finish_second_factor(views, ceremony, challenge, JSON) ─▶ VerifiedAssertion
//!                 ─▶ core AnswerMfaWithCredential (Some, or None when this failed)
//!   passkey:   start_login()                               ─▶ options (discoverable, UV)
//!              finish_login(views, ceremony, JSON)         ─▶ VerifiedAssertion
//!                 ─▶ core LoginWithPasskey
//! ```
//!
//! # Counters
//! The stored credentials are handed to webauthn-rs with their counter set to zero, so the
//! library never refuses on a counter: core compares the presented counter with the highest
//! one it recorded and applies the operator's policy (refuse, or accept and flag), recording
//! the regression either way.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use serde_json::Value;
use tessera_core::mfa::ChallengeView;
use tessera_core::webauthn::{
    CredentialId, CredentialKind, CredentialView, NewCredential, VerifiedAssertion,
};
use tessera_core::{AccountId, ChallengeId, Rejection, Timestamp, Views};
use webauthn_rs::prelude::{AuthenticationResult, CreationChallengeResponse};
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration,
    Url, Uuid, Webauthn, WebauthnBuilder,
};

pub use webauthn_rs;

/// The prefix of a ceremony id: `twc_` + 43 base64url characters (256 random bits).
pub const CEREMONY_ID_PREFIX: &str = "twc_";
/// How long a ceremony may wait for its `finish` by default: five minutes, the
/// authenticator timeout webauthn-rs puts in the options.
pub const CEREMONY_TTL_MS_DEFAULT: u64 = 5 * 60 * 1000;
/// How many ceremonies may be pending at once by default. Each holds a few hundred bytes.
pub const CEREMONIES_PENDING_DEFAULT: usize = 10_000;

/// The bounds on pending ceremonies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a ceremony may wait for its `finish`.
    pub ttl_ms: u64,
    /// How many may be pending at once; a `start` beyond it is refused (503), never queued.
    pub capacity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ttl_ms: CEREMONY_TTL_MS_DEFAULT,
            capacity: CEREMONIES_PENDING_DEFAULT,
        }
    }
}

/// A ceremony's id: handed to whoever started it, presented again with the response. It
/// binds a passwordless login to the client that started it, so `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CeremonyId(String);

impl CeremonyId {
    /// The id as the client presents it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Takes a presented id, if it has the shape of one.
    pub fn parse(presented: &str) -> Option<Self> {
        let body = presented.strip_prefix(CEREMONY_ID_PREFIX)?;
        let ok = body.len() == 43
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(presented.to_owned()))
    }

    fn generate() -> Result<Self, CeremonyError> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        Ok(Self(format!(
            "{CEREMONY_ID_PREFIX}{}",
            data_encoding::BASE64URL_NOPAD.encode(&bytes)
        )))
    }
}

impl std::fmt::Debug for CeremonyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CeremonyId(…)")
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "ceremony ids are server secrets like the challenges webauthn-rs draws from the same OS source; neither reaches the log"
)]
fn fill_random(bytes: &mut [u8]) -> Result<(), CeremonyError> {
    getrandom::fill(bytes).map_err(|_| CeremonyError::Random)
}

/// A started ceremony: its id, and the options to hand to `navigator.credentials`
/// (`{"publicKey": {...}}`, with binary fields in base64url, as webauthn-rs serializes them).
#[derive(Debug)]
pub struct Started {
    /// The id to present with the response.
    pub ceremony: CeremonyId,
    /// `{"publicKey": {...}}`: creation options for a registration, request options for an
    /// assertion.
    pub options: Value,
}

/// Why a ceremony could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// Too many ceremonies are pending.
    #[error("too many WebAuthn ceremonies are pending")]
    Busy,
    /// The ceremony id is unknown, was already used, expired, or the ceremony belongs to
    /// another account or login.
    #[error("the WebAuthn ceremony is unknown, used, expired, or someone else's")]
    CeremonyInvalid,
    /// The response is not the JSON of a `PublicKeyCredential`.
    #[error("the credential is not a WebAuthn response: {0}")]
    Malformed(String),
    /// The registration response did not verify.
    #[error("the registration did not verify: {0}")]
    RegistrationRejected(String),
    /// The assertion did not verify (signature, origin, RP id, challenge, flags).
    #[error("the assertion did not verify: {0}")]
    AssertionRejected(String),
    /// The assertion names a credential that is not registered (to this account).
    #[error("unknown credential")]
    UnknownCredential,
    /// The account has no credential to ask for.
    #[error("no credential is registered")]
    NoCredential,
    /// The OS random source failed.
    #[error("the random source failed")]
    Random,
    /// webauthn-rs refused to build options (a bug or a stored credential it cannot read).
    #[error("the WebAuthn options could not be built: {0}")]
    Internal(String),
}

impl CeremonyError {
    /// The refusal a caller gets.
    pub fn rejection(&self) -> Rejection {
        match self {
            Self::Busy | Self::Random | Self::Internal(_) => Rejection::WebauthnBusy,
            Self::CeremonyInvalid => Rejection::WebauthnCeremonyInvalid,
            Self::Malformed(_) | Self::RegistrationRejected(_) => {
                Rejection::WebauthnRegistrationInvalid
            }
            Self::AssertionRejected(_) => Rejection::WebauthnAssertionInvalid {
                attempts_left: None,
            },
            Self::UnknownCredential => Rejection::WebauthnCredentialUnknown,
            Self::NoCredential => Rejection::MfaChallengeInvalid,
        }
    }
}

/// The relying party could not be set up from the public URL.
#[derive(Debug, thiserror::Error)]
#[error("WebAuthn needs http.public_url with a host name: {0}")]
pub struct ConfigError(String);

#[derive(Debug)]
enum Registration {
    Passkey(PasskeyRegistration),
    SecurityKey(SecurityKeyRegistration),
}

#[derive(Debug)]
enum State {
    Register {
        account: AccountId,
        registration: Box<Registration>,
    },
    SecondFactor {
        challenge: ChallengeId,
        account: AccountId,
        state: Box<SecurityKeyAuthentication>,
    },
    Login {
        state: Box<DiscoverableAuthentication>,
    },
}

#[derive(Debug)]
struct Entry {
    state: State,
    expires_at: Timestamp,
}

#[derive(Debug, Default)]
struct Pending {
    entries: HashMap<CeremonyId, Entry>,
    by_expiry: BTreeSet<(Timestamp, CeremonyId)>,
}

impl Pending {
    fn purge(&mut self, now: Timestamp) {
        while let Some((at, id)) = self.by_expiry.first().cloned() {
            if at > now {
                break;
            }
            self.by_expiry.pop_first();
            self.entries.remove(&id);
        }
    }

    fn insert(
        &mut self,
        entry: Entry,
        now: Timestamp,
        capacity: usize,
    ) -> Result<CeremonyId, CeremonyError> {
        self.purge(now);
        if self.entries.len() >= capacity {
            return Err(CeremonyError::Busy);
        }
        let id = CeremonyId::generate()?;
        self.by_expiry.insert((entry.expires_at, id.clone()));
        self.entries.insert(id.clone(), entry);
        Ok(id)
    }

    /// Takes the ceremony out (single use), if it is still live.
    fn take(&mut self, id: &CeremonyId, now: Timestamp) -> Option<State> {
        let entry = self.entries.remove(id)?;
        self.by_expiry.remove(&(entry.expires_at, id.clone()));
        (now < entry.expires_at).then_some(entry.state)
    }
}

/// The relying party and its pending ceremonies. One per server (or simulator run), shared
/// by every request.
#[derive(Debug)]
pub struct Ceremonies {
    webauthn: Webauthn,
    rp_id: String,
    origin: Url,
    limits: Limits,
    pending: Mutex<Pending>,
}

impl Ceremonies {
    /// The relying party of `public_url` (`https://host[:port]`, or `http://` for a local
    /// server): its host is the RP id and its origin the only accepted one. A loopback IP
    /// address stands for `localhost` (RP ids are host names; browsers refuse IP addresses).
    pub fn new(public_url: &str, rp_name: &str, limits: Limits) -> Result<Self, ConfigError> {
        let mut url = Url::parse(public_url).map_err(|e| ConfigError(e.to_string()))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        };
        if loopback {
            url.set_host(Some("localhost"))
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        let rp_id = url
            .domain()
            .ok_or_else(|| ConfigError(format!("{public_url} has no host name")))?
            .to_owned();
        let origin = Url::parse(&url.origin().ascii_serialization())
            .map_err(|e| ConfigError(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name(rp_name).build())
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(Self {
            webauthn,
            rp_id,
            origin,
            limits,
            pending: Mutex::new(Pending::default()),
        })
    }

    /// The relying-party id (the public URL's host).
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// The one accepted origin (`scheme://host[:port]`).
    pub fn origin(&self) -> &str {
        self.origin.as_str().trim_end_matches('/')
    }

    /// How many ceremonies are pending (expired ones not yet purged included).
    pub fn pending(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only a map of pending ceremonies behind,
        // which stays consistent: keep serving.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keep(&self, state: State, now: Timestamp) -> Result<CeremonyId, CeremonyError> {
        let entry = Entry {
            state,
            expires_at: now.plus_ms(self.limits.ttl_ms),
        };
        self.lock().insert(entry, now, self.limits.capacity)
    }

    fn take(&self, ceremony: &CeremonyId, now: Timestamp) -> Result<State, CeremonyError> {
        self.lock()
            .take(ceremony, now)
            .ok_or(CeremonyError::CeremonyInvalid)
    }

    /// Starts registering a credential of `kind` for `account`: a passkey must be
    /// discoverable and verify the user; a security key is asked for user verification
    /// but may skip it. The account's credentials are excluded, so one authenticator is
    /// not registered twice.
    pub fn start_registration(
        &self,
        views: &Views,
        account: AccountId,
        kind: CredentialKind,
        now: Timestamp,
    ) -> Result<Started, CeremonyError> {
        let holder = views
            .account(&account)
            .ok_or(CeremonyError::CeremonyInvalid)?;
        let user = user_handle(&account);
        let name = holder.username.as_str();
        let exclude: Vec<_> = views
            .credentials_of(&account)
            .map(|c| c.id.0.clone())
            .collect();
        let exclude = (!exclude.is_empty()).then_some(exclude);
        let (options, registration) = match kind {
            CredentialKind::Passkey => {
                let (mut ccr, reg) = self
                    .webauthn
                    .start_passkey_registration(user, name, name, exclude)
                    .map_err(internal)?;
                require_resident_key(&mut ccr);
                (ccr, Registration::Passkey(reg))
            }
            CredentialKind::SecurityKey => {
                let (mut ccr, reg) = self
                    .webauthn
                    .start_securitykey_registration(user, name, name, exclude, None, None)
                    .map_err(internal)?;
                without_cred_protect(&mut ccr);
                (ccr, Registration::SecurityKey(reg))
            }
        };
        let options = serde_json::to_value(&options).map_err(internal)?;
        let state = State::Register {
            account,
            registration: Box::new(registration),
        };
        Ok(Started {
            ceremony: self.keep(state, now)?,
            options,
        })
    }

    /// Finishes a registration started by [`Ceremonies::start_registration`] for the same
    /// account, with the browser's `PublicKeyCredential` as JSON. The ceremony is spent
    /// whatever the outcome.
    pub fn finish_registration(
        &self,
        ceremony: &CeremonyId,
        account: AccountId,
        response: &Value,
        now: Timestamp,
    ) -> Result<NewCredential, CeremonyError> {
        let State::Register {
            account: owner,
            registration,
        } = self.take(ceremony, now)?
        else {
            return Err(CeremonyError::CeremonyInvalid);
        };
        if owner != account {
            return Err(CeremonyError::CeremonyInvalid);
        }
        let response: RegisterPublicKeyCredential = serde_json::from_value(response.clone())
            .map_err(|e| CeremonyError::Malformed(e.to_string()))?;
        let (kind, credential) = match *registration {
            Registration::Passkey(reg) => self
                .webauthn
                .finish_passkey_registration(&response, &reg)
                .map(|p| (CredentialKind::Passkey, Credential::from(p))),
            Registration::SecurityKey(reg) => self
                .webauthn
                .finish_securitykey_registration(&response, &reg)
                .map(|k| (CredentialKind::SecurityKey, Credential::from(k))),
        }
        .map_err(|e| CeremonyError::RegistrationRejected(e.to_string()))?;
        new_credential(kind, &credential, &response)
    }

    /// Starts a second-factor assertion for a live MFA challenge, over every credential of
    /// its account (user verification preferred, not required: the password was the first
    /// factor).
    pub fn start_second_factor(
        &self,
        views: &Views,
        challenge: &ChallengeView,
        now: Timestamp,
    ) -> Result<Started, CeremonyError> {
        let keys: Vec<SecurityKey> = views
            .credentials_of(&challenge.account)
            .filter_map(|c| stored(c).ok())
            .map(SecurityKey::from)
            .collect();
        if keys.is_empty() {
            return Err(CeremonyError::NoCredential);
        }
        let (rcr, state) = self
            .webauthn
            .start_securitykey_authentication(&keys)
            .map_err(internal)?;
        let options = serde_json::to_value(&rcr).map_err(internal)?;
        let state = State::SecondFactor {
            challenge: challenge.id,
            account: challenge.account,
            state: Box::new(state),
        };
        Ok(Started {
            ceremony: self.keep(state, now)?,
            options,
        })
    }

    /// Finishes a second-factor assertion started for `challenge`. The ceremony is spent
    /// whatever the outcome; an error here is a wrong answer to the challenge.
    pub fn finish_second_factor(
        &self,
        views: &Views,
        ceremony: &CeremonyId,
        challenge: ChallengeId,
        response: &Value,
        now: Timestamp,
    ) -> Result<VerifiedAssertion, CeremonyError> {
        let State::SecondFactor {
            challenge: bound,
            account,
            state,
        } = self.take(ceremony, now)?
        else {
            return Err(CeremonyError::CeremonyInvalid);
        };
        if bound != challenge {
            return Err(CeremonyError::CeremonyInvalid);
        }
        let response = assertion_json(response)?;
        let id = CredentialId(response.get_credential_id().to_vec());
        let record = views
            .credential(&id)
            .filter(|c| c.account == account)
            .ok_or(CeremonyError::UnknownCredential)?;
        let result = self
            .webauthn
            .finish_securitykey_authentication(&response, &state)
            .map_err(|e| CeremonyError::AssertionRejected(e.to_string()))?;
        Ok(verified(record, &result))
    }

    /// Starts a passwordless login: no credential is named (the authenticator offers its
    /// discoverable ones) and user verification is required.
    pub fn start_login(&self, now: Timestamp) -> Result<Started, CeremonyError> {
        let (mut rcr, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        // A button press asks the browser's usual modal prompt; conditional mediation is
        // for autofill, which the page does not use.
        rcr.mediation = None;
        let options = serde_json::to_value(&rcr).map_err(internal)?;
        let state = State::Login {
            state: Box::new(state),
        };
        Ok(Started {
            ceremony: self.keep(state, now)?,
            options,
        })
    }

    /// Finishes a passwordless login started by [`Ceremonies::start_login`]. The user
    /// handle must name the account the credential is registered to. The ceremony is spent
    /// whatever the outcome.
    pub fn finish_login(
        &self,
        views: &Views,
        ceremony: &CeremonyId,
        response: &Value,
        now: Timestamp,
    ) -> Result<VerifiedAssertion, CeremonyError> {
        let State::Login { state } = self.take(ceremony, now)? else {
            return Err(CeremonyError::CeremonyInvalid);
        };
        let response = assertion_json(response)?;
        let (user, raw_id) = self
            .webauthn
            .identify_discoverable_authentication(&response)
            .map_err(|e| CeremonyError::AssertionRejected(e.to_string()))?;
        let id = CredentialId(raw_id.to_vec());
        let record = views
            .credential(&id)
            .filter(|c| user_handle(&c.account) == user)
            .ok_or(CeremonyError::UnknownCredential)?;
        let credential = stored(record)?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&response, *state, &credential)
            .map_err(|e| CeremonyError::AssertionRejected(e.to_string()))?;
        Ok(verified(record, &result))
    }
}

/// What a login sent to the writer carries besides the assertion: where it came from
/// (throttling), and the session its cookie names (it ends when the login does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginContext {
    pub client: Option<std::net::IpAddr>,
    pub supersedes: Option<tessera_core::SessionId>,
}

/// The second-factor command a credential answer becomes, with the ceremony's reason when
/// it refused the assertion (the command then counts as a wrong answer).
#[derive(Debug)]
pub struct SecondFactorAnswer {
    pub command: tessera_core::webauthn::AnswerMfaWithCredential,
    pub refused: Option<CeremonyError>,
}

impl Ceremonies {
    /// The passwordless login use case up to the writer, ending as `mode` says: the
    /// ceremony checks the assertion and the command for core is built. The HTTP route, the login page and the simulator
    /// all come through here.
    pub fn passkey_login_command(
        &self,
        views: &Views,
        ceremony: &CeremonyId,
        response: &Value,
        now: Timestamp,
        mode: tessera_core::LoginMode,
        context: LoginContext,
    ) -> Result<tessera_core::webauthn::LoginWithPasskey, CeremonyError> {
        let assertion = self.finish_login(views, ceremony, response, now)?;
        Ok(tessera_core::webauthn::LoginWithPasskey {
            assertion,
            mode,
            client: context.client,
            supersedes: context.supersedes,
        })
    }

    /// The second-factor use case up to the writer, for the challenge whose `mfa_token`
    /// digest is `presented`: the ceremony bound to that challenge checks the assertion.
    /// Not an answer at all (no such challenge, or another login's ceremony, spent or
    /// expired) is an `Err`; a refused assertion is a command that counts as a wrong code.
    pub fn second_factor_command(
        &self,
        views: &Views,
        presented: tessera_core::secret::SecretDigest,
        ceremony: &CeremonyId,
        response: &Value,
        now: Timestamp,
        context: LoginContext,
    ) -> Result<SecondFactorAnswer, Rejection> {
        let challenge = views
            .challenge_by_digest(&presented)
            .ok_or(Rejection::MfaChallengeInvalid)?;
        let (assertion, refused) =
            match self.finish_second_factor(views, ceremony, challenge.id, response, now) {
                Ok(a) => (Some(a), None),
                Err(CeremonyError::CeremonyInvalid) => {
                    return Err(Rejection::WebauthnCeremonyInvalid);
                }
                Err(e) => (None, Some(e)),
            };
        Ok(SecondFactorAnswer {
            command: tessera_core::webauthn::AnswerMfaWithCredential {
                presented,
                assertion,
                client: context.client,
                supersedes: context.supersedes,
            },
            refused,
        })
    }
}

/// The WebAuthn user handle of an account: its id's 16 bytes (no personal data).
fn user_handle(account: &AccountId) -> Uuid {
    Uuid::from_bytes(*account.as_bytes())
}

fn internal(e: impl std::fmt::Display) -> CeremonyError {
    CeremonyError::Internal(e.to_string())
}

fn assertion_json(response: &Value) -> Result<PublicKeyCredential, CeremonyError> {
    serde_json::from_value(response.clone()).map_err(|e| CeremonyError::Malformed(e.to_string()))
}

/// Passkeys must be discoverable: webauthn-rs's passkey options leave residency to the
/// authenticator, so ask for it explicitly.
fn require_resident_key(ccr: &mut CreationChallengeResponse) {
    if let Some(sel) = ccr.public_key.authenticator_selection.as_mut() {
        sel.require_resident_key = true;
        sel.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
    }
}

/// A security key is a second factor with user verification only preferred: asking it to
/// protect the credential behind user verification (credProtect level 3) contradicts that,
/// and browsers refuse the combination for a non-resident credential. webauthn-rs records
/// the extension as requested but unanswered, which it accepts.
fn without_cred_protect(ccr: &mut CreationChallengeResponse) {
    if let Some(extensions) = ccr.public_key.extensions.as_mut() {
        extensions.cred_protect = None;
    }
}

/// The stored credential, with its counter set to zero so that webauthn-rs leaves the
/// counter rule to core.
fn stored(record: &CredentialView) -> Result<Credential, CeremonyError> {
    let mut credential: Credential = serde_json::from_str(&record.public_key).map_err(internal)?;
    credential.counter = 0;
    Ok(credential)
}

fn new_credential(
    kind: CredentialKind,
    credential: &Credential,
    response: &RegisterPublicKeyCredential,
) -> Result<NewCredential, CeremonyError> {
    let public_key = serde_json::to_string(credential).map_err(internal)?;
    let transports = response
        .response
        .transports
        .iter()
        .flatten()
        .filter_map(|t| serde_json::to_value(t).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    Ok(NewCredential {
        id: CredentialId(credential.cred_id.to_vec()),
        kind,
        public_key,
        counter: credential.counter,
        transports,
        // A passkey was registered with a resident key required; the authenticator refuses
        // the registration rather than make a non-discoverable one.
        discoverable: kind == CredentialKind::Passkey,
        user_verified: credential.user_verified,
        backup_eligible: credential.backup_eligible,
    })
}

fn verified(record: &CredentialView, result: &AuthenticationResult) -> VerifiedAssertion {
    VerifiedAssertion {
        account: record.account,
        credential: record.id.clone(),
        counter: result.counter(),
        user_verified: result.user_verified(),
        backup_state: result.backup_state(),
    }
}
