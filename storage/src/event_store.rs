//! The storage boundary: a narrow trait, so that a second backend is a new implementation,
//! not a rewrite. One contract suite (tests/suite/store_contract.rs) runs against every
//! implementation.

use tessera_core::{Event, StreamId, Timestamp, ViewKey, ViewRecord};

use crate::codec::{CodecError, Envelope};

/// An event to append, with the stream version the writer expects the stream to be at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The stream (aggregate) the event belongs to.
    pub stream: StreamId,
    /// The stream's version before this event: 0 for a new stream.
    pub expected_version: u64,
    /// When the writer decided it (the engine's time).
    pub recorded_at: Timestamp,
    /// The event itself.
    pub event: Event,
}

/// Everything one batch changes: events, and the view records they touched (`None` removes).
/// Appended atomically: all of it or none of it.
#[derive(Clone, Debug, Default)]
pub struct AppendBatch {
    /// The events, in the order they are to be appended.
    pub events: Vec<NewEvent>,
    /// The view records the events changed: the record's new value, or `None` to remove it.
    pub views: Vec<(ViewKey, Option<ViewRecord>)>,
}

/// The end of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The last sequence number written; 0 for an empty log.
    pub sequence: u64,
    /// The last envelope's hash, which the next envelope's `prev_hash` must equal;
    /// [`crate::chain::GENESIS`] for an empty log.
    pub hash: [u8; 32],
}

/// Why a batch was not appended. The caller must not acknowledge any of it. After a
/// [`Conflict`](AppendError::Conflict) or an [`Encode`](AppendError::Encode) error nothing was
/// written; after [`Io`](AppendError::Io) the batch may or may not be on disk.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// An event expected its stream at another version: another event reached the stream
    /// first (with one writer, a bug in the caller).
    #[error("stream {stream} is at version {actual}, not {expected}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// The version the event expected ([`NewEvent::expected_version`]).
        expected: u64,
        /// The stream's actual version.
        actual: u64,
    },
    /// Writing or syncing failed. A failed write leaves nothing; a failed sync leaves the
    /// batch written but not known to be durable, so the store refuses every later append
    /// until it is reopened. The message is the backend's.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// This node no longer holds the writer lease of a shared log: another node took it
    /// (the fencing token moved on) or appended past this node's head. Nothing was written;
    /// the node must follow the log again before it may append.
    #[error("this node is no longer the writer (lease fenced at {current}, held {held})")]
    Deposed {
        /// The fencing token this node appended under.
        held: u64,
        /// The fencing token the log now carries.
        current: u64,
    },
    /// An event or view record could not be encoded.
    #[error("could not encode the batch: {0}")]
    Encode(#[from] CodecError),
}

/// Why the store could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading failed; the message is the backend's.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// Bytes were read but do not decode: damage, or a write by something other than this
    /// crate.
    #[error("stored data is corrupt at {at}: {why}")]
    Corrupt {
        /// Where: the tree and key, or the sequence number.
        at: String,
        /// What the decoder reported.
        why: String,
    },
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The folder or the database in it could not be opened (missing permissions, or another
    /// process holds its lock).
    #[error("cannot open the store at {path}: {why}")]
    Io {
        /// The data folder.
        path: String,
        /// What the file system or the database reported.
        why: String,
    },
    /// The store was written in a layout this build does not read.
    #[error("the store at {path} has format {found}; this build reads format {supported}")]
    Format {
        /// The data folder.
        path: String,
        /// The format number recorded in the store.
        found: u32,
        /// The format number this build reads and writes.
        supported: u32,
    },
    /// Reading the store's metadata at open failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The folder is an online backup that did not finish: it still holds its marker
    /// ([`crate::backup::INCOMPLETE_MARKER`]), so what it holds may be any part of the copy.
    #[error(
        "{path} is an incomplete backup (the copy was interrupted; it still holds {marker}) and must not be used: delete it and take the backup again",
        marker = crate::backup::INCOMPLETE_MARKER
    )]
    IncompleteBackup {
        /// The folder.
        path: String,
    },
}

/// An append-only, hash-chained event log with persisted views.
///
/// `append` is atomic and, when it returns `Ok`, durable: the caller may acknowledge.
pub trait EventStore: Send {
    /// The end of the log as of the last successful append.
    fn head(&self) -> Head;
    /// The stream's current version: the number of events in it.
    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError>;
    /// Appends `batch` atomically: assigns the next sequence numbers, chains and seals each
    /// event, writes the events and the view changes, and makes them durable before
    /// returning. Returns the sealed envelopes in order. On an error, [`AppendError`] says
    /// what may have reached the disk.
    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Envelope>, AppendError>;
    /// Every envelope of `stream`, in stream order (empty for an unknown stream).
    fn read_stream(&self, stream: &StreamId) -> Result<Vec<Envelope>, ReadError>;
    /// Every envelope with a sequence at or after `from`, in order.
    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_>;
    /// Every persisted view record, in key order.
    fn view_records(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(ViewKey, ViewRecord), ReadError>> + '_>;
    /// False when the persisted views cannot be trusted (an interrupted `replace_views`):
    /// the engine then rebuilds them from the log before serving.
    fn views_trusted(&self) -> Result<bool, ReadError> {
        Ok(true)
    }
    /// Replaces every persisted view record (used by `replay --rebuild --repair`).
    fn replace_views(&mut self, records: Vec<(ViewKey, ViewRecord)>) -> Result<(), AppendError>;
    /// A reader of this store's log that other threads may use while the store appends
    /// (the engine's writer owns the store; operators verify, follow and back up the log
    /// through the reader). See [`LogReader`] for how far it may be trusted.
    fn log_reader(&self) -> Box<dyn LogReader>;

    /// How often the writer calls [`EventStore::follow`] when nothing else wakes it:
    /// `None` (the default) for a store only this process writes, which never needs it.
    fn follow_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Gives a shared store the way to wake the writer early (a notification that the log
    /// moved or that the lease may be free); the writer then calls
    /// [`EventStore::follow`]. A wake-up carries no data. The default ignores it.
    fn set_waker(&mut self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = wake;
    }

    /// A flag the store sets while its database cannot be reached, so that the engine can
    /// refuse new commands at once instead of queueing them behind a batch that is retrying.
    /// `None` (the default) for a store on local disk.
    fn unreachable_flag(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        None
    }

    /// For a log several nodes share: keeps or takes the writer lease, and returns what
    /// other nodes appended after this store's head. A store only this process writes is
    /// always the leader with nothing to follow (the default).
    fn follow(&mut self) -> Result<Followed, FollowError> {
        Ok(Followed {
            role: Role::Leader,
            envelopes: Vec::new(),
        })
    }
}

/// A node's part in writing a log: alone, or as one of several nodes sharing a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// This node appends: the only writer of a store it alone opens, or the holder of a
    /// shared store's writer lease.
    Leader,
    /// Another node holds the writer lease; this one follows the log and serves reads.
    Follower {
        /// The address the leader advertised with its lease, when one is known.
        leader: Option<String>,
    },
}

/// What [`EventStore::follow`] found.
#[derive(Debug)]
pub struct Followed {
    /// This node's part after the call.
    pub role: Role,
    /// Envelopes other nodes appended after this store's head, in order and chain-checked;
    /// the store's head has moved past them, so the caller must fold every one of them
    /// into its views.
    pub envelopes: Vec<Envelope>,
}

/// Why [`EventStore::follow`] could not look at the shared log.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The database cannot be reached right now; the node keeps serving from its views and
    /// tries again.
    #[error("the shared log cannot be reached: {0}")]
    Unreachable(String),
    /// The log read back does not continue this node's chain (tampering, or a log replaced
    /// under a running node): the node must stop.
    #[error(transparent)]
    Broken(#[from] crate::chain::ChainError),
    /// An envelope could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// A boxed store is a store: drivers that choose the backend at run time (the CLI's
/// configuration, the simulator's option) hand the engine and the fault wrapper a box.
impl<S: EventStore + ?Sized> EventStore for Box<S> {
    fn head(&self) -> Head {
        (**self).head()
    }
    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        (**self).stream_version(stream)
    }
    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Envelope>, AppendError> {
        (**self).append(batch)
    }
    fn read_stream(&self, stream: &StreamId) -> Result<Vec<Envelope>, ReadError> {
        (**self).read_stream(stream)
    }
    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        (**self).read_from(from)
    }
    fn view_records(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(ViewKey, ViewRecord), ReadError>> + '_> {
        (**self).view_records()
    }
    fn views_trusted(&self) -> Result<bool, ReadError> {
        (**self).views_trusted()
    }
    fn replace_views(&mut self, records: Vec<(ViewKey, ViewRecord)>) -> Result<(), AppendError> {
        (**self).replace_views(records)
    }
    fn log_reader(&self) -> Box<dyn LogReader> {
        (**self).log_reader()
    }
    fn follow_interval(&self) -> Option<std::time::Duration> {
        (**self).follow_interval()
    }
    fn set_waker(&mut self, wake: Box<dyn Fn() + Send + Sync>) {
        (**self).set_waker(wake);
    }
    fn unreachable_flag(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        (**self).unreachable_flag()
    }
    fn follow(&mut self) -> Result<Followed, FollowError> {
        (**self).follow()
    }
}

/// Reads a store's log from any thread, concurrently with the one writer.
///
/// The log is append-only, so every envelope up to a head the writer has made durable is
/// immutable and a reader sees it exactly as the writer sealed it. Past that head a reader
/// may see envelopes of a batch that is still being written and may yet be lost (a failed
/// sync): callers read only up to a durable head they were given ([`crate::Engine::head`],
/// [`crate::Engine::subscribe`]), with [`LogReader::read_range`] or by stopping at it.
pub trait LogReader: Send + Sync + std::fmt::Debug {
    /// Every envelope with a sequence at or after `from`, in order, as far as the log goes
    /// at the moment each is read: possibly past the durable head (see the trait's note).
    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_>;

    /// Every envelope with a sequence from `from` through `through` (both included), in
    /// order. With `through` at or below a durable head, this is a fixed, immutable prefix
    /// of the log, whatever the writer appends meanwhile.
    fn read_range(
        &self,
        from: u64,
        through: u64,
    ) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        Box::new(
            self.read_from(from)
                .take_while(move |r| r.as_ref().map_or(true, |e| e.sequence <= through)),
        )
    }
}

/// Assigns sequences and chain hashes to a batch, checking versions against `version_of`.
/// Shared by every backend (including those in other crates) so that they chain
/// identically.
pub fn seal_batch(
    head: Head,
    events: &[NewEvent],
    mut version_of: impl FnMut(&StreamId) -> Result<u64, AppendError>,
) -> Result<Vec<Envelope>, AppendError> {
    let mut versions: std::collections::HashMap<&StreamId, u64> = std::collections::HashMap::new();
    let mut prev_hash = head.hash;
    let mut out = Vec::with_capacity(events.len());
    for (i, new) in events.iter().enumerate() {
        let current = match versions.get(&new.stream) {
            Some(v) => *v,
            None => version_of(&new.stream)?,
        };
        if current != new.expected_version {
            return Err(AppendError::Conflict {
                stream: new.stream.clone(),
                expected: new.expected_version,
                actual: current,
            });
        }
        let mut envelope = Envelope {
            sequence: head.sequence + 1 + i as u64,
            stream: new.stream.clone(),
            stream_version: current + 1,
            recorded_at: new.recorded_at,
            schema: crate::codec::EVENT_SCHEMA,
            event: new.event.clone(),
            prev_hash,
            hash: [0; 32],
            content_hash: [0; 32],
        };
        crate::chain::seal(&mut envelope)?;
        prev_hash = envelope.hash;
        versions.insert(&new.stream, current + 1);
        out.push(envelope);
    }
    Ok(out)
}
