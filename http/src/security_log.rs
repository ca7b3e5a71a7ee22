//! Security events: structured, rate-limited log records and counters.
//!
//! Each event is one `tracing` record at WARN with a stable `security_event` name, the
//! client address, and the account or OAuth client when known. No record ever carries a
//! secret: no token, password or cookie value, and no claim of a token whose signature did
//! not verify (a forged token's `kid` or `jti` is the attacker's text).
//!
//! Bound: per event name, at most [`RECORDS_PER_WINDOW`] records in each window of
//! [`WINDOW_MS`] (by the server's clock); the rest are counted, and the count is written as one
//! `security_events_suppressed` record with the next event of that name after the window
//! ends. So a flood writes at most `RECORDS_PER_WINDOW + 1` lines per name per second, at
//! most 7 × 11 = 77 lines a second in all, whatever its size; every event, written or not, is
//! counted in `/metrics` (`tessera_security_events_total{event=…}`).
//!
//! These records are log-only: none of them is an event in the event log (docs/decisions.md
//! says why).

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tessera_core::AccountId;

/// The most records written per event name per window.
pub const RECORDS_PER_WINDOW: u64 = 10;
/// The window the bound is counted over, in milliseconds.
pub const WINDOW_MS: u64 = 1000;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A bearer token failed verification for a reason other than plain expiry: malformed,
    /// wrong algorithm or type, unknown key, bad signature, wrong issuer or audience.
    TokenForged,
    /// Client authentication failed at an OAuth endpoint (introspection).
    ClientAuthFailed,
    /// An authenticated caller tried to act on another account's resource.
    ForeignResource,
    /// A cookie-authenticated change was refused as cross-site.
    CrossSiteRefused,
    /// A request was answered 429: its address (or account, on an MFA step) must wait.
    Throttled,
    /// An API key was refused: malformed, bad checksum, unknown, revoked, expired, past
    /// its rotation overlap, wrong environment, disallowed address, or sent in a query
    /// string or cookie. The caller sees one 401; the reason is only here.
    ApiKeyRefused,
    /// A secret-scanning alert was refused: unknown key identifier or bad signature.
    LeakAlertRefused,
    /// A WebAuthn assertion was refused at login: it did not verify (another origin or RP
    /// id, a tampered response, a bad signature: a relaying phishing page shows up here),
    /// named an unknown credential, or its counter went backwards (a possible clone).
    WebauthnRefused,
}

impl SecurityEvent {
    /// Every event, in the order the counters are kept and rendered.
    pub const ALL: [SecurityEvent; 8] = [
        Self::TokenForged,
        Self::ClientAuthFailed,
        Self::ForeignResource,
        Self::CrossSiteRefused,
        Self::Throttled,
        Self::ApiKeyRefused,
        Self::LeakAlertRefused,
        Self::WebauthnRefused,
    ];

    /// The stable name, in the `security_event` field and the metric's label.
    pub fn name(self) -> &'static str {
        match self {
            Self::TokenForged => "token_forged",
            Self::ClientAuthFailed => "client_auth_failed",
            Self::ForeignResource => "foreign_resource",
            Self::CrossSiteRefused => "cross_site_refused",
            Self::Throttled => "throttled",
            Self::ApiKeyRefused => "api_key_refused",
            Self::LeakAlertRefused => "leak_alert_refused",
            Self::WebauthnRefused => "webauthn_refused",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A security event and a fixed reason, as an answer carries it to the request handler
/// (which knows the client address). Always `'static`, so that it costs an answer one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityNote {
    /// What happened.
    pub event: SecurityEvent,
    /// Why, in a fixed word.
    pub reason: &'static str,
}

/// One occurrence, with what is known about who caused it. Holds no secret by construction:
/// only addresses, ids and fixed reason names.
#[derive(Clone, Copy, Debug)]
pub struct Occurrence<'a> {
    /// What happened.
    pub event: SecurityEvent,
    /// The client address, as the throttle sees it.
    pub client: IpAddr,
    /// The account acting, when authenticated.
    pub account: Option<AccountId>,
    /// The OAuth client id presented, when it is the configured one (never the secret).
    pub client_id: Option<&'a str>,
    /// A fixed, short reason (a variant name, a route).
    pub reason: &'static str,
}

#[derive(Debug, Default)]
struct Window {
    started_ms: u64,
    written: u64,
    suppressed: u64,
}

#[derive(Debug, Default)]
struct PerEvent {
    total: AtomicU64,
    suppressed_total: AtomicU64,
    window: Mutex<Window>,
}

/// The counters and the rate limiter, one per event name.
#[derive(Debug, Default)]
pub struct SecurityLog {
    events: [PerEvent; SecurityEvent::ALL.len()],
}

impl SecurityLog {
    /// Counts the occurrence and writes it unless its name is over the bound in the window
    /// that `now_ms` falls in. Returns whether a record was written.
    pub fn record(&self, now_ms: u64, o: Occurrence<'_>) -> bool {
        let Some(per) = self.events.get(o.event.index()) else {
            return false;
        };
        per.total.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock only means a panic elsewhere while counting; the counts are
        // still usable.
        let mut w = per.window.lock().unwrap_or_else(|p| p.into_inner());
        if now_ms >= w.started_ms.saturating_add(WINDOW_MS) || now_ms < w.started_ms {
            if w.suppressed > 0 {
                tracing::warn!(
                    security_event = "security_events_suppressed",
                    suppressed_event = o.event.name(),
                    count = w.suppressed,
                    "security event records suppressed over the bound"
                );
            }
            *w = Window {
                started_ms: now_ms,
                written: 0,
                suppressed: 0,
            };
        }
        if w.written >= RECORDS_PER_WINDOW {
            w.suppressed += 1;
            per.suppressed_total.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        w.written += 1;
        drop(w);
        let account = o.account.map(|a| a.to_string());
        tracing::warn!(
            security_event = o.event.name(),
            client = %o.client,
            account = account.as_deref().unwrap_or("-"),
            client_id = o.client_id.unwrap_or("-"),
            reason = o.reason,
            "security event"
        );
        true
    }

    /// How many occurrences of `event` were counted, written or not.
    pub fn total(&self, event: SecurityEvent) -> u64 {
        self.events
            .get(event.index())
            .map_or(0, |p| p.total.load(Ordering::Relaxed))
    }

    /// How many occurrences of `event` were counted but not written (over the bound).
    pub fn suppressed(&self, event: SecurityEvent) -> u64 {
        self.events
            .get(event.index())
            .map_or(0, |p| p.suppressed_total.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = out.0.lock().expect("lock").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn forged(client: IpAddr) -> Occurrence<'static> {
        Occurrence {
            event: SecurityEvent::TokenForged,
            client,
            account: None,
            client_id: None,
            reason: "BadSignature",
        }
    }

    #[test]
    fn a_flood_writes_at_most_the_bound_per_window_and_counts_everything() {
        let log = SecurityLog::default();
        let ip: IpAddr = "203.0.113.9".parse().expect("ip");
        let out = capture(|| {
            for i in 0..10_000u64 {
                // Ten thousand forged tokens within one second.
                log.record(5_000 + i / 20, forged(ip));
            }
            // The next window opens with the count of what was held back.
            log.record(6_000, forged(ip));
        });
        let lines: Vec<&str> = out.lines().collect();
        let written = lines
            .iter()
            .filter(|l| l.contains("security_event=\"token_forged\""))
            .count();
        let summaries: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains("security_events_suppressed"))
            .collect();
        assert_eq!(
            written,
            usize::try_from(RECORDS_PER_WINDOW).expect("small") + 1
        );
        assert_eq!(summaries.len(), 1);
        assert!(
            summaries.iter().all(|l| l.contains("count=9990")),
            "{summaries:?}"
        );
        assert_eq!(lines.len(), 12, "at most the bound plus one summary");
        assert_eq!(log.total(SecurityEvent::TokenForged), 10_001);
        assert_eq!(log.suppressed(SecurityEvent::TokenForged), 9_990);
        assert!(lines.iter().all(|l| l.contains("WARN")));
    }

    #[test]
    fn each_kind_is_written_once_when_it_happens_once_and_names_are_apart() {
        let log = SecurityLog::default();
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        let out = capture(|| {
            for event in SecurityEvent::ALL {
                let o = Occurrence {
                    event,
                    client: ip,
                    account: None,
                    client_id: Some("resource-server"),
                    reason: "test",
                };
                assert!(log.record(1_000, o));
            }
        });
        for event in SecurityEvent::ALL {
            let field = format!("security_event=\"{}\"", event.name());
            assert_eq!(out.matches(&field).count(), 1, "{field} in {out}");
            assert_eq!(log.total(event), 1);
        }
        assert!(out.contains("client=2001:db8::1"));
    }
}
