//! Login throttling: per account and per client address (OWASP Authentication Cheat Sheet
//! "Login Throttling"; NIST SP 800-63B §5.2.2 "Rate Limiting (Throttling)").
//!
//! ```text
//!   failure counted ──▶ strikes += 1, last_failure_at = t
//!   strikes < free_failures                 ──▶ no wait
//!   strikes = free_failures + k (k ≥ 0)     ──▶ wait min(first · 2^k, max) after last_failure_at
//!   successful login (session or family started) ──▶ account strikes cleared
//!   no failure for STRIKES_FORGET_MS         ──▶ strikes forgotten (dropped from the views)
//! ```
//!
//! What counts:
//! - per account: wrong passwords (`LoginFailed { WrongPassword }`) and wrong MFA codes
//!   (`MfaCodeFailed`), i.e. guesses at one of the account's secrets;
//! - per address: every failed login from it, whatever the account (known, unknown,
//!   disabled, throttled) and every wrong MFA code, so that credential stuffing and password
//!   spraying (few guesses on each of many accounts) slow the address down.
//!
//! Attempts refused by a throttle are never counted again (they are not guesses: nothing was
//! checked), so an attacker cannot push an account's wait beyond `delay_secs_max`, and the
//! wait always ends: an account is never locked for good by someone else's failures. The
//! longest wait is bounded by [`DELAY_SECS_MAX`], well inside [`STRIKES_FORGET_MS`], and the
//! number of free failures by [`FREE_FAILURES_MAX`] (NIST: at most 100 consecutive failures
//! before throttling locks).
//!
//! Registrations are counted per address under their own rule
//! ([`ThrottlePolicy::registration`]): every registration from an address that reaches the
//! writer (`RegistrationAttempted`), whether it created an account or found the name taken,
//! so that one address can neither create accounts nor harvest taken usernames at full
//! speed. Nothing clears these strikes but time: a success is as much a registration as a
//! refusal. A throttled registration is refused with [`Rejection::Throttled`] by the plan,
//! before any argon2 work, and again by the writer; it is not counted. Operator-created
//! accounts carry no address and are never throttled.
//!
//! Every answer is a pure function of the views (folded from recorded events) and `now`.
//! IPv6 clients are counted per /64 (one subscriber's prefix), IPv4-mapped IPv6 as IPv4.
//!
//! What a throttled attempt looks like to the caller:
//! - address throttled: [`Rejection::Throttled`] with `retry_after_secs` (HTTP 429 +
//!   Retry-After), decided from the address alone before any account is looked up, so it
//!   says nothing about which accounts exist. The HTTP adapter calls [`check_address`]
//!   before it spends argon2 time, and the login decision checks again.
//! - account throttled: exactly a wrong password ([`Rejection::InvalidCredentials`], after
//!   the same argon2 work), recorded as `LoginFailed { Throttled }`: a 429 there would tell
//!   an outsider that the username exists (account enumeration). Answers to an MFA challenge and
//!   authenticated MFA changes, whose callers already proved the account exists, get
//!   [`Rejection::Throttled`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{AccountId, Rejection, Timestamp, Views};

/// Strikes are forgotten this long after the last failure.
pub const STRIKES_FORGET_MS: u64 = 24 * 60 * 60 * 1000;
/// The longest wait any policy may set.
pub const DELAY_SECS_MAX: u64 = 60 * 60;
/// The most failures a policy may let through before waits begin (NIST SP 800-63B §5.2.2).
pub const FREE_FAILURES_MAX: u32 = 100;
/// The most per-address records a policy may keep.
pub const ADDRESSES_MAX_LIMIT: usize = 10_000_000;
const _: () = assert!(DELAY_SECS_MAX * 1000 < STRIKES_FORGET_MS);

/// How waits grow for one kind of key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleRule {
    /// Consecutive failures allowed without any wait.
    pub free_failures: u32,
    /// The wait after the first failure beyond the free ones; it doubles with each more.
    pub delay_secs_first: u64,
    /// The longest wait.
    pub delay_secs_max: u64,
}

impl ThrottleRule {
    /// The wait, in milliseconds after the last failure, once `failures` are counted.
    pub fn delay_ms(&self, failures: u32) -> u64 {
        if failures < self.free_failures {
            return 0;
        }
        let doublings = (failures - self.free_failures).min(40);
        let secs = self
            .delay_secs_first
            .saturating_mul(1u64 << doublings)
            .min(self.delay_secs_max);
        secs.saturating_mul(1000)
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        if self.free_failures == 0 || self.free_failures > FREE_FAILURES_MAX {
            return Err(format!(
                "throttle {what}.free_failures must be 1..={FREE_FAILURES_MAX}"
            ));
        }
        if self.delay_secs_first == 0
            || self.delay_secs_first > self.delay_secs_max
            || self.delay_secs_max > DELAY_SECS_MAX
        {
            return Err(format!(
                "throttle {what} delays must satisfy 0 < delay_secs_first <= delay_secs_max <= {DELAY_SECS_MAX}"
            ));
        }
        Ok(())
    }
}

/// The throttling rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottlePolicy {
    /// Waits per account, after wrong passwords and wrong MFA codes. Default: 5 free
    /// failures, then 1 second doubling up to 15 minutes.
    pub account: ThrottleRule,
    /// Waits per client address (IPv6 per /64), after any failed login or wrong MFA code.
    /// Default: 20 free failures, then 1 second doubling up to 5 minutes.
    pub address: ThrottleRule,
    /// Waits per client address (IPv6 per /64) after registration attempts, successful or
    /// refused because the name was taken. Default: 10 free, then 10 seconds doubling up to
    /// an hour; the count is forgotten after a day without registrations from the address.
    pub registration: ThrottleRule,
    /// Per-address records kept at most (login and registration records each); beyond it, the address whose last failure is
    /// oldest is forgotten first (ties broken by address order), so a replay of the log
    /// evicts exactly the same ones.
    pub addresses_max: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            // Five guesses free, then 1 s, 2 s, 4 s … up to 15 minutes.
            account: ThrottleRule {
                free_failures: 5,
                delay_secs_first: 1,
                delay_secs_max: 15 * 60,
            },
            // An office behind one NAT mistypes too: twenty free, then up to 5 minutes.
            address: ThrottleRule {
                free_failures: 20,
                delay_secs_first: 1,
                delay_secs_max: 5 * 60,
            },
            // Ten sign-ups from one address is a family or a classroom; beyond that each
            // waits twice as long as the last, so a script gets about one an hour.
            registration: ThrottleRule {
                free_failures: 10,
                delay_secs_first: 10,
                delay_secs_max: 60 * 60,
            },
            addresses_max: 100_000,
        }
    }
}

impl ThrottlePolicy {
    /// Checks both rules against the bounds in this module, and `addresses_max` within
    /// `1..=`[`ADDRESSES_MAX_LIMIT`]. The error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.account.validate("account")?;
        self.address.validate("address")?;
        self.registration.validate("registration")?;
        if self.addresses_max == 0 || self.addresses_max > ADDRESSES_MAX_LIMIT {
            return Err(format!(
                "throttle addresses_max must be 1..={ADDRESSES_MAX_LIMIT}"
            ));
        }
        Ok(())
    }
}

/// Consecutive counted failures of one account or address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strikes {
    /// Counted failures since the strikes were last cleared or forgotten.
    pub failures: u32,
    /// When the latest counted failure was recorded; waits run from here.
    pub last_failure_at: Timestamp,
}

impl Strikes {
    /// When the views forget these strikes.
    pub fn drop_at(&self) -> Timestamp {
        self.last_failure_at.plus_ms(STRIKES_FORGET_MS)
    }

    /// Milliseconds from `now` until another attempt is allowed under `rule`; 0 if now.
    pub fn wait_ms(&self, rule: &ThrottleRule, now: Timestamp) -> u64 {
        self.last_failure_at
            .plus_ms(rule.delay_ms(self.failures))
            .since(now)
    }
}

/// The key an address is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                for s in segments.iter_mut().skip(4) {
                    *s = 0;
                }
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Milliseconds until `account` may try again; 0 when it may now.
pub fn account_wait_ms(
    views: &Views,
    account: &AccountId,
    now: Timestamp,
    p: &ThrottlePolicy,
) -> u64 {
    views
        .account_strikes(account)
        .map_or(0, |s| s.wait_ms(&p.account, now))
}

/// Milliseconds until `client` may try again; 0 when it may now (or is unknown).
pub fn address_wait_ms(
    views: &Views,
    client: Option<IpAddr>,
    now: Timestamp,
    p: &ThrottlePolicy,
) -> u64 {
    wait_of(
        client.and_then(|ip| views.address_strikes(&ip)),
        &p.address,
        now,
    )
}

/// Milliseconds until `client` may register again; 0 when it may now (or is unknown).
pub fn registration_wait_ms(
    views: &Views,
    client: Option<IpAddr>,
    now: Timestamp,
    p: &ThrottlePolicy,
) -> u64 {
    wait_of(
        client.and_then(|ip| views.registration_strikes(&ip)),
        &p.registration,
        now,
    )
}

/// The wait one address's strikes impose under `rule`; none without strikes.
fn wait_of(strikes: Option<&Strikes>, rule: &ThrottleRule, now: Timestamp) -> u64 {
    strikes.map_or(0, |s| s.wait_ms(rule, now))
}

/// Refuses with [`Rejection::Throttled`] while a wait is due.
fn refuse_while(wait_ms: u64) -> Result<(), Rejection> {
    match wait_ms {
        0 => Ok(()),
        wait => Err(throttled(wait)),
    }
}

/// The registration check run before any argon2 work (by the plan) and by the writer:
/// [`Rejection::Throttled`] (429 + Retry-After) when `client` must wait.
pub fn check_registration(
    views: &Views,
    client: Option<IpAddr>,
    now: Timestamp,
    p: &ThrottlePolicy,
) -> Result<(), Rejection> {
    refuse_while(registration_wait_ms(views, client, now, p))
}

pub(crate) fn throttled(wait_ms: u64) -> Rejection {
    Rejection::Throttled {
        retry_after_secs: wait_ms.div_ceil(1000).max(1),
    }
}

/// The address check the HTTP adapter runs before any argon2 work or account lookup:
/// [`Rejection::Throttled`] (429 + Retry-After) when `client` must wait.
pub fn check_address(
    views: &Views,
    client: Option<IpAddr>,
    now: Timestamp,
    p: &ThrottlePolicy,
) -> Result<(), Rejection> {
    refuse_while(address_wait_ms(views, client, now, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_free_failures_and_cap() {
        let rule = ThrottlePolicy::default().account;
        let waits: Vec<u64> = (0..8).map(|n| rule.delay_ms(n) / 1000).collect();
        assert_eq!(waits, vec![0, 0, 0, 0, 0, 1, 2, 4]);
        assert_eq!(rule.delay_ms(30), 900_000);
        assert_eq!(rule.delay_ms(u32::MAX), 900_000);
    }

    #[test]
    fn waits_end() {
        let rule = ThrottlePolicy::default().account;
        let s = Strikes {
            failures: 7,
            last_failure_at: Timestamp::from_millis(10_000),
        };
        assert_eq!(s.wait_ms(&rule, Timestamp::from_millis(10_000)), 4_000);
        assert_eq!(s.wait_ms(&rule, Timestamp::from_millis(13_500)), 500);
        assert_eq!(s.wait_ms(&rule, Timestamp::from_millis(14_000)), 0);
        assert_eq!(
            throttled(500),
            Rejection::Throttled {
                retry_after_secs: 1
            }
        );
        assert_eq!(
            throttled(4_001),
            Rejection::Throttled {
                retry_after_secs: 5
            }
        );
    }

    #[test]
    fn addresses_are_keyed_by_v4_or_v6_prefix() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(
            address_key(a),
            "2001:db8:1:2::".parse::<IpAddr>().expect("ip")
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            address_key(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn policies_are_bounded() {
        assert_eq!(ThrottlePolicy::default().validate(), Ok(()));
        let mut p = ThrottlePolicy::default();
        p.account.free_failures = 101;
        assert!(p.validate().is_err());
        let mut p = ThrottlePolicy::default();
        p.address.delay_secs_max = DELAY_SECS_MAX + 1;
        assert!(p.validate().is_err());
        let p = ThrottlePolicy {
            addresses_max: 0,
            ..ThrottlePolicy::default()
        };
        assert!(p.validate().is_err());
    }
}
