//! `tessera-bench`: the load tool. It measures Tessera's throughput, latency and memory, each
//! figure next to the machine's matching ceiling measured in the same run, so that results
//! are ratios rather than absolute times on a shared, noisy machine.
//!
//! # What this crate owns
//! - The load generator ([`client`]): keep-alive HTTP/1.1 connections on a hyper client,
//!   closed loop or open loop at a fixed rate, latency percentiles without coordinated
//!   omission.
//! - The HTTP workloads ([`http_workloads`], [`token_runs`]) against a child `tessera serve`
//!   ([`server`]) on a fresh temporary data folder, and the bare hyper "hello" server that
//!   bounds what any HTTP route can do.
//! - The in-process workloads, which need no server: token signing, verification and
//!   issuance rates ([`tokens`]), group commit, replay and sessions memory through the engine
//!   and the sled store ([`storage`]), and the ceilings themselves ([`ceilings`]: argon2id
//!   hashes/s, fdatasync/s).
//! - The report: medians of repeated runs, the targets each checked against a figure of the
//!   same run, text or one JSON object.
//!
//! # What this crate must not do
//! Be part of the product: the `tessera` binary carries no load generator, and nothing here
//! may be needed to run the server. Decide, store or serve anything itself: the HTTP
//! workloads go through a real `tessera serve` process, and the in-process ones through the
//! same core, engine and store the server uses. Target anything but a loopback address.
//!
//! # How to drive it
//! Build both binaries, then name a workload:
//!
//! ```text
//! cargo build --release -p tessera -p tessera-bench
//! target/release/tessera-bench verify --connections 64
//! bench/bench.sh                    every workload, results in docs/bench-results/
//! ```
//!
//! The workloads:
//!
//! ```text
//! tessera-bench login|me|register   HTTP, against a child `tessera serve` (or --url)
//! tessera-bench login-token         token-mode logins vs the argon2 ceiling
//! tessera-bench verify|refresh      bearer GET /v1/me; durable refresh rotations
//! tessera-bench mixed|flood         a realistic request mix (open loop); wrong-password flood
//! tessera-bench forged              verify beside 10,000 forged bearer tokens; log lines written
//! tessera-bench tokens              in-process Ed25519 sign/verify and issuance ceilings
//! tessera-bench hello               the bare hyper ceiling alone
//! tessera-bench ceilings            argon2id/s, fdatasync/s, hello requests/s
//! tessera-bench group-commit        durable appends, 1 vs 64 writers, through the engine
//! tessera-bench replay              replay::rebuild speed on a log of --events events
//! tessera-bench sessions            bytes per live session, restart time
//! tessera-bench import              MD5 users imported (wrapped in argon2id) vs the argon2 ceiling
//! tessera-bench legacy-timing       refused logins per credential scheme, interleaved
//! tessera-bench id-token            external sign-in callback CPU vs RS256; JWKS hit rate
//! tessera-bench signin-callback     an external sign-in callback end to end, in process
//! ```
//!
//! Processes: the load generator is this process (`--client-threads` tokio workers, 1 by
//! default); the server is a separate child process, the `tessera` binary found next to
//! this one (or given by `--tessera`), running `tessera serve` on a fresh temporary data
//! folder with one tokio worker per core and `hash_workers` = cores. Both share the
//! machine's cores under the OS scheduler; the CPU seconds each used per second of the run
//! are reported, so the split is visible. `TESSERA_*` configuration variables (and the file
//! `--config` names) apply to the child server and to the ceilings measured here alike.
//! docs/benchmarks.md has the method and the results.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "the load generator, not the server: it reads no attacker bytes, and its index \
              arithmetic is over pools it filled itself; a wrong index is a bug in the tool"
)]

mod apikey_runs;
mod ceilings;
mod client;
mod cluster;
mod http_workloads;
mod migration;
mod oauth_runs;
mod operators;
mod server;
mod settings;
mod signin_runs;
mod stats;
mod storage;
mod token_runs;
mod tokens;
mod upstream_runs;
mod webauthn_runs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use serde_json::{Value, json};
use tessera_core::policy::Argon2Params;

use client::{Spec, Target};
use http_workloads::ConnFactory;
use server::ChildServer;
use stats::median;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Session-mode password logins over HTTP (default 2,8 connections) vs the argon2 ceiling.
    Login,
    /// Token-mode password logins (default 2,8,64 connections) vs the argon2 ceiling.
    LoginToken,
    /// GET /v1/me with session cookies (default 64 connections) vs the bare hyper ceiling.
    Me,
    /// GET /v1/me with bearer tokens (default 64 connections) vs in-process verification.
    Verify,
    /// Durable refresh rotations, one family per connection (default 1,16,64,256) vs
    /// fdatasync/s.
    Refresh,
    /// A realistic mix (91 % bearer verifies, 5 % refreshes, 3 % session reads, 0.75 %
    /// logouts, 0.25 % logins), open loop at stepped --rates (default 64 connections): the
    /// highest offered rate with p99 under 20 ms.
    Mixed,
    /// Verify (64 connections) alone, then alongside wrong-password logins at 10x the
    /// measured login rate: verify's p99 with / without.
    Flood,
    /// Verify (64 connections) alone, then alongside 10,000 forged bearer tokens spread over
    /// the window: verify's p99 with / without, and how many security-log lines they wrote.
    Forged,
    /// In-process ceilings: Ed25519 signs and verifies/s, verification with the blocklist
    /// check, issuance per core.
    Tokens,
    /// POST /v1/accounts (default 8 connections) vs the argon2 ceiling.
    Register,
    /// `tessera replay --follow` on a server under the refresh load (default 64 connections):
    /// the lag between an event's recording and its printing, and whether it grows.
    Follow,
    /// `tessera backup` of a --events log while the refresh load runs (default 64
    /// connections): its p99 with the backup / without, and the copy verified.
    Backup,
    /// The bare hyper "hello" route alone (default 64 connections).
    Hello,
    /// argon2id hashes/s on all cores, fdatasync/s, hello requests/s.
    Ceilings,
    /// Durable appends through the engine, 1 vs 64 writers (default), vs fdatasync/s.
    GroupCommit,
    /// replay::rebuild on a log of --events events (default 1,000,000).
    Replay,
    /// Bytes per live session in the views, and restart time, at --sessions (100,000).
    Sessions,
    /// GET /v1/api-keys/whoami by X-API-Key vs GET /v1/me by bearer token (default 64
    /// connections), measured in turn in each repeat: the ratio must be at least 0.80.
    ApiKey,
    /// Whoami by X-API-Key at full speed for --duration seconds (use 60): the ApiKeyUsed
    /// events appended, at most one per key per usage interval.
    ApiKeyUsage,
    /// POST /oauth/token client_credentials (default 64 connections) vs the in-process
    /// issuance rate on every core, against a server in this process.
    ClientCredentials,
    /// Authorization code exchanges with PKCE (default 64 connections) vs durable refresh
    /// rotations at the same connection count, against a server in this process.
    CodeExchange,
    /// `tessera import users` of --users MD5 users (10,000), each wrapped in argon2id and
    /// recorded durably, vs argon2id hashes/s on all cores.
    Import,
    /// Refused logins of an unknown, a wrapped-MD5, a bcrypt (--bcrypt-cost) and a current
    /// user, interleaved: the median of each (they must not tell the schemes apart).
    LegacyTiming,
    /// The PostgreSQL backend and nodes on it, in one run on a throwaway cluster (or
    /// --postgres): group commit 1 vs 64 writers, refresh over HTTP against sled (64
    /// connections), bearer verification on a follower against the leader, and the
    /// revocation lag to a follower over 1,000 revocations.
    Postgres,
    /// The CPU of a "sign in with …" callback on our side (ID-token validation with a warm
    /// JWKS cache, user-info mapping) vs raw RS256 verification, and the JWKS cache hit rate
    /// over --callbacks validations with a key rotation halfway.
    IdToken,
    /// An external sign-in callback end to end, in process, against a second Tessera as the
    /// OAuth 2 upstream: latency and process CPU per callback.
    SigninCallback,
    /// WebAuthn: the passkey assertion check in process vs ECDSA P-256 and Ed25519
    /// verification (one thread each), and passkey logins over HTTP (default 64
    /// connections), against a server in this process.
    Webauthn,
    /// The hello server itself (started by the other workloads as a child process).
    #[value(hide = true)]
    HelloServer,
}

#[derive(Parser, Debug)]
#[command(
    name = "tessera-bench",
    version,
    about = "Measure Tessera's throughput, latency and memory against this machine's own ceilings"
)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    workload: Workload,
    /// Connections (HTTP) or concurrent writers (group-commit); a comma-separated list is
    /// measured in turn.
    #[arg(long, value_delimiter = ',')]
    connections: Vec<usize>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Unmeasured seconds before each run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Seconds per ceiling measurement (argon2, fdatasync).
    #[arg(long, default_value_t = 2.0)]
    ceiling_secs: f64,
    /// Target a running server instead of starting one (loopback only), e.g.
    /// http://127.0.0.1:8080.
    #[arg(long)]
    url: Option<String>,
    /// Tokio worker threads in the load generator.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Where temporary data folders and the fdatasync probe go (default: the system's
    /// temporary folder). Use the filesystem the server's data lives on.
    #[arg(long)]
    data_parent: Option<PathBuf>,
    /// For `postgres`: an existing database to use (its tessera tables are dropped first)
    /// instead of a throwaway cluster.
    #[arg(long)]
    postgres: Option<String>,
    /// For `postgres`: only the several-nodes parts (verification on a follower, the
    /// revocation lag, the takeover), not group commit and refresh against sled.
    #[arg(long)]
    nodes_only: bool,
    /// Events in the log for `replay`.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Offered rates (requests/s over all connections) for `mixed`, tried in order until
    /// one fails.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Live sessions for `sessions`.
    #[arg(long, default_value_t = 100_000)]
    sessions: u64,
    /// Users for `import`.
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Threads wrapping MD5s for `import` (default: as `tessera import users`, every core).
    #[arg(long)]
    workers: Option<usize>,
    /// The imported bcrypt hash's cost for `legacy-timing`.
    #[arg(long, default_value_t = 10)]
    bcrypt_cost: u32,
    /// Refused logins per kind of account for `legacy-timing`.
    #[arg(long, default_value_t = 40)]
    rounds: usize,
    /// ID-token validations in the JWKS hit-rate run of `id-token` (one per 50 ms of
    /// virtual time).
    #[arg(long, default_value_t = 20_000)]
    callbacks: u64,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// The `tessera` binary to start as the server (default: the one next to this
    /// executable). Build it with `cargo build --release -p tessera`.
    #[arg(long, value_name = "PATH")]
    tessera: Option<PathBuf>,
    /// A TOML configuration file for the server, as `tessera --config` reads it; its argon2
    /// parameters also set the argon2 ceiling measured here.
    #[arg(long, env = "TESSERA_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// For hello-server: where to listen.
    #[arg(long, hide = true, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// One reported figure: the median of its runs.
#[derive(Clone, Debug, Serialize)]
struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    runs: Vec<f64>,
    #[serde(skip_serializing_if = "Value::is_null")]
    detail: Value,
}

/// A target, checked against a figure of this run.
#[derive(Clone, Debug, Serialize)]
struct Check {
    name: String,
    value: f64,
    target: String,
    met: bool,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    workload: String,
    command: String,
    machine: Value,
    ceilings: Vec<Figure>,
    results: Vec<Figure>,
    checks: Vec<Check>,
}

fn figure(
    name: impl Into<String>,
    unit: &'static str,
    mut runs: Vec<f64>,
    detail: Value,
) -> Figure {
    let original = runs.clone();
    Figure {
        name: name.into(),
        value: median(&mut runs),
        unit,
        runs: original,
        detail,
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let psi = std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
        .unwrap_or_default();
    json!({
        "nproc": cores(),
        "loadavg_1min_at_start": load,
        "cpu_pressure_at_start": psi,
        "cpu_model": cpu,
        "mem_total_gib": (mem_kib as f64 / 1_048_576.0 * 10.0).round() / 10.0,
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn say(args: &BenchArgs, line: impl std::fmt::Display) {
    if args.json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

fn main() -> ExitCode {
    // jsonwebtoken needs its crypto provider chosen before the first sign or verify.
    tessera_core::token::install_crypto_provider();
    match run(BenchArgs::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tessera-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// An error the operator can act on; printed as `tessera-bench: <message>`, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl Failure {
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self(message.to_string())
    }
}

fn run(args: BenchArgs) -> Result<ExitCode, Failure> {
    if args.workload == Workload::HelloServer {
        server::hello_server(args.listen)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0 && args.repeats >= 1 && args.ceiling_secs > 0.0)
    {
        return Err(Failure::new(
            "--duration and --ceiling-secs must be positive, --warmup not negative, --repeats at least 1",
        ));
    }
    // Find the server binary and read the configuration before measuring anything, so that
    // a missing binary or a bad setting fails at once.
    let needs_tessera = args.url.is_none()
        && matches!(
            args.workload,
            Workload::Login
                | Workload::LoginToken
                | Workload::Me
                | Workload::Register
                | Workload::Verify
                | Workload::Refresh
                | Workload::Mixed
                | Workload::Flood
                | Workload::Forged
                | Workload::ApiKey
                | Workload::ApiKeyUsage
        );
    if needs_tessera {
        server::tessera_binary(args.tessera.as_deref())?;
    }
    let argon2 = settings::argon2(args.config.as_deref(), std::env::vars())?;
    let mut report = Report {
        workload: format!("{:?}", args.workload).to_lowercase(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(),
        ..Report::default()
    };
    say(&args, format!("# {}  ({})", report.command, report.machine));
    match args.workload {
        Workload::Login
        | Workload::LoginToken
        | Workload::Me
        | Workload::Register
        | Workload::Hello => {
            http(&argon2, &args, &mut report)?;
        }
        Workload::Verify => token_runs::verify(&args, &mut report)?,
        Workload::ApiKey => apikey_runs::api_key(&args, &mut report)?,
        Workload::ApiKeyUsage => apikey_runs::api_key_usage(&args, &mut report)?,
        Workload::Refresh => token_runs::refresh(&args, &mut report)?,
        Workload::Mixed => token_runs::mixed(&args, &mut report)?,
        Workload::Flood => token_runs::flood(&args, &mut report)?,
        Workload::Forged => token_runs::forged(&args, &mut report)?,
        Workload::Tokens => token_runs::token_ceilings(&args, &mut report)?,
        Workload::Ceilings => all_ceilings(&argon2, &args, &mut report)?,
        Workload::GroupCommit => group_commit(&args, &mut report)?,
        Workload::Replay => replay(&args, &mut report)?,
        Workload::Sessions => sessions(&args, &mut report)?,
        Workload::Import => import(&argon2, &args, &mut report)?,
        Workload::LegacyTiming => legacy_timing(&argon2, &args, &mut report)?,
        Workload::Follow => operators::follow(&args, &mut report)?,
        Workload::Backup => operators::backup(&args, &mut report)?,
        Workload::ClientCredentials => oauth_runs::client_credentials(&args, &mut report)?,
        Workload::CodeExchange => oauth_runs::code_exchange(&args, &mut report)?,
        Workload::IdToken => upstream_runs::id_token(&args, &mut report)?,
        Workload::SigninCallback => signin_runs::callback(&args, &mut report)?,
        Workload::Postgres => cluster::postgres(&args, &mut report)?,
        Workload::Webauthn => webauthn_runs::webauthn(&args, &mut report)?,
        Workload::HelloServer => {}
    }
    for c in &report.checks {
        say(
            &args,
            format!(
                "target {:<58} {:>12.3}  {:<10} {}",
                c.name,
                c.value,
                c.target,
                if c.met { "MET" } else { "FALLS SHORT" }
            ),
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(Failure::new)?
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A child `tessera serve` on a fresh data folder under `--data-parent`.
fn start_tessera(args: &BenchArgs) -> Result<ChildServer, Failure> {
    ChildServer::tessera(
        &server::tessera_binary(args.tessera.as_deref())?,
        &data_parent(args),
        args.config.as_deref(),
    )
}

fn data_parent(args: &BenchArgs) -> PathBuf {
    args.data_parent.clone().unwrap_or_else(std::env::temp_dir)
}

fn spec(args: &BenchArgs) -> Spec {
    Spec {
        warmup: Duration::from_secs_f64(args.warmup),
        measure: Duration::from_secs_f64(args.duration),
        threads: args.client_threads,
        request_timeout: Duration::from_secs(30),
        requests_per_conn_max: 50_000_000,
    }
}

fn setup_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::new)
}

/// One closed-loop run over fresh connections, with the CPU each process used.
fn measured(
    target: &Target,
    factory: &ConnFactory,
    conns: usize,
    spec: Spec,
    server_pid: Option<u32>,
) -> Result<(client::RunResult, Value), Failure> {
    let me = std::process::id();
    let cpu = |pid: Option<u32>| pid.and_then(stats::cpu_seconds);
    let (s0, c0, p0, w0) = (
        cpu(server_pid),
        cpu(Some(me)),
        stats::cpu_pressure_us(),
        tessera_http::system::monotonic(),
    );
    let result = client::run(target, (0..conns).map(|i| factory(i)).collect(), spec)?;
    let wall = w0.elapsed().as_secs_f64();
    let per_s = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => json!(((b - a) / wall * 100.0).round() / 100.0),
        _ => Value::Null,
    };
    let pressure = match (p0, stats::cpu_pressure_us()) {
        (Some(a), Some(b)) => json!(((b - a) as f64 / 1e6 / wall * 100.0).round() / 100.0),
        _ => Value::Null,
    };
    let cpu = json!({
        "server_cpu_s_per_s": per_s(s0, cpu(server_pid)),
        "client_cpu_s_per_s": per_s(c0, cpu(Some(me))),
        "cpu_pressure_some": pressure,
    });
    Ok((result, cpu))
}

fn describe_run(r: &client::RunResult) -> String {
    let l = &r.latency;
    let errors = if r.errors.is_empty() {
        "no errors".to_owned()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{:>9.1} req/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  {errors}",
        r.requests_per_s,
        l.p50_us as f64 / 1e3,
        l.p90_us as f64 / 1e3,
        l.p99_us as f64 / 1e3,
        l.max_us as f64 / 1e3,
    )
}

fn http(argon2: &Argon2Params, args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let kind = args.workload;
    let conns_list = if args.connections.is_empty() {
        match kind {
            Workload::Login => vec![2, 8],
            Workload::LoginToken => vec![2, 8, 64],
            Workload::Register => vec![8],
            _ => vec![64],
        }
    } else {
        args.connections.clone()
    };
    let rt = setup_runtime()?;
    let spec = spec(args);
    let (server, target) = match (&args.url, kind) {
        (_, Workload::Hello) => {
            let s = ChildServer::hello()?;
            let t = s.target.clone();
            (Some(s), t)
        }
        (Some(url), _) => (None, Target::from_url(url)?),
        (None, _) => {
            let s = start_tessera(args)?;
            let t = s.target.clone();
            (Some(s), t)
        }
    };
    let server_pid = server.as_ref().map(ChildServer::pid);
    let hello = if kind == Workload::Me {
        Some(ChildServer::hello()?)
    } else {
        None
    };
    let ceiling_name = match kind {
        Workload::Login | Workload::LoginToken | Workload::Register => Some(format!(
            "argon2id hashes/s, {} threads, m={} t={} p={}",
            cores(),
            argon2.memory_kib,
            argon2.iterations,
            argon2.parallelism
        )),
        Workload::Me => Some("hello requests/s".to_owned()),
        _ => None,
    };
    for &conns in &conns_list {
        let factory: ConnFactory = rt.block_on(async {
            match kind {
                Workload::Login => http_workloads::prepare_login(&target, conns).await,
                Workload::LoginToken => http_workloads::prepare_login_token(&target, conns).await,
                Workload::Me => http_workloads::prepare_me(&target, conns).await,
                Workload::Register => Ok(http_workloads::prepare_register()),
                _ => Ok(http_workloads::prepare_hello()),
            }
        })?;
        let mut rps = Vec::new();
        let mut ceilings = Vec::new();
        let mut ratios = Vec::new();
        let mut cpu_ratios = Vec::new();
        let mut latencies = Vec::new();
        let mut errors = std::collections::BTreeMap::<String, u64>::new();
        let mut server_deltas = Vec::new();
        let mut cpus = Vec::new();
        for repeat in 0..args.repeats {
            // The ceiling per wall second, and per CPU second of the process doing the work.
            let (ceiling, ceiling_per_cpu) = match kind {
                Workload::Login | Workload::LoginToken | Workload::Register => {
                    let a = ceilings::argon2_per_s(argon2, cores(), args.ceiling_secs)?;
                    (Some(a.per_s), Some(a.per_cpu_s))
                }
                Workload::Me => {
                    let h = hello
                        .as_ref()
                        .ok_or_else(|| Failure::new("no hello server"))?;
                    let (r, cpu) = measured(
                        &h.target,
                        &http_workloads::prepare_hello(),
                        conns,
                        spec,
                        Some(h.pid()),
                    )?;
                    let per_cpu = cpu["server_cpu_s_per_s"]
                        .as_f64()
                        .filter(|c| *c > 0.0)
                        .map(|c| r.requests_per_s / c);
                    (Some(r.requests_per_s), per_cpu)
                }
                _ => (None, None),
            };
            let scrape = kind != Workload::Hello;
            let before = if scrape {
                Some(rt.block_on(server::metrics(&target))?)
            } else {
                None
            };
            let (r, cpu) = measured(&target, &factory, conns, spec, server_pid)?;
            if let Some(before) = before {
                let after = rt.block_on(server::metrics(&target))?;
                server_deltas.push(server::delta(&before, &after));
            }
            let mut line = format!(
                "{:<9} {conns:>3} conns  run {}: {}",
                report.workload,
                repeat + 1,
                describe_run(&r)
            );
            line.push_str(&format!(
                "  cpu s/s: server {} client {}, cpu pressure {}",
                cpu["server_cpu_s_per_s"], cpu["client_cpu_s_per_s"], cpu["cpu_pressure_some"]
            ));
            let server_cpu = cpu["server_cpu_s_per_s"].as_f64().filter(|c| *c > 0.0);
            if let (Some(c), Some(s)) = (ceiling_per_cpu, server_cpu) {
                let ratio = r.requests_per_s / s / c;
                line.push_str(&format!("  | per CPU s: ratio {ratio:.3}"));
                cpu_ratios.push(ratio);
            }
            if let Some(c) = ceiling {
                line.push_str(&format!(
                    "  | ceiling {c:.1}/s, ratio {:.3}",
                    r.requests_per_s / c
                ));
                ceilings.push(c);
                ratios.push(r.requests_per_s / c);
            }
            say(args, line);
            rps.push(r.requests_per_s);
            latencies.push(r.latency);
            for (k, v) in r.errors {
                *errors.entry(k).or_default() += v;
            }
            cpus.push(cpu);
        }
        let last_delta = server_deltas.last().copied();
        let (events, batches, syncs, commands) =
            server_deltas.iter().fold((0.0, 0.0, 0.0, 0.0), |a, d| {
                (
                    a.0 + d.events_appended,
                    a.1 + d.batches,
                    a.2 + d.durable_syncs,
                    a.3 + d.commands,
                )
            });
        let server_json = last_delta.map(|_| {
            json!({
                "events_appended": events,
                "durable_syncs": syncs,
                "commands": commands,
                "mean_batch_events": if batches > 0.0 { events / batches } else { 0.0 },
                "hash_rejected": server_deltas.iter().map(|d| d.hash_rejected).sum::<f64>(),
                "writer_overloaded": server_deltas.iter().map(|d| d.writer_overloaded).sum::<f64>(),
            })
        });
        let lat = stats::Latency::median(&latencies);
        let detail = json!({
            "connections": conns,
            "latency_median_of_runs": lat,
            "errors_all_runs": errors,
            "server_all_runs": server_json,
            "cpu": cpus,
        });
        let row = figure(
            format!("{} requests/s, {conns} connections", report.workload),
            "req/s",
            rps,
            detail,
        );
        say(
            args,
            format!(
                "{:<9} {conns:>3} conns  MEDIAN {:.1} req/s  p50 {:.2} ms p90 {:.2} ms p99 {:.2} ms max {:.2} ms; server: {}",
                report.workload,
                row.value,
                lat.p50_us as f64 / 1e3,
                lat.p90_us as f64 / 1e3,
                lat.p99_us as f64 / 1e3,
                lat.max_us as f64 / 1e3,
                server_json.clone().unwrap_or(Value::Null)
            ),
        );
        report.results.push(row);
        if let Some(name) = &ceiling_name {
            let c = figure(
                format!("{name} (next to {conns} connections)"),
                "1/s",
                ceilings,
                Value::Null,
            );
            let ratio = figure(
                format!("{} / {name}, {conns} connections", report.workload),
                "ratio",
                ratios,
                Value::Null,
            );
            say(
                args,
                format!(
                    "{:<9} {conns:>3} conns  ceiling median {:.1}/s, ratio median {:.3}",
                    report.workload, c.value, ratio.value
                ),
            );
            let cpu_ratio = figure(
                format!(
                    "{} / {name}, per CPU second of the server, {conns} connections",
                    report.workload
                ),
                "ratio",
                cpu_ratios,
                Value::Null,
            );
            say(
                args,
                format!(
                    "{:<9} {conns:>3} conns  ratio per CPU second median {:.3}",
                    report.workload, cpu_ratio.value
                ),
            );
            if matches!(kind, Workload::Login | Workload::LoginToken) {
                report.checks.push(Check {
                    name: format!(
                        "{} over HTTP / argon2 ceiling, {conns} connections",
                        report.workload
                    ),
                    value: ratio.value,
                    target: ">= 0.90".into(),
                    met: ratio.value >= 0.90,
                });
                report.checks.push(Check {
                    name: format!(
                        "{} / argon2, per CPU second, {conns} connections",
                        report.workload
                    ),
                    value: cpu_ratio.value,
                    target: ">= 0.90".into(),
                    met: cpu_ratio.value >= 0.90,
                });
            }
            report.ceilings.push(c);
            report.results.push(ratio);
            report.results.push(cpu_ratio);
        }
    }
    drop(hello);
    drop(server);
    Ok(())
}

fn all_ceilings(
    argon2: &Argon2Params,
    args: &BenchArgs,
    report: &mut Report,
) -> Result<(), Failure> {
    let mut a = Vec::new();
    let mut f = Vec::new();
    for _ in 0..args.repeats {
        a.push(ceilings::argon2_per_s(argon2, cores(), args.ceiling_secs)?.per_s);
        f.push(ceilings::fdatasync_per_s(
            &data_parent(args),
            args.ceiling_secs,
        )?);
        say(
            args,
            format!(
                "argon2id {:.1}/s  fdatasync {:.1}/s",
                a[a.len() - 1],
                f[f.len() - 1]
            ),
        );
    }
    report.ceilings.push(figure(
        format!(
            "argon2id hashes/s, {} threads, m={} t={} p={}",
            cores(),
            argon2.memory_kib,
            argon2.iterations,
            argon2.parallelism
        ),
        "1/s",
        a,
        Value::Null,
    ));
    report.ceilings.push(figure(
        "fdatasync/s, 100-byte appends",
        "1/s",
        f,
        Value::Null,
    ));
    let conns = args.connections.first().copied().unwrap_or(64);
    let hello = ChildServer::hello()?;
    let mut h = Vec::new();
    for _ in 0..args.repeats {
        let (r, _) = measured(
            &hello.target,
            &http_workloads::prepare_hello(),
            conns,
            spec(args),
            Some(hello.pid()),
        )?;
        say(args, format!("hello {conns} conns: {}", describe_run(&r)));
        h.push(r.requests_per_s);
    }
    report.ceilings.push(figure(
        format!("hello requests/s, {conns} connections"),
        "req/s",
        h,
        Value::Null,
    ));
    for c in &report.ceilings {
        say(
            args,
            format!("ceiling {:<50} median {:.1}", c.name, c.value),
        );
    }
    Ok(())
}

fn group_commit(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let parent = data_parent(args);
    let writers_list = if args.connections.is_empty() {
        vec![1, 64]
    } else {
        args.connections.clone()
    };
    let (_dir, engine, hash) = storage::group_commit_engine(&parent)?;
    let warmup = Duration::from_secs_f64(args.warmup);
    let measure = Duration::from_secs_f64(args.duration);
    let mut fsync = Vec::new();
    let mut per_writers: Vec<Vec<storage::GroupCommitRun>> = vec![Vec::new(); writers_list.len()];
    for repeat in 0..args.repeats {
        fsync.push(ceilings::fdatasync_per_s(&parent, args.ceiling_secs)?);
        say(
            args,
            format!("run {}: fdatasync {:.1}/s", repeat + 1, fsync[repeat]),
        );
        for (i, &w) in writers_list.iter().enumerate() {
            let r = storage::group_commit(&engine, &hash, w, warmup, measure);
            say(
                args,
                format!(
                    "run {}: {w:>3} writers {:>9.1} durable commits/s, {:.1} syncs/s, {:.1} commands per sync",
                    repeat + 1,
                    r.commits_per_s,
                    r.durable_syncs_per_s,
                    r.mean_batch_commands
                ),
            );
            per_writers[i].push(r);
        }
    }
    engine.shutdown();
    let f = figure(
        "fdatasync/s, 100-byte appends",
        "1/s",
        fsync.clone(),
        Value::Null,
    );
    say(args, format!("ceiling fdatasync median {:.1}/s", f.value));
    report.ceilings.push(f);
    let mut medians = Vec::new();
    for (i, &w) in writers_list.iter().enumerate() {
        let runs = &per_writers[i];
        let fig = figure(
            format!("durable commits/s, {w} writers"),
            "1/s",
            runs.iter().map(|r| r.commits_per_s).collect(),
            json!(runs),
        );
        let ratio = figure(
            format!("durable commits/s, {w} writers / fdatasync/s"),
            "ratio",
            runs.iter()
                .zip(&fsync)
                .map(|(r, f)| r.commits_per_s / f)
                .collect(),
            Value::Null,
        );
        say(
            args,
            format!(
                "{w:>3} writers MEDIAN {:.1} commits/s, {:.3}x fdatasync",
                fig.value, ratio.value
            ),
        );
        medians.push((w, runs.iter().map(|r| r.commits_per_s).collect::<Vec<_>>()));
        report.results.push(fig);
        report.results.push(ratio);
    }
    if let (Some(lo), Some(hi)) = (
        medians.iter().min_by_key(|m| m.0),
        medians.iter().max_by_key(|m| m.0),
    ) && lo.0 != hi.0
    {
        let runs: Vec<f64> = lo.1.iter().zip(&hi.1).map(|(l, h)| h / l).collect();
        let fig = figure(
            format!("group commit: {} writers / {} writer(s)", hi.0, lo.0),
            "ratio",
            runs,
            Value::Null,
        );
        report.checks.push(Check {
            name: fig.name.clone(),
            value: fig.value,
            target: ">= 5".into(),
            met: fig.value >= 5.0,
        });
        report.results.push(fig);
    }
    Ok(())
}

fn replay(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let parent = data_parent(args);
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-replay-")
        .tempdir_in(&parent)
        .map_err(Failure::new)?;
    let path = dir.path().join("data");
    let started = tessera_http::system::monotonic();
    let quiet = args.json;
    let events = storage::build_churn_log(&path, args.events, &|head| {
        if !quiet {
            eprintln!("building the log: {head} events");
        }
    })?;
    say(
        args,
        format!(
            "built a log of {events} events in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    );
    let mut runs = Vec::new();
    for repeat in 0..args.repeats {
        let r = storage::rebuild(&path)?;
        say(
            args,
            format!(
                "run {}: rebuilt {} events in {:.2} s = {:.0} events/s; {:.2} CPU s = {:.0} events per CPU s ({} accounts, {} live sessions, views match: {})",
                repeat + 1,
                r.events,
                r.seconds,
                r.events_per_s,
                r.cpu_seconds,
                r.events_per_cpu_s,
                r.accounts,
                r.live_sessions,
                r.views_match
            ),
        );
        if !r.views_match {
            return Err(Failure::new(
                "the rebuilt views differ from the stored ones",
            ));
        }
        runs.push(r);
    }
    let fig = figure(
        format!("replay::rebuild events/s, one thread, {events} events"),
        "1/s",
        runs.iter().map(|r| r.events_per_s).collect(),
        json!(runs),
    );
    let per_cpu = figure(
        format!("replay::rebuild events per CPU second, {events} events"),
        "1/s",
        runs.iter().map(|r| r.events_per_cpu_s).collect(),
        Value::Null,
    );
    say(
        args,
        format!(
            "MEDIAN {:.0} events/s, {:.0} events per CPU s",
            fig.value, per_cpu.value
        ),
    );
    report.checks.push(Check {
        name: format!("replay --rebuild events per CPU second on {events} events"),
        value: per_cpu.value,
        target: ">= 500000".into(),
        met: per_cpu.value >= 500_000.0 && events >= 1_000_000,
    });
    report.results.push(per_cpu);
    report.checks.push(Check {
        name: format!("replay --rebuild events/s on {events} events"),
        value: fig.value,
        target: ">= 500000".into(),
        met: fig.value >= 500_000.0 && events >= 1_000_000,
    });
    report.results.push(fig);
    Ok(())
}

fn sessions(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let n = args.sessions;
    // Memory first, while the process is otherwise empty.
    let mut mem = Vec::new();
    for repeat in 0..args.repeats {
        let m = storage::memory(n as usize, (n / 100).max(1) as usize)?;
        say(
            args,
            format!(
                "run {}: {} live sessions added {} bytes resident = {:.0} bytes/session",
                repeat + 1,
                m.live_sessions,
                m.rss_delta_bytes,
                m.bytes_per_session
            ),
        );
        mem.push(m);
    }
    let fig = figure(
        format!("bytes per live session in the views, {n} sessions (RSS delta)"),
        "B",
        mem.iter().map(|m| m.bytes_per_session).collect(),
        json!(mem),
    );
    report.checks.push(Check {
        name: format!("bytes per live session at {n} sessions"),
        value: fig.value,
        target: "<= 1024".into(),
        met: fig.value <= 1024.0,
    });
    report.results.push(fig);
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-sessions-")
        .tempdir_in(data_parent(args))
        .map_err(Failure::new)?;
    let path = dir.path().join("data");
    let started = tessera_http::system::monotonic();
    let events = storage::build_session_log(&path, n)?;
    say(
        args,
        format!(
            "built a store with {n} live sessions ({events} events) in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    );
    let mut runs = Vec::new();
    for repeat in 0..args.repeats {
        let r = storage::restart(&path)?;
        say(
            args,
            format!(
                "run {}: restart (open + load views) with {} live sessions: {:.3} s, RSS +{:.1} MiB",
                repeat + 1,
                r.live_sessions,
                r.seconds,
                r.rss_delta_bytes as f64 / 1_048_576.0
            ),
        );
        runs.push(r);
    }
    let fig = figure(
        format!(
            "restart seconds (SledStore::open + Engine::start), {n} live sessions, {events} events"
        ),
        "s",
        runs.iter().map(|r| r.seconds).collect(),
        json!(runs),
    );
    if n >= 1_000_000 {
        report.checks.push(Check {
            name: format!("restart with {n} live sessions"),
            value: fig.value,
            target: "< 10 s".into(),
            met: fig.value < 10.0,
        });
    }
    report.results.push(fig);
    Ok(())
}

fn import(argon2: &Argon2Params, args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let parent = data_parent(args);
    let threads = cores();
    let workers = args
        .workers
        .unwrap_or_else(tessera_http::admin::migration::import_workers);
    let mut ceiling = Vec::new();
    let mut ceiling_cpu = Vec::new();
    let mut runs = Vec::new();
    // The import takes minutes on a shared machine whose load moves meanwhile: it runs in
    // ten chunks, each after its own ceiling window, and both sides are summed over the same
    // stretch of time.
    const CHUNKS: u64 = 10;
    for repeat in 0..args.repeats {
        let bench = migration::ImportBench::new(&parent, argon2)?;
        let (mut hash_s, mut hash_cpu_s, mut users, mut seconds, mut cpu) = (0.0, 0.0, 0, 0.0, 0.0);
        for k in 0..CHUNKS {
            let n = args.users / CHUNKS + u64::from(k < args.users % CHUNKS);
            let from = k * (args.users / CHUNKS) + k.min(args.users % CHUNKS);
            let rate = ceilings::argon2_per_s(argon2, threads, args.ceiling_secs)?;
            hash_s += 1.0 / rate.per_s;
            hash_cpu_s += 1.0 / rate.per_cpu_s;
            let run = bench.chunk(from, n, workers)?;
            users += run.users;
            seconds += run.seconds;
            cpu += run.users as f64 / run.imports_per_cpu_s;
        }
        bench.shutdown();
        // Harmonic means of the ceiling windows: the time one hash took, averaged.
        let rate = CHUNKS as f64 / hash_s;
        let rate_cpu = CHUNKS as f64 / hash_cpu_s;
        let run = migration::ImportRun {
            users,
            seconds,
            imports_per_s: users as f64 / seconds,
            imports_per_cpu_s: users as f64 / cpu,
            workers,
        };
        say(
            args,
            format!(
                "run {}: argon2id {:.1}/s ({:.1} per CPU s) on {threads} threads; imported {} MD5 users in {:.2} s = {:.1}/s ({:.1} per CPU s, {} workers), {CHUNKS} chunks interleaved with the ceiling",
                repeat + 1,
                rate,
                rate_cpu,
                run.users,
                run.seconds,
                run.imports_per_s,
                run.imports_per_cpu_s,
                run.workers
            ),
        );
        ceiling.push(rate);
        ceiling_cpu.push(rate_cpu);
        runs.push(run);
    }
    let c = figure(
        format!("argon2id hashes/s, {threads} threads"),
        "1/s",
        ceiling.clone(),
        json!(argon2),
    );
    say(args, format!("ceiling argon2id median {:.1}/s", c.value));
    report.ceilings.push(c);
    let f = figure(
        format!(
            "MD5 users imported/s ({} users, wrapped, durable)",
            args.users
        ),
        "1/s",
        runs.iter().map(|r| r.imports_per_s).collect(),
        json!(runs),
    );
    let ratio = figure(
        "imports/s / argon2id hashes/s",
        "ratio",
        runs.iter()
            .zip(&ceiling)
            .map(|(r, c)| r.imports_per_s / c)
            .collect(),
        Value::Null,
    );
    let ratio_cpu = figure(
        "imports per CPU s / argon2id hashes per CPU s",
        "ratio",
        runs.iter()
            .zip(&ceiling_cpu)
            .map(|(r, c)| r.imports_per_cpu_s / c)
            .collect(),
        Value::Null,
    );
    say(
        args,
        format!(
            "import median {:.1}/s = {:.3} of the argon2 ceiling; per CPU second {:.3}",
            f.value, ratio.value, ratio_cpu.value
        ),
    );
    report.checks.push(Check {
        name: "MD5 import with argon2id wrapping / argon2 ceiling".into(),
        value: ratio.value,
        target: ">= 0.90".into(),
        met: ratio.value >= 0.90,
    });
    report.checks.push(Check {
        name: "the same, per CPU second (robust to other processes)".into(),
        value: ratio_cpu.value,
        target: ">= 0.90".into(),
        met: ratio_cpu.value >= 0.90,
    });
    report.results.push(f);
    report.results.push(ratio);
    report.results.push(ratio_cpu);
    Ok(())
}

fn legacy_timing(
    argon2: &Argon2Params,
    args: &BenchArgs,
    report: &mut Report,
) -> Result<(), Failure> {
    let parent = data_parent(args);
    let mut runs = Vec::new();
    for repeat in 0..args.repeats {
        let t = migration::timing(&parent, argon2, args.bcrypt_cost, args.rounds)?;
        say(
            args,
            format!(
                "run {}: refused login median: unknown {:.0} µs, wrapped MD5 {:.0} µs, bcrypt {:.0} µs, current {:.0} µs (bare verification: argon2id {:.0} µs, bcrypt cost {} {:.0} µs)",
                repeat + 1,
                t.unknown_us,
                t.wrapped_md5_us,
                t.bcrypt_us,
                t.current_us,
                t.bare_argon2_us,
                args.bcrypt_cost,
                t.bare_bcrypt_us
            ),
        );
        runs.push(t);
    }
    type Of = fn(&migration::Timing) -> f64;
    let kinds: [(&str, Of); 4] = [
        ("unknown user", |t| t.unknown_us),
        ("wrapped MD5 user", |t| t.wrapped_md5_us),
        ("bcrypt user", |t| t.bcrypt_us),
        ("current user", |t| t.current_us),
    ];
    let mut medians = Vec::new();
    for (name, of) in kinds {
        let f = figure(
            format!("refused login, {name}"),
            "µs",
            runs.iter().map(of).collect(),
            Value::Null,
        );
        medians.push(f.value);
        report.results.push(f);
    }
    let max = medians.iter().copied().fold(f64::MIN, f64::max);
    let min = medians.iter().copied().fold(f64::MAX, f64::min);
    let spread = if min > 0.0 { max / min - 1.0 } else { 0.0 };
    say(
        args,
        format!(
            "spread between the slowest and the fastest kind: {:.1} %",
            spread * 100.0
        ),
    );
    report.results.push(figure(
        "refused login spread (slowest / fastest - 1)",
        "ratio",
        vec![spread],
        json!(runs),
    ));
    Ok(())
}
