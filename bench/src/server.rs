//! The server under test: a child `tessera serve` (the `tessera` binary, a separate
//! process) on a fresh temporary data folder, or a child bare-hyper "hello" server (this
//! binary, the HTTP ceiling), or a running server given by URL; and reading its counters
//! from /metrics.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::client::{self, Target};
use crate::Failure;

/// A server process this run started; killed and its data folder removed on drop.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    pub target: Target,
    data_path: Option<PathBuf>,
    /// Kept until the child is gone.
    _data: Option<tempfile::TempDir>,
}

impl ChildServer {
    /// `bin serve` (the `tessera` binary, see [`tessera_binary`]) on 127.0.0.1 (a free
    /// port) with a fresh data folder under `parent`. The child inherits this process's
    /// environment, so `TESSERA_*` settings (argon2 parameters, pool sizes) apply to it as
    /// they do to the ceilings measured here; `config`, when given, is its `--config`.
    pub fn tessera(bin: &Path, parent: &Path, config: Option<&Path>) -> Result<Self, Failure> {
        let data = tempfile::Builder::new()
            .prefix("tessera-bench-")
            .tempdir_in(parent)
            .map_err(|e| {
                Failure(format!(
                    "cannot make a data folder in {}: {e}",
                    parent.display()
                ))
            })?;
        let mut cmd = Command::new(bin);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env("TESSERA_STORE__VERIFY_ON_START", "false")
            .env("TESSERA_LOG__FILTER", "warn");
        registrations_unthrottled(&mut cmd);
        let path = data.path().to_owned();
        Self::spawn(cmd, Some(data), Some(path))
    }

    /// `bin serve` on an existing data folder `data` (kept after the run).
    pub fn tessera_on(bin: &Path, data: &Path, config: Option<&Path>) -> Result<Self, Failure> {
        Self::tessera_with(bin, data, config, &[])
    }

    /// [`ChildServer::tessera_on`] with more environment (the storage backend, say).
    pub fn tessera_with(
        bin: &Path,
        data: &Path,
        config: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, Failure> {
        let mut cmd = Command::new(bin);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("TESSERA_STORE__VERIFY_ON_START", "false")
            .env("TESSERA_LOG__FILTER", "warn");
        registrations_unthrottled(&mut cmd);
        Self::spawn(cmd, None, Some(data.to_owned()))
    }

    /// The server's data folder, when this run started it on one.
    pub fn data(&self) -> Option<&Path> {
        self.data_path.as_deref()
    }

    /// The bare hyper "hello" server (`tessera-bench hello-server`, this binary).
    pub fn hello() -> Result<Self, Failure> {
        let exe = std::env::current_exe()
            .map_err(|e| Failure(format!("cannot find this executable: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.args(["hello-server", "--listen", "127.0.0.1:0"]);
        Self::spawn(cmd, None, None)
    }

    fn spawn(
        mut cmd: Command,
        data: Option<tempfile::TempDir>,
        data_path: Option<PathBuf>,
    ) -> Result<Self, Failure> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let program = Path::new(cmd.get_program()).display().to_string();
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure(format!("cannot start the server {program}: {e}")))?;
        let stdout = child.stdout.take();
        // Read the "listening on http://ADDR" line on a thread, so that a child that never
        // prints cannot hang us: wait at most 60 s for it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Some(out) = stdout else { return };
            let mut lines = std::io::BufReader::new(out).lines();
            for _ in 0..100 {
                match lines.next() {
                    Some(Ok(line)) => {
                        if let Some(addr) = line.split("http://").nth(1) {
                            let _ = tx.send(addr.trim().trim_end_matches('/').to_owned());
                            break;
                        }
                    }
                    _ => return,
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::new(
                    "the server did not report its address within 60 s",
                ));
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| Failure(format!("the server printed an odd address: {addr}")))?;
        Ok(Self {
            child,
            target: Target::new(addr)?,
            data_path,
            _data: data,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The load tool registers its own accounts, all from the loopback address, to measure the
/// server, not its registration throttle: lift the throttle's free allowance to its maximum
/// unless the caller's environment sets it.
fn registrations_unthrottled(cmd: &mut Command) {
    const KEY: &str = "TESSERA_POLICY__THROTTLE__REGISTRATION__FREE_FAILURES";
    if std::env::var_os(KEY).is_none() {
        cmd.env(KEY, tessera_core::throttle::FREE_FAILURES_MAX.to_string());
    }
}

/// The `tessera` binary to start as the server: `explicit` (`--tessera PATH`) when given,
/// else the one next to this executable (`cargo build` puts both in the same target folder;
/// a test binary in `deps/` looks one folder up).
pub fn tessera_binary(explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    const BUILD: &str = "build it with `cargo build --release -p tessera` (the same profile \
        as tessera-bench, so that it lands next to it), or name one with --tessera PATH";
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(Failure(format!(
                "--tessera {}: no such file; {BUILD}",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| Failure(format!("cannot find this executable: {e}")))?;
    let name = format!("tessera{}", std::env::consts::EXE_SUFFIX);
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![dir.join(&name)];
    if dir.file_name().is_some_and(|d| d == "deps")
        && let Some(up) = dir.parent()
    {
        candidates.push(up.join(&name));
    }
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .ok_or_else(|| {
            Failure(format!(
                "no `tessera` binary at {}; {BUILD}",
                candidates[0].display()
            ))
        })
}

/// The counters /metrics exposes, by name (labels included in the name).
pub type Counters = BTreeMap<String, f64>;

pub async fn metrics(target: &Target) -> Result<Counters, Failure> {
    let req = client::get(&target.host, "/metrics", &[]);
    let (status, _, body) = client::once(target, req)
        .await
        .map_err(|e| Failure(format!("GET /metrics: {e}")))?;
    if !status.is_success() {
        return Err(Failure(format!("GET /metrics answered {status}")));
    }
    Ok(parse_metrics(&String::from_utf8_lossy(&body)))
}

pub fn parse_metrics(text: &str) -> Counters {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// What the server's writer did during a window: the difference of two scrapes.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ServerDelta {
    pub commands: f64,
    pub events_appended: f64,
    pub durable_syncs: f64,
    pub batches: f64,
    /// Events per appended batch in the window.
    pub mean_batch_events: f64,
    /// Commands refused (argon2 pool full, writer queue full).
    pub hash_rejected: f64,
    pub writer_overloaded: f64,
}

pub fn delta(before: &Counters, after: &Counters) -> ServerDelta {
    let d = |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let events = d("tessera_events_appended_total");
    let batches = d("tessera_batches_total");
    ServerDelta {
        commands: d("tessera_commands_total"),
        events_appended: events,
        durable_syncs: d("tessera_durable_syncs_total"),
        batches,
        mean_batch_events: if batches > 0.0 { events / batches } else { 0.0 },
        hash_rejected: d("tessera_hash_rejected_total"),
        writer_overloaded: d("tessera_writer_overloaded_total"),
    }
}

/// Serves 200 "hello" to every request, on the same hyper http1 builder settings and the
/// same multi-threaded runtime (one worker per core) as `tessera serve`: the HTTP ceiling.
pub fn hello_server(listen: SocketAddr) -> Result<(), Failure> {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::new)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Failure(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(Failure::new)?;
        println!("hello server listening on http://{addr}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"hello")),
                    ))
                });
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .max_buf_size(16 * 1024)
                    .keep_alive(true);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_parsed_and_subtracted() {
        let a =
            parse_metrics("# HELP x\ntessera_events_appended_total 10\ntessera_batches_total 2\n");
        let b = parse_metrics(
            "tessera_events_appended_total 40\ntessera_batches_total 5\ntessera_http_requests_total{route=\"me\",status=\"2xx\"} 7\n",
        );
        let d = delta(&a, &b);
        assert_eq!(d.events_appended, 30.0);
        assert_eq!(d.mean_batch_events, 10.0);
        assert_eq!(
            b.get("tessera_http_requests_total{route=\"me\",status=\"2xx\"}"),
            Some(&7.0)
        );
    }
}
