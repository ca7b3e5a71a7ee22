//! Tessera's storage: the durable, hash-chained event log, the persisted views, and the one
//! writer that turns commands into appended events.
//!
//! # What this crate owns
//! - [`codec`]: the on-disk format (bincode 2.0.1 behind our own module, golden-bytes tested).
//! - [`chain`]: the hash chain that makes tampering detectable.
//! - [`EventStore`]: the narrow storage boundary, with [`SledStore`] (durable) and
//!   [`MemoryStore`] (reference model) behind it, and [`fault::FaultyStore`] for crash tests.
//! - [`engine`]: the single writer. It batches commands, decides each with the core,
//!   appends all their events and view changes atomically, makes the batch durable once
//!   (group commit) and only then answers.
//! - [`keys`]: the private signing keys, one 0600 file each under `<data>/keys`, outside
//!   the log.
//! - [`replay`]: reading the log back: printing, rebuilding views, verifying the chain
//!   (of a stopped store, or of a running server's log through a [`LogReader`]).
//! - [`backup`]: an online backup of a running server's data folder, read through a
//!   [`LogReader`] up to a durable head, without stopping the writer.
//!
//! # What this crate must not do
//! Decide anything: every rule lives in `tessera-core`. Read a clock or OS randomness
//! itself: the engine is handed a [`engine::Clock`] and an RNG. Speak HTTP.

// Every public item says what it is, does or guarantees. (No unwrap, expect, panic! or
// indexing outside tests: the workspace lints in the root Cargo.toml.)
#![deny(missing_docs)]

pub mod backup;
pub mod chain;
pub mod codec;
pub mod engine;
pub mod event_store;
pub mod fault;
pub mod keys;
pub mod memory_store;
pub mod replay;
pub mod sled_store;

pub use codec::Envelope;
pub use engine::{Clock, Engine, EngineConfig, EngineError, Outcome, UseCaseError, UseCaseReply};
pub use event_store::{
    AppendBatch, AppendError, EventStore, FollowError, Followed, Head, LogReader, NewEvent,
    OpenError, ReadError, Role,
};
pub use memory_store::MemoryStore;
pub use sled_store::{ImportError, ImportReport, SledLogReader, SledOptions, SledStore};
