//! `id-token`: the CPU a "sign in with …" callback spends on our side, next to the raw
//! RS256 verification ceiling of the same run, and the JWKS cache's hit rate over a run
//! that includes a key rotation.
//!
//! - Ceiling: `jsonwebtoken::crypto::verify` of a provider's RS256 signature (the RSA
//!   public-key operation and SHA-256, no JSON).
//! - Ours, OIDC: `tessera_http::upstream::verify_id_token` with a warm key cache (header,
//!   allow-list, kid lookup, signature, every claim check) plus the claims turned into an
//!   `ExternalUser`, what the callback does after the token round trip.
//! - Ours, OAuth 2: `map_user_info` of a GitHub-shaped `/user` body.
//! - Hit rate: `--callbacks` validations, one every 50 ms of virtual time, against a real
//!   local issuer whose key set says `max-age=300`; halfway the provider publishes a new
//!   key and signs with it from then on. Every fetch is a real HTTP request.
//!
//! Time is passed to the validator, so the virtual clock makes the max-age and the
//! refetch interval play out in a short run.

use serde_json::json;
use tessera_core::Timestamp;
use tessera_http::upstream::{
    ClientLimits, Expectations, JwksCache, JwksPolicy, LEEWAY_SECS_DEFAULT, RootCertStore,
    UpstreamClient, UpstreamToken, UpstreamUrl, UserInfoMapping, map_user_info, verify_id_token,
};
use tessera_tests::issuer::{LocalIssuer, SigningKey, id_token_claims};

use super::{BenchArgs, Report, cores, figure, say, tokens};
use crate::Failure;
use crate::token_runs::check;

const CLIENT_ID: &str = "tessera-bench";
const NONCE: &str = "bench-nonce-0123456789";
const T0_SECS: u64 = 1_800_000_000;
/// Virtual time between two callbacks in the hit-rate run.
const CALLBACK_GAP_MS: u64 = 50;

pub fn id_token(args: &BenchArgs, report: &mut Report) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(Failure::new)?;
    let key = SigningKey::rsa("bench-1", jsonwebtoken::Algorithm::RS256);
    let issuer = runtime.block_on(LocalIssuer::start(&[&key]));
    let iss = issuer.issuer();
    let client = UpstreamClient::with_roots(ClientLimits::default(), RootCertStore::empty())
        .map_err(Failure::new)?;
    let jwks_uri = UpstreamUrl::parse(&issuer.jwks_uri()).map_err(Failure::new)?;
    let cache = JwksCache::new(jwks_uri.clone(), JwksPolicy::default());
    let token = UpstreamToken::new(key.sign(&id_token_claims(&iss, CLIENT_ID, NONCE, T0_SECS)));
    let expect = Expectations {
        issuer: &iss,
        client_id: CLIENT_ID,
        nonce: NONCE,
        leeway_secs: LEEWAY_SECS_DEFAULT,
    };
    let now = Timestamp::from_millis(T0_SECS * 1000 + 1_000);
    // Warm the cache: one fetch, then every validation below is a hit.
    runtime
        .block_on(verify_id_token(&client, &cache, &token, &expect, now))
        .map_err(Failure::new)?;

    let (message, signature) = token
        .expose()
        .rsplit_once('.')
        .ok_or_else(|| Failure::new("a signed token has three parts"))?;
    let decoding = jsonwebtoken::DecodingKey::from_jwk(
        &serde_json::from_value(key.jwk.clone()).map_err(Failure::new)?,
    )
    .map_err(Failure::new)?;
    let github = json!({
        "login": "octocat", "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
        "type": "User", "site_admin": false, "name": "The Octocat", "company": "@github",
        "blog": "https://github.blog", "location": "San Francisco",
        "email": "octocat@example.com", "bio": null, "public_repos": 8, "followers": 9000,
        "created_at": "2011-01-25T18:44:36Z", "updated_at": "2024-01-22T12:00:00Z",
    });
    let github_mapping = UserInfoMapping::github();
    let handle = runtime.handle().clone();

    let n = cores();
    let secs = args.ceiling_secs;
    let mut rows: Vec<(String, Vec<tokens::Rate>)> = vec![
        (
            format!("raw RS256 verifies/s (ceiling), {n} threads"),
            vec![],
        ),
        (
            format!(
                "ID-token callbacks/s (verify_id_token, warm JWKS, into ExternalUser), {n} threads"
            ),
            vec![],
        ),
        (
            format!("user-info mappings/s (GitHub /user, map_user_info), {n} threads"),
            vec![],
        ),
    ];
    for repeat in 0..args.repeats {
        let runs = [
            tokens::rate(n, secs, &|_, _| {
                jsonwebtoken::crypto::verify(
                    signature,
                    message.as_bytes(),
                    &decoding,
                    jsonwebtoken::Algorithm::RS256,
                )
                .unwrap_or(false)
            }),
            tokens::rate(n, secs, &|_, _| {
                handle
                    .block_on(verify_id_token(&client, &cache, &token, &expect, now))
                    .map(|claims| !claims.into_external_user().subject.is_empty())
                    .unwrap_or(false)
            }),
            tokens::rate(n, secs, &|_, _| {
                map_user_info(&github, &github_mapping).is_ok()
            }),
        ];
        for (row, r) in rows.iter_mut().zip(runs) {
            say(
                args,
                format!(
                    "run {}: {:<90} {:>10.0}/s  {:>10.0} per CPU s",
                    repeat + 1,
                    row.0,
                    r.per_s,
                    r.per_cpu_s
                ),
            );
            row.1.push(r);
        }
    }
    let mut per_cpu = Vec::new();
    for (name, runs) in rows {
        let wall = figure(
            name.clone(),
            "1/s",
            runs.iter().map(|r| r.per_s).collect(),
            json!(runs),
        );
        let cpu = figure(
            format!("{name}, per CPU second"),
            "1/s",
            runs.iter().map(|r| r.per_cpu_s).collect(),
            serde_json::Value::Null,
        );
        say(
            args,
            format!(
                "median {name:<90} {:>10.0}/s, {:>10.0} per CPU s ({:.1} µs CPU each)",
                wall.value,
                cpu.value,
                1e6 / cpu.value.max(1.0)
            ),
        );
        per_cpu.push(cpu.value);
        report.results.push(wall);
        report.results.push(cpu);
    }
    if let [ceiling, ours, _] = per_cpu[..] {
        let ratio = ours / ceiling.max(1.0);
        say(
            args,
            format!("ID-token callback CPU vs the raw RS256 ceiling: {ratio:.2} of its rate"),
        );
        check(
            report,
            "ID-token callbacks per CPU s / raw RS256 verifies per CPU s".into(),
            ratio,
            ">= 0.80",
            ratio >= 0.80,
        );
    }
    hit_rate(args, report, &runtime, &issuer, &client, &jwks_uri, &key)
}

/// The hit-rate run: real fetches from the local issuer, virtual time, one rotation.
fn hit_rate(
    args: &BenchArgs,
    report: &mut Report,
    runtime: &tokio::runtime::Runtime,
    issuer: &LocalIssuer,
    client: &UpstreamClient,
    jwks_uri: &UpstreamUrl,
    first: &SigningKey,
) -> Result<(), Failure> {
    let callbacks = args.callbacks.max(2);
    issuer.set_cache_control(Some("public, max-age=300"));
    issuer.publish(&[first]);
    let cache = JwksCache::new(jwks_uri.clone(), JwksPolicy::default());
    let fetches_before = issuer.jwks_requests();
    let second = SigningKey::rsa("bench-2", jsonwebtoken::Algorithm::RS256);
    let iss = issuer.issuer();
    let expect = Expectations {
        issuer: &iss,
        client_id: CLIENT_ID,
        nonce: NONCE,
        leeway_secs: LEEWAY_SECS_DEFAULT,
    };
    let mut refused = 0u64;
    runtime.block_on(async {
        for i in 0..callbacks {
            let now_ms = T0_SECS * 1000 + i * CALLBACK_GAP_MS;
            let signer = if i < callbacks / 2 {
                first
            } else {
                if i == callbacks / 2 {
                    // The provider publishes its new key, then signs with it.
                    issuer.publish(&[first, &second]);
                }
                &second
            };
            let claims = id_token_claims(&iss, CLIENT_ID, NONCE, now_ms / 1000);
            let token = UpstreamToken::new(signer.sign(&claims));
            let now = Timestamp::from_millis(now_ms);
            if verify_id_token(client, &cache, &token, &expect, now)
                .await
                .is_err()
            {
                refused += 1;
            }
        }
    });
    let stats = cache.stats();
    let lookups = stats.hits + stats.misses;
    let hit_rate = stats.hits as f64 / lookups.max(1) as f64;
    let virtual_secs = callbacks * CALLBACK_GAP_MS / 1000;
    say(
        args,
        format!(
            "JWKS cache over {callbacks} callbacks ({virtual_secs} s virtual, max-age 300 s, one rotation): \
             hit rate {:.4}, {} hits, {} misses, {} fetches ({} seen by the issuer), {} refetches refused, {refused} callbacks refused",
            hit_rate,
            stats.hits,
            stats.misses,
            stats.fetches,
            issuer.jwks_requests() - fetches_before,
            stats.refetches_refused,
        ),
    );
    report.results.push(figure(
        "JWKS cache hit rate, run with one key rotation",
        "ratio",
        vec![hit_rate],
        json!({ "stats": stats, "callbacks": callbacks, "virtual_secs": virtual_secs, "refused": refused }),
    ));
    check(
        report,
        "ID tokens refused in the rotation run".into(),
        refused as f64,
        "== 0",
        refused == 0,
    );
    Ok(())
}
