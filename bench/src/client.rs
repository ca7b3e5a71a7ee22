//! The load generator: N keep-alive HTTP/1.1 connections for a warm-up and then a fixed
//! measured window. Every loop is bounded in count and in time.
//!
//! Two disciplines, per group of connections:
//! - closed loop (the default): each connection sends its next request as soon as the
//!   previous answer is fully read; latency is send to last byte.
//! - open loop (`Group::rate_per_s`): the group has one schedule of intended send times,
//!   one every `1 / rate` seconds. Each connection, whenever it is idle, takes the next
//!   unclaimed slot, waits for its time and sends (at once when the slot is already past).
//!   Latency is measured from the slot's *intended* time, so a server that falls behind
//!   shows it in the percentiles instead of silently slowing the generator down (no
//!   coordinated omission). The connections act as a pool: a slow request (an argon2
//!   login) holds up only its own connection, not the slots after it, as long as some
//!   connection is idle; when none is, the wait counts as latency.
//!
//! Several groups run in the same window on the same runtime (the flood workload: verify
//! connections and wrong-password connections side by side), each with its own result.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use super::stats::Latency;
use crate::Failure;
use tessera_http::system::monotonic;

/// Where the requests go. Only loopback addresses are accepted.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header value.
    pub host: String,
}

impl Target {
    pub fn new(addr: SocketAddr) -> Result<Self, Failure> {
        if !addr.ip().is_loopback() {
            return Err(Failure(format!(
                "tessera-bench only targets loopback addresses, not {addr}"
            )));
        }
        Ok(Self {
            addr,
            host: addr.to_string(),
        })
    }

    /// Parses `http://127.0.0.1:PORT[/]`.
    pub fn from_url(url: &str) -> Result<Self, Failure> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| Failure::new("--url must start with http:// (loopback only)"))?;
        let authority = rest.trim_end_matches('/');
        let addr: SocketAddr = authority.parse().map_err(|_| {
            Failure(format!(
                "--url must be http://IP:PORT on a loopback address, not {url}"
            ))
        })?;
        Self::new(addr)
    }
}

/// One connection's part of a workload: what it sends next, and whether an answer is right.
/// Token workloads (verify, refresh) implement it too: `answer` sees the body, so a refresh
/// connection can keep the rotated token for its next request.
pub trait Conn: Send {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>>;
    /// Checks an answer; `Err(kind)` counts as an error of that kind.
    fn answer(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(), String>;
    /// Whether `status` is the expected kind of answer (then `answer` sees it); anything
    /// else counts as an error `status N`. 2xx by default; the flood expects 401.
    fn expects(&self, status: StatusCode) -> bool {
        status.is_success()
    }
    /// The kind of the request last made, for per-kind latency (`mixed`); `""`: one kind.
    fn kind(&self) -> &'static str {
        ""
    }
}

/// Connections that run together under one discipline, with their own result.
pub struct Group {
    pub conns: Vec<Box<dyn Conn>>,
    /// Open loop at this many requests per second over the whole group; `None`: closed loop.
    pub rate_per_s: Option<f64>,
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub warmup: Duration,
    pub measure: Duration,
    /// Client runtime worker threads.
    pub threads: usize,
    pub request_timeout: Duration,
    /// Most requests one connection sends in one run (a bound, not a goal).
    pub requests_per_conn_max: u64,
}

/// What one measured window saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunResult {
    pub connections: usize,
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub latency: Latency,
    pub errors: BTreeMap<String, u64>,
    /// Per request kind, when the workload has several (`mixed`): count and latency.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_kind: BTreeMap<String, (u64, Latency)>,
}

#[derive(Default)]
struct ConnReport {
    ok: u64,
    samples: Vec<u32>,
    errors: BTreeMap<String, u64>,
    by_kind: BTreeMap<&'static str, Vec<u32>>,
}

/// Most latency samples one connection keeps (the count stays exact beyond it).
const SAMPLES_PER_CONN_MAX: usize = 4_000_000;
/// Reconnections one connection may make in a run before it gives up.
const RECONNECTS_MAX: u32 = 100;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| "handshake".to_owned())?;
    tokio::spawn(connection);
    Ok(sender)
}

fn error_kind(e: &hyper::Error) -> String {
    if e.is_closed() || e.is_incomplete_message() || e.is_canceled() {
        "connection closed".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else {
        "http error".into()
    }
}

/// An open-loop group's schedule: slot `k` is due at `first + k * interval`; `next` is
/// the next unclaimed slot, shared by the group's connections.
#[derive(Clone, Debug)]
struct Pace {
    first: Instant,
    interval: Duration,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

async fn drive(
    target: Target,
    mut conn: Box<dyn Conn>,
    spec: Spec,
    pace: Option<Pace>,
    from: Instant,
    end: Instant,
) -> ConnReport {
    let mut report = ConnReport::default();
    let bump = |errors: &mut BTreeMap<String, u64>, kind: String| {
        *errors.entry(kind).or_default() += 1;
    };
    let mut sender = None;
    let mut reconnects = 0;
    for _ in 0..spec.requests_per_conn_max {
        if monotonic() >= end {
            break;
        }
        // Open loop: claim the next slot, wait for its time (at once when behind it).
        let intended = pace.as_ref().map(|p| {
            let k = p.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            p.first + p.interval.mul_f64(k as f64)
        });
        if let Some(t) = intended {
            if t >= end {
                break;
            }
            if t > monotonic() {
                tokio::time::sleep_until(t.into()).await;
            }
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(target.addr).await {
                Ok(s) => sender.insert(s),
                Err(kind) => {
                    bump(&mut report.errors, kind);
                    reconnects += 1;
                    if reconnects > RECONNECTS_MAX {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let req = conn.request(&target.host);
        let started = intended.unwrap_or_else(monotonic);
        let exchange = async {
            s.ready().await.map_err(|e| error_kind(&e))?;
            let resp = s.send_request(req).await.map_err(|e| error_kind(&e))?;
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map_err(|e| error_kind(&e))?.to_bytes();
            Ok::<_, String>((parts, bytes))
        };
        let result = tokio::time::timeout(spec.request_timeout, exchange).await;
        let done = monotonic();
        let counted = done >= from && done <= end;
        let outcome = match result {
            Err(_) => Err("timeout".to_owned()),
            Ok(Err(kind)) => Err(kind),
            Ok(Ok((parts, body))) => {
                if conn.expects(parts.status) {
                    conn.answer(parts.status, &parts.headers, &body)
                } else {
                    Err(format!("status {}", parts.status.as_u16()))
                }
            }
        };
        match outcome {
            Ok(()) => {
                if counted {
                    report.ok += 1;
                    if report.samples.len() < SAMPLES_PER_CONN_MAX {
                        let us = done.duration_since(started).as_micros();
                        let us = u32::try_from(us).unwrap_or(u32::MAX);
                        report.samples.push(us);
                        let kind = conn.kind();
                        if !kind.is_empty() {
                            report.by_kind.entry(kind).or_default().push(us);
                        }
                    }
                }
            }
            Err(kind) => {
                let broken =
                    kind == "timeout" || kind == "connection closed" || kind == "http error";
                if counted {
                    bump(&mut report.errors, kind);
                }
                if broken {
                    sender = None;
                    reconnects += 1;
                    if reconnects > RECONNECTS_MAX {
                        break;
                    }
                }
            }
        }
    }
    report
}

/// Runs one measured window over `conns` (one connection each, closed loop) on its own
/// runtime.
pub fn run(target: &Target, conns: Vec<Box<dyn Conn>>, spec: Spec) -> Result<RunResult, Failure> {
    let mut results = run_groups(
        target,
        vec![Group {
            conns,
            rate_per_s: None,
        }],
        spec,
    )?;
    results
        .pop()
        .ok_or_else(|| Failure::new("no result for the group"))
}

/// Runs several groups of connections in the same measured window, on one runtime; one
/// result per group, in order.
pub fn run_groups(
    target: &Target,
    groups: Vec<Group>,
    spec: Spec,
) -> Result<Vec<RunResult>, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.threads.max(1))
        .enable_all()
        .build()
        .map_err(Failure::new)?;
    let sizes: Vec<usize> = groups.iter().map(|g| g.conns.len()).collect();
    let reports = runtime.block_on(async {
        let start = monotonic();
        let from = start + spec.warmup;
        let end = from + spec.measure;
        let mut tasks = Vec::new();
        for group in groups {
            let pace = group.rate_per_s.filter(|r| *r > 0.0).map(|rate| Pace {
                first: start,
                interval: Duration::from_secs_f64(1.0 / rate),
                next: std::sync::Arc::default(),
            });
            for c in group.conns {
                tasks.push(tokio::spawn(drive(
                    target.clone(),
                    c,
                    spec,
                    pace.clone(),
                    from,
                    end,
                )));
            }
        }
        let mut reports = Vec::with_capacity(tasks.len());
        for t in tasks {
            reports.push(t.await.unwrap_or_default());
        }
        reports
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let seconds = spec.measure.as_secs_f64();
    let mut reports = reports.into_iter();
    let mut results = Vec::with_capacity(sizes.len());
    for connections in sizes {
        let mut samples = Vec::new();
        let mut errors = BTreeMap::new();
        let mut kinds: BTreeMap<&'static str, Vec<u32>> = BTreeMap::new();
        let mut requests = 0;
        for r in reports.by_ref().take(connections) {
            requests += r.ok;
            samples.extend(r.samples);
            for (k, v) in r.errors {
                *errors.entry(k).or_default() += v;
            }
            for (k, v) in r.by_kind {
                kinds.entry(k).or_default().extend(v);
            }
        }
        let by_kind = kinds
            .into_iter()
            .map(|(k, mut v)| (k.to_owned(), (v.len() as u64, Latency::of(&mut v))))
            .collect();
        results.push(RunResult {
            connections,
            requests,
            seconds,
            requests_per_s: requests as f64 / seconds,
            latency: Latency::of(&mut samples),
            errors,
            by_kind,
        });
    }
    Ok(results)
}

/// One request on a fresh connection, for set-up and for /metrics.
pub async fn once(
    target: &Target,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let mut sender = connect(target.addr).await?;
    let exchange = async {
        let resp = sender.send_request(req).await.map_err(|e| error_kind(&e))?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(|e| error_kind(&e))?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| "timeout".to_owned())?
}

/// A request with a JSON body.
pub fn post_json(host: &str, path: &str, body: String) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = http::Uri::try_from(path).unwrap_or_default();
    let h = req.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(host) {
        h.insert(http::header::HOST, v);
    }
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    req
}

/// A GET with optional extra headers.
pub fn get(
    host: &str,
    path: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = http::Uri::try_from(path).unwrap_or_default();
    let h = req.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(host) {
        h.insert(http::header::HOST, v);
    }
    for (k, v) in extra {
        h.insert(k.clone(), v.clone());
    }
    req
}
