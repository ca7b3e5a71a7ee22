//! Access and refresh tokens over real HTTP: login in token mode, rotation, reuse
//! detection, revocation, introspection, the JWKS with an independent verifier, tampered
//! tokens, garbage forms, and the races the single writer settles.

use std::sync::Arc;

use bytes::Bytes;
use data_encoding::BASE64URL_NOPAD;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_core::signing_key::Signer;
use tessera_http::HttpConfig;
use tessera_http::config::ClientSecret;
use tessera_tests::PASSWORD;
use tessera_tests::server::{Answer, Server, assert_problem, tokens_of};

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

fn assert_invalid_token(a: &Answer) {
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert!(
        a.header("www-authenticate")
            .is_some_and(|h| h.contains("error=\"invalid_token\"")),
        "{:?}",
        a.header("www-authenticate")
    );
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    let (h, p, s) = (
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    );
    (h.to_owned(), p.to_owned(), s.to_owned())
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&BASE64URL_NOPAD.decode(part.as_bytes()).expect("base64url"))
        .expect("json")
}

fn encode_part(value: &Value) -> String {
    BASE64URL_NOPAD.encode(value.to_string().as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_reuse_detection_revoke_the_family() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let first = s.token_login("alice").await;
    assert!(first.refresh.starts_with("tsr_"));
    assert_eq!(s.me(&first.access).await.status, StatusCode::OK);

    let second = tokens_of(&s.refresh(&first.refresh).await);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(s.me(&second.access).await.json()["username"], "alice");

    // The spent token again: theft or a replay. The whole family dies.
    assert_oauth_error(
        &s.refresh(&first.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_invalid_token(&s.me(&second.access).await);
    assert_invalid_token(&s.me(&first.access).await);
    assert_oauth_error(
        &s.refresh(&second.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert!(s.event_kinds().await.contains(&"RefreshTokenReused"));
    let metrics = s.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    assert!(
        String::from_utf8_lossy(&metrics.body).contains("tessera_detections_total 1"),
        "reuse is counted as a detection"
    );

    // Another login is a new family and works.
    let again = s.token_login("alice").await;
    assert_eq!(s.me(&again.access).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_malformed_tokens_are_refused_and_change_nothing() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let t = s.token_login("alice").await;
    let head = s.engine.head_sequence();
    let (h, p, sig) = parts(&t.access);
    let header = decode_part(&h);
    let claims = decode_part(&p);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");

    let mut forged: Vec<(&str, String)> = Vec::new();
    let mut none = header.clone();
    none["alg"] = json!("none");
    forged.push(("alg none", format!("{}.{p}.", encode_part(&none))));
    // Algorithm confusion: HS256 keyed with the public key everyone can fetch.
    let jwks = s
        .send(Method::GET, "/.well-known/jwks.json", &[], Bytes::new())
        .await
        .json();
    let x = BASE64URL_NOPAD
        .decode(jwks["keys"][0]["x"].as_str().expect("x").as_bytes())
        .expect("x decodes");
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = header["kid"].as_str().map(str::to_owned);
    let confused = jsonwebtoken::encode(&hs, &claims, &jsonwebtoken::EncodingKey::from_secret(&x))
        .expect("encodes");
    forged.push(("HS256 with the public key", confused));
    let stranger = Signer::from_seed(&[7; 32]).expect("a key");
    let own: tessera_core::token::AccessClaims =
        serde_json::from_value(claims.clone()).expect("claims parse");
    forged.push(("unknown kid", stranger.sign(&own).expect("signs")));
    let mut injected = header.clone();
    injected["kid"] = json!("../../../../etc/passwd");
    forged.push((
        "injected kid",
        format!("{}.{p}.{sig}", encode_part(&injected)),
    ));
    forged.push(("stripped signature", format!("{h}.{p}.")));
    let mut flipped = sig.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    forged.push((
        "altered signature",
        format!("{h}.{p}.{}", String::from_utf8(flipped).expect("ascii")),
    ));
    let mut other = claims.clone();
    other["sub"] = json!("00000000-0000-7000-8000-000000000000");
    forged.push((
        "changed payload",
        format!("{h}.{}.{sig}", encode_part(&other)),
    ));
    let signer = s.app.signing.signer();
    let resign = |edit: &dyn Fn(&mut tessera_core::token::AccessClaims)| {
        let mut c = own.clone();
        edit(&mut c);
        signer.sign(&c).expect("signs")
    };
    forged.push((
        "wrong iss",
        resign(&|c| c.iss = "https://evil.example".into()),
    ));
    forged.push(("wrong aud", resign(&|c| c.aud = "someone-else".into())));
    forged.push((
        "not yet valid",
        resign(&|c| {
            c.nbf += 3600;
            c.iat += 3600;
            c.exp += 3600;
        }),
    ));
    forged.push((
        "expired",
        resign(&|c| {
            c.iat -= 3600;
            c.nbf -= 3600;
            c.exp = c.iat + 60;
        }),
    ));
    let mut jwt_typ = header.clone();
    jwt_typ["typ"] = json!("JWT");
    forged.push(("wrong typ", format!("{}.{p}.{sig}", encode_part(&jwt_typ))));
    forged.push(("refresh token as access token", t.refresh.clone()));
    forged.push(("truncated", t.access[..t.access.len() / 2].to_owned()));
    forged.push(("oversized", format!("{}{}", t.access, "A".repeat(10_000))));
    forged.push(("garbage", "not.a.jwt".into()));
    for (what, token) in &forged {
        let a = s.me(token).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_invalid_token(&a);
    }
    for header in ["Basic YWxpY2U6cGFzcw==", "Bearer", "Bearer    "] {
        let a = s
            .send(
                Method::GET,
                "/v1/me",
                &[("authorization", header)],
                Bytes::new(),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{header}");
    }
    // An access token where a refresh token belongs.
    assert_oauth_error(
        &s.refresh(&t.access).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        s.engine.head_sequence(),
        head,
        "no refused token changed anything"
    );
    assert_eq!(
        s.me(&t.access).await.status,
        StatusCode::OK,
        "the real token still works"
    );
    // And it stops working when it expires (15 minutes, 30 s leeway).
    s.advance(16 * 60 * 1000);
    assert_invalid_token(&s.me(&t.access).await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_answers_garbage_with_rfc6749_errors() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let t = s.token_login("alice").await;
    let head = s.engine.head_sequence();
    let json_body = s
        .post_json(
            "/oauth/token",
            json!({"grant_type": "refresh_token", "refresh_token": t.refresh}),
            &[],
        )
        .await;
    assert_oauth_error(&json_body, StatusCode::BAD_REQUEST, "invalid_request");
    assert_oauth_error(
        &s.post_form("/oauth/token", "refresh_token=x", &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_oauth_error(
        &s.post_form(
            "/oauth/token",
            "grant_type=password&username=a&password=b",
            &[],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    );
    let twice = format!(
        "grant_type=refresh_token&refresh_token={0}&refresh_token={0}",
        t.refresh
    );
    assert_oauth_error(
        &s.post_form("/oauth/token", &twice, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_oauth_error(
        &s.post_form("/oauth/token", "grant_type=refresh_token", &[])
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    for garbage in ["x", "tsr_", "tsr_%00%00", &"A".repeat(5000), "%ZZ%"] {
        let a = s
            .post_form(
                "/oauth/token",
                &format!("grant_type=refresh_token&refresh_token={garbage}"),
                &[],
            )
            .await;
        assert!(
            a.status == StatusCode::BAD_REQUEST,
            "{garbage}: {}",
            a.status
        );
        assert!(
            ["invalid_grant", "invalid_request"]
                .contains(&a.json()["error"].as_str().unwrap_or("")),
            "{garbage}"
        );
    }
    let huge = format!(
        "grant_type=refresh_token&refresh_token={}",
        "A".repeat(20_000)
    );
    assert_oauth_error(
        &s.post_form("/oauth/token", &huge, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_oauth_error(
        &s.send(
            Method::POST,
            "/oauth/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            vec![0xff, 0xfe],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_problem(
        &s.send(Method::GET, "/oauth/token", &[], Bytes::new()).await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
    assert_eq!(s.engine.head_sequence(), head, "garbage changed nothing");
    assert_eq!(
        s.refresh(&t.refresh).await.status,
        StatusCode::OK,
        "the real token still rotates"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_follows_rfc7009() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let a = s.token_login("alice").await;
    assert_eq!(
        s.post_form(
            "/oauth/revoke",
            &format!("token={}&token_type_hint=refresh_token", a.refresh),
            &[]
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_oauth_error(
        &s.refresh(&a.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_invalid_token(&s.me(&a.access).await);

    let b = s.token_login("alice").await;
    assert_eq!(
        s.post_form("/oauth/revoke", &format!("token={}", b.access), &[])
            .await
            .status,
        StatusCode::OK
    );
    assert_invalid_token(&s.me(&b.access).await);
    let fresh = tokens_of(&s.refresh(&b.refresh).await);
    assert_eq!(
        s.me(&fresh.access).await.status,
        StatusCode::OK,
        "revoking one access token leaves its family"
    );

    for unknown in [
        "nonsense",
        "tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "a.b.c",
    ] {
        let r = s
            .post_form(
                "/oauth/revoke",
                &format!("token={unknown}&token_type_hint=access_token"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "unknown tokens answer 200 too");
    }
    assert_oauth_error(
        &s.post_form("/oauth/revoke", "token_type_hint=refresh_token", &[])
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_needs_the_configured_client() {
    let closed = Server::start(HttpConfig::default()).await;
    let a = closed
        .post_form(
            "/oauth/introspect",
            "token=x",
            &[("authorization", "Basic cnM6c2VjcmV0")],
        )
        .await;
    assert_oauth_error(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    let meta = closed
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            &[],
            Bytes::new(),
        )
        .await
        .json();
    assert!(
        meta["introspection_endpoint"]
            .as_str()
            .is_some_and(|u| u.ends_with("/oauth/introspect")),
        "advertised: registered clients introspect their own tokens"
    );
    closed.stop().await;

    let config = HttpConfig {
        introspection_client_id: Some("resource-server".into()),
        introspection_client_secret: Some(ClientSecret("a long shared secret".into())),
        ..HttpConfig::default()
    };
    let s = Server::start(config).await;
    s.register("alice").await;
    let t = s.token_login("alice").await;
    let good = format!(
        "Basic {}",
        data_encoding::BASE64.encode(b"resource-server:a long shared secret")
    );
    let bad = format!(
        "Basic {}",
        data_encoding::BASE64.encode(b"resource-server:wrong")
    );
    assert_oauth_error(
        &s.post_form(
            "/oauth/introspect",
            &format!("token={}", t.access),
            &[("authorization", bad.as_str())],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    let active = s
        .post_form(
            "/oauth/introspect",
            &format!("token={}", t.access),
            &[("authorization", good.as_str())],
        )
        .await
        .json();
    assert_eq!(active["active"], true);
    assert_eq!(active["username"], "alice");
    assert!(active["exp"].is_u64() && active["sub"].is_string());
    let refresh = s
        .post_form(
            "/oauth/introspect",
            &format!("token={}", t.refresh),
            &[("authorization", good.as_str())],
        )
        .await
        .json();
    assert_eq!(refresh["active"], true);
    assert_eq!(refresh["token_type"], "refresh_token");
    s.post_form("/oauth/revoke", &format!("token={}", t.refresh), &[])
        .await;
    for token in [t.access.as_str(), t.refresh.as_str(), "garbage"] {
        let r = s
            .post_form(
                "/oauth/introspect",
                &format!("token={token}"),
                &[("authorization", good.as_str())],
            )
            .await
            .json();
        assert_eq!(r, json!({"active": false}), "{token}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_with_an_independent_implementation_given_only_the_jwks() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let t = s.token_login("alice").await;
    let jwks_answer = s
        .send(Method::GET, "/.well-known/jwks.json", &[], Bytes::new())
        .await;
    let jwks = jwks_answer.json();
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("sig"))
    );
    let meta = s
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            &[],
            Bytes::new(),
        )
        .await
        .json();
    assert!(
        meta["token_endpoint"]
            .as_str()
            .is_some_and(|u| u.ends_with("/oauth/token"))
    );
    assert!(
        meta["jwks_uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/.well-known/jwks.json"))
    );
    assert!(
        meta["authorization_endpoint"]
            .as_str()
            .is_some_and(|u| u.ends_with("/oauth/authorize"))
    );
    let issuer = format!("http://{}", s.addr);
    assert_eq!(
        meta["issuer"],
        issuer.as_str(),
        "the issuer is the URL it was fetched from"
    );

    // jsonwebtoken's own decode path (not our verifier), keyed only by the published JWK.
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks.clone()).expect("a standard JWKS");
    let kid = jsonwebtoken::decode_header(&t.access)
        .expect("header")
        .kid
        .expect("kid");
    let jwk = set.find(&kid).expect("the token's kid is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["tessera"]);
    validation.set_issuer(&[issuer.as_str()]);
    // The test clock is not the wall clock; exp is checked by hand below.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(
        &t.access,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("an independent JOSE implementation accepts the token");
    assert!(data.claims["exp"].as_u64().expect("exp") > s.engine.now().as_secs());

    // And Node's crypto, a different implementation altogether, when the machine has Node.
    let (h, p, sig) = parts(&t.access);
    let script = format!(
        "const c=require('crypto');const k=c.createPublicKey({{key:{},format:'jwk'}});\
         process.stdout.write(String(c.verify(null,Buffer.from('{h}.{p}'),k,Buffer.from('{sig}','base64url'))))",
        key
    );
    match std::process::Command::new("node")
        .args(["-e", &script])
        .output()
    {
        Ok(out) if out.status.success() => assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "true",
            "node verifies the signature"
        ),
        Ok(out) => panic!("node failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => eprintln!("node is not installed; only jsonwebtoken checked the token"),
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_of_one_token_exactly_one_wins() {
    let s = Arc::new(Server::start(HttpConfig::default()).await);
    s.register("alice").await;
    for _ in 0..5 {
        let t = s.token_login("alice").await;
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (s, r) = (s.clone(), t.refresh.clone());
                tokio::spawn(async move { s.refresh(&r).await })
            })
            .collect();
        let mut wins = Vec::new();
        for racer in racers {
            let a = racer.await.expect("joins");
            if a.status == StatusCode::OK {
                wins.push(tokens_of(&a));
            } else {
                assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_grant");
            }
        }
        assert_eq!(wins.len(), 1, "exactly one refresh of one token succeeds");
        // The losers presented a spent token: reuse, so even the winner's tokens are dead.
        assert_invalid_token(&s.me(&wins[0].access).await);
        assert_oauth_error(
            &s.refresh(&wins[0].refresh).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        );
    }
    Arc::into_inner(s).expect("sole owner").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_logout_beat_a_racing_refresh() {
    let s = Arc::new(Server::start(HttpConfig::default()).await);
    s.register("alice").await;
    for round in 0..12 {
        let t = s.token_login("alice").await;
        let refresh = {
            let (s, r) = (s.clone(), t.refresh.clone());
            tokio::spawn(async move { s.refresh(&r).await })
        };
        let end = {
            let s = s.clone();
            let (access, refresh) = (t.access.clone(), t.refresh.clone());
            tokio::spawn(async move {
                if round % 2 == 0 {
                    s.post_form("/oauth/revoke", &format!("token={refresh}"), &[])
                        .await
                } else {
                    let header = format!("Bearer {access}");
                    s.send(
                        Method::POST,
                        "/v1/logout",
                        &[("authorization", header.as_str())],
                        Bytes::new(),
                    )
                    .await
                }
            })
        };
        let (refreshed, ended) = (refresh.await.expect("joins"), end.await.expect("joins"));
        assert!(
            ended.status == StatusCode::OK
                || ended.status == StatusCode::NO_CONTENT
                || ended.status == StatusCode::UNAUTHORIZED,
            "round {round}: {}",
            ended.status
        );
        if refreshed.status == StatusCode::OK {
            let minted = tokens_of(&refreshed);
            // Whatever the order, nothing minted in the race survives the revocation.
            if ended.status != StatusCode::UNAUTHORIZED {
                assert_invalid_token(&s.me(&minted.access).await);
                assert_oauth_error(
                    &s.refresh(&minted.refresh).await,
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                );
            }
        }
        assert_invalid_token(&s.me(&t.access).await);
    }
    Arc::into_inner(s).expect("sole owner").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_logout_and_password_change_end_token_families() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let t = s.token_login("alice").await;
    let out = s.bearer_post("/v1/logout", &t.access).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.header("set-cookie").is_none(),
        "a bearer logout sets no cookie"
    );
    assert_invalid_token(&s.me(&t.access).await);
    assert_oauth_error(
        &s.refresh(&t.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    let t = s.token_login("alice").await;
    let cookie = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    let cookie_header = format!("__Host-tessera_session={cookie}");
    let change = json!({"current_password": PASSWORD, "new_password": "Another good 1 pass"});
    let changed = s
        .send(
            Method::POST,
            "/v1/password",
            &[
                ("cookie", cookie_header.as_str()),
                ("content-type", "application/json"),
            ],
            change.to_string(),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    assert_invalid_token(&s.me(&t.access).await);
    assert_oauth_error(
        &s.refresh(&t.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_signs_at_once_and_the_old_one_still_verifies() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let before = s.token_login("alice").await;
    let old_kid = jsonwebtoken::decode_header(&before.access)
        .expect("header")
        .kid;
    let new_kid = s.app.signing.rotate(&s.engine).await.expect("rotates");
    let after = s.token_login("alice").await;
    assert_eq!(
        jsonwebtoken::decode_header(&after.access)
            .expect("header")
            .kid
            .as_deref(),
        Some(new_kid.as_str())
    );
    assert_ne!(old_kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(
        s.me(&before.access).await.status,
        StatusCode::OK,
        "tokens of the old key stay valid"
    );
    assert_eq!(s.me(&after.access).await.status, StatusCode::OK);
    let jwks = s
        .send(Method::GET, "/.well-known/jwks.json", &[], Bytes::new())
        .await
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(
        kids.first(),
        Some(&new_kid.as_str()),
        "the current key first"
    );
    assert_eq!(kids.len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_everywhere_ends_every_session_family_and_token() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    s.register("bob").await;
    let phone = s.token_login("alice").await;
    let laptop = s.token_login("alice").await;
    let browser = s.login("alice", PASSWORD).await.cookie().expect("cookie");
    let bob = s.token_login("bob").await;
    let out = s.bearer_post("/v1/logout/everywhere", &phone.access).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    for access in [&phone.access, &laptop.access] {
        assert_invalid_token(&s.me(access).await);
    }
    for refresh in [&phone.refresh, &laptop.refresh] {
        assert_oauth_error(
            &s.refresh(refresh).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        );
    }
    assert_problem(
        &s.with_cookie(Method::GET, "/v1/me", &browser).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(
        s.me(&bob.access).await.status,
        StatusCode::OK,
        "other accounts are untouched"
    );
    // Logging in again works, and the new tokens are accepted.
    s.advance(1_000);
    let fresh = s.token_login("alice").await;
    assert_eq!(s.me(&fresh.access).await.status, StatusCode::OK);
    s.stop().await;
}
