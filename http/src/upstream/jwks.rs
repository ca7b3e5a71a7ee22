//! A provider's signing keys (its JWKS, RFC 7517), cached by `kid`.
//!
//! ```text
//!   key(kid, now) ── fresh set has kid ──────────────────────────────▶ hit
//!        │
//!        ├─ set stale (past max-age) ─────────────▶ fetch ─▶ has kid? ─▶ miss, key
//!        │                                                    └──────▶ UnknownKey
//!        └─ unknown kid ─ last fetch < refetch_interval ago ─▶ UnknownKey (no fetch)
//!                       └ otherwise ─────────────▶ fetch ─▶ ...
//! ```
//!
//! A provider rotating its key publishes the new one before signing with it, so a token
//! with an unknown `kid` triggers one refetch; the interval bounds how often that can
//! happen, so a flood of tokens with made-up `kid`s costs the provider at most one request
//! per interval. The set's lifetime follows the answer's `Cache-Control: max-age`, clamped
//! to the policy's bounds. Time comes in as an argument: the cache never reads a clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use tessera_core::Timestamp;

use super::client::{Credentials, FetchError, UpstreamClient, UpstreamUrl, excerpt};

/// Signature algorithms accepted on an ID token. Never `none` and never HMAC: a provider's
/// public key must not become a shared secret (algorithm confusion).
pub const ALGORITHMS_ALLOWED: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// How long a key set is trusted and how often it may be fetched again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksPolicy {
    /// Lifetime of a set whose answer had no `max-age`.
    pub max_age_default_secs: u64,
    /// Bounds on the provider's `max-age`: a tiny one would make every login fetch, a
    /// huge one would keep a withdrawn key for days.
    pub max_age_min_secs: u64,
    pub max_age_max_secs: u64,
    /// At most one fetch for an unknown `kid` per this many seconds.
    pub refetch_interval_min_secs: u64,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            max_age_default_secs: 3_600,
            max_age_min_secs: 60,
            max_age_max_secs: 86_400,
            refetch_interval_min_secs: 10,
        }
    }
}

impl JwksPolicy {
    /// Checks the bounds are in order.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_age_min_secs > self.max_age_max_secs {
            return Err("jwks max_age_min_secs must be at most max_age_max_secs".into());
        }
        if !(self.max_age_min_secs..=self.max_age_max_secs).contains(&self.max_age_default_secs) {
            return Err("jwks max_age_default_secs must lie between the min and the max".into());
        }
        Ok(())
    }

    /// The lifetime of a set fetched with this `Cache-Control`, in seconds.
    pub fn lifetime_secs(&self, cache_control: Option<&str>) -> u64 {
        let max_age = cache_control.and_then(|cc| {
            cc.split(',').find_map(|d| {
                let d = d.trim();
                if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
                    return Some(0);
                }
                let (name, value) = d.split_once('=')?;
                if !name.trim().eq_ignore_ascii_case("max-age") {
                    return None;
                }
                value.trim().trim_matches('"').parse::<u64>().ok()
            })
        });
        max_age
            .unwrap_or(self.max_age_default_secs)
            .clamp(self.max_age_min_secs, self.max_age_max_secs)
    }
}

/// A provider's public key, with the algorithms it may verify.
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// From the JWK's `alg` when given, else from its type and curve; always within
    /// [`ALGORITHMS_ALLOWED`].
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// The key a JWK describes, or `None` when it is not a signature key we accept
    /// (encryption keys, HMAC secrets, unsupported curves or algorithms).
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return None;
        }
        let by_type: &[Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => &[Algorithm::RS256, Algorithm::PS256],
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                &[Algorithm::ES256]
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                &[Algorithm::EdDSA]
            }
            _ => return None,
        };
        let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
            None => by_type.to_vec(),
            Some(named) => {
                let alg = algorithm_of(named)?;
                if !by_type.contains(&alg) {
                    return None;
                }
                vec![alg]
            }
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(Self {
            kid: jwk.common.key_id.clone(),
            key,
            algorithms,
        })
    }
}

fn algorithm_of(named: KeyAlgorithm) -> Option<Algorithm> {
    match named {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// Why no key could be found for a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the provider's key set is not a JWKS (body starts {0})")]
    NotAKeySet(String),
    #[error("the provider publishes no key with kid {0}")]
    UnknownKey(String),
    #[error("the token names no kid and the provider publishes several keys for {0:?}")]
    AmbiguousKey(Algorithm),
}

/// Counters since the cache was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JwksStats {
    /// Keys served from a fresh set, without a fetch.
    pub hits: u64,
    /// Lookups that needed a fetch (stale set or unknown kid) or were refused one.
    pub misses: u64,
    /// Requests made to the provider's `jwks_uri`.
    pub fetches: u64,
    /// Unknown kids refused without a fetch because one was made too recently.
    pub refetches_refused: u64,
}

#[derive(Default)]
struct Cached {
    keys: Vec<Arc<VerifyingKey>>,
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Option<Timestamp>,
    expires_at: Timestamp,
}

impl Cached {
    fn fresh(&self, now: Timestamp) -> bool {
        self.fetched_at.is_some() && now < self.expires_at
    }

    fn find(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<Result<Arc<VerifyingKey>, JwksError>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned().map(Ok),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.algorithms.contains(&alg));
                let first = fitting.next()?;
                if fitting.next().is_some() {
                    return Some(Err(JwksError::AmbiguousKey(alg)));
                }
                Some(Ok(first.clone()))
            }
        }
    }
}

/// One provider's key set. Shared by every callback for that provider.
pub struct JwksCache {
    jwks_uri: UpstreamUrl,
    policy: JwksPolicy,
    cached: Mutex<Cached>,
    /// Held while fetching, so that concurrent misses wait for one fetch instead of each
    /// making their own.
    fetching: tokio::sync::Mutex<()>,
    hits: AtomicU64,
    misses: AtomicU64,
    fetches: AtomicU64,
    refetches_refused: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("jwks_uri", &self.jwks_uri)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// An empty cache for the set at `jwks_uri`; the first lookup fetches it.
    pub fn new(jwks_uri: UpstreamUrl, policy: JwksPolicy) -> Self {
        Self {
            jwks_uri,
            policy,
            cached: Mutex::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            refetches_refused: AtomicU64::new(0),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> JwksStats {
        JwksStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            fetches: self.fetches.load(Ordering::Relaxed),
            refetches_refused: self.refetches_refused.load(Ordering::Relaxed),
        }
    }

    /// The key for a token signed with `alg` naming `kid` (or none, when the set holds
    /// exactly one key for `alg`), fetching the set when it is stale or lacks the kid, as
    /// the module doc draws.
    pub async fn key(
        &self,
        client: &UpstreamClient,
        kid: Option<&str>,
        alg: Algorithm,
        now: Timestamp,
    ) -> Result<Arc<VerifyingKey>, JwksError> {
        if let Some(found) = self.lookup_fresh(kid, alg, now) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return found;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let _one_fetch = self.fetching.lock().await;
        // Another lookup may have fetched while this one waited.
        if let Some(found) = self.lookup_fresh(kid, alg, now) {
            return found;
        }
        if !self.may_fetch(now) {
            self.refetches_refused.fetch_add(1, Ordering::Relaxed);
            return Err(unknown(kid));
        }
        self.refresh(client, now).await?;
        self.lookup_fresh(kid, alg, now)
            .unwrap_or_else(|| Err(unknown(kid)))
    }

    fn lookup_fresh(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: Timestamp,
    ) -> Option<Result<Arc<VerifyingKey>, JwksError>> {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if !cached.fresh(now) {
            return None;
        }
        cached.find(kid, alg)
    }

    /// A stale (or never fetched) set may always be fetched; a fresh one that lacks the
    /// kid only once per refetch interval.
    fn may_fetch(&self, now: Timestamp) -> bool {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        match cached.fetched_at {
            None => true,
            Some(_) if !cached.fresh(now) => true,
            Some(at) => now.since(at) >= self.policy.refetch_interval_min_secs.saturating_mul(1000),
        }
    }

    /// Fetches the set now, whatever the cache holds (one round trip), and replaces it.
    pub async fn refresh(&self, client: &UpstreamClient, now: Timestamp) -> Result<(), JwksError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let answer = client
            .get(&self.jwks_uri, Credentials::None)
            .await?
            .success(&self.jwks_uri)?;
        let keys = parse_key_set(&answer.body)?;
        let lifetime_ms = self
            .policy
            .lifetime_secs(answer.cache_control.as_deref())
            .saturating_mul(1000);
        let mut by_kid = HashMap::new();
        for key in &keys {
            if let Some(kid) = &key.kid {
                by_kid.insert(kid.clone(), key.clone());
            }
        }
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        *cached = Cached {
            keys,
            by_kid,
            fetched_at: Some(now),
            expires_at: Timestamp::from_millis(now.0.saturating_add(lifetime_ms)),
        };
        Ok(())
    }
}

fn unknown(kid: Option<&str>) -> JwksError {
    JwksError::UnknownKey(excerpt(kid.unwrap_or("(none)").as_bytes()))
}

/// The usable signature keys of a JWKS document. Keys we cannot use are skipped one by one
/// (a set may mix encryption keys or new key types with ours); a body that is not a key
/// set at all is an error.
pub fn parse_key_set(body: &[u8]) -> Result<Vec<Arc<VerifyingKey>>, JwksError> {
    #[derive(Deserialize)]
    struct Wire {
        keys: Vec<serde_json::Value>,
    }
    let wire: Wire =
        serde_json::from_slice(body).map_err(|_| JwksError::NotAKeySet(excerpt(body)))?;
    Ok(wire
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|jwk| VerifyingKey::from_jwk(&jwk))
        .map(Arc::new)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_clamped() {
        let p = JwksPolicy::default();
        assert_eq!(p.lifetime_secs(None), 3_600);
        assert_eq!(p.lifetime_secs(Some("public, max-age=600")), 600);
        assert_eq!(p.lifetime_secs(Some("max-age=1")), 60);
        assert_eq!(p.lifetime_secs(Some("max-age=99999999")), 86_400);
        assert_eq!(p.lifetime_secs(Some("no-store")), 60);
        assert_eq!(p.lifetime_secs(Some("max-age=x")), 3_600);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let body = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"h"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"e"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"enc","use":"enc"},
            {"kty":"weird"}
        ]}"#;
        let keys = parse_key_set(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("e"));
        assert_eq!(keys[0].algorithms, vec![Algorithm::EdDSA]);
        assert!(parse_key_set(b"<html>").is_err());
    }
}
