//! One seed decides everything. Each actor draws from its own stream, derived from the seed
//! and the actor's label, so adding an actor reshuffles no other actor's choices.

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// The stream for `label` under `seed`.
pub fn stream(seed: u64, label: &str) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(b"tessera-sim-v1");
    h.update(seed.to_le_bytes());
    h.update(label.as_bytes());
    ChaCha20Rng::from_seed(h.finalize().into())
}
