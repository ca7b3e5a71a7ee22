//! Sign in with an external provider between two `tessera serve` processes: one is the
//! upstream OAuth 2 provider (a client registered on it with `tessera client add`, its own
//! sign-in and consent pages, GET /v1/me as the user-info endpoint), the other has it as an
//! `[[upstream]]` of kind `oauth2`, its client secret from the environment. A plain HTTP
//! client with a cookie jar per server plays the browser.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: helpers outside #[test] functions stop the test loudly at the step that failed"
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::raw_request;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const PASSWORD: &str = "Correct horse 9 battery";

fn tessera(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("TESSERA_POLICY__ARGON2__MEMORY_KIB", "64")
        .env("TESSERA_POLICY__ARGON2__ITERATIONS", "1")
        .env("TESSERA_LOG__FILTER", "warn")
        .env("TESSERA_DATA", data);
    c
}

/// A running `tessera serve`; killed when dropped.
struct Serve {
    child: Child,
    addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(command: Command, listen: &str) -> Serve {
    let (child, addr) = common::start_serve(command, listen, Stdio::inherit());
    Serve { child, addr }
}

/// A browser: cookies per server address.
#[derive(Default)]
struct Jar(HashMap<String, BTreeMap<String, String>>);

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Jar {
    fn send(&mut self, method: &str, url: &str, form: Option<&[(String, String)]>) -> Answer {
        let rest = url.strip_prefix("http://").expect("an http URL");
        let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let mut headers = String::new();
        if let Some(cookies) = self.0.get(addr).filter(|c| !c.is_empty()) {
            let line: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            headers.push_str(&format!("Cookie: {}\r\n", line.join("; ")));
        }
        let body = match form {
            Some(pairs) => {
                headers.push_str(&format!("Origin: http://{addr}\r\n"));
                pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
            }
            None => String::new(),
        };
        let (status, head, body) = raw_request(
            addr,
            method,
            path,
            "application/x-www-form-urlencoded",
            &body,
            &headers,
        )
        .unwrap_or_else(|| panic!("{addr} did not answer {method} {path}"));
        let jar = self.0.entry(addr.to_owned()).or_default();
        let mut location = None;
        for line in head.lines() {
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("location: ").map(|_| &line[10..]) {
                let value = value.trim();
                location = Some(if value.starts_with('/') {
                    format!("http://{addr}{value}")
                } else {
                    value.to_owned()
                });
            }
            if lower.starts_with("set-cookie: ") {
                let cookie = &line[12..];
                if let Some((name, value)) =
                    cookie.split(';').next().and_then(|p| p.split_once('='))
                {
                    if value.is_empty() || cookie.contains("Max-Age=0") {
                        jar.remove(name);
                    } else {
                        jar.insert(name.to_owned(), value.to_owned());
                    }
                }
            }
        }
        Answer {
            status,
            location,
            body,
        }
    }

    /// GETs `url` and follows redirects until a page or a URL `stop` accepts.
    fn walk(&mut self, mut url: String, stop: &dyn Fn(&str) -> bool) -> (Answer, String) {
        for _ in 0..10 {
            let a = self.send("GET", &url, None);
            match (a.location.clone(), a.status) {
                (Some(next), 302 | 303) if stop(&next) => return (a, next),
                (Some(next), 302 | 303) => url = next,
                _ => return (a, url),
            }
        }
        panic!("too many redirects from {url}");
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The hidden fields of the page's first form (a login page has a passkey form after the
/// password one, with its own CSRF token).
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let first_form = page.split("</form>").next().unwrap_or(page);
    first_form
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|piece| {
            let (name, rest) = piece.split_once('"')?;
            let value = rest.split_once("value=\"")?.1.split_once('"')?.0;
            Some((
                name.to_owned(),
                value
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            ))
        })
        .collect()
}

#[test]
fn a_second_tessera_process_is_the_oauth2_upstream_of_the_first() {
    let up_data = tempfile::tempdir().unwrap();
    let up = serve(tessera(up_data.path()), "127.0.0.1:0");
    let body = format!(
        "{{\"username\":\"octo\",\"password\":\"{PASSWORD}\",\"email\":\"octo@up.example\"}}"
    );
    let (status, _, _) = raw_request(
        &up.addr,
        "POST",
        "/v1/accounts",
        "application/json",
        &body,
        "",
    )
    .unwrap();
    assert_eq!(status, 201);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let down_addr = format!("127.0.0.1:{port}");
    let added = tessera(up_data.path())
        .args([
            "client",
            "add",
            "down-app",
            "--name",
            "Down",
            "--redirect-uri",
            &format!("http://{down_addr}/v1/login/tess/callback"),
            "--scope",
            "profile",
            "--operator",
            "ops",
        ])
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let secret = String::from_utf8_lossy(&added.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("secret    "))
        .expect("a printed secret")
        .trim()
        .to_owned();

    let down_data = tempfile::tempdir().unwrap();
    let config = down_data.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[upstream]]
name = "tess"
display_name = "Tessera Up"
kind = "oauth2"
client_id = "down-app"
scopes = ["profile"]
authorize_url = "http://{up}/oauth/authorize"
token_url = "http://{up}/oauth/token"
user_info_url = "http://{up}/v1/me"
fields = {{ subject = "id", username = "username", email = "email" }}
"#,
            up = up.addr
        ),
    )
    .unwrap();
    let mut command = tessera(down_data.path());
    command
        .env("TESSERA_UPSTREAM_TESS_CLIENT_SECRET", &secret)
        .args(["--config", config.to_str().unwrap()]);
    let down = serve(command, &down_addr);

    let mut browser = Jar::default();
    let login = browser.send("GET", &format!("http://{}/login", down.addr), None);
    assert!(
        login.body.contains("Sign in with Tessera Up"),
        "{}",
        login.body
    );

    let callback = |u: &str| u.contains("/v1/login/tess/callback");
    let (mut page, mut at) = browser.walk(format!("http://{}/v1/login/tess", down.addr), &callback);
    for _ in 0..3 {
        if callback(&at) {
            break;
        }
        assert_eq!(page.status, 200, "{}", page.body);
        let mut fields = hidden_fields(&page.body);
        let action = if page.body.contains("name=\"password\"") {
            fields.push(("username".into(), "octo".into()));
            fields.push(("password".into(), PASSWORD.into()));
            format!("http://{}/login", up.addr)
        } else {
            fields.push(("decision".into(), "allow".into()));
            format!("http://{}/oauth/authorize", up.addr)
        };
        let posted = browser.send("POST", &action, Some(&fields));
        let next = posted.location.clone().expect("a redirect after the form");
        if callback(&next) {
            at = next;
            break;
        }
        (page, at) = browser.walk(next, &callback);
    }
    assert!(callback(&at), "never reached the callback: {at}");
    let signed_in = browser.send("GET", &at, None);
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let me = browser.send("GET", &format!("http://{}/v1/me", down.addr), None);
    assert_eq!(me.status, 200, "{}", me.body);
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["username"], "octo");
    assert_eq!(me["email"], "octo@up.example");

    // The same callback again: refused with a page, not a second session.
    let mut replay = Jar::default();
    let again = replay.send("GET", &at, None);
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("cannot be completed"), "{}", again.body);
}
