//! ID tokens: the faults a provider or an attacker can produce each fail with their own
//! error, and the key cache picks up a rotation while made-up key ids cannot make it hammer
//! the provider. Keys are made at run time; the provider side is a real HTTP server
//! publishing the key set (tessera_tests::issuer).

use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tessera_http::upstream::{
    Expectations, IdTokenError, JwksCache, JwksError, JwksPolicy, LEEWAY_SECS_DEFAULT,
    UpstreamToken, UpstreamUrl, verify_id_token,
};
use tessera_tests::issuer::{LocalIssuer, SigningKey, id_token_claims};

use super::{at_secs, client};

const CLIENT_ID: &str = "tessera-client";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: u64 = 1_800_000_000;

struct Setup {
    issuer: LocalIssuer,
    key: SigningKey,
    cache: JwksCache,
}

async fn setup() -> Setup {
    let key = SigningKey::rsa("rsa-1", Algorithm::RS256);
    let issuer = LocalIssuer::start(&[&key]).await;
    let cache = JwksCache::new(
        UpstreamUrl::parse(&issuer.jwks_uri()).unwrap(),
        JwksPolicy::default(),
    );
    Setup { issuer, key, cache }
}

impl Setup {
    fn claims(&self) -> Value {
        id_token_claims(&self.issuer.issuer(), CLIENT_ID, NONCE, NOW)
    }

    async fn check_at(&self, token: &str, now: u64) -> Result<(), IdTokenError> {
        let issuer = self.issuer.issuer();
        let expect = Expectations {
            issuer: &issuer,
            client_id: CLIENT_ID,
            nonce: NONCE,
            leeway_secs: LEEWAY_SECS_DEFAULT,
        };
        let token = UpstreamToken::new(token.to_owned());
        verify_id_token(&client(), &self.cache, &token, &expect, at_secs(now))
            .await
            .map(|_| ())
    }

    async fn check(&self, token: &str) -> Result<(), IdTokenError> {
        self.check_at(token, NOW + 5).await
    }

    fn with(&self, change: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.claims();
        change(&mut claims);
        self.key.sign(&claims)
    }
}

fn segment(value: &Value) -> String {
    BASE64URL_NOPAD.encode(value.to_string().as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_token_gives_its_claims_for_every_allowed_algorithm() {
    for key in [
        SigningKey::rsa("rs", Algorithm::RS256),
        SigningKey::rsa("ps", Algorithm::PS256),
        SigningKey::ec("es"),
        SigningKey::ed("ed"),
    ] {
        let issuer = LocalIssuer::start(&[&key]).await;
        let cache = JwksCache::new(
            UpstreamUrl::parse(&issuer.jwks_uri()).unwrap(),
            JwksPolicy::default(),
        );
        let iss = issuer.issuer();
        let token = UpstreamToken::new(key.sign(&id_token_claims(&iss, CLIENT_ID, NONCE, NOW)));
        let expect = Expectations {
            issuer: &iss,
            client_id: CLIENT_ID,
            nonce: NONCE,
            leeway_secs: LEEWAY_SECS_DEFAULT,
        };
        let claims = verify_id_token(&client(), &cache, &token, &expect, at_secs(NOW + 1))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(claims.sub, "248289761001");
        assert_eq!(claims.amr, ["pwd", "mfa"]);
        let user = claims.into_external_user();
        assert_eq!(user.email.as_deref(), Some("jane@example.test"));
        assert!(user.email_verified);
        assert_eq!(user.username.as_deref(), Some("jane"));
        assert_eq!(user.acr.as_deref(), Some("urn:example:loa:2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_that_do_not_fit_this_sign_in_are_refused() {
    let s = setup().await;
    assert_eq!(s.check(&s.with(|_| ())).await, Ok(()));

    let wrong_aud = s.with(|c| c["aud"] = json!("someone-else"));
    assert_eq!(s.check(&wrong_aud).await, Err(IdTokenError::WrongAudience));
    let shared_aud = s.with(|c| c["aud"] = json!([CLIENT_ID, "someone-else"]));
    assert_eq!(
        s.check(&shared_aud).await,
        Err(IdTokenError::WrongAuthorizedParty),
        "several audiences need azp naming us"
    );
    let with_azp = s.with(|c| {
        c["aud"] = json!([CLIENT_ID, "someone-else"]);
        c["azp"] = json!(CLIENT_ID);
    });
    assert_eq!(s.check(&with_azp).await, Ok(()));

    let wrong_iss = s.with(|c| c["iss"] = json!("https://evil.example"));
    assert!(matches!(
        s.check(&wrong_iss).await,
        Err(IdTokenError::WrongIssuer(_))
    ));
    let iss_slash = s.with(|c| c["iss"] = json!(format!("{}/", s.issuer.issuer())));
    assert!(
        matches!(s.check(&iss_slash).await, Err(IdTokenError::WrongIssuer(_))),
        "the issuer is compared exactly"
    );

    let wrong_nonce = s.with(|c| c["nonce"] = json!("n-0S6_WzA2Mk"));
    assert_eq!(s.check(&wrong_nonce).await, Err(IdTokenError::WrongNonce));
    let no_nonce = s.with(|c| {
        c.as_object_mut().unwrap().remove("nonce");
    });
    assert_eq!(s.check(&no_nonce).await, Err(IdTokenError::WrongNonce));

    let expired = s.with(|c| c["exp"] = json!(NOW + 10));
    assert_eq!(
        s.check_at(&expired, NOW + 10 + LEEWAY_SECS_DEFAULT).await,
        Err(IdTokenError::Expired)
    );
    assert_eq!(
        s.check_at(&expired, NOW + 10 + LEEWAY_SECS_DEFAULT - 1)
            .await,
        Ok(()),
        "within the leeway"
    );

    let future = s.with(|c| {
        c["iat"] = json!(NOW + 3_600);
        c["exp"] = json!(NOW + 7_200);
    });
    assert_eq!(s.check(&future).await, Err(IdTokenError::IssuedInFuture));

    let no_sub = s.with(|c| {
        c.as_object_mut().unwrap().remove("sub");
    });
    assert_eq!(s.check(&no_sub).await, Err(IdTokenError::BadClaims));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signatures_and_algorithms_are_refused() {
    let s = setup().await;
    let claims = s.claims();

    // Unsigned: alg none, empty signature.
    let none = format!(
        "{}.{}.",
        segment(&json!({"alg": "none", "kid": "rsa-1"})),
        segment(&claims)
    );
    assert!(
        matches!(s.check(&none).await, Err(IdTokenError::AlgorithmNotAllowed(a)) if a.contains("none"))
    );

    // Algorithm confusion: HS256 with the provider's public key as the shared secret.
    let public = s.key.jwk.to_string();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert!(matches!(
        s.check(&hs).await,
        Err(IdTokenError::AlgorithmNotAllowed(_))
    ));

    // A key the provider never published.
    let stranger = SigningKey::rsa("stranger", Algorithm::RS256);
    assert!(matches!(
        s.check(&stranger.sign(&claims)).await,
        Err(IdTokenError::Key(JwksError::UnknownKey(_)))
    ));

    // Another key claiming the provider's kid.
    let impostor = SigningKey::rsa("rsa-1", Algorithm::RS256);
    assert_eq!(
        s.check(&impostor.sign(&claims)).await,
        Err(IdTokenError::BadSignature)
    );

    // A key of another type claiming the provider's RSA kid.
    let ec = SigningKey::ec("rsa-1");
    assert!(matches!(
        s.check(&ec.sign(&claims)).await,
        Err(IdTokenError::KeyAlgorithmMismatch { .. })
    ));

    // A good token whose payload was changed after signing.
    let good = s.key.sign(&claims);
    let parts: Vec<&str> = good.split('.').collect();
    let mut changed = claims.clone();
    changed["sub"] = json!("1");
    let tampered = format!("{}.{}.{}", parts[0], segment(&changed), parts[2]);
    assert_eq!(s.check(&tampered).await, Err(IdTokenError::BadSignature));

    for garbage in ["", "a.b", "not-a-jwt", "...."] {
        assert_eq!(
            s.check(garbage).await,
            Err(IdTokenError::Malformed),
            "{garbage:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_is_picked_up_and_bogus_kids_are_rate_limited() {
    let s = setup().await;
    let interval = JwksPolicy::default().refetch_interval_min_secs;
    assert_eq!(s.check(&s.with(|_| ())).await, Ok(()));
    assert_eq!(s.issuer.jwks_requests(), 1);
    for _ in 0..50 {
        assert_eq!(s.check(&s.with(|_| ())).await, Ok(()));
    }
    assert_eq!(s.issuer.jwks_requests(), 1, "a warm cache fetches nothing");

    // The provider rotates: the new key is published, then used.
    let next = SigningKey::rsa("rsa-2", Algorithm::RS256);
    s.issuer.publish(&[&s.key, &next]);
    // The first fetch was at NOW + 5.
    let later = NOW + 5 + interval;
    let mut claims = id_token_claims(&s.issuer.issuer(), CLIENT_ID, NONCE, later);
    assert_eq!(s.check_at(&next.sign(&claims), later).await, Ok(()));
    assert_eq!(s.issuer.jwks_requests(), 2, "one refetch for the new kid");

    // A flood of made-up kids: at most one fetch per interval, however many tokens.
    let flood_at = later + interval;
    for i in 0..500 {
        claims["iat"] = json!(flood_at);
        let bogus = SigningKey::ed(&format!("bogus-{i}"));
        let refused = s.check_at(&bogus.sign(&claims), flood_at).await;
        assert!(matches!(
            refused,
            Err(IdTokenError::Key(JwksError::UnknownKey(_)))
        ));
    }
    assert_eq!(s.issuer.jwks_requests(), 3, "500 bogus kids, one fetch");
    let stats = s.cache.stats();
    assert_eq!(stats.fetches, 3);
    assert_eq!(stats.refetches_refused, 499);
    assert!(stats.hits >= 50);

    // Known keys keep working during the flood, from the cache.
    assert_eq!(s.check_at(&next.sign(&claims), flood_at).await, Ok(()));
    assert_eq!(s.issuer.jwks_requests(), 3);

    // The old key is withdrawn; once the set's max-age (600 s here) has passed it is
    // fetched again and the old key no longer verifies.
    s.issuer.publish(&[&next]);
    let stale_at = flood_at + 601;
    claims["iat"] = json!(stale_at);
    let old = s.key.sign(&claims);
    assert!(matches!(
        s.check_at(&old, stale_at).await,
        Err(IdTokenError::Key(JwksError::UnknownKey(_)))
    ));
    assert_eq!(s.issuer.jwks_requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_max_age_is_honoured_within_bounds() {
    let s = setup().await;
    s.issuer.set_cache_control(Some("max-age=5"));
    let token = s.with(|_| ());
    assert_eq!(s.check_at(&token, NOW).await, Ok(()));
    // Five seconds is below the minimum lifetime (60 s): no refetch at 30 s...
    assert_eq!(s.check_at(&token, NOW + 30).await, Ok(()));
    assert_eq!(s.issuer.jwks_requests(), 1);
    // ...but one after the minimum.
    assert_eq!(s.check_at(&token, NOW + 61).await, Ok(()));
    assert_eq!(s.issuer.jwks_requests(), 2);
}
