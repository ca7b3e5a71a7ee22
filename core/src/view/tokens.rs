//! The token views: signing keys, refresh families and their tokens, the blocklist.
//!
//! Persisted records: one per signing key, family, refresh-token digest, revoked access
//! token and account not-before time. Derived on load: families by account, digests by
//! family, and one expiry index over everything that is dropped with time. Dropping uses
//! only recorded times, so a rebuild drops exactly what the writer dropped.

use std::collections::BTreeSet;

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::blocklist::{NotBefore, RevokedAccessToken};
use crate::event::Event;
use crate::refresh::{FamilyView, RefreshTokenView};
use crate::secret::SecretDigest;
use crate::signing_key::{KeySet, PublishedKey, kid_for};
use crate::{AccountId, FamilyId, Timestamp, TokenId};

/// Something the views forget at a recorded time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Expiring {
    Family(FamilyId),
    RevokedAccessToken(TokenId),
    NotBefore(AccountId),
    SigningKey(String),
}

impl Views {
    /// The signing-key set: verify access tokens against it, render the JWKS from it.
    pub fn signing_keys(&self) -> &KeySet {
        &self.signing_keys
    }

    /// The refresh family with this id, while the views keep it (live, revoked or dead but
    /// not yet dropped): check [`FamilyView::is_live`].
    pub fn family(&self, id: &FamilyId) -> Option<&FamilyView> {
        self.families.get(id)
    }

    /// The refresh token with this digest, current or spent, while its family is kept.
    pub fn refresh_token(&self, digest: &SecretDigest) -> Option<&RefreshTokenView> {
        self.refresh_tokens.get(digest)
    }

    /// The account's families still in the views (live, revoked or dead but not dropped).
    pub fn families_of(&self, account: &AccountId) -> impl Iterator<Item = &FamilyView> {
        self.families_by_account
            .get(account)
            .into_iter()
            .flatten()
            .filter_map(|id| self.families.get(id))
    }

    /// Every refresh token of a family still in the views, in no particular order.
    pub fn family_tokens(&self, id: &FamilyId) -> impl Iterator<Item = &RefreshTokenView> {
        self.digests_by_family
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|d| self.refresh_tokens.get(d))
    }

    /// How many refresh families the views hold, live or not yet dropped.
    pub fn family_count(&self) -> usize {
        self.families.len()
    }

    /// Whether `jti` is on the blocklist.
    pub fn access_token_revoked(&self, jti: &TokenId) -> bool {
        self.revoked_access_tokens.contains_key(jti)
    }

    /// The account's not-before time, while it can still refuse a token.
    pub fn not_before(&self, account: &AccountId) -> Option<Timestamp> {
        self.not_before.get(account).map(|nb| nb.at)
    }

    pub(super) fn token_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        let keys = self
            .signing_keys
            .keys
            .keys()
            .map(|k| ViewKey::SigningKey(k.clone()));
        keys.chain(self.families.keys().map(|k| ViewKey::Family(*k)))
            .chain(
                self.refresh_tokens
                    .keys()
                    .map(|k| ViewKey::RefreshToken(*k)),
            )
            .chain(
                self.revoked_access_tokens
                    .keys()
                    .map(|k| ViewKey::RevokedAccessToken(*k)),
            )
            .chain(self.not_before.keys().map(|k| ViewKey::NotBefore(*k)))
    }

    pub(super) fn token_record(&self, key: &ViewKey) -> Option<ViewRecord> {
        match key {
            ViewKey::SigningKey(kid) => self
                .signing_keys
                .keys
                .get(kid)
                .cloned()
                .map(ViewRecord::SigningKey),
            ViewKey::Family(id) => self.families.get(id).cloned().map(ViewRecord::Family),
            ViewKey::RefreshToken(d) => self
                .refresh_tokens
                .get(d)
                .cloned()
                .map(ViewRecord::RefreshToken),
            ViewKey::RevokedAccessToken(j) => self
                .revoked_access_tokens
                .get(j)
                .cloned()
                .map(ViewRecord::RevokedAccessToken),
            ViewKey::NotBefore(a) => self.not_before.get(a).copied().map(ViewRecord::NotBefore),
            _ => None,
        }
    }

    /// Loads one token record, deriving the indexes.
    pub(super) fn load_token(
        &mut self,
        key: &ViewKey,
        record: ViewRecord,
    ) -> Result<(), ApplyError> {
        let mismatch = || ApplyError {
            kind: "load",
            why: format!("record does not match its key {key:?}"),
        };
        match (key, record) {
            (ViewKey::SigningKey(kid), ViewRecord::SigningKey(k)) if *kid == k.kid => {
                self.put_signing_key(k)
            }
            (ViewKey::Family(id), ViewRecord::Family(f)) if *id == f.id => self.put_family(f),
            (ViewKey::RefreshToken(d), ViewRecord::RefreshToken(t)) => {
                self.digests_by_family
                    .entry(t.family)
                    .or_default()
                    .insert(*d);
                self.refresh_tokens.insert(*d, t);
            }
            (ViewKey::RevokedAccessToken(j), ViewRecord::RevokedAccessToken(r)) if *j == r.jti => {
                self.put_revoked(r)
            }
            (ViewKey::NotBefore(a), ViewRecord::NotBefore(nb)) => self.put_not_before(*a, nb),
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    fn put_signing_key(&mut self, k: PublishedKey) {
        if let Some(at) = k.unpublish_at {
            self.token_expiry
                .insert((at, Expiring::SigningKey(k.kid.clone())));
        }
        self.signing_keys.keys.insert(k.kid.clone(), k);
    }

    /// Inserts or replaces a family, keeping the derived indexes in step.
    fn put_family(&mut self, f: FamilyView) {
        if let Some(old) = self.families.get(&f.id) {
            self.token_expiry
                .remove(&(old.drop_at(), Expiring::Family(f.id)));
        }
        self.token_expiry
            .insert((f.drop_at(), Expiring::Family(f.id)));
        self.families_by_account
            .entry(f.account)
            .or_default()
            .insert(f.id);
        self.families.insert(f.id, f);
    }

    fn put_revoked(&mut self, r: RevokedAccessToken) {
        self.token_expiry
            .insert((r.drop_at(), Expiring::RevokedAccessToken(r.jti)));
        self.revoked_access_tokens.insert(r.jti, r);
    }

    fn put_not_before(&mut self, account: AccountId, nb: NotBefore) {
        if let Some(old) = self.not_before.get(&account) {
            self.token_expiry
                .remove(&(old.drop_at(), Expiring::NotBefore(account)));
        }
        self.token_expiry
            .insert((nb.drop_at(), Expiring::NotBefore(account)));
        self.not_before.insert(account, nb);
    }

    fn put_refresh_token(
        &mut self,
        digest: SecretDigest,
        t: RefreshTokenView,
        touched: &mut Vec<ViewKey>,
    ) {
        self.digests_by_family
            .entry(t.family)
            .or_default()
            .insert(digest);
        self.refresh_tokens.insert(digest, t);
        touched.push(ViewKey::RefreshToken(digest));
    }

    fn drop_family(&mut self, id: FamilyId, touched: &mut Vec<ViewKey>) {
        if let Some(f) = self.families.remove(&id) {
            if let Some(set) = self.families_by_account.get_mut(&f.account) {
                set.remove(&id);
                if set.is_empty() {
                    self.families_by_account.remove(&f.account);
                }
            }
            touched.push(ViewKey::Family(id));
        }
        for digest in self.digests_by_family.remove(&id).unwrap_or_default() {
            self.refresh_tokens.remove(&digest);
            touched.push(ViewKey::RefreshToken(digest));
        }
    }

    /// Forgets everything whose time has come at or before `at`.
    pub(super) fn drop_expired_tokens(&mut self, at: Timestamp, touched: &mut Vec<ViewKey>) {
        while let Some((when, _)) = self.token_expiry.first() {
            if *when > at {
                break;
            }
            let Some((_, what)) = self.token_expiry.pop_first() else {
                break;
            };
            match what {
                Expiring::Family(id) => self.drop_family(id, touched),
                Expiring::RevokedAccessToken(jti) => {
                    self.revoked_access_tokens.remove(&jti);
                    touched.push(ViewKey::RevokedAccessToken(jti));
                }
                Expiring::NotBefore(account) => {
                    self.not_before.remove(&account);
                    touched.push(ViewKey::NotBefore(account));
                }
                Expiring::SigningKey(kid) => {
                    self.signing_keys.keys.remove(&kid);
                    touched.push(ViewKey::SigningKey(kid));
                }
            }
        }
    }

    /// Sets the account's not-before time to `at` (sign-out everywhere, password change,
    /// disable).
    pub(super) fn set_not_before(
        &mut self,
        account: AccountId,
        at: Timestamp,
        touched: &mut Vec<ViewKey>,
    ) {
        self.put_not_before(account, NotBefore { at });
        touched.push(ViewKey::NotBefore(account));
    }

    /// Folds a token event (routed here by [`Views::apply`]).
    pub(super) fn apply_token(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let fail = ApplyError::about(event);
        match event {
            Event::SigningKeyAdded { kid, public_key } => {
                if self.signing_keys.keys.contains_key(kid) || *kid != kid_for(public_key) {
                    return Err(fail("duplicate kid, or kid is not the key's thumbprint"));
                }
                if self.signing_keys.current().is_some() {
                    return Err(fail("a current key was not retired first"));
                }
                self.put_signing_key(PublishedKey {
                    kid: kid.clone(),
                    public_key: *public_key,
                    created_at: at,
                    unpublish_at: None,
                });
                touched.push(ViewKey::SigningKey(kid.clone()));
            }
            Event::SigningKeyRetired { kid, unpublish_at } => {
                let mut k = self
                    .signing_keys
                    .keys
                    .get(kid)
                    .cloned()
                    .ok_or_else(|| fail("unknown kid"))?;
                if k.unpublish_at.is_some() || *unpublish_at <= at {
                    return Err(fail(
                        "key already retired, or unpublished before its retirement",
                    ));
                }
                k.unpublish_at = Some(*unpublish_at);
                self.put_signing_key(k);
                touched.push(ViewKey::SigningKey(kid.clone()));
            }
            Event::RefreshFamilyStarted {
                family,
                account,
                session,
                client_id,
                scope,
                token_digest,
                token_expires_at,
                expires_at,
            } => {
                if !self.accounts.contains_key(account) || self.families.contains_key(family) {
                    return Err(fail("unknown account or duplicate family id"));
                }
                if self.refresh_tokens.contains_key(token_digest) {
                    return Err(fail("duplicate refresh token digest"));
                }
                let token = RefreshTokenView {
                    family: *family,
                    generation: 0,
                    issued_at: at,
                    expires_at: *token_expires_at,
                    spent_at: None,
                    spent_unused: false,
                };
                self.put_refresh_token(*token_digest, token, touched);
                self.put_family(FamilyView {
                    id: *family,
                    account: *account,
                    session: *session,
                    client_id: client_id.clone(),
                    scope: scope.clone(),
                    started_at: at,
                    expires_at: *expires_at,
                    generation: 0,
                    current: Some(*token_digest),
                    current_expires_at: *token_expires_at,
                    revoked_at: None,
                });
                touched.push(ViewKey::Family(*family));
            }
            Event::RefreshTokenRotated {
                family,
                presented_digest,
                token_digest,
                token_expires_at,
                grace,
            } => {
                let mut f = self
                    .families
                    .get(family)
                    .cloned()
                    .ok_or_else(|| fail("unknown family"))?;
                let current = f.current.ok_or_else(|| fail("family is revoked"))?;
                let presented = self
                    .refresh_tokens
                    .get(presented_digest)
                    .ok_or_else(|| fail("unknown presented token"))?;
                let valid = if *grace {
                    presented.family == *family
                        && presented.spent_at.is_some()
                        && !presented.spent_unused
                        && presented.generation.checked_add(1) == Some(f.generation)
                } else {
                    current == *presented_digest
                };
                if !valid || self.refresh_tokens.contains_key(token_digest) {
                    return Err(fail(
                        "presented token is not rotatable, or the new digest is a duplicate",
                    ));
                }
                self.spend(current, at, *grace, touched)?;
                f.generation = f
                    .generation
                    .checked_add(1)
                    .ok_or_else(|| fail("generation overflow"))?;
                let token = RefreshTokenView {
                    family: *family,
                    generation: f.generation,
                    issued_at: at,
                    expires_at: *token_expires_at,
                    spent_at: None,
                    spent_unused: false,
                };
                self.put_refresh_token(*token_digest, token, touched);
                f.current = Some(*token_digest);
                f.current_expires_at = *token_expires_at;
                self.put_family(f);
                touched.push(ViewKey::Family(*family));
            }
            Event::RefreshTokenReused { family, .. }
            | Event::RefreshFamilyRevoked { family, .. } => {
                self.revoke_family(*family, at, touched).map_err(&fail)?;
            }
            Event::AccessTokenRevoked {
                jti,
                account,
                expires_at,
            } => {
                if self.revoked_access_tokens.contains_key(jti) {
                    return Err(fail("access token already revoked"));
                }
                self.put_revoked(RevokedAccessToken {
                    jti: *jti,
                    account: *account,
                    expires_at: *expires_at,
                });
                touched.push(ViewKey::RevokedAccessToken(*jti));
            }
            Event::AccountSignedOutEverywhere { account, .. } => {
                if !self.accounts.contains_key(account) {
                    return Err(fail("unknown account"));
                }
                self.set_not_before(*account, at, touched);
            }
            _ => return Err(fail("not an event of this view")),
        }
        Ok(())
    }

    fn spend(
        &mut self,
        digest: SecretDigest,
        at: Timestamp,
        unused: bool,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let t = self.refresh_tokens.get_mut(&digest).ok_or(ApplyError {
            kind: "spend",
            why: "current token missing".into(),
        })?;
        t.spent_at = Some(at);
        t.spent_unused = unused;
        touched.push(ViewKey::RefreshToken(digest));
        Ok(())
    }

    fn revoke_family(
        &mut self,
        id: FamilyId,
        at: Timestamp,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), &'static str> {
        let mut f = self.families.get(&id).cloned().ok_or("unknown family")?;
        let current = f.current.take().ok_or("family already revoked")?;
        self.spend(current, at, true, touched)
            .map_err(|_| "current token missing")?;
        f.revoked_at = Some(at);
        self.put_family(f);
        touched.push(ViewKey::Family(id));
        Ok(())
    }

    pub(crate) fn check_token_invariants(&self) -> Result<(), String> {
        let mut expiring = BTreeSet::new();
        let current = self
            .signing_keys
            .keys
            .values()
            .filter(|k| k.unpublish_at.is_none())
            .count();
        if current > 1 {
            return Err(format!("{current} current signing keys"));
        }
        for (kid, k) in &self.signing_keys.keys {
            if *kid != k.kid || *kid != kid_for(&k.public_key) {
                return Err(format!(
                    "signing key {kid} does not match its record or thumbprint"
                ));
            }
            if let Some(at) = k.unpublish_at {
                expiring.insert((at, Expiring::SigningKey(kid.clone())));
            }
        }
        for f in self.families.values() {
            self.check_family(f)?;
            expiring.insert((f.drop_at(), Expiring::Family(f.id)));
        }
        let indexed: usize = self.digests_by_family.values().map(BTreeSet::len).sum();
        if indexed != self.refresh_tokens.len()
            || self
                .digests_by_family
                .keys()
                .any(|id| !self.families.contains_key(id))
        {
            return Err("refresh-token digest index disagrees with the records".into());
        }
        let by_account: usize = self.families_by_account.values().map(BTreeSet::len).sum();
        if by_account != self.families.len() {
            return Err("family account index disagrees with the records".into());
        }
        for r in self.revoked_access_tokens.values() {
            expiring.insert((r.drop_at(), Expiring::RevokedAccessToken(r.jti)));
        }
        for (a, nb) in &self.not_before {
            expiring.insert((nb.drop_at(), Expiring::NotBefore(*a)));
        }
        if expiring != self.token_expiry {
            return Err("token expiry index disagrees with the records".into());
        }
        Ok(())
    }

    fn check_family(&self, f: &FamilyView) -> Result<(), String> {
        if !self.accounts.contains_key(&f.account)
            || !self
                .families_by_account
                .get(&f.account)
                .is_some_and(|s| s.contains(&f.id))
        {
            return Err(format!(
                "family {} has a missing or unindexed account",
                f.id
            ));
        }
        let digests = self
            .digests_by_family
            .get(&f.id)
            .ok_or_else(|| format!("family {} has no tokens", f.id))?;
        let tokens: Vec<(&SecretDigest, &RefreshTokenView)> = digests
            .iter()
            .filter_map(|d| self.refresh_tokens.get(d).map(|t| (d, t)))
            .collect();
        if tokens.len() != digests.len() || tokens.iter().any(|(_, t)| t.family != f.id) {
            return Err(format!(
                "family {} indexes tokens that are missing or belong elsewhere",
                f.id
            ));
        }
        // Generations 0..=generation, once each.
        let generations: BTreeSet<u32> = tokens.iter().map(|(_, t)| t.generation).collect();
        if generations.len() != tokens.len()
            || generations.last() != Some(&f.generation)
            || u64::from(f.generation) + 1 != tokens.len() as u64
        {
            return Err(format!(
                "family {} has gaps or duplicates in its generations",
                f.id
            ));
        }
        // At most one live refresh token: exactly the current one is unspent.
        let unspent: Vec<&SecretDigest> = tokens
            .iter()
            .filter(|(_, t)| t.spent_at.is_none())
            .map(|(d, _)| *d)
            .collect();
        let expected: Vec<&SecretDigest> = f.current.iter().collect();
        if unspent != expected {
            return Err(format!(
                "family {} has {} unspent tokens, current {:?}",
                f.id,
                unspent.len(),
                f.current
            ));
        }
        if f.current.is_some() == f.revoked_at.is_some() {
            return Err(format!(
                "family {} is revoked but has a current token, or neither",
                f.id
            ));
        }
        if f.current_expires_at > f.expires_at {
            return Err(format!(
                "family {}'s current token outlives the family",
                f.id
            ));
        }
        Ok(())
    }
}
