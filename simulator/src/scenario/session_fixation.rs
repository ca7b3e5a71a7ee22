//! Session fixation: the attacker plants a session id in the victim's browser before the
//! victim logs in, hoping the server adopts it (OWASP Session Management Cheat Sheet,
//! "Session Fixation"). Defence: every login mints a fresh id; a planted value, forged or
//! the attacker's own, never becomes the victim's session.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;

use super::{AttackStats, Scenario, forged_secret, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66));

pub struct SessionFixation {
    rng: ChaCha20Rng,
    victim: (String, String),
    attacker: (String, String),
    stats: AttackStats,
}

impl SessionFixation {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("fixation-victim".to_owned(), strong_password(&mut rng));
        let attacker = ("fixation-attacker".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            attacker,
            stats: AttackStats::default(),
        }
    }
}

impl Scenario for SessionFixation {
    fn name(&self) -> &'static str {
        "session-fixation"
    }

    fn defence(&self) -> &'static str {
        "fresh session id at every login"
    }

    fn mark(&self) -> &'static str {
        "planted session id not adopted"
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        world.register(&self.victim.0, &self.victim.1)?;
        world.register(&self.attacker.0, &self.attacker.1)?;
        Ok(())
    }

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        // Plant either a forged value or the attacker's own, valid session.
        let planted = if self.rng.random_bool(0.5) {
            forged_secret(&mut self.rng)
        } else {
            match world.login(&self.attacker.0, &self.attacker.1, ATTACKER_IP)? {
                Some(Ok(own)) => {
                    ledger.issued(own.secret.expose(), own.account, world.now());
                    own.secret.expose().to_owned()
                }
                _ => return Ok(()),
            }
        };
        let victim_account = match world.login(&self.victim.0, &self.victim.1, VICTIM_IP)? {
            Some(Ok(issued)) => {
                ledger.issued(issued.secret.expose(), issued.account, world.now());
                if issued.secret.expose() == planted {
                    return Err(self.stats.succeeded(
                        world,
                        self.name(),
                        "the login adopted the planted id",
                    ));
                }
                issued.account
            }
            _ => return Ok(()),
        };
        self.stats.attempt(world.now());
        match world.use_session(&planted)? {
            Ok(session) if session.account == victim_account => Err(self.stats.succeeded(
                world,
                self.name(),
                "the planted id opened the victim's account",
            )),
            _ => {
                self.stats.blocked();
                world.marks.hit("planted session id not adopted");
                Ok(())
            }
        }
    }

    victim_accessors!();
}

redacted_debug!(SessionFixation);
