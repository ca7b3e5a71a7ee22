//! Signing in through the pages: password, then the second factor, then the start page.

use tessera_http::HttpConfig;
use tessera_tests::PASSWORD;
use tessera_tests::server::Server;

use super::harness::Browser;

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
