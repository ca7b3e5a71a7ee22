//! The legacy password migration end to end: imports through the operators' function on the
//! real engine over sled, logins and resets over real HTTP. One test per kind of bad input.

use hyper::StatusCode;
use serde_json::json;
use tessera_http::HttpConfig;
use tessera_http::admin::migration::{ImportLine, ImportOutcome, LineResult, import_lines};
use tessera_tests::server::{Server, assert_problem};
use tessera_tests::{PASSWORD, T0};

/// MD5 of [`PASSWORD`].
fn md5_hex(text: &str) -> String {
    use md5::Digest;
    data_encoding::HEXLOWER.encode(&md5::Md5::digest(text.as_bytes()))
}

fn bcrypt_hash(cost: u32) -> String {
    bcrypt::hash_with_salt(PASSWORD, cost, [3; 16])
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoB)
}

/// Imports `lines` (numbered from 1) on the server's engine, as `tessera import users` does.
async fn import(s: &Server, lines: &[String]) -> Vec<LineResult> {
    let engine = s.engine.clone();
    let lines: Vec<ImportLine> = lines
        .iter()
        .enumerate()
        .map(|(i, text)| ImportLine {
            line: i as u64 + 1,
            text: text.clone(),
        })
        .collect();
    tokio::task::spawn_blocking(move || import_lines(&engine, lines, 2))
        .await
        .expect("joins")
        .expect("the engine answers")
}

fn record(username: &str, hash: &str) -> String {
    json!({"username": username, "hash": hash}).to_string()
}

/// Asserts that every line was refused with a reason containing `why`, and that no account
/// came of any of them.
async fn all_refused(s: &Server, lines: &[String], why: &str) {
    let results = import(s, lines).await;
    for r in &results {
        assert_eq!(r.outcome, ImportOutcome::Refused, "{r:?}");
        let reason = r.reason.as_deref().unwrap_or_default();
        assert!(reason.contains(why), "line {}: {reason}", r.line);
    }
    assert_eq!(s.engine.views().account_count(), 0);
    assert!(
        s.event_kinds()
            .await
            .iter()
            .all(|k| *k != "AccountImported")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_hashes_are_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let md5 = md5_hex(PASSWORD);
    let bcrypt = bcrypt_hash(4);
    let lines = [
        record("md5short", &md5[..31]),
        record("bcshort", &bcrypt[..50]),
        record("argonshort", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ"),
        record(
            "pbkdfshort",
            "pbkdf2_sha256$1000$seasalt$+0ZWViBJF5kpyk3nre",
        ),
    ];
    all_refused(&s, &lines, "truncated or malformed").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_schemes_are_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let lines = [
        record(
            "sha1user",
            "sha1$salt$0a4d55a8d778e5022fab701977c5d840bbc486d0",
        ),
        record("cryptuser", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"),
        record("plainuser", "hunter2"),
    ];
    all_refused(&s, &lines, "unknown hash scheme").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bcrypt_with_an_invalid_cost_is_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let good = bcrypt_hash(4);
    let lines: Vec<String> = ["03", "32", "16", "99"]
        .iter()
        .enumerate()
        .map(|(i, cost)| {
            record(
                &format!("bcost{i}"),
                &good.replacen("$04$", &format!("${cost}$"), 1),
            )
        })
        .collect();
    all_refused(&s, &lines, "bcrypt cost").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salted_md5_without_its_salt_is_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let md5 = md5_hex(PASSWORD);
    let lines = [
        json!({"username": "nosalt1", "hash": md5, "salt_position": "before"}).to_string(),
        json!({"username": "nosalt2", "hash": md5, "salt": "", "salt_position": "after"})
            .to_string(),
    ];
    all_refused(&s, &lines, "salted MD5 without its salt").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_usernames_in_one_file_import_once() {
    let s = Server::start(HttpConfig::default()).await;
    let md5 = md5_hex(PASSWORD);
    // The first line is the slowest to prepare (an MD5 is wrapped in argon2id; a bcrypt
    // hash is stored as it is), so the later twin would reach the writer first if line
    // order did not decide.
    let lines = [
        record("twin", &md5),
        record("TWIN", &bcrypt_hash(4)),
        record("twin", &md5_hex("another password")),
    ];
    let results = import(&s, &lines).await;
    let outcomes: Vec<ImportOutcome> = results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            ImportOutcome::Imported,
            ImportOutcome::Skipped,
            ImportOutcome::Skipped
        ],
        "the first line takes the name: {results:?}"
    );
    assert!(
        results
            .iter()
            .filter(|r| r.outcome == ImportOutcome::Skipped)
            .all(|r| r
                .reason
                .as_deref()
                .unwrap_or_default()
                .contains("exists already")),
    );
    assert_eq!(s.engine.views().account_count(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_usernames_across_runs_are_skipped_and_reported() {
    let s = Server::start(HttpConfig::default()).await;
    let lines: Vec<String> = (0..6)
        .map(|i| record(&format!("rerun{i}"), &md5_hex(&format!("password {i}"))))
        .collect();
    // An interrupted run imported the first half; the run again skips it.
    let first = import(&s, &lines[..3]).await;
    assert!(first.iter().all(|r| r.outcome == ImportOutcome::Imported));
    let again = import(&s, &lines).await;
    let outcomes: Vec<ImportOutcome> = again.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            ImportOutcome::Skipped,
            ImportOutcome::Skipped,
            ImportOutcome::Skipped,
            ImportOutcome::Imported,
            ImportOutcome::Imported,
            ImportOutcome::Imported
        ]
    );
    assert_eq!(again[0].username.as_deref(), Some("rerun0"));
    assert_eq!(s.engine.views().account_count(), 6);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_imports_nothing_of_itself_and_the_rest_continues() {
    let s = Server::start(HttpConfig::default()).await;
    let md5 = md5_hex(PASSWORD);
    let lines = [
        record("before", &md5),
        json!({"username": "badmail", "email": "not an address", "hash": md5}).to_string(),
        json!({"username": "x", "hash": md5}).to_string(),
        "{\"username\": \"cut".to_owned(),
        record("after", &md5),
    ];
    let results = import(&s, &lines).await;
    let outcomes: Vec<(u64, ImportOutcome)> = results.iter().map(|r| (r.line, r.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (1, ImportOutcome::Imported),
            (2, ImportOutcome::Refused),
            (3, ImportOutcome::Refused),
            (4, ImportOutcome::Refused),
            (5, ImportOutcome::Imported)
        ]
    );
    assert!(
        results[3]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("truncated JSON")
    );
    assert!(s.engine.views().account_by_username("badmail").is_none());
    assert_eq!(s.engine.views().account_count(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheme_is_refused_alike_and_logs_in_with_the_legacy_password() {
    let s = Server::start(HttpConfig::default()).await;
    let results = import(
        &s,
        &[
            record("wrapped", &md5_hex(PASSWORD)),
            record("blowfish", &bcrypt_hash(5)),
        ],
    )
    .await;
    assert!(results.iter().all(|r| r.outcome == ImportOutcome::Imported));
    s.register("current").await;
    let mut answers = Vec::new();
    for user in ["nobody", "wrapped", "blowfish", "current"] {
        let a = s.login(user, "Wrong password 42 zebra").await;
        answers.push((a.status, a.body.clone()));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    for user in ["wrapped", "blowfish"] {
        assert_eq!(s.login(user, PASSWORD).await.status, StatusCode::OK);
    }
    let kinds = s.event_kinds().await;
    assert_eq!(
        kinds.iter().filter(|k| **k == "PasswordRehashed").count(),
        2
    );
    s.stop().await;
}

/// Imports one account last seen long ago, runs the sunset, and returns its reset token.
async fn retired(s: &Server, username: &str) -> String {
    let long_ago = T0.as_millis() / 1000 - 200 * 24 * 60 * 60;
    let line = json!({"username": username, "hash": md5_hex(PASSWORD), "last_login": long_ago})
        .to_string();
    let results = import(s, &[line]).await;
    assert_eq!(results[0].outcome, ImportOutcome::Imported);
    let exports = tessera_http::admin::migration::sunset(&s.engine, "ops")
        .await
        .expect("the engine answers");
    assert_eq!(exports.len(), 1);
    // The retired legacy password answers as a wrong one.
    assert_problem(&s.login(username, PASSWORD).await, StatusCode::UNAUTHORIZED);
    exports[0].reset_token.to_string()
}

async fn reset(s: &Server, token: &str, password: &str) -> tessera_tests::server::Answer {
    s.post_json(
        "/v1/password/reset",
        json!({"reset_token": token, "new_password": password}),
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_reset_token_is_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let token = retired(&s, "reuser").await;
    assert_eq!(
        reset(&s, &token, "Staple battery 7 horse").await.status,
        StatusCode::NO_CONTENT
    );
    let again = reset(&s, &token, "Another lantern 8 orbit").await;
    let problem = assert_problem(&again, StatusCode::BAD_REQUEST);
    assert_eq!(
        problem["type"]
            .as_str()
            .map(|t| t.ends_with("reset-token-invalid")),
        Some(true)
    );
    assert_eq!(
        s.login("reuser", "Staple battery 7 horse").await.status,
        StatusCode::OK
    );
    assert_problem(
        &s.login("reuser", "Another lantern 8 orbit").await,
        StatusCode::UNAUTHORIZED,
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reset_token_is_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let token = retired(&s, "sleeper").await;
    s.advance(s.engine.policy().migration.reset_ttl_secs * 1000);
    assert_problem(
        &reset(&s, &token, "Staple battery 7 horse").await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &s.login("sleeper", "Staple battery 7 horse").await,
        StatusCode::UNAUTHORIZED,
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_reset_token_is_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let token = retired(&s, "target").await;
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let forged = [
        format!("tsp_{}", "A".repeat(43)),
        flipped,
        token[..token.len() - 1].to_owned(),
        format!("tss_{}", &token[4..]),
        String::new(),
    ];
    let mut bodies = Vec::new();
    for f in &forged {
        let a = reset(&s, f, "Staple battery 7 horse").await;
        assert_problem(&a, StatusCode::BAD_REQUEST);
        bodies.push(a.body.clone());
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every bad token answers alike"
    );
    // The real token still works: nothing above spent it.
    assert_eq!(
        reset(&s, &token, "Staple battery 7 horse").await.status,
        StatusCode::NO_CONTENT
    );
    s.stop().await;
}
