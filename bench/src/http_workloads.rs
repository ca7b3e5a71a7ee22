//! The HTTP workloads: each prepares what it needs on the server (accounts, sessions), then
//! hands the load generator one [`Conn`] per connection.
//!
//! Token workloads log in once per connection in token mode (`POST /v1/login`,
//! `"mode":"token"`), then: `verify` sends `GET /v1/me` with `Authorization: Bearer`;
//! `refresh` posts the connection's current refresh token to `/oauth/token` and keeps the
//! rotated one from the answer (each connection owns its own family, and the family's state
//! outlives a run, so the next run goes on from the latest token); `mixed` does both and
//! more; `flood` sends wrong-password logins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

// ---------------------------------------------------------------------------------------
// Tokens

fn token_login_body(username: &str, password: &str) -> String {
    format!(
        "{{\"username\":{},\"password\":{},\"mode\":\"token\"}}",
        json_string(username),
        json_string(password)
    )
}

/// One connection's token family: its latest access and refresh tokens. Shared between the
/// connection and the factory, so that it survives from one run to the next.
#[derive(Debug, Clone)]
pub struct Family {
    pub access: HeaderValue,
    pub refresh: String,
}

type SharedFamily = Arc<Mutex<Family>>;

/// The tokens of a token response, if it is one.
fn token_pair(body: &Bytes) -> Option<Family> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let access = v.get("access_token")?.as_str()?;
    let refresh = v.get("refresh_token")?.as_str()?;
    Some(Family {
        access: HeaderValue::from_str(&format!("Bearer {access}")).ok()?,
        refresh: refresh.to_owned(),
    })
}

/// Logs `username` in in token mode: a new family.
async fn token_login(target: &Target, username: &str) -> Result<Family, Failure> {
    let req = client::post_json(
        &target.host,
        "/v1/login",
        token_login_body(username, PASSWORD),
    );
    let (status, _, body) = client::once(target, req)
        .await
        .map_err(|e| Failure(format!("token login of {username}: {e}")))?;
    if status != StatusCode::OK {
        return Err(Failure(format!(
            "token login of {username}: {status} {}",
            String::from_utf8_lossy(&body)
        )));
    }
    token_pair(&body).ok_or_else(|| Failure::new("token login answered without tokens"))
}

/// Set-up logins in flight at once: enough to keep every argon2 worker of the server busy,
/// few enough that its queue (16 per worker) never refuses one.
const SETUP_LOGINS_IN_FLIGHT: usize = 8;

/// `n` logins of `names` round-robin, `SETUP_LOGINS_IN_FLIGHT` at a time, in order.
async fn many<T: Send + 'static, F, Fut>(
    target: &Target,
    names: &[String],
    n: usize,
    one: F,
) -> Result<Vec<T>, Failure>
where
    F: Fn(Target, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>> + Send + 'static,
{
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + SETUP_LOGINS_IN_FLIGHT).min(n))
            .map(|j| tokio::spawn(one(target.clone(), names[j % names.len()].clone())))
            .collect();
        for t in batch {
            out.push(t.await.map_err(Failure::new)??);
        }
        i += SETUP_LOGINS_IN_FLIGHT;
    }
    Ok(out)
}

/// `n` token families (accounts: at most 8), with their latest tokens.
pub async fn prepare_families(target: &Target, n: usize) -> Result<Vec<Family>, Failure> {
    Ok(families(target, n).await?.iter().map(latest).collect())
}

/// One family per connection (accounts: at most 8, shared round-robin).
async fn families(target: &Target, connections: usize) -> Result<Vec<SharedFamily>, Failure> {
    let names = accounts(target, connections.clamp(1, 8)).await?;
    let fams = many(target, &names, connections.max(1), |t, name| async move {
        token_login(&t, &name).await
    })
    .await?;
    Ok(fams.into_iter().map(|f| Arc::new(Mutex::new(f))).collect())
}

/// Fresh token-mode logins, one per account (at most 8): their `Authorization` values.
pub async fn token_families(target: &Target, n: usize) -> Result<Vec<HeaderValue>, Failure> {
    Ok(families(target, n)
        .await?
        .iter()
        .take(n)
        .map(|f| latest(f).access)
        .collect())
}

fn latest(family: &SharedFamily) -> Family {
    family
        .lock()
        .map(|f| f.clone())
        .unwrap_or_else(|e| e.into_inner().clone())
}

fn keep(family: &SharedFamily, new: Family) {
    match family.lock() {
        Ok(mut f) => *f = new,
        Err(e) => *e.into_inner() = new,
    }
}

fn bearer_me(host: &str, access: &HeaderValue) -> Request<Full<Bytes>> {
    client::get(host, "/v1/me", &[(header::AUTHORIZATION, access.clone())])
}

fn refresh_request(host: &str, refresh: &str) -> Request<Full<Bytes>> {
    // Refresh tokens are `tsr_` + base64url: nothing to escape in a form.
    let mut req = client::post_json(
        host,
        "/oauth/token",
        format!("grant_type=refresh_token&refresh_token={refresh}"),
    );
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req
}

/// `login-token`: password logins in token mode, one account per connection (at most 8).
pub async fn prepare_login_token(
    target: &Target,
    connections: usize,
) -> Result<ConnFactory, Failure> {
    let names = Arc::new(accounts(target, connections.clamp(1, 8)).await?);
    Ok(Arc::new(move |i| {
        let name = &names[i % names.len()];
        Box::new(LoginToken {
            body: Bytes::from(token_login_body(name, PASSWORD)),
        })
    }))
}

struct LoginToken {
    body: Bytes,
}

impl Conn for LoginToken {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        let mut req = client::post_json(host, "/v1/login", String::new());
        *req.body_mut() = Full::new(self.body.clone());
        req
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, body: &Bytes) -> Result<(), String> {
        token_pair(body)
            .map(|_| ())
            .ok_or_else(|| "no tokens in the login answer".to_owned())
    }
}

/// `verify`: GET /v1/me with a bearer access token, one family per connection.
pub async fn prepare_verify(target: &Target, connections: usize) -> Result<ConnFactory, Failure> {
    let fams = Arc::new(families(target, connections).await?);
    Ok(Arc::new(move |i| {
        Box::new(Verify {
            access: latest(&fams[i % fams.len()]).access,
        })
    }))
}

struct Verify {
    access: HeaderValue,
}

impl Conn for Verify {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        bearer_me(host, &self.access)
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, body: &Bytes) -> Result<(), String> {
        if body.starts_with(b"{") {
            Ok(())
        } else {
            Err("odd /v1/me body".into())
        }
    }
}

/// `refresh`: durable rotations, each connection rotating its own family.
pub async fn prepare_refresh(target: &Target, connections: usize) -> Result<ConnFactory, Failure> {
    let fams = Arc::new(families(target, connections).await?);
    Ok(Arc::new(move |i| {
        Box::new(Refresh {
            family: fams[i % fams.len()].clone(),
        })
    }))
}

struct Refresh {
    family: SharedFamily,
}

impl Conn for Refresh {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        refresh_request(host, &latest(&self.family).refresh)
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, body: &Bytes) -> Result<(), String> {
        let new = token_pair(body).ok_or_else(|| "no tokens in the refresh answer".to_owned())?;
        keep(&self.family, new);
        Ok(())
    }
}

/// `flood`: wrong-password token-mode logins for an existing account. The expected answer
/// is 401; a 503 (argon2 pool full) counts as an error of its own kind.
pub async fn prepare_flood(target: &Target) -> Result<ConnFactory, Failure> {
    let names = Arc::new(accounts(target, 1).await?);
    Ok(Arc::new(move |_| {
        Box::new(Flood {
            body: Bytes::from(token_login_body(&names[0], "Wrong-password-9876")),
        })
    }))
}

struct Flood {
    body: Bytes,
}

impl Conn for Flood {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        let mut req = client::post_json(host, "/v1/login", String::new());
        *req.body_mut() = Full::new(self.body.clone());
        req
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, _: &Bytes) -> Result<(), String> {
        Ok(())
    }

    fn expects(&self, status: StatusCode) -> bool {
        status == StatusCode::UNAUTHORIZED
    }
}

/// `forged`: bearer tokens shaped like the server's own (a real token's header and claims)
/// with a signature that is not the server's, each one different. The expected answer is
/// 401.
pub async fn prepare_forged(target: &Target) -> Result<ConnFactory, Failure> {
    let fams = families(target, 1).await?;
    let real = latest(&fams[0]).access;
    let real = real
        .to_str()
        .map_err(|_| Failure::new("an access token that is not text"))?;
    let signed = real
        .trim_start_matches("Bearer ")
        .rsplit_once('.')
        .map(|(signed, _)| signed.to_owned())
        .ok_or_else(|| Failure::new("an access token without a signature"))?;
    let signed = Arc::new(signed);
    Ok(Arc::new(move |i| {
        Box::new(Forged {
            signed: signed.clone(),
            counter: (i as u64) << 40,
        })
    }))
}

struct Forged {
    signed: Arc<String>,
    counter: u64,
}

impl Conn for Forged {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        self.counter += 1;
        // 86 base64url characters, as an Ed25519 signature has; a different one each time.
        let mut x = self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let signature: String = (0..86)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(ALPHABET[(x % 64) as usize])
            })
            .collect();
        let value = format!("Bearer {}.{signature}", self.signed);
        let access = HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer x"));
        bearer_me(host, &access)
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, _: &Bytes) -> Result<(), String> {
        Ok(())
    }

    fn expects(&self, status: StatusCode) -> bool {
        status == StatusCode::UNAUTHORIZED
    }
}

// ---------------------------------------------------------------------------------------
// Mixed

/// What `mixed` sends, per 10,000 requests. MFA verification is not part of the mix: the
/// 1 % it would take goes to verify.
pub const MIX_PER_10K: [(MixKind, u32); 5] = [
    (MixKind::Verify, 9_100),
    (MixKind::Refresh, 500),
    (MixKind::Session, 300),
    (MixKind::Logout, 75),
    (MixKind::Login, 25),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixKind {
    /// GET /v1/me with the connection's latest access token.
    Verify,
    /// POST /oauth/token with the connection's latest refresh token (durable rotation).
    Refresh,
    /// GET /v1/me with the connection's session cookie.
    Session,
    /// POST /v1/logout with a cookie from the shared pool of spare sessions.
    Logout,
    /// Session-mode password login; its cookie joins the pool the logouts draw from.
    Login,
}

/// What every mixed connection shares: spare sessions to log out, and counts per kind.
#[derive(Debug, Default)]
pub struct MixShared {
    spare: Mutex<Vec<HeaderValue>>,
    /// Requests sent per kind, in [`MIX_PER_10K`] order.
    pub sent: [AtomicU64; 5],
    /// Logouts turned into session lookups because no spare session was left.
    pub spare_empty: AtomicU64,
}

impl MixShared {
    fn pop(&self) -> Option<HeaderValue> {
        self.spare.lock().ok().and_then(|mut v| v.pop())
    }

    fn push(&self, cookie: HeaderValue) {
        if let Ok(mut v) = self.spare.lock() {
            v.push(cookie);
        }
    }

    pub fn spare_count(&self) -> usize {
        self.spare.lock().map(|v| v.len()).unwrap_or(0)
    }
}

/// `mixed`: one family and one session per connection, `spare` extra sessions for the
/// logouts to end.
pub async fn prepare_mixed(
    target: &Target,
    connections: usize,
    spare: usize,
) -> Result<(ConnFactory, Arc<MixShared>), Failure> {
    let names = Arc::new(accounts(target, connections.clamp(1, 8)).await?);
    let fams = Arc::new(families(target, connections).await?);
    let cookie_value = |c: String| {
        HeaderValue::from_str(&format!("{SESSION_COOKIE}={c}"))
            .map_err(|_| Failure::new("odd session cookie"))
    };
    let login_all = |n| {
        many(target, &names, n, |t, name| async move {
            login(&t, &name).await
        })
    };
    let mut sessions = Vec::with_capacity(connections);
    for c in login_all(connections.max(1)).await? {
        sessions.push(cookie_value(c)?);
    }
    let shared = Arc::new(MixShared::default());
    for c in login_all(spare).await? {
        shared.push(cookie_value(c)?);
    }
    let sessions = Arc::new(sessions);
    let s = shared.clone();
    let factory: ConnFactory = Arc::new(move |i| {
        Box::new(Mixed {
            family: fams[i % fams.len()].clone(),
            session: sessions[i % sessions.len()].clone(),
            login_body: Bytes::from(login_body(&names[i % names.len()])),
            shared: s.clone(),
            // Per-connection stream, different every run.
            rng: 0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) << 32) ^ unique_seed(),
            last: MixKind::Verify,
        })
    });
    Ok((factory, shared))
}

fn unique_seed() -> u64 {
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(0x2545_f491_4f6c_dd1d, Ordering::Relaxed)
}

struct Mixed {
    family: SharedFamily,
    session: HeaderValue,
    login_body: Bytes,
    shared: Arc<MixShared>,
    rng: u64,
    last: MixKind,
}

impl Mixed {
    /// xorshift64*: the kind of the next request, by the weights of [`MIX_PER_10K`].
    fn next_kind(&mut self) -> MixKind {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % 10_000;
        let mut acc = 0;
        for (kind, weight) in MIX_PER_10K {
            acc += u64::from(weight);
            if r < acc {
                return kind;
            }
        }
        MixKind::Verify
    }
}

impl Conn for Mixed {
    fn kind(&self) -> &'static str {
        match self.last {
            MixKind::Verify => "verify",
            MixKind::Refresh => "refresh",
            MixKind::Session => "session",
            MixKind::Logout => "logout",
            MixKind::Login => "login",
        }
    }

    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        let mut kind = self.next_kind();
        let mut logout_cookie = None;
        if kind == MixKind::Logout {
            logout_cookie = self.shared.pop();
            if logout_cookie.is_none() {
                // Out of spare sessions: a session lookup instead (not a login, which would
                // shift argon2 work into the mix).
                self.shared.spare_empty.fetch_add(1, Ordering::Relaxed);
                kind = MixKind::Session;
            }
        }
        self.last = kind;
        if let Some(i) = MIX_PER_10K.iter().position(|(k, _)| *k == kind) {
            self.shared.sent[i].fetch_add(1, Ordering::Relaxed);
        }
        match kind {
            MixKind::Verify => bearer_me(host, &latest(&self.family).access),
            MixKind::Refresh => refresh_request(host, &latest(&self.family).refresh),
            MixKind::Session => {
                client::get(host, "/v1/me", &[(header::COOKIE, self.session.clone())])
            }
            MixKind::Logout => {
                let mut req = client::post_json(host, "/v1/logout", String::new());
                if let Some(c) = logout_cookie {
                    req.headers_mut().insert(header::COOKIE, c);
                }
                req
            }
            MixKind::Login => {
                let mut req = client::post_json(host, "/v1/login", String::new());
                *req.body_mut() = Full::new(self.login_body.clone());
                req
            }
        }
    }

    fn answer(&mut self, _: StatusCode, headers: &HeaderMap, body: &Bytes) -> Result<(), String> {
        match self.last {
            MixKind::Verify | MixKind::Session => {
                if body.starts_with(b"{") {
                    Ok(())
                } else {
                    Err("odd /v1/me body".into())
                }
            }
            MixKind::Refresh => {
                let new =
                    token_pair(body).ok_or_else(|| "no tokens in the refresh answer".to_owned())?;
                keep(&self.family, new);
                Ok(())
            }
            MixKind::Logout => Ok(()),
            MixKind::Login => {
                let cookie =
                    session_cookie(headers).ok_or_else(|| "no session cookie".to_owned())?;
                let value = HeaderValue::from_str(&format!("{SESSION_COOKIE}={cookie}"))
                    .map_err(|_| "odd session cookie".to_owned())?;
                self.shared.push(value);
                Ok(())
            }
        }
    }
}
