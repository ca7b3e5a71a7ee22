//! Logins and cookie sessions (OWASP Session Management Cheat Sheet).
//!
//! ```text
//!   login ──▶ Live ──(request, last touch older than touch_interval)──▶ Live (touched)
//!              │
//!              ├─ logout / deleted / password changed / account disabled ──▶ Ended
//!              └─ now ≥ min(last_seen + idle_timeout, expires_at) ─────────▶ Expired
//! ```
//! Expiry is computed lazily from the caller's time; nothing runs on a timer. Every session
//! gets a fresh 256-bit id at login and at every privilege change, so a value planted in a
//! victim's browser before login (session fixation) is never adopted.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::event::{Event, Pending, SessionEndReason};
use crate::id::uuid_v7;
use crate::mfa::MfaChallengeIssued;
use crate::refresh::{self, TokensIssued};
use crate::secret::{BearerSecret, SecretDigest, plausible};
use crate::{
    AccountId, Decide, Decision, Env, LoginMode, PasswordCheck, Rejection, SessionId, Timestamp,
    Views,
};

/// The prefix of every session cookie value.
pub const SESSION_SECRET_PREFIX: &str = "tss_";

/// A session as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// The session's public id.
    pub id: SessionId,
    /// The account the session authenticates.
    pub account: AccountId,
    /// The SHA-256 digest of the session secret (the cookie value), by which a presented
    /// cookie finds the session.
    pub secret_digest: SecretDigest,
    /// When the session started (a rotated session's replacement starts afresh).
    pub created_at: Timestamp,
    /// When the session was last recorded as used: its start, or its latest
    /// `SessionTouched`. The idle timeout runs from here.
    pub last_seen_at: Timestamp,
    /// How long the session may go unused before it dies, in milliseconds.
    pub idle_timeout_ms: u64,
    /// The absolute deadline, however often the session is used.
    pub expires_at: Timestamp,
}

impl SessionView {
    /// The moment this session stops being accepted, if nothing touches it.
    pub fn deadline(&self) -> Timestamp {
        self.last_seen_at
            .plus_ms(self.idle_timeout_ms)
            .min(self.expires_at)
    }

    /// Whether the session is accepted at `now`: before its [`SessionView::deadline`]. An
    /// ended session is not in the views at all.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.deadline()
    }
}

/// The live session a presented cookie value names, or `Unauthenticated`: a value the server
/// never issued, one whose session ended, or one past its deadlines. Garbage is refused by
/// its shape before it is hashed.
pub fn authenticate<'v>(
    views: &'v Views,
    presented: &str,
    now: Timestamp,
) -> Result<&'v SessionView, Rejection> {
    if !plausible(presented, SESSION_SECRET_PREFIX) {
        return Err(Rejection::Unauthenticated);
    }
    views
        .session_by_digest(&SecretDigest::of(presented))
        .filter(|s| s.is_live(now))
        .ok_or(Rejection::Unauthenticated)
}

/// Whether a request at `now` should record activity on `session`.
pub fn touch_due(session: &SessionView, now: Timestamp, touch_interval_ms: u64) -> bool {
    now.since(session.last_seen_at) >= touch_interval_ms
}

/// A session handed to its holder: the cookie value, once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionIssued {
    /// The session's id (public; the cookie value is the secret).
    pub session: SessionId,
    /// Whose session it is.
    pub account: AccountId,
    /// The cookie value, shown once.
    pub secret: BearerSecret,
    /// The absolute deadline.
    pub expires_at: Timestamp,
}

/// What a login that passed every factor hands out, in the mode it asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one short-lived reply per login, moved once to its caller: boxing would add an allocation for nothing"
)]
pub enum LoginCompleted {
    /// Session mode: the cookie.
    Session(SessionIssued),
    /// Token mode: access claims to sign and a refresh token.
    Tokens(TokensIssued),
}

/// What a password login answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginReply {
    /// Logged in.
    Completed(LoginCompleted),
    /// The password was right and MFA is on: nothing is issued until the challenge is
    /// answered.
    MfaRequired(MfaChallengeIssued),
}

/// A password login, checked off the writer by [`crate::usecase::LoginRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// The password check, against the account's hash or the decoy.
    pub check: PasswordCheck,
    /// Session or tokens.
    pub mode: LoginMode,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
    /// The live session whose cookie the login arrived with: it ends when the login
    /// completes, whoever it belonged to, so one browser never holds two sessions.
    pub supersedes: Option<SessionId>,
}

impl Decide for Login {
    type Reply = LoginReply;

    fn kind(&self) -> &'static str {
        "login"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<LoginReply> {
        // The address check needs no account lookup, so its 429 reveals nothing about
        // accounts.
        let wait =
            crate::throttle::address_wait_ms(views, self.client, env.now, &env.policy.throttle);
        if wait > 0 {
            return Decision::refuse(vec![], crate::throttle::throttled(wait));
        }
        let admitted = crate::account::admit(
            views,
            &self.check,
            self.client,
            env.now,
            &env.policy.throttle,
        );
        let account = match admitted {
            Ok(account) => account,
            Err(failure) => return Decision::refuse(vec![failure], Rejection::InvalidCredentials),
        };
        let mut events = Vec::with_capacity(2);
        if let Some(password_hash) = self.check.rehash {
            events.push(
                Event::PasswordRehashed {
                    account,
                    password_hash,
                }
                .into(),
            );
        }
        // A registered WebAuthn credential is a second factor, as TOTP is.
        let totp = views.mfa(&account).filter(|m| m.enabled());
        let webauthn = views.credentials_of(&account).next().is_some();
        if totp.is_some() || webauthn {
            let (started, issued) =
                crate::mfa::start_challenge(account, self.mode, totp, webauthn, env);
            events.push(started);
            return Decision::ok(events, LoginReply::MfaRequired(issued));
        }
        end_superseded(views, self.supersedes, env.now, &mut events);
        let done = complete_login(account, self.mode, env, &mut events);
        Decision::ok(events, LoginReply::Completed(done))
    }
}

/// Record that a session was used, if the last record is older than the touch interval.
/// Refused when the session is not live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TouchSession {
    /// The session.
    pub session: SessionId,
}

impl Decide for TouchSession {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "touch_session"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        match views.session(&self.session) {
            Some(s) if s.is_live(env.now) => {
                let due = touch_due(s, env.now, env.policy.session.touch_interval_ms);
                let events = if due {
                    vec![
                        Event::SessionTouched {
                            session: self.session,
                        }
                        .into(),
                    ]
                } else {
                    vec![]
                };
                Decision::ok(events, ())
            }
            _ => Decision::refuse(vec![], Rejection::Unauthenticated),
        }
    }
}

/// End the session a request came through, and the refresh families bound to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logout {
    /// The session.
    pub session: SessionId,
}

impl Decide for Logout {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "logout"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        match views.session(&self.session) {
            Some(s) if s.is_live(env.now) => Decision::ok(
                end_session(views, s, SessionEndReason::LoggedOut, env.now),
                (),
            ),
            _ => Decision::refuse(vec![], Rejection::Unauthenticated),
        }
    }
}

/// End one of the holder's own sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeSession {
    /// The holder.
    pub account: AccountId,
    /// One of the holder's sessions; anyone else's is answered as not found.
    pub session: SessionId,
    /// A recent authentication ([`check_step_up`]).
    pub step_up: StepUp,
}

impl Decide for RevokeSession {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "revoke_session"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        let spent = match check_step_up(views, self.account, &self.step_up, false, env) {
            Ok(spent) => spent,
            Err((events, r)) => return Decision::refuse(events, r),
        };
        match views.session(&self.session) {
            Some(s) if s.account == self.account && s.is_live(env.now) => Decision::ok(
                end_session(views, s, SessionEndReason::Revoked, env.now),
                (),
            ),
            // A code given for the step-up stays spent.
            _ => Decision::refuse(vec![], Rejection::SessionNotFound),
        }
        .after(spent)
    }
}

/// How the caller of a sensitive action shows a recent authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepUp {
    /// When the caller last authenticated (a session's start, a token's `auth_time`), if
    /// known; it must be within the policy's window.
    At(Option<Timestamp>),
    /// The password re-entered with the request, checked off the writer
    /// ([`crate::usecase::StepUpRequest`]). A wrong one counts like a failed login.
    Password {
        /// The check against the account's hash.
        check: PasswordCheck,
        /// Where the request came from (throttling).
        client: Option<IpAddr>,
        /// The second factor given with it, for an account with MFA on whose action
        /// carries no code of its own.
        second_factor: Option<crate::mfa::SecondFactor>,
    },
}

impl From<Option<Timestamp>> for StepUp {
    fn from(at: Option<Timestamp>) -> Self {
        Self::At(at)
    }
}

/// The step-up rule for a sensitive action of `account`: a recent authentication time, or
/// the password re-entered now. With MFA on, a re-entered password is a full
/// authentication only with a second factor: the command's own code
/// (`second_factor_given`) or one given with the password; otherwise the caller logs in
/// again. On success, the events to record with the action (a TOTP step or backup code
/// spent); on refusal, the events to record (a wrong password is a failed login, a wrong
/// code a failed MFA attempt, for throttling) and the rejection.
pub fn check_step_up(
    views: &Views,
    account: AccountId,
    step_up: &StepUp,
    second_factor_given: bool,
    env: &Env<'_>,
) -> Result<Vec<Pending>, (Vec<Pending>, Rejection)> {
    match step_up {
        StepUp::At(at) => require_recent_auth(*at, env)
            .map(|()| vec![])
            .map_err(|r| (vec![], r)),
        StepUp::Password {
            check,
            client,
            second_factor,
        } => {
            if check.account != Some(account) {
                return Err((vec![], Rejection::ReauthenticationRequired));
            }
            crate::account::admit(views, check, *client, env.now, &env.policy.throttle)
                .map_err(|failed| (vec![failed], Rejection::InvalidCredentials))?;
            let totp = views.mfa_status(&account, env.now).enabled;
            // A registered WebAuthn credential is a second factor too. No credential answer
            // travels with a re-entered password, so such an account without TOTP steps up
            // by signing in again (its passkey or key then gives a recent authentication).
            let credential = views.credentials_of(&account).next().is_some();
            if second_factor_given || (!totp && !credential) {
                return Ok(vec![]);
            }
            if !totp {
                return Err((vec![], Rejection::ReauthenticationRequired));
            }
            match second_factor {
                Some(f) => {
                    crate::mfa::prove_answer(views, account, &f.answer, &f.keys, *client, env)
                        .map(|spend| vec![spend])
                }
                None => Err((vec![], Rejection::ReauthenticationRequired)),
            }
        }
    }
}

/// Refuses a sensitive action unless the caller authenticated (password, and the second
/// factor when enrolled) within the policy's `session.reauth_window_secs` of `env.now`.
/// `None` (a caller whose authentication time is unknown, such as an access token issued
/// before tokens carried `auth_time`) is never recent. Decided here, not in a driver, so
/// that the server, the simulator and the tests all meet the same rule.
pub fn require_recent_auth(auth_time: Option<Timestamp>, env: &Env<'_>) -> Result<(), Rejection> {
    let window_ms = env.policy.session.reauth_window_secs.saturating_mul(1000);
    match auth_time {
        // An authentication time in the future (clock leeway) counts as now.
        Some(at) if env.now.since(at) <= window_ms => Ok(()),
        _ => Err(Rejection::ReauthenticationRequired),
    }
}

/// When the holder of a session last authenticated: its start. A session gets a fresh id
/// (and so a fresh start) at every login and every password change, both of which prove the
/// password (and the second factor when enrolled).
pub fn session_auth_time(session: &SessionView) -> Timestamp {
    session.created_at
}

/// Ends the session a completed login arrived with, if it is still live.
pub(crate) fn end_superseded(
    views: &Views,
    supersedes: Option<SessionId>,
    now: Timestamp,
    events: &mut Vec<Pending>,
) {
    if let Some(s) = supersedes
        .and_then(|id| views.session(&id))
        .filter(|s| s.is_live(now))
    {
        events.extend(end_session(views, s, SessionEndReason::Superseded, now));
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

pub(crate) fn ended(session: SessionId, reason: SessionEndReason) -> Pending {
    Event::SessionEnded { session, reason }.into()
}

pub(crate) fn start_session(
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

/// Issues what a login asked for, once every factor is proven: a session or a refresh
/// family with its first tokens.
pub(crate) fn complete_login(
    account: AccountId,
    mode: LoginMode,
    env: &mut Env<'_>,
    events: &mut Vec<Pending>,
) -> LoginCompleted {
    match mode {
        LoginMode::Session => {
            let (started, issued) = start_session(account, None, env);
            events.push(started);
            LoginCompleted::Session(issued)
        }
        LoginMode::Token => {
            let (started, issued) = refresh::start_family(account, None, None, None, env);
            events.push(started);
            LoginCompleted::Tokens(issued)
        }
    }
}
