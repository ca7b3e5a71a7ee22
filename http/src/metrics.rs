//! Prometheus text metrics: requests and latencies per route, plus the engine's counters
//! (events appended, durable syncs, batch sizes) and the hashing pool's.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::App;
use crate::security_log::SecurityEvent;

/// Every route, so that metrics are fixed arrays rather than a locked map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Accounts,
    Login,
    Logout,
    LogoutEverywhere,
    Me,
    Sessions,
    SessionDelete,
    Password,
    PasswordReset,
    LoginMfa,
    MfaTotp,
    MfaConfirm,
    MfaBackupCodes,
    Healthz,
    Metrics,
    Token,
    Revoke,
    Introspect,
    Jwks,
    Metadata,
    PageHome,
    PageLogin,
    PageLoginMfa,
    PageLogout,
    PageAsset,
    PageAuthorize,
    PageDevice,
    DeviceAuthorization,
    Grants,
    GrantDelete,
    ApiKeys,
    ApiKeyWhoami,
    ApiKeyLeaked,
    ApiKeyRotate,
    ApiKeyItem,
    TokenVerify,
    PageExternalLogin,
    PageExternalCallback,
    Identities,
    IdentityItem,
    WebauthnRegisterStart,
    WebauthnRegisterFinish,
    WebauthnCredentials,
    WebauthnCredentialItem,
    LoginWebauthnStart,
    LoginWebauthnFinish,
    PageScript,
    PageLoginPasskey,
    PagePasskeys,
    Other,
}

impl Route {
    pub const ALL: [Route; 50] = [
        Self::Accounts,
        Self::Login,
        Self::Logout,
        Self::LogoutEverywhere,
        Self::Me,
        Self::Sessions,
        Self::SessionDelete,
        Self::Password,
        Self::PasswordReset,
        Self::LoginMfa,
        Self::MfaTotp,
        Self::MfaConfirm,
        Self::MfaBackupCodes,
        Self::Healthz,
        Self::Metrics,
        Self::Token,
        Self::Revoke,
        Self::Introspect,
        Self::Jwks,
        Self::Metadata,
        Self::PageHome,
        Self::PageLogin,
        Self::PageLoginMfa,
        Self::PageLogout,
        Self::PageAsset,
        Self::PageAuthorize,
        Self::PageDevice,
        Self::DeviceAuthorization,
        Self::Grants,
        Self::GrantDelete,
        Self::ApiKeys,
        Self::ApiKeyWhoami,
        Self::ApiKeyLeaked,
        Self::ApiKeyRotate,
        Self::ApiKeyItem,
        Self::TokenVerify,
        Self::PageExternalLogin,
        Self::PageExternalCallback,
        Self::Identities,
        Self::IdentityItem,
        Self::WebauthnRegisterStart,
        Self::WebauthnRegisterFinish,
        Self::WebauthnCredentials,
        Self::WebauthnCredentialItem,
        Self::LoginWebauthnStart,
        Self::LoginWebauthnFinish,
        Self::PageScript,
        Self::PageLoginPasskey,
        Self::PagePasskeys,
        Self::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::LogoutEverywhere => "logout_everywhere",
            Self::Me => "me",
            Self::Sessions => "sessions",
            Self::SessionDelete => "session_delete",
            Self::Password => "password",
            Self::PasswordReset => "password_reset",
            Self::LoginMfa => "login_mfa",
            Self::MfaTotp => "mfa_totp",
            Self::MfaConfirm => "mfa_confirm",
            Self::MfaBackupCodes => "mfa_backup_codes",
            Self::Healthz => "healthz",
            Self::Metrics => "metrics",
            Self::Token => "oauth_token",
            Self::Revoke => "oauth_revoke",
            Self::Introspect => "oauth_introspect",
            Self::Jwks => "jwks",
            Self::Metadata => "metadata",
            Self::PageHome => "page_home",
            Self::PageLogin => "page_login",
            Self::PageLoginMfa => "page_login_mfa",
            Self::PageLogout => "page_logout",
            Self::PageAsset => "page_asset",
            Self::PageAuthorize => "page_authorize",
            Self::PageDevice => "page_device",
            Self::DeviceAuthorization => "oauth_device_authorization",
            Self::Grants => "grants",
            Self::GrantDelete => "grant_delete",
            Self::ApiKeys => "api_keys",
            Self::ApiKeyWhoami => "api_key_whoami",
            Self::ApiKeyLeaked => "api_keys_leaked",
            Self::ApiKeyRotate => "api_key_rotate",
            Self::ApiKeyItem => "api_key_delete",
            Self::TokenVerify => "token_verify",
            Self::PageExternalLogin => "page_external_login",
            Self::PageExternalCallback => "page_external_callback",
            Self::Identities => "identities",
            Self::IdentityItem => "identity_item",
            Self::WebauthnRegisterStart => "webauthn_register_start",
            Self::WebauthnRegisterFinish => "webauthn_register_finish",
            Self::WebauthnCredentials => "webauthn_credentials",
            Self::WebauthnCredentialItem => "webauthn_credential_delete",
            Self::LoginWebauthnStart => "login_webauthn_start",
            Self::LoginWebauthnFinish => "login_webauthn_finish",
            Self::PageScript => "page_script",
            Self::PageLoginPasskey => "page_login_passkey",
            Self::PagePasskeys => "page_passkeys",
            Self::Other => "other",
        }
    }

    /// A browser page, whose errors are pages too.
    pub fn is_page(self) -> bool {
        crate::pages::allowed(self).is_some()
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(Self::ALL.len() - 1)
    }
}

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [
    500, 1_000, 2_500, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    5_000_000,
];
const STATUS_CLASSES: usize = 5;

#[derive(Debug, Default)]
struct RouteStats {
    by_class: [AtomicU64; STATUS_CLASSES],
    buckets: [AtomicU64; BUCKETS_US.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// One [`RouteStats`] per route, in [`Route::ALL`] order. Its own type because the
/// standard library derives `Default` for arrays of at most 32 elements.
#[derive(Debug)]
struct RouteTable([RouteStats; Route::ALL.len()]);

impl Default for RouteTable {
    fn default() -> Self {
        Self(std::array::from_fn(|_| RouteStats::default()))
    }
}

impl std::ops::Deref for RouteTable {
    type Target = [RouteStats];

    fn deref(&self) -> &[RouteStats] {
        &self.0
    }
}

#[derive(Debug, Default)]
pub struct HttpMetrics {
    routes: RouteTable,
    pub connections_refused: AtomicU64,
    pub request_timeouts: AtomicU64,
    pub cross_site_refused: AtomicU64,
    /// Requests answered 429 (address throttled, or an MFA step throttled).
    pub throttled: AtomicU64,
    /// Requests answered on the admin socket (refused peers' included).
    pub admin_requests: AtomicU64,
    /// Admin-socket connections whose peer was not the server's own user.
    pub admin_refused: AtomicU64,
    /// Security events: counted per name, written to the log within a bound.
    pub security: crate::security_log::SecurityLog,
}

impl HttpMetrics {
    pub fn record(&self, route: Route, status: u16, micros: u64) {
        if status == 429 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        let Some(s) = self.routes.get(route.index()) else {
            return;
        };
        let class = usize::from(status / 100).clamp(1, STATUS_CLASSES) - 1;
        if let Some(c) = s.by_class.get(class) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((_, c)) = BUCKETS_US
            .iter()
            .zip(&s.buckets)
            .find(|(b, _)| micros <= **b)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        s.sum_us.fetch_add(micros, Ordering::Relaxed);
        s.count.fetch_add(1, Ordering::Relaxed);
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// The whole exposition, in Prometheus text format 0.0.4.
pub fn render(app: &App) -> String {
    let mut out = String::with_capacity(4096);
    let m = &app.metrics;
    out.push_str("# HELP tessera_http_requests_total Requests answered, by route and status class.\n# TYPE tessera_http_requests_total counter\n");
    for (route, s) in Route::ALL.into_iter().zip(m.routes.iter()) {
        for (i, c) in s.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{route=\"{}\",status=\"{}xx\"}} {}",
                route.name(),
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
    }
    out.push_str("# HELP tessera_http_request_duration_seconds Time from request to answer.\n# TYPE tessera_http_request_duration_seconds histogram\n");
    for (route, s) in Route::ALL.into_iter().zip(m.routes.iter()) {
        let mut cumulative = 0;
        for (b, c) in BUCKETS_US.iter().zip(&s.buckets) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {cumulative}",
                route.name(),
                *b as f64 / 1e6
            );
        }
        let count = s.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "tessera_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {count}",
            route.name()
        );
        let _ = writeln!(
            out,
            "tessera_http_request_duration_seconds_sum{{route=\"{}\"}} {}",
            route.name(),
            s.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "tessera_http_request_duration_seconds_count{{route=\"{}\"}} {count}",
            route.name()
        );
    }
    let e = app.engine.metrics();
    let batches = e.batches.load(Ordering::Relaxed);
    let events = e.events_appended.load(Ordering::Relaxed);
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let counters: [(&str, &str, u64); 15] = [
        (
            "tessera_commands_total",
            "Commands decided by the writer.",
            load(&e.commands),
        ),
        (
            "tessera_events_appended_total",
            "Events appended to the log.",
            events,
        ),
        (
            "tessera_batches_total",
            "Batches appended (one transaction each).",
            batches,
        ),
        (
            "tessera_durable_syncs_total",
            "Durable syncs (sled flush + fdatasync).",
            load(&e.durable_syncs),
        ),
        (
            "tessera_writer_overloaded_total",
            "Commands refused because the writer queue was full.",
            load(&e.overloaded),
        ),
        (
            "tessera_hash_rejected_total",
            "Password checks refused because the argon2 pool was full.",
            load(&app.hashing.rejected),
        ),
        (
            "tessera_hash_completed_total",
            "Password hashes and verifications completed.",
            load(&app.hashing.completed),
        ),
        (
            "tessera_connections_refused_total",
            "Connections closed at accept: too many open.",
            load(&m.connections_refused),
        ),
        (
            "tessera_request_timeouts_total",
            "Requests that ran out of time.",
            load(&m.request_timeouts),
        ),
        (
            "tessera_cross_site_refused_total",
            "Cookie-authenticated changes refused as cross-site.",
            load(&m.cross_site_refused),
        ),
        (
            "tessera_throttled_total",
            "Requests answered 429: the client address (or the account, on an MFA step) must wait.",
            load(&m.throttled),
        ),
        (
            "tessera_failures_recorded_total",
            "Failed logins and wrong MFA codes recorded in the log.",
            load(&e.failures_recorded),
        ),
        (
            "tessera_detections_total",
            "Attacks recognised and recorded: refresh-token reuse.",
            load(&e.detections),
        ),
        (
            "tessera_admin_requests_total",
            "Requests answered on the admin socket.",
            load(&m.admin_requests),
        ),
        (
            "tessera_admin_peers_refused_total",
            "Admin-socket connections refused: the peer was not the server's own user.",
            load(&m.admin_refused),
        ),
    ];
    for (name, help, value) in counters {
        counter(&mut out, name, help, value);
    }
    let _ = writeln!(
        out,
        "# HELP tessera_security_events_total Security events seen, per name (written to the log or not).\n# TYPE tessera_security_events_total counter"
    );
    for event in SecurityEvent::ALL {
        let _ = writeln!(
            out,
            "tessera_security_events_total{{event=\"{}\"}} {}",
            event.name(),
            m.security.total(event)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tessera_security_log_suppressed_total Security events not written: over the per-name bound.\n# TYPE tessera_security_log_suppressed_total counter"
    );
    for event in SecurityEvent::ALL {
        let _ = writeln!(
            out,
            "tessera_security_log_suppressed_total{{event=\"{}\"}} {}",
            event.name(),
            m.security.suppressed(event)
        );
    }
    let mean = if batches == 0 {
        0.0
    } else {
        events as f64 / batches as f64
    };
    let _ = writeln!(
        out,
        "# HELP tessera_batch_events_mean Mean events per appended batch.\n# TYPE tessera_batch_events_mean gauge\ntessera_batch_events_mean {mean}"
    );
    let _ = writeln!(
        out,
        "# HELP tessera_log_head Last durable sequence number.\n# TYPE tessera_log_head gauge\ntessera_log_head {}",
        app.engine.head_sequence()
    );
    let views = app.engine.views();
    let _ = writeln!(
        out,
        "# HELP tessera_live_sessions Sessions in the views.\n# TYPE tessera_live_sessions gauge\ntessera_live_sessions {}",
        views.session_count()
    );
    let _ = writeln!(
        out,
        "# HELP tessera_accounts Accounts in the views.\n# TYPE tessera_accounts gauge\ntessera_accounts {}",
        views.account_count()
    );
    let now = app.engine.now();
    let _ = writeln!(
        out,
        "# HELP tessera_api_keys Keys in the views (until their expiry).\n# TYPE tessera_api_keys gauge\ntessera_api_keys {}\n# HELP tessera_api_keys_expiring Active keys within policy.api_keys.expiry_warning_days of their expiry.\n# TYPE tessera_api_keys_expiring gauge\ntessera_api_keys_expiring {}",
        views.api_key_count(),
        views.api_keys_expiring_count(now, &app.engine.policy().api_keys)
    );
    // The migration's progress: accounts by credential scheme (the same counts as
    // `tessera migration status`).
    let counts = views.scheme_counts();
    drop(views);
    let _ = writeln!(
        out,
        "# HELP tessera_accounts_by_scheme Accounts by password credential scheme.\n# TYPE tessera_accounts_by_scheme gauge\ntessera_accounts_by_scheme{{scheme=\"argon2id\"}} {}",
        counts.current
    );
    // Imported argon2 hashes count as legacy until their first login replaces them.
    for scheme in tessera_core::legacy::Scheme::ALL {
        let _ = writeln!(
            out,
            "tessera_accounts_by_scheme{{scheme=\"legacy-{}\"}} {}",
            scheme.name(),
            counts.legacy.get(&scheme).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tessera_legacy_retired Accounts whose legacy credential the sunset retired.\n# TYPE tessera_legacy_retired gauge\ntessera_legacy_retired {}",
        counts.retired
    );
    let _ = writeln!(
        out,
        "# HELP tessera_api_key_refusals_total API-key requests refused, per reason (the caller sees one 401).\n# TYPE tessera_api_key_refusals_total counter"
    );
    for (reason, n) in app.api_keys.refusals() {
        let _ = writeln!(
            out,
            "tessera_api_key_refusals_total{{reason=\"{reason}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP tessera_api_key_usage_events_total ApiKeyUsed events recorded (one per key per interval).\n# TYPE tessera_api_key_usage_events_total counter\ntessera_api_key_usage_events_total {}",
        app.api_keys.usage_events.load(Ordering::Relaxed)
    );
    out
}
