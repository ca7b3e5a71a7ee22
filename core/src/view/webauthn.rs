//! The WebAuthn view: every registered credential, by id, and the credentials of each
//! account.
//!
//! Persisted records: one per credential. Derived on load: the account index.
//!
//! ```text
//!   WebauthnCredentialRegistered ──▶ credential ──WebauthnCredentialUsed──▶ counter, last use
//!                                        │ └─ WebauthnCounterRegressed (accepted) ──▶ flagged
//!                                        └── WebauthnCredentialRemoved ──▶ gone
//! ```

use std::collections::{BTreeSet, HashMap};

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::event::Event;
use crate::webauthn::{CredentialId, CredentialView};
use crate::{AccountId, Timestamp};

/// The WebAuthn part of [`Views`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WebauthnViews {
    pub(crate) credentials: HashMap<CredentialId, CredentialView>,
    /// Derived: the credentials of each account.
    pub(crate) by_account: HashMap<AccountId, BTreeSet<CredentialId>>,
}

impl Views {
    /// The credential with this id, whoever it belongs to.
    pub fn credential(&self, id: &CredentialId) -> Option<&CredentialView> {
        self.webauthn.credentials.get(id)
    }

    /// The account's credentials, in no particular order.
    pub fn credentials_of(&self, account: &AccountId) -> impl Iterator<Item = &CredentialView> {
        self.webauthn
            .by_account
            .get(account)
            .into_iter()
            .flatten()
            .filter_map(|id| self.webauthn.credentials.get(id))
    }

    /// How many credentials are registered, across accounts.
    pub fn credential_count(&self) -> usize {
        self.webauthn.credentials.len()
    }

    pub(super) fn webauthn_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        self.webauthn
            .credentials
            .keys()
            .map(|k| ViewKey::WebauthnCredential(k.clone()))
    }

    pub(super) fn webauthn_record(&self, key: &ViewKey) -> Option<ViewRecord> {
        match key {
            ViewKey::WebauthnCredential(id) => self
                .webauthn
                .credentials
                .get(id)
                .cloned()
                .map(ViewRecord::WebauthnCredential),
            _ => None,
        }
    }

    pub(super) fn load_webauthn(
        &mut self,
        key: &ViewKey,
        record: ViewRecord,
    ) -> Result<(), ApplyError> {
        match (key, record) {
            (ViewKey::WebauthnCredential(id), ViewRecord::WebauthnCredential(c)) if c.id == *id => {
                self.put_credential(c);
                Ok(())
            }
            (key, _) => Err(ApplyError {
                kind: "load",
                why: format!("record does not match its key {key:?}"),
            }),
        }
    }

    fn put_credential(&mut self, c: CredentialView) {
        self.webauthn
            .by_account
            .entry(c.account)
            .or_default()
            .insert(c.id.clone());
        self.webauthn.credentials.insert(c.id.clone(), c);
    }

    /// Folds a WebAuthn event (routed here by [`Views::apply`]).
    pub(super) fn apply_webauthn(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let fail = ApplyError::about(event);
        match event {
            Event::WebauthnCredentialRegistered {
                account,
                credential,
                name,
                kind,
                public_key,
                counter,
                transports,
                discoverable,
                user_verified,
                backup_eligible,
            } => {
                if !self.accounts.contains_key(account) {
                    return Err(fail("unknown account"));
                }
                if self.webauthn.credentials.contains_key(credential) {
                    return Err(fail("credential already registered"));
                }
                self.put_credential(CredentialView {
                    id: credential.clone(),
                    account: *account,
                    name: name.clone(),
                    kind: *kind,
                    public_key: public_key.clone(),
                    counter: *counter,
                    transports: transports.clone(),
                    discoverable: *discoverable,
                    user_verified: *user_verified,
                    backup_eligible: *backup_eligible,
                    created_at: at,
                    last_used_at: None,
                    flagged: false,
                });
            }
            Event::WebauthnCredentialUsed {
                account,
                credential,
                counter,
                ..
            } => {
                let c = self
                    .owned_credential(account, credential)
                    .ok_or_else(|| fail("unknown credential, or another account's"))?;
                // An accepted regression must not lower the stored counter.
                c.counter = c.counter.max(*counter);
                c.last_used_at = Some(at);
            }
            Event::WebauthnCounterRegressed {
                account,
                credential,
                accepted,
                ..
            } => {
                let c = self
                    .owned_credential(account, credential)
                    .ok_or_else(|| fail("unknown credential, or another account's"))?;
                if *accepted {
                    c.flagged = true;
                } else {
                    return Ok(());
                }
            }
            Event::WebauthnCredentialRemoved {
                account,
                credential,
                ..
            } => {
                self.owned_credential(account, credential)
                    .ok_or_else(|| fail("unknown credential, or another account's"))?;
                self.webauthn.credentials.remove(credential);
                if let Some(set) = self.webauthn.by_account.get_mut(account) {
                    set.remove(credential);
                    if set.is_empty() {
                        self.webauthn.by_account.remove(account);
                    }
                }
            }
            _ => return Err(fail("not a WebAuthn event")),
        }
        let credential = match event {
            Event::WebauthnCredentialRegistered { credential, .. }
            | Event::WebauthnCredentialUsed { credential, .. }
            | Event::WebauthnCounterRegressed { credential, .. }
            | Event::WebauthnCredentialRemoved { credential, .. } => credential,
            _ => return Ok(()),
        };
        touched.push(ViewKey::WebauthnCredential(credential.clone()));
        Ok(())
    }

    fn owned_credential(
        &mut self,
        account: &AccountId,
        credential: &CredentialId,
    ) -> Option<&mut CredentialView> {
        self.webauthn
            .credentials
            .get_mut(credential)
            .filter(|c| c.account == *account)
    }

    pub(crate) fn check_credential_record(&self, id: &CredentialId) -> Result<(), String> {
        let Some(c) = self.webauthn.credentials.get(id) else {
            return Ok(());
        };
        if c.id != *id || !self.accounts.contains_key(&c.account) {
            return Err(format!(
                "credential {id} is misfiled or names a missing account"
            ));
        }
        let indexed = self
            .webauthn
            .by_account
            .get(&c.account)
            .is_some_and(|set| set.contains(id));
        if !indexed {
            return Err(format!(
                "credential {id} is missing from its account's index"
            ));
        }
        Ok(())
    }

    pub(crate) fn check_webauthn_invariants(&self) -> Result<(), String> {
        for id in self.webauthn.credentials.keys() {
            self.check_credential_record(id)?;
        }
        let indexed: usize = self.webauthn.by_account.values().map(BTreeSet::len).sum();
        if indexed != self.webauthn.credentials.len() {
            return Err(format!(
                "the account index holds {indexed} credentials, the records {}",
                self.webauthn.credentials.len()
            ));
        }
        Ok(())
    }
}
