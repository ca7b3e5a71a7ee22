//! Operating on a running server's log without stopping it: a reader beside the writer, a
//! subscription to the durable head, verifying the chain live, and an online backup taken
//! while a workload keeps appending.

use std::sync::Arc;

use tessera_storage::chain::ChainError;
use tessera_storage::fault::{FaultPoint, FaultyStore};
use tessera_storage::replay::{self, ReplayError};
use tessera_storage::{
    EngineError, Envelope, Head, LogReader, MemoryStore, SledOptions, SledStore,
};
use tessera_tests::workload::{Driver, Mix, SharedStore, read_log};

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
