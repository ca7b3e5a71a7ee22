//! The throttle view: the failures counted per account and per address, and the
//! registrations counted per address.
//!
//! Persisted records: one per struck account, one per struck address and one per address
//! with counted registrations (each address map bounded by `addresses_max` on its own). Derived on load:
//! both by last failure. Strikes are dropped by recorded time only
//! ([`STRIKES_FORGET_MS`] after their last failure) or by the address bound, evicting the
//! address whose last failure is oldest (ties by address): a rebuild drops exactly what the
//! writer dropped, provided it runs with the same `addresses_max`.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::event::{Event, LoginFailure, RegistrationOutcome};
use crate::throttle::{STRIKES_FORGET_MS, Strikes, ThrottlePolicy, address_key};
use crate::{AccountId, Timestamp};

/// How many per-address records the views keep (the policy's `throttle.addresses_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressCapacity(pub usize);

impl Default for AddressCapacity {
    fn default() -> Self {
        Self(ThrottlePolicy::default().addresses_max)
    }
}

/// The throttle part of [`Views`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ThrottleView {
    pub(crate) account_strikes: HashMap<AccountId, Strikes>,
    /// Derived: struck accounts by last failure.
    pub(crate) accounts_by_time: BTreeSet<(Timestamp, AccountId)>,
    pub(crate) address_strikes: HashMap<IpAddr, Strikes>,
    /// Derived: struck addresses by last failure: expiry and eviction order.
    pub(crate) addresses_by_time: BTreeSet<(Timestamp, IpAddr)>,
    /// Registrations counted per address (successes and taken names alike).
    pub(crate) registration_strikes: HashMap<IpAddr, Strikes>,
    /// Derived: addresses with counted registrations by last one.
    pub(crate) registrations_by_time: BTreeSet<(Timestamp, IpAddr)>,
    pub(crate) address_capacity: AddressCapacity,
}

impl Views {
    /// Views for a policy: empty, keeping at most `throttle.addresses_max` address records.
    pub fn for_policy(policy: &crate::Policy) -> Self {
        let mut views = Self::default();
        views.throttle.address_capacity = AddressCapacity(policy.throttle.addresses_max.max(1));
        views
    }

    /// Sets the address bound, evicting (oldest last failure first) down to it. Returns the
    /// keys of evicted records.
    pub fn set_address_capacity(&mut self, capacity: usize) -> Vec<ViewKey> {
        self.throttle.address_capacity = AddressCapacity(capacity.max(1));
        let mut touched = Vec::new();
        self.evict_addresses(0, &mut touched);
        self.evict_registrations(0, &mut touched);
        touched
    }

    /// The account's throttle strikes, if it has failures not yet forgotten.
    pub fn account_strikes(&self, account: &AccountId) -> Option<&Strikes> {
        self.throttle.account_strikes.get(account)
    }

    /// The strikes of the address `ip` counts under (see [`address_key`]).
    pub fn address_strikes(&self, ip: &IpAddr) -> Option<&Strikes> {
        self.throttle.address_strikes.get(&address_key(*ip))
    }

    /// The registrations counted for the address `ip` counts under (see [`address_key`]).
    pub fn registration_strikes(&self, ip: &IpAddr) -> Option<&Strikes> {
        self.throttle.registration_strikes.get(&address_key(*ip))
    }

    /// How many addresses have strikes.
    pub fn address_strikes_count(&self) -> usize {
        self.throttle.address_strikes.len()
    }

    fn put_account_strikes(&mut self, account: AccountId, s: Strikes) {
        if let Some(old) = self.throttle.account_strikes.insert(account, s) {
            self.throttle
                .accounts_by_time
                .remove(&(old.last_failure_at, account));
        }
        self.throttle
            .accounts_by_time
            .insert((s.last_failure_at, account));
    }

    fn clear_account_strikes(&mut self, account: &AccountId, touched: &mut Vec<ViewKey>) {
        if let Some(old) = self.throttle.account_strikes.remove(account) {
            self.throttle
                .accounts_by_time
                .remove(&(old.last_failure_at, *account));
            touched.push(ViewKey::AccountStrikes(*account));
        }
    }

    fn put_address_strikes(&mut self, ip: IpAddr, s: Strikes) {
        if let Some(old) = self.throttle.address_strikes.insert(ip, s) {
            self.throttle
                .addresses_by_time
                .remove(&(old.last_failure_at, ip));
        }
        self.throttle
            .addresses_by_time
            .insert((s.last_failure_at, ip));
    }

    /// Evicts addresses, oldest last failure first, until `room` more fit under the bound.
    fn evict_addresses(&mut self, room: usize, touched: &mut Vec<ViewKey>) {
        let capacity = self.throttle.address_capacity.0;
        while self.throttle.address_strikes.len() + room > capacity {
            let Some((_, ip)) = self.throttle.addresses_by_time.pop_first() else {
                break;
            };
            self.throttle.address_strikes.remove(&ip);
            touched.push(ViewKey::AddressStrikes(ip));
        }
    }

    fn put_registration_strikes(&mut self, ip: IpAddr, s: Strikes) {
        if let Some(old) = self.throttle.registration_strikes.insert(ip, s) {
            self.throttle
                .registrations_by_time
                .remove(&(old.last_failure_at, ip));
        }
        self.throttle
            .registrations_by_time
            .insert((s.last_failure_at, ip));
    }

    /// Evicts registration records, oldest last registration first, until `room` more fit.
    fn evict_registrations(&mut self, room: usize, touched: &mut Vec<ViewKey>) {
        let capacity = self.throttle.address_capacity.0;
        while self.throttle.registration_strikes.len() + room > capacity {
            let Some((_, ip)) = self.throttle.registrations_by_time.pop_first() else {
                break;
            };
            self.throttle.registration_strikes.remove(&ip);
            touched.push(ViewKey::RegistrationStrikes(ip));
        }
    }

    fn count_registration(&mut self, client: IpAddr, at: Timestamp, touched: &mut Vec<ViewKey>) {
        let ip = address_key(client);
        let failures = match self.throttle.registration_strikes.get(&ip) {
            Some(s) => s.failures,
            None => {
                self.evict_registrations(1, touched);
                0
            }
        };
        let s = Strikes {
            failures: failures.saturating_add(1),
            last_failure_at: at,
        };
        self.put_registration_strikes(ip, s);
        touched.push(ViewKey::RegistrationStrikes(ip));
    }

    fn strike_account(&mut self, account: AccountId, at: Timestamp, touched: &mut Vec<ViewKey>) {
        let failures = self
            .throttle
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
        let failures = match self.throttle.address_strikes.get(&ip) {
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
            Event::RegistrationAttempted { client, outcome } => {
                // Both outcomes count: creating accounts and probing names are what the
                // rule slows down.
                match outcome {
                    RegistrationOutcome::Registered | RegistrationOutcome::UsernameTaken => {
                        self.count_registration(*client, at, touched)
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn throttle_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        let t = &self.throttle;
        t.account_strikes
            .keys()
            .map(|k| ViewKey::AccountStrikes(*k))
            .chain(
                t.address_strikes
                    .keys()
                    .map(|k| ViewKey::AddressStrikes(*k)),
            )
            .chain(
                t.registration_strikes
                    .keys()
                    .map(|k| ViewKey::RegistrationStrikes(*k)),
            )
    }

    pub(super) fn throttle_record(&self, key: &ViewKey) -> Option<ViewRecord> {
        let t = &self.throttle;
        match key {
            ViewKey::AccountStrikes(a) => {
                t.account_strikes.get(a).copied().map(ViewRecord::Strikes)
            }
            ViewKey::AddressStrikes(ip) => {
                t.address_strikes.get(ip).copied().map(ViewRecord::Strikes)
            }
            ViewKey::RegistrationStrikes(ip) => t
                .registration_strikes
                .get(ip)
                .copied()
                .map(ViewRecord::Strikes),
            _ => None,
        }
    }

    pub(super) fn load_throttle(
        &mut self,
        key: &ViewKey,
        record: ViewRecord,
    ) -> Result<(), ApplyError> {
        match (key, record) {
            (ViewKey::AccountStrikes(a), ViewRecord::Strikes(s)) => self.put_account_strikes(*a, s),
            (ViewKey::AddressStrikes(ip), ViewRecord::Strikes(s)) => {
                self.put_address_strikes(*ip, s)
            }
            (ViewKey::RegistrationStrikes(ip), ViewRecord::Strikes(s)) => {
                self.put_registration_strikes(*ip, s)
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

    /// Forgets strikes past [`STRIKES_FORGET_MS`].
    pub(super) fn drop_expired_strikes(&mut self, at: Timestamp, touched: &mut Vec<ViewKey>) {
        let forget_before = |last: Timestamp| last.plus_ms(STRIKES_FORGET_MS) <= at;
        while let Some(&(last, account)) = self.throttle.accounts_by_time.first() {
            if !forget_before(last) {
                break;
            }
            self.clear_account_strikes(&account, touched);
        }
        while let Some(&(last, ip)) = self.throttle.addresses_by_time.first() {
            if !forget_before(last) {
                break;
            }
            self.throttle.addresses_by_time.pop_first();
            self.throttle.address_strikes.remove(&ip);
            touched.push(ViewKey::AddressStrikes(ip));
        }
        while let Some(&(last, ip)) = self.throttle.registrations_by_time.first() {
            if !forget_before(last) {
                break;
            }
            self.throttle.registrations_by_time.pop_first();
            self.throttle.registration_strikes.remove(&ip);
            touched.push(ViewKey::RegistrationStrikes(ip));
        }
    }

    pub(crate) fn check_throttle_invariants(&self) -> Result<(), String> {
        let m = &self.throttle;
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
        let registrations: BTreeSet<(Timestamp, IpAddr)> = m
            .registration_strikes
            .iter()
            .map(|(ip, s)| (s.last_failure_at, *ip))
            .collect();
        if accounts != m.accounts_by_time
            || addresses != m.addresses_by_time
            || registrations != m.registrations_by_time
        {
            return Err("strike indexes disagree with the records".into());
        }
        for (what, len) in [
            ("address", m.address_strikes.len()),
            ("registration", m.registration_strikes.len()),
        ] {
            if len > m.address_capacity.0 {
                return Err(format!(
                    "{len} {what} records over the bound {}",
                    m.address_capacity.0
                ));
            }
        }
        if m.address_strikes
            .keys()
            .chain(m.registration_strikes.keys())
            .any(|ip| address_key(*ip) != *ip)
            || m.account_strikes
                .keys()
                .any(|a| !self.accounts.contains_key(a))
            || m.account_strikes
                .values()
                .chain(m.address_strikes.values())
                .chain(m.registration_strikes.values())
                .any(|s| s.failures == 0)
        {
            return Err("strikes under a wrong key, of a missing account, or empty".into());
        }
        Ok(())
    }
}
