//! The signing-key set: Ed25519 keys that sign access tokens, and the JWKS that publishes
//! them (RFC 7517, RFC 8037 for `OKP`/`Ed25519`, RFC 7638 thumbprints as `kid`).
//!
//! ```text
//!   AddSigningKey ──▶ SigningKeyAdded ──▶ Current (signs, published)
//!                                            │ a newer key is added
//!                                            ▼
//!                     SigningKeyRetired ──▶ Retired (published, signs nothing)
//!                                            │ now ≥ unpublish_at
//!                                            ▼
//!                                          Gone (dropped lazily from the views)
//! ```
//! A new key signs at once. The old one stays published until every token it can have
//! signed has expired: `unpublish_at` = retirement + [`ACCESS_TOKEN_OUTLIVES_MS`], using the
//! *largest* TTL a policy may set, so a policy change cannot strand a valid token. The
//! retirement is an event (the writer records it with the addition); the removal is lazy,
//! from time: [`KeySet::published`] ignores a key past `unpublish_at`, and the views drop
//! it when an event recorded after that time is applied, as they drop sessions.
//!
//! The log holds only public keys. The private key is a 32-byte seed the caller generates
//! (OS randomness) and keeps in the key store (`tessera_storage::keys`); a [`Signer`] is
//! built from it once and used from any thread. The `kid` is the key's RFC 7638
//! thumbprint, so it names the key unambiguously and is safe as a file name.

use std::collections::BTreeMap;

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::decide::Decision;
use crate::event::Event;
use crate::token::{ACCESS_TOKEN_OUTLIVES_MS, ACCESS_TOKEN_TYPE};
use crate::{Env, Rejection, Timestamp, Views};

/// Length of a kid: a base64url SHA-256.
pub const KID_CHARS: usize = 43;

/// The RFC 7638 JWK thumbprint of an Ed25519 public key: the kid we give it.
pub fn kid_for(public_key: &[u8; 32]) -> String {
    // Members in lexicographic order, no whitespace (RFC 7638 §3.2).
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        BASE64URL_NOPAD.encode(public_key)
    );
    BASE64URL_NOPAD.encode(&Sha256::digest(canonical.as_bytes()))
}

/// Whether `kid` has the shape of one of ours: safe to use as a file name or a lookup key.
pub fn kid_plausible(kid: &str) -> bool {
    kid.len() == KID_CHARS
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A key in the set, as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// The key id: the RFC 7638 thumbprint of `public_key`.
    pub kid: String,
    /// The Ed25519 public key, 32 bytes.
    pub public_key: [u8; 32],
    /// When the key was added to the set (the recorded time of its `SigningKeyAdded`).
    pub created_at: Timestamp,
    /// `None` while the key is the current signer; set when a newer key replaced it.
    pub unpublish_at: Option<Timestamp>,
}

impl PublishedKey {
    /// Whether the key verifies tokens at `now`: it is current, or retired and not yet
    /// past `unpublish_at`.
    pub fn is_published(&self, now: Timestamp) -> bool {
        self.unpublish_at.is_none_or(|t| now < t)
    }
}

/// Every published signing key, by kid. At most one is current (has no `unpublish_at`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    pub(crate) keys: BTreeMap<String, PublishedKey>,
}

impl KeySet {
    /// The key `kid` names, if it is published at `now`.
    pub fn published(&self, kid: &str, now: Timestamp) -> Option<&PublishedKey> {
        self.keys.get(kid).filter(|k| k.is_published(now))
    }

    /// The key new tokens are signed with: the caller loads its [`Signer`] by this kid.
    pub fn current(&self) -> Option<&PublishedKey> {
        self.keys.values().find(|k| k.unpublish_at.is_none())
    }

    /// Every key the views still hold, in kid order, including any past `unpublish_at`
    /// that is not yet dropped: filter with [`PublishedKey::is_published`].
    pub fn iter(&self) -> impl Iterator<Item = &PublishedKey> {
        self.keys.values()
    }

    /// How many keys the views still hold (published or not yet dropped).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key at all (before the first start added one).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The JWKS to serve at `/.well-known/jwks.json`: every key published at `now`, the
    /// current one first.
    pub fn jwks(&self, now: Timestamp) -> Jwks {
        let mut keys: Vec<&PublishedKey> =
            self.keys.values().filter(|k| k.is_published(now)).collect();
        keys.sort_by_key(|k| {
            (
                k.unpublish_at.is_some(),
                std::cmp::Reverse(k.created_at),
                k.kid.clone(),
            )
        });
        Jwks {
            keys: keys
                .into_iter()
                .map(|k| Jwk::ed25519(&k.kid, &k.public_key))
                .collect(),
        }
    }
}

/// A JSON Web Key Set (RFC 7517 §5). Serialize it with serde_json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// `keys`: the published keys, the current one first.
    pub keys: Vec<Jwk>,
}

/// One public Ed25519 key as a JWK (RFC 8037 §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `kty` (RFC 7517 §4.1): the key type, always `OKP` (RFC 8037 §2).
    pub kty: String,
    /// `crv` (RFC 8037 §2): the curve, always `Ed25519`.
    pub crv: String,
    /// `kid` (RFC 7517 §4.5): the RFC 7638 thumbprint of the key, matched against a
    /// token header's `kid`.
    pub kid: String,
    /// `use` (RFC 7517 §4.2): always `sig`, the key signs.
    #[serde(rename = "use")]
    pub use_: String,
    /// `alg` (RFC 7517 §4.4): always `EdDSA`, the only algorithm the key is used with.
    pub alg: String,
    /// The raw public key, base64url without padding.
    pub x: String,
}

impl Jwk {
    /// The JWK of the Ed25519 public key `public_key`, under `kid`.
    pub fn ed25519(kid: &str, public_key: &[u8; 32]) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: kid.to_owned(),
            use_: "sig".into(),
            alg: crate::token::ALGORITHM.into(),
            x: BASE64URL_NOPAD.encode(public_key),
        }
    }
}

/// Why a [`Signer`] could not be built or could not sign. Never carries key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The seed could not be encoded as the PKCS#8 document jsonwebtoken parses.
    #[error("the Ed25519 seed could not be encoded as PKCS#8")]
    Encoding,
    /// jsonwebtoken refused to sign; the message is its error's, without key material.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Holds one private signing key, parsed once. `Debug` shows only the kid.
///
/// Built from the 32-byte seed in the key store; cheap to share (`Arc<Signer>`) and to use
/// from many threads: signing is not serialized behind the writer.
#[derive(Clone)]
pub struct Signer {
    kid: String,
    public_key: [u8; 32],
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for the Ed25519 key with this seed (RFC 8032 private key). Installs the
    /// crypto provider if nobody has.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, SignerError> {
        crate::token::install_crypto_provider();
        let signing = ed25519_dalek::SigningKey::from_bytes(seed);
        let public_key = signing.verifying_key().to_bytes();
        // jsonwebtoken's EdDSA signer parses PKCS#8 DER, not a raw seed; the document
        // zeroizes itself on drop, and EncodingKey zeroizes its copy.
        let der = signing.to_pkcs8_der().map_err(|_| SignerError::Encoding)?;
        let key = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
        Ok(Self {
            kid: kid_for(&public_key),
            public_key,
            key,
        })
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The Ed25519 public key that verifies this signer's tokens.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The command that adds this key to the set (and retires the current one).
    pub fn add_command(&self) -> AddSigningKey {
        AddSigningKey {
            kid: self.kid.clone(),
            public_key: self.public_key,
        }
    }

    /// Signs `claims` as a compact JWT with `alg: EdDSA`, `typ: at+jwt` and this key's kid.
    pub fn sign<C: serde::Serialize>(&self, claims: &C) -> Result<String, SignerError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| SignerError::Signing(e.to_string()))
    }
}

/// Adds a key to the set. The current key, if any, is retired in the same decision. Adding
/// a key that is already current is a no-op, so an operator's retry is harmless.
fn add(keys: &KeySet, kid: String, public_key: [u8; 32], env: &Env<'_>) -> Decision<String> {
    if kid != kid_for(&public_key) {
        return Decision::refuse(vec![], Rejection::SigningKeyInvalid);
    }
    if let Some(existing) = keys.keys.get(&kid) {
        return if existing.unpublish_at.is_none() {
            Decision::ok(vec![], kid)
        } else {
            // A retired key never signs again: it may already be unpublished by a verifier.
            Decision::refuse(vec![], Rejection::SigningKeyInvalid)
        };
    }
    let mut events = Vec::with_capacity(2);
    if let Some(current) = keys.current() {
        let unpublish_at = env.now.plus_ms(ACCESS_TOKEN_OUTLIVES_MS);
        events.push(
            Event::SigningKeyRetired {
                kid: current.kid.clone(),
                unpublish_at,
            }
            .into(),
        );
    }
    events.push(
        Event::SigningKeyAdded {
            kid: kid.clone(),
            public_key,
        }
        .into(),
    );
    Decision::ok(events, kid)
}

/// Adds a signing key, which signs from now on; the current one is retired. Build it with
/// [`Signer::add_command`]. The reply is the key's kid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddSigningKey {
    /// The key id: the RFC 7638 thumbprint of `public_key`.
    pub kid: String,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
}

impl crate::Decide for AddSigningKey {
    type Reply = String;

    fn kind(&self) -> &'static str {
        "add_signing_key"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<String> {
        add(&views.signing_keys, self.kid, self.public_key, env)
    }
}
