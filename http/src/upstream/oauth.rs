//! The OAuth 2 half of talking to a provider: the authorization URL (RFC 6749 §4.1.1 with
//! PKCE S256, RFC 7636 §4.3, and the OIDC `nonce`), the code exchange at the token endpoint
//! (§4.1.3, client authentication by `client_secret_basic` or `client_secret_post`, §2.3.1),
//! the error answer of §5.2 as a typed [`OAuthError`], and the user-info fetch with a
//! [`UserInfoMapping`] from the provider's JSON to an [`ExternalUser`].

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::client::{Credentials, FetchError, UpstreamClient, UpstreamUrl, excerpt, host_of};
use crate::config::ClientSecret;

/// Longest subject, username or email kept from a provider; longer ones are refused
/// rather than cut, since a cut subject could name someone else.
pub const FIELD_CHARS_MAX: usize = 255;

/// The parameters of one authorization request. Every value comes from the flow: the
/// `state`, PKCE verifier and `nonce` are fresh random values it keeps to check the
/// callback.
#[derive(Clone, Copy)]
pub struct AuthorizationRequest<'a> {
    pub authorization_endpoint: &'a UpstreamUrl,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// Space-separated scopes, e.g. `openid email profile` or `read:user user:email`.
    pub scope: &'a str,
    pub state: &'a str,
    /// The PKCE verifier; only its S256 challenge goes into the URL.
    pub code_verifier: &'a str,
    /// OIDC providers only.
    pub nonce: Option<&'a str>,
}

impl std::fmt::Debug for AuthorizationRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("authorization_endpoint", self.authorization_endpoint)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AuthorizationRequest<'_> {
    /// The URL to send the browser to: the endpoint with `response_type=code`,
    /// `client_id`, `redirect_uri`, `scope`, `state`, `code_challenge` (S256) and, for OIDC,
    /// `nonce` added to whatever query it already has.
    pub fn url(&self) -> String {
        let mut url = self.authorization_endpoint.url().clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", self.client_id)
                .append_pair("redirect_uri", self.redirect_uri)
                .append_pair("scope", self.scope)
                .append_pair("state", self.state)
                .append_pair("code_challenge", &pkce_challenge(self.code_verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(nonce) = self.nonce {
                query.append_pair("nonce", nonce);
            }
        }
        url.into()
    }
}

/// The S256 code challenge of a PKCE verifier: BASE64URL(SHA-256(verifier)), RFC 7636 §4.2.
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(digest.as_ref())
}

/// How we authenticate to the provider's token endpoint (RFC 6749 §2.3.1; OIDC Core §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP Basic with the form-encoded id and secret (what the RFC says servers must
    /// support).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (GitHub's usual way).
    ClientSecretPost,
}

/// One code exchange at the token endpoint.
#[derive(Clone, Copy)]
pub struct CodeExchange<'a> {
    pub token_endpoint: &'a UpstreamUrl,
    pub client_id: &'a str,
    pub client_secret: &'a ClientSecret,
    pub auth_method: TokenAuthMethod,
    /// The code from the callback.
    pub code: &'a str,
    /// Exactly the redirect URI sent in the authorization request.
    pub redirect_uri: &'a str,
    /// The PKCE verifier whose challenge went into the authorization request.
    pub code_verifier: &'a str,
}

impl std::fmt::Debug for CodeExchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeExchange")
            .field("token_endpoint", self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .finish_non_exhaustive()
    }
}

/// A bearer credential from the provider (access token or ID token). `Debug` never prints
/// it; memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamToken(Zeroizing<String>);

impl UpstreamToken {
    /// Wraps a token received from a provider.
    pub fn new(token: String) -> Self {
        Self(Zeroizing::new(token))
    }

    /// The token itself, to send back to its provider or to verify.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamToken(<redacted>)")
    }
}

/// A successful token answer (RFC 6749 §5.1).
#[derive(Clone, Debug)]
pub struct TokenResponse {
    pub access_token: UpstreamToken,
    /// `Bearer` (compared case-insensitively when checked).
    pub token_type: String,
    /// OIDC providers: the ID token, still to be validated.
    pub id_token: Option<UpstreamToken>,
    /// The scopes granted, when the provider says (GitHub always does).
    pub scope: Option<String>,
}

/// The error codes of RFC 6749 §4.1.2.1 and §5.2, and anything else a provider sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    UnsupportedResponseType,
    ServerError,
    TemporarilyUnavailable,
    /// Another code, escaped and cut to a short excerpt.
    Other(String),
}

impl OAuthErrorCode {
    fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            other => Self::Other(excerpt(other.as_bytes())),
        }
    }

    /// The code as the RFC spells it (an unknown one as its escaped excerpt).
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Other(code) => code,
        }
    }
}

/// An OAuth error from a provider: from the token endpoint's JSON (§5.2) or the callback's
/// query (§4.1.2.1). The description is an escaped excerpt, safe to show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", code.as_str(), description.as_deref().unwrap_or("no description"))]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: Option<String>,
}

impl OAuthError {
    /// From the `error` and `error_description` parameters of a callback or an answer.
    pub fn from_parts(error: &str, description: Option<&str>) -> Self {
        Self {
            code: OAuthErrorCode::parse(error),
            description: description.map(|d| excerpt(d.as_bytes())),
        }
    }

    /// The §5.2 error in a JSON body, if the body is one.
    pub fn from_json(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Wire {
            error: String,
            error_description: Option<String>,
        }
        let wire: Wire = serde_json::from_slice(body).ok()?;
        Some(Self::from_parts(
            &wire.error,
            wire.error_description.as_deref(),
        ))
    }
}

/// Why a code exchange failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{host} refused the code: {error}")]
    OAuth { host: String, error: OAuthError },
    #[error("{host} answered a token response without {missing}")]
    Malformed { host: String, missing: &'static str },
    #[error("{host} issued a {token_type:?} token, not a Bearer token")]
    NotBearer { host: String, token_type: String },
}

/// Exchanges an authorization code for tokens (RFC 6749 §4.1.3, RFC 7636 §4.5): one POST.
pub async fn exchange_code(
    client: &UpstreamClient,
    exchange: &CodeExchange<'_>,
) -> Result<TokenResponse, ExchangeError> {
    let url = exchange.token_endpoint;
    let secret = exchange.client_secret.0.as_str();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", exchange.code),
        ("redirect_uri", exchange.redirect_uri),
        ("code_verifier", exchange.code_verifier),
    ];
    let credentials = match exchange.auth_method {
        TokenAuthMethod::ClientSecretBasic => Credentials::Basic {
            user: exchange.client_id,
            password: secret,
        },
        TokenAuthMethod::ClientSecretPost => {
            form.push(("client_id", exchange.client_id));
            form.push(("client_secret", secret));
            Credentials::None
        }
    };
    let answer = client.post_form(url, credentials, &form).await?;
    // GitHub answers errors with 200 and an `error` field; others with 400 or 401.
    if let Some(error) = OAuthError::from_json(&answer.body) {
        return Err(ExchangeError::OAuth {
            host: host_of(url),
            error,
        });
    }
    let answer = answer.success(url)?;
    parse_token_response(url, &answer.json(url)?)
}

fn parse_token_response(
    url: &UpstreamUrl,
    body: &serde_json::Value,
) -> Result<TokenResponse, ExchangeError> {
    let text = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let malformed = |missing| ExchangeError::Malformed {
        host: host_of(url),
        missing,
    };
    let access_token = text("access_token").ok_or_else(|| malformed("access_token"))?;
    let token_type = text("token_type").ok_or_else(|| malformed("token_type"))?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(ExchangeError::NotBearer {
            host: host_of(url),
            token_type: excerpt(token_type.as_bytes()),
        });
    }
    Ok(TokenResponse {
        access_token: UpstreamToken::new(access_token),
        token_type,
        id_token: text("id_token").map(UpstreamToken::new),
        scope: text("scope"),
    })
}

/// Which fields of a provider's user-info JSON hold what. A name may be a dotted path
/// (`data.id`) into nested objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInfoMapping {
    /// The stable id: a string, or an integer (GitHub's numeric `id`), kept as its
    /// decimal text.
    pub subject: String,
    pub username: Option<String>,
    pub email: Option<String>,
    /// A boolean field saying the email was verified. Without one, emails count as
    /// unverified: the flow must not link accounts by them.
    pub email_verified: Option<String>,
    pub name: Option<String>,
}

impl UserInfoMapping {
    /// GitHub's `/user`: numeric `id`, `login`, `email` (public, may be null), `name`.
    pub fn github() -> Self {
        Self {
            subject: "id".into(),
            username: Some("login".into()),
            email: Some("email".into()),
            email_verified: None,
            name: Some("name".into()),
        }
    }

    /// Another Tessera's `GET /v1/me`: `id`, `username`, `email`.
    pub fn tessera() -> Self {
        Self {
            subject: "id".into(),
            username: Some("username".into()),
            email: Some("email".into()),
            email_verified: None,
            name: None,
        }
    }

    /// OpenID Connect's standard claims (OIDC Core §5.1).
    pub fn oidc() -> Self {
        Self {
            subject: "sub".into(),
            username: Some("preferred_username".into()),
            email: Some("email".into()),
            email_verified: Some("email_verified".into()),
            name: Some("name".into()),
        }
    }
}

/// Who the provider says signed in: what the flow links or creates an account from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalUser {
    /// The provider's stable id for the user (OIDC `sub`, GitHub's `id`).
    pub subject: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// Authentication methods (OIDC `amr`, RFC 8176), e.g. `pwd`, `mfa`, `otp`.
    pub amr: Vec<String>,
    /// Authentication context class (OIDC `acr`).
    pub acr: Option<String>,
}

/// Why a provider's user info could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserInfoError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the user info has no usable {field:?} ({why})")]
    Field { field: String, why: &'static str },
    #[error("the user info is not a JSON object")]
    NotAnObject,
}

/// GETs the user info with the access token and maps it: one round trip.
pub async fn fetch_user_info(
    client: &UpstreamClient,
    userinfo_endpoint: &UpstreamUrl,
    access_token: &UpstreamToken,
    mapping: &UserInfoMapping,
) -> Result<ExternalUser, UserInfoError> {
    let credentials = Credentials::Bearer(access_token.expose());
    let answer = client
        .get(userinfo_endpoint, credentials)
        .await?
        .success(userinfo_endpoint)?;
    let body: serde_json::Value = answer.json(userinfo_endpoint)?;
    map_user_info(&body, mapping)
}

/// Maps a user-info JSON object through `mapping`. Pure: the benchmark and the tests call
/// it directly.
pub fn map_user_info(
    body: &serde_json::Value,
    mapping: &UserInfoMapping,
) -> Result<ExternalUser, UserInfoError> {
    if !body.is_object() {
        return Err(UserInfoError::NotAnObject);
    }
    let subject = match lookup(body, &mapping.subject) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(_) => return Err(field_error(&mapping.subject, "not a string or an integer")),
        None => return Err(field_error(&mapping.subject, "missing")),
    };
    checked(&mapping.subject, &subject)?;
    let username = optional_text(body, mapping.username.as_deref())?;
    let email = optional_text(body, mapping.email.as_deref())?;
    let email_verified = match mapping.email_verified.as_deref() {
        None => false,
        Some(path) => match lookup(body, path) {
            Some(serde_json::Value::Bool(b)) => *b,
            // Some providers send the string "true".
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        },
    };
    let name = optional_text(body, mapping.name.as_deref())?;
    Ok(ExternalUser {
        subject,
        username,
        email_verified: email_verified && email.is_some(),
        email,
        name,
        amr: Vec::new(),
        acr: None,
    })
}

fn lookup<'v>(body: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.')
        .try_fold(body, |v, part| v.get(part))
        .filter(|v| !v.is_null())
}

fn optional_text(
    body: &serde_json::Value,
    path: Option<&str>,
) -> Result<Option<String>, UserInfoError> {
    let Some(path) = path else { return Ok(None) };
    match lookup(body, path) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => checked(path, s).map(|()| Some(s.clone())),
        Some(_) => Err(field_error(path, "not a string")),
    }
}

fn checked(path: &str, value: &str) -> Result<(), UserInfoError> {
    if value.is_empty() {
        return Err(field_error(path, "empty"));
    }
    if value.chars().count() > FIELD_CHARS_MAX {
        return Err(field_error(path, "too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(field_error(path, "control characters"));
    }
    Ok(())
}

fn field_error(path: &str, why: &'static str) -> UserInfoError {
    UserInfoError::Field {
        field: excerpt(path.as_bytes()),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn github_shape_maps_a_numeric_id() {
        let body =
            json!({"id": 583231, "login": "octocat", "email": "o@example.com", "name": null});
        let user = map_user_info(&body, &UserInfoMapping::github()).unwrap();
        assert_eq!(user.subject, "583231");
        assert_eq!(user.username.as_deref(), Some("octocat"));
        assert_eq!(user.email.as_deref(), Some("o@example.com"));
        assert!(
            !user.email_verified,
            "GitHub's /user says nothing of verification"
        );
        assert_eq!(user.name, None);
    }

    #[test]
    fn subjects_must_be_strings_or_integers() {
        let mapping = UserInfoMapping::oidc();
        for bad in [
            json!({"sub": 1.5}),
            json!({"sub": true}),
            json!({"sub": ""}),
            json!({"sub": {"x": 1}}),
            json!({}),
            json!({"sub": "a\nb"}),
            json!([1]),
        ] {
            assert!(map_user_info(&bad, &mapping).is_err(), "{bad}");
        }
        let nested = UserInfoMapping {
            subject: "data.id".into(),
            ..UserInfoMapping::oidc()
        };
        let user = map_user_info(&json!({"data": {"id": -7}}), &nested).unwrap();
        assert_eq!(user.subject, "-7");
    }

    #[test]
    fn the_authorization_url_carries_every_parameter() {
        let endpoint = UpstreamUrl::parse("https://idp.example/authorize?tenant=a").unwrap();
        let url = AuthorizationRequest {
            authorization_endpoint: &endpoint,
            client_id: "tessera",
            redirect_uri: "https://auth.example/v1/login/idp/callback",
            scope: "openid email",
            state: "st&te",
            code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            nonce: Some("n0nce"),
        }
        .url();
        let parsed = url::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "a");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["state"], "st&te");
        assert_eq!(q["nonce"], "n0nce");
        assert_eq!(q["code_challenge_method"], "S256");
        // RFC 7636 appendix B.
        assert_eq!(
            q["code_challenge"],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(!url.contains("dBjftJeZ4CVP"), "the verifier never leaves");
    }

    #[test]
    fn oauth_errors_are_typed_and_escaped() {
        let e = OAuthError::from_json(
            br#"{"error":"invalid_grant","error_description":"bad\ncode <b>"}"#,
        )
        .unwrap();
        assert_eq!(e.code, OAuthErrorCode::InvalidGrant);
        let d = e.description.unwrap();
        assert!(!d.contains('\n'));
        assert!(OAuthError::from_json(b"<html>").is_none());
    }
}
