//! The MFA view: each account's MFA state and the open login challenges.
//!
//! Persisted records: one per account with MFA state, and one per challenge. Derived on
//! load: challenges by token digest, and their deadlines. A challenge is dropped at its
//! deadline, by recorded time only, so a rebuild drops exactly what the writer dropped.

use std::collections::{BTreeSet, HashMap};

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::event::Event;
use crate::mfa::{ActiveTotp, ChallengeView, MfaStatus, MfaView, PendingTotp};
use crate::secret::SecretDigest;
use crate::{AccountId, ChallengeId, Timestamp};

/// The MFA part of [`Views`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MfaViews {
    pub(crate) accounts: HashMap<AccountId, MfaView>,
    pub(crate) challenges: HashMap<ChallengeId, ChallengeView>,
    /// Derived: challenges by the digest of their `mfa_token`.
    pub(crate) by_digest: HashMap<SecretDigest, ChallengeId>,
    /// Derived: challenges by deadline.
    pub(crate) challenge_expiry: BTreeSet<(Timestamp, ChallengeId)>,
}

impl Views {
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

    /// The challenge with this id, while the views hold it. It may be past `expires_at` or
    /// exhausted: check [`ChallengeView::is_live`] and
    /// [`ChallengeView::exhausted`].
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

    pub(super) fn mfa_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        let m = &self.mfa;
        m.accounts
            .keys()
            .map(|k| ViewKey::Mfa(*k))
            .chain(m.challenges.keys().map(|k| ViewKey::Challenge(*k)))
    }

    pub(super) fn mfa_record(&self, key: &ViewKey) -> Option<ViewRecord> {
        let m = &self.mfa;
        match key {
            ViewKey::Mfa(a) => m.accounts.get(a).cloned().map(ViewRecord::Mfa),
            ViewKey::Challenge(c) => m.challenges.get(c).cloned().map(ViewRecord::Challenge),
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

    /// Forgets challenges past their deadline.
    pub(super) fn drop_expired_mfa(&mut self, at: Timestamp, touched: &mut Vec<ViewKey>) {
        while let Some(&(deadline, id)) = self.mfa.challenge_expiry.first() {
            if deadline > at {
                break;
            }
            self.remove_challenge(&id, touched);
        }
    }

    /// Folds an MFA event (routed here by [`Views::apply`]).
    pub(super) fn apply_mfa(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let fail = ApplyError::about(event);
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
            _ => return Err(fail("not an event of this view")),
        }
        Ok(())
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
        Ok(())
    }
}
