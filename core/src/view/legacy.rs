//! The legacy view: accounts still on an imported credential, and the migration's counts.
//!
//! Persisted records: one per account on a legacy credential (retired or not). Derived on
//! load: retired accounts by reset-token digest, how many live legacy credentials each cost
//! has (the refusal's [`WorkProfile`] follows the most expensive), and how many accounts
//! each scheme has.
//!
//! ```text
//!   AccountImported ──▶ legacy ──LegacyCredentialRetired──▶ retired ──PasswordReset──▶ gone
//!                         │  └──────────── PasswordRehashed / PasswordChanged ────────▶ gone
//!                         └── retired again (a new token replaces the old one)
//! ```

use std::collections::{BTreeMap, HashMap};

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::event::Event;
use crate::legacy::{Cost, LegacyView, Retirement, Scheme, WorkProfile};
use crate::policy::Argon2Params;
use crate::secret::SecretDigest;
use crate::{AccountId, Timestamp};

/// The legacy part of [`Views`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LegacyViews {
    pub(crate) accounts: HashMap<AccountId, LegacyView>,
    /// Derived: retired accounts by the digest of their reset token.
    pub(crate) by_reset: HashMap<SecretDigest, AccountId>,
    /// Derived: how many live (not retired) legacy credentials have each cost.
    pub(crate) costs: BTreeMap<Cost, u64>,
    /// Derived: how many legacy accounts each scheme has, and how many of them are retired.
    pub(crate) schemes: BTreeMap<Scheme, (u64, u64)>,
}

/// How many accounts each scheme has now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemeCounts {
    /// Accounts on argon2id made here (or already argon2id at import), at any parameters.
    pub current: u64,
    /// Accounts on each legacy scheme (retired ones included).
    pub legacy: BTreeMap<Scheme, u64>,
    /// Accounts whose legacy credential was retired by the sunset.
    pub retired: u64,
}

impl Views {
    /// The account's legacy credential record, if it is still on one.
    pub fn legacy(&self, account: &AccountId) -> Option<&LegacyView> {
        self.legacy.accounts.get(account)
    }

    /// Every account still on a legacy credential, in no particular order.
    pub fn legacy_accounts(&self) -> impl Iterator<Item = &LegacyView> {
        self.legacy.accounts.values()
    }

    /// The retired account whose reset token has this digest (expired or not).
    pub fn legacy_by_reset(&self, digest: &SecretDigest) -> Option<&LegacyView> {
        self.legacy
            .by_reset
            .get(digest)
            .and_then(|id| self.legacy.accounts.get(id))
    }

    /// What every password check must cost now: each family at its most expensive cost in
    /// use, argon2 at least at the policy's.
    pub fn work_profile(&self, policy: &Argon2Params) -> WorkProfile {
        let mut profile = WorkProfile::current(policy);
        for cost in self.legacy.costs.keys() {
            profile.include(*cost);
        }
        profile
    }

    /// Accounts by scheme.
    pub fn scheme_counts(&self) -> SchemeCounts {
        let legacy: BTreeMap<Scheme, u64> = self
            .legacy
            .schemes
            .iter()
            .map(|(s, (n, _))| (*s, *n))
            .collect();
        let on_legacy: u64 = legacy.values().sum();
        SchemeCounts {
            current: (self.accounts.len() as u64).saturating_sub(on_legacy),
            retired: self.legacy.schemes.values().map(|(_, r)| r).sum(),
            legacy,
        }
    }

    pub(super) fn legacy_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        self.legacy.accounts.keys().map(|k| ViewKey::Legacy(*k))
    }

    pub(super) fn legacy_record(&self, key: &ViewKey) -> Option<ViewRecord> {
        match key {
            ViewKey::Legacy(a) => self.legacy.accounts.get(a).cloned().map(ViewRecord::Legacy),
            _ => None,
        }
    }

    pub(super) fn load_legacy(
        &mut self,
        key: &ViewKey,
        record: ViewRecord,
    ) -> Result<(), ApplyError> {
        match (key, record) {
            (ViewKey::Legacy(a), ViewRecord::Legacy(l)) if l.account == *a => {
                self.put_legacy(l);
                Ok(())
            }
            (key, _) => Err(ApplyError {
                kind: "load",
                why: format!("record does not match its key {key:?}"),
            }),
        }
    }

    fn put_legacy(&mut self, l: LegacyView) {
        let counts = self.legacy.schemes.entry(l.scheme).or_insert((0, 0));
        counts.0 += 1;
        match &l.retired {
            Some(r) => {
                counts.1 += 1;
                self.legacy.by_reset.insert(r.reset_digest, l.account);
            }
            None => *self.legacy.costs.entry(l.cost).or_insert(0) += 1,
        }
        self.legacy.accounts.insert(l.account, l);
    }

    fn take_legacy(&mut self, account: &AccountId) -> Option<LegacyView> {
        let l = self.legacy.accounts.remove(account)?;
        if let Some(counts) = self.legacy.schemes.get_mut(&l.scheme) {
            counts.0 = counts.0.saturating_sub(1);
            if l.retired.is_some() {
                counts.1 = counts.1.saturating_sub(1);
            }
            if counts.0 == 0 {
                self.legacy.schemes.remove(&l.scheme);
            }
        }
        match &l.retired {
            Some(r) => {
                self.legacy.by_reset.remove(&r.reset_digest);
            }
            None => {
                if let Some(n) = self.legacy.costs.get_mut(&l.cost) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.legacy.costs.remove(&l.cost);
                    }
                }
            }
        }
        Some(l)
    }

    /// Follows the account events that start, retire or end a legacy credential (the
    /// account view itself is kept by `apply_account`).
    pub(super) fn apply_legacy(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let fail = ApplyError::about(event);
        match event {
            Event::AccountImported {
                account,
                password_hash,
                last_active_at,
                ..
            } => {
                let (Some(scheme), Some(cost)) =
                    (Scheme::of(password_hash), Cost::of(password_hash))
                else {
                    return Err(fail("the imported credential is of no known scheme"));
                };
                if scheme == Scheme::Argon2 && cost.units == 0 {
                    return Err(fail("the imported credential has no cost"));
                }
                self.put_legacy(LegacyView {
                    account: *account,
                    scheme,
                    cost,
                    imported_at: at,
                    last_active_at: last_active_at.map_or(at, |t| t.min(at)),
                    retired: None,
                });
                touched.push(ViewKey::Legacy(*account));
            }
            Event::LegacyCredentialRetired {
                account,
                reset_digest,
                reset_expires_at,
            } => {
                let mut l = self
                    .take_legacy(account)
                    .ok_or_else(|| fail("the account has no legacy credential"))?;
                if self.legacy.by_reset.contains_key(reset_digest) {
                    return Err(fail("duplicate reset token digest"));
                }
                l.retired = Some(Retirement {
                    reset_digest: *reset_digest,
                    expires_at: *reset_expires_at,
                    retired_at: at,
                });
                self.put_legacy(l);
                touched.push(ViewKey::Legacy(*account));
            }
            Event::PasswordReset {
                account,
                reset_digest,
                ..
            } => {
                let spent = self
                    .legacy
                    .accounts
                    .get(account)
                    .and_then(|l| l.retired)
                    .is_some_and(|r| r.reset_digest == *reset_digest);
                if !spent {
                    return Err(fail("the reset token is not the account's"));
                }
                self.take_legacy(account);
                touched.push(ViewKey::Legacy(*account));
            }
            Event::PasswordRehashed { account, .. } | Event::PasswordChanged { account, .. } => {
                let taken = self.take_legacy(account);
                touched.extend(taken.map(|_| ViewKey::Legacy(*account)));
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn check_legacy_record(&self, account: &AccountId) -> Result<(), String> {
        let Some(l) = self.legacy.accounts.get(account) else {
            return Ok(());
        };
        if l.account != *account || !self.accounts.contains_key(account) {
            return Err(format!("legacy record {account} names a missing account"));
        }
        let indexed = match &l.retired {
            Some(r) => self.legacy.by_reset.get(&r.reset_digest) == Some(account),
            None => self.legacy.costs.get(&l.cost).is_some_and(|n| *n > 0),
        };
        if !indexed {
            return Err(format!("legacy record {account} is missing from an index"));
        }
        Ok(())
    }

    pub(crate) fn check_legacy_invariants(&self) -> Result<(), String> {
        for id in self.legacy.accounts.keys() {
            self.check_legacy_record(id)?;
        }
        let live = self
            .legacy
            .accounts
            .values()
            .filter(|l| l.retired.is_none())
            .count() as u64;
        let counted: u64 = self.legacy.costs.values().sum();
        let retired = (self.legacy.accounts.len() as u64).saturating_sub(live);
        if counted != live || self.legacy.by_reset.len() as u64 != retired {
            return Err(format!(
                "legacy indexes count {counted} live and {} retired, records {live} and {retired}",
                self.legacy.by_reset.len()
            ));
        }
        Ok(())
    }
}
