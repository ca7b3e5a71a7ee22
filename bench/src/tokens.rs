//! In-process token ceilings, measured in the same run as the HTTP token workloads:
//! Ed25519 signing (`Signer::sign` on real claims), verification (`verify_access_token`,
//! jsonwebtoken + aws-lc-rs), verification plus the blocklist check over real views (what
//! `GET /v1/me` with a bearer token does before it answers), and issuance (building the
//! claims as `tessera_core::token::issue` does, then signing).
//!
//! The views are real: an [`Engine`] over a [`MemoryStore`] with accounts registered, a
//! signing key added and one token-mode login per family, all through `decide` and
//! `Views::apply`, exactly as the server builds them (only argon2 is skipped: the password
//! checks are precomputed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand_core::Rng as _;
use serde::Serialize;
use tessera_core::blocklist::check_not_revoked;
use tessera_core::password::{PasswordHash, Verification};
use tessera_core::policy::Argon2Params;
use tessera_core::signing_key::Signer;
use tessera_core::token::{AccessClaims, verify_access_token};
use tessera_core::{
    AccountId, Command, LoginMode, PasswordCheck, Policy, Reply, TokenId, id::uuid_v7,
};
use tessera_http::system::{SystemClock, monotonic, os_rng};
use tessera_storage::engine::EngineConfig;
use tessera_storage::{Engine, MemoryStore};

use crate::Failure;

/// Most iterations one thread makes in one measurement, whatever the time says.
const ITERATIONS_MAX: u64 = 50_000_000;

/// Real views with live families, a signer, and one signed access token per family.
pub struct TokenWorld {
    pub engine: Engine,
    pub signer: Signer,
    pub claims: Vec<AccessClaims>,
    pub tokens: Vec<String>,
}

impl std::fmt::Debug for TokenWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenWorld")
            .field("families", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// Builds the world: `families` token-mode logins spread over up to 8 accounts.
pub fn world(families: usize) -> Result<TokenWorld, Failure> {
    let policy = Policy {
        argon2: Argon2Params::INSECURE_FAST,
        ..Policy::default()
    };
    let engine = Engine::start(
        Box::new(MemoryStore::new()),
        policy,
        Arc::new(SystemClock),
        Box::new(os_rng()),
        EngineConfig {
            batch_commands_max: 512,
            queue_commands_max: 8192,
            check_invariants: false,
        },
    )
    .map_err(Failure::new)?;
    let mut seed = [0u8; 32];
    os_rng().fill_bytes(&mut seed);
    let signer = Signer::from_seed(&seed).map_err(|e| Failure(e.to_string()))?;
    let run = |c: Command| -> Result<Reply, Failure> {
        engine
            .execute_blocking(c)
            .map_err(Failure::new)?
            .reply
            .map_err(|r| Failure(format!("refused: {r}")))
    };
    run(signer.add_command().into())?;
    let hash: PasswordHash =
        tessera_core::password::hash("Bench password 123", [3; 16], &Argon2Params::INSECURE_FAST)
            .map_err(|e| Failure(e.to_string()))?;
    let mut accounts: Vec<AccountId> = Vec::new();
    for i in 0..families.clamp(1, 8) {
        if let Reply::Registered { account, .. } =
            run(Command::from(tessera_core::account::Register {
                username: format!("inproc{i}"),
                email: None,
                password_hash: Some(hash.clone()),
                client: None,
            }))?
        {
            accounts.push(account);
        }
    }
    let mut claims = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..families.max(1) {
        let reply = run(Command::from(tessera_core::session::Login {
            check: PasswordCheck {
                account: Some(accounts[i % accounts.len()]),
                checked_hash: hash.clone(),
                outcome: Verification::Match { stale: false },
                rehash: None,
            },
            mode: LoginMode::Token,
            client: None,
            supersedes: None,
        }))?;
        let Reply::TokensIssued(issued) = reply else {
            return Err(Failure::new("a token-mode login issued no tokens"));
        };
        tokens.push(
            signer
                .sign(&issued.access)
                .map_err(|e| Failure(e.to_string()))?,
        );
        claims.push(issued.access);
    }
    Ok(TokenWorld {
        engine,
        signer,
        claims,
        tokens,
    })
}

/// A rate measured on some threads: per wall second, and per CPU second of this process.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rate {
    pub threads: usize,
    pub per_s: f64,
    pub per_cpu_s: f64,
}

/// Runs `op(thread, i)` on `threads` threads for about `secs`; counts the `true`s.
pub(crate) fn rate(threads: usize, secs: f64, op: &(dyn Fn(usize, u64) -> bool + Sync)) -> Rate {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let cpu0 = super::stats::cpu_seconds(std::process::id());
    let started = monotonic();
    let deadline = started + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for t in 0..threads.max(1) {
            let (stop, done) = (&stop, &done);
            s.spawn(move || {
                let mut n = 0u64;
                for i in 0..ITERATIONS_MAX {
                    // Look at the clock every 64 operations only.
                    if i % 64 == 0 && (stop.load(Ordering::Relaxed) || monotonic() >= deadline) {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    if op(t, i) {
                        n += 1;
                    }
                }
                done.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed) as f64;
    let cpu = match (cpu0, super::stats::cpu_seconds(std::process::id())) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => elapsed * threads.max(1) as f64,
    };
    Rate {
        threads: threads.max(1),
        per_s: n / elapsed,
        per_cpu_s: n / cpu,
    }
}

impl TokenWorld {
    /// `Signer::sign` of real claims (the header, JSON, base64url, Ed25519).
    pub fn sign_rate(&self, threads: usize, secs: f64) -> Rate {
        let n = self.claims.len();
        rate(threads, secs, &|t, i| {
            self.signer.sign(&self.claims[(t + i as usize) % n]).is_ok()
        })
    }

    /// `verify_access_token` alone: the JOSE checks and the Ed25519 verification.
    pub fn verify_rate(&self, threads: usize, secs: f64) -> Rate {
        let n = self.tokens.len();
        let policy = self.engine.policy().token.clone();
        rate(threads, secs, &|t, i| {
            let now = self.engine.now();
            let views = self.engine.views();
            verify_access_token(
                &self.tokens[(t + i as usize) % n],
                views.signing_keys(),
                now,
                &policy,
            )
            .is_ok()
        })
    }

    /// What a bearer `GET /v1/me` does before answering (`tessera_http::auth::verify_bearer`):
    /// read the clock, take the views' read lock, `verify_access_token`, then
    /// `check_not_revoked` on the live views.
    pub fn verify_and_check_rate(&self, threads: usize, secs: f64) -> Rate {
        let n = self.tokens.len();
        let policy = &self.engine.policy().token;
        rate(threads, secs, &|t, i| {
            let now = self.engine.now();
            let views = self.engine.views();
            verify_access_token(
                &self.tokens[(t + i as usize) % n],
                views.signing_keys(),
                now,
                policy,
            )
            .is_ok_and(|c| check_not_revoked(&views, &c, now).is_ok())
        })
    }

    /// Issuance: build the claims as `token::issue` does (issuer and audience from the
    /// policy, times from the clock, a UUIDv7 `jti` from 10 bytes of OS randomness), then
    /// sign them.
    pub fn issue_rate(&self, threads: usize, secs: f64) -> Rate {
        let policy = &self.engine.policy().token;
        let n = self.claims.len();
        rate(threads, secs, &|t, i| {
            let template = &self.claims[(t + i as usize) % n];
            let now = self.engine.now();
            let mut random = [0u8; 10];
            os_rng().fill_bytes(&mut random);
            let claims = AccessClaims {
                iss: policy.issuer.clone(),
                aud: policy.audience.clone(),
                sub: template.sub,
                exp: now.plus_ms(policy.access_ttl_ms()).as_secs(),
                iat: now.as_secs(),
                nbf: now.as_secs(),
                jti: TokenId(uuid_v7(now, random)),
                sid: None,
                fam: template.fam,
                scope: template.scope.clone(),
                client_id: template.client_id.clone(),
                auth_time: template.auth_time,
            };
            self.signer.sign(&claims).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ceilings_measure_something() {
        let w = world(3).expect("world");
        assert_eq!(w.tokens.len(), 3);
        assert!(w.sign_rate(1, 0.05).per_s > 0.0);
        assert!(w.verify_rate(1, 0.05).per_s > 0.0);
        assert!(w.verify_and_check_rate(2, 0.05).per_s > 0.0);
        assert!(w.issue_rate(1, 0.05).per_s > 0.0);
        w.engine.shutdown();
    }
}
