//! Micro-benchmarks of the in-process hot paths (the work every request repeats), with divan:
//!
//! ```sh
//! cargo bench -p tessera-storage --bench hot_paths
//! ```
//! - `sign`: `Signer::sign` of real access-token claims (Ed25519, jsonwebtoken + aws-lc-rs);
//! - `verify`: `verify_access_token` of a real token (header checks, Ed25519, claims);
//! - `blocklist`: `check_not_revoked` of verified claims against views with a live family;
//! - `decide_refresh`: `decide(RefreshTokens)` on views with a live family (the writer's
//!   part of a rotation: digest lookup, new refresh secret, claims);
//! - `encode_envelope` / `decode_envelope`: the log's codec on a real `RefreshTokenRotated`
//!   envelope (decode also hashes the stored bytes for the chain check);
//! - `replay_apply`: `Views::apply` of a recorded mix (registrations, logins, touches,
//!   logouts, token logins and rotations) into fresh views, per event: what replay does after
//!   decoding.
//!
//! - `throttle_check`: `throttle::check_address` against views tracking 100,000 addresses.
//! - `check_rotation_records`: the writer's after-batch assertion (`Views::check_records`) on
//!   the records one refresh rotation touches, the cost the assertion adds to a rotation.
//! - `password_policy_check`: `PasswordPolicy::problems` at the default policy (length, the
//!   common list, the context words and zxcvbn) on a 20-character passphrase, next to
//!   `password_argon2_verify`: one argon2id verification at the default (OWASP) parameters
//!   in a reused work area, as the server does it. The check must cost at most 5 % of the
//!   verification (`cargo bench -p tessera-storage --bench hot_paths -- password`).
//!
//! Everything is built through `decide` and `Views::apply` with a seeded RNG and a fixed
//! clock, as the simulator does, so the inputs are the real ones.

#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a benchmark binary: a broken setup should stop it loudly"
)]

use divan::{Bencher, black_box, counter::ItemsCount};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use tessera_core::blocklist::check_not_revoked;
use tessera_core::password::{PasswordHash, Verification};
use tessera_core::policy::Argon2Params;
use tessera_core::refresh::presented_digest;
use tessera_core::signing_key::Signer;
use tessera_core::testkit::T0;
use tessera_core::token::{AccessClaims, verify_access_token};
use tessera_core::{
    AccountId, Command, Env, Event, LoginMode, PasswordCheck, Policy, Reply, SessionId, Timestamp,
    Views, decide,
};
use tessera_storage::codec::{self, EVENT_SCHEMA, Envelope};

fn main() {
    divan::main();
}

/// Views with accounts, a signing key and live token families, and everything recorded.
struct World {
    views: Views,
    policy: Policy,
    rng: ChaCha20Rng,
    now: Timestamp,
    signer: Signer,
    claims: AccessClaims,
    token: String,
    refresh: String,
    /// Every event applied, with its time, in order.
    log: Vec<(Timestamp, Event)>,
    hash: PasswordHash,
}

impl World {
    fn run(&mut self, command: impl Into<Command>) -> Reply {
        let mut env = Env::new(self.now, &mut self.rng, &self.policy);
        let d = decide(&self.views, command, &mut env);
        let mut touched = Vec::new();
        for p in d.events {
            self.views
                .apply(self.now, &p.event, &mut touched)
                .expect("apply");
            self.log.push((self.now, p.event));
        }
        d.reply.expect("accepted")
    }

    fn login(&mut self, account: AccountId, mode: LoginMode) -> Reply {
        self.run(Command::from(tessera_core::session::Login {
            check: PasswordCheck {
                account: Some(account),
                checked_hash: self.hash.clone(),
                outcome: Verification::Match { stale: false },
                rehash: None,
            },
            mode,
            client: None,
            supersedes: None,
        }))
    }

    fn new() -> Self {
        let policy = Policy::fast_for_tests();
        let hash = tessera_core::password::hash(
            "Bench password 123",
            [1; 16],
            &Argon2Params::INSECURE_FAST,
        )
        .expect("hash");
        let signer = Signer::from_seed(&[42; 32]).expect("signer");
        let mut w = Self {
            views: Views::default(),
            policy,
            rng: ChaCha20Rng::seed_from_u64(6),
            now: T0,
            signer: signer.clone(),
            claims: placeholder_claims(),
            token: String::new(),
            refresh: String::new(),
            log: Vec::new(),
            hash,
        };
        w.run(signer.add_command());
        let mut accounts = Vec::new();
        for i in 0..100 {
            if let Reply::Registered { account, .. } =
                w.run(Command::from(tessera_core::account::Register {
                    username: format!("bench{i}"),
                    email: None,
                    password_hash: Some(w.hash.clone()),
                    client: None,
                }))
            {
                accounts.push(account);
            }
        }
        // Cookie sessions: log in, touch a minute later, log half of them out.
        let mut sessions: Vec<SessionId> = Vec::new();
        for i in 0..1_000 {
            if let Reply::LoggedIn(issued) =
                w.login(accounts[i % accounts.len()], LoginMode::Session)
            {
                sessions.push(issued.session);
            }
        }
        w.now = w.now.plus_ms(61_000);
        for s in &sessions {
            w.run(Command::from(tessera_core::session::TouchSession {
                session: *s,
            }));
        }
        for s in sessions.iter().step_by(2) {
            w.run(Command::from(tessera_core::session::Logout { session: *s }));
        }
        // Token families, each rotated a few times.
        for i in 0..200 {
            let Reply::TokensIssued(mut issued) =
                w.login(accounts[i % accounts.len()], LoginMode::Token)
            else {
                panic!("no tokens");
            };
            for _ in 0..3 {
                let presented = presented_digest(issued.refresh.expose()).expect("refresh token");
                let Reply::TokensIssued(next) =
                    w.run(Command::from(tessera_core::refresh::RefreshTokens {
                        presented,
                    }))
                else {
                    panic!("no rotation");
                };
                issued = next;
            }
            w.claims = issued.access.clone();
            w.refresh = issued.refresh.expose().to_owned();
        }
        w.token = w.signer.sign(&w.claims).expect("sign");
        w
    }
}

fn placeholder_claims() -> AccessClaims {
    AccessClaims {
        iss: String::new(),
        aud: String::new(),
        sub: AccountId::from_bytes([0; 16]),
        exp: 0,
        iat: 0,
        nbf: 0,
        jti: tessera_core::TokenId::from_bytes([0; 16]),
        sid: None,
        fam: None,
        scope: None,
        client_id: None,
        auth_time: None,
    }
}

fn world() -> &'static World {
    static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    WORLD.get_or_init(World::new)
}

#[divan::bench]
fn sign(b: Bencher) {
    let w = world();
    b.bench(|| w.signer.sign(black_box(&w.claims)).expect("sign"));
}

#[divan::bench]
fn verify(b: Bencher) {
    let w = world();
    b.bench(|| {
        verify_access_token(
            black_box(&w.token),
            w.views.signing_keys(),
            w.now,
            &w.policy.token,
        )
        .expect("valid")
    });
}

#[divan::bench]
fn blocklist(b: Bencher) {
    let w = world();
    b.bench(|| check_not_revoked(&w.views, black_box(&w.claims), w.now).expect("live"));
}

#[divan::bench]
fn decide_refresh(b: Bencher) {
    let w = world();
    let presented = presented_digest(&w.refresh).expect("refresh token");
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    b.bench_local(|| {
        let mut env = Env::new(w.now, &mut rng, &w.policy);
        let d = decide(
            &w.views,
            Command::from(tessera_core::refresh::RefreshTokens { presented }),
            &mut env,
        );
        assert!(d.reply.is_ok());
        d
    });
}

fn rotation_envelope() -> Envelope {
    let w = world();
    let (at, event) = w
        .log
        .iter()
        .rev()
        .find(|(_, e)| e.kind() == "RefreshTokenRotated")
        .cloned()
        .or_else(|| w.log.last().cloned())
        .expect("events");
    let mut e = Envelope {
        sequence: w.log.len() as u64,
        stream: event.stream(),
        stream_version: 4,
        recorded_at: at,
        schema: EVENT_SCHEMA,
        event,
        prev_hash: [7; 32],
        hash: [0; 32],
        content_hash: [0; 32],
    };
    tessera_storage::chain::seal(&mut e).expect("seal");
    e
}

#[divan::bench]
fn encode_envelope(b: Bencher) {
    let e = rotation_envelope();
    b.bench(|| codec::encode_envelope(black_box(&e)).expect("encode"));
}

#[divan::bench]
fn decode_envelope(b: Bencher) {
    let bytes = codec::encode_envelope(&rotation_envelope()).expect("encode");
    b.bench(|| codec::decode_envelope(black_box(&bytes)).expect("decode"));
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn replay_apply(b: Bencher) {
    let w = world();
    b.counter(ItemsCount::new(w.log.len()))
        .with_inputs(Views::default)
        .bench_local_values(|mut views| {
            let mut touched = Vec::new();
            for (at, e) in &w.log {
                touched.clear();
                views.apply(*at, e, &mut touched).expect("apply");
            }
            views
        });
}

/// Views holding strikes for 100,000 addresses (the default bound), one failing per ms.
fn throttle_views() -> &'static Views {
    static VIEWS: std::sync::OnceLock<Views> = std::sync::OnceLock::new();
    VIEWS.get_or_init(|| {
        let mut views = Views::for_policy(&Policy::default());
        let mut touched = Vec::new();
        for i in 0..100_000u32 {
            let client = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let at = T0.plus_ms(u64::from(i));
            touched.clear();
            views
                .apply(
                    at,
                    &Event::UnknownAccountLoginFailed {
                        client: Some(client),
                    },
                    &mut touched,
                )
                .expect("a failure applies");
        }
        views
    })
}

/// The address check the login path runs before argon2: one map lookup and a little
/// arithmetic, whatever the number of addresses tracked.
#[divan::bench]
fn throttle_check(b: Bencher) {
    let views = throttle_views();
    let policy = Policy::default();
    let now = T0.plus_ms(200_000);
    let client = Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
        0x0a00_0000 + 77_777,
    )));
    b.counter(ItemsCount::new(1usize)).bench(|| {
        black_box(tessera_core::throttle::check_address(
            black_box(views),
            client,
            now,
            &policy.throttle,
        ))
    });
}

#[divan::bench]
fn check_rotation_records(b: Bencher) {
    let w = world();
    let presented = presented_digest(&w.refresh).expect("refresh token");
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut env = Env::new(w.now, &mut rng, &w.policy);
    let d = decide(
        &w.views,
        Command::from(tessera_core::refresh::RefreshTokens { presented }),
        &mut env,
    );
    let mut views = w.views.clone();
    let mut touched = Vec::new();
    for p in &d.events {
        views.apply(w.now, &p.event, &mut touched).expect("apply");
    }
    touched.sort();
    touched.dedup();
    b.bench(|| views.check_records(black_box(&touched)).expect("sound"));
}

/// The default policy's password check on a 20-character passphrase that passes, with the
/// context a registration gives; zxcvbn's dictionaries are loaded before timing starts.
#[divan::bench]
fn password_policy_check(b: Bencher) {
    let policy = Policy::default();
    let context = tessera_core::password::PasswordContext {
        username: Some("alice"),
        email: Some("alice@example.com"),
        service_name: Some(&policy.mfa.issuer),
    };
    let passphrase = "tangerine quartz owl";
    assert_eq!(passphrase.chars().count(), 20);
    tessera_core::password::warm_up();
    assert!(policy.password.problems(passphrase, &context).is_empty());
    b.bench(|| {
        policy
            .password
            .problems(black_box(passphrase), black_box(&context))
    });
}

/// One argon2id verification at the default (OWASP) parameters in a reused work area: the
/// yardstick for `password_policy_check`.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn password_argon2_verify(b: Bencher) {
    let cost = Policy::default().argon2;
    let hash = tessera_core::password::hash("tangerine quartz owl", [7; 16], &cost)
        .expect("default parameters are valid");
    let mut area = tessera_core::password::WorkArea::default();
    b.bench_local(|| {
        let v = tessera_core::password::verify_in(
            black_box("tangerine quartz owl"),
            &hash,
            &cost,
            &mut area,
        );
        assert_eq!(v, Verification::Match { stale: false });
    });
}
