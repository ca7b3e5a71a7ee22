//! The OAuth workloads, each next to its reference measured in the same run:
//!
//! - `client-credentials`: `POST /oauth/token grant_type=client_credentials` with HTTP
//!   Basic (64 connections by default) against the in-process issuance rate on every core
//!   (client authentication by keyed digest, `issue_client_token`, signing): no argon2, no
//!   writer, so the HTTP path should keep most of it.
//! - `code-exchange`: `grant_type=authorization_code` with PKCE (64 connections) against
//!   durable refresh rotations at the same connection count. Both are one writer decision
//!   and one group-committed batch per request; codes are issued beforehand (through the
//!   same use case the authorize route runs) and are not counted.
//!
//! Both run against a server in this process (the real engine on a sled store in a
//! temporary folder, the real HTTP adapter on 127.0.0.1): the consent a code needs is
//! recorded through the core, which a child process would only offer through its pages.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};
use tessera_core::oauth::authorize::s256;
use tessera_core::oauth::{
    AuthenticatedClient, ClientCredentials, ClientKind, ClientRegistration, GrantType,
    IssueAuthorizationCode, RegisterClient, authenticate_client, issue_client_token,
};
use tessera_core::usecase::RegisterRequest;
use tessera_core::{AccountId, Actor, Env, Policy};
use tessera_http::system::{SystemClock, os_rng};
use tessera_http::{App, HttpConfig, ServerHandle};
use tessera_storage::engine::EngineConfig;
use tessera_storage::{Engine, SledOptions, SledStore};

use super::client::{Conn, Target};
use super::http_workloads::{self, ConnFactory};
use super::{BenchArgs, Check, Report, cores, data_parent, describe_run, figure, say, spec};
use crate::Failure;

const REDIRECT: &str = "https://bench.example/cb";
const VERIFIER: &str = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const CLIENT: &str = "bench";

/// A Tessera server in this process.
pub(crate) struct InProcess {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) engine: Engine,
    pub(crate) app: Arc<App>,
    handle: Option<ServerHandle>,
    pub(crate) target: Target,
    secret: String,
    pub(crate) account: AccountId,
    _dir: tempfile::TempDir,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
        self.engine.shutdown();
    }
}

pub(crate) fn start(parent: &Path) -> Result<InProcess, Failure> {
    let dir = tempfile::tempdir_in(parent).map_err(Failure::new)?;
    let store = SledStore::open(dir.path(), SledOptions::default()).map_err(Failure::new)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(Failure::new)?;
    let addr = listener.local_addr().map_err(Failure::new)?;
    let mut config = HttpConfig::default();
    config.public_url = tessera_http::config::effective_public_url("", addr);
    let mut policy = Policy::default();
    policy.token.issuer.clone_from(&config.public_url);
    // The load tool registers its own accounts from one address.
    policy.throttle.registration.free_failures = tessera_core::throttle::FREE_FAILURES_MAX;
    let engine = Engine::start(
        Box::new(store),
        policy,
        Arc::new(SystemClock),
        Box::new(os_rng()),
        EngineConfig::default(),
    )
    .map_err(Failure::new)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .enable_all()
        .build()
        .map_err(Failure::new)?;
    let keys = tessera_storage::keys::KeyStore::open(dir.path()).map_err(Failure::new)?;
    let mfa_keys = keys
        .mfa_keys_or_create(&tessera_http::signing::new_seed())
        .map_err(Failure::new)?;
    let pepper = keys
        .api_key_pepper_or_create(&tessera_http::signing::new_seed())
        .map_err(Failure::new)?;
    let signing = rt
        .block_on(tessera_http::signing::Signing::start(&engine, keys))
        .map_err(Failure::new)?;
    let app = Arc::new(
        App::new(
            engine.clone(),
            config,
            Arc::new(signing),
            mfa_keys.clone(),
            pepper,
        )
        .map_err(Failure::new)?,
    );
    let handle = rt
        .block_on(tessera_http::start_on(app.clone(), listener))
        .map_err(Failure::new)?;
    let registered = rt
        .block_on(engine.execute(RegisterClient {
            registration: ClientRegistration {
                client_id: CLIENT.into(),
                name: "Bench".into(),
                kind: ClientKind::Confidential,
                redirect_uris: vec![REDIRECT.into()],
                grant_types: GrantType::ALL.to_vec(),
                scopes: vec!["read".into()],
            },
            keys: mfa_keys,
            by: Actor::Operator {
                name: "bench".into(),
            },
        }))
        .map_err(Failure::new)?
        .reply
        .map_err(Failure::new)?;
    let secret = registered
        .secret
        .map(|s| s.expose().to_owned())
        .ok_or_else(|| Failure::new("a confidential client without a secret"))?;
    let command = engine
        .prepare_here(
            RegisterRequest {
                username: "bench-consent".into(),
                email: None,
                password: http_workloads::PASSWORD.into(),
                client: None,
            },
            &mut os_rng(),
            &mut tessera_core::password::WorkArea::default(),
        )
        .map_err(Failure::new)?;
    let account = rt
        .block_on(engine.execute(command))
        .map_err(Failure::new)?
        .reply
        .map_err(Failure::new)?
        .account;
    let target = Target::new(addr)?;
    Ok(InProcess {
        rt,
        engine,
        app,
        handle: Some(handle),
        target,
        secret,
        account,
        _dir: dir,
    })
}

fn basic(secret: &str) -> HeaderValue {
    let raw = format!("{CLIENT}:{}", tessera_core::oauth::percent_encode(secret));
    let b64 = data_encoding::BASE64.encode(raw.as_bytes());
    HeaderValue::from_str(&format!("Basic {b64}")).unwrap_or(HeaderValue::from_static(""))
}

fn form_post(host: &str, auth: &HeaderValue, body: String) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = http::Uri::from_static("/oauth/token");
    let h = req.headers_mut();
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(header::HOST, v);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    h.insert(header::AUTHORIZATION, auth.clone());
    req
}

fn has_access_token(body: &Bytes) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    v.get("access_token")
        .and_then(Value::as_str)
        .map(|_| ())
        .ok_or_else(|| "no access_token".to_owned())
}

struct ClientCredentialsConn {
    auth: HeaderValue,
}

impl Conn for ClientCredentialsConn {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        form_post(host, &self.auth, "grant_type=client_credentials".into())
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, body: &Bytes) -> Result<(), String> {
        has_access_token(body)
    }
}

struct ExchangeConn {
    auth: HeaderValue,
    codes: Arc<Mutex<Vec<String>>>,
}

impl Conn for ExchangeConn {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        let code = self
            .codes
            .lock()
            .ok()
            .and_then(|mut c| c.pop())
            .unwrap_or_default();
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
            tessera_core::oauth::percent_encode(REDIRECT)
        );
        form_post(host, &self.auth, body)
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, body: &Bytes) -> Result<(), String> {
        has_access_token(body)
    }
}

/// The in-process issuance rate on `threads` threads: what one client-credentials request
/// costs without HTTP (authentication, claims, signature).
fn issuance_rate(server: &InProcess, threads: usize, secs: f64) -> super::tokens::Rate {
    let signer = server.app.signing.signer();
    let keys = server.app.mfa_keys.clone();
    let credentials = ClientCredentials {
        client_id: CLIENT.into(),
        secret: Some(zeroize::Zeroizing::new(server.secret.clone())),
    };
    let engine = server.engine.clone();
    super::tokens::rate(threads, secs, &|_, _| {
        let now = engine.now();
        let policy = engine.policy().clone();
        let claims = {
            let views = engine.views();
            let client: Option<AuthenticatedClient> =
                authenticate_client(&views, &keys, &credentials, now).ok();
            let mut rng = os_rng();
            let mut env = Env::new(now, &mut rng, &policy);
            client.and_then(|c| issue_client_token(&views, &c, None, &mut env).ok())
        };
        claims.is_some_and(|c| signer.sign(&c).is_ok())
    })
}

fn conns_or(args: &BenchArgs, default: usize) -> Vec<usize> {
    if args.connections.is_empty() {
        vec![default]
    } else {
        args.connections.clone()
    }
}

pub fn client_credentials(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let server = start(&data_parent(args))?;
    let rt = super::setup_runtime()?;
    let _ = &rt;
    let auth = basic(&server.secret);
    let n = cores();
    for conns in conns_or(args, 64) {
        let factory: ConnFactory = {
            let auth = auth.clone();
            Arc::new(move |_| Box::new(ClientCredentialsConn { auth: auth.clone() }))
        };
        let (mut rps, mut inproc, mut ratios, mut lat) = (vec![], vec![], vec![], vec![]);
        for repeat in 0..args.repeats {
            let i = issuance_rate(&server, n, args.ceiling_secs);
            let (r, _) = super::measured(&server.target, &factory, conns, spec(args), None)?;
            let ratio = r.requests_per_s / i.per_s;
            say(
                args,
                format!(
                    "client-credentials {conns:>3} conns run {}: {}  | in-process issuance {:.0}/s on {n} threads, ratio {ratio:.3}",
                    repeat + 1,
                    describe_run(&r),
                    i.per_s
                ),
            );
            rps.push(r.requests_per_s);
            inproc.push(i.per_s);
            ratios.push(ratio);
            lat.push(r.latency);
        }
        let lat = super::stats::Latency::median(&lat);
        let row = figure(
            format!("client_credentials requests/s, {conns} connections"),
            "req/s",
            rps,
            json!({"connections": conns, "latency_median_of_runs": lat}),
        );
        let ceiling = figure(
            format!(
                "in-process client_credentials issuance/s, {n} threads (next to {conns} connections)"
            ),
            "1/s",
            inproc,
            Value::Null,
        );
        let ratio = figure(
            format!("client_credentials over HTTP / in-process issuance, {conns} connections"),
            "ratio",
            ratios,
            Value::Null,
        );
        say(
            args,
            format!(
                "client-credentials {conns:>3} conns MEDIAN {:.0} req/s p50 {:.2} ms p99 {:.2} ms; in-process {:.0}/s; ratio {:.3}",
                row.value,
                lat.p50_us as f64 / 1e3,
                lat.p99_us as f64 / 1e3,
                ceiling.value,
                ratio.value
            ),
        );
        if conns == 64 {
            report.checks.push(Check {
                name: "client_credentials over HTTP, 64 connections / in-process issuance".into(),
                value: ratio.value,
                target: ">= 0.60".into(),
                met: ratio.value >= 0.60,
            });
        }
        report.results.extend([row, ratio]);
        report.ceilings.push(ceiling);
    }
    Ok(())
}

/// Issues `n` codes for the consenting account, `in_flight` at a time, through the use case
/// the authorize route runs.
fn issue_codes(server: &InProcess, n: usize) -> Result<Vec<String>, Failure> {
    let scopes: BTreeSet<String> = ["read".to_owned()].into();
    let challenge = s256(VERIFIER);
    let command = |record_consent| IssueAuthorizationCode {
        account: server.account,
        client_id: CLIENT.into(),
        redirect_uri: REDIRECT.into(),
        scopes: scopes.clone(),
        code_challenge: challenge.clone(),
        state: "bench".into(),
        record_consent,
    };
    server.rt.block_on(async {
        server
            .engine
            .execute(command(true))
            .await
            .map_err(Failure::new)?
            .reply
            .map_err(Failure::new)?;
        let mut codes = Vec::with_capacity(n);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let engine = server.engine.clone();
            let c = command(false);
            set.spawn(async move { engine.execute(c).await });
            if set.len() >= 256
                && let Some(done) = set.join_next().await
            {
                collect(done, &mut codes)?;
            }
        }
        while let Some(done) = set.join_next().await {
            collect(done, &mut codes)?;
        }
        Ok(codes)
    })
}

type Issued = Result<
    tessera_storage::engine::Outcome<tessera_core::oauth::AuthorizationCodeIssued>,
    tessera_storage::EngineError,
>;

fn collect(
    done: Result<Issued, tokio::task::JoinError>,
    codes: &mut Vec<String>,
) -> Result<(), Failure> {
    let issued = done
        .map_err(Failure::new)?
        .map_err(Failure::new)?
        .reply
        .map_err(Failure::new)?;
    codes.push(issued.code.expose().to_owned());
    Ok(())
}

pub fn code_exchange(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let server = start(&data_parent(args))?;
    let rt = super::setup_runtime()?;
    let auth = basic(&server.secret);
    for conns in conns_or(args, 64) {
        let refresh = rt.block_on(http_workloads::prepare_refresh(&server.target, conns))?;
        let (mut ex, mut rf, mut ratios, mut lat) = (vec![], vec![], vec![], vec![]);
        for repeat in 0..args.repeats {
            let (r, _) = super::measured(&server.target, &refresh, conns, spec(args), None)?;
            // Enough codes for the window at twice the refresh rate, plus slack.
            let window = args.warmup + args.duration + 1.0;
            let n = ((r.requests_per_s * 2.0 * window) as usize).max(2_000);
            let codes = Arc::new(Mutex::new(issue_codes(&server, n)?));
            let factory: ConnFactory = {
                let (auth, codes) = (auth.clone(), codes.clone());
                Arc::new(move |_| {
                    Box::new(ExchangeConn {
                        auth: auth.clone(),
                        codes: codes.clone(),
                    })
                })
            };
            let (e, _) = super::measured(&server.target, &factory, conns, spec(args), None)?;
            let left = codes.lock().map(|c| c.len()).unwrap_or(0);
            let ratio = e.requests_per_s / r.requests_per_s;
            say(
                args,
                format!(
                    "code-exchange {conns:>3} conns run {}: exchange {}  | refresh {:.0}/s, ratio {ratio:.3}; {n} codes issued beforehand, {left} unused",
                    repeat + 1,
                    describe_run(&e),
                    r.requests_per_s
                ),
            );
            ex.push(e.requests_per_s);
            rf.push(r.requests_per_s);
            ratios.push(ratio);
            lat.push(e.latency);
        }
        let lat = super::stats::Latency::median(&lat);
        let row = figure(
            format!("authorization_code exchanges/s, {conns} connections"),
            "req/s",
            ex,
            json!({"connections": conns, "latency_median_of_runs": lat}),
        );
        let reference = figure(
            format!("refresh rotations/s, same server (next to {conns} connections)"),
            "req/s",
            rf,
            Value::Null,
        );
        let ratio = figure(
            format!("code exchange / refresh rotation over HTTP, {conns} connections"),
            "ratio",
            ratios,
            Value::Null,
        );
        say(
            args,
            format!(
                "code-exchange {conns:>3} conns MEDIAN {:.0} req/s p50 {:.2} ms p99 {:.2} ms; refresh {:.0}/s; ratio {:.3}",
                row.value,
                lat.p50_us as f64 / 1e3,
                lat.p99_us as f64 / 1e3,
                reference.value,
                ratio.value
            ),
        );
        if conns == 64 {
            report.checks.push(Check {
                name: "authorization code exchange / refresh rotation, 64 connections".into(),
                value: ratio.value,
                target: ">= 0.50".into(),
                met: ratio.value >= 0.50,
            });
        }
        report.results.extend([row, reference, ratio]);
    }
    Ok(())
}
