//! Step-up for sensitive actions: enrolling or removing TOTP, replacing backup codes, ending
//! another session and signing out everywhere need an authentication within the policy's
//! `session.reauth_window_secs`. Decided in the core, so these run the same rule the server
//! and the simulator meet.

use tessera_core::mfa::{MfaAnswer, MfaKeys};
use tessera_core::session::StepUp;
use tessera_core::{AccountId, Actor, Command, Rejection};
use tessera_tests::Given;

fn keys() -> MfaKeys {
    MfaKeys::from_master(&[42; 32])
}

/// The five sensitive commands for `account`, each carrying `step_up`.
fn sensitive(s: &mut Given, account: AccountId, step_up: StepUp) -> Vec<Command> {
    let other = s.logged_in("alice").session;
    let answer = MfaAnswer::totp("123456").expect("six digits");
    vec![
        Command::from(tessera_core::mfa::StartTotpEnrolment {
            account,
            keys: keys(),
            step_up: step_up.clone(),
        }),
        Command::from(tessera_core::mfa::DisableTotp {
            account,
            answer: answer.clone(),
            keys: keys(),
            client: None,
            current_session: None,
            current_family: None,
            step_up: step_up.clone(),
        }),
        Command::from(tessera_core::mfa::ReplaceBackupCodes {
            account,
            answer,
            keys: keys(),
            client: None,
            step_up: step_up.clone(),
        }),
        Command::from(tessera_core::session::RevokeSession {
            account,
            session: other,
            step_up: step_up.clone(),
        }),
        Command::from(tessera_core::blocklist::SignOutEverywhere {
            account,
            by: Actor::Holder,
            step_up: step_up.clone(),
        }),
    ]
}

fn window_ms(s: &Given) -> u64 {
    s.policy.session.reauth_window_secs * 1000
}

#[test]
fn each_sensitive_action_with_a_stale_authentication_is_refused_and_records_nothing() {
    let mut s = Given::seeded(70);
    let alice = s.registered("alice");
    let logged_in_at = s.now;
    s.advance_ms(window_ms(&s) + 1);
    for command in sensitive(&mut s, alice, Some(logged_in_at).into()) {
        let kind = command.kind();
        s.when(command)
            .then_no_events()
            .then_rejected(Rejection::ReauthenticationRequired);
        assert!(s.views.account(&alice).is_some(), "{kind}");
    }
}

#[test]
fn each_sensitive_action_without_an_authentication_time_is_refused() {
    let mut s = Given::seeded(71);
    let alice = s.registered("alice");
    for command in sensitive(&mut s, alice, None.into()) {
        s.when(command)
            .then_no_events()
            .then_rejected(Rejection::ReauthenticationRequired);
    }
}

#[test]
fn each_sensitive_action_with_a_fresh_authentication_passes_the_step_up() {
    let mut s = Given::seeded(72);
    let alice = s.registered("alice");
    // Authenticated exactly one window ago: still recent.
    let at = s.now;
    s.advance_ms(window_ms(&s));
    let commands = sensitive(&mut s, alice, Some(at).into());
    let mut replies = Vec::new();
    for command in commands {
        let kind = command.kind();
        replies.push((kind, s.run(command)));
    }
    for (kind, reply) in &replies {
        assert_ne!(
            reply.as_ref().err(),
            Some(&Rejection::ReauthenticationRequired),
            "{kind}"
        );
    }
    // Enrolment and the session actions succeed; the MFA proofs fail on their own terms
    // (the enrolment is still pending), past the step-up.
    let outcome: Vec<(&str, bool)> = replies.iter().map(|(k, r)| (*k, r.is_ok())).collect();
    assert_eq!(
        outcome,
        vec![
            ("start_totp_enrolment", true),
            ("disable_totp", false),
            ("replace_backup_codes", false),
            ("revoke_session", true),
            ("sign_out_everywhere", true),
        ]
    );
    assert_eq!(replies[1].1, Err(Rejection::MfaNotEnrolled));
}

#[test]
fn an_operator_signs_an_account_out_without_the_holders_step_up() {
    let mut s = Given::seeded(73);
    let alice = s.registered("alice");
    s.when(Command::from(tessera_core::blocklist::SignOutEverywhere {
        account: alice,
        by: Actor::Operator { name: "ops".into() },
        step_up: None.into(),
    }))
    .then_kinds(&["AccountSignedOutEverywhere"]);
}

#[test]
fn a_refreshed_token_keeps_the_logins_auth_time() {
    let mut s = Given::seeded(74);
    s.registered("alice");
    let first = s.login_tokens("alice");
    let login_at = first.access.auth_time.expect("auth_time at login");
    assert_eq!(login_at, first.access.iat);
    s.advance_secs(600);
    let second = s.refresh(first.refresh.expose()).expect("rotated");
    s.advance_secs(600);
    let third = s.refresh(second.refresh.expose()).expect("rotated");
    assert_eq!(third.access.auth_time, Some(login_at));
    assert!(third.access.iat >= login_at + 1200);
    // And the refreshed token is too old for a sensitive action, though brand new.
    let alice = third.account;
    s.when(Command::from(tessera_core::mfa::StartTotpEnrolment {
        account: alice,
        keys: keys(),
        step_up: (third.access.authenticated_at()).into(),
    }))
    .then_rejected(Rejection::ReauthenticationRequired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_stale_token_or_cookie_gets_reauthentication_required() {
    use hyper::{Method, StatusCode};
    use serde_json::json;
    use tessera_http::HttpConfig;
    use tessera_tests::PASSWORD;
    use tessera_tests::server::{Server, assert_problem, tokens_of};

    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let tokens = s.token_login("alice").await;
    let login = s.login("alice", PASSWORD).await;
    let cookie = login.cookie().expect("session cookie");
    let other = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    // Six minutes later the access token is still valid (15 minutes), but too old for a
    // sensitive action; so is the refreshed one, whose auth_time is the login's.
    s.advance(6 * 60 * 1000);
    let refreshed = tokens_of(&s.refresh(&tokens.refresh).await);
    for bearer in [&tokens.access, &refreshed.access] {
        assert_eq!(s.me(bearer).await.status, StatusCode::OK);
        let enrol = s
            .bearer_json(Method::POST, "/v1/mfa/totp", bearer, json!({}))
            .await;
        let body = assert_problem(&enrol, StatusCode::FORBIDDEN);
        assert_eq!(
            body["type"],
            "urn:tessera:problem:reauthentication-required"
        );
        assert_eq!(body["code"], 3003);
        let everywhere = s.bearer_post("/v1/logout/everywhere", bearer).await;
        assert_problem(&everywhere, StatusCode::FORBIDDEN);
    }
    // A session cookie: its start is its authentication.
    let sessions = s
        .with_cookie(Method::GET, "/v1/sessions", &cookie)
        .await
        .json();
    let other_id = sessions
        .as_array()
        .and_then(|a| a.iter().find(|i| i["current"] == false))
        .and_then(|i| i["id"].as_str())
        .expect("the other session")
        .to_owned();
    let path = format!("/v1/sessions/{other_id}");
    let revoke = s.with_cookie(Method::DELETE, &path, &cookie).await;
    assert_problem(&revoke, StatusCode::FORBIDDEN);
    // Logging in again makes it recent: the same actions pass.
    let fresh = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    let revoke = s.with_cookie(Method::DELETE, &path, &fresh).await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let fresh_tokens = s.token_login("alice").await;
    let enrol = s
        .bearer_json(
            Method::POST,
            "/v1/mfa/totp",
            &fresh_tokens.access,
            json!({}),
        )
        .await;
    assert_eq!(enrol.status, StatusCode::OK);
    drop(other);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_each_sensitive_action_passes_with_the_password_re_entered() {
    use hyper::{Method, StatusCode};
    use serde_json::json;
    use tessera_http::HttpConfig;
    use tessera_tests::PASSWORD;
    use tessera_tests::server::{Server, assert_problem};

    let s = Server::start(HttpConfig::default()).await;
    // MFA on for alice: replacing backup codes and turning MFA off carry their code.
    let alice = s.enrolled("alice").await;
    s.register("bob").await;
    let bob = s.token_login("bob").await;
    let bob_cookie = s.login("bob", PASSWORD).await.cookie().expect("cookie");
    let bob_other = s.login("bob", PASSWORD).await.cookie().expect("cookie");
    s.advance(6 * 60 * 1000);

    // Enrolment (bob has no MFA): the password alone is a full re-authentication.
    let enrol = s
        .bearer_json(Method::POST, "/v1/mfa/totp", &bob.access, json!({}))
        .await;
    assert_problem(&enrol, StatusCode::FORBIDDEN);
    let enrol = s
        .bearer_json(
            Method::POST,
            "/v1/mfa/totp",
            &bob.access,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(enrol.status, StatusCode::OK);

    // Backup codes with password and code.
    let codes = s
        .bearer_json(
            Method::POST,
            "/v1/mfa/backup-codes",
            &alice.bearer,
            json!({"code": s.code(&alice.secret), "password": PASSWORD}),
        )
        .await;
    assert_eq!(codes.status, StatusCode::OK, "{:?}", codes.json());
    // With MFA on, a password alone is not a full re-authentication where the request
    // carries no code of its own: it needs a code beside it (the next test).
    let everywhere = s
        .bearer_json(
            Method::POST,
            "/v1/logout/everywhere",
            &alice.bearer,
            json!({"password": PASSWORD}),
        )
        .await;
    let body = assert_problem(&everywhere, StatusCode::FORBIDDEN);
    assert_eq!(
        body["type"],
        "urn:tessera:problem:reauthentication-required"
    );

    // Ending another session with a cookie, and the password in the body.
    let sessions = s
        .with_cookie(Method::GET, "/v1/sessions", &bob_cookie)
        .await
        .json();
    let other_id = sessions
        .as_array()
        .and_then(|a| a.iter().find(|i| i["current"] == false))
        .and_then(|i| i["id"].as_str())
        .expect("the other session")
        .to_owned();
    let cookie = format!("__Host-tessera_session={bob_cookie}");
    let body = json!({"password": PASSWORD}).to_string();
    let revoke = s
        .send(
            Method::DELETE,
            &format!("/v1/sessions/{other_id}"),
            &[
                ("cookie", cookie.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    drop(bob_other);

    // Turning MFA off with password and code (a step later, so the code is new).
    s.advance(31_000);
    let off = s
        .bearer_json(
            Method::DELETE,
            "/v1/mfa/totp",
            &alice.bearer,
            json!({"code": s.code(&alice.secret), "password": PASSWORD}),
        )
        .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT, "{:?}", off.json());

    // Signing out everywhere.
    let everywhere = s
        .bearer_json(
            Method::POST,
            "/v1/logout/everywhere",
            &bob.access,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(everywhere.status, StatusCode::NO_CONTENT);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_wrong_re_entered_password_counts_like_a_failed_login() {
    use hyper::{Method, StatusCode};
    use serde_json::json;
    use tessera_http::HttpConfig;
    use tessera_tests::PASSWORD;
    use tessera_tests::server::{Server, assert_problem};

    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let tokens = s.token_login("alice").await;
    s.advance(6 * 60 * 1000);
    let free = tessera_core::Policy::default()
        .throttle
        .account
        .free_failures;
    for _ in 0..free + 1 {
        let wrong = s
            .bearer_json(
                Method::POST,
                "/v1/mfa/totp",
                &tokens.access,
                json!({"password": "not the password 1A"}),
            )
            .await;
        let body = assert_problem(&wrong, StatusCode::FORBIDDEN);
        assert_eq!(body["type"], "urn:tessera:problem:wrong-current-password");
    }
    let failed = s
        .event_kinds()
        .await
        .into_iter()
        .filter(|k| *k == "LoginFailed")
        .count();
    assert_eq!(failed, usize::try_from(free + 1).expect("small"));
    // The account is now throttled: even the right password is refused, as at login.
    let right = s
        .bearer_json(
            Method::POST,
            "/v1/mfa/totp",
            &tokens.access,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_problem(&right, StatusCode::FORBIDDEN);
    let login = s
        .post_json(
            "/v1/login",
            json!({"username": "alice", "password": PASSWORD}),
            &[],
        )
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_with_mfa_on_a_code_beside_the_password_steps_up_actions_without_one() {
    use hyper::{Method, StatusCode};
    use serde_json::json;
    use tessera_http::HttpConfig;
    use tessera_tests::PASSWORD;
    use tessera_tests::server::{Server, assert_problem};

    let s = Server::start(HttpConfig::default()).await;
    let alice = s.enrolled("alice").await;
    // A second session of alice's, opened through the MFA step.
    let token = s.challenge("alice", "session").await;
    let other = s.answer(&token, "code", &s.code(&alice.secret)).await;
    assert_eq!(other.status, StatusCode::OK);
    let other_cookie = other.cookie().expect("cookie");
    s.advance(6 * 60 * 1000);
    let sessions = s
        .with_cookie(Method::GET, "/v1/sessions", &other_cookie)
        .await
        .json();
    let other_id = sessions
        .as_array()
        .and_then(|a| a.iter().find(|i| i["current"] == true))
        .and_then(|i| i["id"].as_str())
        .expect("the session")
        .to_owned();
    let path = format!("/v1/sessions/{other_id}");

    // A code alone is not a re-authentication; two codes are one too many.
    let alone = s
        .bearer_json(
            Method::DELETE,
            &path,
            &alice.bearer,
            json!({"code": s.code(&alice.secret)}),
        )
        .await;
    assert_problem(&alone, StatusCode::UNPROCESSABLE_ENTITY);
    let both = s
        .bearer_json(
            Method::DELETE,
            &path,
            &alice.bearer,
            json!({"password": PASSWORD, "code": "123456", "backup_code": alice.backup_codes[0]}),
        )
        .await;
    assert_problem(&both, StatusCode::UNPROCESSABLE_ENTITY);

    // A wrong code beside the right password is refused and counted as a failed MFA
    // attempt; the session lives on.
    let right = s.code(&alice.secret);
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    let refused = s
        .bearer_json(
            Method::DELETE,
            &path,
            &alice.bearer,
            json!({"password": PASSWORD, "code": wrong}),
        )
        .await;
    assert_problem(&refused, StatusCode::UNAUTHORIZED);
    let kinds = s.event_kinds().await;
    assert!(kinds.contains(&"MfaCodeFailed"), "{kinds:?}");
    assert!(!kinds.contains(&"SessionEnded"));

    // The right code ends the session and is spent: the same code cannot step up again.
    let ended = s
        .bearer_json(
            Method::DELETE,
            &path,
            &alice.bearer,
            json!({"password": PASSWORD, "code": right}),
        )
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{:?}", ended.json());
    let gone = s.with_cookie(Method::GET, "/v1/me", &other_cookie).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    let replayed = s
        .bearer_json(
            Method::POST,
            "/v1/logout/everywhere",
            &alice.bearer,
            json!({"password": PASSWORD, "code": right}),
        )
        .await;
    assert_problem(&replayed, StatusCode::UNAUTHORIZED);

    // A wrong password with the right code is still a wrong password.
    s.advance(31_000);
    let bad_password = s
        .bearer_json(
            Method::POST,
            "/v1/logout/everywhere",
            &alice.bearer,
            json!({"password": "not the password 1A", "code": s.code(&alice.secret)}),
        )
        .await;
    let body = assert_problem(&bad_password, StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "urn:tessera:problem:wrong-current-password");

    // A backup code beside the password signs out everywhere.
    let everywhere = s
        .bearer_json(
            Method::POST,
            "/v1/logout/everywhere",
            &alice.bearer,
            json!({"password": PASSWORD, "backup_code": alice.backup_codes[0]}),
        )
        .await;
    assert_eq!(everywhere.status, StatusCode::NO_CONTENT);
    assert_eq!(s.me(&alice.bearer).await.status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}
