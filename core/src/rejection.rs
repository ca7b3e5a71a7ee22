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
    /// A refresh token that is unknown, expired, or of a revoked or expired family. OAuth
    /// `invalid_grant` (RFC 6749 §5.2).
    #[error("the refresh token is invalid, expired or revoked")]
    RefreshTokenInvalid,
    /// A refresh token presented after it was rotated: its whole family is now revoked.
    /// OAuth `invalid_grant`.
    #[error("the refresh token was already used; every token of its family is revoked")]
    RefreshTokenReused,
    /// A signing key whose kid is not the RFC 7638 thumbprint of its public key, or that is
    /// already in the key set.
    #[error("the signing key is invalid or already known")]
    SigningKeyInvalid,
}

impl Rejection {
    /// The stable code: 1xxx accounts, 2xxx credentials, 3xxx sessions, 4xxx tokens.
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
            Self::RefreshTokenInvalid => 4001,
            Self::RefreshTokenReused => 4002,
            Self::SigningKeyInvalid => 4003,
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
            Self::RefreshTokenInvalid => "refresh-token-invalid",
            Self::RefreshTokenReused => "refresh-token-reused",
            Self::SigningKeyInvalid => "signing-key-invalid",
        }
    }

    /// The RFC 6749 §5.2 error code for rejections a token endpoint can give.
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self {
            Self::RefreshTokenInvalid | Self::RefreshTokenReused | Self::InvalidCredentials => {
                Some("invalid_grant")
            }
            _ => None,
        }
    }
}
