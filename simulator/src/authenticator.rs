//! A deterministic software authenticator: the other end of a WebAuthn ceremony, for the
//! simulator's attack scenarios, the integration tests and the load tool.
//!
//! It answers the options a relying party sends (`CreationChallengeResponse` for
//! registration, `RequestChallengeResponse` for authentication, as webauthn-rs produces them)
//! with the credential a browser would return (`RegisterPublicKeyCredential`,
//! `PublicKeyCredential`), following WebAuthn Level 2:
//!
//! ```text
//!  registration (§6.3.2 authenticatorMakeCredential, §6.5.4 attestation "none")
//!    options ──▶ new ES256 key + credential id (from the caller's RNG)
//!            ──▶ clientDataJSON {type: "webauthn.create", challenge, origin}
//!            ──▶ authData = SHA-256(rp id) ‖ flags(UP, UV, BE, AT) ‖ counter 0 ‖ aaguid
//!                           ‖ credential id length ‖ credential id ‖ COSE key
//!            ──▶ attestationObject = CBOR {fmt: "none", attStmt: {}, authData}
//!
//!  authentication (§6.3.3 authenticatorGetAssertion)
//!    options ──▶ credential: the first held one the allow list names, or, for an empty
//!                allow list, the newest discoverable one for the rp id
//!            ──▶ counter + 1
//!            ──▶ authData = SHA-256(rp id) ‖ flags(UP, UV, BE) ‖ counter
//!            ──▶ signature = ECDSA-P256-SHA256(authData ‖ SHA-256(clientDataJSON)), DER
//! ```
//!
//! Everything is deterministic: keys and credential ids come from the RNG the caller passes
//! (a seeded ChaCha stream in the simulator), and ECDSA signatures use RFC 6979 nonces, so
//! one seed gives the same bytes on every run. Encoding goes through `serde_json` and
//! `serde_cbor_2` (the CBOR crate webauthn-rs parses with); nothing is written by hand.
//!
//! Only ES256 (COSE -7) is offered: webauthn-rs 0.6.2 does not verify EdDSA credentials.
//!
//! # Knobs for bad input
//! A [`Gesture`] says how one ceremony is performed: the origin written into the client
//! data (a phishing page's origin), the relying-party id hashed into the authenticator data,
//! whether the user was present and verified, and an optional [`Tamper`] applied after
//! signing. [`Authenticator::set_counter`] sets a counter back, and `clone()` copies every
//! key and counter: the clone and the original then diverge, as a cloned security key does.

use std::fmt;

use data_encoding::BASE64URL_NOPAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use rand_core::CryptoRng;
use serde_cbor_2::Value;
use sha2::{Digest, Sha256};
use webauthn_rs_proto::{
    AuthenticationExtensionsClientOutputs, AuthenticatorAssertionResponseRaw,
    AuthenticatorAttestationResponseRaw, AuthenticatorTransport, CreationChallengeResponse,
    PublicKeyCredential, RegisterPublicKeyCredential, RegistrationExtensionsClientOutputs,
    RequestChallengeResponse, ResidentKeyRequirement,
};

/// COSE algorithm identifier of ECDSA with P-256 and SHA-256 (RFC 9053 §2.1).
pub const COSE_ALG_ES256: i64 = -7;

/// Length of the credential ids this authenticator makes: 16 random bytes, as many
/// platform authenticators use (the specification allows up to 1023).
pub const CREDENTIAL_ID_LEN: usize = 16;

/// Attempts to turn 32 random bytes into a P-256 scalar before giving up. A draw fails only
/// when it is zero or not below the group order, with probability about 2^-32 per draw.
const KEY_DRAWS_MAX: usize = 8;

// Authenticator data flags (WebAuthn Level 2 §6.1).
const FLAG_USER_PRESENT: u8 = 0x01;
const FLAG_USER_VERIFIED: u8 = 0x04;
const FLAG_BACKUP_ELIGIBLE: u8 = 0x08;
const FLAG_BACKED_UP: u8 = 0x10;
const FLAG_ATTESTED_CREDENTIAL_DATA: u8 = 0x40;

/// Why the authenticator could not answer; a browser would show an error and send nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticatorError {
    /// The relying party accepts none of the algorithms this authenticator has.
    #[error("the relying party offers no ES256 (COSE -7) credential parameters")]
    UnsupportedAlgorithm,
    /// A credential the exclude list names is already on this authenticator (the
    /// specification's InvalidStateError): the account has registered it before.
    #[error("this authenticator already holds a credential the relying party excludes")]
    Excluded,
    /// No held credential matches the request: none the allow list names for this relying
    /// party, or no discoverable one when the list is empty.
    #[error("this authenticator holds no credential usable for relying party {rp_id}")]
    NoCredential { rp_id: String },
    /// The caller's RNG gave no valid P-256 scalar in eight draws.
    #[error("the random source gave no valid P-256 private key")]
    KeyGeneration,
    /// A signature tamper was asked for a registration, which attestation "none" does not sign.
    #[error("a registration with attestation \"none\" carries no signature to tamper with")]
    NothingSigned,
    /// The options are not the JSON of webauthn-rs's creation or request options.
    #[error("the options are not WebAuthn {what} options: {why}")]
    Options { what: &'static str, why: String },
    /// CBOR or JSON encoding failed (a bug: every value here is encodable).
    #[error("encoding the {what} failed: {why}")]
    Encoding { what: &'static str, why: String },
}

/// What is altered after the authenticator has signed, to check that the relying party
/// notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// One bit of the challenge in the client data JSON is flipped: the challenge no longer
    /// matches and, for an assertion, the signature no longer covers the client data.
    ClientDataJson,
    /// The authenticator data is changed: for an assertion the signature counter is raised
    /// by one (only the signature shows it); for a registration, which attestation "none"
    /// does not sign, one bit of the relying-party id hash is flipped.
    AuthenticatorData,
    /// One bit of the assertion signature is flipped (assertions only).
    Signature,
}

/// How one ceremony is performed: where the browser says it is, what the user did, and what
/// is tampered with afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gesture {
    /// The origin the browser writes into the client data (`https://example.com`).
    pub origin: String,
    /// The relying-party id hashed into the authenticator data; `None` takes the one the
    /// options carry, as a browser does.
    pub rp_id: Option<String>,
    /// The UP flag: the user touched the authenticator.
    pub user_present: bool,
    /// The UV flag: the user passed a PIN or biometric check.
    pub user_verified: bool,
    /// The alteration applied after signing, if any.
    pub tamper: Option<Tamper>,
}

impl Gesture {
    /// An honest ceremony from `origin`: the user present and verified, nothing tampered.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            rp_id: None,
            user_present: true,
            user_verified: true,
            tamper: None,
        }
    }

    /// The authenticator data hashes `rp_id` instead of the options' relying-party id.
    pub fn with_rp_id(mut self, rp_id: impl Into<String>) -> Self {
        self.rp_id = Some(rp_id.into());
        self
    }

    /// The user touched the authenticator but gave no PIN or biometric (UV clear).
    pub fn without_user_verification(mut self) -> Self {
        self.user_verified = false;
        self
    }

    /// Neither presence nor verification (UP and UV clear), as malware driving a key would.
    pub fn without_user_presence(mut self) -> Self {
        self.user_present = false;
        self.user_verified = false;
        self
    }

    /// `tamper` is applied after signing.
    pub fn tampered(mut self, tamper: Tamper) -> Self {
        self.tamper = Some(tamper);
        self
    }
}

/// What a test may know about a held credential (never its private key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    /// The credential id, as the relying party stores it.
    pub id: Vec<u8>,
    /// The relying-party id it was made for.
    pub rp_id: String,
    /// The user handle the relying party gave at registration.
    pub user_handle: Vec<u8>,
    /// Whether it is discoverable (a resident key, a passkey).
    pub discoverable: bool,
    /// The signature counter of its last use.
    pub counter: u32,
}

#[derive(Clone)]
struct Credential {
    info: CredentialInfo,
    key: SigningKey,
}

/// A software authenticator holding ES256 credentials. `Clone` copies its keys and counters.
#[derive(Clone)]
pub struct Authenticator {
    aaguid: [u8; 16],
    transport: AuthenticatorTransport,
    backup_eligible: bool,
    always_discoverable: bool,
    credentials: Vec<Credential>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private keys stay out of Debug output, as every secret in the project does.
        f.debug_struct("Authenticator")
            .field("transport", &self.transport)
            .field("backup_eligible", &self.backup_eligible)
            .field(
                "credentials",
                &self.credentials.iter().map(|c| &c.info).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Authenticator {
    /// A platform authenticator (transport "internal"), its credentials bound to the device
    /// (backup-eligible clear). Like the platform passkey providers, it makes every credential
    /// discoverable whatever the options prefer. Browsers send an all-zero AAGUID with
    /// attestation "none".
    pub fn platform() -> Self {
        Self {
            aaguid: [0; 16],
            transport: AuthenticatorTransport::Internal,
            backup_eligible: false,
            always_discoverable: true,
            credentials: Vec::new(),
        }
    }

    /// A roaming security key (transport "usb"): its credentials are discoverable only when
    /// the options prefer or require a resident key.
    pub fn security_key() -> Self {
        Self {
            transport: AuthenticatorTransport::Usb,
            always_discoverable: false,
            ..Self::platform()
        }
    }

    /// Credentials made from now on are backup-eligible and backed up (BE and BS set), as a
    /// synced passkey provider's are.
    pub fn with_backup(mut self) -> Self {
        self.backup_eligible = true;
        self
    }

    /// Every held credential, in the order they were made.
    pub fn credentials(&self) -> Vec<CredentialInfo> {
        self.credentials.iter().map(|c| c.info.clone()).collect()
    }

    /// The signature counter of credential `id`, if held.
    pub fn counter(&self, id: &[u8]) -> Option<u32> {
        self.find(id).map(|c| c.info.counter)
    }

    /// Sets the signature counter of credential `id` (a clone set back, or a counter wound
    /// forward); returns whether the credential is held.
    pub fn set_counter(&mut self, id: &[u8], counter: u32) -> bool {
        match self.credentials.iter_mut().find(|c| c.info.id == id) {
            Some(credential) => {
                credential.info.counter = counter;
                true
            }
            None => false,
        }
    }

    /// Answers registration `options` (authenticatorMakeCredential): makes a credential with
    /// a key and id drawn from `rng` and returns it with attestation "none". The credential is
    /// discoverable on a platform authenticator, and on a security key when the options prefer
    /// or require a resident key.
    pub fn register(
        &mut self,
        rng: &mut dyn CryptoRng,
        options: &CreationChallengeResponse,
        gesture: &Gesture,
    ) -> Result<RegisterPublicKeyCredential, AuthenticatorError> {
        let options = &options.public_key;
        if gesture.tamper == Some(Tamper::Signature) {
            return Err(AuthenticatorError::NothingSigned);
        }
        if !options
            .pub_key_cred_params
            .iter()
            .any(|p| p.type_ == "public-key" && p.alg == COSE_ALG_ES256)
        {
            return Err(AuthenticatorError::UnsupportedAlgorithm);
        }
        let options_rp_id = options.rp.id.as_str();
        let excluded = options.exclude_credentials.iter().flatten().any(|d| {
            self.credentials
                .iter()
                .any(|c| c.info.id == d.id && c.info.rp_id == options_rp_id)
        });
        if excluded {
            return Err(AuthenticatorError::Excluded);
        }
        let discoverable = self.always_discoverable
            || options.authenticator_selection.as_ref().is_some_and(|s| {
                s.require_resident_key
                    || matches!(
                        s.resident_key,
                        Some(ResidentKeyRequirement::Required | ResidentKeyRequirement::Preferred)
                    )
            });
        let key = generate_key(rng)?;
        let mut id = vec![0u8; CREDENTIAL_ID_LEN];
        rng.fill_bytes(&mut id);

        let rp_id = gesture.rp_id.as_deref().unwrap_or(options_rp_id);
        let mut client_data_json =
            client_data("webauthn.create", &options.challenge, &gesture.origin)?;
        let mut auth_data = self.auth_data(rp_id, gesture, FLAG_ATTESTED_CREDENTIAL_DATA, 0);
        auth_data.extend_from_slice(&self.aaguid);
        let id_len = u16::try_from(id.len()).map_err(|_| AuthenticatorError::Encoding {
            what: "credential id length",
            why: "longer than 65535 bytes".into(),
        })?;
        auth_data.extend_from_slice(&id_len.to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(&key)?);

        match gesture.tamper {
            Some(Tamper::ClientDataJson) => {
                client_data_json = client_data(
                    "webauthn.create",
                    &flip(&options.challenge),
                    &gesture.origin,
                )?
            }
            Some(Tamper::AuthenticatorData) => flip_bit(&mut auth_data, 0),
            Some(Tamper::Signature) | None => {}
        }
        let attestation_object = attestation_none(auth_data)?;

        self.credentials.push(Credential {
            info: CredentialInfo {
                id: id.clone(),
                rp_id: options_rp_id.to_owned(),
                user_handle: options.user.id.clone(),
                discoverable,
                counter: 0,
            },
            key,
        });
        Ok(RegisterPublicKeyCredential {
            id: BASE64URL_NOPAD.encode(&id),
            raw_id: id,
            response: AuthenticatorAttestationResponseRaw {
                attestation_object,
                client_data_json,
                transports: Some(vec![self.transport.clone()]),
            },
            type_: "public-key".into(),
            extensions: RegistrationExtensionsClientOutputs::default(),
        })
    }

    /// Answers authentication `options` (authenticatorGetAssertion): picks the first held
    /// credential the allow list names, or the newest discoverable one for the relying party
    /// when the list is empty; raises its counter by one and signs.
    pub fn assert(
        &mut self,
        options: &RequestChallengeResponse,
        gesture: &Gesture,
    ) -> Result<PublicKeyCredential, AuthenticatorError> {
        let options = &options.public_key;
        let index = self.select(&options.rp_id, &options.allow_credentials)?;
        let flags = self.backup_flags();
        let credential =
            self.credentials
                .get_mut(index)
                .ok_or_else(|| AuthenticatorError::NoCredential {
                    rp_id: options.rp_id.clone(),
                })?;
        credential.info.counter = credential.info.counter.wrapping_add(1);
        let counter = credential.info.counter;

        let rp_id = gesture.rp_id.as_deref().unwrap_or(&options.rp_id);
        let mut client_data_json =
            client_data("webauthn.get", &options.challenge, &gesture.origin)?;
        let mut authenticator_data = auth_data_prefix(rp_id, gesture, flags, counter);
        let mut signed = authenticator_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data_json));
        let signature: DerSignature = credential.key.sign(&signed);
        let mut signature = signature.as_bytes().to_vec();

        match gesture.tamper {
            Some(Tamper::ClientDataJson) => {
                client_data_json =
                    client_data("webauthn.get", &flip(&options.challenge), &gesture.origin)?
            }
            Some(Tamper::AuthenticatorData) => {
                authenticator_data =
                    auth_data_prefix(rp_id, gesture, flags, counter.wrapping_add(1))
            }
            Some(Tamper::Signature) => {
                // The last byte is inside the DER-encoded `s`, so the signature still parses
                // and only its verification fails.
                let last = signature.len().saturating_sub(1);
                flip_bit(&mut signature, last);
            }
            None => {}
        }

        let id = credential.info.id.clone();
        let user_handle = credential
            .info
            .discoverable
            .then(|| credential.info.user_handle.clone());
        Ok(PublicKeyCredential {
            id: BASE64URL_NOPAD.encode(&id),
            raw_id: id,
            response: AuthenticatorAssertionResponseRaw {
                authenticator_data,
                client_data_json,
                signature,
                user_handle,
            },
            extensions: AuthenticationExtensionsClientOutputs::default(),
            type_: "public-key".into(),
        })
    }

    /// [`Authenticator::register`] on options and a response as JSON
    /// (`{"publicKey": {...}}` in, a `PublicKeyCredential` out, binary fields in base64url),
    /// the form a server hands to the browser and receives back.
    pub fn register_json(
        &mut self,
        rng: &mut dyn CryptoRng,
        options: &serde_json::Value,
        gesture: &Gesture,
    ) -> Result<serde_json::Value, AuthenticatorError> {
        let options = from_json(options, "creation")?;
        to_json(&self.register(rng, &options, gesture)?)
    }

    /// [`Authenticator::assert`] on options and a response as JSON.
    pub fn assert_json(
        &mut self,
        options: &serde_json::Value,
        gesture: &Gesture,
    ) -> Result<serde_json::Value, AuthenticatorError> {
        let options = from_json(options, "request")?;
        to_json(&self.assert(&options, gesture)?)
    }

    fn find(&self, id: &[u8]) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.info.id == id)
    }

    fn select(
        &self,
        rp_id: &str,
        allow: &[webauthn_rs_proto::AllowCredentials],
    ) -> Result<usize, AuthenticatorError> {
        let for_rp = |c: &Credential| c.info.rp_id == rp_id;
        let found = if allow.is_empty() {
            self.credentials
                .iter()
                .rposition(|c| for_rp(c) && c.info.discoverable)
        } else {
            self.credentials
                .iter()
                .position(|c| for_rp(c) && allow.iter().any(|a| a.id == c.info.id))
        };
        found.ok_or_else(|| AuthenticatorError::NoCredential {
            rp_id: rp_id.to_owned(),
        })
    }

    fn backup_flags(&self) -> u8 {
        if self.backup_eligible {
            FLAG_BACKUP_ELIGIBLE | FLAG_BACKED_UP
        } else {
            0
        }
    }

    fn auth_data(&self, rp_id: &str, gesture: &Gesture, extra_flags: u8, counter: u32) -> Vec<u8> {
        auth_data_prefix(rp_id, gesture, self.backup_flags() | extra_flags, counter)
    }
}

/// rpIdHash ‖ flags ‖ signCount: the 37 bytes every authenticator data starts with.
fn auth_data_prefix(rp_id: &str, gesture: &Gesture, flags: u8, counter: u32) -> Vec<u8> {
    let mut flags = flags;
    if gesture.user_present {
        flags |= FLAG_USER_PRESENT;
    }
    if gesture.user_verified {
        flags |= FLAG_USER_VERIFIED;
    }
    let mut out = Vec::with_capacity(37);
    out.extend_from_slice(&Sha256::digest(rp_id.as_bytes()));
    out.push(flags);
    out.extend_from_slice(&counter.to_be_bytes());
    out
}

/// The client data JSON a browser builds (WebAuthn Level 2 §5.8.1).
fn client_data(type_: &str, challenge: &[u8], origin: &str) -> Result<Vec<u8>, AuthenticatorError> {
    serde_json::to_vec(&serde_json::json!({
        "type": type_,
        "challenge": BASE64URL_NOPAD.encode(challenge),
        "origin": origin,
        "crossOrigin": false,
    }))
    .map_err(|e| AuthenticatorError::Encoding {
        what: "client data JSON",
        why: e.to_string(),
    })
}

/// The credential public key as a COSE_Key (RFC 9053 §7.1.1): kty EC2, alg ES256, crv P-256.
fn cose_key(key: &SigningKey) -> Result<Vec<u8>, AuthenticatorError> {
    let point = key.verifying_key().to_sec1_point(false);
    let coordinate = |c: Option<&p256::FieldBytes>| {
        c.map(|c| Value::Bytes(c.to_vec()))
            .ok_or(AuthenticatorError::Encoding {
                what: "COSE key",
                why: "the public key is the identity point".into(),
            })
    };
    let map = [
        (Value::Integer(1), Value::Integer(2)),
        (Value::Integer(3), Value::Integer(COSE_ALG_ES256.into())),
        (Value::Integer(-1), Value::Integer(1)),
        (Value::Integer(-2), coordinate(point.x())?),
        (Value::Integer(-3), coordinate(point.y())?),
    ];
    cbor(&Value::Map(map.into_iter().collect()), "COSE key")
}

/// The attestation object with format "none" and an empty statement (WebAuthn Level 2 §8.7).
fn attestation_none(auth_data: Vec<u8>) -> Result<Vec<u8>, AuthenticatorError> {
    let map = [
        (Value::Text("fmt".into()), Value::Text("none".into())),
        (
            Value::Text("attStmt".into()),
            Value::Map(Default::default()),
        ),
        (Value::Text("authData".into()), Value::Bytes(auth_data)),
    ];
    cbor(&Value::Map(map.into_iter().collect()), "attestation object")
}

fn from_json<T: serde::de::DeserializeOwned>(
    options: &serde_json::Value,
    what: &'static str,
) -> Result<T, AuthenticatorError> {
    T::deserialize(options).map_err(|e| AuthenticatorError::Options {
        what,
        why: e.to_string(),
    })
}

fn to_json(response: &impl serde::Serialize) -> Result<serde_json::Value, AuthenticatorError> {
    serde_json::to_value(response).map_err(|e| AuthenticatorError::Encoding {
        what: "credential JSON",
        why: e.to_string(),
    })
}

fn cbor(value: &Value, what: &'static str) -> Result<Vec<u8>, AuthenticatorError> {
    serde_cbor_2::to_vec(value).map_err(|e| AuthenticatorError::Encoding {
        what,
        why: e.to_string(),
    })
}

fn generate_key(rng: &mut dyn CryptoRng) -> Result<SigningKey, AuthenticatorError> {
    for _ in 0..KEY_DRAWS_MAX {
        let mut scalar = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(scalar.as_mut());
        if let Ok(key) = SigningKey::from_slice(scalar.as_ref()) {
            return Ok(key);
        }
    }
    Err(AuthenticatorError::KeyGeneration)
}

fn flip(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    flip_bit(&mut out, 0);
    out
}

fn flip_bit(bytes: &mut [u8], index: usize) {
    if let Some(b) = bytes.get_mut(index) {
        *b ^= 0x01;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;
    use webauthn_rs::prelude::*;

    use super::*;

    const ORIGIN: &str = "https://auth.example.test";
    const RP_ID: &str = "auth.example.test";
    const PHISHING_ORIGIN: &str = "https://auth-example.test";

    fn webauthn() -> Webauthn {
        let origin = Url::parse(ORIGIN).unwrap();
        WebauthnBuilder::new(RP_ID, &origin)
            .unwrap()
            .build()
            .unwrap()
    }

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::from_seed([7; 32])
    }

    fn user() -> Uuid {
        Uuid::from_bytes([9; 16])
    }

    /// A passkey registered with an honest gesture.
    fn registered(rp: &Webauthn, auth: &mut Authenticator) -> Passkey {
        let (options, state) = rp
            .start_passkey_registration(user(), "ada", "Ada", None)
            .unwrap();
        let response = auth
            .register(&mut rng(), &options, &Gesture::new(ORIGIN))
            .unwrap();
        rp.finish_passkey_registration(&response, &state).unwrap()
    }

    fn register_with(gesture: &Gesture) -> Result<Passkey, WebauthnError> {
        let rp = webauthn();
        let (options, state) = rp
            .start_passkey_registration(user(), "ada", "Ada", None)
            .unwrap();
        let response = Authenticator::platform()
            .register(&mut rng(), &options, gesture)
            .unwrap();
        rp.finish_passkey_registration(&response, &state)
    }

    fn authenticate_with(gesture: &Gesture) -> Result<AuthenticationResult, WebauthnError> {
        let rp = webauthn();
        let mut auth = Authenticator::platform();
        let passkey = registered(&rp, &mut auth);
        let (options, state) = rp.start_passkey_authentication(&[passkey]).unwrap();
        let response = auth.assert(&options, gesture).unwrap();
        rp.finish_passkey_authentication(&response, &state)
    }

    #[test]
    fn a_passkey_registers_and_authenticates_with_counters_rising() {
        let rp = webauthn();
        let mut auth = Authenticator::platform();
        let mut passkey = registered(&rp, &mut auth);
        assert_eq!(auth.credentials().len(), 1);
        assert_eq!(passkey.cred_id().as_ref(), auth.credentials()[0].id);

        for expected in 1..=3 {
            let (options, state) = rp
                .start_passkey_authentication(std::slice::from_ref(&passkey))
                .unwrap();
            let response = auth.assert(&options, &Gesture::new(ORIGIN)).unwrap();
            let result = rp.finish_passkey_authentication(&response, &state).unwrap();
            assert!(result.user_verified());
            assert_eq!(result.counter(), expected);
            passkey.update_credential(&result);
        }
    }

    #[test]
    fn a_discoverable_credential_logs_in_without_a_user_name() {
        let rp = webauthn();
        let mut auth = Authenticator::platform();
        let passkey = registered(&rp, &mut auth);

        let (options, state) = rp.start_discoverable_authentication().unwrap();
        assert!(options.public_key.allow_credentials.is_empty());
        let response = auth.assert(&options, &Gesture::new(ORIGIN)).unwrap();
        let (user_id, cred_id) = rp.identify_discoverable_authentication(&response).unwrap();
        assert_eq!(user_id, user());
        assert_eq!(cred_id, passkey.cred_id().as_slice());
        let result = rp
            .finish_discoverable_authentication_v2(&response, state, &passkey)
            .unwrap();
        assert!(result.user_verified());
    }

    #[test]
    fn a_security_key_registers_and_authenticates() {
        let rp = webauthn();
        let mut auth = Authenticator::security_key();
        let (options, state) = rp
            .start_securitykey_registration(user(), "ada", "Ada", None, None, None)
            .unwrap();
        let response = auth
            .register(&mut rng(), &options, &Gesture::new(ORIGIN))
            .unwrap();
        assert_eq!(
            response.response.transports,
            Some(vec![AuthenticatorTransport::Usb])
        );
        let key = rp
            .finish_securitykey_registration(&response, &state)
            .unwrap();
        assert!(!auth.credentials()[0].discoverable);

        let (options, state) = rp.start_securitykey_authentication(&[key]).unwrap();
        let response = auth.assert(&options, &Gesture::new(ORIGIN)).unwrap();
        assert_eq!(response.response.user_handle, None);
        rp.finish_securitykey_authentication(&response, &state)
            .unwrap();
    }

    #[test]
    fn registration_fails_for_every_bad_gesture() {
        register_with(&Gesture::new(ORIGIN)).unwrap();
        let bad = [
            (Gesture::new(PHISHING_ORIGIN), "InvalidRPOrigin"),
            (
                Gesture::new(ORIGIN).with_rp_id("example.test"),
                "InvalidRPIDHash",
            ),
            (
                Gesture::new(ORIGIN).without_user_verification(),
                "UserNotVerified",
            ),
            (
                Gesture::new(ORIGIN).without_user_presence(),
                "UserNotPresent",
            ),
            (
                Gesture::new(ORIGIN).tampered(Tamper::ClientDataJson),
                "MismatchedChallenge",
            ),
            (
                Gesture::new(ORIGIN).tampered(Tamper::AuthenticatorData),
                "InvalidRPIDHash",
            ),
        ];
        for (gesture, expected) in bad {
            let err = register_with(&gesture).unwrap_err();
            assert_eq!(format!("{err:?}"), expected, "{gesture:?}");
        }
    }

    #[test]
    fn a_registration_has_no_signature_to_tamper_with() {
        let rp = webauthn();
        let (options, _) = rp
            .start_passkey_registration(user(), "ada", "Ada", None)
            .unwrap();
        let gesture = Gesture::new(ORIGIN).tampered(Tamper::Signature);
        assert_eq!(
            Authenticator::platform()
                .register(&mut rng(), &options, &gesture)
                .unwrap_err(),
            AuthenticatorError::NothingSigned
        );
    }

    #[test]
    fn authentication_fails_for_every_bad_gesture() {
        authenticate_with(&Gesture::new(ORIGIN)).unwrap();
        // A tampered authenticator data or signature fails on the signature alone: the rp id
        // hash, flags and challenge all still match.
        let bad = [
            (Gesture::new(PHISHING_ORIGIN), "InvalidRPOrigin"),
            (
                Gesture::new(ORIGIN).with_rp_id("example.test"),
                "InvalidRPIDHash",
            ),
            (
                Gesture::new(ORIGIN).without_user_verification(),
                "UserNotVerified",
            ),
            (
                Gesture::new(ORIGIN).without_user_presence(),
                "UserNotPresent",
            ),
            (
                Gesture::new(ORIGIN).tampered(Tamper::ClientDataJson),
                "MismatchedChallenge",
            ),
            (
                Gesture::new(ORIGIN).tampered(Tamper::AuthenticatorData),
                "AuthenticationFailure",
            ),
            (
                Gesture::new(ORIGIN).tampered(Tamper::Signature),
                "AuthenticationFailure",
            ),
        ];
        for (gesture, expected) in bad {
            let err = authenticate_with(&gesture).unwrap_err();
            assert_eq!(format!("{err:?}"), expected, "{gesture:?}");
        }
    }

    #[test]
    fn a_clone_set_back_is_caught_by_its_counter() {
        let rp = webauthn();
        let mut original = Authenticator::platform();
        let mut passkey = registered(&rp, &mut original);
        let mut clone = original.clone();
        let id = passkey.cred_id().to_vec();

        for _ in 0..2 {
            let (options, state) = rp
                .start_passkey_authentication(std::slice::from_ref(&passkey))
                .unwrap();
            let response = original.assert(&options, &Gesture::new(ORIGIN)).unwrap();
            let result = rp.finish_passkey_authentication(&response, &state).unwrap();
            passkey.update_credential(&result);
        }
        assert_eq!(original.counter(&id), Some(2));
        assert_eq!(clone.counter(&id), Some(0));

        let (options, state) = rp
            .start_passkey_authentication(std::slice::from_ref(&passkey))
            .unwrap();
        let response = clone.assert(&options, &Gesture::new(ORIGIN)).unwrap();
        assert!(matches!(
            rp.finish_passkey_authentication(&response, &state),
            Err(WebauthnError::CredentialPossibleCompromise)
        ));

        // Winding the clone past the original makes it pass once: counters only catch the
        // copy that falls behind, which is why the regression is recorded, not just refused.
        assert!(clone.set_counter(&id, 10));
        let response = clone.assert(&options, &Gesture::new(ORIGIN)).unwrap();
        assert_eq!(
            rp.finish_passkey_authentication(&response, &state)
                .unwrap()
                .counter(),
            11
        );
        assert!(!clone.set_counter(b"unknown", 1));
    }

    #[test]
    fn only_held_credentials_for_the_rp_id_are_used() {
        let rp = webauthn();
        let mut auth = Authenticator::platform();
        let passkey = registered(&rp, &mut auth);
        let (options, _) = rp.start_passkey_authentication(&[passkey]).unwrap();
        let mut stranger = Authenticator::platform();
        assert_eq!(
            stranger
                .assert(&options, &Gesture::new(ORIGIN))
                .unwrap_err(),
            AuthenticatorError::NoCredential {
                rp_id: RP_ID.into()
            }
        );

        let other = WebauthnBuilder::new("other.test", &Url::parse("https://other.test").unwrap())
            .unwrap()
            .build()
            .unwrap();
        let (options, _) = other.start_discoverable_authentication().unwrap();
        assert!(matches!(
            auth.assert(&options, &Gesture::new("https://other.test")),
            Err(AuthenticatorError::NoCredential { .. })
        ));
    }

    #[test]
    fn an_excluded_credential_is_not_registered_twice() {
        let rp = webauthn();
        let mut auth = Authenticator::platform();
        let passkey = registered(&rp, &mut auth);
        let (options, _) = rp
            .start_passkey_registration(user(), "ada", "Ada", Some(vec![passkey.cred_id().clone()]))
            .unwrap();
        assert_eq!(
            auth.register(&mut rng(), &options, &Gesture::new(ORIGIN))
                .unwrap_err(),
            AuthenticatorError::Excluded
        );
    }

    #[test]
    fn one_seed_gives_the_same_bytes() {
        let run = || {
            let rp = webauthn();
            let (options, _) = rp
                .start_passkey_registration(user(), "ada", "Ada", None)
                .unwrap();
            let mut auth = Authenticator::platform();
            let registration = auth
                .register(&mut rng(), &options, &Gesture::new(ORIGIN))
                .unwrap();
            let (options, _) = rp.start_discoverable_authentication().unwrap();
            let mut assertion = auth.assert(&options, &Gesture::new(ORIGIN)).unwrap();
            // The relying party's challenge is random; the authenticator's part is not.
            assertion.response.client_data_json.clear();
            (
                serde_json::to_string(&registration.raw_id).unwrap(),
                registration.response.attestation_object,
                assertion.response.authenticator_data,
                assertion.raw_id,
            )
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn the_json_forms_round_trip_through_the_wire_format() {
        let rp = webauthn();
        let mut auth = Authenticator::platform();
        let (options, state) = rp
            .start_passkey_registration(user(), "ada", "Ada", None)
            .unwrap();
        let options = serde_json::to_value(&options).unwrap();
        let response = auth
            .register_json(&mut rng(), &options, &Gesture::new(ORIGIN))
            .unwrap();
        assert!(response["rawId"].is_string(), "{response}");
        let response = serde_json::from_value(response).unwrap();
        let passkey = rp.finish_passkey_registration(&response, &state).unwrap();

        let (options, state) = rp.start_passkey_authentication(&[passkey]).unwrap();
        let options = serde_json::to_value(&options).unwrap();
        let response = auth.assert_json(&options, &Gesture::new(ORIGIN)).unwrap();
        let response = serde_json::from_value(response).unwrap();
        rp.finish_passkey_authentication(&response, &state).unwrap();

        assert!(matches!(
            auth.assert_json(&serde_json::json!({"publicKey": {}}), &Gesture::new(ORIGIN)),
            Err(AuthenticatorError::Options { .. })
        ));
    }

    #[test]
    fn debug_output_shows_no_key() {
        let rp = webauthn();
        let mut auth = Authenticator::platform();
        registered(&rp, &mut auth);
        let shown = format!("{auth:?}");
        assert!(shown.contains("counter"));
        assert!(!shown.contains("key:"), "{shown}");
    }
}
