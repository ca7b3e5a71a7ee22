//! Attacks on the second factor, by someone who already has the password (phished or
//! leaked): guessing codes against a challenge, replaying a code seen over the shoulder, and
//! reusing a spent backup code. Defences: a server-side challenge that dies after 5 wrong
//! answers (codes and backup codes together), each TOTP step accepted once (RFC 6238 §5.2),
//! single-use backup codes, and the account throttle counting every wrong code.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::mfa::MfaAnswer;
use tessera_core::{LoginMode, Rejection, Reply};

use super::{AttackStats, Scenario, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 70));
const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 70));

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    Guessing,
    TotpReplay,
    BackupReuse,
}

/// A victim with MFA on, and what the victim's device and drawer hold.
pub struct MfaAttack {
    attack: Attack,
    rng: ChaCha20Rng,
    victim: (String, String),
    secret: Vec<u8>,
    backup_codes: Vec<String>,
    stats: AttackStats,
}

/// What a login with MFA on led to.
enum Started {
    Challenge(String),
    Refused,
    Unknown,
}

impl MfaAttack {
    pub fn new(attack: Attack, mut rng: ChaCha20Rng) -> Self {
        let name = match attack {
            Attack::Guessing => "mfa-guess-victim",
            Attack::TotpReplay => "totp-replay-victim",
            Attack::BackupReuse => "backup-reuse-victim",
        };
        let victim = (name.to_owned(), strong_password(&mut rng));
        Self {
            attack,
            rng,
            victim,
            secret: Vec::new(),
            backup_codes: Vec::new(),
            stats: AttackStats::default(),
        }
    }

    fn start(&self, world: &mut World, from: IpAddr) -> Result<Started, Failure> {
        Ok(
            match world.login_any(&self.victim.0, &self.victim.1, from, LoginMode::Token)? {
                Some(Ok(Reply::MfaRequired(c))) => {
                    Started::Challenge(c.mfa_token.expose().to_owned())
                }
                Some(Ok(_)) => {
                    return Err(world.fail(
                        crate::FailureKind::Invariant,
                        "a password alone opened an account with MFA on",
                    ));
                }
                Some(Err(_)) => Started::Refused,
                None => Started::Unknown,
            },
        )
    }

    fn current_code(&self, world: &World) -> String {
        tessera_core::mfa::totp_code_at(&self.secret, world.now()).unwrap_or_default()
    }

    /// The attacker's answer; a success is a failed defence.
    fn attacker_answers(
        &mut self,
        world: &mut World,
        token: &str,
        answer: MfaAnswer,
        what: &str,
    ) -> Result<Option<Rejection>, Failure> {
        self.stats.attempt(world.now());
        match world.answer_mfa(token, answer, ATTACKER_IP)? {
            Some(Ok(_)) => Err(self.stats.succeeded(world, self.name(), what)),
            Some(Err(r)) => {
                self.stats.blocked();
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }

    fn guessing(&mut self, world: &mut World) -> Result<(), Failure> {
        let Started::Challenge(token) = self.start(world, ATTACKER_IP)? else {
            if world.account_wait_ms(&self.victim.0) > 0 {
                self.stats.detected(world.now());
                world.marks.hit("throttled");
            }
            return Ok(());
        };
        for _ in 0..5 {
            let real = self.current_code(world);
            let mut guess = format!("{:06}", self.rng.random_range(0..1_000_000u32));
            if guess == real {
                guess = format!(
                    "{:06}",
                    (self.rng.random_range(0..999_999u32) + 1 + real.parse::<u32>().unwrap_or(0))
                        % 1_000_000
                );
            }
            let Ok(answer) = MfaAnswer::totp(&guess) else {
                continue;
            };
            if self
                .attacker_answers(world, &token, answer, "a guessed code opened the account")?
                .is_none()
            {
                return Ok(());
            }
        }
        // The sixth attempt, even with the right code (as if the attacker had an oracle).
        let Ok(right) = MfaAnswer::totp(&self.current_code(world)) else {
            return Ok(());
        };
        if self
            .attacker_answers(world, &token, right, "a challenge accepted a sixth attempt")?
            .is_some()
        {
            self.stats.detected(world.now());
            world.marks.hit("challenge exhausted");
        }
        Ok(())
    }

    fn replay(&mut self, world: &mut World) -> Result<(), Failure> {
        // The victim logs in with the code on the phone...
        let Started::Challenge(own) = self.start(world, VICTIM_IP)? else {
            return Ok(());
        };
        let code = self.current_code(world);
        let Ok(answer) = MfaAnswer::totp(&code) else {
            return Ok(());
        };
        let Some(Ok(_)) = world.answer_mfa(&own, answer, VICTIM_IP)? else {
            return Ok(());
        };
        // ...and the attacker, who saw it, tries it at once, inside the drift window.
        world.advance(self.rng.random_range(0..20_000));
        let Started::Challenge(theirs) = self.start(world, ATTACKER_IP)? else {
            return Ok(());
        };
        let Ok(answer) = MfaAnswer::totp(&code) else {
            return Ok(());
        };
        if let Some(Rejection::MfaCodeReplayed { .. } | Rejection::MfaCodeInvalid { .. }) =
            self.attacker_answers(world, &theirs, answer, "a replayed TOTP code was accepted")?
        {
            world.marks.hit("replayed TOTP code refused");
        }
        // The step is spent for the victim's next login too; move past it.
        world.advance(30_000);
        Ok(())
    }

    fn backup_reuse(&mut self, world: &mut World) -> Result<(), Failure> {
        let Some(code) = self.backup_codes.pop() else {
            world.marks.hit("backup codes used up");
            return Ok(());
        };
        let Started::Challenge(own) = self.start(world, VICTIM_IP)? else {
            self.backup_codes.push(code);
            return Ok(());
        };
        let Ok(answer) = MfaAnswer::backup(&code) else {
            return Ok(());
        };
        let Some(Ok(_)) = world.answer_mfa(&own, answer, VICTIM_IP)? else {
            return Ok(());
        };
        world.advance(self.rng.random_range(0..600_000));
        let Started::Challenge(theirs) = self.start(world, ATTACKER_IP)? else {
            return Ok(());
        };
        let Ok(answer) = MfaAnswer::backup(&code) else {
            return Ok(());
        };
        if self
            .attacker_answers(world, &theirs, answer, "a spent backup code was accepted")?
            .is_some()
        {
            world.marks.hit("spent backup code refused");
        }
        Ok(())
    }
}

impl Scenario for MfaAttack {
    fn name(&self) -> &'static str {
        match self.attack {
            Attack::Guessing => "mfa-guessing",
            Attack::TotpReplay => "totp-replay",
            Attack::BackupReuse => "backup-code-reuse",
        }
    }

    fn defence(&self) -> &'static str {
        match self.attack {
            Attack::Guessing => {
                "5 wrong answers kill the challenge; wrong codes throttle the account"
            }
            Attack::TotpReplay => "each TOTP step is accepted once, drift window included",
            Attack::BackupReuse => "backup codes are single-use",
        }
    }

    fn mark(&self) -> &'static str {
        match self.attack {
            Attack::Guessing => "challenge exhausted",
            Attack::TotpReplay => "replayed TOTP code refused",
            Attack::BackupReuse => "spent backup code refused",
        }
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        world.register(&self.victim.0, &self.victim.1)?;
        if let Some((secret, codes)) = world.enable_mfa(&self.victim.0)? {
            self.secret = secret;
            self.backup_codes = codes;
        }
        Ok(())
    }

    fn step(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        if self.secret.is_empty() {
            // A crash interrupted the enrolment in setup; try again.
            if let Some((secret, codes)) = world.enable_mfa(&self.victim.0)? {
                self.secret = secret;
                self.backup_codes = codes;
            }
            return Ok(());
        }
        match self.attack {
            Attack::Guessing => self.guessing(world),
            Attack::TotpReplay => self.replay(world),
            Attack::BackupReuse => self.backup_reuse(world),
        }
    }

    fn honest_accounts(&self) -> Vec<(String, String)> {
        // The liveness phase logs in with a password alone; these accounts need their second
        // factor, which `step` exercises, so they are checked there instead.
        Vec::new()
    }

    fn stats(&self) -> &AttackStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut AttackStats {
        &mut self.stats
    }
}

impl std::fmt::Debug for MfaAttack {
    // The victim's secret and codes stay out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaAttack")
            .field("attack", &self.attack)
            .field("victim", &self.victim.0)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
