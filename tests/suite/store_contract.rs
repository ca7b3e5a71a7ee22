//! The `EventStore` contract: one suite, written once over the trait, run against every
//! backend (as rustls runs one suite per provider). Sled-only tests at the end cover what
//! only a durable store can promise: reopening keeps everything.

use tessera_core::account::AccountView;
use tessera_core::secret::SecretDigest;
use tessera_core::session::SessionView;
use tessera_core::{AccountId, Event, StreamId, Timestamp, ViewKey, ViewRecord};
use tessera_storage::event_store::{AppendBatch, AppendError, EventStore, Head, NewEvent};
use tessera_storage::{Envelope, MemoryStore, SledOptions, SledStore, chain, replay};
use tessera_tests::fixtures::{self, account, session};
use tessera_tests::workload::read_log;
use tessera_tests::{PASSWORD, T0};

fn at(ms: u64) -> Timestamp {
    T0.plus_ms(ms)
}

/// Event `version + 1` of account `n`'s stream (the store does not care what it means).
fn event(n: u8, expected_version: u64, t: Timestamp) -> NewEvent {
    let event = if expected_version == 0 {
        fixtures::registered(account(n), &format!("user{n}"), PASSWORD)
    } else {
        Event::PasswordChanged {
            account: account(n),
            password_hash: fixtures::hash(&format!("Password {expected_version} A")),
        }
    };
    NewEvent {
        stream: account(n).stream(),
        expected_version,
        recorded_at: t,
        event,
    }
}

fn batch(events: Vec<NewEvent>) -> AppendBatch {
    AppendBatch {
        events,
        views: Vec::new(),
    }
}

fn account_record(n: u8, email: Option<&str>) -> (ViewKey, Option<ViewRecord>) {
    let view = AccountView {
        id: account(n),
        username: format!("user{n}"),
        email: email.map(str::to_owned),
        password_hash: fixtures::hash(PASSWORD),
        disabled: false,
        created_at: T0,
        password_changed_at: T0,
    };
    (
        ViewKey::Account(account(n)),
        Some(ViewRecord::Account(view)),
    )
}

fn username_record(n: u8) -> (ViewKey, Option<ViewRecord>) {
    (
        ViewKey::Username(format!("user{n}")),
        Some(ViewRecord::Username(account(n))),
    )
}

fn session_record(n: u8, owner: AccountId) -> (ViewKey, Option<ViewRecord>) {
    let view = SessionView {
        id: session(n),
        account: owner,
        secret_digest: SecretDigest::of(&fixtures::secret(n)),
        created_at: T0,
        last_seen_at: T0,
        idle_timeout_ms: 1_800_000,
        expires_at: at(43_200_000),
    };
    (
        ViewKey::Session(session(n)),
        Some(ViewRecord::Session(view)),
    )
}

fn records(store: &dyn EventStore) -> Vec<(ViewKey, ViewRecord)> {
    store
        .view_records()
        .collect::<Result<_, _>>()
        .expect("views read back")
}

fn stream(n: u8) -> StreamId {
    account(n).stream()
}

/// Three events over two streams, then two more: the log every ordering test reads.
fn append_sample(store: &mut dyn EventStore) -> Vec<Envelope> {
    let mut all = store
        .append(batch(vec![
            event(1, 0, at(1)),
            event(2, 0, at(2)),
            event(1, 1, at(3)),
        ]))
        .expect("first batch");
    all.extend(
        store
            .append(batch(vec![event(2, 1, at(4)), event(1, 2, at(5))]))
            .expect("second batch"),
    );
    all
}

// ---- the contract ----

fn an_empty_store_is_empty<S: EventStore>(store: &mut S) {
    assert_eq!(
        store.head(),
        Head {
            sequence: 0,
            hash: chain::GENESIS
        }
    );
    assert_eq!(store.read_from(1).count(), 0);
    assert_eq!(store.read_from(0).count(), 0);
    assert_eq!(store.stream_version(&stream(1)).expect("version"), 0);
    assert!(store.read_stream(&stream(1)).expect("stream").is_empty());
    assert!(records(store).is_empty());
    let report = replay::verify(store, &mut |_| {}).expect("an empty log verifies");
    assert_eq!(report.events, 0);
}

fn appends_are_sequenced_versioned_and_chained<S: EventStore>(store: &mut S) {
    let sealed = append_sample(store);
    let sequences: Vec<u64> = sealed.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    let versions: Vec<(StreamId, u64)> = sealed
        .iter()
        .map(|e| (e.stream.clone(), e.stream_version))
        .collect();
    assert_eq!(
        versions,
        [
            (stream(1), 1),
            (stream(2), 1),
            (stream(1), 2),
            (stream(2), 2),
            (stream(1), 3)
        ]
    );
    let mut prev = chain::GENESIS;
    for e in &sealed {
        assert_eq!(
            e.prev_hash, prev,
            "sequence {} links to the one before",
            e.sequence
        );
        assert_eq!(chain::expected_hash(e).expect("hashable"), e.hash);
        prev = e.hash;
    }
    assert_eq!(
        store.head(),
        Head {
            sequence: 5,
            hash: prev
        }
    );
    assert_eq!(store.stream_version(&stream(1)).expect("v"), 3);
    assert_eq!(store.stream_version(&stream(2)).expect("v"), 2);
    assert_eq!(store.stream_version(&stream(3)).expect("v"), 0);
}

fn reads_return_what_was_appended_in_order<S: EventStore>(store: &mut S) {
    let sealed = append_sample(store);
    assert_eq!(read_log(store), sealed);
    for from in 1..=sealed.len() as u64 + 1 {
        let tail: Vec<Envelope> = store
            .read_from(from)
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(tail, sealed[(from - 1) as usize..], "read_from({from})");
    }
    for n in [1, 2] {
        let expected: Vec<Envelope> = sealed
            .iter()
            .filter(|e| e.stream == stream(n))
            .cloned()
            .collect();
        assert_eq!(store.read_stream(&stream(n)).expect("stream"), expected);
    }
}

fn a_conflict_rejects_the_whole_batch<S: EventStore>(store: &mut S) {
    let before = append_sample(store);
    let head = store.head();
    let views_before = records(store);
    // Stream 3 is new and its event is fine; stream 1 is at version 3, not 1.
    let mut bad = batch(vec![event(3, 0, at(6)), event(1, 1, at(6))]);
    bad.views = vec![account_record(3, None), username_record(3)];
    match store.append(bad) {
        Err(AppendError::Conflict {
            stream: s,
            expected: 1,
            actual: 3,
        }) => assert_eq!(s, stream(1)),
        other => panic!("expected a conflict on stream 1, got {other:?}"),
    }
    assert_eq!(store.head(), head);
    assert_eq!(read_log(store), before);
    assert_eq!(store.stream_version(&stream(3)).expect("v"), 0);
    assert!(store.read_stream(&stream(3)).expect("stream").is_empty());
    assert_eq!(
        records(store),
        views_before,
        "no view of a refused batch is visible"
    );
    // The log goes on from where it was: no hole where the refused batch would have been.
    let next = store
        .append(batch(vec![event(3, 0, at(7))]))
        .expect("a correct batch");
    assert_eq!(next[0].sequence, head.sequence + 1);
    assert_eq!(next[0].prev_hash, head.hash);
    replay::verify(store, &mut |_| {}).expect("chain intact");
}

fn versions_count_within_a_batch<S: EventStore>(store: &mut S) {
    let twice_new = batch(vec![event(1, 0, at(1)), event(1, 0, at(1))]);
    assert!(matches!(
        store.append(twice_new),
        Err(AppendError::Conflict {
            expected: 0,
            actual: 1,
            ..
        })
    ));
    let ahead = batch(vec![event(1, 1, at(1))]);
    assert!(matches!(
        store.append(ahead),
        Err(AppendError::Conflict {
            expected: 1,
            actual: 0,
            ..
        })
    ));
    assert_eq!(store.head().sequence, 0);
    let sealed = store
        .append(batch(vec![
            event(1, 0, at(1)),
            event(1, 1, at(1)),
            event(1, 2, at(1)),
        ]))
        .expect("in order");
    assert_eq!(
        sealed.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

fn views_are_written_and_removed_with_their_batch<S: EventStore>(store: &mut S) {
    let mut first = batch(vec![event(1, 0, at(1))]);
    first.views = vec![
        account_record(1, None),
        username_record(1),
        session_record(1, account(1)),
    ];
    store.append(first).expect("append");
    let expected: Vec<_> = [
        account_record(1, None),
        username_record(1),
        session_record(1, account(1)),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.expect("some")))
    .collect();
    assert_eq!(records(store), expected);
    let mut second = batch(vec![event(1, 1, at(2))]);
    second.views = vec![
        account_record(1, Some("a@b.example")),
        (ViewKey::Session(session(1)), None),
    ];
    store.append(second).expect("append");
    let expected: Vec<_> = [account_record(1, Some("a@b.example")), username_record(1)]
        .into_iter()
        .map(|(k, v)| (k, v.expect("some")))
        .collect();
    assert_eq!(records(store), expected);
}

fn view_records_come_in_key_order<S: EventStore>(store: &mut S) {
    let mut b = batch(vec![event(2, 0, at(1)), event(1, 0, at(1))]);
    b.views = vec![
        session_record(2, account(2)),
        username_record(2),
        account_record(2, None),
        session_record(1, account(1)),
        username_record(1),
        account_record(1, None),
    ];
    store.append(b).expect("append");
    let keys: Vec<ViewKey> = records(store).into_iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 6);
}

fn replace_views_replaces_every_record<S: EventStore>(store: &mut S) {
    let mut b = batch(vec![event(1, 0, at(1))]);
    b.views = vec![
        account_record(1, None),
        username_record(1),
        session_record(1, account(1)),
    ];
    store.append(b).expect("append");
    let head = store.head();
    let (key, record) = account_record(2, Some("c@d.example"));
    let replacement = vec![(key, record.expect("some"))];
    store.replace_views(replacement.clone()).expect("replace");
    assert_eq!(records(store), replacement);
    assert_eq!(store.head(), head, "replacing views leaves the log alone");
    store
        .replace_views(Vec::new())
        .expect("replace with nothing");
    assert!(records(store).is_empty());
}

fn a_batch_of_views_alone_leaves_the_log_alone<S: EventStore>(store: &mut S) {
    let sealed = store
        .append(AppendBatch {
            events: Vec::new(),
            views: vec![username_record(1)],
        })
        .expect("append");
    assert!(sealed.is_empty());
    assert_eq!(
        store.head(),
        Head {
            sequence: 0,
            hash: chain::GENESIS
        }
    );
    assert_eq!(records(store).len(), 1);
    append_sample(store);
    let head = store.head();
    store
        .append(AppendBatch {
            events: Vec::new(),
            views: vec![(ViewKey::Username("user1".into()), None)],
        })
        .expect("append");
    assert_eq!(store.head(), head);
    assert!(records(store).is_empty());
    replay::verify(store, &mut |_| {}).expect("chain intact");
}

fn the_chain_verifies_after_appends<S: EventStore>(store: &mut S) {
    let sealed = append_sample(store);
    let mut seen = Vec::new();
    let report = replay::verify(store, &mut |s| seen.push(s)).expect("intact chain");
    assert_eq!(report.events, 5);
    assert_eq!(report.head_hash, sealed[4].hash);
    assert_eq!(seen, [1, 2, 3, 4, 5]);
}

/// A reader taken before the appends sees them (it shares the log, it is no copy), from
/// another thread, bounded by the range it is given; the live verify walks it.
fn a_log_reader_sees_later_appends_within_its_range<S: EventStore>(store: &mut S) {
    let reader = store.log_reader();
    assert_eq!(reader.read_from(1).count(), 0);
    let sealed = append_sample(store);
    let head = store.head();
    let read = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                reader
                    .read_range(1, head.sequence)
                    .collect::<Result<Vec<_>, _>>()
                    .expect("reads")
            })
            .join()
            .expect("reader thread")
    });
    assert_eq!(read, sealed);
    let middle: Vec<u64> = reader
        .read_range(2, 4)
        .map(|e| e.expect("reads").sequence)
        .collect();
    assert_eq!(middle, [2, 3, 4]);
    assert_eq!(reader.read_range(4, 3).count(), 0);
    let tail: Vec<u64> = reader
        .read_from(4)
        .map(|e| e.expect("reads").sequence)
        .collect();
    assert_eq!(tail, [4, 5]);
    let report = replay::verify_live(reader.as_ref(), head, &mut |_| {}).expect("intact chain");
    assert_eq!(report.events, 5);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut tessera_storage::MemoryStore::new());
                }
            )*
        }
        mod sled {
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    super::$name(&mut super::open(dir.path()));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    // A database of its own in the shared throwaway cluster; skipped
                    // (with one note for the run) where PostgreSQL is not installed.
                    let Some(url) = tessera_tests::pg::database() else { return };
                    let mut store = tessera_pgstore::PgStore::open(
                        tessera_pgstore::PgOptions::new(url),
                    )
                    .expect("PostgreSQL store opens");
                    super::$name(&mut store);
                }
            )*
        }
    };
}

contract!(
    an_empty_store_is_empty,
    appends_are_sequenced_versioned_and_chained,
    reads_return_what_was_appended_in_order,
    a_conflict_rejects_the_whole_batch,
    versions_count_within_a_batch,
    views_are_written_and_removed_with_their_batch,
    view_records_come_in_key_order,
    replace_views_replaces_every_record,
    a_batch_of_views_alone_leaves_the_log_alone,
    the_chain_verifies_after_appends,
    a_log_reader_sees_later_appends_within_its_range,
);

// ---- across backends, and across a reopen ----

fn options() -> SledOptions {
    SledOptions {
        cache_bytes: 4 * 1024 * 1024,
        ..SledOptions::default()
    }
}

fn open(path: &std::path::Path) -> SledStore {
    SledStore::open(path, options()).expect("sled store opens")
}

#[test]
fn both_backends_seal_byte_for_byte_alike() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sled = open(dir.path());
    let mut memory = MemoryStore::new();
    assert_eq!(append_sample(&mut sled), append_sample(&mut memory));
    assert_eq!(sled.head(), memory.head());
}

#[test]
fn a_reopened_sled_store_keeps_log_heads_views_and_head_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (log, head, views, versions) = {
        let mut store = open(dir.path());
        append_sample(&mut store);
        let mut b = batch(vec![event(3, 0, at(9))]);
        b.views = vec![
            account_record(3, None),
            username_record(3),
            session_record(3, account(3)),
        ];
        store.append(b).expect("append");
        let versions: Vec<u64> = (1..=4)
            .map(|n| store.stream_version(&stream(n)).expect("v"))
            .collect();
        (read_log(&store), store.head(), records(&store), versions)
    };
    let mut store = open(dir.path());
    assert_eq!(read_log(&store), log);
    assert_eq!(store.head(), head);
    assert_eq!(records(&store), views);
    assert_eq!(
        (1..=4)
            .map(|n| store.stream_version(&stream(n)).expect("v"))
            .collect::<Vec<_>>(),
        versions
    );
    for n in 1..=3 {
        let expected: Vec<Envelope> = log
            .iter()
            .filter(|e| e.stream == stream(n))
            .cloned()
            .collect();
        assert_eq!(store.read_stream(&stream(n)).expect("stream"), expected);
    }
    replay::verify(&store, &mut |_| {}).expect("chain intact after reopen");
    // Appending after a reopen continues the chain and the stream versions.
    let next = store
        .append(batch(vec![event(1, versions[0], at(10))]))
        .expect("append after reopen");
    assert_eq!(
        (next[0].sequence, next[0].prev_hash, next[0].stream_version),
        (head.sequence + 1, head.hash, versions[0] + 1)
    );
    assert!(matches!(
        store.append(batch(vec![event(2, 0, at(11))])),
        Err(AppendError::Conflict { actual: 2, .. })
    ));
}

#[test]
fn a_sled_store_that_holds_only_views_reopens() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut store = open(dir.path());
        let views_only = AppendBatch {
            events: Vec::new(),
            views: vec![username_record(1)],
        };
        store
            .append(views_only)
            .expect("a batch of views alone is accepted");
    }
    let store = SledStore::open(dir.path(), options()).expect("reopens after an accepted batch");
    assert_eq!(
        store.head(),
        Head {
            sequence: 0,
            hash: chain::GENESIS
        }
    );
    assert_eq!(records(&store).len(), 1);
}
