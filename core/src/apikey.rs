//! API keys: credentials that identify applications, not users.
//!
//! ```text
//! create ──▶ Active ──(rotate: successor created)──▶ Rotated ──(now ≥ retires_at)──▶ dead
//!              │                                        │
//!              ├── revoke (holder, operator, leak) ─────┴──▶ Revoked
//!              └── now ≥ expires_at ──────────────────────────▶ Expired (lazily)
//! ```
//!
//! - A key is `<vendor>_<kind>_<body><checksum>` ([`mod@format`]), shown once. Only its
//!   HMAC-SHA-256 digest under the server's key ([`ApiKeyPepper`], kept in `<data>/keys/`,
//!   outside the log) and a short display prefix are recorded. Keys are high-entropy, so a
//!   keyed fast hash is right and a slow password hash would only cost time; the key makes a
//!   stolen log useless for testing guesses offline.
//! - Authentication ([`authenticate`]) is a read: the format and checksum first (no lookup
//!   for garbage), then one hash-map lookup by digest, then the key's state, environment,
//!   addresses and scopes. Every refusal looks the same to the caller; the reason goes to the
//!   security log and metrics only.
//! - Expiry is required and bounded by the policy; rotation issues a successor with the same
//!   settings and lets the old key work for a bounded overlap. Revocation is immediate.
//! - Usage is not an event per request: the adapter folds counters in memory
//!   ([`UsageTally`]) and records one [`Event::ApiKeyUsed`] per key per interval.
//! - Per-key rate limits are a token bucket ([`RateBucket`]) kept by the adapter; the rule
//!   is here, pure.

pub mod format;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::event::{Event, Pending};
use crate::id::uuid_v7;
use crate::secret::SecretDigest;
use crate::session::{StepUp, check_step_up};
use crate::{AccountId, Decide, Decision, Env, Rejection, Timestamp, Views};

pub use crate::id::ApiKeyId;

/// The longest key name, in bytes.
pub const NAME_BYTES_MAX: usize = 64;
/// The most scopes one key carries.
pub const SCOPES_MAX: usize = 16;
/// The longest scope, in bytes.
pub const SCOPE_BYTES_MAX: usize = 64;
/// The most address ranges one key's allow-list holds.
pub const CIDRS_MAX: usize = 16;
/// The highest per-key rate limit, in requests per minute.
pub const RATE_LIMIT_PER_MINUTE_MAX: u32 = 1_000_000;
/// The most live (not revoked, not expired) keys one account holds.
pub const KEYS_PER_ACCOUNT_MAX: usize = 100;
/// The most addresses a key's usage remembers.
pub const LAST_ADDRESSES_MAX: usize = 5;
/// The longest lifetime a policy may allow, in days.
pub const LIFETIME_DAYS_LIMIT: u64 = 3 * 366;
/// The longest rotation overlap a policy may allow, in seconds (30 days).
pub const OVERLAP_SECS_LIMIT: u64 = 30 * 24 * 60 * 60;
/// The longest a leak report's source or URL is recorded, in bytes.
pub const LEAK_TEXT_BYTES_MAX: usize = 512;

/// Secret keys act for their application; publishable keys only identify it (they may sit in
/// a web page), so they never carry a write scope. Recorded in events: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiKeyKind {
    /// `sk_`: may carry any scope the creator holds.
    Secret,
    /// `pk_`: read scopes only.
    Publishable,
}

/// Live keys act on real data; test keys never work on a live-only route. Recorded in
/// events: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Environment {
    /// Production.
    Live,
    /// Integration testing.
    Test,
}

impl Environment {
    /// `live` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }
}

impl ApiKeyKind {
    /// `secret` or `publishable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Publishable => "publishable",
        }
    }
}

/// Why a key was revoked. Recorded in events: append only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiKeyRevokeReason {
    /// Its holder revoked it (DELETE /v1/api-keys/{id}).
    Holder,
    /// An operator revoked it from the command line (`tessera apikey revoke --prefix`).
    Operator {
        /// The name the operator gave.
        name: String,
    },
    /// A secret-scanning alert reported it leaked.
    Leaked {
        /// Where the alert says it was found (`source`, e.g. `content`, `commit`).
        source: String,
        /// The URL of the finding, if the alert had one.
        url: Option<String>,
    },
}

/// An address range (`203.0.113.0/24`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    /// The network address, host bits zero.
    pub network: IpAddr,
    /// The prefix length: at most 32 for IPv4, 128 for IPv6.
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `addr/len` or a bare address; host bits are cleared.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = len.unwrap_or(max);
        if prefix_len > max {
            return None;
        }
        Some(Self {
            network: mask(addr, prefix_len),
            prefix_len,
        })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix_len) == self.network
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::from((bits & m).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::from((bits & m).to_be_bytes())
        }
    }
}

/// Whether `scope` is well formed: `resource:action`, lower-case letters, digits, `_`, `-`
/// and `.`, at most [`SCOPE_BYTES_MAX`] bytes.
pub fn scope_valid(scope: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
    };
    scope.len() <= SCOPE_BYTES_MAX && scope.split_once(':').is_some_and(|(r, a)| ok(r) && ok(a))
}

/// Whether `scope` allows changes: every action but `read` does.
pub fn scope_writes(scope: &str) -> bool {
    scope.split_once(':').is_none_or(|(_, a)| a != "read")
}

/// The server key API-key digests are made with: HMAC-SHA-256, kept in `<data>/keys/`.
/// Cheap to clone; `Debug` shows only its id; two peppers are equal when their ids are.
#[derive(Clone)]
pub struct ApiKeyPepper {
    id: [u8; 8],
    key: Arc<Zeroizing<[u8; 32]>>,
}

/// The length of the API-key server key, in bytes.
pub const PEPPER_BYTES: usize = 32;

impl ApiKeyPepper {
    /// The pepper with this key.
    pub fn from_key(key: &[u8; PEPPER_BYTES]) -> Self {
        let mut h = Sha256::new();
        h.update(b"tessera-apikey-pepper-id-v1");
        h.update(key);
        let mut id = [0u8; 8];
        id.copy_from_slice(h.finalize().get(..8).unwrap_or(&[0; 8]));
        Self {
            id,
            key: Arc::new(Zeroizing::new(*key)),
        }
    }

    /// The keyed digest of a presented key: what the log and the views hold.
    pub fn digest(&self, presented: &str) -> SecretDigest {
        // HMAC takes keys of any length, so this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.key[..]) else {
            return SecretDigest([0; 32]);
        };
        mac.update(presented.as_bytes());
        SecretDigest(mac.finalize().into_bytes().into())
    }
}

impl PartialEq for ApiKeyPepper {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for ApiKeyPepper {}

impl std::fmt::Debug for ApiKeyPepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ApiKeyPepper({})",
            data_encoding::HEXLOWER.encode(&self.id)
        )
    }
}

/// Counters of one key's use, folded in memory between two usage events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTally {
    /// Requests that presented the key (accepted or not).
    pub requests: u64,
    /// Requests the key authenticated.
    pub accepted: u64,
    /// Requests refused although the key was known (environment, address, scope, state).
    pub refused: u64,
    /// Requests refused by the key's rate limit.
    pub rate_limited: u64,
    /// The first request of the interval.
    pub first_at: Option<Timestamp>,
    /// The last request of the interval.
    pub last_at: Option<Timestamp>,
    /// The most recent distinct addresses, newest last, at most [`LAST_ADDRESSES_MAX`].
    pub addresses: Vec<IpAddr>,
}

/// How one request that presented a known key ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseOutcome {
    /// Authenticated.
    Accepted,
    /// Refused: state, environment, address or scope.
    Refused,
    /// Refused by the rate limit.
    RateLimited,
}

impl UsageTally {
    /// Counts one request at `now` from `client`.
    pub fn record(&mut self, now: Timestamp, outcome: UseOutcome, client: Option<IpAddr>) {
        self.requests = self.requests.saturating_add(1);
        let counter = match outcome {
            UseOutcome::Accepted => &mut self.accepted,
            UseOutcome::Refused => &mut self.refused,
            UseOutcome::RateLimited => &mut self.rate_limited,
        };
        *counter = counter.saturating_add(1);
        self.first_at.get_or_insert(now);
        self.last_at = Some(self.last_at.map_or(now, |l| l.max(now)));
        if let Some(ip) = client {
            remember_address(&mut self.addresses, ip);
        }
    }
}

fn remember_address(list: &mut Vec<IpAddr>, ip: IpAddr) {
    if list.last() == Some(&ip) {
        return;
    }
    list.retain(|a| *a != ip);
    list.push(ip);
    if list.len() > LAST_ADDRESSES_MAX {
        list.remove(0);
    }
}

/// A key's usage as the views fold it from [`Event::ApiKeyUsed`]: exact to the interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyUsage {
    /// Requests that presented the key.
    pub requests: u64,
    /// Requests it authenticated.
    pub accepted: u64,
    /// Requests refused although the key was known.
    pub refused: u64,
    /// Requests refused by its rate limit.
    pub rate_limited: u64,
    /// The first recorded use.
    pub first_used_at: Option<Timestamp>,
    /// The last recorded use.
    pub last_used_at: Option<Timestamp>,
    /// The most recent distinct addresses, newest last.
    pub last_addresses: Vec<IpAddr>,
}

impl ApiKeyUsage {
    pub(crate) fn fold(&mut self, t: &UsageTally) {
        self.requests = self.requests.saturating_add(t.requests);
        self.accepted = self.accepted.saturating_add(t.accepted);
        self.refused = self.refused.saturating_add(t.refused);
        self.rate_limited = self.rate_limited.saturating_add(t.rate_limited);
        if self.first_used_at.is_none() {
            self.first_used_at = t.first_at;
        }
        if t.last_at > self.last_used_at {
            self.last_used_at = t.last_at;
        }
        for ip in &t.addresses {
            remember_address(&mut self.last_addresses, *ip);
        }
    }
}

/// A per-key token bucket: `per_minute` requests a minute, in bursts of at most that many.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateBucket {
    tokens: f64,
    at: Timestamp,
}

impl RateBucket {
    /// A full bucket at `now`.
    pub fn full(per_minute: u32, now: Timestamp) -> Self {
        Self {
            tokens: f64::from(per_minute),
            at: now,
        }
    }

    /// Takes one request at `now`, or says how many whole seconds (at least 1) until one is
    /// allowed.
    pub fn take(&mut self, per_minute: u32, now: Timestamp) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let per_ms = capacity / 60_000.0;
        // Precision: milliseconds since the last take, far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let elapsed = now.since(self.at) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(capacity);
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = (1.0 - self.tokens) / per_ms;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let secs = (wait_ms / 1000.0).ceil() as u64;
        Err(secs.max(1))
    }
}

/// An API key as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    /// The key's id.
    pub id: ApiKeyId,
    /// The account that created it.
    pub account: AccountId,
    /// The application it identifies, as named by its creator.
    pub name: String,
    /// Secret or publishable.
    pub kind: ApiKeyKind,
    /// Live or test.
    pub environment: Environment,
    /// What it may do.
    pub scopes: Vec<String>,
    /// Where it may be used from; empty means anywhere.
    pub allowed_cidrs: Vec<Cidr>,
    /// Its rate limit, in requests per minute.
    pub rate_limit_per_minute: Option<u32>,
    /// The keyed digest of the key.
    pub digest: SecretDigest,
    /// The display prefix (vendor, kind, first body characters).
    pub prefix: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its absolute deadline.
    pub expires_at: Timestamp,
    /// The key it replaced, if it was issued by a rotation.
    pub rotated_from: Option<ApiKeyId>,
    /// Its successor, once rotated.
    pub rotated_to: Option<ApiKeyId>,
    /// When a rotated key stops working: the end of the overlap.
    pub retires_at: Option<Timestamp>,
    /// When it was revoked, and why.
    pub revoked: Option<(Timestamp, ApiKeyRevokeReason)>,
    /// Whether the expiry warning was recorded.
    pub expiry_warned: bool,
    /// Its usage, exact to the usage interval.
    pub usage: ApiKeyUsage,
}

/// A key's state at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Accepted, and not rotated.
    Active,
    /// Rotated, still accepted until the overlap ends.
    Overlap,
    /// Rotated, and the overlap has ended.
    Retired,
    /// Revoked.
    Revoked,
    /// Past its deadline.
    Expired,
}

impl KeyState {
    /// The word the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Overlap => "rotating",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// Whether a key in this state authenticates.
    pub fn accepted(self) -> bool {
        matches!(self, Self::Active | Self::Overlap)
    }
}

impl ApiKeyView {
    /// When the key stops being accepted if nothing else happens: its expiry, or the end of
    /// its rotation overlap.
    pub fn deadline(&self) -> Timestamp {
        self.retires_at
            .map_or(self.expires_at, |r| r.min(self.expires_at))
    }

    /// The key's state at `now`.
    pub fn state(&self, now: Timestamp) -> KeyState {
        if self.revoked.is_some() {
            KeyState::Revoked
        } else if now >= self.expires_at {
            KeyState::Expired
        } else if self.retires_at.is_some_and(|r| now >= r) {
            KeyState::Retired
        } else if self.rotated_to.is_some() {
            KeyState::Overlap
        } else {
            KeyState::Active
        }
    }

    /// Whether the expiry warning is due at `now`: active, not yet warned, and within the
    /// policy's warning window of its expiry.
    pub fn expiry_warning_due(&self, now: Timestamp, policy: &ApiKeyPolicy) -> bool {
        self.state(now) == KeyState::Active
            && !self.expiry_warned
            && self.expires_at.since(now) <= policy.expiry_warning_days.saturating_mul(DAY_MS)
    }
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// API-key rules an operator may tune (`[policy.api_keys]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeyPolicy {
    /// The vendor tag every key starts with, so scanners can attribute it. Default `tsr`.
    pub vendor: String,
    /// The longest lifetime a key may be given, in days. Default 365.
    pub lifetime_days_max: u64,
    /// The rotation overlap when the caller names none, in seconds. Default 1 hour.
    pub overlap_secs_default: u64,
    /// The longest rotation overlap a caller may choose, in seconds. Default 7 days.
    pub overlap_secs_max: u64,
    /// How many days before its expiry a key is flagged (list, metric, event). Default 14.
    pub expiry_warning_days: u64,
    /// How often usage counters are recorded, one event per key used, in seconds. Default 60.
    pub usage_interval_secs: u64,
}

impl Default for ApiKeyPolicy {
    fn default() -> Self {
        Self {
            vendor: "tsr".into(),
            lifetime_days_max: 365,
            overlap_secs_default: 60 * 60,
            overlap_secs_max: 7 * 24 * 60 * 60,
            expiry_warning_days: 14,
            usage_interval_secs: 60,
        }
    }
}

impl ApiKeyPolicy {
    /// Checks the vendor tag and the bounds. The error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !format::vendor_valid(&self.vendor) {
            return Err("api_keys vendor must be 2 to 8 lower-case letters or digits".into());
        }
        if !(1..=LIFETIME_DAYS_LIMIT).contains(&self.lifetime_days_max) {
            return Err(format!(
                "api_keys lifetime_days_max must be 1..={LIFETIME_DAYS_LIMIT}"
            ));
        }
        if self.overlap_secs_max > OVERLAP_SECS_LIMIT
            || self.overlap_secs_default > self.overlap_secs_max
        {
            return Err(format!(
                "api_keys overlap_secs_default <= overlap_secs_max <= {OVERLAP_SECS_LIMIT}"
            ));
        }
        if self.expiry_warning_days > self.lifetime_days_max {
            return Err("api_keys expiry_warning_days must be at most lifetime_days_max".into());
        }
        if !(1..=3600).contains(&self.usage_interval_secs) {
            return Err("api_keys usage_interval_secs must be 1..=3600".into());
        }
        Ok(())
    }

    fn lifetime_ms_max(&self) -> u64 {
        self.lifetime_days_max.saturating_mul(DAY_MS)
    }
}

/// What a caller asks for when creating a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeySpec {
    /// The application's name.
    pub name: String,
    /// Secret or publishable.
    pub kind: ApiKeyKind,
    /// Live or test.
    pub environment: Environment,
    /// Scopes: a subset of the creator's.
    pub scopes: Vec<String>,
    /// Address allow-list; empty means anywhere.
    pub allowed_cidrs: Vec<Cidr>,
    /// Requests per minute, if limited.
    pub rate_limit_per_minute: Option<u32>,
    /// Lifetime in seconds: required, at most the policy's maximum.
    pub expires_in_secs: u64,
}

/// The scopes a creator holds: `None` for a first-party login (a session, or a token without
/// a scope), which holds every scope.
pub type CreatorScopes = Option<Vec<String>>;

fn invalid(field: &'static str, why: impl Into<String>) -> Rejection {
    Rejection::ApiKeyRequestInvalid {
        field,
        why: why.into(),
    }
}

/// Checks a creation request against the rules; the first problem found is named.
pub fn check_spec(
    spec: &ApiKeySpec,
    creator: &CreatorScopes,
    policy: &ApiKeyPolicy,
) -> Result<(), Rejection> {
    let name = spec.name.trim();
    if name.is_empty() || name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(invalid(
            "/name",
            format!("1 to {NAME_BYTES_MAX} bytes, no control characters"),
        ));
    }
    if spec.scopes.len() > SCOPES_MAX {
        return Err(invalid("/scopes", format!("at most {SCOPES_MAX} scopes")));
    }
    if let Some(bad) = spec.scopes.iter().find(|s| !scope_valid(s)) {
        return Err(invalid(
            "/scopes",
            format!("{bad:?} is not resource:action"),
        ));
    }
    if spec.kind == ApiKeyKind::Publishable && spec.scopes.iter().any(|s| scope_writes(s)) {
        return Err(invalid(
            "/scopes",
            "a publishable key carries read scopes only",
        ));
    }
    if let Some(held) = creator
        && let Some(extra) = spec.scopes.iter().find(|s| !held.contains(s))
    {
        return Err(invalid(
            "/scopes",
            format!("{extra:?} is not one of the caller's scopes"),
        ));
    }
    if spec.allowed_cidrs.len() > CIDRS_MAX {
        return Err(invalid(
            "/allowed_cidrs",
            format!("at most {CIDRS_MAX} ranges"),
        ));
    }
    if spec
        .rate_limit_per_minute
        .is_some_and(|r| !(1..=RATE_LIMIT_PER_MINUTE_MAX).contains(&r))
    {
        return Err(invalid(
            "/rate_limit",
            format!("1..={RATE_LIMIT_PER_MINUTE_MAX} requests per minute"),
        ));
    }
    let max = policy.lifetime_days_max.saturating_mul(24 * 60 * 60);
    if !(60..=max).contains(&spec.expires_in_secs) {
        return Err(invalid("/expires_in", format!("60..={max} seconds")));
    }
    Ok(())
}

/// A key just issued: shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyIssued {
    /// The key's id.
    pub id: ApiKeyId,
    /// The key itself: in the reply and nowhere else.
    pub key: Zeroizing<String>,
    /// Its display prefix.
    pub prefix: String,
    /// Its deadline.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for ApiKeyIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyIssued")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Draws a key for `spec` and the event recording it.
fn issue(
    account: AccountId,
    spec: &ApiKeySpec,
    pepper: &ApiKeyPepper,
    rotated_from: Option<ApiKeyId>,
    env: &mut Env<'_>,
) -> (Pending, ApiKeyIssued) {
    let id = ApiKeyId(uuid_v7(env.now, env.random_bytes()));
    let policy = env.policy;
    let key = format::generate(&policy.api_keys.vendor, spec.kind, spec.environment, || {
        env.random_bytes()
    });
    let prefix = format::parse(&policy.api_keys.vendor, &key)
        .map(|p| p.display_prefix.to_owned())
        .unwrap_or_default();
    let expires_at = env.now.plus_ms(spec.expires_in_secs.saturating_mul(1000));
    let event = Event::ApiKeyCreated {
        key: id,
        account,
        name: spec.name.trim().to_owned(),
        kind: spec.kind,
        environment: spec.environment,
        scopes: spec.scopes.clone(),
        allowed_cidrs: spec.allowed_cidrs.clone(),
        rate_limit_per_minute: spec.rate_limit_per_minute,
        digest: pepper.digest(&key),
        prefix: prefix.clone(),
        expires_at,
        rotated_from,
    };
    (
        event.into(),
        ApiKeyIssued {
            id,
            key,
            prefix,
            expires_at,
        },
    )
}

/// Create a key for an application the caller names. A sensitive action: step-up required.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateApiKey {
    /// The creator.
    pub account: AccountId,
    /// The scopes the creator holds.
    pub creator_scopes: CreatorScopes,
    /// What to create.
    pub spec: ApiKeySpec,
    /// The server key digests are made with.
    pub pepper: ApiKeyPepper,
    /// A recent authentication ([`check_step_up`]).
    pub step_up: StepUp,
}

impl Decide for CreateApiKey {
    type Reply = ApiKeyIssued;

    fn kind(&self) -> &'static str {
        "create_api_key"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<ApiKeyIssued> {
        if let Err((events, r)) = check_step_up(views, self.account, &self.step_up, false, env) {
            return Decision::refuse(events, r);
        }
        if views.account(&self.account).is_none_or(|a| a.disabled) {
            return Decision::refuse(vec![], Rejection::Unauthenticated);
        }
        if let Err(r) = check_spec(&self.spec, &self.creator_scopes, &env.policy.api_keys) {
            return Decision::refuse(vec![], r);
        }
        let live = views
            .api_keys_of(&self.account)
            .filter(|k| k.state(env.now).accepted())
            .count();
        if live >= KEYS_PER_ACCOUNT_MAX {
            return Decision::refuse(vec![], Rejection::ApiKeyLimitReached);
        }
        let (event, issued) = issue(self.account, &self.spec, &self.pepper, None, env);
        Decision::ok(vec![event], issued)
    }
}

/// Issue a successor with the same settings; the old key works until the overlap ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotateApiKey {
    /// The holder.
    pub account: AccountId,
    /// The key to rotate: one of the holder's active keys.
    pub key: ApiKeyId,
    /// How long the old key keeps working, in seconds; the policy's default when `None`.
    pub overlap_secs: Option<u64>,
    /// The server key digests are made with.
    pub pepper: ApiKeyPepper,
    /// A recent authentication: rotation creates a key.
    pub step_up: StepUp,
}

impl Decide for RotateApiKey {
    type Reply = ApiKeyIssued;

    fn kind(&self) -> &'static str {
        "rotate_api_key"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<ApiKeyIssued> {
        if let Err((events, r)) = check_step_up(views, self.account, &self.step_up, false, env) {
            return Decision::refuse(events, r);
        }
        let policy = &env.policy.api_keys;
        let overlap = self.overlap_secs.unwrap_or(policy.overlap_secs_default);
        if overlap > policy.overlap_secs_max {
            return Decision::refuse(
                vec![],
                invalid(
                    "/overlap_seconds",
                    format!("at most {} seconds", policy.overlap_secs_max),
                ),
            );
        }
        let Some(old) = views
            .api_key(&self.key)
            .filter(|k| k.account == self.account)
        else {
            return Decision::refuse(vec![], Rejection::ApiKeyNotFound);
        };
        if old.state(env.now) != KeyState::Active {
            return Decision::refuse(vec![], Rejection::ApiKeyNotActive);
        }
        let lifetime_ms = old
            .expires_at
            .since(old.created_at)
            .clamp(60_000, policy.lifetime_ms_max());
        let spec = ApiKeySpec {
            name: old.name.clone(),
            kind: old.kind,
            environment: old.environment,
            scopes: old.scopes.clone(),
            allowed_cidrs: old.allowed_cidrs.clone(),
            rate_limit_per_minute: old.rate_limit_per_minute,
            expires_in_secs: lifetime_ms / 1000,
        };
        let retires_at = env
            .now
            .plus_ms(overlap.saturating_mul(1000))
            .min(old.expires_at);
        let (created, issued) = issue(self.account, &spec, &self.pepper, Some(old.id), env);
        let rotated = Event::ApiKeyRotated {
            key: old.id,
            successor: issued.id,
            retires_at,
        };
        Decision::ok(vec![created, rotated.into()], issued)
    }
}

/// The holder revokes one of their keys, at once. Revoking a revoked or dead key succeeds
/// and records nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeApiKey {
    /// The holder.
    pub account: AccountId,
    /// One of the holder's keys; anyone else's is answered as not found.
    pub key: ApiKeyId,
}

impl Decide for RevokeApiKey {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "revoke_api_key"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        match views
            .api_key(&self.key)
            .filter(|k| k.account == self.account)
        {
            None => Decision::refuse(vec![], Rejection::ApiKeyNotFound),
            Some(k) if !k.state(env.now).accepted() => Decision::ok(vec![], ()),
            Some(k) => Decision::ok(vec![revoked(k.id, ApiKeyRevokeReason::Holder)], ()),
        }
    }
}

fn revoked(key: ApiKeyId, reason: ApiKeyRevokeReason) -> Pending {
    Event::ApiKeyRevoked { key, reason }.into()
}

/// What an operator's revocation by prefix did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedByPrefix {
    /// The key revoked.
    pub key: ApiKeyId,
    /// Its display prefix.
    pub prefix: String,
    /// The account that created it.
    pub account: AccountId,
    /// Whether it was already revoked or dead (nothing recorded then).
    pub already_inactive: bool,
}

/// An operator who holds only what a scanner found revokes it: the whole key, or its
/// display prefix (at least the kind and [`format::DISPLAY_BODY_CHARS`] characters), or any
/// longer beginning of the key. More than one match is refused, naming none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeApiKeyByPrefix {
    /// What the operator holds: a key, or the beginning of one.
    pub presented: PresentedPrefix,
    /// The operator's name, recorded.
    pub operator: String,
}

/// What an operator presented, reduced to what may be logged: the digest of a whole key,
/// or a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresentedPrefix {
    /// A whole, well-formed key: its digest.
    Key(SecretDigest),
    /// The beginning of a key, at most the display prefix long (longer text was cut there).
    Prefix(String),
}

impl PresentedPrefix {
    /// Reads what an operator typed: a whole key becomes its digest, anything else is cut to
    /// the display prefix's length and must be at least that long.
    pub fn read(text: &str, pepper: &ApiKeyPepper, vendor: &str) -> Result<Self, Rejection> {
        let text = text.trim();
        if format::parse(vendor, text).is_ok() {
            return Ok(Self::Key(pepper.digest(text)));
        }
        let kind_len = ["sk_live_", "sk_test_", "pk_"]
            .iter()
            .find(|k| {
                text.get(vendor.len() + 1..)
                    .is_some_and(|r| r.starts_with(*k))
            })
            .map(|k| k.len())
            .ok_or_else(|| invalid("/prefix", format!("not a {vendor}_ key prefix")))?;
        let display_len = vendor.len() + 1 + kind_len + format::DISPLAY_BODY_CHARS;
        if !text.starts_with(vendor) || text.len() < display_len {
            return Err(invalid(
                "/prefix",
                format!("give the whole key or at least its first {display_len} characters"),
            ));
        }
        let prefix = text.get(..display_len).unwrap_or(text);
        Ok(Self::Prefix(prefix.to_owned()))
    }
}

impl Decide for RevokeApiKeyByPrefix {
    type Reply = RevokedByPrefix;

    fn kind(&self) -> &'static str {
        "revoke_api_key_by_prefix"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<RevokedByPrefix> {
        let found: Vec<&ApiKeyView> = match &self.presented {
            PresentedPrefix::Key(d) => views.api_key_by_digest(d).into_iter().collect(),
            PresentedPrefix::Prefix(p) => views.api_keys_by_prefix(p).collect(),
        };
        let k = match found.as_slice() {
            [k] => *k,
            [] => return Decision::refuse(vec![], Rejection::ApiKeyNotFound),
            _ => return Decision::refuse(vec![], Rejection::ApiKeyPrefixAmbiguous),
        };
        let already_inactive = !k.state(env.now).accepted() && k.revoked.is_some();
        let events = if k.revoked.is_some() {
            vec![]
        } else {
            vec![revoked(
                k.id,
                ApiKeyRevokeReason::Operator {
                    name: self.operator,
                },
            )]
        };
        Decision::ok(
            events,
            RevokedByPrefix {
                key: k.id,
                prefix: k.prefix.clone(),
                account: k.account,
                already_inactive,
            },
        )
    }
}

/// One token of a secret-scanning alert, reduced to what may be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakReport {
    /// The digest of the token, if it was well formed as one of our keys.
    pub digest: Option<SecretDigest>,
    /// Where it was found (`source`), cut to [`LEAK_TEXT_BYTES_MAX`].
    pub source: String,
    /// The URL of the finding, cut to [`LEAK_TEXT_BYTES_MAX`].
    pub url: Option<String>,
}

/// What a leak alert did to one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeakOutcome {
    /// One of our keys, live until now: revoked.
    Revoked(ApiKeyId),
    /// One of our keys, already revoked or dead.
    AlreadyInactive(ApiKeyId),
    /// Not a key we issued (or one long expired and forgotten).
    Unknown,
}

/// A verified secret-scanning alert: every live key in it is revoked, recording where it
/// leaked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLeakedApiKeys {
    /// The alert's tokens, in order.
    pub reports: Vec<LeakReport>,
}

impl Decide for ReportLeakedApiKeys {
    type Reply = Vec<LeakOutcome>;

    fn kind(&self) -> &'static str {
        "report_leaked_api_keys"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<Vec<LeakOutcome>> {
        let mut done = BTreeSet::new();
        let mut events = Vec::new();
        let mut outcomes = Vec::with_capacity(self.reports.len());
        for r in self.reports {
            let key = r.digest.as_ref().and_then(|d| views.api_key_by_digest(d));
            outcomes.push(match key {
                None => LeakOutcome::Unknown,
                Some(k) if k.revoked.is_some() || done.contains(&k.id) => {
                    LeakOutcome::AlreadyInactive(k.id)
                }
                Some(k) => {
                    done.insert(k.id);
                    events.push(revoked(
                        k.id,
                        ApiKeyRevokeReason::Leaked {
                            source: cut(r.source),
                            url: r.url.map(cut),
                        },
                    ));
                    if k.state(env.now).accepted() {
                        LeakOutcome::Revoked(k.id)
                    } else {
                        LeakOutcome::AlreadyInactive(k.id)
                    }
                }
            });
        }
        Decision::ok(events, outcomes)
    }
}

fn cut(mut text: String) -> String {
    if text.len() > LEAK_TEXT_BYTES_MAX {
        let mut end = LEAK_TEXT_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Records the usage folded since the last interval: one event per key still known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordApiKeyUsage {
    /// The counters, per key.
    pub tallies: Vec<(ApiKeyId, UsageTally)>,
}

impl Decide for RecordApiKeyUsage {
    type Reply = usize;

    fn kind(&self) -> &'static str {
        "record_api_key_usage"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<usize> {
        let events: Vec<Pending> = self
            .tallies
            .into_iter()
            .filter(|(id, t)| {
                t.requests > 0 && views.api_key(id).is_some_and(|k| k.expires_at > env.now)
            })
            .map(|(key, t)| {
                Event::ApiKeyUsed {
                    key,
                    requests: t.requests,
                    accepted: t.accepted,
                    refused: t.refused,
                    rate_limited: t.rate_limited,
                    first_at: t.first_at.unwrap_or(env.now),
                    last_at: t.last_at.unwrap_or(env.now),
                    addresses: t.addresses,
                }
                .into()
            })
            .collect();
        let n = events.len();
        Decision::ok(events, n)
    }
}

/// Records the expiry warning of every active key within the policy's warning window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WarnExpiringApiKeys;

impl Decide for WarnExpiringApiKeys {
    type Reply = usize;

    fn kind(&self) -> &'static str {
        "warn_expiring_api_keys"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<usize> {
        let events: Vec<Pending> = views
            .api_keys_expiring(env.now, &env.policy.api_keys)
            .map(|k| {
                Event::ApiKeyExpiryWarned {
                    key: k.id,
                    expires_at: k.expires_at,
                }
                .into()
            })
            .collect();
        let n = events.len();
        Decision::ok(events, n)
    }
}

/// Why a presented key was refused. The caller always gets the same 401 (or 429 for the rate
/// limit, 403 for a missing scope); this is for the security log and metrics only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Not the shape of our keys (prefix, length, characters, checksum).
    Format(format::FormatError),
    /// Well formed, but no key has this digest.
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Rotated, and its overlap has ended.
    Retired,
    /// Its account is disabled.
    AccountDisabled,
    /// A test key on a live-only route.
    WrongEnvironment,
    /// Presented from an address outside its allow-list.
    AddressNotAllowed,
    /// The route needs a scope the key does not carry.
    ScopeMissing,
}

impl KeyRefusal {
    /// A fixed word for the security log and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Format(f) => f.reason(),
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Retired => "retired",
            Self::AccountDisabled => "account_disabled",
            Self::WrongEnvironment => "wrong_environment",
            Self::AddressNotAllowed => "address_not_allowed",
            Self::ScopeMissing => "scope_missing",
        }
    }
}

/// What a route accepts from a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRoute {
    /// Whether test keys are refused.
    pub live_only: bool,
    /// The scope the key must carry, if any.
    pub scope: Option<&'static str>,
}

/// The key a request presented, found and checked: `Ok` with the key, or the refusal with
/// the key when it was known (its usage counts the refusal).
pub fn authenticate<'v>(
    views: &'v Views,
    presented: &str,
    pepper: &ApiKeyPepper,
    vendor: &str,
    now: Timestamp,
    client: Option<IpAddr>,
    route: KeyRoute,
) -> Result<&'v ApiKeyView, (KeyRefusal, Option<&'v ApiKeyView>)> {
    format::parse(vendor, presented).map_err(|e| (KeyRefusal::Format(e), None))?;
    let digest = pepper.digest(presented);
    let key = views
        .api_key_by_digest(&digest)
        .filter(|k| bool::from(k.digest.0.ct_eq(&digest.0)))
        .ok_or((KeyRefusal::Unknown, None))?;
    let refuse = |r| Err((r, Some(key)));
    match key.state(now) {
        KeyState::Active | KeyState::Overlap => {}
        KeyState::Revoked => return refuse(KeyRefusal::Revoked),
        KeyState::Expired => return refuse(KeyRefusal::Expired),
        KeyState::Retired => return refuse(KeyRefusal::Retired),
    }
    if views.account(&key.account).is_none_or(|a| a.disabled) {
        return refuse(KeyRefusal::AccountDisabled);
    }
    if route.live_only && key.environment != Environment::Live {
        return refuse(KeyRefusal::WrongEnvironment);
    }
    if !key.allowed_cidrs.is_empty()
        && !client.is_some_and(|ip| key.allowed_cidrs.iter().any(|c| c.contains(ip)))
    {
        return refuse(KeyRefusal::AddressNotAllowed);
    }
    if let Some(scope) = route.scope
        && !key.scopes.iter().any(|s| s == scope)
    {
        return refuse(KeyRefusal::ScopeMissing);
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
