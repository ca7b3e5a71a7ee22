//! The `tessera` binary on PostgreSQL: migrating a sled log, verifying, serving, refusing
//! bad configuration and a tampered log, and several nodes on one database with the leader
//! killed mid-burst. Each test gets a database of its own in a throwaway cluster
//! (tessera_tests::pg); without PostgreSQL they are skipped with one note.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: helpers stop the test loudly at the step that failed, and pace real processes in real time"
)]

mod common;

use common::raw_request as request;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const PASSWORD: &str = "Correct horse 9 battery";

fn tessera(data: &Path, url: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.env("TESSERA_POLICY__ARGON2__MEMORY_KIB", "64")
        .env("TESSERA_POLICY__ARGON2__ITERATIONS", "1")
        .env("TESSERA_LOG__FILTER", "warn")
        .env("TESSERA_HTTP__TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        // A rotation whose answer died with the leader is retried with the same token, as
        // a client does: the grace window rotates it again instead of revoking the family.
        .env("TESSERA_POLICY__TOKEN__REUSE_GRACE_SECS", "30")
        .env("TESSERA_DATA", data);
    if let Some(url) = url {
        // Every node of one deployment publishes the same issuer (the address its clients
        // reach, a load balancer's), or a token from one node would not verify on another.
        c.env("TESSERA_STORAGE__BACKEND", "postgres")
            .env("TESSERA_HTTP__PUBLIC_URL", "http://tessera.test")
            .env("TESSERA_STORAGE__URL", url)
            .env("TESSERA_STORAGE__FOLLOW_INTERVAL_MS", "100");
    }
    c
}

fn run(data: &Path, url: Option<&str>, args: &[&str]) -> Output {
    tessera(data, url)
        .args(args)
        .output()
        .expect("tessera runs")
}

fn add_account(data: &Path, url: Option<&str>, name: &str) {
    let mut add = tessera(data, url)
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

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, url: &str, port: u16) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let (child, addr) = common::start_serve(tessera(data, Some(url)), &listen, Stdio::null());
    assert_eq!(addr, listen, "it listens where it was told");
    Server { child, addr }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// A token login: the access token, the refresh token and the log position the answer
/// reflects (for `Tessera-Min-Sequence`).
fn token_login(addr: &str, username: &str) -> Option<(String, String, String)> {
    let body =
        format!("{{\"username\":\"{username}\",\"password\":\"{PASSWORD}\",\"mode\":\"token\"}}");
    let (status, head, body) = request(addr, "POST", "/v1/login", "application/json", &body, "")?;
    let v = json(&body);
    (status == 200).then(|| {
        Some((
            v["access_token"].as_str()?.to_owned(),
            v["refresh_token"].as_str()?.to_owned(),
            header(&head, "tessera-sequence")?,
        ))
    })?
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

#[test]
fn a_sled_log_migrates_resumes_verifies_and_serves_on_postgres() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let sled = tempfile::tempdir().unwrap();
    for name in ["alice", "bob"] {
        add_account(sled.path(), None, name);
    }
    let out = run(
        sled.path(),
        None,
        &[
            "migrate",
            "--from",
            &sled.path().display().to_string(),
            "--to",
            &url,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("copied events 1 to"), "{said}");
    // More events in sled, then the same command again: it continues after what is there.
    add_account(sled.path(), None, "carol");
    let out = run(
        sled.path(),
        None,
        &[
            "migrate",
            "--from",
            &sled.path().display().to_string(),
            "--to",
            &url,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !said.contains("copied events 1 to"),
        "resumes after the copied prefix: {said}"
    );
    let sled_verify = run(sled.path(), None, &["verify"]);
    let pg_data = tempfile::tempdir().unwrap();
    let pg_verify = run(pg_data.path(), Some(&url), &["verify"]);
    assert!(pg_verify.status.success());
    assert_eq!(
        String::from_utf8_lossy(&sled_verify.stdout),
        String::from_utf8_lossy(&pg_verify.stdout),
        "the same events and the same head hash"
    );
    // The node needs the signing keys the log names.
    copy_keys(sled.path(), pg_data.path());
    let server = serve(pg_data.path(), &url, free_port());
    assert!(
        token_login(&server.addr, "carol").is_some(),
        "a migrated account logs in"
    );
}

fn copy_keys(from: &Path, to: &Path) {
    let (src, dst) = (from.join("keys"), to.join("keys"));
    std::fs::create_dir_all(&dst).unwrap();
    let Ok(entries) = std::fs::read_dir(&src) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_wrong_password_or_address_is_a_clear_message_not_a_panic() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let wrong = url.replace(tessera_tests::pg::SUPERUSER_PASSWORD, "not-the-password");
    let out = tessera(data.path(), Some(&wrong))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        !err.contains("not-the-password") && !err.contains("panicked"),
        "{err}"
    );
    // The password from the environment overrides the URL's.
    let out = tessera(data.path(), Some(&wrong))
        .env(
            "TESSERA_STORAGE__PASSWORD",
            tessera_tests::pg::SUPERUSER_PASSWORD,
        )
        .args(["verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let closed = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let out = run(data.path(), Some(&closed), &["verify"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the PostgreSQL log") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn a_tampered_postgres_log_is_named_by_verify_and_serve_refuses() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    for name in ["alice", "bob", "carol"] {
        add_account(data.path(), Some(&url), name);
    }
    assert!(run(data.path(), Some(&url), &["verify"]).status.success());
    let store =
        tessera_pgstore::PgStore::open(tessera_pgstore::PgOptions::new(url.clone())).unwrap();
    assert!(
        store
            .tamper_with_envelope(2, |bytes| {
                let at = bytes.len() / 2;
                bytes[at] ^= 0x20;
            })
            .unwrap()
    );
    drop(store);
    let verify = run(data.path(), Some(&url), &["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        said.contains("sequence 2"),
        "names the damaged sequence: {said}"
    );
    let out = run(
        data.path(),
        Some(&url),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to start") && err.contains("sequence 2"),
        "{err}"
    );
}

/// One refresh; the new refresh token, or `None` (refused, or nothing answered).
fn refresh(addr: &str, token: &str) -> Option<String> {
    let body = format!("grant_type=refresh_token&refresh_token={token}");
    let (status, _, body) = request(
        addr,
        "POST",
        "/oauth/token",
        "application/x-www-form-urlencoded",
        &body,
        "",
    )?;
    (status == 200).then(|| json(&body)["refresh_token"].as_str().map(str::to_owned))?
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn three_nodes_survive_the_leader_killed_mid_refresh_burst() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Option<Server>> = Vec::new();
    nodes.push(Some(serve(dirs[0].path(), &url, free_port())));
    let first = nodes[0].as_ref().unwrap().addr.clone();
    // Every node holds the same signing keys.
    copy_keys(dirs[0].path(), dirs[1].path());
    copy_keys(dirs[0].path(), dirs[2].path());
    nodes.push(Some(serve(dirs[1].path(), &url, free_port())));
    nodes.push(Some(serve(dirs[2].path(), &url, free_port())));
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().addr.clone())
        .collect();

    // Accounts registered through a follower: forwarded to the leader.
    for i in 0..6 {
        let body = format!("{{\"username\":\"user{i}\",\"password\":\"{PASSWORD}\"}}");
        let (status, _, body) = request(
            &addrs[1],
            "POST",
            "/v1/accounts",
            "application/json",
            &body,
            &format!("X-Forwarded-For: 10.0.0.{i}\r\n"),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    // A bearer token from the leader is verified by a follower, from its own views.
    // Read-your-writes: the login's sequence, echoed, makes the follower wait for it.
    let (access, _, seen) = token_login(&first, "user0").unwrap();
    let (status, head, _) = request(
        &addrs[2],
        "GET",
        "/v1/me",
        "application/json",
        "",
        &format!("Authorization: Bearer {access}\r\nTessera-Min-Sequence: {seen}\r\n"),
    )
    .unwrap();
    assert_eq!(status, 200, "{head}");

    // The burst: each worker rotates its own family through any node.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for i in 0..6 {
        let (_, mut token, _) = token_login(&first, &format!("user{i}")).unwrap();
        let (acknowledged, stop, addrs) = (acknowledged.clone(), stop.clone(), addrs.clone());
        workers.push(std::thread::spawn(move || {
            let mut n = i;
            let mut rotations = 0;
            while !stop.load(Ordering::Acquire) || rotations < 3 {
                n += 1;
                let addr = &addrs[n % addrs.len()];
                if let Some(next) = refresh(addr, &token) {
                    acknowledged.lock().unwrap().push(next.clone());
                    token = next;
                    rotations += 1;
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if rotations > 200 {
                    break;
                }
            }
            token
        }));
    }
    while acknowledged.lock().unwrap().len() < 30 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed_at = Instant::now();
    if let Some(mut leader) = nodes[0].take() {
        leader.child.kill().unwrap();
        let _ = leader.child.wait();
    }
    // A follower takes the lease; rotations through the survivors go on.
    let survivor = &addrs[1];
    let before = acknowledged.lock().unwrap().len();
    assert!(
        tessera_tests::pg::wait_until(Duration::from_secs(20), || acknowledged
            .lock()
            .unwrap()
            .len()
            > before + 6),
        "rotations resume after the leader is killed"
    );
    let takeover = killed_at.elapsed();
    stop.store(true, Ordering::Release);
    let last: Vec<String> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    eprintln!("takeover and resumed rotations within {takeover:?}");

    // Every acknowledged rotation is in the log; no token was spent into two successors
    // (outside the grace rotation a lost answer allows); each family's last token works.
    let data = tempfile::tempdir().unwrap();
    let out = run(
        data.path(),
        Some(&url),
        &["replay", "--json", "--type", "RefreshTokenRotated"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let logged: HashSet<String> = events
        .iter()
        .filter_map(|v| v["event"]["token_digest"].as_str().map(str::to_owned))
        .collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    for token in &acknowledged {
        assert!(
            logged.contains(&sha256_hex(token)),
            "an acknowledged rotation is missing from the log"
        );
    }
    let mut spent = HashSet::new();
    for v in events
        .iter()
        .filter(|v| v["event"]["grace"] == serde_json::Value::Bool(false))
    {
        let presented = v["event"]["presented_digest"].as_str().unwrap().to_owned();
        assert!(
            spent.insert(presented),
            "a token was rotated into two successors"
        );
    }
    for token in &last {
        assert!(
            refresh(survivor, token).is_some(),
            "the family's live token works"
        );
    }
    assert!(run(data.path(), Some(&url), &["verify"]).status.success());
}

#[test]
fn a_migration_cut_short_is_resumed_where_it_stopped() {
    let Some(url) = tessera_tests::pg::database() else {
        return;
    };
    let sled = tempfile::tempdir().unwrap();
    for name in ["alice", "bob", "carol", "dave"] {
        add_account(sled.path(), None, name);
    }
    // A copy that stopped after its first chunks: what a crash leaves, since each chunk is
    // one transaction that moves the head.
    {
        let source =
            tessera_storage::SledStore::open(sled.path(), tessera_storage::SledOptions::default())
                .unwrap();
        let mut target =
            tessera_pgstore::PgStore::open(tessera_pgstore::PgOptions::new(url.clone())).unwrap();
        use tessera_storage::EventStore;
        let head = target
            .import(source.read_from(1).take(3), 1, &mut |_| {})
            .unwrap();
        assert_eq!(head.sequence, 3);
    }
    let from = sled.path().display().to_string();
    let out = run(
        sled.path(),
        None,
        &["migrate", "--from", &from, "--to", &url],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("copied events 4 to"),
        "resumes after the prefix: {said}"
    );
    let pg_data = tempfile::tempdir().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run(sled.path(), None, &["verify"]).stdout),
        String::from_utf8_lossy(&run(pg_data.path(), Some(&url), &["verify"]).stdout),
        "the same chain, to the same head"
    );
}
