//! Given/when/then tests of the WebAuthn decisions against `decide` + `apply`, and a
//! property test of the counter rule over sequences of assertions.

use proptest::prelude::*;

use super::*;
use crate::testkit::{Given, PASSWORD};
use crate::{Command, Event, Reply};

fn id(n: u8) -> CredentialId {
    CredentialId(vec![n; 16])
}

fn new(n: u8, kind: CredentialKind) -> NewCredential {
    NewCredential {
        id: id(n),
        kind,
        public_key: "{}".into(),
        counter: 0,
        transports: vec!["usb".into()],
        discoverable: kind == CredentialKind::Passkey,
        user_verified: true,
        backup_eligible: false,
    }
}

fn register(w: &mut Given, account: AccountId, n: u8, kind: CredentialKind) {
    let step_up = Some(w.now).into();
    let reply = w.run(Command::from(RegisterCredential {
        account,
        name: format!("key {n}"),
        credential: new(n, kind),
        step_up,
    }));
    assert!(
        matches!(reply, Ok(Reply::CredentialRegistered(_))),
        "{reply:?}"
    );
}

fn passkey_login(
    w: &mut Given,
    account: AccountId,
    n: u8,
    counter: u32,
) -> Result<Reply, Rejection> {
    w.run(Command::from(LoginWithPasskey {
        assertion: VerifiedAssertion {
            account,
            credential: id(n),
            counter,
            user_verified: true,
            backup_state: false,
        },
        mode: LoginMode::Token,
        client: None,
        supersedes: None,
    }))
}

#[test]
fn the_counter_rule() {
    assert_eq!(check_counter(0, 0), CounterCheck::NoCounter);
    assert_eq!(check_counter(0, 1), CounterCheck::Advanced);
    assert_eq!(check_counter(5, 6), CounterCheck::Advanced);
    assert_eq!(check_counter(5, 5), CounterCheck::Regressed);
    assert_eq!(check_counter(5, 4), CounterCheck::Regressed);
    // A counter that falls back to zero after counting is a regression too.
    assert_eq!(check_counter(5, 0), CounterCheck::Regressed);
}

#[test]
fn a_passkey_logs_in_and_a_clone_is_refused_and_recorded() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    register(&mut w, alice, 1, CredentialKind::Passkey);
    assert!(matches!(
        passkey_login(&mut w, alice, 1, 3),
        Ok(Reply::TokensIssued(_))
    ));
    assert_eq!(w.views.credential(&id(1)).map(|c| c.counter), Some(3));
    let refused = passkey_login(&mut w, alice, 1, 2);
    assert_eq!(refused, Err(Rejection::WebauthnCounterRegressed));
    assert_eq!(w.last_kinds(1), ["WebauthnCounterRegressed"]);
    // The stored counter stays at the highest seen.
    assert_eq!(w.views.credential(&id(1)).map(|c| c.counter), Some(3));
    assert_eq!(w.refolded(), w.views);
}

#[test]
fn accept_and_flag_records_the_regression_and_flags_the_credential() {
    let mut w = Given::nothing();
    w.policy.webauthn.counter_regression = CounterPolicy::AcceptAndFlag;
    let alice = w.registered("alice");
    register(&mut w, alice, 1, CredentialKind::Passkey);
    assert!(passkey_login(&mut w, alice, 1, 3).is_ok());
    assert!(passkey_login(&mut w, alice, 1, 1).is_ok());
    let c = w.views.credential(&id(1)).expect("kept");
    assert!(c.flagged);
    assert_eq!(
        c.counter, 3,
        "an accepted regression never lowers the counter"
    );
    assert!(w.log.iter().any(|(_, e)| matches!(
        e,
        Event::WebauthnCounterRegressed {
            accepted: true,
            stored: 3,
            presented: 1,
            ..
        }
    )));
}

#[test]
fn a_security_key_never_logs_in_alone_and_user_verification_is_required() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    register(&mut w, alice, 2, CredentialKind::SecurityKey);
    assert_eq!(
        passkey_login(&mut w, alice, 2, 1),
        Err(Rejection::WebauthnCredentialUnknown)
    );
    register(&mut w, alice, 3, CredentialKind::Passkey);
    let unverified = w.run(Command::from(LoginWithPasskey {
        assertion: VerifiedAssertion {
            account: alice,
            credential: id(3),
            counter: 1,
            user_verified: false,
            backup_state: false,
        },
        mode: LoginMode::Token,
        client: None,
        supersedes: None,
    }));
    assert_eq!(unverified, Err(Rejection::WebauthnUserVerificationRequired));
}

#[test]
fn an_assertion_naming_another_account_is_an_unknown_credential() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let bob = w.registered("bob");
    register(&mut w, alice, 1, CredentialKind::Passkey);
    assert_eq!(
        passkey_login(&mut w, bob, 1, 1),
        Err(Rejection::WebauthnCredentialUnknown)
    );
}

#[test]
fn the_last_credential_of_a_passwordless_account_cannot_be_removed() {
    // An account recorded without a password (an empty hash) logs in only with passkeys.
    let mut w = Given::nothing();
    let carol = AccountId::from_bytes([7; 16]);
    w.apply_all([Event::AccountRegistered {
        account: carol,
        username: "carol".into(),
        email: None,
        password_hash: crate::password::PasswordHash(String::new()),
    }]);
    register(&mut w, carol, 1, CredentialKind::Passkey);
    register(&mut w, carol, 2, CredentialKind::Passkey);
    let remove = |n| RemoveCredential {
        account: carol,
        credential: id(n),
    };
    assert!(w.run(Command::from(remove(1))).is_ok());
    assert_eq!(
        w.run(Command::from(remove(2))),
        Err(Rejection::WebauthnLastLoginMethod)
    );
    assert!(w.views.credential(&id(2)).is_some());

    // With a password, the last credential may go.
    let alice = w.registered("alice");
    register(&mut w, alice, 3, CredentialKind::SecurityKey);
    let removed = w.run(Command::from(RemoveCredential {
        account: alice,
        credential: id(3),
    }));
    assert!(removed.is_ok());
    assert_eq!(w.refolded(), w.views);
}

#[test]
fn registration_needs_a_recent_authentication_and_a_unique_id() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let stale = Some(w.now).into();
    w.advance_secs(w.policy.session.reauth_window_secs + 1);
    let refused = w.run(Command::from(RegisterCredential {
        account: alice,
        name: "late".into(),
        credential: new(1, CredentialKind::Passkey),
        step_up: stale,
    }));
    assert_eq!(refused, Err(Rejection::ReauthenticationRequired));
    register(&mut w, alice, 1, CredentialKind::Passkey);
    let bob = w.registered("bob");
    let twice = w.run(Command::from(RegisterCredential {
        account: bob,
        name: "same".into(),
        credential: new(1, CredentialKind::Passkey),
        step_up: Some(w.now).into(),
    }));
    assert_eq!(twice, Err(Rejection::WebauthnCredentialExists));
}

#[test]
fn a_credential_makes_the_password_login_ask_for_it() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    register(&mut w, alice, 1, CredentialKind::SecurityKey);
    let login = w.login("alice", PASSWORD);
    match w.run(login) {
        Ok(Reply::MfaRequired(c)) => {
            assert_eq!(c.methods, vec![crate::mfa::MfaMethod::Webauthn]);
        }
        other => panic!("expected a challenge: {other:?}"),
    }
}

proptest! {
    /// Over any sequence of presented counters, a login goes through exactly when the rule
    /// says so, the stored counter is the highest accepted one, and every refusal is recorded.
    #[test]
    fn the_stored_counter_follows_the_rule(counters in proptest::collection::vec(0u32..20, 1..12)) {
        let mut w = Given::nothing();
        let alice = w.registered("alice");
        register(&mut w, alice, 1, CredentialKind::Passkey);
        let mut stored = 0u32;
        for presented in counters {
            w.advance_secs(1);
            let before = w.log.len();
            let result = passkey_login(&mut w, alice, 1, presented);
            let expected_ok = check_counter(stored, presented) != CounterCheck::Regressed;
            prop_assert_eq!(result.is_ok(), expected_ok);
            if expected_ok {
                stored = stored.max(presented);
            } else {
                prop_assert_eq!(w.log.len(), before + 1);
                prop_assert_eq!(w.last_kinds(1), vec!["WebauthnCounterRegressed"]);
            }
            prop_assert_eq!(w.views.credential(&id(1)).map(|c| c.counter), Some(stored));
        }
        prop_assert_eq!(w.refolded(), w.views);
    }
}

#[test]
fn wrong_passwords_do_not_lock_the_passkey_out_but_disabling_does() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    register(&mut w, alice, 1, CredentialKind::Passkey);
    for _ in 0..20 {
        let login = w.login("alice", "not the password at all");
        let _ = w.run(login);
    }
    assert!(passkey_login(&mut w, alice, 1, 1).is_ok());
    w.run(Command::from(crate::account::DisableAccount {
        account: alice,
        by: crate::Actor::Operator { name: "op".into() },
    }))
    .expect("disabled");
    assert_eq!(
        passkey_login(&mut w, alice, 1, 2),
        Err(Rejection::Unauthenticated)
    );
}
