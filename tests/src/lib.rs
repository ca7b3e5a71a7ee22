//! Shared helpers for Tessera's integration suite (`tests/suite`).
//!
//! - [`scenario`]: a given/when/then harness for `tessera_core::decide`. *Given* events are
//!   folded into fresh [`Views`](tessera_core::Views); *when* decides a command with an [`Env`](tessera_core::Env) built from a time
//!   the test controls, a seeded ChaCha RNG and [`Policy::fast_for_tests`], then applies the
//!   decision's events exactly as the writer would; *then* asserts on events and reply.
//! - [`fixtures`]: deterministic ids, hashes and events for *given* lists.
//! - [`workload`]: a test [`Clock`](tessera_storage::Clock), a store that can be shared with
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
pub mod scenario;
pub mod workload;

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use tessera_core::{Policy, Timestamp};

pub use scenario::{Given, Then};

/// The time every scenario starts at: 2023-11-14T22:13:20Z.
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// A password every policy rule accepts.
pub const PASSWORD: &str = "Correct horse 9 battery";
/// Another acceptable password, for changes.
pub const NEW_PASSWORD: &str = "Staple battery 7 horse";

/// The policy every test uses: real rules, cheap argon2.
pub fn policy() -> Policy {
    Policy::fast_for_tests()
}

/// A ChaCha20 stream from `seed`: the only randomness tests use.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Applies `events`, each recorded at its time, to fresh views: a rebuild without storage.
pub fn fold<'a>(
    events: impl IntoIterator<Item = &'a (Timestamp, tessera_core::Event)>,
) -> tessera_core::Views {
    let mut views = tessera_core::Views::default();
    let mut touched = Vec::new();
    for (at, event) in events {
        views
            .apply(*at, event, &mut touched)
            .unwrap_or_else(|e| panic!("fold: {e}"));
    }
    views
}
