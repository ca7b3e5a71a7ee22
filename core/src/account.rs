//! Accounts: usernames, and the state the views keep for each account.
//!
//! Usernames are compared case-insensitively. To make that unambiguous (no Unicode case
//! folding corner cases, no homoglyph twins like Cyrillic "а" and Latin "a"), a username is
//! restricted to ASCII letters, digits and `. _ - @ +` (so e-mail addresses fit), 3 to 64
//! characters, and its key is its ASCII lower-case form.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::event::{
    Actor, Event, FamilyRevokeReason, LoginFailure, Pending, RegistrationOutcome, SessionEndReason,
};
use crate::id::uuid_v7;
use crate::password::{PasswordHash, Verification};
use crate::session::{SessionIssued, SessionView, ended, start_session};
use crate::throttle::check_registration;
use crate::{
    AccountId, Decide, Decision, Env, PasswordCheck, Rejection, SessionId, Timestamp, Views,
};

/// The shortest username, in characters (after trimming).
pub const USERNAME_CHARS_MIN: usize = 3;
/// The longest username, in characters (after trimming).
pub const USERNAME_CHARS_MAX: usize = 64;
/// The longest e-mail address, in bytes (the SMTP path limit of RFC 5321 §4.5.3.1.3).
pub const EMAIL_BYTES_MAX: usize = 254;

/// Why a username was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum UsernameProblem {
    /// Shorter than [`USERNAME_CHARS_MIN`] or longer than [`USERNAME_CHARS_MAX`] after
    /// trimming (counted in bytes, which are characters for the ASCII a username allows).
    #[error("username must be {USERNAME_CHARS_MIN} to {USERNAME_CHARS_MAX} characters")]
    Length,
    /// A character other than an ASCII letter, a digit or one of `. _ - @ +`.
    #[error("username may contain only ASCII letters, digits and . _ - @ +")]
    Characters,
}

/// The lower-case form two usernames are compared by.
pub fn username_key(username: &str) -> Result<String, UsernameProblem> {
    let trimmed = username.trim();
    if trimmed.len() < USERNAME_CHARS_MIN || trimmed.len() > USERNAME_CHARS_MAX {
        return Err(UsernameProblem::Length);
    }
    if !trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'))
    {
        return Err(UsernameProblem::Characters);
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// A loose check that an e-mail address is an address: one `@` with something either side.
/// Deliverability is the application's business.
pub fn email_plausible(email: &str) -> bool {
    email.len() <= EMAIL_BYTES_MAX
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

/// An account as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account's id.
    pub id: AccountId,
    /// As the user typed it (trimmed); `username_key` is what uniqueness is checked on.
    pub username: String,
    /// The contact address given at registration, if any.
    pub email: Option<String>,
    /// The argon2id hash of the current password.
    pub password_hash: PasswordHash,
    /// Whether the account is disabled: it cannot log in, and its tokens are refused.
    pub disabled: bool,
    /// When the account was registered.
    pub created_at: Timestamp,
    /// When the holder last changed the password (registration time until then). A rehash
    /// does not change it.
    pub password_changed_at: Timestamp,
}

/// Whether the account has a password to log in with. Every account registered or imported
/// here has one; an account created without one (a passwordless account, recorded with an
/// empty hash) logs in only with its passkeys, so its last one cannot be removed.
pub fn has_password(account: &AccountView) -> bool {
    !account.password_hash.0.is_empty()
}

/// Create an account. Built by [`crate::usecase::RegisterRequest`], which validates the input
/// and hashes the password; only the uniqueness check and the registration throttle are left
/// to the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// As typed (trimmed).
    pub username: String,
    /// Optional contact address, loosely checked.
    pub email: Option<String>,
    /// The argon2id hash of the new password; `None` when the plan already found the name
    /// taken and skipped the hash: the writer then only records the refused attempt.
    pub password_hash: Option<PasswordHash>,
    /// The caller's address: the attempt is counted and throttled under it. `None` for
    /// operator-created accounts, which are neither.
    pub client: Option<IpAddr>,
}

/// A new account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// Its id.
    pub account: AccountId,
    /// Its username, as typed (trimmed).
    pub username: String,
}

impl Decide for Register {
    type Reply = Registered;

    fn kind(&self) -> &'static str {
        "register"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<Registered> {
        let key = match username_key(&self.username) {
            Ok(key) => key,
            Err(problem) => return Decision::refuse(vec![], Rejection::InvalidUsername(problem)),
        };
        // Checked again here: another registration from the address may have been counted
        // since the plan looked. A throttled attempt is not counted (nothing was tried).
        if let Err(r) = check_registration(views, self.client, env.now, &env.policy.throttle) {
            return Decision::refuse(vec![], r);
        }
        let attempted = |outcome: RegistrationOutcome| -> Option<Pending> {
            self.client
                .map(|client| Event::RegistrationAttempted { client, outcome }.into())
        };
        let password_hash = match self.password_hash {
            Some(hash) if views.account_by_username(&key).is_none() => hash,
            // Taken now, or found taken by the plan (no hash was made): the refusal is
            // recorded so that probing names counts toward the address's throttle.
            _ => {
                let events = attempted(RegistrationOutcome::UsernameTaken)
                    .into_iter()
                    .collect();
                return Decision::refuse(events, Rejection::UsernameTaken);
            }
        };
        let account = AccountId(uuid_v7(env.now, env.random_bytes()));
        let username = self.username;
        let event = Event::AccountRegistered {
            account,
            username: username.clone(),
            email: self.email,
            password_hash,
        };
        let events = std::iter::once(event.into())
            .chain(attempted(RegistrationOutcome::Registered))
            .collect();
        Decision::ok(events, Registered { account, username })
    }
}

/// Change the password. Built by [`crate::usecase::ChangePasswordRequest`]: the current
/// password is checked and the new one hashed before the writer sees it. The reply is the
/// fresh session that replaces the one the request came through, if it came through one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangePassword {
    /// The current password, checked against the account's hash.
    pub check: PasswordCheck,
    /// The argon2id hash of the new password.
    pub new_hash: PasswordHash,
    /// The session the request came through: it survives, under a fresh id.
    pub current_session: Option<SessionId>,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
}

impl Decide for ChangePassword {
    type Reply = Option<SessionIssued>;

    fn kind(&self) -> &'static str {
        "change_password"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<Option<SessionIssued>> {
        let account = match admit(
            views,
            &self.check,
            self.client,
            env.now,
            &env.policy.throttle,
        ) {
            Ok(account) => account,
            Err(failure) => return Decision::refuse(vec![failure], Rejection::InvalidCredentials),
        };
        let mut events = vec![
            Event::PasswordChanged {
                account,
                password_hash: self.new_hash,
            }
            .into(),
        ];
        // Every refresh family goes, including the one the request may have come through: a
        // token-mode client logs in again with the new password.
        crate::refresh::revoke_all(
            views,
            env.now,
            &account,
            FamilyRevokeReason::PasswordChanged,
            &mut events,
        );
        let mut carried: Option<&SessionView> = None;
        // Sessions past their deadline are dropped by the views when these events are
        // applied; ending one again would be an event the views refuse.
        for s in views.sessions_of(&account).filter(|s| s.is_live(env.now)) {
            if Some(s.id) == self.current_session {
                carried = Some(s);
                events.push(ended(s.id, SessionEndReason::Rotated));
            } else {
                events.push(ended(s.id, SessionEndReason::PasswordChanged));
            }
        }
        // A privilege change gets a fresh session id (no fixation), but not a longer life.
        let session = carried.map(|s| {
            let (started, issued) = start_session(account, Some(s.expires_at), env);
            events.push(started);
            issued
        });
        Decision::ok(events, session)
    }
}

/// Disable an account: its sessions and families end and its access tokens stop working.
/// Idempotent: disabling a disabled account records nothing and succeeds, so an operator can
/// repeat the command without doubt about its effect (the log keeps one `AccountDisabled`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisableAccount {
    /// The account.
    pub account: AccountId,
    /// Who asked (an operator, by name).
    pub by: Actor,
}

impl Decide for DisableAccount {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "disable_account"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        let account = self.account;
        let Some(a) = views.account(&account) else {
            return Decision::refuse(vec![], Rejection::AccountNotFound);
        };
        if a.disabled {
            return Decision::ok(vec![], ());
        }
        let mut events = vec![
            Event::AccountDisabled {
                account,
                by: self.by,
            }
            .into(),
        ];
        crate::refresh::revoke_all(
            views,
            env.now,
            &account,
            FamilyRevokeReason::AccountDisabled,
            &mut events,
        );
        let live = views.sessions_of(&account).filter(|s| s.is_live(env.now));
        events.extend(live.map(|s| ended(s.id, SessionEndReason::AccountDisabled)));
        Decision::ok(events, ())
    }
}

/// Enable a disabled account again: its holder can log in. Nothing that ended when it was
/// disabled comes back (sessions, families, tokens issued before). Idempotent: enabling an
/// enabled account records nothing and succeeds, like [`DisableAccount`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnableAccount {
    /// The account.
    pub account: AccountId,
    /// Who asked (an operator, by name).
    pub by: Actor,
}

impl Decide for EnableAccount {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "enable_account"
    }

    fn decide(self, views: &Views, _env: &mut Env<'_>) -> Decision<()> {
        let Some(a) = views.account(&self.account) else {
            return Decision::refuse(vec![], Rejection::AccountNotFound);
        };
        if !a.disabled {
            return Decision::ok(vec![], ());
        }
        let event = Event::AccountEnabled {
            account: self.account,
            by: self.by,
        };
        Decision::ok(vec![event.into()], ())
    }
}

/// Whether a checked password still opens the account now: right password, checked
/// against the hash the account has now, account enabled and not throttled. On failure, the
/// event to record.
// The failure is an event to record, built once per refused login: its size is no
// concern, and boxing it would only obscure the flow.
#[allow(clippy::result_large_err)]
pub(crate) fn admit(
    views: &Views,
    check: &PasswordCheck,
    client: Option<IpAddr>,
    now: Timestamp,
    throttle: &crate::throttle::ThrottlePolicy,
) -> Result<AccountId, Pending> {
    let Some(account) = check.account.and_then(|id| views.account(&id)) else {
        return Err(Event::UnknownAccountLoginFailed { client }.into());
    };
    let wait = crate::throttle::account_wait_ms(views, &account.id, now, throttle);
    let reason = if account.disabled {
        LoginFailure::AccountDisabled
    } else if wait > 0 {
        // Refused unchecked, and answered like a wrong password (see `crate::throttle`).
        LoginFailure::Throttled
    } else if check.outcome == Verification::Mismatch
        || check.checked_hash != account.password_hash
        // A retired legacy credential no longer logs in, and says so only as a wrong
        // password would.
        || views.legacy(&account.id).is_some_and(|l| l.retired.is_some())
    {
        LoginFailure::WrongPassword
    } else {
        return Ok(account.id);
    };
    Err(Event::LoginFailed {
        account: account.id,
        reason,
        client,
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_normalise_case_insensitively() {
        assert_eq!(
            username_key("  Alice@Example.com "),
            Ok("alice@example.com".into())
        );
        assert_eq!(username_key("ab"), Err(UsernameProblem::Length));
        assert_eq!(username_key(&"a".repeat(65)), Err(UsernameProblem::Length));
        assert_eq!(username_key("аlice"), Err(UsernameProblem::Characters)); // Cyrillic а
        assert_eq!(username_key("al ice"), Err(UsernameProblem::Characters));
    }

    #[test]
    fn emails_are_loosely_checked() {
        assert!(email_plausible("a@b.example"));
        assert!(!email_plausible("a@b"));
        assert!(!email_plausible("@b.example"));
        assert!(!email_plausible("a b@c.example"));
    }

    mod registration_throttle {
        use std::net::IpAddr;

        use crate::testkit::{Given, PASSWORD};
        use crate::{Rejection, Reply};

        fn ip(s: &str) -> IpAddr {
            s.parse().expect("ip")
        }

        /// Registers `name` from `client` through plan, prepare and decide.
        fn attempt(s: &mut Given, name: &str, client: IpAddr) -> Result<Reply, Rejection> {
            let command = s.register_from(name, client)?;
            s.when(command).reply
        }

        #[test]
        fn a_burst_from_one_address_waits_after_the_free_ones_and_the_wait_ends() {
            let mut s = Given::nothing();
            let rule = s.policy.throttle.registration;
            let a = ip("192.0.2.1");
            for i in 0..rule.free_failures {
                assert!(attempt(&mut s, &format!("user{i}"), a).is_ok(), "free #{i}");
            }
            assert_eq!(
                s.last_kinds(2),
                ["AccountRegistered", "RegistrationAttempted"]
            );
            // The plan refuses: no command, so no argon2 hash was made.
            let refused = s.register_from("one-more", a);
            assert_eq!(
                refused.err(),
                Some(Rejection::Throttled {
                    retry_after_secs: rule.delay_secs_first
                })
            );
            // The writer refuses too (a command planned before the count moved), and
            // records nothing: a refused attempt is not counted.
            let mut fresh = Given::nothing();
            let stale = fresh.register_from("one-more", a).expect("plans");
            let before = s.log.len();
            assert_eq!(
                s.when(stale).reply.err(),
                Some(Rejection::Throttled {
                    retry_after_secs: rule.delay_secs_first
                })
            );
            assert_eq!(s.log.len(), before);
            // Another address is not affected.
            assert!(attempt(&mut s, "elsewhere", ip("198.51.100.9")).is_ok());
            // The wait ends; the next one doubles.
            s.advance_secs(rule.delay_secs_first);
            assert!(attempt(&mut s, "one-more", a).is_ok());
            assert_eq!(
                s.register_from("and-another", a).err(),
                Some(Rejection::Throttled {
                    retry_after_secs: rule.delay_secs_first * 2
                })
            );
            assert_eq!(s.refolded(), s.views);
        }

        #[test]
        fn harvesting_taken_names_counts_without_hashing() {
            let mut s = Given::nothing();
            s.registered("alice");
            let rule = s.policy.throttle.registration;
            let a = ip("2001:db8:1:2::7");
            for _ in 0..rule.free_failures {
                let command = s.register_from("ALICE", a).expect("plans");
                let crate::Command::Account(crate::AccountCommand::Register(r)) = &command else {
                    panic!("not a registration")
                };
                assert_eq!(r.password_hash, None, "a taken name is not hashed");
                let then = s.when(command);
                then.then_rejected(Rejection::UsernameTaken);
                then.then_kinds(&["RegistrationAttempted"]);
            }
            // Same /64, another host: the same count.
            assert!(matches!(
                s.register_from("bob", ip("2001:db8:1:2::8")),
                Err(Rejection::Throttled { .. })
            ));
        }

        #[test]
        fn operators_are_neither_counted_nor_throttled() {
            let mut s = Given::nothing();
            for i in 0..30 {
                let command = s
                    .register(&format!("user{i}"), None, PASSWORD)
                    .expect("valid");
                s.when(command).then_kinds(&["AccountRegistered"]);
            }
            let taken = s.register("user1", None, PASSWORD).expect("valid");
            s.when(taken)
                .then_rejected(Rejection::UsernameTaken)
                .then_no_events();
        }
    }

    mod enable {
        #![allow(clippy::indexing_slicing, reason = "tests")]
        use crate::testkit::{Given, PASSWORD};
        use crate::{Command, Rejection, Reply};

        use super::super::{DisableAccount, EnableAccount};
        use crate::event::{Actor, Event};
        use crate::id::AccountId;

        fn ops() -> Actor {
            Actor::Operator { name: "ops".into() }
        }

        #[test]
        fn enabling_a_disabled_account_lets_it_log_in_again() {
            let mut s = Given::nothing();
            let alice = s.registered("alice");
            s.when(Command::from(DisableAccount {
                account: alice,
                by: ops(),
            }))
            .then_reply(Reply::AccountDisabled);
            let refused = s.login("alice", PASSWORD);
            s.when(refused).then_rejected(Rejection::InvalidCredentials);
            s.when(Command::from(EnableAccount {
                account: alice,
                by: ops(),
            }))
            .then_events(&[Event::AccountEnabled {
                account: alice,
                by: ops(),
            }])
            .then_reply(Reply::AccountEnabled);
            assert!(s.views.account(&alice).is_some_and(|a| !a.disabled));
            s.logged_in("alice");
        }

        #[test]
        fn enabling_an_enabled_account_records_nothing() {
            let mut s = Given::nothing();
            let alice = s.registered("alice");
            s.when(Command::from(EnableAccount {
                account: alice,
                by: ops(),
            }))
            .then_no_events()
            .then_reply(Reply::AccountEnabled);
        }

        #[test]
        fn disabling_twice_records_one_event() {
            let mut s = Given::nothing();
            let alice = s.registered("alice");
            s.when(Command::from(DisableAccount {
                account: alice,
                by: ops(),
            }))
            .then_kinds(&["AccountDisabled"]);
            s.when(Command::from(DisableAccount {
                account: alice,
                by: ops(),
            }))
            .then_no_events()
            .then_reply(Reply::AccountDisabled);
        }

        #[test]
        fn enabling_an_unknown_account_is_refused() {
            let mut s = Given::nothing();
            s.when(Command::from(EnableAccount {
                account: AccountId::from_bytes([7; 16]),
                by: ops(),
            }))
            .then_no_events()
            .then_rejected(Rejection::AccountNotFound);
        }
    }
}
