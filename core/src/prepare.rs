//! The CPU-heavy, order-independent work before a decision: argon2id.
//!
//! These functions are pure (salt comes from the caller's RNG) but slow by design (tens of
//! milliseconds at OWASP parameters), so callers run them on a bounded pool off the async
//! workers and off the serial writer. Drivers reach them through [`crate::usecase`].

use rand_core::CryptoRng;

use crate::account::AccountView;
use crate::legacy;
use crate::password::{self, PasswordHash, Verification};
use crate::{PasswordCheck, Policy, Rejection, Views};

fn salt(rng: &mut dyn CryptoRng) -> [u8; 16] {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    salt
}

/// Checks a new password against the policy and hashes it. `username` and `email` are the
/// holder's, which the password must not be built on (with the service's name).
pub fn new_password(
    password: &str,
    username: &str,
    email: Option<&str>,
    policy: &Policy,
    rng: &mut dyn CryptoRng,
) -> Result<PasswordHash, Rejection> {
    let context = password::PasswordContext {
        username: Some(username),
        email,
        service_name: Some(&policy.mfa.issuer),
    };
    let problems = policy.password.problems(password, &context);
    if !problems.is_empty() {
        return Err(Rejection::WeakPassword(problems));
    }
    // Policy validation at start-up guarantees argon2 accepts the parameters.
    password::hash(password, salt(rng), &policy.argon2)
        .map_err(|_| Rejection::WeakPassword(Vec::new()))
}

/// What a password is checked against, as the plan found it under the views' read lock:
/// the account (if the username named one), whether its credential was retired by the
/// sunset, and the work every check must do ([`legacy::WorkProfile`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckTarget {
    /// The account, if any.
    pub account: Option<AccountView>,
    /// The account's legacy credential was retired: it is checked like no account at all.
    pub retired: bool,
    /// The account is still on an imported credential: a match replaces it even when it is
    /// already argon2id at the policy's parameters, so that the account leaves the legacy
    /// view.
    pub legacy: bool,
    /// Each scheme family's most expensive cost in use.
    pub profile: legacy::WorkProfile,
}

impl CheckTarget {
    /// Looks `account` up in `views`, with the work profile under `policy`.
    pub fn of(views: &Views, account: Option<&AccountView>, policy: &Policy) -> Self {
        let legacy = account.and_then(|a| views.legacy(&a.id));
        Self {
            retired: legacy.is_some_and(|l| l.retired.is_some()),
            legacy: legacy.is_some(),
            account: account.cloned(),
            profile: views.work_profile(&policy.argon2),
        }
    }
}

/// Checks `password` against the target account's credential (any scheme), or against
/// `decoy` when there is no usable one, then pads the work to the target's profile so that
/// every refusal costs the same whatever the scheme. Re-hashes a match that is stale or on
/// a legacy scheme. `area` is the work area the caller keeps between checks (one per
/// hashing thread), so that argon2's memory is allocated once.
pub fn check_password_in(
    password: &str,
    target: &CheckTarget,
    decoy: &PasswordHash,
    policy: &Policy,
    rng: &mut dyn CryptoRng,
    area: &mut password::WorkArea,
) -> PasswordCheck {
    check_password_measured(password, target, decoy, policy, rng, area).0
}

/// [`check_password_in`], also returning the work it did per family: tests show with it
/// that refusals of every kind do the same work.
pub fn check_password_measured(
    password: &str,
    target: &CheckTarget,
    decoy: &PasswordHash,
    policy: &Policy,
    rng: &mut dyn CryptoRng,
    area: &mut password::WorkArea,
) -> (PasswordCheck, legacy::WorkDone) {
    let usable = target.account.as_ref().filter(|_| !target.retired);
    let against = usable.map_or(decoy, |a| &a.password_hash);
    // An over-long password cannot match any hash we made (the policy refused it at
    // registration), and argon2 should not spend time on it; still check the decoy so the
    // timing does not stand out.
    let too_long = password.len() > policy.password.max_bytes;
    let presented = if too_long { "" } else { password };
    let checked = legacy::verify_any(presented, against, &policy.argon2, area);
    let mut outcome = checked.outcome;
    if too_long || usable.is_none() {
        outcome = Verification::Mismatch;
    }
    let work = legacy::pad(&target.profile, checked.cost, &policy.argon2, area);
    // A failed re-hash leaves the old credential in place; the login still succeeds.
    let rehash = match outcome {
        Verification::Match { stale } if stale || target.legacy => {
            password::hash(password, salt(rng), &policy.argon2).ok()
        }
        _ => None,
    };
    let check = PasswordCheck {
        account: target.account.as_ref().map(|a| a.id),
        checked_hash: target
            .account
            .as_ref()
            .map_or(decoy, |a| &a.password_hash)
            .clone(),
        outcome,
        rehash,
    };
    (check, work)
}
