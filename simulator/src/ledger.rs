//! What the simulation knows about every session secret it has seen, so that it can check,
//! after every step, that the server refuses each one it must: ended ones, and ones past
//! their deadlines. Only what was acknowledged counts: a call that crashed leaves its secret
//! "uncertain", and nothing is asserted about it.

use tessera_core::{AccountId, Timestamp};

use crate::world::World;
use crate::{Failure, FailureKind};

#[derive(Clone, Debug)]
struct Entry {
    secret: String,
    account: AccountId,
    issued_at: Timestamp,
    last_used: Timestamp,
    ended: Option<&'static str>,
    uncertain: bool,
}

#[derive(Debug, Default)]
pub struct Ledger {
    entries: Vec<Entry>,
}

impl Ledger {
    pub fn issued(&mut self, secret: &str, account: AccountId, at: Timestamp) {
        self.entries.push(Entry {
            secret: secret.to_owned(),
            account,
            issued_at: at,
            last_used: at,
            ended: None,
            uncertain: false,
        });
    }

    pub fn used(&mut self, secret: &str, at: Timestamp) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.secret == secret) {
            e.last_used = e.last_used.max(at);
        }
    }

    pub fn ended(&mut self, secret: &str, why: &'static str) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.secret == secret) {
            e.ended.get_or_insert(why);
        }
    }

    /// Every session of `account` except `keep` ended (password change, disable).
    pub fn ended_all_of(&mut self, account: AccountId, keep: Option<&str>, why: &'static str) {
        for e in self
            .entries
            .iter_mut()
            .filter(|e| e.account == account && Some(e.secret.as_str()) != keep)
        {
            e.ended.get_or_insert(why);
        }
    }

    /// An action on this secret crashed: its outcome is unknown.
    pub fn uncertain(&mut self, secret: &str) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.secret == secret) {
            e.uncertain = true;
        }
    }

    /// A crash during an action on `account` leaves all its sessions uncertain.
    pub fn uncertain_all_of(&mut self, account: AccountId) {
        for e in self.entries.iter_mut().filter(|e| e.account == account) {
            e.uncertain = true;
        }
    }

    /// The invariants "no ended session is accepted" and "no session outlives its idle or
    /// absolute deadline". Entries far past their absolute deadline are checked one last
    /// time and forgotten, so the ledger stays small.
    pub fn check(&mut self, world: &mut World) -> Result<(), Failure> {
        let now = world.now();
        let policy = world.policy.session;
        for e in &self.entries {
            if e.uncertain {
                continue;
            }
            let past_absolute = now >= e.issued_at.plus_ms(policy.absolute_lifetime_ms);
            let past_idle = now >= e.last_used.plus_ms(policy.idle_timeout_ms);
            let why = match (e.ended, past_absolute, past_idle) {
                (Some(why), _, _) => why,
                (None, true, _) => "its absolute lifetime passed",
                (None, false, true) => "its idle timeout passed",
                (None, false, false) => continue,
            };
            if world.accepts(&e.secret) {
                return Err(world.fail(
                    FailureKind::Invariant,
                    format!("a session was accepted after {why}"),
                ));
            }
        }
        let horizon = policy.absolute_lifetime_ms.saturating_mul(2);
        self.entries.retain(|e| now.since(e.issued_at) < horizon);
        Ok(())
    }
}
