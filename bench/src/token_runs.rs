//! The token workloads and their ceilings: `tokens` (in-process Ed25519 and
//! issuance ceilings), `verify`, `refresh`, `mixed` and `flood` (HTTP, against a child
//! `tessera serve`), each next to its ceiling measured in the same run.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::client::{self, Group, RunResult, Target};
use super::http_workloads::{self, ConnFactory, MIX_PER_10K};
use super::server::{self, ChildServer};
use super::{
    BenchArgs, Check, Report, ceilings, cores, data_parent, describe_run, figure, measured, say,
    setup_runtime, spec, start_tessera, tokens,
};
use crate::Failure;

pub(crate) fn server_for(args: &BenchArgs) -> Result<(Option<ChildServer>, Target), Failure> {
    match &args.url {
        Some(url) => Ok((None, Target::from_url(url)?)),
        None => {
            let s = start_tessera(args)?;
            let t = s.target.clone();
            Ok((Some(s), t))
        }
    }
}

pub(crate) fn server_cpu(cpu: &Value) -> Option<f64> {
    cpu["server_cpu_s_per_s"].as_f64().filter(|c| *c > 0.0)
}

pub(crate) fn check(report: &mut Report, name: String, value: f64, target: &str, met: bool) {
    report.checks.push(Check {
        name,
        value,
        target: target.to_owned(),
        met,
    });
}

fn latency_json(r: &RunResult) -> Value {
    json!({
        "requests_per_s": r.requests_per_s,
        "latency_us": r.latency,
        "errors": r.errors,
        "by_kind": r.by_kind,
    })
}

// ---------------------------------------------------------------------------------------
// tokens: the in-process ceilings

pub fn token_ceilings(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let world = tokens::world(64)?;
    let n = cores();
    let secs = args.ceiling_secs;
    let mut rows: Vec<(String, Vec<tokens::Rate>)> = vec![
        (
            "Ed25519 signs/s (Signer::sign), 1 thread".to_owned(),
            vec![],
        ),
        (
            format!("Ed25519 signs/s (Signer::sign), {n} threads"),
            vec![],
        ),
        (
            "Ed25519 verifies/s (verify_access_token), 1 thread".to_owned(),
            vec![],
        ),
        (
            format!("Ed25519 verifies/s (verify_access_token), {n} threads"),
            vec![],
        ),
        (
            format!(
                "in-process verification (verify_access_token + check_not_revoked), {n} threads"
            ),
            vec![],
        ),
        ("issuance (claims + sign), 1 thread".to_owned(), vec![]),
    ];
    for repeat in 0..args.repeats {
        let runs = [
            world.sign_rate(1, secs),
            world.sign_rate(n, secs),
            world.verify_rate(1, secs),
            world.verify_rate(n, secs),
            world.verify_and_check_rate(n, secs),
            world.issue_rate(1, secs),
        ];
        for (row, r) in rows.iter_mut().zip(runs) {
            say(
                args,
                format!(
                    "run {}: {:<80} {:>10.0}/s  {:>10.0} per CPU s",
                    repeat + 1,
                    row.0,
                    r.per_s,
                    r.per_cpu_s
                ),
            );
            row.1.push(r);
        }
    }
    world.engine.shutdown();
    for (name, runs) in rows {
        let wall = figure(
            name.clone(),
            "1/s",
            runs.iter().map(|r| r.per_s).collect(),
            json!(runs),
        );
        let per_cpu = figure(
            format!("{name}, per CPU second"),
            "1/s",
            runs.iter().map(|r| r.per_cpu_s).collect(),
            Value::Null,
        );
        say(
            args,
            format!(
                "ceiling {name:<80} median {:>10.0}/s, {:>10.0} per CPU s",
                wall.value, per_cpu.value
            ),
        );
        if name.starts_with("issuance") {
            check(
                report,
                "issuance in process, access tokens per CPU second (per core)".into(),
                per_cpu.value,
                ">= 25000",
                per_cpu.value >= 25_000.0,
            );
        }
        report.ceilings.push(wall);
        report.ceilings.push(per_cpu);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// verify

pub fn verify(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let conns_list = if args.connections.is_empty() {
        vec![64]
    } else {
        args.connections.clone()
    };
    let rt = setup_runtime()?;
    let (server, target) = server_for(args)?;
    let pid = server.as_ref().map(ChildServer::pid);
    let world = tokens::world(64)?;
    let n = cores();
    for conns in conns_list {
        let factory = rt.block_on(http_workloads::prepare_verify(&target, conns))?;
        let (mut rps, mut inproc, mut wall, mut per_cpu, mut lat, mut runs) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for repeat in 0..args.repeats {
            // The ceiling first, while the server is idle.
            let c = world.verify_and_check_rate(n, args.ceiling_secs);
            let (r, cpu) = measured(&target, &factory, conns, spec(args), pid)?;
            let ratio = r.requests_per_s / c.per_s;
            let cpu_ratio = server_cpu(&cpu).map(|s| r.requests_per_s / s / c.per_cpu_s);
            say(
                args,
                format!(
                    "verify {conns:>3} conns run {}: {}  cpu s/s: server {} client {}, pressure {}  | in-process {:.0}/s ({:.0} per CPU s), ratio {ratio:.3}, per CPU s {}",
                    repeat + 1,
                    describe_run(&r),
                    cpu["server_cpu_s_per_s"],
                    cpu["client_cpu_s_per_s"],
                    cpu["cpu_pressure_some"],
                    c.per_s,
                    c.per_cpu_s,
                    cpu_ratio.map_or("-".into(), |x| format!("{x:.3}")),
                ),
            );
            rps.push(r.requests_per_s);
            inproc.push(c.per_s);
            wall.push(ratio);
            if let Some(x) = cpu_ratio {
                per_cpu.push(x);
            }
            lat.push(r.latency);
            runs.push(json!({"run": latency_json(&r), "cpu": cpu, "in_process": c}));
        }
        let lat = super::stats::Latency::median(&lat);
        let row = figure(
            format!("verify (bearer GET /v1/me) requests/s, {conns} connections"),
            "req/s",
            rps,
            json!({"connections": conns, "latency_median_of_runs": lat, "runs": runs}),
        );
        let c = figure(
            format!("in-process verification/s, {n} threads (next to {conns} connections)"),
            "1/s",
            inproc,
            Value::Null,
        );
        let ratio = figure(
            format!("verify over HTTP / in-process, {conns} connections"),
            "ratio",
            wall,
            Value::Null,
        );
        let cpu_ratio = figure(
            format!("verify over HTTP / in-process, per CPU second, {conns} connections"),
            "ratio",
            per_cpu,
            Value::Null,
        );
        say(
            args,
            format!(
                "verify {conns:>3} conns MEDIAN {:.0} req/s  p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms; in-process {:.0}/s; ratio {:.3}, per CPU s {:.3}",
                row.value,
                lat.p50_us as f64 / 1e3,
                lat.p90_us as f64 / 1e3,
                lat.p99_us as f64 / 1e3,
                lat.max_us as f64 / 1e3,
                c.value,
                ratio.value,
                cpu_ratio.value
            ),
        );
        check(
            report,
            format!("verify over HTTP / in-process verification, {conns} connections"),
            ratio.value,
            ">= 0.70",
            ratio.value >= 0.70,
        );
        check(
            report,
            format!("verify / in-process, per CPU second, {conns} connections"),
            cpu_ratio.value,
            ">= 0.70",
            cpu_ratio.value >= 0.70,
        );
        report.results.extend([row, ratio, cpu_ratio]);
        report.ceilings.push(c);
        // Optionally, the same connections in an open loop at fixed rates: the latency
        // floor the mixed workload's verify requests are compared with.
        for &rate in &args.rates {
            let mut results = client::run_groups(
                &target,
                vec![Group {
                    conns: (0..conns).map(|i| factory(i)).collect(),
                    rate_per_s: Some(rate),
                }],
                spec(args),
            )?;
            let r = results.pop().ok_or_else(|| Failure::new("no result"))?;
            say(
                args,
                format!(
                    "verify {conns:>3} conns open loop at {rate:.0}/s: {}",
                    describe_run(&r)
                ),
            );
            report.results.push(figure(
                format!("verify p99, open loop at {rate:.0}/s, {conns} connections"),
                "us",
                vec![r.latency.p99_us as f64],
                latency_json(&r),
            ));
        }
    }
    world.engine.shutdown();
    drop(server);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// refresh

pub fn refresh(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let conns_list = if args.connections.is_empty() {
        vec![1, 16, 64, 256]
    } else {
        args.connections.clone()
    };
    let rt = setup_runtime()?;
    let (server, target) = server_for(args)?;
    let pid = server.as_ref().map(ChildServer::pid);
    let parent = data_parent(args);
    let mut medians: Vec<(usize, Vec<f64>)> = Vec::new();
    for &conns in &conns_list {
        let factory = rt.block_on(http_workloads::prepare_refresh(&target, conns))?;
        let (mut rps, mut fsync, mut ratios, mut lat, mut runs) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut fsync_in_place, mut ratios_in_place) = (vec![], vec![]);
        for repeat in 0..args.repeats {
            let f = ceilings::fdatasync_per_s(&parent, args.ceiling_secs)?;
            let fi = ceilings::fdatasync_in_place_per_s(&parent, args.ceiling_secs)?;
            let before = rt.block_on(server::metrics(&target))?;
            let (r, cpu) = measured(&target, &factory, conns, spec(args), pid)?;
            let after = rt.block_on(server::metrics(&target))?;
            let d = server::delta(&before, &after);
            say(
                args,
                format!(
                    "refresh {conns:>3} conns run {}: {}  cpu s/s: server {} client {}, pressure {}  | fdatasync {f:.0}/s, ratio {:.3}; in place {fi:.0}/s, ratio {:.3}; server: {:.0} syncs, {:.1} events/batch",
                    repeat + 1,
                    describe_run(&r),
                    cpu["server_cpu_s_per_s"],
                    cpu["client_cpu_s_per_s"],
                    cpu["cpu_pressure_some"],
                    r.requests_per_s / f,
                    r.requests_per_s / fi,
                    d.durable_syncs,
                    d.mean_batch_events
                ),
            );
            rps.push(r.requests_per_s);
            fsync.push(f);
            ratios.push(r.requests_per_s / f);
            fsync_in_place.push(fi);
            ratios_in_place.push(r.requests_per_s / fi);
            lat.push(r.latency);
            runs.push(
                json!({"run": latency_json(&r), "cpu": cpu, "server": d, "fdatasync_per_s": f, "fdatasync_in_place_per_s": fi}),
            );
        }
        let lat = super::stats::Latency::median(&lat);
        let row = figure(
            format!("refresh (durable rotations) requests/s, {conns} connections"),
            "req/s",
            rps.clone(),
            json!({"connections": conns, "latency_median_of_runs": lat, "runs": runs}),
        );
        let f = figure(
            format!("fdatasync/s, 100-byte appends (next to {conns} connections)"),
            "1/s",
            fsync,
            Value::Null,
        );
        let ratio = figure(
            format!("refresh / fdatasync, {conns} connections"),
            "ratio",
            ratios,
            Value::Null,
        );
        let fi = figure(
            format!("fdatasync/s in place, 100-byte overwrites (next to {conns} connections)"),
            "1/s",
            fsync_in_place,
            Value::Null,
        );
        let ratio_in_place = figure(
            format!("refresh / fdatasync in place, {conns} connections"),
            "ratio",
            ratios_in_place,
            Value::Null,
        );
        say(
            args,
            format!(
                "refresh {conns:>3} conns MEDIAN {:.0} rotations/s  p50 {:.2} p99 {:.2} ms; fdatasync {:.0}/s, ratio {:.3}; in place {:.0}/s, ratio {:.3}",
                row.value,
                lat.p50_us as f64 / 1e3,
                lat.p99_us as f64 / 1e3,
                f.value,
                ratio.value,
                fi.value,
                ratio_in_place.value
            ),
        );
        if conns == 1 {
            check(
                report,
                "refresh over HTTP, 1 connection / fdatasync".into(),
                ratio.value,
                ">= 0.80",
                ratio.value >= 0.80,
            );
            check(
                report,
                "refresh over HTTP, 1 connection / fdatasync in place".into(),
                ratio_in_place.value,
                ">= 0.80",
                ratio_in_place.value >= 0.80,
            );
        }
        medians.push((conns, rps));
        report.results.extend([row, ratio, ratio_in_place]);
        report.ceilings.extend([f, fi]);
    }
    if let Some((_, one)) = medians.iter().find(|m| m.0 == 1) {
        for (conns, many) in medians.iter().filter(|m| m.0 > 1) {
            let fig = figure(
                format!("refresh: {conns} connections / 1 connection"),
                "ratio",
                one.iter().zip(many).map(|(o, m)| m / o).collect(),
                Value::Null,
            );
            say(args, format!("{} median {:.2}", fig.name, fig.value));
            if *conns == 64 {
                check(
                    report,
                    fig.name.clone(),
                    fig.value,
                    ">= 5",
                    fig.value >= 5.0,
                );
            }
            report.results.push(fig);
        }
    }
    drop(server);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// mixed

/// One open-loop window of `conns` connections at `rate`, with the CPU each process used
/// and the machine's CPU pressure over it.
fn open_loop(
    target: &Target,
    factory: &ConnFactory,
    conns: usize,
    rate: f64,
    args: &BenchArgs,
    pid: Option<u32>,
) -> Result<(RunResult, Value), Failure> {
    let c0 = pid.and_then(super::stats::cpu_seconds);
    let me0 = super::stats::cpu_seconds(std::process::id());
    let p0 = super::stats::cpu_pressure_us();
    let w0 = tessera_http::system::monotonic();
    let mut results = client::run_groups(
        target,
        vec![Group {
            conns: (0..conns).map(|i| factory(i)).collect(),
            rate_per_s: Some(rate),
        }],
        spec(args),
    )?;
    let wall = w0.elapsed().as_secs_f64();
    let r = results.pop().ok_or_else(|| Failure::new("no result"))?;
    let per_s = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => json!(((b - a) / wall * 100.0).round() / 100.0),
        _ => Value::Null,
    };
    let pressure = match (p0, super::stats::cpu_pressure_us()) {
        (Some(a), Some(b)) => json!(((b - a) as f64 / 1e6 / wall * 100.0).round() / 100.0),
        _ => Value::Null,
    };
    let cpu = json!({
        "server_cpu_s_per_s": per_s(c0, pid.and_then(super::stats::cpu_seconds)),
        "client_cpu_s_per_s": per_s(me0, super::stats::cpu_seconds(std::process::id())),
        "cpu_pressure_some": pressure,
    });
    Ok((r, cpu))
}

/// Highest p99 a step may have to pass.
const MIXED_P99_US: u64 = 20_000;

pub fn mixed(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let conns = args.connections.first().copied().unwrap_or(64);
    let rates = if args.rates.is_empty() {
        vec![4_000.0, 6_000.0, 8_000.0, 10_000.0, 12_000.0, 14_000.0]
    } else {
        args.rates.clone()
    };
    let rt = setup_runtime()?;
    let (server, target) = server_for(args)?;
    let pid = server.as_ref().map(ChildServer::pid);
    // Logouts (0.75 %) outrun logins (0.25 %): pre-make the difference, plus a margin.
    let window = args.warmup + args.duration;
    let offered: f64 = rates.iter().map(|r| r * window).sum::<f64>() * args.repeats as f64;
    let spare = ((offered * 0.006) as usize).clamp(16, 3_000);
    say(
        args,
        format!("mixed: preparing {conns} families, {conns} sessions and {spare} spare sessions"),
    );
    let (factory, shared): (ConnFactory, _) =
        rt.block_on(http_workloads::prepare_mixed(&target, conns, spare))?;
    let control = rt.block_on(http_workloads::prepare_verify(&target, conns))?;
    let mut best: Option<f64> = None;
    let mut steps = Vec::new();
    for &rate in &rates {
        let mut p99s = vec![];
        let mut achieved = vec![];
        let mut err_frac = vec![];
        let mut control_p99s = vec![];
        let mut runs = vec![];
        for repeat in 0..args.repeats {
            // Control: verify alone, same connections and rate, just before.
            let (v, vcpu) = open_loop(&target, &control, conns, rate, args, pid)?;
            let before = rt.block_on(server::metrics(&target))?;
            let (r, cpu) = open_loop(&target, &factory, conns, rate, args, pid)?;
            let after = rt.block_on(server::metrics(&target))?;
            let d = server::delta(&before, &after);
            let errors: u64 = r.errors.values().sum();
            let ef = errors as f64 / (r.requests + errors).max(1) as f64;
            say(
                args,
                format!(
                    "mixed {conns} conns offered {rate:>7.0}/s run {}: {}  cpu s/s: server {} client {}, pressure {}; server: {:.0} syncs, {:.1} events/batch\n  control (verify only, same rate): {}  pressure {}",
                    repeat + 1,
                    describe_run(&r),
                    cpu["server_cpu_s_per_s"],
                    cpu["client_cpu_s_per_s"],
                    cpu["cpu_pressure_some"],
                    d.durable_syncs,
                    d.mean_batch_events,
                    describe_run(&v),
                    vcpu["cpu_pressure_some"],
                ),
            );
            for (k, (count, l)) in &r.by_kind {
                say(
                    args,
                    format!(
                        "    {k:<8} {count:>7} requests  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
                        l.p50_us as f64 / 1e3,
                        l.p90_us as f64 / 1e3,
                        l.p99_us as f64 / 1e3,
                        l.max_us as f64 / 1e3
                    ),
                );
            }
            p99s.push(r.latency.p99_us as f64);
            achieved.push(r.requests_per_s);
            err_frac.push(ef);
            control_p99s.push(v.latency.p99_us as f64);
            runs.push(json!({"run": latency_json(&r), "cpu": cpu, "server": d, "control_verify_only": latency_json(&v), "control_cpu": vcpu}));
        }
        let p99 = super::stats::median(&mut p99s.clone());
        let got = super::stats::median(&mut achieved.clone());
        let ef = super::stats::median(&mut err_frac.clone());
        let control_p99 = super::stats::median(&mut control_p99s.clone());
        let pass = p99 < MIXED_P99_US as f64 && got >= 0.95 * rate && ef < 0.01;
        say(
            args,
            format!(
                "mixed offered {rate:.0}/s: achieved {got:.0}/s, p99 {:.2} ms (verify-only control {:.2} ms), errors {:.2} %: {}",
                p99 / 1e3,
                control_p99 / 1e3,
                ef * 100.0,
                if pass { "PASS" } else { "FAIL" }
            ),
        );
        steps.push(json!({
            "offered_per_s": rate,
            "achieved_per_s_median": got,
            "p99_us_median": p99,
            "control_verify_only_p99_us_median": control_p99,
            "error_fraction_median": ef,
            "pass": pass,
            "runs": runs,
        }));
        if pass {
            best = Some(rate);
        } else {
            break;
        }
    }
    let sent: Vec<Value> = MIX_PER_10K
        .iter()
        .enumerate()
        .map(|(i, (k, w))| {
            json!({"kind": format!("{k:?}"), "weight_per_10k": w, "sent": shared.sent[i].load(Ordering::Relaxed)})
        })
        .collect();
    let spare_empty = shared.spare_empty.load(Ordering::Relaxed);
    say(
        args,
        format!(
            "mix sent: {sent:?}; logouts without a spare session: {spare_empty}; spare left: {}",
            shared.spare_count()
        ),
    );
    let best = best.unwrap_or(0.0);
    report.results.push(figure(
        format!("mixed: highest offered rate with p99 < 20 ms (open loop, {conns} connections)"),
        "req/s",
        vec![best],
        json!({"steps": steps, "sent": sent, "logouts_without_spare": spare_empty}),
    ));
    check(
        report,
        format!("mixed: highest rate with p99 < 20 ms, {conns} connections"),
        best,
        ">= 10000",
        best >= 10_000.0,
    );
    drop(server);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// flood

/// Connections the wrong-password logins are spread over: more than the server's argon2
/// queue admits (16 per worker, 32 on 2 cores), so that the flood can outrun the pool and
/// get its 503s instead of being paced by its own connection count.
const FLOOD_CONNECTIONS: usize = 128;

pub fn flood(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let conns = args.connections.first().copied().unwrap_or(64);
    let rt = setup_runtime()?;
    let (server, target) = server_for(args)?;
    let pid = server.as_ref().map(ChildServer::pid);
    let verify = rt.block_on(http_workloads::prepare_verify(&target, conns))?;
    let logins = rt.block_on(http_workloads::prepare_login_token(&target, 8))?;
    let wrong = rt.block_on(http_workloads::prepare_flood(&target))?;
    let (mut base, mut flooded, mut ratios, mut runs) = (vec![], vec![], vec![], vec![]);
    for repeat in 0..args.repeats {
        // 1. The login rate: token-mode logins, 8 connections, closed loop.
        let (l, _) = measured(&target, &logins, 8, spec(args), pid)?;
        let flood_rate = 10.0 * l.requests_per_s;
        // 2. Verify alone.
        let (v, vcpu) = measured(&target, &verify, conns, spec(args), pid)?;
        // 3. Verify with the flood alongside.
        let mut both = client::run_groups(
            &target,
            vec![
                Group {
                    conns: (0..conns).map(|i| verify(i)).collect(),
                    rate_per_s: None,
                },
                Group {
                    conns: (0..FLOOD_CONNECTIONS).map(|i| wrong(i)).collect(),
                    rate_per_s: Some(flood_rate),
                },
            ],
            spec(args),
        )?;
        let f = both.pop().ok_or_else(|| Failure::new("no flood result"))?;
        let vf = both.pop().ok_or_else(|| Failure::new("no verify result"))?;
        let ratio = vf.latency.p99_us as f64 / v.latency.p99_us.max(1) as f64;
        say(
            args,
            format!(
                "flood run {}: login rate {:.1}/s, flood offered {flood_rate:.0}/s\n  verify alone:      {}  cpu s/s server {}\n  verify with flood: {}\n  flood:             {}\n  verify p99 with / without flood: {ratio:.2}",
                repeat + 1,
                l.requests_per_s,
                describe_run(&v),
                vcpu["server_cpu_s_per_s"],
                describe_run(&vf),
                describe_run(&f),
            ),
        );
        base.push(v.latency.p99_us as f64);
        flooded.push(vf.latency.p99_us as f64);
        ratios.push(ratio);
        runs.push(json!({
            "login_per_s": l.requests_per_s,
            "flood_offered_per_s": flood_rate,
            "verify_alone": latency_json(&v),
            "verify_with_flood": latency_json(&vf),
            "flood": latency_json(&f),
        }));
    }
    let ratio = figure(
        format!("flood: verify p99 with / without wrong-password flood, {conns} connections"),
        "ratio",
        ratios,
        json!({"runs": runs}),
    );
    let b = figure("verify p99 without flood", "us", base, Value::Null);
    let w = figure("verify p99 with flood", "us", flooded, Value::Null);
    say(
        args,
        format!(
            "flood MEDIAN verify p99 {:.2} ms alone, {:.2} ms with flood, ratio {:.2}",
            b.value / 1e3,
            w.value / 1e3,
            ratio.value
        ),
    );
    check(
        report,
        format!("flood: verify p99 with / without flood, {conns} connections"),
        ratio.value,
        "<= 1.5",
        ratio.value <= 1.5,
    );
    report.results.extend([b, w, ratio]);
    drop(server);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// forged

/// Forged bearer tokens offered over each measured window (warm-up included).
const FORGED_TOKENS: f64 = 10_000.0;
/// Connections the forged tokens are spread over.
const FORGED_CONNECTIONS: usize = 16;

/// A counter of /metrics, 0 when absent.
fn counter(c: &crate::server::Counters, name: &str) -> f64 {
    c.get(name).copied().unwrap_or(0.0)
}

pub fn forged(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    const SEEN: &str = "tessera_security_events_total{event=\"token_forged\"}";
    const SUPPRESSED: &str = "tessera_security_log_suppressed_total{event=\"token_forged\"}";
    let conns = args.connections.first().copied().unwrap_or(64);
    let rt = setup_runtime()?;
    let (server, target) = server_for(args)?;
    let pid = server.as_ref().map(ChildServer::pid);
    let verify = rt.block_on(http_workloads::prepare_verify(&target, conns))?;
    let forged = rt.block_on(http_workloads::prepare_forged(&target))?;
    let rate = FORGED_TOKENS / (args.warmup + args.duration).max(0.001);
    let (mut ratios, mut written, mut runs) = (vec![], vec![], vec![]);
    for repeat in 0..args.repeats {
        let (v, _) = measured(&target, &verify, conns, spec(args), pid)?;
        let before = rt.block_on(crate::server::metrics(&target))?;
        let mut both = client::run_groups(
            &target,
            vec![
                Group {
                    conns: (0..conns).map(|i| verify(i)).collect(),
                    rate_per_s: None,
                },
                Group {
                    conns: (0..FORGED_CONNECTIONS).map(|i| forged(i)).collect(),
                    rate_per_s: Some(rate),
                },
            ],
            spec(args),
        )?;
        let after = rt.block_on(crate::server::metrics(&target))?;
        let f = both
            .pop()
            .ok_or_else(|| Failure::new("no forged-token result"))?;
        let vf = both.pop().ok_or_else(|| Failure::new("no verify result"))?;
        let seen = counter(&after, SEEN) - counter(&before, SEEN);
        let suppressed = counter(&after, SUPPRESSED) - counter(&before, SUPPRESSED);
        // Each record written, plus at most one "suppressed" summary per window.
        let lines = seen - suppressed;
        let ratio = vf.latency.p99_us as f64 / v.latency.p99_us.max(1) as f64;
        say(
            args,
            format!(
                "forged run {}: {seen:.0} forged tokens refused ({rate:.0}/s offered), {lines:.0} security records written, {suppressed:.0} suppressed\n  verify alone:        {}\n  verify with forgery: {}\n  forged:              {}\n  verify p99 with / without: {ratio:.2}",
                repeat + 1,
                describe_run(&v),
                describe_run(&vf),
                describe_run(&f),
            ),
        );
        ratios.push(ratio);
        written.push(lines);
        runs.push(json!({
            "forged_refused": seen,
            "records_written": lines,
            "records_suppressed": suppressed,
            "verify_alone": latency_json(&v),
            "verify_with_forged": latency_json(&vf),
            "forged": latency_json(&f),
        }));
    }
    let ratio = figure(
        format!("forged: verify p99 with / without 10,000 forged tokens, {conns} connections"),
        "ratio",
        ratios,
        json!({"runs": runs}),
    );
    let lines = figure(
        "forged: security records written per 10,000 forged tokens",
        "records",
        written,
        Value::Null,
    );
    say(
        args,
        format!(
            "forged MEDIAN verify p99 ratio {:.2}, {:.0} records written",
            ratio.value, lines.value
        ),
    );
    check(
        report,
        format!("forged: verify p99 with / without forged tokens, {conns} connections"),
        ratio.value,
        "<= 1.5",
        ratio.value <= 1.5,
    );
    report.results.extend([ratio, lines]);
    drop(server);
    Ok(())
}
