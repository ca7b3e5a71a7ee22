//! `decide`, one rule per test, given/when/then.

use std::collections::BTreeSet;

use tessera_core::account::UsernameProblem;
use tessera_core::password::{self, Verification};
use tessera_core::policy::Argon2Params;
use tessera_core::secret::{self, SecretDigest};
use tessera_core::session::SESSION_SECRET_PREFIX;
use tessera_core::{
    Actor, Command, Event, LoginFailure, LoginMode, Rejection, Reply, SessionEndReason, SessionId,
};
use tessera_tests::fixtures::{self, account, session};
use tessera_tests::{Given, NEW_PASSWORD, PASSWORD, T0};

mod register {
    use super::*;

    #[test]
    fn records_the_account_and_answers_its_id() {
        let mut s = Given::nothing();
        let command = s
            .register("Alice", Some("alice@example.com"), PASSWORD)
            .expect("valid");
        let Command::Account(tessera_core::AccountCommand::Register(
            tessera_core::account::Register {
                password_hash: Some(password_hash),
                ..
            },
        )) = &command
        else {
            panic!("not a registration")
        };
        let hash = password_hash.clone();
        let then = s.when(command);
        let id = then.account();
        then.then_events(&[Event::AccountRegistered {
            account: id,
            username: "Alice".into(),
            email: Some("alice@example.com".into()),
            password_hash: hash.clone(),
        }])
        .then_reply(Reply::Registered {
            account: id,
            username: "Alice".into(),
        });
        assert_eq!(
            password::verify(PASSWORD, &hash, &s.policy.argon2),
            Verification::Match { stale: false }
        );
        assert_eq!(s.views.account_by_username("alice").map(|a| a.id), Some(id));
    }

    #[test]
    fn two_accounts_get_distinct_ids() {
        let mut s = Given::nothing();
        let a = s.registered("alice");
        let b = s.registered("bob");
        assert_ne!(a, b);
        assert_eq!(s.views.account_count(), 2);
    }

    #[test]
    fn a_username_taken_in_any_case_is_refused() {
        let mut s = Given::events([fixtures::registered(account(1), "Alice", PASSWORD)]);
        for name in ["alice", "ALICE", "aLiCe", "  Alice  "] {
            let command = s.register(name, None, PASSWORD).expect("valid on its own");
            s.when(command)
                .then_no_events()
                .then_rejected(Rejection::UsernameTaken);
        }
        assert_eq!(s.views.account_count(), 1);
    }

    #[test]
    fn invalid_usernames_are_refused_by_prepare_and_by_decide() {
        let mut s = Given::nothing();
        assert_eq!(
            s.register("ab", None, PASSWORD).err(),
            Some(Rejection::InvalidUsername(UsernameProblem::Length))
        );
        // Cyrillic "а": a homoglyph of an ASCII name must not register.
        assert_eq!(
            s.register("аlice", None, PASSWORD).err(),
            Some(Rejection::InvalidUsername(UsernameProblem::Characters))
        );
        // A command built without prepare is checked again by the writer.
        let hash = fixtures::hash(PASSWORD);
        for (name, problem) in [
            ("al ice", UsernameProblem::Characters),
            ("x", UsernameProblem::Length),
        ] {
            let command = Command::from(tessera_core::account::Register {
                username: name.into(),
                email: None,
                password_hash: Some(hash.clone()),
                client: None,
            });
            s.when(command)
                .then_no_events()
                .then_rejected(Rejection::InvalidUsername(problem));
        }
        assert_eq!(s.views.account_count(), 0);
    }

    #[test]
    fn e_mail_must_be_plausible_and_is_optional() {
        let mut s = Given::nothing();
        for bad in ["not-an-address", "a@b", "@example.com", "a b@example.com"] {
            assert_eq!(
                s.register("alice", Some(bad), PASSWORD).err(),
                Some(Rejection::InvalidEmail),
                "{bad}"
            );
        }
        let command = s
            .register("alice", None, PASSWORD)
            .expect("no e-mail is fine");
        let id = s.when(command).account();
        assert_eq!(s.views.account(&id).map(|a| a.email.clone()), Some(None));
    }

    #[test]
    fn weak_passwords_are_refused_before_hashing() {
        let mut s = Given::nothing();
        assert!(
            matches!(s.register("alice", None, "short"), Err(Rejection::WeakPassword(p)) if !p.is_empty())
        );
    }
}

mod login {
    use super::*;

    fn alice() -> Given {
        Given::events([fixtures::registered(account(1), "alice", PASSWORD)])
    }

    #[test]
    fn the_right_password_starts_a_session() {
        let mut s = alice();
        let command = s.login("Alice", PASSWORD);
        let then = s.when(command);
        let issued = then.session();
        let policy = s.policy.session;
        then.then_events(&[Event::SessionStarted {
            session: issued.session,
            account: account(1),
            secret_digest: SecretDigest::of(issued.secret.expose()),
            idle_timeout_ms: policy.idle_timeout_ms,
            expires_at: T0.plus_ms(policy.absolute_lifetime_ms),
        }]);
        assert_eq!(issued.account, account(1));
        assert_eq!(issued.expires_at, T0.plus_ms(policy.absolute_lifetime_ms));
        assert!(secret::plausible(
            issued.secret.expose(),
            SESSION_SECRET_PREFIX
        ));
        let found = s
            .views
            .session_by_digest(&SecretDigest::of(issued.secret.expose()))
            .map(|v| v.id);
        assert_eq!(found, Some(issued.session));
    }

    #[test]
    fn a_completed_login_ends_the_live_session_it_arrived_with() {
        let mut s = alice();
        let first = s.logged_in("alice");
        let check = s.check("alice", PASSWORD);
        let then = s.when(Command::from(tessera_core::session::Login {
            check,
            mode: LoginMode::Session,
            client: None,
            supersedes: Some(first.session),
        }));
        then.then_kinds(&["SessionEnded", "SessionStarted"]);
        assert_eq!(
            then.events.first(),
            Some(&Event::SessionEnded {
                session: first.session,
                reason: tessera_core::SessionEndReason::Superseded,
            })
        );
        assert!(s.views.session(&first.session).is_none());
        // A refused login ends nothing.
        let second = then.session();
        let check = s.check("alice", "Wrong horse 9 battery");
        s.when(Command::from(tessera_core::session::Login {
            check,
            mode: LoginMode::Session,
            client: None,
            supersedes: Some(second.session),
        }))
        .then_kinds(&["LoginFailed"]);
        assert!(s.views.session(&second.session).is_some());
    }

    #[test]
    fn a_wrong_password_is_recorded_and_refused() {
        let mut s = alice();
        let client = Some("192.0.2.7".parse().expect("an address"));
        let check = s.check("alice", "Wrong horse 9 battery");
        let then = s.when(Command::from(tessera_core::session::Login {
            check,
            mode: LoginMode::Session,
            client,
            supersedes: None,
        }));
        then.then_events(&[Event::LoginFailed {
            account: account(1),
            reason: LoginFailure::WrongPassword,
            client,
        }])
        .then_rejected(Rejection::InvalidCredentials);
        assert_eq!(s.views.session_count(), 0);
    }

    #[test]
    fn an_unknown_account_is_recorded_without_the_username_and_refused_alike() {
        let mut s = alice();
        let client = Some("198.51.100.1".parse().expect("an address"));
        let check = s.check("mallory", PASSWORD);
        assert_eq!(check.account, None);
        let then = s.when(Command::from(tessera_core::session::Login {
            check,
            mode: LoginMode::Session,
            client,
            supersedes: None,
        }));
        then.then_events(&[Event::UnknownAccountLoginFailed { client }])
            .then_rejected(Rejection::InvalidCredentials);
    }

    #[test]
    fn a_disabled_account_looks_like_a_wrong_password_to_the_caller() {
        let mut s = alice().and([fixtures::disabled(account(1))]);
        let right = s.login("alice", PASSWORD);
        let disabled = s.when(right);
        disabled
            .then_events(&[Event::LoginFailed {
                account: account(1),
                reason: LoginFailure::AccountDisabled,
                client: None,
            }])
            .then_rejected(Rejection::InvalidCredentials);
        let wrong = s.login("alice", "Wrong horse 9 battery");
        let unknown = s.login("nobody", PASSWORD);
        let replies = [disabled.reply, s.when(wrong).reply, s.when(unknown).reply];
        assert!(
            replies
                .iter()
                .all(|r| *r == Err(Rejection::InvalidCredentials)),
            "{replies:?}"
        );
        assert_eq!(s.views.session_count(), 0);
    }

    #[test]
    fn a_stale_hash_is_rehashed_on_a_successful_login() {
        let weaker = Argon2Params {
            memory_kib: 32,
            ..Argon2Params::INSECURE_FAST
        };
        let old = fixtures::hash_with(PASSWORD, &weaker);
        let mut s = Given::events([Event::AccountRegistered {
            account: account(1),
            username: "alice".into(),
            email: None,
            password_hash: old.clone(),
        }]);
        let check = s.check("alice", PASSWORD);
        assert_eq!(check.outcome, Verification::Match { stale: true });
        let fresh = check.rehash.clone().expect("a stale match is re-hashed");
        let then = s.when(Command::from(tessera_core::session::Login {
            check,
            mode: LoginMode::Session,
            client: None,
            supersedes: None,
        }));
        then.then_kinds(&["PasswordRehashed", "SessionStarted"]);
        assert_eq!(
            then.events[0],
            Event::PasswordRehashed {
                account: account(1),
                password_hash: fresh.clone()
            }
        );
        let stored = s.views.account(&account(1)).expect("alice").clone();
        assert_eq!(stored.password_hash, fresh);
        assert_eq!(
            password::verify(PASSWORD, &stored.password_hash, &s.policy.argon2),
            Verification::Match { stale: false }
        );
        // A re-hash is not a password change.
        assert_eq!(stored.password_changed_at, T0);
    }

    #[test]
    fn a_check_against_a_hash_replaced_since_counts_for_nothing() {
        let mut s = alice();
        let old_check = s.login("alice", PASSWORD);
        // The password changes between the check (off the writer) and the decision.
        s.advance_ms(10);
        s.apply_all([Event::PasswordChanged {
            account: account(1),
            password_hash: fixtures::hash(NEW_PASSWORD),
        }]);
        s.when(old_check)
            .then_events(&[Event::LoginFailed {
                account: account(1),
                reason: LoginFailure::WrongPassword,
                client: None,
            }])
            .then_rejected(Rejection::InvalidCredentials);
        let old_change = s.change_password("alice", PASSWORD, "Yet another 8 password", None);
        s.when(old_change)
            .then_kinds(&["LoginFailed"])
            .then_rejected(Rejection::InvalidCredentials);
        let fresh = s.login("alice", NEW_PASSWORD);
        s.when(fresh).then_kinds(&["SessionStarted"]);
    }

    #[test]
    fn an_over_long_password_never_matches() {
        let mut s = alice();
        let long = format!("{PASSWORD}{}", "x".repeat(2000));
        let check = s.check("alice", &long);
        assert_eq!(check.outcome, Verification::Mismatch);
    }
}

mod sessions {
    use super::*;

    fn alice_in() -> (Given, tessera_core::session::SessionIssued) {
        let mut s = Given::nothing();
        s.registered("alice");
        let issued = s.logged_in("alice");
        (s, issued)
    }

    #[test]
    fn every_login_gets_a_fresh_id_and_secret() {
        let mut s = Given::nothing();
        s.registered("alice");
        let issued: Vec<_> = (0..5).map(|_| s.logged_in("alice")).collect();
        let ids: BTreeSet<SessionId> = issued.iter().map(|i| i.session).collect();
        let secrets: BTreeSet<&str> = issued.iter().map(|i| i.secret.expose()).collect();
        assert_eq!((ids.len(), secrets.len()), (5, 5));
        assert_eq!(s.views.session_count(), 5);
    }

    #[test]
    fn a_secret_the_server_did_not_issue_is_never_adopted() {
        // Session fixation: the attacker plants a well-formed cookie before the victim logs in.
        let planted = format!("{SESSION_SECRET_PREFIX}{}", "A".repeat(43));
        assert!(secret::plausible(&planted, SESSION_SECRET_PREFIX));
        let (mut s, issued) = alice_in();
        assert_ne!(issued.secret.expose(), planted);
        assert!(
            s.views
                .session_by_digest(&SecretDigest::of(&planted))
                .is_none()
        );
        // A session id the server never issued opens nothing and records nothing.
        for unknown in [session(9), neighbour(issued.session)] {
            s.when(Command::from(tessera_core::session::TouchSession {
                session: unknown,
            }))
            .then_no_events()
            .then_rejected(Rejection::Unauthenticated);
            s.when(Command::from(tessera_core::session::Logout {
                session: unknown,
            }))
            .then_no_events()
            .then_rejected(Rejection::Unauthenticated);
        }
    }

    /// A different id that shares all but the last byte with `id`.
    fn neighbour(id: SessionId) -> SessionId {
        let mut bytes = *id.as_bytes();
        bytes[15] ^= 1;
        SessionId::from_bytes(bytes)
    }

    #[test]
    fn touches_are_recorded_only_after_the_touch_interval() {
        let (mut s, issued) = alice_in();
        let interval = s.policy.session.touch_interval_ms;
        let touch = Command::from(tessera_core::session::TouchSession {
            session: issued.session,
        });
        s.advance_ms(interval - 1);
        s.when(touch.clone())
            .then_no_events()
            .then_reply(Reply::SessionTouched);
        s.advance_ms(1);
        s.when(touch.clone())
            .then_events(&[Event::SessionTouched {
                session: issued.session,
            }])
            .then_reply(Reply::SessionTouched);
        assert_eq!(
            s.views.session(&issued.session).map(|v| v.last_seen_at),
            Some(T0.plus_ms(interval))
        );
        s.when(touch)
            .then_no_events()
            .then_reply(Reply::SessionTouched);
    }

    #[test]
    fn the_idle_deadline_is_enforced_lazily() {
        let (mut s, issued) = alice_in();
        let idle = s.policy.session.idle_timeout_ms;
        s.at(T0.plus_ms(idle - 1));
        s.peek(Command::from(tessera_core::session::TouchSession {
            session: issued.session,
        }))
        .then_reply(Reply::SessionTouched);
        s.peek(Command::from(tessera_core::session::Logout {
            session: issued.session,
        }))
        .then_reply(Reply::SessionEnded);
        s.at(T0.plus_ms(idle));
        s.when(Command::from(tessera_core::session::TouchSession {
            session: issued.session,
        }))
        .then_no_events()
        .then_rejected(Rejection::Unauthenticated);
        s.when(Command::from(tessera_core::session::Logout {
            session: issued.session,
        }))
        .then_no_events()
        .then_rejected(Rejection::Unauthenticated);
    }

    #[test]
    fn touching_moves_the_idle_deadline_but_not_the_absolute_one() {
        let (mut s, issued) = alice_in();
        let p = s.policy.session;
        let touch = Command::from(tessera_core::session::TouchSession {
            session: issued.session,
        });
        // Active every two thirds of the idle timeout: idle never strikes...
        let step = p.idle_timeout_ms * 2 / 3;
        let mut t = T0;
        while t.plus_ms(step) < issued.expires_at {
            t = t.plus_ms(step);
            s.at(t);
            s.when(touch.clone()).then_events(&[Event::SessionTouched {
                session: issued.session,
            }]);
        }
        // ...but the absolute lifetime does, however recent the last touch.
        s.at(issued.expires_at);
        assert!(s.now.since(t) < p.idle_timeout_ms);
        s.when(touch)
            .then_no_events()
            .then_rejected(Rejection::Unauthenticated);
    }

    #[test]
    fn logout_ends_the_session_once() {
        let (mut s, issued) = alice_in();
        s.advance_ms(1000);
        s.when(Command::from(tessera_core::session::Logout {
            session: issued.session,
        }))
        .then_events(&[fixtures::ended(issued.session, SessionEndReason::LoggedOut)])
        .then_reply(Reply::SessionEnded);
        s.when(Command::from(tessera_core::session::TouchSession {
            session: issued.session,
        }))
        .then_rejected(Rejection::Unauthenticated);
        s.when(Command::from(tessera_core::session::Logout {
            session: issued.session,
        }))
        .then_no_events()
        .then_rejected(Rejection::Unauthenticated);
        assert!(
            s.views
                .session_by_digest(&SecretDigest::of(issued.secret.expose()))
                .is_none()
        );
    }

    #[test]
    fn revoking_another_accounts_session_looks_like_no_such_session() {
        let (mut s, alices) = alice_in();
        let bob = s.registered("bob");
        let bobs = s.logged_in("bob");
        let alice = alices.account;
        s.when(Command::from(tessera_core::session::RevokeSession {
            step_up: (Some(s.now)).into(),
            account: bob,
            session: alices.session,
        }))
        .then_no_events()
        .then_rejected(Rejection::SessionNotFound);
        s.when(Command::from(tessera_core::session::RevokeSession {
            step_up: (Some(s.now)).into(),
            account: alice,
            session: session(9),
        }))
        .then_rejected(Rejection::SessionNotFound);
        s.when(Command::from(tessera_core::session::RevokeSession {
            step_up: (Some(s.now)).into(),
            account: alice,
            session: alices.session,
        }))
        .then_events(&[fixtures::ended(alices.session, SessionEndReason::Revoked)])
        .then_reply(Reply::SessionEnded);
        s.when(Command::from(tessera_core::session::RevokeSession {
            step_up: (Some(s.now)).into(),
            account: alice,
            session: alices.session,
        }))
        .then_rejected(Rejection::SessionNotFound);
        assert!(s.views.session(&bobs.session).is_some());
    }

    #[test]
    fn an_expired_session_cannot_be_revoked() {
        let (mut s, issued) = alice_in();
        s.advance_ms(s.policy.session.idle_timeout_ms);
        s.when(Command::from(tessera_core::session::RevokeSession {
            step_up: (Some(s.now)).into(),
            account: issued.account,
            session: issued.session,
        }))
        .then_no_events()
        .then_rejected(Rejection::SessionNotFound);
    }
}

mod change_password {
    use super::*;

    /// Alice with three sessions (the last is "current"), Bob with one.
    fn setup() -> (
        Given,
        Vec<tessera_core::session::SessionIssued>,
        tessera_core::session::SessionIssued,
    ) {
        let mut s = Given::nothing();
        s.registered("alice");
        s.registered("bob");
        let alices: Vec<_> = (0..3).map(|_| s.logged_in("alice")).collect();
        let bobs = s.logged_in("bob");
        (s, alices, bobs)
    }

    #[test]
    fn other_sessions_end_and_the_current_one_moves_to_a_fresh_id() {
        let (mut s, alices, bobs) = setup();
        let current = alices[2].clone();
        s.advance_ms(5 * 60 * 1000);
        let command = s.change_password("alice", PASSWORD, NEW_PASSWORD, Some(current.session));
        let Command::Account(tessera_core::AccountCommand::ChangePassword(
            tessera_core::account::ChangePassword { new_hash, .. },
        )) = &command
        else {
            panic!("not a change")
        };
        let new_hash = new_hash.clone();
        let then = s.when(command);
        let rotated = then.session();
        assert_eq!(
            then.events.first(),
            Some(&Event::PasswordChanged {
                account: current.account,
                password_hash: new_hash
            })
        );
        // Sessions end in id order; compare as sets of (id, reason).
        let ended: BTreeSet<(SessionId, String)> = then
            .events
            .iter()
            .filter_map(|e| match e {
                Event::SessionEnded { session, reason } => Some((*session, format!("{reason:?}"))),
                _ => None,
            })
            .collect();
        let expected: BTreeSet<_> = [
            (
                alices[0].session,
                format!("{:?}", SessionEndReason::PasswordChanged),
            ),
            (
                alices[1].session,
                format!("{:?}", SessionEndReason::PasswordChanged),
            ),
            (current.session, format!("{:?}", SessionEndReason::Rotated)),
        ]
        .into();
        assert_eq!(ended, expected);
        assert_eq!(
            then.events.last(),
            Some(&Event::SessionStarted {
                session: rotated.session,
                account: current.account,
                secret_digest: SecretDigest::of(rotated.secret.expose()),
                idle_timeout_ms: s.policy.session.idle_timeout_ms,
                expires_at: current.expires_at,
            })
        );
        assert_eq!(then.events.len(), 5);
        assert_ne!(rotated.session, current.session);
        assert_ne!(rotated.secret, current.secret);
        assert_eq!(
            rotated.expires_at, current.expires_at,
            "rotation must not lengthen the session's life"
        );
        // Only the rotated session and Bob's are left.
        let live: BTreeSet<SessionId> = [rotated.session, bobs.session].into();
        for old in &alices {
            s.when(Command::from(tessera_core::session::TouchSession {
                session: old.session,
            }))
            .then_rejected(Rejection::Unauthenticated);
        }
        for id in &live {
            s.peek(Command::from(tessera_core::session::TouchSession {
                session: *id,
            }))
            .then_reply(Reply::SessionTouched);
        }
        assert_eq!(s.views.session_count(), 2);
        // The old password no longer opens the account; the new one does.
        let old = s.login("alice", PASSWORD);
        s.when(old).then_rejected(Rejection::InvalidCredentials);
        let new = s.login("alice", NEW_PASSWORD);
        s.when(new).then_kinds(&["SessionStarted"]);
    }

    #[test]
    fn without_a_current_session_every_session_ends() {
        let (mut s, alices, _) = setup();
        let command = s.change_password("alice", PASSWORD, NEW_PASSWORD, None);
        let then = s.when(command);
        then.then_reply(Reply::PasswordChanged { session: None });
        assert_eq!(then.events.len(), 1 + alices.len());
        assert!(alices.iter().all(|a| s.views.session(&a.session).is_none()));
    }

    #[test]
    fn another_accounts_session_is_not_carried_over() {
        let (mut s, alices, bobs) = setup();
        let command = s.change_password("alice", PASSWORD, NEW_PASSWORD, Some(bobs.session));
        s.when(command)
            .then_reply(Reply::PasswordChanged { session: None });
        assert!(alices.iter().all(|a| s.views.session(&a.session).is_none()));
        assert!(s.views.session(&bobs.session).is_some());
    }

    #[test]
    fn a_wrong_current_password_changes_nothing() {
        let (mut s, alices, _) = setup();
        let command = s.change_password(
            "alice",
            "Wrong horse 9 battery",
            NEW_PASSWORD,
            Some(alices[0].session),
        );
        s.when(command)
            .then_kinds(&["LoginFailed"])
            .then_rejected(Rejection::InvalidCredentials);
        assert_eq!(s.views.session_count(), 4);
        let still = s.login("alice", PASSWORD);
        s.when(still).then_kinds(&["SessionStarted"]);
    }
}

mod disable {
    use super::*;

    #[test]
    fn ends_every_session_and_is_idempotent() {
        let mut s = Given::nothing();
        let alice = s.registered("alice");
        s.registered("bob");
        let alices: Vec<_> = (0..2).map(|_| s.logged_in("alice")).collect();
        let bobs = s.logged_in("bob");
        let by = Actor::Operator { name: "ops".into() };
        let then = s.when(Command::from(tessera_core::account::DisableAccount {
            account: alice,
            by: by.clone(),
        }));
        then.then_reply(Reply::AccountDisabled);
        assert_eq!(
            then.events.first(),
            Some(&Event::AccountDisabled {
                account: alice,
                by: by.clone()
            })
        );
        let ended: BTreeSet<_> = then.events[1..].iter().map(|e| format!("{e:?}")).collect();
        let expected: BTreeSet<_> = alices
            .iter()
            .map(|a| {
                format!(
                    "{:?}",
                    fixtures::ended(a.session, SessionEndReason::AccountDisabled)
                )
            })
            .collect();
        assert_eq!(ended, expected);
        for a in &alices {
            s.when(Command::from(tessera_core::session::TouchSession {
                session: a.session,
            }))
            .then_rejected(Rejection::Unauthenticated);
        }
        s.peek(Command::from(tessera_core::session::TouchSession {
            session: bobs.session,
        }))
        .then_reply(Reply::SessionTouched);
        s.when(Command::from(tessera_core::account::DisableAccount {
            account: alice,
            by,
        }))
        .then_no_events()
        .then_reply(Reply::AccountDisabled);
        assert!(s.views.account(&alice).is_some_and(|a| a.disabled));
    }

    #[test]
    fn an_unknown_account_is_refused() {
        let mut s = Given::nothing();
        s.when(Command::from(tessera_core::account::DisableAccount {
            account: account(7),
            by: Actor::Holder,
        }))
        .then_no_events()
        .then_rejected(Rejection::AccountNotFound);
    }
}

#[test]
fn a_scenario_refolds_to_the_same_views() {
    let mut s = Given::seeded(42);
    s.registered("alice");
    let a = s.logged_in("alice");
    s.advance_ms(61_000);
    s.when(Command::from(tessera_core::session::TouchSession {
        session: a.session,
    }));
    let change = s.change_password("alice", PASSWORD, NEW_PASSWORD, Some(a.session));
    s.when(change);
    assert_eq!(s.refolded(), s.views);
}

/// Sessions past their deadline stay in the views until the next event is applied. A
/// decision must not end them again: the views drop them first and refuse the `SessionEnded`,
/// which in the engine is an invariant failure that stops the writer.
mod expired_but_not_yet_dropped {
    use super::*;

    fn alice_with_an_expired_and_a_live_session() -> (Given, SessionId, SessionId) {
        let mut s = Given::nothing();
        s.registered("alice");
        let expired = s.logged_in("alice").session;
        s.advance_ms(s.policy.session.idle_timeout_ms - 1000);
        let live = s.logged_in("alice").session;
        s.advance_ms(1000);
        assert!(s.views.session(&expired).is_some_and(|v| !v.is_live(s.now)));
        (s, expired, live)
    }

    #[test]
    fn a_password_change_ends_only_live_sessions() {
        let (mut s, expired, live) = alice_with_an_expired_and_a_live_session();
        let command = s.change_password("alice", PASSWORD, NEW_PASSWORD, None);
        let then = s.when(command);
        then.then_kinds(&["PasswordChanged", "SessionEnded"])
            .then_reply(Reply::PasswordChanged { session: None });
        assert_eq!(
            then.events[1],
            fixtures::ended(live, SessionEndReason::PasswordChanged)
        );
        assert!(s.views.session(&expired).is_none());
    }

    #[test]
    fn an_expired_current_session_is_not_rotated() {
        let (mut s, expired, _) = alice_with_an_expired_and_a_live_session();
        let command = s.change_password("alice", PASSWORD, NEW_PASSWORD, Some(expired));
        s.when(command)
            .then_kinds(&["PasswordChanged", "SessionEnded"])
            .then_reply(Reply::PasswordChanged { session: None });
    }

    #[test]
    fn disabling_ends_only_live_sessions() {
        let (mut s, _, live) = alice_with_an_expired_and_a_live_session();
        let alice = s
            .views
            .account_by_username("alice")
            .map(|a| a.id)
            .expect("alice");
        s.when(Command::from(tessera_core::account::DisableAccount {
            account: alice,
            by: Actor::Holder,
        }))
        .then_events(&[
            Event::AccountDisabled {
                account: alice,
                by: Actor::Holder,
            },
            fixtures::ended(live, SessionEndReason::AccountDisabled),
        ])
        .then_reply(Reply::AccountDisabled);
    }
}
