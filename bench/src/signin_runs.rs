//! `signin-callback`: a "sign in with …" callback end to end, in process. Two real servers
//! on 127.0.0.1 in this process: an upstream Tessera (the OAuth 2 provider) and the one
//! signing in, configured with it as an `oauth2` upstream. Each round starts a sign-in
//! (GET /v1/login/tess: the sealed cookie and the state), has the upstream issue a code for
//! that state's PKCE challenge (its writer, as its consent page would), then measures the
//! callback alone: the cookie opened and checked, the code exchanged (one POST to the
//! upstream, which signs tokens and appends), the user info fetched (one GET, a bearer
//! verification there), and the sign-in decided and made durable here (two events and a
//! group-commit sync), up to the 303 with the session cookie.
//!
//! The figures: the callback's latency percentiles, and the process's CPU per callback
//! (both servers' share, upstream included), measured around the callbacks only.

#![allow(
    clippy::disallowed_methods,
    reason = "the load tool times real requests in real time"
)]

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tessera_core::AccountId;
use tessera_core::oauth::IssueAuthorizationCode;
use tessera_http::HttpConfig;
use tessera_http::admin::clients::{self, AddClient};
use tessera_http::config::{ClientSecret, UpstreamConfig};
use tessera_tests::server::Server;

use super::stats::{Latency, cpu_seconds};
use super::{BenchArgs, Report, figure, say};
use crate::Failure;

type Http = Client<HttpConnector, Full<Bytes>>;

struct Pair {
    up: Server,
    down: Server,
    account: AccountId,
    redirect: String,
}

async fn pair() -> Result<Pair, Failure> {
    let up = Server::start(HttpConfig::default()).await;
    let registered = up.register("octo").await;
    let account = AccountId::parse(registered.json()["id"].as_str().unwrap_or(""))
        .ok_or_else(|| Failure::new("the upstream registered octo"))?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(Failure::new)?;
    let addr = listener.local_addr().map_err(Failure::new)?;
    let redirect = format!("http://{addr}/v1/login/tess/callback");
    let added = clients::add(
        &up.engine,
        &up.app.mfa_keys,
        AddClient {
            client_id: "down-app".into(),
            name: Some("Bench".into()),
            public: false,
            redirect_uris: vec![redirect.clone()],
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["profile".into()],
            operator: "bench".into(),
        },
    )
    .await
    .map_err(|e| Failure::new(format!("{e:?}")))?;
    let base = format!("http://{}", up.addr);
    let tess = UpstreamConfig::tessera(
        "tess",
        "Tessera",
        &base,
        "down-app",
        added
            .client_secret
            .map(|s| ClientSecret(s.as_str().to_owned())),
    );
    let down = Server::start_on(
        listener,
        HttpConfig {
            upstreams: vec![tess],
            ..HttpConfig::default()
        },
        tessera_tests::policy(),
    )
    .await;
    Ok(Pair {
        up,
        down,
        account,
        redirect,
    })
}

/// One GET; the status, the Location and the Set-Cookie pairs.
async fn get(
    http: &Http,
    url: &str,
    cookie: Option<&str>,
) -> Result<(u16, String, Vec<String>), Failure> {
    let mut req = Request::get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = http
        .request(req.body(Full::new(Bytes::new())).map_err(Failure::new)?)
        .await
        .map_err(Failure::new)?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    resp.into_body().collect().await.map_err(Failure::new)?;
    Ok((status, location, cookies))
}

fn param(url: &str, name: &str) -> Option<String> {
    // The state and the challenge are base64url: nothing in them is percent-encoded.
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
}

/// One round: a sign-in started, a code issued, the callback timed. The callback's
/// microseconds and the process CPU seconds it took.
async fn round(p: &Pair, http: &Http, first: bool) -> Result<(u32, f64), Failure> {
    let start = format!("http://{}/v1/login/tess", p.down.addr);
    let (status, location, cookies) = get(http, &start, None).await?;
    if status != 302 {
        return Err(Failure::new(format!("the sign-in start answered {status}")));
    }
    let state = param(&location, "state").ok_or_else(|| Failure::new("no state"))?;
    let challenge =
        param(&location, "code_challenge").ok_or_else(|| Failure::new("no challenge"))?;
    let issued =
        p.up.engine
            .execute(IssueAuthorizationCode {
                account: p.account,
                client_id: "down-app".into(),
                redirect_uri: p.redirect.clone(),
                scopes: ["profile".to_owned()].into(),
                code_challenge: challenge,
                state: state.clone(),
                record_consent: first,
            })
            .await
            .map_err(Failure::new)?
            .reply
            .map_err(Failure::new)?;
    // A code is base64url with a prefix: no character needs encoding.
    let callback = format!("{}?code={}&state={state}", p.redirect, issued.code.expose());
    let cookie = cookies.join("; ");
    let cpu0 = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let began = Instant::now();
    let (status, location, _) = get(http, &callback, Some(&cookie)).await?;
    let micros = u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX);
    let cpu = cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu0;
    if status != 303 || location != "/" {
        return Err(Failure::new(format!(
            "the callback answered {status} to {location}"
        )));
    }
    Ok((micros, cpu))
}

pub fn callback(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::new)?;
    runtime.block_on(async {
        let p = pair().await?;
        let http: Http = Client::builder(TokioExecutor::new()).build_http();
        round(&p, &http, true).await?;
        let mut runs = Vec::new();
        let mut cpu_per = Vec::new();
        for repeat in 0..args.repeats.max(1) {
            let mut samples = Vec::new();
            let mut cpu = 0.0;
            let began = Instant::now();
            while began.elapsed().as_secs_f64() < args.duration {
                let (us, c) = round(&p, &http, false).await?;
                samples.push(us);
                cpu += c;
            }
            let n = samples.len();
            let latency = Latency::of(&mut samples);
            let cpu_us = cpu / n.max(1) as f64 * 1e6;
            say(
                args,
                format!(
                    "run {}: {n} callbacks: p50 {} µs, p90 {} µs, p99 {} µs; {cpu_us:.0} µs process CPU each",
                    repeat + 1,
                    latency.p50_us,
                    latency.p90_us,
                    latency.p99_us
                ),
            );
            cpu_per.push(cpu_us);
            runs.push(latency);
        }
        let median = Latency::median(&runs);
        say(
            args,
            format!(
                "median: callback p50 {} µs, p99 {} µs",
                median.p50_us, median.p99_us
            ),
        );
        report.results.push(figure(
            "external sign-in callback (oauth2 upstream on loopback, both in process), p50",
            "µs",
            runs.iter().map(|l| l.p50_us as f64).collect(),
            json!(runs),
        ));
        report.results.push(figure(
            "external sign-in callback, process CPU per callback (upstream's share included)",
            "µs",
            cpu_per,
            serde_json::Value::Null,
        ));
        p.down.stop().await;
        p.up.stop().await;
        Ok(())
    })
}
