//! Cookie sessions (tutorial section 1; OWASP Session Management Cheat Sheet).
//!
//! ```text
//!   login ──▶ Live ──(request, last touch older than touch_interval)──▶ Live (touched)
//!              │
//!              ├─ logout / deleted / password changed / account disabled ──▶ Ended
//!              └─ now ≥ min(last_seen + idle_timeout, expires_at) ─────────▶ Expired
//! ```
//! Expiry is computed lazily from the caller's time; nothing runs on a timer. Every session
//! gets a fresh 256-bit id at login and at every privilege change, so a value planted in a
//! victim's browser before login (session fixation) is never adopted.

use serde::{Deserialize, Serialize};

use crate::secret::SecretDigest;
use crate::{AccountId, SessionId, Timestamp};

/// The prefix of every session cookie value.
pub const SESSION_SECRET_PREFIX: &str = "tss_";

/// A session as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: SessionId,
    pub account: AccountId,
    pub secret_digest: SecretDigest,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub idle_timeout_ms: u64,
    pub expires_at: Timestamp,
}

impl SessionView {
    /// The moment this session stops being accepted, if nothing touches it.
    pub fn deadline(&self) -> Timestamp {
        self.last_seen_at
            .plus_ms(self.idle_timeout_ms)
            .min(self.expires_at)
    }

    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.deadline()
    }
}
