//! A small given/when/then harness for `decide` + `apply`, shared by the unit and property
//! tests: commands are decided and their events applied at the world's clock, and the
//! invariants are checked after each one.

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test harness: a wrong reply fails the test that asked"
)]

use rand::SeedableRng;

use crate::password::{PasswordHash, Verification};
use crate::refresh::TokensIssued;
use crate::signing_key::Signer;
use crate::{
    AccountId, Command, Decide, Env, Event, LoginMode, PasswordCheck, Policy, Rejection, Reply,
    Timestamp, Views,
};

/// Views, a policy, a seeded RNG and a clock: decide commands and apply their events.
#[derive(Debug)]
pub struct World {
    pub views: Views,
    pub policy: Policy,
    pub rng: rand::rngs::ChaCha20Rng,
    pub now: Timestamp,
    /// Every event applied, with its time.
    pub log: Vec<(Timestamp, Event)>,
}

impl World {
    pub fn new(seed: u64) -> Self {
        Self {
            views: Views::default(),
            policy: Policy::fast_for_tests(),
            rng: rand::rngs::ChaCha20Rng::seed_from_u64(seed),
            now: Timestamp::from_millis(1_700_000_000_000),
            log: Vec::new(),
        }
    }

    pub fn advance_secs(&mut self, secs: u64) {
        self.now = self.now.plus_ms(secs * 1000);
    }

    pub fn run<C: Decide>(&mut self, command: C) -> Result<C::Reply, Rejection> {
        let mut env = Env::new(self.now, &mut self.rng, &self.policy);
        let decision = command.decide(&self.views, &mut env);
        let mut touched = Vec::new();
        for pending in decision.events {
            self.views
                .apply(self.now, &pending.event, &mut touched)
                .expect("decided events apply");
            self.log.push((self.now, pending.event));
        }
        self.views.check_invariants().expect("invariants hold");
        decision.reply
    }

    /// The kinds of the events the last `n` applications recorded.
    pub fn last_kinds(&self, n: usize) -> Vec<&'static str> {
        self.log
            .iter()
            .rev()
            .take(n)
            .rev()
            .map(|(_, e)| e.kind())
            .collect()
    }

    pub fn register(&mut self, username: &str) -> AccountId {
        let hash = PasswordHash(format!("$argon2id$v=19$m=64,t=1,p=1$c2FsdA${username}"));
        match self.run(Command::from(crate::account::Register {
            username: username.into(),
            email: None,
            password_hash: hash,
        })) {
            Ok(Reply::Registered { account, .. }) => account,
            other => panic!("register failed: {other:?}"),
        }
    }

    /// A password check that succeeded against the account's current hash.
    pub fn good_check(&self, account: AccountId) -> PasswordCheck {
        let hash = self
            .views
            .account(&account)
            .expect("account exists")
            .password_hash
            .clone();
        PasswordCheck {
            account: Some(account),
            checked_hash: hash,
            outcome: Verification::Match { stale: false },
            rehash: None,
        }
    }

    pub fn login_tokens(&mut self, account: AccountId) -> TokensIssued {
        let check = self.good_check(account);
        match self.run(Command::from(crate::session::Login {
            check,
            mode: LoginMode::Token,
            client: None,
        })) {
            Ok(Reply::TokensIssued(t)) => t,
            other => panic!("token login failed: {other:?}"),
        }
    }

    pub fn refresh(&mut self, refresh: &str) -> Result<TokensIssued, Rejection> {
        let Some(presented) = crate::refresh::presented_digest(refresh) else {
            return Err(Rejection::RefreshTokenInvalid);
        };
        match self.run(Command::from(crate::refresh::RefreshTokens { presented }))? {
            Reply::TokensIssued(t) => Ok(t),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Adds a signing key from `seed` and returns its signer.
    pub fn add_key(&mut self, seed: u8) -> Signer {
        let signer = Signer::from_seed(&[seed; 32]).expect("seed makes a signer");
        self.run(signer.add_command()).expect("key is added");
        signer
    }
}
