//! The admin socket's peer check, with the expected uid injected: a peer of another user is
//! refused with 403 problem+json and counted, whatever the file modes would allow. And the
//! legacy import and migration routes as the CLI calls them.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;

use tessera_http::HttpConfig;
use tessera_http::admin::{AdminOptions, start_admin};
use tessera_tests::server::Server;

/// One request on a fresh connection to the socket, from a blocking thread.
async fn get(socket: std::path::PathBuf, path: &'static str) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connects");
        let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
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
    })
    .await
    .expect("the request thread ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_user_is_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let data = tempfile::tempdir().expect("temp dir");
    let own = std::fs::metadata(data.path()).expect("exists").uid();

    let other = start_admin(
        s.app.clone(),
        data.path(),
        AdminOptions {
            expected_uid: Some(own.wrapping_add(1)),
        },
    )
    .await
    .expect("starts");
    let (status, head, body) = get(other.path.clone(), "/admin/v1/accounts").await;
    assert_eq!(status, 403, "{body}");
    assert!(head.contains("content-type: application/problem+json"));
    let problem: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(problem["type"], "urn:tessera:problem:admin-peer-refused");
    assert_eq!(
        s.app
            .metrics
            .admin_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let metrics = tessera_http::metrics::render(&s.app);
    assert!(metrics.contains("tessera_admin_peers_refused_total 1"));
    other.shutdown().await;
    assert!(!data.path().join("admin/admin.sock").exists());

    // The same socket, expecting the owner of the file (this process's user): answered.
    let own_user = start_admin(s.app.clone(), data.path(), AdminOptions::default())
        .await
        .expect("starts again");
    assert_eq!(own_user.expected_uid, own);
    let (status, _, body) = get(own_user.path.clone(), "/admin/v1/accounts").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "[]");
    own_user.shutdown().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_socket_is_not_taken_over() {
    let s = Server::start(HttpConfig::default()).await;
    let data = tempfile::tempdir().expect("temp dir");
    let first = start_admin(s.app.clone(), data.path(), AdminOptions::default())
        .await
        .expect("starts");
    let second = start_admin(s.app.clone(), data.path(), AdminOptions::default()).await;
    assert!(matches!(
        second,
        Err(tessera_http::admin::AdminError::InUse(_))
    ));
    first.shutdown().await;
    s.stop().await;
}

/// A POST with a JSON body on a fresh connection to the socket.
async fn post(socket: std::path::PathBuf, path: &'static str, body: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connects");
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
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
        (status, body.to_owned())
    })
    .await
    .expect("the request thread ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_route_takes_bounded_batches_and_the_status_counts_them() {
    let s = Server::start(HttpConfig::default()).await;
    let data = tempfile::tempdir().expect("temp dir");
    let admin = start_admin(s.app.clone(), data.path(), AdminOptions::default())
        .await
        .expect("starts");
    let md5 = "252bc6aa46a356da20cfc53f7cb06931";
    let line = |n: u64, text: String| serde_json::json!({"line": n, "text": text});
    let batch = serde_json::json!({"lines": [
        line(1, format!(r#"{{"username":"viasocket","hash":"{md5}"}}"#)),
        line(2, r#"{"username":"broken","hash":"nope"}"#.to_owned()),
    ]});
    let (status, body) = post(admin.path.clone(), "/admin/v1/import", batch.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let results: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(results[0]["outcome"], "imported");
    assert_eq!(results[1]["outcome"], "refused");
    assert_eq!(results[1]["line"], 2);

    let long = serde_json::json!({"lines": [line(1, "x".repeat(9000))]});
    let (status, body) = post(admin.path.clone(), "/admin/v1/import", long.to_string()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("import-batch-too-large"));

    let (status, _, body) = get(admin.path.clone(), "/admin/v1/migration").await;
    assert_eq!(status, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["legacy"]["md5-wrapped"], 1);
    assert_eq!(status["days"][0]["imported"], 1);
    admin.shutdown().await;
    s.stop().await;
}
