//! Tessera's event log on PostgreSQL: the same [`tessera_storage::EventStore`] contract,
//! envelope bytes and hash chain as the embedded sled store, for deployments that run
//! several Tessera nodes on one database.
//!
//! # What this crate owns
//! - [`schema`]: the tables and every statement run against them.
//! - [`PgStore`]: the store. One writer appends; each batch takes a transaction-level
//!   advisory lock and numbers its envelopes from the counter row it locks, so sequences
//!   become visible in order, with no gap a follower could skip. The writer lease is a
//!   session-level advisory lock plus a fencing token in that row, checked by every batch
//!   and raised by each new leader, so a deposed leader's late batch is refused.
//! - Following: [`tessera_storage::EventStore::follow`] reads what the leader appended,
//!   woken by LISTEN/NOTIFY (a wake-up, never the data), with polling as the fallback.
//!
//! # What this crate must not do
//! Decide anything, read the clock for domain time, or speak HTTP. It stores and reads
//! envelopes sealed by `tessera-storage`'s code, byte for byte as sled stores them.
//!
//! # How to drive it
//! [`PgStore::open`] with [`PgOptions`], then hand it to [`tessera_storage::Engine::start`]
//! like any store. The engine's writer thread owns it; the driver is the blocking
//! `postgres` crate, so it must not be called from inside an async task.

#![deny(missing_docs)]

pub mod pool;
pub mod schema;
pub mod store;

pub use store::{ImportError, PgLogReader, PgOptions, PgStore};
