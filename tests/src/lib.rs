//! Shared helpers for Tessera's integration suite (`tests/suite`).
//!
//! - [`Given`]/[`Then`]: the given/when/then harness for decisions, from
//!   [`tessera_core::testkit`] (core's unit tests use the same one), re-exported with the
//!   start time [`T0`], the passwords, the test [`policy`] and the seeded [`rng`].
//! - [`fixtures`]: deterministic ids, hashes and events for *given* lists.
//! - [`issuer`]: signing keys, crafted ID tokens and a local issuer publishing its key set.
//! - [`oidc_provider`]: an independent OpenID Connect provider from npm, started under node.
//! - [`pg`]: a throwaway PostgreSQL cluster, one database per test.
//! - [`server`]: a real HTTP server over a sled store in a temporary folder, on the test
//!   clock, with a hyper client that speaks the API.
//! - [`workload`]: the test [`Clock`](tessera_storage::Clock), a store that can be shared with
//!   the engine, and a seeded driver that sends the engine a random but reproducible stream of
//!   commands built the way the server builds them.
//!
//! Everything random here comes from a seed: a failing test names it, and rerunning with it
//! reproduces the failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: this library is used only by the integration suite, where a failed step should stop the test loudly at that step"
)]

pub mod fixtures;
pub mod issuer;
pub mod oidc_provider;
pub mod pg;
pub mod server;
pub mod workload;

pub use tessera_core::testkit::{Given, NEW_PASSWORD, PASSWORD, T0, Then, fold, policy, rng};
