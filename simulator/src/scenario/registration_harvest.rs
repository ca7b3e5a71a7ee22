//! Registration harvesting: from one address, register names from a list, to learn which
//! are taken (an existing account answers "taken") and to create accounts in bulk.
//! Defence: every answered registration, created or taken, counts against the address;
//! past the free ones the address waits (429 with Retry-After, before argon2), doubling
//! each time. The attack succeeds if an answer arrives sooner than the rule's shortest wait
//! allows, or if an honest user's account is changed by it.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::throttle::STRIKES_FORGET_MS;
use tessera_core::{Rejection, Reply, Timestamp};

use super::{AttackStats, Scenario, pick, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66));
/// Real users whose names the attacker's list contains.
const VICTIMS: usize = 4;
/// Names on the list nobody holds yet.
const FRESH: usize = 60;

pub struct RegistrationHarvest {
    rng: ChaCha20Rng,
    victims: Vec<(String, String)>,
    /// The attacker's list: the victims' names among fresh ones.
    list: Vec<String>,
    /// Answered (not throttled) registrations of the attacker's address since its strikes
    /// were last forgotten, and when the latest was answered: the attacker's own count, to
    /// check the server against the rule's floor.
    answered: u32,
    last_answered: Option<Timestamp>,
    stats: AttackStats,
}

impl RegistrationHarvest {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victims: Vec<(String, String)> = (0..VICTIMS)
            .map(|i| (format!("harvest-victim{i}"), strong_password(&mut rng)))
            .collect();
        let mut list: Vec<String> = victims.iter().map(|(name, _)| name.clone()).collect();
        list.extend((0..FRESH).map(|i| format!("harvested{i}")));
        Self {
            rng,
            victims,
            list,
            answered: 0,
            last_answered: None,
            stats: AttackStats::default(),
        }
    }

    /// An answer the address got: fails the run if it came sooner than the registration
    /// rule allows even at its shortest wait (the free answers, then `delay_secs_first`
    /// apart at least).
    fn count_answer(&mut self, world: &World) -> Result<(), Failure> {
        let now = world.now();
        let rule = &world.policy.throttle.registration;
        if self
            .last_answered
            .is_some_and(|last| now.since(last) >= STRIKES_FORGET_MS)
        {
            self.answered = 0;
        }
        let floor_ms = rule.delay_secs_first.saturating_mul(1000);
        let too_soon = self.answered >= rule.free_failures
            && self
                .last_answered
                .is_some_and(|last| now.since(last) < floor_ms);
        self.answered = self.answered.saturating_add(1);
        self.last_answered = Some(now);
        if too_soon {
            return Err(self.stats.succeeded(
                world,
                "registration-harvesting",
                "a registration was answered while its address had to wait",
            ));
        }
        Ok(())
    }
}

impl Scenario for RegistrationHarvest {
    fn name(&self) -> &'static str {
        "registration-harvesting"
    }

    fn defence(&self) -> &'static str {
        "registrations counted per address, created or taken; 429 before argon2"
    }

    fn mark(&self) -> &'static str {
        "registration throttled"
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        for (name, password) in self.victims.clone() {
            world.register(&name, &password)?;
        }
        Ok(())
    }

    fn step(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        let burst = self.rng.random_range(3..12);
        for _ in 0..burst {
            let Some(name) = pick(&mut self.rng, &self.list).cloned() else {
                return Ok(());
            };
            let password = strong_password(&mut self.rng);
            self.stats.attempt(world.now());
            match world.register_from(&name, &password, ATTACKER_IP)? {
                Some(Ok(Reply::Registered { .. })) => {
                    if self.victims.iter().any(|(victim, _)| *victim == name) {
                        return Err(self.stats.succeeded(
                            world,
                            self.name(),
                            &format!("{name} was registered a second time"),
                        ));
                    }
                    self.count_answer(world)?;
                }
                Some(Err(Rejection::UsernameTaken)) => {
                    self.stats.blocked();
                    self.count_answer(world)?;
                }
                Some(Err(Rejection::Throttled { .. })) => {
                    self.stats.blocked();
                    self.stats.detected(world.now());
                    world.marks.hit("registration throttled");
                }
                Some(Err(_) | Ok(_)) => self.stats.blocked(),
                // A crash: the outcome is unknown, so the attacker's count stays low, which
                // only makes the check above more lenient.
                None => {}
            }
            world.advance(self.rng.random_range(100..3_000));
        }
        Ok(())
    }

    fn honest_accounts(&self) -> Vec<(String, String)> {
        self.victims.clone()
    }

    fn stats(&self) -> &AttackStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut AttackStats {
        &mut self.stats
    }
}

impl std::fmt::Debug for RegistrationHarvest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationHarvest")
            .field("answered", &self.answered)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
