//! Invariants of the views, shared by unit tests, property tests, the simulator and the
//! writer. The full check, behind [`Views::check_invariants`], walks every view and index
//! (tests, rebuilds, the simulator); the batch check, behind [`Views::check_records`], checks
//! only the records one batch touched, cheaply enough for the writer to run after every batch
//! in production.

use std::collections::BTreeSet;

use crate::account::username_key;
use crate::throttle::address_key;
use crate::{ViewKey, Views};

pub(crate) fn check(views: &Views) -> Result<(), String> {
    let Views {
        accounts,
        usernames,
        sessions,
        by_digest,
        by_account,
        by_deadline,
        ..
    } = views;
    if usernames.len() != accounts.len() {
        return Err(format!(
            "{} usernames for {} accounts",
            usernames.len(),
            accounts.len()
        ));
    }
    for (key, id) in usernames {
        let account = accounts
            .get(id)
            .ok_or_else(|| format!("username {key} names a missing account"))?;
        if username_key(&account.username).as_ref() != Ok(key) {
            return Err(format!("username index {key} disagrees with account {id}"));
        }
    }
    let counts = [
        by_digest.len(),
        by_deadline.len(),
        by_account.values().map(BTreeSet::len).sum(),
    ];
    if counts.iter().any(|&n| n != sessions.len()) {
        return Err(format!(
            "session indexes hold {counts:?} entries for {} sessions",
            sessions.len()
        ));
    }
    for s in sessions.values() {
        if !accounts.contains_key(&s.account) {
            return Err(format!("session {} belongs to a missing account", s.id));
        }
        let indexed = by_digest.get(&s.secret_digest) == Some(&s.id)
            && by_deadline.contains(&(s.deadline(), s.id))
            && by_account
                .get(&s.account)
                .is_some_and(|set| set.contains(&s.id));
        if !indexed {
            return Err(format!("session {} is missing from an index", s.id));
        }
        if s.expires_at < s.created_at || s.last_seen_at < s.created_at {
            return Err(format!("session {} has deadlines before its start", s.id));
        }
    }
    views.check_token_invariants()?;
    views.check_mfa_invariants()?;
    views.check_oauth_invariants()?;
    views.check_api_key_invariants()?;
    views.check_legacy_invariants()?;
    views.check_identity_invariants()?;
    views.check_webauthn_invariants()?;
    views.check_throttle_invariants()
}

/// Checks the records under `keys` (the ones a batch touched) and their index entries.
pub(crate) fn check_records(views: &Views, keys: &[ViewKey]) -> Result<(), String> {
    keys.iter().try_for_each(|key| check_record(views, key))
}

fn check_record(views: &Views, key: &ViewKey) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{key:?}: {why}"));
    match key {
        ViewKey::Account(id) => match views.accounts.get(id) {
            Some(a) if a.id != *id => fail("record under another id"),
            Some(a) => match username_key(&a.username) {
                Ok(k) if views.usernames.get(&k) == Some(id) => Ok(()),
                _ => fail("username not indexed to the account"),
            },
            None => Ok(()),
        },
        ViewKey::Username(name) => match views.usernames.get(name) {
            Some(id) => match views.accounts.get(id) {
                Some(a) if username_key(&a.username).as_ref() == Ok(name) => Ok(()),
                _ => fail("names a missing or differently named account"),
            },
            None => Ok(()),
        },
        ViewKey::Session(id) => match views.sessions.get(id) {
            Some(s) => {
                let indexed = s.id == *id
                    && views.accounts.contains_key(&s.account)
                    && views.by_digest.get(&s.secret_digest) == Some(id)
                    && views.by_deadline.contains(&(s.deadline(), s.id))
                    && views
                        .by_account
                        .get(&s.account)
                        .is_some_and(|set| set.contains(id));
                if !indexed {
                    return fail("missing account or index entry");
                }
                if s.expires_at < s.created_at || s.last_seen_at < s.created_at {
                    return fail("deadlines before its start");
                }
                Ok(())
            }
            None => Ok(()),
        },
        // A family's record and its current token, not every generation it ever had: a
        // family rotated many times must not make each rotation's check slower.
        ViewKey::Family(id) => match views.families.get(id) {
            Some(f) if f.id != *id => fail("record under another id"),
            Some(f) => check_family_head(views, f).or_else(|why| fail(&why)),
            None => Ok(()),
        },
        ViewKey::RefreshToken(digest) => match views.refresh_tokens.get(digest) {
            Some(t) => match views.families.get(&t.family) {
                Some(f)
                    if t.generation <= f.generation
                        && views
                            .digests_by_family
                            .get(&f.id)
                            .is_some_and(|set| set.contains(digest)) =>
                {
                    Ok(())
                }
                _ => fail("token of a missing family, unindexed, or from a later generation"),
            },
            None => Ok(()),
        },
        ViewKey::SigningKey(kid) => match views.signing_keys.keys.get(kid) {
            Some(k) if k.kid != *kid || *kid != crate::signing_key::kid_for(&k.public_key) => {
                fail("does not match its record or thumbprint")
            }
            _ => Ok(()),
        },
        ViewKey::RevokedAccessToken(jti) => match views.revoked_access_tokens.get(jti) {
            Some(r) if r.jti != *jti => fail("record under another jti"),
            _ => Ok(()),
        },
        ViewKey::NotBefore(_) => Ok(()),
        ViewKey::OAuth(k) => views.check_oauth_record(k),
        ViewKey::Mfa(id) => match views.mfa.accounts.get(id) {
            Some(v) if v.account != *id || !views.accounts.contains_key(id) => {
                fail("missing or mismatched account")
            }
            Some(v) if v.pending.is_some() == v.totp.is_some() => {
                fail("both pending and on, or empty")
            }
            Some(v) if v.totp.is_none() && !v.backup_codes.is_empty() => {
                fail("backup codes without TOTP")
            }
            Some(v) if v.backup_codes.len() > crate::mfa::BACKUP_CODES_PER_SET => {
                fail("too many backup codes")
            }
            _ => Ok(()),
        },
        ViewKey::Challenge(id) => match views.mfa.challenges.get(id) {
            Some(c)
                if c.id != *id
                    || views.mfa.by_digest.get(&c.token_digest) != Some(id)
                    || !views.mfa.challenge_expiry.contains(&(c.expires_at, c.id))
                    || !views.accounts.contains_key(&c.account)
                    || c.failures > c.attempts_max =>
            {
                fail("unindexed, of a missing account, or over its attempts")
            }
            _ => Ok(()),
        },
        ViewKey::AccountStrikes(a) => match views.throttle.account_strikes.get(a) {
            Some(s)
                if s.failures == 0
                    || !views.accounts.contains_key(a)
                    || !views
                        .throttle
                        .accounts_by_time
                        .contains(&(s.last_failure_at, *a)) =>
            {
                fail("empty, of a missing account, or unindexed")
            }
            _ => Ok(()),
        },
        ViewKey::AddressStrikes(ip) => match views.throttle.address_strikes.get(ip) {
            Some(s)
                if s.failures == 0
                    || address_key(*ip) != *ip
                    || !views
                        .throttle
                        .addresses_by_time
                        .contains(&(s.last_failure_at, *ip)) =>
            {
                fail("empty, under a wrong key, or unindexed")
            }
            _ => Ok(()),
        },
        ViewKey::RegistrationStrikes(ip) => match views.throttle.registration_strikes.get(ip) {
            Some(s)
                if s.failures == 0
                    || address_key(*ip) != *ip
                    || !views
                        .throttle
                        .registrations_by_time
                        .contains(&(s.last_failure_at, *ip)) =>
            {
                fail("empty, under a wrong key, or unindexed")
            }
            _ => Ok(()),
        },
        ViewKey::ApiKey(id) => match views.api_keys.keys.get(id) {
            Some(k) if k.id != *id => fail("record under another id"),
            Some(k) => views.check_api_key(k),
            None => Ok(()),
        },
        ViewKey::Legacy(a) => views.check_legacy_record(a).or_else(|why| fail(&why)),
        ViewKey::Identity(k) => views.check_identity_record(k).or_else(|why| fail(&why)),
        ViewKey::WebauthnCredential(id) => {
            views.check_credential_record(id).or_else(|why| fail(&why))
        }
    }
}

/// The family's own record and its current token: O(1) in the number of generations.
fn check_family_head(views: &Views, f: &crate::refresh::FamilyView) -> Result<(), String> {
    let indexed = views.accounts.contains_key(&f.account)
        && views
            .families_by_account
            .get(&f.account)
            .is_some_and(|set| set.contains(&f.id));
    if !indexed {
        return Err("missing or unindexed account".into());
    }
    if f.current.is_some() == f.revoked_at.is_some() {
        return Err("revoked but with a current token, or neither".into());
    }
    if f.current_expires_at > f.expires_at {
        return Err("its current token outlives the family".into());
    }
    match f.current.as_ref().map(|d| views.refresh_tokens.get(d)) {
        Some(Some(t))
            if t.family != f.id || t.generation != f.generation || t.spent_at.is_some() =>
        {
            Err("its current token is spent, of another family or another generation".into())
        }
        Some(None) => Err("its current token is missing".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::ViewKey;
    use crate::testkit::Given;

    #[test]
    fn a_touched_record_missing_from_its_index_is_caught() {
        let mut w = Given::nothing();
        let alice = w.registered("alice");
        let touched = [ViewKey::Account(alice), ViewKey::Username("alice".into())];
        assert_eq!(w.views.check_records(&touched), Ok(()));
        w.views.usernames.clear();
        assert!(w.views.check_records(&[ViewKey::Account(alice)]).is_err());
        // Only what a batch touched is looked at.
        assert_eq!(w.views.check_records(&[]), Ok(()));
    }

    #[test]
    fn a_touched_family_whose_current_token_is_spent_is_caught() {
        let mut w = Given::nothing();
        w.registered("alice");
        let issued = w.login_tokens("alice");
        let keys = [ViewKey::Family(issued.family)];
        assert_eq!(w.views.check_records(&keys), Ok(()));
        let current = w.views.families[&issued.family]
            .current
            .expect("a live family has a current token");
        let now = w.now;
        if let Some(t) = w.views.refresh_tokens.get_mut(&current) {
            t.spent_at = Some(now);
        }
        assert!(w.views.check_records(&keys).is_err());
    }
}
