//! The operator workloads: what reading a running server's log costs the server.
//!
//! - `follow`: `tessera replay --follow --json` on the data folder of a server under the
//!   refresh load; the lag between an event's `recorded_at` and the moment the follower
//!   printed it, over the run and at its end (a lag that grows is a follower falling behind).
//! - `backup`: a log of `--events` events behind a running server; the refresh load's p99
//!   alone, then while `tessera backup` copies the data folder; then `tessera verify` on the
//!   copy.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::server::{self, ChildServer};
use super::stats::Latency;
use super::{BenchArgs, Check, Report, data_parent, describe_run, figure, measured, say, spec};
use crate::Failure;

fn wall_ms() -> u64 {
    #[allow(
        clippy::disallowed_methods,
        reason = "the lag is measured against the wall clock the server stamps events with"
    )]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One printed event: when it was printed (ms since the run started) and its lag (ms).
type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

/// Starts `tessera replay --follow --json --data DATA` and reads its lines on a thread.
fn follower(bin: &Path, data: &Path, seen: Seen, start_ms: u64) -> Result<Child, Failure> {
    let mut child = Command::new(bin)
        .args(["replay", "--follow", "--json", "--data"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure(format!("cannot start the follower: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Failure::new("the follower has no stdout"))?;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let now = wall_ms();
            let at = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["recorded_at_ms"].as_u64());
            if let (Some(at), Ok(mut seen)) = (at, seen.lock()) {
                seen.push((now.saturating_sub(start_ms), now.saturating_sub(at)));
            }
        }
    });
    Ok(child)
}

fn lag_of(samples: &[(u64, u64)]) -> Latency {
    let mut lags: Vec<u32> = samples
        .iter()
        .map(|(_, lag)| u32::try_from(*lag).unwrap_or(u32::MAX))
        .collect();
    Latency::of(&mut lags)
}

pub fn follow(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let conns = args.connections.first().copied().unwrap_or(64);
    let bin = server::tessera_binary(args.tessera.as_deref())?;
    let rt = super::setup_runtime()?;
    let server = ChildServer::tessera(&bin, &data_parent(args), args.config.as_deref())?;
    let data = server
        .data()
        .ok_or_else(|| Failure::new("the server has no data folder"))?
        .to_owned();
    let target = server.target.clone();
    let factory = rt.block_on(super::http_workloads::prepare_refresh(&target, conns))?;
    let seen: Seen = Arc::default();
    let start = wall_ms();
    let mut child = follower(&bin, &data, seen.clone(), start)?;
    let (r, cpu) = measured(&target, &factory, conns, spec(args), Some(server.pid()))?;
    let appended = rt
        .block_on(server::metrics(&target))?
        .get("tessera_events_appended_total")
        .copied()
        .unwrap_or(0.0) as usize;
    // The follower catches up (or does not) within a few seconds of the load stopping.
    for _ in 0..100 {
        if seen.lock().map(|s| s.len()).unwrap_or(0) >= appended {
            break;
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "a load tool waiting for a child process to print, not the core"
        )]
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let samples = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let run_ms = ((args.warmup + args.duration) * 1000.0) as u64;
    let in_run: Vec<(u64, u64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t <= run_ms)
        .collect();
    let tail: Vec<(u64, u64)> = in_run
        .iter()
        .copied()
        .filter(|(t, _)| *t + 5_000 > run_ms)
        .collect();
    let head: Vec<(u64, u64)> = in_run
        .iter()
        .copied()
        .filter(|(t, _)| *t <= 5_000)
        .collect();
    let (all, first, last) = (lag_of(&in_run), lag_of(&head), lag_of(&tail));
    say(
        args,
        format!(
            "follow under refresh {conns} conns: {}  server cpu {}; follower printed {} of {} events; lag p50 {} ms p99 {} ms max {} ms; first 5 s p99 {} ms, last 5 s p99 {} ms",
            describe_run(&r),
            cpu["server_cpu_s_per_s"],
            samples.len(),
            appended,
            all.p50_us,
            all.p99_us,
            all.max_us,
            first.p99_us,
            last.p99_us
        ),
    );
    report.results.push(figure(
        format!("replay --follow lag p99 (ms) under refresh, {conns} connections"),
        "ms",
        vec![all.p99_us as f64],
        json!({"lag_ms": all, "first_5s_ms": first, "last_5s_ms": last, "printed": samples.len(), "appended": appended, "refresh": r.requests_per_s, "cpu": cpu}),
    ));
    let kept_up = samples.len() >= appended && last.p99_us <= first.p99_us.max(50) * 2;
    report.checks.push(Check {
        name: "replay --follow keeps up: every event printed, last-5-s lag p99 within 2x the first 5 s (or 100 ms)".into(),
        value: last.p99_us as f64,
        target: "no growing lag".into(),
        met: kept_up,
    });
    Ok(())
}

pub fn backup(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let conns = args.connections.first().copied().unwrap_or(64);
    let bin = server::tessera_binary(args.tessera.as_deref())?;
    let parent = data_parent(args);
    let source = tempfile::Builder::new()
        .prefix("tessera-bench-backup-")
        .tempdir_in(&parent)
        .map_err(Failure::new)?;
    let data = source.path().join("data");
    let events = super::storage::build_churn_log(&data, args.events, &|n| {
        if n % 200_000 < 50_000 {
            say(args, format!("building the log: {n} events"));
        }
    })?;
    let rt = super::setup_runtime()?;
    let server = ChildServer::tessera_on(&bin, &data, args.config.as_deref())?;
    let target = server.target.clone();
    let factory = rt.block_on(super::http_workloads::prepare_refresh(&target, conns))?;
    let (alone, _) = measured(&target, &factory, conns, spec(args), Some(server.pid()))?;
    let dest = source.path().join("copy");
    let started = tessera_http::system::monotonic();
    let mut copier = Command::new(&bin)
        .args(["backup"])
        .arg(&dest)
        .arg("--data")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure(format!("cannot start tessera backup: {e}")))?;
    let (during, _) = measured(&target, &factory, conns, spec(args), Some(server.pid()))?;
    let overlapped = copier.try_wait().map_err(Failure::new)?.is_none();
    let status = copier.wait().map_err(Failure::new)?;
    let backup_s = started.elapsed().as_secs_f64();
    drop(server);
    let verified = Command::new(&bin)
        .args(["verify", "--data"])
        .arg(&dest)
        .stdout(Stdio::null())
        .status()
        .map_err(Failure::new)?
        .success();
    let ratio = during.latency.p99_us as f64 / alone.latency.p99_us.max(1) as f64;
    say(
        args,
        format!(
            "backup of {events} events: {backup_s:.1} s, exit {status}, copy verifies: {verified}, overlapped the whole run: {overlapped}; refresh p99 alone {} ms, during {} ms, ratio {ratio:.2}\n  alone:  {}\n  during: {}",
            alone.latency.p99_us as f64 / 1000.0,
            during.latency.p99_us as f64 / 1000.0,
            describe_run(&alone),
            describe_run(&during)
        ),
    );
    report.results.push(figure(
        format!("refresh p99 during a backup / without, {conns} connections, {events} events"),
        "ratio",
        vec![ratio],
        json!({"backup_s": backup_s, "events": events, "alone": alone, "during": during, "overlapped": overlapped, "verified": verified}),
    ));
    report.checks.push(Check {
        name: "refresh p99 during an online backup / without (copy verified)".into(),
        value: ratio,
        target: "<= 2".into(),
        met: ratio <= 2.0 && status.success() && verified,
    });
    Ok(())
}
