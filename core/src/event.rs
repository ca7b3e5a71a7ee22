//! Events: the facts the log keeps. A public, versioned format.
//!
//! Rules (docs/events.md repeats them): never reorder, remove or change the meaning or
//! encoding of a released variant or field; add new variants at the end; a change of shape is
//! a new variant or an upcaster in the storage codec. Every variant has a golden-bytes test in
//! `storage::codec`. Names are past tense. The time of an event is the envelope's
//! `recorded_at`, so variants carry only the deadlines a decision computed from policy.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::password::PasswordHash;
use crate::secret::SecretDigest;
use crate::{AccountId, SessionId, StreamId, Timestamp};

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
}

/// Why a login failed. Only failures against an existing account are recorded: the account
/// stream is where they matter, and recording unknown usernames would log mistyped passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginFailure {
    WrongPassword,
    AccountDisabled,
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
    ];

    /// The stream the event belongs to.
    pub fn stream(&self) -> StreamId {
        match self {
            Self::AccountRegistered { account, .. }
            | Self::PasswordChanged { account, .. }
            | Self::PasswordRehashed { account, .. }
            | Self::AccountDisabled { account, .. }
            | Self::LoginFailed { account, .. } => account.stream(),
            Self::UnknownAccountLoginFailed { .. } => StreamId(UNKNOWN_ACCOUNT_STREAM.to_owned()),
            Self::SessionStarted { session, .. }
            | Self::SessionTouched { session }
            | Self::SessionEnded { session, .. } => session.stream(),
        }
    }
}

/// The stream of failed logins that named no account.
pub const UNKNOWN_ACCOUNT_STREAM: &str = "login-unknown";

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
