//! The tunable rules: lifetimes, argon2 cost, password and username limits.
//!
//! Defaults follow the OWASP cheat sheets: argon2id m=19456 KiB, t=2, p=1 (OWASP Password
//! Storage Cheat Sheet minimum); sessions 30 minutes idle and 12 hours absolute (OWASP
//! Session Management Cheat Sheet ranges for a low-risk application).

use serde::{Deserialize, Serialize};

use crate::password::PasswordPolicy;

/// Argon2id cost parameters. Hashes made under other parameters are upgraded on the next
/// successful login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    /// Memory cost (argon2 `m`), in kibibytes.
    pub memory_kib: u32,
    /// Time cost (argon2 `t`): passes over the memory.
    pub iterations: u32,
    /// Degree of parallelism (argon2 `p`): lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's minimum for argon2id.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };
    /// For tests and the simulator only: fast, and far too weak for real passwords.
    pub const INSECURE_FAST: Self = Self {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Session lifetimes, enforced lazily from the caller's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionPolicy {
    /// How long a session may go unused before it dies, in milliseconds. Default 30
    /// minutes.
    pub idle_timeout_ms: u64,
    /// How long a session lives from login however often it is used, in milliseconds.
    /// Default 12 hours.
    pub absolute_lifetime_ms: u64,
    /// Activity is recorded at most this often per session, so that a busy session does not
    /// write an event per request. The idle deadline is therefore exact to within this.
    pub touch_interval_ms: u64,
    /// How recent the caller's authentication must be for a sensitive action (enrolling or
    /// removing TOTP, replacing backup codes, ending another session, signing out
    /// everywhere), in seconds. Default 5 minutes.
    pub reauth_window_secs: u64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout_ms: 30 * 60 * 1000,
            absolute_lifetime_ms: 12 * 60 * 60 * 1000,
            touch_interval_ms: 60 * 1000,
            reauth_window_secs: 5 * 60,
        }
    }
}

impl SessionPolicy {
    /// The touch interval must be well inside the idle timeout, or an active session could
    /// expire between two recorded touches.
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_timeout_ms == 0 || self.absolute_lifetime_ms == 0 {
            return Err("session timeouts must be positive".into());
        }
        if self.reauth_window_secs == 0 {
            return Err("session reauth_window_secs must be positive".into());
        }
        if self.touch_interval_ms.saturating_mul(4) > self.idle_timeout_ms {
            return Err(
                "session touch_interval_ms must be at most a quarter of idle_timeout_ms".into(),
            );
        }
        Ok(())
    }
}

/// Token lifetimes and the claims access tokens carry (RFC 9068, RFC 9700 §4.14).
///
/// Every lifetime is enforced lazily from the caller's time. The bounds are the named
/// constants in [`crate::token`]; [`TokenPolicy::validate`] holds a policy to them, so that
/// the views can drop blocklist entries at fixed, policy-independent times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenPolicy {
    /// The `iss` claim written and required.
    pub issuer: String,
    /// The `aud` claim written and required.
    pub audience: String,
    /// Access-token lifetime, within [`crate::token::ACCESS_TTL_SECS_MIN`]..=
    /// [`crate::token::ACCESS_TTL_SECS_MAX`]. Default 15 minutes.
    pub access_ttl_secs: u64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, at most
    /// [`crate::token::LEEWAY_SECS_MAX`].
    pub leeway_secs: u64,
    /// Lifetime of one refresh token: unused this long, the family dies. Default 7 days.
    pub refresh_ttl_secs: u64,
    /// Absolute lifetime of a refresh family, however often it is rotated. Default 30 days.
    pub family_lifetime_secs: u64,
    /// Seconds after a rotation during which the token just rotated may be presented again
    /// (a lost response) without counting as reuse. 0, the default, turns it off.
    pub reuse_grace_secs: u64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            issuer: "tessera".into(),
            audience: "tessera".into(),
            access_ttl_secs: 15 * 60,
            leeway_secs: 30,
            refresh_ttl_secs: 7 * 24 * 60 * 60,
            family_lifetime_secs: 30 * 24 * 60 * 60,
            reuse_grace_secs: 0,
        }
    }
}

impl TokenPolicy {
    /// Holds the policy to the bounds in [`crate::token`]: issuer and audience not empty,
    /// access lifetime and leeway and grace window within their limits, and
    /// `access_ttl <= refresh_ttl <= family_lifetime`. The error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        use crate::token::{
            ACCESS_TTL_SECS_MAX, ACCESS_TTL_SECS_MIN, LEEWAY_SECS_MAX, REUSE_GRACE_SECS_MAX,
        };
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err("token issuer and audience must not be empty".into());
        }
        if !(ACCESS_TTL_SECS_MIN..=ACCESS_TTL_SECS_MAX).contains(&self.access_ttl_secs) {
            return Err(format!(
                "token access_ttl_secs must be {ACCESS_TTL_SECS_MIN}..={ACCESS_TTL_SECS_MAX}"
            ));
        }
        if self.leeway_secs > LEEWAY_SECS_MAX {
            return Err(format!(
                "token leeway_secs must be at most {LEEWAY_SECS_MAX}"
            ));
        }
        if self.refresh_ttl_secs < self.access_ttl_secs
            || self.family_lifetime_secs < self.refresh_ttl_secs
        {
            return Err(
                "token lifetimes must satisfy access_ttl <= refresh_ttl <= family_lifetime".into(),
            );
        }
        if self.reuse_grace_secs > REUSE_GRACE_SECS_MAX {
            return Err(format!(
                "token reuse_grace_secs must be at most {REUSE_GRACE_SECS_MAX}"
            ));
        }
        Ok(())
    }

    /// The access-token lifetime in milliseconds.
    pub fn access_ttl_ms(&self) -> u64 {
        self.access_ttl_secs.saturating_mul(1000)
    }
}

/// MFA rules (OWASP Multifactor Authentication Cheat Sheet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaPolicy {
    /// The issuer shown by authenticator apps (otpauth:// `issuer`). No `:`.
    pub issuer: String,
    /// How long an MFA challenge can be answered. Default 5 minutes.
    pub challenge_ttl_secs: u64,
    /// Wrong answers a challenge takes before it dies. Default 5.
    pub challenge_attempts_max: u32,
    /// How long a TOTP enrolment waits for its confirming code; after that a new enrolment
    /// may replace it. Default 10 minutes.
    pub enrolment_ttl_secs: u64,
    /// Whether every account must enrol a second factor (OWASP ASVS 6.3.3). An account past
    /// its grace period without one may only enrol, see itself and log out. Default off.
    pub required: bool,
    /// Days after registration during which an account without a second factor is not yet
    /// limited by `required`. Default 0.
    pub required_grace_days: u64,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        Self {
            issuer: "Tessera".into(),
            challenge_ttl_secs: 5 * 60,
            challenge_attempts_max: 5,
            enrolment_ttl_secs: 10 * 60,
            required: false,
            required_grace_days: 0,
        }
    }
}

impl MfaPolicy {
    /// Checks the issuer (1 to 64 bytes, no `:`) and that lifetimes and the attempt limit
    /// are within the bounds in [`crate::mfa`], and the grace period is at most
    /// [`crate::mfa::REQUIRED_GRACE_DAYS_MAX`] days. The error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        use crate::mfa::{
            ATTEMPTS_MAX_LIMIT, CHALLENGE_TTL_SECS_MAX, ENROLMENT_TTL_SECS_MAX,
            REQUIRED_GRACE_DAYS_MAX,
        };
        if self.issuer.trim().is_empty() || self.issuer.contains(':') || self.issuer.len() > 64 {
            return Err("mfa issuer must be 1 to 64 bytes without ':'".into());
        }
        if !(30..=CHALLENGE_TTL_SECS_MAX).contains(&self.challenge_ttl_secs) {
            return Err(format!(
                "mfa challenge_ttl_secs must be 30..={CHALLENGE_TTL_SECS_MAX}"
            ));
        }
        if !(1..=ATTEMPTS_MAX_LIMIT).contains(&self.challenge_attempts_max) {
            return Err(format!(
                "mfa challenge_attempts_max must be 1..={ATTEMPTS_MAX_LIMIT}"
            ));
        }
        if !(60..=ENROLMENT_TTL_SECS_MAX).contains(&self.enrolment_ttl_secs) {
            return Err(format!(
                "mfa enrolment_ttl_secs must be 60..={ENROLMENT_TTL_SECS_MAX}"
            ));
        }
        if self.required_grace_days > REQUIRED_GRACE_DAYS_MAX {
            return Err(format!(
                "mfa required_grace_days must be 0..={REQUIRED_GRACE_DAYS_MAX}"
            ));
        }
        Ok(())
    }
}

/// Every rule a decision consults that an operator may tune.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// The argon2id cost new password hashes are made with.
    pub argon2: Argon2Params,
    /// The rules a new password must meet.
    pub password: PasswordPolicy,
    /// Session lifetimes.
    pub session: SessionPolicy,
    /// Access- and refresh-token lifetimes and claims.
    pub token: TokenPolicy,
    /// MFA challenge and enrolment rules.
    pub mfa: MfaPolicy,
    /// Login throttling per account and per address.
    pub throttle: crate::throttle::ThrottlePolicy,
    /// API-key format, lifetimes, rotation overlap, expiry warnings and usage recording.
    pub api_keys: crate::apikey::ApiKeyPolicy,
    /// The legacy password migration: when the sunset retires a legacy credential, and how
    /// long its reset token lives.
    pub migration: crate::migration::MigrationPolicy,
    /// WebAuthn credentials: the counter policy and the per-account limit.
    pub webauthn: crate::webauthn::WebauthnPolicy,
}

impl Policy {
    /// A policy for tests and the simulator: real rules, cheap hashing.
    pub fn fast_for_tests() -> Self {
        Self {
            argon2: Argon2Params::INSECURE_FAST,
            ..Self::default()
        }
    }

    /// Validates every part, and that argon2 accepts the cost parameters. Run it at start-up:
    /// the error says what is wrong, for the operator.
    pub fn validate(&self) -> Result<(), String> {
        self.session.validate()?;
        self.token.validate()?;
        self.password.validate()?;
        self.mfa.validate()?;
        self.throttle.validate()?;
        self.api_keys.validate()?;
        self.migration.validate()?;
        self.webauthn.validate()?;
        crate::password::params(&self.argon2)
            .map(|_| ())
            .map_err(|e| format!("argon2 parameters: {e}"))
    }
}
