//! `decide`: where a command becomes events and a reply.
//!
//! Cheap and serial: the argon2 work was done before (see [`crate::usecase`]). A decision reads
//! the views and the `Env`, and returns the events to append with the reply to give once they
//! are durable. Refusals that are facts (a wrong password) come with events.
//!
//! Each use case is a command type of its own with a reply type of its own ([`Decide`]), so
//! a driver that runs a login gets a [`crate::session::LoginReply`] back and has no arm to
//! write for replies a login never gives. The decisions live with their domain (accounts in
//! [`crate::account`], sessions in [`crate::session`], tokens in [`crate::refresh`] and
//! [`crate::blocklist`], keys in [`crate::signing_key`], MFA in [`crate::mfa`]); this module
//! keeps the dispatch of the heterogeneous [`Command`], one exhaustive match per domain.

use crate::account::Registered;
use crate::command::{
    AccountCommand, ApiKeyCommand, IdentityCommand, KeyCommand, MfaCommand, MigrationCommand,
    OAuthCommand, SessionCommand, TokenCommand, WebauthnCommand,
};
use crate::event::Pending;
use crate::oauth::OAuthReply;
use crate::refresh::TokensIssued;
use crate::session::{LoginCompleted, LoginReply, SessionIssued};
use crate::{AccountId, Command, Env, Rejection, Views};

/// A use case the writer can decide: a command with its own reply type.
///
/// `decide` is pure and cheap: it reads `views` and `env` (time, randomness, policy) and
/// returns the events to append with the reply to give once they are durable.
pub trait Decide: Send + 'static {
    /// What the caller gets once the events are durable.
    type Reply: Send + 'static;
    /// The command's name, for metrics and logs.
    fn kind(&self) -> &'static str;
    /// Decides the command against `views` at `env.now`.
    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<Self::Reply>;
}

/// The events to append and the reply to give after they are durable.
#[derive(Debug)]
pub struct Decision<R = Reply> {
    /// What happened, in order; appended atomically.
    pub events: Vec<Pending>,
    /// The answer, given only once the events are durable.
    pub reply: Result<R, Rejection>,
}

impl<R> Decision<R> {
    /// The same decision with `first` recorded before its own events (what a precondition
    /// spent, such as a step-up's second factor).
    pub(crate) fn after(mut self, mut first: Vec<Pending>) -> Self {
        if !first.is_empty() {
            first.append(&mut self.events);
            self.events = first;
        }
        self
    }

    pub(crate) fn ok(events: Vec<Pending>, reply: R) -> Self {
        Self {
            events,
            reply: Ok(reply),
        }
    }

    pub(crate) fn refuse(events: Vec<Pending>, rejection: Rejection) -> Self {
        Self {
            events,
            reply: Err(rejection),
        }
    }

    /// The same decision with its reply converted.
    pub fn map<S>(self, f: impl FnOnce(R) -> S) -> Decision<S> {
        Decision {
            events: self.events,
            reply: self.reply.map(f),
        }
    }
}

/// Any use case's reply, for drivers that run a mix of commands ([`Command`]): the
/// simulator's log, the test workload, property tests. Adapters that run one use case get
/// that use case's own reply type instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// An account was created.
    Registered {
        /// Its id.
        account: AccountId,
        /// Its username, as typed (trimmed).
        username: String,
    },
    /// A session-mode login finished: hand out the cookie.
    LoggedIn(SessionIssued),
    /// The session is live (and its activity recorded when due).
    SessionTouched,
    /// The session ended.
    SessionEnded,
    /// The password changed; the session the request came through continues under `session`.
    PasswordChanged {
        /// The fresh session replacing the one the request came through, if any.
        session: Option<SessionIssued>,
    },
    /// The account is disabled (or already was).
    AccountDisabled,
    /// The account is enabled (or already was).
    AccountEnabled,
    /// Token-mode login or a refresh: sign `access` and hand both tokens out.
    TokensIssued(TokensIssued),
    /// RFC 7009: the token is revoked, or was unknown; the answer is the same.
    Revoked,
    /// The refresh family (and its session) ended.
    LoggedOut,
    /// Every session and family of the account ended.
    SignedOutEverywhere,
    /// The key is in the set and signs from now on.
    SigningKeyAdded {
        /// Its key id.
        kid: String,
    },
    /// TOTP enrolment started: show the secret, URI and QR code once; MFA is pending.
    TotpEnrolmentStarted(crate::mfa::TotpEnrolment),
    /// The enrolment is confirmed and MFA is on: show the backup codes once.
    TotpEnabled {
        /// The first set, shown once.
        backup_codes: crate::mfa::BackupCodes,
    },
    /// A new set of backup codes, shown once; the old set no longer works.
    BackupCodesReplaced {
        /// The new set, shown once.
        backup_codes: crate::mfa::BackupCodes,
    },
    /// MFA is off; the account's other sessions and families have ended.
    TotpDisabled,
    /// An operator reset the account's MFA; every session and family has ended.
    MfaReset,
    /// The password was right and MFA is on: nothing is issued until the challenge is
    /// answered (`{mfa_required: true, mfa_token, methods, expires_in}`).
    MfaRequired(crate::mfa::MfaChallengeIssued),
    /// What an OAuth command produced.
    OAuth(OAuthReply),
    /// An API key was created or rotated: show it once.
    ApiKeyIssued(crate::apikey::ApiKeyIssued),
    /// An API key was revoked (or already was).
    ApiKeyRevoked,
    /// An operator revoked a key by prefix.
    ApiKeyRevokedByPrefix(crate::apikey::RevokedByPrefix),
    /// What a leak alert did to each token.
    ApiKeysLeaked(Vec<crate::apikey::LeakOutcome>),
    /// Usage or expiry warnings recorded for this many keys.
    ApiKeysRecorded(usize),
    /// A legacy account was imported.
    Imported {
        /// Its id.
        account: AccountId,
        /// Its username.
        username: String,
    },
    /// Legacy credentials were retired, with the reset tokens issued.
    LegacyRetired(Vec<crate::migration::ResetIssued>),
    /// A password was reset with a reset token.
    PasswordReset,
    /// An external identity signed in (or was refused, see the rejection).
    ExternalSignedIn {
        /// The account signed in to.
        account: AccountId,
        /// Whether the sign-in created it.
        created: bool,
        /// What the login handed out.
        login: Box<Reply>,
    },
    /// An external identity was linked (or already was).
    IdentityLinked,
    /// An external identity was unlinked.
    IdentityUnlinked,
    /// A WebAuthn credential was registered.
    CredentialRegistered(crate::webauthn::CredentialRegistered),
    /// A WebAuthn credential was removed.
    CredentialRemoved,
}

impl From<LoginCompleted> for Reply {
    fn from(done: LoginCompleted) -> Self {
        match done {
            LoginCompleted::Session(issued) => Self::LoggedIn(issued),
            LoginCompleted::Tokens(issued) => Self::TokensIssued(issued),
        }
    }
}

impl From<LoginReply> for Reply {
    fn from(reply: LoginReply) -> Self {
        match reply {
            LoginReply::Completed(done) => done.into(),
            LoginReply::MfaRequired(challenge) => Self::MfaRequired(challenge),
        }
    }
}

impl From<Registered> for Reply {
    fn from(r: Registered) -> Self {
        Self::Registered {
            account: r.account,
            username: r.username,
        }
    }
}

/// Decides any command against `views` at `env.now`: the dispatch of [`Command`].
pub fn decide(views: &Views, command: impl Into<Command>, env: &mut Env<'_>) -> Decision {
    command.into().decide(views, env)
}

impl Decide for Command {
    type Reply = Reply;

    fn kind(&self) -> &'static str {
        match self {
            Self::Account(c) => c.kind(),
            Self::Session(c) => c.kind(),
            Self::Token(c) => c.kind(),
            Self::Key(c) => c.kind(),
            Self::Mfa(c) => c.kind(),
            Self::OAuth(c) => c.kind(),
            Self::ApiKey(c) => c.kind(),
            Self::Migration(c) => c.kind(),
            Self::Identity(c) => c.kind(),
            Self::Webauthn(c) => c.kind(),
        }
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision {
        match self {
            Self::Account(c) => decide_account(views, c, env),
            Self::Session(c) => decide_session(views, c, env),
            Self::Token(c) => decide_token(views, c, env),
            Self::Key(KeyCommand::Add(c)) => c
                .decide(views, env)
                .map(|kid| Reply::SigningKeyAdded { kid }),
            Self::Mfa(c) => decide_mfa(views, c, env),
            Self::OAuth(c) => decide_oauth(views, c, env).map(Reply::OAuth),
            Self::ApiKey(c) => decide_api_key(views, c, env),
            Self::Migration(c) => decide_migration(views, c, env),
            Self::Identity(c) => decide_identity(views, c, env),
            Self::Webauthn(c) => decide_webauthn(views, c, env),
        }
    }
}

fn decide_account(views: &Views, command: AccountCommand, env: &mut Env<'_>) -> Decision {
    match command {
        AccountCommand::Register(c) => c.decide(views, env).map(Reply::from),
        AccountCommand::ChangePassword(c) => c
            .decide(views, env)
            .map(|session| Reply::PasswordChanged { session }),
        AccountCommand::Disable(c) => c.decide(views, env).map(|()| Reply::AccountDisabled),
        AccountCommand::Enable(c) => c.decide(views, env).map(|()| Reply::AccountEnabled),
    }
}

fn decide_session(views: &Views, command: SessionCommand, env: &mut Env<'_>) -> Decision {
    match command {
        SessionCommand::Login(c) => c.decide(views, env).map(Reply::from),
        SessionCommand::Touch(c) => c.decide(views, env).map(|()| Reply::SessionTouched),
        SessionCommand::Logout(c) => c.decide(views, env).map(|()| Reply::SessionEnded),
        SessionCommand::Revoke(c) => c.decide(views, env).map(|()| Reply::SessionEnded),
    }
}

fn decide_token(views: &Views, command: TokenCommand, env: &mut Env<'_>) -> Decision {
    match command {
        TokenCommand::Refresh(c) => c.decide(views, env).map(Reply::TokensIssued),
        TokenCommand::RevokeRefreshToken(c) => c.decide(views, env).map(|()| Reply::Revoked),
        TokenCommand::RevokeAccessToken(c) => c.decide(views, env).map(|()| Reply::Revoked),
        TokenCommand::LogoutFamily(c) => c.decide(views, env).map(|()| Reply::LoggedOut),
        TokenCommand::SignOutEverywhere(c) => {
            c.decide(views, env).map(|()| Reply::SignedOutEverywhere)
        }
    }
}

fn decide_mfa(views: &Views, command: MfaCommand, env: &mut Env<'_>) -> Decision {
    match command {
        MfaCommand::StartTotpEnrolment(c) => c.decide(views, env).map(Reply::TotpEnrolmentStarted),
        MfaCommand::ConfirmTotp(c) => c
            .decide(views, env)
            .map(|backup_codes| Reply::TotpEnabled { backup_codes }),
        MfaCommand::AnswerChallenge(c) => c.decide(views, env).map(Reply::from),
        MfaCommand::ReplaceBackupCodes(c) => c
            .decide(views, env)
            .map(|backup_codes| Reply::BackupCodesReplaced { backup_codes }),
        MfaCommand::DisableTotp(c) => c.decide(views, env).map(|()| Reply::TotpDisabled),
        MfaCommand::Reset(c) => c.decide(views, env).map(|()| Reply::MfaReset),
    }
}

fn decide_oauth(views: &Views, command: OAuthCommand, env: &mut Env<'_>) -> Decision<OAuthReply> {
    match command {
        OAuthCommand::RegisterClient(c) => c.decide(views, env).map(OAuthReply::ClientRegistered),
        OAuthCommand::RotateClientSecret(c) => {
            c.decide(views, env).map(OAuthReply::ClientSecretRotated)
        }
        OAuthCommand::RemoveClient(c) => c.decide(views, env).map(|()| OAuthReply::ClientRemoved),
        OAuthCommand::IssueCode(c) => c.decide(views, env).map(OAuthReply::CodeIssued),
        OAuthCommand::ExchangeCode(c) => c.decide(views, env).map(OAuthReply::Tokens),
        OAuthCommand::StartDevice(c) => c.decide(views, env).map(OAuthReply::DeviceStarted),
        OAuthCommand::PollDevice(c) => c.decide(views, env).map(OAuthReply::Tokens),
        OAuthCommand::EnterUserCode(c) => c.decide(views, env).map(OAuthReply::DeviceFound),
        OAuthCommand::DecideDevice(c) => c.decide(views, env).map(|()| OAuthReply::DeviceDecided),
        OAuthCommand::RevokeGrant(c) => c.decide(views, env).map(|()| OAuthReply::GrantRevoked),
        OAuthCommand::RevokeClientToken(c) => c
            .decide(views, env)
            .map(|()| OAuthReply::ClientTokenRevoked),
    }
}

fn decide_api_key(views: &Views, command: ApiKeyCommand, env: &mut Env<'_>) -> Decision {
    match command {
        ApiKeyCommand::Create(c) => c.decide(views, env).map(Reply::ApiKeyIssued),
        ApiKeyCommand::Rotate(c) => c.decide(views, env).map(Reply::ApiKeyIssued),
        ApiKeyCommand::Revoke(c) => c.decide(views, env).map(|()| Reply::ApiKeyRevoked),
        ApiKeyCommand::RevokeByPrefix(c) => c.decide(views, env).map(Reply::ApiKeyRevokedByPrefix),
        ApiKeyCommand::ReportLeaked(c) => c.decide(views, env).map(Reply::ApiKeysLeaked),
        ApiKeyCommand::RecordUsage(c) => c.decide(views, env).map(Reply::ApiKeysRecorded),
        ApiKeyCommand::WarnExpiring(c) => c.decide(views, env).map(Reply::ApiKeysRecorded),
    }
}

fn decide_migration(views: &Views, command: MigrationCommand, env: &mut Env<'_>) -> Decision {
    match command {
        MigrationCommand::Import(c) => c.decide(views, env).map(|r| Reply::Imported {
            account: r.account,
            username: r.username,
        }),
        MigrationCommand::Retire(c) => c.decide(views, env).map(Reply::LegacyRetired),
        MigrationCommand::ResetPassword(c) => c.decide(views, env).map(|()| Reply::PasswordReset),
    }
}

fn decide_identity(views: &Views, command: IdentityCommand, env: &mut Env<'_>) -> Decision {
    match command {
        IdentityCommand::SignIn(c) => c.decide(views, env).map(|r| Reply::ExternalSignedIn {
            account: r.account,
            created: r.created,
            login: Box::new(Reply::from(r.login)),
        }),
        IdentityCommand::Link(c) => c.decide(views, env).map(|()| Reply::IdentityLinked),
        IdentityCommand::Unlink(c) => c.decide(views, env).map(|()| Reply::IdentityUnlinked),
    }
}

fn decide_webauthn(views: &Views, command: WebauthnCommand, env: &mut Env<'_>) -> Decision {
    match command {
        WebauthnCommand::Register(c) => c.decide(views, env).map(Reply::CredentialRegistered),
        WebauthnCommand::Remove(c) => c.decide(views, env).map(|()| Reply::CredentialRemoved),
        WebauthnCommand::Login(c) => c.decide(views, env).map(Reply::from),
        WebauthnCommand::AnswerChallenge(c) => c.decide(views, env).map(Reply::from),
    }
}
