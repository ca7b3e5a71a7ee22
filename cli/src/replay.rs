//! `tessera replay` and `tessera verify`: the operator's view of the log.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tessera_storage::replay::{self, Filter};
use tessera_storage::{Envelope, EventStore};

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

/// The JSON form of an envelope. Password hashes are redacted (they are offline-attack
/// targets) and digests shown as hex.
pub fn envelope_json(e: &Envelope) -> Value {
    let mut event = serde_json::to_value(&e.event).unwrap_or(Value::Null);
    // Externally tagged: {"Kind": {fields}}; keep the fields.
    if let Value::Object(map) = &mut event
        && let Some(inner) = map.remove(e.event.kind())
    {
        event = inner;
    }
    tidy(&mut event);
    json!({
        "sequence": e.sequence,
        "recorded_at": tessera_http::time::rfc3339(e.recorded_at),
        "recorded_at_ms": e.recorded_at.as_millis(),
        "stream": e.stream.as_str(),
        "version": e.stream_version,
        "type": e.event.kind(),
        "schema": e.schema,
        "event": event,
    })
}

fn tidy(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                if k == "password_hash" {
                    *field = Value::String("<redacted argon2id hash>".into());
                } else if k.ends_with("digest") {
                    if let Value::Array(bytes) = field {
                        let hex: String = bytes
                            .iter()
                            .filter_map(Value::as_u64)
                            .map(|b| format!("{b:02x}"))
                            .collect();
                        *field = Value::String(hex);
                    }
                } else {
                    tidy(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

pub fn run(config: &Config, args: ReplayArgs) -> Result<ExitCode, Failure> {
    let mut config = config.clone();
    config.data = args.data.clone().unwrap_or(config.data);
    let mut store = crate::serve::open_store(&config)?;
    if args.rebuild {
        return rebuild(&mut store, &config.policy, args.repair);
    }
    let filter = Filter {
        stream: args.stream.map(tessera_core::StreamId),
        since: args.since,
        until: args.until,
        kinds: args.kinds,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for item in replay::events(&store, &filter) {
        let e = item.map_err(Failure::new)?;
        let line = if args.json {
            envelope_json(&e).to_string()
        } else {
            let body = envelope_json(&e);
            format!(
                "{:>8}  {}  {:<44} v{:<4} {:<26} {}",
                e.sequence,
                tessera_http::time::rfc3339(e.recorded_at),
                e.stream.as_str(),
                e.stream_version,
                e.event.kind(),
                body.get("event").unwrap_or(&serde_json::Value::Null)
            )
        };
        if writeln!(out, "{line}").is_err() {
            // The reader went away (e.g. `| head`): stop quietly.
            return Ok(ExitCode::SUCCESS);
        }
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

fn rebuild(
    store: &mut tessera_storage::SledStore,
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
    let store = crate::serve::open_store(&config)?;
    let bar = progress_bar(store.head().sequence, "verifying");
    let result = replay::verify(&store, &mut |seq| {
        if seq % 4096 == 0 {
            bar.set_position(seq);
        }
    });
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            let hex: String = report
                .head_hash
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            println!("log intact: {} events, head hash {hex}", report.events);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("log damaged: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
