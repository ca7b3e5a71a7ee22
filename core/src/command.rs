//! Commands: what a caller asks for, in the imperative, grouped by domain.
//!
//! Each use case is a type of its own (in its domain's module) implementing
//! [`crate::Decide`] with its own reply type; adapters that run one use case use it directly.
//! [`Command`] gathers them, one enum per domain, for drivers that run a mix (the simulator,
//! the test workload, property tests). Commands that need argon2 work are built by
//! [`crate::usecase`] so that the serial writer never hashes.

use crate::password::{PasswordHash, Verification};
use crate::{AccountId, Decide};

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
    /// Whether the password matched.
    pub outcome: Verification,
    /// A fresh hash under the current parameters, made when the stored one was stale.
    pub rehash: Option<PasswordHash>,
}

/// Any command, by domain. Build one with `.into()` from a use case's command type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Accounts and passwords ([`crate::account`]).
    Account(AccountCommand),
    /// Logins and cookie sessions ([`crate::session`]).
    Session(SessionCommand),
    /// Refresh families and revocation ([`crate::refresh`], [`crate::blocklist`]).
    Token(TokenCommand),
    /// The signing-key set ([`crate::signing_key`]).
    Key(KeyCommand),
    /// TOTP, backup codes and the login challenge ([`crate::mfa`]).
    Mfa(MfaCommand),
    /// OAuth clients, codes, device authorizations and grants ([`crate::oauth`]).
    OAuth(OAuthCommand),
    /// API keys ([`crate::apikey`]).
    ApiKey(ApiKeyCommand),
    /// The legacy password migration ([`crate::migration`]).
    Migration(MigrationCommand),
    /// External identities ([`crate::identity`]).
    Identity(IdentityCommand),
    /// WebAuthn credentials and logins with them ([`crate::webauthn`]).
    Webauthn(WebauthnCommand),
}

/// Declares a domain's command enum, its `kind`, and the `From` conversions into
/// [`Command`] for the enum and each use case's type.
macro_rules! domain {
    ($(#[$m:meta])* $name:ident => $top:ident {
        $($(#[$vm:meta])* $variant:ident($ty:ty),)*
    }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vm])* $variant($ty),)*
        }

        impl $name {
            /// The command's name, for metrics and logs.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(c) => c.kind(),)*
                }
            }
        }

        impl From<$name> for Command {
            fn from(c: $name) -> Self {
                Self::$top(c)
            }
        }

        $(impl From<$ty> for Command {
            fn from(c: $ty) -> Self {
                Self::$top($name::$variant(c))
            }
        })*
    };
}

domain! {
    /// Accounts and passwords.
    AccountCommand => Account {
        /// Create an account.
        Register(crate::account::Register),
        /// Change the password, proven with the current one.
        ChangePassword(crate::account::ChangePassword),
        /// Disable an account (an operator's action).
        Disable(crate::account::DisableAccount),
        /// Enable a disabled account again (an operator's action).
        Enable(crate::account::EnableAccount),
    }
}

domain! {
    /// Logins and cookie sessions.
    SessionCommand => Session {
        /// A password login.
        Login(crate::session::Login),
        /// Record a session's use when due.
        Touch(crate::session::TouchSession),
        /// End the session a request came through.
        Logout(crate::session::Logout),
        /// End one of the holder's own sessions.
        Revoke(crate::session::RevokeSession),
    }
}

domain! {
    /// Refresh families, revocation, signing out.
    TokenCommand => Token {
        /// Spend a refresh token for new tokens.
        Refresh(crate::refresh::RefreshTokens),
        /// RFC 7009 revocation of a refresh token.
        RevokeRefreshToken(crate::refresh::RevokeRefreshToken),
        /// RFC 7009 revocation of an access token.
        RevokeAccessToken(crate::blocklist::RevokeAccessToken),
        /// Logout in token mode.
        LogoutFamily(crate::refresh::LogoutFamily),
        /// End every session and family of an account.
        SignOutEverywhere(crate::blocklist::SignOutEverywhere),
    }
}

domain! {
    /// The signing-key set.
    KeyCommand => Key {
        /// Add a signing key.
        Add(crate::signing_key::AddSigningKey),
    }
}

domain! {
    /// TOTP, backup codes and the login challenge.
    MfaCommand => Mfa {
        /// Start TOTP enrolment.
        StartTotpEnrolment(crate::mfa::StartTotpEnrolment),
        /// Confirm the pending enrolment.
        ConfirmTotp(crate::mfa::ConfirmTotp),
        /// Answer a login's MFA challenge.
        AnswerChallenge(crate::mfa::AnswerMfaChallenge),
        /// Replace the backup codes.
        ReplaceBackupCodes(crate::mfa::ReplaceBackupCodes),
        /// Turn MFA off, proven with a code.
        DisableTotp(crate::mfa::DisableTotp),
        /// An operator turns MFA off.
        Reset(crate::mfa::ResetMfa),
    }
}

domain! {
    /// OAuth clients, codes, device authorizations and grants.
    OAuthCommand => OAuth {
        /// Register a client.
        RegisterClient(crate::oauth::RegisterClient),
        /// Rotate a client's secret.
        RotateClientSecret(crate::oauth::RotateClientSecret),
        /// Remove a client.
        RemoveClient(crate::oauth::RemoveClient),
        /// Issue an authorization code.
        IssueCode(crate::oauth::IssueAuthorizationCode),
        /// Exchange an authorization code.
        ExchangeCode(crate::oauth::ExchangeAuthorizationCode),
        /// Start a device authorization.
        StartDevice(crate::oauth::StartDeviceAuthorization),
        /// A device polls.
        PollDevice(crate::oauth::PollDeviceCode),
        /// A user enters a user code.
        EnterUserCode(crate::oauth::EnterUserCode),
        /// A user approves or denies a device.
        DecideDevice(crate::oauth::DecideDeviceAuthorization),
        /// A user revokes a grant.
        RevokeGrant(crate::oauth::RevokeGrant),
        /// A client revokes one of its client-credentials tokens.
        RevokeClientToken(crate::oauth::RevokeClientToken),
    }
}

domain! {
    /// API keys.
    ApiKeyCommand => ApiKey {
        /// Create a key.
        Create(crate::apikey::CreateApiKey),
        /// Rotate a key.
        Rotate(crate::apikey::RotateApiKey),
        /// The holder revokes a key.
        Revoke(crate::apikey::RevokeApiKey),
        /// An operator revokes a key by what a scanner found.
        RevokeByPrefix(crate::apikey::RevokeApiKeyByPrefix),
        /// A secret-scanning alert.
        ReportLeaked(crate::apikey::ReportLeakedApiKeys),
        /// Record folded usage counters.
        RecordUsage(crate::apikey::RecordApiKeyUsage),
        /// Record expiry warnings that are due.
        WarnExpiring(crate::apikey::WarnExpiringApiKeys),
    }
}

domain! {
    /// The legacy password migration.
    MigrationCommand => Migration {
        /// Import an account with its legacy credential (an operator's action).
        Import(crate::migration::ImportAccount),
        /// Retire inactive legacy credentials and issue reset tokens (an operator's action).
        Retire(crate::migration::RetireLegacyCredentials),
        /// Set a new password with a reset token.
        ResetPassword(crate::migration::ResetPassword),
    }
}

domain! {
    /// External identities.
    IdentityCommand => Identity {
        /// Sign in with an external identity.
        SignIn(crate::identity::ExternalSignIn),
        /// Link an external identity to a signed-in account.
        Link(crate::identity::LinkIdentity),
        /// Unlink an external identity.
        Unlink(crate::identity::UnlinkIdentity),
    }
}

domain! {
    /// WebAuthn credentials and logins with them.
    WebauthnCommand => Webauthn {
        /// Register a credential.
        Register(crate::webauthn::RegisterCredential),
        /// Remove a credential.
        Remove(crate::webauthn::RemoveCredential),
        /// A passwordless login with a passkey.
        Login(crate::webauthn::LoginWithPasskey),
        /// Answer a login's MFA challenge with a credential.
        AnswerChallenge(crate::webauthn::AnswerMfaWithCredential),
    }
}

impl Command {
    /// The command's name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        Decide::kind(self)
    }
}
