//! The identity view: external identities linked to accounts, and the sign-in states spent.
//!
//! Persisted records: one per linked identity, keyed by (provider, subject); one per spent
//! state, keyed by its digest, until the sign-in it belonged to would have expired. Derived
//! on load: each account's identities, the spent states by deadline, and the accounts by
//! e-mail address (from the account records), which a first sign-in consults so that it
//! never takes over an account by its address.
//!
//! ```text
//!   ExternalAccountCreated / ExternalIdentityLinked ──▶ linked ──ExternalIdentityUnlinked──▶ gone
//!   ExternalSignInRecorded ──▶ last sign-in time; the state is spent until its deadline
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::account::AccountView;
use crate::event::Event;
use crate::identity::{IdentityView, SpentState};
use crate::secret::SecretDigest;
use crate::{AccountId, Timestamp};

/// The key of an identity record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityKey {
    /// A linked identity, by provider name and subject.
    Link(String, String),
    /// A spent sign-in state, by digest.
    SpentState(SecretDigest),
}

/// An identity record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityRecord {
    /// Under [`IdentityKey::Link`].
    Link(IdentityView),
    /// Under [`IdentityKey::SpentState`].
    SpentState(SpentState),
}

/// The identity part of [`Views`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IdentityViews {
    pub(crate) links: HashMap<(String, String), IdentityView>,
    pub(crate) spent: HashMap<SecretDigest, SpentState>,
    /// Derived: each account's identities, provider -> subject.
    pub(crate) by_account: HashMap<AccountId, BTreeMap<String, String>>,
    /// Derived: spent states by deadline, to drop them.
    pub(crate) spent_by_deadline: BTreeSet<(Timestamp, SecretDigest)>,
    /// Derived from the accounts: accounts by lower-case e-mail address.
    pub(crate) by_email: HashMap<String, BTreeSet<AccountId>>,
}

fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Views {
    /// The identity linked under (provider, subject), if any.
    pub fn identity(&self, provider: &str, subject: &str) -> Option<&IdentityView> {
        self.identities
            .links
            .get(&(provider.to_owned(), subject.to_owned()))
    }

    /// The identities linked to an account, by provider name.
    pub fn identities_of(&self, account: &AccountId) -> impl Iterator<Item = &IdentityView> {
        self.identities
            .by_account
            .get(account)
            .into_iter()
            .flatten()
            .filter_map(|(p, s)| self.identities.links.get(&(p.clone(), s.clone())))
    }

    /// Whether a sign-in state with this digest was spent (and its sign-in not yet expired).
    pub fn state_spent(&self, digest: &SecretDigest) -> bool {
        self.identities.spent.contains_key(digest)
    }

    /// The accounts whose e-mail address is `email`, compared case-insensitively.
    pub fn accounts_with_email(&self, email: &str) -> impl Iterator<Item = &AccountView> {
        self.identities
            .by_email
            .get(&email_key(email))
            .into_iter()
            .flatten()
            .filter_map(|id| self.accounts.get(id))
    }

    /// Indexes an account's e-mail address (registration, import, load).
    pub(super) fn index_email(&mut self, account: &AccountView) {
        if let Some(e) = &account.email {
            self.identities
                .by_email
                .entry(email_key(e))
                .or_default()
                .insert(account.id);
        }
    }

    pub(super) fn identity_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        let links = self
            .identities
            .links
            .keys()
            .map(|(p, s)| ViewKey::Identity(IdentityKey::Link(p.clone(), s.clone())));
        let spent = self
            .identities
            .spent
            .keys()
            .map(|d| ViewKey::Identity(IdentityKey::SpentState(*d)));
        links.chain(spent)
    }

    pub(super) fn identity_record(&self, key: &IdentityKey) -> Option<ViewRecord> {
        let record = match key {
            IdentityKey::Link(p, s) => self
                .identities
                .links
                .get(&(p.clone(), s.clone()))
                .cloned()
                .map(IdentityRecord::Link),
            IdentityKey::SpentState(d) => self
                .identities
                .spent
                .get(d)
                .copied()
                .map(IdentityRecord::SpentState),
        };
        record.map(ViewRecord::Identity)
    }

    pub(super) fn load_identity(
        &mut self,
        key: IdentityKey,
        record: IdentityRecord,
    ) -> Result<(), ApplyError> {
        match (key, record) {
            (IdentityKey::Link(p, s), IdentityRecord::Link(i))
                if i.provider == p && i.subject == s =>
            {
                self.put_link(i);
                Ok(())
            }
            (IdentityKey::SpentState(d), IdentityRecord::SpentState(spent))
                if spent.digest == d =>
            {
                self.put_spent(spent);
                Ok(())
            }
            (key, _) => Err(ApplyError {
                kind: "load",
                why: format!("record does not match its key {key:?}"),
            }),
        }
    }

    fn put_link(&mut self, i: IdentityView) {
        self.identities
            .by_account
            .entry(i.account)
            .or_default()
            .insert(i.provider.clone(), i.subject.clone());
        self.identities
            .links
            .insert((i.provider.clone(), i.subject.clone()), i);
    }

    fn put_spent(&mut self, spent: SpentState) {
        self.identities
            .spent_by_deadline
            .insert((spent.expires_at, spent.digest));
        self.identities.spent.insert(spent.digest, spent);
    }

    /// Drops the spent states whose sign-in deadline is at or before `at`: such a state is
    /// refused as expired anyway.
    pub(super) fn drop_expired_identity(&mut self, at: Timestamp, touched: &mut Vec<ViewKey>) {
        while let Some(&(deadline, digest)) = self.identities.spent_by_deadline.first() {
            if deadline > at {
                break;
            }
            self.identities.spent_by_deadline.pop_first();
            self.identities.spent.remove(&digest);
            touched.push(ViewKey::Identity(IdentityKey::SpentState(digest)));
        }
    }

    fn spend_state(
        &mut self,
        digest: SecretDigest,
        expires_at: Timestamp,
        at: Timestamp,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), &'static str> {
        if self.identities.spent.contains_key(&digest) {
            return Err("the sign-in state was already spent");
        }
        // A state recorded past its deadline would be dropped at once; keeping it would make
        // a rebuild differ from the live views.
        if expires_at > at {
            self.put_spent(SpentState { digest, expires_at });
            touched.push(ViewKey::Identity(IdentityKey::SpentState(digest)));
        }
        Ok(())
    }

    /// Folds an identity event (routed here by [`Views::apply`]). `ExternalAccountCreated`
    /// also creates the account, as a registration does.
    pub(super) fn apply_identity(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let fail = ApplyError::about(event);
        match event {
            Event::ExternalAccountCreated {
                account,
                username,
                email,
                provider,
                subject,
            } => {
                self.insert_account(
                    at,
                    *account,
                    username,
                    email,
                    crate::identity::no_password(),
                    touched,
                )
                .map_err(|why| fail(&why))?;
                self.link(at, *account, provider, subject, touched)
                    .map_err(fail)?;
            }
            Event::ExternalIdentityLinked {
                account,
                provider,
                subject,
                state,
                state_expires_at,
            } => {
                self.link(at, *account, provider, subject, touched)
                    .map_err(&fail)?;
                self.spend_state(*state, *state_expires_at, at, touched)
                    .map_err(&fail)?;
            }
            Event::ExternalIdentityUnlinked {
                account,
                provider,
                subject,
            } => {
                let key = (provider.clone(), subject.clone());
                match self.identities.links.get(&key) {
                    Some(i) if i.account == *account => {}
                    _ => return Err(fail("the identity is not linked to the account")),
                }
                self.identities.links.remove(&key);
                if let Some(set) = self.identities.by_account.get_mut(account) {
                    set.remove(provider);
                    if set.is_empty() {
                        self.identities.by_account.remove(account);
                    }
                }
                touched.push(ViewKey::Identity(IdentityKey::Link(
                    provider.clone(),
                    subject.clone(),
                )));
            }
            Event::ExternalSignInRecorded {
                account,
                provider,
                state,
                state_expires_at,
                ..
            } => {
                let subject = self
                    .identities
                    .by_account
                    .get(account)
                    .and_then(|set| set.get(provider))
                    .cloned()
                    .ok_or_else(|| fail("the account has no identity from the provider"))?;
                if let Some(i) = self
                    .identities
                    .links
                    .get_mut(&(provider.clone(), subject.clone()))
                {
                    i.last_sign_in_at = Some(at);
                }
                touched.push(ViewKey::Identity(IdentityKey::Link(
                    provider.clone(),
                    subject,
                )));
                self.spend_state(*state, *state_expires_at, at, touched)
                    .map_err(&fail)?;
            }
            _ => return Err(fail("not an identity event")),
        }
        Ok(())
    }

    fn link(
        &mut self,
        at: Timestamp,
        account: AccountId,
        provider: &str,
        subject: &str,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), &'static str> {
        if !self.accounts.contains_key(&account) {
            return Err("unknown account");
        }
        if self
            .identities
            .links
            .contains_key(&(provider.to_owned(), subject.to_owned()))
        {
            return Err("the identity is already linked");
        }
        if self
            .identities
            .by_account
            .get(&account)
            .is_some_and(|set| set.contains_key(provider))
        {
            return Err("the account already has an identity from the provider");
        }
        self.put_link(IdentityView {
            provider: provider.to_owned(),
            subject: subject.to_owned(),
            account,
            linked_at: at,
            last_sign_in_at: None,
        });
        touched.push(ViewKey::Identity(IdentityKey::Link(
            provider.to_owned(),
            subject.to_owned(),
        )));
        Ok(())
    }

    pub(crate) fn check_identity_record(&self, key: &IdentityKey) -> Result<(), String> {
        match key {
            IdentityKey::Link(p, s) => {
                let Some(i) = self.identities.links.get(&(p.clone(), s.clone())) else {
                    return Ok(());
                };
                let indexed = self
                    .identities
                    .by_account
                    .get(&i.account)
                    .and_then(|set| set.get(p))
                    == Some(s);
                if !indexed || !self.accounts.contains_key(&i.account) {
                    return Err(format!("identity {p}/{s} is unindexed or has no account"));
                }
            }
            IdentityKey::SpentState(d) => {
                if let Some(spent) = self.identities.spent.get(d)
                    && !self
                        .identities
                        .spent_by_deadline
                        .contains(&(spent.expires_at, *d))
                {
                    return Err("a spent state is unindexed".into());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn check_identity_invariants(&self) -> Result<(), String> {
        for (p, s) in self.identities.links.keys() {
            self.check_identity_record(&IdentityKey::Link(p.clone(), s.clone()))?;
        }
        let indexed: usize = self.identities.by_account.values().map(|s| s.len()).sum();
        if indexed != self.identities.links.len()
            || self.identities.spent_by_deadline.len() != self.identities.spent.len()
        {
            return Err("the identity indexes disagree with the records".into());
        }
        Ok(())
    }
}
