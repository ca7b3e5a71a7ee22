//! `decide`: the one place a command becomes events and a reply.
//!
//! Cheap and serial: the argon2 work was done by [`crate::prepare`]. A decision reads the
//! views and the `Env`, and returns the events to append with the reply to give once they
//! are durable. Refusals that are facts (a wrong password) come with events.

use crate::account::username_key;
use crate::event::{Actor, Event, FamilyRevokeReason, LoginFailure, Pending, SessionEndReason};
use crate::id::uuid_v7;
use crate::password::{PasswordHash, Verification};
use crate::refresh::{self, TokensIssued};
use crate::secret::BearerSecret;
use crate::session::{SESSION_SECRET_PREFIX, SessionView};
use crate::{
    AccountId, Command, Env, LoginMode, PasswordCheck, Rejection, SessionId, Timestamp, Views,
};

/// A session handed to its holder: the cookie value, once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionIssued {
    pub session: SessionId,
    pub account: AccountId,
    pub secret: BearerSecret,
    pub expires_at: Timestamp,
}

/// What the caller gets once the events are durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Registered {
        account: AccountId,
        username: String,
    },
    LoggedIn(SessionIssued),
    SessionTouched,
    SessionEnded,
    /// The password changed; the session the request came through continues under `session`.
    PasswordChanged {
        session: Option<SessionIssued>,
    },
    AccountDisabled,
    /// Token-mode login or a refresh: sign `access` and hand both tokens out.
    TokensIssued(TokensIssued),
    /// RFC 7009: the token is revoked, or was unknown; the answer is the same.
    Revoked,
    /// The refresh family (and its session) ended.
    LoggedOut,
    SignedOutEverywhere,
    /// The key is in the set and signs from now on.
    SigningKeyAdded {
        kid: String,
    },
    /// TOTP enrolment started: show the secret, URI and QR code once; MFA is pending.
    TotpEnrolmentStarted(crate::mfa::TotpEnrolment),
    /// The enrolment is confirmed and MFA is on: show the backup codes once.
    TotpEnabled {
        backup_codes: crate::mfa::BackupCodes,
    },
    /// A new set of backup codes, shown once; the old set no longer works.
    BackupCodesReplaced {
        backup_codes: crate::mfa::BackupCodes,
    },
    /// MFA is off; the account's other sessions and families have ended.
    TotpDisabled,
    /// An operator reset the account's MFA; every session and family has ended.
    MfaReset,
    /// The password was right and MFA is on: nothing is issued until the challenge is
    /// answered (`{mfa_required: true, mfa_token, methods, expires_in}`).
    MfaRequired(crate::mfa::MfaChallengeIssued),
}

/// The events to append and the reply to give after they are durable.
#[derive(Debug)]
pub struct Decision {
    pub events: Vec<Pending>,
    pub reply: Result<Reply, Rejection>,
}

impl Decision {
    pub(crate) fn ok(events: Vec<Pending>, reply: Reply) -> Self {
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
}

/// Decides `command` against `views` at `env.now`.
pub fn decide(views: &Views, command: Command, env: &mut Env<'_>) -> Decision {
    match command {
        Command::Register {
            username,
            email,
            password_hash,
        } => register(views, username, email, password_hash, env),
        Command::Login {
            check,
            mode,
            client,
        } => login(views, &check, mode, client, env),
        Command::TouchSession { session } => touch(views, session, env),
        Command::Logout { session } => match views.session(&session) {
            Some(s) if s.is_live(env.now) => Decision::ok(
                end_session(views, s, SessionEndReason::LoggedOut, env.now),
                Reply::SessionEnded,
            ),
            _ => Decision::refuse(vec![], Rejection::Unauthenticated),
        },
        Command::RevokeSession { account, session } => match views.session(&session) {
            Some(s) if s.account == account && s.is_live(env.now) => Decision::ok(
                end_session(views, s, SessionEndReason::Revoked, env.now),
                Reply::SessionEnded,
            ),
            _ => Decision::refuse(vec![], Rejection::SessionNotFound),
        },
        Command::ChangePassword {
            check,
            new_hash,
            current_session,
            client,
        } => change_password(views, &check, new_hash, current_session, client, env),
        Command::DisableAccount { account, by } => disable(views, account, by, env),
        Command::RefreshTokens { presented } => refresh::refresh(views, presented, env),
        Command::RevokeRefreshToken { presented } => refresh::revoke_token(views, presented, env),
        Command::RevokeAccessToken {
            jti,
            account,
            expires_at,
        } => crate::blocklist::revoke_access_token(views, jti, account, expires_at, env),
        Command::LogoutFamily { family } => refresh::logout(views, family, env),
        Command::SignOutEverywhere { account, by } => {
            crate::blocklist::sign_out_everywhere(views, account, by, env.now)
        }
        Command::AddSigningKey { kid, public_key } => {
            crate::signing_key::add(&views.signing_keys, kid, public_key, env)
        }
        command @ (Command::StartTotpEnrolment { .. }
        | Command::ConfirmTotp { .. }
        | Command::AnswerMfaChallenge { .. }
        | Command::ReplaceBackupCodes { .. }
        | Command::DisableTotp { .. }
        | Command::ResetMfa { .. }) => decide_mfa(views, command, env),
    }
}

/// The MFA commands (see [`crate::mfa`]).
fn decide_mfa(views: &Views, command: Command, env: &mut Env<'_>) -> Decision {
    use crate::mfa;
    match command {
        Command::StartTotpEnrolment { account, keys } => {
            mfa::start_enrolment(views, account, &keys, env)
        }
        Command::ConfirmTotp {
            account,
            code,
            keys,
            client,
        } => mfa::confirm(views, account, &code, &keys, client, env),
        Command::AnswerMfaChallenge {
            presented,
            answer,
            keys,
            client,
        } => mfa::answer_challenge(views, presented, &answer, &keys, client, env),
        Command::ReplaceBackupCodes {
            account,
            answer,
            keys,
            client,
        } => mfa::replace_backup_codes(views, account, &answer, &keys, client, env),
        Command::DisableTotp {
            account,
            answer,
            keys,
            client,
            current_session,
            current_family,
        } => {
            let keep = mfa::Keep {
                session: current_session,
                family: current_family,
            };
            mfa::disable(views, account, &answer, &keys, client, keep, env)
        }
        Command::ResetMfa { account, by } => mfa::reset(views, account, by, env),
        // `decide` sends only the commands above here.
        _ => Decision::refuse(vec![], Rejection::Unauthenticated),
    }
}

/// Ends a session and revokes the refresh families bound to it.
fn end_session(
    views: &Views,
    s: &SessionView,
    reason: SessionEndReason,
    now: Timestamp,
) -> Vec<Pending> {
    let mut events = vec![ended(s.id, reason)];
    refresh::revoke_for_session(views, now, &s.account, s.id, &mut events);
    events
}

fn ended(session: SessionId, reason: SessionEndReason) -> Pending {
    Event::SessionEnded { session, reason }.into()
}

fn register(
    views: &Views,
    username: String,
    email: Option<String>,
    password_hash: PasswordHash,
    env: &mut Env<'_>,
) -> Decision {
    let key = match username_key(&username) {
        Ok(key) => key,
        Err(problem) => return Decision::refuse(vec![], Rejection::InvalidUsername(problem)),
    };
    if views.account_by_username(&key).is_some() {
        return Decision::refuse(vec![], Rejection::UsernameTaken);
    }
    let account = AccountId(uuid_v7(env.now, env.random_bytes()));
    let event = Event::AccountRegistered {
        account,
        username: username.clone(),
        email,
        password_hash,
    };
    Decision::ok(vec![event.into()], Reply::Registered { account, username })
}

/// Whether a checked password still opens the account now: right password, checked
/// against the hash the account has now, account enabled and not throttled. On failure, the
/// event to record.
// The failure is an event to record, built once per refused login: its size is no
// concern, and boxing it would only obscure the flow.
#[allow(clippy::result_large_err)]
fn admit(
    views: &Views,
    check: &PasswordCheck,
    client: Option<std::net::IpAddr>,
    now: Timestamp,
    throttle: &crate::throttle::ThrottlePolicy,
) -> Result<AccountId, Pending> {
    let Some(account) = check.account.and_then(|id| views.account(&id)) else {
        return Err(Event::UnknownAccountLoginFailed { client }.into());
    };
    let wait = crate::throttle::account_wait_ms(views, &account.id, now, throttle);
    let reason = if account.disabled {
        LoginFailure::AccountDisabled
    } else if wait > 0 {
        // Refused unchecked, and answered like a wrong password (see `crate::throttle`).
        LoginFailure::Throttled
    } else if check.outcome == Verification::Mismatch || check.checked_hash != account.password_hash
    {
        LoginFailure::WrongPassword
    } else {
        return Ok(account.id);
    };
    Err(Event::LoginFailed {
        account: account.id,
        reason,
        client,
    }
    .into())
}

fn start_session(
    account: AccountId,
    expires_at: Option<Timestamp>,
    env: &mut Env<'_>,
) -> (Pending, SessionIssued) {
    let session = SessionId(uuid_v7(env.now, env.random_bytes()));
    let (secret, secret_digest) = BearerSecret::generate(SESSION_SECRET_PREFIX, env);
    let policy = env.policy.session;
    let expires_at = expires_at.unwrap_or(env.now.plus_ms(policy.absolute_lifetime_ms));
    let event = Event::SessionStarted {
        session,
        account,
        secret_digest,
        idle_timeout_ms: policy.idle_timeout_ms,
        expires_at,
    };
    (
        event.into(),
        SessionIssued {
            session,
            account,
            secret,
            expires_at,
        },
    )
}

fn login(
    views: &Views,
    check: &PasswordCheck,
    mode: LoginMode,
    client: Option<std::net::IpAddr>,
    env: &mut Env<'_>,
) -> Decision {
    // The address check needs no account lookup, so its 429 reveals nothing about accounts.
    let wait = crate::throttle::address_wait_ms(views, client, env.now, &env.policy.throttle);
    if wait > 0 {
        return Decision::refuse(vec![], crate::throttle::throttled(wait));
    }
    let account = match admit(views, check, client, env.now, &env.policy.throttle) {
        Ok(account) => account,
        Err(failure) => return Decision::refuse(vec![failure], Rejection::InvalidCredentials),
    };
    let mut events = Vec::with_capacity(2);
    if let Some(password_hash) = &check.rehash {
        events.push(
            Event::PasswordRehashed {
                account,
                password_hash: password_hash.clone(),
            }
            .into(),
        );
    }
    if let Some(mfa) = views.mfa(&account).filter(|m| m.enabled()) {
        let (started, issued) = crate::mfa::start_challenge(account, mode, mfa, env);
        events.push(started);
        return Decision::ok(events, Reply::MfaRequired(issued));
    }
    let reply = complete_login(account, mode, env, &mut events);
    Decision::ok(events, reply)
}

/// Issues what a login asked for, once every factor is proven: a session or a refresh
/// family with its first tokens.
pub(crate) fn complete_login(
    account: AccountId,
    mode: LoginMode,
    env: &mut Env<'_>,
    events: &mut Vec<Pending>,
) -> Reply {
    match mode {
        LoginMode::Session => {
            let (started, issued) = start_session(account, None, env);
            events.push(started);
            Reply::LoggedIn(issued)
        }
        LoginMode::Token => {
            let (started, issued) = refresh::start_family(account, None, None, None, env);
            events.push(started);
            Reply::TokensIssued(issued)
        }
    }
}

fn touch(views: &Views, session: SessionId, env: &mut Env<'_>) -> Decision {
    match views.session(&session) {
        Some(s) if s.is_live(env.now) => {
            let due = crate::session::touch_due(s, env.now, env.policy.session.touch_interval_ms);
            let events = if due {
                vec![Event::SessionTouched { session }.into()]
            } else {
                vec![]
            };
            Decision::ok(events, Reply::SessionTouched)
        }
        _ => Decision::refuse(vec![], Rejection::Unauthenticated),
    }
}

fn change_password(
    views: &Views,
    check: &PasswordCheck,
    new_hash: PasswordHash,
    current: Option<SessionId>,
    client: Option<std::net::IpAddr>,
    env: &mut Env<'_>,
) -> Decision {
    let account = match admit(views, check, client, env.now, &env.policy.throttle) {
        Ok(account) => account,
        Err(failure) => return Decision::refuse(vec![failure], Rejection::InvalidCredentials),
    };
    let mut events = vec![
        Event::PasswordChanged {
            account,
            password_hash: new_hash,
        }
        .into(),
    ];
    // Every refresh family goes, including the one the request may have come through: a
    // token-mode client logs in again with the new password.
    refresh::revoke_all(
        views,
        env.now,
        &account,
        FamilyRevokeReason::PasswordChanged,
        &mut events,
    );
    let mut carried: Option<&SessionView> = None;
    // Sessions past their deadline are dropped by the views when these events are applied;
    // ending one again would be an event the views refuse.
    for s in views.sessions_of(&account).filter(|s| s.is_live(env.now)) {
        if Some(s.id) == current && s.is_live(env.now) {
            carried = Some(s);
            events.push(ended(s.id, SessionEndReason::Rotated));
        } else {
            events.push(ended(s.id, SessionEndReason::PasswordChanged));
        }
    }
    // A privilege change gets a fresh session id (no fixation), but not a longer life.
    let session = carried.map(|s| {
        let (started, issued) = start_session(account, Some(s.expires_at), env);
        events.push(started);
        issued
    });
    Decision::ok(events, Reply::PasswordChanged { session })
}

fn disable(views: &Views, account: AccountId, by: Actor, env: &mut Env<'_>) -> Decision {
    let Some(a) = views.account(&account) else {
        return Decision::refuse(vec![], Rejection::AccountNotFound);
    };
    if a.disabled {
        return Decision::ok(vec![], Reply::AccountDisabled);
    }
    let mut events = vec![Event::AccountDisabled { account, by }.into()];
    refresh::revoke_all(
        views,
        env.now,
        &account,
        FamilyRevokeReason::AccountDisabled,
        &mut events,
    );
    let live = views.sessions_of(&account).filter(|s| s.is_live(env.now));
    events.extend(live.map(|s| ended(s.id, SessionEndReason::AccountDisabled)));
    Decision::ok(events, Reply::AccountDisabled)
}
