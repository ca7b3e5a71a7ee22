//! Attacks on the legacy password migration.
//!
//! - **Stolen MD5 table**: the legacy table leaked before it was imported; the attacker
//!   replays each MD5 digest (hex, upper-case hex) as the password. Defence: the import
//!   wrapped every MD5 in argon2id, and a login checks md5(password) through the wrapper,
//!   so a digest is just one more wrong password (and feeds the throttle).
//! - **Sunset login**: the legacy passwords of accounts retired by the sunset leaked; the
//!   attacker logs in with them, and presents forged reset tokens. Defence: a retired
//!   credential answers exactly as a wrong password, and only an issued, unspent, unexpired
//!   token resets.

use std::net::{IpAddr, Ipv4Addr};

use data_encoding::{HEXLOWER, HEXUPPER};
use md5::{Digest, Md5};
use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::legacy::LegacyHash;
use tessera_core::migration::{RetireLegacyCredentials, sunset_due};
use tessera_core::usecase::{ImportRequest, ResetPasswordRequest};
use tessera_core::{Rejection, Reply, Timestamp};

use super::{AttackStats, Scenario, forged_secret, pick, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66));
const ACCOUNTS: usize = 4;
/// Long enough before the start that the sunset finds the accounts due.
const INACTIVE_MS: u64 = 200 * 24 * 60 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    StolenMd5,
    SunsetLogin,
}

pub struct Legacy {
    attack: Attack,
    rng: ChaCha20Rng,
    /// The accounts and their legacy passwords.
    users: Vec<(String, String)>,
    stats: AttackStats,
}

impl Legacy {
    pub fn new(attack: Attack, mut rng: ChaCha20Rng) -> Self {
        let prefix = match attack {
            Attack::StolenMd5 => "md5user",
            Attack::SunsetLogin => "sunset",
        };
        let users = (0..ACCOUNTS)
            .map(|i| (format!("{prefix}{i}"), strong_password(&mut rng)))
            .collect();
        Self {
            attack,
            rng,
            users,
            stats: AttackStats::default(),
        }
    }

    fn md5(password: &str) -> [u8; 16] {
        Md5::digest(password.as_bytes()).into()
    }

    /// One replayed digest against one account.
    fn replay_md5(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let Some((user, password)) = pick(&mut self.rng, &self.users).cloned() else {
            return Ok(());
        };
        let digest = Self::md5(&password);
        let presented = if self.rng.random_bool(0.5) {
            HEXLOWER.encode(&digest)
        } else {
            HEXUPPER.encode(&digest)
        };
        self.stats.attempt(world.now());
        match world.login(&user, &presented, ATTACKER_IP)? {
            Some(Ok(issued)) => {
                ledger.issued(issued.secret.expose(), issued.account, world.now());
                return Err(self.stats.succeeded(
                    world,
                    "stolen-md5-table",
                    "a replayed MD5 digest opened the account",
                ));
            }
            Some(Err(Rejection::Throttled { .. })) => {
                self.stats.blocked();
                self.stats.detected(world.now());
                world.marks.hit("address throttled");
            }
            Some(Err(_)) => {
                self.stats.blocked();
                world.marks.hit("replayed MD5 refused by the wrapper");
            }
            None => {}
        }
        Ok(())
    }

    /// A leaked legacy password against a retired account, or a forged reset token.
    fn after_sunset(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let Some((user, password)) = pick(&mut self.rng, &self.users).cloned() else {
            return Ok(());
        };
        self.stats.attempt(world.now());
        if self.rng.random_bool(0.25) {
            let token = format!(
                "{}{}",
                tessera_core::migration::RESET_TOKEN_PREFIX,
                forged_secret(&mut self.rng)
                    .get(tessera_core::session::SESSION_SECRET_PREFIX.len()..)
                    .unwrap_or_default()
            );
            let reset = ResetPasswordRequest {
                reset_token: token.into(),
                new_password: strong_password(&mut self.rng).as_str().into(),
                client: Some(ATTACKER_IP),
            };
            return match world.run(reset)? {
                Some(Ok(_)) => Err(self.stats.succeeded(
                    world,
                    "sunset-login",
                    "a forged reset token set a password",
                )),
                Some(Err(_)) => {
                    self.stats.blocked();
                    world.marks.hit("forged reset token refused");
                    Ok(())
                }
                None => Ok(()),
            };
        }
        match world.login(&user, &password, ATTACKER_IP)? {
            Some(Ok(issued)) => {
                ledger.issued(issued.secret.expose(), issued.account, world.now());
                Err(self.stats.succeeded(
                    world,
                    "sunset-login",
                    "a retired legacy credential logged in",
                ))
            }
            Some(Err(Rejection::Throttled { .. })) => {
                self.stats.blocked();
                self.stats.detected(world.now());
                world.marks.hit("address throttled");
                Ok(())
            }
            Some(Err(_)) => {
                self.stats.blocked();
                world.marks.hit("retired legacy credential refused");
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Scenario for Legacy {
    fn name(&self) -> &'static str {
        match self.attack {
            Attack::StolenMd5 => "stolen-md5-table",
            Attack::SunsetLogin => "sunset-login",
        }
    }

    fn defence(&self) -> &'static str {
        match self.attack {
            Attack::StolenMd5 => "MD5s wrapped in argon2id at import; a digest is no password",
            Attack::SunsetLogin => {
                "a retired credential answers as a wrong password; only an issued token resets"
            }
        }
    }

    fn mark(&self) -> &'static str {
        match self.attack {
            Attack::StolenMd5 => "replayed MD5 refused by the wrapper",
            Attack::SunsetLogin => "retired legacy credential refused",
        }
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        // Only the sunset's accounts were inactive long ago: the MD5 users (who come back in
        // the liveness phase) must not be retired by it when both scenarios run together.
        let last_active_at = (self.attack == Attack::SunsetLogin)
            .then(|| Timestamp::from_millis(world.now().as_millis().saturating_sub(INACTIVE_MS)));
        for (user, password) in self.users.clone() {
            let request = ImportRequest {
                username: user.clone(),
                email: None,
                hash: LegacyHash::Md5 {
                    digest: Self::md5(&password),
                    salt: None,
                },
                last_active_at,
            };
            // A crash loses the import at worst; the account is then simply not there.
            world.run(request)?;
        }
        if self.attack == Attack::SunsetLogin {
            let due = sunset_due(
                &world.engine().views(),
                world.now(),
                &world.engine().policy().migration,
            );
            // The tokens go to the operator's mail, which the attacker does not read.
            if let Some(Ok(Reply::LegacyRetired(issued))) =
                world.execute(RetireLegacyCredentials { accounts: due })?
                && !issued.is_empty()
            {
                world.marks.hit("legacy credentials retired");
            }
        }
        Ok(())
    }

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        match self.attack {
            Attack::StolenMd5 => self.replay_md5(world, ledger)?,
            Attack::SunsetLogin => self.after_sunset(world, ledger)?,
        }
        world.advance(self.rng.random_range(100..5_000));
        Ok(())
    }

    /// The MD5 users log in with their real passwords in the liveness phase (through the
    /// wrapper, which re-hashes them); retired accounts have no way back but their token.
    fn honest_accounts(&self) -> Vec<(String, String)> {
        match self.attack {
            Attack::StolenMd5 => self.users.clone(),
            Attack::SunsetLogin => Vec::new(),
        }
    }

    fn stats(&self) -> &AttackStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut AttackStats {
        &mut self.stats
    }
}

impl std::fmt::Debug for Legacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Legacy")
            .field("attack", &self.attack)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
