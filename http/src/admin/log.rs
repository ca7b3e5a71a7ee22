//! The log, read from a running server: `GET /admin/v1/log` (a stream of JSON lines, and
//! with `follow=true` every event appended after), `GET /admin/v1/verify` (the hash chain up
//! to the durable head), `POST /admin/v1/backup` (a consistent copy of the data folder).
//!
//! All three read through the engine's [`LogReader`](tessera_storage::LogReader), beside the
//! writer, up to a head the writer has made durable: they never hold the writer up, and they
//! never show an event that a crash could still take back.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_storage::replay::{self, Filter};
use tessera_storage::{Envelope, Head};
use tokio::sync::mpsc;

use crate::App;
use crate::body::{json, read_json};
use crate::problem::Problem;

/// Envelopes read per trip to a blocking thread while streaming the log.
const READ_CHUNK: u64 = 4096;

/// The JSON form of an envelope, the one `tessera replay --json` prints whether it reads the
/// folder or a running server. Password hashes are redacted (they are offline-attack
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
        "recorded_at": crate::time::rfc3339(e.recorded_at),
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
                    // The scheme is no secret (the migration's status counts by it); the
                    // hash is an offline-attack target.
                    let scheme = field
                        .as_str()
                        .and_then(|h| {
                            tessera_core::legacy::Scheme::of(&tessera_core::password::PasswordHash(
                                h.to_owned(),
                            ))
                        })
                        .map_or("unknown", tessera_core::legacy::Scheme::name);
                    *field = Value::String(format!("<redacted {scheme} hash>"));
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

/// A hash as lower-case hex.
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// An admin answer's body: a whole one, or a stream of lines.
#[derive(Debug)]
pub enum AdminBody {
    /// A whole answer.
    Full(Full<Bytes>),
    /// Lines sent as they are read; the stream ends when the sender is dropped.
    Lines(mpsc::Receiver<Bytes>),
}

impl Body for AdminBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(full) => Pin::new(full).poll_frame(cx),
            Self::Lines(rx) => rx
                .poll_recv(cx)
                .map(|line| line.map(|l| Ok(Frame::data(l)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(full) => full.is_end_stream(),
            Self::Lines(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(full) => full.size_hint(),
            Self::Lines(_) => SizeHint::default(),
        }
    }
}

/// What `GET /admin/v1/log` selects: `from` (a sequence), `stream`, `since` and `until`
/// (milliseconds since the epoch), `type` (repeatable), `follow`.
#[derive(Debug, Default)]
struct LogQuery {
    from: u64,
    filter: Filter,
    follow: bool,
}

fn log_query(query: Option<&str>) -> Result<LogQuery, Problem> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| Problem::bad_request("the query string is not valid"))?;
    let mut q = LogQuery {
        from: 1,
        ..LogQuery::default()
    };
    let number = |name: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| Problem::bad_request(format!("{name} must be a whole number")))
    };
    for (k, v) in pairs {
        match k.as_str() {
            "from" => q.from = number("from", &v)?.max(1),
            "stream" => q.filter.stream = Some(tessera_core::StreamId(v)),
            "since" => {
                q.filter.since = Some(tessera_core::Timestamp::from_millis(number("since", &v)?))
            }
            "until" => {
                q.filter.until = Some(tessera_core::Timestamp::from_millis(number("until", &v)?))
            }
            "type" => q.filter.kinds.push(v),
            "follow" => q.follow = v == "true",
            other => return Err(Problem::bad_request(format!("unknown parameter {other}"))),
        }
    }
    Ok(q)
}

/// `GET /admin/v1/log`: JSON lines, each one envelope as [`envelope_json`] renders it, up to
/// the durable head; with `follow=true`, then every envelope made durable after, until the
/// engine stops (the stream ends; no line is ever cut).
pub async fn log(app: &App, req: &Request<Incoming>) -> Result<Response<AdminBody>, Problem> {
    let q = log_query(req.uri().query())?;
    let reader = app.engine.log_reader().map_err(Problem::from)?;
    let mut heads = app.engine.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut next = q.from;
        loop {
            let head = *heads.borrow_and_update();
            while next <= head.sequence {
                let through = head.sequence.min(next.saturating_add(READ_CHUNK - 1));
                let reader = reader.clone();
                let filter = q.filter.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut lines = Vec::new();
                    for item in reader.read_range(next, through) {
                        let e = item.map_err(|e| e.to_string())?;
                        if filter.matches(&e) {
                            let mut line = envelope_json(&e).to_string();
                            line.push('\n');
                            lines.push(Bytes::from(line));
                        }
                    }
                    Ok::<_, String>(lines)
                })
                .await;
                let lines = match read {
                    Ok(Ok(lines)) => lines,
                    Ok(Err(why)) => {
                        tracing::error!(%why, "admin log stream: reading the log failed");
                        return;
                    }
                    Err(_) => return,
                };
                for line in lines {
                    if tx.send(line).await.is_err() {
                        // The reader hung up.
                        return;
                    }
                }
                next = through + 1;
            }
            if !q.follow || heads.changed().await.is_err() {
                // Not following, or the engine stopped: the stream ends after whole lines.
                return;
            }
        }
    });
    let mut resp = Response::new(AdminBody::Lines(rx));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

/// What `GET /admin/v1/verify` answers: the chain is intact up to the durable head, or where
/// it breaks. Both are 200: the request worked; the log's state is the answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyAnswer {
    /// Whether every link holds and the last is the head.
    pub intact: bool,
    /// Envelopes checked.
    pub events: u64,
    /// The head's hash, as hex.
    pub head_hash: String,
    /// Where and how the chain breaks, when it does.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<String>,
}

impl VerifyAnswer {
    /// The answer for a chain walk that ended at `head` with `result`.
    pub fn of(result: Result<replay::ChainReport, replay::ReplayError>, head: Head) -> Self {
        match result {
            Ok(report) => Self {
                intact: true,
                events: report.events,
                head_hash: hex(&report.head_hash),
                problem: None,
            },
            Err(e) => Self {
                intact: false,
                events: head.sequence,
                head_hash: hex(&head.hash),
                problem: Some(e.to_string()),
            },
        }
    }
}

/// `GET /admin/v1/verify`: walks the hash chain up to the durable head, beside the writer.
pub async fn verify(app: &App) -> Result<Response<Full<Bytes>>, Problem> {
    let reader = app.engine.log_reader().map_err(Problem::from)?;
    let head = app.engine.head();
    let result = tokio::task::spawn_blocking(move || {
        replay::verify_live(reader.as_ref(), head, &mut |_| {})
    })
    .await
    .map_err(|_| Problem::internal())?;
    Ok(json(StatusCode::OK, &VerifyAnswer::of(result, head)))
}

/// The share of one core a backup inside the server may take. The copy re-hashes every
/// envelope and rebuilds the views from it: at full speed it takes a core the writer and the
/// request handlers need, and on a two-core machine their p99 quadruples. Paced to a third,
/// a backup takes about three times as long and the served requests keep their latency
/// (docs/benchmarks.md, "backup").
const BACKUP_DUTY: f64 = 0.33;

/// Envelopes between two of the pacer's looks at the clock.
const PACE_EVERY: u32 = 2048;

/// Keeps a long job on a blocking thread to about `duty` of one core: after each stretch of
/// work it sleeps long enough that work / (work + sleep) stays at `duty`.
struct Pacer {
    duty: f64,
    since: std::time::Instant,
    count: u32,
}

impl Pacer {
    fn new(duty: f64) -> Self {
        Self {
            duty: duty.clamp(0.05, 1.0),
            since: crate::system::monotonic(),
            count: 0,
        }
    }

    fn tick(&mut self) {
        self.count += 1;
        if self.count < PACE_EVERY {
            return;
        }
        self.count = 0;
        let worked = self.since.elapsed();
        let rest = worked.mul_f64((1.0 - self.duty) / self.duty);
        #[allow(
            clippy::disallowed_methods,
            reason = "a blocking thread of the server yielding its core to the request handlers, not the core's time"
        )]
        std::thread::sleep(rest);
        self.since = crate::system::monotonic();
    }
}

/// `POST /admin/v1/backup {dir}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    dir: String,
}

/// What a backup did.
#[derive(Debug, Serialize, Deserialize)]
pub struct BackupAnswer {
    /// The folder written.
    pub dir: String,
    /// Envelopes copied.
    pub events: u64,
    /// The last one's sequence.
    pub last_sequence: u64,
    /// Its hash, as hex.
    pub last_hash: String,
    /// Key files copied.
    pub key_files: u64,
    /// Bytes of log copied.
    pub bytes: u64,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
}

impl BackupAnswer {
    /// The answer for a finished backup of `dir`.
    pub fn of(dir: &std::path::Path, r: &tessera_storage::backup::BackupReport) -> Self {
        Self {
            dir: dir.display().to_string(),
            events: r.events,
            last_sequence: r.last_sequence,
            last_hash: hex(&r.last_hash),
            key_files: r.key_files,
            bytes: r.bytes,
            elapsed_ms: r.elapsed_ms,
        }
    }
}

/// `POST /admin/v1/backup`: a consistent copy of the data folder as of the durable head, in
/// `dir` (which must not exist or be empty), while the server goes on serving.
pub async fn backup(app: &App, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Problem> {
    let (parts, body) = req.into_parts();
    let input: BackupBody = read_json(body, &parts.headers, app.config.body_bytes_max).await?;
    let dir = std::path::PathBuf::from(input.dir);
    let reader = app.engine.log_reader().map_err(Problem::from)?;
    let head: Head = app.engine.head();
    let keys = app.signing.keys.dir().to_owned();
    let policy = app.engine.policy().clone();
    let dest = dir.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut pacer = Pacer::new(BACKUP_DUTY);
        tessera_storage::backup::write(reader.as_ref(), head, &keys, &dest, &policy, &mut |_| {
            pacer.tick()
        })
    })
    .await
    .map_err(|_| Problem::internal())?;
    match result {
        Ok(report) => Ok(json(StatusCode::OK, &BackupAnswer::of(&dir, &report))),
        Err(tessera_storage::backup::BackupError::DestinationNotEmpty { path }) => {
            Err(Problem::new(
                StatusCode::CONFLICT,
                "backup-destination-not-empty",
                "The destination is not empty",
                format!("{path} already holds files; back up into a new or empty folder"),
            ))
        }
        Err(e) => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "backup-failed",
            "The backup failed",
            e.to_string(),
        )),
    }
}
