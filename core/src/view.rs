//! Views: the current state, folded from the log by [`Views::apply`].
//!
//! The views are both what reads consult (is this session live? which account has this
//! username?) and the aggregate state decisions are made against: with one writer, the
//! views it maintains are always current for it. Storage persists the primary records
//! (accounts, usernames, sessions) in one tree each, keyed as [`ViewKey`] says; the indexes
//! (by secret digest, by account, by deadline) are derived when the records are loaded.
//!
//! Expired sessions are dropped when an event recorded at or after their deadline is
//! applied. That uses only the envelope's time, so a rebuild from the log drops exactly the
//! same sessions, and the views stay as large as the number of live sessions.

use std::collections::{BTreeSet, HashMap};

use crate::account::{AccountView, username_key};
use crate::blocklist::{NotBefore, RevokedAccessToken};
use crate::event::Event;
use crate::mfa::{ChallengeView, MfaView};
use crate::refresh::{FamilyView, RefreshTokenView};
use crate::secret::SecretDigest;
use crate::session::SessionView;
use crate::signing_key::{KeySet, PublishedKey};
use crate::throttle::Strikes;
use crate::{AccountId, ChallengeId, FamilyId, SessionId, Timestamp, TokenId};

mod apikeys;
mod identity;
mod legacy;
mod mfa;
mod oauth;
mod throttle;
mod tokens;
mod webauthn;

pub use identity::{IdentityKey, IdentityRecord};
pub use oauth::{OAuthKey, OAuthRecord, RevokedClientToken};

pub use legacy::SchemeCounts;
pub use throttle::AddressCapacity;

/// The key of one persisted view record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewKey {
    /// An account, by id.
    Account(AccountId),
    /// The normalised (lower-case) username.
    Username(String),
    /// A session, by id.
    Session(SessionId),
    /// A signing key, by kid.
    SigningKey(String),
    /// A refresh family.
    Family(FamilyId),
    /// A refresh token (current or spent), by digest.
    RefreshToken(SecretDigest),
    /// A revoked access token, by jti.
    RevokedAccessToken(TokenId),
    /// An account's not-before time for access tokens.
    NotBefore(AccountId),
    /// An account's MFA state.
    Mfa(AccountId),
    /// An MFA challenge.
    Challenge(ChallengeId),
    /// An account's throttle strikes.
    AccountStrikes(AccountId),
    /// An address's throttle strikes, under its [`crate::throttle::address_key`].
    AddressStrikes(std::net::IpAddr),
    /// An address's counted registrations, under its [`crate::throttle::address_key`].
    /// Last, so that the order of the earlier keys does not move.
    RegistrationStrikes(std::net::IpAddr),
    /// An OAuth record (clients, grants, codes, device authorizations, strikes, revoked
    /// client tokens).
    OAuth(OAuthKey),
    /// An API key, by id (appended after the keys above).
    ApiKey(crate::ApiKeyId),
    /// An account still on a legacy credential. After the earlier keys, for the same reason.
    Legacy(AccountId),
    /// An external identity or a spent sign-in state. After the earlier keys, for the same
    /// reason.
    Identity(IdentityKey),
    /// A WebAuthn credential, by id. After the earlier keys, for the same reason.
    WebauthnCredential(crate::webauthn::CredentialId),
}

/// One persisted view record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewRecord {
    /// Under [`ViewKey::Account`]: the account.
    Account(AccountView),
    /// Under [`ViewKey::Username`]: the account holding that username.
    Username(AccountId),
    /// Under [`ViewKey::Session`]: the session.
    Session(SessionView),
    /// Under [`ViewKey::SigningKey`]: the key.
    SigningKey(PublishedKey),
    /// Under [`ViewKey::Family`]: the refresh family.
    Family(FamilyView),
    /// Under [`ViewKey::RefreshToken`]: the refresh token.
    RefreshToken(RefreshTokenView),
    /// Under [`ViewKey::RevokedAccessToken`]: the blocklist entry.
    RevokedAccessToken(RevokedAccessToken),
    /// Under [`ViewKey::NotBefore`]: the account's not-before time.
    NotBefore(NotBefore),
    /// Under [`ViewKey::Mfa`]: the account's MFA state.
    Mfa(MfaView),
    /// Under [`ViewKey::Challenge`]: the challenge.
    Challenge(ChallengeView),
    /// Under [`ViewKey::AccountStrikes`], [`ViewKey::AddressStrikes`] or
    /// [`ViewKey::RegistrationStrikes`].
    Strikes(Strikes),
    /// Under [`ViewKey::OAuth`].
    OAuth(OAuthRecord),
    /// Under [`ViewKey::ApiKey`]: the key.
    ApiKey(crate::apikey::ApiKeyView),
    /// Under [`ViewKey::Legacy`]: the account's legacy credential record.
    Legacy(crate::legacy::LegacyView),
    /// Under [`ViewKey::Identity`]: the identity or spent state.
    Identity(IdentityRecord),
    /// Under [`ViewKey::WebauthnCredential`]: the credential.
    WebauthnCredential(crate::webauthn::CredentialView),
}

impl ViewKey {
    /// Whether `record` is of the kind stored under this key, and names the same thing.
    pub fn holds(&self, record: &ViewRecord) -> bool {
        match (self, record) {
            (Self::Account(id), ViewRecord::Account(a)) => a.id == *id,
            (Self::Username(_), ViewRecord::Username(_)) => true,
            (Self::Session(id), ViewRecord::Session(s)) => s.id == *id,
            (Self::SigningKey(kid), ViewRecord::SigningKey(k)) => k.kid == *kid,
            (Self::Family(id), ViewRecord::Family(f)) => f.id == *id,
            (Self::RefreshToken(_), ViewRecord::RefreshToken(_)) => true,
            (Self::RevokedAccessToken(jti), ViewRecord::RevokedAccessToken(r)) => r.jti == *jti,
            (Self::NotBefore(_), ViewRecord::NotBefore(_)) => true,
            (Self::Mfa(a), ViewRecord::Mfa(m)) => m.account == *a,
            (Self::Challenge(id), ViewRecord::Challenge(c)) => c.id == *id,
            (
                Self::AccountStrikes(_) | Self::AddressStrikes(_) | Self::RegistrationStrikes(_),
                ViewRecord::Strikes(_),
            ) => true,
            (Self::OAuth(k), ViewRecord::OAuth(r)) => matches!(
                (k, r),
                (OAuthKey::Client(_), OAuthRecord::Client(_))
                    | (OAuthKey::Grant(..), OAuthRecord::Grant(_))
                    | (OAuthKey::Code(_), OAuthRecord::Code(_))
                    | (OAuthKey::Device(_), OAuthRecord::Device(_))
                    | (
                        OAuthKey::UserCodeStrikes(_),
                        OAuthRecord::UserCodeStrikes(_)
                    )
                    | (
                        OAuthKey::RevokedClientToken(_),
                        OAuthRecord::RevokedClientToken(_)
                    )
            ),
            (Self::ApiKey(id), ViewRecord::ApiKey(k)) => k.id == *id,
            (Self::Legacy(a), ViewRecord::Legacy(l)) => l.account == *a,
            (Self::Identity(k), ViewRecord::Identity(r)) => match (k, r) {
                (IdentityKey::Link(p, s), IdentityRecord::Link(i)) => {
                    i.provider == *p && i.subject == *s
                }
                (IdentityKey::SpentState(d), IdentityRecord::SpentState(spent)) => {
                    spent.digest == *d
                }
                _ => false,
            },
            (Self::WebauthnCredential(id), ViewRecord::WebauthnCredential(c)) => c.id == *id,
            _ => false,
        }
    }
}

/// An event the views cannot apply: the log contradicts itself. Only a corrupt or tampered
/// log (whose hash chain was also forged) or a bug can produce one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {kind} cannot apply: {why}")]
pub struct ApplyError {
    /// The event's variant name ([`Event::kind`]), or the internal step that failed (`load`
    /// for a persisted record that does not match its key).
    pub kind: &'static str,
    /// What the views found wrong, for the operator.
    pub why: String,
}

impl ApplyError {
    /// A maker of the errors of folding `event`: each names the event and what was wrong.
    pub(crate) fn about(event: &Event) -> impl Fn(&str) -> ApplyError + '_ {
        move |why| ApplyError {
            kind: event.kind(),
            why: why.to_owned(),
        }
    }
}

/// The current state, folded from the log: what reads consult and what decisions are made
/// against.
///
/// Its methods come in four families:
/// - **Reads**, for adapters and decisions: [`Views::account`], [`Views::account_by_username`],
///   [`Views::session`], [`Views::session_by_digest`], [`Views::sessions_of`], the token reads
///   ([`Views::signing_keys`], [`Views::family`], [`Views::refresh_token`],
///   [`Views::families_of`], [`Views::access_token_revoked`], [`Views::not_before`]), the MFA
///   reads ([`Views::mfa`], [`Views::mfa_status`], [`Views::challenge_by_digest`]) and the
///   throttle reads ([`Views::account_strikes`], [`Views::address_strikes`]), plus counts.
/// - **Fold**: [`Views::apply`] routes one recorded event to the view that owns it (accounts
///   and sessions, tokens, MFA), then lets the throttle view count it; it reports the
///   persisted records it changed.
/// - **Persistence**: [`Views::keys`] and [`Views::record`] give the persisted records,
///   [`Views::load`] puts one back (deriving the indexes), [`Views::for_policy`] and
///   [`Views::set_address_capacity`] set the throttle's bound.
/// - **Checks**: [`Views::check_invariants`] (every view, every index: tests and rebuilds)
///   and [`Views::check_records`] (only the records a batch touched: the writer, after every
///   batch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Views {
    pub(crate) accounts: HashMap<AccountId, AccountView>,
    pub(crate) usernames: HashMap<String, AccountId>,
    pub(crate) sessions: HashMap<SessionId, SessionView>,
    pub(crate) by_digest: HashMap<SecretDigest, SessionId>,
    pub(crate) by_account: HashMap<AccountId, BTreeSet<SessionId>>,
    pub(crate) by_deadline: BTreeSet<(Timestamp, SessionId)>,
    pub(crate) signing_keys: KeySet,
    pub(crate) families: HashMap<FamilyId, FamilyView>,
    pub(crate) refresh_tokens: HashMap<SecretDigest, RefreshTokenView>,
    pub(crate) revoked_access_tokens: HashMap<TokenId, RevokedAccessToken>,
    pub(crate) not_before: HashMap<AccountId, NotBefore>,
    /// Derived: the families of each account.
    pub(crate) families_by_account: HashMap<AccountId, BTreeSet<FamilyId>>,
    /// Derived: the refresh-token digests of each family.
    pub(crate) digests_by_family: HashMap<FamilyId, BTreeSet<SecretDigest>>,
    /// Derived: when each token record is dropped.
    pub(crate) token_expiry: BTreeSet<(Timestamp, tokens::Expiring)>,
    /// MFA state and challenges.
    pub(crate) mfa: mfa::MfaViews,
    /// Throttle strikes per account and per address.
    pub(crate) throttle: throttle::ThrottleView,
    /// OAuth clients, grants, codes and device authorizations.
    pub(crate) oauth: oauth::OAuthViews,
    /// API keys.
    pub(crate) api_keys: apikeys::ApiKeyViews,
    /// Accounts still on a legacy credential.
    pub(crate) legacy: legacy::LegacyViews,
    /// External identities and spent sign-in states.
    pub(crate) identities: identity::IdentityViews,
    /// WebAuthn credentials.
    pub(crate) webauthn: webauthn::WebauthnViews,
}

impl Views {
    /// The account with this id, disabled or not.
    pub fn account(&self, id: &AccountId) -> Option<&AccountView> {
        self.accounts.get(id)
    }

    /// The account with this username, compared case-insensitively (by
    /// [`username_key`]); `None` for a username that is not even valid.
    pub fn account_by_username(&self, username: &str) -> Option<&AccountView> {
        let key = username_key(username).ok()?;
        self.usernames
            .get(&key)
            .and_then(|id| self.accounts.get(id))
    }

    /// The session with this id, if it has not ended and has not been dropped. It may be
    /// past its deadline: check [`SessionView::is_live`].
    pub fn session(&self, id: &SessionId) -> Option<&SessionView> {
        self.sessions.get(id)
    }

    /// The session whose secret has this digest, on the same terms as [`Views::session`].
    pub fn session_by_digest(&self, digest: &SecretDigest) -> Option<&SessionView> {
        self.by_digest
            .get(digest)
            .and_then(|id| self.sessions.get(id))
    }

    /// The account's sessions that have not ended. Some may be past their deadline and not
    /// yet dropped: callers check [`SessionView::is_live`].
    pub fn sessions_of(&self, account: &AccountId) -> impl Iterator<Item = &SessionView> {
        self.by_account
            .get(account)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sessions.get(id))
    }

    /// Every account, disabled ones included, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = &AccountView> {
        self.accounts.values()
    }

    /// How many accounts exist, disabled ones included.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// How many sessions the views hold: not ended, and not yet dropped (some may be past
    /// their deadline).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Every persisted key, in a stable order, for comparing two sets of views.
    pub fn keys(&self) -> Vec<ViewKey> {
        let mut keys: Vec<ViewKey> = self
            .accounts
            .keys()
            .map(|k| ViewKey::Account(*k))
            .chain(self.usernames.keys().map(|k| ViewKey::Username(k.clone())))
            .chain(self.sessions.keys().map(|k| ViewKey::Session(*k)))
            .chain(self.token_keys())
            .chain(self.mfa_keys())
            .chain(self.throttle_keys())
            .chain(self.oauth_keys())
            .chain(self.api_key_keys())
            .chain(self.legacy_keys())
            .chain(self.identity_keys())
            .chain(self.webauthn_keys())
            .collect();
        keys.sort();
        keys
    }

    /// The record stored under `key`, or `None` if it was removed.
    pub fn record(&self, key: &ViewKey) -> Option<ViewRecord> {
        match key {
            ViewKey::Account(id) => self.accounts.get(id).cloned().map(ViewRecord::Account),
            ViewKey::Username(name) => self.usernames.get(name).copied().map(ViewRecord::Username),
            ViewKey::Session(id) => self.sessions.get(id).cloned().map(ViewRecord::Session),
            ViewKey::Mfa(_) | ViewKey::Challenge(_) => self.mfa_record(key),
            ViewKey::OAuth(k) => self.oauth_record(k),
            ViewKey::AccountStrikes(_)
            | ViewKey::AddressStrikes(_)
            | ViewKey::RegistrationStrikes(_) => self.throttle_record(key),
            ViewKey::ApiKey(_) => self.api_key_record(key),
            ViewKey::Legacy(_) => self.legacy_record(key),
            ViewKey::Identity(k) => self.identity_record(k),
            ViewKey::WebauthnCredential(_) => self.webauthn_record(key),
            ViewKey::SigningKey(_)
            | ViewKey::Family(_)
            | ViewKey::RefreshToken(_)
            | ViewKey::RevokedAccessToken(_)
            | ViewKey::NotBefore(_) => self.token_record(key),
        }
    }

    /// Inserts a persisted record while loading, deriving the indexes.
    pub fn load(&mut self, key: ViewKey, record: ViewRecord) -> Result<(), ApplyError> {
        match (key, record) {
            (ViewKey::Account(id), ViewRecord::Account(a)) if a.id == id => {
                self.index_email(&a);
                self.accounts.insert(id, a);
            }
            (ViewKey::Username(name), ViewRecord::Username(id)) => {
                self.usernames.insert(name, id);
            }
            (ViewKey::Session(id), ViewRecord::Session(s)) if s.id == id => self.insert_session(s),
            (
                key @ (ViewKey::SigningKey(_)
                | ViewKey::Family(_)
                | ViewKey::RefreshToken(_)
                | ViewKey::RevokedAccessToken(_)
                | ViewKey::NotBefore(_)),
                record,
            ) => return self.load_token(&key, record),
            (key @ (ViewKey::Mfa(_) | ViewKey::Challenge(_)), record) => {
                return self.load_mfa(&key, record);
            }
            (ViewKey::OAuth(key), ViewRecord::OAuth(record)) => {
                return self.load_oauth(key, record);
            }
            (
                key @ (ViewKey::AccountStrikes(_)
                | ViewKey::AddressStrikes(_)
                | ViewKey::RegistrationStrikes(_)),
                record,
            ) => {
                return self.load_throttle(&key, record);
            }
            (key @ ViewKey::ApiKey(_), record) => return self.load_api_key(&key, record),
            (key @ ViewKey::Legacy(_), record) => return self.load_legacy(&key, record),
            (ViewKey::Identity(key), ViewRecord::Identity(record)) => {
                return self.load_identity(key, record);
            }
            (key @ ViewKey::WebauthnCredential(_), record) => {
                return self.load_webauthn(&key, record);
            }
            (key, _) => {
                return Err(ApplyError {
                    kind: "load",
                    why: format!("record does not match its key {key:?}"),
                });
            }
        }
        Ok(())
    }

    fn insert_session(&mut self, s: SessionView) {
        self.by_digest.insert(s.secret_digest, s.id);
        self.by_account.entry(s.account).or_default().insert(s.id);
        self.by_deadline.insert((s.deadline(), s.id));
        self.sessions.insert(s.id, s);
    }

    fn remove_session(
        &mut self,
        id: &SessionId,
        touched: &mut Vec<ViewKey>,
    ) -> Option<SessionView> {
        let s = self.sessions.remove(id)?;
        self.by_digest.remove(&s.secret_digest);
        if let Some(set) = self.by_account.get_mut(&s.account) {
            set.remove(id);
            if set.is_empty() {
                self.by_account.remove(&s.account);
            }
        }
        self.by_deadline.remove(&(s.deadline(), s.id));
        touched.push(ViewKey::Session(*id));
        Some(s)
    }

    /// Drops every session whose deadline is at or before `at`.
    fn drop_expired(&mut self, at: Timestamp, touched: &mut Vec<ViewKey>) {
        while let Some(&(deadline, id)) = self.by_deadline.first() {
            if deadline > at {
                break;
            }
            self.by_deadline.pop_first();
            self.remove_session(&id, touched);
        }
    }

    /// Folds one event, recorded at `at`, into the views, and pushes the key of every
    /// persisted record it changed onto `touched`.
    pub fn apply(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        self.drop_expired(at, touched);
        self.drop_expired_tokens(at, touched);
        self.drop_expired_mfa(at, touched);
        self.drop_expired_strikes(at, touched);
        self.drop_expired_oauth(at, touched);
        self.drop_expired_api_keys(at, touched);
        self.drop_expired_identity(at, touched);
        // Every event goes to the view that owns it: a new event is a compile error here
        // until it is routed.
        match event {
            Event::AccountRegistered { .. }
            | Event::PasswordChanged { .. }
            | Event::PasswordRehashed { .. }
            | Event::AccountDisabled { .. }
            | Event::AccountEnabled { .. }
            | Event::AccountImported { .. }
            | Event::PasswordReset { .. }
            | Event::LoginFailed { .. }
            | Event::UnknownAccountLoginFailed { .. }
            | Event::RegistrationAttempted { .. }
            | Event::SessionStarted { .. }
            | Event::SessionTouched { .. }
            | Event::SessionEnded { .. } => self.apply_account(at, event, touched)?,
            Event::SigningKeyAdded { .. }
            | Event::SigningKeyRetired { .. }
            | Event::RefreshFamilyStarted { .. }
            | Event::RefreshTokenRotated { .. }
            | Event::RefreshTokenReused { .. }
            | Event::RefreshFamilyRevoked { .. }
            | Event::AccessTokenRevoked { .. }
            | Event::AccountSignedOutEverywhere { .. } => self.apply_token(at, event, touched)?,
            Event::TotpEnrolmentStarted { .. }
            | Event::TotpEnabled { .. }
            | Event::TotpStepAccepted { .. }
            | Event::BackupCodeUsed { .. }
            | Event::BackupCodesReplaced { .. }
            | Event::TotpDisabled { .. }
            | Event::MfaChallengeStarted { .. }
            | Event::MfaCodeFailed { .. }
            | Event::MfaChallengePassed { .. } => self.apply_mfa(at, event, touched)?,
            Event::ClientRegistered { .. }
            | Event::ClientSecretRotated { .. }
            | Event::ClientRemoved { .. }
            | Event::ConsentGranted { .. }
            | Event::GrantRevoked { .. }
            | Event::AuthorizationCodeIssued { .. }
            | Event::AuthorizationCodeRedeemed { .. }
            | Event::AuthorizationCodeReplayed { .. }
            | Event::DeviceAuthorizationStarted { .. }
            | Event::DeviceCodePolled { .. }
            | Event::DeviceUserCodeFailed { .. }
            | Event::DeviceAuthorizationApproved { .. }
            | Event::DeviceAuthorizationDenied { .. }
            | Event::DeviceCodeRedeemed { .. }
            | Event::ClientAccessTokenRevoked { .. } => self.apply_oauth(at, event, touched)?,
            Event::ApiKeyCreated { .. }
            | Event::ApiKeyRotated { .. }
            | Event::ApiKeyRevoked { .. }
            | Event::ApiKeyExpiryWarned { .. }
            | Event::ApiKeyUsed { .. } => self.apply_api_key(at, event, touched)?,
            // Only the legacy view below keeps it.
            Event::LegacyCredentialRetired { .. } => {}
            Event::ExternalAccountCreated { .. }
            | Event::ExternalIdentityLinked { .. }
            | Event::ExternalIdentityUnlinked { .. }
            | Event::ExternalSignInRecorded { .. } => self.apply_identity(at, event, touched)?,
            Event::WebauthnCredentialRegistered { .. }
            | Event::WebauthnCredentialUsed { .. }
            | Event::WebauthnCounterRegressed { .. }
            | Event::WebauthnCredentialRemoved { .. } => self.apply_webauthn(at, event, touched)?,
        }
        // The legacy view follows the credential events the account view applied.
        self.apply_legacy(at, event, touched)?;
        // The throttle view counts failures and successes the other views recorded.
        self.count_strikes(at, event, touched);
        Ok(())
    }

    /// Folds an account or session event (routed here by [`Views::apply`]).
    fn apply_account(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let fail = ApplyError::about(event);
        match event {
            Event::AccountRegistered {
                account,
                username,
                email,
                password_hash,
            }
            | Event::AccountImported {
                account,
                username,
                email,
                password_hash,
                ..
            } => {
                self.insert_account(
                    at,
                    *account,
                    username,
                    email,
                    password_hash.clone(),
                    touched,
                )
                .map_err(|why| fail(&why))?;
            }
            Event::PasswordChanged {
                account,
                password_hash,
            }
            | Event::PasswordRehashed {
                account,
                password_hash,
            }
            | Event::PasswordReset {
                account,
                password_hash,
                ..
            } => {
                let a = self
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| fail("unknown account"))?;
                a.password_hash = password_hash.clone();
                let changed = matches!(
                    event,
                    Event::PasswordChanged { .. } | Event::PasswordReset { .. }
                );
                if changed {
                    a.password_changed_at = at;
                }
                touched.push(ViewKey::Account(*account));
                if changed {
                    self.set_not_before(*account, at, touched);
                }
            }
            Event::AccountDisabled { account, .. } => {
                let a = self
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| fail("unknown account"))?;
                a.disabled = true;
                touched.push(ViewKey::Account(*account));
                self.set_not_before(*account, at, touched);
            }
            Event::AccountEnabled { account, .. } => {
                // The not-before time set when it was disabled stays: tokens issued before
                // the account was disabled must not come back to life.
                let a = self
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| fail("unknown account"))?;
                a.disabled = false;
                touched.push(ViewKey::Account(*account));
            }
            Event::LoginFailed { account, .. } => {
                self.accounts
                    .get(account)
                    .ok_or_else(|| fail("unknown account"))?;
            }
            // Facts about an address only: the throttle view counts them.
            Event::UnknownAccountLoginFailed { .. } | Event::RegistrationAttempted { .. } => {}
            Event::SessionStarted {
                session,
                account,
                secret_digest,
                idle_timeout_ms,
                expires_at,
            } => {
                if !self.accounts.contains_key(account) || self.sessions.contains_key(session) {
                    return Err(fail("unknown account or duplicate session id"));
                }
                if self.by_digest.contains_key(secret_digest) {
                    return Err(fail("duplicate session secret digest"));
                }
                self.insert_session(SessionView {
                    id: *session,
                    account: *account,
                    secret_digest: *secret_digest,
                    created_at: at,
                    last_seen_at: at,
                    idle_timeout_ms: *idle_timeout_ms,
                    expires_at: *expires_at,
                });
                touched.push(ViewKey::Session(*session));
            }
            Event::SessionTouched { session } => {
                // In place: only the deadline index moves (replay applies many of these).
                let s = self
                    .sessions
                    .get_mut(session)
                    .ok_or_else(|| fail("unknown or expired session"))?;
                self.by_deadline.remove(&(s.deadline(), s.id));
                s.last_seen_at = at;
                self.by_deadline.insert((s.deadline(), s.id));
                touched.push(ViewKey::Session(*session));
            }
            Event::SessionEnded { session, .. } => {
                self.remove_session(session, touched)
                    .ok_or_else(|| fail("unknown or expired session"))?;
            }
            _ => return Err(fail("not an account or session event")),
        }
        Ok(())
    }

    /// Creates an account record and its username (a registration, an import, or a first
    /// external sign-in).
    pub(crate) fn insert_account(
        &mut self,
        at: Timestamp,
        account: AccountId,
        username: &str,
        email: &Option<String>,
        password_hash: crate::password::PasswordHash,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), String> {
        let key = username_key(username).map_err(|e| e.to_string())?;
        if self.usernames.contains_key(&key) || self.accounts.contains_key(&account) {
            return Err("username or account id already registered".into());
        }
        self.usernames.insert(key.clone(), account);
        let view = AccountView {
            id: account,
            username: username.to_owned(),
            email: email.clone(),
            password_hash,
            disabled: false,
            created_at: at,
            password_changed_at: at,
        };
        self.index_email(&view);
        self.accounts.insert(account, view);
        touched.push(ViewKey::Username(key));
        touched.push(ViewKey::Account(account));
        Ok(())
    }

    /// Checks that the derived indexes agree with the records. Cheap enough for tests and
    /// the simulator after every step; the writer runs it in debug builds.
    pub fn check_invariants(&self) -> Result<(), String> {
        crate::invariant::check(self)
    }

    /// Checks only the records under `keys` and their index entries: what one batch touched.
    /// Cheap (proportional to the batch), so the writer runs it after every batch.
    pub fn check_records(&self, keys: &[ViewKey]) -> Result<(), String> {
        crate::invariant::check_records(self, keys)
    }
}
