//! API keys over real HTTP: creation with step-up, whoami by `X-API-Key`, rotation with its
//! overlap, revocation, usage folded into one event per key per interval, the rate limit,
//! and every way a key must be refused (each one a test), plus signed leak alerts and the
//! operator's revocation by prefix through the admin socket's use case.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_http::HttpConfig;
use tessera_http::config::SecretScanningKey;
use tessera_tests::server::{Answer, Server, assert_problem};

async fn alice(s: &Server) -> String {
    assert_eq!(s.register("alice").await.status, StatusCode::CREATED);
    s.token_login("alice").await.access
}

fn key_body(environment: &str) -> Value {
    json!({
        "name": "billing",
        "environment": environment,
        "scopes": ["tokens:read"],
        "expires_in": 30 * 24 * 3600,
    })
}

async fn create(s: &Server, access: &str, body: Value) -> Answer {
    s.bearer_json(Method::POST, "/v1/api-keys", access, body)
        .await
}

/// Creates a key and returns `(id, key)`.
async fn created(s: &Server, access: &str, body: Value) -> (String, String) {
    let a = create(s, access, body).await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let v = a.json();
    (
        v["id"].as_str().expect("id").to_owned(),
        v["key"].as_str().expect("key").to_owned(),
    )
}

async fn whoami(s: &Server, key: &str) -> Answer {
    s.send(
        Method::GET,
        "/v1/api-keys/whoami",
        &[("x-api-key", key)],
        Bytes::new(),
    )
    .await
}

/// The one answer every refused key gets.
fn assert_refused(a: &Answer) {
    let body = assert_problem(a, StatusCode::UNAUTHORIZED);
    assert_eq!(body["type"], json!("urn:tessera:problem:invalid-api-key"));
    assert_eq!(
        body["detail"],
        json!("the API key is missing, not valid, or not allowed here")
    );
    assert!(a.header("www-authenticate").is_some());
}

async fn metric(s: &Server, line_start: &str) -> u64 {
    let a = s.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    String::from_utf8_lossy(&a.body)
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_start}"))
}

#[tokio::test]
async fn a_key_is_shown_once_identifies_its_application_and_is_stored_as_a_digest() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let (id, key) = created(&s, &access, key_body("live")).await;
    assert!(key.starts_with("tsr_sk_live_") && key.len() == "tsr_sk_live_".len() + 36);
    let a = whoami(&s, &key).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(
        (v["key_id"].as_str(), v["name"].as_str()),
        (Some(id.as_str()), Some("billing"))
    );
    assert_eq!(v["environment"], json!("live"));
    assert_eq!(v["scopes"], json!(["tokens:read"]));
    // The list shows the prefix and usage, never the key.
    let list = s
        .bearer_json(Method::GET, "/v1/api-keys", &access, json!({}))
        .await;
    let text = String::from_utf8_lossy(&list.body).to_string();
    assert!(!text.contains(&key[12..]), "the key is never listed");
    assert_eq!(list.json()[0]["prefix"].as_str(), Some(&key[..20]));
    assert!(s.event_kinds().await.contains(&"ApiKeyCreated"));
    s.stop().await;
}

#[tokio::test]
async fn creating_a_key_needs_a_recent_authentication() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    s.advance(11 * 60 * 1000);
    // Still a live token (refresh would keep auth_time), but the login is not recent.
    let fresh = s.token_login("alice").await.access;
    s.advance(6 * 60 * 1000);
    let a = create(&s, &fresh, key_body("live")).await;
    assert_problem(&a, StatusCode::FORBIDDEN);
    let mut with_password = key_body("live");
    with_password["password"] = json!(tessera_tests::PASSWORD);
    let a = create(&s, &fresh, with_password).await;
    assert_eq!(a.status, StatusCode::CREATED);
    drop(access);
    s.stop().await;
}

#[tokio::test]
async fn malformed_wrong_checksum_wrong_prefix_and_unknown_keys_get_the_same_401() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let (_, key) = created(&s, &access, key_body("live")).await;
    let mut typo = key.clone().into_bytes();
    typo[15] = if typo[15] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    let bare = key.replacen("tsr_", "", 1);
    let other_vendor = key.replacen("tsr_", "abc_", 1);
    // A well-formed key with a valid checksum that was never issued.
    let never = {
        let body: String = key[12..42].chars().rev().collect();
        let text = format!("tsr_sk_live_{body}");
        let sum = tessera_core::apikey::format::checksum(&text);
        format!("{text}{}", String::from_utf8_lossy(&sum))
    };
    for bad in [
        "",
        "tsr_sk_live_short",
        typo.as_str(),
        bare.as_str(),
        other_vendor.as_str(),
        never.as_str(),
    ] {
        assert_refused(&whoami(&s, bad).await);
    }
    assert_refused(
        &s.send(Method::GET, "/v1/api-keys/whoami", &[], Bytes::new())
            .await,
    );
    assert_eq!(
        metric(
            &s,
            "tessera_api_key_refusals_total{reason=\"bad_checksum\"}"
        )
        .await,
        1
    );
    assert_eq!(
        metric(&s, "tessera_api_key_refusals_total{reason=\"unknown\"}").await,
        1
    );
    assert_eq!(
        metric(
            &s,
            "tessera_api_key_refusals_total{reason=\"wrong_prefix\"}"
        )
        .await,
        3
    );
    s.stop().await;
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let (id, key) = created(&s, &access, key_body("live")).await;
    let mut short = key_body("live");
    short["expires_in"] = json!(120);
    let (_, short_key) = created(&s, &access, short).await;
    let a = s
        .bearer_json(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            &access,
            json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_refused(&whoami(&s, &key).await);
    assert_eq!(whoami(&s, &short_key).await.status, StatusCode::OK);
    s.advance(120_000);
    assert_refused(&whoami(&s, &short_key).await);
    assert_eq!(
        metric(&s, "tessera_api_key_refusals_total{reason=\"revoked\"}").await,
        1
    );
    assert_eq!(
        metric(&s, "tessera_api_key_refusals_total{reason=\"expired\"}").await,
        1
    );
    // Someone else cannot revoke what is not theirs.
    assert_eq!(s.register("mallory").await.status, StatusCode::CREATED);
    let m = s.token_login("mallory").await.access;
    let (other, other_key) = created(&s, &access, key_body("live")).await;
    let a = s
        .bearer_json(
            Method::DELETE,
            &format!("/v1/api-keys/{other}"),
            &m,
            json!({}),
        )
        .await;
    assert_problem(&a, StatusCode::NOT_FOUND);
    assert_eq!(whoami(&s, &other_key).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn a_rotated_key_works_until_its_overlap_ends_then_never() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let (id, old) = created(&s, &access, key_body("live")).await;
    let a = s
        .bearer_json(
            Method::POST,
            &format!("/v1/api-keys/{id}/rotate"),
            &access,
            json!({"overlap_seconds": 300}),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let new = a.json()["key"].as_str().expect("key").to_owned();
    assert_eq!(a.json()["previous"]["id"].as_str(), Some(id.as_str()));
    assert_eq!(whoami(&s, &old).await.status, StatusCode::OK);
    assert_eq!(whoami(&s, &new).await.status, StatusCode::OK);
    s.advance(300_000);
    assert_refused(&whoami(&s, &old).await);
    assert_eq!(whoami(&s, &new).await.status, StatusCode::OK);
    assert_eq!(
        metric(&s, "tessera_api_key_refusals_total{reason=\"retired\"}").await,
        1
    );
    let too_long = s
        .bearer_json(
            Method::POST,
            &format!(
                "/v1/api-keys/{}/rotate",
                a.json()["id"].as_str().expect("id")
            ),
            &access,
            json!({"overlap_seconds": 365 * 24 * 3600}),
        )
        .await;
    assert_problem(&too_long, StatusCode::UNPROCESSABLE_ENTITY);
    s.stop().await;
}

#[tokio::test]
async fn a_test_key_never_works_on_a_live_route() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let (_, test_key) = created(&s, &access, key_body("test")).await;
    let (_, live_key) = created(&s, &access, key_body("live")).await;
    // whoami accepts both environments; token verification is live-only.
    assert_eq!(whoami(&s, &test_key).await.status, StatusCode::OK);
    let verify = |key: String| {
        let access = access.clone();
        let s = &s;
        async move {
            let headers = [
                ("x-api-key", key.as_str()),
                ("content-type", "application/json"),
            ];
            s.send(
                Method::POST,
                "/v1/tokens/verify",
                &headers,
                json!({"token": access}).to_string(),
            )
            .await
        }
    };
    assert_refused(&verify(test_key).await);
    let a = verify(live_key).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["active"], json!(true));
    assert_eq!(
        metric(
            &s,
            "tessera_api_key_refusals_total{reason=\"wrong_environment\"}"
        )
        .await,
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn a_key_from_a_disallowed_address_is_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let mut fenced = key_body("live");
    fenced["allowed_cidrs"] = json!(["203.0.113.0/24"]);
    let (_, key) = created(&s, &access, fenced).await;
    let mut local = key_body("live");
    local["allowed_cidrs"] = json!(["127.0.0.0/8"]);
    let (_, local_key) = created(&s, &access, local).await;
    assert_refused(&whoami(&s, &key).await);
    assert_eq!(whoami(&s, &local_key).await.status, StatusCode::OK);
    let mut bad = key_body("live");
    bad["allowed_cidrs"] = json!(["10.0.0.0/99"]);
    assert_problem(
        &create(&s, &access, bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    s.stop().await;
}

#[tokio::test]
async fn a_key_in_a_query_string_or_a_cookie_is_refused_and_never_stands_in_for_a_user() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let (_, key) = created(&s, &access, key_body("live")).await;
    let path = format!("/v1/api-keys/whoami?api_key={key}");
    assert_refused(&s.send(Method::GET, &path, &[], Bytes::new()).await);
    // Even with the header too: the copy in the URL has already leaked into logs.
    assert_refused(
        &s.send(
            Method::GET,
            &path,
            &[("x-api-key", key.as_str())],
            Bytes::new(),
        )
        .await,
    );
    let cookie = format!("api_key={key}");
    assert_refused(
        &s.send(
            Method::GET,
            "/v1/api-keys/whoami",
            &[("cookie", cookie.as_str())],
            Bytes::new(),
        )
        .await,
    );
    assert_eq!(
        metric(&s, "tessera_api_key_refusals_total{reason=\"in_query\"}").await,
        2
    );
    assert_eq!(
        metric(&s, "tessera_api_key_refusals_total{reason=\"in_cookie\"}").await,
        1
    );
    // A key is no user credential: not in X-API-Key on a user route, not as a bearer token.
    let me = s
        .send(
            Method::GET,
            "/v1/me",
            &[("x-api-key", key.as_str())],
            Bytes::new(),
        )
        .await;
    assert_problem(&me, StatusCode::UNAUTHORIZED);
    assert_problem(&s.me(&key).await, StatusCode::UNAUTHORIZED);
    let list = s
        .send(
            Method::GET,
            "/v1/api-keys",
            &[("x-api-key", key.as_str())],
            Bytes::new(),
        )
        .await;
    assert_problem(&list, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn a_burst_past_the_keys_rate_limit_gets_429_with_retry_after() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let mut limited = key_body("live");
    limited["rate_limit"] = json!(5);
    let (_, key) = created(&s, &access, limited).await;
    for _ in 0..5 {
        assert_eq!(whoami(&s, &key).await.status, StatusCode::OK);
    }
    let a = whoami(&s, &key).await;
    assert_problem(&a, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header("retry-after"), Some("12"));
    s.advance(12_000);
    assert_eq!(whoami(&s, &key).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn usage_is_one_event_per_key_per_interval_and_shows_in_the_list() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let (_, a_key) = created(&s, &access, key_body("live")).await;
    let (_, b_key) = created(&s, &access, key_body("test")).await;
    for _ in 0..50 {
        assert_eq!(whoami(&s, &a_key).await.status, StatusCode::OK);
    }
    for _ in 0..7 {
        assert_eq!(whoami(&s, &b_key).await.status, StatusCode::OK);
    }
    let used = |kinds: Vec<&str>| kinds.iter().filter(|k| **k == "ApiKeyUsed").count();
    assert_eq!(used(s.event_kinds().await), 0, "no event per request");
    tessera_http::apikey::record_usage(&s.app).await;
    assert_eq!(used(s.event_kinds().await), 2, "one per key");
    tessera_http::apikey::record_usage(&s.app).await;
    assert_eq!(
        used(s.event_kinds().await),
        2,
        "nothing new, nothing recorded"
    );
    let list = s
        .bearer_json(Method::GET, "/v1/api-keys", &access, json!({}))
        .await
        .json();
    let usage_of = |key: &str| {
        list.as_array()
            .expect("list")
            .iter()
            .find(|k| key.starts_with(k["prefix"].as_str().expect("prefix")))
            .map(|k| k["usage"].clone())
            .expect("listed")
    };
    assert_eq!(usage_of(&a_key)["requests"], json!(50));
    assert_eq!(usage_of(&b_key)["accepted"], json!(7));
    assert_eq!(usage_of(&a_key)["last_addresses"], json!(["127.0.0.1"]));
    assert!(usage_of(&a_key)["last_used_at"].is_string());
    assert_eq!(metric(&s, "tessera_api_key_usage_events_total").await, 2);
    s.stop().await;
}

#[tokio::test]
async fn keys_near_expiry_are_flagged_in_the_list_a_metric_and_an_event() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let mut soon = key_body("live");
    soon["expires_in"] = json!(10 * 24 * 3600);
    created(&s, &access, soon).await;
    created(&s, &access, key_body("live")).await;
    assert_eq!(metric(&s, "tessera_api_keys_expiring").await, 1);
    let list = s
        .bearer_json(Method::GET, "/v1/api-keys", &access, json!({}))
        .await
        .json();
    let flags: Vec<bool> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|k| k["expiring_soon"].as_bool().expect("flag"))
        .collect();
    assert_eq!(flags.iter().filter(|f| **f).count(), 1);
    tessera_http::apikey::record_usage(&s.app).await;
    let warned = s
        .event_kinds()
        .await
        .iter()
        .filter(|k| **k == "ApiKeyExpiryWarned")
        .count();
    assert_eq!(warned, 1);
    s.stop().await;
}

#[tokio::test]
async fn publishable_keys_carry_no_write_scope_and_scopes_stay_within_the_callers() {
    let s = Server::start(HttpConfig::default()).await;
    let access = alice(&s).await;
    let mut pk = key_body("live");
    pk["kind"] = json!("publishable");
    pk["scopes"] = json!(["tokens:write"]);
    assert_problem(
        &create(&s, &access, pk.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pk["scopes"] = json!(["tokens:read"]);
    let (_, key) = created(&s, &access, pk).await;
    assert!(key.starts_with("tsr_pk_"));
    let mut no_expiry = key_body("live");
    no_expiry
        .as_object_mut()
        .expect("object")
        .remove("expires_in");
    assert_problem(
        &create(&s, &access, no_expiry).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let mut too_long = key_body("live");
    too_long["expires_in"] = json!(400 * 24 * 3600);
    assert_problem(
        &create(&s, &access, too_long).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    s.stop().await;
}

struct Scanner {
    pair: EcdsaKeyPair,
}

impl Scanner {
    fn new() -> Self {
        Self {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key pair"),
        }
    }

    fn config(&self) -> SecretScanningKey {
        let der = self.pair.public_key().as_der().expect("SPKI");
        SecretScanningKey {
            key_identifier: "scanner-1".into(),
            key: format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                data_encoding::BASE64.encode(der.as_ref())
            ),
        }
    }

    fn sign(&self, body: &str) -> String {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), body.as_bytes())
            .expect("signs");
        data_encoding::BASE64.encode(sig.as_ref())
    }
}

async fn alert(s: &Server, body: &str, key_id: &str, signature: &str) -> Answer {
    let headers = [
        ("content-type", "application/json"),
        ("github-public-key-identifier", key_id),
        ("github-public-key-signature", signature),
    ];
    s.send(
        Method::POST,
        "/v1/api-keys/leaked",
        &headers,
        body.to_owned(),
    )
    .await
}

#[tokio::test]
async fn a_signed_leak_alert_revokes_our_keys_and_records_where_they_leaked() {
    let scanner = Scanner::new();
    let config = HttpConfig {
        secret_scanning_keys: vec![scanner.config()],
        ..HttpConfig::default()
    };
    let s = Server::start(config).await;
    let access = alice(&s).await;
    let (_, key) = created(&s, &access, key_body("live")).await;
    let body = json!([
        {"token": key, "type": "tessera_secret_key", "url": "https://github.com/o/r/blob/x/.env", "source": "content"},
        {"token": "tsr_sk_live_notoneofoursatallnotoneofours1234", "type": "tessera_secret_key", "url": "https://x", "source": "content"},
    ])
    .to_string();
    // A bad signature, an unknown key identifier, no signature: nothing happens.
    let other = Scanner::new();
    assert_problem(
        &alert(&s, &body, "scanner-1", &other.sign(&body)).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &alert(&s, &body, "scanner-2", &scanner.sign(&body)).await,
        StatusCode::UNAUTHORIZED,
    );
    let unsigned = s
        .send(
            Method::POST,
            "/v1/api-keys/leaked",
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
    assert_problem(&unsigned, StatusCode::UNAUTHORIZED);
    assert_eq!(whoami(&s, &key).await.status, StatusCode::OK);
    // Signed: our key is revoked, the stranger is a false positive.
    let a = alert(&s, &body, "scanner-1", &scanner.sign(&body)).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let v = a.json();
    assert_eq!(v[0]["outcome"], json!("revoked"));
    assert_eq!(v[0]["label"], json!("true_positive"));
    assert_eq!(v[1]["outcome"], json!("unknown"));
    assert_eq!(v[1]["label"], json!("false_positive"));
    assert!(
        !String::from_utf8_lossy(&a.body).contains(&key[12..]),
        "tokens are not echoed"
    );
    assert_refused(&whoami(&s, &key).await);
    let list = s
        .bearer_json(Method::GET, "/v1/api-keys", &access, json!({}))
        .await
        .json();
    assert_eq!(list[0]["status"], json!("revoked"));
    s.stop().await;
}

#[tokio::test]
async fn a_leak_alert_for_keys_we_never_issued_revokes_nothing() {
    let scanner = Scanner::new();
    let config = HttpConfig {
        secret_scanning_keys: vec![scanner.config()],
        ..HttpConfig::default()
    };
    let s = Server::start(config).await;
    let before = s.event_kinds().await.len();
    let body = json!([{"token": "ghp_000000000000000000000000000000000000", "type": "github", "url": "https://x", "source": "content"}]).to_string();
    let a = alert(&s, &body, "scanner-1", &scanner.sign(&body)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()[0]["outcome"], json!("unknown"));
    assert_eq!(s.event_kinds().await.len(), before);
    s.stop().await;
}
