//! The global order on PostgreSQL: no gap and no reordering a follower could see, by
//! construction. A database numbers rows before they commit, so a follower that reads
//! `sequence > last` can skip a row whose transaction commits late. Each of our batches
//! takes the append lock and numbers its rows from the counter row it locks, so a later
//! batch cannot commit before an earlier one.
//!
//! The first test shows the bug on a table numbered by a database sequence (so the detector
//! can see it), then runs the same slow and fast transactions through the store's
//! statements and shows that no follower skips or reorders. The second runs the real store
//! and a real follower side by side.

#![allow(
    clippy::disallowed_methods,
    reason = "the test paces real transactions in real time"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls};
use tessera_pgstore::{PgOptions, PgStore, schema};
use tessera_storage::event_store::{AppendBatch, EventStore, NewEvent};
use tessera_storage::{Followed, Role};
use tessera_tests::fixtures::{self, account};
use tessera_tests::{PASSWORD, T0};

fn client(url: &str) -> Client {
    Client::connect(url, NoTls).expect("connects")
}

/// Follows `sql` (which returns sequences greater than $1, in order) in a tight loop until
/// `stop`, recording every sequence in the order it was first seen.
fn follower(
    url: String,
    sql: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<i64>> {
    std::thread::spawn(move || {
        let mut c = client(&url);
        let mut last = 0i64;
        let mut seen = Vec::new();
        loop {
            let done = stop.load(Ordering::Acquire);
            for row in c.query(sql, &[&last]).expect("follower reads") {
                let seq: i64 = row.get(0);
                seen.push(seq);
                last = seq;
            }
            if done {
                return seen;
            }
        }
    })
}

/// Starts a slow transaction (it waits 600 ms before committing), then, once it holds its
/// row, a fast one; `body` runs each, with its delay.
fn slow_then_fast(url: &str, body: fn(&mut Client, f64)) -> Vec<&'static str> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let slow = {
        let (url, order) = (url.to_owned(), order.clone());
        std::thread::spawn(move || {
            body(&mut client(&url), 0.6);
            order.lock().unwrap().push("slow");
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let fast = {
        let (url, order) = (url.to_owned(), order.clone());
        std::thread::spawn(move || {
            body(&mut client(&url), 0.0);
            order.lock().unwrap().push("fast");
        })
    };
    slow.join().unwrap();
    fast.join().unwrap();
    Arc::try_unwrap(order).unwrap().into_inner().unwrap()
}

#[test]
fn slow_and_fast_transactions_never_let_a_follower_skip_or_reorder() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    // The bug, shown: rows numbered by a database sequence before they commit.
    let mut c = client(&url);
    c.batch_execute("CREATE TABLE naive (sequence bigserial PRIMARY KEY, body text)")
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let naive = follower(
        url.clone(),
        "SELECT sequence FROM naive WHERE sequence > $1 ORDER BY sequence",
        stop.clone(),
    );
    let order = slow_then_fast(&url, |c, delay| {
        let mut tx = c.transaction().unwrap();
        tx.execute("INSERT INTO naive (body) VALUES ('x')", &[])
            .unwrap();
        tx.execute("SELECT pg_sleep($1)", &[&delay]).unwrap();
        tx.commit().unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    let seen = naive.join().unwrap();
    assert_eq!(order, ["fast", "slow"], "the fast one commits first");
    assert_eq!(
        seen,
        [2],
        "the naive follower skips the row that committed late"
    );

    // The store's statements: the append lock and the counter row.
    let store = PgStore::open(PgOptions::new(url.clone())).expect("opens");
    drop(store);
    let stop = Arc::new(AtomicBool::new(false));
    let ordered = follower(
        url.clone(),
        "SELECT sequence FROM tessera_log WHERE sequence > $1 ORDER BY sequence",
        stop.clone(),
    );
    let order = slow_then_fast(&url, |c, delay| {
        let mut tx = c.transaction().unwrap();
        let row = tx
            .query_one(schema::LOCK_HEAD, &[&schema::APPEND_LOCK])
            .unwrap();
        let next: i64 = row.get::<_, i64>(1) + 1;
        tx.execute(
            schema::INSERT_LOG,
            &[
                &vec![next],
                &vec![format!("s{next}")],
                &vec![1i64],
                &vec![vec![0u8]],
            ],
        )
        .unwrap();
        tx.execute(schema::MOVE_HEAD, &[&next, &[0u8; 32].as_slice()])
            .unwrap();
        tx.execute("SELECT pg_sleep($1)", &[&delay]).unwrap();
        tx.commit().unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    let seen = ordered.join().unwrap();
    assert_eq!(
        order,
        ["slow", "fast"],
        "the fast one waits for the slow one's commit"
    );
    assert_eq!(seen, [1, 2], "the follower sees both, in order");
}

fn registered(n: u8) -> NewEvent {
    NewEvent {
        stream: account(n).stream(),
        expected_version: 0,
        recorded_at: T0,
        event: fixtures::registered(account(n), &format!("user{n}"), PASSWORD),
    }
}

#[test]
fn a_follower_of_the_real_store_sees_every_batch_once_in_order() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let mut leader = PgStore::open(PgOptions::new(url.clone())).expect("leader opens");
    let mut follower = PgStore::open(PgOptions::new(url)).expect("follower opens");
    // The first append takes the lease; the follower then cannot.
    leader
        .append(AppendBatch {
            events: vec![registered(0)],
            views: vec![],
        })
        .unwrap();
    let writer = std::thread::spawn(move || {
        for n in 1..=40u8 {
            // Every fifth batch holds its locks a while before committing.
            leader.set_commit_delay((n % 5 == 0).then_some(Duration::from_millis(80)));
            leader
                .append(AppendBatch {
                    events: vec![registered(n)],
                    views: vec![],
                })
                .unwrap();
        }
        leader
    });
    let mut seen = Vec::new();
    while seen.len() < 41 {
        let Followed { role, envelopes } = follower.follow().expect("follows");
        assert!(matches!(role, Role::Follower { .. }), "the lease is held");
        // `follow` checks the chain from its head: a skipped or repeated sequence fails it.
        seen.extend(envelopes.iter().map(|e| e.sequence));
    }
    let leader = writer.join().unwrap();
    assert_eq!(seen, (1..=41).collect::<Vec<u64>>());
    assert_eq!(follower.head(), leader.head());
}
