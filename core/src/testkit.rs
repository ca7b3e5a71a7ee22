//! The test kit: one given/when/then harness for decisions, with the start time, passwords,
//! policy and seeded randomness every test shares. Core's own unit tests use it directly; the
//! integration suite (`tessera_tests`) re-exports it.
//!
//! ```ignore
//! let mut s = Given::events([fixtures::registered(alice, "alice", PASSWORD)]);
//! let cmd = s.login("ALICE", "wrong password 1A");
//! s.when(cmd)
//!     .then_events(&[Event::LoginFailed { account: alice, reason: WrongPassword, client: None }])
//!     .then_rejected(Rejection::InvalidCredentials);
//! ```
//!
//! A decision's events are applied to the views at the decision's time, as the writer does,
//! and a refused one panics: a decision that the views cannot fold is a bug that would stop
//! the engine. The views' invariants are checked after every step. Commands that need argon2
//! are built through [`crate::usecase`], as every driver builds them, so a test cannot hand
//! the writer a password check the server could never produce.
//!
//! Decisions and argon2 salts draw from two streams of the same seed, so that adding a hash
//! to a test does not change the ids and secrets its decisions draw.

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test harness: a wrong reply fails the test that asked"
)]

use std::net::IpAddr;

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use crate::password::{self, PasswordHash, WorkArea};
use crate::refresh::TokensIssued;
use crate::session::{Login, SessionIssued};
use crate::signing_key::Signer;
use crate::usecase::{
    ChangePasswordRequest, LoginRequest, Planned, Prepare, RegisterRequest, UseCase,
};
use crate::{
    AccountId, Command, Decide, Env, Event, LoginMode, PasswordCheck, Policy, Rejection, Reply,
    SessionId, Timestamp, Views,
};

/// The time every test starts at: 2023-11-14T22:13:20Z.
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// A password every policy rule accepts.
pub const PASSWORD: &str = "Correct horse 9 battery";
/// Another acceptable password, for changes.
pub const NEW_PASSWORD: &str = "Staple battery 7 horse";

/// The policy every test uses: real rules, cheap argon2.
pub fn policy() -> Policy {
    Policy::fast_for_tests()
}

/// A ChaCha20 stream from `seed`: the only randomness tests use.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Applies `events`, each recorded at its time, to fresh views: a rebuild without storage.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a (Timestamp, Event)>) -> Views {
    let mut views = Views::default();
    let mut touched = Vec::new();
    for (at, event) in events {
        views
            .apply(*at, event, &mut touched)
            .unwrap_or_else(|e| panic!("fold: {e}"));
    }
    views
}

/// The state a test runs against, and the means to build commands as the server would.
pub struct Given {
    /// The views every decision reads; events are folded into them as the writer would.
    pub views: Views,
    /// The time the next decision is made at.
    pub now: Timestamp,
    /// The policy decisions are made under (real rules, cheap argon2).
    pub policy: Policy,
    /// Every event folded into `views`, given or decided, with the time it was applied at.
    pub log: Vec<(Timestamp, Event)>,
    /// Feeds `Env::rng` for decisions.
    env_rng: ChaCha20Rng,
    /// Feeds argon2 salts in `prepare`, apart from the decisions' stream.
    prepare_rng: ChaCha20Rng,
    decoy: PasswordHash,
    area: WorkArea,
}

impl std::fmt::Debug for Given {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Given")
            .field("now", &self.now)
            .field("log", &self.log.len())
            .finish_non_exhaustive()
    }
}

impl Given {
    /// Empty views at [`T0`], seed 1.
    pub fn nothing() -> Self {
        Self::seeded(1)
    }

    /// Empty views at [`T0`], with decisions and salts drawn from `seed`.
    pub fn seeded(seed: u64) -> Self {
        let policy = policy();
        let decoy =
            password::decoy_hash(&policy.argon2).expect("test policy argon2 parameters are valid");
        Self {
            views: Views::default(),
            now: T0,
            policy,
            log: Vec::new(),
            env_rng: rng(seed),
            prepare_rng: rng(seed ^ 0x5eed_5a17),
            decoy,
            area: WorkArea::default(),
        }
    }

    /// `events`, folded at [`T0`].
    pub fn events(events: impl IntoIterator<Item = Event>) -> Self {
        Self::nothing().and(events)
    }

    /// Folds more events at the current time.
    pub fn and(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        self.apply_all(events);
        self
    }

    /// Folds more events at the current time, in place.
    pub fn apply_all(&mut self, events: impl IntoIterator<Item = Event>) {
        let mut touched = Vec::new();
        for event in events {
            self.views
                .apply(self.now, &event, &mut touched)
                .unwrap_or_else(|e| panic!("given event refused: {e}"));
            self.log.push((self.now, event));
        }
        self.assert_invariants();
    }

    /// Sets the time the next decision is made at.
    pub fn at(&mut self, now: Timestamp) -> &mut Self {
        assert!(now >= self.now, "scenario time never goes backwards");
        self.now = now;
        self
    }

    /// Moves the time forward by `ms` milliseconds.
    pub fn advance_ms(&mut self, ms: u64) -> &mut Self {
        self.now = self.now.plus_ms(ms);
        self
    }

    /// Moves the time forward by `secs` seconds.
    pub fn advance_secs(&mut self, secs: u64) -> &mut Self {
        self.advance_ms(secs * 1000)
    }

    /// Decides `command` at the current time, folds its events into the views, and returns
    /// the command's own reply.
    pub fn run<C: Decide>(&mut self, command: C) -> Result<C::Reply, Rejection> {
        self.decide_and_fold(command).1
    }

    /// Decides `command` at the current time and folds its events into the views.
    pub fn when(&mut self, command: impl Into<Command>) -> Then {
        let (events, reply) = self.decide_and_fold(command.into());
        Then {
            events,
            reply,
            at: self.now,
        }
    }

    fn decide_and_fold<C: Decide>(
        &mut self,
        command: C,
    ) -> (Vec<Event>, Result<C::Reply, Rejection>) {
        let mut env = Env::new(self.now, &mut self.env_rng, &self.policy);
        let decision = command.decide(&self.views, &mut env);
        let mut events = Vec::with_capacity(decision.events.len());
        let mut touched = Vec::new();
        for pending in decision.events {
            assert_eq!(
                pending.stream,
                pending.event.stream(),
                "a pending event names another stream than its own"
            );
            if let Err(e) = self.views.apply(self.now, &pending.event, &mut touched) {
                panic!(
                    "the views refuse an event the decision produced at {}: {e}\n(decision so far: {events:#?})",
                    self.now
                );
            }
            self.log.push((self.now, pending.event.clone()));
            events.push(pending.event);
        }
        self.assert_invariants();
        (events, decision.reply)
    }

    /// Decides `command` without changing the scenario (views, log and RNG stay as they are;
    /// the decision draws from a throwaway stream).
    pub fn peek(&self, command: impl Into<Command>) -> Then {
        let mut rng = rng(0x9ee4);
        let mut env = Env::new(self.now, &mut rng, &self.policy);
        let decision = crate::decide(&self.views, command.into(), &mut env);
        Then {
            events: decision.events.into_iter().map(|p| p.event).collect(),
            reply: decision.reply,
            at: self.now,
        }
    }

    /// An `Env` at the current time on the decisions' stream, for a test that builds events
    /// by hand; fold them with [`Given::apply_all`].
    pub fn env(&mut self) -> Env<'_> {
        Env::new(self.now, &mut self.env_rng, &self.policy)
    }

    /// The kinds of the last `n` events folded.
    pub fn last_kinds(&self, n: usize) -> Vec<&'static str> {
        let from = self.log.len().saturating_sub(n);
        self.log[from..].iter().map(|(_, e)| e.kind()).collect()
    }

    /// Panics unless the views' invariants hold (every view, every index).
    pub fn assert_invariants(&self) {
        if let Err(e) = self.views.check_invariants() {
            panic!("view invariant broken at {}: {e}", self.now);
        }
    }

    /// The views a fresh fold of everything recorded gives; must equal `self.views`.
    pub fn refolded(&self) -> Views {
        fold(&self.log)
    }

    /// What the expensive half of a use case is given, as a hashing thread gives it.
    fn prep(&mut self) -> Prepare<'_> {
        Prepare {
            rng: &mut self.prepare_rng,
            area: &mut self.area,
            decoy: &self.decoy,
            policy: &self.policy,
        }
    }

    /// An import of `username` with `hash` (a legacy hash as a table states it), run through
    /// its use case's plan and prepare.
    pub fn import(&mut self, username: &str, hash: &str) -> Result<Command, Rejection> {
        let hash = crate::legacy::LegacyHash::parse(hash, None, None)
            .unwrap_or_else(|e| panic!("test hash is valid: {e}"));
        let request = crate::usecase::ImportRequest {
            username: username.to_owned(),
            email: None,
            hash,
            last_active_at: None,
        };
        let plan = request.plan(&self.views, self.now, &self.policy)?;
        plan.prepare(self.prep()).map(Command::from)
    }

    /// `username` imported with `hash`, decided and folded.
    pub fn imported(&mut self, username: &str, hash: &str) -> AccountId {
        let command = self
            .import(username, hash)
            .unwrap_or_else(|r| panic!("import of {username}: {r}"));
        match self.run(command) {
            Ok(crate::Reply::Imported { account, .. }) => account,
            other => panic!("import of {username}: {other:?}"),
        }
    }

    /// A password reset with `token`, through its use case's plan and prepare.
    pub fn reset_password(
        &mut self,
        token: &str,
        new_password: &str,
    ) -> Result<Command, Rejection> {
        let request = crate::usecase::ResetPasswordRequest {
            reset_token: token.to_owned().into(),
            new_password: new_password.into(),
            client: None,
        };
        let plan = request.plan(&self.views, self.now, &self.policy)?;
        plan.prepare(self.prep()).map(Command::from)
    }

    /// The password check of a login, with the work it did per scheme family.
    pub fn measured_check(
        &mut self,
        username: &str,
        password: &str,
    ) -> (PasswordCheck, crate::legacy::WorkDone) {
        let target = crate::prepare::CheckTarget::of(
            &self.views,
            self.views.account_by_username(username),
            &self.policy,
        );
        crate::prepare::check_password_measured(
            password,
            &target,
            &self.decoy,
            &self.policy,
            &mut self.prepare_rng,
            &mut self.area,
        )
    }

    /// A registration, validated and hashed as every driver does it. Only the expensive half
    /// runs, so that a taken name reaches the writer's own uniqueness check.
    pub fn register(
        &mut self,
        username: &str,
        email: Option<&str>,
        password: &str,
    ) -> Result<Command, Rejection> {
        let request = RegisterRequest {
            username: username.to_owned(),
            email: email.map(str::to_owned),
            password: password.into(),
            client: None,
        };
        request.prepare(self.prep()).map(Command::from)
    }

    /// A registration from `client`, run as the HTTP adapter runs it: the plan (address
    /// throttle, shape, taken name) and then, only if the plan passes, the expensive half.
    /// The plan's refusals come back before any argon2 work.
    pub fn register_from(
        &mut self,
        username: &str,
        client: std::net::IpAddr,
    ) -> Result<Command, Rejection> {
        let request = RegisterRequest {
            username: username.to_owned(),
            email: None,
            password: "Correct horse 9 battery".into(),
            client: Some(client),
        };
        let plan = request.plan(&self.views, self.now, &self.policy)?;
        plan.prepare(self.prep()).map(Command::from)
    }

    /// `password` checked against `username`'s current hash (or the decoy), as the server
    /// does off the writer.
    pub fn check(&mut self, username: &str, password: &str) -> PasswordCheck {
        match self.login_command(username, password, LoginMode::Session, None) {
            Ok(login) => login.check,
            Err(r) => panic!("a login without an address passes its plan: {r}"),
        }
    }

    /// A login planned and prepared as the server does it: an address that must wait is
    /// refused here, before any argon2 work.
    pub fn login_command(
        &mut self,
        username: &str,
        password: &str,
        mode: LoginMode,
        client: Option<IpAddr>,
    ) -> Result<Login, Rejection> {
        let request = LoginRequest {
            username: username.to_owned(),
            password: password.into(),
            mode,
            client,
            supersedes: None,
        };
        let plan = request.plan(&self.views, self.now, &self.policy)?;
        plan.prepare(self.prep())
    }

    /// A session-mode login without an address.
    pub fn login(&mut self, username: &str, password: &str) -> Command {
        Command::from(Login {
            check: self.check(username, password),
            mode: LoginMode::Session,
            client: None,
            supersedes: None,
        })
    }

    /// A password change built by its use case: the current password checked, the new one hashed.
    pub fn change_password(
        &mut self,
        username: &str,
        current: &str,
        new: &str,
        session: Option<SessionId>,
    ) -> Command {
        let account = self
            .views
            .account_by_username(username)
            .map(|a| a.id)
            .expect("the account exists");
        let request = ChangePasswordRequest {
            account,
            current_password: current.into(),
            new_password: new.into(),
            current_session: session,
            client: None,
        };
        let plan = request
            .plan(&self.views, self.now, &self.policy)
            .expect("a password change passes its plan");
        Command::from(
            plan.prepare(self.prep())
                .expect("new password meets policy"),
        )
    }

    /// Registers `username` with [`PASSWORD`]; panics unless it succeeds.
    pub fn registered(&mut self, username: &str) -> AccountId {
        let command = self
            .register(username, None, PASSWORD)
            .expect("valid registration");
        self.when(command).account()
    }

    /// Logs `username` in with [`PASSWORD`]; panics unless it succeeds.
    pub fn logged_in(&mut self, username: &str) -> SessionIssued {
        let command = self.login(username, PASSWORD);
        self.when(command).session()
    }

    /// Logs `username` in with [`PASSWORD`] in token mode; panics unless it gets tokens.
    pub fn login_tokens(&mut self, username: &str) -> TokensIssued {
        let login = self
            .login_command(username, PASSWORD, LoginMode::Token, None)
            .unwrap_or_else(|r| panic!("a login without an address passes its plan: {r}"));
        match self.run(Command::from(login)) {
            Ok(Reply::TokensIssued(t)) => t,
            other => panic!("token login failed: {other:?}"),
        }
    }

    /// Presents `refresh` as the token endpoint does: garbage never reaches the writer.
    pub fn refresh(&mut self, refresh: &str) -> Result<TokensIssued, Rejection> {
        let command = crate::usecase::refresh(refresh)?;
        self.run(command)
    }

    /// Adds a signing key from `seed` and returns its signer.
    pub fn add_key(&mut self, seed: u8) -> Signer {
        let signer = Signer::from_seed(&[seed; 32]).expect("seed makes a signer");
        self.run(signer.add_command()).expect("key is added");
        signer
    }
}

/// What one decision came to.
#[derive(Debug)]
pub struct Then {
    /// The events the decision recorded, in order.
    pub events: Vec<Event>,
    /// Its reply, or the refusal.
    pub reply: Result<Reply, Rejection>,
    /// The time it was decided and its events applied at.
    pub at: Timestamp,
}

impl Then {
    /// Asserts the decision recorded exactly `expected`.
    #[track_caller]
    pub fn then_events(&self, expected: &[Event]) -> &Self {
        assert_eq!(self.events, expected, "events");
        self
    }

    /// Asserts the decision recorded nothing.
    #[track_caller]
    pub fn then_no_events(&self) -> &Self {
        self.then_events(&[])
    }

    /// Asserts the kinds of the events the decision recorded.
    #[track_caller]
    pub fn then_kinds(&self, kinds: &[&str]) -> &Self {
        let got: Vec<&str> = self.events.iter().map(Event::kind).collect();
        assert_eq!(got, kinds, "event kinds");
        self
    }

    /// Asserts the reply.
    #[track_caller]
    pub fn then_reply(&self, expected: Reply) -> &Self {
        assert_eq!(self.reply, Ok(expected), "reply");
        self
    }

    /// Asserts the refusal.
    #[track_caller]
    pub fn then_rejected(&self, rejection: Rejection) -> &Self {
        assert_eq!(self.reply, Err(rejection), "reply");
        self
    }

    /// The session a login or password change handed out.
    #[track_caller]
    pub fn session(&self) -> SessionIssued {
        match &self.reply {
            Ok(Reply::LoggedIn(issued))
            | Ok(Reply::PasswordChanged {
                session: Some(issued),
            }) => issued.clone(),
            other => panic!("expected a session, got {other:?}"),
        }
    }

    /// The account a registration created.
    #[track_caller]
    pub fn account(&self) -> AccountId {
        match &self.reply {
            Ok(Reply::Registered { account, .. }) => *account,
            other => panic!("expected a registration, got {other:?}"),
        }
    }
}
