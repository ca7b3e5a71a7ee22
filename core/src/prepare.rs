//! The CPU-heavy, order-independent work before a decision: argon2id.
//!
//! These functions are pure (salt comes from the caller's RNG) but slow by design (tens of
//! milliseconds at OWASP parameters), so callers run them on a bounded pool off the async
//! workers and off the serial writer. Drivers reach them through [`crate::usecase`].

use rand_core::CryptoRng;

use crate::account::AccountView;
use crate::password::{self, PasswordHash, Verification};
use crate::{PasswordCheck, Policy, Rejection};

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

/// Checks `password` against `account`'s hash, or against `decoy` when there is no such
/// account, so that both take the same time. Re-hashes a stale hash on a match. `area` is
/// the work area the caller keeps between checks (one per hashing thread), so that argon2's
/// memory is allocated once.
pub fn check_password_in(
    password: &str,
    account: Option<&AccountView>,
    decoy: &PasswordHash,
    policy: &Policy,
    rng: &mut dyn CryptoRng,
    area: &mut password::WorkArea,
) -> PasswordCheck {
    let against = account.map_or(decoy, |a| &a.password_hash);
    // An over-long password cannot match any hash we made (the policy refused it at
    // registration), and argon2 should not spend time on it; still check the decoy so the
    // timing does not stand out.
    let too_long = password.len() > policy.password.max_bytes;
    let presented = if too_long { "" } else { password };
    let mut outcome = password::verify_in(presented, against, &policy.argon2, area);
    if too_long || account.is_none() {
        outcome = Verification::Mismatch;
    }
    let rehash = match outcome {
        Verification::Match { stale: true } => {
            password::hash(password, salt(rng), &policy.argon2).ok()
        }
        _ => None,
    };
    PasswordCheck {
        account: account.map(|a| a.id),
        checked_hash: against.clone(),
        outcome,
        rehash,
    }
}
