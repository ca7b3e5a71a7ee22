//! The legacy password migration: importing accounts from a legacy table, retiring the
//! legacy credentials nobody came back for, and resetting a password with the token the
//! retirement issued.
//!
//! ```text
//!   import ──▶ legacy credential ──login (right password)──▶ argon2id (PasswordRehashed)
//!                   │
//!                   └──sunset (inactive > inactive_days)──▶ retired + reset token (delivered
//!                          by the operator) ──POST /v1/password/reset──▶ argon2id (PasswordReset)
//! ```
//!
//! Nothing here makes a user's password: the import keeps (or wraps) the legacy hash, the
//! sunset issues a token, and only the holder of the token chooses the new password (OWASP
//! Forgot Password Cheat Sheet: single use, short-lived, stored as a digest).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::account::{email_plausible, username_key};
use crate::event::{Event, FamilyRevokeReason, Pending, SessionEndReason};
use crate::id::uuid_v7;
use crate::password::PasswordHash;
use crate::secret::{BearerSecret, SecretDigest, plausible};
use crate::session::ended;
use crate::{AccountId, Decide, Decision, Env, Rejection, Timestamp, Views};

/// The prefix of every password reset token.
pub const RESET_TOKEN_PREFIX: &str = "tsp_";

/// Most accounts one sunset command retires: the operator's command sends several, so that
/// no batch grows without bound.
pub const SUNSET_ACCOUNTS_PER_COMMAND_MAX: usize = 256;

/// When the sunset retires a legacy credential, and how long its reset token lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationPolicy {
    /// A legacy credential unused this many days (since the legacy system's last login, or
    /// the import) is retired by the sunset. Default 90.
    pub inactive_days: u32,
    /// How long a reset token issued by the sunset lives, in seconds. Default 72 hours:
    /// long enough for a mail to be read, short enough that a forgotten one dies.
    pub reset_ttl_secs: u64,
    /// `tessera serve` runs the sunset this often, in seconds, and writes the tokens it
    /// issues under `<data>/reset-tokens/` for the operator. 0, the default, leaves the
    /// sunset to the operator's command.
    pub sunset_every_secs: u64,
}

impl Default for MigrationPolicy {
    fn default() -> Self {
        Self {
            inactive_days: 90,
            reset_ttl_secs: 72 * 60 * 60,
            sunset_every_secs: 0,
        }
    }
}

impl MigrationPolicy {
    /// Both must be positive; a reset token lives at most 30 days.
    pub fn validate(&self) -> Result<(), String> {
        if self.inactive_days == 0 {
            return Err("migration inactive_days must be positive".into());
        }
        if self.reset_ttl_secs == 0 || self.reset_ttl_secs > 30 * 24 * 60 * 60 {
            return Err("migration reset_ttl_secs must be 1 to 2592000 (30 days)".into());
        }
        Ok(())
    }

    /// Legacy credentials last used before this time are due for the sunset at `now`.
    pub fn inactive_before(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_millis(
            now.as_millis()
                .saturating_sub(u64::from(self.inactive_days) * 24 * 60 * 60 * 1000),
        )
    }
}

/// Import one account with its legacy credential. Built by
/// [`crate::usecase::ImportRequest`], which checks the input and wraps an MD5; only the
/// uniqueness check is left to the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportAccount {
    /// As the table had it (trimmed).
    pub username: String,
    /// Optional contact address, loosely checked.
    pub email: Option<String>,
    /// The credential to store (never a bare MD5).
    pub password_hash: PasswordHash,
    /// The legacy system's last login, if the table said.
    pub last_active_at: Option<Timestamp>,
}

impl Decide for ImportAccount {
    type Reply = crate::account::Registered;

    fn kind(&self) -> &'static str {
        "import_account"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<crate::account::Registered> {
        let key = match username_key(&self.username) {
            Ok(key) => key,
            Err(problem) => return Decision::refuse(vec![], Rejection::InvalidUsername(problem)),
        };
        if views.account_by_username(&key).is_some() {
            return Decision::refuse(vec![], Rejection::UsernameTaken);
        }
        if self.email.as_deref().is_some_and(|e| !email_plausible(e)) {
            return Decision::refuse(vec![], Rejection::InvalidEmail);
        }
        let account = AccountId(uuid_v7(env.now, env.random_bytes()));
        let event = Event::AccountImported {
            account,
            username: self.username.clone(),
            email: self.email,
            password_hash: self.password_hash,
            last_active_at: self.last_active_at,
        };
        Decision::ok(
            vec![event.into()],
            crate::account::Registered {
                account,
                username: self.username,
            },
        )
    }
}

/// A reset token issued by the sunset, for the operator to deliver. Shown once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetIssued {
    /// The account.
    pub account: AccountId,
    /// Its username.
    pub username: String,
    /// Its contact address, where the operator's mail goes.
    pub email: Option<String>,
    /// The reset token (redacted in `Debug`).
    pub token: BearerSecret,
    /// The token is refused from this time on.
    pub expires_at: Timestamp,
}

/// The accounts the sunset is due to retire at `now`: on a legacy credential last used
/// before the policy's inactivity limit, and not retired already with a token still alive.
pub fn sunset_due(views: &Views, now: Timestamp, policy: &MigrationPolicy) -> Vec<AccountId> {
    let before = policy.inactive_before(now);
    let mut due: Vec<(Timestamp, AccountId)> = views
        .legacy_accounts()
        .filter(|l| is_due(l, now, before))
        .map(|l| (l.last_active_at, l.account))
        .collect();
    due.sort();
    due.into_iter().map(|(_, a)| a).collect()
}

fn is_due(l: &crate::legacy::LegacyView, now: Timestamp, before: Timestamp) -> bool {
    l.last_active_at < before && l.retired.is_none_or(|r| r.expires_at <= now)
}

/// Retire the legacy credentials of `accounts` (at most
/// [`SUNSET_ACCOUNTS_PER_COMMAND_MAX`]) and issue each a reset token. Accounts no longer
/// due when the writer decides (a login re-hashed the credential meanwhile) are left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetireLegacyCredentials {
    /// The accounts, found by [`sunset_due`].
    pub accounts: Vec<AccountId>,
}

impl Decide for RetireLegacyCredentials {
    type Reply = Vec<ResetIssued>;

    fn kind(&self) -> &'static str {
        "retire_legacy_credentials"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<Vec<ResetIssued>> {
        let policy = env.policy.migration;
        let before = policy.inactive_before(env.now);
        let expires_at = env.now.plus_ms(policy.reset_ttl_secs.saturating_mul(1000));
        let mut events: Vec<Pending> = Vec::new();
        let mut issued = Vec::new();
        for id in self.accounts.iter().take(SUNSET_ACCOUNTS_PER_COMMAND_MAX) {
            let (Some(l), Some(a)) = (views.legacy(id), views.account(id)) else {
                continue;
            };
            if !is_due(l, env.now, before) || events.iter().any(|p| p.stream == id.stream()) {
                continue;
            }
            let (token, reset_digest) = BearerSecret::generate(RESET_TOKEN_PREFIX, env);
            events.push(
                Event::LegacyCredentialRetired {
                    account: *id,
                    reset_digest,
                    reset_expires_at: expires_at,
                }
                .into(),
            );
            issued.push(ResetIssued {
                account: *id,
                username: a.username.clone(),
                email: a.email.clone(),
                token,
                expires_at,
            });
        }
        Decision::ok(events, issued)
    }
}

/// The digest of a presented reset token, or `None` for a string that is not one.
pub fn presented_reset_digest(presented: &str) -> Option<SecretDigest> {
    plausible(presented, RESET_TOKEN_PREFIX).then(|| SecretDigest::of(presented))
}

/// Whether `digest` names a live reset token at `now`, and whose.
pub fn reset_account(views: &Views, digest: &SecretDigest, now: Timestamp) -> Option<AccountId> {
    let l = views.legacy_by_reset(digest)?;
    let r = l.retired?;
    (r.reset_digest == *digest && now < r.expires_at).then_some(l.account)
}

/// Set a new password with a reset token. Built by
/// [`crate::usecase::ResetPasswordRequest`]: the token was found and the new password
/// checked against the policy and hashed before the writer sees it; the writer checks the
/// token again (spent, replaced or expired meanwhile: refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetPassword {
    /// The digest of the presented token.
    pub presented: SecretDigest,
    /// The argon2id hash of the new password.
    pub new_hash: PasswordHash,
    /// Where the request came from (logged by the adapter).
    pub client: Option<IpAddr>,
}

impl Decide for ResetPassword {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "reset_password"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        let Some(account) = reset_account(views, &self.presented, env.now) else {
            return Decision::refuse(vec![], Rejection::ResetTokenInvalid);
        };
        let mut events: Vec<Pending> = vec![
            Event::PasswordReset {
                account,
                password_hash: self.new_hash,
                reset_digest: self.presented,
            }
            .into(),
        ];
        crate::refresh::revoke_all(
            views,
            env.now,
            &account,
            FamilyRevokeReason::PasswordChanged,
            &mut events,
        );
        let live = views.sessions_of(&account).filter(|s| s.is_live(env.now));
        events.extend(live.map(|s| ended(s.id, SessionEndReason::PasswordChanged)));
        Decision::ok(events, ())
    }
}

/// One day of the migration, folded from the log (UTC days since the Unix epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    /// Accounts imported on a legacy credential.
    pub imported: u64,
    /// Legacy credentials replaced by argon2id: re-hashed at a login, changed, or reset.
    pub migrated: u64,
    /// Legacy credentials retired by the sunset (a repeat retirement counts again).
    pub retired: u64,
}

/// The migration's history, folded from the log: what happened each day, and which
/// accounts are still on a legacy credential. Pure: `tessera migration status` and the
/// admin route fold the log through it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Per UTC day (days since the epoch).
    pub days: std::collections::BTreeMap<u64, DayCounts>,
    legacy: std::collections::HashSet<AccountId>,
}

/// Milliseconds in a day.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Progress {
    /// Folds one event recorded at `at`.
    pub fn apply(&mut self, at: Timestamp, event: &Event) {
        let day = at.as_millis() / DAY_MS;
        match event {
            Event::AccountImported { account, .. } => {
                self.legacy.insert(*account);
                self.days.entry(day).or_default().imported += 1;
            }
            Event::PasswordRehashed { account, .. }
            | Event::PasswordChanged { account, .. }
            | Event::PasswordReset { account, .. }
                if self.legacy.contains(account) =>
            {
                self.legacy.remove(account);
                self.days.entry(day).or_default().migrated += 1;
            }
            Event::LegacyCredentialRetired { .. } => {
                self.days.entry(day).or_default().retired += 1;
            }
            _ => {}
        }
    }

    /// How many accounts are still on a legacy credential.
    pub fn legacy_remaining(&self) -> u64 {
        self.legacy.len() as u64
    }

    /// Legacy credentials replaced per day over the `window_days` days up to `now`.
    pub fn recent_rate_per_day(&self, now: Timestamp, window_days: u64) -> f64 {
        let today = now.as_millis() / DAY_MS;
        let from = today.saturating_sub(window_days.saturating_sub(1));
        let migrated: u64 = self.days.range(from..=today).map(|(_, d)| d.migrated).sum();
        migrated as f64 / window_days.max(1) as f64
    }

    /// When, at the recent rate, no account is left on a legacy credential: `None` when
    /// nothing migrated recently (never, at that rate), `now` when none is left.
    pub fn estimate_zero_at(&self, now: Timestamp, window_days: u64) -> Option<Timestamp> {
        let remaining = self.legacy_remaining();
        if remaining == 0 {
            return Some(now);
        }
        let rate = self.recent_rate_per_day(now, window_days);
        if rate <= 0.0 {
            return None;
        }
        let ms = (remaining as f64 / rate * DAY_MS as f64).ceil();
        // Far beyond any date a u64 of milliseconds holds is "never".
        (ms < 1e15).then(|| now.plus_ms(ms as u64))
    }
}

#[cfg(test)]
mod tests {
    use data_encoding::HEXLOWER;
    use md5::{Digest, Md5};

    use super::*;
    use crate::legacy::{Family, Scheme};
    use crate::testkit::{Given, NEW_PASSWORD, PASSWORD};
    use crate::{Command, LoginFailure, Reply};

    fn md5_hex(s: &str) -> String {
        HEXLOWER.encode(&Md5::digest(s.as_bytes()))
    }

    fn bcrypt_of(s: &str, cost: u32) -> String {
        bcrypt::hash_with_salt(s, cost, [7; 16])
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB)
    }

    fn sunset(s: &mut Given) -> Vec<ResetIssued> {
        let accounts = sunset_due(&s.views, s.now, &s.policy.migration);
        match s.run(Command::from(RetireLegacyCredentials { accounts })) {
            Ok(Reply::LegacyRetired(issued)) => issued,
            other => panic!("sunset: {other:?}"),
        }
    }

    #[test]
    fn an_md5_user_logs_in_through_the_wrapper_and_is_rehashed() {
        let mut s = Given::nothing();
        let alice = s.imported("alice", &md5_hex(PASSWORD));
        let stored = s.views.account(&alice).map(|a| a.password_hash.clone());
        assert_eq!(
            stored.as_ref().and_then(Scheme::of),
            Some(Scheme::WrappedMd5)
        );
        assert_eq!(
            s.views.scheme_counts().legacy.get(&Scheme::WrappedMd5),
            Some(&1)
        );
        // The MD5 itself, replayed as a password, fails like any wrong password.
        let replayed = s.login("alice", &md5_hex(PASSWORD));
        s.when(replayed).then_kinds(&["LoginFailed"]);
        let login = s.login("alice", PASSWORD);
        s.when(login)
            .then_kinds(&["PasswordRehashed", "SessionStarted"]);
        let now = s.views.account(&alice).map(|a| a.password_hash.clone());
        assert_eq!(now.as_ref().and_then(Scheme::of), Some(Scheme::Argon2));
        assert!(s.views.legacy(&alice).is_none());
        assert_eq!(s.views.scheme_counts().current, 1);
        // The next login verifies the plain argon2id hash: no second re-hash.
        let again = s.login("alice", PASSWORD);
        s.when(again).then_kinds(&["SessionStarted"]);
        assert_eq!(s.refolded(), s.views);
    }

    #[test]
    fn a_bcrypt_user_is_rehashed_at_login() {
        let mut s = Given::nothing();
        let bob = s.imported("bob", &bcrypt_of(PASSWORD, 4));
        let login = s.login("bob", PASSWORD);
        s.when(login)
            .then_kinds(&["PasswordRehashed", "SessionStarted"]);
        assert!(s.views.legacy(&bob).is_none());
    }

    #[test]
    fn an_imported_argon2id_at_the_policy_parameters_still_leaves_the_legacy_view() {
        let mut s = Given::nothing();
        let current = crate::password::hash(PASSWORD, [5; 16], &s.policy.argon2).expect("hash");
        let ivan = s.imported("ivan", &current.0);
        assert_eq!(
            s.views.scheme_counts().legacy.get(&Scheme::Argon2),
            Some(&1)
        );
        let login = s.login("ivan", PASSWORD);
        s.when(login)
            .then_kinds(&["PasswordRehashed", "SessionStarted"]);
        assert!(s.views.legacy(&ivan).is_none());
        assert_eq!(s.views.scheme_counts().current, 1);
    }

    #[test]
    fn a_password_change_between_check_and_decision_wins_over_the_rehash() {
        let mut s = Given::nothing();
        s.imported("carol", &md5_hex(PASSWORD));
        // Checked (and re-hashed) against the legacy credential...
        let login = s.login("carol", PASSWORD);
        // ...but the holder's own password change, checked against the same legacy
        // credential, reaches the writer first.
        let change = s.change_password("carol", PASSWORD, NEW_PASSWORD, None);
        s.when(change).then_kinds(&["PasswordChanged"]);
        s.when(login)
            .then_kinds(&["LoginFailed"])
            .then_rejected(Rejection::InvalidCredentials);
        let a = s.views.account_by_username("carol").map(|a| a.id);
        assert!(a.is_some_and(|a| s.views.legacy(&a).is_none()));
    }

    #[test]
    fn a_failed_rehash_never_fails_the_login() {
        let mut s = Given::nothing();
        s.imported("dave", &md5_hex(PASSWORD));
        let mut check = s.check("dave", PASSWORD);
        assert!(check.rehash.is_some());
        check.rehash = None;
        s.when(Command::from(crate::session::Login {
            check,
            mode: crate::LoginMode::Session,
            client: None,
            supersedes: None,
        }))
        .then_kinds(&["SessionStarted"]);
    }

    #[test]
    fn refusals_do_the_same_work_whatever_the_scheme() {
        let mut s = Given::nothing();
        s.imported("wrapped", &md5_hex(PASSWORD));
        s.imported("blowfish", &bcrypt_of(PASSWORD, 5));
        s.imported("cheapfish", &bcrypt_of(PASSWORD, 4));
        s.registered("current");
        let (_, unknown) = s.measured_check("nobody", "wrong password");
        assert_eq!(unknown.0.get(&Family::Bcrypt), Some(&32), "{unknown:?}");
        for user in ["wrapped", "blowfish", "cheapfish", "current"] {
            let (check, work) = s.measured_check(user, "wrong password");
            assert_eq!(check.outcome, crate::password::Verification::Mismatch);
            assert_eq!(work, unknown, "{user}");
        }
        // Once no bcrypt is left, nobody pays for it.
        for user in ["blowfish", "cheapfish"] {
            let login = s.login(user, PASSWORD);
            s.when(login)
                .then_kinds(&["PasswordRehashed", "SessionStarted"]);
        }
        let (_, after) = s.measured_check("nobody", "wrong password");
        assert_eq!(after.0.get(&Family::Bcrypt), None);
    }

    #[test]
    fn the_sunset_retires_inactive_legacy_credentials_and_a_token_resets_once() {
        let mut s = Given::nothing();
        let erin = s.imported("erin", &md5_hex(PASSWORD));
        assert!(sunset(&mut s).is_empty(), "not inactive yet");
        s.advance_secs(91 * 24 * 60 * 60);
        let issued = sunset(&mut s);
        assert_eq!(issued.len(), 1);
        assert!(!format!("{issued:?}").contains(issued[0].token.expose()));
        assert!(sunset(&mut s).is_empty(), "a live token is not replaced");
        // The right legacy password now fails exactly as a wrong one.
        let login = s.login("erin", PASSWORD);
        let then = s.when(login);
        then.then_rejected(Rejection::InvalidCredentials);
        then.then_events(&[Event::LoginFailed {
            account: erin,
            reason: LoginFailure::WrongPassword,
            client: None,
        }]);
        // The work of the refusal is the unknown user's.
        assert_eq!(
            s.measured_check("erin", PASSWORD).1,
            s.measured_check("nobody", PASSWORD).1
        );
        // A weak new password is refused without spending the token.
        let token = issued[0].token.expose().to_owned();
        assert!(matches!(
            s.reset_password(&token, "password"),
            Err(Rejection::WeakPassword(_))
        ));
        let reset = s.reset_password(&token, NEW_PASSWORD).expect("valid token");
        s.when(reset).then_kinds(&["PasswordReset"]);
        assert!(s.views.legacy(&erin).is_none());
        let login = s.login("erin", NEW_PASSWORD);
        s.when(login).then_kinds(&["SessionStarted"]);
        // Reused.
        assert_eq!(
            s.reset_password(&token, NEW_PASSWORD).err(),
            Some(Rejection::ResetTokenInvalid)
        );
        assert_eq!(s.refolded(), s.views);
    }

    #[test]
    fn expired_forged_and_replaced_reset_tokens_are_refused() {
        let mut s = Given::nothing();
        s.imported("frank", &md5_hex(PASSWORD));
        s.advance_secs(91 * 24 * 60 * 60);
        let first = sunset(&mut s)[0].token.expose().to_owned();
        // Planned while valid, decided after expiry: the writer refuses too.
        let late = s.reset_password(&first, NEW_PASSWORD).expect("valid now");
        s.advance_secs(s.policy.migration.reset_ttl_secs);
        s.when(late)
            .then_no_events()
            .then_rejected(Rejection::ResetTokenInvalid);
        assert_eq!(
            s.reset_password(&first, NEW_PASSWORD).err(),
            Some(Rejection::ResetTokenInvalid)
        );
        // An expired token may be replaced by the next sunset; the old one stays dead.
        let second = sunset(&mut s)[0].token.expose().to_owned();
        assert_ne!(first, second);
        assert_eq!(
            s.reset_password(&first, NEW_PASSWORD).err(),
            Some(Rejection::ResetTokenInvalid)
        );
        // Forged: well formed but never issued, and garbage.
        let forged = format!("{RESET_TOKEN_PREFIX}{}", "A".repeat(43));
        for token in [
            forged.as_str(),
            "tsp_short",
            "",
            &second[..second.len() - 1],
        ] {
            assert_eq!(
                s.reset_password(token, NEW_PASSWORD).err(),
                Some(Rejection::ResetTokenInvalid),
                "{token}"
            );
        }
        assert!(s.reset_password(&second, NEW_PASSWORD).is_ok());
    }

    #[test]
    fn progress_counts_per_day_and_estimates_the_end() {
        let mut s = Given::nothing();
        for name in ["pat1", "pat2", "pat3", "pat4"] {
            s.imported(name, &md5_hex(PASSWORD));
        }
        s.advance_secs(24 * 60 * 60);
        let login = s.login("pat1", PASSWORD);
        s.when(login)
            .then_kinds(&["PasswordRehashed", "SessionStarted"]);
        let mut progress = Progress::default();
        for (at, event) in &s.log {
            progress.apply(*at, event);
        }
        assert_eq!(progress.legacy_remaining(), 3);
        let days: Vec<DayCounts> = progress.days.values().copied().collect();
        assert_eq!(
            days,
            [
                DayCounts {
                    imported: 4,
                    ..DayCounts::default()
                },
                DayCounts {
                    migrated: 1,
                    ..DayCounts::default()
                }
            ]
        );
        // One a day over the last seven days is 1/7 a day: three left take 21 days.
        let end = progress.estimate_zero_at(s.now, 7).expect("some progress");
        assert_eq!(end, s.now.plus_ms(21 * DAY_MS));
        assert_eq!(Progress::default().estimate_zero_at(s.now, 7), Some(s.now));
        let mut stalled = progress.clone();
        stalled.days.clear();
        assert_eq!(stalled.estimate_zero_at(s.now, 7), None);
    }

    #[test]
    fn an_import_never_replaces_an_existing_account() {
        let mut s = Given::nothing();
        s.registered("grace");
        assert_eq!(
            s.import("GRACE", &md5_hex("x")).err(),
            Some(Rejection::UsernameTaken)
        );
        let first = s.import("heidi", &md5_hex("x")).expect("free");
        let second = s.import("heidi", &md5_hex("y")).expect("free when planned");
        s.when(first).then_kinds(&["AccountImported"]);
        s.when(second)
            .then_no_events()
            .then_rejected(Rejection::UsernameTaken);
    }
}
