//! The adapter's limits and trust settings, with defaults that work on a laptop.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted; larger ones get 413 before they are read.
    pub body_bytes_max: usize,
    /// Time allowed for a client to send its request headers.
    pub header_timeout_ms: u64,
    /// Time allowed for one request, body included, from headers to answer.
    pub request_timeout_ms: u64,
    /// Open connections beyond this are closed at accept.
    pub connections_max: usize,
    /// Threads hashing passwords at once (argon2 is CPU-bound: about one per core).
    pub hash_workers: usize,
    /// Hash jobs admitted (running + waiting); beyond it, 503 with Retry-After.
    pub hash_queue_max: usize,
    /// Origins allowed to make cookie-authenticated changes, besides the server's own.
    pub allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed. Empty: the socket address is the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Time to let in-flight requests finish on shutdown.
    pub drain_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            body_bytes_max: 16 * 1024,
            header_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            connections_max: 4_096,
            hash_workers: cores,
            hash_queue_max: cores * 16,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            drain_timeout_ms: 10_000,
        }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.body_bytes_max < 1024 {
            return Err("http.body_bytes_max must be at least 1024".into());
        }
        if self.hash_workers == 0 || self.hash_queue_max < self.hash_workers {
            return Err(
                "http.hash_workers must be positive and at most http.hash_queue_max".into(),
            );
        }
        if self.connections_max == 0 || self.header_timeout_ms == 0 || self.request_timeout_ms == 0
        {
            return Err("http connection limit and timeouts must be positive".into());
        }
        Ok(())
    }
}
