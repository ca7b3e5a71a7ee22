//! Races: two refreshes of one token at the same moment, and a refresh racing a revocation
//! or a logout. Defence: the single writer decides them in order: exactly one refresh
//! rotates (the other is reuse, which then revokes the family), and whatever a refresh
//! minted before a revocation is revoked with its family.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::{Command, Reply};

use super::{AttackStats, Scenario, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 60));

pub struct RefreshRace {
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
}

impl RefreshRace {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("race-victim".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            stats: AttackStats::default(),
        }
    }
}

impl Scenario for RefreshRace {
    fn name(&self) -> &'static str {
        "refresh-race"
    }

    fn defence(&self) -> &'static str {
        "one writer orders racing refreshes and revocations"
    }

    fn mark(&self) -> &'static str {
        "racing refreshes: exactly one rotated"
    }

    register_victim!();

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let Some(Ok(issued)) = world.login_tokens(&self.victim.0, &self.victim.1, VICTIM_IP)?
        else {
            return Ok(());
        };
        let family = issued.family;
        let Some(presented) = tessera_core::refresh::presented_digest(issued.refresh.expose())
        else {
            return Err(world.fail(
                crate::FailureKind::Crash,
                "the server issued a malformed refresh token",
            ));
        };
        let refresh = Command::from(tessera_core::refresh::RefreshTokens { presented });
        let against = match self.rng.random_range(0..3) {
            0 => refresh.clone(),
            1 => Command::from(tessera_core::refresh::RevokeRefreshToken { presented }),
            _ => Command::from(tessera_core::refresh::LogoutFamily { family }),
        };
        let two_refreshes = matches!(
            against,
            Command::Token(tessera_core::TokenCommand::Refresh(_))
        );
        let revoke_first = !two_refreshes && self.rng.random_bool(0.5);
        let (first, second) = if revoke_first {
            (against, refresh)
        } else {
            (refresh, against)
        };
        self.stats.attempt(world.now());
        let (a, b) = world.race(first, second)?;
        let (Some(a), Some(b)) = (a, b) else {
            return Ok(());
        };
        let minted: Vec<_> = [&a, &b]
            .into_iter()
            .filter_map(|r| match r {
                Ok(Reply::TokensIssued(t)) => Some(t.clone()),
                _ => None,
            })
            .collect();
        for t in &minted {
            let access = world.sign(&t.access);
            ledger.token_issued(&access, &t.access);
        }
        if two_refreshes {
            if minted.len() != 1 {
                return Err(self.stats.succeeded(
                    world,
                    self.name(),
                    &format!("{} racing refreshes rotated", minted.len()),
                ));
            }
            world.marks.hit("racing refreshes: exactly one rotated");
        } else {
            world.marks.hit("revocation beat a racing refresh");
        }
        // Either way the family is over now (reuse, revocation or logout), minted tokens too.
        ledger.family_ended(family, "a race it lost");
        if world.family_live(&family) {
            return Err(self.stats.succeeded(
                world,
                self.name(),
                "a family survived its revocation race",
            ));
        }
        for t in &minted {
            if world.verify_bearer(&world.sign(&t.access)).is_ok() {
                return Err(self.stats.succeeded(
                    world,
                    self.name(),
                    "a token minted in the race is still accepted",
                ));
            }
        }
        self.stats.blocked();
        Ok(())
    }

    victim_accessors!();
}

redacted_debug!(RefreshRace);
