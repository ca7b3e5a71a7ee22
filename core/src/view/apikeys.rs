//! The API-key view: every key not yet past its expiry, with its usage.
//!
//! Persisted records: one per key. Derived on load: keys by digest (the O(1) lookup every
//! request makes), by account, by display prefix, and by expiry. A key is dropped when an
//! event recorded at or after its `expires_at` is applied, by recorded time only, so a
//! rebuild drops exactly what the writer dropped. Revoked and rotated keys stay until then,
//! so that a leak alert or an operator can still name them.

use std::collections::{BTreeSet, HashMap};

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::apikey::{ApiKeyId, ApiKeyPolicy, ApiKeyUsage, ApiKeyView, UsageTally};
use crate::event::Event;
use crate::secret::SecretDigest;
use crate::{AccountId, Timestamp};

/// The API-key part of [`Views`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ApiKeyViews {
    pub(crate) keys: HashMap<ApiKeyId, ApiKeyView>,
    /// Derived: keys by digest.
    pub(crate) by_digest: HashMap<SecretDigest, ApiKeyId>,
    /// Derived: keys by account.
    pub(crate) by_account: HashMap<AccountId, BTreeSet<ApiKeyId>>,
    /// Derived: keys by display prefix (several keys may share one).
    pub(crate) by_prefix: HashMap<String, BTreeSet<ApiKeyId>>,
    /// Derived: keys by expiry.
    pub(crate) expiry: BTreeSet<(Timestamp, ApiKeyId)>,
}

impl Views {
    /// The key with this id, while the views hold it (until its expiry). Check
    /// [`ApiKeyView::state`].
    pub fn api_key(&self, id: &ApiKeyId) -> Option<&ApiKeyView> {
        self.api_keys.keys.get(id)
    }

    /// The key whose keyed digest this is, on the same terms as [`Views::api_key`].
    pub fn api_key_by_digest(&self, digest: &SecretDigest) -> Option<&ApiKeyView> {
        self.api_keys
            .by_digest
            .get(digest)
            .and_then(|id| self.api_keys.keys.get(id))
    }

    /// The keys whose display prefix is `prefix`.
    pub fn api_keys_by_prefix(&self, prefix: &str) -> impl Iterator<Item = &ApiKeyView> {
        self.api_keys
            .by_prefix
            .get(prefix)
            .into_iter()
            .flatten()
            .filter_map(|id| self.api_keys.keys.get(id))
    }

    /// The account's keys the views hold, oldest first.
    pub fn api_keys_of(&self, account: &AccountId) -> impl Iterator<Item = &ApiKeyView> {
        self.api_keys
            .by_account
            .get(account)
            .into_iter()
            .flatten()
            .filter_map(|id| self.api_keys.keys.get(id))
    }

    /// Active keys within the warning window of their expiry and not yet warned.
    pub fn api_keys_expiring<'a>(
        &'a self,
        now: Timestamp,
        policy: &'a ApiKeyPolicy,
    ) -> impl Iterator<Item = &'a ApiKeyView> {
        self.api_keys
            .keys
            .values()
            .filter(move |k| k.expiry_warning_due(now, policy))
    }

    /// Active keys that expire within the policy's warning window, warned or not (a gauge).
    pub fn api_keys_expiring_count(&self, now: Timestamp, policy: &ApiKeyPolicy) -> usize {
        let window = policy
            .expiry_warning_days
            .saturating_mul(24 * 60 * 60 * 1000);
        self.api_keys
            .expiry
            .iter()
            .take_while(|(at, _)| at.since(now) <= window)
            .filter_map(|(_, id)| self.api_keys.keys.get(id))
            .filter(|k| k.state(now) == crate::apikey::KeyState::Active)
            .count()
    }

    /// How many keys the views hold.
    pub fn api_key_count(&self) -> usize {
        self.api_keys.keys.len()
    }

    pub(super) fn api_key_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        self.api_keys.keys.keys().map(|k| ViewKey::ApiKey(*k))
    }

    pub(super) fn api_key_record(&self, key: &ViewKey) -> Option<ViewRecord> {
        match key {
            ViewKey::ApiKey(id) => self.api_keys.keys.get(id).cloned().map(ViewRecord::ApiKey),
            _ => None,
        }
    }

    pub(super) fn load_api_key(
        &mut self,
        key: &ViewKey,
        record: ViewRecord,
    ) -> Result<(), ApplyError> {
        match (key, record) {
            (ViewKey::ApiKey(id), ViewRecord::ApiKey(k)) if k.id == *id => {
                self.put_api_key(k);
                Ok(())
            }
            _ => Err(ApplyError {
                kind: "load",
                why: format!("record does not match its key {key:?}"),
            }),
        }
    }

    pub(crate) fn put_api_key(&mut self, k: ApiKeyView) {
        let v = &mut self.api_keys;
        v.by_digest.insert(k.digest, k.id);
        v.by_account.entry(k.account).or_default().insert(k.id);
        v.by_prefix
            .entry(k.prefix.clone())
            .or_default()
            .insert(k.id);
        v.expiry.insert((k.expires_at, k.id));
        v.keys.insert(k.id, k);
    }

    fn remove_api_key(&mut self, id: &ApiKeyId, touched: &mut Vec<ViewKey>) {
        let v = &mut self.api_keys;
        let Some(k) = v.keys.remove(id) else { return };
        v.by_digest.remove(&k.digest);
        if let Some(set) = v.by_account.get_mut(&k.account) {
            set.remove(id);
            if set.is_empty() {
                v.by_account.remove(&k.account);
            }
        }
        if let Some(set) = v.by_prefix.get_mut(&k.prefix) {
            set.remove(id);
            if set.is_empty() {
                v.by_prefix.remove(&k.prefix);
            }
        }
        v.expiry.remove(&(k.expires_at, k.id));
        touched.push(ViewKey::ApiKey(*id));
    }

    /// Forgets keys past their expiry.
    pub(super) fn drop_expired_api_keys(&mut self, at: Timestamp, touched: &mut Vec<ViewKey>) {
        while let Some(&(deadline, id)) = self.api_keys.expiry.first() {
            if deadline > at {
                break;
            }
            self.api_keys.expiry.pop_first();
            self.remove_api_key(&id, touched);
        }
    }

    /// Folds an API-key event (routed here by [`Views::apply`]).
    pub(super) fn apply_api_key(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let fail = ApplyError::about(event);
        match event {
            Event::ApiKeyCreated {
                key,
                account,
                name,
                kind,
                environment,
                scopes,
                allowed_cidrs,
                rate_limit_per_minute,
                digest,
                prefix,
                expires_at,
                rotated_from,
            } => {
                if !self.accounts.contains_key(account)
                    || self.api_keys.keys.contains_key(key)
                    || self.api_keys.by_digest.contains_key(digest)
                {
                    return Err(fail("unknown account, or duplicate key id or digest"));
                }
                self.put_api_key(ApiKeyView {
                    id: *key,
                    account: *account,
                    name: name.clone(),
                    kind: *kind,
                    environment: *environment,
                    scopes: scopes.clone(),
                    allowed_cidrs: allowed_cidrs.clone(),
                    rate_limit_per_minute: *rate_limit_per_minute,
                    digest: *digest,
                    prefix: prefix.clone(),
                    created_at: at,
                    expires_at: *expires_at,
                    rotated_from: *rotated_from,
                    rotated_to: None,
                    retires_at: None,
                    revoked: None,
                    expiry_warned: false,
                    usage: ApiKeyUsage::default(),
                });
            }
            Event::ApiKeyRotated {
                key,
                successor,
                retires_at,
            } => {
                let k = self.api_key_mut(key).ok_or_else(|| fail("unknown key"))?;
                k.rotated_to = Some(*successor);
                k.retires_at = Some(*retires_at);
            }
            Event::ApiKeyRevoked { key, reason } => {
                let k = self.api_key_mut(key).ok_or_else(|| fail("unknown key"))?;
                k.revoked = Some((at, reason.clone()));
            }
            Event::ApiKeyExpiryWarned { key, .. } => {
                let k = self.api_key_mut(key).ok_or_else(|| fail("unknown key"))?;
                k.expiry_warned = true;
            }
            Event::ApiKeyUsed {
                key,
                requests,
                accepted,
                refused,
                rate_limited,
                first_at,
                last_at,
                addresses,
            } => {
                let k = self.api_key_mut(key).ok_or_else(|| fail("unknown key"))?;
                k.usage.fold(&UsageTally {
                    requests: *requests,
                    accepted: *accepted,
                    refused: *refused,
                    rate_limited: *rate_limited,
                    first_at: Some(*first_at),
                    last_at: Some(*last_at),
                    addresses: addresses.clone(),
                });
            }
            _ => return Err(fail("not an API-key event")),
        }
        let id = match event {
            Event::ApiKeyCreated { key, .. }
            | Event::ApiKeyRotated { key, .. }
            | Event::ApiKeyRevoked { key, .. }
            | Event::ApiKeyExpiryWarned { key, .. }
            | Event::ApiKeyUsed { key, .. } => *key,
            _ => return Err(fail("not an API-key event")),
        };
        touched.push(ViewKey::ApiKey(id));
        Ok(())
    }

    fn api_key_mut(&mut self, id: &ApiKeyId) -> Option<&mut ApiKeyView> {
        self.api_keys.keys.get_mut(id)
    }

    /// Every key is in every index, and nothing else is.
    pub(crate) fn check_api_key_invariants(&self) -> Result<(), String> {
        let v = &self.api_keys;
        let n = v.keys.len();
        let counts = [
            v.by_digest.len(),
            v.expiry.len(),
            v.by_account.values().map(BTreeSet::len).sum(),
            v.by_prefix.values().map(BTreeSet::len).sum(),
        ];
        if counts.iter().any(|&c| c != n) {
            return Err(format!(
                "API-key indexes hold {counts:?} entries for {n} keys"
            ));
        }
        v.keys.values().try_for_each(|k| self.check_api_key(k))
    }

    pub(crate) fn check_api_key(&self, k: &ApiKeyView) -> Result<(), String> {
        let v = &self.api_keys;
        let indexed = v.by_digest.get(&k.digest) == Some(&k.id)
            && v.expiry.contains(&(k.expires_at, k.id))
            && v.by_account
                .get(&k.account)
                .is_some_and(|s| s.contains(&k.id))
            && v.by_prefix
                .get(&k.prefix)
                .is_some_and(|s| s.contains(&k.id));
        if !indexed {
            return Err(format!("API key {} is missing from an index", k.id));
        }
        if k.expires_at < k.created_at || k.rotated_to.is_some() != k.retires_at.is_some() {
            return Err(format!("API key {} has inconsistent deadlines", k.id));
        }
        Ok(())
    }
}
