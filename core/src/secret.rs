//! Bearer secrets and their digests.
//!
//! A bearer secret (a session cookie value today; refresh tokens and API keys later) is 256
//! bits from the environment's RNG, handed to the caller once. Only its SHA-256 digest is
//! ever stored: with 256 bits of entropy a fast hash is enough, since nobody can enumerate
//! the preimages.

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::Env;

/// The SHA-256 digest of a bearer secret: what the log and the views hold.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    /// The SHA-256 digest of a secret as presented (prefix included), to look it up by.
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A digest is not secret, but a short form keeps logs readable.
        let short = self.0.get(..6).unwrap_or_default();
        write!(
            f,
            "SecretDigest({}…)",
            data_encoding::HEXLOWER.encode(short)
        )
    }
}

/// A freshly generated bearer secret, in the form handed to its holder.
/// `Debug` never prints it; memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerSecret(Zeroizing<String>);

impl BearerSecret {
    /// Bytes of entropy in every generated secret.
    pub const ENTROPY_BYTES: usize = 32;

    /// A new secret `<prefix><43 base64url chars>`. The prefix lets secret scanners and
    /// humans recognise what leaked.
    pub fn generate(prefix: &str, env: &mut Env<'_>) -> (Self, SecretDigest) {
        let raw = Zeroizing::new(env.random_bytes::<{ Self::ENTROPY_BYTES }>());
        let mut text = String::with_capacity(prefix.len() + 43);
        text.push_str(prefix);
        text.push_str(&BASE64URL_NOPAD.encode(&raw[..]));
        let digest = SecretDigest::of(&text);
        (Self(Zeroizing::new(text)), digest)
    }

    /// The secret itself, to put in a cookie or a JSON reply and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerSecret(<redacted>)")
    }
}

/// Checks the shape of a presented secret before hashing it, so that garbage is refused
/// cheaply and never reaches a lookup.
pub fn plausible(presented: &str, prefix: &str) -> bool {
    presented.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;
    use rand::SeedableRng;

    #[test]
    fn secrets_are_distinct_prefixed_and_redacted() {
        let policy = Policy::default();
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(7);
        let mut env = Env::new(crate::Timestamp(0), &mut rng, &policy);
        let (a, da) = BearerSecret::generate("ts_", &mut env);
        let (b, db) = BearerSecret::generate("ts_", &mut env);
        assert_ne!(a, b);
        assert_ne!(da, db);
        assert!(plausible(a.expose(), "ts_"));
        assert_eq!(SecretDigest::of(a.expose()), da);
        assert!(!format!("{a:?}").contains(&a.expose()[3..]));
    }

    #[test]
    fn implausible_secrets_are_refused() {
        assert!(!plausible("", "ts_"));
        assert!(!plausible("ts_short", "ts_"));
        assert!(!plausible(&format!("xx_{}", "a".repeat(43)), "ts_"));
        assert!(!plausible(&format!("ts_{}", "%".repeat(43)), "ts_"));
        assert!(plausible(&format!("ts_{}", "a".repeat(43)), "ts_"));
    }
}
