//! API keys at the door: finding the `X-API-Key` header, the per-key rate limit, and the
//! usage counters folded in memory and recorded once per key per interval.
//!
//! Every rule is the core's (`tessera_core::apikey::authenticate`, `RateBucket`,
//! `UsageTally`); this module holds the mutable state those rules run over (buckets and
//! counters, sharded by key so that many connections do not queue on one lock) and maps
//! refusals to answers. Every refusal but the rate limit (429) and a missing scope (403) is
//! the same 401; the reason goes to the security log and `/metrics` only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, StatusCode, Uri, header};
use tessera_core::apikey::{
    ApiKeyId, ApiKeyPepper, ApiKeyView, KeyRefusal, KeyRoute, RateBucket, RecordApiKeyUsage,
    UsageTally, UseOutcome, WarnExpiringApiKeys, authenticate,
};
use tessera_core::{AccountId, Timestamp};

use crate::App;
use crate::problem::Problem;
use crate::security_log::{SecurityEvent, SecurityNote};

/// The header that carries a key. Nothing else does: not `Authorization`, not a cookie, not
/// the query string.
pub const API_KEY_HEADER: &str = "x-api-key";

const SHARDS: usize = 16;

/// Why keys were refused, in the order `/metrics` lists them.
pub const REFUSAL_REASONS: [&str; 14] = [
    "wrong_prefix",
    "malformed",
    "bad_checksum",
    "unknown",
    "revoked",
    "expired",
    "retired",
    "account_disabled",
    "wrong_environment",
    "address_not_allowed",
    "scope_missing",
    "in_query",
    "in_cookie",
    "rate_limited",
];

#[derive(Debug, Default)]
struct KeyUse {
    bucket: Option<RateBucket>,
    tally: UsageTally,
}

/// The adapter's API-key state: the digest key, the per-key buckets and counters.
#[derive(Debug)]
pub struct ApiKeys {
    /// The server key digests are made with (`<data>/keys/apikey.key`).
    pub pepper: ApiKeyPepper,
    shards: [Mutex<HashMap<ApiKeyId, KeyUse>>; SHARDS],
    refusals: [AtomicU64; REFUSAL_REASONS.len()],
    /// Usage events recorded (one per key per interval).
    pub usage_events: AtomicU64,
}

/// The caller a key authenticated.
#[derive(Clone, Debug)]
pub struct KeyCaller {
    pub key: ApiKeyView,
}

impl KeyCaller {
    pub fn account(&self) -> AccountId {
        self.key.account
    }
}

impl ApiKeys {
    pub fn new(pepper: ApiKeyPepper) -> Self {
        Self {
            pepper,
            shards: Default::default(),
            refusals: Default::default(),
            usage_events: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: &ApiKeyId) -> &Mutex<HashMap<ApiKeyId, KeyUse>> {
        let i = usize::from(id.as_bytes().last().copied().unwrap_or(0)) % SHARDS;
        #[allow(
            clippy::indexing_slicing,
            reason = "invariant: i < SHARDS, the array's length, by the modulo"
        )]
        &self.shards[i]
    }

    /// Counts a request for a known key and, for an accepted one with a limit, takes from
    /// its bucket. `Err(secs)` when the limit refuses it.
    fn admit(
        &self,
        key: &ApiKeyView,
        accepted: bool,
        now: Timestamp,
        client: IpAddr,
    ) -> Result<(), u64> {
        let mut shard = self
            .shard(&key.id)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = shard.entry(key.id).or_default();
        let outcome = match (accepted, key.rate_limit_per_minute) {
            (false, _) => UseOutcome::Refused,
            (true, None) => UseOutcome::Accepted,
            (true, Some(limit)) => {
                let bucket = entry
                    .bucket
                    .get_or_insert_with(|| RateBucket::full(limit, now));
                match bucket.take(limit, now) {
                    Ok(()) => UseOutcome::Accepted,
                    Err(secs) => {
                        entry
                            .tally
                            .record(now, UseOutcome::RateLimited, Some(client));
                        return Err(secs);
                    }
                }
            }
        };
        entry.tally.record(now, outcome, Some(client));
        Ok(())
    }

    /// Takes every key's counters, leaving the buckets.
    pub fn drain_usage(&self) -> Vec<(ApiKeyId, UsageTally)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (id, u) in shard.iter_mut() {
                if u.tally.requests > 0 {
                    out.push((*id, std::mem::take(&mut u.tally)));
                }
            }
            // Keys without a bucket have nothing left worth keeping.
            shard.retain(|_, u| u.bucket.is_some());
        }
        out
    }

    fn count(&self, reason: &str) {
        if let Some(i) = REFUSAL_REASONS.iter().position(|r| *r == reason)
            && let Some(c) = self.refusals.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Refusals per reason, in [`REFUSAL_REASONS`] order.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REFUSAL_REASONS
            .iter()
            .zip(&self.refusals)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
    }
}

fn note(reason: &str) -> &'static SecurityNote {
    macro_rules! notes {
        ($($r:literal),*) => {
            match reason {
                $($r => &SecurityNote { event: SecurityEvent::ApiKeyRefused, reason: $r },)*
                _ => &SecurityNote { event: SecurityEvent::ApiKeyRefused, reason: "other" },
            }
        };
    }
    notes!(
        "wrong_prefix",
        "malformed",
        "bad_checksum",
        "unknown",
        "revoked",
        "expired",
        "retired",
        "account_disabled",
        "wrong_environment",
        "address_not_allowed",
        "in_query",
        "in_cookie"
    )
}

/// The one 401 every refused key gets, carrying the reason for the log only.
fn refused(app: &App, reason: &'static str) -> Problem {
    app.api_keys.count(reason);
    Problem {
        status_header: Some("ApiKey header=\"X-API-Key\""),
        ..Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-api-key",
            "Unauthorized",
            "the API key is missing, not valid, or not allowed here",
        )
    }
    .reporting(note(reason))
}

/// Whether a key travels somewhere it must not: a query string or a cookie, where it ends
/// up in logs, histories and caches.
fn misplaced(app: &App, uri: &Uri, headers: &HeaderMap) -> Option<&'static str> {
    let vendor = &app.engine.policy().api_keys.vendor;
    let looks_like_key = |text: &str| {
        let lower = text.to_ascii_lowercase();
        lower.contains(&format!("{vendor}_sk_"))
            || lower.contains(&format!("{vendor}_pk_"))
            || lower.contains("api_key")
            || lower.contains("apikey")
            || lower.contains("api-key")
    };
    if uri.query().is_some_and(looks_like_key) {
        return Some("in_query");
    }
    let in_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(looks_like_key);
    in_cookie.then_some("in_cookie")
}

/// Authenticates a request to a key-accepting route by its `X-API-Key` header, applies the
/// key's rate limit, and counts its use.
pub fn key_caller(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    client: IpAddr,
    route: KeyRoute,
) -> Result<KeyCaller, Problem> {
    if let Some(reason) = misplaced(app, uri, headers) {
        return Err(refused(app, reason));
    }
    let mut presented = headers.get_all(API_KEY_HEADER).iter();
    let (Some(value), None) = (presented.next(), presented.next()) else {
        return Err(refused(app, "malformed"));
    };
    let text = value.to_str().map_err(|_| refused(app, "malformed"))?;
    let now = app.engine.now();
    let policy = app.engine.policy();
    let views = app.engine.views();
    let found = authenticate(
        &views,
        text.trim(),
        &app.api_keys.pepper,
        &policy.api_keys.vendor,
        now,
        Some(client),
        route,
    );
    let key = match found {
        Ok(key) => key.clone(),
        Err((refusal, known)) => {
            if let Some(k) = known {
                let _ = app.api_keys.admit(k, false, now, client);
            }
            drop(views);
            return Err(refusal_problem(app, refusal));
        }
    };
    drop(views);
    app.api_keys
        .admit(&key, true, now, client)
        .map_err(|secs| {
            app.api_keys.count("rate_limited");
            Problem {
                retry_after_secs: Some(u32::try_from(secs).unwrap_or(u32::MAX)),
                ..Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "api-key-rate-limited",
                    "Too many requests",
                    "this API key's rate limit is reached; retry later",
                )
            }
        })?;
    Ok(KeyCaller { key })
}

fn refusal_problem(app: &App, r: KeyRefusal) -> Problem {
    match r {
        KeyRefusal::ScopeMissing => {
            app.api_keys.count("scope_missing");
            Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                "Forbidden",
                "this API key does not carry the scope this route needs",
            )
        }
        other => refused(app, other.reason()),
    }
}

/// Records the folded usage (one event per key used) and any expiry warnings that are due.
/// Runs every `policy.api_keys.usage_interval_secs`, and once more at shutdown.
pub async fn record_usage(app: &App) {
    let tallies = app.api_keys.drain_usage();
    if !tallies.is_empty() {
        match app.engine.execute(RecordApiKeyUsage { tallies }).await {
            Ok(outcome) => {
                let n = outcome.reply.unwrap_or(0);
                app.api_keys
                    .usage_events
                    .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "API-key usage not recorded"),
        }
    }
    let due = {
        let now = app.engine.now();
        let policy = &app.engine.policy().api_keys;
        app.engine
            .views()
            .api_keys_expiring(now, policy)
            .next()
            .is_some()
    };
    if due && let Err(error) = app.engine.execute(WarnExpiringApiKeys).await {
        tracing::warn!(%error, "API-key expiry warnings not recorded");
    }
}

/// The task that records usage every interval until `stop` fires, then once more.
pub async fn usage_recorder(
    app: std::sync::Arc<App>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let secs = app.engine.policy().api_keys.usage_interval_secs.max(1);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => record_usage(&app).await,
            _ = &mut stop => break,
        }
    }
    record_usage(&app).await;
}
