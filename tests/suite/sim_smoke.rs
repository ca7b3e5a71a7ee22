//! The simulator's smoke set: fixed seeds covering every scenario, each run twice to prove
//! that a seed reproduces the log byte for byte, and every scenario reaching its mark.

use tessera_core::Policy;
use tessera_simulator::ledger::Ledger;
use tessera_simulator::marks::Marks;
use tessera_simulator::world::World;
use tessera_simulator::{FailureKind, Options, run, scenario};

/// Chosen so that the set includes crashes before and after the write, and clock steps back.
const SMOKE_SEEDS: [u64; 6] = [1, 2, 3, 5, 8, 13];

#[test]
fn smoke_seeds_pass_reproduce_and_reach_every_mark() {
    let mut marks = Marks::default();
    for seed in SMOKE_SEEDS {
        let first =
            run(&Options::new(seed)).unwrap_or_else(|f| panic!("{f}\nrecent: {:#?}", f.recent));
        let second = run(&Options::new(seed)).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(
            first.log_hash, second.log_hash,
            "seed {seed} must reproduce its log byte for byte"
        );
        assert_eq!(first.events, second.events);
        for s in &first.scenarios {
            assert_eq!(s.stats.successes, 0, "{} succeeded", s.name);
            assert!(
                s.stats.attempts > 0,
                "seed {seed}: {} never attacked",
                s.name
            );
        }
        marks.merge(&first.marks);
    }
    for name in scenario::NAMES {
        let s = scenario::by_name(name, 0).expect("known scenario");
        assert!(
            marks.count(s.mark()) > 0,
            "no smoke seed reached the mark {:?} of {name}",
            s.mark()
        );
    }
    for mark in [
        "engine crashed and recovered",
        "clock stepped back",
        "stolen cookie refused after idle timeout",
        "stolen cookie refused after absolute lifetime",
        "stolen cookie refused after password change",
        "stolen cookie refused after deletion",
        "thief refreshed first",
        "user refreshed first",
        "revocation beat a racing refresh",
        "access token refused after password change",
        "access token refused after its revocation",
        "access token refused after sign-out everywhere",
        "reused password stopped by MFA",
        "throttled",
    ] {
        assert!(marks.count(mark) > 0, "no smoke seed reached {mark:?}");
    }
}

/// One seed on the PostgreSQL backend, crashes included: it passes, and writes the very log
/// (the same hash) that it writes on sled.
#[test]
fn a_seed_runs_on_postgres_and_writes_the_log_it_writes_on_sled() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let sled = run(&Options::new(3)).unwrap_or_else(|f| panic!("{f}"));
    let pg = run(&Options {
        postgres: Some(url),
        ..Options::new(3)
    })
    .unwrap_or_else(|f| panic!("{f}\nrecent: {:#?}", f.recent));
    assert_eq!(pg.log_hash, sled.log_hash, "the same seed, the same log");
    assert!(pg.marks.count("engine crashed and recovered") > 0);
}

#[test]
fn different_seeds_make_different_logs() {
    let a = run(&Options {
        steps: 20,
        ..Options::new(1)
    })
    .expect("passes");
    let b = run(&Options {
        steps: 20,
        ..Options::new(2)
    })
    .expect("passes");
    assert_ne!(a.log_hash, b.log_hash);
}

#[test]
fn the_checker_catches_an_accepted_ended_session() {
    // Tell the ledger a session ended without ending it: the check must fail, which shows
    // it is not vacuous.
    let mut world = World::new(7, Policy::fast_for_tests(), Vec::new(), None).expect("world");
    world
        .register("alice", "Correct horse 9 battery")
        .expect("registers");
    let issued = world
        .login(
            "alice",
            "Correct horse 9 battery",
            std::net::IpAddr::from([127, 0, 0, 1]),
        )
        .expect("no failure")
        .expect("no crash")
        .expect("logs in");
    let mut ledger = Ledger::default();
    ledger.issued(issued.secret.expose(), issued.account, world.now());
    assert!(ledger.check(&mut world).is_ok());
    ledger.ended(issued.secret.expose(), "a logout that never happened");
    let failure = ledger
        .check(&mut world)
        .expect_err("an accepted ended session is caught");
    assert_eq!(failure.kind, FailureKind::Invariant);
    world.shutdown();
}

#[test]
fn unknown_scenarios_are_refused() {
    let failure = run(&Options {
        scenarios: vec!["nonsense".into()],
        ..Options::new(1)
    })
    .expect_err("refused");
    assert!(failure.why.contains("no scenario named nonsense"));
}
