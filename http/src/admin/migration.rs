//! The legacy password migration's operator actions, written once: the admin socket's
//! routes call them on the running server's engine, and `tessera import users` /
//! `tessera migration status|sunset` call the same functions on an engine of their own when
//! no server runs.
//!
//! The import reads JSON lines, one account each:
//!
//! ```text
//! {"username": "alice", "email": "alice@example.com", "hash": "5f4dcc3b5aa765d61d8327deb882cf99"}
//! {"username": "bob", "hash": "<md5 hex>", "salt": "x9", "salt_position": "before"}
//! {"username": "carol", "hash": "$2b$12$...", "last_login": 1690000000}
//! {"username": "dave", "hash": "pbkdf2_sha256$600000$salt$base64"}
//! ```
//!
//! `last_login` is the legacy system's last login, in Unix seconds (the sunset's inactivity
//! counts from it). Each line is parsed and checked on its own; a bad line is reported with
//! its number and reason and the rest goes on. A username that exists already (imported by
//! an earlier, interrupted run, or taken) is skipped and reported, so a run can be repeated.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use tessera_core::legacy::{LegacyHash, SaltPosition};
use tessera_core::migration::{
    Progress, RetireLegacyCredentials, SUNSET_ACCOUNTS_PER_COMMAND_MAX, sunset_due,
};
use tessera_core::password::WorkArea;
use tessera_core::usecase::ImportRequest;
use tessera_core::{Rejection, Timestamp};
use tessera_storage::{Engine, EngineError};

use crate::time::rfc3339;

/// The longest import line, in bytes. A record is well under 1 KiB (a username of at most
/// 64 characters, an address of at most 254 bytes, a hash, a salt of at most 256 bytes);
/// anything longer is refused unread.
pub const IMPORT_LINE_BYTES_MAX: usize = 8 * 1024;
/// Most lines in one import request over the admin socket.
pub const IMPORT_BATCH_LINES_MAX: usize = 256;
/// The largest import request body the admin socket reads.
pub const IMPORT_BATCH_BYTES_MAX: usize = IMPORT_BATCH_LINES_MAX * (IMPORT_LINE_BYTES_MAX + 64);
/// The window the status's rate (and so its estimate) is measured over, in days.
pub const RATE_WINDOW_DAYS: u64 = 7;

/// One line of the import file, with its number (from 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportLine {
    pub line: u64,
    pub text: String,
}

/// What became of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// The account was imported.
    Imported,
    /// The username exists already (an earlier run, or a duplicate in this file): nothing
    /// was changed.
    Skipped,
    /// The line is malformed: nothing of it was imported.
    Refused,
}

/// One line's result. `reason` says why a line was skipped or refused; it never quotes
/// the hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineResult {
    pub line: u64,
    #[serde(default)]
    pub username: Option<String>,
    pub outcome: ImportOutcome,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The body of `POST /admin/v1/import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBatch {
    pub lines: Vec<ImportLine>,
}

/// One import record as a line states it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    username: String,
    #[serde(default)]
    email: Option<String>,
    hash: String,
    #[serde(default)]
    salt: Option<String>,
    #[serde(default)]
    salt_position: Option<SaltPosition>,
    #[serde(default)]
    last_login: Option<u64>,
}

/// Reads one line into an import request, or the reason it is refused. serde's messages
/// for wrong types quote the value (possibly a hash), so only its position is reported
/// then.
pub fn parse_line(text: &str) -> Result<ImportRequest, String> {
    let record: Record = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        match e.classify() {
            serde_json::error::Category::Eof => "truncated JSON record".to_owned(),
            serde_json::error::Category::Data
                if message.starts_with("missing field")
                    || message.starts_with("unknown field")
                    || message.starts_with("unknown variant") =>
            {
                // These name fields and allowed values, never the line's own strings.
                message
                    .split(" at line ")
                    .next()
                    .unwrap_or("a field is wrong")
                    .to_owned()
            }
            serde_json::error::Category::Data => {
                format!("a field has the wrong type (column {})", e.column())
            }
            _ => format!("not a JSON record (column {})", e.column()),
        }
    })?;
    let hash = LegacyHash::parse(&record.hash, record.salt.as_deref(), record.salt_position)
        .map_err(|e| e.to_string())?;
    let last_active_at = match record.last_login {
        None => None,
        Some(secs) => Some(Timestamp::from_millis(
            secs.checked_mul(1000)
                .ok_or_else(|| "last_login is not a Unix time in seconds".to_owned())?,
        )),
    };
    Ok(ImportRequest {
        username: record.username,
        email: record.email,
        hash,
        last_active_at,
    })
}

/// How many threads wrap MD5s at once: every core, as the import is the operator's and
/// runs once.
pub fn import_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Imports `lines`: each parsed, planned (a taken username is skipped before any argon2),
/// prepared (an MD5 wrapped) and decided by the writer. `workers` threads do the argon2 work
/// and hand each command to the writer without waiting for it to be durable, so that no
/// core idles while a batch is synced; the answers are collected at the end. Blocks: call it
/// off any async runtime. Results come back in line order.
pub fn import_lines(
    engine: &Engine,
    lines: Vec<ImportLine>,
    workers: usize,
) -> Result<Vec<LineResult>, EngineError> {
    let next = AtomicUsize::new(0);
    let lines = &lines;
    // Workers finish out of order (a bcrypt line takes longer than an MD5 one), so a name
    // that appears twice in the batch is settled here, in line order: the first line takes
    // it and the later ones are skipped, whichever worker would have reached the writer first.
    let mut steps: Vec<Option<Step>> = first_of_each_name(lines);
    let dropped: Vec<bool> = steps.iter().map(Option::is_some).collect();
    let dropped = &dropped;
    let done = std::sync::Mutex::new(&mut steps);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1).min(lines.len().max(1)) {
            s.spawn(|| {
                let mut rng = crate::system::os_rng();
                let mut area = WorkArea::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(line) = lines.get(i) else {
                        break;
                    };
                    if dropped.get(i).copied().unwrap_or(false) {
                        continue;
                    }
                    let step = import_one(engine, line, &mut rng, &mut area);
                    let mut done = done
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some(slot) = done.get_mut(i) {
                        *slot = Some(step);
                    }
                }
            });
        }
    });
    steps
        .into_iter()
        .map(|step| match step {
            Some(Step::Done(result)) => Ok(result),
            Some(Step::Submitted { result, answer }) => {
                let outcome = answer.blocking_recv().map_err(|_| EngineError::Stopped)??;
                Ok(match outcome.reply {
                    Ok(_) => LineResult {
                        outcome: ImportOutcome::Imported,
                        ..result
                    },
                    Err(r) => refusal(result, r),
                })
            }
            Some(Step::Failed(e)) => Err(e),
            None => Err(EngineError::Stopped),
        })
        .collect()
}

/// One slot per line: `Some` (skipped) for a line whose username an earlier line of the
/// same batch names, `None` for the lines the workers take.
fn first_of_each_name(lines: &[ImportLine]) -> Vec<Option<Step>> {
    let mut seen = std::collections::HashMap::new();
    lines
        .iter()
        .map(|line| {
            let name = parse_line(&line.text).ok()?.username;
            let key = tessera_core::account::username_key(&name).ok()?;
            match seen.get(&key) {
                Some(first) => Some(Step::Done(LineResult {
                    line: line.line,
                    username: Some(name.trim().to_owned()),
                    outcome: ImportOutcome::Skipped,
                    reason: Some(format!(
                        "the username exists already (line {first} names it too)"
                    )),
                })),
                None => {
                    seen.insert(key, line.line);
                    None
                }
            }
        })
        .collect()
}

type Answer = tokio::sync::oneshot::Receiver<
    Result<tessera_storage::Outcome<tessera_core::account::Registered>, EngineError>,
>;

/// Where one line got to on its worker.
enum Step {
    /// Decided without the writer (malformed, or a taken name).
    Done(LineResult),
    /// Handed to the writer; `result` names the line, `answer` brings the decision.
    Submitted { result: LineResult, answer: Answer },
    /// The engine would not take it.
    Failed(EngineError),
}

/// `result` as refused by `r`: a taken username is a skip, anything else a refusal.
fn refusal(result: LineResult, r: Rejection) -> LineResult {
    match r {
        Rejection::UsernameTaken => LineResult {
            outcome: ImportOutcome::Skipped,
            reason: Some("the username exists already (imported before, or taken)".into()),
            ..result
        },
        other => LineResult {
            outcome: ImportOutcome::Refused,
            reason: Some(other.to_string()),
            ..result
        },
    }
}

fn import_one(
    engine: &Engine,
    line: &ImportLine,
    rng: &mut dyn rand_core::CryptoRng,
    area: &mut WorkArea,
) -> Step {
    let request = match parse_line(&line.text) {
        Ok(r) => r,
        Err(why) => {
            return Step::Done(LineResult {
                line: line.line,
                username: None,
                outcome: ImportOutcome::Refused,
                reason: Some(why),
            });
        }
    };
    let result = LineResult {
        line: line.line,
        username: Some(request.username.trim().to_owned()),
        outcome: ImportOutcome::Refused,
        reason: None,
    };
    let command = match engine.prepare_here(request, rng, area) {
        Ok(c) => c,
        Err(r) => return Step::Done(refusal(result, r)),
    };
    match engine.submit(command) {
        Ok(answer) => Step::Submitted { result, answer },
        // The writer's queue is full (the server is busy): this line is not imported, and
        // a run again takes it, skipping what was.
        Err(EngineError::Overloaded) => Step::Done(LineResult {
            reason: Some(
                "the server was overloaded; run the import again to take this line".into(),
            ),
            ..result
        }),
        Err(e) => Step::Failed(e),
    }
}

/// Accounts by scheme now, the migration's history per day, and when the legacy share will
/// reach zero at the recent rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigrationStatus {
    /// Accounts on argon2id.
    pub current: u64,
    /// Accounts on each legacy scheme (retired ones included), by scheme name.
    pub legacy: std::collections::BTreeMap<String, u64>,
    /// Accounts whose legacy credential the sunset retired.
    pub retired: u64,
    /// The legacy share of all accounts, 0 to 1.
    pub legacy_share: f64,
    /// Per UTC day: imported, migrated (re-hashed, changed or reset) and retired.
    pub days: Vec<DayStatus>,
    /// Legacy credentials migrated per day over the last [`RATE_WINDOW_DAYS`] days.
    pub rate_per_day: f64,
    /// When no legacy credential is left at that rate (RFC 3339), or `None` when nothing
    /// migrated recently.
    #[serde(default)]
    pub zero_at: Option<String>,
}

/// One day of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStatus {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub imported: u64,
    pub migrated: u64,
    pub retired: u64,
}

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("cannot read the log: {0}")]
    Read(String),
}

/// The migration's status: the counts from the views, the history from a fold of the log
/// up to the durable head.
pub fn status(engine: &Engine) -> Result<MigrationStatus, StatusError> {
    let now = engine.now();
    let counts = engine.views().scheme_counts();
    let reader = engine.log_reader()?;
    let through = engine.head().sequence;
    let mut progress = Progress::default();
    for envelope in reader.read_range(1, through) {
        let e = envelope.map_err(|e| StatusError::Read(e.to_string()))?;
        progress.apply(e.recorded_at, &e.event);
    }
    let legacy_total: u64 = counts.legacy.values().sum();
    let all = counts.current + legacy_total;
    Ok(MigrationStatus {
        current: counts.current,
        legacy: counts
            .legacy
            .iter()
            .map(|(s, n)| (s.name().to_owned(), *n))
            .collect(),
        retired: counts.retired,
        legacy_share: if all == 0 {
            0.0
        } else {
            legacy_total as f64 / all as f64
        },
        days: progress
            .days
            .iter()
            .map(|(day, d)| DayStatus {
                day: rfc3339(Timestamp::from_millis(day * 86_400_000))
                    .get(..10)
                    .unwrap_or_default()
                    .to_owned(),
                imported: d.imported,
                migrated: d.migrated,
                retired: d.retired,
            })
            .collect(),
        rate_per_day: progress.recent_rate_per_day(now, RATE_WINDOW_DAYS),
        zero_at: progress
            .estimate_zero_at(now, RATE_WINDOW_DAYS)
            .map(rfc3339),
    })
}

/// A reset token the sunset issued, as the operator exports it (one JSON line each) for
/// their own mail system. It holds the token: it goes only to the operator.
#[derive(Clone, Serialize, Deserialize)]
pub struct ResetExport {
    pub username: String,
    #[serde(default)]
    pub email: Option<String>,
    pub reset_token: zeroize::Zeroizing<String>,
    pub expires_at: String,
}

impl std::fmt::Debug for ResetExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetExport")
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The body of `POST /admin/v1/migration/sunset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunsetBody {
    pub operator: String,
}

/// Retires every legacy credential due now (inactive longer than the policy's
/// `migration.inactive_days`, and not retired with a live token) and returns the reset
/// tokens, in commands of at most [`SUNSET_ACCOUNTS_PER_COMMAND_MAX`] accounts.
pub async fn sunset(engine: &Engine, operator: &str) -> Result<Vec<ResetExport>, EngineError> {
    let due = sunset_due(&engine.views(), engine.now(), &engine.policy().migration);
    tracing::info!(operator, due = due.len(), "operator action: legacy sunset");
    let mut exports = Vec::with_capacity(due.len());
    for chunk in due.chunks(SUNSET_ACCOUNTS_PER_COMMAND_MAX) {
        let command = RetireLegacyCredentials {
            accounts: chunk.to_vec(),
        };
        // A retirement is refused only by a stopped engine; an account no longer due is
        // left out of the reply.
        let issued = engine.execute(command).await?.reply.unwrap_or_default();
        exports.extend(issued.into_iter().map(|r| ResetExport {
            username: r.username,
            email: r.email,
            reset_token: zeroize::Zeroizing::new(r.token.expose().to_owned()),
            expires_at: rfc3339(r.expires_at),
        }));
    }
    Ok(exports)
}

/// The folder, inside the data folder, where the scheduled sunset leaves its reset tokens.
pub const RESET_TOKENS_RELATIVE: &str = "reset-tokens";

/// Writes `exports` as JSON lines to a new file `sunset-<ms>.jsonl` in `dir` (created
/// 0700), readable by its owner only; an existing file is never overwritten. The file is
/// written whole under a hidden name first, so a reader never sees half of it.
pub fn write_exports(
    dir: &std::path::Path,
    at: Timestamp,
    exports: &[ResetExport],
) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = format!("sunset-{}.jsonl", at.as_millis());
    let path = dir.join(&name);
    if path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists", path.display()),
        ));
    }
    let partial = dir.join(format!(".{name}.partial"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    for e in exports {
        let line = serde_json::to_string(e).map_err(std::io::Error::other)?;
        writeln!(file, "{line}")?;
    }
    file.sync_all()?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// Runs the sunset every `every` until the engine stops, leaving each run's reset tokens in
/// `<data>/reset-tokens/` (`policy.migration.sunset_every_secs`). A run that retires nothing
/// writes nothing.
pub async fn sunset_periodically(
    engine: Engine,
    data: std::path::PathBuf,
    every: std::time::Duration,
) {
    let dir = data.join(RESET_TOKENS_RELATIVE);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let exports = match sunset(&engine, "schedule").await {
            Ok(exports) => exports,
            Err(EngineError::Stopped) => return,
            Err(error) => {
                tracing::warn!(%error, "scheduled legacy sunset failed; trying again later");
                continue;
            }
        };
        if exports.is_empty() {
            continue;
        }
        let at = engine.now();
        let dir = dir.clone();
        let written = tokio::task::spawn_blocking(move || {
            write_exports(&dir, at, &exports).map(|p| (p, exports.len()))
        })
        .await;
        match written {
            Ok(Ok((path, n))) => {
                tracing::info!(retired = n, file = %path.display(), "scheduled legacy sunset: reset tokens written");
            }
            Ok(Err(error)) => {
                // The credentials are retired and their tokens lost: the next run after they
                // expire issues new ones.
                tracing::error!(%error, "scheduled legacy sunset: cannot write the reset tokens");
            }
            Err(error) => tracing::error!(%error, "scheduled legacy sunset stopped"),
        }
    }
}
