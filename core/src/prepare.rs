//! The CPU-heavy, order-independent work before a decision: argon2id.
//!
//! These functions are pure (salt comes from the caller's RNG) but slow by design (tens of
//! milliseconds at OWASP parameters), so callers run them on a bounded pool off the async
//! workers and off the serial writer.

use rand_core::CryptoRng;

use crate::account::{AccountView, email_plausible, username_key};
use crate::password::{self, PasswordHash, Verification};
use crate::{Command, PasswordCheck, Policy, Rejection};

fn salt(rng: &mut dyn CryptoRng) -> [u8; 16] {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    salt
}

/// Checks a new password against the policy and hashes it.
pub fn new_password(
    password: &str,
    policy: &Policy,
    rng: &mut dyn CryptoRng,
) -> Result<PasswordHash, Rejection> {
    let problems = policy.password.problems(password);
    if !problems.is_empty() {
        return Err(Rejection::WeakPassword(problems));
    }
    // Policy validation at start-up guarantees argon2 accepts the parameters.
    password::hash(password, salt(rng), &policy.argon2)
        .map_err(|_| Rejection::WeakPassword(Vec::new()))
}

/// Validates a registration and hashes its password: everything but the uniqueness check,
/// which only the serial writer can make.
pub fn register(
    username: &str,
    email: Option<&str>,
    password: &str,
    policy: &Policy,
    rng: &mut dyn CryptoRng,
) -> Result<Command, Rejection> {
    username_key(username).map_err(Rejection::InvalidUsername)?;
    if email.is_some_and(|e| !email_plausible(e)) {
        return Err(Rejection::InvalidEmail);
    }
    let password_hash = new_password(password, policy, rng)?;
    Ok(Command::Register {
        username: username.trim().to_owned(),
        email: email.map(str::to_owned),
        password_hash,
    })
}

/// Checks `password` against `account`'s hash, or against `decoy` when there is no such
/// account, so that both take the same time. Re-hashes a stale hash on a match.
pub fn check_password(
    password: &str,
    account: Option<&AccountView>,
    decoy: &PasswordHash,
    policy: &Policy,
    rng: &mut dyn CryptoRng,
) -> PasswordCheck {
    check_password_in(
        password,
        account,
        decoy,
        policy,
        rng,
        &mut password::WorkArea::default(),
    )
}

/// [`check_password`] in a work area the caller keeps between checks (one per hashing
/// thread), so that argon2's memory is allocated once.
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
