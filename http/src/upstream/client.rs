//! The outgoing HTTP client: hyper-util's pooled client over rustls (aws-lc-rs provider,
//! the system's root store), with a connect timeout, a total timeout covering the whole
//! exchange (body included) and a response size limit.
//!
//! Upstream URLs are checked once, when the configuration is read ([`UpstreamUrl::parse`]):
//! `https`, or plain `http` only on a loopback address. A request to anything else cannot be
//! built, since every method here takes an [`UpstreamUrl`].
//!
//! Errors ([`FetchError`]) never carry a secret or the upstream's body verbatim: at most a
//! short excerpt, escaped, so a hostile upstream cannot write into our logs or pages.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
pub use rustls::RootCertStore;
use serde::{Deserialize, Serialize};

/// Characters of an upstream's answer that an error may quote (escaped).
pub const EXCERPT_CHARS_MAX: usize = 80;

/// Time, size and TLS limits of the outgoing client. Every field has a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimits {
    /// Time allowed to open the TCP connection.
    pub connect_timeout_ms: u64,
    /// Time allowed for the whole exchange: connect, TLS, request, headers and body.
    pub total_timeout_ms: u64,
    /// Largest response body read; a larger one is refused as soon as it is seen.
    pub body_bytes_max: usize,
}

impl ClientLimits {
    /// The smallest body limit a configuration may set: a JWKS with a few RSA keys or a
    /// discovery document must fit.
    pub const BODY_BYTES_MIN: usize = 4 * 1024;

    /// Checks the relations between the limits; the message names the field to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.connect_timeout_ms == 0 || self.total_timeout_ms == 0 {
            return Err("upstream timeouts must be positive".into());
        }
        if self.connect_timeout_ms > self.total_timeout_ms {
            return Err("upstream connect_timeout_ms must be at most total_timeout_ms".into());
        }
        if self.body_bytes_max < Self::BODY_BYTES_MIN {
            return Err(format!(
                "upstream body_bytes_max must be at least {}",
                Self::BODY_BYTES_MIN
            ));
        }
        Ok(())
    }
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3_000,
            // Below the server's own request timeout (15 s), so a callback waiting on a
            // slow upstream answers with a clear page before its own deadline.
            total_timeout_ms: 10_000,
            body_bytes_max: 256 * 1024,
        }
    }
}

/// A URL an upstream may be reached at: `https`, or `http` on a loopback address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UpstreamUrl(url::Url);

/// Why a configured upstream URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} is not an absolute URL")]
    NotAUrl(String),
    #[error("{0:?} must use https (plain http is allowed only on a loopback address)")]
    NotHttps(String),
    #[error("{0:?} must not carry a user name or password")]
    Credentials(String),
    #[error("{0:?} must not carry a fragment")]
    Fragment(String),
}

impl UpstreamUrl {
    /// Checks `text` as an upstream URL: https, or http on 127.0.0.0/8, ::1 or localhost;
    /// no user info, no fragment.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let quoted = || excerpt(text.as_bytes());
        let url = url::Url::parse(text).map_err(|_| UrlError::NotAUrl(quoted()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials(quoted()));
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment(quoted()));
        }
        match url.scheme() {
            "https" if url.host().is_some() => Ok(Self(url)),
            "http" if is_loopback(&url) => Ok(Self(url)),
            _ => Err(UrlError::NotHttps(quoted())),
        }
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL (to add query parameters to a copy of it).
    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl std::fmt::Debug for UpstreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpstreamUrl({})", self.0)
    }
}

impl std::fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Why an exchange with an upstream failed. Messages name the upstream's host and what
/// went wrong; never a secret, never more than a short escaped excerpt of its answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{host} did not answer within {timeout_ms} ms")]
    TimedOut { host: String, timeout_ms: u64 },
    #[error("{host} answered more than {limit_bytes} bytes")]
    TooLarge { host: String, limit_bytes: usize },
    #[error("{host} could not be reached: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("the TLS connection to {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("{host} answered status {status} (body starts {excerpt})")]
    Status {
        host: String,
        status: u16,
        excerpt: String,
    },
    #[error("{host} did not answer JSON (body starts {excerpt})")]
    NotJson { host: String, excerpt: String },
}

/// A body read within the limits, with its status.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The `Cache-Control` header, when present and text.
    pub cache_control: Option<String>,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON, or [`FetchError::NotJson`] with an escaped excerpt.
    pub fn json<T: serde::de::DeserializeOwned>(&self, url: &UpstreamUrl) -> Result<T, FetchError> {
        serde_json::from_slice(&self.body).map_err(|_| FetchError::NotJson {
            host: host_of(url),
            excerpt: excerpt(&self.body),
        })
    }

    /// [`FetchError::Status`] unless the status is 2xx.
    pub fn success(self, url: &UpstreamUrl) -> Result<Self, FetchError> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(FetchError::Status {
            host: host_of(url),
            status: self.status.as_u16(),
            excerpt: excerpt(&self.body),
        })
    }
}

/// How a request authenticates, if at all. `Debug` never prints the credentials.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: Basic`, each part form-urlencoded first (RFC 6749 §2.3.1).
    Basic {
        user: &'a str,
        password: &'a str,
    },
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "Credentials::None",
            Self::Bearer(_) => "Credentials::Bearer(<redacted>)",
            Self::Basic { .. } => "Credentials::Basic(<redacted>)",
        })
    }
}

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client every upstream exchange goes through. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct UpstreamClient {
    pool: Pool,
    limits: ClientLimits,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("upstream limits: {0}")]
    Limits(String),
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

impl UpstreamClient {
    /// A client with the system's root certificates (Debian's `ca-certificates`). A machine
    /// without any gets a client that reaches loopback `http` upstreams only; every TLS
    /// handshake then fails with a [`FetchError::Tls`] saying the certificate is unknown.
    pub fn new(limits: ClientLimits) -> Result<Self, ClientBuildError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                "no system root certificates found: https upstreams will fail (install ca-certificates)"
            );
        }
        Self::with_roots(limits, roots)
    }

    /// A client trusting exactly `roots` (tests add their own authority this way).
    pub fn with_roots(
        limits: ClientLimits,
        roots: rustls::RootCertStore,
    ) -> Result<Self, ClientBuildError> {
        limits.validate().map_err(ClientBuildError::Limits)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientBuildError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_millis(limits.connect_timeout_ms)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self { pool, limits })
    }

    /// The limits this client enforces.
    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }

    /// GET `url` (accepting JSON) and read the answer within the limits.
    pub async fn get(
        &self,
        url: &UpstreamUrl,
        credentials: Credentials<'_>,
    ) -> Result<Answer, FetchError> {
        self.send(Method::GET, url, credentials, None).await
    }

    /// POST `form` (`application/x-www-form-urlencoded`) to `url`.
    pub async fn post_form(
        &self,
        url: &UpstreamUrl,
        credentials: Credentials<'_>,
        form: &[(&str, &str)],
    ) -> Result<Answer, FetchError> {
        let body = serde_urlencoded::to_string(form).map_err(|e| FetchError::Unreachable {
            host: host_of(url),
            reason: format!("the form could not be encoded: {e}"),
        })?;
        self.send(Method::POST, url, credentials, Some(Bytes::from(body)))
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: &UpstreamUrl,
        credentials: Credentials<'_>,
        form: Option<Bytes>,
    ) -> Result<Answer, FetchError> {
        let request = build_request(method, url, credentials, form)?;
        let timeout = Duration::from_millis(self.limits.total_timeout_ms);
        match tokio::time::timeout(timeout, self.exchange(url, request)).await {
            Ok(answer) => answer,
            Err(_) => Err(FetchError::TimedOut {
                host: host_of(url),
                timeout_ms: self.limits.total_timeout_ms,
            }),
        }
    }

    async fn exchange(
        &self,
        url: &UpstreamUrl,
        request: Request<Full<Bytes>>,
    ) -> Result<Answer, FetchError> {
        let limit = self.limits.body_bytes_max;
        let too_large = || FetchError::TooLarge {
            host: host_of(url),
            limit_bytes: limit,
        };
        let response = self
            .pool
            .request(request)
            .await
            .map_err(|e| connect_error(url, &e))?;
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let status = response.status();
        let cache_control = response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // `Limited` stops reading at the limit: a huge body is refused after `limit`
        // bytes, never buffered whole.
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    FetchError::Unreachable {
                        host: host_of(url),
                        reason: "the connection closed while the answer was read".into(),
                    }
                }
            })?
            .to_bytes();
        Ok(Answer {
            status,
            cache_control,
            body,
        })
    }
}

fn build_request(
    method: Method,
    url: &UpstreamUrl,
    credentials: Credentials<'_>,
    form: Option<Bytes>,
) -> Result<Request<Full<Bytes>>, FetchError> {
    let invalid = |what: &str| FetchError::Unreachable {
        host: host_of(url),
        reason: format!("the request could not be built: {what}"),
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(url.as_str())
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "tessera");
    match credentials {
        Credentials::None => {}
        Credentials::Bearer(token) => {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| invalid("the access token is not a valid header value"))?;
            builder = builder.header(header::AUTHORIZATION, sensitive(value));
        }
        Credentials::Basic { user, password } => {
            let pair = format!("{}:{}", form_encode(user), form_encode(password));
            let encoded = data_encoding::BASE64.encode(pair.as_bytes());
            let value = HeaderValue::from_str(&format!("Basic {encoded}"))
                .map_err(|_| invalid("the client credentials are not a valid header value"))?;
            builder = builder.header(header::AUTHORIZATION, sensitive(value));
        }
    }
    let body = match form {
        Some(body) => {
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            body
        }
        None => Bytes::new(),
    };
    builder
        .body(Full::new(body))
        .map_err(|_| invalid("the URL is not a valid request target"))
}

fn sensitive(mut value: HeaderValue) -> HeaderValue {
    // Keeps the header out of hyper's debug output and HPACK tables.
    value.set_sensitive(true);
    value
}

/// `application/x-www-form-urlencoded` of one value, as RFC 6749 §2.3.1 asks for Basic.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn connect_error(url: &UpstreamUrl, error: &hyper_util::client::legacy::Error) -> FetchError {
    let host = host_of(url);
    // The cause chain names what happened (refused, reset, certificate); only our own
    // wording of it goes into the message. TLS errors arrive wrapped in I/O errors, whose
    // inner error is not their `source`, so both links are followed.
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = next {
        if chain.len() >= 16 {
            break;
        }
        chain.push(cause);
        next = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    if let Some(tls) = chain.iter().find_map(|c| c.downcast_ref::<rustls::Error>()) {
        return FetchError::Tls {
            host,
            reason: tls_reason(tls),
        };
    }
    let kind = chain
        .iter()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
        .find(|k| *k != std::io::ErrorKind::Other);
    let reason = match kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_owned(),
        Some(std::io::ErrorKind::TimedOut) => "the connection timed out".to_owned(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".to_owned(),
        Some(kind) => format!("{kind}"),
        None if error.is_connect() => "the connection could not be opened".to_owned(),
        None => "the connection closed before an answer".to_owned(),
    };
    FetchError::Unreachable { host, reason }
}

fn tls_reason(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(why) => format!("invalid certificate ({why:?})"),
        rustls::Error::InvalidMessage(_) => "the upstream does not speak TLS there".to_owned(),
        _ => "handshake failed".to_owned(),
    }
}

/// The host (and port, when not the default) an error names.
pub fn host_of(url: &UpstreamUrl) -> String {
    let host = url.url().host_str().unwrap_or("upstream");
    match url.url().port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// At most [`EXCERPT_CHARS_MAX`] characters of `body`, escaped and quoted, ellipsis
/// when cut: safe to put in a log line or an error page.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::from("\"");
    let mut chars = text.chars();
    for c in chars.by_ref().take(EXCERPT_CHARS_MAX) {
        out.extend(c.escape_default());
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://accounts.example.com",
            "http://127.0.0.1:8080/x",
            "http://127.9.9.9/",
            "http://[::1]:9/",
            "http://localhost:3000/cb",
            "http://LOCALHOST/",
        ] {
            assert!(UpstreamUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://localhost.example.com/",
            "ftp://127.0.0.1/",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "example.com",
        ] {
            assert!(UpstreamUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        let long = "<html>\n\u{1b}[31m".repeat(40);
        let short = excerpt(long.as_bytes());
        assert!(short.chars().count() <= EXCERPT_CHARS_MAX * 10 + 3);
        assert!(!short.contains('\n') && !short.contains('\u{1b}'));
        assert!(short.ends_with("…\""));
    }
}
