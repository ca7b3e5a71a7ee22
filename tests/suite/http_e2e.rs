//! End to end over real HTTP: a hyper server on 127.0.0.1, the real engine on a sled store
//! in a temporary folder, and a hyper client. Time is a test clock the test moves.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;
use tessera_http::HttpConfig;
use tessera_tests::PASSWORD;
use tessera_tests::server::{Server, assert_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_me_sessions_logout() {
    let s = Server::start(HttpConfig::default()).await;
    let reg = s.register("Alice").await;
    assert_eq!(reg.status, StatusCode::CREATED);
    assert_eq!(reg.json()["username"], "Alice");
    assert_problem(&s.register("ALICE").await, StatusCode::CONFLICT);

    let login = s.login("alice", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let set = login.header("set-cookie").expect("cookie set").to_owned();
    for attr in [
        "__Host-tessera_session=tss_",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=43200",
    ] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(
        !set.contains("Domain"),
        "__Host- cookies must not carry Domain"
    );
    let cookie = login.cookie().expect("cookie value");

    let me = s.with_cookie(Method::GET, "/v1/me", &cookie).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "Alice");
    assert_eq!(me.json()["id"], reg.json()["id"]);

    let second = s
        .login("ALICE", PASSWORD)
        .await
        .cookie()
        .expect("second session");
    let list = s
        .with_cookie(Method::GET, "/v1/sessions", &cookie)
        .await
        .json();
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert_eq!(
        list.iter().filter(|x| x["current"] == json!(true)).count(),
        1
    );

    // Delete the other session from this one.
    let other = list
        .iter()
        .find(|x| x["current"] == json!(false))
        .expect("other")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let del = s
        .with_cookie(Method::DELETE, &format!("/v1/sessions/{other}"), &cookie)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &second).await,
        StatusCode::UNAUTHORIZED,
    );
    // Deleting it again, or a session that does not exist: 404.
    assert_problem(
        &s.with_cookie(Method::DELETE, &format!("/v1/sessions/{other}"), &cookie)
            .await,
        StatusCode::NOT_FOUND,
    );

    let out = s.with_cookie(Method::POST, "/v1/logout", &cookie).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    let after = s.with_cookie(Method::GET, "/v1/me", &cookie).await;
    assert_problem(&after, StatusCode::UNAUTHORIZED);
    assert!(after.header("www-authenticate").is_some());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_look_the_same_and_cost_the_same() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let hashed_before = s.engine.metrics().events_appended.load(Ordering::SeqCst);
    let wrong = s.login("alice", "Wrong password 1").await;
    let unknown = s.login("mallory", "Wrong password 1").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(
        wrong.body, unknown.body,
        "the bodies must not tell the cases apart"
    );
    // Both paths do one argon2 verification and one durable append: the same work.
    let metrics = s.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.contains("tessera_hash_completed_total 3"),
        "register + two checks: {text}"
    );
    assert_eq!(
        s.engine.metrics().events_appended.load(Ordering::SeqCst) - hashed_before,
        2
    );
    s.stop().await;
}

/// The problem codes a 422 lists for the password, in order.
fn password_codes(body: &serde_json::Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .inspect(|e| assert_eq!(e["pointer"], "/password"))
        .filter_map(|e| e["code"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_passwords_are_refused_with_every_reason_and_a_passphrase_is_accepted() {
    let s = Server::start(HttpConfig::default()).await;
    let head = s.engine.head_sequence();
    for (password, expected) in [
        // Common, and no composition rule would have caught it.
        (
            "Password1234!",
            &["password_too_common", "password_too_guessable"][..],
        ),
        // Among zxcvbn's common passwords, repeated.
        ("baseballbaseball", &["password_too_guessable"][..]),
        // The username padded with digits and symbols: zxcvbn alone would let it through.
        ("alice2024!!!!", &["password_contains_personal_info"][..]),
        // The email's local part.
        (
            "j.bloggs#2024#2024",
            &["password_contains_personal_info", "password_too_guessable"][..],
        ),
        // The service's name.
        ("Tessera2024!!!!", &["password_contains_personal_info"][..]),
        // Short, common and built on the username: all three listed.
        (
            "alice1!",
            &[
                "password_too_short",
                "password_contains_personal_info",
                "password_too_guessable",
            ][..],
        ),
    ] {
        let body = assert_problem(
            &s.post_json(
                "/v1/accounts",
                json!({"username": "alice", "email": "j.bloggs@example.com", "password": password}),
                &[],
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        let codes = password_codes(&body);
        assert_eq!(codes, expected, "{password}");
    }
    assert_eq!(s.engine.head_sequence(), head, "nothing was recorded");
    let ok = s
        .post_json(
            "/v1/accounts",
            json!({"username": "alice", "email": "j.bloggs@example.com",
                   "password": "correct horse battery staple"}),
            &[],
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_clear_errors_and_change_nothing() {
    let s = Server::start(HttpConfig::default()).await;
    let head = s.engine.head_sequence();
    let json_ct = [("content-type", "application/json")];
    assert_problem(
        &s.send(Method::POST, "/v1/accounts", &json_ct, "{\"username\": ")
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &s.send(
            Method::POST,
            "/v1/accounts",
            &json_ct,
            vec![0xff, 0xfe, b'{'],
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    let unknown_field = json!({"username": "alice", "password": PASSWORD, "admin": true});
    assert_problem(
        &s.post_json("/v1/accounts", unknown_field, &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let wrong_type = s
        .send(
            Method::POST,
            "/v1/accounts",
            &[("content-type", "text/plain")],
            "username=alice",
        )
        .await;
    assert_problem(&wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Over the 16 KiB limit but small enough to be written before the server answers: a
    // body the kernel cannot buffer would make the client see a reset instead of the 413.
    let huge = json!({"username": "alice", "password": "A1a".repeat(7_000)});
    assert_problem(
        &s.post_json("/v1/accounts", huge, &[]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    let long_password = s
        .post_json(
            "/v1/accounts",
            json!({"username": "alice", "password": "A1a".repeat(1000)}),
            &[],
        )
        .await;
    let body = assert_problem(&long_password, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["code"], "password_too_long");
    let absurd_name = s
        .post_json(
            "/v1/accounts",
            json!({"username": "x".repeat(5000), "password": PASSWORD}),
            &[],
        )
        .await;
    assert_eq!(
        assert_problem(&absurd_name, StatusCode::UNPROCESSABLE_ENTITY)["errors"][0]["pointer"],
        "/username"
    );
    let weak = assert_problem(
        &s.post_json(
            "/v1/accounts",
            json!({"username": "alice", "password": "short"}),
            &[],
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(
        weak["errors"].as_array().map(Vec::len),
        Some(2),
        "every problem is listed: too short, too guessable"
    );
    assert_problem(
        &s.send(Method::GET, "/v1/nowhere", &[], Bytes::new()).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &s.send(Method::PUT, "/v1/login", &[], Bytes::new()).await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
    assert_eq!(
        s.engine.head_sequence(),
        head,
        "no bad request appended anything"
    );
    // Absurd input on login: refused the same way as a wrong password, nothing opened.
    let absurd_login = s.login(&"y".repeat(5000), &"Z9z".repeat(400)).await;
    assert_problem(&absurd_login, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_idle_sessions_are_refused() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let forged = format!("tss_{}", "A".repeat(43));
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &forged).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", "not-even-close").await,
        StatusCode::UNAUTHORIZED,
    );

    // Idle: 30 minutes without a request ends it.
    let idle = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    s.advance(29 * 60 * 1000);
    assert_eq!(
        s.with_cookie(Method::GET, "/v1/me", &idle).await.status,
        StatusCode::OK,
        "activity extends it"
    );
    s.advance(29 * 60 * 1000);
    assert_eq!(
        s.with_cookie(Method::GET, "/v1/me", &idle).await.status,
        StatusCode::OK
    );
    s.advance(30 * 60 * 1000 + 1);
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &idle).await,
        StatusCode::UNAUTHORIZED,
    );

    // Absolute: 12 hours, however active.
    let busy = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    for _ in 0..24 {
        s.advance(29 * 60 * 1000);
        assert_eq!(
            s.with_cookie(Method::GET, "/v1/me", &busy).await.status,
            StatusCode::OK
        );
    }
    s.advance(29 * 60 * 1000);
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &busy).await,
        StatusCode::UNAUTHORIZED,
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_session_id_is_never_adopted() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let planted = format!("tss_{}", "B".repeat(43));
    let header = format!("__Host-tessera_session={planted}");
    let login = s
        .post_json(
            "/v1/login",
            json!({"username": "alice", "password": PASSWORD, "mode": "session"}),
            &[("cookie", header.as_str())],
        )
        .await;
    let issued = login.cookie().expect("a fresh cookie");
    assert_ne!(issued, planted);
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &planted).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(
        s.with_cookie(Method::GET, "/v1/me", &issued).await.status,
        StatusCode::OK
    );
    // And a second login from the same browser gets yet another id.
    let again = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    assert_ne!(again, issued);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_cookie_changes_are_refused() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let cookie = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    let header = format!("__Host-tessera_session={cookie}");
    let head = s.engine.head_sequence();
    for extra in [
        [("sec-fetch-site", "cross-site")],
        [("origin", "https://evil.example")],
    ] {
        let mut headers = vec![("cookie", header.as_str())];
        headers.extend_from_slice(&extra);
        let out = s
            .send(Method::POST, "/v1/logout", &headers, Bytes::new())
            .await;
        assert_problem(&out, StatusCode::FORBIDDEN);
        let change = json!({"current_password": PASSWORD, "new_password": "Another good 1 pass"});
        let mut with_json = headers.clone();
        with_json.push(("content-type", "application/json"));
        let pw = s
            .send(Method::POST, "/v1/password", &with_json, change.to_string())
            .await;
        assert_problem(&pw, StatusCode::FORBIDDEN);
        // Login CSRF: a cross-site form cannot log the browser into someone's account.
        let login = s
            .post_json(
                "/v1/login",
                json!({"username": "alice", "password": PASSWORD, "mode": "session"}),
                &extra,
            )
            .await;
        assert_problem(&login, StatusCode::FORBIDDEN);
    }
    assert_eq!(s.engine.head_sequence(), head, "nothing changed");
    assert_eq!(
        s.with_cookie(Method::GET, "/v1/me", &cookie).await.status,
        StatusCode::OK
    );
    // The same request from the same origin goes through.
    let same = s
        .send(
            Method::POST,
            "/v1/logout",
            &[
                ("cookie", header.as_str()),
                ("sec-fetch-site", "same-origin"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(same.status, StatusCode::NO_CONTENT);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_ends_other_sessions_and_rotates_this_one() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let here = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    let elsewhere = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    let header = format!("__Host-tessera_session={here}");
    let headers = [
        ("cookie", header.as_str()),
        ("content-type", "application/json"),
    ];
    let wrong =
        json!({"current_password": "Not the password 1", "new_password": "Another good 1 pass"});
    assert_problem(
        &s.send(Method::POST, "/v1/password", &headers, wrong.to_string())
            .await,
        StatusCode::FORBIDDEN,
    );
    let weak = json!({"current_password": PASSWORD, "new_password": "weak"});
    assert_problem(
        &s.send(Method::POST, "/v1/password", &headers, weak.to_string())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let good = json!({"current_password": PASSWORD, "new_password": "Another good 1 pass"});
    let changed = s
        .send(Method::POST, "/v1/password", &headers, good.to_string())
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    let rotated = changed
        .cookie()
        .expect("a fresh session id after a privilege change");
    assert_ne!(rotated, here);
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &here).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &elsewhere).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(
        s.with_cookie(Method::GET, "/v1/me", &rotated).await.status,
        StatusCode::OK
    );
    assert_problem(&s.login("alice", PASSWORD).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.login("alice", "Another good 1 pass").await.status,
        StatusCode::OK
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let s = Server::start(HttpConfig::default()).await;
    // The first signing key was recorded at start-up: one event, one sync.
    assert_eq!(s.engine.head_sequence(), 1);
    // The account and the counted registration attempt: two events, one sync.
    s.register("alice").await;
    let health = s.send(Method::GET, "/healthz", &[], Bytes::new()).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["log_head"], json!(3));
    let metrics = s.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    for needle in [
        "tessera_events_appended_total 3",
        "tessera_durable_syncs_total 2",
        "tessera_http_requests_total{route=\"accounts\",status=\"2xx\"} 1",
        "tessera_http_request_duration_seconds_bucket{route=\"accounts\",le=\"+Inf\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    s.stop().await;
}

/// Reads whatever the server sends until it closes or `secs` pass.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, secs: u64) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        stream.read_to_end(&mut buf),
    )
    .await;
    read.ok().map(|_| String::from_utf8_lossy(&buf).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_too_many_connections_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let config = HttpConfig {
        header_timeout_ms: 300,
        request_timeout_ms: 500,
        connections_max: 2,
        ..HttpConfig::default()
    };
    let s = Server::start(config).await;

    // Headers that never finish: the connection is closed after the header timeout.
    let mut slow_headers = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connects");
    slow_headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    let answer = read_until_closed(&mut slow_headers, 5)
        .await
        .expect("closed within the timeout, not left hanging");
    assert!(!answer.contains("200 OK"), "{answer}");
    drop(slow_headers);

    // A body that trickles: 408 problem+json after the request timeout.
    let mut slow_body = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connects");
    slow_body
        .write_all(b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
        .await
        .expect("writes");
    let answer = read_until_closed(&mut slow_body, 5)
        .await
        .expect("answered within the timeout");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"));
    drop(slow_body);

    // Two open connections are the limit: a third is closed at once, unanswered.
    let _a = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connects");
    let _b = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connects");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("the kernel accepts");
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut third, 5).await.unwrap_or_default();
    assert!(
        answer.is_empty(),
        "a connection over the limit gets no answer: {answer}"
    );
    drop((_a, _b));
    s.stop().await;
}

/// Sends `request` as raw bytes and returns the response head and body as text.
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_conformance_nosniff_allow_head_and_host() {
    let s = Server::start(HttpConfig::default()).await;
    // Every answer says nosniff: a success, a problem, a 404.
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/v1/me"),
        (Method::GET, "/v1/nowhere"),
    ] {
        let a = s.send(method, path, &[], Bytes::new()).await;
        assert_eq!(
            a.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    // A 405 says what the resource accepts.
    let put = s.send(Method::PUT, "/v1/login", &[], Bytes::new()).await;
    assert_problem(&put, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.header("allow"), Some("POST"));
    let post = s.send(Method::POST, "/v1/me", &[], Bytes::new()).await;
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let mfa = s.send(Method::GET, "/v1/mfa/totp", &[], Bytes::new()).await;
    assert_eq!(mfa.header("allow"), Some("POST, DELETE"));
    // HEAD answers wherever GET does: the same status and headers, no body.
    for path in [
        "/healthz",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ] {
        let get = s.send(Method::GET, path, &[], Bytes::new()).await;
        let head = s.send(Method::HEAD, path, &[], Bytes::new()).await;
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
        assert!(head.body.is_empty(), "{path}: HEAD has no body");
    }
    let head_me = s.send(Method::HEAD, "/v1/me", &[], Bytes::new()).await;
    assert_eq!(head_me.status, StatusCode::UNAUTHORIZED);
    assert!(head_me.body.is_empty());
    // Host: none on HTTP/1.1, or two, is a 400; HTTP/1.0 may omit it.
    let none = raw(s.addr, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(none.starts_with("HTTP/1.1 400"), "{none}");
    assert!(none.contains("no Host header"), "{none}");
    let two = raw(
        s.addr,
        "GET /healthz HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(two.starts_with("HTTP/1.1 400"), "{two}");
    let old = raw(s.addr, "GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(
        old.starts_with("HTTP/1.0 200") || old.starts_with("HTTP/1.1 200"),
        "{old}"
    );
    let one = raw(
        s.addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(one.starts_with("HTTP/1.1 200"), "{one}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_carrying_a_live_session_cookie_ends_that_session() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    s.register("bob").await;
    let alice = s
        .login("alice", PASSWORD)
        .await
        .cookie()
        .expect("alice's cookie");
    let cookie = format!("__Host-tessera_session={alice}");
    // Bob logs in from the browser that holds Alice's live cookie.
    let bob = s
        .post_json(
            "/v1/login",
            json!({"username": "bob", "password": PASSWORD, "mode": "session"}),
            &[("cookie", cookie.as_str())],
        )
        .await;
    assert_eq!(bob.status, StatusCode::OK);
    let bob = bob.cookie().expect("bob's cookie");
    assert_ne!(bob, alice, "a fresh session id");
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &alice).await,
        StatusCode::UNAUTHORIZED,
    );
    let me = s.with_cookie(Method::GET, "/v1/me", &bob).await;
    assert_eq!(me.json()["username"], "bob");
    // A token-mode login carrying a live cookie ends it too.
    let again = s.login("alice", PASSWORD).await.cookie().expect("a cookie");
    let cookie = format!("__Host-tessera_session={again}");
    let tokens = s
        .post_json(
            "/v1/login",
            json!({"username": "alice", "password": PASSWORD, "mode": "token"}),
            &[("cookie", cookie.as_str())],
        )
        .await;
    assert_eq!(tokens.status, StatusCode::OK);
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &again).await,
        StatusCode::UNAUTHORIZED,
    );
    // A failed login ends nothing: the cookie's owner is still logged in.
    let bystander = format!("__Host-tessera_session={bob}");
    let failed = s
        .post_json(
            "/v1/login",
            json!({"username": "alice", "password": "Wrong horse 9 battery", "mode": "session"}),
            &[("cookie", bystander.as_str())],
        )
        .await;
    assert_problem(&failed, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.with_cookie(Method::GET, "/v1/me", &bob).await.status,
        StatusCode::OK
    );
    let kinds = s.event_kinds().await;
    assert_eq!(
        kinds.iter().filter(|k| **k == "SessionEnded").count(),
        2,
        "{kinds:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_are_counted_and_their_log_records_bounded() {
    use tessera_http::security_log::{RECORDS_PER_WINDOW, SecurityEvent};
    let captured = capture_logs();
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    s.register("bob").await;
    let alice = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    let bob = s.token_login("bob").await;
    let total = |e: SecurityEvent| s.app.metrics.security.total(e);
    let suppressed = |e: SecurityEvent| s.app.metrics.security.suppressed(e);

    // A flood of forged bearer tokens, all in one window of the test clock.
    let forged = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsiLCJ0eXAiOiJhdCtqd3QifQ.e30.c2lnbmF0dXJl";
    let bearer = format!("Bearer {forged}");
    let flood = 1_000u64;
    for _ in 0..flood {
        let a = s
            .send(
                Method::GET,
                "/v1/me",
                &[("authorization", &bearer)],
                Bytes::new(),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(total(SecurityEvent::TokenForged), flood);
    assert_eq!(
        suppressed(SecurityEvent::TokenForged),
        flood - RECORDS_PER_WINDOW,
        "at most the bound is written per window"
    );
    // An expired token is not forged.
    s.advance(24 * 60 * 60 * 1000);
    let a = s.me(&bob.access).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(total(SecurityEvent::TokenForged), flood);

    // Each other kind, once.
    let alice = s.login("alice", PASSWORD).await.cookie().unwrap_or(alice);
    let bob = s.token_login("bob").await;
    let list = s
        .with_cookie(Method::GET, "/v1/sessions", &alice)
        .await
        .json();
    let id = list[0]["id"].as_str().expect("id").to_owned();
    let del = s
        .send(
            Method::DELETE,
            &format!("/v1/sessions/{id}"),
            &[("authorization", &format!("Bearer {}", bob.access))],
            Bytes::new(),
        )
        .await;
    assert_eq!(del.status, StatusCode::NOT_FOUND);
    assert_eq!(total(SecurityEvent::ForeignResource), 1);

    let cross = s
        .send(
            Method::POST,
            "/v1/logout",
            &[
                ("cookie", &format!("__Host-tessera_session={alice}")),
                ("sec-fetch-site", "cross-site"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(total(SecurityEvent::CrossSiteRefused), 1);

    let intro = s
        .post_form(
            "/oauth/introspect",
            "token=x",
            &[("authorization", "Basic d3Jvbmc6c2VjcmV0")],
        )
        .await;
    assert_eq!(intro.status, StatusCode::UNAUTHORIZED);
    assert_eq!(total(SecurityEvent::ClientAuthFailed), 1);

    let mut throttled = false;
    for i in 0..20 {
        if s.register(&format!("many{i}")).await.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
    }
    assert!(throttled);
    assert_eq!(total(SecurityEvent::Throttled), 1);

    let metrics = s.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    for needle in [
        format!("tessera_security_events_total{{event=\"token_forged\"}} {flood}"),
        "tessera_security_events_total{event=\"foreign_resource\"} 1".to_owned(),
        "tessera_security_events_total{event=\"cross_site_refused\"} 1".to_owned(),
        "tessera_security_events_total{event=\"client_auth_failed\"} 1".to_owned(),
        "tessera_security_events_total{event=\"throttled\"} 1".to_owned(),
        format!(
            "tessera_security_log_suppressed_total{{event=\"token_forged\"}} {}",
            flood - RECORDS_PER_WINDOW
        ),
    ] {
        assert!(text.contains(&needle), "missing {needle} in\n{text}");
    }
    // The records name what happened and never a secret. (Other tests' records may be in
    // the buffer too: the subscriber is the process's.)
    let logs = captured.text();
    assert!(logs.contains("security_event=\"token_forged\""), "{logs}");
    assert!(
        logs.contains("security_event=\"foreign_resource\""),
        "{logs}"
    );
    for secret in [
        forged,
        bob.access.as_str(),
        alice.as_str(),
        PASSWORD,
        "d3Jvbmc6c2VjcmV0",
    ] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
    s.stop().await;
}

/// Everything the process logs from now on, at INFO and above.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let out = Captured::default();
            let writer = out.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
            out
        })
        .clone()
}
