//! Session rules over random sequences of operations, against a small reference model.
//!
//! The model knows, for every session ever issued, whether something ended it (logout,
//! revocation, a password change unless it was the rotated session, the account's
//! disabling) and its two deadlines. After every step, every session ever issued must be
//! accepted by `TouchSession` exactly when the model says it is live; the views'
//! invariants must hold; and folding the recorded events into fresh views must give the
//! live views.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, RngSeed};
use tessera_core::policy::SessionPolicy;
use tessera_core::{AccountId, Actor, Command, Event, Reply, SessionId, Timestamp};
use tessera_tests::Given;
use tessera_tests::fixtures::account;

const USERS: u8 = 3;

#[derive(Clone, Debug)]
enum Op {
    Register {
        user: u8,
        shout: bool,
    },
    Login {
        user: u8,
        right: bool,
    },
    Touch(Index),
    Logout(Index),
    /// `as_user` asks to end a session, which may be someone else's.
    Revoke {
        as_user: u8,
        session: Index,
    },
    /// Through one of the sessions issued so far (maybe the user's own), or none.
    ChangePassword {
        user: u8,
        right: bool,
        through: Option<Index>,
    },
    Disable(u8),
    Advance(u64),
}

fn advance() -> impl Strategy<Value = u64> {
    let p = SessionPolicy::default();
    prop_oneof![
        4 => 0..5_000u64,
        1 => Just(p.touch_interval_ms - 1),
        1 => Just(p.touch_interval_ms),
        1 => Just(p.idle_timeout_ms - 1),
        1 => Just(p.idle_timeout_ms),
        2 => 0..p.idle_timeout_ms * 2,
        1 => 0..p.absolute_lifetime_ms,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    prop_oneof![
        2 => (user.clone(), prop::bool::weighted(0.2)).prop_map(|(user, shout)| Op::Register { user, shout }),
        4 => (user.clone(), prop::bool::weighted(0.8)).prop_map(|(user, right)| Op::Login { user, right }),
        4 => any::<Index>().prop_map(Op::Touch),
        2 => any::<Index>().prop_map(Op::Logout),
        1 => (user.clone(), any::<Index>()).prop_map(|(as_user, session)| Op::Revoke { as_user, session }),
        1 => (user.clone(), prop::bool::weighted(0.8), proptest::option::of(any::<Index>()))
            .prop_map(|(user, right, through)| Op::ChangePassword { user, right, through }),
        1 => user.prop_map(Op::Disable),
        4 => advance().prop_map(Op::Advance),
    ]
}

#[derive(Debug, Default)]
struct ModelUser {
    account: Option<AccountId>,
    password: String,
    disabled: bool,
}

#[derive(Debug)]
struct ModelSession {
    id: SessionId,
    account: AccountId,
    ended: bool,
    last_seen: Timestamp,
    idle_ms: u64,
    expires_at: Timestamp,
}

impl ModelSession {
    fn live(&self, now: Timestamp) -> bool {
        !self.ended && now < self.last_seen.plus_ms(self.idle_ms).min(self.expires_at)
    }
}

struct Model {
    users: Vec<ModelUser>,
    sessions: Vec<ModelSession>,
    changes: u32,
}

fn username(user: u8, shout: bool) -> String {
    let name = format!("user{user}");
    if shout {
        name.to_ascii_uppercase()
    } else {
        name
    }
}

impl Model {
    fn new() -> Self {
        Self {
            users: (0..USERS).map(|_| ModelUser::default()).collect(),
            sessions: Vec::new(),
            changes: 0,
        }
    }

    fn session(&self, index: &Index) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| index.index(self.sessions.len()))
    }

    fn issued(&mut self, s: &Given, reply: &Reply) {
        let issued = match reply {
            Reply::LoggedIn(issued)
            | Reply::PasswordChanged {
                session: Some(issued),
            } => issued,
            _ => return,
        };
        assert!(
            self.sessions.iter().all(|m| m.id != issued.session),
            "a session id was issued twice"
        );
        self.sessions.push(ModelSession {
            id: issued.session,
            account: issued.account,
            ended: false,
            last_seen: s.now,
            idle_ms: s.policy.session.idle_timeout_ms,
            expires_at: issued.expires_at,
        });
    }

    fn end_all_of(&mut self, account: AccountId) {
        self.sessions
            .iter_mut()
            .filter(|m| m.account == account)
            .for_each(|m| m.ended = true);
    }

    /// Runs `op` through `decide` and checks the outcome against the model.
    fn step(&mut self, s: &mut Given, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Advance(ms) => {
                s.advance_ms(*ms);
            }
            Op::Register { user, shout } => {
                let u = &self.users[usize::from(*user)];
                let password = format!("Velvet lantern {user} orbit");
                let command = s
                    .register(&username(*user, *shout), None, &password)
                    .expect("valid");
                let then = s.when(command);
                prop_assert_eq!(
                    then.reply.is_ok(),
                    u.account.is_none(),
                    "register {}: {:?}",
                    user,
                    then.reply
                );
                if let Ok(Reply::Registered { account, .. }) = then.reply {
                    self.users[usize::from(*user)] = ModelUser {
                        account: Some(account),
                        password,
                        disabled: false,
                    };
                }
            }
            Op::Login { user, right } => {
                let u = &self.users[usize::from(*user)];
                let password = if *right {
                    u.password.clone()
                } else {
                    "Wrong password 0 A".into()
                };
                let command = s.login(&username(*user, false), &password);
                let then = s.when(command);
                let expected = u.account.is_some() && !u.disabled && *right;
                prop_assert_eq!(
                    then.reply.is_ok(),
                    expected,
                    "login {}: {:?}",
                    user,
                    then.reply
                );
                prop_assert_eq!(
                    then.events.len(),
                    1 + usize::from(
                        then.events
                            .first()
                            .is_some_and(|e| e.kind() == "PasswordRehashed")
                    )
                );
                if let Ok(reply) = &then.reply {
                    self.issued(s, reply);
                }
            }
            Op::Touch(index) => {
                let Some(i) = self.session(index) else {
                    return Ok(());
                };
                let m = &mut self.sessions[i];
                let then = s.when(Command::from(tessera_core::session::TouchSession {
                    session: m.id,
                }));
                prop_assert_eq!(
                    then.reply.is_ok(),
                    m.live(s.now),
                    "touch {:?} at {}: {:?}",
                    m,
                    s.now,
                    then.reply
                );
                let due = then.reply.is_ok()
                    && s.now.since(m.last_seen) >= s.policy.session.touch_interval_ms;
                prop_assert_eq!(
                    then.events.clone(),
                    if due {
                        vec![Event::SessionTouched { session: m.id }]
                    } else {
                        vec![]
                    }
                );
                if due {
                    m.last_seen = s.now;
                }
            }
            Op::Logout(index) => {
                let Some(i) = self.session(index) else {
                    return Ok(());
                };
                let m = &mut self.sessions[i];
                let then = s.when(Command::from(tessera_core::session::Logout {
                    session: m.id,
                }));
                prop_assert_eq!(
                    then.reply.is_ok(),
                    m.live(s.now),
                    "logout {:?}: {:?}",
                    m,
                    then.reply
                );
                m.ended = true;
            }
            Op::Revoke { as_user, session } => {
                let Some(i) = self.session(session) else {
                    return Ok(());
                };
                let asker = self.users[usize::from(*as_user)]
                    .account
                    .unwrap_or(account(200));
                let m = &mut self.sessions[i];
                let then = s.when(Command::from(tessera_core::session::RevokeSession {
                    step_up: (Some(s.now)).into(),
                    account: asker,
                    session: m.id,
                }));
                let expected = m.live(s.now) && m.account == asker;
                prop_assert_eq!(
                    then.reply.is_ok(),
                    expected,
                    "revoke {:?} as {}: {:?}",
                    m,
                    asker,
                    then.reply
                );
                if expected {
                    m.ended = true;
                }
            }
            Op::ChangePassword {
                user,
                right,
                through,
            } => self.change_password(s, *user, *right, through.as_ref())?,
            Op::Disable(user) => {
                let Some(account) = self.users[usize::from(*user)].account else {
                    return Ok(());
                };
                let then = s.when(Command::from(tessera_core::account::DisableAccount {
                    account,
                    by: Actor::Holder,
                }));
                prop_assert_eq!(&then.reply, &Ok(Reply::AccountDisabled));
                self.users[usize::from(*user)].disabled = true;
                self.end_all_of(account);
            }
        }
        Ok(())
    }

    fn change_password(
        &mut self,
        s: &mut Given,
        user: u8,
        right: bool,
        through: Option<&Index>,
    ) -> Result<(), TestCaseError> {
        let u = &self.users[usize::from(user)];
        let Some(account) = u.account else {
            return Ok(());
        };
        let current = u.password.clone();
        let presented = if right {
            current.clone()
        } else {
            "Wrong password 0 A".into()
        };
        let new = format!("Copper kettle {} meadow", self.changes);
        self.changes += 1;
        let via = through.and_then(|i| self.session(i));
        let command = s.change_password(
            &username(user, false),
            &presented,
            &new,
            via.map(|i| self.sessions[i].id),
        );
        let then = s.when(command);
        let expected = !u.disabled && right;
        prop_assert_eq!(
            then.reply.is_ok(),
            expected,
            "change password of {}: {:?}",
            user,
            then.reply
        );
        if !expected {
            return Ok(());
        }
        let rotates = via
            .is_some_and(|i| self.sessions[i].account == account && self.sessions[i].live(s.now));
        let carried_deadline = via.map(|i| self.sessions[i].expires_at);
        self.users[usize::from(user)].password = new;
        self.end_all_of(account);
        let reply = then.reply.clone().expect("ok");
        match &reply {
            Reply::PasswordChanged {
                session: Some(issued),
            } => {
                prop_assert!(
                    rotates,
                    "a session was carried over that should not have been"
                );
                prop_assert_eq!(
                    Some(issued.expires_at),
                    carried_deadline,
                    "rotation kept the deadline"
                );
            }
            Reply::PasswordChanged { session: None } => {
                prop_assert!(!rotates, "the current session was not carried over")
            }
            other => prop_assert!(false, "unexpected reply {:?}", other),
        }
        self.issued(s, &reply);
        Ok(())
    }

    /// Every session ever issued is accepted exactly when the model says it is live.
    fn check_acceptance(&self, s: &Given) -> Result<(), TestCaseError> {
        for m in &self.sessions {
            let accepted = s
                .peek(Command::from(tessera_core::session::TouchSession {
                    session: m.id,
                }))
                .reply
                .is_ok();
            prop_assert_eq!(accepted, m.live(s.now), "session {:?} at {}", m, s.now);
        }
        Ok(())
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        rng_seed: RngSeed::Fixed(0x5e55_1075),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/session_props.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sessions_are_accepted_exactly_while_the_model_says_they_are_live(ops in prop::collection::vec(op(), 1..60), seed in any::<u64>()) {
        let mut s = Given::seeded(seed);
        let mut model = Model::new();
        for op in &ops {
            model.step(&mut s, op)?;
            // `when` already checked the views' invariants.
            model.check_acceptance(&s)?;
            prop_assert_eq!(&s.refolded(), &s.views, "folding the recorded events gives the live views");
        }
    }
}
