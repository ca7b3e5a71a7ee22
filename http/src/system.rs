//! The system environment: the wall clock and the OS random source. The workspace bans both
//! everywhere else (clippy.toml); these are the allowed exceptions.

#![allow(
    clippy::disallowed_types,
    reason = "SystemEnv is where OS randomness is read"
)]

use rand::rngs::SysRng;
use rand_core::UnwrapErr;
use tessera_core::Timestamp;
use tessera_storage::Clock;

/// The wall clock, in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "SystemClock is the production clock the core is handed"
    )]
    fn now(&self) -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The OS random source as an infallible cryptographic RNG. Every secret Tessera hands out
/// in production comes straight from here. If the OS cannot supply randomness, the process
/// must not go on minting secrets, so a failure panics (it does not happen on Linux after
/// boot).
pub fn os_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// A monotonic instant for measuring request latency; never reaches the core.
#[allow(
    clippy::disallowed_methods,
    reason = "latency metrics need a monotonic clock; not a domain time"
)]
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}
