//! Talking to external sign-in providers ("sign in with …"): OAuth 2 upstreams shaped
//! like GitHub and OpenID Connect providers.
//!
//! # What this module owns
//! Everything that crosses the network to a provider, and the checks on what comes back:
//! - [`client`]: the outgoing HTTPS client (rustls on aws-lc-rs, the system's roots),
//!   with connect and total timeouts and a response size limit, and the rule that an
//!   upstream URL is `https` or loopback `http` ([`UpstreamUrl::parse`]);
//! - [`oauth`]: the authorization URL (PKCE S256, state, nonce), the code exchange, OAuth
//!   error answers, the user-info fetch and its field mapping to an [`ExternalUser`];
//! - [`discovery`]: OIDC discovery with the exact issuer check;
//! - [`jwks`]: a per-provider key cache that follows key rotation, with a rate-limited
//!   refetch on an unknown `kid` and hit/miss counters;
//! - [`id_token`]: ID-token validation (signature, algorithm allow-list, `iss`, `aud`,
//!   `azp`, `exp`, `iat`, `nonce`) against a time passed in.
//!
//! # What this module must not do
//! Decide. It records no event and makes no account decision: it fetches and checks, and
//! hands the flow an [`ExternalUser`] or a typed error. Linking, creating accounts and
//! sessions are the flow's, through the engine. It never logs or returns a secret (client
//! secrets, codes, tokens, verifiers), and quotes a provider's answer only as a short
//! escaped excerpt.
//!
//! # How to drive it
//! Build one [`UpstreamClient`] for the process. For an OIDC provider, [`OidcProvider::discover`]
//! once (it holds the metadata and the key cache); per sign-in, build the
//! [`AuthorizationRequest`] URL, then on the callback [`exchange_code`] and
//! [`OidcProvider::verify_id_token`] (or, for an OAuth 2 upstream, [`fetch_user_info`]).
//! The current time is always an argument.

pub mod client;
pub mod discovery;
pub mod id_token;
pub mod jwks;
pub mod oauth;

use tessera_core::Timestamp;

pub use client::{
    Answer, ClientBuildError, ClientLimits, Credentials, FetchError, RootCertStore, UpstreamClient,
    UpstreamUrl, UrlError,
};
pub use discovery::{DiscoveryError, ProviderMetadata, discover};
pub use id_token::{
    Expectations, IdTokenClaims, IdTokenError, LEEWAY_SECS_DEFAULT, validate_with_key,
    verify_id_token,
};
pub use jwks::{ALGORITHMS_ALLOWED, JwksCache, JwksError, JwksPolicy, JwksStats, VerifyingKey};
pub use oauth::{
    AuthorizationRequest, CodeExchange, ExchangeError, ExternalUser, OAuthError, OAuthErrorCode,
    TokenAuthMethod, TokenResponse, UpstreamToken, UserInfoError, UserInfoMapping, exchange_code,
    fetch_user_info, map_user_info, pkce_challenge,
};

/// An OpenID Connect provider after discovery: its metadata and its key cache.
#[derive(Debug)]
pub struct OidcProvider {
    pub metadata: ProviderMetadata,
    pub jwks: JwksCache,
}

impl OidcProvider {
    /// Discovers the provider at `issuer` (one round trip) and prepares its key cache
    /// (filled on the first ID token).
    pub async fn discover(
        client: &UpstreamClient,
        issuer: &str,
        policy: JwksPolicy,
    ) -> Result<Self, DiscoveryError> {
        let metadata = discover(client, issuer).await?;
        let jwks = JwksCache::new(metadata.jwks_uri.clone(), policy);
        Ok(Self { metadata, jwks })
    }

    /// Validates an ID token from this provider for `client_id` and `nonce` at `now`.
    pub async fn verify_id_token(
        &self,
        client: &UpstreamClient,
        token: &UpstreamToken,
        client_id: &str,
        nonce: &str,
        now: Timestamp,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let expect = Expectations {
            issuer: &self.metadata.issuer,
            client_id,
            nonce,
            leeway_secs: LEEWAY_SECS_DEFAULT,
        };
        verify_id_token(client, &self.jwks, token, &expect, now).await
    }
}
