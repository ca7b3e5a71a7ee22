//! The OAuth provider over real HTTP on 127.0.0.1: metadata and issuer, clients, the
//! authorization-code grant with PKCE and every bad input the rules name, client
//! credentials, secret rotation, client removal, grants, the device flow, and the refused
//! implicit and password grants.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_core::oauth::authorize::s256;
use tessera_core::oauth::{
    DecideDeviceAuthorization, DeviceDecision, EnterUserCode, IssueAuthorizationCode,
};
use tessera_core::{AccountId, Rejection};
use tessera_http::HttpConfig;
use tessera_http::admin::clients::{self, AddClient};
use tessera_tests::server::{Answer, Server};

const REDIRECT: &str = "https://app.example/cb";
const LOOPBACK: &str = "http://127.0.0.1/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn assert_oauth_error(a: &Answer, status: StatusCode, error: &str) {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.json()["error"],
        error,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert!(a.json()["error_description"].is_string());
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("encodes")
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{id}:{secret}").as_bytes())
    )
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("three parts");
    serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .expect("base64url"),
    )
    .expect("json")
}

/// A server with alice registered.
async fn server() -> (Server, AccountId) {
    let s = Server::start(HttpConfig::default()).await;
    let a = s.register("alice").await;
    let id = AccountId::parse(a.json()["id"].as_str().expect("an id")).expect("a uuid");
    (s, id)
}

/// Registers a client through the operator path; the secret of a confidential one.
async fn add_client(
    s: &Server,
    id: &str,
    public: bool,
    uris: &[&str],
    grants: &[&str],
    scopes: &[&str],
) -> Option<String> {
    let done = clients::add(
        &s.engine,
        &s.app.mfa_keys,
        AddClient {
            client_id: id.into(),
            name: Some(format!("The {id} app")),
            public,
            redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            grant_types: grants.iter().map(|g| (*g).to_owned()).collect(),
            scopes: scopes.iter().map(|g| (*g).to_owned()).collect(),
            operator: "test".into(),
        },
    )
    .await
    .expect("registers");
    done.client_secret.map(|s| s.as_str().to_owned())
}

/// The standard confidential client `web` with its secret.
async fn web_client(s: &Server) -> String {
    add_client(
        s,
        "web",
        false,
        &[REDIRECT, LOOPBACK],
        &["authorization_code", "refresh_token", "client_credentials"],
        &["read", "write"],
    )
    .await
    .expect("a secret")
}

/// A code for `account`, consent recorded: the use case the consent page runs.
async fn code_for(s: &Server, account: AccountId, client: &str, redirect: &str) -> String {
    let issued = s
        .engine
        .execute(IssueAuthorizationCode {
            account,
            client_id: client.into(),
            redirect_uri: redirect.into(),
            scopes: ["read".to_owned()].into(),
            code_challenge: s256(VERIFIER),
            state: "st".into(),
            record_consent: true,
        })
        .await
        .expect("engine")
        .reply
        .expect("a code");
    assert!(issued.location.starts_with(redirect));
    issued.code.expose().to_owned()
}

async fn exchange(s: &Server, code: &str, secret: &str, verifier: &str) -> Answer {
    s.post_form(
        "/oauth/token",
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ]),
        &[("authorization", basic("web", secret).as_str())],
    )
    .await
}

async fn authorize(s: &Server, query: &[(&str, &str)], cookie: Option<&str>) -> Answer {
    let path = format!("/oauth/authorize?{}", form(query));
    match cookie {
        Some(c) => s.with_cookie(Method::GET, &path, c).await,
        None => s.send(Method::GET, &path, &[], Bytes::new()).await,
    }
}

fn good_query(challenge: &str) -> Vec<(&str, &str)> {
    vec![
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", REDIRECT),
        ("scope", "read"),
        ("state", "state-123"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

fn query_params(location: &str) -> Vec<(String, String)> {
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    serde_urlencoded::from_str(query).expect("a query")
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_issuer_is_the_url_it_was_fetched_from() {
    let (s, _) = server().await;
    let base = format!("http://{}", s.addr);
    let meta = s
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            &[],
            Bytes::new(),
        )
        .await
        .json();
    assert_eq!(meta["issuer"], base.as_str());
    for (field, path) in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        (
            "device_authorization_endpoint",
            "/oauth/device_authorization",
        ),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        assert_eq!(meta[field], format!("{base}{path}").as_str(), "{field}");
    }
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    let grants = meta["grant_types_supported"].to_string();
    for g in [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        assert!(grants.contains(g), "{g}");
    }
    assert!(!grants.contains("password") && !grants.contains("implicit"));
    let auth = meta["token_endpoint_auth_methods_supported"].to_string();
    assert!(auth.contains("client_secret_basic") && auth.contains("client_secret_post"));
    // A first-party access token carries the same issuer.
    let t = s.token_login("alice").await;
    assert_eq!(claims_of(&t.access)["iss"], base.as_str());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_flow_issues_client_tokens_that_rotate_and_are_bound_to_the_client() {
    let (s, alice) = server().await;
    let secret = web_client(&s).await;
    let challenge = s256(VERIFIER);
    // Without a session: the sign-in page, never a code.
    let to_login = authorize(&s, &good_query(&challenge), None).await;
    assert_eq!(to_login.status, StatusCode::SEE_OTHER);
    let login = to_login.header("location").expect("the sign-in page");
    assert!(
        login.starts_with("/login?return_to=%2Foauth%2Fauthorize%3F"),
        "{login}"
    );
    let page = s.send(Method::GET, login, &[], Bytes::new()).await;
    assert!(String::from_utf8_lossy(&page.body).contains("The web app"));

    // Consent (the consent page's use case), then the exchange.
    let code = code_for(&s, alice, "web", REDIRECT).await;
    let a = exchange(&s, &code, &secret, VERIFIER).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let body = a.json();
    let claims = claims_of(body["access_token"].as_str().expect("access"));
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["sub"], alice.to_string());
    assert_eq!(claims["iss"], format!("http://{}", s.addr).as_str());
    let refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    assert_eq!(
        s.me(body["access_token"].as_str().expect("a")).await.status,
        StatusCode::OK
    );

    // The family is the client's: refreshing needs the client's authentication.
    let no_auth = s.refresh(&refresh).await;
    assert_oauth_error(&no_auth, StatusCode::UNAUTHORIZED, "invalid_client");
    let wrong = s
        .post_form(
            "/oauth/token",
            &form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]),
            &[("authorization", basic("web", "tcs_wrong").as_str())],
        )
        .await;
    assert_oauth_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_client");
    let rotated = s
        .post_form(
            "/oauth/token",
            &form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "web"),
                ("client_secret", &secret),
            ]),
            &[],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    // The spent one again: reuse, the family is revoked.
    let reused = s
        .post_form(
            "/oauth/token",
            &form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]),
            &[("authorization", basic("web", &secret).as_str())],
        )
        .await;
    assert_oauth_error(&reused, StatusCode::BAD_REQUEST, "invalid_grant");
    let newer = rotated.json()["access_token"]
        .as_str()
        .expect("a")
        .to_owned();
    assert_eq!(s.me(&newer).await.status, StatusCode::UNAUTHORIZED);

    // With a session and a grant covering the scope, authorize redirects with a code,
    // the state and the issuer (RFC 9207); the code exchanges with client_secret_post.
    let cookie = s
        .login("alice", tessera_tests::PASSWORD)
        .await
        .cookie()
        .expect("cookie");
    let a = authorize(&s, &good_query(&challenge), Some(&cookie)).await;
    assert_eq!(
        a.status,
        StatusCode::FOUND,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let location = a.header("location").expect("a location").to_owned();
    assert!(location.starts_with(&format!("{REDIRECT}?")));
    let params = query_params(&location);
    assert_eq!(param(&params, "state"), Some("state-123"));
    assert_eq!(
        param(&params, "iss"),
        Some(format!("http://{}", s.addr).as_str())
    );
    let code = param(&params, "code").expect("a code");
    let posted = s
        .post_form(
            "/oauth/token",
            &form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", "web"),
                ("client_secret", &secret),
            ]),
            &[],
        )
        .await;
    assert_eq!(posted.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_uris_match_exactly_and_errors_before_trust_are_never_redirected() {
    let (s, _) = server().await;
    web_client(&s).await;
    let challenge = s256(VERIFIER);
    let bad = [
        "https://app.example/cb/",
        "https://APP.example/cb",
        "https://app.example/CB",
        "https://app.example/cb?x=1",
        "https://app.example/cb#frag",
        "https://app.example@evil.example/cb",
        "https://good@evil.example/cb",
        "https://app.example/cb/..;/evil",
        "https://app.example/cb/../evil",
        "https://*.example/cb",
        "https://evil.example/cb",
        "http://app.example/cb",
        "http://127.0.0.1:8080@evil.example/callback",
        "http://127.0.0.1:99999/callback",
        "http://localhost:4000/callback",
        "http://127.0.0.1:4000/callback/",
        "",
    ];
    for uri in bad {
        let mut q = good_query(&challenge);
        q.retain(|(k, _)| *k != "redirect_uri");
        q.push(("redirect_uri", uri));
        let a = authorize(&s, &q, None).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(a.header("location").is_none(), "{uri} was redirected");
        assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    }
    // No redirect URI, an unknown client, a repeated redirect URI: pages too.
    let mut q = good_query(&challenge);
    q.retain(|(k, _)| *k != "redirect_uri");
    assert_eq!(
        authorize(&s, &q, None).await.status,
        StatusCode::BAD_REQUEST
    );
    let mut q = good_query(&challenge);
    q.retain(|(k, _)| *k != "client_id");
    q.push(("client_id", "nobody"));
    assert_eq!(
        authorize(&s, &q, None).await.status,
        StatusCode::BAD_REQUEST
    );
    let mut q = good_query(&challenge);
    q.push(("redirect_uri", "https://evil.example/cb"));
    let twice = authorize(&s, &q, None).await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    assert!(twice.header("location").is_none());

    // The loopback rule (RFC 8252 §7.3): only the port may differ.
    for port in ["", ":1", ":4000", ":65535"] {
        let uri = format!("http://127.0.0.1{port}/callback");
        let mut q = good_query(&challenge);
        q.retain(|(k, _)| *k != "redirect_uri");
        q.push(("redirect_uri", &uri));
        let a = authorize(&s, &q, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{uri}");
        assert!(
            a.header("location")
                .is_some_and(|l| l.starts_with("/login?")),
            "{uri}"
        );
    }

    // Registration refuses what could never match safely.
    for uri in [
        "https://*.example/cb",
        "https://app.example/cb#x",
        "https://user@app.example/cb",
        "http://app.example/cb",
        "https://app.example/a/..;/b",
        "https://app.example/a/../b",
        "relative/cb",
        "javascript:alert(1)",
    ] {
        let refused = clients::add(
            &s.engine,
            &s.app.mfa_keys,
            AddClient {
                client_id: "bad".into(),
                name: None,
                public: true,
                redirect_uris: vec![uri.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: vec!["read".into()],
                operator: "test".into(),
            },
        )
        .await;
        assert!(refused.is_err(), "{uri} was registered");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_authorization_requests_are_redirected_with_state_and_iss() {
    let (s, _) = server().await;
    web_client(&s).await;
    let challenge = s256(VERIFIER);
    let short = &challenge[..42];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge", short)], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "S512")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("response_type", "id_token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "read admin")], "invalid_scope"),
        (vec![("scope", "re\"ad")], "invalid_scope"),
        (vec![("state", "")], "invalid_request"),
    ];
    for (changes, error) in cases {
        let mut q = good_query(&challenge);
        for (k, v) in &changes {
            q.retain(|(key, _)| key != k);
            if !v.is_empty() {
                q.push((k, v));
            }
        }
        let a = authorize(&s, &q, None).await;
        assert_eq!(a.status, StatusCode::FOUND, "{changes:?}");
        let location = a.header("location").expect("a location");
        assert!(location.starts_with(REDIRECT), "{location}");
        let params = query_params(location);
        assert_eq!(param(&params, "error"), Some(error), "{changes:?}");
        assert_eq!(
            param(&params, "iss"),
            Some(format!("http://{}", s.addr).as_str())
        );
        assert!(param(&params, "code").is_none());
        if !changes.iter().any(|(k, _)| *k == "state") {
            assert_eq!(param(&params, "state"), Some("state-123"));
        }
    }
    // No challenge method at all means plain (RFC 7636 §4.3): refused.
    let mut q = good_query(&challenge);
    q.retain(|(k, _)| *k != "code_challenge_method");
    let a = authorize(&s, &q, None).await;
    let params = query_params(a.header("location").expect("a location"));
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifiers_that_do_not_match_or_are_malformed_are_refused() {
    let (s, alice) = server().await;
    let secret = web_client(&s).await;
    let code = code_for(&s, alice, "web", REDIRECT).await;
    let long = "a".repeat(129);
    let short = &VERIFIER[..42];
    let other = "x".repeat(43);
    let outside = format!("{}+/", &VERIFIER[..41]);
    for verifier in [
        other.as_str(),
        short,
        long.as_str(),
        outside.as_str(),
        "%41",
    ] {
        let a = exchange(&s, &code, &secret, verifier).await;
        assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let missing = s
        .post_form(
            "/oauth/token",
            &form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ]),
            &[("authorization", basic("web", &secret).as_str())],
        )
        .await;
    assert_oauth_error(&missing, StatusCode::BAD_REQUEST, "invalid_request");
    // A 128-character verifier is fine when it is the one.
    let verifier128 = "A".repeat(128);
    let issued = s
        .engine
        .execute(IssueAuthorizationCode {
            account: alice,
            client_id: "web".into(),
            redirect_uri: REDIRECT.into(),
            scopes: ["read".to_owned()].into(),
            code_challenge: s256(&verifier128),
            state: "st".into(),
            record_consent: false,
        })
        .await
        .expect("engine")
        .reply
        .expect("the grant covers it");
    let ok = exchange(&s, issued.code.expose(), &secret, &verifier128).await;
    assert_eq!(ok.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_single_use_short_lived_and_bound_to_client_and_redirect_uri() {
    let (s, alice) = server().await;
    let secret = web_client(&s).await;
    let other_secret = add_client(
        &s,
        "other",
        false,
        &[REDIRECT],
        &["authorization_code"],
        &["read"],
    )
    .await
    .expect("a secret");

    // Used twice: the second use is refused and revokes the tokens of the first.
    let code = code_for(&s, alice, "web", REDIRECT).await;
    let first = exchange(&s, &code, &secret, VERIFIER).await;
    assert_eq!(first.status, StatusCode::OK);
    let access = first.json()["access_token"].as_str().expect("a").to_owned();
    let refresh = first.json()["refresh_token"]
        .as_str()
        .expect("r")
        .to_owned();
    assert_eq!(s.me(&access).await.status, StatusCode::OK);
    let second = exchange(&s, &code, &secret, VERIFIER).await;
    assert_oauth_error(&second, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(s.me(&access).await.status, StatusCode::UNAUTHORIZED);
    let r = s
        .post_form(
            "/oauth/token",
            &form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]),
            &[("authorization", basic("web", &secret).as_str())],
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(s.event_kinds().await.contains(&"AuthorizationCodeReplayed"));

    // After 60 seconds.
    let code = code_for(&s, alice, "web", REDIRECT).await;
    s.advance(60_001);
    let late = exchange(&s, &code, &secret, VERIFIER).await;
    assert_oauth_error(&late, StatusCode::BAD_REQUEST, "invalid_grant");

    // By another client.
    let code = code_for(&s, alice, "web", REDIRECT).await;
    let stolen = s
        .post_form(
            "/oauth/token",
            &form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ]),
            &[("authorization", basic("other", &other_secret).as_str())],
        )
        .await;
    assert_oauth_error(&stolen, StatusCode::BAD_REQUEST, "invalid_grant");
    // With another redirect URI (registered too, but not the one the code was issued for).
    let moved = s
        .post_form(
            "/oauth/token",
            &form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", LOOPBACK),
                ("code_verifier", VERIFIER),
            ]),
            &[("authorization", basic("web", &secret).as_str())],
        )
        .await;
    assert_oauth_error(&moved, StatusCode::BAD_REQUEST, "invalid_grant");
    // Without client authentication, or with a wrong secret.
    let anonymous = s
        .post_form(
            "/oauth/token",
            &form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ]),
            &[],
        )
        .await;
    assert_oauth_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_oauth_error(
        &exchange(&s, &code, "tcs_not-the-secret", VERIFIER).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    // The rightful exchange still works: the failures spent nothing.
    assert_eq!(
        exchange(&s, &code, &secret, VERIFIER).await.status,
        StatusCode::OK
    );
    // Garbage codes.
    for garbage in ["", "tac_short", "x"] {
        let a = exchange(&s, garbage, &secret, VERIFIER).await;
        assert!(a.status == StatusCode::BAD_REQUEST, "{garbage}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_exchanges_of_one_code_have_exactly_one_winner() {
    let (s, alice) = server().await;
    let secret = web_client(&s).await;
    for _ in 0..5 {
        let code = code_for(&s, alice, "web", REDIRECT).await;
        let (a, b) = tokio::join!(
            exchange(&s, &code, &secret, VERIFIER),
            exchange(&s, &code, &secret, VERIFIER)
        );
        let wins = [&a, &b]
            .iter()
            .filter(|x| x.status == StatusCode::OK)
            .count();
        assert_eq!(wins, 1, "{} {}", a.status, b.status);
    }
    s.stop().await;
}

async fn client_credentials(s: &Server, id: &str, secret: &str, scope: Option<&str>) -> Answer {
    let mut pairs = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        pairs.push(("scope", scope));
    }
    s.post_form(
        "/oauth/token",
        &form(&pairs),
        &[("authorization", basic(id, secret).as_str())],
    )
    .await
}

async fn introspect(s: &Server, token: &str, id: &str, secret: &str) -> Value {
    s.post_form(
        "/oauth/introspect",
        &form(&[("token", token)]),
        &[("authorization", basic(id, secret).as_str())],
    )
    .await
    .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_are_for_confidential_clients_within_their_scopes() {
    let (s, _) = server().await;
    let secret = web_client(&s).await;
    let a = client_credentials(&s, "web", &secret, Some("read")).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let body = a.json();
    assert!(body.get("refresh_token").is_none(), "no refresh token");
    assert_eq!(body["scope"], "read");
    let token = body["access_token"].as_str().expect("a").to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], "web");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["iss"], format!("http://{}", s.addr).as_str());
    // Not a user's token: the account API refuses it.
    assert_eq!(s.me(&token).await.status, StatusCode::UNAUTHORIZED);
    // No scope asked: every registered one.
    let all = client_credentials(&s, "web", &secret, None).await.json();
    assert_eq!(all["scope"], "read write");
    // Scopes beyond those registered.
    assert_oauth_error(
        &client_credentials(&s, "web", &secret, Some("read admin")).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    );
    // A wrong secret, an unknown client.
    assert_oauth_error(
        &client_credentials(&s, "web", "tcs_wrong", None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    assert_oauth_error(
        &client_credentials(&s, "ghost", &secret, None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    // A public client cannot: it has no secret.
    add_client(
        &s,
        "mobile",
        true,
        &[LOOPBACK],
        &["authorization_code"],
        &["read"],
    )
    .await;
    let public = s
        .post_form(
            "/oauth/token",
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "mobile"),
            ]),
            &[],
        )
        .await;
    assert_oauth_error(&public, StatusCode::BAD_REQUEST, "unauthorized_client");
    // A confidential client not allowed the grant.
    let other = add_client(
        &s,
        "other",
        false,
        &[REDIRECT],
        &["authorization_code"],
        &["read"],
    )
    .await
    .expect("secret");
    assert_oauth_error(
        &client_credentials(&s, "other", &other, None).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    );
    // Introspection: the client sees its own token, another client does not.
    assert_eq!(introspect(&s, &token, "web", &secret).await["active"], true);
    assert_eq!(
        introspect(&s, &token, "other", &other).await,
        json!({"active": false})
    );
    // Revocation: another client's request changes nothing; without authentication it is
    // refused; the owner's works.
    let revoke = |id: &'static str, secret: String| {
        let s = &s;
        let token = token.clone();
        async move {
            s.post_form(
                "/oauth/revoke",
                &form(&[("token", &token)]),
                &[("authorization", basic(id, &secret).as_str())],
            )
            .await
        }
    };
    assert_eq!(revoke("other", other.clone()).await.status, StatusCode::OK);
    assert_eq!(introspect(&s, &token, "web", &secret).await["active"], true);
    let anonymous = s
        .post_form("/oauth/revoke", &form(&[("token", &token)]), &[])
        .await;
    assert_oauth_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(revoke("web", secret.clone()).await.status, StatusCode::OK);
    assert_eq!(
        introspect(&s, &token, "web", &secret).await,
        json!({"active": false})
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_works_for_the_overlap_and_not_after() {
    let (s, _) = server().await;
    let old = web_client(&s).await;
    let rotated = clients::rotate_secret(
        &s.engine,
        &s.app.mfa_keys,
        "web",
        clients::RotateSecret {
            overlap_secs: 60,
            operator: "test".into(),
        },
    )
    .await
    .expect("rotates");
    let new = rotated
        .client_secret
        .expect("a new secret")
        .as_str()
        .to_owned();
    assert_ne!(old, new);
    assert_eq!(rotated.client.secrets, 2);
    assert_eq!(
        client_credentials(&s, "web", &old, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client_credentials(&s, "web", &new, None).await.status,
        StatusCode::OK
    );
    s.advance(60_000);
    assert_oauth_error(
        &client_credentials(&s, "web", &old, None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    assert_eq!(
        client_credentials(&s, "web", &new, None).await.status,
        StatusCode::OK
    );
    // Without an overlap the current secret stops at once.
    let again = clients::rotate_secret(
        &s.engine,
        &s.app.mfa_keys,
        "web",
        clients::RotateSecret {
            overlap_secs: 0,
            operator: "test".into(),
        },
    )
    .await
    .expect("rotates");
    assert_oauth_error(
        &client_credentials(&s, "web", &new, None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    let newest = again.client_secret.expect("secret").as_str().to_owned();
    assert_eq!(
        client_credentials(&s, "web", &newest, None).await.status,
        StatusCode::OK
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_client_revokes_its_grants_and_every_token() {
    let (s, alice) = server().await;
    let secret = web_client(&s).await;
    let code = code_for(&s, alice, "web", REDIRECT).await;
    let tokens = exchange(&s, &code, &secret, VERIFIER).await.json();
    let access = tokens["access_token"].as_str().expect("a").to_owned();
    let cc = client_credentials(&s, "web", &secret, None).await.json();
    let cc = cc["access_token"].as_str().expect("a").to_owned();
    let t = s.token_login("alice").await;
    let grants = s
        .bearer_json(Method::GET, "/v1/grants", &t.access, Value::Null)
        .await;
    assert_eq!(grants.json()[0]["client_id"], "web");

    clients::remove(&s.engine, "web", "test")
        .await
        .expect("removes");
    assert_eq!(s.me(&access).await.status, StatusCode::UNAUTHORIZED);
    let r = s
        .post_form(
            "/oauth/token",
            &form(&[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    tokens["refresh_token"].as_str().expect("r"),
                ),
            ]),
            &[],
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    let grants = s
        .bearer_json(Method::GET, "/v1/grants", &t.access, Value::Null)
        .await;
    assert_eq!(grants.json(), json!([]));
    assert_oauth_error(
        &client_credentials(&s, "web", &secret, None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    // Registered again under the same id, the old client token stays dead.
    s.advance(1);
    let secret = web_client(&s).await;
    let designated = introspect(&s, &cc, "web", &secret).await;
    assert_eq!(designated, json!({"active": false}));
    // The first-party token was never the client's.
    assert_eq!(s.me(&t.access).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_listed_and_revoking_one_revokes_its_tokens() {
    let (s, alice) = server().await;
    let secret = web_client(&s).await;
    let code = code_for(&s, alice, "web", REDIRECT).await;
    let tokens = exchange(&s, &code, &secret, VERIFIER).await.json();
    let access = tokens["access_token"].as_str().expect("a").to_owned();
    let t = s.token_login("alice").await;
    let list = s
        .bearer_json(Method::GET, "/v1/grants", &t.access, Value::Null)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    assert_eq!(list[0]["client_id"], "web");
    assert_eq!(list[0]["client_name"], "The web app");
    assert_eq!(list[0]["scopes"], json!(["read"]));
    // Unauthenticated: 401.
    let anon = s.send(Method::GET, "/v1/grants", &[], Bytes::new()).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);

    let deleted = s
        .bearer_json(Method::DELETE, "/v1/grants/web", &t.access, Value::Null)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(s.me(&access).await.status, StatusCode::UNAUTHORIZED);
    let again = s
        .bearer_json(Method::DELETE, "/v1/grants/web", &t.access, Value::Null)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let bad = s
        .bearer_json(Method::DELETE, "/v1/grants/", &t.access, Value::Null)
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    // Consent is needed again: authorize shows the page, no code.
    let cookie = s
        .login("alice", tessera_tests::PASSWORD)
        .await
        .cookie()
        .expect("cookie");
    let challenge = s256(VERIFIER);
    let a = authorize(&s, &good_query(&challenge), Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::OK);
    s.stop().await;
}

async fn device_start(s: &Server, client: &str, scope: &str) -> Answer {
    s.post_form(
        "/oauth/device_authorization",
        &form(&[("client_id", client), ("scope", scope)]),
        &[],
    )
    .await
}

async fn device_poll(s: &Server, client: &str, device_code: &str) -> Answer {
    s.post_form(
        "/oauth/token",
        &form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", client),
        ]),
        &[],
    )
    .await
}

async fn tv_client(s: &Server) {
    add_client(
        s,
        "tv",
        true,
        &[],
        &[
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token",
        ],
        &["read", "write"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_flow_paces_polls_and_issues_tokens_once_approved() {
    let (s, alice) = server().await;
    tv_client(&s).await;
    let a = device_start(&s, "tv", "read").await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let d = a.json();
    let device_code = d["device_code"].as_str().expect("device code").to_owned();
    assert!(device_code.len() >= 43, "at least 128 bits");
    let user_code = d["user_code"].as_str().expect("user code").to_owned();
    assert_eq!(user_code.len(), 9);
    assert!(
        user_code.chars().enumerate().all(|(i, c)| if i == 4 {
            c == '-'
        } else {
            "BCDFGHJKLMNPQRSTVWXZ".contains(c)
        }),
        "{user_code}"
    );
    let base = format!("http://{}/device", s.addr);
    assert_eq!(d["verification_uri"], base.as_str());
    assert_eq!(
        d["verification_uri_complete"],
        format!("{base}?user_code={user_code}").as_str()
    );
    let expires = d["expires_in"].as_u64().expect("expires_in");
    assert!((600..=900).contains(&expires));
    assert_eq!(d["interval"], 5);

    assert_oauth_error(
        &device_poll(&s, "tv", &device_code).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    );
    // Faster than the interval: slow_down, and the interval grows by 5 s.
    s.advance(1_000);
    assert_oauth_error(
        &device_poll(&s, "tv", &device_code).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    );
    s.advance(6_000);
    assert_oauth_error(
        &device_poll(&s, "tv", &device_code).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    );
    s.advance(15_000);
    assert_oauth_error(
        &device_poll(&s, "tv", &device_code).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    );
    let kinds = s.event_kinds().await;
    assert!(kinds.iter().filter(|k| **k == "DeviceCodePolled").count() >= 4);
    // Another client's poll of this code.
    add_client(
        &s,
        "tv2",
        true,
        &[],
        &["urn:ietf:params:oauth:grant-type:device_code"],
        &["read"],
    )
    .await;
    assert_oauth_error(
        &device_poll(&s, "tv2", &device_code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    // The user types the code in lower case without the dash, and approves.
    let typed = user_code.replace('-', "").to_lowercase();
    let found = s
        .engine
        .execute(EnterUserCode {
            user_code: typed.clone(),
            session: None,
            address: Some("192.0.2.1".parse().expect("ip")),
        })
        .await
        .expect("engine")
        .reply
        .expect("found");
    assert_eq!(found.client_name, "The tv app");
    assert_eq!(found.device_address, Some("127.0.0.1".parse().expect("ip")));
    s.engine
        .execute(DecideDeviceAuthorization {
            user_code: format!(" {typed} "),
            account: alice,
            session: None,
            address: None,
            decision: DeviceDecision::Approve,
        })
        .await
        .expect("engine")
        .reply
        .expect("approved");
    s.advance(20_000);
    let tokens = device_poll(&s, "tv", &device_code).await;
    assert_eq!(
        tokens.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&tokens.body)
    );
    let access = tokens.json()["access_token"]
        .as_str()
        .expect("a")
        .to_owned();
    assert_eq!(claims_of(&access)["client_id"], "tv");
    assert_eq!(s.me(&access).await.status, StatusCode::OK);
    s.advance(20_000);
    assert_oauth_error(
        &device_poll(&s, "tv", &device_code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_expired_and_unknown_device_codes_are_refused() {
    let (s, alice) = server().await;
    tv_client(&s).await;
    let d = device_start(&s, "tv", "read").await.json();
    let code = d["device_code"].as_str().expect("code").to_owned();
    s.engine
        .execute(DecideDeviceAuthorization {
            user_code: d["user_code"].as_str().expect("uc").to_owned(),
            account: alice,
            session: None,
            address: None,
            decision: DeviceDecision::Deny,
        })
        .await
        .expect("engine")
        .reply
        .expect("denied");
    assert_oauth_error(
        &device_poll(&s, "tv", &code).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    );

    let d = device_start(&s, "tv", "read").await.json();
    let code = d["device_code"].as_str().expect("code").to_owned();
    s.advance(600_000);
    assert_oauth_error(
        &device_poll(&s, "tv", &code).await,
        StatusCode::BAD_REQUEST,
        "expired_token",
    );
    // An expired code can no longer be approved either.
    let late = s
        .engine
        .execute(EnterUserCode {
            user_code: d["user_code"].as_str().expect("uc").to_owned(),
            session: None,
            address: None,
        })
        .await
        .expect("engine")
        .reply;
    assert!(matches!(late, Err(Rejection::UserCodeInvalid { .. })));

    for garbage in ["", "tdc_short", "nonsense"] {
        assert_oauth_error(
            &device_poll(&s, "tv", garbage).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        );
    }
    // Unknown client, scope beyond the registered ones, a client without the grant.
    assert_oauth_error(
        &device_start(&s, "ghost", "read").await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    assert_oauth_error(
        &device_start(&s, "tv", "admin").await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    );
    add_client(
        &s,
        "mobile",
        true,
        &[LOOPBACK],
        &["authorization_code"],
        &["read"],
    )
    .await;
    assert_oauth_error(
        &device_start(&s, "mobile", "read").await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_wrong_user_codes_make_the_session_and_the_address_wait() {
    let (s, _) = server().await;
    tv_client(&s).await;
    let d = device_start(&s, "tv", "read").await.json();
    let right = d["user_code"].as_str().expect("uc").to_owned();
    let session = tessera_core::SessionId::from_bytes([7; 16]);
    let address: std::net::IpAddr = "198.51.100.7".parse().expect("ip");
    let enter = |code: String, session, address| {
        let s = &s;
        async move {
            s.engine
                .execute(EnterUserCode {
                    user_code: code,
                    session,
                    address,
                })
                .await
                .expect("engine")
                .reply
        }
    };
    let mut throttled = 0;
    for i in 0..10 {
        match enter(
            format!(
                "BCDF-GH{}",
                ["JK", "JL", "JM", "JN", "JP", "JQ", "JR", "JS", "JT", "JV"][i]
            ),
            Some(session),
            Some(address),
        )
        .await
        {
            Err(Rejection::UserCodeInvalid { attempts_left }) => {
                assert_eq!(attempts_left as usize, 4 - i);
            }
            Err(Rejection::Throttled { retry_after_secs }) => {
                assert!(i >= 5 && retry_after_secs > 0);
                throttled += 1;
            }
            other => panic!("entry {i}: {other:?}"),
        }
    }
    assert_eq!(throttled, 5);
    // Even the right code waits, from this session or from this address.
    assert!(matches!(
        enter(right.clone(), Some(session), None).await,
        Err(Rejection::Throttled { .. })
    ));
    assert!(matches!(
        enter(right.clone(), None, Some(address)).await,
        Err(Rejection::Throttled { .. })
    ));
    // Another session from another address is not held back.
    let other = tessera_core::SessionId::from_bytes([8; 16]);
    assert!(
        enter(
            right.clone(),
            Some(other),
            Some("203.0.113.9".parse().expect("ip"))
        )
        .await
        .is_ok()
    );
    // After the window the session may try again.
    s.advance(15 * 60 * 1000);
    let d = device_start(&s, "tv", "read").await.json();
    let fresh = d["user_code"].as_str().expect("uc").to_owned();
    assert!(enter(fresh, Some(session), Some(address)).await.is_ok());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_and_password_grants_are_refused() {
    let (s, _) = server().await;
    let secret = web_client(&s).await;
    for grant in [
        "password",
        "implicit",
        "token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let a = s
            .post_form(
                "/oauth/token",
                &form(&[
                    ("grant_type", grant),
                    ("username", "alice"),
                    ("password", tessera_tests::PASSWORD),
                ]),
                &[("authorization", basic("web", &secret).as_str())],
            )
            .await;
        assert_oauth_error(&a, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_designated_introspection_client_sees_every_token() {
    let config = HttpConfig {
        introspection_client_id: Some("rs".into()),
        ..HttpConfig::default()
    };
    let s = Server::start(config).await;
    s.register("alice").await;
    let rs = add_client(
        &s,
        "rs",
        false,
        &[],
        &["client_credentials"],
        &["introspect"],
    )
    .await
    .expect("secret");
    let web = web_client(&s).await;
    let t = s.token_login("alice").await;
    let cc = client_credentials(&s, "web", &web, None).await.json();
    let cc = cc["access_token"].as_str().expect("a").to_owned();
    for token in [t.access.as_str(), t.refresh.as_str(), cc.as_str()] {
        assert_eq!(
            introspect(&s, token, "rs", &rs).await["active"],
            true,
            "{token}"
        );
    }
    // `web` sees only its own.
    assert_eq!(
        introspect(&s, &t.access, "web", &web).await,
        json!({"active": false})
    );
    // Without authentication, or with a wrong secret: invalid_client.
    let anon = s
        .post_form("/oauth/introspect", &form(&[("token", &cc)]), &[])
        .await;
    assert_oauth_error(&anon, StatusCode::UNAUTHORIZED, "invalid_client");
    let wrong = s
        .post_form(
            "/oauth/introspect",
            &form(&[
                ("token", &cc),
                ("client_id", "rs"),
                ("client_secret", "nope"),
            ]),
            &[],
        )
        .await;
    assert_oauth_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_client");
    // Two authentication methods at once.
    let both = s
        .post_form(
            "/oauth/introspect",
            &form(&[("token", &cc), ("client_secret", rs.as_str())]),
            &[("authorization", basic("rs", &rs).as_str())],
        )
        .await;
    assert_oauth_error(&both, StatusCode::BAD_REQUEST, "invalid_request");
    s.stop().await;
}
