//! An access token used after it should have stopped working: after logout, a password
//! change, its revocation, or its refresh token's revocation, or a sign-out everywhere.
//! Defence: the blocklist (revoked jti, revoked family, account not-before) is checked on
//! every verification, not only the signature and expiry.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::{Actor, Command};

use super::{AttackStats, Scenario, pick, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 40));

#[derive(Clone, Copy, Debug)]
enum Ending {
    Logout,
    PasswordChanged,
    AccessRevoked,
    RefreshRevoked,
    SignedOutEverywhere,
}

impl Ending {
    const ALL: [Ending; 5] = [
        Self::Logout,
        Self::PasswordChanged,
        Self::AccessRevoked,
        Self::RefreshRevoked,
        Self::SignedOutEverywhere,
    ];

    fn mark(self) -> &'static str {
        match self {
            Self::Logout => "access token refused after logout",
            Self::PasswordChanged => "access token refused after password change",
            Self::AccessRevoked => "access token refused after its revocation",
            Self::RefreshRevoked => "access token refused after its refresh token's revocation",
            Self::SignedOutEverywhere => "access token refused after sign-out everywhere",
        }
    }
}

pub struct RevokedToken {
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
}

impl RevokedToken {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("revoked-victim".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            stats: AttackStats::default(),
        }
    }
}

impl Scenario for RevokedToken {
    fn name(&self) -> &'static str {
        "revoked-token"
    }

    fn defence(&self) -> &'static str {
        "every verification consults the blocklist"
    }

    fn mark(&self) -> &'static str {
        "access token refused after logout"
    }

    register_victim!();

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let Some(Ok(issued)) = world.login_tokens(&self.victim.0, &self.victim.1, VICTIM_IP)?
        else {
            return Ok(());
        };
        let access = world.sign(&issued.access);
        ledger.token_issued(&access, &issued.access);
        let Some(&ending) = pick(&mut self.rng, &Ending::ALL) else {
            return Ok(());
        };
        let command = match ending {
            Ending::Logout => Command::from(tessera_core::refresh::LogoutFamily {
                family: issued.family,
            }),
            Ending::AccessRevoked => Command::from(tessera_core::blocklist::RevokeAccessToken {
                jti: issued.access.jti,
                account: issued.account,
                expires_at: issued.access.expires_at(),
            }),
            Ending::RefreshRevoked => {
                match tessera_core::refresh::presented_digest(issued.refresh.expose()) {
                    Some(presented) => {
                        Command::from(tessera_core::refresh::RevokeRefreshToken { presented })
                    }
                    None => {
                        return Err(world.fail(
                            crate::FailureKind::Crash,
                            "the server issued a malformed refresh token",
                        ));
                    }
                }
            }
            Ending::SignedOutEverywhere => {
                Command::from(tessera_core::blocklist::SignOutEverywhere {
                    account: issued.account,
                    by: Actor::Holder,
                    step_up: (issued.access.authenticated_at()).into(),
                })
            }
            Ending::PasswordChanged => {
                let new = strong_password(&mut self.rng);
                match world.change_password(&self.victim.0, &self.victim.1, &new, None)? {
                    Some(Ok(_)) => {
                        self.victim.1 = new;
                        ledger.family_ended(issued.family, "password change");
                    }
                    _ => {
                        if world.password_is(&self.victim.0, &new)? {
                            self.victim.1 = new;
                        }
                        return Ok(());
                    }
                }
                return self.attack(world, &access, ending);
            }
        };
        match world.execute(command)? {
            Some(Ok(_)) => {}
            _ => return Ok(()),
        }
        match ending {
            Ending::AccessRevoked => ledger.token_ended(&access, "its revocation"),
            _ => ledger.family_ended(issued.family, "logout or revocation"),
        }
        self.attack(world, &access, ending)
    }

    victim_accessors!();
}

impl RevokedToken {
    fn attack(&mut self, world: &mut World, access: &str, ending: Ending) -> Result<(), Failure> {
        world.advance(self.rng.random_range(0..60_000));
        self.stats.attempt(world.now());
        if world.verify_bearer(access).is_ok() {
            return Err(self.stats.succeeded(
                world,
                self.name(),
                &format!("an access token worked after {ending:?}"),
            ));
        }
        self.stats.blocked();
        world.marks.hit(ending.mark());
        Ok(())
    }
}

redacted_debug!(RevokedToken);
