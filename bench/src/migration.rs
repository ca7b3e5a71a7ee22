//! The legacy migration's workloads, in process through the same functions as `tessera
//! import users` (`tessera_http::admin::migration::import_lines`) and the login use case:
//!
//! - `import`: MD5 users imported (each wrapped in argon2id, each one durable event) per
//!   second, against argon2id hashes per second on all cores measured in the same run.
//! - `legacy-timing`: how long a refused login takes for an unknown user and for users on a
//!   wrapped MD5, a bcrypt and a current argon2id hash, interleaved; and, for contrast, what
//!   each scheme's verification alone costs.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tessera_core::legacy::{self, LegacyHash};
use tessera_core::password::{PasswordHash, WorkArea};
use tessera_core::policy::Argon2Params;
use tessera_core::usecase::{ImportRequest, LoginRequest, RegisterRequest};
use tessera_core::{LoginMode, Policy};
use tessera_http::admin::migration::{ImportLine, import_lines};
use tessera_http::system::{SystemClock, monotonic, os_rng};
use tessera_storage::{Engine, EngineConfig, SledOptions, SledStore};

use crate::Failure;

/// An engine on a fresh sled store under `parent`, made durable with fdatasync as the
/// server's is, deciding under the default policy with `argon2`.
fn engine(parent: &Path, argon2: &Argon2Params) -> Result<(tempfile::TempDir, Engine), Failure> {
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-import-")
        .tempdir_in(parent)
        .map_err(Failure::new)?;
    let store = SledStore::open(dir.path(), SledOptions::default()).map_err(Failure::new)?;
    let policy = Policy {
        argon2: *argon2,
        ..Policy::default()
    };
    let engine = Engine::start(
        Box::new(store),
        policy,
        Arc::new(SystemClock),
        Box::new(os_rng()),
        EngineConfig {
            check_invariants: false,
            ..EngineConfig::default()
        },
    )
    .map_err(Failure::new)?;
    Ok((dir, engine))
}

fn md5_hex(text: &str) -> String {
    use md5::Digest;
    data_encoding::HEXLOWER.encode(&md5::Md5::digest(text.as_bytes()))
}

/// One import run.
#[derive(Clone, Debug, Serialize)]
pub struct ImportRun {
    pub users: u64,
    pub seconds: f64,
    pub imports_per_s: f64,
    /// Imports per CPU second this process used (hashing, parsing, the writer and its
    /// syncs): what the machine's cores do for the import when nothing else competes.
    pub imports_per_cpu_s: f64,
    pub workers: usize,
}

/// A fresh store to import into, chunk by chunk.
pub struct ImportBench {
    _dir: tempfile::TempDir,
    engine: Engine,
}

impl ImportBench {
    pub fn new(parent: &Path, argon2: &Argon2Params) -> Result<Self, Failure> {
        let (dir, engine) = engine(parent, argon2)?;
        Ok(Self { _dir: dir, engine })
    }

    /// Imports raw-MD5 users `from..from + users` on `workers` threads.
    pub fn chunk(&self, from: u64, users: u64, workers: usize) -> Result<ImportRun, Failure> {
        let lines: Vec<ImportLine> = (from..from + users)
            .map(|i| ImportLine {
                line: i + 1,
                text: format!(
                    r#"{{"username":"legacy{i}","hash":"{}"}}"#,
                    md5_hex(&format!("legacy password {i}"))
                ),
            })
            .collect();
        let cpu0 = crate::stats::cpu_seconds(std::process::id());
        let started = monotonic();
        let results = import_lines(&self.engine, lines, workers).map_err(Failure::new)?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = match (cpu0, crate::stats::cpu_seconds(std::process::id())) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => seconds * workers as f64,
        };
        let imported = results
            .iter()
            .filter(|r| r.outcome == tessera_http::admin::migration::ImportOutcome::Imported)
            .count() as u64;
        if imported != users {
            return Err(Failure(format!("imported {imported} of {users} users")));
        }
        Ok(ImportRun {
            users,
            seconds,
            imports_per_s: users as f64 / seconds,
            imports_per_cpu_s: users as f64 / cpu,
            workers,
        })
    }

    pub fn shutdown(self) {
        self.engine.shutdown();
    }
}

/// Median microseconds of refused logins, per kind of account.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub unknown_us: f64,
    pub wrapped_md5_us: f64,
    pub bcrypt_us: f64,
    pub current_us: f64,
    /// The same schemes' verification alone, without the padding.
    pub bare_argon2_us: f64,
    pub bare_bcrypt_us: f64,
}

fn median_us(samples: &mut [f64]) -> f64 {
    crate::stats::median(&mut samples.to_vec()) * 1e6
}

/// Refused logins (a wrong password) against an unknown user, a wrapped MD5, a bcrypt at
/// `bcrypt_cost` and a current user, `rounds` times each, interleaved so that drift in the
/// machine's load hits all four alike.
pub fn timing(
    parent: &Path,
    argon2: &Argon2Params,
    bcrypt_cost: u32,
    rounds: usize,
) -> Result<Timing, Failure> {
    let (_dir, engine) = engine(parent, argon2)?;
    let mut rng = os_rng();
    let mut area = WorkArea::default();
    let password = "Legacy password 42 zebra";
    let bcrypt_hash = bcrypt::hash_with_salt(password, bcrypt_cost, [7; 16])
        .map_err(Failure::new)?
        .format_for_version(bcrypt::Version::TwoB);
    for (user, hash) in [
        ("wrapped", md5_hex(password)),
        ("blowfish", bcrypt_hash.clone()),
    ] {
        let request = ImportRequest {
            username: user.into(),
            email: None,
            hash: LegacyHash::parse(&hash, None, None).map_err(Failure::new)?,
            last_active_at: None,
        };
        let command = engine
            .prepare_here(request, &mut rng, &mut area)
            .map_err(Failure::new)?;
        engine.execute_blocking(command).map_err(Failure::new)?;
    }
    let register = RegisterRequest {
        username: "current".into(),
        email: None,
        password: password.into(),
        client: None,
    };
    let command = engine
        .prepare_here(register, &mut rng, &mut area)
        .map_err(Failure::new)?;
    engine.execute_blocking(command).map_err(Failure::new)?;
    let users = ["nobody", "wrapped", "blowfish", "current"];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); users.len()];
    for _ in 0..rounds {
        for (i, user) in users.iter().enumerate() {
            let request = LoginRequest {
                username: (*user).into(),
                password: "Wrong password 42 zebra".into(),
                mode: LoginMode::Session,
                client: None,
                supersedes: None,
            };
            let started = monotonic();
            let login = engine
                .prepare_here(request, &mut rng, &mut area)
                .map_err(Failure::new)?;
            samples[i].push(started.elapsed().as_secs_f64());
            if login.check.outcome != tessera_core::password::Verification::Mismatch {
                return Err(Failure::new("a wrong password matched"));
            }
        }
    }
    let current = PasswordHash(
        engine
            .views()
            .account_by_username("current")
            .map(|a| a.password_hash.0.clone())
            .unwrap_or_default(),
    );
    let bcrypt_stored = PasswordHash(bcrypt_hash);
    let mut bare = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, stored) in [&current, &bcrypt_stored].into_iter().enumerate() {
            let started = monotonic();
            legacy::verify_any("Wrong password 42 zebra", stored, argon2, &mut area);
            bare[i].push(started.elapsed().as_secs_f64());
        }
    }
    engine.shutdown();
    Ok(Timing {
        unknown_us: median_us(&mut samples[0]),
        wrapped_md5_us: median_us(&mut samples[1]),
        bcrypt_us: median_us(&mut samples[2]),
        current_us: median_us(&mut samples[3]),
        bare_argon2_us: median_us(&mut bare[0]),
        bare_bcrypt_us: median_us(&mut bare[1]),
    })
}
