//! `tessera replay [--follow]`, `tessera verify` and `tessera backup`: the operator's view of
//! the log. Each reads a running server's log through its admin socket when one answers, and
//! the data folder directly when none does, printing the same thing either way.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use http::Method;
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tessera_http::admin::log::{BackupAnswer, VerifyAnswer, envelope_json};
use tessera_storage::EventStore;
use tessera_storage::replay::{self, Filter};

use crate::admin_client::AdminClient;

use crate::Failure;
use crate::config::Config;

#[derive(clap::Args)]
pub struct ReplayArgs {
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only this stream, e.g. account-0190….
    #[arg(long)]
    stream: Option<String>,
    /// Only events recorded at or after this time (RFC 3339 or Unix seconds).
    #[arg(long, value_parser = crate::timearg::parse)]
    since: Option<tessera_core::Timestamp>,
    /// Only events recorded before this time.
    #[arg(long, value_parser = crate::timearg::parse)]
    until: Option<tessera_core::Timestamp>,
    /// Only events of this type (repeatable), e.g. --type SessionStarted.
    #[arg(long = "type")]
    kinds: Vec<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Rebuild every view from the log and report any difference from the stored views.
    #[arg(long)]
    rebuild: bool,
    /// With --rebuild: replace the stored views with the rebuilt ones.
    #[arg(long, requires = "rebuild")]
    repair: bool,
    /// Keep printing events as a running server appends them (like `tail -f`).
    #[arg(long, conflicts_with = "rebuild")]
    follow: bool,
}

/// How long a command waits for a whole-log answer (a verification or a backup of a long
/// log answers only when it is done).
const LONG_ANSWER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::new)
}

/// One line of `tessera replay`'s output for an envelope in its JSON form: the JSON itself,
/// or the text columns. Both paths (socket, folder) print through here.
fn line(v: &Value, json: bool) -> String {
    if json {
        return v.to_string();
    }
    format!(
        "{:>8}  {}  {:<44} v{:<4} {:<26} {}",
        v["sequence"].as_u64().unwrap_or_default(),
        v["recorded_at"].as_str().unwrap_or_default(),
        v["stream"].as_str().unwrap_or_default(),
        v["version"].as_u64().unwrap_or_default(),
        v["type"].as_str().unwrap_or_default(),
        v.get("event").unwrap_or(&Value::Null)
    )
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

pub fn run(config: &Config, args: ReplayArgs) -> Result<ExitCode, Failure> {
    let mut config = config.clone();
    config.data = args.data.clone().unwrap_or(config.data);
    let runtime = runtime()?;
    let client = runtime.block_on(crate::admin_client::connect(&config.data))?;
    if args.rebuild {
        if client.is_some() {
            return Err(Failure(format!(
                "a server is running on {}: stop it to rebuild its views (the rebuild replaces \
                 them in place); `tessera verify` and `tessera replay` work while it runs",
                config.data.display()
            )));
        }
        let mut store = crate::serve::open_any_store(&config)?;
        return rebuild(store.as_mut(), &config.policy, args.repair);
    }
    let filter = Filter {
        stream: args.stream.clone().map(tessera_core::StreamId),
        since: args.since,
        until: args.until,
        kinds: args.kinds.clone(),
    };
    match client {
        Some(mut client) => runtime.block_on(from_server(&mut client, &filter, &args)),
        None => from_folder(&config, &filter, &args),
    }
}

/// Prints `lines` to stdout; `false` when the reader went away (e.g. `| head`).
fn print_lines<'a>(lines: impl IntoIterator<Item = &'a Value>, json: bool) -> bool {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for v in lines {
        if writeln!(out, "{}", line(v, json)).is_err() {
            return false;
        }
    }
    out.flush().is_ok()
}

fn from_folder(config: &Config, filter: &Filter, args: &ReplayArgs) -> Result<ExitCode, Failure> {
    let store = crate::serve::open_any_store(config)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for item in replay::events(store.as_ref(), filter) {
        let e = item.map_err(Failure::new)?;
        if writeln!(out, "{}", line(&envelope_json(&e), args.json)).is_err() {
            // The reader went away (e.g. `| head`): stop quietly.
            return Ok(ExitCode::SUCCESS);
        }
    }
    let _ = out.flush();
    if args.follow {
        eprintln!(
            "no server runs on {}: nothing more will be appended",
            config.data.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The log query the admin socket takes for `filter`.
fn log_path(filter: &Filter, follow: bool) -> String {
    let mut pairs: Vec<(&str, String)> = vec![("from", "1".into())];
    if let Some(stream) = &filter.stream {
        pairs.push(("stream", stream.as_str().to_owned()));
    }
    if let Some(t) = filter.since {
        pairs.push(("since", t.as_millis().to_string()));
    }
    if let Some(t) = filter.until {
        pairs.push(("until", t.as_millis().to_string()));
    }
    for k in &filter.kinds {
        pairs.push(("type", k.clone()));
    }
    if follow {
        pairs.push(("follow", "true".into()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("/admin/v1/log?{query}")
}

/// Streams the log from the server, printing each whole line as it arrives; a line cut off
/// by the server going away is never printed.
async fn from_server(
    client: &mut AdminClient,
    filter: &Filter,
    args: &ReplayArgs,
) -> Result<ExitCode, Failure> {
    let resp = client
        .send(Method::GET, &log_path(filter, args.follow), None)
        .await?;
    if !resp.status().is_success() {
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| client.lost(&e))?
            .to_bytes();
        let detail = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| "the admin socket refused the request".into());
        return Err(Failure(detail));
    }
    let mut body = resp.into_body();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                return Err(Failure(format!(
                    "the server stopped answering mid-stream ({e}); every event printed was \
                     whole"
                )));
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
                    continue;
                };
                let whole: Vec<u8> = pending.drain(..=end).collect();
                let values: Vec<Value> = whole
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .filter_map(|l| serde_json::from_slice(l).ok())
                    .collect();
                if !print_lines(&values, args.json) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
    if args.follow {
        eprintln!("the server stopped; the log ends here");
    }
    Ok(ExitCode::SUCCESS)
}

fn rebuild(
    store: &mut dyn EventStore,
    policy: &tessera_core::Policy,
    repair: bool,
) -> Result<ExitCode, Failure> {
    let started = tessera_http::system::monotonic();
    let bar = progress_bar(store.head().sequence, "rebuilding views");
    let rebuilt =
        replay::rebuild_into(tessera_core::Views::for_policy(policy), store, &mut |seq| {
            if seq % 4096 == 0 {
                bar.set_position(seq);
            }
        })
        .map_err(Failure::new)?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let events = store.head().sequence;
    let diffs = replay::compare(&rebuilt, store).map_err(Failure::new)?;
    println!(
        "rebuilt {} accounts and {} sessions from {events} events in {:.2} s ({:.0} events/s)",
        rebuilt.account_count(),
        rebuilt.session_count(),
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if diffs.is_empty() {
        println!("stored views match the log");
        return Ok(ExitCode::SUCCESS);
    }
    for d in &diffs {
        println!(
            "differs: {:?}\n  stored:  {:?}\n  rebuilt: {:?}",
            d.key, d.persisted, d.rebuilt
        );
    }
    println!("{} view records differ from the log", diffs.len());
    if repair {
        let records = rebuilt
            .keys()
            .into_iter()
            .filter_map(|k| rebuilt.record(&k).map(|r| (k, r)))
            .collect();
        store.replace_views(records).map_err(Failure::new)?;
        println!("stored views replaced with the rebuilt ones");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(ExitCode::from(1))
}

pub fn verify(config: &Config, data: Option<PathBuf>) -> Result<ExitCode, Failure> {
    let mut config = config.clone();
    config.data = data.unwrap_or(config.data);
    let runtime = runtime()?;
    let answer = match runtime.block_on(crate::admin_client::connect(&config.data))? {
        Some(mut client) => runtime
            .block_on(client.call_within::<VerifyAnswer>(
                Method::GET,
                "/admin/v1/verify",
                None::<&()>,
                LONG_ANSWER,
            ))
            .map_err(Failure::from)?,
        None => verify_folder(&config)?,
    };
    if answer.intact {
        println!(
            "log intact: {} events, head hash {}",
            answer.events, answer.head_hash
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("log damaged: {}", answer.problem.unwrap_or_default());
        Ok(ExitCode::from(1))
    }
}

fn verify_folder(config: &Config) -> Result<VerifyAnswer, Failure> {
    let store = crate::serve::open_any_store(config)?;
    let head = store.head();
    let bar = progress_bar(head.sequence, "verifying");
    let result = replay::verify(store.as_ref(), &mut |seq| {
        if seq % 4096 == 0 {
            bar.set_position(seq);
        }
    });
    bar.finish_and_clear();
    Ok(VerifyAnswer::of(result, head))
}

/// `tessera backup DIR`: a consistent copy of the data folder, through the running server
/// (which goes on serving) or from the folder when none runs.
pub fn backup(config: &Config, dir: PathBuf, data: Option<PathBuf>) -> Result<ExitCode, Failure> {
    let mut config = config.clone();
    config.data = data.unwrap_or(config.data);
    // The server may run in another working folder: it is given an absolute path.
    let dir = std::path::absolute(&dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
    let runtime = runtime()?;
    let answer = match runtime.block_on(crate::admin_client::connect(&config.data))? {
        Some(mut client) => runtime
            .block_on(client.call_within::<BackupAnswer>(
                Method::POST,
                "/admin/v1/backup",
                Some(&serde_json::json!({ "dir": dir.display().to_string() })),
                LONG_ANSWER,
            ))
            .map_err(Failure::from)?,
        None => backup_folder(&config, &dir)?,
    };
    println!(
        "backed up {} events through sequence {} (head hash {}) and {} key files into {} in {:.2} s",
        answer.events,
        answer.last_sequence,
        answer.last_hash,
        answer.key_files,
        answer.dir,
        answer.elapsed_ms as f64 / 1000.0
    );
    Ok(ExitCode::SUCCESS)
}

fn backup_folder(config: &Config, dir: &std::path::Path) -> Result<BackupAnswer, Failure> {
    if config.storage.backend == "postgres" {
        return Err(Failure::new(
            "the log is in PostgreSQL: back it up with the database's own tools (pg_dump, or a base backup with WAL archiving); see docs/scaling.md. `tessera backup` copies a sled data folder.",
        ));
    }
    let store = crate::serve::open_store(config)?;
    let keys = tessera_storage::keys::KeyStore::open(&config.data).map_err(Failure::new)?;
    let head = store.head();
    let reader = store.log_reader();
    let bar = progress_bar(head.sequence, "copying the log");
    let report = tessera_storage::backup::write(
        reader.as_ref(),
        head,
        keys.dir(),
        dir,
        &config.policy,
        &mut |seq| {
            if seq % 4096 == 0 {
                bar.set_position(seq);
            }
        },
    );
    bar.finish_and_clear();
    let report = report.map_err(Failure::new)?;
    Ok(BackupAnswer::of(dir, &report))
}
