//! Signing in through the pages: password, then the second factor, then the start page.

use tessera_http::HttpConfig;
use tessera_tests::PASSWORD;
use tessera_tests::server::Server;

use super::harness::{Browser, Callback};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_then_code_signs_in_with_the_api_session() {
    let Some(mut b) = Browser::start("login_mfa").await else {
        return;
    };
    let s = Server::start(HttpConfig::default()).await;
    let alice = s.enrolled("alice").await;
    let base = format!("http://{}", s.addr);

    b.goto(&format!("{base}/login")).await;
    assert_eq!(b.heading().await, "Sign in");
    b.shot("login").await;

    // A wrong password comes back to the form with a message, nothing else.
    b.fill("username", "alice").await;
    b.fill("password", "not the password at all").await;
    b.press("Sign in").await;
    assert!(b.path().await.starts_with("/login?"), "{}", b.path().await);
    assert!(b.text().await.contains("username or password is not right"));
    b.shot("login-wrong-password").await;

    b.fill("username", "alice").await;
    b.fill("password", PASSWORD).await;
    b.press("Sign in").await;
    assert_eq!(b.path().await, "/login/mfa");
    assert_eq!(b.heading().await, "Two-step verification");
    b.shot("mfa").await;

    b.fill("code", "000000").await;
    b.press("Verify").await;
    assert!(b.text().await.contains("code is not right"));
    b.shot("mfa-wrong-code").await;

    b.fill("code", &s.code(&alice.secret)).await;
    b.press("Verify").await;
    assert_eq!(b.path().await, "/");
    assert!(
        b.text().await.contains("Signed in as alice"),
        "{}",
        b.text().await
    );
    b.shot("signed-in").await;

    // The page login set the same session cookie the JSON API reads.
    b.goto(&format!("{base}/v1/me")).await;
    assert!(
        b.text().await.contains("\"username\":\"alice\""),
        "{}",
        b.text().await
    );

    b.goto(&format!("{base}/")).await;
    b.press("Sign out").await;
    assert!(b.text().await.contains("You are not signed in"));
    b.shot("signed-out").await;
    b.goto(&format!("{base}/v1/me")).await;
    assert!(
        b.text().await.contains("unauthenticated"),
        "{}",
        b.text().await
    );

    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_forms_from_another_origin_and_open_redirects_go_nowhere() {
    let Some(mut b) = Browser::start("login_forged").await else {
        return;
    };
    let s = Server::start(HttpConfig::default()).await;
    s.register("mallory").await;
    s.register("alice").await;
    let base = format!("http://{}", s.addr);
    let evil = Callback::start().await;
    // Another origin's page posts our login form with the attacker's credentials (login
    // CSRF): it cannot read our token, and the browser says where the post came from.
    *evil.attack_page.lock().unwrap() = format!(
        "<!doctype html><title>Win a prize</title><h1>Win a prize</h1>\
         <form method=\"post\" action=\"{base}/login\">\
         <input type=\"hidden\" name=\"username\" value=\"mallory\">\
         <input type=\"hidden\" name=\"password\" value=\"{PASSWORD}\">\
         <button type=\"submit\">Claim</button></form>"
    );
    // The browser has visited our site before: it holds our CSRF cookie.
    b.goto(&format!("{base}/login")).await;
    b.goto(&format!("http://{}/attack", evil.addr)).await;
    b.shot("attacker-page").await;
    b.press("Claim").await;
    assert_eq!(
        b.heading().await,
        "This form was refused",
        "{}",
        b.text().await
    );
    b.shot("forged-login-refused").await;
    b.goto(&format!("{base}/")).await;
    assert!(b.text().await.contains("You are not signed in"));

    // Open redirects: a return_to that leaves the site ends on our start page.
    for target in [
        "%2F%2Fevil.example%2F",
        "https%3A%2F%2Fevil.example%2F",
        "%2F%5Cevil.example",
    ] {
        b.goto(&format!("{base}/login?return_to={target}")).await;
        b.fill("username", "alice").await;
        b.fill("password", PASSWORD).await;
        b.press("Sign in").await;
        let url = b.client.current_url().await.unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"), "{target}: {url}");
        assert_eq!(url.path(), "/", "{target}: {url}");
        assert!(b.text().await.contains("Signed in as alice"));
    }
    b.shot("return-to-refused").await;
    b.close().await;
    s.stop().await;
}
