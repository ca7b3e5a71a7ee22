//! Sign in with an external provider in the browser: through a second Tessera as a plain
//! OAuth 2 upstream (its own sign-in and consent pages), through an independent OpenID
//! Connect provider (npm `oidc-provider`), and linking an identity from the start page.
//!
//! The upstream Tessera answers at `localhost` and the one signing in at `127.0.0.1`:
//! browsers keep cookies per host, not per port, and both servers name their session
//! cookie the same.

use fantoccini::Locator;
use tessera_http::HttpConfig;
use tessera_http::admin::clients::{self, AddClient};
use tessera_http::config::{ClientSecret, UpstreamConfig};
use tessera_tests::server::Server;

use super::harness::Browser;

/// Clicks the link whose text is `label`, and waits for the next page.
async fn follow_link(b: &Browser, label: &str) {
    let link = b
        .client
        .find(Locator::LinkText(label))
        .await
        .unwrap_or_else(|e| panic!("no link {label:?}: {e}"));
    link.click().await.expect("clicks");
    for _ in 0..100 {
        if link.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A second Tessera at `localhost` with `users`, and the one signing in through it, with a
/// `tess` provider (and `extra` ones).
async fn servers(users: &[&str], extra: Vec<UpstreamConfig>) -> (Server, Server) {
    let up_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let up_port = up_listener.local_addr().expect("addr").port();
    let up_base = format!("http://localhost:{up_port}");
    let up = Server::start_on(
        up_listener,
        HttpConfig {
            public_url: up_base.clone(),
            ..HttpConfig::default()
        },
        tessera_tests::policy(),
    )
    .await;
    for user in users {
        up.register(user).await;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let down_addr = listener.local_addr().expect("addr");
    let done = clients::add(
        &up.engine,
        &up.app.mfa_keys,
        AddClient {
            client_id: "down-app".into(),
            name: Some("Notes at 127.0.0.1".into()),
            public: false,
            redirect_uris: vec![format!("http://{down_addr}/v1/login/tess/callback")],
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["profile".into()],
            operator: "test".into(),
        },
    )
    .await
    .expect("registers");
    let tess = UpstreamConfig::tessera(
        "tess",
        "Tessera Cloud",
        &up_base,
        "down-app",
        done.client_secret
            .map(|s| ClientSecret(s.as_str().to_owned())),
    );
    let mut upstreams = vec![tess];
    upstreams.extend(extra);
    let down = Server::start_on(
        listener,
        HttpConfig {
            upstreams,
            ..HttpConfig::default()
        },
        tessera_tests::policy(),
    )
    .await;
    (up, down)
}

/// On the upstream Tessera's sign-in page: sign in as `username`, then allow.
async fn through_upstream(b: &mut Browser, username: &str) {
    assert_eq!(b.heading().await, "Sign in", "{}", b.path().await);
    b.shot("upstream-login").await;
    b.fill("username", username).await;
    b.fill("password", tessera_tests::PASSWORD).await;
    b.press("Sign in").await;
    assert_eq!(b.heading().await, "Allow access?", "{}", b.text().await);
    b.shot("upstream-consent").await;
    b.press("Allow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_a_second_tessera_then_link_it_to_a_password_account() {
    let Some(mut b) = Browser::start("signin_tessera").await else {
        return;
    };
    let (up, down) = servers(&["octo", "dave-up"], vec![]).await;
    let base = format!("http://{}", down.addr);

    b.goto(&format!("{base}/login")).await;
    assert!(b.text().await.contains("Sign in with Tessera Cloud"));
    b.shot("login-with-buttons").await;
    follow_link(&b, "Sign in with Tessera Cloud").await;
    through_upstream(&mut b, "octo").await;
    assert_eq!(b.path().await, "/");
    let text = b.text().await;
    assert!(text.contains("Signed in as octo"), "{text}");
    assert!(text.contains("Linked to Tessera Cloud"), "{text}");
    b.shot("signed-in").await;
    b.press("Sign out").await;
    // The upstream still has octo's session in this browser: sign out there too.
    b.goto(&format!("http://localhost:{}/", up.addr.port()))
        .await;
    assert!(b.text().await.contains("Signed in as octo"));
    b.press("Sign out").await;

    // A password account links the same provider's other user from its start page.
    down.register("dave").await;
    b.goto(&format!("{base}/login")).await;
    b.fill("username", "dave").await;
    b.fill("password", tessera_tests::PASSWORD).await;
    b.press("Sign in").await;
    assert!(b.text().await.contains("Signed in as dave"));
    b.shot("dave-start-page").await;
    b.press("Link Tessera Cloud").await;
    through_upstream(&mut b, "dave-up").await;
    assert_eq!(b.path().await, "/");
    let text = b.text().await;
    assert!(
        text.contains("Signed in as dave") && text.contains("Linked to Tessera Cloud"),
        "{text}"
    );
    b.shot("dave-linked").await;
    assert!(down.event_kinds().await.contains(&"ExternalIdentityLinked"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_an_openid_connect_provider_in_the_browser() {
    use tessera_tests::oidc_provider::{CLIENT_ID, CLIENT_SECRET, OidcProvider, Options};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let down_addr = listener.local_addr().expect("addr");
    drop(listener);
    let Some(op) = OidcProvider::start(Options::new(&format!(
        "http://{down_addr}/v1/login/corp/callback"
    )))
    .await
    else {
        return;
    };
    let Some(mut b) = Browser::start("signin_oidc").await else {
        return;
    };
    let corp = UpstreamConfig::oidc(
        "corp",
        "Corp SSO",
        &op.issuer,
        CLIENT_ID,
        Some(ClientSecret(CLIENT_SECRET.into())),
    );
    let listener = std::net::TcpListener::bind(down_addr).expect("binds again");
    let down = Server::start_on(
        listener,
        HttpConfig {
            upstreams: vec![corp],
            ..HttpConfig::default()
        },
        tessera_tests::policy(),
    )
    .await;
    down.advance(wall_clock().since(tessera_tests::T0));
    b.goto(&format!("http://{down_addr}/login")).await;
    b.shot("login").await;
    follow_link(&b, "Sign in with Corp SSO").await;
    b.shot("provider-login").await;
    let login = b
        .client
        .find(Locator::Css("input[name=login]"))
        .await
        .expect("the provider's login form");
    login.send_keys("ada").await.expect("types");
    let password = b
        .client
        .find(Locator::Css("input[name=password]"))
        .await
        .expect("a password field");
    password.send_keys("any password").await.expect("types");
    let submit = b
        .client
        .find(Locator::Css("button[type=submit]"))
        .await
        .expect("a submit button");
    submit.click().await.expect("clicks");
    for _ in 0..100 {
        if b.path().await == "/" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(b.path().await, "/", "{}", b.text().await);
    let text = b.text().await;
    assert!(text.contains("Signed in as ada"), "{text}");
    b.shot("signed-in").await;
    b.close().await;
}

#[allow(
    clippy::disallowed_methods,
    reason = "the external provider stamps its tokens with the wall clock"
)]
fn wall_clock() -> tessera_core::Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tessera_core::Timestamp::from_millis(u64::try_from(since.as_millis()).unwrap())
}
