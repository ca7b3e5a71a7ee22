//! A fault-injecting wrapper for crash tests: fails the Nth append, before or after the
//! inner store made it durable, the way a crash or an I/O error would.

use tessera_core::{StreamId, ViewKey, ViewRecord};

use crate::codec::Envelope;
use crate::event_store::{AppendBatch, AppendError, EventStore, Head, LogReader, ReadError};

/// When the injected fault strikes, relative to the inner append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// Nothing reaches the inner store: an I/O error before the write.
    BeforeWrite,
    /// The batch is durable, but the caller is told it failed: a crash between the fsync and
    /// the acknowledgement.
    AfterWrite,
}

/// An [`EventStore`] that passes everything to `inner` until the configured append fails,
/// and fails every append after it. Reads always go to `inner`.
#[derive(Debug)]
pub struct FaultyStore<S> {
    /// The store that really holds the data; after a fault, what it holds is what survived.
    pub inner: S,
    appends: u64,
    fail_at: Option<(u64, FaultPoint)>,
}

impl<S: EventStore> FaultyStore<S> {
    /// Fails the `nth` append (1-based) at `point`; every later append fails too, as a dead
    /// process would.
    pub fn new(inner: S, nth: u64, point: FaultPoint) -> Self {
        Self {
            inner,
            appends: 0,
            fail_at: Some((nth, point)),
        }
    }

    /// The wrapped store, for reopening or comparing after the fault.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: EventStore> EventStore for FaultyStore<S> {
    fn head(&self) -> Head {
        self.inner.head()
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        self.inner.stream_version(stream)
    }

    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Envelope>, AppendError> {
        self.appends += 1;
        match self.fail_at {
            Some((nth, point)) if self.appends >= nth => {
                if point == FaultPoint::AfterWrite && self.appends == nth {
                    self.inner.append(batch)?;
                }
                Err(AppendError::Io(format!(
                    "injected fault at append {}",
                    self.appends
                )))
            }
            _ => self.inner.append(batch),
        }
    }

    fn read_stream(&self, stream: &StreamId) -> Result<Vec<Envelope>, ReadError> {
        self.inner.read_stream(stream)
    }

    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        self.inner.read_from(from)
    }

    fn view_records(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(ViewKey, ViewRecord), ReadError>> + '_> {
        self.inner.view_records()
    }

    fn views_trusted(&self) -> Result<bool, ReadError> {
        self.inner.views_trusted()
    }

    fn replace_views(&mut self, records: Vec<(ViewKey, ViewRecord)>) -> Result<(), AppendError> {
        self.inner.replace_views(records)
    }

    fn log_reader(&self) -> Box<dyn LogReader> {
        self.inner.log_reader()
    }
}
