//! Credential stuffing (pairs leaked from another site, tried across many accounts) and
//! password spraying (one common password across many accounts), both from one address.
//! Defences: the address throttle slows the address after its free failures, whatever
//! accounts it names; the common-password list keeps sprayable passwords out at
//! registration; MFA stops the pairs that were reused.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::{LoginMode, Rejection, Reply};

use super::{AttackStats, Scenario, pick, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 80));
const ACCOUNTS: usize = 8;
/// Accounts whose owners reused their password on the breached site (they have MFA on).
const REUSED: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    Stuffing,
    Spraying,
}

pub struct Stuffing {
    attack: Attack,
    rng: ChaCha20Rng,
    users: Vec<(String, String)>,
    /// What the attacker holds: username and password pairs.
    list: Vec<(String, String)>,
    stats: AttackStats,
}

impl Stuffing {
    pub fn new(attack: Attack, mut rng: ChaCha20Rng) -> Self {
        let prefix = if attack == Attack::Stuffing {
            "stuffed"
        } else {
            "sprayed"
        };
        let users: Vec<(String, String)> = (0..ACCOUNTS)
            .map(|i| (format!("{prefix}{i}"), strong_password(&mut rng)))
            .collect();
        let list = users
            .iter()
            .enumerate()
            .map(|(i, (name, own))| {
                let password = match attack {
                    Attack::Stuffing if i < REUSED => own.clone(),
                    Attack::Stuffing => strong_password(&mut rng),
                    Attack::Spraying => "Winter2025!!Password".to_owned(),
                };
                (name.clone(), password)
            })
            .collect();
        Self {
            attack,
            rng,
            users,
            list,
            stats: AttackStats::default(),
        }
    }
}

impl Scenario for Stuffing {
    fn name(&self) -> &'static str {
        match self.attack {
            Attack::Stuffing => "credential-stuffing",
            Attack::Spraying => "password-spraying",
        }
    }

    fn defence(&self) -> &'static str {
        match self.attack {
            Attack::Stuffing => "address throttle; MFA stops reused pairs",
            Attack::Spraying => "address throttle; common passwords refused",
        }
    }

    fn mark(&self) -> &'static str {
        "address throttled"
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        for (i, (name, password)) in self.users.clone().iter().enumerate() {
            world.register(name, password)?;
            if self.attack == Attack::Stuffing && i < REUSED {
                world.enable_mfa(name)?;
            }
        }
        Ok(())
    }

    fn step(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        // The reused pairs are only safe behind MFA: if a crash interrupted an enrolment,
        // finish it before the attacker gets another turn.
        if self.attack == Attack::Stuffing {
            for (name, _) in self.users.clone().iter().take(REUSED) {
                if !world.mfa_enabled(name) && world.enable_mfa(name)?.is_none() {
                    return Ok(());
                }
            }
        }
        let burst = self.rng.random_range(3..12);
        for _ in 0..burst {
            let Some((name, password)) = pick(&mut self.rng, &self.list).cloned() else {
                return Ok(());
            };
            self.stats.attempt(world.now());
            match world.login_any(&name, &password, ATTACKER_IP, LoginMode::Token)? {
                Some(Ok(Reply::MfaRequired(_))) => {
                    self.stats.blocked();
                    world.marks.hit("reused password stopped by MFA");
                }
                Some(Ok(_)) => {
                    return Err(self.stats.succeeded(
                        world,
                        self.name(),
                        &format!("{name} was opened with a leaked password"),
                    ));
                }
                Some(Err(Rejection::Throttled { .. })) => {
                    self.stats.blocked();
                    self.stats.detected(world.now());
                    world.marks.hit("address throttled");
                }
                Some(Err(_)) => self.stats.blocked(),
                None => {}
            }
            world.advance(self.rng.random_range(100..3_000));
        }
        Ok(())
    }

    fn honest_accounts(&self) -> Vec<(String, String)> {
        match self.attack {
            // The MFA users need their second factor; the others log in with a password.
            Attack::Stuffing => self.users.iter().skip(REUSED).cloned().collect(),
            Attack::Spraying => self.users.clone(),
        }
    }

    fn stats(&self) -> &AttackStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut AttackStats {
        &mut self.stats
    }
}

impl std::fmt::Debug for Stuffing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stuffing")
            .field("attack", &self.attack)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
