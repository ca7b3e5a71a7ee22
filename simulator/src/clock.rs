//! The virtual clock. Time moves only when the simulation says so, by amounts drawn from the
//! seed; with skew on, it drifts and jumps (forward and back), as a real clock under NTP does.

use std::sync::atomic::{AtomicU64, Ordering};

use tessera_core::Timestamp;
use tessera_storage::Clock;

/// 2023-11-14T22:13:20Z: any fixed start will do; a fixed one keeps logs reproducible.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

#[derive(Debug)]
pub struct SimClock {
    now_ms: AtomicU64,
}

impl Default for SimClock {
    fn default() -> Self {
        Self {
            now_ms: AtomicU64::new(EPOCH_MS),
        }
    }
}

impl SimClock {
    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// A step backwards, as an NTP correction makes.
    pub fn rewind(&self, ms: u64) {
        let now = self.now_ms.load(Ordering::SeqCst);
        self.now_ms
            .store(now.saturating_sub(ms).max(EPOCH_MS), Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now_ms.load(Ordering::SeqCst))
    }
}
