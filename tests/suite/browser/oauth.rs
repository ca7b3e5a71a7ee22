//! The OAuth pages end to end in the browser, with an OAuth client library that is not
//! ours (oauth4webapi under node): sign in with the second factor, consent, the code at the
//! client's redirect URI, its exchange; the skipped consent, a denial, a forged state; and
//! the device flow approved in the browser while the client polls.

use std::io::BufRead;
use std::time::Duration;

use hyper::{Method, StatusCode};
use tessera_http::HttpConfig;
use tessera_tests::server::Server;

use super::harness::{Browser, Callback, NodeClient, register_client, sign_in};

const SCOPES: &str = "openid notes.read";

fn s(v: &str) -> String {
    v.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_with_login_mfa_and_consent_then_exchange_by_an_independent_client() {
    let Some(node) = NodeClient::find() else {
        return;
    };
    let Some(mut b) = Browser::start("oauth_code").await else {
        return;
    };
    let srv = Server::start(HttpConfig::default()).await;
    let alice = srv.enrolled("alice").await;
    let app = Callback::start().await;
    register_client(
        &srv,
        "notes-app",
        "Notes App",
        &app.redirect_uri(),
        &["openid", "profile", "notes.read", "notes.write"],
    )
    .await;
    let base = format!("http://{}", srv.addr);
    let issuer = srv.engine.policy().token.issuer.clone();
    let start = |scope: &str| {
        node.run(vec![
            s("authorize-url"),
            base.clone(),
            issuer.clone(),
            s("notes-app"),
            app.redirect_uri(),
            s(scope),
        ])
    };

    let (ok, request) = start(SCOPES).await;
    assert!(ok, "{request}");
    b.goto(request["url"].as_str().unwrap()).await;
    assert!(
        b.path()
            .await
            .starts_with("/login?return_to=%2Foauth%2Fauthorize"),
        "{}",
        b.path().await
    );
    sign_in(&mut b, &srv, "alice", &alice.secret).await;

    // Consent names the client and every scope.
    assert_eq!(b.heading().await, "Allow access?");
    let text = b.text().await;
    assert!(
        text.contains("Notes App wants to access your account alice"),
        "{text}"
    );
    assert!(
        text.contains("notes.read") && text.contains("openid"),
        "{text}"
    );
    b.shot("consent").await;
    b.press("Allow").await;

    // The code arrives at the client, with state and iss.
    let callback = app.last().expect("the client was called");
    assert!(
        callback.contains("code=tac_") && callback.contains("&iss="),
        "{callback}"
    );
    b.shot("callback").await;
    let verifier = request["verifier"].as_str().unwrap().to_owned();
    let state = request["state"].as_str().unwrap().to_owned();

    // A forged or missing state on the way back: the client library refuses before it
    // spends the code.
    let forged = callback.replace(&format!("state={state}"), "state=forged-by-attacker");
    let (ok, refused) = node
        .run(vec![
            s("exchange"),
            base.clone(),
            issuer.clone(),
            s("notes-app"),
            app.redirect_uri(),
            forged,
            state.clone(),
            verifier.clone(),
        ])
        .await;
    assert!(!ok, "a forged state is refused: {refused}");
    let missing = callback.replace(&format!("state={state}"), "");
    let (ok, _) = node
        .run(vec![
            s("exchange"),
            base.clone(),
            issuer.clone(),
            s("notes-app"),
            app.redirect_uri(),
            missing,
            state.clone(),
            verifier.clone(),
        ])
        .await;
    assert!(!ok, "a missing state is refused");

    let (ok, tokens) = node
        .run(vec![
            s("exchange"),
            base.clone(),
            issuer.clone(),
            s("notes-app"),
            app.redirect_uri(),
            callback.clone(),
            state.clone(),
            verifier.clone(),
        ])
        .await;
    assert!(ok, "{tokens}");
    let access = tokens["access_token"].as_str().expect("an access token");
    assert_eq!(
        tokens["token_type"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("bearer")
    );
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let me = srv.me(access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "alice");

    // The same client and scopes again: no consent page, straight back with a code.
    let (_, again) = start(SCOPES).await;
    b.goto(again["url"].as_str().unwrap()).await;
    assert_eq!(
        b.path().await.split('?').next(),
        Some("/cb"),
        "consent skipped"
    );
    assert!(app.last().unwrap().contains("code=tac_"));
    b.shot("consent-skipped").await;

    // More scopes than granted: consent again; deny answers access_denied with the state.
    let (_, more) = start("openid notes.write").await;
    b.goto(more["url"].as_str().unwrap()).await;
    assert_eq!(b.heading().await, "Allow access?");
    assert!(b.text().await.contains("notes.write"));
    b.shot("consent-more-scopes").await;
    b.press("Deny").await;
    let denied = app.last().unwrap();
    assert!(denied.contains("error=access_denied"), "{denied}");
    assert!(
        denied.contains(&format!("state={}", more["state"].as_str().unwrap())),
        "{denied}"
    );
    b.shot("denied").await;

    // An untrusted redirect URI is shown on a page, never followed.
    let evil = again["url"]
        .as_str()
        .unwrap()
        .replace(&format!("{}%2Fcb", app.addr.port()), "1%2Fevil");
    b.goto(&evil).await;
    assert!(
        b.path().await.starts_with("/oauth/authorize"),
        "{}",
        b.path().await
    );
    assert!(
        b.text().await.contains("not registered"),
        "{}",
        b.text().await
    );
    b.shot("untrusted-redirect").await;

    b.close().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_approved_in_the_browser_while_the_client_polls() {
    let Some(node) = NodeClient::find() else {
        return;
    };
    let Some(mut b) = Browser::start("oauth_device").await else {
        return;
    };
    let srv = Server::start(HttpConfig::default()).await;
    let alice = srv.enrolled("alice").await;
    register_client(
        &srv,
        "tv-app",
        "Living Room TV",
        "http://127.0.0.1:1/unused",
        &["openid", "media.play"],
    )
    .await;
    let base = format!("http://{}", srv.addr);
    let issuer = srv.engine.policy().token.issuer.clone();
    // The server's clock follows real time, so the client's polling interval passes.
    let clock = srv.clock.clone();
    let ticking = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            clock.advance_ms(100);
        }
    });

    // Wrong codes first: five are answered with the form, the sixth must wait.
    b.goto(&format!("{base}/device")).await;
    sign_in(&mut b, &srv, "alice", &alice.secret).await;
    assert_eq!(b.heading().await, "Connect a device", "{}", b.path().await);
    b.shot("device-code").await;
    for i in 0..5 {
        b.fill("user_code", "BBBB-BBBB").await;
        b.press("Continue").await;
        assert!(
            b.text().await.contains("That code is not valid"),
            "attempt {i}: {}",
            b.text().await
        );
    }
    b.shot("device-wrong-code").await;
    b.fill("user_code", "BBBB-BBBB").await;
    b.press("Continue").await;
    assert_eq!(b.heading().await, "Too many attempts");
    b.shot("device-throttled").await;
    // Past the window, the same browser session may try again.
    srv.advance(16 * 60 * 1000);

    let mut child = node.spawn(vec![
        s("device"),
        base.clone(),
        issuer,
        s("tv-app"),
        s("openid media.play"),
    ]);
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let first: serde_json::Value =
        serde_json::from_str(&lines.recv().await.expect("the device's first line")).expect("JSON");
    let complete = first["verification_uri_complete"]
        .as_str()
        .expect("verification_uri_complete");
    let path = &complete[complete.find("/device").expect("a /device URL")..];

    b.goto(&format!("{base}{path}")).await;
    assert_eq!(b.heading().await, "Connect a device?");
    let text = b.text().await;
    assert!(
        text.contains("Living Room TV") && text.contains("media.play"),
        "{text}"
    );
    assert!(text.contains("127.0.0.1"), "the device's address: {text}");
    assert!(
        text.contains(first["user_code"].as_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("ago") || text.contains("just now"), "{text}");
    b.shot("device-approve").await;
    b.press("Approve").await;
    assert_eq!(b.heading().await, "Device connected");
    b.shot("device-connected").await;

    let tokens = tokio::time::timeout(Duration::from_secs(60), lines.recv())
        .await
        .expect("the client gets tokens within a minute")
        .expect("a line");
    let tokens: serde_json::Value = serde_json::from_str(&tokens).expect("JSON");
    let access = tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{tokens}"));
    assert_eq!(srv.me(access).await.json()["username"], "alice");
    let _ = child.wait();
    ticking.abort();

    // The consent recorded by the approval is listed with the user's grants.
    let grants = srv
        .send(
            Method::GET,
            "/v1/grants",
            &[("authorization", &format!("Bearer {access}"))],
            bytes::Bytes::new(),
        )
        .await;
    assert!(
        String::from_utf8_lossy(&grants.body).contains("tv-app"),
        "{}",
        String::from_utf8_lossy(&grants.body)
    );
    b.close().await;
    srv.stop().await;
}
