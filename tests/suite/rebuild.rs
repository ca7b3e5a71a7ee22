//! Views are a pure function of the log: after a few hundred seeded commands through the
//! engine, a rebuild from the log equals the persisted views, and `compare` names exactly
//! the record that was made to disagree.

use tessera_core::{ViewKey, ViewRecord, Views};
use tessera_storage::replay::{self, ViewDifference};
use tessera_storage::{EventStore, MemoryStore};
use tessera_tests::workload::{Driver, Mix, SharedStore};

/// A seed whose 520 steps produce every event type and end with live sessions (both are
/// asserted: a change to the driver that loses either fails loudly rather than proving less).
const SEED: u64 = 163;
/// The seeds whose runs are rebuilt and compared: [`SEED`] and two more, so that a change to
/// the workload's mix that makes one seed miss a rare event does not lose it from the test.
const SEEDS: [u64; 3] = [SEED, 1, 2];
const STEPS: usize = 520;
/// A seed whose first 150 steps leave live sessions.
const INTERRUPT_SEED: u64 = 49;

/// A memory store after `STEPS` commands of every kind, and the views the engine holds.
fn driven(seed: u64) -> (SharedStore<MemoryStore>, Views) {
    driven_for(seed, STEPS)
}

fn driven_for(seed: u64, steps: usize) -> (SharedStore<MemoryStore>, Views) {
    let store = SharedStore::new(MemoryStore::new());
    let mut driver = Driver::start(Box::new(store.clone()), seed, Mix::ALL);
    for i in 0..steps {
        let step = driver.step();
        if let Err(e) = &step.result {
            panic!(
                "seed {seed:#x}, step {i} ({}): the engine failed: {e}",
                step.command.kind()
            );
        }
    }
    for step in driver.external_identities() {
        if let Err(e) = &step.result {
            panic!(
                "seed {seed:#x}, identity script ({}): {e}",
                step.command.kind()
            );
        }
    }
    for step in driver.webauthn_round() {
        if let Err(e) = &step.result {
            panic!("seed {seed:#x}, WebAuthn round: the engine failed: {e}");
        }
    }
    let live = driver.engine.views().clone();
    driver.engine.shutdown();
    (store, live)
}

fn records(store: &dyn EventStore) -> Vec<(ViewKey, ViewRecord)> {
    store
        .view_records()
        .collect::<Result<_, _>>()
        .expect("views read back")
}

#[test]
fn a_rebuild_from_the_log_equals_the_persisted_and_live_views() {
    let mut kinds = std::collections::BTreeSet::new();
    for seed in SEEDS {
        let (store, live) = driven(seed);
        let store = store.lock();
        kinds.extend(
            tessera_tests::workload::read_log(&*store)
                .iter()
                .map(|e| e.event.kind()),
        );
        if seed == SEED {
            assert!(
                live.account_count() > 5 && live.session_count() > 0,
                "{} accounts, {} sessions",
                live.account_count(),
                live.session_count()
            );
        }
        let rebuilt = replay::rebuild(&*store, &mut |_| {}).expect("rebuild");
        assert_eq!(replay::compare(&rebuilt, &*store).expect("compare"), []);
        assert_eq!(
            rebuilt, live,
            "seed {seed}: a rebuild equals the engine's live views"
        );
        assert_eq!(
            replay::load_views(&*store).expect("load"),
            live,
            "seed {seed}: the persisted views equal the live ones"
        );
    }
    // Together the seeds must reach every event, or this test proves less than it claims.
    let missing: Vec<&&str> = tessera_core::Event::KINDS
        .iter()
        .filter(|k| !kinds.contains(**k))
        .collect();
    assert!(
        missing.is_empty(),
        "the seeded workloads never produced {missing:?}"
    );
}

#[test]
fn compare_names_exactly_the_corrupted_record() {
    let (store, _) = driven(SEED);
    let mut store = store.lock();
    let rebuilt = replay::rebuild(&*store, &mut |_| {}).expect("rebuild");
    let original = records(&*store);

    // One field of one session record changes.
    let mut corrupted = original.clone();
    let (key, record) = corrupted
        .iter_mut()
        .find(|(_, r)| matches!(r, ViewRecord::Session(_)))
        .expect("a live session to corrupt");
    let ViewRecord::Session(session) = record else {
        unreachable!("found a session")
    };
    let before = ViewRecord::Session(session.clone());
    session.expires_at = session.expires_at.plus_ms(86_400_000);
    let (key, after) = (key.clone(), record.clone());
    store.replace_views(corrupted).expect("replace");
    let differences = replay::compare(&rebuilt, &*store).expect("compare");
    assert_eq!(
        differences,
        [ViewDifference {
            key: key.clone(),
            persisted: Some(after),
            rebuilt: Some(before)
        }]
    );

    // One record goes missing; one appears that the log never made.
    let mut edited = original.clone();
    let removed = edited
        .iter()
        .position(|(k, _)| matches!(k, ViewKey::Account(_)))
        .expect("an account");
    let (gone, gone_record) = edited.remove(removed);
    let stray = (
        ViewKey::Username("nobody-registered-me".into()),
        gone_record_id(&gone_record),
    );
    edited.push(stray.clone());
    edited.sort_by(|a, b| a.0.cmp(&b.0));
    store.replace_views(edited).expect("replace");
    let differences = replay::compare(&rebuilt, &*store).expect("compare");
    assert_eq!(
        differences,
        [
            ViewDifference {
                key: gone,
                persisted: None,
                rebuilt: Some(gone_record)
            },
            ViewDifference {
                key: stray.0,
                persisted: Some(stray.1),
                rebuilt: None
            },
        ]
    );

    // Repairing with the rebuilt records makes them agree again.
    store.replace_views(original).expect("repair");
    assert_eq!(replay::compare(&rebuilt, &*store).expect("compare"), []);
}

fn gone_record_id(record: &ViewRecord) -> ViewRecord {
    match record {
        ViewRecord::Account(a) => ViewRecord::Username(a.id),
        other => panic!("expected an account record, got {other:?}"),
    }
}

#[test]
fn an_interrupted_view_replacement_is_rebuilt_from_the_log_on_start() {
    use tessera_storage::{SledOptions, SledStore};
    let dir = tempfile::tempdir().expect("temp dir");
    let open = || SledStore::open(dir.path(), SledOptions::default()).expect("store opens");
    let mut driver = Driver::start(Box::new(open()), INTERRUPT_SEED, Mix::ALL);
    driver.run(150);
    let live = driver.engine.views().clone();
    assert!(
        live.session_count() > 0,
        "the workload left sessions to lose"
    );
    driver.engine.shutdown();
    drop(driver);

    let store = open();
    store.interrupt_view_replacement().expect("flag set");
    assert!(!store.views_trusted().expect("reads"));
    assert_ne!(
        replay::load_views(&store).expect("loads"),
        live,
        "the damage is real"
    );
    let engine = tessera_tests::workload::start_engine(
        Box::new(store),
        tessera_tests::workload::TestClock::at(tessera_tests::T0),
        9,
    );
    assert_eq!(
        *engine.views(),
        live,
        "start rebuilt the views from the log"
    );
    engine.shutdown();
    let store = open();
    assert!(
        store.views_trusted().expect("reads"),
        "the rebuilt views were stored"
    );
    assert_eq!(replay::load_views(&store).expect("loads"), live);
}
