//! Invariants of the views, shared by unit tests, property tests, the simulator and the
//! writer's debug checks.

use std::collections::BTreeSet;

use crate::Views;
use crate::account::username_key;

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
    views.check_mfa_invariants()
}
