//! Events: the facts the log keeps. A public, versioned format.
//!
//! Rules (docs/events.md repeats them): never reorder, remove or change the meaning or
//! encoding of a released variant or field; add new variants at the end; a change of shape is
//! a new variant or an upcaster in the storage codec. Every variant has a golden-bytes test in
//! `storage::codec`. Names are past tense. The time of an event is the envelope's
//! `recorded_at`, so variants carry only the deadlines a decision computed from policy.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::mfa::{BackupCodeDigest, SealedSecret};
use crate::password::PasswordHash;
use crate::secret::SecretDigest;
use crate::{AccountId, ChallengeId, FamilyId, LoginMode, SessionId, StreamId, Timestamp, TokenId};

/// Who asked for a change, when it was not the account holder through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// The account holder, authenticated.
    Holder,
    /// An operator at the command line; the name is what they gave (`--operator`).
    Operator { name: String },
}

/// Why a session ended before its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEndReason {
    LoggedOut,
    /// Deleted by its holder from another session (DELETE /v1/sessions/{id}).
    Revoked,
    PasswordChanged,
    AccountDisabled,
    /// Replaced by a fresh id after a privilege change.
    Rotated,
    /// A refresh token of a family bound to this session was reused (added with tokens).
    TokenReused,
    /// The holder or an operator signed the account out everywhere (added with tokens).
    SignedOutEverywhere,
    /// MFA was turned off by its holder or reset by an operator (added with MFA).
    MfaDisabled,
}

/// Why a refresh family was revoked before its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FamilyRevokeReason {
    /// Its holder logged out.
    LoggedOut,
    /// A token of it was revoked (RFC 7009), or its session was ended.
    Revoked,
    PasswordChanged,
    AccountDisabled,
    SignedOutEverywhere,
    /// MFA was turned off by its holder or reset by an operator (added with MFA).
    MfaDisabled,
}

/// Why a login failed. Only failures against an existing account are recorded: the account
/// stream is where they matter, and recording unknown usernames would log mistyped passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginFailure {
    WrongPassword,
    AccountDisabled,
    /// Refused unchecked: the account was throttled by earlier failures (added with MFA and
    /// throttling). Answered like a wrong password, and not counted as a failure again.
    Throttled,
}

/// Every fact Tessera records. Variant order is part of the encoding: append only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    AccountRegistered {
        account: AccountId,
        username: String,
        email: Option<String>,
        password_hash: PasswordHash,
    },
    PasswordChanged {
        account: AccountId,
        password_hash: PasswordHash,
    },
    /// The same password, re-hashed because the policy's argon2 parameters changed.
    PasswordRehashed {
        account: AccountId,
        password_hash: PasswordHash,
    },
    AccountDisabled {
        account: AccountId,
        by: Actor,
    },
    /// `client` is the caller's address as the HTTP adapter saw it, for throttling.
    LoginFailed {
        account: AccountId,
        reason: LoginFailure,
        client: Option<IpAddr>,
    },
    /// A login named no account. The username is not recorded: people type passwords into
    /// username fields. Recording the attempt at all keeps its cost (one durable append) the
    /// same as a wrong password's, so the answer's timing does not reveal which accounts exist.
    UnknownAccountLoginFailed {
        client: Option<IpAddr>,
    },
    SessionStarted {
        session: SessionId,
        account: AccountId,
        secret_digest: SecretDigest,
        idle_timeout_ms: u64,
        expires_at: Timestamp,
    },
    SessionTouched {
        session: SessionId,
    },
    SessionEnded {
        session: SessionId,
        reason: SessionEndReason,
    },
    /// A signing key joined the key set and signs from now on. `kid` is the RFC 7638
    /// thumbprint of `public_key`; the private key is kept outside the log.
    SigningKeyAdded {
        kid: String,
        public_key: [u8; 32],
    },
    /// A key stopped signing (a newer one was added). It stays published for verification
    /// until `unpublish_at`, when every token it signed has expired.
    SigningKeyRetired {
        kid: String,
        unpublish_at: Timestamp,
    },
    /// A login in token mode started a refresh family with its first refresh token.
    RefreshFamilyStarted {
        family: FamilyId,
        account: AccountId,
        /// The session the family belongs to, if any: ending one ends the other.
        session: Option<SessionId>,
        /// The OAuth client it was issued to, if any (RFC 6749 §6 binds refresh to client).
        client_id: Option<String>,
        scope: Option<String>,
        token_digest: SecretDigest,
        token_expires_at: Timestamp,
        /// The family's absolute deadline.
        expires_at: Timestamp,
    },
    /// A refresh token was spent and replaced. `grace` says the presented token had already
    /// been rotated, within the policy's grace window: the successor issued then is spent
    /// unused, and this one replaces it.
    RefreshTokenRotated {
        family: FamilyId,
        presented_digest: SecretDigest,
        token_digest: SecretDigest,
        token_expires_at: Timestamp,
        grace: bool,
    },
    /// A spent refresh token was presented: the family is revoked. `since_rotation_ms` is how
    /// long after its rotation it came back, `successor_used` whether the token that replaced
    /// it had been presented too: a short delay with an unused successor looks like a lost
    /// response, a used successor like theft (RFC 9700 §4.14.2).
    RefreshTokenReused {
        family: FamilyId,
        presented_digest: SecretDigest,
        generation: u32,
        since_rotation_ms: u64,
        successor_used: bool,
    },
    RefreshFamilyRevoked {
        family: FamilyId,
        reason: FamilyRevokeReason,
    },
    /// One access token was revoked; the blocklist keeps its `jti` until `expires_at`.
    AccessTokenRevoked {
        jti: TokenId,
        account: AccountId,
        expires_at: Timestamp,
    },
    /// Every token issued to the account before now stops working (logout everywhere).
    AccountSignedOutEverywhere {
        account: AccountId,
        by: Actor,
    },
    /// TOTP enrolment began: the secret, sealed (see `mfa::seal`), pending until a code
    /// confirms it or `expires_at` passes.
    TotpEnrolmentStarted {
        account: AccountId,
        sealed_secret: SealedSecret,
        expires_at: Timestamp,
    },
    /// A code confirmed the pending enrolment: MFA is on. `step` is the accepted TOTP step;
    /// `backup_codes` the keyed hashes of the first set of backup codes.
    TotpEnabled {
        account: AccountId,
        step: u64,
        backup_codes: Vec<BackupCodeDigest>,
    },
    /// A TOTP code was accepted for `step`: that step and every earlier one are spent
    /// (RFC 6238 §5.2).
    TotpStepAccepted {
        account: AccountId,
        step: u64,
    },
    /// A backup code was spent.
    BackupCodeUsed {
        account: AccountId,
        code: BackupCodeDigest,
    },
    /// A new set of backup codes replaced the old one.
    BackupCodesReplaced {
        account: AccountId,
        backup_codes: Vec<BackupCodeDigest>,
    },
    /// MFA is off: TOTP, a pending enrolment and backup codes are gone. `by` says whether
    /// the holder (with a valid code) or an operator (a reset) did it.
    TotpDisabled {
        account: AccountId,
        by: Actor,
    },
    /// A right password for an account with MFA on opened a challenge, answered with the
    /// bearer secret whose digest is `token_digest`, in the login's `mode`.
    MfaChallengeStarted {
        challenge: ChallengeId,
        account: AccountId,
        token_digest: SecretDigest,
        mode: LoginMode,
        attempts_max: u32,
        expires_at: Timestamp,
    },
    /// A wrong, replayed or spent code: in answer to `challenge`, or (when `None`) to an
    /// authenticated MFA change. Counts toward the account's throttle.
    MfaCodeFailed {
        account: AccountId,
        challenge: Option<ChallengeId>,
        client: Option<IpAddr>,
    },
    /// A challenge was answered right; the login completes in the same decision.
    MfaChallengePassed {
        challenge: ChallengeId,
    },
}

impl Event {
    /// The variant's name, as `tessera replay` prints it and docs/events.md lists it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccountRegistered { .. } => "AccountRegistered",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::PasswordRehashed { .. } => "PasswordRehashed",
            Self::AccountDisabled { .. } => "AccountDisabled",
            Self::LoginFailed { .. } => "LoginFailed",
            Self::UnknownAccountLoginFailed { .. } => "UnknownAccountLoginFailed",
            Self::SessionStarted { .. } => "SessionStarted",
            Self::SessionTouched { .. } => "SessionTouched",
            Self::SessionEnded { .. } => "SessionEnded",
            Self::SigningKeyAdded { .. } => "SigningKeyAdded",
            Self::SigningKeyRetired { .. } => "SigningKeyRetired",
            Self::RefreshFamilyStarted { .. } => "RefreshFamilyStarted",
            Self::RefreshTokenRotated { .. } => "RefreshTokenRotated",
            Self::RefreshTokenReused { .. } => "RefreshTokenReused",
            Self::RefreshFamilyRevoked { .. } => "RefreshFamilyRevoked",
            Self::AccessTokenRevoked { .. } => "AccessTokenRevoked",
            Self::AccountSignedOutEverywhere { .. } => "AccountSignedOutEverywhere",
            Self::TotpEnrolmentStarted { .. } => "TotpEnrolmentStarted",
            Self::TotpEnabled { .. } => "TotpEnabled",
            Self::TotpStepAccepted { .. } => "TotpStepAccepted",
            Self::BackupCodeUsed { .. } => "BackupCodeUsed",
            Self::BackupCodesReplaced { .. } => "BackupCodesReplaced",
            Self::TotpDisabled { .. } => "TotpDisabled",
            Self::MfaChallengeStarted { .. } => "MfaChallengeStarted",
            Self::MfaCodeFailed { .. } => "MfaCodeFailed",
            Self::MfaChallengePassed { .. } => "MfaChallengePassed",
        }
    }

    /// Every variant name, for filters and documentation checks.
    pub const KINDS: &'static [&'static str] = &[
        "AccountRegistered",
        "PasswordChanged",
        "PasswordRehashed",
        "AccountDisabled",
        "LoginFailed",
        "UnknownAccountLoginFailed",
        "SessionStarted",
        "SessionTouched",
        "SessionEnded",
        "SigningKeyAdded",
        "SigningKeyRetired",
        "RefreshFamilyStarted",
        "RefreshTokenRotated",
        "RefreshTokenReused",
        "RefreshFamilyRevoked",
        "AccessTokenRevoked",
        "AccountSignedOutEverywhere",
        "TotpEnrolmentStarted",
        "TotpEnabled",
        "TotpStepAccepted",
        "BackupCodeUsed",
        "BackupCodesReplaced",
        "TotpDisabled",
        "MfaChallengeStarted",
        "MfaCodeFailed",
        "MfaChallengePassed",
    ];

    /// The stream the event belongs to.
    pub fn stream(&self) -> StreamId {
        match self {
            Self::AccountRegistered { account, .. }
            | Self::PasswordChanged { account, .. }
            | Self::PasswordRehashed { account, .. }
            | Self::AccountDisabled { account, .. }
            | Self::LoginFailed { account, .. }
            | Self::AccessTokenRevoked { account, .. }
            | Self::AccountSignedOutEverywhere { account, .. }
            | Self::TotpEnrolmentStarted { account, .. }
            | Self::TotpEnabled { account, .. }
            | Self::TotpStepAccepted { account, .. }
            | Self::BackupCodeUsed { account, .. }
            | Self::BackupCodesReplaced { account, .. }
            | Self::TotpDisabled { account, .. }
            | Self::MfaCodeFailed {
                account,
                challenge: None,
                ..
            } => account.stream(),
            Self::MfaChallengeStarted { challenge, .. }
            | Self::MfaCodeFailed {
                challenge: Some(challenge),
                ..
            }
            | Self::MfaChallengePassed { challenge } => challenge.stream(),
            Self::UnknownAccountLoginFailed { .. } => StreamId(UNKNOWN_ACCOUNT_STREAM.to_owned()),
            Self::SessionStarted { session, .. }
            | Self::SessionTouched { session }
            | Self::SessionEnded { session, .. } => session.stream(),
            Self::SigningKeyAdded { .. } | Self::SigningKeyRetired { .. } => {
                StreamId(SIGNING_KEYS_STREAM.to_owned())
            }
            Self::RefreshFamilyStarted { family, .. }
            | Self::RefreshTokenRotated { family, .. }
            | Self::RefreshTokenReused { family, .. }
            | Self::RefreshFamilyRevoked { family, .. } => family.stream(),
        }
    }
}

/// The stream of failed logins that named no account.
pub const UNKNOWN_ACCOUNT_STREAM: &str = "login-unknown";

/// The stream of the signing-key set (one aggregate).
pub const SIGNING_KEYS_STREAM: &str = "signing-keys";

/// An event a decision wants appended, not yet in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub stream: StreamId,
    pub event: Event,
}

impl From<Event> for Pending {
    fn from(event: Event) -> Self {
        Self {
            stream: event.stream(),
            event,
        }
    }
}
