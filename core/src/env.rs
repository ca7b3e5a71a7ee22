//! The environment a caller passes in: the only way time, randomness and policy reach the core.

use rand_core::CryptoRng;

use crate::{Policy, Timestamp};

/// What a decision may consult besides the views and the command.
///
/// Production passes the OS random source and the wall clock; the simulator passes a
/// seeded ChaCha stream and a virtual clock. Whatever a decision takes from here and later
/// logic needs (the time, generated ids, digests of generated secrets) is written into the
/// events, so that replay never needs an `Env`.
pub struct Env<'a> {
    /// The time of the decision: the "now" every deadline it checks or computes is measured
    /// against.
    pub now: Timestamp,
    /// The cryptographic random source for ids and secrets.
    pub rng: &'a mut dyn CryptoRng,
    /// The policy in force (password rules, lifetimes, limits).
    pub policy: &'a Policy,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl<'a> Env<'a> {
    /// An environment at `now`, drawing randomness from `rng`, under `policy`.
    pub fn new(now: Timestamp, rng: &'a mut dyn CryptoRng, policy: &'a Policy) -> Self {
        Self { now, rng, policy }
    }

    /// `N` bytes from the environment's cryptographic RNG.
    pub fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.rng.fill_bytes(&mut out);
        out
    }
}
