//! What the simulation knows about every session secret it has seen, so that it can check,
//! after every step, that the server refuses each one it must: ended ones, and ones past
//! their deadlines. Only what was acknowledged counts: a call that crashed leaves its secret
//! "uncertain", and nothing is asserted about it.

use tessera_core::token::AccessClaims;
use tessera_core::{AccountId, FamilyId, Timestamp};

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

/// An access token the simulation holds, and its family.
#[derive(Clone, Debug)]
struct TokenEntry {
    access: String,
    family: FamilyId,
    expires_at: Timestamp,
    ended: Option<&'static str>,
    family_ended: bool,
}

#[derive(Debug, Default)]
pub struct Ledger {
    entries: Vec<Entry>,
    tokens: Vec<TokenEntry>,
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

    /// An access token was issued (and acknowledged).
    pub fn token_issued(&mut self, access: &str, claims: &AccessClaims) {
        if let Some(family) = claims.fam {
            self.tokens.push(TokenEntry {
                access: access.to_owned(),
                family,
                expires_at: claims.expires_at(),
                ended: None,
                family_ended: false,
            });
        }
    }

    /// One access token was revoked (its family lives on).
    pub fn token_ended(&mut self, access: &str, why: &'static str) {
        for t in self.tokens.iter_mut().filter(|t| t.access == access) {
            t.ended.get_or_insert(why);
        }
    }

    /// A family was revoked: none of its access tokens, and no refresh, may work again.
    pub fn family_ended(&mut self, family: FamilyId, why: &'static str) {
        for t in self.tokens.iter_mut().filter(|t| t.family == family) {
            t.ended.get_or_insert(why);
            t.family_ended = true;
        }
    }

    /// Every family of the account was revoked (password change, sign-out everywhere).
    pub fn families_of_ended(&mut self, families: &[FamilyId], why: &'static str) {
        for f in families {
            self.family_ended(*f, why);
        }
    }

    /// "A revoked token is never accepted; after reuse is detected no token of that family
    /// is accepted; no access token outlives its expiry."
    pub fn check_tokens(&mut self, world: &mut World) -> Result<(), Failure> {
        let now = world.now();
        let leeway_ms = world.policy.token.leeway_secs * 1000;
        for t in &self.tokens {
            let expired = now >= t.expires_at.plus_ms(leeway_ms);
            let why = match (t.ended, expired) {
                (Some(why), _) => why,
                (None, true) => "it expired",
                (None, false) => continue,
            };
            if world.verify_bearer(&t.access).is_ok() {
                return Err(world.fail(
                    FailureKind::Invariant,
                    format!("an access token was accepted after {why}"),
                ));
            }
            if t.family_ended && world.family_live(&t.family) {
                return Err(world.fail(
                    FailureKind::Invariant,
                    format!("a refresh family still mints after {why}"),
                ));
            }
        }
        let horizon = world.policy.token.access_ttl_secs * 1000 * 4;
        self.tokens.retain(|t| now.since(t.expires_at) < horizon);
        Ok(())
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
