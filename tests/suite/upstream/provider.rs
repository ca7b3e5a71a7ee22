//! Against an independent OpenID Connect provider (panva's oidc-provider under node):
//! discovery, a real sign-in with PKCE, the code exchange, ID-token validation with the
//! provider's published keys, user info, and a key rotation at the provider.

use tessera_core::Timestamp;
use tessera_http::config::ClientSecret;
use tessera_http::upstream::{
    AuthorizationRequest, CodeExchange, ExchangeError, IdTokenError, JwksError, JwksPolicy,
    OAuthErrorCode, OidcProvider, TokenAuthMethod, UserInfoMapping, exchange_code, fetch_user_info,
};
use tessera_tests::oidc_provider::{self, CLIENT_ID, CLIENT_SECRET, Options};

use super::client;

const CALLBACK: &str = "http://127.0.0.1:9/v1/login/op/callback";

/// The provider signs with the real clock, so these tests tell the validator the real time.
#[allow(
    clippy::disallowed_methods,
    reason = "the external provider stamps its tokens with the wall clock"
)]
fn wall_clock() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Timestamp::from_millis(u64::try_from(since.as_millis()).unwrap())
}

struct SignIn {
    code: String,
    verifier: String,
    nonce: String,
}

/// Sends a sign-in through the provider's login form and returns what the callback got.
async fn sign_in(op: &oidc_provider::OidcProvider, provider: &OidcProvider, login: &str) -> SignIn {
    let state = format!("state-{login}-0123456789abcdef");
    let verifier = format!("verifier-{login}-0123456789abcdef0123456789abcdef");
    let nonce = format!("nonce-{login}-0123456789");
    let url = AuthorizationRequest {
        authorization_endpoint: &provider.metadata.authorization_endpoint,
        client_id: CLIENT_ID,
        redirect_uri: CALLBACK,
        scope: "openid email profile",
        state: &state,
        code_verifier: &verifier,
        nonce: Some(&nonce),
    }
    .url();
    let callback = op.sign_in(&url, CALLBACK, login).await;
    let query: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(callback.split_once('?').unwrap().1).unwrap();
    assert_eq!(query["state"], state, "the state comes back unchanged");
    assert_eq!(query["iss"], op.issuer, "RFC 9207 iss names the provider");
    SignIn {
        code: query["code"].clone(),
        verifier,
        nonce,
    }
}

fn exchange<'a>(
    provider: &'a OidcProvider,
    secret: &'a ClientSecret,
    auth_method: TokenAuthMethod,
    sign_in: &'a SignIn,
) -> CodeExchange<'a> {
    CodeExchange {
        token_endpoint: &provider.metadata.token_endpoint,
        client_id: CLIENT_ID,
        client_secret: secret,
        auth_method,
        code: &sign_in.code,
        redirect_uri: CALLBACK,
        code_verifier: &sign_in.verifier,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_code_exchange_with_pkce_and_id_token_against_a_real_provider() {
    let Some(mut op) = oidc_provider::OidcProvider::start(Options::new(CALLBACK)).await else {
        return;
    };
    let client = client();
    let provider = OidcProvider::discover(&client, &op.issuer, JwksPolicy::default())
        .await
        .unwrap();
    assert_eq!(provider.metadata.issuer, op.issuer);
    assert!(
        provider
            .metadata
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
    );
    let secret = ClientSecret(CLIENT_SECRET.into());

    // A sign-in, its code exchanged with the PKCE verifier, the ID token checked.
    let alice = sign_in(&op, &provider, "alice").await;
    let tokens = exchange_code(
        &client,
        &exchange(
            &provider,
            &secret,
            TokenAuthMethod::ClientSecretBasic,
            &alice,
        ),
    )
    .await
    .unwrap();
    let id_token = tokens.id_token.expect("an ID token");
    let claims = provider
        .verify_id_token(&client, &id_token, CLIENT_ID, &alice.nonce, wall_clock())
        .await
        .unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.email.as_deref(), Some("alice@example.test"));
    assert!(claims.email_verified);
    assert_eq!(claims.amr, ["pwd"], "{claims:?}");
    assert_eq!(claims.acr.as_deref(), Some("urn:tessera:test:password"));

    // The same token for another sign-in (another nonce) is refused.
    let replayed = provider
        .verify_id_token(&client, &id_token, CLIENT_ID, "another-nonce", wall_clock())
        .await;
    assert_eq!(replayed, Err(IdTokenError::WrongNonce));

    // User info with the access token, mapped by the standard claims.
    let userinfo = provider.metadata.userinfo_endpoint.as_ref().unwrap();
    let user = fetch_user_info(
        &client,
        userinfo,
        &tokens.access_token,
        &UserInfoMapping::oidc(),
    )
    .await
    .unwrap();
    assert_eq!(user.subject, "alice");
    assert_eq!(user.username.as_deref(), Some("alice"));

    // A code exchanged with the wrong verifier: the provider refuses it (PKCE).
    let mut bob = sign_in(&op, &provider, "bob").await;
    bob.verifier = "not-the-verifier-0123456789abcdef0123456789abcdef".into();
    let refused = exchange_code(
        &client,
        &exchange(&provider, &secret, TokenAuthMethod::ClientSecretBasic, &bob),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, ExchangeError::OAuth { error, .. } if error.code == OAuthErrorCode::InvalidGrant),
        "{refused}"
    );

    // The provider rotates its key. A token signed with the new one is verified after one
    // refetch, once the refetch interval since the last fetch has passed.
    let fetches = provider.jwks.stats().fetches;
    op.rotate_key().await;
    let carol = sign_in(&op, &provider, "carol").await;
    let tokens = exchange_code(
        &client,
        &exchange(
            &provider,
            &secret,
            TokenAuthMethod::ClientSecretBasic,
            &carol,
        ),
    )
    .await
    .unwrap();
    let id_token = tokens.id_token.unwrap();
    let soon = provider
        .verify_id_token(&client, &id_token, CLIENT_ID, &carol.nonce, wall_clock())
        .await;
    assert!(
        matches!(soon, Err(IdTokenError::Key(JwksError::UnknownKey(_)))),
        "within the interval the new kid waits: {soon:?}"
    );
    let later = Timestamp::from_millis(wall_clock().0 + 31_000);
    let claims = provider
        .verify_id_token(&client, &id_token, CLIENT_ID, &carol.nonce, later)
        .await
        .unwrap();
    assert_eq!(claims.sub, "carol");
    assert_eq!(provider.jwks.stats().fetches, fetches + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_keys_and_client_secret_post_work_too() {
    let options = Options {
        alg: "ES256",
        auth_method: "client_secret_post",
        ..Options::new(CALLBACK)
    };
    let Some(op) = oidc_provider::OidcProvider::start(options).await else {
        return;
    };
    let client = client();
    let provider = OidcProvider::discover(&client, &op.issuer, JwksPolicy::default())
        .await
        .unwrap();
    let secret = ClientSecret(CLIENT_SECRET.into());
    let dana = sign_in(&op, &provider, "dana").await;
    let tokens = exchange_code(
        &client,
        &exchange(&provider, &secret, TokenAuthMethod::ClientSecretPost, &dana),
    )
    .await
    .unwrap();
    let claims = provider
        .verify_id_token(
            &client,
            &tokens.id_token.unwrap(),
            CLIENT_ID,
            &dana.nonce,
            wall_clock(),
        )
        .await
        .unwrap();
    assert_eq!(claims.sub, "dana");
}
