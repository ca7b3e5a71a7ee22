use data_encoding::BASE64URL_NOPAD;

use super::*;
use crate::signing_key::Signer;
use crate::testkit::Given;

struct Fixture {
    world: Given,
    signer: Signer,
    claims: AccessClaims,
    token: String,
}

fn fixture() -> Fixture {
    install_crypto_provider();
    let mut world = Given::seeded(1);
    let signer = world.add_key(7);
    world.registered("alice");
    let issued = world.login_tokens("alice");
    let token = signer.sign(&issued.access).expect("signs");
    Fixture {
        world,
        signer,
        claims: issued.access,
        token,
    }
}

impl Fixture {
    fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        verify_access_token(
            token,
            self.world.views.signing_keys(),
            self.world.now,
            &self.world.policy.token,
        )
    }

    fn verify_at(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenRejection> {
        verify_access_token(
            token,
            self.world.views.signing_keys(),
            now,
            &self.world.policy.token,
        )
    }

    fn parts(&self) -> Vec<String> {
        self.token.split('.').map(str::to_owned).collect()
    }

    /// A token with this header and these claims, signed (correctly) by the fixture's key.
    fn forge(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let h = BASE64URL_NOPAD.encode(header.to_string().as_bytes());
        let c = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
        let message = format!("{h}.{c}");
        let key = jsonwebtoken::EncodingKey::from_ed_der(
            ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(
                &ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
            )
            .expect("pkcs8")
            .as_bytes(),
        );
        let sig =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA)
                .expect("signs");
        format!("{message}.{sig}")
    }

    fn header(&self) -> serde_json::Value {
        serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.signer.kid()})
    }

    fn claims_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.claims).expect("claims serialize")
    }
}

#[test]
fn a_signed_token_verifies_and_round_trips_its_claims() {
    let f = fixture();
    assert_eq!(f.verify(&f.token), Ok(f.claims.clone()));
    assert_eq!(f.claims.expires_in_secs(), 15 * 60);
    assert!(f.claims.fam.is_some() && f.claims.sid.is_none());
    let header = jsonwebtoken::decode_header(&f.token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some(f.signer.kid()));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    // Our own forge helper makes tokens that verify, so the negative tests below fail for
    // the reason they name.
    assert_eq!(
        f.verify(&f.forge(&f.header(), &f.claims_json())),
        Ok(f.claims.clone())
    );
}

#[test]
fn alg_none_is_refused() {
    let f = fixture();
    let h = BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let c = f.parts()[1].clone();
    assert_eq!(
        f.verify(&format!("{h}.{c}.")),
        Err(TokenRejection::AlgorithmNotAllowed)
    );
    let h = BASE64URL_NOPAD.encode(br#"{"alg":"None","typ":"at+jwt","kid":"x"}"#);
    assert_eq!(
        f.verify(&format!("{h}.{c}.")),
        Err(TokenRejection::AlgorithmNotAllowed)
    );
}

#[test]
fn hs256_keyed_with_the_public_key_is_refused() {
    // Algorithm confusion (RFC 8725 §2.1): an attacker signs with HMAC using the published
    // public key as the secret, hoping the verifier takes the algorithm from the token.
    let f = fixture();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(f.signer.kid().into());
    let x = BASE64URL_NOPAD.encode(f.signer.public_key());
    for secret in [f.signer.public_key().to_vec(), x.into_bytes()] {
        let forged = jsonwebtoken::encode(
            &header,
            &f.claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .expect("hs256");
        assert_eq!(f.verify(&forged), Err(TokenRejection::AlgorithmNotAllowed));
    }
}

#[test]
fn unknown_missing_and_injected_kids_are_refused() {
    let f = fixture();
    for kid in [
        serde_json::json!("nope"),
        serde_json::json!("../../../etc/passwd"),
        serde_json::json!(""),
        serde_json::json!(7),
    ] {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
        let result = f.verify(&f.forge(&header, &f.claims_json()));
        assert!(
            matches!(
                result,
                Err(TokenRejection::UnknownKey | TokenRejection::Malformed)
            ),
            "{kid}: {result:?}"
        );
    }
    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt"});
    assert_eq!(
        f.verify(&f.forge(&header, &f.claims_json())),
        Err(TokenRejection::UnknownKey)
    );
    // An embedded key (jwk header) is never used to verify.
    let other = Signer::from_seed(&[9; 32]).expect("signer");
    let forged = other.sign(&f.claims).expect("signs");
    assert_eq!(f.verify(&forged), Err(TokenRejection::UnknownKey));
}

#[test]
fn a_key_of_the_set_signing_for_another_kid_is_refused() {
    let mut f = fixture();
    let newer = f.world.add_key(8);
    // Signed by the new key, labelled with the old (still published) kid.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(f.signer.kid().into());
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(
        &ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
    )
    .expect("der");
    let forged = jsonwebtoken::encode(
        &header,
        &f.claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .expect("signs");
    assert_eq!(f.verify(&forged), Err(TokenRejection::BadSignature));
    assert!(f.verify(&newer.sign(&f.claims).expect("signs")).is_ok());
}

#[test]
fn stripped_altered_and_truncated_signatures_are_refused() {
    let f = fixture();
    let p = f.parts();
    assert_eq!(
        f.verify(&format!("{}.{}.", p[0], p[1])),
        Err(TokenRejection::BadSignature)
    );
    assert_eq!(
        f.verify(&format!("{}.{}", p[0], p[1])),
        Err(TokenRejection::Malformed)
    );
    let mut sig = BASE64URL_NOPAD.decode(p[2].as_bytes()).expect("b64");
    sig[10] ^= 1;
    assert_eq!(
        f.verify(&format!(
            "{}.{}.{}",
            p[0],
            p[1],
            BASE64URL_NOPAD.encode(&sig)
        )),
        Err(TokenRejection::BadSignature)
    );
    assert_eq!(
        f.verify(&format!("{}.{}.{}", p[0], p[1], &p[2][..40])),
        Err(TokenRejection::BadSignature)
    );
    assert_eq!(
        f.verify(&format!("{}.{}.{}!", p[0], p[1], p[2])),
        Err(TokenRejection::BadSignature)
    );
    assert_eq!(
        f.verify(&format!("{}.{}.{}.x", p[0], p[1], p[2])),
        Err(TokenRejection::Malformed)
    );
    for cut in [0, 1, 10, f.token.len() / 2, f.token.len() - 1] {
        assert!(f.verify(&f.token[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn a_changed_payload_is_refused() {
    let f = fixture();
    let p = f.parts();
    let mut claims = f.claims_json();
    claims["sub"] = serde_json::json!(uuid::Uuid::nil().to_string());
    let c = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
    assert_eq!(
        f.verify(&format!("{}.{c}.{}", p[0], p[2])),
        Err(TokenRejection::BadSignature)
    );
    let mut header = f.header();
    header["typ"] = serde_json::json!("JWT");
    let h = BASE64URL_NOPAD.encode(header.to_string().as_bytes());
    assert_eq!(
        f.verify(&format!("{h}.{}.{}", p[1], p[2])),
        Err(TokenRejection::WrongType)
    );
}

#[test]
fn expiry_and_not_before_use_the_injected_clock_with_leeway() {
    let f = fixture();
    let leeway_ms = f.world.policy.token.leeway_secs * 1000;
    let exp = f.claims.expires_at();
    assert!(f.verify_at(&f.token, exp.plus_ms(leeway_ms - 1000)).is_ok());
    assert_eq!(
        f.verify_at(&f.token, exp.plus_ms(leeway_ms)),
        Err(TokenRejection::Expired)
    );
    let issued = Timestamp::from_millis(f.claims.iat * 1000);
    assert!(
        f.verify_at(
            &f.token,
            Timestamp::from_millis(issued.as_millis() - leeway_ms)
        )
        .is_ok()
    );
    assert_eq!(
        f.verify_at(
            &f.token,
            Timestamp::from_millis(issued.as_millis() - leeway_ms - 1000)
        ),
        Err(TokenRejection::NotYetValid)
    );
    let mut claims = f.claims_json();
    claims["nbf"] = serde_json::json!(f.claims.iat + 3600);
    assert_eq!(
        f.verify(&f.forge(&f.header(), &claims)),
        Err(TokenRejection::NotYetValid)
    );
}

#[test]
fn wrong_issuer_audience_type_and_binding_are_refused() {
    let f = fixture();
    let mut claims = f.claims_json();
    claims["iss"] = serde_json::json!("https://evil.example");
    assert_eq!(
        f.verify(&f.forge(&f.header(), &claims)),
        Err(TokenRejection::WrongIssuer)
    );
    let mut claims = f.claims_json();
    claims["aud"] = serde_json::json!("another-api");
    assert_eq!(
        f.verify(&f.forge(&f.header(), &claims)),
        Err(TokenRejection::WrongAudience)
    );
    let mut claims = f.claims_json();
    claims["aud"] = serde_json::json!(["tessera"]);
    assert_eq!(
        f.verify(&f.forge(&f.header(), &claims)),
        Err(TokenRejection::Malformed)
    );
    for typ in [
        serde_json::json!("JWT"),
        serde_json::json!("id_token+jwt"),
        serde_json::Value::Null,
    ] {
        let mut header = f.header();
        header["typ"] = typ;
        assert_eq!(
            f.verify(&f.forge(&header, &f.claims_json())),
            Err(TokenRejection::WrongType)
        );
    }
    let mut header = f.header();
    header["typ"] = serde_json::json!("application/AT+JWT");
    assert!(f.verify(&f.forge(&header, &f.claims_json())).is_ok());
    for crit in [
        serde_json::json!(["exp"]),
        serde_json::json!([]),
        serde_json::Value::Null,
    ] {
        let mut header = f.header();
        header["crit"] = crit;
        assert_eq!(
            f.verify(&f.forge(&header, &f.claims_json())),
            Err(TokenRejection::CriticalHeader)
        );
    }
    let mut claims = f.claims_json();
    claims.as_object_mut().expect("object").remove("fam");
    assert_eq!(
        f.verify(&f.forge(&f.header(), &claims)),
        Err(TokenRejection::Malformed)
    );
    let mut claims = f.claims_json();
    claims.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        f.verify(&f.forge(&f.header(), &claims)),
        Err(TokenRejection::Malformed)
    );
}

#[test]
fn refresh_and_access_tokens_are_not_interchangeable() {
    let mut f = fixture();
    f.world.registered("bob");
    let issued = f.world.login_tokens("bob");
    assert_eq!(
        f.verify(issued.refresh.expose()),
        Err(TokenRejection::RefreshTokenPresented)
    );
    assert_eq!(crate::refresh::presented_digest(&f.token), None);
    assert_eq!(
        f.world.refresh(&f.token),
        Err(crate::Rejection::RefreshTokenInvalid)
    );
}

#[test]
fn garbage_and_oversized_tokens_are_refused_without_panicking() {
    let f = fixture();
    assert_eq!(
        f.verify(&"a".repeat(ACCESS_TOKEN_BYTES_MAX + 1)),
        Err(TokenRejection::TooLong)
    );
    let padded = format!(
        "{}.{}.{}",
        f.parts()[0],
        "A".repeat(ACCESS_TOKEN_BYTES_MAX),
        f.parts()[2]
    );
    assert_eq!(f.verify(&padded), Err(TokenRejection::TooLong));
    for junk in [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "é.é.é",
        "eyJ.eyJ.",
        "\0.\0.\0",
        "e30.e30.e30",
    ] {
        assert!(f.verify(junk).is_err(), "{junk:?}");
    }
    let h = BASE64URL_NOPAD.encode(br#"{"alg":"EdDSA","typ":"at+jwt","kid":{"$ne":1}}"#);
    assert_eq!(
        f.verify(&format!("{h}.e30.AAAA")),
        Err(TokenRejection::Malformed)
    );
}

#[test]
fn retired_keys_verify_until_unpublished_then_not() {
    let mut f = fixture();
    let newer = f.world.add_key(8);
    assert_eq!(
        f.world
            .views
            .signing_keys()
            .current()
            .map(|k| k.kid.clone()),
        Some(newer.kid().to_owned())
    );
    assert!(f.verify(&f.token).is_ok(), "the old key stays published");
    let unpublish_at = f.world.now.plus_ms(ACCESS_TOKEN_OUTLIVES_MS);
    assert!(unpublish_at > f.claims.expires_at().plus_ms(LEEWAY_SECS_MAX * 1000));
    assert_eq!(
        f.verify_at(&f.token, unpublish_at),
        Err(TokenRejection::UnknownKey)
    );
    let jwks = f.world.views.signing_keys().jwks(f.world.now);
    assert_eq!(jwks.keys.len(), 2);
    assert_eq!(
        jwks.keys[0].kid,
        newer.kid(),
        "the current key is listed first"
    );
    assert_eq!(
        f.world.views.signing_keys().jwks(unpublish_at).keys.len(),
        1
    );
    // The next event after the deadline drops the retired key from the views.
    f.world.now = unpublish_at;
    f.world.registered("carol");
    assert_eq!(f.world.views.signing_keys().len(), 1);
}

#[test]
fn jwks_has_the_rfc_8037_shape_and_signer_debug_is_redacted() {
    let f = fixture();
    let jwks = serde_json::to_value(f.world.views.signing_keys().jwks(f.world.now)).expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["kid"], f.signer.kid());
    assert_eq!(key["x"], BASE64URL_NOPAD.encode(f.signer.public_key()));
    // The JWK round-trips through jsonwebtoken's own parser and verifies our token.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).expect("jwk parses");
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_aud = false;
    assert!(jsonwebtoken::decode::<serde_json::Value>(&f.token, &decoding, &validation).is_ok());
    let debug = format!("{:?}", f.signer);
    assert!(
        debug.contains(f.signer.kid()) && !debug.contains("content"),
        "{debug}"
    );
    // RFC 8037 appendix A.3: the thumbprint of the RFC's example key.
    let x = BASE64URL_NOPAD
        .decode(b"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .expect("b64");
    let x: [u8; 32] = x.try_into().expect("32 bytes");
    assert_eq!(
        crate::signing_key::kid_for(&x),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn install_crypto_provider_is_idempotent() {
    install_crypto_provider();
    install_crypto_provider();
    assert!(Signer::from_seed(&[1; 32]).is_ok());
}
