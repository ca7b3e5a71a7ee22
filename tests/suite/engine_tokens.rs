//! Engine-level token tests: races the single writer must order, and views that a rebuild
//! from the log reproduces exactly, on the sled store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: helpers outside #[test] functions stop the test loudly at the step that failed"
)]

use std::sync::Arc;

use rand::SeedableRng;
use tessera_core::blocklist::check_not_revoked;
use tessera_core::password::Verification;
use tessera_core::refresh::{TokensIssued, presented_digest};
use tessera_core::secret::SecretDigest;
use tessera_core::token::{TokenRejection, install_crypto_provider, verify_access_token};
use tessera_core::{AccountId, Command, LoginMode, PasswordCheck, Policy, Rejection, Reply};
use tessera_storage::keys::KeyStore;
use tessera_storage::{Engine, EngineConfig, EventStore, SledOptions, SledStore, replay};
use tessera_tests::workload::TestClock;

struct Harness {
    engine: Engine,
    clock: Arc<TestClock>,
    dir: tempfile::TempDir,
}

fn start(dir: tempfile::TempDir, clock: Arc<TestClock>) -> Harness {
    let store =
        SledStore::open(&dir.path().join("db"), SledOptions::default()).expect("store opens");
    let rng = rand::rngs::ChaCha20Rng::seed_from_u64(42);
    let config = EngineConfig {
        check_invariants: true,
        ..EngineConfig::default()
    };
    let engine = Engine::start(
        Box::new(store),
        Policy::fast_for_tests(),
        clock.clone(),
        Box::new(rng),
        config,
    )
    .expect("engine starts");
    Harness { engine, clock, dir }
}

fn harness() -> Harness {
    let clock = TestClock::at(tessera_tests::T0);
    start(tempfile::tempdir().expect("tempdir"), clock)
}

impl Harness {
    fn run(&self, command: impl Into<Command>) -> Result<Reply, Rejection> {
        self.engine
            .execute_blocking(command.into())
            .expect("engine answers")
            .reply
    }

    fn register(&self, username: &str) -> AccountId {
        let request = tessera_core::usecase::RegisterRequest {
            username: username.into(),
            email: None,
            password: tessera_tests::PASSWORD.into(),
            client: None,
        };
        let outcome = self
            .engine
            .run_blocking(
                request,
                &mut tessera_tests::rng(1),
                &mut tessera_core::password::WorkArea::default(),
            )
            .expect("engine answers");
        match outcome.reply {
            Ok(registered) => registered.account,
            other => panic!("register: {other:?}"),
        }
    }

    fn login(&self, account: AccountId) -> TokensIssued {
        let hash = self
            .engine
            .views()
            .account(&account)
            .expect("account")
            .password_hash
            .clone();
        let check = PasswordCheck {
            account: Some(account),
            checked_hash: hash,
            outcome: Verification::Match { stale: false },
            rehash: None,
        };
        match self.run(Command::from(tessera_core::session::Login {
            check,
            mode: LoginMode::Token,
            client: None,
            supersedes: None,
        })) {
            Ok(Reply::TokensIssued(t)) => t,
            other => panic!("login: {other:?}"),
        }
    }

    fn refresh_cmd(t: &TokensIssued) -> Command {
        Command::from(tessera_core::refresh::RefreshTokens {
            presented: presented_digest(t.refresh.expose()).expect("a refresh token"),
        })
    }

    fn access_ok(&self, t: &TokensIssued) -> Result<(), TokenRejection> {
        check_not_revoked(&self.engine.views(), &t.access, self.engine.now())
    }

    /// Stops the engine and checks that a rebuild from the log matches the stored views.
    fn rebuild_matches(self) -> tempfile::TempDir {
        self.engine.shutdown();
        drop(self.engine);
        let store =
            SledStore::open(&self.dir.path().join("db"), SledOptions::default()).expect("reopens");
        let rebuilt = replay::rebuild(&store, &mut |_| {}).expect("rebuilds");
        let diffs = replay::compare(&rebuilt, &store).expect("compares");
        assert!(
            diffs.is_empty(),
            "persisted views differ from the log: {diffs:#?}"
        );
        let loaded = replay::load_views(&store).expect("loads");
        assert_eq!(
            loaded, rebuilt,
            "loaded views (with derived indexes) equal the rebuilt ones"
        );
        assert!(store.head().sequence > 0);
        self.dir
    }
}

#[test]
fn two_refreshes_of_one_token_exactly_one_wins_and_the_other_is_reuse() {
    let h = harness();
    let alice = h.register("alice");
    let t = h.login(alice);
    // Many concurrent presentations of the same token, queued before any is decided.
    let receivers: Vec<_> = (0..8)
        .map(|_| h.engine.submit(Harness::refresh_cmd(&t)).expect("queued"))
        .collect();
    let replies: Vec<Result<Reply, Rejection>> = receivers
        .into_iter()
        .map(|rx| {
            rx.blocking_recv()
                .expect("answered")
                .expect("engine ok")
                .reply
        })
        .collect();
    let winners: Vec<&TokensIssued> = replies
        .iter()
        .filter_map(|r| match r {
            Ok(Reply::TokensIssued(t)) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    assert_eq!(
        replies
            .iter()
            .filter(|r| **r == Err(Rejection::RefreshTokenReused))
            .count(),
        1,
        "{replies:?}"
    );
    assert_eq!(
        replies
            .iter()
            .filter(|r| **r == Err(Rejection::RefreshTokenInvalid))
            .count(),
        6,
        "{replies:?}"
    );
    // The reuse revoked the family: the winner's tokens are dead too.
    let winner = winners[0].clone();
    assert_eq!(
        h.run(Harness::refresh_cmd(&winner)),
        Err(Rejection::RefreshTokenInvalid)
    );
    assert_eq!(h.access_ok(&winner), Err(TokenRejection::FamilyRevoked));
    assert_eq!(h.access_ok(&t), Err(TokenRejection::FamilyRevoked));
    h.rebuild_matches();
}

#[test]
fn refresh_against_revoke_revoke_wins_in_either_order() {
    for revoke_first in [true, false] {
        let h = harness();
        let alice = h.register("alice");
        let t = h.login(alice);
        let revoke = Command::from(tessera_core::refresh::RevokeRefreshToken {
            presented: SecretDigest::of(t.refresh.expose()),
        });
        let (first, second) = if revoke_first {
            (revoke, Harness::refresh_cmd(&t))
        } else {
            (Harness::refresh_cmd(&t), revoke)
        };
        let a = h.engine.submit(first).expect("queued");
        let b = h.engine.submit(second).expect("queued");
        let a = a
            .blocking_recv()
            .expect("answered")
            .expect("engine ok")
            .reply;
        let b = b
            .blocking_recv()
            .expect("answered")
            .expect("engine ok")
            .reply;
        let (refreshed, revoked) = if revoke_first { (b, a) } else { (a, b) };
        assert_eq!(revoked, Ok(Reply::Revoked));
        match refreshed {
            Err(Rejection::RefreshTokenInvalid) => assert!(revoke_first),
            Ok(Reply::TokensIssued(new)) => {
                assert!(!revoke_first);
                // The revocation came second and still caught what the refresh issued.
                assert_eq!(
                    h.run(Harness::refresh_cmd(&new)),
                    Err(Rejection::RefreshTokenInvalid)
                );
                assert_eq!(h.access_ok(&new), Err(TokenRejection::FamilyRevoked));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(h.access_ok(&t), Err(TokenRejection::FamilyRevoked));
        h.rebuild_matches();
    }
}

#[test]
fn a_day_of_token_traffic_rebuilds_exactly_including_dropped_records() {
    install_crypto_provider();
    let h = harness();
    let keys = KeyStore::open(h.dir.path()).expect("key store");
    let signer = keys
        .write(&zeroize::Zeroizing::new([11; 32]))
        .expect("key written");
    assert_eq!(
        h.run(signer.add_command()),
        Ok(Reply::SigningKeyAdded {
            kid: signer.kid().into()
        })
    );
    let alice = h.register("alice");
    let bob = h.register("bob");
    let mut a = h.login(alice);
    let b = h.login(bob);
    let token = signer.sign(&a.access).expect("signs");
    let policy = h.engine.policy().token.clone();
    let claims = verify_access_token(
        &token,
        h.engine.views().signing_keys(),
        h.engine.now(),
        &policy,
    )
    .expect("verifies");
    assert_eq!(claims, a.access);
    for _ in 0..5 {
        h.clock.advance_ms(600 * 1000);
        a = match h.run(Harness::refresh_cmd(&a)) {
            Ok(Reply::TokensIssued(t)) => t,
            other => panic!("refresh: {other:?}"),
        };
    }
    let revoke = Command::from(tessera_core::blocklist::RevokeAccessToken {
        jti: a.access.jti,
        account: alice,
        expires_at: a.access.expires_at(),
    });
    assert_eq!(h.run(revoke), Ok(Reply::Revoked));
    assert_eq!(
        h.run(Command::from(tessera_core::blocklist::SignOutEverywhere {
            step_up: (Some(h.engine.now())).into(),
            account: bob,
            by: tessera_core::Actor::Holder
        })),
        Ok(Reply::SignedOutEverywhere)
    );
    assert_eq!(h.access_ok(&b), Err(TokenRejection::FamilyRevoked));
    // Rotate the signing key: the old one stays published until its tokens are expired.
    let newer = keys
        .write(&zeroize::Zeroizing::new([12; 32]))
        .expect("key written");
    assert!(h.run(newer.add_command()).is_ok());
    assert_eq!(h.engine.views().signing_keys().len(), 2);
    // A day later, the next event drops every record whose time has passed: bob's revoked
    // family, the revoked jti, the not-before time, the retired key.
    h.clock.advance_ms(24 * 3600 * 1000);
    let _carol = h.register("carol");
    {
        let views = h.engine.views();
        assert_eq!(views.signing_keys().len(), 1);
        assert!(views.family(&b.family).is_none());
        assert!(!views.access_token_revoked(&a.access.jti));
        assert_eq!(views.not_before(&bob), None);
        assert!(
            views.family(&a.family).is_some(),
            "alice's family lives on for seven days idle"
        );
    }
    assert_eq!(
        verify_access_token(
            &token,
            h.engine.views().signing_keys(),
            h.engine.now(),
            &policy
        ),
        Err(TokenRejection::UnknownKey)
    );
    let dir = h.rebuild_matches();
    // The key store survives a restart next to the log.
    assert_eq!(
        KeyStore::open(dir.path())
            .expect("reopens")
            .list()
            .expect("lists")
            .len(),
        2
    );
}
