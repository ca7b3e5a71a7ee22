//! A stolen session cookie (XSS elsewhere, a shared computer, a leaked log) used after the
//! session should be over. Defences: logout, deletion from another session and a password
//! change end the session at once; idle and absolute deadlines end it by time.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;

use super::{AttackStats, Scenario, pick, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));

#[derive(Clone, Copy, Debug)]
enum Ending {
    Logout,
    DeletedElsewhere,
    PasswordChanged,
    IdleTimeout,
    AbsoluteLifetime,
}

impl Ending {
    const ALL: [Ending; 5] = [
        Self::Logout,
        Self::DeletedElsewhere,
        Self::PasswordChanged,
        Self::IdleTimeout,
        Self::AbsoluteLifetime,
    ];

    fn mark(self) -> &'static str {
        match self {
            Self::Logout => "stolen cookie refused after logout",
            Self::DeletedElsewhere => "stolen cookie refused after deletion",
            Self::PasswordChanged => "stolen cookie refused after password change",
            Self::IdleTimeout => "stolen cookie refused after idle timeout",
            Self::AbsoluteLifetime => "stolen cookie refused after absolute lifetime",
        }
    }
}

pub struct StolenSession {
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
}

impl StolenSession {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("stolen-victim".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            stats: AttackStats::default(),
        }
    }

    /// Ends the session the attacker holds, the way `ending` says. `false` if a crash made
    /// the outcome unknown.
    fn end(
        &mut self,
        world: &mut World,
        ledger: &mut Ledger,
        stolen: &str,
        account: tessera_core::AccountId,
        ending: Ending,
    ) -> Result<bool, Failure> {
        let policy = world.policy.session;
        match ending {
            Ending::Logout => {
                if !world.logout(stolen)? {
                    ledger.uncertain(stolen);
                    return Ok(false);
                }
                ledger.ended(stolen, "logout");
            }
            Ending::DeletedElsewhere => {
                let Some(Ok(other)) = world.login(&self.victim.0, &self.victim.1, VICTIM_IP)?
                else {
                    ledger.uncertain_all_of(account);
                    return Ok(false);
                };
                ledger.issued(other.secret.expose(), account, world.now());
                let Ok(target) = world.use_session(stolen)? else {
                    return Ok(false);
                };
                if !world.revoke(account, target.id)? {
                    ledger.uncertain(stolen);
                    return Ok(false);
                }
                ledger.ended(stolen, "deletion");
            }
            Ending::PasswordChanged => {
                let new = strong_password(&mut self.rng);
                match world.change_password(&self.victim.0, &self.victim.1, &new, None)? {
                    Some(Ok(_)) => {
                        self.victim.1 = new;
                        ledger.ended_all_of(account, None, "password change");
                    }
                    Some(Err(_)) => return Ok(false),
                    None => {
                        // Unknown: the password may or may not have changed.
                        ledger.uncertain_all_of(account);
                        if world.password_is(&self.victim.0, &new)? {
                            self.victim.1 = new;
                        }
                        return Ok(false);
                    }
                }
            }
            Ending::IdleTimeout => {
                // Engine time, not the virtual clock's: after the clock stepped back the
                // engine's time stands still until the clock catches up.
                let deadline = world.now().plus_ms(policy.idle_timeout_ms);
                world.advance(policy.idle_timeout_ms + self.rng.random_range(1..60_000));
                while world.now() <= deadline {
                    world.advance(60_000);
                }
            }
            Ending::AbsoluteLifetime => {
                // Stay active (never idle) until the absolute lifetime runs out.
                let deadline = world.now().plus_ms(policy.absolute_lifetime_ms);
                while world.now() <= deadline {
                    world.advance(policy.idle_timeout_ms / 2);
                    if world.use_session(stolen)?.is_ok() {
                        ledger.used(stolen, world.now());
                    }
                }
            }
        }
        Ok(true)
    }
}

impl Scenario for StolenSession {
    fn name(&self) -> &'static str {
        "stolen-session"
    }

    fn defence(&self) -> &'static str {
        "logout, deletion, password change and deadlines end a session for everyone"
    }

    fn mark(&self) -> &'static str {
        "stolen cookie refused after logout"
    }

    register_victim!();

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let Some(Ok(issued)) = world.login(&self.victim.0, &self.victim.1, VICTIM_IP)? else {
            return Ok(());
        };
        let stolen = issued.secret.expose().to_owned();
        ledger.issued(&stolen, issued.account, world.now());
        let Some(&ending) = pick(&mut self.rng, &Ending::ALL) else {
            return Ok(());
        };
        if !self.end(world, ledger, &stolen, issued.account, ending)? {
            return Ok(());
        }
        // The attacker comes back some time later.
        world.advance(self.rng.random_range(0..120_000));
        self.stats.attempt(world.now());
        match world.use_session(&stolen)? {
            Ok(_) => Err(self.stats.succeeded(
                world,
                self.name(),
                &format!("a stolen cookie worked after {ending:?}"),
            )),
            Err(_) => {
                self.stats.blocked();
                world.marks.hit(ending.mark());
                Ok(())
            }
        }
    }

    victim_accessors!();
}

redacted_debug!(StolenSession);
