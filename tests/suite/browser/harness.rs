//! Starting chromedriver and a headless Chromium, and the few steps the tests repeat.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// Set to `1` to make a browser that cannot start fail the tests instead of skipping them.
pub const REQUIRE_VAR: &str = "TESSERA_REQUIRE_BROWSER";

/// Where Debian installs them; `TESSERA_CHROMIUM` and `TESSERA_CHROMEDRIVER` override.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

static SKIPPED: Once = Once::new();

/// A headless Chromium session and the chromedriver serving it; both end when it is
/// dropped (or, cleanly, at [`Browser::close`]).
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// Chromium's profile: fresh for every browser, so no cookie leaks between tests.
    _profile: tempfile::TempDir,
    test: &'static str,
    shots: u32,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("test", &self.test)
            .finish_non_exhaustive()
    }
}

fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1")
}

/// Skips (with one line for the whole run) or fails, as [`REQUIRE_VAR`] says.
fn unavailable(why: &str) -> Option<Browser> {
    assert!(
        !required(),
        "{REQUIRE_VAR}=1 but the browser cannot start: {why}"
    );
    SKIPPED.call_once(|| {
        // Straight to the process's stderr: the test harness captures `eprintln!`, and this
        // line is for whoever runs the suite.
        let line = format!(
            "browser tests skipped ({why}); to run them: apt-get install chromium chromium-driver, \
             then {REQUIRE_VAR}=1 cargo test -p tessera-tests --test suite browser::\n"
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    });
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// A fresh headless browser for the test named `test`, or `None` (skipped) when this
    /// machine has no Chromium and the tests are not required.
    pub async fn start(test: &'static str) -> Option<Self> {
        let chromium = program("TESSERA_CHROMIUM", CHROMIUM);
        let chromedriver = program("TESSERA_CHROMEDRIVER", CHROMEDRIVER);
        for path in [&chromium, &chromedriver] {
            if !std::path::Path::new(path).exists() {
                return unavailable(&format!("{path} is not installed"));
            }
        }
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut driver = match driver {
            Ok(child) => child,
            Err(e) => return unavailable(&format!("chromedriver did not start: {e}")),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut up = false;
        for _ in 0..100 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !up {
            let _ = driver.kill();
            let _ = driver.wait();
            return unavailable("chromedriver did not listen within 10 s");
        }
        let profile = tempfile::tempdir().expect("a profile folder");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=900,820",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let caps = caps.as_object().cloned().expect("an object");
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await;
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                return unavailable(&format!("Chromium did not start: {e}"));
            }
        };
        Some(Self {
            client,
            driver,
            _profile: profile,
            test,
            shots: 0,
        })
    }

    /// Saves a screenshot of the page as `target/screenshots/<test>-<n>-<name>.png`.
    pub async fn shot(&mut self, name: &str) {
        self.shots += 1;
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        let file = dir.join(format!("{}-{:02}-{name}.png", self.test, self.shots));
        std::fs::write(&file, png).expect("screenshot written");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// Types `text` into the field with this id.
    pub async fn fill(&self, id: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no field #{id}: {e}"));
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    /// Clicks the button whose text is `label`, and waits for the next page.
    pub async fn press(&self, label: &str) {
        let xpath = format!("//button[normalize-space()='{label}']");
        let button = self
            .client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {label:?}: {e}"));
        button.click().await.expect("clicks");
        // A click may return before the navigation it starts has finished: wait until the
        // button's page has gone (its element is stale).
        for _ in 0..100 {
            if button.tag_name().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("a URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .expect("a body")
            .text()
            .await
            .expect("text")
    }

    pub async fn heading(&self) -> String {
        self.client
            .find(Locator::Css("h1"))
            .await
            .expect("a heading")
            .text()
            .await
            .expect("text")
    }

    /// Ends the session (Chromium exits) and chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed before `close`: chromedriver takes its Chromium down with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots")
}

/// The independent OAuth client (oauth4webapi under node), or `None` (skipped, or failing
/// under [`REQUIRE_VAR`]) when node or the package is missing.
#[derive(Debug, Clone)]
pub struct NodeClient {
    dir: PathBuf,
}

impl NodeClient {
    pub fn find() -> Option<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oauth-client");
        let installed = dir.join("node_modules/oauth4webapi/package.json").exists();
        let node = Command::new("node").arg("--version").output().is_ok();
        if installed && node {
            return Some(Self { dir });
        }
        assert!(
            !required(),
            "{REQUIRE_VAR}=1 but the OAuth client cannot run: npm ci --prefix tests/oauth-client"
        );
        SKIPPED.call_once(|| {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"browser OAuth tests skipped (no node or oauth4webapi); to run them: \
                  npm ci --prefix tests/oauth-client\n",
            );
        });
        None
    }

    /// Runs `client.mjs` with `args` and returns its last JSON line, and whether it
    /// succeeded.
    pub async fn run(&self, args: Vec<String>) -> (bool, serde_json::Value) {
        let dir = self.dir.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg("client.mjs")
                .args(&args)
                .current_dir(&dir)
                .output()
                .expect("node runs")
        })
        .await
        .expect("joins");
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or("null");
        let value = serde_json::from_str(last).unwrap_or_else(|_| {
            panic!(
                "client printed {text:?}; stderr {:?}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), value)
    }

    /// Starts `client.mjs` with `args`, its output read line by line.
    pub fn spawn(&self, args: Vec<String>) -> Child {
        Command::new("node")
            .arg("client.mjs")
            .args(&args)
            .current_dir(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts")
    }
}

/// A client application's redirect URI: a tiny hyper server on 127.0.0.1 that keeps every
/// request URI it is sent to `/cb` and answers a small page. It is another origin, so it
/// also serves `/attack`, a page of the test's choosing (forged-form tests).
#[derive(Debug)]
pub struct Callback {
    pub addr: SocketAddr,
    pub received: Shared<Vec<String>>,
    /// What it serves at `/attack`.
    pub attack_page: Shared<String>,
    task: tokio::task::JoinHandle<()>,
}

type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

/// The callback server's answer to `uri`.
fn callback_answer(
    uri: &str,
    received: &Shared<Vec<String>>,
    attack_page: &Shared<String>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    if uri.starts_with("/cb") {
        received.lock().expect("lock").push(uri.to_owned());
    }
    let body = if uri.starts_with("/attack") {
        attack_page.lock().expect("lock").clone()
    } else {
        format!(
            "<!doctype html><title>Client</title><h1>The client application</h1>\
             <p>It received:</p><pre style=\"white-space:pre-wrap;word-break:break-all\">{}</pre>",
            uri.replace('&', "&amp;").replace('<', "&lt;")
        )
    };
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

impl Callback {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("an address");
        let received: Shared<Vec<String>> = Shared::default();
        let attack_page: Shared<String> = Shared::default();
        let (seen, page) = (received.clone(), attack_page.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, page) = (seen.clone(), page.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let answer = callback_answer(&req.uri().to_string(), &seen, &page);
                            async move { Ok::<_, std::convert::Infallible>(answer) }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            attack_page,
            task,
        }
    }

    pub fn redirect_uri(&self) -> String {
        format!("http://{}/cb", self.addr)
    }

    /// The full URL of the last request it got.
    pub fn last(&self) -> Option<String> {
        let all = self.received.lock().expect("lock");
        all.last().map(|uri| format!("http://{}{uri}", self.addr))
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers a public client allowed the code and device grants.
pub async fn register_client(
    s: &tessera_tests::server::Server,
    id: &str,
    name: &str,
    redirect_uri: &str,
    scopes: &[&str],
) {
    use tessera_core::oauth::{ClientKind, ClientRegistration, GrantType, RegisterClient};
    let outcome = s
        .engine
        .execute(RegisterClient {
            registration: ClientRegistration {
                client_id: id.to_owned(),
                name: name.to_owned(),
                kind: ClientKind::Public,
                redirect_uris: vec![redirect_uri.to_owned()],
                grant_types: vec![
                    GrantType::AuthorizationCode,
                    GrantType::RefreshToken,
                    GrantType::DeviceCode,
                ],
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            },
            keys: s.app.mfa_keys.clone(),
            by: tessera_core::Actor::Operator {
                name: "test".into(),
            },
        })
        .await
        .expect("engine answers");
    outcome.reply.expect("client registered");
}

/// Signs in through the pages (password, then the TOTP code) from the login page the
/// browser is on, taking a screenshot of each.
pub async fn sign_in(
    b: &mut Browser,
    s: &tessera_tests::server::Server,
    username: &str,
    secret: &[u8],
) {
    assert_eq!(b.heading().await, "Sign in", "{}", b.path().await);
    b.shot("login").await;
    b.fill("username", username).await;
    b.fill("password", tessera_tests::PASSWORD).await;
    b.press("Sign in").await;
    assert_eq!(b.heading().await, "Two-step verification");
    b.shot("mfa").await;
    b.fill("code", &s.code(secret)).await;
    b.press("Verify").await;
}

/// How a virtual authenticator behaves (WebAuthn Level 2 §11.2, "Add Virtual
/// Authenticator"): Chromium then answers `navigator.credentials` itself, no dialog shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualAuthenticatorOptions {
    /// `"internal"` (a platform authenticator) or `"usb"` (a security key).
    pub transport: &'static str,
    /// Whether it can hold discoverable credentials (passkeys).
    pub has_resident_key: bool,
    /// Whether it can verify the user (PIN, biometric).
    pub has_user_verification: bool,
    /// Whether the next verification succeeds.
    pub is_user_verified: bool,
}

impl VirtualAuthenticatorOptions {
    /// A platform passkey provider: discoverable credentials, the user verified.
    pub fn passkey() -> Self {
        Self {
            transport: "internal",
            has_resident_key: true,
            has_user_verification: true,
            is_user_verified: true,
        }
    }

    /// A USB security key with a PIN, holding server-side (non-discoverable) credentials.
    pub fn security_key() -> Self {
        Self {
            transport: "usb",
            has_resident_key: false,
            has_user_verification: true,
            is_user_verified: true,
        }
    }
}

/// A virtual authenticator attached to a browser session, by its WebDriver id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAuthenticator {
    pub id: String,
}

/// A credential as a virtual authenticator reports it (its private key left out).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualCredential {
    /// base64url, without padding.
    pub credential_id: String,
    pub is_resident_credential: bool,
    pub rp_id: Option<String>,
    /// base64url, present for discoverable credentials.
    pub user_handle: Option<String>,
    pub sign_count: u32,
}

/// One command of the WebDriver WebAuthn extension, under `/session/{id}/webauthn/`;
/// fantoccini has no method for them, so they go through its custom-command interface.
#[derive(Debug)]
struct WebAuthnCommand {
    method: http::Method,
    /// The path after `webauthn/`.
    path: String,
    body: Option<serde_json::Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session.unwrap_or_default();
        base.join(&format!("session/{session}/webauthn/{}", self.path))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}

impl Browser {
    async fn webauthn(
        &self,
        method: http::Method,
        path: String,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let what = format!("{method} webauthn/{path}");
        self.client
            .issue_cmd(WebAuthnCommand { method, path, body })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Attaches a virtual authenticator: from now on this session's WebAuthn calls are
    /// answered by it.
    pub async fn add_virtual_authenticator(
        &self,
        options: VirtualAuthenticatorOptions,
    ) -> VirtualAuthenticator {
        let body = json!({
            "protocol": "ctap2",
            "transport": options.transport,
            "hasResidentKey": options.has_resident_key,
            "hasUserVerification": options.has_user_verification,
            "isUserConsenting": true,
            "isUserVerified": options.is_user_verified,
        });
        let id = self
            .webauthn(http::Method::POST, "authenticator".into(), Some(body))
            .await;
        let id = id.as_str().expect("an authenticator id").to_owned();
        VirtualAuthenticator { id }
    }

    /// The credentials `authenticator` holds.
    pub async fn virtual_credentials(
        &self,
        authenticator: &VirtualAuthenticator,
    ) -> Vec<VirtualCredential> {
        let path = format!("authenticator/{}/credentials", authenticator.id);
        let list = self.webauthn(http::Method::GET, path, None).await;
        serde_json::from_value(list).expect("a credential list")
    }

    /// Whether `authenticator`'s next user verification succeeds.
    pub async fn set_user_verified(&self, authenticator: &VirtualAuthenticator, verified: bool) {
        let path = format!("authenticator/{}/uv", authenticator.id);
        let body = json!({ "isUserVerified": verified });
        self.webauthn(http::Method::POST, path, Some(body)).await;
    }

    /// Detaches `authenticator`; its credentials go with it.
    pub async fn remove_virtual_authenticator(&self, authenticator: VirtualAuthenticator) {
        let path = format!("authenticator/{}", authenticator.id);
        self.webauthn(http::Method::DELETE, path, None).await;
    }
}
