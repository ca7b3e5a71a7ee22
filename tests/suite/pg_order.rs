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
        let mut reader = Reader::new(&url, sql);
        loop {
            let done = stop.load(Ordering::Acquire);
            reader.poll();
            if done {
                return reader.seen;
            }
        }
    })
}

/// A follower that reads only when told, so a test can place its reads exactly.
struct Reader {
    client: Client,
    sql: &'static str,
    last: i64,
    seen: Vec<i64>,
}

impl Reader {
    fn new(url: &str, sql: &'static str) -> Self {
        Self {
            client: client(url),
            sql,
            last: 0,
            seen: Vec::new(),
        }
    }

    /// Reads what is past the last sequence seen, as a follower does.
    fn poll(&mut self) {
        for row in self.client.query(self.sql, &[&self.last]).expect("reads") {
            let seq: i64 = row.get(0);
            self.seen.push(seq);
            self.last = seq;
        }
    }
}

/// How the fast transaction meets the slow one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fast {
    /// It commits on its own while the slow one still holds its row.
    CommitsFirst,
    /// It waits on a lock the slow one holds.
    Waits,
}

/// Starts a slow transaction and, once it holds its row, a fast one; `body` writes in each.
/// No clock decides the interleaving: the slow one commits only when told, after the fast
/// one has committed (`Fast::CommitsFirst`) or is seen waiting on a lock (`Fast::Waits`),
/// and `between` runs at that moment. Returns the commit order.
fn slow_then_fast(
    url: &str,
    fast: Fast,
    body: fn(&mut postgres::Transaction<'_>),
    between: impl FnOnce(),
) -> Vec<&'static str> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let (held, holding) = std::sync::mpsc::channel();
    let (go, going) = std::sync::mpsc::channel::<()>();
    let slow = {
        let (url, order) = (url.to_owned(), order.clone());
        std::thread::spawn(move || {
            let mut c = client(&url);
            let mut tx = c.transaction().unwrap();
            body(&mut tx);
            held.send(()).unwrap();
            going.recv().unwrap();
            tx.commit().unwrap();
            order.lock().unwrap().push("slow");
        })
    };
    holding.recv().unwrap();
    let (committed, fast_done) = std::sync::mpsc::channel();
    let fast_thread = {
        let (url, order) = (url.to_owned(), order.clone());
        std::thread::spawn(move || {
            let mut c = client(&url);
            let mut tx = c.transaction().unwrap();
            body(&mut tx);
            tx.commit().unwrap();
            order.lock().unwrap().push("fast");
            let _ = committed.send(());
        })
    };
    match fast {
        Fast::CommitsFirst => fast_done.recv().unwrap(),
        Fast::Waits => {
            let mut watch = client(url);
            while watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE wait_event_type = 'Lock' AND datname = current_database()",
                    &[],
                )
                .unwrap()
                .get::<_, i64>(0)
                == 0
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    between();
    go.send(()).unwrap();
    slow.join().unwrap();
    fast_thread.join().unwrap();
    Arc::try_unwrap(order).unwrap().into_inner().unwrap()
}

#[test]
fn slow_and_fast_transactions_never_let_a_follower_skip_or_reorder() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    // The bug, shown: rows numbered by a database sequence before they commit. A follower
    // that reads between the fast commit and the slow one moves past the slow row's number.
    let mut c = client(&url);
    c.batch_execute("CREATE TABLE naive (sequence bigserial PRIMARY KEY, body text)")
        .unwrap();
    let naive = Mutex::new(Reader::new(
        &url,
        "SELECT sequence FROM naive WHERE sequence > $1 ORDER BY sequence",
    ));
    let order = slow_then_fast(
        &url,
        Fast::CommitsFirst,
        |tx| {
            tx.execute("INSERT INTO naive (body) VALUES ('x')", &[])
                .unwrap();
        },
        || naive.lock().unwrap().poll(),
    );
    let mut naive = naive.into_inner().unwrap();
    naive.poll();
    assert_eq!(order, ["fast", "slow"], "the fast one commits first");
    assert_eq!(
        naive.seen,
        [2],
        "the naive follower skips the row that committed late"
    );

    // The store's statements: the append lock and the counter row. The fast batch waits
    // for the slow one's commit, so a read between sees neither, and every follower sees
    // both in order.
    let store = PgStore::open(PgOptions::new(url.clone())).expect("opens");
    drop(store);
    let sql = "SELECT sequence FROM tessera_log WHERE sequence > $1 ORDER BY sequence";
    let stop = Arc::new(AtomicBool::new(false));
    let free_running = follower(url.clone(), sql, stop.clone());
    let placed = Mutex::new(Reader::new(&url, sql));
    let order = slow_then_fast(
        &url,
        Fast::Waits,
        |tx| {
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
        },
        || placed.lock().unwrap().poll(),
    );
    let mut placed = placed.into_inner().unwrap();
    placed.poll();
    stop.store(true, Ordering::Release);
    let seen = free_running.join().unwrap();
    assert_eq!(
        order,
        ["slow", "fast"],
        "the fast one waits for the slow one's commit"
    );
    assert_eq!(placed.seen, [1, 2], "the placed reads see both, in order");
    assert_eq!(
        seen,
        [1, 2],
        "the free-running follower sees both, in order"
    );
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
