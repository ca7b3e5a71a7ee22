//! The HTTP workloads: each prepares what it needs on the server (accounts, sessions), then
//! hands the load generator one [`Conn`] per connection.
//!
//! To add a token workload (verify, refresh): prepare tokens with `POST /v1/login` in token
//! mode, then write a `Conn` whose `request` carries `Authorization: Bearer …` (verify) or
//! posts the connection's current refresh token, and whose `answer` keeps the rotated
//! refresh token from the body (refresh: each connection owns its own family).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::Full;

use super::client::{self, Conn, Target};
use crate::Failure;

/// Meets the default password policy (12+ characters, upper, lower, digit).
pub const PASSWORD: &str = "Bench-password-1234";
const SESSION_COOKIE: &str = "__Host-tessera_session";

/// Makes connection `i`'s workload for one run.
pub type ConnFactory = Arc<dyn Fn(usize) -> Box<dyn Conn> + Send + Sync>;

fn unique_prefix() -> String {
    static RUN: AtomicU64 = AtomicU64::new(0);
    use tessera_storage::Clock as _;
    let ms = tessera_http::system::SystemClock.now().as_millis();
    format!(
        "b{:x}{:x}{}",
        std::process::id(),
        ms & 0xfffff,
        RUN.fetch_add(1, Ordering::Relaxed)
    )
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

async fn register(target: &Target, username: &str) -> Result<(), Failure> {
    let body = format!(
        "{{\"username\":{},\"password\":{}}}",
        json_string(username),
        json_string(PASSWORD)
    );
    let (status, _, body) = client::once(
        target,
        client::post_json(&target.host, "/v1/accounts", body),
    )
    .await
    .map_err(|e| Failure(format!("registering {username}: {e}")))?;
    if status != StatusCode::CREATED {
        return Err(Failure(format!(
            "registering {username}: {status} {}",
            String::from_utf8_lossy(&body)
        )));
    }
    Ok(())
}

fn login_body(username: &str) -> String {
    format!(
        "{{\"username\":{},\"password\":{},\"mode\":\"session\"}}",
        json_string(username),
        json_string(PASSWORD)
    )
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let rest = v.strip_prefix(SESSION_COOKIE)?.strip_prefix('=')?;
            Some(rest.split(';').next().unwrap_or("").to_owned())
        })
        .filter(|v| !v.is_empty())
}

async fn login(target: &Target, username: &str) -> Result<String, Failure> {
    let req = client::post_json(&target.host, "/v1/login", login_body(username));
    let (status, headers, body) = client::once(target, req)
        .await
        .map_err(|e| Failure(format!("logging in {username}: {e}")))?;
    if status != StatusCode::OK {
        return Err(Failure(format!(
            "logging in {username}: {status} {}",
            String::from_utf8_lossy(&body)
        )));
    }
    session_cookie(&headers).ok_or_else(|| Failure::new("login answered without a session cookie"))
}

/// Registers `n` accounts one after the other (each costs one argon2 hash on the server).
async fn accounts(target: &Target, n: usize) -> Result<Vec<String>, Failure> {
    let prefix = unique_prefix();
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        register(target, &name).await?;
        names.push(name);
    }
    Ok(names)
}

/// `login`: session-mode password logins, one account per connection (at most 8 accounts).
pub async fn prepare_login(target: &Target, connections: usize) -> Result<ConnFactory, Failure> {
    let names = Arc::new(accounts(target, connections.clamp(1, 8)).await?);
    Ok(Arc::new(move |i| {
        let name = &names[i % names.len()];
        Box::new(Login {
            body: Bytes::from(login_body(name)),
        })
    }))
}

struct Login {
    body: Bytes,
}

impl Conn for Login {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        let mut req = client::post_json(host, "/v1/login", String::new());
        *req.body_mut() = Full::new(self.body.clone());
        req
    }

    fn answer(&mut self, _: StatusCode, headers: &HeaderMap, _: &Bytes) -> Result<(), String> {
        session_cookie(headers)
            .map(|_| ())
            .ok_or_else(|| "no session cookie".to_owned())
    }
}

/// `me`: GET /v1/me with a session cookie, one session per connection.
pub async fn prepare_me(target: &Target, connections: usize) -> Result<ConnFactory, Failure> {
    let names = accounts(target, connections.clamp(1, 8)).await?;
    let mut cookies = Vec::with_capacity(connections);
    for i in 0..connections.max(1) {
        let cookie = login(target, &names[i % names.len()]).await?;
        let value = HeaderValue::from_str(&format!("{SESSION_COOKIE}={cookie}"))
            .map_err(|_| Failure::new("odd session cookie"))?;
        cookies.push(value);
    }
    let cookies = Arc::new(cookies);
    Ok(Arc::new(move |i| {
        Box::new(Me {
            cookie: cookies[i % cookies.len()].clone(),
        })
    }))
}

struct Me {
    cookie: HeaderValue,
}

impl Conn for Me {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        client::get(host, "/v1/me", &[(header::COOKIE, self.cookie.clone())])
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, body: &Bytes) -> Result<(), String> {
        if body.starts_with(b"{") {
            Ok(())
        } else {
            Err("odd /v1/me body".into())
        }
    }
}

/// `register`: POST /v1/accounts with a new username every time.
pub fn prepare_register() -> ConnFactory {
    let prefix = Arc::new(unique_prefix());
    Arc::new(move |i| {
        Box::new(Register {
            prefix: format!("{prefix}-r{i}"),
            n: 0,
        })
    })
}

struct Register {
    prefix: String,
    n: u64,
}

impl Conn for Register {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        self.n += 1;
        let body = format!(
            "{{\"username\":\"{}-{}\",\"password\":{}}}",
            self.prefix,
            self.n,
            json_string(PASSWORD)
        );
        client::post_json(host, "/v1/accounts", body)
    }

    fn answer(&mut self, status: StatusCode, _: &HeaderMap, _: &Bytes) -> Result<(), String> {
        if status == StatusCode::CREATED {
            Ok(())
        } else {
            Err(format!("status {}", status.as_u16()))
        }
    }
}

/// `hello`: GET / on the bare hyper server.
pub fn prepare_hello() -> ConnFactory {
    Arc::new(|_| Box::new(Hello))
}

struct Hello;

impl Conn for Hello {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        let none: [(HeaderName, HeaderValue); 0] = [];
        client::get(host, "/", &none)
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, _: &Bytes) -> Result<(), String> {
        Ok(())
    }
}
