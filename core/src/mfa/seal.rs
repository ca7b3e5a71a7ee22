//! The server-held MFA keys, and TOTP secrets sealed under them.
//!
//! One 32-byte master key, kept outside the log (`storage::keys`, a 0600 file), yields two
//! subkeys by HMAC-SHA256 with fixed labels: the XChaCha20-Poly1305 key that seals TOTP
//! secrets, and the pepper that backup codes are hashed under. A key id (8 bytes of a
//! labelled SHA-256 of the master) goes into every sealed secret, so that a later key
//! rotation can tell which key opens which secret, and into the associated data with the
//! account id: a sealed secret moved to another account, or to another key, does not open.
//!
//! The core never reads the key file: whoever builds a command that needs the keys (the HTTP
//! adapter, the CLI) loads them once and passes an [`MfaKeys`] inside the command. The keys
//! never enter an event or a view, and `Debug` shows only the key id.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{AccountId, Env};

/// Bytes in the master key file.
pub const MASTER_KEY_BYTES: usize = 32;
const SEAL_LABEL: &[u8] = b"tessera mfa seal v1";
const PEPPER_LABEL: &[u8] = b"tessera mfa backup-code pepper v1";
const KEY_ID_LABEL: &[u8] = b"tessera mfa key id v1";
const AAD_LABEL: &[u8] = b"tessera totp secret v1";
const CLIENT_SECRET_LABEL: &[u8] = b"tessera oauth client-secret pepper v1";
const SIGN_IN_LABEL: &[u8] = b"tessera external sign-in cookie v1";

#[derive(Zeroize, ZeroizeOnDrop)]
struct KeyMaterial {
    seal: [u8; 32],
    pepper: [u8; 32],
    client_pepper: [u8; 32],
    /// Seals the cookie that binds an external sign-in to its browser.
    sign_in: [u8; 32],
}

/// The MFA keys, derived from the master key. Cheap to clone (shared); `Debug` shows only
/// the key id. Two `MfaKeys` are equal when their key ids are.
#[derive(Clone)]
pub struct MfaKeys {
    key_id: [u8; 8],
    material: Arc<KeyMaterial>,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key) else {
        return [0; 32];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl MfaKeys {
    /// Derives the keys from the 32-byte master key in the key store.
    pub fn from_master(master: &[u8; MASTER_KEY_BYTES]) -> Self {
        let mut id = Sha256::new();
        id.update(KEY_ID_LABEL);
        id.update(master);
        let digest = id.finalize();
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        Self {
            key_id,
            material: Arc::new(KeyMaterial {
                seal: hmac_sha256(master, &[SEAL_LABEL]),
                pepper: hmac_sha256(master, &[PEPPER_LABEL]),
                client_pepper: hmac_sha256(master, &[CLIENT_SECRET_LABEL]),
                sign_in: hmac_sha256(master, &[SIGN_IN_LABEL]),
            }),
        }
    }

    /// The key id recorded with every sealed secret.
    pub fn key_id(&self) -> [u8; 8] {
        self.key_id
    }

    fn aad(&self, account: &AccountId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_LABEL.len() + 24);
        aad.extend_from_slice(AAD_LABEL);
        aad.extend_from_slice(account.as_bytes());
        aad.extend_from_slice(&self.key_id);
        aad
    }

    /// Seals `secret` for `account` with a fresh 192-bit nonce from the environment.
    pub fn seal(&self, account: &AccountId, secret: &[u8], env: &mut Env<'_>) -> SealedSecret {
        let nonce: [u8; 24] = env.random_bytes();
        let cipher = XChaCha20Poly1305::new(&self.material.seal.into());
        let aad = self.aad(account);
        // Encryption fails only for messages beyond 256 GiB; a TOTP secret is 20 bytes.
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        SealedSecret {
            key_id: self.key_id,
            nonce,
            ciphertext,
        }
    }

    /// Opens a secret sealed for `account` under these keys. `None` if it was sealed under
    /// another key, for another account, or was tampered with.
    pub fn open(&self, account: &AccountId, sealed: &SealedSecret) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.key_id != self.key_id {
            return None;
        }
        let cipher = XChaCha20Poly1305::new(&self.material.seal.into());
        let aad = self.aad(account);
        cipher
            .decrypt(
                &XNonce::from(sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// Seals `plain` (an external sign-in's cookie) with `nonce`: the nonce, then the
    /// XChaCha20-Poly1305 ciphertext. Under a key of its own, so a sealed TOTP secret can
    /// never be passed off as a cookie or the reverse.
    pub fn seal_sign_in(&self, plain: &[u8], nonce: [u8; 24]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.material.sign_in.into());
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: SIGN_IN_LABEL,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(24 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`MfaKeys::seal_sign_in`] sealed; `None` if it was forged, altered, or
    /// sealed under other keys.
    pub fn open_sign_in(&self, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (nonce, ciphertext) = sealed.split_at_checked(24)?;
        let nonce: [u8; 24] = nonce.try_into().ok()?;
        let cipher = XChaCha20Poly1305::new(&self.material.sign_in.into());
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: SIGN_IN_LABEL,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// The keyed hash a backup code is stored as: HMAC-SHA256 under the pepper, over the
    /// account id and the normalised code, so that a code never matches another account.
    pub fn backup_code_digest(&self, account: &AccountId, normalised: &str) -> BackupCodeDigest {
        BackupCodeDigest(hmac_sha256(
            &self.material.pepper,
            &[account.as_bytes(), normalised.as_bytes()],
        ))
    }
}

impl MfaKeys {
    /// The keyed hash an OAuth client secret is stored as: HMAC-SHA256 under a pepper of
    /// its own, over the client id and the secret. A client secret carries 256 bits of
    /// entropy, so a keyed fast hash is enough (argon2 would only slow the token endpoint);
    /// the key keeps a stolen log from confirming a guessed secret.
    pub fn client_secret_digest(
        &self,
        client_id: &str,
        secret: &str,
    ) -> crate::oauth::ClientSecretDigest {
        let len = u64::try_from(client_id.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes();
        crate::oauth::ClientSecretDigest(hmac_sha256(
            &self.material.client_pepper,
            &[&len, client_id.as_bytes(), secret.as_bytes()],
        ))
    }
}

impl PartialEq for MfaKeys {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
    }
}

impl Eq for MfaKeys {}

impl std::fmt::Debug for MfaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MfaKeys(id {}, <redacted>)",
            data_encoding::HEXLOWER.encode(&self.key_id)
        )
    }
}

/// A TOTP secret sealed with XChaCha20-Poly1305: what events and views hold.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// The id of the MFA keys it was sealed under ([`MfaKeys::key_id`]); also part of the
    /// associated data.
    pub key_id: [u8; 8],
    /// The random 192-bit XChaCha20 nonce.
    pub nonce: [u8; 24],
    /// The sealed secret and its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedSecret(key {}, {} bytes)",
            data_encoding::HEXLOWER.encode(&self.key_id),
            self.ciphertext.len()
        )
    }
}

/// The keyed hash of one backup code (see [`MfaKeys::backup_code_digest`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackupCodeDigest(pub [u8; 32]);

impl std::fmt::Debug for BackupCodeDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = self.0.get(..6).unwrap_or_default();
        write!(
            f,
            "BackupCodeDigest({}…)",
            data_encoding::HEXLOWER.encode(short)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;
    use rand::SeedableRng;

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_key() {
        let policy = Policy::default();
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(1);
        let mut env = Env::new(crate::Timestamp(0), &mut rng, &policy);
        let keys = MfaKeys::from_master(&[7; 32]);
        let alice = AccountId::from_bytes([1; 16]);
        let bob = AccountId::from_bytes([2; 16]);
        let sealed = keys.seal(&alice, b"twenty byte secret!!", &mut env);
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"twenty"));
        assert_eq!(
            keys.open(&alice, &sealed).as_deref().map(Vec::as_slice),
            Some(&b"twenty byte secret!!"[..])
        );
        assert!(keys.open(&bob, &sealed).is_none(), "another account");
        let other = MfaKeys::from_master(&[8; 32]);
        assert!(other.open(&alice, &sealed).is_none(), "another key");
        let mut forged = sealed.clone();
        forged.key_id = other.key_id();
        assert!(other.open(&alice, &forged).is_none(), "key id is bound");
        let mut tampered = sealed.clone();
        if let Some(b) = tampered.ciphertext.first_mut() {
            *b ^= 1;
        }
        assert!(keys.open(&alice, &tampered).is_none(), "tampered");
        let again = keys.seal(&alice, b"twenty byte secret!!", &mut env);
        assert_ne!(again.nonce, sealed.nonce, "fresh nonce each time");
        assert!(!format!("{keys:?}").contains("seal"));
    }

    #[test]
    fn backup_code_digests_are_keyed_and_per_account() {
        let keys = MfaKeys::from_master(&[7; 32]);
        let alice = AccountId::from_bytes([1; 16]);
        let bob = AccountId::from_bytes([2; 16]);
        let d = keys.backup_code_digest(&alice, "abcd");
        assert_eq!(d, keys.backup_code_digest(&alice, "abcd"));
        assert_ne!(d, keys.backup_code_digest(&bob, "abcd"));
        assert_ne!(
            d,
            MfaKeys::from_master(&[8; 32]).backup_code_digest(&alice, "abcd")
        );
    }
}
