//! MFA and login defences over real HTTP: TOTP enrolment and the second login step, the
//! 5-attempt challenge, code replay, backup codes, disabling, throttling and what an outsider
//! can tell from a refusal.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;
use tessera_http::HttpConfig;
use tessera_tests::PASSWORD;
use tessera_tests::server::{Answer, Server, assert_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_then_login_needs_the_second_factor() {
    let s = Server::start(HttpConfig::default()).await;
    let alice = s.enrolled("alice").await;
    let me = s
        .bearer_json(Method::GET, "/v1/me", &alice.bearer, json!({}))
        .await
        .json();
    assert_eq!(
        (
            me["mfa_enabled"].as_bool(),
            me["backup_codes_remaining"].as_u64()
        ),
        (Some(true), Some(10))
    );

    let token = s.challenge("alice", "session").await;
    let done = s.answer(&token, "code", &s.code(&alice.secret)).await;
    assert_eq!(
        done.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&done.body)
    );
    let cookie = done
        .cookie()
        .expect("the session, in the mode the login asked for");
    assert_eq!(
        s.with_cookie(Method::GET, "/v1/me", &cookie).await.status,
        StatusCode::OK
    );
    // The challenge is used up.
    assert_problem(
        &s.answer(&token, "code", &s.code(&alice.secret)).await,
        StatusCode::UNAUTHORIZED,
    );

    // The same code again (same 30 s step), in a new challenge: refused, within the drift window too.
    let replay = s.challenge("alice", "token").await;
    assert_problem(
        &s.answer(&replay, "code", &s.code(&alice.secret)).await,
        StatusCode::UNAUTHORIZED,
    );
    s.advance(30_000);
    let tokens = s.answer(&replay, "code", &s.code(&alice.secret)).await;
    assert_eq!(tokens.status, StatusCode::OK);
    assert!(
        tokens.json()["access_token"].is_string(),
        "token mode gets tokens"
    );

    // A backup code works once.
    let first = s.challenge("alice", "token").await;
    assert_eq!(
        s.answer(&first, "backup_code", &alice.backup_codes[0])
            .await
            .status,
        StatusCode::OK
    );
    let second = s.challenge("alice", "token").await;
    assert_problem(
        &s.answer(&second, "backup_code", &alice.backup_codes[0])
            .await,
        StatusCode::UNAUTHORIZED,
    );
    let me = s
        .bearer_json(Method::GET, "/v1/me", &alice.bearer, json!({}))
        .await
        .json();
    assert_eq!(me["backup_codes_remaining"], json!(9));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_attempt_fails_even_with_the_right_code() {
    let s = Server::start(HttpConfig::default()).await;
    let alice = s.enrolled("alice").await;
    let token = s.challenge("alice", "session").await;
    for _ in 0..5 {
        let wrong = if s.code(&alice.secret) == "000000" {
            "111111"
        } else {
            "000000"
        };
        assert_problem(
            &s.answer(&token, "code", wrong).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    let sixth = s.answer(&token, "code", &s.code(&alice.secret)).await;
    assert_problem(&sixth, StatusCode::UNAUTHORIZED);
    assert!(sixth.cookie().is_none());
    // Backup codes count against the same limit, and the challenge stays dead.
    assert_problem(
        &s.answer(&token, "backup_code", &alice.backup_codes[0])
            .await,
        StatusCode::UNAUTHORIZED,
    );
    // The backup code was not spent by the dead challenge: a new login can use it.
    s.advance(60_000);
    let fresh = s.challenge("alice", "session").await;
    assert_eq!(
        s.answer(&fresh, "backup_code", &alice.backup_codes[0])
            .await
            .status,
        StatusCode::OK
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_codes_and_tokens_get_clear_errors_and_spend_nothing() {
    let s = Server::start(HttpConfig::default()).await;
    let alice = s.enrolled("alice").await;
    let bob = s.enrolled("bob").await;
    let token = s.challenge("alice", "session").await;
    for bad in ["12345", "1234567", "12a456", "", "１２３４５６"] {
        assert_problem(
            &s.answer(&token, "code", bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    assert_problem(
        &s.answer(&token, "backup_code", "not a code").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let neither = s
        .post_json("/v1/login/mfa", json!({"mfa_token": token}), &[])
        .await;
    assert_problem(&neither, StatusCode::UNPROCESSABLE_ENTITY);
    // Malformed codes were refused before the challenge: it still has all its attempts, so
    // four wrong ones and then the right one succeed.
    for _ in 0..4 {
        // A code for another account.
        assert_problem(
            &s.answer(&token, "code", &s.code(&bob.secret)).await,
            StatusCode::UNAUTHORIZED,
        );
        s.advance(30_000);
    }
    assert_eq!(
        s.answer(&token, "code", &s.code(&alice.secret))
            .await
            .status,
        StatusCode::OK
    );

    assert_problem(
        &s.answer("not-a-token", "code", "123456").await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &s.answer(&format!("tsm_{}", "A".repeat(43)), "code", "123456")
            .await,
        StatusCode::UNAUTHORIZED,
    );
    // Enrolling again while on, and confirming with nothing pending: 409 (while alice's
    // authentication is still recent enough for the step-up rule).
    assert_problem(
        &s.bearer_json(Method::POST, "/v1/mfa/totp", &alice.bearer, json!({}))
            .await,
        StatusCode::CONFLICT,
    );
    let late = s.challenge("alice", "session").await;
    s.advance(5 * 60 * 1000 + 1000);
    assert_problem(
        &s.answer(&late, "code", &s.code(&alice.secret)).await,
        StatusCode::UNAUTHORIZED,
    );
    s.register("carol").await;
    let carol = s
        .post_json(
            "/v1/login",
            json!({"username": "carol", "password": PASSWORD}),
            &[],
        )
        .await
        .json();
    let carol_bearer = carol["access_token"].as_str().expect("token");
    let confirm = s
        .bearer_json(
            Method::POST,
            "/v1/mfa/totp/confirm",
            carol_bearer,
            json!({"code": "123456"}),
        )
        .await;
    assert_problem(&confirm, StatusCode::CONFLICT);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_replacing_codes_and_disabling() {
    let s = Server::start(HttpConfig::default()).await;
    let alice = s.enrolled("alice").await;
    // A user who lost the device logs in with a backup code...
    let token = s.challenge("alice", "session").await;
    let here = s
        .answer(&token, "backup_code", &alice.backup_codes[1])
        .await
        .cookie()
        .expect("cookie");
    let elsewhere_token = s.challenge("alice", "session").await;
    let elsewhere = s
        .answer(&elsewhere_token, "backup_code", &alice.backup_codes[2])
        .await
        .cookie()
        .expect("cookie");
    // ...replaces the codes (the old set stops working)...
    let header = format!("__Host-tessera_session={here}");
    let cookie_json = [
        ("cookie", header.as_str()),
        ("content-type", "application/json"),
    ];
    let replaced = s
        .send(
            Method::POST,
            "/v1/mfa/backup-codes",
            &cookie_json,
            json!({"backup_code": alice.backup_codes[3]}).to_string(),
        )
        .await;
    assert_eq!(
        replaced.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&replaced.body)
    );
    let new_codes: Vec<String> = replaced.json()["backup_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(new_codes.len(), 10);
    let old = s.challenge("alice", "session").await;
    assert_problem(
        &s.answer(&old, "backup_code", &alice.backup_codes[4]).await,
        StatusCode::UNAUTHORIZED,
    );
    // ...and turns TOTP off: the other sessions end, this one stays.
    let off = s
        .send(
            Method::DELETE,
            "/v1/mfa/totp",
            &cookie_json,
            json!({"backup_code": new_codes[0]}).to_string(),
        )
        .await;
    assert_eq!(
        off.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&off.body)
    );
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &elsewhere).await,
        StatusCode::UNAUTHORIZED,
    );
    let me = s.with_cookie(Method::GET, "/v1/me", &here).await.json();
    assert_eq!(me["mfa_enabled"], false);
    let plain = s
        .post_json(
            "/v1/login",
            json!({"username": "alice", "password": PASSWORD}),
            &[],
        )
        .await
        .json();
    assert!(
        plain["access_token"].is_string(),
        "without MFA a password is enough again"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_slows_guessing_and_lets_the_owner_back_in() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let body_of = |a: &Answer| String::from_utf8_lossy(&a.body).to_string();
    let wrong = s.login("alice", "Wrong password 1").await;
    let unknown = s.login("nobody-here", "Wrong password 1").await;
    assert_eq!(body_of(&wrong), body_of(&unknown));
    // Guessing one account: after the free failures the account waits, but an outsider sees
    // the same 401 as a wrong password (a 429 would say the account exists).
    for _ in 0..8 {
        let a = s.login("alice", "Wrong password 1").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body_of(&a),
            body_of(&unknown),
            "a throttled account answers like a wrong password"
        );
    }
    let throttled_right = s.login("alice", PASSWORD).await;
    assert_eq!(
        throttled_right.status,
        StatusCode::UNAUTHORIZED,
        "the right password waits too"
    );
    // Once the wait is over, the owner gets in.
    s.advance(16 * 60 * 1000);
    assert_eq!(s.login("alice", PASSWORD).await.status, StatusCode::OK);

    // Stuffing from one address across many accounts: the address is slowed with 429.
    let mut saw_429 = None;
    for i in 0..40 {
        let a = s.login(&format!("victim{i}"), "Leaked password 1").await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            saw_429 = Some(a);
            break;
        }
    }
    let limited = saw_429.expect("an address failing across many accounts is slowed");
    assert_problem(&limited, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
    let metrics = s.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(metrics.contains("tessera_throttled_total 1\n"), "{metrics}");
    assert!(!metrics.contains("tessera_failures_recorded_total 0\n"));
    s.advance((retry + 1) * 1000);
    assert_eq!(
        s.login("alice", PASSWORD).await.status,
        StatusCode::OK,
        "after the wait the address may try again"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_passwords_are_refused_whatever_the_rules_say() {
    let s = Server::start(HttpConfig::default()).await;
    let a = s
        .post_json(
            "/v1/accounts",
            json!({"username": "dave", "password": "Password1234"}),
            &[],
        )
        .await;
    let body = assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY);
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert!(codes.contains(&"password_too_common"), "{codes:?}");
    let _ = s.send(Method::GET, "/healthz", &[], Bytes::new()).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_from_one_address_are_slowed_with_429_before_any_hash() {
    let s = Server::start(HttpConfig::default()).await;
    let free = tessera_core::throttle::ThrottlePolicy::default()
        .registration
        .free_failures;
    // Creating accounts and probing taken names count alike.
    assert_eq!(s.register("alice").await.status, StatusCode::CREATED);
    for i in 1..free {
        let name = if i % 2 == 0 {
            "ALICE".to_owned()
        } else {
            format!("user{i}")
        };
        let a = s.register(&name).await;
        assert!(
            a.status == StatusCode::CREATED || a.status == StatusCode::CONFLICT,
            "free attempt {i}: {}",
            a.status
        );
    }
    let kinds = s.event_kinds().await;
    let counted = kinds
        .iter()
        .filter(|k| **k == "RegistrationAttempted")
        .count();
    assert_eq!(u32::try_from(counted).ok(), Some(free));
    for name in ["ALICE", "someone-new"] {
        let limited = s.register(name).await;
        assert_problem(&limited, StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = limited
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert_eq!(retry, 10);
    }
    // Refused in the plan: nothing reached the writer, nothing was counted.
    assert_eq!(s.event_kinds().await, kinds);
    s.advance(10_000);
    assert_eq!(s.register("someone-new").await.status, StatusCode::CREATED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_mfa_limits_an_account_without_it_to_enrolment() {
    let mut policy = tessera_tests::policy();
    policy.mfa.required = true;
    let s = Server::start_with_policy(HttpConfig::default(), policy).await;
    s.register("bob").await;
    // The password login still works: the limit applies to what the session may do.
    let login = s
        .post_json(
            "/v1/login",
            json!({"username": "bob", "password": PASSWORD}),
            &[],
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let bearer = login.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let me = s.me(&bearer).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["mfa_enrolment_required"], json!(true));
    let refused = s
        .bearer_json(Method::GET, "/v1/sessions", &bearer, json!({}))
        .await;
    let body = assert_problem(&refused, StatusCode::FORBIDDEN);
    assert_eq!(
        body["type"],
        json!("urn:tessera:problem:mfa-enrolment-required")
    );
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("TOTP")));

    let started = s
        .bearer_json(Method::POST, "/v1/mfa/totp", &bearer, json!({}))
        .await;
    assert_eq!(started.status, StatusCode::OK);
    let secret = data_encoding::BASE32_NOPAD
        .decode(
            started.json()["secret"]
                .as_str()
                .expect("secret")
                .as_bytes(),
        )
        .expect("base32");
    // Still limited while the enrolment waits for its code.
    assert_eq!(
        s.bearer_json(Method::GET, "/v1/sessions", &bearer, json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let confirmed = s
        .bearer_json(
            Method::POST,
            "/v1/mfa/totp/confirm",
            &bearer,
            json!({"code": s.code(&secret)}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK);
    // The same token now reaches every route, and the next login asks for the code.
    assert_eq!(
        s.bearer_json(Method::GET, "/v1/sessions", &bearer, json!({}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.me(&bearer).await.json()["mfa_enrolment_required"],
        json!(false)
    );
    s.advance(30_000);
    s.challenge("bob", "token").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_required_mfa_an_account_without_it_uses_every_route() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("carol").await;
    let tokens = s.token_login("carol").await;
    assert_eq!(
        s.me(&tokens.access).await.json()["mfa_enrolment_required"],
        json!(false)
    );
    assert_eq!(
        s.bearer_json(Method::GET, "/v1/sessions", &tokens.access, json!({}))
            .await
            .status,
        StatusCode::OK
    );
    s.stop().await;
}
