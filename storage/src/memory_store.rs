//! An in-memory [`EventStore`]: the reference the contract suite holds the sled store to,
//! and a fast store for property tests. Not durable, by design.

use std::collections::{BTreeMap, HashMap};

use tessera_core::{StreamId, ViewKey, ViewRecord};

use crate::codec::Envelope;
use crate::event_store::{AppendBatch, AppendError, EventStore, Head, ReadError, seal_batch};

/// The log, the stream index and the views in plain collections. Chains and checks versions
/// exactly as [`crate::SledStore`] does (both seal through the same code); loses everything
/// when dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    log: Vec<Envelope>,
    streams: HashMap<StreamId, Vec<u64>>,
    views: BTreeMap<ViewKey, ViewRecord>,
}

impl MemoryStore {
    /// An empty store: no events, no views.
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventStore for MemoryStore {
    fn head(&self) -> Head {
        self.log.last().map_or(
            Head {
                sequence: 0,
                hash: crate::chain::GENESIS,
            },
            |e| Head {
                sequence: e.sequence,
                hash: e.hash,
            },
        )
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
            self.log.push(e.clone());
        }
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
            .filter_map(|s| self.log.get((*s - 1) as usize).cloned())
            .collect())
    }

    fn read_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + '_> {
        let start = from.saturating_sub(1) as usize;
        Box::new(self.log.iter().skip(start).cloned().map(Ok))
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
}
