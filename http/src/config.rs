//! The adapter's limits and trust settings, with defaults that work on a laptop.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted; larger ones get 413 before they are read.
    pub body_bytes_max: usize,
    /// Time allowed for a client to send its request headers.
    pub header_timeout_ms: u64,
    /// Time allowed for one request, body included, from headers to answer.
    pub request_timeout_ms: u64,
    /// Open connections beyond this are closed at accept.
    pub connections_max: usize,
    /// Threads hashing passwords at once (argon2 is CPU-bound: about one per core).
    pub hash_workers: usize,
    /// Hash jobs admitted (running + waiting); beyond it, 503 with Retry-After.
    pub hash_queue_max: usize,
    /// Origins allowed to make cookie-authenticated changes, besides the server's own.
    pub allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed. Empty: the socket address is the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Time to let in-flight requests finish on shutdown.
    pub drain_timeout_ms: u64,
    /// The base URL clients reach this server at: the OAuth issuer (RFC 8414 §2), the
    /// `iss` of every access token, and the base of every endpoint the metadata lists.
    /// Empty (the default): `http://` and the address the server actually listens on.
    pub public_url: String,
    /// The introspection client: the one client that may introspect every token (others
    /// see only their own). It authenticates as a registered client of this id, or, when
    /// `introspection_client_secret` is set, with that secret over HTTP Basic.
    pub introspection_client_id: Option<String>,
    pub introspection_client_secret: Option<ClientSecret>,
    /// A new signing key every this many days (0: only `tessera keys rotate`).
    pub signing_key_rotation_days: u64,
    /// The public keys secret-scanning alerts to POST /v1/api-keys/leaked must be signed
    /// with (ECDSA P-256). Empty: every alert is refused.
    pub secret_scanning_keys: Vec<SecretScanningKey>,
    /// The outgoing client's limits for every external sign-in provider.
    pub upstream_limits: crate::upstream::ClientLimits,
    /// The external sign-in providers (`[[upstream]]` at the top of the file; the command
    /// line copies them here).
    #[serde(skip)]
    pub upstreams: Vec<UpstreamConfig>,
    /// The most WebAuthn ceremonies pending at once (started, not yet finished or expired);
    /// a `start` beyond it answers 503 with `Retry-After`.
    pub webauthn_ceremonies_max: usize,
}

/// What kind of provider an `[[upstream]]` is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    /// OpenID Connect: discovery from `issuer`, an ID token checked against its keys.
    #[default]
    Oidc,
    /// Plain OAuth 2 (GitHub's shape): explicit endpoints and a user-info endpoint whose
    /// fields `fields` maps.
    Oauth2,
}

/// One external sign-in provider (`[[upstream]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The `{provider}` in `/v1/login/{provider}`: lower-case letters, digits and dashes.
    pub name: String,
    /// What the "Sign in with …" button says.
    pub display_name: String,
    /// `oidc` or `oauth2`.
    pub kind: UpstreamKind,
    /// This server's client id at the provider.
    pub client_id: String,
    /// Its client secret; better given as `TESSERA_UPSTREAM_<NAME>_CLIENT_SECRET` (the name
    /// upper-cased, dashes as underscores) than written in the file.
    #[serde(default)]
    pub client_secret: Option<ClientSecret>,
    /// How the secret is sent to the token endpoint.
    #[serde(default)]
    pub token_auth_method: crate::upstream::TokenAuthMethod,
    /// Scopes asked for; `oidc` always adds `openid`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `create` (default): a first sign-in creates an account; `link_only`: only identities
    /// linked from a signed-in account sign in.
    #[serde(default)]
    pub first_sign_in: tessera_core::identity::FirstSignIn,
    /// `oidc` only: an ID token asserting a multi-factor sign-in (`amr` with `mfa`) stands
    /// in for the account's own second factor.
    #[serde(default)]
    pub trusted_for_mfa: bool,
    /// `oidc`: the issuer identifier (discovery at `<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// `oauth2`: the authorization endpoint.
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// `oauth2`: the token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// `oauth2`: the user-info endpoint.
    #[serde(default)]
    pub user_info_url: Option<String>,
    /// `oauth2`: which user-info fields hold the subject, username and e-mail (dotted paths).
    /// Default: GitHub's (`id`, `login`, `email`).
    #[serde(default)]
    pub fields: Option<crate::upstream::UserInfoMapping>,
}

/// Provider names the router keeps for itself under `/v1/login/`.
pub const RESERVED_PROVIDER_NAMES: [&str; 2] = ["mfa", "webauthn"];

impl UpstreamConfig {
    /// An OpenID Connect provider found by discovery from `issuer`, asked for e-mail and
    /// profile, with the defaults for everything else.
    pub fn oidc(
        name: &str,
        display_name: &str,
        issuer: &str,
        client_id: &str,
        client_secret: Option<ClientSecret>,
    ) -> Self {
        Self {
            name: name.into(),
            display_name: display_name.into(),
            kind: UpstreamKind::Oidc,
            client_id: client_id.into(),
            client_secret,
            token_auth_method: Default::default(),
            scopes: vec!["email".into(), "profile".into()],
            first_sign_in: Default::default(),
            trusted_for_mfa: false,
            issuer: Some(issuer.into()),
            authorize_url: None,
            token_url: None,
            user_info_url: None,
            fields: None,
        }
    }

    /// Another Tessera at `base_url` as a plain OAuth 2 provider: its authorize and token
    /// endpoints, and `GET /v1/me` as the user-info endpoint.
    pub fn tessera(
        name: &str,
        display_name: &str,
        base_url: &str,
        client_id: &str,
        client_secret: Option<ClientSecret>,
    ) -> Self {
        let base = base_url.trim_end_matches('/');
        Self {
            name: name.into(),
            display_name: display_name.into(),
            kind: UpstreamKind::Oauth2,
            client_id: client_id.into(),
            client_secret,
            token_auth_method: Default::default(),
            scopes: vec!["profile".into()],
            first_sign_in: Default::default(),
            trusted_for_mfa: false,
            issuer: None,
            authorize_url: Some(format!("{base}/oauth/authorize")),
            token_url: Some(format!("{base}/oauth/token")),
            user_info_url: Some(format!("{base}/v1/me")),
            fields: Some(crate::upstream::UserInfoMapping::tessera()),
        }
    }

    /// The environment variable that may hold this provider's client secret.
    pub fn secret_variable(&self) -> String {
        format!(
            "TESSERA_UPSTREAM_{}_CLIENT_SECRET",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Checks one provider; the message names it and the field to fix.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let fail = |why: &str| Err(format!("upstream {name:?}: {why}"));
        if !tessera_core::identity::provider_name_valid(name)
            || RESERVED_PROVIDER_NAMES.contains(&name.as_str())
        {
            return fail(
                "name must be 1-32 lower-case letters, digits and dashes (not mfa or webauthn)",
            );
        }
        if self.display_name.trim().is_empty() || self.client_id.is_empty() {
            return fail("display_name and client_id must not be empty");
        }
        if self.client_secret.as_ref().is_none_or(|s| s.0.is_empty()) {
            return fail(&format!(
                "client_secret is missing (set it in the file or in {})",
                self.secret_variable()
            ));
        }
        let url = |field: &str, value: &Option<String>| match value {
            Some(v) => crate::upstream::UpstreamUrl::parse(v)
                .map(|_| ())
                .map_err(|e| format!("upstream {name:?}: {field}: {e}")),
            None => Err(format!(
                "upstream {name:?}: {field} is required for this kind"
            )),
        };
        match self.kind {
            UpstreamKind::Oidc => {
                url("issuer", &self.issuer)?;
                if self.authorize_url.is_some()
                    || self.token_url.is_some()
                    || self.user_info_url.is_some()
                    || self.fields.is_some()
                {
                    return fail(
                        "an oidc provider is discovered from its issuer: remove the endpoints and fields",
                    );
                }
            }
            UpstreamKind::Oauth2 => {
                url("authorize_url", &self.authorize_url)?;
                url("token_url", &self.token_url)?;
                url("user_info_url", &self.user_info_url)?;
                if self.issuer.is_some() || self.trusted_for_mfa {
                    return fail("issuer and trusted_for_mfa are for oidc providers only");
                }
            }
        }
        Ok(())
    }
}

/// A secret-scanning service's public key, as it publishes it (GitHub: the
/// `key_identifier` and `key` of its `meta/public_keys/secret_scanning` list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretScanningKey {
    /// Sent by the service with every alert (`GITHUB-PUBLIC-KEY-IDENTIFIER`).
    pub key_identifier: String,
    /// The P-256 public key: PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
    pub key: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            body_bytes_max: 16 * 1024,
            header_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            connections_max: 4_096,
            hash_workers: cores,
            hash_queue_max: cores * 16,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            drain_timeout_ms: 10_000,
            public_url: String::new(),
            introspection_client_id: None,
            introspection_client_secret: None,
            signing_key_rotation_days: 30,
            secret_scanning_keys: Vec::new(),
            upstream_limits: crate::upstream::ClientLimits::default(),
            upstreams: Vec::new(),
            webauthn_ceremonies_max: 10_000,
        }
    }
}

/// A client secret from the configuration. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl ClientSecret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.introspection_client_secret.is_some() && self.introspection_client_id.is_none() {
            return Err(
                "http.introspection_client_secret needs http.introspection_client_id".into(),
            );
        }
        if self
            .introspection_client_secret
            .as_ref()
            .is_some_and(|s| s.0.len() < 16)
        {
            return Err("http.introspection_client_secret must be at least 16 characters".into());
        }
        if !self.public_url.is_empty() {
            check_public_url(&self.public_url)?;
        }
        if self.body_bytes_max < 1024 {
            return Err("http.body_bytes_max must be at least 1024".into());
        }
        if self.hash_workers == 0 || self.hash_queue_max < self.hash_workers {
            return Err(
                "http.hash_workers must be positive and at most http.hash_queue_max".into(),
            );
        }
        if let Some(bad) = self
            .secret_scanning_keys
            .iter()
            .find(|k| crate::leak::public_key_der(&k.key).is_none())
        {
            return Err(format!(
                "http.secret_scanning_keys: key {:?} is not a PEM public key",
                bad.key_identifier
            ));
        }
        if self.webauthn_ceremonies_max == 0 {
            return Err("http.webauthn_ceremonies_max must be positive".into());
        }
        if self.connections_max == 0 || self.header_timeout_ms == 0 || self.request_timeout_ms == 0
        {
            return Err("http connection limit and timeouts must be positive".into());
        }
        self.upstream_limits.validate()?;
        let mut names = std::collections::BTreeSet::new();
        for u in &self.upstreams {
            u.validate()?;
            if !names.insert(u.name.as_str()) {
                return Err(format!("upstream {:?} is configured twice", u.name));
            }
        }
        Ok(())
    }
}

/// An issuer URL (RFC 8414 §2): `https` (or `http` for a local server), a host, no query
/// or fragment.
fn check_public_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("http.public_url must start with https:// (or http:// for a local server)")?;
    if rest.is_empty() || rest.starts_with('/') || url.contains(['?', '#', ' ', '@']) {
        return Err(
            "http.public_url must name a host and carry no query, fragment or userinfo".into(),
        );
    }
    Ok(())
}

/// The public URL for a server listening on `local`: the configured one without a trailing
/// slash, or `http://<local>` when none is configured.
pub fn effective_public_url(configured: &str, local: std::net::SocketAddr) -> String {
    if configured.is_empty() {
        format!("http://{local}")
    } else {
        configured.trim_end_matches('/').to_owned()
    }
}
