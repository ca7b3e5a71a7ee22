//! Given/when/then tests of the external-identity rules, against `decide` + `apply`.

use super::*;
use crate::mfa::{ConfirmTotp, MfaKeys, StartTotpEnrolment, TotpCode, totp_code_at};
use crate::session::LoginCompleted;
use crate::testkit::{Given, T0, rng};
use crate::{Reply, SessionId};

fn profile(provider: &str, subject: &str, username: &str, email: Option<&str>) -> UpstreamProfile {
    UpstreamProfile {
        provider: provider.into(),
        subject: subject.into(),
        username: Some(username.into()),
        email: email.map(str::to_owned),
        mfa_asserted: false,
    }
}

fn pending(w: &Given, provider: &str, purpose: SignInPurpose) -> PendingSignIn {
    let mut r = rng(w.log.len() as u64 + 17);
    PendingSignIn::start(provider, true, "/", purpose, w.now, &mut r)
}

fn sign_in_with(
    w: &mut Given,
    profile: UpstreamProfile,
    rules: ProviderRules,
) -> Result<ExternalSignedIn, Rejection> {
    let p = pending(w, &profile.provider, SignInPurpose::Login);
    w.run(ExternalSignIn {
        profile,
        rules,
        state: StateSpent::from(&p),
        mode: LoginMode::Session,
        client: None,
        supersedes: None,
    })
}

fn sign_in(w: &mut Given, profile: UpstreamProfile) -> Result<ExternalSignedIn, Rejection> {
    sign_in_with(w, profile, ProviderRules::default())
}

fn link(w: &mut Given, account: AccountId, profile: UpstreamProfile) -> Result<(), Rejection> {
    let p = pending(w, &profile.provider, SignInPurpose::Link { account });
    w.run(LinkIdentity {
        account,
        profile,
        state: StateSpent::from(&p),
        client: None,
    })
}

fn session_of(signed: &ExternalSignedIn) -> SessionId {
    match &signed.login {
        LoginReply::Completed(LoginCompleted::Session(s)) => s.session,
        other => panic!("expected a session, got {other:?}"),
    }
}

#[test]
fn a_first_sign_in_creates_an_account_and_the_next_one_finds_it() {
    let mut w = Given::nothing();
    let first = sign_in(&mut w, profile("github", "42", "octocat", None)).expect("created");
    assert!(first.created);
    session_of(&first);
    assert_eq!(
        w.last_kinds(3),
        [
            "ExternalAccountCreated",
            "ExternalSignInRecorded",
            "SessionStarted"
        ]
    );
    let account = w.views.account(&first.account).expect("account");
    assert_eq!(account.username, "octocat");
    assert!(account.password_hash.is_absent());

    let again = sign_in(&mut w, profile("github", "42", "renamed", None)).expect("signed in");
    assert_eq!((again.account, again.created), (first.account, false));
    assert_eq!(w.refolded(), w.views);
}

#[test]
fn identities_are_keyed_by_provider_and_subject_never_by_username() {
    let mut w = Given::nothing();
    let a = sign_in(&mut w, profile("github", "1", "sam", None)).expect("a");
    // Another provider's user with the same username is another person.
    let b = sign_in(&mut w, profile("gitlab", "1", "sam", None)).expect("b");
    assert_ne!(a.account, b.account);
    assert_eq!(
        w.views.account(&b.account).map(|a| a.username.as_str()),
        Some("sam-2")
    );
}

#[test]
fn taken_usernames_get_the_first_free_suffix_deterministically() {
    let mut w = Given::nothing();
    w.registered("octocat");
    w.registered("octocat-2");
    let created = sign_in(&mut w, profile("github", "9", "OctoCat", None)).expect("created");
    assert_eq!(
        w.views
            .account(&created.account)
            .map(|a| a.username.as_str()),
        Some("OctoCat-3")
    );
    // Characters usernames do not allow are dropped; too short a name gets the provider's.
    let odd = sign_in(&mut w, profile("github", "10", "j é", None)).expect("created");
    assert_eq!(
        w.views.account(&odd.account).map(|a| a.username.as_str()),
        Some("github-j")
    );
}

#[test]
fn an_email_of_a_local_account_is_never_linked_silently() {
    let mut w = Given::nothing();
    let command = w
        .register("alice", Some("alice@example.com"), crate::testkit::PASSWORD)
        .expect("valid");
    w.when(command);
    let before = w.log.len();
    let refused = sign_in(
        &mut w,
        profile("github", "7", "alice", Some("ALICE@example.com")),
    );
    assert_eq!(
        refused,
        Err(Rejection::ExternalEmailInUse {
            provider: "github".into()
        })
    );
    assert_eq!(w.log.len(), before, "nothing recorded, no account created");
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("sign in to it, then link")
    );
}

#[test]
fn link_only_refuses_a_first_sign_in_but_signs_in_a_linked_identity() {
    let mut w = Given::nothing();
    let rules = ProviderRules {
        first_sign_in: FirstSignIn::LinkOnly,
        trusted_for_mfa: false,
    };
    assert_eq!(
        sign_in_with(&mut w, profile("corp", "u1", "bob", None), rules),
        Err(Rejection::ExternalSignInNotLinked {
            provider: "corp".into()
        })
    );
    let bob = w.registered("bob");
    link(&mut w, bob, profile("corp", "u1", "bob", None)).expect("linked");
    let signed = sign_in_with(&mut w, profile("corp", "u1", "bob", None), rules).expect("in");
    assert_eq!((signed.account, signed.created), (bob, false));
}

#[test]
fn an_identity_linked_elsewhere_or_a_second_one_of_a_provider_is_refused() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let bob = w.registered("bob");
    link(&mut w, alice, profile("github", "1", "a", None)).expect("linked");
    // Linking again is a no-op.
    link(&mut w, alice, profile("github", "1", "a", None)).expect("again");
    assert_eq!(
        link(&mut w, bob, profile("github", "1", "a", None)),
        Err(Rejection::IdentityLinkedElsewhere {
            provider: "github".into()
        })
    );
    assert_eq!(
        link(&mut w, alice, profile("github", "2", "a", None)),
        Err(Rejection::ProviderAlreadyLinked {
            provider: "github".into()
        })
    );
    assert_eq!(w.views.identities_of(&alice).count(), 1);
    assert_eq!(w.views.identities_of(&bob).count(), 0);
}

#[test]
fn the_last_way_to_sign_in_cannot_be_unlinked() {
    let mut w = Given::nothing();
    let created = sign_in(&mut w, profile("github", "5", "eve", None)).expect("created");
    let account = created.account;
    let unlink = |provider: &str| UnlinkIdentity {
        account,
        provider: provider.into(),
    };
    assert_eq!(w.run(unlink("github")), Err(Rejection::LastWayToSignIn));
    link(&mut w, account, profile("google", "g5", "eve", None)).expect("linked");
    w.run(unlink("github")).expect("another way remains");
    assert_eq!(w.run(unlink("google")), Err(Rejection::LastWayToSignIn));
    assert_eq!(w.run(unlink("github")), Err(Rejection::IdentityNotLinked));
    // The unlinked identity is unknown again: signing in with it creates a new account.
    let again = sign_in(&mut w, profile("github", "5", "eve", None)).expect("new");
    assert!(again.created);
    assert_ne!(again.account, account);
    assert_eq!(w.refolded(), w.views);

    // An account with a password may unlink its only identity.
    let carol = w.registered("carol");
    link(&mut w, carol, profile("github", "c", "carol", None)).expect("linked");
    w.run(UnlinkIdentity {
        account: carol,
        provider: "github".into(),
    })
    .expect("the password remains");
}

#[test]
fn a_state_is_spent_once_and_forgotten_after_its_deadline() {
    let mut w = Given::nothing();
    let p = pending(&w, "github", SignInPurpose::Login);
    let command = ExternalSignIn {
        profile: profile("github", "1", "x", None),
        rules: ProviderRules::default(),
        state: StateSpent::from(&p),
        mode: LoginMode::Session,
        client: None,
        supersedes: None,
    };
    w.run(command.clone()).expect("first callback");
    assert!(w.views.state_spent(&p.state_digest()));
    assert_eq!(
        w.run(command.clone()),
        Err(Rejection::ExternalStateSpent),
        "a callback replayed after success"
    );
    w.advance_ms(SIGN_IN_TTL_MS);
    assert_eq!(w.run(command), Err(Rejection::ExternalStateSpent));
    // Any later event drops the spent record whose sign-in has expired.
    w.registered("later");
    assert!(!w.views.state_spent(&p.state_digest()));
    assert_eq!(w.refolded(), w.views);
}

#[test]
fn a_disabled_account_cannot_sign_in_externally() {
    let mut w = Given::nothing();
    let created = sign_in(&mut w, profile("github", "3", "dan", None)).expect("created");
    w.run(crate::account::DisableAccount {
        account: created.account,
        by: crate::Actor::Operator { name: "ops".into() },
    })
    .expect("disabled");
    assert_eq!(
        sign_in(&mut w, profile("github", "3", "dan", None)),
        Err(Rejection::ExternalAccountDisabled)
    );
    assert_eq!(w.last_kinds(1), ["LoginFailed"]);
}

fn enable_mfa(w: &mut Given, account: AccountId) {
    let keys = MfaKeys::from_master(&[42; 32]);
    let enrolment = w
        .run(StartTotpEnrolment {
            step_up: Some(w.now).into(),
            account,
            keys: keys.clone(),
        })
        .expect("enrolment");
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrolment.secret_base32.as_bytes())
        .expect("base32");
    w.advance_secs(31);
    let code = totp_code_at(&secret, w.now).expect("code");
    w.run(ConfirmTotp {
        account,
        code: TotpCode::parse(&code).expect("six digits"),
        keys,
        client: None,
    })
    .expect("confirmed");
}

#[test]
fn the_accounts_mfa_still_applies_unless_a_trusted_provider_asserts_it() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    link(&mut w, alice, profile("corp", "a", "alice", None)).expect("linked");
    enable_mfa(&mut w, alice);
    let challenged = |r: Result<ExternalSignedIn, Rejection>| {
        matches!(r.expect("signed in").login, LoginReply::MfaRequired(_))
    };
    let asserted = UpstreamProfile {
        mfa_asserted: true,
        ..profile("corp", "a", "alice", None)
    };
    // Untrusted provider: its assertion changes nothing.
    assert!(challenged(sign_in(&mut w, asserted.clone())));
    let trusted = ProviderRules {
        first_sign_in: FirstSignIn::Create,
        trusted_for_mfa: true,
    };
    // Trusted provider without the assertion: still challenged.
    assert!(challenged(sign_in_with(
        &mut w,
        profile("corp", "a", "alice", None),
        trusted
    )));
    // Trusted and asserted: signed in.
    let signed = sign_in_with(&mut w, asserted, trusted).expect("in");
    session_of(&signed);
}

#[test]
fn callbacks_are_checked_against_the_browsers_pending_sign_in() {
    let w = Given::nothing();
    let p = pending(&w, "github", SignInPurpose::Login);
    let state = p.state.clone();
    assert_eq!(
        check_callback(None, "github", Some(&state), T0),
        Err(Rejection::ExternalSignInNotStarted)
    );
    assert_eq!(
        check_callback(Some(&p), "github", Some("forged"), T0),
        Err(Rejection::ExternalStateMismatch)
    );
    assert_eq!(
        check_callback(Some(&p), "github", None, T0),
        Err(Rejection::ExternalStateMismatch)
    );
    assert_eq!(
        check_callback(Some(&p), "gitlab", Some(&state), T0),
        Err(Rejection::ExternalStateMismatch),
        "an answer meant for another provider"
    );
    // Another browser's sign-in: its own state does not match this one's.
    let other = PendingSignIn::start("github", true, "/", SignInPurpose::Login, T0, &mut rng(99));
    assert_eq!(
        check_callback(Some(&other), "github", Some(&state), T0),
        Err(Rejection::ExternalStateMismatch)
    );
    assert_eq!(
        check_callback(Some(&p), "github", Some(&state), p.expires_at),
        Err(Rejection::ExternalSignInNotStarted)
    );
    assert!(check_callback(Some(&p), "github", Some(&state), T0).is_ok());
    // The cookie: sealed, opened only with the same keys, refused when altered.
    let keys = crate::mfa::MfaKeys::from_master(&[7; 32]);
    let cookie = p.seal(&keys, [3; 24]);
    assert!(!cookie.contains(&p.state));
    assert_eq!(PendingSignIn::open(&cookie, &keys).as_ref(), Some(&p));
    let other_keys = crate::mfa::MfaKeys::from_master(&[8; 32]);
    assert_eq!(PendingSignIn::open(&cookie, &other_keys), None);
    let mut altered = cookie.clone().into_bytes();
    altered[40] = if altered[40] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    assert_eq!(PendingSignIn::open(&altered, &keys), None);
    assert_eq!(PendingSignIn::open("garbage", &keys), None);
    // Nothing secret in Debug.
    let shown = format!("{p:?}");
    assert!(!shown.contains(&p.state) && !shown.contains(&p.verifier));
    // RFC 7636 Appendix B.
    let b = PendingSignIn {
        verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        ..p
    };
    assert_eq!(b.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

#[test]
fn id_tokens_are_accepted_only_for_this_client_issuer_and_sign_in() {
    let w = Given::nothing();
    let p = pending(&w, "corp", SignInPurpose::Login);
    let good = IdTokenFacts {
        issuer: "https://id.example".into(),
        audience: vec!["tessera".into()],
        authorized_party: None,
        subject: "u1".into(),
        nonce: p.nonce.clone(),
        expires_at: T0.plus_ms(60_000),
        amr: vec!["pwd".into(), "mfa".into()],
        acr: None,
    };
    let expected = IdTokenExpectation {
        issuer: "https://id.example",
        client_id: "tessera",
    };
    let check = |facts: &IdTokenFacts| accept_id_token(facts, expected, &p, T0);
    assert_eq!(check(&good), Ok(()));
    assert!(mfa_asserted(&good));
    let refused = |problem| Err(Rejection::IdTokenRejected(problem));
    let other_client = IdTokenFacts {
        audience: vec!["other-app".into()],
        ..good.clone()
    };
    assert_eq!(check(&other_client), refused(IdTokenProblem::Audience));
    let shared = IdTokenFacts {
        audience: vec!["tessera".into(), "other-app".into()],
        authorized_party: Some("other-app".into()),
        ..good.clone()
    };
    assert_eq!(check(&shared), refused(IdTokenProblem::Audience));
    let foreign = IdTokenFacts {
        issuer: "https://evil.example".into(),
        ..good.clone()
    };
    assert_eq!(check(&foreign), refused(IdTokenProblem::Issuer));
    let replayed = IdTokenFacts {
        nonce: Some("another sign-in".into()),
        ..good.clone()
    };
    assert_eq!(check(&replayed), refused(IdTokenProblem::Nonce));
    let expired = IdTokenFacts {
        expires_at: T0,
        ..good.clone()
    };
    assert_eq!(check(&expired), refused(IdTokenProblem::Expired));
    assert!(!mfa_asserted(&IdTokenFacts {
        amr: vec!["pwd".into()],
        ..good
    }));
}

#[test]
fn provider_names_are_url_and_environment_safe() {
    for ok in ["github", "corp-sso", "a1"] {
        assert!(provider_name_valid(ok), "{ok}");
    }
    for bad in ["", "GitHub", "-x", "x-", "a_b", "a/b", &"a".repeat(33)] {
        assert!(!provider_name_valid(bad), "{bad}");
    }
}

#[test]
fn the_command_dispatch_gives_the_same_answers() {
    let mut w = Given::nothing();
    let p = pending(&w, "github", SignInPurpose::Login);
    let then = w.when(ExternalSignIn {
        profile: profile("github", "1", "x", None),
        rules: ProviderRules::default(),
        state: StateSpent::from(&p),
        mode: LoginMode::Session,
        client: None,
        supersedes: None,
    });
    then.then_kinds(&[
        "ExternalAccountCreated",
        "ExternalSignInRecorded",
        "SessionStarted",
    ]);
    match &then.reply {
        Ok(Reply::ExternalSignedIn { created: true, .. }) => {}
        other => panic!("{other:?}"),
    }
}
