//! Expected refusals: what a caller did that the rules do not allow.
//!
//! Each has a stable numeric code (never reused, never renumbered) and an HTTP mapping in the
//! http crate. A rejection is not an error of the system: it can come with events (a failed
//! login is recorded) and it is safe to show to the caller.

use crate::account::UsernameProblem;
use crate::password::PasswordProblem;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("that username is taken")]
    UsernameTaken,
    #[error("{0}")]
    InvalidUsername(UsernameProblem),
    #[error("the e-mail address is not valid")]
    InvalidEmail,
    #[error("the password does not meet the policy")]
    WeakPassword(Vec<PasswordProblem>),
    /// Unknown username, wrong password and disabled account all look like this, on purpose.
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("not authenticated, or the session has ended")]
    Unauthenticated,
    #[error("no such session")]
    SessionNotFound,
    #[error("no such account")]
    AccountNotFound,
}

impl Rejection {
    /// The stable code: 1xxx accounts, 2xxx credentials, 3xxx sessions.
    pub fn code(&self) -> u16 {
        match self {
            Self::UsernameTaken => 1001,
            Self::InvalidUsername(_) => 1002,
            Self::InvalidEmail => 1003,
            Self::WeakPassword(_) => 1004,
            Self::AccountNotFound => 1005,
            Self::InvalidCredentials => 2001,
            Self::Unauthenticated => 3001,
            Self::SessionNotFound => 3002,
        }
    }

    /// A short stable slug, used in problem `type` URIs.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::UsernameTaken => "username-taken",
            Self::InvalidUsername(_) => "invalid-username",
            Self::InvalidEmail => "invalid-email",
            Self::WeakPassword(_) => "weak-password",
            Self::AccountNotFound => "account-not-found",
            Self::InvalidCredentials => "invalid-credentials",
            Self::Unauthenticated => "unauthenticated",
            Self::SessionNotFound => "session-not-found",
        }
    }
}
