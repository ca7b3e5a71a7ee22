//! Crashes: the real engine over a `FaultyStore<SledStore>` fails its Nth append, before or
//! after the write reached the disk. After each "crash" the store is reopened from disk and
//! held to a reference model: the same seeded workload run without faults over a
//! `MemoryStore`. Then the hash chain is tampered with, and must say where.

use std::collections::HashMap;

use tessera_core::secret::SecretDigest;
use tessera_core::{Command, Event, Rejection, Reply, SessionEndReason, Views};
use tessera_storage::chain::ChainError;
use tessera_storage::fault::{FaultPoint, FaultyStore};
use tessera_storage::replay::{self, ReplayError};
use tessera_storage::{
    EngineError, Envelope, EventStore, MemoryStore, ReadError, SledOptions, SledStore,
};
use tessera_tests::workload::{Driver, Mix, SharedStore, Step, TestClock, read_log, start_engine};

const SEED: u64 = 0x7e55_e4a0;
const STEPS: usize = 80;

fn options() -> SledOptions {
    SledOptions {
        cache_bytes: 4 * 1024 * 1024,
        ..SledOptions::default()
    }
}

/// The workload without faults: every step's outcome, and the log it leaves.
struct Reference {
    steps: Vec<Step>,
    log: Vec<Envelope>,
}

fn reference(seed: u64) -> Reference {
    let store = SharedStore::new(MemoryStore::new());
    let mut driver = Driver::start(Box::new(store.clone()), seed, Mix::SESSIONS);
    let steps = driver.run(STEPS);
    driver.engine.shutdown();
    for (i, step) in steps.iter().enumerate() {
        assert!(
            step.result.is_ok(),
            "seed {seed}: reference step {i} failed: {:?}",
            step.result
        );
    }
    let log = read_log(&*store.lock());
    Reference { steps, log }
}

fn sequence_after(step: &Step) -> u64 {
    step.result
        .as_ref()
        .map(|o| o.sequence)
        .expect("an acknowledged step")
}

/// The facts an acknowledged reply promises are in the log.
fn assert_acknowledged_facts_are_logged(steps: &[Step], log: &[Envelope]) {
    let by_sequence: HashMap<u64, &Event> = log.iter().map(|e| (e.sequence, &e.event)).collect();
    for (i, step) in steps.iter().enumerate() {
        let Ok(outcome) = &step.result else { continue };
        let last = by_sequence.get(&outcome.sequence).copied();
        let holds = match (&step.command, &outcome.reply) {
            (_, Ok(Reply::Registered { account, username })) => log.iter().any(|e| {
                matches!(&e.event, Event::AccountRegistered { account: a, username: u, .. } if a == account && u == username)
            }),
            (_, Ok(Reply::LoggedIn(issued))) => matches!(last, Some(Event::SessionStarted { session, secret_digest, .. })
                if *session == issued.session && *secret_digest == SecretDigest::of(issued.secret.expose())),
            (Command::Session(tessera_core::SessionCommand::Login(tessera_core::session::Login { .. })), Err(Rejection::InvalidCredentials)) => {
                matches!(last, Some(Event::LoginFailed { .. } | Event::UnknownAccountLoginFailed { .. }))
            }
            (Command::Session(tessera_core::SessionCommand::Logout(tessera_core::session::Logout { session })), Ok(Reply::SessionEnded)) => {
                last == Some(&Event::SessionEnded { session: *session, reason: SessionEndReason::LoggedOut })
            }
            _ => true,
        };
        assert!(
            holds,
            "acknowledged step {i} ({:?} -> {:?}) is not in the log",
            step.command.kind(),
            outcome.reply
        );
    }
}

/// Views loaded from disk equal a rebuild from the log, and the chain verifies.
fn assert_consistent(store: &dyn EventStore, context: &str) -> Views {
    let rebuilt =
        replay::rebuild(store, &mut |_| {}).unwrap_or_else(|e| panic!("{context}: rebuild: {e}"));
    let differences = replay::compare(&rebuilt, store).expect("views read back");
    assert!(
        differences.is_empty(),
        "{context}: persisted views differ from the log: {differences:#?}"
    );
    let loaded = replay::load_views(store).expect("views load");
    assert_eq!(loaded, rebuilt, "{context}: loaded views");
    loaded
        .check_invariants()
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let report =
        replay::verify(store, &mut |_| {}).unwrap_or_else(|e| panic!("{context}: verify: {e}"));
    assert_eq!(report.events, store.head().sequence);
    rebuilt
}

fn crash_at(reference: &Reference, nth: u64, point: FaultPoint) {
    let context = format!("seed {SEED:#x}, fault at append {nth} {point:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = SledStore::open(dir.path(), options()).expect("open");
    let mut driver = Driver::start(
        Box::new(FaultyStore::new(sled, nth, point)),
        SEED,
        Mix::SESSIONS,
    );
    let steps = driver.run(STEPS);
    driver.engine.shutdown();
    drop(driver);

    // Up to the fault, the engine answers exactly as the reference did; from it on, it
    // answers only Storage errors.
    let acked = steps.iter().take_while(|s| s.result.is_ok()).count();
    assert!(acked < STEPS, "{context}: the fault never struck");
    for (i, (ours, theirs)) in steps.iter().zip(&reference.steps).take(acked).enumerate() {
        let (ours, theirs) = (
            ours.result.as_ref().expect("acked"),
            theirs.result.as_ref().expect("reference"),
        );
        assert_eq!(
            (&ours.reply, ours.sequence),
            (&theirs.reply, theirs.sequence),
            "{context}: step {i}"
        );
    }
    for (i, step) in steps.iter().enumerate().skip(acked) {
        assert!(
            matches!(step.result, Err(EngineError::Storage(_))),
            "{context}: step {i} after the fault: {:?}",
            step.result
        );
    }

    // Reopen from disk: the log is the reference's, up to the last acknowledged batch, plus
    // the failed batch if the fault struck after writing it.
    let store =
        SledStore::open(dir.path(), options()).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
    let acked_through = acked
        .checked_sub(1)
        .map_or(0, |i| sequence_after(&reference.steps[i]));
    let durable_through = match point {
        FaultPoint::BeforeWrite => acked_through,
        FaultPoint::AfterWrite => sequence_after(&reference.steps[acked]),
    };
    let log = read_log(&store);
    assert_eq!(
        log.len() as u64,
        durable_through,
        "{context}: durable log length"
    );
    assert_eq!(
        log[..],
        reference.log[..log.len()],
        "{context}: the durable log is a prefix of the reference"
    );
    assert_acknowledged_facts_are_logged(&steps[..acked], &log);
    assert_consistent(&store, &context);

    // And the engine starts again on it and takes commands.
    let clock = TestClock::at(log.last().map_or(tessera_tests::T0, |e| e.recorded_at));
    let engine = start_engine(Box::new(store), clock, 99);
    let register = tessera_core::usecase::RegisterRequest {
        username: "after-the-crash".into(),
        email: None,
        password: tessera_tests::PASSWORD.into(),
        client: None,
    };
    let outcome = engine
        .run_blocking(
            register,
            &mut tessera_tests::rng(5),
            &mut tessera_core::password::WorkArea::default(),
        )
        .unwrap_or_else(|e| panic!("{context}: after restart: {e}"));
    assert!(outcome.reply.is_ok(), "{context}");
    assert_eq!(outcome.sequence, durable_through + 1);
    engine.shutdown();
}

#[test]
fn every_acknowledged_event_survives_a_crash_at_the_nth_append() {
    let reference = reference(SEED);
    let appends = reference
        .steps
        .iter()
        .map(sequence_after)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    assert!(
        appends >= 30,
        "the workload appends too rarely ({appends}) to place faults"
    );
    for nth in [1, 2, 3, 8, 17, appends / 2, appends - 1] {
        for point in [FaultPoint::BeforeWrite, FaultPoint::AfterWrite] {
            crash_at(&reference, nth, point);
        }
    }
}

#[test]
fn the_reference_workload_is_deterministic() {
    let (a, b) = (reference(SEED), reference(SEED));
    assert_eq!(a.log, b.log);
    assert_ne!(
        reference(SEED + 1).log,
        a.log,
        "the seed decides the workload"
    );
}

// ---- tampering ----

/// The sequence a chain or replay error points at.
fn located(error: &ReplayError) -> Option<u64> {
    match error {
        ReplayError::Chain(
            ChainError::Altered { sequence }
            | ChainError::Unlinked { sequence }
            | ChainError::Unreadable { sequence, .. },
        ) => Some(*sequence),
        ReplayError::Chain(ChainError::Gap { expected, .. }) => Some(*expected),
        ReplayError::Apply { sequence, .. } => Some(*sequence),
        ReplayError::Read(ReadError::Corrupt { at, .. }) => {
            at.rsplit(' ').next().and_then(|s| s.parse().ok())
        }
        ReplayError::Read(ReadError::Io(_)) | ReplayError::Policy(_) => None,
    }
}

fn flip(store: &SledStore, sequence: u64, offset: usize) {
    let found = store
        .tamper_with_envelope(sequence, |bytes| bytes[offset] ^= 0x01)
        .expect("tamper");
    assert!(found, "envelope {sequence} exists");
}

/// A sled store holding a seeded workload's log, and the stored length of each envelope.
fn tamper_fixture(dir: &std::path::Path) -> (SledStore, Vec<usize>) {
    let sled = SledStore::open(dir, options()).expect("open");
    let mut driver = Driver::start(Box::new(sled), SEED, Mix::SESSIONS);
    driver.run(30);
    driver.engine.shutdown();
    drop(driver);
    let store = SledStore::open(dir, options()).expect("reopen");
    let lengths = read_log(&store)
        .iter()
        .map(|e| {
            tessera_storage::codec::encode_envelope(e)
                .expect("encodes")
                .len()
        })
        .collect();
    (store, lengths)
}

#[test]
fn verify_names_the_tampered_envelope_whatever_byte_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, lengths) = tamper_fixture(dir.path());
    assert!(lengths.len() >= 10);
    let target = 7u64;
    for offset in 0..lengths[target as usize - 1] {
        flip(&store, target, offset);
        let error = replay::verify(&store, &mut |_| {}).expect_err("a flipped byte is detected");
        assert_eq!(located(&error), Some(target), "byte {offset}: {error}");
        let error =
            replay::rebuild(&store, &mut |_| {}).expect_err("rebuild refuses a tampered log");
        assert_eq!(located(&error), Some(target), "byte {offset}: {error}");
        flip(&store, target, offset);
        replay::verify(&store, &mut |_| {})
            .unwrap_or_else(|e| panic!("restored byte {offset}: {e}"));
    }
}

#[test]
fn tampering_is_still_reported_after_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, lengths) = tamper_fixture(dir.path());
    let last = lengths.len() as u64;
    let mut store = Some(store);
    for (target, offset) in [
        (1, 0),
        (4, 1),
        (9, lengths[8] / 2),
        (last - 1, lengths[last as usize - 2] - 1),
    ] {
        let s = store.take().expect("store");
        flip(&s, target, offset);
        drop(s);
        let reopened =
            SledStore::open(dir.path(), options()).expect("a tampered middle envelope still opens");
        let error = replay::verify(&reopened, &mut |_| {}).expect_err("detected after reopen");
        assert_eq!(
            located(&error),
            Some(target),
            "envelope {target}, byte {offset}: {error}"
        );
        flip(&reopened, target, offset);
        replay::verify(&reopened, &mut |_| {}).expect("restored");
        store = Some(reopened);
    }
    // The last envelope is checked against the head record when the store opens.
    let s = store.take().expect("store");
    flip(&s, last, lengths[last as usize - 1] - 1);
    drop(s);
    match SledStore::open(dir.path(), options()) {
        Err(e) => assert!(
            e.to_string().contains("head") || e.to_string().contains(&format!("{last}")),
            "{e}"
        ),
        Ok(reopened) => {
            let error = replay::verify(&reopened, &mut |_| {}).expect_err("detected after reopen");
            assert_eq!(located(&error), Some(last), "{error}");
        }
    }
}
