//! The `tessera` binary as an operator runs it: killed with SIGKILL mid-burst, stopped with
//! SIGTERM, and faced with a tampered log. These need the real process, so they live beside
//! the binary (Cargo gives integration tests here its path).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: helpers outside #[test] functions stop the test loudly at the step that failed"
)]

mod common;

use common::raw_request;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const PASSWORD: &str = "Correct horse 9 battery";

fn tessera(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    // Cheap hashing: these tests are about durability, not argon2 cost.
    c.env("TESSERA_POLICY__ARGON2__MEMORY_KIB", "64")
        .env("TESSERA_POLICY__ARGON2__ITERATIONS", "1")
        .env("TESSERA_LOG__FILTER", "warn")
        // The tests register accounts in bursts; each registration says it comes from its
        // own address (below), so the per-address registration throttle stays out of it.
        .env("TESSERA_HTTP__TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .env("TESSERA_DATA", data);
    c
}

struct Server {
    child: Child,
    addr: String,
}

fn serve(data: &Path) -> Server {
    let (child, addr) = common::start_serve(tessera(data), "127.0.0.1:0", Stdio::piped());
    Server { child, addr }
}

/// One HTTP/1.1 request on a fresh connection; `None` if the server is gone.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    cookie: Option<&str>,
) -> Option<(u16, String, String)> {
    let cookie = cookie
        .map(|c| format!("Cookie: __Host-tessera_session={c}\r\n"))
        .unwrap_or_default();
    raw_request(addr, method, path, "application/json", body, &cookie)
}

fn register(addr: &str, username: &str) -> Option<String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let [_, a, b, c] = n.to_be_bytes();
    let forwarded = format!("X-Forwarded-For: 10.{a}.{b}.{c}\r\n");
    let body = format!("{{\"username\":\"{username}\",\"password\":\"{PASSWORD}\"}}");
    let (status, _, body) = raw_request(
        addr,
        "POST",
        "/v1/accounts",
        "application/json",
        &body,
        &forwarded,
    )?;
    (status == 201).then(|| {
        serde_json::from_str::<serde_json::Value>(&body).ok()?["id"]
            .as_str()
            .map(str::to_owned)
    })?
}

fn login(addr: &str, username: &str) -> Option<(String, String)> {
    let body =
        format!("{{\"username\":\"{username}\",\"password\":\"{PASSWORD}\",\"mode\":\"session\"}}");
    let (status, head, body) = request(addr, "POST", "/v1/login", &body, None)?;
    if status != 200 {
        return None;
    }
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: __Host-tessera_session="))?
        .split(';')
        .next()?
        .to_owned();
    let session = serde_json::from_str::<serde_json::Value>(&body).ok()?["session_id_hint"]
        .as_str()?
        .to_owned();
    Some((session, cookie))
}

fn run(data: &Path, args: &[&str]) -> Output {
    tessera(data).args(args).output().expect("tessera runs")
}

/// Waits (at most 6 s) until `enough` holds while the workers hammer the server, then kills
/// it with SIGKILL mid-burst and lets the workers wind down.
fn kill_mid_burst(
    server: &mut Server,
    stop: &AtomicBool,
    workers: Vec<std::thread::JoinHandle<()>>,
    enough: impl Fn() -> bool,
) {
    for _ in 0..600 {
        if enough() {
            break;
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "a test harness pacing a real process, not domain time"
        )]
        std::thread::sleep(Duration::from_millis(10));
    }
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
}

/// The standard library only sends SIGKILL; graceful shutdown needs SIGTERM, and the
/// workspace forbids `unsafe`, so ask kill(1).
fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "SIGTERM delivered");
}

#[test]
fn sigkill_mid_burst_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve(dir.path());
    let addr = server.addr.clone();
    let acked_accounts = Arc::new(Mutex::new(Vec::new()));
    let acked_sessions = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (addr, accounts, sessions, stop) = (
                addr.clone(),
                acked_accounts.clone(),
                acked_sessions.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..10_000 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let name = format!("user{w}x{i}");
                    let Some(id) = register(&addr, &name) else {
                        return;
                    };
                    accounts.lock().expect("lock").push((name.clone(), id));
                    let Some((session, _)) = login(&addr, &name) else {
                        return;
                    };
                    sessions.lock().expect("lock").push(session);
                }
            })
        })
        .collect();
    // Let a burst build up, then kill the server without warning, requests still in flight.
    kill_mid_burst(&mut server, &stop, workers, || {
        acked_sessions.lock().expect("lock").len() >= 150
    });
    let accounts = acked_accounts.lock().expect("lock").clone();
    let sessions = acked_sessions.lock().expect("lock").clone();
    assert!(
        accounts.len() >= 20,
        "the burst got going ({} accounts)",
        accounts.len()
    );

    let verify = run(dir.path(), &["verify"]);
    assert!(
        verify.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let replay = run(dir.path(), &["replay", "--json"]);
    assert!(replay.status.success());
    let mut logged_accounts = std::collections::HashSet::new();
    let mut logged_sessions = std::collections::HashSet::new();
    for line in String::from_utf8_lossy(&replay.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).expect("replay --json prints JSON lines");
        match v["type"].as_str() {
            Some("AccountRegistered") => logged_accounts.insert(
                v["event"]["account"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            Some("SessionStarted") => logged_sessions.insert(
                v["event"]["session"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            _ => false,
        };
    }
    for (name, id) in &accounts {
        assert!(
            logged_accounts.contains(id),
            "acknowledged registration of {name} is missing after SIGKILL"
        );
    }
    for s in &sessions {
        assert!(
            logged_sessions.contains(s),
            "acknowledged session {s} is missing after SIGKILL"
        );
    }
    let rebuild = run(dir.path(), &["replay", "--rebuild"]);
    assert!(
        rebuild.status.success(),
        "views agree with the log: {}",
        String::from_utf8_lossy(&rebuild.stdout)
    );

    // The server comes back, and every acknowledged account can log in.
    let mut again = serve(dir.path());
    for (name, _) in accounts.iter().step_by(7) {
        assert!(
            login(&again.addr, name).is_some(),
            "{name} can log in after the crash"
        );
    }
    sigterm(&again.child);
    assert!(
        again.child.wait().expect("exits").success(),
        "graceful shutdown exits 0"
    );
}

#[test]
fn sigterm_drains_and_leaves_the_log_durable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve(dir.path());
    let id = register(&server.addr, "alice").expect("registered");
    let (_, cookie) = login(&server.addr, "alice").expect("logged in");
    sigterm(&server.child);
    let status = server.child.wait().expect("exits");
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let replay = run(
        dir.path(),
        &["replay", "--type", "SessionStarted", "--json"],
    );
    assert_eq!(String::from_utf8_lossy(&replay.stdout).lines().count(), 1);
    let server = serve(dir.path());
    let (status, _, body) =
        request(&server.addr, "GET", "/v1/me", "", Some(&cookie)).expect("answers");
    assert_eq!(status, 200, "the session survived the restart: {body}");
    assert!(body.contains(&id));
    let mut child = server.child;
    let _ = child.kill();
    let _ = child.wait();
}

/// Errors end the line they print on: the operator's shell prompt must not land after them.
#[test]
fn a_busy_data_folder_is_refused_with_a_whole_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(dir.path());
    // A second server cannot open the folder; a rebuild (which replaces the views in place)
    // needs the server stopped. Reading commands go through the running server instead.
    let busy: [(&[&str], &str); 2] = [
        (
            &["serve", "--listen", "127.0.0.1:0"],
            "another tessera process",
        ),
        (&["replay", "--rebuild"], "stop it to rebuild"),
    ];
    for (args, why) in busy {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("tessera: ") && err.contains(why),
            "{args:?}: {err:?}"
        );
        assert!(
            err.ends_with('\n') && !err.ends_with("\n\n"),
            "{args:?}: one line, one newline: {err:?}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
    }
    let mut child = server.child;
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_flipped_byte_is_found_and_serve_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["alice", "bob", "carol"] {
        let mut add = tessera(dir.path())
            .args(["account", "add", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("runs");
        add.stdin
            .take()
            .expect("stdin")
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .expect("writes");
        assert!(add.wait().expect("exits").success());
    }
    assert!(run(dir.path(), &["verify"]).status.success());
    {
        let store =
            tessera_storage::SledStore::open(dir.path(), tessera_storage::SledOptions::default())
                .expect("opens");
        let flipped = store
            .tamper_with_envelope(2, |bytes| {
                let at = bytes.len() / 2;
                bytes[at] ^= 0x20;
            })
            .expect("rewrites");
        assert!(flipped);
    }
    let verify = run(dir.path(), &["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        said.contains("sequence 2"),
        "names the damaged sequence: {said}"
    );
    let serve = run(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(serve.status.code(), Some(2));
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(
        err.contains("refusing to start") && err.contains("sequence 2"),
        "{err}"
    );
}

fn token_login(addr: &str, username: &str) -> Option<String> {
    let body =
        format!("{{\"username\":\"{username}\",\"password\":\"{PASSWORD}\",\"mode\":\"token\"}}");
    let (status, _, body) = request(addr, "POST", "/v1/login", &body, None)?;
    (status == 200).then(|| {
        serde_json::from_str::<serde_json::Value>(&body).ok()?["refresh_token"]
            .as_str()
            .map(str::to_owned)
    })?
}

/// One refresh over a form body; the new refresh token, or `None` (refused or server gone).
fn refresh(addr: &str, token: &str) -> Option<String> {
    let body = format!("grant_type=refresh_token&refresh_token={token}");
    let (status, _, body) = raw_request(
        addr,
        "POST",
        "/oauth/token",
        "application/x-www-form-urlencoded",
        &body,
        "",
    )?;
    if status != 200 {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(&body).ok()?["refresh_token"]
        .as_str()
        .map(str::to_owned)
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn sigkill_under_refresh_load_loses_no_acknowledged_rotation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve(dir.path());
    let addr = server.addr.clone();
    let families: Vec<String> = (0..8)
        .map(|i| {
            let name = format!("rotator{i}");
            register(&addr, &name).expect("registered");
            token_login(&addr, &name).expect("token login")
        })
        .collect();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = families
        .into_iter()
        .map(|mut token| {
            let (addr, acked, stop) = (addr.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(next) = refresh(&addr, &token) else {
                        return;
                    };
                    acked.lock().expect("lock").push(next.clone());
                    token = next;
                }
            })
        })
        .collect();
    kill_mid_burst(&mut server, &stop, workers, || {
        acked.lock().expect("lock").len() >= 200
    });
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 20,
        "the load got going ({} rotations)",
        acked.len()
    );
    assert!(run(dir.path(), &["verify"]).status.success());
    let replay = run(
        dir.path(),
        &["replay", "--json", "--type", "RefreshTokenRotated"],
    );
    let logged: std::collections::HashSet<String> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["event"]["token_digest"].as_str().map(str::to_owned))
        .collect();
    for token in &acked {
        assert!(
            logged.contains(&sha256_hex(token)),
            "an acknowledged rotation is missing after SIGKILL"
        );
    }
    assert!(
        run(dir.path(), &["replay", "--rebuild"]).status.success(),
        "views agree with the log"
    );
}

#[test]
fn operators_show_a_pending_enrolment_qr_and_reset_mfa() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve(dir.path());
    register(&server.addr, "alice").expect("registered");
    let body = format!("{{\"username\":\"alice\",\"password\":\"{PASSWORD}\"}}");
    let (_, _, login) = request(&server.addr, "POST", "/v1/login", &body, None).expect("answers");
    let access = serde_json::from_str::<serde_json::Value>(&login).expect("json")["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let bearer = format!("Authorization: Bearer {access}\r\n");
    let (status, _, enrolment) = raw_request(
        &server.addr,
        "POST",
        "/v1/mfa/totp",
        "application/json",
        "{}",
        &bearer,
    )
    .expect("answers");
    assert_eq!(status, 200, "{enrolment}");
    sigterm(&server.child);
    assert!(server.child.wait().expect("exits").success());

    let qr = run(dir.path(), &["account", "mfa-qr", "alice"]);
    assert!(
        qr.status.success(),
        "{}",
        String::from_utf8_lossy(&qr.stderr)
    );
    let shown = String::from_utf8_lossy(&qr.stdout);
    assert!(
        shown.lines().count() > 20,
        "a QR code, drawn in the terminal: {shown}"
    );
    assert!(
        !shown.contains(
            enrolment
                .split("\"secret\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("?")
        ),
        "the secret itself is not printed"
    );
    let nobody = run(dir.path(), &["account", "mfa-qr", "nobody"]);
    assert_eq!(nobody.status.code(), Some(2));

    let reset = run(
        dir.path(),
        &["account", "reset-mfa", "alice", "--operator", "ops-jane"],
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let replay = run(dir.path(), &["replay", "--json"]);
    let log = String::from_utf8_lossy(&replay.stdout);
    assert!(
        log.contains("ops-jane"),
        "the reset is recorded with the operator's name"
    );
    let again = run(dir.path(), &["account", "mfa-qr", "alice"]);
    assert!(
        !again.status.success(),
        "nothing is pending after the reset"
    );
}

/// `tessera <args>` with `stdin` as its standard input.
fn run_with_stdin(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = tessera(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tessera runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("tessera exits")
}

/// Ids, kids and times differ between two folders; everything else must not.
fn normalised(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ';')
        .map(|piece| {
            let token = piece.trim_end_matches(|c: char| c.is_whitespace() || "();".contains(c));
            let rest = &piece[token.len()..];
            let is_uuid = token.len() == 36 && token.matches('-').count() == 4;
            let is_kid = token.len() == 43
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            let is_time = token.len() == 20 && token.ends_with('Z') && token.contains('T');
            let token = if is_uuid {
                "<id>"
            } else if is_kid {
                "<kid>"
            } else if is_time {
                "<time>"
            } else {
                token
            };
            format!("{token}{rest}")
        })
        .collect()
}

/// The operator commands every path must answer alike, in order: (arguments, standard input,
/// whether it succeeds). Each command's stdout (or, for a failure, stderr) is returned.
fn operator_sequence(data: &Path) -> Vec<String> {
    let steps: &[(&[&str], &str, bool)] = &[
        (
            &["account", "add", "alice"],
            "Correct horse 9 battery\n",
            true,
        ),
        (
            &["account", "add", "bob", "--email", "bob@example.com"],
            "Correct horse 9 battery\n",
            true,
        ),
        (&["account", "add", "weak"], "short\n", false),
        (
            &["account", "add", "ALICE"],
            "Correct horse 9 battery\n",
            false,
        ),
        (&["account", "show", "alice"], "", true),
        (&["account", "list"], "", true),
        (
            &["account", "disable", "bob", "--operator", "ops-jane"],
            "",
            true,
        ),
        (
            &["account", "disable", "bob", "--operator", "ops-jane"],
            "",
            true,
        ),
        (&["account", "show", "bob"], "", true),
        (
            &["account", "enable", "bob", "--operator", "ops-jane"],
            "",
            true,
        ),
        (
            &["account", "enable", "bob", "--operator", "ops-jane"],
            "",
            true,
        ),
        (&["account", "sessions", "alice"], "", true),
        (
            &["account", "logout", "alice", "--operator", "ops-jane"],
            "",
            true,
        ),
        (
            &["account", "reset-mfa", "alice", "--operator", "ops-jane"],
            "",
            false,
        ),
        (&["account", "show", "nobody"], "", false),
        (
            &["account", "disable", "nobody", "--operator", "ops-jane"],
            "",
            false,
        ),
        (&["keys", "rotate", "--operator", "ops-jane"], "", true),
        (&["keys", "list"], "", true),
    ];
    steps
        .iter()
        .map(|(args, stdin, ok)| {
            let out = run_with_stdin(data, args, stdin);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.success(), *ok, "{args:?}: {stderr}");
            assert!(
                !stderr.contains("no server answers"),
                "{args:?}: no stale-socket notice: {stderr}"
            );
            if *ok {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                assert_eq!(out.status.code(), Some(2), "{args:?}");
                stderr
            }
        })
        .collect()
}

fn events_of(data: &Path) -> Vec<serde_json::Value> {
    let replay = run(data, &["replay", "--json"]);
    assert!(replay.status.success());
    String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("replay --json prints JSON lines"))
        .collect()
}

fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

fn stop(mut server: Server) {
    sigterm(&server.child);
    assert!(server.child.wait().expect("exits").success());
}

/// The read-only commands, whose output must be identical through the socket and directly.
fn snapshot(data: &Path) -> Vec<String> {
    let commands: [&[&str]; 5] = [
        &["account", "list"],
        &["account", "show", "alice"],
        &["account", "show", "bob"],
        &["account", "sessions", "alice"],
        &["keys", "list"],
    ];
    commands
        .iter()
        .map(|args| {
            let out = run(data, args);
            assert!(out.status.success(), "{args:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

#[test]
fn operator_commands_go_through_the_running_servers_socket() {
    use std::os::unix::fs::PermissionsExt;
    let through_socket = tempfile::tempdir().expect("temp dir");
    let server = serve(through_socket.path());
    let socket = through_socket.path().join("admin/admin.sock");
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&through_socket.path().join("admin")), 0o700);
    assert_eq!(mode(&socket), 0o600);
    let with_server = operator_sequence(through_socket.path());

    // A session and a refresh family for `sessions` to list, then MFA to reset.
    let (session, _) = login(&server.addr, "alice").expect("alice logs in");
    let sessions = run(through_socket.path(), &["account", "sessions", "alice"]);
    let listed = String::from_utf8_lossy(&sessions.stdout);
    assert!(listed.contains(&format!("session {session}")), "{listed}");
    let body = format!("{{\"username\":\"alice\",\"password\":\"{PASSWORD}\"}}");
    let (_, _, tokens) = request(&server.addr, "POST", "/v1/login", &body, None).expect("answers");
    let access = serde_json::from_str::<serde_json::Value>(&tokens).expect("json")["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let bearer = format!("Authorization: Bearer {access}\r\n");
    let (status, _, _) = raw_request(
        &server.addr,
        "POST",
        "/v1/mfa/totp",
        "application/json",
        "{}",
        &bearer,
    )
    .expect("answers");
    assert_eq!(status, 200);
    let qr = run(through_socket.path(), &["account", "mfa-qr", "alice"]);
    assert!(
        qr.status.success(),
        "{}",
        String::from_utf8_lossy(&qr.stderr)
    );
    assert!(String::from_utf8_lossy(&qr.stdout).lines().count() > 20);
    let snapshot_live = snapshot(through_socket.path());
    assert!(snapshot_live[3].contains("family "), "{}", snapshot_live[3]);
    let reset = run(
        through_socket.path(),
        &["account", "reset-mfa", "alice", "--operator", "ops-joe"],
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let snapshot_live = snapshot(through_socket.path());

    let (status, _, metrics) = request(&server.addr, "GET", "/metrics", "", None).expect("answers");
    assert_eq!(status, 200);
    let admin_requests: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tessera_admin_requests_total "))
        .and_then(|v| v.parse().ok())
        .expect("admin requests are counted");
    assert!(admin_requests >= 20, "{admin_requests}");
    // The public listener has no admin routes.
    let (status, _, _) =
        request(&server.addr, "GET", "/admin/v1/accounts", "", None).expect("answers");
    assert_eq!(status, 404);

    stop(server);
    assert!(!socket.exists(), "a clean stop removes the socket");
    assert_eq!(
        snapshot(through_socket.path()),
        snapshot_live,
        "the same output directly as through the socket"
    );
    let events = events_of(through_socket.path());
    assert_eq!(count(&events, "AccountRegistered"), 2);
    assert_eq!(
        count(&events, "AccountDisabled"),
        1,
        "disabling twice records once"
    );
    assert_eq!(
        count(&events, "AccountEnabled"),
        1,
        "enabling twice records once"
    );
    assert_eq!(count(&events, "AccountSignedOutEverywhere"), 1);
    assert_eq!(count(&events, "TotpDisabled"), 1);
    assert_eq!(
        count(&events, "SigningKeyAdded"),
        2,
        "the first key and the rotation"
    );
    let by_operator = |kind: &str, name: &str| {
        events
            .iter()
            .any(|e| e["type"] == kind && e.to_string().contains(name))
    };
    assert!(by_operator("AccountDisabled", "ops-jane"));
    assert!(by_operator("AccountEnabled", "ops-jane"));
    assert!(by_operator("AccountSignedOutEverywhere", "ops-jane"));
    assert!(by_operator("TotpDisabled", "ops-joe"));
    let raw = String::from_utf8_lossy(&run(through_socket.path(), &["replay", "--json"]).stdout)
        .into_owned();
    assert!(!raw.contains(PASSWORD), "the password is never in the log");

    // The same commands with no server: the folder is opened directly, same output.
    // The folder has served once (its first signing key exists, as in the other folder).
    let directly = tempfile::tempdir().expect("temp dir");
    stop(serve(directly.path()));
    assert!(!directly.path().join("admin/admin.sock").exists());
    let without_server = operator_sequence(directly.path());
    for (a, b) in with_server.iter().zip(&without_server) {
        assert_eq!(normalised(a), normalised(b));
    }
    assert_eq!(with_server.len(), without_server.len());
    let events = events_of(directly.path());
    assert_eq!(count(&events, "AccountDisabled"), 1);
    assert_eq!(count(&events, "AccountEnabled"), 1);
}

#[test]
fn a_stale_socket_after_sigkill_falls_back_with_a_notice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve(dir.path());
    register(&server.addr, "alice").expect("registered");
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    let socket = dir.path().join("admin/admin.sock");
    assert!(socket.exists(), "a killed server leaves its socket behind");
    let out = run(dir.path(), &["account", "show", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "no server answers on {}; opening the data folder directly",
            socket.display()
        )
    );
    // The next server replaces the stale socket and answers on it.
    let again = serve(dir.path());
    let out = run(dir.path(), &["account", "list"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("no server answers"));
    stop(again);
}

/// One raw HTTP/1.1 exchange on the admin socket.
fn admin_request(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).expect("written");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn the_admin_socket_answers_problems_for_bad_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(dir.path());
    let socket = dir.path().join("admin/admin.sock");
    let problem = |status: u16, head: &str, body: &str, expected: u16| {
        assert_eq!(status, expected, "{body}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).expect("problem json");
        assert_eq!(v["status"], expected);
        v
    };
    let (s, h, b) = admin_request(
        &socket,
        "POST",
        "/admin/v1/accounts",
        "application/json",
        "{\"username\":",
    );
    problem(s, &h, &b, 400);
    let (s, h, b) = admin_request(
        &socket,
        "POST",
        "/admin/v1/accounts/alice/disable",
        "application/json",
        "{\"who\":\"x\"}",
    );
    problem(s, &h, &b, 422);
    let (s, h, b) = admin_request(
        &socket,
        "GET",
        "/admin/v1/accounts/nobody",
        "application/json",
        "",
    );
    let v = problem(s, &h, &b, 404);
    assert_eq!(v["detail"], "no account named nobody");
    let (s, h, b) = admin_request(&socket, "DELETE", "/admin/v1/keys", "application/json", "");
    problem(s, &h, &b, 405);
    let (s, h, b) = admin_request(&socket, "GET", "/v1/me", "application/json", "");
    problem(s, &h, &b, 404);
    let (s, h, b) = admin_request(
        &socket,
        "POST",
        "/admin/v1/accounts/alice/sessions",
        "application/json",
        "{}",
    );
    problem(s, &h, &b, 405);
    let (s, h, b) = admin_request(
        &socket,
        "POST",
        "/admin/v1/accounts/alice/nothing",
        "application/json",
        "{}",
    );
    problem(s, &h, &b, 404);
    let (s, h, b) = admin_request(&socket, "POST", "/admin/v1/accounts", "text/plain", "x");
    problem(s, &h, &b, 415);
    let out = run(
        dir.path(),
        &["account", "disable", "nobody", "--operator", "ops"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tessera: no account named nobody\n"
    );
    stop(server);
}

#[test]
fn the_log_is_read_verified_and_backed_up_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = serve(&data);
    register(&server.addr, "alice").expect("registered");
    login(&server.addr, "alice").expect("logged in");
    let json = run(&data, &["replay", "--json"]);
    let text = run(&data, &["replay"]);
    assert!(json.status.success() && text.status.success());
    let only = run(&data, &["replay", "--json", "--type", "AccountRegistered"]);
    assert_eq!(String::from_utf8_lossy(&only.stdout).lines().count(), 1);
    let verify = run(&data, &["verify"]);
    assert!(verify.status.success());
    let verified = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verified.starts_with("log intact: "), "{verified}");
    let rebuild = run(&data, &["replay", "--rebuild"]);
    assert!(!rebuild.status.success());
    assert!(String::from_utf8_lossy(&rebuild.stderr).contains("stop it to rebuild"));
    // A backup while the server serves, then one into the same folder: refused.
    let copy = dir.path().join("copy");
    let copy_arg = copy.to_str().expect("a UTF-8 path");
    let backup = run(&data, &["backup", copy_arg]);
    assert!(backup.status.success(), "{:?}", backup);
    let backed = String::from_utf8_lossy(&backup.stdout).into_owned();
    assert!(backed.starts_with("backed up "), "{backed}");
    let again = run(&data, &["backup", copy_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds files"));
    stop(server);
    // The same output read from the folder once the server is gone.
    assert_eq!(run(&data, &["replay", "--json"]).stdout, json.stdout);
    assert_eq!(run(&data, &["replay"]).stdout, text.stdout);
    assert_eq!(
        String::from_utf8_lossy(&run(&data, &["verify"]).stdout),
        verified
    );
    // The copy is a data folder: it verifies, names the same head, and serves.
    let copy_verify = run(&copy, &["verify"]);
    assert!(copy_verify.status.success());
    let head = verified
        .split("head hash ")
        .nth(1)
        .expect("a head hash")
        .trim();
    assert!(backed.contains(head), "{backed} names {head}");
    let copied = serve(&copy);
    assert!(
        login(&copied.addr, "alice").is_some(),
        "the account came along"
    );
    stop(copied);
}

#[test]
fn replay_follow_prints_new_events_and_ends_cleanly_when_the_server_is_killed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut server = serve(&data);
    let mut follower = tessera(&data)
        .args(["replay", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the follower starts");
    let mut stdout = follower.stdout.take().expect("piped stdout");
    let printed = Arc::new(Mutex::new(Vec::<u8>::new()));
    let reader = {
        let printed = printed.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                printed.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        })
    };
    let seen = |kind: &str| String::from_utf8_lossy(&printed.lock().expect("lock")).contains(kind);
    register(&server.addr, "alice").expect("registered");
    for _ in 0..500 {
        if seen("AccountRegistered") {
            break;
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "a test harness pacing a real process, not domain time"
        )]
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        seen("AccountRegistered"),
        "the follower printed the new event"
    );
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let status = follower.wait().expect("the follower ends");
    reader.join().expect("reader");
    let mut stderr = String::new();
    follower
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(!status.success(), "an interrupted follow is a failure");
    assert!(stderr.contains("stopped answering"), "{stderr}");
    let out = printed.lock().expect("lock").clone();
    assert_eq!(out.last(), Some(&b'\n'), "no partial line");
    for line in String::from_utf8_lossy(&out).lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is whole JSON");
    }
}

/// A data folder holding `accounts` registrations, written through the real engine with a
/// cheap hash and without fsync (the test is about the copy, not the writes).
fn long_log(data: &Path, accounts: u64) {
    use tessera_storage::{Engine, EngineConfig, SledOptions, SledStore};
    let store = SledStore::open(
        data,
        SledOptions {
            fdatasync: false,
            ..SledOptions::default()
        },
    )
    .expect("store opens");
    struct Fixed;
    impl tessera_storage::Clock for Fixed {
        fn now(&self) -> tessera_core::Timestamp {
            tessera_core::Timestamp::from_millis(1_700_000_000_000)
        }
    }
    let engine = Engine::start(
        Box::new(store),
        tessera_core::Policy::fast_for_tests(),
        Arc::new(Fixed),
        Box::new(rand_like_rng()),
        EngineConfig {
            batch_commands_max: 4096,
            queue_commands_max: 1 << 16,
            check_invariants: false,
        },
    )
    .expect("engine starts");
    let hash = tessera_core::password::hash(
        PASSWORD,
        [7; 16],
        &tessera_core::policy::Argon2Params::INSECURE_FAST,
    )
    .expect("a hash");
    let mut pending = Vec::new();
    for i in 0..accounts {
        let register = tessera_core::account::Register {
            username: format!("user{i}"),
            email: None,
            password_hash: Some(hash.clone()),
            client: None,
        };
        pending.push(engine.submit(register).expect("queued"));
        if pending.len() == 8192 {
            for rx in pending.drain(..) {
                rx.blocking_recv()
                    .expect("answered")
                    .expect("no engine error");
            }
        }
    }
    for rx in pending {
        rx.blocking_recv()
            .expect("answered")
            .expect("no engine error");
    }
    engine.shutdown();
}

/// A deterministic RNG for [`long_log`]'s engine (ids only; nothing secret).
fn rand_like_rng() -> impl rand_core::CryptoRng + Send {
    struct Counter(u64);
    impl rand_core::TryRng for Counter {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Ok(self.0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}
    Counter(42)
}

#[test]
fn a_backup_killed_midway_is_never_mistaken_for_a_good_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    long_log(&data, 60_000);
    let copy = dir.path().join("copy");
    let mut backup = tessera(&data)
        .arg("backup")
        .arg(&copy)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the backup starts");
    let marker = copy.join("BACKUP-INCOMPLETE");
    // Killed the moment its marker exists (a loaded machine may take seconds to get there):
    // the copy has barely begun.
    let mut started = false;
    for _ in 0..30_000 {
        if marker.exists() {
            started = true;
            break;
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "a test harness pacing a real process, not domain time"
        )]
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(started, "the backup marked its folder first");
    backup.kill().expect("SIGKILL");
    let status = backup.wait().expect("ends");
    assert!(!status.success(), "killed before it finished");
    assert!(marker.exists(), "the partial copy keeps its marker");
    for args in [&["verify"][..], &["replay", "--json"][..]] {
        let out = run(&copy, args);
        assert!(!out.status.success(), "{args:?} refuses a partial copy");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("incomplete backup"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let serve = tessera(&copy)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("serve runs");
    assert!(!serve.status.success(), "serve refuses a partial copy");
    assert!(String::from_utf8_lossy(&serve.stderr).contains("incomplete backup"));
    // And the source is untouched: a complete backup of it verifies.
    let again = dir.path().join("again");
    let ok = run(&data, &["backup", again.to_str().expect("UTF-8")]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(run(&again, &["verify"]).status.success());
}

/// A key created over HTTP; `(id, key)`.
fn create_api_key(addr: &str, username: &str) -> (String, String) {
    let body =
        format!("{{\"username\":\"{username}\",\"password\":\"{PASSWORD}\",\"mode\":\"token\"}}");
    let (_, _, body) = request(addr, "POST", "/v1/login", &body, None).expect("login");
    let access = serde_json::from_str::<serde_json::Value>(&body).expect("json")["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let auth = format!("Authorization: Bearer {access}\r\n");
    let body = r#"{"name":"ci","environment":"live","expires_in":86400}"#;
    let (status, _, body) = raw_request(
        addr,
        "POST",
        "/v1/api-keys",
        "application/json",
        body,
        &auth,
    )
    .expect("create");
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    (
        v["id"].as_str().expect("id").to_owned(),
        v["key"].as_str().expect("key").to_owned(),
    )
}

fn whoami_status(addr: &str, key: &str) -> u16 {
    let header = format!("X-API-Key: {key}\r\n");
    raw_request(
        addr,
        "GET",
        "/v1/api-keys/whoami",
        "application/json",
        "",
        &header,
    )
    .expect("answers")
    .0
}

/// The secret a `tessera client add` or `rotate-secret` printed.
fn printed_secret(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("secret    "))
        .unwrap_or_else(|| panic!("no secret in {}", String::from_utf8_lossy(&out.stdout)))
        .trim()
        .to_owned()
}

fn client_credentials(addr: &str, id: &str, secret: &str) -> u16 {
    use data_encoding::BASE64;
    let auth = format!(
        "Authorization: Basic {}\r\n",
        BASE64.encode(format!("{id}:{secret}").as_bytes())
    );
    raw_request(
        addr,
        "POST",
        "/oauth/token",
        "application/x-www-form-urlencoded",
        "grant_type=client_credentials",
        &auth,
    )
    .expect("answers")
    .0
}

/// `tessera apikey revoke --prefix` with only what a scanner found: through the running
/// server's socket (by display prefix), then on the store directly (by the whole key).
#[test]
fn an_operator_revokes_a_leaked_api_key_by_prefix_with_or_without_a_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(dir.path());
    register(&server.addr, "alice").expect("registered");
    let (first_id, first) = create_api_key(&server.addr, "alice");
    let (_, second) = create_api_key(&server.addr, "alice");
    assert_eq!(whoami_status(&server.addr, &first), 200);
    let out = run(
        dir.path(),
        &[
            "apikey",
            "revoke",
            "--prefix",
            &first[..24],
            "--operator",
            "oncall",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&first_id) && printed.contains("revoked"),
        "{printed}"
    );
    assert!(!printed.contains(&first[24..]), "the key is never printed");
    assert_eq!(whoami_status(&server.addr, &first), 401);
    assert_eq!(whoami_status(&server.addr, &second), 200);
    // Too short a prefix names nothing.
    let out = run(
        dir.path(),
        &["apikey", "revoke", "--prefix", "tsr_sk_live_"],
    );
    assert!(!out.status.success());
    stop(server);
    let out = run(dir.path(), &["apikey", "revoke", "--prefix", &second]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events_of(dir.path());
    assert_eq!(count(&events, "ApiKeyRevoked"), 2);
    let server = serve(dir.path());
    assert_eq!(whoami_status(&server.addr, &second), 401);
    stop(server);
}

#[test]
fn the_issuer_is_the_address_served_and_clients_are_managed_through_the_socket() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = serve(data.path());
    let (status, _, meta) = request(
        &server.addr,
        "GET",
        "/.well-known/oauth-authorization-server",
        "",
        None,
    )
    .expect("answers");
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_str(&meta).expect("json");
    let base = format!("http://{}", server.addr);
    assert_eq!(
        meta["issuer"],
        base.as_str(),
        "the issuer is the address bound"
    );
    assert_eq!(
        meta["token_endpoint"],
        format!("{base}/oauth/token").as_str()
    );

    let add = run(
        data.path(),
        &[
            "client",
            "add",
            "backend",
            "--name",
            "Backend",
            "--grant",
            "client_credentials",
            "--scope",
            "read",
            "--operator",
            "ops-jane",
        ],
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let secret = printed_secret(&add);
    assert!(secret.starts_with("tcs_"));
    assert_eq!(client_credentials(&server.addr, "backend", &secret), 200);
    assert_eq!(
        client_credentials(&server.addr, "backend", "tcs_wrong"),
        401
    );

    let bad = run(
        data.path(),
        &[
            "client",
            "add",
            "web",
            "--redirect-uri",
            "https://*.example/cb",
            "--scope",
            "read",
            "--operator",
            "ops-jane",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("wildcards"));
    let public_cc = run(
        data.path(),
        &[
            "client",
            "add",
            "app",
            "--public",
            "--grant",
            "client_credentials",
            "--scope",
            "read",
            "--operator",
            "ops-jane",
        ],
    );
    assert!(String::from_utf8_lossy(&public_cc.stderr).contains("public client"));
    assert_eq!(
        public_cc.status.code(),
        Some(2),
        "a public client has no secret"
    );

    let list = run(data.path(), &["client", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("backend\tconfidential"));
    let show = run(data.path(), &["client", "show", "backend"]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("Backend") && !shown.contains(&secret),
        "{shown}"
    );

    let rotated = run(
        data.path(),
        &[
            "client",
            "rotate-secret",
            "backend",
            "--overlap-secs",
            "3600",
            "--operator",
            "ops-jane",
        ],
    );
    assert!(rotated.status.success());
    let new = printed_secret(&rotated);
    assert_eq!(
        client_credentials(&server.addr, "backend", &secret),
        200,
        "the overlap"
    );
    assert_eq!(client_credentials(&server.addr, "backend", &new), 200);

    let removed = run(
        data.path(),
        &["client", "remove", "backend", "--operator", "ops-jane"],
    );
    assert!(removed.status.success());
    assert_eq!(client_credentials(&server.addr, "backend", &new), 401);
    let gone = run(data.path(), &["client", "show", "backend"]);
    assert_eq!(gone.status.code(), Some(2));
    stop(server);

    let events = events_of(data.path());
    assert_eq!(count(&events, "ClientRegistered"), 1);
    assert_eq!(count(&events, "ClientSecretRotated"), 1);
    assert_eq!(count(&events, "ClientRemoved"), 1);
    let raw = String::from_utf8_lossy(&run(data.path(), &["replay", "--json"]).stdout).into_owned();
    assert!(
        !raw.contains(&secret) && !raw.contains(&new),
        "no secret in the log"
    );

    // With no server, the folder is opened directly.
    let again = run(
        data.path(),
        &[
            "client",
            "add",
            "backend",
            "--grant",
            "client_credentials",
            "--scope",
            "read",
            "--operator",
            "ops-jane",
        ],
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(printed_secret(&again).starts_with("tcs_"));
    let server = serve(data.path());
    assert_eq!(
        client_credentials(&server.addr, "backend", &printed_secret(&again)),
        200,
        "a secret made without the server works with it (the same key)"
    );
    stop(server);
}

/// MD5 of [`PASSWORD`], raw and salted with "NaCl" before it.
const PASSWORD_MD5: &str = "252bc6aa46a356da20cfc53f7cb06931";
const PASSWORD_MD5_NACL_BEFORE: &str = "6945543c948716b3491d96c8b9b54fe2";
/// Django's PBKDF2-SHA256 of [`PASSWORD`], 1000 iterations, salt "seasalt".
const PASSWORD_PBKDF2: &str =
    "pbkdf2_sha256$1000$seasalt$+0ZWViBJF5kpyk3nreMRq1V3mPHbwMxZ2+Vuoz8Hqos=";

fn import_file(dir: &Path, name: &str, lines: &[Vec<u8>]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut bytes = Vec::new();
    for l in lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

fn login_with(addr: &str, username: &str, password: &str) -> u16 {
    let body = format!("{{\"username\":\"{username}\",\"password\":\"{password}\"}}");
    request(addr, "POST", "/v1/login", &body, None).unwrap().0
}

#[test]
fn legacy_import_is_resumable_reports_bad_lines_and_sunset_tokens_reset_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bcrypt_hash = bcrypt::hash_with_salt(PASSWORD, 4, [3; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let line = |json: String| json.into_bytes();
    let lines = vec![
        line(format!(
            r#"{{"username":"alice","email":"alice@example.com","hash":"{PASSWORD_MD5}"}}"#
        )),
        line(format!(
            r#"{{"username":"bob","hash":"{PASSWORD_MD5_NACL_BEFORE}","salt":"NaCl","salt_position":"before"}}"#
        )),
        line(format!(r#"{{"username":"carol","hash":"{bcrypt_hash}"}}"#)),
        line(format!(
            r#"{{"username":"dave","hash":"{PASSWORD_PBKDF2}"}}"#
        )),
        line(format!(
            r#"{{"username":"erin","hash":"{PASSWORD_MD5}","last_login":1600000000}}"#
        )),
        // 6: truncated MD5
        line(format!(
            r#"{{"username":"t1","hash":"{}"}}"#,
            &PASSWORD_MD5[..30]
        )),
        // 7: unknown scheme
        line(r#"{"username":"t2","hash":"$1$saltsalt$abcdefghijklmnopqrstuv"}"#.into()),
        // 8: bcrypt with an invalid cost
        line(format!(
            r#"{{"username":"t3","hash":"{}"}}"#,
            bcrypt_hash.replacen("$04$", "$03$", 1)
        )),
        // 9: salted MD5 without its salt
        line(format!(
            r#"{{"username":"t4","hash":"{PASSWORD_MD5}","salt_position":"after"}}"#
        )),
        // 10: a duplicate in the same file
        line(format!(r#"{{"username":"ALICE","hash":"{PASSWORD_MD5}"}}"#)),
        // 11: not UTF-8
        b"{\"username\":\"t5\",\"hash\":\"\xff\xfe\"}".to_vec(),
        // 12: far too long
        line(format!(
            r#"{{"username":"t6","hash":"{}"}}"#,
            "a".repeat(20_000)
        )),
        // 13: not JSON, 14: an unknown field
        line("username=t7".into()),
        line(format!(
            r#"{{"username":"t8","hash":"{PASSWORD_MD5}","role":"admin"}}"#
        )),
    ];
    let file = import_file(dir.path(), "users.jsonl", &lines);
    let file = file.to_str().unwrap();

    let first = run(&data, &["import", "users", file]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("imported 5, skipped 1, refused 8 (of 14 lines"),
        "{stdout}"
    );
    for (n, why) in [
        (6, "truncated or malformed MD5"),
        (7, "unknown hash scheme"),
        (8, "bcrypt cost 3 is invalid"),
        (9, "salted MD5 without its salt"),
        (10, "skipped: the username exists already"),
        (11, "not UTF-8"),
        (12, "longer than 8192 bytes"),
        (13, "not a JSON record"),
        (14, "unknown field `role`"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("line {n}")) && l.contains(why)),
            "line {n}: {why}\n{stderr}"
        );
    }
    assert!(
        !stderr.contains(PASSWORD_MD5),
        "no hash is quoted: {stderr}"
    );
    // Run again (as after a crash): everything already there is skipped, nothing doubles.
    let again = run(&data, &["import", "users", file]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("imported 0, skipped 6, refused 8"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // Through the running server's socket, the same way.
    let server = serve(&data);
    let more = import_file(
        dir.path(),
        "more.jsonl",
        &[line(format!(
            r#"{{"username":"frank","hash":"{PASSWORD_MD5}"}}"#
        ))],
    );
    let through = run(&data, &["import", "users", more.to_str().unwrap()]);
    assert!(through.status.success());
    assert!(String::from_utf8_lossy(&through.stdout).contains("imported 1, skipped 0, refused 0"));

    // Every scheme logs in with the legacy password; a wrong one is refused alike.
    for user in ["alice", "bob", "carol", "dave", "frank"] {
        assert_eq!(
            login_with(&server.addr, user, "Wrong password 123"),
            401,
            "{user}"
        );
        assert_eq!(login_with(&server.addr, user, PASSWORD), 200, "{user}");
    }
    // The MD5 itself is no password.
    assert_eq!(login_with(&server.addr, "alice", PASSWORD_MD5), 401);

    let status = run(&data, &["migration", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["current"], 5, "{status}");
    assert_eq!(status["legacy"]["md5-wrapped"], 1, "{status}");
    let (_, _, metrics) = request(&server.addr, "GET", "/metrics", "", None).unwrap();
    assert!(metrics.contains("tessera_accounts_by_scheme{scheme=\"argon2id\"} 5"));
    assert!(metrics.contains("tessera_accounts_by_scheme{scheme=\"legacy-md5-wrapped\"} 1"));

    // erin last logged in years ago: the sunset retires her credential and exports a token.
    let tokens = dir.path().join("tokens.jsonl");
    let sunset = run(
        &data,
        &[
            "migration",
            "sunset",
            "--operator",
            "ops-jane",
            "--out",
            tokens.to_str().unwrap(),
        ],
    );
    assert!(
        sunset.status.success(),
        "{}",
        String::from_utf8_lossy(&sunset.stderr)
    );
    let exported = std::fs::read_to_string(&tokens).unwrap();
    let exported: Vec<serde_json::Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0]["username"], "erin");
    let token = exported[0]["reset_token"].as_str().unwrap().to_owned();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Exporting over an existing file is refused.
    let twice = run(
        &data,
        &[
            "migration",
            "sunset",
            "--operator",
            "ops-jane",
            "--out",
            tokens.to_str().unwrap(),
        ],
    );
    assert_eq!(twice.status.code(), Some(2));

    // The right legacy password now answers exactly as a wrong one.
    let right = request(
        &server.addr,
        "POST",
        "/v1/login",
        &format!("{{\"username\":\"erin\",\"password\":\"{PASSWORD}\"}}"),
        None,
    )
    .unwrap();
    let wrong = request(
        &server.addr,
        "POST",
        "/v1/login",
        "{\"username\":\"erin\",\"password\":\"Wrong password 123\"}",
        None,
    )
    .unwrap();
    assert_eq!((right.0, &right.2), (wrong.0, &wrong.2));

    let reset = |token: &str, password: &str| {
        request(
            &server.addr,
            "POST",
            "/v1/password/reset",
            &format!("{{\"reset_token\":\"{token}\",\"new_password\":\"{password}\"}}"),
            None,
        )
        .unwrap()
    };
    assert_eq!(reset(&token, "password").0, 422, "the policy still applies");
    assert_eq!(reset(&token, "Staple battery 7 horse").0, 204);
    let reused = reset(&token, "Another battery 8 horse");
    assert_eq!(reused.0, 400);
    assert!(reused.2.contains("reset-token-invalid"), "{}", reused.2);
    let forged = format!("tsp_{}", "A".repeat(43));
    assert_eq!(reset(&forged, "Another battery 8 horse").0, 400);
    assert_eq!(
        login_with(&server.addr, "erin", "Staple battery 7 horse"),
        200
    );

    stop(server);
    let events = events_of(&data);
    assert_eq!(count(&events, "AccountImported"), 6);
    assert_eq!(count(&events, "PasswordRehashed"), 5);
    assert_eq!(count(&events, "LegacyCredentialRetired"), 1);
    assert_eq!(count(&events, "PasswordReset"), 1);
    let log = serde_json::to_string(&events).unwrap();
    assert!(
        !log.contains(&token[4..]),
        "the reset token is never logged"
    );
    assert!(log.contains("<redacted md5-wrapped hash>"));
}

#[test]
fn the_scheduled_sunset_leaves_reset_tokens_in_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = import_file(
        dir.path(),
        "old.jsonl",
        &[
            format!(r#"{{"username":"olduser","hash":"{PASSWORD_MD5}","last_login":1500000000}}"#)
                .into_bytes(),
            format!(r#"{{"username":"fresh","hash":"{PASSWORD_MD5}"}}"#).into_bytes(),
        ],
    );
    assert!(
        run(&data, &["import", "users", file.to_str().unwrap()])
            .status
            .success()
    );
    let mut child = tessera(&data)
        .env("TESSERA_POLICY__MIGRATION__SUNSET_EVERY_SECS", "1")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("tessera listening on http://")
        .unwrap()
        .to_owned();
    let tokens_dir = data.join("reset-tokens");
    let mut found = None;
    for _ in 0..100 {
        let complete = std::fs::read_dir(&tokens_dir).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        });
        if let Some(path) = complete {
            found = Some(path);
            break;
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "a test harness waiting for a real process, not domain time"
        )]
        std::thread::sleep(Duration::from_millis(100));
    }
    let path = found.expect("the scheduled sunset wrote its tokens");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&tokens_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let exports: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exports.len(), 1, "only the inactive account: {text}");
    assert_eq!(exports[0]["username"], "olduser");
    let token = exports[0]["reset_token"].as_str().unwrap();
    let body =
        format!("{{\"reset_token\":\"{token}\",\"new_password\":\"Staple battery 7 horse\"}}");
    assert_eq!(
        request(&addr, "POST", "/v1/password/reset", &body, None)
            .unwrap()
            .0,
        204
    );
    assert_eq!(login_with(&addr, "fresh", PASSWORD), 200);
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}
