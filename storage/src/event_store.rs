//! The storage boundary: a narrow trait, so that a second backend is a new implementation,
//! not a rewrite. One contract suite (tests/suite/store_contract.rs) runs against every
//! implementation.

use tessera_core::{Event, StreamId, Timestamp, ViewKey, ViewRecord};

use crate::codec::{CodecError, Envelope};

/// An event to append, with the stream version the writer expects the stream to be at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub stream: StreamId,
    /// The stream's version before this event: 0 for a new stream.
    pub expected_version: u64,
    pub recorded_at: Timestamp,
    pub event: Event,
}

/// Everything one batch changes: events, and the view records they touched (`None` removes).
/// Appended atomically: all of it or none of it.
#[derive(Clone, Debug, Default)]
pub struct AppendBatch {
    pub events: Vec<NewEvent>,
    pub views: Vec<(ViewKey, Option<ViewRecord>)>,
}

/// The end of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The last sequence number written; 0 for an empty log.
    pub sequence: u64,
    pub hash: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream} is at version {actual}, not {expected}")]
    Conflict {
        stream: StreamId,
        expected: u64,
        actual: u64,
    },
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("could not encode the batch: {0}")]
    Encode(#[from] CodecError),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored data is corrupt at {at}: {why}")]
    Corrupt { at: String, why: String },
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the store at {path}: {why}")]
    Io { path: String, why: String },
    #[error("the store at {path} has format {found}; this build reads format {supported}")]
    Format {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// An append-only, hash-chained event log with persisted views.
///
/// `append` is atomic and, when it returns `Ok`, durable: the caller may acknowledge.
pub trait EventStore: Send {
    fn head(&self) -> Head;
    /// The stream's current version: the number of events in it.
    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError>;
    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Envelope>, AppendError>;
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
}

/// Assigns sequences and chain hashes to a batch, checking versions against `version_of`.
/// Shared by every backend so that they chain identically.
pub(crate) fn seal_batch(
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
