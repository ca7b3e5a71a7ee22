//! `tessera-bench` as a process: how it finds the server binary, and short real runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a helper that fails stops the test at the step that failed"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
}

/// The shortest run that still measures something.
const TINY: [&str; 8] = [
    "--duration",
    "0.3",
    "--warmup",
    "0.1",
    "--repeats",
    "1",
    "--ceiling-secs",
    "0.2",
];

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("tessera-bench runs")
}

fn report(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "status {:?}, stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn a_missing_server_binary_says_how_to_build_it() {
    let out = run(bench().args(["verify", "--tessera", "/nonexistent/tessera"]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cargo build --release -p tessera") && stderr.contains("--tessera"),
        "{stderr}"
    );
}

#[test]
fn the_hello_ceiling_runs_in_a_child_process() {
    let out = run(bench()
        .args(["hello", "--connections", "2", "--json"])
        .args(TINY));
    let r = report(&out);
    assert_eq!(r["workload"], "hello");
    let rps = r["results"][0]["value"].as_f64().expect("a figure");
    assert!(rps > 0.0, "{r}");
}

/// Needs the `tessera` binary next to `tessera-bench` (`cargo test --workspace` builds it, as
/// the cli crate's own process tests use it; `cargo build -p tessera` does too). Without it
/// this test says so and checks nothing.
#[test]
fn verify_runs_against_a_child_tessera_serve() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_tessera-bench"));
    let tessera = exe.with_file_name(format!("tessera{}", std::env::consts::EXE_SUFFIX));
    if !tessera.is_file() {
        eprintln!(
            "skipped: no {} (run `cargo build -p tessera` first)",
            tessera.display()
        );
        return;
    }
    let out = run(bench()
        .args(["verify", "--connections", "2", "--json"])
        .args(TINY));
    let r = report(&out);
    assert_eq!(r["workload"], "verify");
    let row = &r["results"][0];
    assert!(row["value"].as_f64().expect("a figure") > 0.0, "{r}");
    assert!(
        row["detail"]["runs"][0]["run"]["errors"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty),
        "{r}"
    );
}
