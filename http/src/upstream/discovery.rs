//! OpenID Connect discovery (OIDC Discovery 1.0 §4): one GET of
//! `<issuer>/.well-known/openid-configuration`, whose `issuer` must equal the configured one
//! exactly (§4.3), and whose endpoints must be upstream URLs ([`UpstreamUrl`]).

use serde::Deserialize;

use super::client::{Credentials, FetchError, UpstreamClient, UpstreamUrl, UrlError, excerpt};

/// What we use of a provider's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// Exactly the configured issuer.
    pub issuer: String,
    pub authorization_endpoint: UpstreamUrl,
    pub token_endpoint: UpstreamUrl,
    pub userinfo_endpoint: Option<UpstreamUrl>,
    pub jwks_uri: UpstreamUrl,
    /// As listed; empty when the provider lists none.
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub code_challenge_methods_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// Why discovery failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the issuer: {0}")]
    Issuer(UrlError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the discovery document names issuer {found}, not the configured {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the discovery document has no {0}")]
    Missing(&'static str),
    #[error("the discovery document's {field}: {error}")]
    Endpoint {
        field: &'static str,
        error: UrlError,
    },
}

#[derive(Deserialize)]
struct Wire {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    jwks_uri: Option<String>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
}

/// The URL discovery reads for `issuer` (OIDC Discovery §4.1: a trailing `/` is dropped
/// before the well-known path is appended).
pub fn discovery_url(issuer: &str) -> Result<UpstreamUrl, UrlError> {
    UpstreamUrl::parse(issuer)?;
    let base = issuer.trim_end_matches('/');
    UpstreamUrl::parse(&format!("{base}/.well-known/openid-configuration"))
}

/// Reads and checks the provider's metadata: one round trip.
pub async fn discover(
    client: &UpstreamClient,
    issuer: &str,
) -> Result<ProviderMetadata, DiscoveryError> {
    let url = discovery_url(issuer).map_err(DiscoveryError::Issuer)?;
    let answer = client.get(&url, Credentials::None).await?.success(&url)?;
    let wire: Wire = answer.json(&url)?;
    metadata_from(issuer, wire)
}

fn metadata_from(issuer: &str, wire: Wire) -> Result<ProviderMetadata, DiscoveryError> {
    let found = wire.issuer.ok_or(DiscoveryError::Missing("issuer"))?;
    if found != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: excerpt(found.as_bytes()),
        });
    }
    let endpoint = |field: &'static str, value: Option<String>| {
        let value = value.ok_or(DiscoveryError::Missing(field))?;
        UpstreamUrl::parse(&value).map_err(|error| DiscoveryError::Endpoint { field, error })
    };
    let userinfo_endpoint = match wire.userinfo_endpoint {
        Some(u) => Some(endpoint("userinfo_endpoint", Some(u))?),
        None => None,
    };
    Ok(ProviderMetadata {
        issuer: found,
        authorization_endpoint: endpoint("authorization_endpoint", wire.authorization_endpoint)?,
        token_endpoint: endpoint("token_endpoint", wire.token_endpoint)?,
        userinfo_endpoint,
        jwks_uri: endpoint("jwks_uri", wire.jwks_uri)?,
        id_token_signing_alg_values_supported: wire.id_token_signing_alg_values_supported,
        code_challenge_methods_supported: wire.code_challenge_methods_supported,
        token_endpoint_auth_methods_supported: wire.token_endpoint_auth_methods_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(issuer: &str, jwks: &str) -> Wire {
        serde_json::from_value(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": "https://idp.example/token",
            "jwks_uri": jwks,
        }))
        .unwrap()
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        let ok = metadata_from(
            "https://idp.example",
            wire("https://idp.example", "https://idp.example/jwks"),
        );
        assert!(ok.is_ok());
        let slash = metadata_from(
            "https://idp.example",
            wire("https://idp.example/", "https://idp.example/jwks"),
        );
        assert!(matches!(slash, Err(DiscoveryError::IssuerMismatch { .. })));
    }

    #[test]
    fn endpoints_must_be_upstream_urls() {
        let plain = metadata_from(
            "https://idp.example",
            wire("https://idp.example", "http://idp.example/jwks"),
        );
        assert!(matches!(
            plain,
            Err(DiscoveryError::Endpoint {
                field: "jwks_uri",
                ..
            })
        ));
    }

    #[test]
    fn the_well_known_path_follows_the_issuer() {
        let url = discovery_url("https://idp.example/tenant/").unwrap();
        assert_eq!(
            url.as_str(),
            "https://idp.example/tenant/.well-known/openid-configuration"
        );
    }
}
