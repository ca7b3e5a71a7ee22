//! Online password guessing against one account. Defence: argon2id makes every guess cost
//! the server's work, a guess never succeeds without the password, and every failure is
//! recorded against the account (the counters that throttling reads).

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;

use super::{AttackStats, Scenario, pick, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 99));

/// A few of the most common passwords in breach corpora, made to pass the policy the way
/// people make them pass.
const GUESSES: &[&str] = &[
    "Password1234",
    "Qwerty123456",
    "Welcome12345",
    "Iloveyou1234",
    "Admin1234567",
    "Letmein12345",
    "Summer2024!!",
    "Football1234",
];

pub struct BruteForce {
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
}

impl BruteForce {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("brute-victim".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            stats: AttackStats::default(),
        }
    }
}

impl Scenario for BruteForce {
    fn name(&self) -> &'static str {
        "brute-force"
    }

    fn defence(&self) -> &'static str {
        "argon2id per guess; failures throttle the account and the address"
    }

    fn mark(&self) -> &'static str {
        "guess refused and recorded"
    }

    register_victim!();

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let burst = self.rng.random_range(1..6);
        for _ in 0..burst {
            let Some(&guess) = pick(&mut self.rng, GUESSES) else {
                return Ok(());
            };
            self.stats.attempt(world.now());
            let before = world.head().sequence;
            match world.login(&self.victim.0, guess, ATTACKER_IP)? {
                Some(Ok(issued)) => {
                    ledger.issued(issued.secret.expose(), issued.account, world.now());
                    return Err(self.stats.succeeded(
                        world,
                        self.name(),
                        "a guessed password opened the account",
                    ));
                }
                Some(Err(tessera_core::Rejection::Throttled { .. })) => {
                    self.stats.blocked();
                    self.stats.detected(world.now());
                    world.marks.hit("address throttled");
                }
                Some(Err(_)) => {
                    self.stats.blocked();
                    if world.account_wait_ms(&self.victim.0) > 0 {
                        self.stats.detected(world.now());
                        world.marks.hit("throttled");
                    }
                    if world.head().sequence > before {
                        world.marks.hit("guess refused and recorded");
                    }
                }
                None => {}
            }
            world.advance(self.rng.random_range(100..5_000));
        }
        Ok(())
    }

    victim_accessors!();
}

redacted_debug!(BruteForce);
