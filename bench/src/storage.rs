//! Storage workloads, in process (no HTTP): group commit through the real engine over a
//! durable sled store, `replay --rebuild` speed, and memory and restart time per live session.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tessera_core::password::{PasswordHash, Verification};
use tessera_core::policy::Argon2Params;
use tessera_core::secret::SecretDigest;
use tessera_core::{
    AccountId, Command, Event, LoginMode, PasswordCheck, Policy, Reply, SessionId, Timestamp, Views,
};
use tessera_http::system::{SystemClock, monotonic, os_rng};
use tessera_storage::engine::EngineConfig;
use tessera_storage::{Clock, Engine, EventStore, Outcome, SledOptions, SledStore, replay};
use tokio::sync::oneshot;

use crate::Failure;

fn tempdir(parent: &Path, what: &str) -> Result<tempfile::TempDir, Failure> {
    tempfile::Builder::new()
        .prefix(&format!("tessera-bench-{what}-"))
        .tempdir_in(parent)
        .map_err(|e| Failure(format!("cannot make a folder in {}: {e}", parent.display())))
}

fn open(path: &Path, fdatasync: bool) -> Result<SledStore, Failure> {
    SledStore::open(
        path,
        SledOptions {
            fdatasync,
            ..SledOptions::default()
        },
    )
    .map_err(Failure::new)
}

fn start(
    store: SledStore,
    clock: Arc<dyn Clock>,
    batch: usize,
    queue: usize,
) -> Result<Engine, Failure> {
    Engine::start(
        Box::new(store),
        Policy::fast_for_tests(),
        clock,
        Box::new(os_rng()),
        EngineConfig {
            batch_commands_max: batch,
            queue_commands_max: queue,
            check_invariants: false,
        },
    )
    .map_err(Failure::new)
}

/// A clock the builder moves forward by hand (so that touches are due).
#[derive(Debug)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::Relaxed))
    }
}

pub fn cheap_hash() -> Result<PasswordHash, Failure> {
    tessera_core::password::hash("Bench password 123", [1; 16], &Argon2Params::INSECURE_FAST)
        .map_err(|e| Failure(e.to_string()))
}

static NAMES: AtomicU64 = AtomicU64::new(0);

fn register_command(hash: &PasswordHash) -> Command {
    Command::from(tessera_core::account::Register {
        username: format!("bench{}", NAMES.fetch_add(1, Ordering::Relaxed)),
        email: None,
        password_hash: Some(hash.clone()),
        client: None,
    })
}

fn login_command(account: AccountId, hash: &PasswordHash) -> Command {
    Command::from(tessera_core::session::Login {
        check: PasswordCheck {
            account: Some(account),
            checked_hash: hash.clone(),
            outcome: Verification::Match { stale: false },
            rehash: None,
        },
        mode: LoginMode::Session,
        client: None,
        supersedes: None,
    })
}

type Pending = oneshot::Receiver<Result<Outcome, tessera_storage::EngineError>>;

/// Submits every command (in chunks that fit the queue) and waits for all the replies.
fn execute_all(
    engine: &Engine,
    commands: impl Iterator<Item = Command>,
    chunk: usize,
) -> Result<Vec<Reply>, Failure> {
    let mut replies = Vec::new();
    let mut pending: Vec<Pending> = Vec::with_capacity(chunk);
    let drain = |pending: &mut Vec<Pending>, replies: &mut Vec<Reply>| -> Result<(), Failure> {
        for rx in pending.drain(..) {
            let outcome = rx
                .blocking_recv()
                .map_err(|_| Failure::new("engine stopped"))?
                .map_err(Failure::new)?;
            replies.push(
                outcome
                    .reply
                    .map_err(|r| Failure(format!("refused: {r}")))?,
            );
        }
        Ok(())
    };
    for command in commands {
        pending.push(engine.submit(command).map_err(Failure::new)?);
        if pending.len() >= chunk {
            drain(&mut pending, &mut replies)?;
        }
    }
    drain(&mut pending, &mut replies)?;
    Ok(replies)
}

fn registered(replies: Vec<Reply>) -> Vec<AccountId> {
    replies
        .into_iter()
        .filter_map(|r| match r {
            Reply::Registered { account, .. } => Some(account),
            _ => None,
        })
        .collect()
}

fn sessions(replies: Vec<Reply>) -> Vec<SessionId> {
    replies
        .into_iter()
        .filter_map(|r| match r {
            Reply::LoggedIn(issued) => Some(issued.session),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Group commit

#[derive(Clone, Debug, Serialize)]
pub struct GroupCommitRun {
    pub writers: usize,
    pub commits_per_s: f64,
    pub durable_syncs_per_s: f64,
    pub mean_batch_commands: f64,
}

/// Durable appends (`account::Register` with a precomputed cheap hash: one event, one view
/// update, a durable sync per batch) by `writers` threads, each waiting for its answer
/// before sending the next, for `warmup + measure`.
pub fn group_commit(
    engine: &Engine,
    hash: &PasswordHash,
    writers: usize,
    warmup: Duration,
    measure: Duration,
) -> GroupCommitRun {
    let started = monotonic();
    let from = started + warmup;
    let end = from + measure;
    let done = AtomicU64::new(0);
    let m = engine.metrics();
    let mut before = (0, 0);
    std::thread::scope(|s| {
        for _ in 0..writers.max(1) {
            let done = &done;
            s.spawn(move || {
                for _ in 0..10_000_000u64 {
                    let now = monotonic();
                    if now >= end {
                        break;
                    }
                    let ok = engine
                        .execute_blocking(register_command(hash))
                        .is_ok_and(|o| o.reply.is_ok());
                    let t = monotonic();
                    if ok && t >= from && t <= end {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // Sample the engine's counters at the start of the window.
        while monotonic() < from {
            std::thread::park_timeout(Duration::from_millis(1));
        }
        before = (
            m.durable_syncs.load(Ordering::Relaxed),
            m.commands.load(Ordering::Relaxed),
        );
    });
    let syncs = m.durable_syncs.load(Ordering::Relaxed) - before.0;
    let commands = m.commands.load(Ordering::Relaxed) - before.1;
    let secs = measure.as_secs_f64();
    GroupCommitRun {
        writers,
        commits_per_s: done.load(Ordering::Relaxed) as f64 / secs,
        durable_syncs_per_s: syncs as f64 / secs,
        mean_batch_commands: if syncs == 0 {
            0.0
        } else {
            commands as f64 / syncs as f64
        },
    }
}

/// Opens a fresh durable store (fdatasync on, as `tessera serve` runs) and its engine.
pub fn group_commit_engine(
    parent: &Path,
) -> Result<(tempfile::TempDir, Engine, PasswordHash), Failure> {
    let dir = tempdir(parent, "group-commit")?;
    let store = open(dir.path(), true)?;
    let engine = start(store, Arc::new(SystemClock), 512, 8192)?;
    Ok((dir, engine, cheap_hash()?))
}

// ---------------------------------------------------------------------------------------
// Building logs

/// Accounts, then cycles of: log `per_cycle` sessions in, move the clock a touch interval
/// on, touch each, log each out; until the log holds at least `events` events. Written
/// through the real engine in large batches, with fdatasync off (the build is not measured).
pub fn build_churn_log(path: &Path, events: u64, progress: &dyn Fn(u64)) -> Result<u64, Failure> {
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let engine = start(open(path, false)?, clock.clone(), 4096, 1 << 16)?;
    let hash = cheap_hash()?;
    let accounts_n = 10_000u64.min(events / 10).max(1);
    let accounts = registered(execute_all(
        &engine,
        (0..accounts_n).map(|_| register_command(&hash)),
        32_768,
    )?);
    let per_cycle = (events / 6).clamp(1, 50_000) as usize;
    for cycle in 0..1_000u64 {
        let head = engine.head_sequence();
        progress(head);
        if head >= events {
            break;
        }
        let logins = (0..per_cycle).map(|i| login_command(accounts[i % accounts.len()], &hash));
        let ids = sessions(execute_all(&engine, logins, 32_768)?);
        clock.0.fetch_add(61_000, Ordering::Relaxed);
        execute_all(
            &engine,
            ids.iter()
                .map(|s| Command::from(tessera_core::session::TouchSession { session: *s })),
            32_768,
        )?;
        // Leave one cycle's sessions live, so the rebuilt views are not empty.
        if cycle % 4 != 3 {
            execute_all(
                &engine,
                ids.iter()
                    .map(|s| Command::from(tessera_core::session::Logout { session: *s })),
                32_768,
            )?;
        }
        clock.0.fetch_add(1_000, Ordering::Relaxed);
    }
    let head = engine.head_sequence();
    engine.shutdown();
    Ok(head)
}

/// `accounts` accounts and `live` sessions, all still live at the end (written with the
/// system clock, so they are live when the engine restarts right after).
pub fn build_session_log(path: &Path, live: u64) -> Result<u64, Failure> {
    let engine = start(open(path, false)?, Arc::new(SystemClock), 4096, 1 << 16)?;
    let hash = cheap_hash()?;
    let accounts = registered(execute_all(
        &engine,
        (0..(live / 100).max(1)).map(|_| register_command(&hash)),
        32_768,
    )?);
    let logins = (0..live as usize).map(|i| login_command(accounts[i % accounts.len()], &hash));
    execute_all(&engine, logins, 32_768)?;
    let head = engine.head_sequence();
    engine.shutdown();
    // Make the whole folder durable before it is reopened.
    open(path, true)?.sync().map_err(Failure::new)?;
    Ok(head)
}

#[derive(Clone, Debug, Serialize)]
pub struct RebuildRun {
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    /// CPU seconds this process used during the rebuild (the rebuild's thread, plus sled's
    /// background threads, which are idle then), and events per such second: what one core
    /// does, whatever share of the machine the neighbours took meanwhile.
    pub cpu_seconds: f64,
    pub events_per_cpu_s: f64,
    pub accounts: usize,
    pub live_sessions: usize,
    pub views_match: bool,
}

/// Times `replay::rebuild` (what `tessera replay --rebuild` runs before comparing) on one
/// thread over the store at `path`, then checks the result against the stored views.
pub fn rebuild(path: &Path) -> Result<RebuildRun, Failure> {
    let store = open(path, true)?;
    let cpu0 = super::stats::cpu_seconds(std::process::id());
    let started = monotonic();
    let views = replay::rebuild(&store, &mut |_| {}).map_err(Failure::new)?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = match (cpu0, super::stats::cpu_seconds(std::process::id())) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => seconds,
    };
    let events = store.head().sequence;
    let diffs = replay::compare(&views, &store).map_err(Failure::new)?;
    Ok(RebuildRun {
        events,
        seconds,
        events_per_s: events as f64 / seconds,
        cpu_seconds,
        events_per_cpu_s: events as f64 / cpu_seconds,
        accounts: views.account_count(),
        live_sessions: views.session_count(),
        views_match: diffs.is_empty(),
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct RestartRun {
    pub live_sessions: usize,
    /// SledStore::open + Engine::start (loading the views from the sled trees).
    pub seconds: f64,
    /// Resident memory the restart added to the process, bytes: the loaded views plus the
    /// sled pages read (memory freed by earlier runs may be reused, so a lower bound).
    pub rss_delta_bytes: u64,
}

/// Opens the store at `path` and starts the engine on it, as `tessera serve` does with
/// `verify_on_start = false`; stops it again.
pub fn restart(path: &Path) -> Result<RestartRun, Failure> {
    let rss_before = super::stats::rss_bytes().unwrap_or(0);
    let started = monotonic();
    let engine = start(open(path, true)?, Arc::new(SystemClock), 512, 8192)?;
    let seconds = started.elapsed().as_secs_f64();
    let live = engine.views().session_count();
    let rss = super::stats::rss_bytes().unwrap_or(0);
    engine.shutdown();
    Ok(RestartRun {
        live_sessions: live,
        seconds,
        rss_delta_bytes: rss.saturating_sub(rss_before),
    })
}

// ---------------------------------------------------------------------------------------
// Memory per live session

#[derive(Clone, Debug, Serialize)]
pub struct MemoryRun {
    pub live_sessions: usize,
    pub accounts: usize,
    /// Resident memory added by the sessions, bytes (malloc's slack and the hash tables'
    /// spare capacity included: what the server would really pay).
    pub rss_delta_bytes: u64,
    pub bytes_per_session: f64,
}

/// Folds `accounts` registrations and then `live` SessionStarted events into empty
/// [`Views`] with `Views::apply` (what the writer and replay do), and measures the process's
/// resident memory before and after the sessions.
pub fn memory(live: usize, accounts: usize) -> Result<MemoryRun, Failure> {
    let at = Timestamp::from_millis(1_700_000_000_000);
    let hash = cheap_hash()?;
    let mut views = Views::default();
    let mut touched = Vec::new();
    let uuid = |kind: u8, i: u64| {
        let mut b = [0u8; 16];
        b[0] = kind;
        b[8..].copy_from_slice(&i.to_be_bytes());
        b
    };
    let ids: Vec<AccountId> = (0..accounts.max(1) as u64)
        .map(|i| AccountId::from_bytes(uuid(1, i)))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let e = Event::AccountRegistered {
            account: *id,
            username: format!("user{i}"),
            email: None,
            password_hash: hash.clone(),
        };
        touched.clear();
        views.apply(at, &e, &mut touched).map_err(Failure::new)?;
    }
    let before = super::stats::rss_bytes().unwrap_or(0);
    for i in 0..live as u64 {
        let e = Event::SessionStarted {
            session: SessionId::from_bytes(uuid(2, i)),
            account: ids[i as usize % ids.len()],
            secret_digest: SecretDigest::of(&format!("tss_{i}")),
            idle_timeout_ms: 30 * 60 * 1000,
            expires_at: at.plus_ms(12 * 60 * 60 * 1000),
        };
        touched.clear();
        views.apply(at, &e, &mut touched).map_err(Failure::new)?;
    }
    let after = super::stats::rss_bytes().unwrap_or(0);
    let delta = after.saturating_sub(before);
    let run = MemoryRun {
        live_sessions: views.session_count(),
        accounts: views.account_count(),
        rss_delta_bytes: delta,
        bytes_per_session: delta as f64 / live.max(1) as f64,
    };
    drop(views);
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_logs_build_rebuild_and_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let churn = dir.path().join("churn");
        let events = build_churn_log(&churn, 1_000, &|_| {}).expect("build");
        assert!(events >= 1_000);
        let r = rebuild(&churn).expect("rebuild");
        assert_eq!(r.events, events);
        assert!(r.views_match);
        let live = dir.path().join("live");
        build_session_log(&live, 300).expect("build");
        assert_eq!(restart(&live).expect("restart").live_sessions, 300);
        assert_eq!(memory(200, 2).expect("memory").live_sessions, 200);
    }

    #[test]
    fn group_commit_counts_durable_commits() {
        let dir = tempfile::tempdir().expect("dir");
        let (_d, engine, hash) = group_commit_engine(dir.path()).expect("engine");
        let run = group_commit(
            &engine,
            &hash,
            4,
            Duration::from_millis(20),
            Duration::from_millis(200),
        );
        assert!(run.commits_per_s > 0.0);
        engine.shutdown();
    }
}
