//! MFA and throttling rules over random sequences of attempts, against a reference model.
//!
//! Two users with TOTP on log in (right and wrong passwords) and answer their challenges
//! with right codes, wrong codes, replayed codes, backup codes (their own, spent ones, the
//! other user's), while time advances. After every step:
//! - no challenge accepts an answer once it has taken `attempts_max` wrong ones;
//! - no TOTP step is accepted twice for an account (accepted steps strictly increase);
//! - no backup code works twice;
//! - the views' invariants hold, and a fresh fold of the log equals the live views.
//!
//! At the end, from the log: every counted failure beyond the free ones came at least the
//! policy's delay after the one before (throttling never lets more through in any window);
//! and once the longest wait has passed, the honest user gets back in with password and code.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, RngSeed};
use tessera_core::mfa::{MfaAnswer, MfaKeys, TotpCode, presented_challenge_digest, totp_code_at};
use tessera_core::{AccountId, Command, Event, LoginFailure, Rejection, Reply, Timestamp};
use tessera_tests::Given;

const USERS: [&str; 2] = ["alice", "bob"];

#[derive(Clone, Debug)]
enum Answer {
    Right,
    Wrong,
    /// The code of the last accepted step, inside its drift window.
    Replay,
    Backup(Index),
    SpentBackup(Index),
    OthersBackup(Index),
}

#[derive(Clone, Debug)]
enum Op {
    Advance { secs: u64 },
    Login { user: usize, right: bool },
    Answer { challenge: Index, answer: Answer },
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        4 => Just(Answer::Right),
        4 => Just(Answer::Wrong),
        1 => Just(Answer::Replay),
        2 => any::<Index>().prop_map(Answer::Backup),
        1 => any::<Index>().prop_map(Answer::SpentBackup),
        1 => any::<Index>().prop_map(Answer::OthersBackup),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..90).prop_map(|secs| Op::Advance { secs }),
        1 => (0u64..1200).prop_map(|secs| Op::Advance { secs }),
        3 => (0..USERS.len(), prop::bool::weighted(0.7))
            .prop_map(|(user, right)| Op::Login { user, right }),
        6 => (any::<Index>(), answer()).prop_map(|(challenge, answer)| Op::Answer { challenge, answer }),
    ]
}

fn keys() -> MfaKeys {
    MfaKeys::from_master(&[3; 32])
}

/// What the model knows of one user.
struct User {
    account: AccountId,
    secret: Vec<u8>,
    unspent: Vec<String>,
    spent: Vec<String>,
    last_code: Option<String>,
}

/// A challenge as the model tracks it.
struct Challenge {
    token: String,
    user: usize,
    failures: u32,
    done: bool,
}

fn enrol(s: &mut Given, name: &str) -> User {
    let account = s.registered(name);
    let secret = match s
        .when(Command::from(tessera_core::mfa::StartTotpEnrolment {
            step_up: (Some(s.now)).into(),
            account,
            keys: keys(),
        }))
        .reply
    {
        Ok(Reply::TotpEnrolmentStarted(e)) => data_encoding::BASE32_NOPAD
            .decode(e.secret_base32.as_bytes())
            .expect("base32"),
        other => panic!("enrolment: {other:?}"),
    };
    let code = totp_code_at(&secret, s.now).expect("code");
    let confirm = Command::from(tessera_core::mfa::ConfirmTotp {
        account,
        code: TotpCode::parse(&code).expect("code"),
        keys: keys(),
        client: None,
    });
    let unspent = match s.when(confirm).reply {
        Ok(Reply::TotpEnabled { backup_codes }) => backup_codes
            .expose()
            .iter()
            .map(|c| c.to_string())
            .collect(),
        other => panic!("confirm: {other:?}"),
    };
    User {
        account,
        secret,
        unspent,
        spent: Vec::new(),
        last_code: Some(code),
    }
}

/// A code that matches none of the steps in the window around `now`.
fn wrong_code(secret: &[u8], now: Timestamp) -> String {
    let window: Vec<String> = [0u64, 30_000, 60_000]
        .iter()
        .filter_map(|d| totp_code_at(secret, Timestamp::from_millis(now.as_millis() + d - 30_000)))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .expect("some code is wrong")
}

fn pick<T: Clone>(items: &[T], i: &Index) -> Option<T> {
    (!items.is_empty()).then(|| i.get(items).clone())
}

/// Runs one answer and checks it against the model.
fn run_answer(s: &mut Given, users: &mut [User], c: &mut Challenge, answer: &Answer) {
    let now = s.now;
    let (text, backup) = {
        let u = &users[c.user];
        match answer {
            Answer::Right => (totp_code_at(&u.secret, now).expect("code"), None),
            Answer::Wrong => (wrong_code(&u.secret, now), None),
            Answer::Replay => match &u.last_code {
                Some(code) => (code.clone(), None),
                None => (wrong_code(&u.secret, now), None),
            },
            Answer::Backup(i) => match pick(&u.unspent, i) {
                Some(code) => (code.clone(), Some(code)),
                None => (wrong_code(&u.secret, now), None),
            },
            Answer::SpentBackup(i) => match pick(&u.spent, i) {
                Some(code) => (code.clone(), Some(code)),
                None => (wrong_code(&u.secret, now), None),
            },
            Answer::OthersBackup(i) => {
                let other = &users[1 - c.user];
                match pick(&other.unspent, i) {
                    Some(code) => (code.clone(), Some(code)),
                    None => (wrong_code(&u.secret, now), None),
                }
            }
        }
    };
    let parsed = if backup.is_some() {
        MfaAnswer::backup(&text)
    } else {
        MfaAnswer::totp(&text)
    }
    .expect("well-formed");
    let presented = presented_challenge_digest(&c.token).expect("token shape");
    let before = s.views.mfa(&users[c.user].account).cloned();
    let then = s.when(Command::from(tessera_core::mfa::AnswerMfaChallenge {
        presented,
        answer: parsed,
        keys: keys(),
        client: Some(std::net::IpAddr::from([192, 0, 2, 1])),
        supersedes: None,
    }));
    let attempts_max = s.policy.mfa.challenge_attempts_max;
    match &then.reply {
        Ok(Reply::LoggedIn(_)) => {
            assert!(!c.done, "a finished challenge accepted an answer");
            assert!(
                c.failures < attempts_max,
                "a dead challenge accepted an answer"
            );
            let u = &mut users[c.user];
            match backup {
                Some(code) => {
                    assert!(
                        u.unspent.contains(&code),
                        "a spent or foreign backup code worked"
                    );
                    u.unspent.retain(|x| *x != code);
                    u.spent.push(code);
                }
                None => u.last_code = Some(text),
            }
            c.done = true;
        }
        Err(Rejection::MfaCodeInvalid { .. } | Rejection::MfaCodeReplayed { .. }) => {
            assert!(!c.done && c.failures < attempts_max);
            c.failures += 1;
            assert_eq!(then.events.len(), 1, "a wrong answer is recorded");
        }
        Err(Rejection::MfaChallengeExhausted) => {
            assert!(c.failures >= attempts_max, "refused as dead too early");
            assert!(then.events.is_empty());
        }
        Err(Rejection::MfaChallengeInvalid) => {
            assert!(then.events.is_empty());
            c.done = true;
        }
        Err(Rejection::Throttled { .. }) => {
            assert!(then.events.is_empty(), "a throttled answer spends nothing");
            assert_eq!(s.views.mfa(&users[c.user].account), before.as_ref());
        }
        other => panic!("unexpected answer reply {other:?}"),
    }
}

/// Every counted failure beyond the free ones came at least the policy's delay after the
/// one before, per account, between successes.
fn check_throttle_windows(s: &Given) {
    let rule = s.policy.throttle.account;
    let mut streak: BTreeMap<AccountId, (u32, Timestamp)> = BTreeMap::new();
    for (at, event) in &s.log {
        match event {
            Event::LoginFailed {
                account,
                reason: LoginFailure::WrongPassword,
                ..
            }
            | Event::MfaCodeFailed { account, .. } => {
                let (n, last) = streak.get(account).copied().unwrap_or((0, *at));
                // Strikes are forgotten after a quiet day.
                let n = if at.since(last) >= tessera_core::throttle::STRIKES_FORGET_MS {
                    0
                } else {
                    n
                };
                if n > 0 {
                    assert!(
                        at.since(last) >= rule.delay_ms(n),
                        "failure {} came {} ms after the last, under the {} ms wait",
                        n + 1,
                        at.since(last),
                        rule.delay_ms(n)
                    );
                }
                streak.insert(*account, (n + 1, *at));
            }
            Event::SessionStarted { account, .. } | Event::RefreshFamilyStarted { account, .. } => {
                streak.remove(account);
            }
            _ => {}
        }
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        rng_seed: RngSeed::Fixed(0x0f0a_0001),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/mfa_props.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn challenges_codes_and_throttling_hold_against_the_model(
        ops in prop::collection::vec(op(), 1..80),
        seed in any::<u64>(),
    ) {
        let mut s = Given::seeded(seed);
        let mut users: Vec<User> = USERS.iter().map(|u| enrol(&mut s, u)).collect();
        let mut challenges: Vec<Challenge> = Vec::new();
        let mut steps: BTreeMap<AccountId, u64> = BTreeMap::new();
        let mut seen = 0;
        for op in &ops {
            match op {
                Op::Advance { secs } => {
                    s.advance_ms(secs * 1000);
                }
                Op::Login { user, right } => {
                    let password = if *right { tessera_tests::PASSWORD } else { "Wrong password 1 here" };
                    let command = s.login(USERS[*user], password);
                    match s.when(command).reply {
                        Ok(Reply::MfaRequired(c)) => {
                            prop_assert!(*right, "a wrong password opened a challenge");
                            challenges.push(Challenge {
                                token: c.mfa_token.expose().to_owned(),
                                user: *user,
                                failures: 0,
                                done: false,
                            });
                        }
                        Ok(other) => prop_assert!(false, "MFA on, yet {other:?}"),
                        Err(r) => prop_assert_eq!(r, Rejection::InvalidCredentials),
                    }
                }
                Op::Answer { challenge, answer } => {
                    if challenges.is_empty() {
                        continue;
                    }
                    let i = challenge.index(challenges.len());
                    run_answer(&mut s, &mut users, &mut challenges[i], answer);
                }
            }
            // No step accepted twice: accepted steps strictly increase per account.
            for (_, event) in &s.log[seen..] {
                if let Event::TotpStepAccepted { account, step } | Event::TotpEnabled { account, step, .. } = event {
                    if let Some(last) = steps.get(account) {
                        prop_assert!(step > last, "step {step} accepted after {last}");
                    }
                    steps.insert(*account, *step);
                }
            }
            seen = s.log.len();
            prop_assert_eq!(&s.refolded(), &s.views);
        }
        check_throttle_windows(&s);
        // Liveness: once the longest wait and every challenge have passed, the honest user
        // gets back in with password and a fresh code.
        let quiet = s.policy.throttle.account.delay_secs_max.max(s.policy.mfa.challenge_ttl_secs) + 31;
        s.advance_ms(quiet * 1000);
        let command = s.login(USERS[0], tessera_tests::PASSWORD);
        let token = match s.when(command).reply {
            Ok(Reply::MfaRequired(c)) => c.mfa_token.expose().to_owned(),
            other => panic!("the honest user is kept out: {other:?}"),
        };
        let code = totp_code_at(&users[0].secret, s.now).expect("code");
        let reply = s.when(Command::from(tessera_core::mfa::AnswerMfaChallenge {
            presented: presented_challenge_digest(&token).expect("shape"),
            answer: MfaAnswer::totp(&code).expect("code"),
            keys: keys(),
            client: None,
            supersedes: None,
        })).reply;
        prop_assert!(matches!(reply, Ok(Reply::LoggedIn(_))), "the honest user is kept out: {reply:?}");
    }
}
