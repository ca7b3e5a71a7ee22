//! A real server for end-to-end tests: hyper on 127.0.0.1, the real engine on a sled store in
//! a temporary folder, a hyper client, and the [`TestClock`] the test moves. The methods speak
//! the HTTP API the way a browser, a token client or an authenticator app would.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use data_encoding::BASE32_NOPAD;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tessera_core::mfa::totp_code_at;
use tessera_http::{App, HttpConfig, ServerHandle};
use tessera_storage::{Engine, SledOptions, SledStore};

use crate::workload::{TestClock, start_engine_with_policy};
use crate::{PASSWORD, T0};

/// A running server and a client for it. Stop it with [`Server::stop`], which waits for the
/// engine to shut down.
pub struct Server {
    /// Where it listens, for tests that speak raw TCP.
    pub addr: SocketAddr,
    pub engine: Engine,
    pub app: Arc<App>,
    pub clock: Arc<TestClock>,
    handle: Option<ServerHandle>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Holds the store and the keys; removed when the server is dropped.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The session cookie's value, if the answer set a non-empty one.
    pub fn cookie(&self) -> Option<String> {
        let set = self.header("set-cookie")?;
        let value = set
            .split(';')
            .next()?
            .strip_prefix("__Host-tessera_session=")?;
        (!value.is_empty()).then(|| value.to_owned())
    }
}

/// A token-mode login's or a refresh's pair.
#[derive(Debug)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// The tokens in a successful token answer, which must not be cached.
pub fn tokens_of(a: &Answer) -> Tokens {
    let body = a.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(a.header("cache-control"), Some("no-store"));
    Tokens {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    }
}

/// What a user keeps from turning MFA on.
#[derive(Debug)]
pub struct Enrolled {
    pub secret: Vec<u8>,
    pub backup_codes: Vec<String>,
    pub bearer: String,
}

/// Asserts `a` is an RFC 9457 problem with `status`, and returns its body.
pub fn assert_problem(a: &Answer, status: StatusCode) -> Value {
    assert_eq!(
        a.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    let body = a.json();
    assert_eq!(body["status"], json!(status.as_u16()));
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:tessera:problem:"))
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

impl Server {
    /// Starts a server with `config` at [`T0`], on a fresh store.
    pub async fn start(config: HttpConfig) -> Self {
        Self::start_with_policy(config, crate::policy()).await
    }

    /// [`Server::start`] with the engine on `policy` instead of the test policy.
    pub async fn start_with_policy(config: HttpConfig, policy: tessera_core::Policy) -> Self {
        // Bound first, as `tessera serve` does: the issuer is the address actually bound.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        Self::start_on(listener, config, policy).await
    }

    /// [`Server::start_with_policy`] on a listener the test bound, for a test that must know
    /// the address before the server's configuration is complete (another server's client
    /// registration names it).
    pub async fn start_on(
        listener: std::net::TcpListener,
        mut config: HttpConfig,
        mut policy: tessera_core::Policy,
    ) -> Self {
        let local = listener.local_addr().expect("a local address");
        config.public_url = tessera_http::config::effective_public_url(&config.public_url, local);
        policy.token.issuer.clone_from(&config.public_url);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStore::open(dir.path(), SledOptions::default()).expect("store opens");
        let clock = TestClock::at(T0);
        let engine = start_engine_with_policy(Box::new(store), clock.clone(), 42, policy);
        let keys = tessera_storage::keys::KeyStore::open(dir.path()).expect("key store opens");
        let mfa_keys = keys
            .mfa_keys_or_create(&zeroize::Zeroizing::new([3u8; 32]))
            .expect("an MFA key");
        let keys_dir = tessera_storage::keys::KeyStore::open(dir.path()).expect("key store opens");
        let signing = Arc::new(
            tessera_http::signing::Signing::start(&engine, keys)
                .await
                .expect("a first signing key"),
        );
        let pepper = keys_dir
            .api_key_pepper_or_create(&zeroize::Zeroizing::new([5u8; 32]))
            .expect("an API-key key");
        let app = Arc::new(
            App::new(engine.clone(), config, signing, mfa_keys, pepper).expect("valid config"),
        );
        let handle = tessera_http::start_on(app.clone(), listener)
            .await
            .expect("serves");
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            addr: handle.local_addr,
            engine,
            app,
            clock,
            handle: Some(handle),
            client,
            _dir: dir,
        }
    }

    pub fn advance(&self, ms: u64) {
        self.clock.advance_ms(ms);
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).expect("request builds");
        let resp = self.client.request(req).await.expect("server answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body reads")
            .to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn post_json(&self, path: &str, value: Value, extra: &[(&str, &str)]) -> Answer {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend_from_slice(extra);
        self.send(Method::POST, path, &headers, value.to_string())
            .await
    }

    pub async fn post_form(&self, path: &str, form: &str, extra: &[(&str, &str)]) -> Answer {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        headers.extend_from_slice(extra);
        self.send(Method::POST, path, &headers, form.to_owned())
            .await
    }

    /// Registers `username` with [`PASSWORD`].
    pub async fn register(&self, username: &str) -> Answer {
        self.post_json(
            "/v1/accounts",
            json!({"username": username, "password": PASSWORD}),
            &[],
        )
        .await
    }

    /// A session-mode login.
    pub async fn login(&self, username: &str, password: &str) -> Answer {
        self.post_json(
            "/v1/login",
            json!({"username": username, "password": password, "mode": "session"}),
            &[],
        )
        .await
    }

    pub async fn with_cookie(&self, method: Method, path: &str, cookie: &str) -> Answer {
        let header = format!("__Host-tessera_session={cookie}");
        self.send(method, path, &[("cookie", header.as_str())], Bytes::new())
            .await
    }

    /// A token-mode login with [`PASSWORD`]; panics unless it gets tokens.
    pub async fn token_login(&self, username: &str) -> Tokens {
        tokens_of(&self.password_login(username, "token").await)
    }

    /// A login with [`PASSWORD`] in `mode`; panics unless it answers 200.
    async fn password_login(&self, username: &str, mode: &str) -> Answer {
        let a = self
            .post_json(
                "/v1/login",
                json!({"username": username, "password": PASSWORD, "mode": mode}),
                &[],
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        a
    }

    /// `grant_type=refresh_token` at the token endpoint.
    pub async fn refresh(&self, refresh: &str) -> Answer {
        self.post_form(
            "/oauth/token",
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
            &[],
        )
        .await
    }

    /// A POST with no body, authenticated by a bearer token.
    pub async fn bearer_post(&self, path: &str, access: &str) -> Answer {
        let header = format!("Bearer {access}");
        self.send(
            Method::POST,
            path,
            &[("authorization", header.as_str())],
            Bytes::new(),
        )
        .await
    }

    /// A JSON request authenticated by a bearer token.
    pub async fn bearer_json(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Value,
    ) -> Answer {
        let auth = format!("Bearer {bearer}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        self.send(method, path, &headers, body.to_string()).await
    }

    /// `GET /v1/me` with a bearer token.
    pub async fn me(&self, access: &str) -> Answer {
        let header = format!("Bearer {access}");
        self.send(
            Method::GET,
            "/v1/me",
            &[("authorization", header.as_str())],
            Bytes::new(),
        )
        .await
    }

    /// Event types in the log, read on the writer thread.
    pub async fn event_kinds(&self) -> Vec<&'static str> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            engine
                .inspect(|store, _| {
                    store
                        .read_from(1)
                        .filter_map(Result::ok)
                        .map(|e| e.event.kind())
                        .collect::<Vec<_>>()
                })
                .expect("engine answers")
        })
        .await
        .expect("joins")
    }

    /// The TOTP code for `secret` at the server's time.
    pub fn code(&self, secret: &[u8]) -> String {
        totp_code_at(secret, self.engine.now()).expect("a code")
    }

    /// Registers `username`, turns MFA on, and returns what the user keeps.
    pub async fn enrolled(&self, username: &str) -> Enrolled {
        self.register(username).await;
        let login = self
            .post_json(
                "/v1/login",
                json!({"username": username, "password": PASSWORD}),
                &[],
            )
            .await;
        let bearer = login.json()["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        let started = self
            .bearer_json(Method::POST, "/v1/mfa/totp", &bearer, json!({}))
            .await;
        assert_eq!(
            started.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&started.body)
        );
        let body = started.json();
        let secret = BASE32_NOPAD
            .decode(body["secret"].as_str().expect("secret").as_bytes())
            .expect("base32");
        assert_eq!(secret.len(), 20, "160 bits");
        let uri = body["otpauth_uri"].as_str().expect("uri");
        assert!(
            uri.starts_with("otpauth://totp/")
                && uri.contains("algorithm=SHA1")
                && uri.contains("digits=6")
                && uri.contains("period=30")
                && uri.contains("issuer="),
            "{uri}"
        );
        assert!(body["qr_svg"].as_str().is_some_and(|s| s.contains("<svg")));
        let confirmed = self
            .bearer_json(
                Method::POST,
                "/v1/mfa/totp/confirm",
                &bearer,
                json!({"code": self.code(&secret)}),
            )
            .await;
        assert_eq!(
            confirmed.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&confirmed.body)
        );
        let backup_codes: Vec<String> = confirmed.json()["backup_codes"]
            .as_array()
            .expect("codes")
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        assert_eq!(backup_codes.len(), 10);
        // The confirming code's step is spent: later answers use the next one.
        self.advance(30_000);
        Enrolled {
            secret,
            backup_codes,
            bearer,
        }
    }

    /// A login with [`PASSWORD`] in `mode` for an account with MFA on: returns the
    /// `mfa_token`, and checks nothing was issued yet.
    pub async fn challenge(&self, username: &str, mode: &str) -> String {
        let a = self.password_login(username, mode).await;
        let body = a.json();
        assert_eq!(body["mfa_required"], true, "{body}");
        assert!(
            a.header("set-cookie").is_none() && body.get("access_token").is_none(),
            "nothing is issued before the second step"
        );
        assert_eq!(body["methods"], json!(["totp", "backup_code"]));
        assert_eq!(body["expires_in"], json!(300));
        body["mfa_token"].as_str().expect("mfa_token").to_owned()
    }

    /// Answers the challenge `token` with `code` in `field` (`code` or `backup_code`).
    pub async fn answer(&self, token: &str, field: &str, code: &str) -> Answer {
        self.post_json(
            "/v1/login/mfa",
            json!({"mfa_token": token, field: code}),
            &[],
        )
        .await
    }

    /// Stops accepting, lets open requests finish, and shuts the engine down.
    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.shutdown())
            .await
            .expect("engine stops");
    }
}
