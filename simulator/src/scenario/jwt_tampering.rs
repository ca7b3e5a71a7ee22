//! JWT tampering (RFC 8725, the JWT BCP): `alg: none`, algorithm confusion (HS256 keyed with
//! the published public key), a key id nobody published or one that tries a path, a stripped
//! or altered signature, a changed payload (another subject, a later expiry, another
//! audience or issuer), and an expired token. Defence: the verifier reads the header only to
//! refuse, accepts EdDSA with a published kid and nothing else, and checks the claims
//! against the engine's time.

use std::net::{IpAddr, Ipv4Addr};

use data_encoding::BASE64URL_NOPAD;
use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use serde_json::{Value, json};

use super::{AttackStats, Scenario, pick, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));

const FORGERIES: [&str; 11] = [
    "alg-none",
    "hs256-confusion",
    "unknown-kid",
    "path-kid",
    "stripped-signature",
    "altered-signature",
    "other-subject",
    "later-expiry",
    "other-audience",
    "other-issuer",
    "expired",
];

pub struct JwtTampering {
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
}

fn b64(v: &Value) -> String {
    BASE64URL_NOPAD.encode(v.to_string().as_bytes())
}

/// Sets `key` in a JSON object; a header or payload that is not an object (the token did
/// not decode) becomes one, as `value[key] = ...` would make of `null`.
fn set(value: &mut Value, key: &str, to: Value) {
    if !value.is_object() {
        *value = Value::Object(serde_json::Map::new());
    }
    if let Some(object) = value.as_object_mut() {
        object.insert(key.to_owned(), to);
    }
}

fn decode(part: &str) -> Value {
    BASE64URL_NOPAD
        .decode(part.as_bytes())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

impl JwtTampering {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("tamper-victim".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            stats: AttackStats::default(),
        }
    }

    /// The attacker's forgery from a token it holds (its own, legitimately issued).
    fn forge(&mut self, world: &mut World, token: &str, kind: &str) -> String {
        let mut parts = token.split('.');
        let (h, p, sig) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let (mut header, mut claims) = (decode(h), decode(p));
        match kind {
            "alg-none" => {
                set(&mut header, "alg", json!("none"));
                format!("{}.{p}.", b64(&header))
            }
            "hs256-confusion" => {
                let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                hs.typ = Some("at+jwt".into());
                hs.kid = Some(world.kid());
                jsonwebtoken::encode(
                    &hs,
                    &claims,
                    &jsonwebtoken::EncodingKey::from_secret(&world.public_key()),
                )
                .unwrap_or_default()
            }
            "unknown-kid" => {
                let seed: [u8; 32] = self.rng.random();
                let own = tessera_core::signing_key::Signer::from_seed(&seed);
                let parsed = serde_json::from_value::<tessera_core::token::AccessClaims>(claims);
                match (own, parsed) {
                    (Ok(signer), Ok(c)) => signer.sign(&c).unwrap_or_default(),
                    _ => String::new(),
                }
            }
            "path-kid" => {
                set(&mut header, "kid", json!("../../keys/../../etc/shadow"));
                format!("{}.{p}.{sig}", b64(&header))
            }
            "stripped-signature" => format!("{h}.{p}."),
            "altered-signature" => {
                let mut bytes = BASE64URL_NOPAD.decode(sig.as_bytes()).unwrap_or_default();
                if let Some(b) = bytes.first_mut() {
                    *b ^= 1;
                }
                format!("{h}.{p}.{}", BASE64URL_NOPAD.encode(&bytes))
            }
            "other-subject" | "later-expiry" | "other-audience" | "other-issuer" => {
                match kind {
                    "other-subject" => set(
                        &mut claims,
                        "sub",
                        json!("00000000-0000-7000-8000-000000000001"),
                    ),
                    "later-expiry" => {
                        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                        set(&mut claims, "exp", json!(exp + 86_400));
                    }
                    _ => set(&mut claims, "aud", json!("another-service")),
                }
                format!("{h}.{}.{sig}", b64(&claims))
            }
            _ => token.to_owned(),
        }
    }
}

impl Scenario for JwtTampering {
    fn name(&self) -> &'static str {
        "jwt-tampering"
    }

    fn defence(&self) -> &'static str {
        "EdDSA with a published kid only; signature, claims and time checked"
    }

    fn mark(&self) -> &'static str {
        "tampered token refused"
    }

    register_victim!();

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let Some(Ok(issued)) = world.login_tokens(&self.victim.0, &self.victim.1, VICTIM_IP)?
        else {
            return Ok(());
        };
        let token = world.sign(&issued.access);
        ledger.token_issued(&token, &issued.access);
        let Some(&kind) = pick(&mut self.rng, &FORGERIES) else {
            return Ok(());
        };
        let forged = self.forge(world, &token, kind);
        if kind == "expired" {
            // Engine time: after the clock stepped back it stands still until the clock
            // catches up, so advance until the token is past its expiry and leeway there.
            let leeway = world.policy.token.leeway_secs * 1000;
            let dead_at = issued.access.expires_at().plus_ms(leeway);
            world.advance(self.rng.random_range(1..60_000));
            while world.now() <= dead_at {
                world.advance(60_000);
            }
        }
        self.stats.attempt(world.now());
        if world.verify_bearer(&forged).is_ok() {
            return Err(self.stats.succeeded(
                world,
                self.name(),
                &format!("a forged token ({kind}) was accepted"),
            ));
        }
        self.stats.blocked();
        world.marks.hit("tampered token refused");
        if kind != "expired" && world.verify_bearer(&token).is_err() {
            return Err(world.fail(
                crate::FailureKind::Liveness,
                "the genuine token stopped working next to a forgery",
            ));
        }
        Ok(())
    }

    victim_accessors!();
}

redacted_debug!(JwtTampering);
