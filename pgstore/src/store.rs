//! [`PgStore`]: the [`EventStore`] on PostgreSQL, and its [`LogReader`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::Client;
use tessera_core::{StreamId, ViewKey, ViewRecord};
use tessera_storage::chain::{self, ChainVerifier};
use tessera_storage::codec::{self, ViewTree};
use tessera_storage::event_store::seal_batch;
use tessera_storage::{
    AppendBatch, AppendError, Envelope, EventStore, FollowError, Followed, Head, LogReader,
    OpenError, ReadError, Role,
};

use crate::pool::{Pool, connect, connection_lost, describe, why};
use crate::schema;

/// How long a store that appends without following waits for the lease.
const LEASE_WAIT: Duration = Duration::from_secs(5);

/// How many envelopes one read of the log fetches.
const PAGE_ENVELOPES: i64 = 1024;

/// Stream versions remembered by the writer; past this the cache is emptied and refilled
/// from the log as streams are touched again.
const CACHED_STREAMS_MAX: usize = 200_000;

/// How a [`PgStore`] connects and takes part in the cluster of nodes.
#[derive(Clone)]
pub struct PgOptions {
    /// A `postgres://` URL (or key=value connection string). May hold a password; it is
    /// never printed.
    pub url: String,
    /// A password that overrides the URL's (read from the environment by the caller).
    pub password: Option<String>,
    /// The address this node serves HTTP on, recorded with the lease so that followers can
    /// forward writes to it.
    pub advertise: Option<String>,
    /// How often a follower looks at the log and the lease when no notification woke it
    /// (also the bound on noticing that the leader is gone).
    pub follow_interval: Duration,
    /// How long a batch keeps retrying while the database cannot be reached, before the
    /// append fails.
    pub retry_window: Duration,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"(redacted)")
            .field("advertise", &self.advertise)
            .field("follow_interval", &self.follow_interval)
            .finish_non_exhaustive()
    }
}

impl PgOptions {
    /// Options for `url` with the defaults: no advertised address, a 200 ms follow interval,
    /// a 30 s retry window.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            advertise: None,
            follow_interval: Duration::from_millis(200),
            retry_window: Duration::from_secs(30),
        }
    }

    /// The driver's configuration, with the password override applied.
    pub fn config(&self) -> Result<postgres::Config, OpenError> {
        let mut config: postgres::Config =
            self.url
                .parse()
                .map_err(|e: postgres::Error| OpenError::Io {
                    path: "storage.url".into(),
                    why: format!("not a PostgreSQL connection URL: {e}"),
                })?;
        if let Some(password) = &self.password {
            config.password(password.as_bytes());
        }
        Ok(config)
    }
}

/// The log, stream index and views in PostgreSQL (see [`crate::schema`]), with the same
/// envelope bytes and hash chain as the sled store. One connection appends (the writer
/// thread's), a small pool reads, and when the store leads, one more holds the writer lease.
pub struct PgStore {
    config: postgres::Config,
    target: String,
    options: PgOptions,
    writer: Option<Client>,
    pool: Arc<Pool>,
    head: Cell<Head>,
    versions: RefCell<HashMap<StreamId, u64>>,
    lease: Option<Client>,
    fence: Option<u64>,
    listener: Option<Arc<AtomicBool>>,
    /// Set while the database cannot be reached, for `/healthz` and the engine.
    unreachable: Arc<AtomicBool>,
    /// Test hook: how long a batch waits, holding its locks, before it commits.
    commit_delay: Option<Duration>,
    /// Test hook: the next batch that commits behaves as if the answer to its commit was
    /// lost with the connection.
    lose_commit_answer: bool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("head", &self.head.get().sequence)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

struct Meta {
    format: i32,
    head: Head,
    leader: Option<String>,
    views_dirty: bool,
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn hash_of(bytes: &[u8], at: &str) -> Result<[u8; 32], ReadError> {
    bytes.try_into().map_err(|_| ReadError::Corrupt {
        at: at.to_owned(),
        why: "not a 32-byte hash".into(),
    })
}

fn read_meta(client: &mut Client) -> Result<Result<Meta, ReadError>, postgres::Error> {
    let row = client.query_one(schema::READ_META, &[])?;
    let hash: Vec<u8> = row.get(2);
    Ok(hash_of(&hash, "tessera_meta.hash").map(|hash| Meta {
        format: row.get(0),
        head: Head {
            sequence: to_u64(row.get(1)),
            hash,
        },
        leader: row.get(4),
        views_dirty: row.get(5),
    }))
}

/// One stored envelope, decoded; a damaged one names its sequence (`log sequence N`, which
/// `replay::verify` reads back).
fn decode_row(sequence: i64, bytes: &[u8]) -> Result<Envelope, ReadError> {
    codec::decode_envelope(bytes).map_err(|e| ReadError::Corrupt {
        at: format!("log sequence {sequence}"),
        why: e.to_string(),
    })
}

fn read_page(
    client: &mut Client,
    from: u64,
    through: u64,
) -> Result<Vec<(i64, Vec<u8>)>, postgres::Error> {
    Ok(client
        .query(
            schema::READ_PAGE,
            &[&to_i64(from), &to_i64(through), &PAGE_ENVELOPES],
        )?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Reads `from..=through` page by page through the pool, each page on one connection.
fn paged(
    pool: Arc<Pool>,
    from: u64,
    through: u64,
) -> impl Iterator<Item = Result<Envelope, ReadError>> {
    let mut next = from.max(1);
    let mut page: std::vec::IntoIter<(i64, Vec<u8>)> = Vec::new().into_iter();
    let mut done = from > through;
    std::iter::from_fn(move || {
        loop {
            if let Some((seq, bytes)) = page.next() {
                next = to_u64(seq) + 1;
                return Some(decode_row(seq, &bytes));
            }
            if done {
                return None;
            }
            match pool.with(|c| read_page(c, next, through)) {
                Ok(rows) => {
                    if (rows.len() as i64) < PAGE_ENVELOPES {
                        done = true;
                    }
                    if rows.is_empty() {
                        return None;
                    }
                    page = rows.into_iter();
                }
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        }
    })
}

/// Why one attempt at a batch did not land.
enum Attempt {
    /// Refused; nothing was written and retrying will not help.
    Refused(AppendError),
    /// The connection failed: the batch may or may not have committed.
    Lost(String),
}

/// A batch encoded for its statements.
struct Rows {
    sequences: Vec<i64>,
    streams: Vec<String>,
    versions: Vec<i64>,
    envelopes: Vec<Vec<u8>>,
    upsert: (Vec<i16>, Vec<Vec<u8>>, Vec<Vec<u8>>),
    delete: (Vec<i16>, Vec<Vec<u8>>),
}

fn encode_rows(
    sealed: &[Envelope],
    views: &[(ViewKey, Option<ViewRecord>)],
) -> Result<Rows, AppendError> {
    let mut rows = Rows {
        sequences: Vec::with_capacity(sealed.len()),
        streams: Vec::with_capacity(sealed.len()),
        versions: Vec::with_capacity(sealed.len()),
        envelopes: Vec::with_capacity(sealed.len()),
        upsert: (Vec::new(), Vec::new(), Vec::new()),
        delete: (Vec::new(), Vec::new()),
    };
    for e in sealed {
        rows.sequences.push(to_i64(e.sequence));
        rows.streams.push(e.stream.as_str().to_owned());
        rows.versions.push(to_i64(e.stream_version));
        rows.envelopes.push(codec::encode_envelope(e)?);
    }
    for (key, record) in views {
        let (tree, k) = codec::view_key(key);
        let tree = i16::try_from(tree.index()).unwrap_or(i16::MAX);
        match record {
            Some(r) => {
                rows.upsert.0.push(tree);
                rows.upsert.1.push(k);
                rows.upsert.2.push(codec::encode_view_record(r)?);
            }
            None => {
                rows.delete.0.push(tree);
                rows.delete.1.push(k);
            }
        }
    }
    Ok(rows)
}

impl PgStore {
    /// Connects, creates the tables on first use, and reads the head. Refuses a database
    /// of another layout, one whose head record disagrees with its log, and names the
    /// server and the reason (wrong password, no such database, refused) when it cannot
    /// connect.
    pub fn open(options: PgOptions) -> Result<Self, OpenError> {
        let config = options.config()?;
        let target = describe(&config);
        let fail = |why: String| OpenError::Io {
            path: target.clone(),
            why,
        };
        let mut client = connect(&config).map_err(|e| fail(why(&e)))?;
        Self::create_tables(&mut client).map_err(|e| fail(why(&e)))?;
        let meta = read_meta(&mut client).map_err(|e| fail(why(&e)))??;
        if meta.format != schema::SCHEMA_FORMAT {
            return Err(OpenError::Format {
                path: target,
                found: u32::try_from(meta.format).unwrap_or(0),
                supported: u32::try_from(schema::SCHEMA_FORMAT).unwrap_or(0),
            });
        }
        let last: Option<i64> = client
            .query_one("SELECT MAX(sequence) FROM tessera_log", &[])
            .map_err(|e| fail(why(&e)))?
            .get(0);
        if to_u64(last.unwrap_or(0)) != meta.head.sequence {
            return Err(OpenError::Read(ReadError::Corrupt {
                at: "tessera_meta.sequence".into(),
                why: format!(
                    "the head record names sequence {} but the log ends at {}",
                    meta.head.sequence,
                    last.unwrap_or(0)
                ),
            }));
        }
        Ok(Self {
            pool: Arc::new(Pool::new(config.clone())),
            config,
            target,
            options,
            writer: Some(client),
            head: Cell::new(meta.head),
            versions: RefCell::new(HashMap::new()),
            lease: None,
            fence: None,
            listener: None,
            unreachable: Arc::new(AtomicBool::new(false)),
            commit_delay: None,
            lose_commit_answer: false,
        })
    }

    fn create_tables(client: &mut Client) -> Result<(), postgres::Error> {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::SCHEMA_LOCK])?;
        tx.batch_execute(schema::CREATE)?;
        tx.execute(
            schema::INIT_META,
            &[&schema::SCHEMA_FORMAT, &chain::GENESIS.as_slice()],
        )?;
        tx.commit()
    }

    /// Where the store points, for messages (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The fencing token this store appends under, while it holds the lease.
    pub fn fence(&self) -> Option<u64> {
        self.fence
    }

    /// The store's [`LogReader`], as its concrete type.
    pub fn pg_log_reader(&self) -> PgLogReader {
        PgLogReader {
            pool: self.pool.clone(),
        }
    }

    /// Test hook: every batch waits this long, holding its locks, before it commits.
    #[doc(hidden)]
    pub fn set_commit_delay(&mut self, delay: Option<Duration>) {
        self.commit_delay = delay;
    }

    /// Test hook: the next batch commits, then its connection is dropped as if the answer
    /// never came.
    #[doc(hidden)]
    pub fn lose_next_commit_answer(&mut self) {
        self.lose_commit_answer = true;
    }

    /// Test hook: closes the connection that holds the lease, as a network failure would.
    #[doc(hidden)]
    pub fn drop_lease_connection(&mut self) {
        self.lease = None;
    }

    fn writer(&mut self) -> Result<&mut Client, String> {
        if self.writer.as_ref().is_none_or(Client::is_closed) {
            self.writer = None;
            let client = connect(&self.config).map_err(|e| why(&e))?;
            self.writer = Some(client);
        }
        self.writer
            .as_mut()
            .ok_or_else(|| "no connection".to_owned())
    }

    fn version_of(&self, stream: &StreamId) -> Result<u64, ReadError> {
        if let Some(v) = self.versions.borrow().get(stream) {
            return Ok(*v);
        }
        let v: i64 = self.pool.with(|c| {
            Ok(c.query_one(schema::STREAM_VERSION, &[&stream.as_str()])?
                .get(0))
        })?;
        Ok(to_u64(v))
    }

    fn remember(&self, envelopes: &[Envelope]) {
        let mut versions = self.versions.borrow_mut();
        if versions.len() + envelopes.len() > CACHED_STREAMS_MAX {
            versions.clear();
        }
        for e in envelopes {
            versions.insert(e.stream.clone(), e.stream_version);
        }
    }

    /// Takes the lease if it is free: the session lock, then a new fencing token recorded
    /// with this node's address, and every envelope appended since this store's head, read
    /// in the same transaction (so none that the previous leader committed is missed).
    /// `Ok(None)` when another node holds it.
    fn take_lease(&mut self) -> Result<Option<Vec<Envelope>>, FollowError> {
        let unreachable = |e: postgres::Error| FollowError::Unreachable(why(&e));
        if self.lease.as_ref().is_none_or(Client::is_closed) {
            self.lease = Some(connect(&self.config).map_err(unreachable)?);
        }
        let Some(lease) = self.lease.as_mut() else {
            return Ok(None);
        };
        let got: bool = lease
            .query_one("SELECT pg_try_advisory_lock($1)", &[&schema::LEASE_LOCK])
            .map_err(unreachable)?
            .get(0);
        if !got {
            return Ok(None);
        }
        let head = self.head.get();
        let advertise = self.options.advertise.clone();
        let writer = self.writer().map_err(FollowError::Unreachable)?;
        let mut tx = writer.transaction().map_err(unreachable)?;
        tx.query_one(schema::LOCK_HEAD, &[&schema::APPEND_LOCK])
            .map_err(unreachable)?;
        let row = tx
            .query_one(schema::TAKE_FENCE, &[&advertise])
            .map_err(unreachable)?;
        let fence = to_u64(row.get(0));
        let through = to_u64(row.get(1));
        let mut envelopes = Vec::new();
        let mut next = head.sequence + 1;
        while next <= through {
            let rows = tx
                .query(
                    schema::READ_PAGE,
                    &[&to_i64(next), &to_i64(through), &PAGE_ENVELOPES],
                )
                .map_err(unreachable)?;
            if rows.is_empty() {
                break;
            }
            for r in rows {
                let seq: i64 = r.get(0);
                let bytes: Vec<u8> = r.get(1);
                envelopes.push(decode_row(seq, &bytes)?);
                next = to_u64(seq) + 1;
            }
        }
        tx.commit().map_err(unreachable)?;
        self.check_and_advance(&envelopes)?;
        self.fence = Some(fence);
        tracing::info!(fence, target = %self.target, "took the writer lease");
        Ok(Some(envelopes))
    }

    /// Checks that `envelopes` continue the chain from this store's head, then moves the
    /// head past them.
    fn check_and_advance(&self, envelopes: &[Envelope]) -> Result<(), FollowError> {
        let mut verifier = ChainVerifier::after(self.head.get());
        for e in envelopes {
            verifier.check(e)?;
        }
        if let Some(last) = envelopes.last() {
            self.head.set(Head {
                sequence: last.sequence,
                hash: last.hash,
            });
        }
        self.remember(envelopes);
        Ok(())
    }

    /// What other nodes appended after this store's head, and who leads.
    fn catch_up(&mut self) -> Result<Followed, FollowError> {
        let unreachable = |e: ReadError| FollowError::Unreachable(e.to_string());
        let meta = self
            .pool
            .with(read_meta)
            .map_err(unreachable)?
            .map_err(FollowError::Read)?;
        let head = self.head.get();
        let envelopes: Vec<Envelope> = if meta.head.sequence > head.sequence {
            paged(self.pool.clone(), head.sequence + 1, meta.head.sequence)
                .collect::<Result<_, _>>()
                .map_err(|e| match e {
                    ReadError::Io(why) => FollowError::Unreachable(why),
                    other => FollowError::Read(other),
                })?
        } else {
            Vec::new()
        };
        self.check_and_advance(&envelopes)?;
        Ok(Followed {
            role: Role::Follower {
                leader: meta.leader,
            },
            envelopes,
        })
    }

    fn still_leading(&mut self) -> bool {
        match self.lease.as_mut() {
            Some(lease) if self.fence.is_some() => {
                let alive = lease.simple_query("SELECT 1").is_ok();
                if !alive {
                    tracing::warn!("lost the connection that holds the writer lease");
                    self.lease = None;
                    self.fence = None;
                }
                alive
            }
            _ => false,
        }
    }

    fn try_append(&mut self, rows: &Rows, head: Head, new_head: Head) -> Result<(), Attempt> {
        let fence = self.fence;
        let delay = self.commit_delay;
        let client = self.writer().map_err(Attempt::Lost)?;
        let result = (|| -> Result<Result<bool, AppendError>, postgres::Error> {
            let mut tx = client.transaction()?;
            let row = tx.query_one(schema::LOCK_HEAD, &[&schema::APPEND_LOCK])?;
            let at = Head {
                sequence: to_u64(row.get(1)),
                hash: hash_of(row.get::<_, &[u8]>(2), "tessera_meta.hash").unwrap_or([0; 32]),
            };
            let current = to_u64(row.get(3));
            // A retry after a lost connection: the first attempt committed.
            if at == new_head && new_head != head {
                return Ok(Ok(true));
            }
            let held = fence.unwrap_or(0);
            if fence != Some(current) || at != head {
                return Ok(Err(AppendError::Deposed { held, current }));
            }
            if !rows.sequences.is_empty() {
                tx.execute(
                    schema::INSERT_LOG,
                    &[
                        &rows.sequences,
                        &rows.streams,
                        &rows.versions,
                        &rows.envelopes,
                    ],
                )?;
            }
            if !rows.upsert.0.is_empty() {
                tx.execute(
                    schema::UPSERT_VIEWS,
                    &[&rows.upsert.0, &rows.upsert.1, &rows.upsert.2],
                )?;
            }
            if !rows.delete.0.is_empty() {
                tx.execute(schema::DELETE_VIEWS, &[&rows.delete.0, &rows.delete.1])?;
            }
            if new_head != head {
                tx.execute(
                    schema::MOVE_HEAD,
                    &[&to_i64(new_head.sequence), &new_head.hash.as_slice()],
                )?;
                tx.execute(schema::NOTIFY, &[&new_head.sequence.to_string()])?;
            }
            if let Some(delay) = delay {
                tx.execute("SELECT pg_sleep($1)", &[&delay.as_secs_f64()])?;
            }
            tx.commit()?;
            Ok(Ok(false))
        })();
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(refused)) => Err(Attempt::Refused(refused)),
            Err(e) if connection_lost(&e, client) => Err(Attempt::Lost(why(&e))),
            Err(e) => Err(Attempt::Refused(AppendError::Io(why(&e)))),
        }
    }

    /// Runs one batch to a known outcome: retried while the connection fails (up to the
    /// retry window), each retry first looking at the head to learn whether the attempt
    /// before it committed, so a batch is never appended twice.
    fn append_rows(&mut self, rows: &Rows, head: Head, new_head: Head) -> Result<(), AppendError> {
        let window = self.options.retry_window;
        let mut waited = Duration::ZERO;
        let mut pause = Duration::from_millis(50);
        loop {
            let attempt = match self.try_append(rows, head, new_head) {
                Ok(()) if self.lose_commit_answer => {
                    self.lose_commit_answer = false;
                    Err(Attempt::Lost("the answer to the commit was lost".into()))
                }
                other => other,
            };
            match attempt {
                Ok(()) => {
                    self.unreachable.store(false, Ordering::Release);
                    return Ok(());
                }
                Err(Attempt::Refused(e)) => return Err(e),
                Err(Attempt::Lost(why)) => {
                    self.unreachable.store(true, Ordering::Release);
                    self.writer = None;
                    if waited >= window {
                        return Err(AppendError::Io(format!(
                            "{}: {why} (gave up after {} s)",
                            self.target,
                            window.as_secs()
                        )));
                    }
                    tracing::warn!(target = %self.target, %why, "append failed; reconnecting");
                    #[allow(
                        clippy::disallowed_methods,
                        reason = "backing off before reconnecting to the database, not domain time"
                    )]
                    std::thread::sleep(pause);
                    waited += pause;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Appends envelopes sealed elsewhere (a sled log being migrated) exactly as they are,
    /// checked as [`tessera_storage::SledStore::import`] checks them, in transactions of
    /// `chunk` envelopes, each moving the head. Resumable: a second run continues after
    /// the head the first one left. Marks the views untrusted; rebuild and
    /// [`EventStore::replace_views`] them afterwards.
    pub fn import(
        &mut self,
        envelopes: impl IntoIterator<Item = Result<Envelope, ReadError>>,
        chunk: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Head, ImportError> {
        let mut verifier = ChainVerifier::after(self.head.get());
        let mut pending: Vec<Envelope> = Vec::with_capacity(chunk);
        let mut marked = false;
        for item in envelopes {
            let e = item?;
            verifier.check(&e)?;
            let bytes = codec::encode_envelope(&e)?;
            let hashed = bytes
                .get(..bytes.len().saturating_sub(32))
                .unwrap_or_default();
            if codec::chain_hash(hashed) != e.hash {
                return Err(ImportError::NotReproducible {
                    sequence: e.sequence,
                });
            }
            pending.push(e);
            if pending.len() >= chunk {
                self.import_chunk(&mut pending, &mut marked, progress)?;
            }
        }
        self.import_chunk(&mut pending, &mut marked, progress)?;
        Ok(self.head.get())
    }

    fn import_chunk(
        &mut self,
        pending: &mut Vec<Envelope>,
        marked: &mut bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ImportError> {
        let Some(last) = pending.last() else {
            return Ok(());
        };
        if !*marked {
            self.writer()
                .map_err(ImportError::Io)?
                .execute(
                    "UPDATE tessera_meta SET views_dirty = true WHERE id = 1",
                    &[],
                )
                .map_err(|e| ImportError::Io(why(&e)))?;
            *marked = true;
        }
        let new_head = Head {
            sequence: last.sequence,
            hash: last.hash,
        };
        let last_sequence = last.sequence;
        let rows = encode_rows(pending, &[]).map_err(|e| ImportError::Io(e.to_string()))?;
        if self.fence.is_none() && self.take_lease_for_tools()?.is_none() {
            return Err(ImportError::Io(
                "another node holds the writer lease; stop the servers using this database first"
                    .into(),
            ));
        }
        self.append_rows(&rows, self.head.get(), new_head)
            .map_err(|e| ImportError::Io(e.to_string()))?;
        self.head.set(new_head);
        self.remember(pending);
        progress(last_sequence);
        pending.clear();
        Ok(())
    }

    /// The lease for a store that appends without following first (a single process, a
    /// test): taken when free, waiting up to [`LEASE_WAIT`] for a session this process just
    /// closed to end at the server.
    fn take_lease_to_append(&mut self) -> Result<(), AppendError> {
        let mut waited = Duration::ZERO;
        loop {
            match self.take_lease() {
                Ok(Some(envelopes)) if envelopes.is_empty() => return Ok(()),
                Ok(Some(_)) => {
                    return Err(AppendError::Io(
                        "the log moved past this store's head; follow it before appending".into(),
                    ));
                }
                Ok(None) if waited < LEASE_WAIT => {
                    #[allow(
                        clippy::disallowed_methods,
                        reason = "waiting for another session to release the lease, not domain time"
                    )]
                    std::thread::sleep(Duration::from_millis(50));
                    waited += Duration::from_millis(50);
                }
                Ok(None) => {
                    return Err(AppendError::Io(
                        "another node holds the writer lease".into(),
                    ));
                }
                Err(e) => return Err(AppendError::Io(e.to_string())),
            }
        }
    }

    /// The lease for a store used by a tool or a single process: taken if free.
    fn take_lease_for_tools(&mut self) -> Result<Option<()>, ImportError> {
        match self.take_lease() {
            Ok(Some(envelopes)) if envelopes.is_empty() => Ok(Some(())),
            Ok(Some(_)) => Err(ImportError::Io(
                "the log moved while this store was open".into(),
            )),
            Ok(None) => Ok(None),
            Err(e) => Err(ImportError::Io(e.to_string())),
        }
    }

    /// Overwrites the stored bytes of one envelope. Only for tests that prove tampering is
    /// detected; nothing else may rewrite the log.
    #[doc(hidden)]
    pub fn tamper_with_envelope(
        &self,
        sequence: u64,
        edit: impl FnOnce(&mut Vec<u8>),
    ) -> Result<bool, ReadError> {
        let found: Option<Vec<u8>> = self.pool.with(|c| {
            Ok(c.query_opt(
                "SELECT envelope FROM tessera_log WHERE sequence = $1",
                &[&to_i64(sequence)],
            )?
            .map(|r| r.get(0)))
        })?;
        let Some(mut bytes) = found else {
            return Ok(false);
        };
        edit(&mut bytes);
        self.pool.with(|c| {
            c.execute(
                "UPDATE tessera_log SET envelope = $2 WHERE sequence = $1",
                &[&to_i64(sequence), &bytes],
            )
        })?;
        Ok(true)
    }

    fn start_listener(&mut self, wake: Box<dyn Fn() + Send + Sync>) {
        let stop = Arc::new(AtomicBool::new(false));
        self.listener = Some(stop.clone());
        let config = self.config.clone();
        let spawned = std::thread::Builder::new()
            .name("tessera-pg-listen".into())
            .spawn(move || listen(&config, &stop, wake.as_ref()));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no notification listener; following by polling only");
        }
    }
}

/// Waits for notifications on [`schema::CHANNEL`] and wakes the writer for each; reconnects
/// after a failure. Polling covers whatever it misses (and databases without LISTEN).
fn listen(config: &postgres::Config, stop: &AtomicBool, wake: &(dyn Fn() + Send + Sync)) {
    while !stop.load(Ordering::Acquire) {
        let mut client = match connect(config) {
            Ok(c) => c,
            Err(_) => {
                #[allow(
                    clippy::disallowed_methods,
                    reason = "backing off before reconnecting to the database, not domain time"
                )]
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if client
            .batch_execute(&format!("LISTEN {}", schema::CHANNEL))
            .is_err()
        {
            continue;
        }
        // Anything appended while not listening is found by the next poll; wake once now.
        wake();
        while !stop.load(Ordering::Acquire) && !client.is_closed() {
            use fallible_iterator::FallibleIterator;
            let mut notifications = client.notifications();
            // Wake at once on a notification, after taking any others already here (one
            // follow reads them all); the timeout only lets the loop see `stop`.
            let next = notifications
                .timeout_iter(Duration::from_millis(500))
                .next()
                .map(|n| n.is_some());
            match next {
                Ok(true) => {
                    let _ = notifications.iter().count();
                    wake();
                }
                Ok(false) => {}
                Err(_) => break,
            }
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(stop) = &self.listener {
            stop.store(true, Ordering::Release);
        }
    }
}

/// Why [`PgStore::import`] stopped. Everything before the chunk that failed is in place,
/// and the head says where it ends.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the source failed.
    #[error("reading the source failed: {0}")]
    Read(#[from] ReadError),
    /// The envelopes do not continue the target's chain.
    #[error("refusing to import a broken chain: {0}")]
    Chain(#[from] tessera_storage::chain::ChainError),
    /// An envelope does not re-encode to the bytes its hash covers.
    #[error(
        "sequence {sequence}: this build does not reproduce the envelope's stored bytes, so it cannot copy it unchanged"
    )]
    NotReproducible {
        /// The envelope's sequence.
        sequence: u64,
    },
    /// An envelope could not be encoded.
    #[error("could not encode an envelope: {0}")]
    Encode(#[from] codec::CodecError),
    /// Writing failed.
    #[error("writing to PostgreSQL failed: {0}")]
    Io(String),
}

impl EventStore for PgStore {
    fn head(&self) -> Head {
        self.head.get()
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        self.version_of(stream)
    }

    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Envelope>, AppendError> {
        if self.fence.is_none() {
            self.take_lease_to_append()?;
        }
        let head = self.head.get();
        let sealed = seal_batch(head, &batch.events, |s| {
            self.version_of(s)
                .map_err(|e| AppendError::Io(e.to_string()))
        })?;
        let rows = encode_rows(&sealed, &batch.views)?;
        let new_head = sealed.last().map_or(head, |e| Head {
            sequence: e.sequence,
            hash: e.hash,
        });
        match self.append_rows(&rows, head, new_head) {
            Ok(()) => {}
            Err(e) => {
                if matches!(e, AppendError::Deposed { .. }) {
                    self.fence = None;
                    self.lease = None;
                }
                return Err(e);
            }
        }
        self.head.set(new_head);
        self.remember(&sealed);
        Ok(sealed)
    }

    fn read_stream(&self, stream: &StreamId) -> Result<Vec<Envelope>, ReadError> {
        let rows: Vec<(i64, Vec<u8>)> = self.pool.with(|c| {
            Ok(c.query(schema::READ_STREAM, &[&stream.as_str()])?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })?;
        rows.iter()
            .map(|(seq, bytes)| decode_row(*seq, bytes))
            .collect()
    }

    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        Box::new(paged(self.pool.clone(), from, u64::MAX >> 1))
    }

    fn view_records(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(ViewKey, ViewRecord), ReadError>> + '_> {
        // The records and the head they belong to, read in one snapshot: a follower then
        // folds the log from exactly there.
        let read = self.pool.with(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let meta = tx.query_one(schema::READ_META, &[])?;
            let rows: Vec<(i16, Vec<u8>, Vec<u8>)> = tx
                .query(schema::READ_VIEWS, &[])?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            tx.commit()?;
            let hash: Vec<u8> = meta.get(2);
            Ok((to_u64(meta.get(1)), hash, rows))
        });
        let (sequence, hash, rows) = match read {
            Ok(r) => r,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        match hash_of(&hash, "tessera_meta.hash") {
            Ok(hash) => self.head.set(Head { sequence, hash }),
            Err(e) => return Box::new(std::iter::once(Err(e))),
        }
        Box::new(rows.into_iter().map(|(tree, key, record)| {
            let tree = usize::try_from(tree)
                .ok()
                .and_then(|i| ViewTree::ALL.get(i).copied())
                .ok_or_else(|| ReadError::Corrupt {
                    at: "tessera_views".into(),
                    why: format!("unknown view tree {tree}"),
                })?;
            let corrupt = |e: codec::CodecError| ReadError::Corrupt {
                at: tree.name().to_owned(),
                why: e.to_string(),
            };
            Ok((
                codec::decode_view_key(tree, &key).map_err(corrupt)?,
                codec::decode_view_record(tree, &record).map_err(corrupt)?,
            ))
        }))
    }

    fn views_trusted(&self) -> Result<bool, ReadError> {
        let meta = self.pool.with(read_meta)??;
        Ok(!meta.views_dirty)
    }

    fn replace_views(&mut self, records: Vec<(ViewKey, ViewRecord)>) -> Result<(), AppendError> {
        let rows = encode_rows(
            &[],
            &records
                .into_iter()
                .map(|(k, r)| (k, Some(r)))
                .collect::<Vec<_>>(),
        )?;
        let client = self.writer().map_err(AppendError::Io)?;
        let run = (|| -> Result<(), postgres::Error> {
            let mut tx = client.transaction()?;
            tx.execute("DELETE FROM tessera_views", &[])?;
            if !rows.upsert.0.is_empty() {
                tx.execute(
                    schema::UPSERT_VIEWS,
                    &[&rows.upsert.0, &rows.upsert.1, &rows.upsert.2],
                )?;
            }
            tx.execute(
                "UPDATE tessera_meta SET views_dirty = false WHERE id = 1",
                &[],
            )?;
            tx.commit()
        })();
        run.map_err(|e| AppendError::Io(why(&e)))
    }

    fn log_reader(&self) -> Box<dyn LogReader> {
        Box::new(self.pg_log_reader())
    }

    fn follow_interval(&self) -> Option<Duration> {
        Some(self.options.follow_interval)
    }

    fn set_waker(&mut self, wake: Box<dyn Fn() + Send + Sync>) {
        self.start_listener(wake);
    }

    fn unreachable_flag(&self) -> Option<Arc<AtomicBool>> {
        Some(self.unreachable.clone())
    }

    fn follow(&mut self) -> Result<Followed, FollowError> {
        let result = self.follow_once();
        self.unreachable.store(
            matches!(result, Err(FollowError::Unreachable(_))),
            Ordering::Release,
        );
        result
    }
}

impl PgStore {
    fn follow_once(&mut self) -> Result<Followed, FollowError> {
        if self.still_leading() {
            return Ok(Followed {
                role: Role::Leader,
                envelopes: Vec::new(),
            });
        }
        // Fold what the leader appended first, so that taking the lease then reads little.
        let mut followed = self.catch_up()?;
        if let Some(more) = self.take_lease()? {
            followed.envelopes.extend(more);
            followed.role = Role::Leader;
        }
        Ok(followed)
    }
}

/// The [`LogReader`] of a [`PgStore`]: reads pages of the log through the store's pool of
/// read connections, never through the writer's connection.
#[derive(Clone, Debug)]
pub struct PgLogReader {
    pool: Arc<Pool>,
}

impl LogReader for PgLogReader {
    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        Box::new(paged(self.pool.clone(), from, u64::MAX >> 1))
    }

    fn read_range(
        &self,
        from: u64,
        through: u64,
    ) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        Box::new(paged(self.pool.clone(), from, through))
    }
}
