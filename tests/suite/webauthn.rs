//! WebAuthn over a real server on 127.0.0.1 with a real HTTP client, the seeded software
//! authenticator on the other end: registration (passkey and security key), listing,
//! removal, the passwordless login, the second factor after a password, and every bad input
//! the ceremony and the core must refuse.

use http::{Method, StatusCode};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use serde_json::{Value, json};
use tessera_core::webauthn::CounterPolicy;
use tessera_http::config::HttpConfig;
use tessera_simulator::authenticator::{Authenticator, Gesture, Tamper};
use tessera_tests::PASSWORD;
use tessera_tests::server::{Answer, Server, assert_problem, tokens_of};

/// A server, a user with a token, and an authenticator.
struct Fixture {
    server: Server,
    rng: ChaCha20Rng,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(HttpConfig::default(), tessera_tests::policy()).await
    }

    async fn with(config: HttpConfig, policy: tessera_core::Policy) -> Self {
        Self {
            server: Server::start_with_policy(config, policy).await,
            rng: ChaCha20Rng::seed_from_u64(7),
        }
    }

    fn origin(&self) -> String {
        self.server
            .app
            .webauthn
            .as_ref()
            .expect("WebAuthn is on for a loopback public URL")
            .origin()
            .to_owned()
    }

    fn honest(&self) -> Gesture {
        Gesture::new(self.origin())
    }

    /// Registers `username` and returns a fresh access token.
    async fn user(&self, username: &str) -> String {
        self.server.register(username).await;
        self.server.token_login(username).await.access
    }

    async fn post(&self, path: &str, bearer: &str, body: Value) -> Answer {
        self.server
            .bearer_json(Method::POST, path, bearer, body)
            .await
    }

    /// Starts a registration of `kind` and answers it with `auth`; returns the finish body.
    async fn make_credential(
        &mut self,
        bearer: &str,
        kind: &str,
        auth: &mut Authenticator,
        gesture: &Gesture,
    ) -> Value {
        let started = self
            .post("/v1/webauthn/register/start", bearer, json!({"kind": kind}))
            .await;
        assert_eq!(started.status, StatusCode::OK, "{}", body_of(&started));
        let options = started.json();
        let credential = auth
            .register_json(
                &mut self.rng,
                &json!({"publicKey": options["publicKey"]}),
                gesture,
            )
            .expect("the authenticator answers");
        json!({"ceremony": options["ceremony"], "name": "My key", "credential": credential})
    }

    /// Registers a credential of `kind` held by `auth`; returns its id.
    async fn enrol(&mut self, bearer: &str, kind: &str, auth: &mut Authenticator) -> String {
        let gesture = self.honest();
        let finish = self.make_credential(bearer, kind, auth, &gesture).await;
        let done = self
            .post("/v1/webauthn/register/finish", bearer, finish)
            .await;
        assert_eq!(done.status, StatusCode::CREATED, "{}", body_of(&done));
        assert_eq!(done.json()["name"], "My key");
        done.json()["id"].as_str().expect("an id").to_owned()
    }

    /// Starts a passwordless login; returns `(ceremony, options)`.
    async fn login_start(&self) -> (String, Value) {
        let a = self
            .server
            .post_json("/v1/login/webauthn/start", json!({}), &[])
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", body_of(&a));
        let body = a.json();
        (
            body["ceremony"].as_str().expect("ceremony").to_owned(),
            json!({"publicKey": body["publicKey"]}),
        )
    }

    async fn login_finish(&self, ceremony: &str, credential: &Value, mode: &str) -> Answer {
        self.server
            .post_json(
                "/v1/login/webauthn/finish",
                json!({"ceremony": ceremony, "credential": credential, "mode": mode}),
                &[],
            )
            .await
    }

    /// A whole passwordless login in token mode with `gesture`.
    async fn passkey_login(&self, auth: &mut Authenticator, gesture: &Gesture) -> Answer {
        let (ceremony, options) = self.login_start().await;
        let credential = auth.assert_json(&options, gesture).expect("asserts");
        self.login_finish(&ceremony, &credential, "token").await
    }

    /// A password login that must answer with an MFA challenge; returns the `mfa_token`.
    async fn challenge(&self, username: &str) -> Value {
        let a = self
            .server
            .post_json(
                "/v1/login",
                json!({"username": username, "password": PASSWORD}),
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", body_of(&a));
        a.json()
    }

    /// Starts the second factor for `mfa_token`; returns `(ceremony, options)`.
    async fn second_factor_start(&self, mfa_token: &str) -> (String, Value) {
        let a = self
            .server
            .post_json(
                "/v1/login/webauthn/start",
                json!({"mfa_token": mfa_token}),
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", body_of(&a));
        let body = a.json();
        (
            body["ceremony"].as_str().expect("ceremony").to_owned(),
            json!({"publicKey": body["publicKey"]}),
        )
    }

    async fn answer(&self, mfa_token: &str, ceremony: &str, credential: &Value) -> Answer {
        self.server
            .post_json(
                "/v1/login/mfa",
                json!({
                    "mfa_token": mfa_token,
                    "webauthn": {"ceremony": ceremony, "credential": credential},
                }),
                &[],
            )
            .await
    }

    async fn list(&self, bearer: &str) -> Vec<Value> {
        let a = self
            .server
            .bearer_json(Method::GET, "/v1/webauthn/credentials", bearer, json!({}))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", body_of(&a));
        a.json().as_array().expect("a list").clone()
    }
}

fn body_of(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

fn slug(a: &Answer, status: StatusCode) -> String {
    let body = assert_problem(a, status);
    body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:tessera:problem:"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn passkey_registers_lists_and_logs_in_without_a_password() {
    let mut f = Fixture::new().await;
    let bearer = f.user("alice").await;
    let mut phone = Authenticator::platform();
    let id = f.enrol(&bearer, "passkey", &mut phone).await;

    let listed = f.list(&bearer).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["kind"], "passkey");
    assert_eq!(listed[0]["discoverable"], true);
    assert!(listed[0]["created_at"].is_string());
    assert!(listed[0]["last_used_at"].is_null());

    // Token mode: the same answer as a password login.
    let gesture = f.honest();
    let tokens = tokens_of(&f.passkey_login(&mut phone, &gesture).await);
    assert_eq!(
        f.server.me(&tokens.access).await.json()["username"],
        "alice"
    );

    // Session mode: the cookie.
    let (ceremony, options) = f.login_start().await;
    let credential = phone.assert_json(&options, &gesture).expect("asserts");
    let session = f.login_finish(&ceremony, &credential, "session").await;
    assert_eq!(session.status, StatusCode::OK, "{}", body_of(&session));
    assert!(session.cookie().is_some());

    let listed = f.list(&bearer).await;
    assert!(listed[0]["last_used_at"].is_string());
    let kinds = f.server.event_kinds().await;
    assert!(kinds.contains(&"WebauthnCredentialRegistered"));
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "WebauthnCredentialUsed")
            .count(),
        2
    );
}

#[tokio::test]
async fn security_key_is_a_second_factor_after_the_password() {
    let mut f = Fixture::new().await;
    let bearer = f.user("bob").await;
    let mut key = Authenticator::security_key();
    f.enrol(&bearer, "security_key", &mut key).await;
    assert_eq!(f.list(&bearer).await[0]["kind"], "security_key");

    // The password alone no longer logs in: the challenge lists the credential.
    let challenge = f.challenge("bob").await;
    assert_eq!(challenge["mfa_required"], true);
    assert_eq!(challenge["methods"], json!(["webauthn"]));
    let mfa_token = challenge["mfa_token"].as_str().expect("token");

    let (ceremony, options) = f.second_factor_start(mfa_token).await;
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let credential = key.assert_json(&options, &f.honest()).expect("asserts");
    let done = f.answer(mfa_token, &ceremony, &credential).await;
    let tokens = tokens_of(&done);
    assert_eq!(f.server.me(&tokens.access).await.json()["username"], "bob");

    // A security key never logs in alone: it is not discoverable, so the passwordless
    // ceremony finds nothing to sign with.
    let (_, options) = f.login_start().await;
    assert!(key.assert_json(&options, &f.honest()).is_err());
}

#[tokio::test]
async fn a_failed_assertion_counts_against_the_challenge_attempt_limit() {
    let mut f = Fixture::new().await;
    let bearer = f.user("carol").await;
    let mut key = Authenticator::security_key();
    f.enrol(&bearer, "security_key", &mut key).await;
    let challenge = f.challenge("carol").await;
    let mfa_token = challenge["mfa_token"].as_str().expect("token");
    let bad = f.honest().tampered(Tamper::Signature);
    let attempts = f.server.engine.policy().mfa.challenge_attempts_max;
    for _ in 0..attempts {
        let (ceremony, options) = f.second_factor_start(mfa_token).await;
        let credential = key.assert_json(&options, &bad).expect("asserts");
        let a = f.answer(mfa_token, &ceremony, &credential).await;
        assert_eq!(
            slug(&a, StatusCode::UNAUTHORIZED),
            "webauthn-assertion-invalid"
        );
    }
    // Exhausted: even a right answer is refused now (no ceremony starts either).
    let a = f
        .server
        .post_json(
            "/v1/login/webauthn/start",
            json!({"mfa_token": mfa_token}),
            &[],
        )
        .await;
    assert_eq!(slug(&a, StatusCode::UNAUTHORIZED), "mfa-challenge-invalid");
}

#[tokio::test]
async fn a_ceremony_is_single_use_and_expires() {
    let mut f = Fixture::new().await;
    let bearer = f.user("dave").await;
    let mut phone = Authenticator::platform();
    f.enrol(&bearer, "passkey", &mut phone).await;
    let gesture = f.honest();

    // Used twice: the replayed response finds no ceremony.
    let (ceremony, options) = f.login_start().await;
    let credential = phone.assert_json(&options, &gesture).expect("asserts");
    let first = f.login_finish(&ceremony, &credential, "token").await;
    assert_eq!(first.status, StatusCode::OK, "{}", body_of(&first));
    let replay = f.login_finish(&ceremony, &credential, "token").await;
    assert_eq!(
        slug(&replay, StatusCode::BAD_REQUEST),
        "webauthn-ceremony-invalid"
    );

    // Expired: five minutes later the ceremony is gone.
    let (ceremony, options) = f.login_start().await;
    let credential = phone.assert_json(&options, &gesture).expect("asserts");
    f.server.advance(5 * 60 * 1000 + 1);
    let late = f.login_finish(&ceremony, &credential, "token").await;
    assert_eq!(
        slug(&late, StatusCode::BAD_REQUEST),
        "webauthn-ceremony-invalid"
    );

    // A response made for one ceremony does not finish another: the challenge differs.
    let (_, options_a) = f.login_start().await;
    let (ceremony_b, _) = f.login_start().await;
    let credential = phone.assert_json(&options_a, &gesture).expect("asserts");
    let crossed = f.login_finish(&ceremony_b, &credential, "token").await;
    assert_eq!(
        slug(&crossed, StatusCode::UNAUTHORIZED),
        "webauthn-assertion-invalid"
    );
}

#[tokio::test]
async fn a_response_for_another_users_challenge_is_refused() {
    let mut f = Fixture::new().await;
    let alice = f.user("erin").await;
    let bob = f.user("frank").await;
    let mut erin_key = Authenticator::security_key();
    let mut frank_key = Authenticator::security_key();
    f.enrol(&alice, "security_key", &mut erin_key).await;
    f.enrol(&bob, "security_key", &mut frank_key).await;
    let erin = f.challenge("erin").await;
    let frank = f.challenge("frank").await;
    let erin_token = erin["mfa_token"].as_str().expect("token");
    let frank_token = frank["mfa_token"].as_str().expect("token");
    let (erin_ceremony, _) = f.second_factor_start(erin_token).await;
    let (frank_ceremony, frank_options) = f.second_factor_start(frank_token).await;
    let franks = frank_key
        .assert_json(&frank_options, &f.honest())
        .expect("asserts");

    // Frank's answer on Erin's login, with Erin's ceremony: not one of her credentials.
    let a = f.answer(erin_token, &erin_ceremony, &franks).await;
    assert_eq!(
        slug(&a, StatusCode::UNAUTHORIZED),
        "webauthn-assertion-invalid"
    );
    // With Frank's ceremony on Erin's login: the ceremony is bound to Frank's challenge.
    let a = f.answer(erin_token, &frank_ceremony, &franks).await;
    assert_eq!(
        slug(&a, StatusCode::BAD_REQUEST),
        "webauthn-ceremony-invalid"
    );
}

#[tokio::test]
async fn another_origin_or_rp_id_tampering_and_bad_signatures_are_refused() {
    let mut f = Fixture::new().await;
    let bearer = f.user("grace").await;
    let mut phone = Authenticator::platform();
    f.enrol(&bearer, "passkey", &mut phone).await;
    let rp_id = f
        .server
        .app
        .webauthn
        .as_ref()
        .expect("on")
        .rp_id()
        .to_owned();
    assert_eq!(rp_id, "localhost");
    let bad = [
        Gesture::new("https://login.tessera.example.evil"),
        f.honest().with_rp_id("evil.example"),
        f.honest().tampered(Tamper::ClientDataJson),
        f.honest().tampered(Tamper::AuthenticatorData),
        f.honest().tampered(Tamper::Signature),
        f.honest().without_user_verification(),
    ];
    for gesture in &bad {
        let a = f.passkey_login(&mut phone, gesture).await;
        assert_eq!(
            slug(&a, StatusCode::UNAUTHORIZED),
            "webauthn-assertion-invalid",
            "{gesture:?}"
        );
    }
    // The same refusals at registration: another origin, another RP id, tampered data.
    for gesture in [
        Gesture::new("https://evil.example"),
        f.honest().with_rp_id("evil.example"),
        f.honest().tampered(Tamper::ClientDataJson),
        f.honest().tampered(Tamper::AuthenticatorData),
    ] {
        let mut other = Authenticator::platform();
        let finish = f
            .make_credential(&bearer, "passkey", &mut other, &gesture)
            .await;
        let a = f
            .post("/v1/webauthn/register/finish", &bearer, finish)
            .await;
        assert_eq!(
            slug(&a, StatusCode::UNPROCESSABLE_ENTITY),
            "webauthn-registration-invalid",
            "{gesture:?}"
        );
    }
    assert_eq!(f.list(&bearer).await.len(), 1);
    // Each refused login is a security event (a relaying phishing page shows up there).
    let metrics = f
        .server
        .send(Method::GET, "/metrics", &[], bytes::Bytes::new())
        .await;
    assert!(
        body_of(&metrics).contains("tessera_security_events_total{event=\"webauthn_refused\"} 6"),
        "{}",
        body_of(&metrics)
    );
    // Nothing was recorded for any of them.
    let kinds = f.server.event_kinds().await;
    assert!(!kinds.contains(&"WebauthnCredentialUsed"));
}

#[tokio::test]
async fn a_counter_that_goes_backwards_is_recorded_and_refused() {
    let mut f = Fixture::new().await;
    let bearer = f.user("heidi").await;
    let mut phone = Authenticator::platform();
    let id = f.enrol(&bearer, "passkey", &mut phone).await;
    let gesture = f.honest();
    let clone = phone.clone();
    assert_eq!(
        f.passkey_login(&mut phone, &gesture).await.status,
        StatusCode::OK
    );
    // The clone still holds counter 0: its next assertion says 1, which is not past 1.
    let mut clone = clone;
    let a = f.passkey_login(&mut clone, &gesture).await;
    assert_eq!(
        slug(&a, StatusCode::UNAUTHORIZED),
        "webauthn-counter-regressed"
    );
    let kinds = f.server.event_kinds().await;
    assert!(kinds.contains(&"WebauthnCounterRegressed"));
    // The original goes on.
    assert_eq!(
        f.passkey_login(&mut phone, &gesture).await.status,
        StatusCode::OK
    );
    let listed = f.list(&bearer).await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["clone_suspected"], false);
}

#[tokio::test]
async fn accept_and_flag_lets_a_regressed_counter_in_and_flags_the_credential() {
    let mut policy = tessera_tests::policy();
    policy.webauthn.counter_regression = CounterPolicy::AcceptAndFlag;
    let mut f = Fixture::with(HttpConfig::default(), policy).await;
    let bearer = f.user("ivan").await;
    let mut phone = Authenticator::platform();
    f.enrol(&bearer, "passkey", &mut phone).await;
    let gesture = f.honest();
    let mut clone = phone.clone();
    assert_eq!(
        f.passkey_login(&mut phone, &gesture).await.status,
        StatusCode::OK
    );
    let a = f.passkey_login(&mut clone, &gesture).await;
    assert_eq!(a.status, StatusCode::OK, "{}", body_of(&a));
    assert!(
        f.server
            .event_kinds()
            .await
            .contains(&"WebauthnCounterRegressed")
    );
    assert_eq!(f.list(&bearer).await[0]["clone_suspected"], true);
}

#[tokio::test]
async fn an_unknown_or_removed_credential_does_not_log_in() {
    let mut f = Fixture::new().await;
    let bearer = f.user("judy").await;
    let mut phone = Authenticator::platform();
    let id = f.enrol(&bearer, "passkey", &mut phone).await;

    // Removed: the account keeps its password, so the credential may go.
    let path = format!("/v1/webauthn/credentials/{id}");
    let gone = f
        .server
        .bearer_json(Method::DELETE, &path, &bearer, json!({}))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", body_of(&gone));
    assert!(f.list(&bearer).await.is_empty());
    let a = f.passkey_login(&mut phone, &f.honest()).await;
    assert_eq!(
        slug(&a, StatusCode::UNAUTHORIZED),
        "webauthn-credential-unknown"
    );
    // Removing it again, or someone else's, is a 404.
    let again = f
        .server
        .bearer_json(Method::DELETE, &path, &bearer, json!({}))
        .await;
    assert_eq!(
        slug(&again, StatusCode::NOT_FOUND),
        "webauthn-credential-unknown"
    );
    // And with the credential gone, the password logs in alone again.
    let login = f
        .server
        .post_json(
            "/v1/login",
            json!({"username": "judy", "password": PASSWORD}),
            &[],
        )
        .await;
    assert!(login.json()["access_token"].is_string());
}

#[tokio::test]
async fn registration_needs_a_fresh_reauthentication() {
    let mut f = Fixture::new().await;
    let bearer = f.user("mallory").await;
    let mut phone = Authenticator::platform();
    // Past the re-authentication window, the token still works but is not fresh.
    f.server
        .advance(f.server.engine.policy().session.reauth_window_secs * 1000 + 1_000);
    let gesture = f.honest();
    let finish = f
        .make_credential(&bearer, "passkey", &mut phone, &gesture)
        .await;
    let a = f
        .post("/v1/webauthn/register/finish", &bearer, finish)
        .await;
    assert_eq!(slug(&a, StatusCode::FORBIDDEN), "reauthentication-required");
    assert!(f.list(&bearer).await.is_empty());

    // A wrong password re-entered is refused too; the right one registers.
    let mut phone = Authenticator::platform();
    let mut finish = f
        .make_credential(&bearer, "passkey", &mut phone, &gesture)
        .await;
    finish["password"] = json!("not the password");
    let a = f
        .post("/v1/webauthn/register/finish", &bearer, finish)
        .await;
    assert_eq!(slug(&a, StatusCode::FORBIDDEN), "wrong-current-password");
    let mut finish = f
        .make_credential(&bearer, "passkey", &mut phone, &gesture)
        .await;
    finish["password"] = json!(PASSWORD);
    let a = f
        .post("/v1/webauthn/register/finish", &bearer, finish)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", body_of(&a));
}

#[tokio::test]
async fn bad_names_and_duplicates_are_refused() {
    let mut f = Fixture::new().await;
    let bearer = f.user("niaj").await;
    let mut phone = Authenticator::platform();
    let gesture = f.honest();
    let mut finish = f
        .make_credential(&bearer, "passkey", &mut phone, &gesture)
        .await;
    finish["name"] = json!("   ");
    let a = f
        .post("/v1/webauthn/register/finish", &bearer, finish)
        .await;
    assert_eq!(
        slug(&a, StatusCode::UNPROCESSABLE_ENTITY),
        "webauthn-name-invalid"
    );
    // Registering the same authenticator twice: the options exclude it.
    f.enrol(&bearer, "passkey", &mut phone).await;
    let started = f
        .post(
            "/v1/webauthn/register/start",
            &bearer,
            json!({"kind": "passkey"}),
        )
        .await;
    let options = json!({"publicKey": started.json()["publicKey"]});
    assert!(phone.register_json(&mut f.rng, &options, &gesture).is_err());
}

#[tokio::test]
async fn a_flood_of_start_requests_is_bounded() {
    let config = HttpConfig {
        webauthn_ceremonies_max: 8,
        ..HttpConfig::default()
    };
    let f = Fixture::with(config, tessera_tests::policy()).await;
    for _ in 0..8 {
        f.login_start().await;
    }
    let a = f
        .server
        .post_json("/v1/login/webauthn/start", json!({}), &[])
        .await;
    assert_eq!(slug(&a, StatusCode::SERVICE_UNAVAILABLE), "webauthn-busy");
    assert!(a.header("retry-after").is_some());
    assert_eq!(
        f.server.app.webauthn.as_ref().expect("on").pending(),
        8,
        "the refused start kept nothing"
    );
    // Once the pending ones expire, starting works again.
    f.server.advance(5 * 60 * 1000 + 1);
    f.login_start().await;
}

fn set_cookie(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next()?.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

/// Every form's CSRF token, in page order.
fn csrf_tokens(a: &Answer) -> Vec<String> {
    let marker = "name=\"csrf_token\" value=\"";
    body_of(a)
        .split(marker)
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect()
}

fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn post_form(s: &Server, path: &str, cookie: &str, pairs: &[(&str, &str)]) -> Answer {
    let body = serde_urlencoded::to_string(pairs).expect("encodes");
    s.send(
        Method::POST,
        path,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", cookie),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn the_pages_sign_in_with_a_passkey_and_take_one_at_the_second_step() {
    let mut f = Fixture::new().await;
    let bearer = f.user("olivia").await;
    let mut phone = Authenticator::platform();
    f.enrol(&bearer, "passkey", &mut phone).await;
    let gesture = f.honest();

    // The sign-in page offers the passkey form (hidden until the script runs).
    let page = f
        .server
        .send(Method::GET, "/login", &[], bytes::Bytes::new())
        .await;
    let html = body_of(&page);
    assert!(html.contains("Sign in with a passkey") && html.contains("data-webauthn=\"get\""));
    assert!(html.contains("<script src=\"/assets/webauthn.js\"></script>"));
    let csrf = set_cookie(&page, "__Host-tessera_csrf").expect("a CSRF cookie");
    let cookie = format!("__Host-tessera_csrf={csrf}");
    let tokens = csrf_tokens(&page);
    assert_eq!(tokens.len(), 2, "the password form and the passkey form");

    // What the script does: start, sign, post the form.
    let (ceremony, options) = f.login_start().await;
    let credential = phone.assert_json(&options, &gesture).expect("asserts");
    let credential = credential.to_string();
    let signed = post_form(
        &f.server,
        "/login/passkey",
        &cookie,
        &[
            ("csrf_token", &tokens[1]),
            ("ceremony", &ceremony),
            ("credential", &credential),
        ],
    )
    .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", body_of(&signed));
    assert_eq!(signed.header("location"), Some("/"));
    assert!(set_cookie(&signed, "__Host-tessera_session").is_some());
    // The same answer again finds no ceremony: back to the form with an error.
    let again = post_form(
        &f.server,
        "/login/passkey",
        &cookie,
        &[
            ("csrf_token", &tokens[1]),
            ("ceremony", &ceremony),
            ("credential", &credential),
        ],
    )
    .await;
    assert_eq!(again.header("location"), Some("/login?error=passkey"));

    // A password sign-in now asks for the second step, and the page embeds a ceremony
    // bound to the challenge.
    let password = post_form(
        &f.server,
        "/login",
        &cookie,
        &[
            ("csrf_token", &tokens[0]),
            ("username", "olivia"),
            ("password", tessera_tests::PASSWORD),
        ],
    )
    .await;
    assert_eq!(password.header("location"), Some("/login/mfa"));
    let mfa = set_cookie(&password, "__Host-tessera_mfa").expect("the challenge cookie");
    let cookie = format!("{cookie}; __Host-tessera_mfa={mfa}");
    let step = f
        .server
        .send(
            Method::GET,
            "/login/mfa",
            &[("cookie", cookie.as_str())],
            bytes::Bytes::new(),
        )
        .await;
    let html = body_of(&step);
    let embedded = html
        .split("data-options=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the embedded options");
    let options: Value = serde_json::from_str(&unescape(embedded)).expect("JSON options");
    assert!(
        !html.contains("name=\"code\""),
        "no TOTP: only the passkey form"
    );
    let credential = phone
        .assert_json(&json!({"publicKey": options["publicKey"]}), &gesture)
        .expect("asserts")
        .to_string();
    let token = csrf_tokens(&step)[0].clone();
    let done = post_form(
        &f.server,
        "/login/mfa",
        &cookie,
        &[
            ("csrf_token", &token),
            ("ceremony", options["ceremony"].as_str().expect("ceremony")),
            ("credential", &credential),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", body_of(&done));
    assert_eq!(done.header("location"), Some("/"));
    assert!(set_cookie(&done, "__Host-tessera_session").is_some());
}

#[tokio::test]
async fn a_password_alone_does_not_step_up_an_account_whose_second_factor_is_a_credential() {
    let mut f = Fixture::new().await;
    let bearer = f.user("grace").await;
    let mut key = Authenticator::platform();
    f.enrol(&bearer, "passkey", &mut key).await;
    f.server
        .advance(f.server.engine.policy().session.reauth_window_secs * 1000 + 1_000);

    // Past the window, the password re-entered is only one factor of two: refused, and
    // nothing ends.
    let a = f
        .post(
            "/v1/logout/everywhere",
            &bearer,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(slug(&a, StatusCode::FORBIDDEN), "reauthentication-required");
    let me = f
        .server
        .bearer_json(Method::GET, "/v1/me", &bearer, Value::Null)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", body_of(&me));
    // Nor does it add a second credential.
    let gesture = f.honest();
    let mut other = Authenticator::platform();
    let mut finish = f
        .make_credential(&bearer, "passkey", &mut other, &gesture)
        .await;
    finish["password"] = json!(PASSWORD);
    let a = f
        .post("/v1/webauthn/register/finish", &bearer, finish)
        .await;
    assert_eq!(slug(&a, StatusCode::FORBIDDEN), "reauthentication-required");
    assert_eq!(f.list(&bearer).await.len(), 1);

    // Signing in again with the passkey is a fresh, full authentication.
    let login = f.passkey_login(&mut key, &gesture).await;
    assert_eq!(login.status, StatusCode::OK, "{}", body_of(&login));
    let fresh = login.json()["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let a = f.post("/v1/logout/everywhere", &fresh, json!({})).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", body_of(&a));
}
