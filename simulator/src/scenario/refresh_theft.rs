//! Refresh-token theft: the attacker copies a user's refresh token, and both use it, in
//! either order (OAuth 2.0 Security BCP, RFC 9700 §4.14.2). Defence: rotation on every use
//! and reuse detection: the second presentation of a spent token revokes the whole family,
//! so after detection neither the attacker nor the user holds a working token of it.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::Rejection;
use tessera_core::refresh::TokensIssued;

use super::{AttackStats, Scenario, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 30));

pub struct RefreshTheft {
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
}

impl RefreshTheft {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("theft-victim".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            stats: AttackStats::default(),
        }
    }

    fn remember(world: &World, ledger: &mut Ledger, issued: &TokensIssued) -> String {
        let access = world.sign(&issued.access);
        ledger.token_issued(&access, &issued.access);
        access
    }
}

impl Scenario for RefreshTheft {
    fn name(&self) -> &'static str {
        "refresh-theft"
    }

    fn defence(&self) -> &'static str {
        "rotation with reuse detection revokes the whole family"
    }

    fn mark(&self) -> &'static str {
        "family revoked on reuse"
    }

    register_victim!();

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let Some(Ok(first)) = world.login_tokens(&self.victim.0, &self.victim.1, VICTIM_IP)? else {
            return Ok(());
        };
        Self::remember(world, ledger, &first);
        let family = first.family;
        let stolen = first.refresh.expose().to_owned();
        world.advance(self.rng.random_range(0..600_000));
        let attacker_first = self.rng.random_bool(0.5);
        // The first presentation rotates; whoever comes second presents a spent token.
        self.stats.attempt(world.now());
        let Some(winner) = world.refresh(&stolen)? else {
            return Ok(());
        };
        let winner = match winner {
            Ok(issued) => issued,
            // The family died meanwhile (its deadline); nothing to steal.
            Err(_) => return Ok(()),
        };
        let winner_access = Self::remember(world, ledger, &winner);
        world.advance(self.rng.random_range(0..600_000));
        let Some(second) = world.refresh(&stolen)? else {
            return Ok(());
        };
        match second {
            Err(Rejection::RefreshTokenReused) => {
                self.stats.detected(world.now());
                world.marks.hit("family revoked on reuse");
                ledger.family_ended(family, "refresh token reuse");
            }
            Err(_) if !world.family_live(&family) => return Ok(()),
            other => {
                return Err(self.stats.succeeded(
                    world,
                    self.name(),
                    &format!("a spent refresh token was accepted: {other:?}"),
                ));
            }
        }
        if attacker_first {
            world.marks.hit("thief refreshed first");
        } else {
            self.stats.blocked();
            world.marks.hit("user refreshed first");
        }
        // After detection, whatever the attacker holds is dead: the winner's pair.
        self.stats.attempt(world.now());
        if world.verify_bearer(&winner_access).is_ok() {
            return Err(self.stats.succeeded(
                world,
                self.name(),
                "an access token of a revoked family still works",
            ));
        }
        match world.refresh(winner.refresh.expose())? {
            Some(Ok(_)) => {
                Err(self
                    .stats
                    .succeeded(world, self.name(), "a revoked family minted again"))
            }
            _ => {
                self.stats.blocked();
                Ok(())
            }
        }
    }

    victim_accessors!();
}

redacted_debug!(RefreshTheft);
