//! Commands: what a caller asks for, in the imperative. Built by [`crate::prepare`] where
//! they need argon2 work, so that the serial writer never hashes.

use std::net::IpAddr;

use crate::mfa::{MfaAnswer, MfaKeys, TotpCode};
use crate::password::{PasswordHash, Verification};
use crate::secret::SecretDigest;
use crate::{AccountId, Actor, FamilyId, SessionId, Timestamp, TokenId};

/// How a successful login is delivered. Recorded in `MfaChallengeStarted`, so variant order
/// is part of the event format: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LoginMode {
    /// A `__Host-tessera_session` cookie.
    Session,
    /// An access token (claims to sign) and a refresh token, starting a refresh family.
    Token,
}

/// The outcome of checking a presented password, computed off the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordCheck {
    /// `None` when the username named no account (the decoy hash was checked instead).
    pub account: Option<AccountId>,
    /// The hash the password was checked against. If the account's hash differs by the time
    /// the writer decides, the password changed in between and the check counts for nothing.
    pub checked_hash: PasswordHash,
    pub outcome: Verification,
    /// A fresh hash under the current parameters, made when the stored one was stale.
    pub rehash: Option<PasswordHash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Register {
        username: String,
        email: Option<String>,
        password_hash: PasswordHash,
    },
    Login {
        check: PasswordCheck,
        mode: LoginMode,
        client: Option<IpAddr>,
    },
    /// Record that a session was used, if the last record is older than the touch interval.
    TouchSession {
        session: SessionId,
    },
    Logout {
        session: SessionId,
    },
    /// End one of the holder's own sessions.
    RevokeSession {
        account: AccountId,
        session: SessionId,
    },
    ChangePassword {
        check: PasswordCheck,
        new_hash: PasswordHash,
        /// The session the request came through: it survives, under a fresh id.
        current_session: Option<SessionId>,
        client: Option<IpAddr>,
    },
    DisableAccount {
        account: AccountId,
        by: Actor,
    },
    /// Spend a refresh token for new tokens. `presented` comes from
    /// [`crate::refresh::presented_digest`]; a string that is no refresh token never
    /// becomes a command (answer `invalid_grant` at once).
    RefreshTokens {
        presented: SecretDigest,
    },
    /// RFC 7009 revocation of a refresh token: revokes its family.
    RevokeRefreshToken {
        presented: SecretDigest,
    },
    /// RFC 7009 revocation of an access token, from its verified claims.
    RevokeAccessToken {
        jti: TokenId,
        account: AccountId,
        expires_at: Timestamp,
    },
    /// Logout in token mode: ends the family (the access token's `fam`) and its session.
    LogoutFamily {
        family: FamilyId,
    },
    /// Ends every session and family of the account and refuses every access token issued
    /// before now.
    SignOutEverywhere {
        account: AccountId,
        by: Actor,
    },
    /// Adds a signing key, which signs from now on; the current one is retired. Build it with
    /// [`crate::signing_key::Signer::add_command`].
    AddSigningKey {
        kid: String,
        public_key: [u8; 32],
    },
    /// Starts TOTP enrolment for the authenticated holder of `account`. See [`crate::mfa`].
    StartTotpEnrolment {
        account: AccountId,
        keys: MfaKeys,
    },
    /// Confirms the pending enrolment with a code from the app: MFA is on, and the reply
    /// carries the first backup codes.
    ConfirmTotp {
        account: AccountId,
        code: TotpCode,
        keys: MfaKeys,
        client: Option<IpAddr>,
    },
    /// Answers an MFA challenge. `presented` comes from
    /// [`crate::mfa::presented_challenge_digest`]; a string that is no `mfa_token` never
    /// becomes a command (answer [`crate::Rejection::MfaChallengeInvalid`] at once).
    AnswerMfaChallenge {
        presented: SecretDigest,
        answer: MfaAnswer,
        keys: MfaKeys,
        client: Option<IpAddr>,
    },
    /// Replaces the backup codes, proven with a TOTP code or a backup code.
    ReplaceBackupCodes {
        account: AccountId,
        answer: MfaAnswer,
        keys: MfaKeys,
        client: Option<IpAddr>,
    },
    /// Turns MFA off, proven with a TOTP code or a backup code, and ends every other
    /// session and refresh family of the account (the ones the request came through
    /// survive).
    DisableTotp {
        account: AccountId,
        answer: MfaAnswer,
        keys: MfaKeys,
        client: Option<IpAddr>,
        current_session: Option<SessionId>,
        current_family: Option<FamilyId>,
    },
    /// An operator turns MFA off for a user who lost their device; every session and family
    /// of the account ends.
    ResetMfa {
        account: AccountId,
        by: Actor,
    },
}

impl Command {
    /// The command's name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Register { .. } => "register",
            Self::Login { .. } => "login",
            Self::TouchSession { .. } => "touch_session",
            Self::Logout { .. } => "logout",
            Self::RevokeSession { .. } => "revoke_session",
            Self::ChangePassword { .. } => "change_password",
            Self::DisableAccount { .. } => "disable_account",
            Self::RefreshTokens { .. } => "refresh_tokens",
            Self::RevokeRefreshToken { .. } => "revoke_refresh_token",
            Self::RevokeAccessToken { .. } => "revoke_access_token",
            Self::LogoutFamily { .. } => "logout_family",
            Self::SignOutEverywhere { .. } => "sign_out_everywhere",
            Self::AddSigningKey { .. } => "add_signing_key",
            Self::StartTotpEnrolment { .. } => "start_totp_enrolment",
            Self::ConfirmTotp { .. } => "confirm_totp",
            Self::AnswerMfaChallenge { .. } => "answer_mfa_challenge",
            Self::ReplaceBackupCodes { .. } => "replace_backup_codes",
            Self::DisableTotp { .. } => "disable_totp",
            Self::ResetMfa { .. } => "reset_mfa",
        }
    }
}
