//! Reading the log back: filtered printing, rebuilding the views from scratch and comparing
//! them with the persisted ones, and verifying the hash chain: of a stopped store
//! ([`verify`]) or of a running server's log up to a durable head ([`verify_live`]).

use tessera_core::{StreamId, Timestamp, ViewKey, ViewRecord, Views};

use crate::chain::{ChainError, ChainVerifier};
use crate::codec::Envelope;
use crate::event_store::{EventStore, Head, LogReader, ReadError};

/// Why reading the log back stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An event (or a persisted view record) could not be applied to the views: the log
    /// holds something the core's rules say cannot happen.
    #[error("the log breaks at sequence {sequence}: {why}")]
    Apply {
        /// The sequence of the event that failed; 0 when loading persisted view records.
        sequence: u64,
        /// What the views reported.
        why: String,
    },
    /// The hash chain is broken.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The policy the engine was started with cannot be used (checked when configuration
    /// loads, so only a caller that skipped the check sees this).
    #[error("the policy cannot be used: {0}")]
    Policy(String),
}

/// Which envelopes to print.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this stream's envelopes; `None` for every stream.
    pub stream: Option<StreamId>,
    /// Only envelopes recorded at or after this time.
    pub since: Option<Timestamp>,
    /// Only envelopes recorded before this time (exclusive).
    pub until: Option<Timestamp>,
    /// Only these event kinds (for example `SessionStarted`); empty for every kind.
    pub kinds: Vec<String>,
}

impl Filter {
    /// Whether `e` passes every condition that is set.
    pub fn matches(&self, e: &Envelope) -> bool {
        self.stream.as_ref().is_none_or(|s| *s == e.stream)
            && self.since.is_none_or(|t| e.recorded_at >= t)
            && self.until.is_none_or(|t| e.recorded_at < t)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == e.event.kind()))
    }
}

/// The envelopes `filter` selects, in log order. A stream filter reads only that stream.
pub fn events<'a>(
    store: &'a dyn EventStore,
    filter: &'a Filter,
) -> Box<dyn Iterator<Item = Result<Envelope, ReadError>> + 'a> {
    match &filter.stream {
        Some(stream) => match store.read_stream(stream) {
            Ok(list) => Box::new(list.into_iter().filter(move |e| filter.matches(e)).map(Ok)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        },
        None => Box::new(
            store
                .read_from(1)
                .filter(move |r| r.as_ref().map_or(true, |e| filter.matches(e))),
        ),
    }
}

/// The persisted views, as the writer left them.
pub fn load_views(store: &dyn EventStore) -> Result<Views, ReplayError> {
    load_views_into(Views::default(), store)
}

/// [`load_views`] into `views` (empty, built with [`Views::for_policy`]).
pub fn load_views_into(views: Views, store: &dyn EventStore) -> Result<Views, ReplayError> {
    let mut views = views;
    for item in store.view_records() {
        let (key, record) = item?;
        views.load(key, record).map_err(|e| ReplayError::Apply {
            sequence: 0,
            why: e.to_string(),
        })?;
    }
    Ok(views)
}

/// Folds the whole log into fresh views, calling `progress` with each sequence applied.
/// Checks the hash chain on the way, so a rebuild never trusts a tampered log. Uses the
/// default policy's bound on per-address throttle records; see [`rebuild_into`].
pub fn rebuild(
    store: &dyn EventStore,
    progress: &mut dyn FnMut(u64),
) -> Result<Views, ReplayError> {
    rebuild_into(Views::default(), store, progress)
}

/// [`rebuild`] into `views` (empty, built with [`Views::for_policy`]), so that the
/// per-address throttle records are bounded as the writer bounds them.
pub fn rebuild_into(
    views: Views,
    store: &dyn EventStore,
    progress: &mut dyn FnMut(u64),
) -> Result<Views, ReplayError> {
    let mut views = views;
    let mut chain = ChainVerifier::default();
    let mut touched = Vec::new();
    for item in store.read_from(1) {
        let e = item?;
        chain.check(&e)?;
        touched.clear();
        views
            .apply(e.recorded_at, &e.event, &mut touched)
            .map_err(|err| ReplayError::Apply {
                sequence: e.sequence,
                why: err.to_string(),
            })?;
        progress(e.sequence);
    }
    Ok(views)
}

/// One key where the persisted views and the rebuilt ones disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewDifference {
    /// The key they disagree on.
    pub key: ViewKey,
    /// The store's record under `key`, if it has one.
    pub persisted: Option<ViewRecord>,
    /// The record a fold of the log gives, if any.
    pub rebuilt: Option<ViewRecord>,
}

/// Every key where `rebuilt` and the store's persisted views differ.
pub fn compare(rebuilt: &Views, store: &dyn EventStore) -> Result<Vec<ViewDifference>, ReadError> {
    let mut persisted = std::collections::BTreeMap::new();
    for item in store.view_records() {
        let (k, v) = item?;
        persisted.insert(k, v);
    }
    let mut diffs = Vec::new();
    for key in rebuilt.keys() {
        let ours = rebuilt.record(&key);
        let theirs = persisted.remove(&key);
        if ours != theirs {
            diffs.push(ViewDifference {
                key,
                persisted: theirs,
                rebuilt: ours,
            });
        }
    }
    diffs.extend(persisted.into_iter().map(|(key, v)| ViewDifference {
        key,
        persisted: Some(v),
        rebuilt: None,
    }));
    Ok(diffs)
}

/// What a chain verification found on an intact log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// How many envelopes the log holds (all checked).
    pub events: u64,
    /// The last envelope's hash ([`crate::chain::GENESIS`] for an empty log).
    pub head_hash: [u8; 32],
}

/// Walks the whole log checking every link, and that it ends at the store's head.
pub fn verify(
    store: &dyn EventStore,
    progress: &mut dyn FnMut(u64),
) -> Result<ChainReport, ReplayError> {
    verify_chain(store.read_from(1), store.head(), progress)
}

/// Verifies a running server's log through its [`LogReader`], without stopping the writer:
/// walks every envelope from the first through `through.sequence` checking every link, and
/// that the last one is `through` (its sequence and hash). `through` must be a head the
/// engine made durable ([`crate::Engine::head`]); envelopes appended after it are not read.
/// Errors are those of [`verify`], naming the first bad sequence.
pub fn verify_live(
    reader: &dyn LogReader,
    through: Head,
    progress: &mut dyn FnMut(u64),
) -> Result<ChainReport, ReplayError> {
    verify_chain(reader.read_range(1, through.sequence), through, progress)
}

/// The one chain walk behind [`verify`] and [`verify_live`]: every envelope of `log` from
/// the first, in order, must link to the one before it, and the last must be `head`.
fn verify_chain(
    log: impl Iterator<Item = Result<Envelope, ReadError>>,
    head: Head,
    progress: &mut dyn FnMut(u64),
) -> Result<ChainReport, ReplayError> {
    let mut chain = ChainVerifier::default();
    for item in log {
        let e = match item {
            Ok(e) => e,
            Err(ReadError::Corrupt { at, why }) => {
                let sequence = at
                    .rsplit(' ')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(chain.count() + 1);
                return Err(ChainError::Unreadable { sequence, why }.into());
            }
            Err(e) => return Err(e.into()),
        };
        chain.check(&e)?;
        progress(e.sequence);
    }
    if head.sequence != chain.count() || head.hash != chain.head_hash() {
        return Err(ChainError::Unlinked {
            sequence: head.sequence,
        }
        .into());
    }
    Ok(ChainReport {
        events: chain.count(),
        head_hash: chain.head_hash(),
    })
}
