//! Operating on a running server's log without stopping it: a reader beside the writer, a
//! subscription to the durable head, verifying the chain live, and an online backup taken
//! while a workload keeps appending.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tessera_storage::backup::{self, BackupError, INCOMPLETE_MARKER};
use tessera_storage::chain::ChainError;
use tessera_storage::fault::{FaultPoint, FaultyStore};
use tessera_storage::keys::{KeyStore, KeyStoreError};
use tessera_storage::replay::{self, ReplayError};
use tessera_storage::{
    EngineError, Envelope, EventStore, Head, ImportError, LogReader, MemoryStore, OpenError,
    SledOptions, SledStore,
};
use tessera_tests::policy;
use tessera_tests::workload::{Driver, Mix, SharedStore, read_log};
use zeroize::Zeroizing;

const SEED: u64 = 0x0b5e_7e01;

fn options() -> SledOptions {
    SledOptions {
        cache_bytes: 4 * 1024 * 1024,
        ..SledOptions::default()
    }
}

fn read_through(reader: &dyn LogReader, through: u64) -> Vec<Envelope> {
    reader
        .read_range(1, through)
        .collect::<Result<_, _>>()
        .expect("the live log reads back")
}

/// Every head a subscriber saw, in order, until the engine closed the subscription.
fn follow(mut rx: tokio::sync::watch::Receiver<Head>) -> std::thread::JoinHandle<Vec<Head>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut seen = Vec::new();
            while rx.changed().await.is_ok() {
                seen.push(*rx.borrow_and_update());
            }
            seen
        })
    })
}

// ---- the reader ----

#[test]
fn a_reader_sees_what_the_running_engine_appends_on_sled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = SledStore::open(dir.path(), options()).expect("open");
    let mut driver = Driver::start(Box::new(sled), SEED, Mix::SESSIONS);
    let reader = driver.engine.log_reader().expect("running");
    driver.run(10);
    let first = driver.engine.head();
    assert!(first.sequence > 0);
    // Read from another thread while the writer keeps appending.
    let concurrent = {
        let reader = reader.clone();
        std::thread::spawn(move || read_through(reader.as_ref(), first.sequence))
    };
    driver.run(20);
    let seen = concurrent.join().expect("reader thread");
    assert_eq!(
        seen.len() as u64,
        first.sequence,
        "exactly through the head"
    );
    assert_eq!(seen.last().map(|e| e.hash), Some(first.hash));
    let second = driver.engine.head();
    assert!(second.sequence > first.sequence);
    let later = read_through(reader.as_ref(), second.sequence);
    assert_eq!(later.len() as u64, second.sequence);
    assert_eq!(
        &later[..seen.len()],
        &seen[..],
        "a durable prefix never changes"
    );
    driver.engine.shutdown();
    assert!(
        matches!(driver.engine.log_reader(), Err(EngineError::Stopped)),
        "a stopped engine hands out no reader"
    );
    drop(driver);
    // A reader holds the folder open: it must go before the store is reopened.
    drop(reader);
    let store = SledStore::open(dir.path(), options()).expect("reopen");
    assert_eq!(
        read_log(&store),
        later,
        "the reader read what the store holds"
    );
}

#[test]
fn a_memory_store_reader_shares_the_log_and_a_wrapper_delegates() {
    let shared = SharedStore::new(MemoryStore::new());
    let faulty = FaultyStore::new(shared.clone(), u64::MAX, FaultPoint::BeforeWrite);
    let mut driver = Driver::start(Box::new(faulty), SEED, Mix::SESSIONS);
    let reader = driver.engine.log_reader().expect("running");
    driver.run(15);
    let head = driver.engine.head();
    let live = read_through(reader.as_ref(), head.sequence);
    driver.engine.shutdown();
    assert_eq!(live, read_log(&*shared.lock()));
    assert_eq!(
        reader.read_range(3, 4).count(),
        2,
        "a range is both ends included"
    );
    assert_eq!(reader.read_range(4, 3).count(), 0);
}

// ---- the subscription ----

#[test]
fn a_subscriber_wakes_on_every_durable_append_and_ends_at_shutdown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = SledStore::open(dir.path(), options()).expect("open");
    let mut driver = Driver::start(Box::new(sled), SEED, Mix::SESSIONS);
    driver.run(3);
    let rx = driver.engine.subscribe();
    assert_eq!(
        *rx.borrow(),
        driver.engine.head(),
        "starts at the current head"
    );
    let follower = follow(rx);
    driver.run(25);
    let last = driver.engine.head();
    driver.engine.shutdown();
    let seen = follower
        .join()
        .expect("the follower ends when the engine stops");
    assert_eq!(seen.last(), Some(&last), "the last durable head is seen");
    assert!(
        seen.windows(2).all(|w| w[0].sequence < w[1].sequence),
        "heads only move forward: {seen:?}"
    );
    let closed = driver.engine.subscribe();
    assert_eq!(*closed.borrow(), last);
    assert!(
        follow(closed).join().expect("ends").is_empty(),
        "a subscription to a stopped engine is already closed"
    );
}

#[test]
fn a_failed_engine_ends_its_subscriptions_and_says_why() {
    let shared = SharedStore::new(MemoryStore::new());
    let faulty = FaultyStore::new(shared, 6, FaultPoint::BeforeWrite);
    let mut driver = Driver::start(Box::new(faulty), SEED, Mix::SESSIONS);
    let follower = follow(driver.engine.subscribe());
    let steps = driver.run(12);
    assert!(steps.iter().any(|s| s.result.is_err()), "the fault struck");
    let seen = follower
        .join()
        .expect("the follower ends when the engine fails");
    assert!(!seen.is_empty() && seen.len() <= 5, "{seen:?}");
    assert!(matches!(
        driver.engine.failure(),
        Some(EngineError::Storage(_))
    ));
    driver.engine.shutdown();
}

// ---- verifying the live log ----

fn located(error: &ReplayError) -> Option<u64> {
    match error {
        ReplayError::Chain(
            ChainError::Altered { sequence }
            | ChainError::Unlinked { sequence }
            | ChainError::Unreadable { sequence, .. },
        ) => Some(*sequence),
        ReplayError::Chain(ChainError::Gap { expected, .. }) => Some(*expected),
        _ => None,
    }
}

#[test]
fn the_live_log_verifies_while_the_engine_runs_and_tampering_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = SledStore::open(dir.path(), options()).expect("open");
    let raw = sled.sled_log_reader();
    let mut driver = Driver::start(Box::new(sled), SEED, Mix::SESSIONS);
    driver.run(20);
    let head = driver.engine.head();
    let reader: Arc<dyn LogReader> = driver.engine.log_reader().expect("running");
    let verifier = {
        let reader = reader.clone();
        std::thread::spawn(move || replay::verify_live(reader.as_ref(), head, &mut |_| {}))
    };
    driver.run(20);
    let report = verifier
        .join()
        .expect("verifier thread")
        .expect("an intact log verifies while the writer appends");
    assert_eq!(report.events, head.sequence);
    assert_eq!(report.head_hash, head.hash);

    // A head that the log does not end at is refused, naming it.
    let wrong = Head {
        hash: [7; 32],
        ..head
    };
    let error = replay::verify_live(reader.as_ref(), wrong, &mut |_| {}).expect_err("wrong head");
    assert_eq!(located(&error), Some(head.sequence), "{error}");

    // A changed byte in the middle of an envelope, then a broken link.
    let target = 5;
    let now = driver.engine.head();
    assert!(
        raw.tamper_with_envelope(target, |bytes| {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
        })
        .expect("tamper")
    );
    let error = replay::verify_live(reader.as_ref(), now, &mut |_| {}).expect_err("tampered");
    assert_eq!(located(&error), Some(target), "{error}");
    driver.engine.shutdown();
}

// ---- online backup ----

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// A data folder as `tessera serve` lays it out (the store, and `keys/` with a signing key
/// and the MFA key), with a workload running on it.
fn serving(data: &Path) -> (Driver, KeyStore) {
    let keys = KeyStore::open(data).expect("keys");
    keys.write(&Zeroizing::new([3; 32])).expect("signing key");
    keys.mfa_keys_or_create(&Zeroizing::new([4; 32]))
        .expect("mfa key");
    let sled = SledStore::open(data, options()).expect("open");
    let driver = Driver::start(Box::new(sled), SEED, Mix::SESSIONS);
    (driver, keys)
}

#[test]
fn a_backup_taken_while_the_workload_appends_holds_exactly_the_log_through_its_head() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let dest = out.path().join("backup");
    let (mut driver, keys) = serving(data.path());
    driver.run(30);
    let through = driver.engine.head();
    let reader = driver.engine.log_reader().expect("running");
    // The backup stops after its first event until the workload has appended more, so the
    // copy provably runs while the writer appends.
    let (go_on, wait) = std::sync::mpsc::channel::<()>();
    let backup = {
        let reader = reader.clone();
        let keys_dir = keys.dir().to_owned();
        let dest = dest.clone();
        std::thread::spawn(move || {
            let mut copied = Vec::new();
            let report = backup::write(
                reader.as_ref(),
                through,
                &keys_dir,
                &dest,
                &policy(),
                &mut |sequence| {
                    if copied.is_empty() {
                        wait.recv().expect("the workload goes on");
                    }
                    copied.push(sequence);
                },
            );
            (report, copied)
        })
    };
    driver.run(30);
    let later = driver.engine.head();
    assert!(later.sequence > through.sequence, "the workload appended");
    go_on.send(()).expect("backup waits");
    let (report, copied) = backup.join().expect("backup thread");
    let report = report.expect("the backup succeeds");
    driver.run(5);
    assert_eq!(report.events, through.sequence);
    assert_eq!(report.last_sequence, through.sequence);
    assert_eq!(report.last_hash, through.hash);
    assert!(report.bytes > 0);
    assert_eq!(report.key_files, 2);
    // Every sequence copied, then every one again as the views are rebuilt from the copy.
    let once: Vec<u64> = (1..=through.sequence).collect();
    assert_eq!(copied, [once.clone(), once].concat());
    let source = read_through(reader.as_ref(), through.sequence);
    driver.engine.shutdown();
    drop(driver);
    drop(reader);

    assert!(!dest.join(INCOMPLETE_MARKER).exists(), "the marker is gone");
    let copy = SledStore::open(&dest, options()).expect("the backup opens");
    assert_eq!(copy.head(), through);
    let verified = replay::verify(&copy, &mut |_| {}).expect("the backup's chain verifies");
    assert_eq!(verified.events, through.sequence);
    let log = read_log(&copy);
    assert_eq!(log, source, "exactly the events through the head");
    for (ours, theirs) in log.iter().zip(&source) {
        assert_eq!(
            tessera_storage::codec::encode_envelope(ours).expect("encodes"),
            tessera_storage::codec::encode_envelope(theirs).expect("encodes"),
            "byte for byte"
        );
    }
    assert!(copy.views_trusted().expect("reads"), "views were stored");
    let rebuilt = replay::rebuild(&copy, &mut |_| {}).expect("rebuilds");
    assert_eq!(
        replay::compare(&rebuilt, &copy).expect("compares"),
        vec![],
        "the backup's views equal a rebuild of its log"
    );
    assert!(rebuilt.account_count() > 0);

    let copied_keys = KeyStore::open(&dest).expect("the backup's keys open");
    assert_eq!(
        copied_keys.list().expect("lists"),
        keys.list().expect("lists")
    );
    assert_eq!(
        copied_keys.mfa_keys().expect("mfa key").key_id(),
        keys.mfa_keys().expect("mfa key").key_id()
    );
    assert_eq!(mode(copied_keys.dir()), 0o700);
    for entry in std::fs::read_dir(copied_keys.dir()).expect("lists") {
        assert_eq!(mode(&entry.expect("entry").path()), 0o600);
    }

    // The original still serves after the backup, with everything appended meanwhile.
    let original = SledStore::open(data.path(), options()).expect("reopen");
    assert!(original.head().sequence > later.sequence);
}

#[test]
fn a_backup_of_an_empty_log_is_an_empty_store_with_the_keys() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let dest = out.path().join("empty");
    let (driver, keys) = serving(data.path());
    let head = driver.engine.head();
    assert_eq!(head.sequence, 0);
    let reader = driver.engine.log_reader().expect("running");
    let report = backup::write(
        reader.as_ref(),
        head,
        keys.dir(),
        &dest,
        &policy(),
        &mut |_| {},
    )
    .expect("backs up");
    driver.engine.shutdown();
    assert_eq!((report.events, report.last_sequence), (0, 0));
    let copy = SledStore::open(&dest, options()).expect("opens");
    assert_eq!(copy.head(), head);
    assert_eq!(
        KeyStore::open(&dest)
            .expect("keys")
            .list()
            .expect("lists")
            .len(),
        1
    );
}

#[test]
fn a_backup_into_a_folder_that_is_not_empty_is_refused_and_touches_nothing() {
    let data = tempfile::tempdir().expect("temp dir");
    let dest = tempfile::tempdir().expect("temp dir");
    std::fs::write(dest.path().join("precious"), b"keep me").expect("write");
    let (mut driver, keys) = serving(data.path());
    driver.run(5);
    let reader = driver.engine.log_reader().expect("running");
    let error = backup::write(
        reader.as_ref(),
        driver.engine.head(),
        keys.dir(),
        dest.path(),
        &policy(),
        &mut |_| {},
    )
    .expect_err("refused");
    assert!(
        matches!(error, BackupError::DestinationNotEmpty { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("not an empty folder"), "{error}");
    assert_eq!(
        std::fs::read_dir(dest.path()).expect("lists").count(),
        1,
        "nothing was added"
    );
    assert_eq!(
        std::fs::read(dest.path().join("precious")).expect("reads"),
        b"keep me"
    );
    driver.engine.shutdown();
}

#[test]
fn an_interrupted_backup_keeps_its_marker_and_is_refused_by_open() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let dest = out.path().join("backup");
    let (mut driver, _keys) = serving(data.path());
    driver.run(10);
    let reader = driver.engine.log_reader().expect("running");
    // The key folder is missing, so the copy fails after the log and views were written.
    let error = backup::write(
        reader.as_ref(),
        driver.engine.head(),
        &data.path().join("no-such-keys"),
        &dest,
        &policy(),
        &mut |_| {},
    )
    .expect_err("the key copy fails");
    assert!(matches!(error, BackupError::Keys(_)), "{error}");
    driver.engine.shutdown();
    assert!(dest.join(INCOMPLETE_MARKER).exists(), "the marker stays");
    let refused = SledStore::open(&dest, options()).expect_err("an incomplete backup");
    assert!(
        matches!(refused, OpenError::IncompleteBackup { .. }),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("incomplete backup") && message.contains("must not be used"),
        "{message}"
    );
    assert!(matches!(
        KeyStore::open(&dest),
        Err(KeyStoreError::IncompleteBackup { .. })
    ));
}

#[test]
fn a_backup_of_a_head_the_log_does_not_reach_or_match_is_refused() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let (mut driver, keys) = serving(data.path());
    driver.run(10);
    let head = driver.engine.head();
    let reader = driver.engine.log_reader().expect("running");
    let run = |through: Head, name: &str| {
        backup::write(
            reader.as_ref(),
            through,
            keys.dir(),
            &out.path().join(name),
            &policy(),
            &mut |_| {},
        )
    };
    let beyond = Head {
        sequence: head.sequence + 100,
        ..head
    };
    assert!(matches!(
        run(beyond, "beyond"),
        Err(BackupError::ShortLog { .. })
    ));
    let other = Head {
        hash: [9; 32],
        ..head
    };
    assert!(matches!(
        run(other, "other"),
        Err(BackupError::HeadMismatch { .. })
    ));
    driver.engine.shutdown();
}

// ---- import ----

/// A seeded workload's log, sealed by a real engine.
fn sealed_log(steps: usize) -> Vec<Envelope> {
    let shared = SharedStore::new(MemoryStore::new());
    let mut driver = Driver::start(Box::new(shared.clone()), SEED, Mix::SESSIONS);
    driver.run(steps);
    driver.engine.shutdown();
    read_log(&*shared.lock())
}

fn import(
    store: &mut SledStore,
    log: &[Envelope],
) -> Result<tessera_storage::ImportReport, ImportError> {
    store.import(log.iter().cloned().map(Ok), &mut |_| {})
}

#[test]
fn import_continues_a_store_and_keeps_every_envelope_as_it_was() {
    let log = sealed_log(40);
    assert!(log.len() > 10);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = SledStore::open(dir.path(), options()).expect("open");
    let (first, rest) = log.split_at(log.len() / 2);
    let report = import(&mut store, first).expect("imports the first half");
    assert_eq!(report.events, first.len() as u64);
    let report = import(&mut store, rest).expect("continues with the rest");
    assert_eq!(report.head.sequence, log.len() as u64);
    assert!(
        !store.views_trusted().expect("reads"),
        "views wait for a rebuild"
    );
    drop(store);
    let store = SledStore::open(dir.path(), options()).expect("reopen");
    assert_eq!(read_log(&store), log);
    replay::verify(&store, &mut |_| {}).expect("verifies");
    let mut versions = std::collections::HashMap::new();
    for e in &log {
        versions.insert(e.stream.clone(), e.stream_version);
    }
    for (stream, version) in &versions {
        assert_eq!(
            store.stream_version(stream).expect("reads"),
            *version,
            "{stream}"
        );
    }
    let by_stream = store.read_stream(&log[0].stream).expect("reads");
    assert!(by_stream.iter().all(|e| e.stream == log[0].stream));
}

#[test]
fn import_refuses_a_broken_chain_naming_the_sequence() {
    let log = sealed_log(30);
    let fresh = || {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStore::open(dir.path(), options()).expect("open");
        (dir, store)
    };
    let chain_error = |result: Result<_, ImportError>| match result {
        Err(ImportError::Chain(e)) => e,
        other => panic!("expected a chain error, got {other:?}"),
    };

    // A removed envelope.
    let (_dir, mut store) = fresh();
    let mut gap = log.clone();
    gap.remove(4);
    assert_eq!(
        chain_error(import(&mut store, &gap)),
        ChainError::Gap {
            sequence: 6,
            expected: 5
        }
    );
    assert_eq!(store.head().sequence, 0, "nothing was written");

    // A link that points elsewhere.
    let (_dir, mut store) = fresh();
    let mut unlinked = log.clone();
    unlinked[6].prev_hash = [1; 32];
    assert_eq!(
        chain_error(import(&mut store, &unlinked)),
        ChainError::Unlinked { sequence: 7 }
    );

    // A log that does not continue the store's: the same log imported twice.
    let (_dir, mut store) = fresh();
    import(&mut store, &log).expect("imports");
    assert!(matches!(
        chain_error(import(&mut store, &log)),
        ChainError::Gap { .. }
    ));

    // Bytes changed in the source store: the reader reports the altered envelope.
    let src = tempfile::tempdir().expect("temp dir");
    let mut source = SledStore::open(src.path(), options()).expect("open");
    import(&mut source, &log).expect("imports");
    let raw = source.sled_log_reader();
    assert!(
        raw.tamper_with_envelope(9, |bytes| {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x10;
        })
        .expect("tamper")
    );
    let (_dir, mut store) = fresh();
    let error = store
        .import(raw.read_range(1, log.len() as u64), &mut |_| {})
        .expect_err("refused");
    match error {
        ImportError::Chain(ChainError::Altered { sequence }) => assert_eq!(sequence, 9),
        ImportError::Read(tessera_storage::ReadError::Corrupt { at, .. }) => {
            assert_eq!(at, "log sequence 9")
        }
        other => panic!("expected sequence 9 to be named, got {other}"),
    }

    // An envelope changed after it was read (its hash and the hash of its read bytes still
    // agree, so only the bytes about to be stored can tell).
    let (_dir, mut store) = fresh();
    let mut changed = log.clone();
    changed[10].recorded_at = tessera_core::Timestamp::from_millis(1);
    assert!(matches!(
        import(&mut store, &changed),
        Err(ImportError::NotReproducible { sequence: 11 })
    ));

    // A stream version that does not follow on, sealed so that the chain holds.
    let (_dir, mut store) = fresh();
    let mut skipped = log.clone();
    let last = skipped.last_mut().expect("non-empty");
    last.stream_version += 1;
    tessera_storage::chain::seal(last).expect("seals");
    assert!(matches!(
        import(&mut store, &skipped),
        Err(ImportError::StreamVersion { sequence, .. }) if sequence == log.len() as u64
    ));
}
