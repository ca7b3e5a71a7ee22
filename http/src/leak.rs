//! Secret-scanning alert signatures: ECDSA P-256 with SHA-256 over the raw request body,
//! the signature base64 (ASN.1 DER) in `GITHUB-PUBLIC-KEY-SIGNATURE`, the key chosen by
//! `GITHUB-PUBLIC-KEY-IDENTIFIER` among the ones the operator configured. Verified with
//! aws-lc-rs, the crypto library already in the tree.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

/// The DER bytes of a PEM public key (`-----BEGIN PUBLIC KEY-----`), if it is one.
pub fn public_key_der(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = data_encoding::BASE64.decode(b64.as_bytes()).ok()?;
    // A P-256 SubjectPublicKeyInfo is 91 bytes; refuse anything far from it.
    (60..=200).contains(&der.len()).then_some(der)
}

/// Whether `signature_b64` is a valid signature of `body` under the PEM key `pem`.
pub fn verify(pem: &str, signature_b64: &str, body: &[u8]) -> bool {
    let (Some(der), Ok(signature)) = (
        public_key_der(pem),
        data_encoding::BASE64.decode(signature_b64.as_bytes()),
    ) else {
        return false;
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
        .verify(body, &signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn pem_of(pair: &EcdsaKeyPair) -> String {
        let der = pair.public_key().as_der().expect("SPKI");
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            data_encoding::BASE64.encode(der.as_ref())
        )
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_does_not() {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        let other = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        let body = br#"[{"token":"x","type":"t","url":"u","source":"content"}]"#;
        let sig = pair.sign(&SystemRandom::new(), body).expect("signs");
        let sig = data_encoding::BASE64.encode(sig.as_ref());
        assert!(verify(&pem_of(&pair), &sig, body));
        assert!(!verify(&pem_of(&other), &sig, body));
        assert!(!verify(&pem_of(&pair), &sig, b"[]"));
        assert!(!verify(&pem_of(&pair), "not base64!", body));
        assert!(!verify("not a key", &sig, body));
    }
}
