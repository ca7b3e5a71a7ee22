//! Expected refusals: what a caller did that the rules do not allow.
//!
//! Each has a stable numeric code (never reused, never renumbered) and an HTTP mapping in the
//! http crate. A rejection is not an error of the system: it can come with events (a failed
//! login is recorded) and it is safe to show to the caller.

use crate::account::UsernameProblem;
use crate::password::PasswordProblem;

/// A refusal: the command broke a rule, and the caller is told which (see [`Rejection::code`]
/// for the stable numbers). Each variant's message is safe to show to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Another account already has this username, compared case-insensitively.
    #[error("that username is taken")]
    UsernameTaken,
    /// The username has the wrong length or characters; the problem says which.
    #[error("{0}")]
    InvalidUsername(UsernameProblem),
    /// The e-mail address is not even plausibly an address (one `@`, a dot in the domain,
    /// no spaces, at most 254 bytes).
    #[error("the e-mail address is not valid")]
    InvalidEmail,
    /// The new password breaks the password policy; every problem found is listed.
    #[error("the password does not meet the policy")]
    WeakPassword(Vec<PasswordProblem>),
    /// Unknown username, wrong password and disabled account all look like this, on purpose.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The request carried no credential the server accepts: none, one it never issued, one
    /// whose session or family is no longer live, or one whose account is disabled.
    #[error("not authenticated, or the session has ended")]
    Unauthenticated,
    /// The session to end is not one of the caller's live sessions (someone else's is
    /// answered the same way).
    #[error("no such session")]
    SessionNotFound,
    /// No account has this id (operator commands, and commands naming an account).
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
    /// A TOTP code that is not six digits, or a backup code of the wrong shape. Nothing is
    /// spent: such a string cannot be right. HTTP 422.
    #[error("the code is not a six-digit TOTP code or a backup code")]
    MfaCodeMalformed,
    /// A wrong TOTP code or an unknown or spent backup code. In answer to a challenge,
    /// `attempts_left` says how many more the challenge takes. HTTP 401.
    #[error("the code is wrong")]
    MfaCodeInvalid {
        /// Wrong answers the challenge still takes; `None` outside a challenge.
        attempts_left: Option<u32>,
    },
    /// A TOTP code for a step already accepted (RFC 6238 §5.2): wait for the next code.
    /// Counts as a wrong attempt. HTTP 401.
    #[error("the code was already used; wait for the next one")]
    MfaCodeReplayed {
        /// Wrong answers the challenge still takes; `None` outside a challenge.
        attempts_left: Option<u32>,
    },
    /// An `mfa_token` that is unknown, expired, already answered, or whose account no longer
    /// has MFA on or is disabled. HTTP 401; log in again.
    #[error("the MFA challenge is unknown or has expired; log in again")]
    MfaChallengeInvalid,
    /// The challenge took its last wrong attempt and accepts nothing more, the right code
    /// included. HTTP 401; log in again.
    #[error("too many wrong codes for this login; log in again")]
    MfaChallengeExhausted,
    /// Confirming, changing or disabling MFA that is not on (or not being enrolled).
    /// HTTP 409.
    #[error("MFA is not enrolled")]
    MfaNotEnrolled,
    /// Enrolling when MFA is already on: disable it first. HTTP 409.
    #[error("MFA is already on")]
    MfaAlreadyEnabled,
    /// Enrolling while an enrolment is pending: confirm it, or start again once it expires
    /// in `retry_after_secs`. HTTP 409.
    #[error("a TOTP enrolment is already pending; confirm it or wait for it to expire")]
    MfaEnrolmentPending {
        /// Seconds until the pending enrolment expires, rounded up, at least 1.
        retry_after_secs: u64,
    },
    /// The TOTP secret was sealed under a key this server does not hold. An operator
    /// problem, not the caller's: nothing is spent. HTTP 503.
    #[error("MFA is unavailable: the sealing key is missing")]
    MfaKeysUnavailable,
    /// Too many failures: try again after `retry_after_secs`. HTTP 429 + Retry-After.
    #[error("too many failed attempts; retry later")]
    Throttled {
        /// Seconds to wait before trying again, rounded up, at least 1.
        retry_after_secs: u64,
    },
    /// A sensitive action needs an authentication more recent than the policy's
    /// `session.reauth_window_secs`: log in again, or repeat the request with the password
    /// (and a second-factor code when MFA is on). HTTP 403.
    #[error("this action needs a recent authentication; log in again or give the password")]
    ReauthenticationRequired,
    /// A password reset token that was never issued, was already spent, was replaced by a
    /// newer one or has expired: all look alike (added with the legacy migration). HTTP 400.
    #[error("the reset token is invalid or expired; ask for a new one")]
    ResetTokenInvalid,
}

impl Rejection {
    /// The stable code: 1xxx accounts, 2xxx credentials, 3xxx sessions, 4xxx tokens, 5xxx
    /// MFA and throttling.
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
            Self::MfaCodeMalformed => 5001,
            Self::MfaCodeInvalid { .. } => 5002,
            Self::MfaCodeReplayed { .. } => 5003,
            Self::MfaChallengeInvalid => 5004,
            Self::MfaChallengeExhausted => 5005,
            Self::MfaNotEnrolled => 5006,
            Self::MfaAlreadyEnabled => 5007,
            Self::MfaEnrolmentPending { .. } => 5008,
            Self::MfaKeysUnavailable => 5009,
            Self::Throttled { .. } => 5010,
            Self::ReauthenticationRequired => 3003,
            Self::ResetTokenInvalid => 2002,
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
            Self::MfaCodeMalformed => "mfa-code-malformed",
            Self::MfaCodeInvalid { .. } => "mfa-code-invalid",
            Self::MfaCodeReplayed { .. } => "mfa-code-replayed",
            Self::MfaChallengeInvalid => "mfa-challenge-invalid",
            Self::MfaChallengeExhausted => "mfa-challenge-exhausted",
            Self::MfaNotEnrolled => "mfa-not-enrolled",
            Self::MfaAlreadyEnabled => "mfa-already-enabled",
            Self::MfaEnrolmentPending { .. } => "mfa-enrolment-pending",
            Self::MfaKeysUnavailable => "mfa-unavailable",
            Self::Throttled { .. } => "throttled",
            Self::ReauthenticationRequired => "reauthentication-required",
            Self::ResetTokenInvalid => "reset-token-invalid",
        }
    }

    /// Seconds the caller should wait before retrying (HTTP `Retry-After`), if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Throttled { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
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
