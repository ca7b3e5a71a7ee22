//! WebAuthn credentials (passkeys and security keys): the records, the counter rule, and
//! the decisions on already-verified ceremony facts (W3C Web Authentication Level 2).
//!
//! ```text
//!   holder, fresh re-authentication ──RegisterCredential (verified attestation)──▶ Registered
//!   Registered ──LoginWithPasskey / AnswerMfaWithCredential (verified assertion)──▶ Used
//!                 └─ counter did not advance (§6.1.1 signCount) ──▶ CounterRegressed
//!                      policy refuse: login refused;  accept_and_flag: Used, credential flagged
//!   Registered ──RemoveCredential (not the last way to log in)──▶ Removed
//! ```
//!
//! # Why the ceremony is not here
//! Checking a registration or an assertion (client data, origin, RP id hash, flags, COSE
//! signature) is done by webauthn-rs in the `tessera-webauthn` crate, which also draws the
//! challenges from the OS random source. Core stays pure: the writer decides on the facts
//! that crate hands over ([`NewCredential`], [`VerifiedAssertion`]), and owns everything that
//! must be replayable: the records, the counters, the attempt limits, the clone policy and
//! the events. No challenge reaches the log.
//!
//! # Counters (§6.1.1, §7.2 step 21)
//! An authenticator that keeps a signature counter raises it at every assertion. A counter
//! that does not advance past the stored one (both zero means the authenticator keeps none)
//! suggests a cloned authenticator: [`check_counter`]. The policy
//! ([`WebauthnPolicy::counter_regression`]) refuses the login (the default) or accepts it and
//! flags the credential; either way `WebauthnCounterRegressed` records it.
//!
//! # As a second factor
//! An account with a registered credential gets an MFA challenge after its password, like an
//! account with TOTP; the challenge lists `webauthn` among its methods. A failed assertion
//! counts as a wrong code against the same attempt limit (`MfaCodeFailed`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::decide::{Decide, Decision};
use crate::event::{Actor, Event, Pending};
use crate::secret::SecretDigest;
use crate::session::{LoginCompleted, StepUp};
use crate::{AccountId, Env, LoginMode, Rejection, SessionId, Timestamp, Views};

/// The longest credential id the specification allows (§5.8.3: at most 1023 bytes).
pub const CREDENTIAL_ID_BYTES_MAX: usize = 1023;
/// The longest credential name, in characters.
pub const NAME_CHARS_MAX: usize = 64;
/// The most credentials a policy may allow per account.
pub const CREDENTIALS_PER_ACCOUNT_LIMIT: u32 = 100;

/// A credential's id (`rawId`), as the authenticator chose it. Public: the browser sends it
/// in the clear. Shown as base64url without padding.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CredentialId(pub Vec<u8>);

impl CredentialId {
    /// Parses the base64url form (padding optional); `None` for anything else, an empty id or
    /// one longer than [`CREDENTIAL_ID_BYTES_MAX`].
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(text.trim_end_matches('=').as_bytes())
            .ok()?;
        (!bytes.is_empty() && bytes.len() <= CREDENTIAL_ID_BYTES_MAX).then_some(Self(bytes))
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&data_encoding::BASE64URL_NOPAD.encode(&self.0))
    }
}

impl std::fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CredentialId({self})")
    }
}

/// What kind of credential was registered. Recorded in events: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialKind {
    /// A discoverable credential registered with user verification: it logs in alone,
    /// without a password ("Sign in with a passkey"), and also answers an MFA challenge.
    Passkey,
    /// A security key used as a second factor after the password; user verification is
    /// preferred, not required.
    SecurityKey,
}

impl CredentialKind {
    /// `passkey` or `security_key`, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::SecurityKey => "security_key",
        }
    }

    /// Parses the API spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "passkey" => Some(Self::Passkey),
            "security_key" => Some(Self::SecurityKey),
            _ => None,
        }
    }
}

/// What to do when a credential's signature counter does not advance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterPolicy {
    /// Refuse the login (the default): a cloned authenticator gets nothing.
    #[default]
    Refuse,
    /// Accept the login and flag the credential, for authenticators known to reset their
    /// counters; the regression is recorded all the same.
    AcceptAndFlag,
}

/// The WebAuthn rules an operator may tune (`[policy.webauthn]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnPolicy {
    /// What a counter that did not advance does to the login.
    pub counter_regression: CounterPolicy,
    /// The most credentials one account may register.
    pub credentials_per_account_max: u32,
}

impl Default for WebauthnPolicy {
    fn default() -> Self {
        Self {
            counter_regression: CounterPolicy::Refuse,
            credentials_per_account_max: 20,
        }
    }
}

impl WebauthnPolicy {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.credentials_per_account_max == 0
            || self.credentials_per_account_max > CREDENTIALS_PER_ACCOUNT_LIMIT
        {
            return Err(format!(
                "webauthn credentials_per_account_max must be 1..={CREDENTIALS_PER_ACCOUNT_LIMIT}"
            ));
        }
        Ok(())
    }
}

/// A registration the ceremony verified (attestation object, client data, origin, RP id,
/// flags): the public facts to record. Built by the `tessera-webauthn` crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCredential {
    /// The credential's id.
    pub id: CredentialId,
    /// Passkey or security key, as the registration asked for.
    pub kind: CredentialKind,
    /// The credential as webauthn-rs stores it (COSE public key, algorithm, flags, the
    /// counter at registration), serialized as JSON: public data, needed to check later
    /// assertions.
    pub public_key: String,
    /// The signature counter at registration.
    pub counter: u32,
    /// The transports the authenticator reported (`usb`, `nfc`, `ble`, `internal`, `hybrid`).
    pub transports: Vec<String>,
    /// Whether the credential is discoverable (a resident key).
    pub discoverable: bool,
    /// Whether the authenticator verified the user at registration.
    pub user_verified: bool,
    /// Whether the credential may be synced to other devices (the BE flag).
    pub backup_eligible: bool,
}

/// An assertion the ceremony verified (signature over authenticator data and client data
/// hash, origin, RP id hash, challenge, user presence): the facts the writer decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The account the credential was registered to, as the views said when the ceremony
    /// looked it up; the writer checks it again.
    pub account: AccountId,
    /// The credential that signed.
    pub credential: CredentialId,
    /// The signature counter in the authenticator data.
    pub counter: u32,
    /// The UV flag: the authenticator verified the user (PIN, biometric).
    pub user_verified: bool,
    /// The BS flag: the credential is currently backed up (synced).
    pub backup_state: bool,
}

/// A credential as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialView {
    /// The credential's id.
    pub id: CredentialId,
    /// The account it logs in to.
    pub account: AccountId,
    /// The holder's name for it.
    pub name: String,
    /// Passkey or security key.
    pub kind: CredentialKind,
    /// The stored credential, as webauthn-rs serializes it (public).
    pub public_key: String,
    /// The highest signature counter seen.
    pub counter: u32,
    /// The transports the authenticator reported.
    pub transports: Vec<String>,
    /// Whether it is discoverable.
    pub discoverable: bool,
    /// Whether the authenticator verified the user at registration.
    pub user_verified: bool,
    /// Whether it may be synced.
    pub backup_eligible: bool,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last logged in, if ever.
    pub last_used_at: Option<Timestamp>,
    /// Its counter went backwards at least once and the policy accepted the login.
    pub flagged: bool,
}

/// What checking a presented counter against the stored one found (§7.2 step 21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterCheck {
    /// The counter advanced.
    Advanced,
    /// Both are zero: the authenticator keeps no counter (most synced passkeys).
    NoCounter,
    /// The counter did not advance: a possible clone.
    Regressed,
}

/// The counter rule: a non-zero counter must exceed the stored one; a zero counter is
/// accepted only while the stored one is zero too.
pub fn check_counter(stored: u32, presented: u32) -> CounterCheck {
    if stored == 0 && presented == 0 {
        CounterCheck::NoCounter
    } else if presented > stored {
        CounterCheck::Advanced
    } else {
        CounterCheck::Regressed
    }
}

/// A registered credential, as `POST /v1/webauthn/register/finish` answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRegistered {
    /// Its id.
    pub id: CredentialId,
    /// Its name.
    pub name: String,
}

/// Validates a credential name: trimmed, 1 to [`NAME_CHARS_MAX`] characters, no control
/// characters.
pub fn valid_name(name: &str) -> Option<String> {
    let name = name.trim();
    let chars = name.chars().count();
    let ok = (1..=NAME_CHARS_MAX).contains(&chars) && !name.chars().any(char::is_control);
    ok.then(|| name.to_owned())
}

/// Whether the account can still log in some other way than with `except`: with its
/// password, or with another credential.
pub fn other_way_to_log_in(views: &Views, account: &AccountId, except: &CredentialId) -> bool {
    let password = views
        .account(account)
        .is_some_and(crate::account::has_password);
    password || views.credentials_of(account).any(|c| c.id != *except)
}

/// The counter decision shared by both login paths: the events to record, or the refusal
/// with the events to record anyway.
#[allow(clippy::result_large_err)]
fn counter_events(
    record: &CredentialView,
    assertion: &VerifiedAssertion,
    client: Option<IpAddr>,
    policy: CounterPolicy,
) -> Result<Vec<Pending>, Vec<Pending>> {
    let used: Pending = Event::WebauthnCredentialUsed {
        account: record.account,
        credential: record.id.clone(),
        counter: assertion.counter,
        user_verified: assertion.user_verified,
        backup_state: assertion.backup_state,
    }
    .into();
    match check_counter(record.counter, assertion.counter) {
        CounterCheck::Advanced | CounterCheck::NoCounter => Ok(vec![used]),
        CounterCheck::Regressed => {
            let accepted = policy == CounterPolicy::AcceptAndFlag;
            let regressed: Pending = Event::WebauthnCounterRegressed {
                account: record.account,
                credential: record.id.clone(),
                stored: record.counter,
                presented: assertion.counter,
                accepted,
                client,
            }
            .into();
            if accepted {
                Ok(vec![regressed, used])
            } else {
                Err(vec![regressed])
            }
        }
    }
}

/// The record of the assertion's credential if it still exists and belongs to the account
/// the ceremony found.
fn record_of<'v>(views: &'v Views, assertion: &VerifiedAssertion) -> Option<&'v CredentialView> {
    views
        .credential(&assertion.credential)
        .filter(|c| c.account == assertion.account)
}

/// Registers a credential for the authenticated holder of `account`, after a fresh
/// re-authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterCredential {
    /// The holder.
    pub account: AccountId,
    /// The holder's name for it, as typed.
    pub name: String,
    /// The verified registration.
    pub credential: NewCredential,
    /// A recent authentication ([`crate::session::check_step_up`]).
    pub step_up: StepUp,
}

impl Decide for RegisterCredential {
    type Reply = CredentialRegistered;

    fn kind(&self) -> &'static str {
        "register_webauthn_credential"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<CredentialRegistered> {
        let spent =
            match crate::session::check_step_up(views, self.account, &self.step_up, false, env) {
                Ok(spent) => spent,
                Err((events, r)) => return Decision::refuse(events, r),
            };
        register(views, self, env).after(spent)
    }
}

fn register(views: &Views, c: RegisterCredential, env: &Env<'_>) -> Decision<CredentialRegistered> {
    if views.account(&c.account).is_none_or(|a| a.disabled) {
        return Decision::refuse(vec![], Rejection::Unauthenticated);
    }
    let Some(name) = valid_name(&c.name) else {
        return Decision::refuse(vec![], Rejection::WebauthnNameInvalid);
    };
    let new = c.credential;
    if new.kind == CredentialKind::Passkey && !(new.user_verified && new.discoverable) {
        return Decision::refuse(vec![], Rejection::WebauthnUserVerificationRequired);
    }
    if views.credential(&new.id).is_some() {
        return Decision::refuse(vec![], Rejection::WebauthnCredentialExists);
    }
    let max = env.policy.webauthn.credentials_per_account_max as usize;
    if views.credentials_of(&c.account).count() >= max {
        return Decision::refuse(vec![], Rejection::WebauthnCredentialLimit);
    }
    let event = Event::WebauthnCredentialRegistered {
        account: c.account,
        credential: new.id.clone(),
        name: name.clone(),
        kind: new.kind,
        public_key: new.public_key,
        counter: new.counter,
        transports: new.transports,
        discoverable: new.discoverable,
        user_verified: new.user_verified,
        backup_eligible: new.backup_eligible,
    };
    Decision::ok(
        vec![event.into()],
        CredentialRegistered { id: new.id, name },
    )
}

/// Removes one of the holder's credentials, unless it is the account's last way to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveCredential {
    /// The holder.
    pub account: AccountId,
    /// The credential to remove.
    pub credential: CredentialId,
}

impl Decide for RemoveCredential {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "remove_webauthn_credential"
    }

    fn decide(self, views: &Views, _env: &mut Env<'_>) -> Decision<()> {
        // Someone else's credential is answered as an unknown one.
        let owned = views
            .credential(&self.credential)
            .is_some_and(|c| c.account == self.account);
        if !owned {
            return Decision::refuse(vec![], Rejection::WebauthnCredentialUnknown);
        }
        if !other_way_to_log_in(views, &self.account, &self.credential) {
            return Decision::refuse(vec![], Rejection::WebauthnLastLoginMethod);
        }
        let event = Event::WebauthnCredentialRemoved {
            account: self.account,
            credential: self.credential,
            by: Actor::Holder,
        };
        Decision::ok(vec![event.into()], ())
    }
}

/// A passwordless login with a discoverable credential and user verification: ends like a
/// password login without MFA (a session or tokens), since the credential with user
/// verification is itself two factors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginWithPasskey {
    /// The verified assertion.
    pub assertion: VerifiedAssertion,
    /// Session or tokens.
    pub mode: LoginMode,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
    /// The live session whose cookie the login arrived with: it ends when the login
    /// completes.
    pub supersedes: Option<SessionId>,
}

impl Decide for LoginWithPasskey {
    type Reply = LoginCompleted;

    fn kind(&self) -> &'static str {
        "login_with_passkey"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<LoginCompleted> {
        let wait =
            crate::throttle::address_wait_ms(views, self.client, env.now, &env.policy.throttle);
        if wait > 0 {
            return Decision::refuse(vec![], crate::throttle::throttled(wait));
        }
        // A security key is a second factor only: it never logs in alone.
        let Some(record) =
            record_of(views, &self.assertion).filter(|r| r.kind == CredentialKind::Passkey)
        else {
            return Decision::refuse(vec![], Rejection::WebauthnCredentialUnknown);
        };
        // The account throttle slows password guessing; a passkey cannot be guessed, and
        // honouring it here would let anyone who types wrong passwords lock the holder out.
        if views.account(&record.account).is_none_or(|a| a.disabled) {
            return Decision::refuse(vec![], Rejection::Unauthenticated);
        }
        if !self.assertion.user_verified {
            return Decision::refuse(vec![], Rejection::WebauthnUserVerificationRequired);
        }
        let policy = env.policy.webauthn.counter_regression;
        let mut events = match counter_events(record, &self.assertion, self.client, policy) {
            Ok(events) => events,
            Err(events) => return Decision::refuse(events, Rejection::WebauthnCounterRegressed),
        };
        crate::session::end_superseded(views, self.supersedes, env.now, &mut events);
        let done = crate::session::complete_login(record.account, self.mode, env, &mut events);
        Decision::ok(events, done)
    }
}

/// Answers a login's MFA challenge with a credential. `assertion` is what the ceremony
/// found: a verified assertion, or `None` when it failed (a bad signature, another origin,
/// a tampered response...), which counts as a wrong code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerMfaWithCredential {
    /// The presented `mfa_token`'s digest ([`crate::mfa::presented_challenge_digest`]).
    pub presented: SecretDigest,
    /// The verified assertion, or `None` for one the ceremony refused.
    pub assertion: Option<VerifiedAssertion>,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
    /// The live session whose cookie the second step arrived with.
    pub supersedes: Option<SessionId>,
}

impl Decide for AnswerMfaWithCredential {
    type Reply = LoginCompleted;

    fn kind(&self) -> &'static str {
        "answer_mfa_with_webauthn"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<LoginCompleted> {
        let Some(challenge) = views
            .challenge_by_digest(&self.presented)
            .filter(|c| c.is_live(env.now))
        else {
            return Decision::refuse(vec![], Rejection::MfaChallengeInvalid);
        };
        if challenge.exhausted() {
            return Decision::refuse(vec![], Rejection::MfaChallengeExhausted);
        }
        let account = challenge.account;
        match crate::mfa::usable(views, &account, env) {
            Ok(_) if views.credentials_of(&account).next().is_some() => {}
            Ok(_) | Err(Rejection::Unauthenticated) => {
                return Decision::refuse(vec![], Rejection::MfaChallengeInvalid);
            }
            Err(r) => return Decision::refuse(vec![], r),
        }
        let attempts_left = Some(challenge.attempts_left().saturating_sub(1));
        let failed: Pending = Event::MfaCodeFailed {
            account,
            challenge: Some(challenge.id),
            client: self.client,
        }
        .into();
        let found = self.assertion.as_ref().and_then(|a| {
            record_of(views, a)
                .filter(|r| r.account == account)
                .map(|r| (r, a))
        });
        let Some((record, assertion)) = found else {
            return Decision::refuse(
                vec![failed],
                Rejection::WebauthnAssertionInvalid { attempts_left },
            );
        };
        let policy = env.policy.webauthn.counter_regression;
        let mut events = match counter_events(record, assertion, self.client, policy) {
            Ok(events) => events,
            Err(mut events) => {
                events.push(failed);
                return Decision::refuse(events, Rejection::WebauthnCounterRegressed);
            }
        };
        events.push(
            Event::MfaChallengePassed {
                challenge: challenge.id,
            }
            .into(),
        );
        crate::session::end_superseded(views, self.supersedes, env.now, &mut events);
        let done = crate::session::complete_login(account, challenge.mode, env, &mut events);
        Decision::ok(events, done)
    }
}

/// The credentials of an account, as `GET /v1/webauthn/credentials` lists them: oldest
/// first.
pub fn list(views: &Views, account: &AccountId) -> Vec<CredentialView> {
    let mut list: Vec<CredentialView> = views.credentials_of(account).cloned().collect();
    list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    list
}

/// The ids of an account's credentials, in a stable order.
pub fn ids_of(views: &Views, account: &AccountId) -> BTreeSet<CredentialId> {
    views
        .credentials_of(account)
        .map(|c| c.id.clone())
        .collect()
}

#[cfg(test)]
mod tests;
