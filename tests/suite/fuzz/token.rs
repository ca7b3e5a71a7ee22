//! Target: a presented access token, through the bearer path the HTTP server runs
//! (`Authorization` header → `auth::bearer` → `verify_access_token` → `check_not_revoked`)
//! and straight into `verify_access_token`, as the introspection endpoint calls it with
//! any UTF-8 from a form.
//!
//! The claims are parsed only after the signature verifies, so mutated tokens alone would
//! never reach them: a third of the cases mutate a header or claims document and sign the
//! result with the published key, so that the header checks and the claims parser and
//! checks see arbitrary JSON.

use data_encoding::BASE64URL_NOPAD;
use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};
use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use serde_json::{Value, json};
use tessera_core::blocklist::check_not_revoked;
use tessera_core::policy::TokenPolicy;
use tessera_core::signing_key::{KeySet, PublishedKey, Signer};
use tessera_core::token::{ACCESS_TOKEN_BYTES_MAX, AccessClaims, verify_access_token};
use tessera_core::{
    AccountId, FamilyId, SessionId, Timestamp, TokenId, ViewKey, ViewRecord, Views,
};
use tessera_http::auth::bearer;

use super::{Bytes, Mutator, Outcome, Run, fuzz};

const PUBLISHED_SEED: [u8; 32] = [0x42; 32];
const RETIRED_SEED: [u8; 32] = [0x43; 32];
const STRANGER_SEED: [u8; 32] = [0x44; 32];

/// An Ed25519 private key as PKCS#8 v1 (RFC 8410): a fixed prefix, then the 32-byte seed.
fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    der
}

struct Fixture {
    keys: KeySet,
    views: Views,
    policy: TokenPolicy,
    now: Timestamp,
    published_kid: String,
    /// Signs any message with the published key, to get mutated documents past the signature.
    key: jsonwebtoken::EncodingKey,
    /// Tokens, and the claims each must verify to (`None`: it must be refused).
    tokens: Vec<(String, Option<AccessClaims>)>,
    /// Header documents: the real one first, then variants.
    headers: Vec<Vec<u8>>,
    /// Claims documents, all valid at `now`.
    claims: Vec<Vec<u8>>,
}

fn claims_at(now: Timestamp, policy: &TokenPolicy, n: u8, session_bound: bool) -> AccessClaims {
    let secs = now.as_secs();
    AccessClaims {
        iss: policy.issuer.clone(),
        aud: policy.audience.clone(),
        sub: AccountId::from_bytes([n; 16]),
        exp: secs + 600,
        iat: secs - 10,
        nbf: secs - 10,
        jti: TokenId::from_bytes([n ^ 0x5a; 16]),
        sid: session_bound.then(|| SessionId::from_bytes([n ^ 0x33; 16])),
        fam: (!session_bound).then(|| FamilyId::from_bytes([n ^ 0x77; 16])),
        scope: n.is_multiple_of(2).then(|| "openid profile".to_owned()),
        client_id: n.is_multiple_of(3).then(|| "tessera".to_owned()),
        auth_time: n.is_multiple_of(2).then(|| now.as_secs()),
    }
}

impl Fixture {
    fn new() -> Self {
        let policy = tessera_tests::policy().token;
        let now = tessera_tests::T0.plus_ms(1_000_000);
        let published = Signer::from_seed(&PUBLISHED_SEED).expect("a signing key");
        let retired = Signer::from_seed(&RETIRED_SEED).expect("a signing key");
        let stranger = Signer::from_seed(&STRANGER_SEED).expect("a signing key");
        let mut views = Views::default();
        for (signer, unpublish_at) in [(&published, None), (&retired, Some(now.plus_ms(1)))] {
            views
                .load(
                    ViewKey::SigningKey(signer.kid().to_owned()),
                    ViewRecord::SigningKey(PublishedKey {
                        kid: signer.kid().to_owned(),
                        public_key: *signer.public_key(),
                        created_at: tessera_tests::T0,
                        unpublish_at,
                    }),
                )
                .expect("a signing key loads");
        }
        let keys = views.signing_keys().clone();

        let mut tokens = Vec::new();
        for n in 0..6 {
            let claims = claims_at(now, &policy, n, n.is_multiple_of(2));
            let token = published.sign(&claims).expect("signs");
            tokens.push((token, Some(claims.clone())));
            // Refused: another key, a retired one (still published: accepted), bad claims.
            tokens.push((stranger.sign(&claims).expect("signs"), None));
            tokens.push((retired.sign(&claims).expect("signs"), Some(claims.clone())));
            let mut expired = claims.clone();
            expired.exp = now.as_secs() - 600;
            tokens.push((published.sign(&expired).expect("signs"), None));
            let mut both = claims.clone();
            both.sid = Some(SessionId::from_bytes([1; 16]));
            both.fam = Some(FamilyId::from_bytes([2; 16]));
            tokens.push((published.sign(&both).expect("signs"), None));
        }
        tokens.push((
            "tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            None,
        ));
        tokens.push(("a.b.c".into(), None));

        let real_header = tokens[0]
            .0
            .split('.')
            .next()
            .and_then(|h| BASE64URL_NOPAD.decode(h.as_bytes()).ok())
            .expect("a signed token has a header");
        let kid = published.kid().to_owned();
        let mut headers = vec![real_header];
        for variant in [
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}),
            json!({"alg": "EdDSA", "typ": "application/at+jwt", "kid": kid}),
            json!({"alg": "EdDSA", "typ": "AT+JWT", "kid": retired.kid()}),
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": ["exp"]}),
            json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
            json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}),
            json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": stranger.kid(), "jku": "https://x"}),
        ] {
            headers.push(variant.to_string().into_bytes());
        }
        let claims = (0..6)
            .map(|n| {
                serde_json::to_vec(&claims_at(now, &policy, n, n.is_multiple_of(2)))
                    .expect("serializes")
            })
            .collect();
        Self {
            keys,
            views,
            policy,
            now,
            published_kid: kid,
            key: jsonwebtoken::EncodingKey::from_ed_der(&pkcs8(&PUBLISHED_SEED)),
            tokens,
            headers,
            claims,
        }
    }

    fn verify(&self, token: &str) -> Result<AccessClaims, tessera_core::token::TokenRejection> {
        verify_access_token(token, &self.keys, self.now, &self.policy)
    }

    /// `header.claims.signature`, signed with the published key when `sign`, else with a
    /// corpus token's signature.
    fn assemble(&self, header: &[u8], claims: &[u8], sign: bool) -> String {
        let message = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header),
            BASE64URL_NOPAD.encode(claims)
        );
        let signature = if sign {
            jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &self.key,
                jsonwebtoken::Algorithm::EdDSA,
            )
            .expect("signs")
        } else {
            self.tokens[0]
                .0
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        format!("{message}.{signature}")
    }
}

#[derive(Debug)]
enum Input {
    /// A corpus token mutated as bytes, presented in an `Authorization: Bearer` header or
    /// straight to the verifier (lossily made UTF-8).
    Raw {
        of: usize,
        bytes: Bytes,
        via_header: bool,
    },
    /// A mutated header document over valid claims, signed with the published key or not.
    Header { header: Bytes, sign: bool },
    /// A mutated claims document under the real header, signed with the published key.
    Claims { claims: Bytes },
}

const TOKEN_DICTIONARY: &[&[u8]] = &[
    b".",
    b"..",
    b"=",
    b"+",
    b"/",
    b"-",
    b"_",
    b"eyJ",
    b"tsr_",
    b" ",
    b"\t",
    b"%",
    b"\xc3\xa9",
    b"\xff",
    b"\0",
    b"Bearer ",
    b"bearer ",
    b"AAAA",
];

const JSON_DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"1e400",
    b"-1",
    b"-0",
    b"18446744073709551616",
    b"1.5",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\\",
    b"\"alg\":",
    b"\"typ\":",
    b"\"kid\":",
    b"\"crit\":",
    b"\"crit\":null,",
    b"\"sid\":",
    b"\"fam\":",
    b"\"exp\":",
    b"\"nbf\":",
    b"\"iat\":",
    b"\"iss\":",
    b"\"aud\":",
    b"\"sub\":",
    b"\"jti\":",
    b",\"sid\":null",
    b",\"fam\":null",
    b",\"exp\":0",
    b"\"EdDSA\"",
    b"\"none\"",
    b"\"at+jwt\"",
    b"\"00000000-0000-0000-0000-000000000000\"",
    b"[[[[[[[[[[[[[[[[",
];

/// Swaps one member of a JSON object for a value from a list of troublesome ones, or
/// removes it, or adds a stranger: deep structural changes that byte mutation rarely makes
/// without breaking the syntax.
fn mutate_document(doc: &[u8], fields: &[&str], rng: &mut ChaCha20Rng, fx: &Fixture) -> Vec<u8> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(doc) else {
        return doc.to_vec();
    };
    for _ in 0..rng.random_range(1..=3) {
        let field = fields[rng.random_range(0..fields.len())].to_owned();
        let now = fx.now.as_secs();
        let values = [
            Value::Null,
            json!(true),
            json!(0),
            json!(-1),
            json!(u64::MAX),
            json!(1.5),
            json!(now),
            json!(now + 100_000),
            json!(""),
            json!("x"),
            json!([]),
            json!({}),
            json!(["exp"]),
            json!("EdDSA"),
            json!("at+jwt"),
            json!(fx.published_kid),
            json!(fx.policy.issuer),
            json!(fx.policy.audience),
            json!("01890a5d-ac96-774b-bcce-b302099a8057"),
            json!("x".repeat(3000)),
        ];
        match rng.random_range(0..5) {
            0 => {
                map.remove(&field);
            }
            1 => {
                map.insert(format!("{field}x"), json!(1));
            }
            _ => {
                map.insert(field, values[rng.random_range(0..values.len())].clone());
            }
        }
    }
    Value::Object(map).to_string().into_bytes()
}

const HEADER_FIELDS: &[&str] = &["alg", "typ", "kid", "crit", "jku", "jwk", "x5u", "cty"];
const CLAIM_FIELDS: &[&str] = &[
    "iss",
    "aud",
    "sub",
    "exp",
    "iat",
    "nbf",
    "jti",
    "sid",
    "fam",
    "scope",
    "client_id",
];

fn generate(fx: &Fixture, rng: &mut ChaCha20Rng) -> Input {
    match rng.random_range(0..3) {
        0 => {
            let corpus: Vec<Vec<u8>> = fx.tokens.iter().map(|(t, _)| t.clone().into()).collect();
            let of = rng.random_range(0..corpus.len());
            let mutator = Mutator {
                corpus: &corpus[of..=of],
                dictionary: TOKEN_DICTIONARY,
                max_len: ACCESS_TOKEN_BYTES_MAX + 64,
            };
            // Sometimes unchanged: the corpus token itself must verify as it should.
            let bytes = if rng.random_bool(0.05) {
                corpus[of].clone()
            } else {
                let mut bytes = corpus[of].clone();
                for _ in 0..rng.random_range(1..=4) {
                    mutator.mutate(&mut bytes, rng);
                }
                bytes.truncate(mutator.max_len);
                bytes
            };
            Input::Raw {
                of,
                bytes: Bytes(bytes),
                via_header: rng.random_bool(0.5),
            }
        }
        1 => {
            let doc = &fx.headers[rng.random_range(0..fx.headers.len())];
            let header = if rng.random_bool(0.5) {
                mutate_document(doc, HEADER_FIELDS, rng, fx)
            } else {
                Mutator {
                    corpus: &fx.headers,
                    dictionary: JSON_DICTIONARY,
                    max_len: 512,
                }
                .input(rng)
            };
            Input::Header {
                header: Bytes(header),
                sign: rng.random_bool(0.8),
            }
        }
        _ => {
            let doc = &fx.claims[rng.random_range(0..fx.claims.len())];
            let claims = if rng.random_bool(0.5) {
                mutate_document(doc, CLAIM_FIELDS, rng, fx)
            } else {
                Mutator {
                    corpus: &fx.claims,
                    dictionary: JSON_DICTIONARY,
                    max_len: 2048,
                }
                .input(rng)
            };
            Input::Claims {
                claims: Bytes(claims),
            }
        }
    }
}

/// What RFC 8725 and our profile require of a header we accepted, judged independently of
/// the verifier's own parsing.
fn header_acceptable(fx: &Fixture, header: &[u8]) -> Result<(), String> {
    let Ok(Value::Object(h)) = serde_json::from_slice::<Value>(header) else {
        return Err("the header is not a JSON object".into());
    };
    if h.get("alg") != Some(&json!("EdDSA")) {
        return Err(format!("alg is {:?}", h.get("alg")));
    }
    let typ = h
        .get("typ")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let typ = typ
        .as_deref()
        .map(|t| t.strip_prefix("application/").unwrap_or(t));
    if typ != Some("at+jwt") {
        return Err(format!("typ is {:?}", h.get("typ")));
    }
    if h.contains_key("crit") {
        return Err("the header has a crit member".into());
    }
    let kid = h.get("kid").and_then(Value::as_str).unwrap_or_default();
    if fx.keys.published(kid, fx.now).is_none() {
        return Err(format!("kid {kid:?} is not published"));
    }
    Ok(())
}

/// What the verifier promises of claims it accepted.
fn claims_acceptable(fx: &Fixture, c: &AccessClaims, token_len: usize) -> Result<(), String> {
    let now = fx.now.as_secs();
    let leeway = fx.policy.leeway_secs;
    let ok = c.iss == fx.policy.issuer
        && c.aud == fx.policy.audience
        && c.sid.is_some() != c.fam.is_some()
        && now < c.exp.saturating_add(leeway)
        && c.nbf <= now + leeway
        && c.iat <= now + leeway;
    let heap = c.iss.len()
        + c.aud.len()
        + c.scope.as_ref().map_or(0, String::len)
        + c.client_id.as_ref().map_or(0, String::len);
    if !ok {
        return Err(format!("accepted claims break the rules: {c:?}"));
    }
    if heap > token_len {
        return Err(format!(
            "{heap} bytes of claims from a {token_len}-byte token"
        ));
    }
    Ok(())
}

fn outcome(
    fx: &Fixture,
    result: Result<AccessClaims, tessera_core::token::TokenRejection>,
) -> &'static str {
    match result {
        Ok(claims) => match check_not_revoked(&fx.views, &claims, fx.now) {
            Ok(()) => "accepted",
            Err(e) => e.slug(),
        },
        Err(e) => e.slug(),
    }
}

fn check(fx: &Fixture, input: &Input) -> Outcome {
    match input {
        Input::Raw {
            of,
            bytes,
            via_header,
        } => {
            let (original, expected) = &fx.tokens[*of];
            let token = if *via_header {
                let mut value = b"Bearer ".to_vec();
                value.extend_from_slice(&bytes.0);
                let Ok(value) = HeaderValue::from_bytes(&value) else {
                    return Ok("not a header value");
                };
                let mut headers = HeaderMap::new();
                headers.insert(header::AUTHORIZATION, value);
                match bearer(&headers) {
                    Ok(Some(token)) => token.to_owned(),
                    Ok(None) => return Err("bearer() missed the Authorization header".into()),
                    Err(_) => return Ok("not a bearer credential"),
                }
            } else {
                String::from_utf8_lossy(&bytes.0).into_owned()
            };
            let result = fx.verify(&token);
            match (&result, expected) {
                (Ok(claims), Some(expected)) if token == *original => {
                    if claims != expected {
                        return Err(format!("verified to other claims: {claims:?}"));
                    }
                }
                (Ok(claims), _) => {
                    return Err(format!(
                        "a token that is not one we signed verified: {token:?} gave {claims:?}"
                    ));
                }
                (Err(e), Some(_)) if token == *original => {
                    return Err(format!("a valid token was refused: {e}"));
                }
                (Err(_), _) => {}
            }
            Ok(outcome(fx, result))
        }
        Input::Header { header, sign } => {
            let token = fx.assemble(&header.0, &fx.claims[0], *sign);
            let result = fx.verify(&token);
            if let Ok(claims) = &result {
                header_acceptable(fx, &header.0)
                    .map_err(|why| format!("a header was accepted that must not be: {why}"))?;
                claims_acceptable(fx, claims, token.len())?;
            }
            Ok(outcome(fx, result))
        }
        Input::Claims { claims } => {
            let token = fx.assemble(&fx.headers[0], &claims.0, true);
            let result = fx.verify(&token);
            if let Ok(accepted) = &result {
                claims_acceptable(fx, accepted, token.len())?;
                let reparsed: Result<AccessClaims, _> = serde_json::from_slice(&claims.0);
                if reparsed.as_ref().ok() != Some(accepted) {
                    return Err(format!(
                        "accepted {accepted:?} from a document that parses to {reparsed:?}"
                    ));
                }
            }
            Ok(outcome(fx, result))
        }
    }
}

/// Inputs that once broke a property, kept so they stay fixed.
fn regressions(fx: &Fixture) -> Vec<Input> {
    // `"crit": null` was read as no `crit` at all, and the token accepted.
    let crit_null = format!(
        r#"{{"alg":"EdDSA","crit":null,"kid":"{}","typ":"at+jwt"}}"#,
        fx.published_kid
    );
    vec![Input::Header {
        header: Bytes(crit_null.into_bytes()),
        sign: true,
    }]
}

fn run(run: Run) {
    let fx = Fixture::new();
    fuzz(
        run,
        &regressions(&fx),
        |rng| generate(&fx, rng),
        |input| check(&fx, input),
    );
}

#[test]
fn token_short() {
    run(Run::short("token"));
}

#[test]
#[ignore = "the long run: one million cases by default, see fuzz/mod.rs"]
fn token_long() {
    run(Run::long("token"));
}
