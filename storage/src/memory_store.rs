//! An in-memory [`EventStore`]: the reference the contract suite holds the sled store to,
//! and a fast store for property tests. Not durable, by design.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use tessera_core::{StreamId, ViewKey, ViewRecord};

use crate::codec::Envelope;
use crate::event_store::{
    AppendBatch, AppendError, EventStore, Head, LogReader, ReadError, seal_batch,
};

/// The log, the stream index and the views in plain collections. Chains and checks versions
/// exactly as [`crate::SledStore`] does (both seal through the same code); loses everything
/// when dropped. The log is shared with its [`LogReader`]s, which outlive the store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    log: SharedLog,
    streams: HashMap<StreamId, Vec<u64>>,
    views: BTreeMap<ViewKey, ViewRecord>,
}

impl MemoryStore {
    /// An empty store: no events, no views.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The log of a [`MemoryStore`], shared between the store and its readers. The writer takes
/// the write lock only to push a batch; a reader takes the read lock for one envelope at a
/// time, so neither holds up the other for longer than a clone.
#[derive(Clone, Debug, Default)]
struct SharedLog(Arc<RwLock<Vec<Envelope>>>);

impl SharedLog {
    /// The envelope at `index` (sequence `index + 1`), cloned.
    fn get(&self, index: usize) -> Option<Envelope> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(index)
            .cloned()
    }

    fn last_head(&self) -> Option<Head> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last()
            .map(|e| Head {
                sequence: e.sequence,
                hash: e.hash,
            })
    }

    fn extend(&self, sealed: &[Envelope]) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(sealed);
    }

    /// Every envelope from sequence `from` on, each read under its own short read lock.
    fn iter_from(&self, from: u64) -> impl Iterator<Item = Result<Envelope, ReadError>> + '_ {
        let start = usize::try_from(from.saturating_sub(1)).ok();
        std::iter::successors(start, |i| i.checked_add(1))
            .map_while(move |i| self.get(i))
            .map(Ok)
    }
}

/// The [`LogReader`] of a [`MemoryStore`]: a handle on its shared log.
#[derive(Clone, Debug)]
struct MemoryLogReader {
    log: SharedLog,
}

impl LogReader for MemoryLogReader {
    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        Box::new(self.log.iter_from(from))
    }
}

impl EventStore for MemoryStore {
    fn head(&self) -> Head {
        self.log.last_head().unwrap_or(Head {
            sequence: 0,
            hash: crate::chain::GENESIS,
        })
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        Ok(self.streams.get(stream).map_or(0, |s| s.len() as u64))
    }

    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Envelope>, AppendError> {
        let sealed = seal_batch(self.head(), &batch.events, |s| {
            Ok(self.streams.get(s).map_or(0, |v| v.len() as u64))
        })?;
        for e in &sealed {
            self.streams
                .entry(e.stream.clone())
                .or_default()
                .push(e.sequence);
        }
        self.log.extend(&sealed);
        for (key, record) in batch.views {
            match record {
                Some(r) => self.views.insert(key, r),
                None => self.views.remove(&key),
            };
        }
        Ok(sealed)
    }

    fn read_stream(&self, stream: &StreamId) -> Result<Vec<Envelope>, ReadError> {
        let seqs = self
            .streams
            .get(stream)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(seqs
            .iter()
            .filter_map(|s| self.log.get(s.saturating_sub(1) as usize))
            .collect())
    }

    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        Box::new(self.log.iter_from(from))
    }

    fn view_records(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(ViewKey, ViewRecord), ReadError>> + '_> {
        Box::new(self.views.iter().map(|(k, v)| Ok((k.clone(), v.clone()))))
    }

    fn replace_views(&mut self, records: Vec<(ViewKey, ViewRecord)>) -> Result<(), AppendError> {
        self.views = records.into_iter().collect();
        Ok(())
    }

    fn log_reader(&self) -> Box<dyn LogReader> {
        Box::new(MemoryLogReader {
            log: self.log.clone(),
        })
    }
}
