//! The PostgreSQL backend and several nodes on it, in one run on a throwaway cluster (or
//! `--postgres URL`): group commit (1 vs 64 writers), refresh rotations over HTTP against
//! the sled backend, bearer verification on a follower against the leader, and how long a
//! revocation acknowledged by the leader takes to reach a follower, and how long a
//! follower takes to acknowledge changes after the leader is killed.

#![allow(
    clippy::disallowed_methods,
    reason = "the load tool paces real processes in real time"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use hyper::Request;
use serde_json::{Value, json};
use tessera_core::Policy;
use tessera_http::system::{SystemClock, monotonic, os_rng};
use tessera_pgstore::{PgOptions, PgStore};
use tessera_storage::engine::EngineConfig;
use tessera_storage::{Engine, Role};

use super::client::{self, Target};
use super::server::{self, ChildServer};
use super::{
    BenchArgs, Failure, Report, data_parent, describe_run, figure, http_workloads, measured, say,
    setup_runtime, spec, storage,
};

fn check(report: &mut Report, name: String, value: f64, target: &str, met: bool) {
    report.checks.push(super::Check {
        name,
        value,
        target: target.to_owned(),
        met,
    });
}

/// A database for each part of the run: in the throwaway cluster, or (with `--postgres`)
/// the one given, emptied first.
struct Databases {
    cluster: Option<tessera_tests::pg::Cluster>,
    url: Option<String>,
}

impl Databases {
    fn start(args: &BenchArgs) -> Result<Self, Failure> {
        if let Some(url) = &args.postgres {
            return Ok(Self {
                cluster: None,
                url: Some(url.clone()),
            });
        }
        let cluster = tessera_tests::pg::private_cluster().ok_or_else(|| {
            Failure::new("PostgreSQL is not installed: install Debian's `postgresql`, or pass --postgres URL")
        })?;
        Ok(Self {
            cluster: Some(cluster),
            url: None,
        })
    }

    fn fresh(&self) -> Result<String, Failure> {
        match (&self.cluster, &self.url) {
            (Some(c), _) => Ok(c.database()),
            (None, Some(url)) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls)
                    .map_err(|e| Failure(format!("--postgres: {e}")))?;
                c.batch_execute("DROP TABLE IF EXISTS tessera_log, tessera_views, tessera_meta")
                    .map_err(|e| Failure(format!("--postgres: {e}")))?;
                Ok(url.clone())
            }
            (None, None) => Err(Failure::new("no database")),
        }
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        if let Some(c) = &self.cluster {
            c.stop_immediate();
        }
    }
}

fn pg_env(url: &str) -> Vec<(String, String)> {
    vec![
        ("TESSERA_STORAGE__BACKEND".into(), "postgres".into()),
        ("TESSERA_STORAGE__URL".into(), url.into()),
        // One issuer for every node, or a token from one would not verify on another.
        (
            "TESSERA_HTTP__PUBLIC_URL".into(),
            "http://tessera.test".into(),
        ),
    ]
}

fn copy_keys(from: &Path, to: &Path) -> Result<(), Failure> {
    let (src, dst) = (from.join("keys"), to.join("keys"));
    std::fs::create_dir_all(&dst).map_err(Failure::new)?;
    for entry in std::fs::read_dir(&src).map_err(Failure::new)? {
        let entry = entry.map_err(Failure::new)?;
        std::fs::copy(entry.path(), dst.join(entry.file_name())).map_err(Failure::new)?;
    }
    Ok(())
}

pub fn postgres(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let dbs = Databases::start(args)?;
    if !args.nodes_only {
        group_commit(args, report, &dbs.fresh()?)?;
    }
    let bin = server::tessera_binary(args.tessera.as_deref())?;
    let parent = data_parent(args);
    let url = dbs.fresh()?;
    let leader_dir = tempfile::Builder::new()
        .prefix("tessera-bench-leader-")
        .tempdir_in(&parent)
        .map_err(Failure::new)?;
    let leader = ChildServer::tessera_with(
        &bin,
        leader_dir.path(),
        args.config.as_deref(),
        &pg_env(&url),
    )?;
    if !args.nodes_only {
        let sled = ChildServer::tessera(&bin, &parent, args.config.as_deref())?;
        refresh_against_sled(args, report, &leader, &sled)?;
        drop(sled);
    }
    let follower_dir = tempfile::Builder::new()
        .prefix("tessera-bench-follower-")
        .tempdir_in(&parent)
        .map_err(Failure::new)?;
    copy_keys(leader_dir.path(), follower_dir.path())?;
    let follower = ChildServer::tessera_with(
        &bin,
        follower_dir.path(),
        args.config.as_deref(),
        &pg_env(&url),
    )?;
    verify_on_follower(args, report, &leader, &follower)?;
    revocation_lag(args, report, &leader, &follower)?;
    let dirs = [leader_dir.path(), follower_dir.path()];
    takeover(args, report, [leader, follower], dirs, &bin, &url)?;
    Ok(())
}

/// How many times the leader is killed.
const TAKEOVERS: usize = 5;

/// Kills the leader with SIGKILL, times how long until the other node acknowledges a
/// change (a refresh sent to it), restarts the killed node as a follower, and goes again
/// the other way.
fn takeover(
    args: &BenchArgs,
    report: &mut Report,
    nodes: [ChildServer; 2],
    dirs: [&Path; 2],
    bin: &Path,
    url: &str,
) -> Result<(), Failure> {
    let rt = setup_runtime()?;
    let [a, b] = nodes;
    let mut nodes = [Some(a), Some(b)];
    let mut leader = 0;
    let mut times_ms = Vec::with_capacity(TAKEOVERS);
    for round in 0..TAKEOVERS {
        let survivor = 1 - leader;
        let target = nodes[survivor]
            .as_ref()
            .map(|n| n.target.clone())
            .ok_or_else(|| Failure::new("no survivor"))?;
        // The node restarted in the round before may still be finding the leader.
        let mut fams = rt.block_on(http_workloads::prepare_families(&target, 1));
        for _ in 0..50 {
            if fams.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            fams = rt.block_on(http_workloads::prepare_families(&target, 1));
        }
        let refresh = fams?
            .first()
            .map(|f| f.refresh.clone())
            .ok_or_else(|| Failure::new("no family"))?;
        let killed = monotonic();
        drop(nodes[leader].take());
        let mut took = None;
        for _ in 0..60_000 {
            let req = form(
                &target.host,
                "/oauth/token",
                format!("grant_type=refresh_token&refresh_token={refresh}"),
                None,
            );
            if let Ok((StatusCode::OK, _, _)) = rt.block_on(client::once(&target, req)) {
                took = Some(killed.elapsed().as_secs_f64() * 1e3);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let ms = took.ok_or_else(|| Failure::new("no node took over within 60 s"))?;
        say(
            args,
            format!(
                "takeover {}: a change acknowledged by the survivor {ms:.0} ms after SIGKILL of the leader",
                round + 1
            ),
        );
        times_ms.push(ms);
        nodes[leader] = Some(ChildServer::tessera_with(
            bin,
            dirs[leader],
            args.config.as_deref(),
            &pg_env(url),
        )?);
        leader = survivor;
    }
    times_ms.sort_by(f64::total_cmp);
    let max = times_ms.last().copied().unwrap_or_default();
    report.results.push(figure(
        format!("lease takeover: SIGKILL of the leader to a change acknowledged by another node, {TAKEOVERS} rounds"),
        "ms",
        times_ms.clone(),
        json!({"max_ms": max, "runs_ms": times_ms}),
    ));
    Ok(())
}

fn group_commit(args: &BenchArgs, report: &mut Report, url: &str) -> Result<(), Failure> {
    let store = PgStore::open(PgOptions::new(url)).map_err(Failure::new)?;
    let engine = Engine::start(
        Box::new(store),
        Policy::fast_for_tests(),
        Arc::new(SystemClock),
        Box::new(os_rng()),
        EngineConfig {
            check_invariants: false,
            ..EngineConfig::default()
        },
    )
    .map_err(Failure::new)?;
    for _ in 0..100 {
        if engine.role() == Role::Leader {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let hash = storage::cheap_hash()?;
    let (warmup, measure) = (
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.duration),
    );
    let (mut one, mut many, mut ratios) = (vec![], vec![], vec![]);
    for repeat in 0..args.repeats {
        let a = storage::group_commit(&engine, &hash, 1, warmup, measure);
        let b = storage::group_commit(&engine, &hash, 64, warmup, measure);
        say(
            args,
            format!(
                "postgres group commit run {}: 1 writer {:.0}/s, 64 writers {:.0}/s ({:.1} commands per batch), ratio {:.2}",
                repeat + 1,
                a.commits_per_s,
                b.commits_per_s,
                b.mean_batch_commands,
                b.commits_per_s / a.commits_per_s.max(1e-9)
            ),
        );
        one.push(a.commits_per_s);
        many.push(b.commits_per_s);
        ratios.push(b.commits_per_s / a.commits_per_s.max(1e-9));
    }
    engine.shutdown();
    let ratio = figure(
        "postgres durable commits/s, 64 writers / 1 writer",
        "ratio",
        ratios,
        Value::Null,
    );
    check(
        report,
        "postgres group commit: 64 writers / 1 writer".into(),
        ratio.value,
        ">= 5",
        ratio.value >= 5.0,
    );
    report.results.extend([
        figure(
            "postgres durable commits/s, 1 writer",
            "1/s",
            one,
            Value::Null,
        ),
        figure(
            "postgres durable commits/s, 64 writers",
            "1/s",
            many,
            Value::Null,
        ),
        ratio,
    ]);
    Ok(())
}

fn refresh_against_sled(
    args: &BenchArgs,
    report: &mut Report,
    pg: &ChildServer,
    sled: &ChildServer,
) -> Result<(), Failure> {
    let rt = setup_runtime()?;
    let conns = 64;
    let pg_factory = rt.block_on(http_workloads::prepare_refresh(&pg.target, conns))?;
    let sled_factory = rt.block_on(http_workloads::prepare_refresh(&sled.target, conns))?;
    let (mut pg_rps, mut sled_rps, mut ratios) = (vec![], vec![], vec![]);
    for repeat in 0..args.repeats {
        let (s, _) = measured(
            &sled.target,
            &sled_factory,
            conns,
            spec(args),
            Some(sled.pid()),
        )?;
        let (p, _) = measured(&pg.target, &pg_factory, conns, spec(args), Some(pg.pid()))?;
        say(
            args,
            format!(
                "refresh {conns} conns run {}: sled {} | postgres {} | ratio {:.3}",
                repeat + 1,
                describe_run(&s),
                describe_run(&p),
                p.requests_per_s / s.requests_per_s.max(1e-9)
            ),
        );
        ratios.push(p.requests_per_s / s.requests_per_s.max(1e-9));
        pg_rps.push(p.requests_per_s);
        sled_rps.push(s.requests_per_s);
    }
    let ratio = figure(
        format!("refresh requests/s, postgres / sled, {conns} connections"),
        "ratio",
        ratios,
        Value::Null,
    );
    check(
        report,
        format!("refresh over HTTP on postgres / on sled, {conns} connections"),
        ratio.value,
        ">= 0.40",
        ratio.value >= 0.40,
    );
    report.results.extend([
        figure(
            format!("refresh requests/s on postgres, {conns} connections"),
            "req/s",
            pg_rps,
            Value::Null,
        ),
        figure(
            format!("refresh requests/s on sled, {conns} connections"),
            "req/s",
            sled_rps,
            Value::Null,
        ),
        ratio,
    ]);
    Ok(())
}

fn verify_on_follower(
    args: &BenchArgs,
    report: &mut Report,
    leader: &ChildServer,
    follower: &ChildServer,
) -> Result<(), Failure> {
    let rt = setup_runtime()?;
    let conns = 64;
    let leader_factory = rt.block_on(http_workloads::prepare_verify(&leader.target, conns))?;
    let follower_factory = rt.block_on(http_workloads::prepare_verify(&follower.target, conns))?;
    // The follower's views catch up with the logins (they went through the leader).
    std::thread::sleep(Duration::from_secs(1));
    let (mut ratios, mut on_leader, mut on_follower) = (vec![], vec![], vec![]);
    for repeat in 0..args.repeats {
        let (l, _) = measured(
            &leader.target,
            &leader_factory,
            conns,
            spec(args),
            Some(leader.pid()),
        )?;
        let (f, _) = measured(
            &follower.target,
            &follower_factory,
            conns,
            spec(args),
            Some(follower.pid()),
        )?;
        say(
            args,
            format!(
                "verify {conns} conns run {}: leader {} | follower {} | ratio {:.3}",
                repeat + 1,
                describe_run(&l),
                describe_run(&f),
                f.requests_per_s / l.requests_per_s.max(1e-9)
            ),
        );
        ratios.push(f.requests_per_s / l.requests_per_s.max(1e-9));
        on_leader.push(l.requests_per_s);
        on_follower.push(f.requests_per_s);
    }
    let ratio = figure(
        format!("bearer verification requests/s, follower / leader, {conns} connections"),
        "ratio",
        ratios,
        Value::Null,
    );
    check(
        report,
        "bearer verification on a follower / on the leader (same rate within noise)".into(),
        ratio.value,
        ">= 0.90",
        ratio.value >= 0.90,
    );
    report.results.extend([
        figure(
            "verify requests/s on the leader",
            "req/s",
            on_leader,
            Value::Null,
        ),
        figure(
            "verify requests/s on a follower",
            "req/s",
            on_follower,
            Value::Null,
        ),
        ratio,
    ]);
    Ok(())
}

/// How many revocations the lag is measured over.
const REVOCATIONS: usize = 1000;

/// One revoker: `count` times, rotate its family for a fresh access token, wait until the
/// follower accepts it, revoke it at the leader, and time until the follower refuses it.
fn revoke_many(
    lt: &Target,
    ft: &Target,
    mut refresh: String,
    count: usize,
) -> Result<Vec<f64>, Failure> {
    let rt = setup_runtime()?;
    let mut lags_us = Vec::with_capacity(count);
    for _ in 0..count {
        let req = form(
            &lt.host,
            "/oauth/token",
            format!("grant_type=refresh_token&refresh_token={refresh}"),
            None,
        );
        let (status, headers, body) = rt.block_on(client::once(lt, req)).map_err(Failure)?;
        if status != StatusCode::OK {
            return Err(Failure(format!("refresh: {status}")));
        }
        let v: Value = serde_json::from_slice(&body).map_err(Failure::new)?;
        let access = v["access_token"].as_str().unwrap_or_default().to_owned();
        refresh = v["refresh_token"].as_str().unwrap_or_default().to_owned();
        let seen = headers
            .get("tessera-sequence")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_owned();
        let bearer = HeaderValue::from_str(&format!("Bearer {access}")).map_err(Failure::new)?;
        let me = |extra: Option<&str>| {
            let mut h = vec![(header::AUTHORIZATION, bearer.clone())];
            if let Some(s) = extra
                && let Ok(v) = HeaderValue::from_str(s)
            {
                h.push((http::HeaderName::from_static("tessera-min-sequence"), v));
            }
            client::get(&ft.host, "/v1/me", &h)
        };
        let (status, _, _) = rt
            .block_on(client::once(ft, me(Some(&seen))))
            .map_err(Failure)?;
        if status != StatusCode::OK {
            return Err(Failure(format!(
                "the follower refused a live token: {status}"
            )));
        }
        let req = form(&lt.host, "/oauth/revoke", format!("token={access}"), None);
        let (status, _, _) = rt.block_on(client::once(lt, req)).map_err(Failure)?;
        if status != StatusCode::OK {
            return Err(Failure(format!("revoke: {status}")));
        }
        let acked = monotonic();
        let mut refused = false;
        for _ in 0..20_000 {
            let (status, _, _) = rt.block_on(client::once(ft, me(None))).map_err(Failure)?;
            if status == StatusCode::UNAUTHORIZED {
                refused = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        if !refused {
            return Err(Failure::new(
                "a revoked token was still accepted by the follower after 10 s+",
            ));
        }
        lags_us.push(acked.elapsed().as_secs_f64() * 1e6);
    }
    Ok(lags_us)
}

fn form(host: &str, path: &str, body: String, extra: Option<(&str, &str)>) -> Request<Full<Bytes>> {
    let mut req = client::post_json(host, path, body);
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Some((name, value)) = extra
        && let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        )
    {
        req.headers_mut().insert(n, v);
    }
    req
}

/// How many clients revoke at once (each its own token family), so that the
/// revocations share the leader's group commit as real clients' would.
const REVOKERS: usize = 16;

/// For each of [`REVOCATIONS`] access tokens: once the follower accepts it, the leader
/// revokes it; the lag is from the leader's acknowledgement to the first refusal by the
/// follower (polled every 0.5 ms, a fresh connection per poll, so the figure is an upper
/// bound by about one poll). [`REVOKERS`] clients do this side by side.
fn revocation_lag(
    args: &BenchArgs,
    report: &mut Report,
    leader: &ChildServer,
    follower: &ChildServer,
) -> Result<(), Failure> {
    let rt = setup_runtime()?;
    let fams = rt.block_on(http_workloads::prepare_families(&leader.target, REVOKERS))?;
    let (lt, ft) = (leader.target.clone(), follower.target.clone());
    let per = REVOCATIONS.div_ceil(REVOKERS);
    let results: Vec<Result<Vec<f64>, Failure>> = std::thread::scope(|scope| {
        let workers: Vec<_> = fams
            .iter()
            .map(|f| {
                let (lt, ft, refresh) = (lt.clone(), ft.clone(), f.refresh.clone());
                scope.spawn(move || revoke_many(&lt, &ft, refresh, per))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Failure::new("a revoker panicked")))
            })
            .collect()
    });
    let mut lags_us: Vec<f64> = Vec::with_capacity(REVOCATIONS);
    for r in results {
        lags_us.extend(r?);
    }
    lags_us.sort_by(f64::total_cmp);
    let n = lags_us.len();
    let at = |q: f64| lags_us[((n as f64 - 1.0) * q).round() as usize] / 1e3;
    let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
    say(
        args,
        format!(
            "revocation lag to a follower over {n} revocations ({REVOKERS} clients): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
        ),
    );
    report.results.push(figure(
        format!("revocation lag to a follower, p99 over {n} revocations"),
        "ms",
        vec![p99],
        json!({"p50_ms": p50, "p99_ms": p99, "max_ms": max}),
    ));
    Ok(())
}
