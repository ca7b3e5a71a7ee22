//! Faults on the PostgreSQL backend, each one a test: the database going away mid-run, a
//! commit whose outcome the writer cannot know, and a deposed leader trying to append.
//! (A wrong URL or password, and a tampered log, are tried on the binary in
//! cli/tests/postgres.rs.)

#![allow(
    clippy::disallowed_methods,
    reason = "the tests pace a real database server in real time"
)]

use std::time::Duration;

use postgres::{Client, NoTls};
use tessera_core::account::Register;
use tessera_pgstore::{PgOptions, PgStore};
use tessera_storage::event_store::{AppendBatch, AppendError, EventStore, NewEvent};
use tessera_storage::{EngineError, Role, replay};
use tessera_tests::fixtures::{self, account};
use tessera_tests::workload::{TestClock, start_engine};
use tessera_tests::{PASSWORD, T0};

fn registered(n: u8, expected_version: u64) -> NewEvent {
    NewEvent {
        stream: account(n).stream(),
        expected_version,
        recorded_at: T0,
        event: fixtures::registered(account(n), &format!("user{n}"), PASSWORD),
    }
}

fn batch(events: Vec<NewEvent>) -> AppendBatch {
    AppendBatch {
        events,
        views: vec![],
    }
}

fn register(n: u32) -> Register {
    Register {
        username: format!("user{n}"),
        email: None,
        password_hash: Some(fixtures::hash(PASSWORD)),
        client: None,
    }
}

fn options(url: &str) -> PgOptions {
    let mut o = PgOptions::new(url);
    o.follow_interval = Duration::from_millis(50);
    o.retry_window = Duration::from_secs(60);
    o
}

#[test]
fn the_database_going_away_answers_writes_unavailable_keeps_reads_and_resumes() {
    let Some(cluster) = tessera_tests::pg::private_cluster() else {
        return;
    };
    let url = cluster.database();
    let store = PgStore::open(options(&url)).expect("opens");
    let engine = start_engine(Box::new(store), TestClock::at(T0), 1);
    assert!(tessera_tests::pg::wait_until(
        Duration::from_secs(5),
        || { engine.role() == Role::Leader }
    ));
    for n in 0..5 {
        let out = engine.execute_blocking(register(n)).expect("appended");
        assert!(out.reply.is_ok());
    }
    let head = engine.head_sequence();

    cluster.stop_immediate();
    // Within a few follow intervals the node knows: writes are refused at once, retryably.
    // A command taken before it knew waits for the database, and counts if it lands.
    let mut taken = Vec::new();
    assert!(tessera_tests::pg::wait_until(
        Duration::from_secs(5),
        || {
            match engine.submit(register(99 + taken.len() as u32)) {
                Err(EngineError::Unavailable) => true,
                Ok(rx) => {
                    taken.push(rx);
                    false
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    ));
    // Reads are served from the views, without the database.
    assert_eq!(engine.views().account_count(), 5);

    cluster.restart();
    assert!(tessera_tests::pg::wait_until(
        Duration::from_secs(20),
        || {
            engine
                .execute_blocking(register(5))
                .is_ok_and(|out| out.reply.is_ok())
        }
    ));
    for n in 6..10 {
        assert!(
            engine
                .execute_blocking(register(n))
                .expect("appended")
                .reply
                .is_ok()
        );
    }
    let late = taken
        .into_iter()
        .map(tokio::sync::oneshot::Receiver::blocking_recv)
        .filter(|answer| matches!(answer, Ok(Ok(out)) if out.reply.is_ok()))
        .count();
    engine.shutdown();
    let store = PgStore::open(options(&url)).expect("reopens");
    let report = replay::verify(&store, &mut |_| {}).expect("the chain is intact");
    assert!(report.events > head);
    let views = replay::rebuild(&store, &mut |_| {}).expect("rebuilds");
    assert_eq!(
        views.account_count(),
        10 + late,
        "every acknowledged account, once"
    );
    cluster.stop_immediate();
}

/// The backend id of the store's writer connection, found by its running `pg_sleep`.
fn kill_sleeping_writer(url: &str) {
    let mut admin = Client::connect(url, NoTls).expect("connects");
    assert!(tessera_tests::pg::wait_until(
        Duration::from_secs(5),
        || {
            admin
                .query_one(
                    "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()",
                    &[],
                )
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false)
        }
    ));
}

#[test]
fn a_connection_lost_before_commit_is_retried_and_appended_once() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let mut store = PgStore::open(options(&url)).expect("opens");
    store.append(batch(vec![registered(1, 0)])).expect("first");
    store.set_commit_delay(Some(Duration::from_millis(400)));
    let killer = std::thread::spawn({
        let url = url.clone();
        move || kill_sleeping_writer(&url)
    });
    let sealed = store
        .append(batch(vec![registered(2, 0)]))
        .expect("lands on the retry");
    killer.join().expect("killer");
    assert_eq!(sealed.first().map(|e| e.sequence), Some(2));
    let fresh = PgStore::open(options(&url)).expect("opens");
    assert_eq!(fresh.head(), store.head());
    assert_eq!(
        replay::verify(&fresh, &mut |_| {}).expect("intact").events,
        2
    );
}

#[test]
fn a_commit_whose_answer_was_lost_is_found_in_the_log_not_appended_twice() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let mut store = PgStore::open(options(&url)).expect("opens");
    store.append(batch(vec![registered(1, 0)])).expect("first");
    // The batch commits, then the store behaves as if the answer never came.
    store.lose_next_commit_answer();
    let sealed = store
        .append(batch(vec![registered(2, 0), registered(3, 0)]))
        .expect("found in the log");
    assert_eq!(sealed.len(), 2);
    store.append(batch(vec![registered(4, 0)])).expect("next");
    let fresh = PgStore::open(options(&url)).expect("opens");
    let report = replay::verify(&fresh, &mut |_| {}).expect("intact");
    assert_eq!(report.events, 4, "the batch is in the log once");
}

#[test]
fn a_deposed_leader_is_refused_by_the_fencing_token() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let mut old = PgStore::open(options(&url)).expect("opens");
    old.append(batch(vec![registered(1, 0)]))
        .expect("the old leader appends");
    let held = old.fence().expect("holds the lease");
    // The old leader's lease connection fails (a network partition): its session lock is
    // gone, but it does not know yet and still has its writer connection.
    old.drop_lease_connection();
    let mut new = PgStore::open(options(&url)).expect("opens");
    let followed = new.follow().expect("follows");
    assert_eq!(followed.role, Role::Leader, "the lease was free");
    assert!(new.fence().expect("holds it") > held);
    new.append(batch(vec![registered(2, 0)]))
        .expect("the new leader appends");
    // The old leader's late batch is refused, not applied.
    match old.append(batch(vec![registered(3, 0)])) {
        Err(AppendError::Deposed { held: h, current }) => {
            assert_eq!(h, held);
            assert!(current > held);
        }
        other => panic!("expected Deposed, got {other:?}"),
    }
    let fresh = PgStore::open(options(&url)).expect("opens");
    assert_eq!(
        replay::verify(&fresh, &mut |_| {}).expect("intact").events,
        2
    );
}
