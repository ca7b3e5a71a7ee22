//! API keys over HTTP: `GET /v1/api-keys/whoami` authenticated by `X-API-Key`, against the
//! same server's `GET /v1/me` authenticated by a bearer access token (the equivalent identity
//! read), interleaved in one run; and the usage audit: a full-speed key run appends at most one
//! `ApiKeyUsed` per key per usage interval.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::client::{self, Conn, Target};
use super::http_workloads::{self, ConnFactory};
use super::token_runs::{check, server_cpu, server_for};
use super::{BenchArgs, Failure, Report, describe_run, figure, measured, say, setup_runtime, spec};

/// Keys (one per account) the connections share.
const KEYS: usize = 8;

/// Creates one live key per token family (each account's fresh login passes the step-up).
async fn keys(target: &Target) -> Result<Vec<HeaderValue>, Failure> {
    let fams = http_workloads::token_families(target, KEYS).await?;
    let mut keys = Vec::with_capacity(fams.len());
    for (i, access) in fams.into_iter().enumerate() {
        let body = format!(
            "{{\"name\":\"bench-{i}\",\"environment\":\"live\",\"scopes\":[\"tokens:read\"],\"expires_in\":86400}}"
        );
        let mut req = client::post_json(&target.host, "/v1/api-keys", body);
        req.headers_mut().insert(header::AUTHORIZATION, access);
        let (status, _, body) = client::once(target, req)
            .await
            .map_err(|e| Failure(format!("creating an API key: {e}")))?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let key = v["key"]
            .as_str()
            .filter(|_| status == StatusCode::CREATED)
            .ok_or_else(|| {
                Failure(format!(
                    "creating an API key: {status} {}",
                    String::from_utf8_lossy(&body)
                ))
            })?;
        keys.push(HeaderValue::from_str(key).map_err(Failure::new)?);
    }
    Ok(keys)
}

struct Whoami {
    key: HeaderValue,
}

impl Conn for Whoami {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        client::get(
            host,
            "/v1/api-keys/whoami",
            &[(HeaderName::from_static("x-api-key"), self.key.clone())],
        )
    }

    fn answer(&mut self, status: StatusCode, _: &HeaderMap, body: &Bytes) -> Result<(), String> {
        if status == StatusCode::OK && body.starts_with(b"{\"") {
            Ok(())
        } else {
            Err(format!("whoami answered {status}"))
        }
    }
}

fn whoami_factory(keys: Vec<HeaderValue>) -> ConnFactory {
    let keys = Arc::new(keys);
    Arc::new(move |i| {
        Box::new(Whoami {
            key: keys[i % keys.len()].clone(),
        })
    })
}

/// `api-key`: whoami by key vs /v1/me by bearer, each repeat measuring both in turn.
pub fn api_key(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let conns = args.connections.first().copied().unwrap_or(64);
    let rt = setup_runtime()?;
    let (server, target) = server_for(args)?;
    let pid = server.as_ref().map(super::server::ChildServer::pid);
    let keyed = whoami_factory(rt.block_on(keys(&target))?);
    let bearer = rt.block_on(http_workloads::prepare_verify(&target, conns))?;
    let (mut key_rps, mut bearer_rps, mut ratios, mut runs) = (vec![], vec![], vec![], vec![]);
    for repeat in 0..args.repeats {
        let (b, b_cpu) = measured(&target, &bearer, conns, spec(args), pid)?;
        let (k, k_cpu) = measured(&target, &keyed, conns, spec(args), pid)?;
        let ratio = k.requests_per_s / b.requests_per_s;
        say(
            args,
            format!(
                "run {}: X-API-Key whoami {}  | bearer /v1/me {}  | ratio {ratio:.3}  (server cpu s/s {} / {})",
                repeat + 1,
                describe_run(&k),
                describe_run(&b),
                k_cpu["server_cpu_s_per_s"],
                b_cpu["server_cpu_s_per_s"],
            ),
        );
        let per_cpu = match (server_cpu(&k_cpu), server_cpu(&b_cpu)) {
            (Some(kc), Some(bc)) => json!((k.requests_per_s / kc) / (b.requests_per_s / bc)),
            _ => Value::Null,
        };
        key_rps.push(k.requests_per_s);
        bearer_rps.push(b.requests_per_s);
        ratios.push(ratio);
        runs.push(json!({"key": k, "bearer": b, "key_cpu": k_cpu, "bearer_cpu": b_cpu, "ratio_per_cpu_s": per_cpu}));
    }
    let k = figure(
        format!(
            "API-key whoami (X-API-Key GET /v1/api-keys/whoami) requests/s, {conns} connections"
        ),
        "req/s",
        key_rps,
        json!({"connections": conns, "keys": KEYS, "runs": runs}),
    );
    let b = figure(
        format!("bearer GET /v1/me requests/s, {conns} connections, same run"),
        "req/s",
        bearer_rps,
        Value::Null,
    );
    let r = figure(
        format!("API key / bearer token, {conns} connections"),
        "ratio",
        ratios,
        Value::Null,
    );
    say(
        args,
        format!(
            "MEDIAN X-API-Key {:.0} req/s, bearer {:.0} req/s, ratio {:.3}",
            k.value, b.value, r.value
        ),
    );
    check(
        report,
        format!("API-key authentication / bearer, {conns} connections"),
        r.value,
        ">= 0.80",
        r.value >= 0.80,
    );
    report.results.extend([k, b, r]);
    drop(server);
    Ok(())
}

/// The server's usage interval: the child server inherits this process's environment.
fn usage_interval_secs() -> f64 {
    std::env::var("TESSERA_POLICY__API_KEYS__USAGE_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60.0)
}

async fn metric(target: &Target, name: &str) -> Result<f64, Failure> {
    let (_, _, body) = client::once(target, client::get(&target.host, "/metrics", &[]))
        .await
        .map_err(|e| Failure(format!("reading /metrics: {e}")))?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .ok_or_else(|| Failure(format!("no metric {name}")))
}

/// `api-key-usage`: whoami at full speed for --duration seconds; the `ApiKeyUsed` events the
/// run appended (from `/metrics`, after the server's next interval has recorded the rest),
/// against one per key per usage interval (`policy.api_keys.usage_interval_secs`, default 60).
pub fn api_key_usage(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let conns = args.connections.first().copied().unwrap_or(64);
    let interval = usage_interval_secs();
    let rt = setup_runtime()?;
    let (server, target) = server_for(args)?;
    let keys = rt.block_on(keys(&target))?;
    let keyed = whoami_factory(keys);
    let events = |name: &str| rt.block_on(metric(&target, name));
    let before = events("tessera_api_key_usage_events_total")?;
    let appended_before = events("tessera_events_appended_total")?;
    let spec = client::Spec {
        warmup: std::time::Duration::ZERO,
        ..spec(args)
    };
    let r = client::run(&target, (0..conns).map(|i| keyed(i)).collect(), spec)?;
    say(args, format!("key traffic {}", describe_run(&r)));
    // The counters still in memory are recorded at the next tick.
    let wait = std::time::Duration::from_secs_f64(interval + 1.0);
    rt.block_on(async move { tokio::time::sleep(wait).await });
    let after = events("tessera_api_key_usage_events_total")?;
    let appended = events("tessera_events_appended_total")? - appended_before;
    let usage = after - before;
    let intervals = (args.duration / interval).ceil() + 1.0;
    let bound = intervals * KEYS as f64;
    say(
        args,
        format!(
            "{} requests in {:.0} s over {KEYS} keys: {usage} ApiKeyUsed events ({appended} events appended in all); bound {bound} ({KEYS} keys x {intervals} intervals touched)",
            r.requests, r.seconds
        ),
    );
    report.results.push(figure(
        format!("ApiKeyUsed events in a {:.0} s full-speed run, {KEYS} keys, {conns} connections", args.duration),
        "events",
        vec![usage],
        json!({"requests": r.requests, "requests_per_s": r.requests_per_s, "events_appended": appended, "interval_secs": interval}),
    ));
    check(
        report,
        "usage events <= keys x intervals touched".to_owned(),
        usage,
        &format!("<= {bound}"),
        usage <= bound,
    );
    drop(server);
    Ok(())
}
