//! API-key attacks. A leaked key used after it should have stopped working: after its
//! holder revoked it, after a secret-scanning alert, after an operator revoked it by prefix,
//! and after its rotation overlap ended (and then never two keys of the rotation accepted).
//! Key guessing: well-formed keys with a valid checksum (the format is public) and random
//! strings. Defences: state checked on every use; 178 random bits behind a keyed digest;
//! checksums refuse garbage before any lookup.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::apikey::{
    self as k, ApiKeyId, ApiKeyKind, ApiKeySpec, Environment, KeyRefusal, format,
};
use tessera_core::{Command, Reply};

use super::{AttackStats, Scenario, pick, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 60));

#[derive(Clone, Copy, Debug)]
enum Ending {
    Revoked,
    LeakAlert,
    OperatorPrefix,
    RotationOverlap,
}

impl Ending {
    const ALL: [Ending; 4] = [
        Self::Revoked,
        Self::LeakAlert,
        Self::OperatorPrefix,
        Self::RotationOverlap,
    ];

    fn mark(self) -> &'static str {
        match self {
            Self::Revoked => "leaked API key refused after revocation",
            Self::LeakAlert => "leaked API key refused after a leak alert",
            Self::OperatorPrefix => "leaked API key refused after revocation by prefix",
            Self::RotationOverlap => "leaked API key refused after its rotation overlap",
        }
    }
}

fn spec(rng: &mut ChaCha20Rng) -> ApiKeySpec {
    ApiKeySpec {
        name: format!("app-{}", rng.random_range(0..1000u32)),
        kind: ApiKeyKind::Secret,
        environment: Environment::Live,
        scopes: vec!["tokens:read".into()],
        allowed_cidrs: vec![],
        rate_limit_per_minute: None,
        expires_in_secs: 30 * 24 * 3600,
    }
}

/// Creates a key for `username` as its holder, just logged in; `(id, key)`.
fn create(
    world: &mut World,
    username: &str,
    rng: &mut ChaCha20Rng,
) -> Result<Option<(ApiKeyId, String)>, Failure> {
    let Some(account) = world.account_id(username) else {
        return Ok(None);
    };
    let command = k::CreateApiKey {
        account,
        creator_scopes: None,
        spec: spec(rng),
        pepper: world.api_key_pepper(),
        step_up: Some(world.now()).into(),
    };
    Ok(match world.execute(command)? {
        Some(Ok(Reply::ApiKeyIssued(i))) => Some((i.id, i.key.to_string())),
        _ => None,
    })
}

pub struct LeakedApiKey {
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
}

impl LeakedApiKey {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("apikey-victim".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            stats: AttackStats::default(),
        }
    }

    /// Ends the key the way `ending` says; `Some(successor)` for a rotation. `None` when
    /// the ending did not happen (a crash, say): nothing to attack then.
    fn end(
        &mut self,
        world: &mut World,
        ending: Ending,
        id: ApiKeyId,
        key: &str,
    ) -> Result<Option<Option<String>>, Failure> {
        let Some(account) = world.account_id(&self.victim.0) else {
            return Ok(None);
        };
        let pepper = world.api_key_pepper();
        let command = match ending {
            Ending::Revoked => Command::from(k::RevokeApiKey { account, key: id }),
            Ending::LeakAlert => Command::from(k::ReportLeakedApiKeys {
                reports: vec![k::LeakReport {
                    digest: Some(pepper.digest(key)),
                    source: "commit".into(),
                    url: Some("https://example.com/leak".into()),
                }],
            }),
            Ending::OperatorPrefix => {
                let vendor = world.policy().api_keys.vendor.clone();
                let cut = key.len().min(vendor.len() + 30);
                let Ok(presented) =
                    k::PresentedPrefix::read(key.get(..cut).unwrap_or(key), &pepper, &vendor)
                else {
                    return Err(world.fail(
                        crate::FailureKind::Invariant,
                        "a prefix of an issued key is refused",
                    ));
                };
                Command::from(k::RevokeApiKeyByPrefix {
                    presented,
                    operator: "sim".into(),
                })
            }
            Ending::RotationOverlap => {
                let overlap_secs = self.rng.random_range(0..3600u64);
                let command = k::RotateApiKey {
                    account,
                    key: id,
                    overlap_secs: Some(overlap_secs),
                    pepper,
                    step_up: Some(world.now()).into(),
                };
                let Some(Ok(Reply::ApiKeyIssued(next))) = world.execute(command)? else {
                    return Ok(None);
                };
                // The old key works during the overlap, then never.
                if overlap_secs > 0 && world.authenticate_api_key(key).is_err() {
                    return Err(world.fail(
                        crate::FailureKind::Invariant,
                        "a rotated key was refused inside its overlap",
                    ));
                }
                // The overlap is measured in the engine's time, which never follows the
                // clock back: after an NTP rewind it stands still until the clock catches up.
                let retires_at = world
                    .engine()
                    .views()
                    .api_key(&id)
                    .and_then(|v| v.retires_at);
                let Some(retires_at) = retires_at else {
                    return Err(world.fail(
                        crate::FailureKind::Invariant,
                        "a rotation set no overlap end",
                    ));
                };
                for _ in 0..1000 {
                    if world.now() >= retires_at {
                        break;
                    }
                    world.advance(retires_at.since(world.now()).max(1));
                }
                return Ok(Some(Some(next.key.to_string())));
            }
        };
        Ok(match world.execute(command)? {
            Some(Ok(_)) => Some(None),
            _ => None,
        })
    }
}

impl Scenario for LeakedApiKey {
    fn name(&self) -> &'static str {
        "leaked-api-key"
    }

    fn defence(&self) -> &'static str {
        "key state checked on every use; bounded rotation overlap"
    }

    fn mark(&self) -> &'static str {
        "leaked API key refused after its rotation overlap"
    }

    register_victim!();

    fn step(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        let Some(Ok(_)) = world.login_tokens(&self.victim.0, &self.victim.1, VICTIM_IP)? else {
            return Ok(());
        };
        let Some((id, key)) = create(world, &self.victim.0, &mut self.rng)? else {
            return Ok(());
        };
        let Some(&ending) = pick(&mut self.rng, &Ending::ALL) else {
            return Ok(());
        };
        let Some(successor) = self.end(world, ending, id, &key)? else {
            return Ok(());
        };
        world.advance(self.rng.random_range(0..60_000));
        self.stats.attempt(world.now());
        if world.authenticate_api_key(&key).is_ok() {
            return Err(self.stats.succeeded(
                world,
                self.name(),
                &format!("a leaked API key worked after {ending:?}"),
            ));
        }
        self.stats.blocked();
        self.stats.detected(world.now());
        world.marks.hit(ending.mark());
        if let Some(next) = successor {
            // Exactly one key of the rotation is accepted past the overlap: the successor.
            if world.authenticate_api_key(&next).is_err() {
                return Err(world.fail(
                    crate::FailureKind::Invariant,
                    "the successor of a rotated key was refused",
                ));
            }
            world
                .marks
                .hit("one key of a rotation accepted past its overlap");
        }
        Ok(())
    }

    victim_accessors!();
}

redacted_debug!(LeakedApiKey);

pub struct ApiKeyGuessing {
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
}

impl ApiKeyGuessing {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("apikey-owner".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            stats: AttackStats::default(),
        }
    }

    /// A guess: a well-formed key with a valid checksum, or a random string in our shape.
    fn guess(&mut self, vendor: &str) -> (String, bool) {
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let body: String = (0..format::BODY_CHARS + format::CHECKSUM_CHARS)
            .filter_map(|_| pick(&mut self.rng, BASE62).map(|&b| char::from(b)))
            .collect();
        let text = format!("{vendor}_sk_live_{body}");
        if self.rng.random_bool(0.5) {
            return (text, false);
        }
        let cut = text.len() - format::CHECKSUM_CHARS;
        let head = text.get(..cut).unwrap_or_default().to_owned();
        let sum = format::checksum(&head);
        (format!("{head}{}", String::from_utf8_lossy(&sum)), true)
    }
}

impl Scenario for ApiKeyGuessing {
    fn name(&self) -> &'static str {
        "api-key-guessing"
    }

    fn defence(&self) -> &'static str {
        "178 random bits behind a keyed digest; checksums refuse garbage unread"
    }

    fn mark(&self) -> &'static str {
        "guessed API key refused"
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        world.register(&self.victim.0, &self.victim.1)?;
        // Keys to guess at.
        for _ in 0..3 {
            create(world, &self.victim.0, &mut self.rng)?;
        }
        Ok(())
    }

    fn step(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        let vendor = world.policy().api_keys.vendor.clone();
        for _ in 0..20 {
            let (guess, checksummed) = self.guess(&vendor);
            self.stats.attempt(world.now());
            match world.authenticate_api_key(&guess) {
                Ok(_) => {
                    return Err(self.stats.succeeded(
                        world,
                        self.name(),
                        "a guessed API key worked",
                    ));
                }
                Err(KeyRefusal::Format(_)) if !checksummed => {
                    // Refused before any lookup, and noticed: no client sends bad checksums.
                    self.stats.blocked();
                    self.stats.detected(world.now());
                    world.marks.hit("guessed API key refused by its checksum");
                }
                Err(_) => {
                    self.stats.blocked();
                    world.marks.hit("guessed API key refused");
                }
            }
        }
        world.advance(self.rng.random_range(0..5_000));
        Ok(())
    }

    victim_accessors!();
}

redacted_debug!(ApiKeyGuessing);
