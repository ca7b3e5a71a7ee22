//! Driving the real engine: a clock the test moves, a store the test can still read after
//! the engine took it, and a seeded stream of commands built the way the server builds them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::collections::BTreeMap;

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::mfa::{MfaAnswer, MfaKeys, TotpCode, presented_challenge_digest, totp_code_at};
use tessera_core::password::{self, WorkArea};
use tessera_core::policy::Argon2Params;
use tessera_core::session::SessionIssued;
use tessera_core::usecase::{
    ChangePasswordRequest, LoginRequest, Planned, Prepare, RegisterRequest,
};
use tessera_core::{
    AccountId, Actor, Command, LoginMode, Policy, Reply, StreamId, Timestamp, ViewKey, ViewRecord,
};
use tessera_storage::Envelope;
use tessera_storage::engine::{Clock, Engine, EngineConfig, EngineError, Outcome};
use tessera_storage::event_store::{
    AppendBatch, AppendError, EventStore, Head, LogReader, ReadError,
};

use crate::{T0, policy, rng};

/// A clock that moves only when the test says so.
#[derive(Debug)]
pub struct TestClock(AtomicU64);

impl TestClock {
    pub fn at(t: Timestamp) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(t.as_millis())))
    }

    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// A store the engine owns and the test can still reach: the engine drops its store on
/// shutdown, and a `MemoryStore` has no disk to reopen.
#[derive(Debug)]
pub struct SharedStore<S>(pub Arc<Mutex<S>>);

impl<S> Clone for SharedStore<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S: EventStore> SharedStore<S> {
    pub fn new(inner: S) -> Self {
        Self(Arc::new(Mutex::new(inner)))
    }

    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<S: EventStore> EventStore for SharedStore<S> {
    fn head(&self) -> Head {
        self.lock().head()
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        self.lock().stream_version(stream)
    }

    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Envelope>, AppendError> {
        self.lock().append(batch)
    }

    fn read_stream(&self, stream: &StreamId) -> Result<Vec<Envelope>, ReadError> {
        self.lock().read_stream(stream)
    }

    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        let all: Vec<_> = self.lock().read_from(from).collect();
        Box::new(all.into_iter())
    }

    fn view_records(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(ViewKey, ViewRecord), ReadError>> + '_> {
        let all: Vec<_> = self.lock().view_records().collect();
        Box::new(all.into_iter())
    }

    fn replace_views(&mut self, records: Vec<(ViewKey, ViewRecord)>) -> Result<(), AppendError> {
        self.lock().replace_views(records)
    }

    fn log_reader(&self) -> Box<dyn LogReader> {
        self.lock().log_reader()
    }
}

/// Every envelope in `store`, in order; panics on a read error.
pub fn read_log(store: &dyn EventStore) -> Vec<Envelope> {
    store
        .read_from(1)
        .collect::<Result<_, _>>()
        .expect("log reads back")
}

/// Starts the engine over `store` with a seeded RNG and the test policy.
pub fn start_engine(store: Box<dyn EventStore>, clock: Arc<TestClock>, seed: u64) -> Engine {
    start_engine_with_policy(store, clock, seed, policy())
}

/// [`start_engine`] with another policy, for tests of a rule the test policy leaves off.
pub fn start_engine_with_policy(
    store: Box<dyn EventStore>,
    clock: Arc<TestClock>,
    seed: u64,
    policy: Policy,
) -> Engine {
    let config = EngineConfig {
        check_invariants: true,
        ..EngineConfig::default()
    };
    Engine::start(store, policy, clock, Box::new(rng(seed)), config).expect("engine starts")
}

/// Relative weights of the operations a [`Driver`] picks from.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub register: u32,
    pub login: u32,
    pub login_wrong: u32,
    pub login_unknown: u32,
    pub touch: u32,
    pub logout: u32,
    pub revoke: u32,
    pub change_password: u32,
    pub disable: u32,
    pub login_token: u32,
    pub refresh: u32,
    pub replay_refresh: u32,
    pub revoke_refresh: u32,
    pub revoke_access: u32,
    pub logout_family: u32,
    pub sign_out_everywhere: u32,
    pub add_signing_key: u32,
    pub enrol_totp: u32,
    pub confirm_totp: u32,
    pub answer_mfa: u32,
    pub replace_backup_codes: u32,
    pub disable_totp: u32,
    pub reset_mfa: u32,
    /// The OAuth provider's commands, in a fixed cycle ([`Driver`]'s OAuth script).
    pub oauth: u32,
    pub api_key: u32,
    /// Retire the legacy credentials that are due (imported accounts carry a last login
    /// long ago, so the ones that have not logged in yet are).
    pub sunset: u32,
    /// Reset a password with a token the sunset issued.
    pub reset_password: u32,
}

impl Mix {
    /// Registrations, logins (good and bad), touches and logouts.
    pub const SESSIONS: Self = Self {
        register: 4,
        login: 6,
        login_wrong: 2,
        login_unknown: 1,
        touch: 3,
        logout: 3,
        revoke: 0,
        change_password: 0,
        disable: 0,
        login_token: 0,
        refresh: 0,
        replay_refresh: 0,
        revoke_refresh: 0,
        revoke_access: 0,
        logout_family: 0,
        sign_out_everywhere: 0,
        add_signing_key: 0,
        enrol_totp: 0,
        confirm_totp: 0,
        answer_mfa: 0,
        replace_backup_codes: 0,
        disable_totp: 0,
        reset_mfa: 0,
        oauth: 0,
        api_key: 0,
        sunset: 0,
        reset_password: 0,
    };

    /// Every command there is.
    pub const ALL: Self = Self {
        revoke: 2,
        change_password: 2,
        disable: 1,
        login_token: 5,
        refresh: 5,
        replay_refresh: 1,
        revoke_refresh: 1,
        revoke_access: 1,
        logout_family: 1,
        sign_out_everywhere: 1,
        add_signing_key: 1,
        enrol_totp: 1,
        confirm_totp: 2,
        answer_mfa: 5,
        replace_backup_codes: 1,
        disable_totp: 1,
        reset_mfa: 1,
        oauth: 1,
        api_key: 4,
        sunset: 1,
        reset_password: 2,
        ..Self::SESSIONS
    };

    fn pick(&self, rng: &mut ChaCha20Rng) -> Op {
        let table = [
            (self.register, Op::Register),
            (self.login, Op::Login),
            (self.login_wrong, Op::LoginWrong),
            (self.login_unknown, Op::LoginUnknown),
            (self.touch, Op::Touch),
            (self.logout, Op::Logout),
            (self.revoke, Op::Revoke),
            (self.change_password, Op::ChangePassword),
            (self.disable, Op::Disable),
            (self.login_token, Op::LoginToken),
            (self.refresh, Op::Refresh),
            (self.replay_refresh, Op::ReplayRefresh),
            (self.revoke_refresh, Op::RevokeRefresh),
            (self.revoke_access, Op::RevokeAccess),
            (self.logout_family, Op::LogoutFamily),
            (self.sign_out_everywhere, Op::SignOutEverywhere),
            (self.add_signing_key, Op::AddSigningKey),
            (self.enrol_totp, Op::EnrolTotp),
            (self.confirm_totp, Op::ConfirmTotp),
            (self.answer_mfa, Op::AnswerMfa),
            (self.replace_backup_codes, Op::ReplaceBackupCodes),
            (self.disable_totp, Op::DisableTotp),
            (self.reset_mfa, Op::ResetMfa),
            (self.oauth, Op::OAuth),
            (self.api_key, Op::ApiKey),
            (self.sunset, Op::Sunset),
            (self.reset_password, Op::ResetPassword),
        ];
        let total: u32 = table.iter().map(|(w, _)| w).sum();
        let mut roll = rng.random_range(0..total);
        for (weight, op) in table {
            if roll < weight {
                return op;
            }
            roll -= weight;
        }
        unreachable!("roll below the total weight")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Register,
    Login,
    LoginWrong,
    LoginUnknown,
    Touch,
    Logout,
    Revoke,
    ChangePassword,
    Disable,
    LoginToken,
    Refresh,
    ReplayRefresh,
    RevokeRefresh,
    RevokeAccess,
    LogoutFamily,
    SignOutEverywhere,
    AddSigningKey,
    EnrolTotp,
    ConfirmTotp,
    AnswerMfa,
    ReplaceBackupCodes,
    DisableTotp,
    ResetMfa,
    OAuth,
    ApiKey,
    Sunset,
    ResetPassword,
}

/// What the driver holds of the OAuth flows: the code it was handed and its verifier, the
/// device code and user code, the user who consented.
#[derive(Clone, Debug, Default)]
struct OAuthState {
    step: usize,
    /// The user the script runs for, while it runs (it runs to its end, a command per
    /// step, with two seconds between them: codes live a minute).
    user: Option<User>,
    code: Option<(String, String)>,
    device: Option<(String, String)>,
    consented: Option<AccountId>,
}

/// The confidential and public clients the OAuth script registers.
const CONFIDENTIAL: &str = "wl-conf";
const PUBLIC: &str = "wl-pub";
const VERIFIER: &str = "workload-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OAuthStep {
    RegisterConfidential,
    RegisterPublic,
    IssueCode,
    ExchangeCode,
    StartDevice,
    WrongUserCode,
    Poll,
    Approve,
    Deny,
    RevokeGrant,
    RotateSecret,
    RevokeClientToken,
    RemoveConfidential,
    RemovePublic,
}

/// The OAuth script: the second exchange replays the code; the second poll comes two
/// seconds after the first (slow_down); the poll after approval gets tokens.
const OAUTH_SCRIPT: [OAuthStep; 19] = [
    OAuthStep::RegisterConfidential,
    OAuthStep::RegisterPublic,
    OAuthStep::IssueCode,
    OAuthStep::ExchangeCode,
    OAuthStep::ExchangeCode,
    OAuthStep::StartDevice,
    OAuthStep::WrongUserCode,
    OAuthStep::Poll,
    OAuthStep::Poll,
    OAuthStep::Approve,
    OAuthStep::Poll,
    OAuthStep::StartDevice,
    OAuthStep::Deny,
    OAuthStep::RevokeGrant,
    OAuthStep::RotateSecret,
    OAuthStep::RevokeClientToken,
    OAuthStep::RemoveConfidential,
    OAuthStep::RemovePublic,
    OAuthStep::Poll,
];

/// The MFA keys every driver uses (the server would load them from its key store).
pub fn mfa_keys() -> MfaKeys {
    MfaKeys::from_master(&[7; 32])
}

/// The API-key server key every driver uses (the server would load it from its key store).
pub fn api_key_pepper() -> tessera_core::apikey::ApiKeyPepper {
    tessera_core::apikey::ApiKeyPepper::from_key(&[5; 32])
}

/// What the driver knows of an account's TOTP, as its holder would.
#[derive(Clone, Debug)]
struct Totp {
    secret: Vec<u8>,
    backup_codes: Vec<String>,
}

/// A refresh family the driver holds: the live token, the spent ones, the last access claims.
#[derive(Clone, Debug)]
struct Family {
    issued: tessera_core::refresh::TokensIssued,
    spent: Vec<String>,
}

#[derive(Clone, Debug)]
struct User {
    username: String,
    password: String,
    account: AccountId,
}

/// One command the driver sent and what the engine answered.
#[derive(Debug)]
pub struct Step {
    pub command: Command,
    pub now: Timestamp,
    pub result: Result<Outcome, EngineError>,
}

/// Sends the engine a seeded stream of commands. What it sends next depends on the seed and
/// on the replies so far, so two engines that answer alike receive the same stream.
#[derive(Debug)]
pub struct Driver {
    pub engine: Engine,
    pub clock: Arc<TestClock>,
    rng: ChaCha20Rng,
    policy: Policy,
    /// argon2's memory, kept between hashes as a hashing thread keeps it.
    area: WorkArea,
    mix: Mix,
    users: Vec<User>,
    sessions: Vec<SessionIssued>,
    families: Vec<Family>,
    registrations: u32,
    pending_totp: BTreeMap<AccountId, Vec<u8>>,
    totp: BTreeMap<AccountId, Totp>,
    /// Open MFA challenges: the `mfa_token` and its account.
    challenges: Vec<(String, AccountId)>,
    /// The backup code the last command presented, to strike off if it worked.
    presented_backup: Option<(AccountId, String)>,
    oauth: OAuthState,
    /// API keys issued: id, the key, its account.
    api_keys: Vec<(tessera_core::ApiKeyId, String, AccountId)>,
    /// Reset tokens the sunset issued and the driver has not spent.
    resets: Vec<(String, AccountId)>,
}

impl Driver {
    pub fn new(engine: Engine, clock: Arc<TestClock>, seed: u64, mix: Mix) -> Self {
        Self {
            engine,
            clock,
            rng: rng(seed),
            policy: policy(),
            area: WorkArea::default(),
            mix,
            users: Vec::new(),
            sessions: Vec::new(),
            families: Vec::new(),
            registrations: 0,
            pending_totp: BTreeMap::new(),
            totp: BTreeMap::new(),
            challenges: Vec::new(),
            presented_backup: None,
            oauth: OAuthState::default(),
            api_keys: Vec::new(),
            resets: Vec::new(),
        }
    }

    /// A driver over a fresh engine on `store`, starting at [`T0`].
    pub fn start(store: Box<dyn EventStore>, seed: u64, mix: Mix) -> Self {
        let clock = TestClock::at(T0);
        let engine = start_engine(store, clock.clone(), seed.wrapping_add(1));
        Self::new(engine, clock, seed, mix)
    }

    /// Moves the clock by a seeded amount (usually seconds, sometimes past an idle timeout or
    /// close to a session's absolute lifetime), then sends one command.
    pub fn step(&mut self) -> Step {
        let (command, password) = match self.oauth.user.clone() {
            Some(u) => {
                self.clock.advance_ms(2_000);
                let session = self.pick(&self.sessions.clone());
                (self.oauth_command(&u, session), None)
            }
            None => {
                self.advance_clock();
                self.next_command()
            }
        };
        let now = self.clock.now();
        let result = self.engine.execute_blocking(command.clone());
        if let Ok(outcome) = &result {
            self.learn(&command, password, &outcome.reply);
        }
        Step {
            command,
            now,
            result,
        }
    }

    pub fn run(&mut self, steps: usize) -> Vec<Step> {
        (0..steps).map(|_| self.step()).collect()
    }

    /// A fixed round of WebAuthn commands for the first enabled user, on the facts the
    /// ceremony crate would hand over (the ceremony itself, with its OS-random challenges,
    /// is exercised over HTTP by the `webauthn` tests): a passkey registered, a passwordless
    /// login, a cloned authenticator's counter refused, a security key registered and the
    /// passkey removed. Every WebAuthn event kind reaches the log. Run after the seeded
    /// steps, so that the seeded stream before it is unchanged.
    pub fn webauthn_round(&mut self) -> Vec<Step> {
        use tessera_core::webauthn::{
            CredentialId, CredentialKind, LoginWithPasskey, NewCredential, RegisterCredential,
            RemoveCredential, VerifiedAssertion,
        };
        let account = {
            let views = self.engine.views();
            self.users
                .iter()
                .map(|u| u.account)
                .find(|a| views.account(a).is_some_and(|v| !v.disabled))
        };
        let Some(account) = account else {
            return Vec::new();
        };
        let new = |id: CredentialId, kind| NewCredential {
            id,
            kind,
            public_key: r#"{"type":"ES256"}"#.into(),
            counter: 0,
            transports: vec!["internal".into()],
            discoverable: kind == CredentialKind::Passkey,
            user_verified: true,
            backup_eligible: false,
        };
        let passkey = CredentialId(self.rng.random::<[u8; 16]>().to_vec());
        let key = CredentialId(self.rng.random::<[u8; 16]>().to_vec());
        let assertion = VerifiedAssertion {
            account,
            credential: passkey.clone(),
            counter: 1,
            user_verified: true,
            backup_state: false,
        };
        let login = LoginWithPasskey {
            assertion,
            mode: LoginMode::Token,
            client: None,
            supersedes: None,
        };
        let commands: Vec<Command> = vec![
            RegisterCredential {
                account,
                name: "Phone".into(),
                credential: new(passkey.clone(), CredentialKind::Passkey),
                step_up: self.auth_time().into(),
            }
            .into(),
            login.clone().into(),
            // The same counter again: a clone.
            login.into(),
            RegisterCredential {
                account,
                name: "Key".into(),
                credential: new(key, CredentialKind::SecurityKey),
                step_up: self.auth_time().into(),
            }
            .into(),
            RemoveCredential {
                account,
                credential: passkey,
            }
            .into(),
        ];
        commands
            .into_iter()
            .map(|command| {
                self.clock.advance_ms(1_000);
                let now = self.clock.now();
                let result = self.engine.execute_blocking(command.clone());
                Step {
                    command,
                    now,
                    result,
                }
            })
            .collect()
    }

    fn advance_clock(&mut self) {
        let session = self.policy.session;
        let ms = match self.rng.random_range(0..100) {
            0..=59 => self.rng.random_range(0..5_000),
            60..=89 => self.rng.random_range(0..=session.touch_interval_ms * 2),
            // Just short of, exactly at, or past the idle timeout.
            90..=97 => session.idle_timeout_ms - 1000 + self.rng.random_range(0..3) * 1000,
            _ => self.rng.random_range(0..session.absolute_lifetime_ms / 2),
        };
        self.clock.advance_ms(ms);
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.random_range(0..items.len())].clone())
    }

    /// The next command, and the new password it carries in hashed form, if any.
    fn next_command(&mut self) -> (Command, Option<String>) {
        let op = self.mix.pick(&mut self.rng);
        let user = self.pick(&self.users.clone());
        let session = self.pick(&self.sessions.clone());
        let command = match (op, user, session) {
            (Op::Login, Some(u), _) => {
                self.login(&u.username, &u.password, LoginMode::Session, None)
            }
            (Op::LoginWrong, Some(u), _) => {
                let client = Some(self.client());
                self.login(
                    &u.username,
                    &format!("{}x", u.password),
                    LoginMode::Session,
                    client,
                )
            }
            (Op::LoginUnknown, _, _) => {
                let ghost = format!("ghost{}", self.rng.random_range(0..1000));
                self.login(&ghost, crate::PASSWORD, LoginMode::Session, None)
            }
            (Op::Touch, _, Some(s)) => {
                Command::from(tessera_core::session::TouchSession { session: s.session })
            }
            (Op::Logout, _, Some(s)) => {
                Command::from(tessera_core::session::Logout { session: s.session })
            }
            (Op::Revoke, Some(u), Some(s)) => {
                // Mostly one's own session; sometimes someone else's, which must be refused.
                let account = if self.rng.random_bool(0.7) {
                    s.account
                } else {
                    u.account
                };
                Command::from(tessera_core::session::RevokeSession {
                    account,
                    session: s.session,
                    step_up: (self.auth_time()).into(),
                })
            }
            (Op::ChangePassword, Some(u), session) => {
                let current = session
                    .filter(|s| s.account == u.account)
                    .map(|s| s.session);
                let new = format!("New password {} A", self.rng.random_range(0..1_000_000));
                let request = ChangePasswordRequest {
                    account: u.account,
                    current_password: u.password.as_str().into(),
                    new_password: new.as_str().into(),
                    current_session: current,
                    client: None,
                };
                let command = self
                    .engine
                    .prepare_here(request, &mut self.rng, &mut self.area)
                    .expect("a policy-compliant password change passes its plan");
                return (command.into(), Some(new));
            }
            (Op::OAuth, Some(u), session) => self.oauth_command(&u, session),
            (Op::LoginToken, Some(u), _) => {
                self.login(&u.username, &u.password, LoginMode::Token, None)
            }
            (Op::Refresh | Op::ReplayRefresh | Op::RevokeRefresh, _, _)
                if !self.families.is_empty() =>
            {
                let f = self.pick(&self.families.clone()).expect("not empty");
                let presented = match op {
                    Op::ReplayRefresh if !f.spent.is_empty() => {
                        f.spent[self.rng.random_range(0..f.spent.len())].clone()
                    }
                    _ => f.issued.refresh.expose().to_owned(),
                };
                let presented = tessera_core::refresh::presented_digest(&presented)
                    .expect("the driver holds well-formed refresh tokens");
                if op == Op::RevokeRefresh {
                    Command::from(tessera_core::refresh::RevokeRefreshToken { presented })
                } else {
                    Command::from(tessera_core::refresh::RefreshTokens { presented })
                }
            }
            (Op::RevokeAccess, _, _) if !self.families.is_empty() => {
                let f = self.pick(&self.families.clone()).expect("not empty");
                Command::from(tessera_core::blocklist::RevokeAccessToken {
                    jti: f.issued.access.jti,
                    account: f.issued.account,
                    expires_at: Timestamp::from_millis(f.issued.access.exp * 1000),
                })
            }
            (Op::LogoutFamily, _, _) if !self.families.is_empty() => {
                let f = self.pick(&self.families.clone()).expect("not empty");
                Command::from(tessera_core::refresh::LogoutFamily {
                    family: f.issued.family,
                })
            }
            (Op::SignOutEverywhere, Some(u), _) => {
                Command::from(tessera_core::blocklist::SignOutEverywhere {
                    account: u.account,
                    by: Actor::Holder,
                    step_up: (self.auth_time()).into(),
                })
            }
            (Op::AddSigningKey, _, _) => {
                let seed: [u8; 32] = self.rng.random();
                tessera_core::signing_key::Signer::from_seed(&seed)
                    .expect("any 32 bytes are an Ed25519 seed")
                    .add_command()
                    .into()
            }
            (
                Op::EnrolTotp
                | Op::ConfirmTotp
                | Op::AnswerMfa
                | Op::ReplaceBackupCodes
                | Op::DisableTotp
                | Op::ResetMfa,
                Some(u),
                _,
            ) => match self.mfa_command(op, &u) {
                Some(command) => command,
                None => return self.register(),
            },
            (Op::ApiKey, Some(u), _) => self.api_key_command(&u),
            (Op::Sunset, _, _) => {
                let now = self.clock.now();
                let mut accounts = tessera_core::migration::sunset_due(
                    &self.engine.views(),
                    now,
                    &self.policy.migration,
                );
                accounts.truncate(tessera_core::migration::SUNSET_ACCOUNTS_PER_COMMAND_MAX);
                Command::from(tessera_core::migration::RetireLegacyCredentials { accounts })
            }
            (Op::ResetPassword, _, _) if !self.resets.is_empty() => {
                let (token, _) = self.pick(&self.resets.clone()).expect("not empty");
                let new = format!("Reset password {} Q", self.rng.random_range(0..1_000_000));
                let request = tessera_core::usecase::ResetPasswordRequest {
                    reset_token: token.clone().into(),
                    new_password: new.as_str().into(),
                    client: None,
                };
                match self
                    .engine
                    .prepare_here(request, &mut self.rng, &mut self.area)
                {
                    Ok(command) => return (command.into(), Some(new)),
                    // Spent by an earlier step, or expired: forget it.
                    Err(_) => {
                        self.resets.retain(|(t, _)| *t != token);
                        return self.register();
                    }
                }
            }
            // A disabled account is enabled again, so that both operator actions reach the
            // log and the account's later logins succeed again (reading the views draws no
            // randomness: the seeded sequence is unchanged up to here).
            (Op::Disable, Some(u), _) => {
                let by = Actor::Operator {
                    name: "driver".into(),
                };
                let disabled = self
                    .engine
                    .views()
                    .account(&u.account)
                    .is_some_and(|a| a.disabled);
                if disabled {
                    Command::from(tessera_core::account::EnableAccount {
                        account: u.account,
                        by,
                    })
                } else {
                    Command::from(tessera_core::account::DisableAccount {
                        account: u.account,
                        by,
                    })
                }
            }
            _ => return self.register(),
        };
        (command, None)
    }

    /// The next command of the OAuth script: clients registered, a code issued, exchanged
    /// and replayed, a device flow polled (sometimes too fast), a wrong user code, approval
    /// and denial, a grant revoked, a secret rotated, a client token revoked, a client
    /// removed; then again.
    fn oauth_command(&mut self, u: &User, session: Option<SessionIssued>) -> Command {
        use tessera_core::oauth::{self, ClientKind, ClientRegistration, GrantType};
        let operator = Actor::Operator {
            name: "driver".into(),
        };
        let register = |id: &str, kind, uri: &str| {
            Command::from(oauth::RegisterClient {
                registration: ClientRegistration {
                    client_id: id.into(),
                    name: id.into(),
                    kind,
                    redirect_uris: vec![uri.into()],
                    grant_types: match kind {
                        ClientKind::Confidential => GrantType::ALL.to_vec(),
                        ClientKind::Public => vec![
                            GrantType::AuthorizationCode,
                            GrantType::RefreshToken,
                            GrantType::DeviceCode,
                        ],
                    },
                    scopes: vec!["read".into(), "write".into()],
                },
                keys: mfa_keys(),
                by: operator.clone(),
            })
        };
        let poll = |device: &Option<(String, String)>| {
            let code = device.as_ref().map_or("", |(c, _)| c.as_str());
            oauth::PollDeviceCode::new(code, PUBLIC.into()).map(Command::from)
        };
        let step = self.oauth.step;
        self.oauth.step = (step + 1) % OAUTH_SCRIPT.len();
        self.oauth.user = (self.oauth.step != 0).then(|| u.clone());
        let session_id = session.map(|s| s.session);
        let address = Some(self.client());
        let user_code = self
            .oauth
            .device
            .as_ref()
            .map_or(String::new(), |(_, c)| c.clone());
        match OAUTH_SCRIPT
            .get(step)
            .copied()
            .unwrap_or(OAuthStep::RegisterConfidential)
        {
            OAuthStep::RegisterConfidential => register(
                CONFIDENTIAL,
                ClientKind::Confidential,
                "https://app.example/cb",
            ),
            OAuthStep::RegisterPublic => {
                register(PUBLIC, ClientKind::Public, "http://127.0.0.1/cb")
            }
            OAuthStep::IssueCode => {
                self.oauth.consented = Some(u.account);
                Command::from(oauth::IssueAuthorizationCode {
                    account: u.account,
                    client_id: CONFIDENTIAL.into(),
                    redirect_uri: "https://app.example/cb".into(),
                    scopes: ["read".to_owned()].into(),
                    code_challenge: oauth::authorize::s256(VERIFIER),
                    state: "xyz".into(),
                    record_consent: true,
                })
            }
            OAuthStep::ExchangeCode => {
                let (code, verifier) = self.oauth.code.clone().unwrap_or_default();
                match oauth::ExchangeAuthorizationCode::new(
                    &code,
                    CONFIDENTIAL.into(),
                    "https://app.example/cb".into(),
                    verifier,
                ) {
                    Ok(c) => c.into(),
                    Err(_) => register(
                        CONFIDENTIAL,
                        ClientKind::Confidential,
                        "https://app.example/cb",
                    ),
                }
            }
            OAuthStep::StartDevice => Command::from(oauth::StartDeviceAuthorization {
                client_id: PUBLIC.into(),
                scope: Some("read".into()),
                address,
            }),
            OAuthStep::WrongUserCode => Command::from(oauth::EnterUserCode {
                user_code: "bbbb-bbbb".into(),
                session: session_id,
                address,
            }),
            OAuthStep::Poll => match poll(&self.oauth.device) {
                Ok(c) => c,
                Err(_) => register(PUBLIC, ClientKind::Public, "http://127.0.0.1/cb"),
            },
            OAuthStep::Approve | OAuthStep::Deny => {
                Command::from(oauth::DecideDeviceAuthorization {
                    user_code,
                    account: u.account,
                    session: session_id,
                    address,
                    decision: if OAUTH_SCRIPT.get(step) == Some(&OAuthStep::Approve) {
                        oauth::DeviceDecision::Approve
                    } else {
                        oauth::DeviceDecision::Deny
                    },
                })
            }
            OAuthStep::RevokeGrant => Command::from(oauth::RevokeGrant {
                account: self.oauth.consented.unwrap_or(u.account),
                client_id: CONFIDENTIAL.into(),
            }),
            OAuthStep::RotateSecret => Command::from(oauth::RotateClientSecret {
                client_id: CONFIDENTIAL.into(),
                overlap_secs: 60,
                keys: mfa_keys(),
                by: operator,
            }),
            OAuthStep::RevokeClientToken => {
                let views = self.engine.views().clone();
                let now = self.clock.now();
                let client = oauth::AuthenticatedClient {
                    client_id: CONFIDENTIAL.into(),
                    kind: ClientKind::Confidential,
                };
                let mut env = tessera_core::Env::new(now, &mut self.rng, &self.policy);
                match oauth::issue_client_token(&views, &client, None, &mut env) {
                    Ok(claims) => Command::from(oauth::RevokeClientToken { claims }),
                    Err(_) => register(
                        CONFIDENTIAL,
                        ClientKind::Confidential,
                        "https://app.example/cb",
                    ),
                }
            }
            OAuthStep::RemoveConfidential => Command::from(oauth::RemoveClient {
                client_id: CONFIDENTIAL.into(),
                by: operator,
            }),
            OAuthStep::RemovePublic => Command::from(oauth::RemoveClient {
                client_id: PUBLIC.into(),
                by: operator,
            }),
        }
    }

    /// An MFA command for `u` (or for an open challenge), as its holder, or an attacker
    /// guessing, would send it.
    fn mfa_command(&mut self, op: Op, u: &User) -> Option<Command> {
        let keys = mfa_keys();
        let now = self.clock.now();
        self.presented_backup = None;
        let pending: Vec<AccountId> = self.pending_totp.keys().copied().collect();
        let enrolled: Vec<AccountId> = self.totp.keys().copied().collect();
        let enrol = Command::from(tessera_core::mfa::StartTotpEnrolment {
            account: u.account,
            keys: keys.clone(),
            step_up: (self.auth_time()).into(),
        });
        // When nothing is in the state the command needs, take the step that leads there,
        // so that the whole flow runs within a few hundred steps.
        let op = match op {
            Op::ConfirmTotp if pending.is_empty() => return Some(enrol),
            Op::AnswerMfa if self.challenges.is_empty() => {
                let Some(account) = self.pick(&enrolled) else {
                    return Some(enrol);
                };
                let holder = self.users.iter().find(|u| u.account == account).cloned()?;
                return Some(self.login(
                    &holder.username,
                    &holder.password,
                    LoginMode::Session,
                    None,
                ));
            }
            Op::ReplaceBackupCodes | Op::DisableTotp | Op::ResetMfa if enrolled.is_empty() => {
                if pending.is_empty() {
                    return Some(enrol);
                }
                Op::ConfirmTotp
            }
            op => op,
        };
        // Mostly an account in the state the command needs; sometimes any, to be refused.
        let fitting = match op {
            Op::ConfirmTotp => self.pick(&pending),
            Op::ReplaceBackupCodes | Op::DisableTotp | Op::ResetMfa => self.pick(&enrolled),
            _ => None,
        };
        let account = match fitting {
            Some(a) if self.rng.random_bool(0.9) => a,
            _ => u.account,
        };
        Some(match op {
            Op::EnrolTotp => enrol,
            Op::ConfirmTotp => {
                let code = match self.pending_totp.get(&account) {
                    Some(secret) if self.rng.random_bool(0.8) => totp_code_at(secret, now)?,
                    _ => "000000".to_owned(),
                };
                Command::from(tessera_core::mfa::ConfirmTotp {
                    account,
                    code: TotpCode::parse(&code).ok()?,
                    keys,
                    client: None,
                })
            }
            Op::AnswerMfa => {
                let (token, account) = self.pick(&self.challenges.clone())?;
                let answer = self.mfa_answer(account, now)?;
                Command::from(tessera_core::mfa::AnswerMfaChallenge {
                    presented: presented_challenge_digest(&token)?,
                    answer,
                    keys,
                    client: Some(self.client()),
                    supersedes: None,
                })
            }
            Op::ReplaceBackupCodes => Command::from(tessera_core::mfa::ReplaceBackupCodes {
                account,
                answer: self.mfa_answer(account, now)?,
                keys,
                client: None,
                step_up: (self.auth_time()).into(),
            }),
            Op::DisableTotp => Command::from(tessera_core::mfa::DisableTotp {
                account,
                answer: self.mfa_answer(account, now)?,
                keys,
                client: None,
                current_session: None,
                current_family: None,
                step_up: (self.auth_time()).into(),
            }),
            _ => Command::from(tessera_core::mfa::ResetMfa {
                account,
                by: Actor::Operator {
                    name: "driver".into(),
                },
            }),
        })
    }

    /// An API-key command: create (short and long lifetimes, so expiry warnings occur),
    /// rotate, revoke, revoke by prefix, a leak report, folded usage, expiry warnings.
    fn api_key_command(&mut self, u: &User) -> Command {
        use tessera_core::apikey::{self as k, ApiKeyKind, Environment};
        let known = self.pick(&self.api_keys.clone());
        let pepper = api_key_pepper();
        match (self.rng.random_range(0..9), known) {
            (2, Some((key, _, account))) => Command::from(k::RotateApiKey {
                account,
                key,
                overlap_secs: Some(self.rng.random_range(0..3600)),
                pepper,
                step_up: self.auth_time().into(),
            }),
            (3, Some((key, _, account))) => Command::from(k::RevokeApiKey { account, key }),
            (4, Some((_, text, _))) => {
                let cut = if self.rng.random_bool(0.5) {
                    text.len()
                } else {
                    24
                };
                let presented = k::PresentedPrefix::read(&text[..cut], &pepper, "tsr")
                    .expect("the driver's keys and their prefixes are well formed");
                Command::from(k::RevokeApiKeyByPrefix {
                    presented,
                    operator: "driver".into(),
                })
            }
            (5, Some((_, text, _))) => Command::from(k::ReportLeakedApiKeys {
                reports: vec![
                    k::LeakReport {
                        digest: Some(pepper.digest(&text)),
                        source: "commit".into(),
                        url: Some("https://example.com/leak".into()),
                    },
                    k::LeakReport {
                        digest: None,
                        source: "content".into(),
                        url: None,
                    },
                ],
            }),
            (6, Some((key, _, _))) => {
                let mut tally = k::UsageTally::default();
                for _ in 0..self.rng.random_range(1..20) {
                    let ip = self.client();
                    tally.record(self.clock.now(), k::UseOutcome::Accepted, Some(ip));
                }
                Command::from(k::RecordApiKeyUsage {
                    tallies: vec![(key, tally)],
                })
            }
            (7, _) => Command::from(k::WarnExpiringApiKeys),
            _ => {
                let kind = if self.rng.random_bool(0.2) {
                    ApiKeyKind::Publishable
                } else {
                    ApiKeyKind::Secret
                };
                let environment = if self.rng.random_bool(0.5) {
                    Environment::Live
                } else {
                    Environment::Test
                };
                let days = [10, 20, 90][self.rng.random_range(0..3)];
                Command::from(k::CreateApiKey {
                    account: u.account,
                    creator_scopes: None,
                    spec: k::ApiKeySpec {
                        name: format!("app {}", self.rng.random_range(0..100)),
                        kind,
                        environment,
                        scopes: vec!["tokens:read".into()],
                        allowed_cidrs: vec![],
                        rate_limit_per_minute: Some(600),
                        expires_in_secs: days * 24 * 3600,
                    },
                    pepper,
                    step_up: self.auth_time().into(),
                })
            }
        }
    }

    /// The caller's authentication time for a sensitive action: just now, as a holder who
    /// re-authenticated would send (stale ones are refused without events, so they would
    /// add nothing to the log this workload exists to fill; tests of the rule send them).
    fn auth_time(&self) -> Option<Timestamp> {
        Some(self.clock.now())
    }

    /// A right TOTP code, a backup code, or a wrong code, for `account`.
    fn mfa_answer(&mut self, account: AccountId, now: Timestamp) -> Option<MfaAnswer> {
        let totp = self.totp.get(&account).cloned();
        match (self.rng.random_range(0..10), totp) {
            (0..=5, Some(t)) => MfaAnswer::totp(&totp_code_at(&t.secret, now)?).ok(),
            (6..=7, Some(t)) if !t.backup_codes.is_empty() => {
                let code = t.backup_codes[self.rng.random_range(0..t.backup_codes.len())].clone();
                self.presented_backup = Some((account, code.clone()));
                MfaAnswer::backup(&code).ok()
            }
            _ => MfaAnswer::totp("999999").ok(),
        }
    }

    /// One of a few client addresses, so that address strikes are recorded and dropped.
    fn client(&mut self) -> std::net::IpAddr {
        std::net::IpAddr::from([198, 51, 100, self.rng.random_range(1..5)])
    }

    /// A fixed script of external sign-ins through the engine, so that a log holds every
    /// identity event: a first sign-in creates an account, a second provider is linked to
    /// it, the first unlinked, the second signs in; and a password user links an identity.
    /// Draws from its own stream, so the seeded sequence of the other commands is unchanged.
    pub fn external_identities(&mut self) -> Vec<Step> {
        use tessera_core::identity::{
            ExternalSignIn, LinkIdentity, PendingSignIn, ProviderRules, SignInPurpose, StateSpent,
            UnlinkIdentity, UpstreamProfile,
        };
        let mut stream = rng(0x1d_e471);
        let tag = self.clock.now().as_millis();
        let profile = |provider: &str, subject: String| UpstreamProfile {
            provider: provider.into(),
            subject,
            username: Some(format!("ext{}", tag % 10_000)),
            email: None,
            mfa_asserted: false,
        };
        let mut state = |now: Timestamp| {
            StateSpent::from(&PendingSignIn::start(
                "upstream",
                false,
                "/",
                SignInPurpose::Login,
                now,
                &mut stream,
            ))
        };
        let sign_in = |profile: UpstreamProfile, state: StateSpent| {
            Command::from(ExternalSignIn {
                profile,
                rules: ProviderRules::default(),
                state,
                mode: LoginMode::Session,
                client: None,
                supersedes: None,
            })
        };
        let mut steps = Vec::new();
        let mut send = |driver: &mut Self, command: Command| {
            driver.clock.advance_ms(1_000);
            let now = driver.clock.now();
            let result = driver.engine.execute_blocking(command.clone());
            let reply = result.as_ref().ok().map(|o| o.reply.clone());
            steps.push(Step {
                command,
                now,
                result,
            });
            reply
        };
        let first = send(
            self,
            sign_in(profile("alpha", format!("a{tag}")), state(self.clock.now())),
        );
        let Some(Ok(tessera_core::Reply::ExternalSignedIn { account, .. })) = first else {
            return steps;
        };
        send(
            self,
            Command::from(LinkIdentity {
                account,
                profile: profile("beta", format!("b{tag}")),
                state: state(self.clock.now()),
                client: None,
            }),
        );
        send(
            self,
            Command::from(UnlinkIdentity {
                account,
                provider: "alpha".into(),
            }),
        );
        send(
            self,
            sign_in(profile("beta", format!("b{tag}")), state(self.clock.now())),
        );
        if let Some(u) = self.users.first().cloned() {
            send(
                self,
                Command::from(LinkIdentity {
                    account: u.account,
                    profile: profile("alpha", format!("u{tag}")),
                    state: state(self.clock.now()),
                    client: None,
                }),
            );
        }
        steps
    }

    fn register(&mut self) -> (Command, Option<String>) {
        // Now and then, a name that differs from a taken one only in case.
        let username = match self.pick(&self.users.clone()) {
            Some(u) if self.rng.random_range(0..8) == 0 => u.username.to_ascii_uppercase(),
            _ => {
                self.registrations += 1;
                format!("user{}", self.registrations)
            }
        };
        // Not built on the username: the policy refuses that.
        let password = format!(
            "Velvet lantern {} orbit",
            self.rng.random_range(0..1_000_000)
        );
        // The expensive half only: the plan would refuse a taken name before the writer, and
        // the writer's own uniqueness check (which settles racing registrations) is what this
        // exercises.
        let decoy = self.engine.decoy();
        // Half from an address (counted by the registration throttle), half as an operator
        // would create them. Derived from the count rather than drawn, so the seeded stream
        // of everything else stays as it was; spread over many addresses so that none is
        // throttled.
        let client = (self.registrations % 2 == 1).then(|| {
            std::net::IpAddr::from([
                203,
                0,
                113,
                u8::try_from(self.registrations % 200).unwrap_or(0),
            ])
        });
        let register = RegisterRequest {
            username,
            email: None,
            password: password.as_str().into(),
            client,
        }
        .prepare(Prepare {
            rng: &mut self.rng,
            area: &mut self.area,
            decoy: &decoy,
            policy: &self.policy,
        })
        .expect("valid registration");
        // Every fifth account comes from a legacy table instead, as an MD5 (raw or salted)
        // or a bcrypt hash, last used long before the driver's start, so that the sunset
        // finds it due unless it logs in first. Derived from the count, not drawn.
        if self.registrations % 5 == 2 {
            return (self.import(&register.username, &password), Some(password));
        }
        let mut command = Command::from(register);
        // Now and then, an account whose hash was made under weaker parameters (as an
        // imported one would be), so that its next login re-hashes it.
        if self.rng.random_range(0..6) == 0
            && let Command::Account(tessera_core::AccountCommand::Register(
                tessera_core::account::Register {
                    password_hash: Some(password_hash),
                    ..
                },
            )) = &mut command
        {
            let weaker = Argon2Params {
                memory_kib: 32,
                ..Argon2Params::INSECURE_FAST
            };
            let salt: [u8; 16] = self.rng.random();
            *password_hash = password::hash(&password, salt, &weaker).expect("valid parameters");
        }
        (command, Some(password))
    }

    /// An import of `username` whose legacy password is `password`.
    fn import(&mut self, username: &str, password: &str) -> Command {
        use md5::Digest as _;
        let (hash, salt, position) = match self.registrations % 3 {
            0 => (
                data_encoding::HEXLOWER.encode(&md5::Md5::digest(password.as_bytes())),
                None,
                None,
            ),
            1 => (
                data_encoding::HEXLOWER
                    .encode(&md5::Md5::digest(format!("{password}pepper").as_bytes())),
                Some("pepper"),
                Some(tessera_core::legacy::SaltPosition::After),
            ),
            _ => (
                bcrypt::hash_with_salt(password, 4, [9; 16])
                    .expect("bcrypt cost 4")
                    .format_for_version(bcrypt::Version::TwoB),
                None,
                None,
            ),
        };
        let request = tessera_core::usecase::ImportRequest {
            username: username.to_owned(),
            email: None,
            hash: tessera_core::legacy::LegacyHash::parse(&hash, salt, position)
                .expect("a well-formed legacy hash"),
            last_active_at: Some(Timestamp::from_millis(
                T0.as_millis() - 200 * 24 * 60 * 60 * 1000,
            )),
        };
        let decoy = self.engine.decoy();
        request
            .prepare(Prepare {
                rng: &mut self.rng,
                area: &mut self.area,
                decoy: &decoy,
                policy: &self.policy,
            })
            .expect("an import's expensive half")
            .into()
    }

    /// A password login, prepared as every driver prepares it.
    fn login(
        &mut self,
        username: &str,
        password: &str,
        mode: LoginMode,
        client: Option<std::net::IpAddr>,
    ) -> Command {
        let request = |client| LoginRequest {
            username: username.to_owned(),
            password: password.into(),
            mode,
            client,
            supersedes: None,
        };
        let prepared = self
            .engine
            .prepare_here(request(client), &mut self.rng, &mut self.area);
        match prepared {
            Ok(login) => login.into(),
            // The address is throttled: a client is answered 429 before argon2. Send the same
            // attempt without an address, so that the step still reaches the writer.
            Err(_) => self
                .engine
                .prepare_here(request(None), &mut self.rng, &mut self.area)
                .expect("a login without an address passes its plan")
                .into(),
        }
    }

    fn learn_oauth(&mut self, reply: &tessera_core::oauth::OAuthReply) {
        use tessera_core::oauth::OAuthReply;
        match reply {
            OAuthReply::CodeIssued(issued) => {
                self.oauth.code = Some((issued.code.expose().to_owned(), VERIFIER.to_owned()));
            }
            OAuthReply::DeviceStarted(started) => {
                self.oauth.device = Some((
                    started.device_code.expose().to_owned(),
                    started.user_code.clone(),
                ));
            }
            OAuthReply::Tokens(issued) => self.families.push(Family {
                issued: issued.clone(),
                spent: Vec::new(),
            }),
            _ => {}
        }
    }

    /// Keeps what the driver knows (users, passwords, sessions it holds) in step with the
    /// engine's answers.
    fn learn(
        &mut self,
        command: &Command,
        password: Option<String>,
        reply: &Result<Reply, tessera_core::Rejection>,
    ) {
        if let (Some((account, code)), Ok(_)) = (self.presented_backup.take(), reply)
            && let Some(t) = self.totp.get_mut(&account)
        {
            t.backup_codes.retain(|c| *c != code);
        }
        match (command, reply) {
            (
                Command::Account(tessera_core::AccountCommand::Register(
                    tessera_core::account::Register { username, .. },
                )),
                Ok(Reply::Registered { account, .. }),
            ) => {
                let password = password.expect("a registration carries its password");
                self.users.push(User {
                    username: username.clone(),
                    password,
                    account: *account,
                });
            }
            (
                Command::Migration(tessera_core::MigrationCommand::Import(i)),
                Ok(Reply::Imported { account, .. }),
            ) => {
                let password = password.expect("an import carries its legacy password");
                self.users.push(User {
                    username: i.username.clone(),
                    password,
                    account: *account,
                });
            }
            (_, Ok(Reply::LegacyRetired(issued))) => {
                self.resets.extend(
                    issued
                        .iter()
                        .map(|r| (r.token.expose().to_owned(), r.account)),
                );
            }
            (
                Command::Migration(tessera_core::MigrationCommand::ResetPassword(r)),
                Ok(Reply::PasswordReset),
            ) => {
                let spent: Vec<AccountId> = self
                    .resets
                    .iter()
                    .filter(|(t, _)| {
                        tessera_core::migration::presented_reset_digest(t) == Some(r.presented)
                    })
                    .map(|(_, a)| *a)
                    .collect();
                self.resets.retain(|(t, _)| {
                    tessera_core::migration::presented_reset_digest(t) != Some(r.presented)
                });
                for account in spent {
                    self.sessions.retain(|s| s.account != account);
                    if let Some(u) = self.users.iter_mut().find(|u| u.account == account) {
                        u.password = password.clone().expect("a reset carries its new password");
                    }
                }
            }
            (_, Ok(Reply::LoggedIn(issued))) => self.sessions.push(issued.clone()),
            (Command::ApiKey(c), Ok(Reply::ApiKeyIssued(issued))) => {
                let account = match c {
                    tessera_core::ApiKeyCommand::Create(c) => c.account,
                    tessera_core::ApiKeyCommand::Rotate(c) => c.account,
                    _ => return,
                };
                self.api_keys
                    .push((issued.id, issued.key.to_string(), account));
            }
            (
                Command::Session(tessera_core::SessionCommand::Login(
                    tessera_core::session::Login { .. },
                )),
                Ok(Reply::TokensIssued(issued)),
            ) => {
                self.families.push(Family {
                    issued: issued.clone(),
                    spent: Vec::new(),
                });
            }
            (
                Command::Mfa(tessera_core::MfaCommand::StartTotpEnrolment(
                    tessera_core::mfa::StartTotpEnrolment { account, .. },
                )),
                Ok(Reply::TotpEnrolmentStarted(e)),
            ) => {
                if let Ok(secret) = data_encoding::BASE32_NOPAD.decode(e.secret_base32.as_bytes()) {
                    self.pending_totp.insert(*account, secret);
                }
            }
            (
                Command::Mfa(tessera_core::MfaCommand::ConfirmTotp(
                    tessera_core::mfa::ConfirmTotp { account, .. },
                )),
                Ok(Reply::TotpEnabled { backup_codes }),
            ) => {
                if let Some(secret) = self.pending_totp.remove(account) {
                    let backup_codes: Vec<String> = backup_codes
                        .expose()
                        .iter()
                        .map(|c| c.to_string())
                        .collect();
                    self.totp.insert(
                        *account,
                        Totp {
                            secret,
                            backup_codes,
                        },
                    );
                }
            }
            (
                Command::Mfa(tessera_core::MfaCommand::ReplaceBackupCodes(
                    tessera_core::mfa::ReplaceBackupCodes { account, .. },
                )),
                Ok(Reply::BackupCodesReplaced { backup_codes }),
            ) => {
                if let Some(t) = self.totp.get_mut(account) {
                    t.backup_codes = backup_codes
                        .expose()
                        .iter()
                        .map(|c| c.to_string())
                        .collect();
                }
            }
            (
                Command::Mfa(tessera_core::MfaCommand::DisableTotp(
                    tessera_core::mfa::DisableTotp { account, .. },
                )),
                Ok(Reply::TotpDisabled),
            )
            | (
                Command::Mfa(tessera_core::MfaCommand::Reset(tessera_core::mfa::ResetMfa {
                    account,
                    ..
                })),
                Ok(Reply::MfaReset),
            ) => {
                self.totp.remove(account);
                self.pending_totp.remove(account);
            }
            (_, Ok(Reply::OAuth(reply))) => self.learn_oauth(reply),
            (_, Ok(Reply::MfaRequired(c))) => {
                self.challenges
                    .push((c.mfa_token.expose().to_owned(), c.account));
            }
            (
                Command::Mfa(tessera_core::MfaCommand::AnswerChallenge(
                    tessera_core::mfa::AnswerMfaChallenge { presented, .. },
                )),
                reply,
            ) => {
                let done = !matches!(
                    reply,
                    Err(tessera_core::Rejection::MfaCodeInvalid { .. }
                        | tessera_core::Rejection::MfaCodeReplayed { .. }
                        | tessera_core::Rejection::Throttled { .. })
                );
                if done {
                    self.challenges
                        .retain(|(t, _)| presented_challenge_digest(t).as_ref() != Some(presented));
                }
                match reply {
                    Ok(Reply::LoggedIn(issued)) => self.sessions.push(issued.clone()),
                    Ok(Reply::TokensIssued(issued)) => self.families.push(Family {
                        issued: issued.clone(),
                        spent: Vec::new(),
                    }),
                    _ => {}
                }
            }
            (
                Command::Token(tessera_core::TokenCommand::Refresh(
                    tessera_core::refresh::RefreshTokens { .. },
                )),
                Ok(Reply::TokensIssued(issued)),
            ) => {
                if let Some(f) = self
                    .families
                    .iter_mut()
                    .find(|f| f.issued.family == issued.family)
                {
                    f.spent.push(f.issued.refresh.expose().to_owned());
                    f.issued = issued.clone();
                }
            }
            (
                Command::Session(tessera_core::SessionCommand::Logout(
                    tessera_core::session::Logout { session },
                ))
                | Command::Session(tessera_core::SessionCommand::Revoke(
                    tessera_core::session::RevokeSession { session, .. },
                )),
                Ok(Reply::SessionEnded),
            ) => {
                self.sessions.retain(|s| s.session != *session);
            }
            (
                Command::Account(tessera_core::AccountCommand::ChangePassword(
                    tessera_core::account::ChangePassword { check, .. },
                )),
                Ok(Reply::PasswordChanged { session }),
            ) => {
                let account = check
                    .account
                    .expect("a successful change names its account");
                self.sessions.retain(|s| s.account != account);
                self.sessions.extend(session.clone());
                if let Some(u) = self.users.iter_mut().find(|u| u.account == account) {
                    u.password = password.expect("a password change carries its new password");
                }
            }
            _ => {}
        }
    }
}
