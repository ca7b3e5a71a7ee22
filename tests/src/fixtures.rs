//! Deterministic building blocks for *given* lists and store tests.

use tessera_core::event::Event;
use tessera_core::password::{self, PasswordHash};
use tessera_core::policy::Argon2Params;
use tessera_core::secret::SecretDigest;
use tessera_core::session::SESSION_SECRET_PREFIX;
use tessera_core::{AccountId, Actor, SessionEndReason, SessionId, Timestamp};

/// Account number `n`: a fixed, valid UUID (version 7 layout, so it looks like a real one).
pub fn account(n: u8) -> AccountId {
    AccountId::from_bytes([
        0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x70, n, 0x80, 0, 0, 0, 0, 0, 0xac, n,
    ])
}

/// Session number `n`.
pub fn session(n: u8) -> SessionId {
    SessionId::from_bytes([
        0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x70, n, 0x80, 0, 0, 0, 0, 0, 0x5e, n,
    ])
}

/// The cookie value of a session the *given* list started: well-formed, but made here, not
/// by the server's RNG.
pub fn secret(n: u8) -> String {
    let body: String = std::iter::repeat_n(char::from(b'A' + n % 26), 42).collect();
    format!("{SESSION_SECRET_PREFIX}{body}{}", n % 10)
}

/// An argon2id hash of `password` under the test policy's parameters, with a fixed salt.
pub fn hash(password: &str) -> PasswordHash {
    hash_with(password, &Argon2Params::INSECURE_FAST)
}

/// An argon2id hash of `password` under `cost`, with a fixed salt.
pub fn hash_with(password: &str, cost: &Argon2Params) -> PasswordHash {
    password::hash(password, *b"fixture-salt-16b", cost)
        .expect("fixture argon2 parameters are valid")
}

pub fn registered(account: AccountId, username: &str, password: &str) -> Event {
    Event::AccountRegistered {
        account,
        username: username.to_owned(),
        email: None,
        password_hash: hash(password),
    }
}

/// Session `n` of `account`, started with the default policy's idle timeout and an absolute
/// deadline of `expires_at`.
pub fn session_started(n: u8, account: AccountId, expires_at: Timestamp) -> Event {
    Event::SessionStarted {
        session: session(n),
        account,
        secret_digest: SecretDigest::of(&secret(n)),
        idle_timeout_ms: tessera_core::policy::SessionPolicy::default().idle_timeout_ms,
        expires_at,
    }
}

pub fn ended(session: SessionId, reason: SessionEndReason) -> Event {
    Event::SessionEnded { session, reason }
}

pub fn disabled(account: AccountId) -> Event {
    Event::AccountDisabled {
        account,
        by: Actor::Operator {
            name: "fixture".into(),
        },
    }
}
