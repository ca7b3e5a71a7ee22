//! An independent OpenID Connect provider for the end-to-end tests: panva's
//! `oidc-provider` from npm (tests/oidc-provider), run by node on a free loopback port with
//! one confidential client, and stopped when dropped.
//!
//! `npm ci --prefix tests/oidc-provider` must have run (`.ci/run` does it). Without node or
//! the package the tests that need it return early, and one line on stderr says how to run
//! them; with `TESSERA_REQUIRE_BROWSER=1` (set by `.ci/run`) they fail instead.
//!
//! [`OidcProvider::sign_in`] completes the provider's login without a browser: a real HTTP
//! client follows its redirects and submits its development login form, up to our callback.
//! [`OidcProvider::rotate_key`] restarts it on the same port, which gives it a new signing
//! key with a new `kid` (the issuer stays the same).

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The variable that turns a missing node or package from a skip into a failure (the
/// browser tests' switch: CI sets it and installs both).
pub const REQUIRE_VAR: &str = "TESSERA_REQUIRE_BROWSER";

/// The client registered at the provider.
pub const CLIENT_ID: &str = "tessera";
pub const CLIENT_SECRET: &str = "tessera-upstream-test-secret";

static SKIPPED: Once = Once::new();

/// How to start the provider.
#[derive(Clone, Debug)]
pub struct Options {
    /// Our callback URLs registered for the client.
    pub redirect_uris: Vec<String>,
    /// `RS256` or `ES256`.
    pub alg: &'static str,
    /// `client_secret_basic` or `client_secret_post`.
    pub auth_method: &'static str,
}

impl Options {
    pub fn new(redirect_uri: &str) -> Self {
        Self {
            redirect_uris: vec![redirect_uri.to_owned()],
            alg: "RS256",
            auth_method: "client_secret_basic",
        }
    }
}

/// A running provider.
pub struct OidcProvider {
    pub port: u16,
    /// `http://127.0.0.1:PORT`, exactly as its discovery document says.
    pub issuer: String,
    /// The `kid` of the key it signs with now.
    pub kid: String,
    options: Options,
    child: Child,
    dir: PathBuf,
    log: tempfile::NamedTempFile,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1")
}

fn unavailable(why: &str) -> Option<OidcProvider> {
    assert!(
        !required(),
        "{REQUIRE_VAR}=1 but the OpenID Connect provider cannot start: {why}"
    );
    SKIPPED.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "OpenID Connect provider tests skipped ({why}); to run them: apt-get install nodejs npm, \
             npm ci --prefix tests/oidc-provider, then {REQUIRE_VAR}=1 cargo test -p tessera-tests --test suite upstream::"
        );
    });
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl OidcProvider {
    /// Starts the provider, or `None` (skipped) when node or the package is missing and
    /// the tests are not required.
    pub async fn start(options: Options) -> Option<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
        if !dir.join("node_modules/oidc-provider/package.json").exists() {
            return unavailable("the oidc-provider package is not installed");
        }
        if Command::new("node").arg("--version").output().is_err() {
            return unavailable("node is not installed");
        }
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let (child, kid) = match spawn(&dir, port, &options, &log).await {
            Ok(started) => started,
            Err(why) => return unavailable(&why),
        };
        Some(Self {
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            kid,
            options,
            child,
            dir,
            log,
        })
    }

    /// Restarts the provider on the same port: same issuer and client, a new signing key.
    /// Sessions and codes it held are gone.
    pub async fn rotate_key(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, kid) = spawn(&self.dir, self.port, &self.options, &self.log)
            .await
            .unwrap_or_else(|why| panic!("the provider did not restart: {why}"));
        assert_ne!(kid, self.kid, "a restart makes a new key");
        self.child = child;
        self.kid = kid;
    }

    /// Completes a sign-in at the provider as `login` (any name works; it becomes the
    /// subject) without a browser: follows the redirects from `authorization_url`, submits
    /// the login form, and returns the URL the provider finally redirects to when it starts
    /// with `callback_prefix` (our callback, with `code`, `state` and `iss`).
    pub async fn sign_in(
        &self,
        authorization_url: &str,
        callback_prefix: &str,
        login: &str,
    ) -> String {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let mut cookies: Vec<(String, String)> = Vec::new();
        let mut next = (Method::GET, authorization_url.to_owned(), None::<String>);
        for _ in 0..12 {
            let (method, url, form) = next.clone();
            let mut request = Request::builder().method(method).uri(&url);
            if !cookies.is_empty() {
                let header = cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                request = request.header("cookie", header);
            }
            let body = match form {
                Some(form) => {
                    request = request.header("content-type", "application/x-www-form-urlencoded");
                    Bytes::from(form)
                }
                None => Bytes::new(),
            };
            let response = client
                .request(request.body(Full::new(body)).unwrap())
                .await
                .unwrap_or_else(|e| panic!("the provider answers {url}: {e}"));
            for value in response.headers().get_all("set-cookie") {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                if let Some((k, v)) = pair.split_once('=') {
                    cookies.retain(|(name, _)| name != k);
                    cookies.push((k.trim().to_owned(), v.trim().to_owned()));
                }
            }
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            let page = response.into_body().collect().await.unwrap().to_bytes();
            let page = String::from_utf8_lossy(&page).into_owned();
            if status.is_redirection() {
                let location = location.expect("a redirect has a Location");
                let absolute = if location.starts_with('/') {
                    format!("{}{location}", self.issuer)
                } else {
                    location
                };
                if absolute.starts_with(callback_prefix) {
                    return absolute;
                }
                next = (Method::GET, absolute, None);
                continue;
            }
            assert_eq!(
                status,
                StatusCode::OK,
                "the provider answered {url}: {page}"
            );
            let action =
                form_action(&page).unwrap_or_else(|| panic!("no login form at {url}: {page}"));
            let form = serde_urlencoded::to_string([
                ("prompt", "login"),
                ("login", login),
                ("password", "any password"),
            ])
            .unwrap();
            next = (Method::POST, action, Some(form));
        }
        panic!("the provider did not redirect to {callback_prefix} within 12 steps")
    }
}

fn form_action(page: &str) -> Option<String> {
    let start = page.find("action=\"")? + "action=\"".len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].replace("&amp;", "&"))
}

/// Starts node and waits (up to 20 s) for the discovery document; returns the child and
/// the key id it printed.
async fn spawn(
    dir: &std::path::Path,
    port: u16,
    options: &Options,
    log: &tempfile::NamedTempFile,
) -> Result<(Child, String), String> {
    let out = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .args(["--port", &port.to_string()])
        .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
        .args(["--redirect-uri", &options.redirect_uris.join(",")])
        .args(["--alg", options.alg, "--auth-method", options.auth_method])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.reopen().map_err(|e| e.to_string())?)
        .stderr(log.reopen().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("node did not start: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            let errors = std::fs::read_to_string(log.path()).unwrap_or_default();
            return Err(format!("node exited ({status}): {errors}"));
        }
        let printed = std::fs::read_to_string(out.path()).unwrap_or_default();
        if let Some(line) = printed.lines().next()
            && std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        {
            let started: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("unexpected output {line:?}: {e}"))?;
            let kid = started["kid"].as_str().unwrap_or_default().to_owned();
            return Ok((child, kid));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Err("the provider did not answer within 20 s".into())
}
