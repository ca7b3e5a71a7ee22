//! A throwaway PostgreSQL cluster for the tests: Debian's `postgresql` binaries, `initdb`
//! and `pg_ctl` in a temporary folder, on a free loopback port, run as the unprivileged
//! `postgres` user when the tests run as root (the server refuses to run as root).
//!
//! One cluster serves the whole test process; every test gets a database of its own from
//! [`database`]. A watchdog shell started with the cluster stops it and removes its folder
//! when the test process exits, however it exits.
//!
//! Without PostgreSQL the tests that need it return early, and one line on stderr says so
//! and how to run them; with `TESSERA_PG_REQUIRED=1` (set by `.ci/run`) they fail instead.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The superuser's password (password authentication is on over TCP, so a wrong one is
/// refused as in production).
pub const SUPERUSER_PASSWORD: &str = "tessera-test-superuser";

/// The variable that turns a missing PostgreSQL from a skip into a failure.
pub const REQUIRED_VAR: &str = "TESSERA_PG_REQUIRED";

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The folder holding the data directory and the socket.
    pub dir: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);
static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();

/// The shared cluster, started on first use. `None` (after one line on stderr) when
/// PostgreSQL is not installed or does not start and [`REQUIRED_VAR`] is not set; panics
/// with the reason when it is.
pub fn cluster() -> Option<&'static Cluster> {
    match CLUSTER.get_or_init(start) {
        Ok(c) => Some(c),
        Err(why) => {
            if std::env::var_os(REQUIRED_VAR).is_some() {
                panic!("{REQUIRED_VAR} is set but the PostgreSQL test cluster cannot start: {why}");
            }
            SKIP_NOTICE.call_once(|| {
                use std::io::Write;
                // Written past the test harness's capture, once for the whole run.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL tests skipped ({why}); install Debian's `postgresql` package, or run `bash .ci/run`, which installs it and sets {REQUIRED_VAR}=1"
                );
            });
            None
        }
    }
}

/// A cluster of the test's own, for tests that stop and restart the server (the shared one
/// serves tests running at the same time). `None` as for [`cluster`].
pub fn private_cluster() -> Option<Cluster> {
    match start() {
        Ok(c) => Some(c),
        Err(why) => {
            if std::env::var_os(REQUIRED_VAR).is_some() {
                panic!("{REQUIRED_VAR} is set but a PostgreSQL test cluster cannot start: {why}");
            }
            // The shared cluster's notice covers this one too.
            let _ = cluster();
            None
        }
    }
}

/// A fresh, empty database in the shared cluster: its `postgres://` URL (with the
/// password). `None` when PostgreSQL tests are skipped (see [`cluster`]).
pub fn database() -> Option<String> {
    let cluster = cluster()?;
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    cluster.psql(&format!("CREATE DATABASE {name}"));
    Some(cluster.url(&name))
}

impl Cluster {
    /// The URL of database `name`, as the superuser, with the password.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{name}",
            self.port
        )
    }

    /// A fresh, empty database in this cluster: its URL.
    pub fn database(&self) -> String {
        let name = format!("p{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        self.psql(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs one SQL statement as the superuser through the socket; panics if it fails.
    pub fn psql(&self, sql: &str) {
        let out = self
            .command("psql")
            .args(["-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server at once (as a crash would), leaving its data in place.
    pub fn stop_immediate(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Starts it again after [`Cluster::stop_immediate`].
    pub fn restart(&self) {
        let out = self.start_server().expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.env_remove("PGPASSWORD").env("LC_ALL", "C");
        cmd
    }

    fn start_server(&self) -> std::io::Result<std::process::Output> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c max_connections=200 -c shared_buffers=32MB -c fsync=on",
            self.port,
            self.dir.display()
        );
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-l"])
            .arg(self.dir.join("log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
    }
}

/// Where Debian puts the server's programs (not on PATH): the newest version's `bin`, or
/// the folder `TESSERA_PG_BIN` names (another installation; a missing one shows the skip).
fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("TESSERA_PG_BIN") {
        let bin = PathBuf::from(dir);
        return if bin.join("initdb").exists() {
            Ok(bin)
        } else {
            Err(format!("no initdb in TESSERA_PG_BIN={}", bin.display()))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (no /usr/lib/postgresql)".to_owned())?
        .filter_map(Result::ok)
        .filter_map(|d| {
            let v = d.file_name().to_str()?.parse().ok()?;
            let bin = d.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "PostgreSQL's initdb was not found under /usr/lib/postgresql".to_owned())
}

/// The uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_user() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| {
            "running as root, and there is no `postgres` user to run the server as".into()
        })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start() -> Result<Cluster, String> {
    let bin = find_bin()?;
    let run_as = if is_root() {
        Some(postgres_user()?)
    } else {
        None
    };
    let dir = tempfile::Builder::new()
        .prefix("tessera-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let cluster = Cluster {
        port: free_port()?,
        dir,
        bin,
        run_as,
    };
    let pwfile = cluster.dir.join("pw");
    std::fs::write(&pwfile, SUPERUSER_PASSWORD).map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let out = cluster
        .command("initdb")
        .arg("-D")
        .arg(cluster.dir.join("data"))
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out = cluster.start_server().map_err(|e| format!("pg_ctl: {e}"))?;
    if !out.status.success() {
        let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
        return Err(format!("the server did not start: {}", log.trim()));
    }
    watchdog(&cluster)?;
    Ok(cluster)
}

/// Stops the cluster and removes its folder once this process has exited. Runs as the
/// server's user, which owns both.
fn watchdog(cluster: &Cluster) -> Result<(), String> {
    let script = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = shell_quote(&cluster.bin.join("pg_ctl")),
        data = shell_quote(&cluster.dir.join("data")),
        dir = shell_quote(&cluster.dir)
    );
    let mut cmd = Command::new("sh");
    if let Some((uid, gid)) = cluster.run_as {
        cmd.uid(uid).gid(gid);
    }
    cmd.args(["-c", &script])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("cannot start the cluster's watchdog: {e}"))
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Waits until `f` holds, polling, up to `limit`.
#[allow(
    clippy::disallowed_methods,
    reason = "test harness: waits in real time for other processes"
)]
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
