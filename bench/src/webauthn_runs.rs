//! The WebAuthn workload, next to its ceilings measured in the same run:
//!
//! - in process, one thread: the passkey assertion check (`Ceremonies::finish_login`:
//!   client data, origin, RP id hash, flags, the COSE ES256 signature, through webauthn-rs)
//!   against the bare ECDSA P-256 verification of the same RustCrypto `p256` crate webauthn-rs
//!   verifies with, and against Ed25519 verification (`ed25519-dalek`, the access tokens'
//!   algorithm);
//! - over HTTP: passwordless logins by passkey in token mode (default 64 connections), each
//!   a `POST /v1/login/webauthn/start` then a `POST /v1/login/webauthn/finish` signed by the
//!   seeded software authenticator of the connection, against a server in this process.
//!
//! Credentials are registered beforehand through the same ceremony crate and core command
//! the HTTP route runs; they are not counted.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;
use rand::SeedableRng;
use serde_json::{Value, json};
use tessera_core::usecase::RegisterRequest;
use tessera_core::webauthn::{CredentialKind, RegisterCredential};
use tessera_http::system::{monotonic, os_rng};
use tessera_simulator::authenticator::{Authenticator, Gesture};
use tessera_webauthn::{Ceremonies, Limits};

use super::client::{Conn, post_json};
use super::http_workloads::{self, ConnFactory};
use super::oauth_runs::{InProcess, start};
use super::{BenchArgs, Report, data_parent, describe_run, figure, say, spec};
use crate::Failure;

/// Credentials registered per account (below the default per-account limit).
const CREDENTIALS_PER_ACCOUNT: usize = 16;
/// Assertions prepared for the in-process check.
const ASSERTIONS: usize = 2_000;

/// `tessera-bench webauthn`.
pub fn webauthn(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    in_process(args, report)?;
    over_http(args, report)
}

fn in_process(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let server = start(&data_parent(args))?;
    let ceremonies = server
        .app
        .webauthn
        .as_ref()
        .ok_or_else(|| Failure::new("WebAuthn is off on the bench server"))?;
    let (mut phone, _) = enrol(&server, 1)?
        .pop()
        .ok_or_else(|| Failure::new("no credential registered"))?;
    let origin = ceremonies.origin().to_owned();
    // A private ceremony table large enough for every prepared assertion.
    let checker = Ceremonies::new(
        &server.app.config.public_url,
        "bench",
        Limits {
            capacity: ASSERTIONS * 2,
            ..Limits::default()
        },
    )
    .map_err(Failure::new)?;
    let gesture = Gesture::new(origin);
    let now = server.engine.now();
    let mut prepared = Vec::with_capacity(ASSERTIONS);
    for _ in 0..ASSERTIONS {
        let started = checker.start_login(now).map_err(Failure::new)?;
        let options = json!({"publicKey": started.options["publicKey"]});
        let credential = phone
            .assert_json(&options, &gesture)
            .map_err(Failure::new)?;
        prepared.push((started.ceremony, credential));
    }
    let views = server.engine.views().clone();
    let t0 = monotonic();
    let mut ok = 0usize;
    for (ceremony, credential) in &prepared {
        if checker
            .finish_login(&views, ceremony, credential, now)
            .is_ok()
        {
            ok += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if ok != ASSERTIONS {
        return Err(Failure(format!(
            "only {ok} of {ASSERTIONS} prepared assertions verified"
        )));
    }
    let check_per_s = ASSERTIONS as f64 / secs;
    let p256 = p256_verify_per_s(args.ceiling_secs);
    let ed25519 = ed25519_verify_per_s(args.ceiling_secs);
    say(
        args,
        format!(
            "webauthn in process, 1 thread: assertion checks {check_per_s:.0}/s | ECDSA P-256 verify {p256:.0}/s (ratio {:.2}) | Ed25519 verify {ed25519:.0}/s",
            check_per_s / p256
        ),
    );
    report.results.extend([
        figure(
            "passkey assertion checks/s in process, 1 thread (webauthn-rs finish_login)",
            "ops/s",
            vec![check_per_s],
            json!({"assertions": ASSERTIONS}),
        ),
        figure(
            "ECDSA P-256 verifications/s, 1 thread (RustCrypto p256, as webauthn-rs)",
            "ops/s",
            vec![p256],
            Value::Null,
        ),
        figure(
            "Ed25519 verifications/s, 1 thread (ed25519-dalek)",
            "ops/s",
            vec![ed25519],
            Value::Null,
        ),
        figure(
            "assertion check / ECDSA P-256 verification",
            "ratio",
            vec![check_per_s / p256],
            Value::Null,
        ),
    ]);
    Ok(())
}

fn p256_verify_per_s(secs: f64) -> f64 {
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
    let Ok(key) = SigningKey::from_slice(&[7u8; 32]) else {
        return 0.0;
    };
    let message = [9u8; 69];
    let signature: Signature = key.sign(&message);
    let verifying = VerifyingKey::from(&key);
    super::tokens::rate(1, secs, &|_, _| {
        verifying.verify(&message, &signature).is_ok()
    })
    .per_s
}

fn ed25519_verify_per_s(secs: f64) -> f64 {
    use ed25519_dalek::{Signer, SigningKey, Verifier};
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let message = [9u8; 69];
    let signature = key.sign(&message);
    let verifying = key.verifying_key();
    super::tokens::rate(1, secs, &|_, _| {
        verifying.verify(&message, &signature).is_ok()
    })
    .per_s
}

/// Registers `n` passkeys, each on its own software authenticator, spread over accounts of
/// [`CREDENTIALS_PER_ACCOUNT`]: the ceremony crate's registration, then core's
/// `RegisterCredential`, as `POST /v1/webauthn/register/finish` runs them.
fn enrol(server: &InProcess, n: usize) -> Result<Vec<(Authenticator, String)>, Failure> {
    let ceremonies = server
        .app
        .webauthn
        .as_ref()
        .ok_or_else(|| Failure::new("WebAuthn is off on the bench server"))?;
    let gesture = Gesture::new(ceremonies.origin());
    let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(11);
    let mut out = Vec::with_capacity(n);
    let mut account = server.account;
    for i in 0..n {
        if i > 0 && i % CREDENTIALS_PER_ACCOUNT == 0 {
            account = new_account(server, i / CREDENTIALS_PER_ACCOUNT)?;
        }
        let now = server.engine.now();
        let started = {
            let views = server.engine.views();
            ceremonies
                .start_registration(&views, account, CredentialKind::Passkey, now)
                .map_err(Failure::new)?
        };
        let mut phone = Authenticator::platform();
        let options = json!({"publicKey": started.options["publicKey"]});
        let credential = phone
            .register_json(&mut rng, &options, &gesture)
            .map_err(Failure::new)?;
        let new = ceremonies
            .finish_registration(&started.ceremony, account, &credential, now)
            .map_err(Failure::new)?;
        server
            .rt
            .block_on(server.engine.execute(RegisterCredential {
                account,
                name: format!("bench {i}"),
                credential: new,
                step_up: Some(now).into(),
            }))
            .map_err(Failure::new)?
            .reply
            .map_err(Failure::new)?;
        out.push((phone, gesture.origin.clone()));
    }
    Ok(out)
}

fn new_account(server: &InProcess, n: usize) -> Result<tessera_core::AccountId, Failure> {
    let command = server
        .engine
        .prepare_here(
            RegisterRequest {
                username: format!("bench-passkey-{n}"),
                email: None,
                password: http_workloads::PASSWORD.into(),
                client: None,
            },
            &mut os_rng(),
            &mut tessera_core::password::WorkArea::default(),
        )
        .map_err(Failure::new)?;
    Ok(server
        .rt
        .block_on(server.engine.execute(command))
        .map_err(Failure::new)?
        .reply
        .map_err(Failure::new)?
        .account)
}

fn over_http(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let server = start(&data_parent(args))?;
    let conns_list = if args.connections.is_empty() {
        vec![64]
    } else {
        args.connections.clone()
    };
    let most = conns_list.iter().copied().max().unwrap_or(64);
    let phones = std::sync::Arc::new(std::sync::Mutex::new(enrol(&server, most)?));
    for conns in conns_list {
        let mut runs = vec![];
        let mut lat = vec![];
        for repeat in 0..args.repeats {
            let factory: ConnFactory = {
                let phones = phones.clone();
                std::sync::Arc::new(move |i| {
                    let (phone, origin) = phones
                        .lock()
                        .ok()
                        .and_then(|p| p.get(i).cloned())
                        .unwrap_or_else(|| (Authenticator::platform(), String::new()));
                    Box::new(PasskeyConn {
                        phone,
                        gesture: Gesture::new(origin),
                        pending: None,
                        started: false,
                        slot: (phones.clone(), i),
                    })
                })
            };
            let (r, _) = super::measured(&server.target, &factory, conns, spec(args), None)?;
            // Two requests per login.
            let logins = r.requests_per_s / 2.0;
            say(
                args,
                format!(
                    "webauthn login {conns:>3} conns run {}: {logins:.0} logins/s ({})",
                    repeat + 1,
                    describe_run(&r)
                ),
            );
            runs.push(logins);
            lat.push(r.latency);
        }
        let lat = super::stats::Latency::median(&lat);
        report.results.push(figure(
            format!("passkey logins/s over HTTP (start + finish, token mode), {conns} connections"),
            "logins/s",
            runs,
            json!({"connections": conns, "request_latency_median_of_runs": lat}),
        ));
    }
    Ok(())
}

/// One connection's passkey logins: a start, then a finish signed by its authenticator.
struct PasskeyConn {
    phone: Authenticator,
    gesture: Gesture,
    pending: Option<(String, Value)>,
    started: bool,
    /// Where the authenticator goes back when the run ends, so that the next run presents
    /// the counters this one reached (a copy from before would be a cloned authenticator).
    slot: (Phones, usize),
}

type Phones = std::sync::Arc<std::sync::Mutex<Vec<(Authenticator, String)>>>;

impl Drop for PasskeyConn {
    fn drop(&mut self) {
        let (phones, i) = &self.slot;
        if let Some(slot) = phones.lock().ok().as_mut().and_then(|p| p.get_mut(*i)) {
            slot.0 = self.phone.clone();
        }
    }
}

impl Conn for PasskeyConn {
    fn request(&mut self, host: &str) -> Request<Full<Bytes>> {
        match self.pending.take() {
            Some((ceremony, options)) => {
                self.started = false;
                let credential = self
                    .phone
                    .assert_json(&options, &self.gesture)
                    .unwrap_or(Value::Null);
                let body = json!({"ceremony": ceremony, "credential": credential, "mode": "token"});
                post_json(host, "/v1/login/webauthn/finish", body.to_string())
            }
            None => {
                self.started = true;
                post_json(host, "/v1/login/webauthn/start", "{}".into())
            }
        }
    }

    fn answer(&mut self, _: StatusCode, _: &HeaderMap, body: &Bytes) -> Result<(), String> {
        let v: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
        if self.started {
            let ceremony = v["ceremony"].as_str().ok_or("no ceremony")?.to_owned();
            self.pending = Some((ceremony, json!({"publicKey": v["publicKey"]})));
            Ok(())
        } else {
            v.get("access_token")
                .and_then(Value::as_str)
                .map(|_| ())
                .ok_or_else(|| "no access_token".to_owned())
        }
    }

    fn kind(&self) -> &'static str {
        if self.started { "start" } else { "finish" }
    }
}
