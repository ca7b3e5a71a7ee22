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
