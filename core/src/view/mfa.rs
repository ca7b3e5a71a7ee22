//! The MFA and throttling views: each account's MFA state, open challenges, and the strikes
//! counted per account and per address.
//!
//! Persisted records: one per account with MFA state, challenge, struck account and struck
//! address. Derived on load: challenges by token digest, and time indexes. Everything is
//! dropped by recorded time only (a challenge at its deadline, strikes
//! [`STRIKES_FORGET_MS`] after their last failure) or by the address bound, evicting the
//! address whose last failure is oldest (ties by address): a rebuild drops exactly what the
//! writer dropped, provided it runs with the same `addresses_max`.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::event::{Event, LoginFailure};
use crate::mfa::{ActiveTotp, ChallengeView, MfaStatus, MfaView, PendingTotp};
use crate::secret::SecretDigest;
use crate::throttle::{STRIKES_FORGET_MS, Strikes, ThrottlePolicy, address_key};
use crate::{AccountId, ChallengeId, Timestamp};

/// How many per-address records the views keep (the policy's `throttle.addresses_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressCapacity(pub usize);

impl Default for AddressCapacity {
    fn default() -> Self {
        Self(ThrottlePolicy::default().addresses_max)
    }
}

/// The MFA and throttling part of [`Views`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MfaViews {
    pub(crate) accounts: HashMap<AccountId, MfaView>,
    pub(crate) challenges: HashMap<ChallengeId, ChallengeView>,
    /// Derived: challenges by the digest of their `mfa_token`.
    pub(crate) by_digest: HashMap<SecretDigest, ChallengeId>,
    /// Derived: challenges by deadline.
    pub(crate) challenge_expiry: BTreeSet<(Timestamp, ChallengeId)>,
    pub(crate) account_strikes: HashMap<AccountId, Strikes>,
    /// Derived: struck accounts by last failure.
    pub(crate) accounts_by_time: BTreeSet<(Timestamp, AccountId)>,
    pub(crate) address_strikes: HashMap<IpAddr, Strikes>,
    /// Derived: struck addresses by last failure: expiry and eviction order.
    pub(crate) addresses_by_time: BTreeSet<(Timestamp, IpAddr)>,
    pub(crate) address_capacity: AddressCapacity,
}

impl Views {
    /// Views for a policy: empty, keeping at most `throttle.addresses_max` address records.
    pub fn for_policy(policy: &crate::Policy) -> Self {
        let mut views = Self::default();
        views.mfa.address_capacity = AddressCapacity(policy.throttle.addresses_max.max(1));
        views
    }

    /// Sets the address bound, evicting (oldest last failure first) down to it. Returns the
    /// keys of evicted records.
    pub fn set_address_capacity(&mut self, capacity: usize) -> Vec<ViewKey> {
        self.mfa.address_capacity = AddressCapacity(capacity.max(1));
        let mut touched = Vec::new();
        self.evict_addresses(0, &mut touched);
        touched
    }

    /// The account's MFA state, if it has any.
    pub fn mfa(&self, account: &AccountId) -> Option<&MfaView> {
        self.mfa.accounts.get(account)
    }

    /// What `GET /v1/me` reports about MFA at `now`.
    pub fn mfa_status(&self, account: &AccountId, now: Timestamp) -> MfaStatus {
        let m = self.mfa(account);
        MfaStatus {
            enabled: m.is_some_and(MfaView::enabled),
            pending: m.is_some_and(|m| m.live_pending(now).is_some()),
            backup_codes_remaining: m.map_or(0, |m| m.backup_codes.len()),
        }
    }

    pub fn challenge(&self, id: &ChallengeId) -> Option<&ChallengeView> {
        self.mfa.challenges.get(id)
    }

    /// The challenge an `mfa_token` digest names, live or not.
    pub fn challenge_by_digest(&self, digest: &SecretDigest) -> Option<&ChallengeView> {
        self.mfa
            .by_digest
            .get(digest)
            .and_then(|id| self.mfa.challenges.get(id))
    }

    pub fn account_strikes(&self, account: &AccountId) -> Option<&Strikes> {
        self.mfa.account_strikes.get(account)
    }

    /// The strikes of the address `ip` counts under (see [`address_key`]).
    pub fn address_strikes(&self, ip: &IpAddr) -> Option<&Strikes> {
        self.mfa.address_strikes.get(&address_key(*ip))
    }

    /// How many addresses have strikes.
    pub fn address_strikes_count(&self) -> usize {
        self.mfa.address_strikes.len()
    }

    pub(super) fn mfa_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        let m = &self.mfa;
        m.accounts
            .keys()
            .map(|k| ViewKey::Mfa(*k))
            .chain(m.challenges.keys().map(|k| ViewKey::Challenge(*k)))
            .chain(
                m.account_strikes
                    .keys()
                    .map(|k| ViewKey::AccountStrikes(*k)),
            )
            .chain(
                m.address_strikes
                    .keys()
                    .map(|k| ViewKey::AddressStrikes(*k)),
            )
    }

    pub(super) fn mfa_record(&self, key: &ViewKey) -> Option<ViewRecord> {
        let m = &self.mfa;
        match key {
            ViewKey::Mfa(a) => m.accounts.get(a).cloned().map(ViewRecord::Mfa),
            ViewKey::Challenge(c) => m.challenges.get(c).cloned().map(ViewRecord::Challenge),
            ViewKey::AccountStrikes(a) => {
                m.account_strikes.get(a).copied().map(ViewRecord::Strikes)
            }
            ViewKey::AddressStrikes(ip) => {
                m.address_strikes.get(ip).copied().map(ViewRecord::Strikes)
            }
            _ => None,
        }
    }

    pub(super) fn load_mfa(&mut self, key: &ViewKey, record: ViewRecord) -> Result<(), ApplyError> {
        match (key, record) {
            (ViewKey::Mfa(a), ViewRecord::Mfa(m)) if m.account == *a => {
                self.mfa.accounts.insert(*a, m);
            }
            (ViewKey::Challenge(id), ViewRecord::Challenge(c)) if c.id == *id => {
                self.put_challenge(c)
            }
            (ViewKey::AccountStrikes(a), ViewRecord::Strikes(s)) => self.put_account_strikes(*a, s),
            (ViewKey::AddressStrikes(ip), ViewRecord::Strikes(s)) => {
                self.put_address_strikes(*ip, s)
            }
            _ => {
                return Err(ApplyError {
                    kind: "load",
                    why: format!("record does not match its key {key:?}"),
                });
            }
        }
        Ok(())
    }

    fn put_challenge(&mut self, c: ChallengeView) {
        self.mfa.by_digest.insert(c.token_digest, c.id);
        self.mfa.challenge_expiry.insert((c.expires_at, c.id));
        self.mfa.challenges.insert(c.id, c);
    }

    fn remove_challenge(&mut self, id: &ChallengeId, touched: &mut Vec<ViewKey>) -> bool {
        let Some(c) = self.mfa.challenges.remove(id) else {
            return false;
        };
        self.mfa.by_digest.remove(&c.token_digest);
        self.mfa.challenge_expiry.remove(&(c.expires_at, c.id));
        touched.push(ViewKey::Challenge(*id));
        true
    }

    fn put_account_strikes(&mut self, account: AccountId, s: Strikes) {
        if let Some(old) = self.mfa.account_strikes.insert(account, s) {
            self.mfa
                .accounts_by_time
                .remove(&(old.last_failure_at, account));
        }
        self.mfa
            .accounts_by_time
            .insert((s.last_failure_at, account));
    }

    fn clear_account_strikes(&mut self, account: &AccountId, touched: &mut Vec<ViewKey>) {
        if let Some(old) = self.mfa.account_strikes.remove(account) {
            self.mfa
                .accounts_by_time
                .remove(&(old.last_failure_at, *account));
            touched.push(ViewKey::AccountStrikes(*account));
        }
    }

    fn put_address_strikes(&mut self, ip: IpAddr, s: Strikes) {
        if let Some(old) = self.mfa.address_strikes.insert(ip, s) {
            self.mfa
                .addresses_by_time
                .remove(&(old.last_failure_at, ip));
        }
        self.mfa.addresses_by_time.insert((s.last_failure_at, ip));
    }

    /// Evicts addresses, oldest last failure first, until `room` more fit under the bound.
    fn evict_addresses(&mut self, room: usize, touched: &mut Vec<ViewKey>) {
        let capacity = self.mfa.address_capacity.0;
        while self.mfa.address_strikes.len() + room > capacity {
            let Some((_, ip)) = self.mfa.addresses_by_time.pop_first() else {
                break;
            };
            self.mfa.address_strikes.remove(&ip);
            touched.push(ViewKey::AddressStrikes(ip));
        }
    }

    fn strike_account(&mut self, account: AccountId, at: Timestamp, touched: &mut Vec<ViewKey>) {
        let failures = self
            .mfa
            .account_strikes
            .get(&account)
            .map_or(0, |s| s.failures);
        let s = Strikes {
            failures: failures.saturating_add(1),
            last_failure_at: at,
        };
        self.put_account_strikes(account, s);
        touched.push(ViewKey::AccountStrikes(account));
    }

    fn strike_address(
        &mut self,
        client: Option<IpAddr>,
        at: Timestamp,
        touched: &mut Vec<ViewKey>,
    ) {
        let Some(ip) = client.map(address_key) else {
            return;
        };
        let failures = match self.mfa.address_strikes.get(&ip) {
            Some(s) => s.failures,
            None => {
                self.evict_addresses(1, touched);
                0
            }
        };
        let s = Strikes {
            failures: failures.saturating_add(1),
            last_failure_at: at,
        };
        self.put_address_strikes(ip, s);
        touched.push(ViewKey::AddressStrikes(ip));
    }

    /// Forgets challenges past their deadline and strikes past [`STRIKES_FORGET_MS`].
    pub(super) fn drop_expired_mfa(&mut self, at: Timestamp, touched: &mut Vec<ViewKey>) {
        while let Some(&(deadline, id)) = self.mfa.challenge_expiry.first() {
            if deadline > at {
                break;
            }
            self.remove_challenge(&id, touched);
        }
        let forget_before = |last: Timestamp| last.plus_ms(STRIKES_FORGET_MS) <= at;
        while let Some(&(last, account)) = self.mfa.accounts_by_time.first() {
            if !forget_before(last) {
                break;
            }
            self.clear_account_strikes(&account, touched);
        }
        while let Some(&(last, ip)) = self.mfa.addresses_by_time.first() {
            if !forget_before(last) {
                break;
            }
            self.mfa.addresses_by_time.pop_first();
            self.mfa.address_strikes.remove(&ip);
            touched.push(ViewKey::AddressStrikes(ip));
        }
    }

    /// Counts the failures and successes the throttle looks at. Runs after the event itself
    /// was folded (so it is known to be consistent).
    pub(super) fn count_strikes(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) {
        match event {
            Event::LoginFailed {
                account,
                reason,
                client,
            } => {
                if *reason == LoginFailure::WrongPassword {
                    self.strike_account(*account, at, touched);
                }
                self.strike_address(*client, at, touched);
            }
            Event::UnknownAccountLoginFailed { client } => {
                self.strike_address(*client, at, touched);
            }
            Event::MfaCodeFailed {
                account, client, ..
            } => {
                self.strike_account(*account, at, touched);
                self.strike_address(*client, at, touched);
            }
            Event::SessionStarted { account, .. } | Event::RefreshFamilyStarted { account, .. } => {
                self.clear_account_strikes(account, touched);
            }
            _ => {}
        }
    }

    /// Folds an MFA event. `Ok(false)` if `event` is not one.
    pub(super) fn apply_mfa(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<bool, ApplyError> {
        let fail = |why: &str| ApplyError {
            kind: event.kind(),
            why: why.to_owned(),
        };
        match event {
            Event::TotpEnrolmentStarted {
                account,
                sealed_secret,
                expires_at,
            } => {
                if !self.accounts.contains_key(account) {
                    return Err(fail("unknown account"));
                }
                let m = self
                    .mfa
                    .accounts
                    .entry(*account)
                    .or_insert_with(|| MfaView {
                        account: *account,
                        pending: None,
                        totp: None,
                        backup_codes: BTreeSet::new(),
                    });
                if m.totp.is_some() {
                    return Err(fail("MFA is already on"));
                }
                m.pending = Some(PendingTotp {
                    sealed_secret: sealed_secret.clone(),
                    started_at: at,
                    expires_at: *expires_at,
                });
                touched.push(ViewKey::Mfa(*account));
            }
            Event::TotpEnabled {
                account,
                step,
                backup_codes,
            } => {
                let m = self
                    .mfa
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| fail("no enrolment"))?;
                let pending = m
                    .pending
                    .take()
                    .ok_or_else(|| fail("no pending enrolment"))?;
                m.totp = Some(ActiveTotp {
                    sealed_secret: pending.sealed_secret,
                    enabled_at: at,
                    last_step: *step,
                });
                m.backup_codes = backup_codes.iter().copied().collect();
                touched.push(ViewKey::Mfa(*account));
            }
            Event::TotpStepAccepted { account, step } => {
                let totp = self
                    .mfa
                    .accounts
                    .get_mut(account)
                    .and_then(|m| m.totp.as_mut())
                    .ok_or_else(|| fail("TOTP is not on"))?;
                if *step <= totp.last_step {
                    return Err(fail("step accepted twice"));
                }
                totp.last_step = *step;
                touched.push(ViewKey::Mfa(*account));
            }
            Event::BackupCodeUsed { account, code } => {
                let m = self
                    .mfa
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| fail("MFA is not on"))?;
                if !m.backup_codes.remove(code) {
                    return Err(fail("backup code unknown or spent"));
                }
                touched.push(ViewKey::Mfa(*account));
            }
            Event::BackupCodesReplaced {
                account,
                backup_codes,
            } => {
                let m = self
                    .mfa
                    .accounts
                    .get_mut(account)
                    .filter(|m| m.enabled())
                    .ok_or_else(|| fail("MFA is not on"))?;
                m.backup_codes = backup_codes.iter().copied().collect();
                touched.push(ViewKey::Mfa(*account));
            }
            Event::TotpDisabled { account, .. } => {
                self.mfa
                    .accounts
                    .remove(account)
                    .ok_or_else(|| fail("no MFA to disable"))?;
                touched.push(ViewKey::Mfa(*account));
            }
            Event::MfaChallengeStarted {
                challenge,
                account,
                token_digest,
                mode,
                attempts_max,
                expires_at,
            } => {
                if !self.accounts.contains_key(account)
                    || self.mfa.challenges.contains_key(challenge)
                    || self.mfa.by_digest.contains_key(token_digest)
                {
                    return Err(fail("unknown account, or duplicate challenge or digest"));
                }
                self.put_challenge(ChallengeView {
                    id: *challenge,
                    account: *account,
                    token_digest: *token_digest,
                    mode: *mode,
                    started_at: at,
                    expires_at: *expires_at,
                    attempts_max: *attempts_max,
                    failures: 0,
                });
                touched.push(ViewKey::Challenge(*challenge));
            }
            Event::MfaCodeFailed {
                account, challenge, ..
            } => {
                if !self.accounts.contains_key(account) {
                    return Err(fail("unknown account"));
                }
                if let Some(id) = challenge {
                    let c = self
                        .mfa
                        .challenges
                        .get_mut(id)
                        .filter(|c| c.account == *account && !c.exhausted())
                        .ok_or_else(|| fail("challenge unknown, of another account, or dead"))?;
                    c.failures = c.failures.saturating_add(1);
                    touched.push(ViewKey::Challenge(*id));
                }
            }
            Event::MfaChallengePassed { challenge } => {
                let live = self
                    .mfa
                    .challenges
                    .get(challenge)
                    .is_some_and(|c| !c.exhausted());
                if !live || !self.remove_challenge(challenge, touched) {
                    return Err(fail("challenge unknown or dead"));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(crate) fn check_mfa_invariants(&self) -> Result<(), String> {
        let m = &self.mfa;
        for (id, v) in &m.accounts {
            if v.account != *id || !self.accounts.contains_key(id) {
                return Err(format!(
                    "MFA state {id} has a missing or mismatched account"
                ));
            }
            if v.pending.is_some() && v.totp.is_some() {
                return Err(format!("MFA state {id} is both pending and on"));
            }
            if v.pending.is_none() && v.totp.is_none() {
                return Err(format!("MFA state {id} is empty"));
            }
            if v.totp.is_none() && !v.backup_codes.is_empty() {
                return Err(format!("account {id} has backup codes without TOTP"));
            }
            if v.backup_codes.len() > crate::mfa::BACKUP_CODES_PER_SET {
                return Err(format!("account {id} has too many backup codes"));
            }
        }
        let expiry: BTreeSet<(Timestamp, ChallengeId)> = m
            .challenges
            .values()
            .map(|c| (c.expires_at, c.id))
            .collect();
        if expiry != m.challenge_expiry || m.by_digest.len() != m.challenges.len() {
            return Err("challenge indexes disagree with the records".into());
        }
        for c in m.challenges.values() {
            if m.by_digest.get(&c.token_digest) != Some(&c.id)
                || !self.accounts.contains_key(&c.account)
                || c.failures > c.attempts_max
            {
                return Err(format!(
                    "challenge {} is unindexed, of a missing account, or over its attempts",
                    c.id
                ));
            }
        }
        let accounts: BTreeSet<(Timestamp, AccountId)> = m
            .account_strikes
            .iter()
            .map(|(a, s)| (s.last_failure_at, *a))
            .collect();
        let addresses: BTreeSet<(Timestamp, IpAddr)> = m
            .address_strikes
            .iter()
            .map(|(ip, s)| (s.last_failure_at, *ip))
            .collect();
        if accounts != m.accounts_by_time || addresses != m.addresses_by_time {
            return Err("strike indexes disagree with the records".into());
        }
        if m.address_strikes.len() > m.address_capacity.0 {
            return Err(format!(
                "{} address records over the bound {}",
                m.address_strikes.len(),
                m.address_capacity.0
            ));
        }
        if m.address_strikes.keys().any(|ip| address_key(*ip) != *ip)
            || m.account_strikes
                .keys()
                .any(|a| !self.accounts.contains_key(a))
            || m.account_strikes
                .values()
                .chain(m.address_strikes.values())
                .any(|s| s.failures == 0)
        {
            return Err("strikes under a wrong key, of a missing account, or empty".into());
        }
        Ok(())
    }
}
