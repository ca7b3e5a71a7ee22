//! The upstream client of "sign in with an external provider" (tessera_http::upstream)
//! against real servers on 127.0.0.1:
//! - [`id_tokens`]: every ID-token fault a provider or an attacker can produce, and the key
//!   cache following a rotation while a flood of made-up key ids stays rate-limited;
//! - [`hostile`]: upstreams that answer slowly, too much, nothing, an OAuth error or no
//!   JSON, and URLs that must be refused before any request;
//! - [`provider`]: discovery, a real code exchange with PKCE and ID-token validation against
//!   an independent OpenID Connect provider from npm.

mod hostile;
mod id_tokens;
mod provider;

use tessera_core::Timestamp;
use tessera_http::upstream::{ClientLimits, RootCertStore, UpstreamClient};

/// A client with the default limits and no trusted roots (every upstream here is plain
/// http on loopback).
fn client() -> UpstreamClient {
    client_with(ClientLimits::default())
}

fn client_with(limits: ClientLimits) -> UpstreamClient {
    UpstreamClient::with_roots(limits, RootCertStore::empty()).unwrap()
}

/// Seconds since the epoch as the time the code under test is told.
fn at_secs(secs: u64) -> Timestamp {
    Timestamp::from_millis(secs * 1000)
}
