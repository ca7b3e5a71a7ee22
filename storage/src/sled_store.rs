//! The sled backend (sled 0.34.7, the last stable release).
//!
//! Trees: `log` (sequence, big-endian → envelope), `streams` (stream ‖ 0 ‖ version → sequence),
//! `heads` (stream → version), `meta` (format, head), and one tree per view. A batch is one
//! multi-tree transaction, so the log, the index and the views never disagree.
//!
//! Durability: sled's `flush` on Linux ends with `sync_file_range`, which does not flush the
//! device's write cache nor a grown file's size (spacejam/sled#1452). So after `flush` we
//! `fdatasync` sled's data file ourselves, once per batch, before `append` returns. See
//! docs/decisions.md, "Durability".

use std::fs::File;
use std::path::{Path, PathBuf};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use tessera_core::{StreamId, ViewKey, ViewRecord};

use crate::chain::{ChainError, ChainVerifier};
use crate::codec::{self, CodecError, Envelope, ViewTree};
use crate::event_store::{
    AppendBatch, AppendError, EventStore, Head, LogReader, OpenError, ReadError, seal_batch,
};

const VIEW_TREES: usize = ViewTree::ALL.len();

/// The log, stream index, heads and meta trees come first in every transaction; the view
/// trees follow in [`ViewTree::ALL`] order.
const FIXED_TREES: usize = 4;

/// How many envelopes [`SledStore::import`] writes per transaction.
pub const IMPORT_CHUNK: usize = 1024;

/// What [`SledStore::import`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// How many envelopes were imported.
    pub events: u64,
    /// Their stored size, bytes.
    pub bytes: u64,
    /// The store's head afterwards: the last envelope imported (or the head before, if none).
    pub head: Head,
}

/// Why [`SledStore::import`] stopped. Nothing after the envelope named was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The envelopes could not be read from their source, or this store could not be read.
    #[error("reading failed during the import: {0}")]
    Read(#[from] ReadError),
    /// The envelopes do not continue this store's chain (or are damaged); the error names the
    /// first one that does not.
    #[error("refusing to import a broken chain: {0}")]
    Chain(#[from] ChainError),
    /// Re-encoding the envelope with this build does not give the bytes its hash was sealed
    /// over, so it cannot be stored unchanged (a format or schema this build does not
    /// write). Importing it needs a migration, not a copy.
    #[error(
        "sequence {sequence}: this build does not reproduce the envelope's stored bytes, so it cannot copy it unchanged"
    )]
    NotReproducible {
        /// The envelope's sequence.
        sequence: u64,
    },
    /// The envelope is not its stream's next version here.
    #[error(
        "sequence {sequence}: stream {stream} is at version {at}, so version {found} does not follow it"
    )]
    StreamVersion {
        /// The envelope's sequence.
        sequence: u64,
        /// Its stream.
        stream: StreamId,
        /// The stream's version before it.
        at: u64,
        /// The version the envelope carries.
        found: u64,
    },
    /// An envelope could not be encoded.
    #[error("could not encode an envelope: {0}")]
    Encode(#[from] CodecError),
    /// Writing or syncing failed; the message is the backend's.
    #[error("storage I/O failed during the import: {0}")]
    Io(String),
}

/// The layout version of the sled trees, stored under `meta/format`.
pub const STORE_FORMAT: u32 = 1;

/// Tuning for [`SledStore::open`].
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache, bytes. Its RSS grows toward this, so keep it modest.
    pub cache_bytes: u64,
    /// Call `fdatasync` after sled's flush. Off only in benchmarks that measure its cost.
    pub fdatasync: bool,
    /// sled's own periodic flush (every 500 ms), which syncs whatever it has written. Off for
    /// a backup being written beside a serving store: its syncs would queue the serving
    /// writer's `fdatasync` behind megabytes of copy, and the copy is made durable once, at
    /// its end, anyway.
    pub background_flush: bool,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 256 * 1024 * 1024,
            fdatasync: true,
            background_flush: true,
        }
    }
}

/// The durable [`EventStore`]: a sled database in the data folder, with one tree each for
/// the log (by sequence), the stream index, stream heads, metadata and every view tree.
/// Each append is one sled transaction followed by [`SledStore::sync`] (sled's flush, then
/// fdatasync unless [`SledOptions`] turns it off), so an append that returned `Ok` survives a
/// crash. One process at a time: sled locks the folder.
#[derive(Debug)]
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    log: Tree,
    streams: Tree,
    heads: Tree,
    meta: Tree,
    /// One tree per [`ViewTree::ALL`] entry, in that order.
    views: [Tree; VIEW_TREES],
    data_file: File,
    head: Head,
    options: SledOptions,
    /// Set when a batch committed but could not be made durable: what is on disk is then
    /// unknown, so the store refuses further appends until it is reopened.
    broken: Option<String>,
}

fn io(e: impl std::fmt::Display) -> ReadError {
    ReadError::Io(e.to_string())
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn from_be(bytes: &[u8], at: &str) -> Result<u64, ReadError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| ReadError::Corrupt {
        at: at.to_owned(),
        why: "not an 8-byte integer".into(),
    })?;
    Ok(u64::from_be_bytes(arr))
}

fn stream_key(stream: &StreamId, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 9);
    k.extend_from_slice(stream.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(&be(version));
    k
}

/// How long `open` waits for a lock held by this same process's previous handle.
const LOCK_WAIT_ATTEMPTS: u32 = 200;

/// Opens sled, waiting briefly when the file lock is still held. Within one process, a
/// dropped `Db` keeps its lock until sled's background tasks finish, so a store closed and
/// reopened at once (a restart in tests, the simulator's crash recovery) can find it taken
/// for a few milliseconds. Another process holding it is reported after about 2 s.
fn open_db(path: &Path, cache_bytes: u64, background_flush: bool) -> sled::Result<sled::Db> {
    let mut attempts = 0;
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(background_flush.then_some(500))
            .open()
        {
            // sled reports the lock as an `Other` I/O error with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && attempts < LOCK_WAIT_ATTEMPTS =>
            {
                attempts += 1;
                #[allow(
                    clippy::disallowed_methods,
                    reason = "waiting for a file lock to be released, not domain time"
                )]
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl SledStore {
    /// Opens the store in the folder `path`, creating the folder and an empty store if there
    /// is none. Refuses a store of another format, one whose head record disagrees with its
    /// log, a folder another process holds (waiting briefly first for a handle this process
    /// just dropped), and an online backup that did not finish (it still holds
    /// [`crate::backup::INCOMPLETE_MARKER`]).
    pub fn open(path: &Path, options: SledOptions) -> Result<Self, OpenError> {
        if crate::backup::is_incomplete(path) {
            return Err(OpenError::IncompleteBackup {
                path: path.display().to_string(),
            });
        }
        Self::open_unchecked(path, options)
    }

    /// [`SledStore::open`] without the incomplete-backup check: for the backup itself, which
    /// fills the folder while its marker is there.
    pub(crate) fn open_unchecked(path: &Path, options: SledOptions) -> Result<Self, OpenError> {
        let fail = |why: String| OpenError::Io {
            path: path.display().to_string(),
            why,
        };
        std::fs::create_dir_all(path).map_err(|e| fail(e.to_string()))?;
        let db = open_db(path, options.cache_bytes, options.background_flush).map_err(|e| {
            fail(format!(
                "{e} (is another tessera process using this folder?)"
            ))
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| fail(e.to_string()));
        let mut views = Vec::with_capacity(VIEW_TREES);
        for view in ViewTree::ALL {
            views.push(tree(view.name())?);
        }
        let views: [Tree; VIEW_TREES] = views
            .try_into()
            .map_err(|_| fail("view trees: count mismatch".into()))?;
        let data_file =
            File::open(path.join("db")).map_err(|e| fail(format!("sled data file: {e}")))?;
        // On first start sled has just created its files: make their directory entries
        // durable too, or a power cut could lose the file itself.
        File::open(path)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| fail(format!("syncing the data folder: {e}")))?;
        let mut store = Self {
            path: path.to_owned(),
            log: tree("log")?,
            streams: tree("streams")?,
            heads: tree("heads")?,
            meta: tree("meta")?,
            views,
            db,
            data_file,
            head: Head {
                sequence: 0,
                hash: crate::chain::GENESIS,
            },
            options,
            broken: None,
        };
        store.check_format()?;
        store.head = store.read_head()?;
        Ok(store)
    }

    fn check_format(&self) -> Result<(), OpenError> {
        match self.meta.get("format").map_err(io)? {
            Some(bytes) => {
                let found = u32::from_be_bytes(bytes.as_ref().try_into().map_err(|_| {
                    ReadError::Corrupt {
                        at: "meta/format".into(),
                        why: "not a 4-byte integer".into(),
                    }
                })?);
                if found != STORE_FORMAT {
                    return Err(OpenError::Format {
                        path: self.path.display().to_string(),
                        found,
                        supported: STORE_FORMAT,
                    });
                }
            }
            None => {
                self.meta
                    .insert("format", &STORE_FORMAT.to_be_bytes())
                    .map_err(io)?;
                self.sync().map_err(|e| ReadError::Io(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// The head as the meta tree records it, checked against the log's last entry.
    fn read_head(&self) -> Result<Head, ReadError> {
        let last = self.log.last().map_err(io)?;
        let meta = self.meta.get("head").map_err(io)?;
        match (last, meta) {
            (None, None) => Ok(Head {
                sequence: 0,
                hash: crate::chain::GENESIS,
            }),
            (Some((k, _)), Some(m)) => {
                // The head record is trusted for the hash; whether the envelopes agree with it
                // is `replay::verify`'s job, which then names the damaged sequence.
                let sequence = from_be(&k, "log key")?;
                let recorded = m.get(..8).map(|b| from_be(b, "meta/head")).transpose()?;
                let hash: Option<[u8; 32]> = m.get(8..).and_then(|h| h.try_into().ok());
                match (recorded, hash) {
                    (Some(r), Some(hash)) if r == sequence => Ok(Head { sequence, hash }),
                    _ => Err(ReadError::Corrupt {
                        at: "meta/head".into(),
                        why: format!(
                            "the head record does not name the last log entry ({sequence})"
                        ),
                    }),
                }
            }
            _ => Err(ReadError::Corrupt {
                at: "meta/head".into(),
                why: "log and head record disagree about emptiness".into(),
            }),
        }
    }

    /// Makes everything written so far durable: sled's flush, then fdatasync of its file.
    pub fn sync(&self) -> std::io::Result<()> {
        self.db.flush().map_err(std::io::Error::other)?;
        if self.options.fdatasync {
            self.data_file.sync_data()?;
        }
        Ok(())
    }

    /// Appends envelopes sealed elsewhere (another store's log: a backup, a migration)
    /// exactly as they are: same sequences, stream versions, times and hashes, so the stored
    /// bytes are the source's byte for byte. The envelopes must continue this store's log:
    /// each is checked with the chain code (next sequence, intact hash, `prev_hash` linking
    /// to the one before, the first to this store's head), re-encoded only if that
    /// reproduces its hash exactly, and must be its stream's next version. Written in
    /// transactions of [`IMPORT_CHUNK`] envelopes (log, stream index, heads and head record
    /// together), then made durable once, before returning. `progress` is called with each
    /// sequence checked.
    ///
    /// The persisted views are not touched: the store marks them untrusted before the first
    /// write, so rebuild them from the log and [`EventStore::replace_views`] them (which
    /// clears the mark), or [`crate::Engine::start`] rebuilds them.
    ///
    /// On an error the store holds what it held plus the whole chunks written before the
    /// failing one; [`EventStore::head`] says where that ends. Nothing after a refused
    /// envelope is written.
    pub fn import(
        &mut self,
        envelopes: impl IntoIterator<Item = Result<Envelope, ReadError>>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportReport, ImportError> {
        if let Some(why) = &self.broken {
            return Err(ImportError::Io(format!(
                "the store must be reopened after a failed sync: {why}"
            )));
        }
        let mut chain = ChainVerifier::after(self.head);
        let mut versions: std::collections::HashMap<StreamId, u64> =
            std::collections::HashMap::new();
        let mut chunk: Vec<(u64, Vec<u8>, StreamId, u64)> = Vec::with_capacity(IMPORT_CHUNK);
        let mut report = ImportReport {
            events: 0,
            bytes: 0,
            head: self.head,
        };
        let mut marked = false;
        for item in envelopes {
            let e = item?;
            chain.check(&e)?;
            // The bytes to store must be the ones the hash was sealed over: the stored form
            // is the hashed bytes followed by the hash.
            let bytes = codec::encode_envelope(&e)?;
            let hashed = bytes
                .get(..bytes.len().saturating_sub(32))
                .unwrap_or_default();
            if codec::chain_hash(hashed) != e.hash {
                return Err(ImportError::NotReproducible {
                    sequence: e.sequence,
                });
            }
            let current = match versions.get(&e.stream) {
                Some(v) => *v,
                None => self.stream_version(&e.stream)?,
            };
            if e.stream_version != current + 1 {
                return Err(ImportError::StreamVersion {
                    sequence: e.sequence,
                    stream: e.stream,
                    at: current,
                    found: e.stream_version,
                });
            }
            versions.insert(e.stream.clone(), e.stream_version);
            report.events += 1;
            report.bytes += bytes.len() as u64;
            progress(e.sequence);
            chunk.push((e.sequence, bytes, e.stream, e.stream_version));
            if chunk.len() >= IMPORT_CHUNK {
                if !marked {
                    self.meta
                        .insert("views_dirty", &[1])
                        .map_err(|e| ImportError::Io(e.to_string()))?;
                    marked = true;
                }
                self.write_imported(&chunk, chain.head_hash())?;
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            if !marked {
                self.meta
                    .insert("views_dirty", &[1])
                    .map_err(|e| ImportError::Io(e.to_string()))?;
            }
            self.write_imported(&chunk, chain.head_hash())?;
        }
        if let Err(e) = self.sync() {
            let why = format!("making the import durable: {e}");
            self.broken = Some(why.clone());
            return Err(ImportError::Io(why));
        }
        report.head = self.head;
        Ok(report)
    }

    /// Writes one chunk of checked, encoded envelopes in one transaction, with the head
    /// record naming its last one (whose hash is `last_hash`).
    fn write_imported(
        &mut self,
        chunk: &[(u64, Vec<u8>, StreamId, u64)],
        last_hash: [u8; 32],
    ) -> Result<(), ImportError> {
        let Some(&(last, ..)) = chunk.last() else {
            return Ok(());
        };
        let mut head_value = be(last).to_vec();
        head_value.extend_from_slice(&last_hash);
        let trees = (&self.log, &self.streams, &self.heads, &self.meta);
        let result = trees.transaction(|(log, streams, heads, meta)| {
            for (seq, bytes, stream, version) in chunk {
                log.insert(&be(*seq), bytes.as_slice())?;
                streams.insert(stream_key(stream, *version), &be(*seq))?;
                heads.insert(stream.as_str(), &be(*version))?;
            }
            meta.insert("head", head_value.as_slice())?;
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        result.map_err(|e: TransactionError<()>| ImportError::Io(format!("{e:?}")))?;
        self.head = Head {
            sequence: last,
            hash: last_hash,
        };
        Ok(())
    }

    /// The data folder the store was opened in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's [`LogReader`], as its concrete type (tests reach the tree through it).
    pub fn sled_log_reader(&self) -> SledLogReader {
        SledLogReader {
            log: self.log.clone(),
        }
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Overwrites the raw stored bytes of one envelope. Only for tests that prove tampering
    /// is detected; nothing else may rewrite the log.
    #[doc(hidden)]
    pub fn tamper_with_envelope(
        &self,
        sequence: u64,
        edit: impl FnOnce(&mut Vec<u8>),
    ) -> std::io::Result<bool> {
        let found = tamper(&self.log, sequence, edit)?;
        if found {
            self.sync()?;
        }
        Ok(found)
    }

    /// Leaves the store as a `replace_views` interrupted half way leaves it: flagged, with a
    /// view tree emptied. Only for tests of the recovery.
    #[doc(hidden)]
    pub fn interrupt_view_replacement(&self) -> std::io::Result<()> {
        self.meta
            .insert("views_dirty", &[1])
            .map_err(std::io::Error::other)?;
        self.view_tree(ViewTree::Sessions)
            .clear()
            .map_err(std::io::Error::other)?;
        self.sync()
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "invariant: `index` is the position in `ViewTree::ALL`, which has VIEW_TREES \
                  entries (tested in codec)"
    )]
    fn view_tree(&self, tree: ViewTree) -> &Tree {
        &self.views[tree.index()]
    }
}

/// One log entry, decoded; a corrupt one names its sequence (`log sequence N`, which
/// `replay::verify` reads back).
fn decode_log_entry(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Envelope, ReadError> {
    let (k, v) = item.map_err(io)?;
    let seq = from_be(&k, "log key")?;
    codec::decode_envelope(&v).map_err(|e| ReadError::Corrupt {
        at: format!("log sequence {seq}"),
        why: e.to_string(),
    })
}

/// The [`LogReader`] of a [`SledStore`]: a handle on its `log` tree. sled trees are safe to
/// read from any thread while another writes, and a read never takes a lock the writer
/// waits for, so reading through it never slows or blocks the writer beyond sharing the
/// disk and the page cache.
#[derive(Clone, Debug)]
pub struct SledLogReader {
    log: Tree,
}

impl SledLogReader {
    /// Overwrites the raw stored bytes of one envelope, without a sync. Only for tests that
    /// prove tampering with a running server's log is detected; nothing else may rewrite the
    /// log.
    #[doc(hidden)]
    pub fn tamper_with_envelope(
        &self,
        sequence: u64,
        edit: impl FnOnce(&mut Vec<u8>),
    ) -> std::io::Result<bool> {
        tamper(&self.log, sequence, edit)
    }
}

/// The test hooks' one way to rewrite an envelope's stored bytes in place.
fn tamper(
    log: &sled::Tree,
    sequence: u64,
    edit: impl FnOnce(&mut Vec<u8>),
) -> std::io::Result<bool> {
    let Some(old) = log.get(be(sequence)).map_err(std::io::Error::other)? else {
        return Ok(false);
    };
    let mut bytes = old.to_vec();
    edit(&mut bytes);
    log.insert(be(sequence), bytes)
        .map_err(std::io::Error::other)?;
    Ok(true)
}

impl LogReader for SledLogReader {
    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        Box::new(self.log.range(be(from)..).map(decode_log_entry))
    }

    fn read_range(
        &self,
        from: u64,
        through: u64,
    ) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        if from > through {
            return Box::new(std::iter::empty());
        }
        Box::new(self.log.range(be(from)..=be(through)).map(decode_log_entry))
    }
}

type Encoded = (
    Vec<(u64, Vec<u8>, Vec<u8>, StreamId, u64)>,
    Vec<(ViewTree, Vec<u8>, Option<Vec<u8>>)>,
);

fn encode_batch(
    sealed: &[Envelope],
    views: &[(ViewKey, Option<ViewRecord>)],
) -> Result<Encoded, AppendError> {
    let mut events = Vec::with_capacity(sealed.len());
    for e in sealed {
        events.push((
            e.sequence,
            codec::encode_envelope(e)?,
            stream_key(&e.stream, e.stream_version),
            e.stream.clone(),
            e.stream_version,
        ));
    }
    let mut records = Vec::with_capacity(views.len());
    for (key, record) in views {
        let (tree, k) = codec::view_key(key);
        records.push((
            tree,
            k,
            record.as_ref().map(codec::encode_view_record).transpose()?,
        ));
    }
    Ok((events, records))
}

impl EventStore for SledStore {
    fn head(&self) -> Head {
        self.head
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        match self.heads.get(stream.as_str()).map_err(io)? {
            Some(v) => from_be(&v, "heads"),
            None => Ok(0),
        }
    }

    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Envelope>, AppendError> {
        if let Some(why) = &self.broken {
            return Err(AppendError::Io(format!(
                "the store must be reopened after a failed sync: {why}"
            )));
        }
        let sealed = seal_batch(self.head, &batch.events, |s| {
            self.stream_version(s)
                .map_err(|e| AppendError::Io(e.to_string()))
        })?;
        let (events, records) = encode_batch(&sealed, &batch.views)?;
        let new_head = sealed.last().map_or(self.head, |e| Head {
            sequence: e.sequence,
            hash: e.hash,
        });
        // Only a batch with events moves the head. Writing it for a batch of views alone
        // would record a head for an empty log, which `read_head` rightly calls corrupt.
        let head_value = (!sealed.is_empty()).then(|| {
            let mut v = be(new_head.sequence).to_vec();
            v.extend_from_slice(&new_head.hash);
            v
        });
        let mut trees: Vec<&Tree> = vec![&self.log, &self.streams, &self.heads, &self.meta];
        // Only the view trees this batch writes join the transaction (a rotation touches
        // two or three of the twelve): sled's transaction works per tree it is given.
        let mut slot = [usize::MAX; VIEW_TREES];
        for (tree, _, _) in &records {
            let i = tree.index();
            if slot.get(i) == Some(&usize::MAX)
                && let (Some(s), Some(view)) = (slot.get_mut(i), self.views.get(i))
            {
                *s = trees.len() - FIXED_TREES;
                trees.push(view);
            }
        }
        // The closure may be retried, so it only replays the precomputed writes.
        let result = trees[..].transaction(|t: &Vec<TransactionalTree>| {
            let Some(([log, streams, heads, meta], views)) = t.split_first_chunk::<FIXED_TREES>()
            else {
                return Err(ConflictableTransactionError::Abort(
                    "transaction is missing its fixed trees",
                ));
            };
            for (seq, bytes, skey, stream, version) in &events {
                log.insert(&be(*seq), bytes.as_slice())?;
                streams.insert(skey.as_slice(), &be(*seq))?;
                heads.insert(stream.as_str(), &be(*version))?;
            }
            if let Some(head_value) = &head_value {
                meta.insert("head", head_value.as_slice())?;
            }
            for (tree, key, value) in &records {
                let Some(target) = slot.get(tree.index()).and_then(|&i| views.get(i)) else {
                    return Err(ConflictableTransactionError::Abort(
                        "transaction is missing a view tree",
                    ));
                };
                match value {
                    Some(v) => target.insert(key.as_slice(), v.as_slice())?,
                    None => target.remove(key.as_slice())?,
                };
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(why)) => return Err(AppendError::Io(why.to_owned())),
            Err(TransactionError::Storage(e)) => return Err(AppendError::Io(e.to_string())),
        }
        if let Err(e) = self.sync() {
            let why = format!("making the batch durable: {e}");
            self.broken = Some(why.clone());
            return Err(AppendError::Io(why));
        }
        self.head = new_head;
        Ok(sealed)
    }

    fn read_stream(&self, stream: &StreamId) -> Result<Vec<Envelope>, ReadError> {
        let mut prefix = stream.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.streams.scan_prefix(&prefix) {
            let (_, seq) = item.map_err(io)?;
            let seq = from_be(&seq, "streams")?;
            let bytes = self
                .log
                .get(be(seq))
                .map_err(io)?
                .ok_or_else(|| ReadError::Corrupt {
                    at: format!("stream {stream}"),
                    why: format!("indexes missing sequence {seq}"),
                })?;
            out.push(
                codec::decode_envelope(&bytes).map_err(|e| ReadError::Corrupt {
                    at: format!("log sequence {seq}"),
                    why: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        Box::new(self.log.range(be(from)..).map(decode_log_entry))
    }

    fn view_records(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(ViewKey, ViewRecord), ReadError>> + '_> {
        Box::new(ViewTree::ALL.into_iter().flat_map(move |tree| {
            self.view_tree(tree).iter().map(move |item| {
                let (k, v) = item.map_err(io)?;
                let corrupt = |e: codec::CodecError| ReadError::Corrupt {
                    at: tree.name().to_owned(),
                    why: e.to_string(),
                };
                Ok((
                    codec::decode_view_key(tree, &k).map_err(corrupt)?,
                    codec::decode_view_record(tree, &v).map_err(corrupt)?,
                ))
            })
        }))
    }

    fn views_trusted(&self) -> Result<bool, ReadError> {
        Ok(self.meta.get("views_dirty").map_err(io)?.is_none())
    }

    fn log_reader(&self) -> Box<dyn LogReader> {
        Box::new(self.sled_log_reader())
    }

    fn replace_views(&mut self, records: Vec<(ViewKey, ViewRecord)>) -> Result<(), AppendError> {
        // Clearing and refilling the trees is not one transaction; the flag makes an
        // interrupted replacement visible, and the engine rebuilds from the log on start.
        let io = |e: sled::Error| AppendError::Io(e.to_string());
        self.meta.insert("views_dirty", &[1]).map_err(io)?;
        self.sync().map_err(|e| AppendError::Io(e.to_string()))?;
        for tree in ViewTree::ALL {
            self.view_tree(tree)
                .clear()
                .map_err(|e| AppendError::Io(e.to_string()))?;
        }
        for (key, record) in &records {
            let (tree, k) = codec::view_key(key);
            self.view_tree(tree)
                .insert(k, codec::encode_view_record(record)?)
                .map_err(|e| AppendError::Io(e.to_string()))?;
        }
        self.sync().map_err(|e| AppendError::Io(e.to_string()))?;
        self.meta.remove("views_dirty").map_err(io)?;
        self.sync().map_err(|e| AppendError::Io(e.to_string()))
    }
}
