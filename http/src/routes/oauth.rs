//! The OAuth 2 endpoints: the token endpoint with the authorization-code (RFC 6749 §4.1,
//! RFC 7636), refresh-token (§6), client-credentials (§4.4) and device-code (RFC 8628)
//! grants; device authorization (RFC 8628 §3.1); revocation (RFC 7009); introspection
//! (RFC 7662); and the metadata a client discovers them by (RFC 8414, and the JWKS of
//! RFC 7517). Errors here are RFC 6749 §5.2 JSON, not problem+json, because OAuth clients
//! parse them. Client authentication is `client_secret_basic`, `client_secret_post` or, for
//! public clients, `client_id` alone; each is checked with one keyed digest.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tessera_core::oauth::client_token::{check_client_token_live, verify_client_token};
use tessera_core::oauth::{
    AuthenticatedClient, ClientCredentials, ExchangeAuthorizationCode, GrantType, PollDeviceCode,
    RevokeClientToken, StartDeviceAuthorization, authenticate_client, issue_client_token,
};
use tessera_core::refresh::{TokensIssued, presented_digest};
use tessera_core::token::verify_access_token;
use tessera_core::{Env, Rejection, usecase};
use zeroize::Zeroizing;

use super::{Ctx, Reply};
use crate::auth;
use crate::body::{self, json};
use crate::problem::Problem;
use crate::security_log::{Occurrence, SecurityEvent};

/// An RFC 6749 §5.2 error answer.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    const fn new(status: StatusCode, error: &'static str, description: &'static str) -> Self {
        Self {
            status,
            error,
            description: Cow::Borrowed(description),
        }
    }

    pub fn into_response(self) -> Reply {
        let mut resp = json(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\""),
            );
        }
        resp
    }
}

const INVALID_GRANT: OAuthError = OAuthError::new(
    StatusCode::BAD_REQUEST,
    "invalid_grant",
    "the refresh token is invalid, expired, revoked or already used",
);
const INVALID_CLIENT: OAuthError = OAuthError::new(
    StatusCode::UNAUTHORIZED,
    "invalid_client",
    "client authentication failed",
);

fn invalid_request(description: &'static str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Reads an `application/x-www-form-urlencoded` body into its parameters, refusing a
/// parameter given twice (RFC 6749 §3.2).
async fn read_form(
    ctx: Ctx<'_>,
    req: Request<Incoming>,
) -> Result<(http::request::Parts, Vec<(String, String)>), OAuthError> {
    let (parts, body) = req.into_parts();
    let pairs = body::read_form(body, &parts.headers, ctx.app.config.body_bytes_max)
        .await
        .map_err(|e| invalid_request(e.description()))?;
    Ok((parts, pairs))
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Signs the access token of `issued` and renders the token response (RFC 6749 §5.1).
pub fn token_response(ctx: Ctx<'_>, issued: &TokensIssued) -> Result<Reply, Problem> {
    let access_token = ctx.app.signing.signer().sign(&issued.access).map_err(|e| {
        tracing::error!(error = %e, "signing an access token failed");
        Problem::internal()
    })?;
    let mut resp = json(
        StatusCode::OK,
        &TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: issued.access.expires_in_secs(),
            refresh_token: issued.refresh.expose().to_owned(),
            scope: issued.access.scope.clone(),
        },
    );
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// The `grant_type` of the device flow (RFC 8628 §3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The RFC 6749 §5.2 (RFC 8628 §3.5) error for a rejection at the token endpoint.
fn rejection_error(r: &Rejection) -> OAuthError {
    let description = match r {
        Rejection::SlowDown { interval_secs } => Cow::Owned(format!(
            "polling too fast: wait {interval_secs} seconds between polls"
        )),
        other => Cow::Owned(other.to_string()),
    };
    match r.oauth_error() {
        Some("invalid_client") => OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description,
        },
        Some(error) => OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        },
        None => OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description,
        },
    }
}

/// HTTP Basic client credentials (RFC 6749 §2.3.1): `None` without a Basic header, an
/// `invalid_client` error for a malformed one. Both halves are form-urlencoded.
fn basic_credentials(
    headers: &http::HeaderMap,
) -> Result<Option<(String, Zeroizing<String>)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Some((scheme, rest)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Err(INVALID_CLIENT);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = Zeroizing::new(
        data_encoding::BASE64
            .decode(rest.trim().as_bytes())
            .map_err(|_| INVALID_CLIENT)?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| INVALID_CLIENT)?;
    let (id, secret) = text.split_once(':').ok_or(INVALID_CLIENT)?;
    let decode = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
    };
    let id = decode(id).ok_or(INVALID_CLIENT)?;
    let secret = Zeroizing::new(decode(secret).ok_or(INVALID_CLIENT)?);
    Ok(Some((id, secret)))
}

/// The client credentials a request carried: HTTP Basic (`client_secret_basic`), the form
/// (`client_secret_post`, or a public client's bare `client_id`), never two methods at once
/// (RFC 6749 §2.3).
fn presented_client(
    parts: &http::request::Parts,
    pairs: &[(String, String)],
) -> Result<Option<ClientCredentials>, OAuthError> {
    let form_id = param(pairs, "client_id");
    let form_secret = param(pairs, "client_secret");
    match basic_credentials(&parts.headers)? {
        Some((id, secret)) => {
            if form_secret.is_some() {
                return Err(invalid_request(
                    "use one client authentication method: HTTP Basic or client_secret, not both",
                ));
            }
            if form_id.is_some_and(|f| f != id) {
                return Err(invalid_request(
                    "client_id differs from the client that authenticated",
                ));
            }
            Ok(Some(ClientCredentials {
                client_id: id,
                secret: Some(secret),
            }))
        }
        None => Ok(form_id.map(|id| ClientCredentials {
            client_id: id.to_owned(),
            secret: form_secret.map(|s| Zeroizing::new(s.to_owned())),
        })),
    }
}

fn log_client_failure(ctx: Ctx<'_>, parts: &http::request::Parts, reason: &'static str) {
    let client = auth::client_address(ctx.peer, &parts.headers, &ctx.app.config);
    ctx.app.metrics.security.record(
        ctx.app.engine.now().as_millis(),
        Occurrence {
            event: SecurityEvent::ClientAuthFailed,
            client,
            account: None,
            client_id: None,
            reason,
        },
    );
}

/// Authenticates the client a request names (one keyed digest under the views' read lock).
fn authenticate(
    ctx: Ctx<'_>,
    parts: &http::request::Parts,
    pairs: &[(String, String)],
    reason: &'static str,
) -> Result<AuthenticatedClient, OAuthError> {
    let Some(credentials) = presented_client(parts, pairs)? else {
        log_client_failure(ctx, parts, reason);
        return Err(INVALID_CLIENT);
    };
    let now = ctx.app.engine.now();
    let result = {
        let views = ctx.app.engine.views();
        authenticate_client(&views, &ctx.app.mfa_keys, &credentials, now)
    };
    result.map_err(|_| {
        log_client_failure(ctx, parts, reason);
        INVALID_CLIENT
    })
}

/// POST /oauth/token.
pub async fn token(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, pairs) = match read_form(ctx, req).await {
        Ok(x) => x,
        Err(e) => return Ok(e.into_response()),
    };
    let answer = match param(&pairs, "grant_type") {
        Some("refresh_token") => refresh_grant(ctx, &parts, &pairs).await?,
        Some("authorization_code") => code_grant(ctx, &parts, &pairs).await?,
        Some("client_credentials") => client_credentials_grant(ctx, &parts, &pairs)?,
        Some(DEVICE_GRANT) => device_grant(ctx, &parts, &pairs).await?,
        Some("password") => Err(unsupported(
            "the resource owner password grant is not supported (OAuth 2.1); use authorization_code with PKCE",
        )),
        Some("implicit" | "token") => Err(unsupported(
            "the implicit grant is not supported (OAuth 2.1); use authorization_code with PKCE",
        )),
        Some(_) => Err(unsupported(
            "supported: authorization_code, refresh_token, client_credentials, device_code",
        )),
        None => Err(invalid_request("grant_type is required")),
    };
    Ok(answer.unwrap_or_else(OAuthError::into_response))
}

fn unsupported(description: &'static str) -> OAuthError {
    OAuthError::new(
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        description,
    )
}

fn required<'a>(pairs: &'a [(String, String)], name: &'static str) -> Result<&'a str, OAuthError> {
    param(pairs, name).ok_or_else(|| OAuthError {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_request",
        description: Cow::Owned(format!("{name} is required")),
    })
}

type Answer = Result<Reply, OAuthError>;

async fn refresh_grant(
    ctx: Ctx<'_>,
    parts: &http::request::Parts,
    pairs: &[(String, String)],
) -> Result<Answer, Problem> {
    let presented = match required(pairs, "refresh_token") {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let Ok(command) = usecase::refresh(presented) else {
        return Ok(Err(INVALID_GRANT));
    };
    // A family issued to a registered client is refreshed by that client only (RFC 6749
    // §6): authenticated when confidential, named when public. First-party families are
    // refreshed by whoever holds the token, as before clients existed.
    let owner = {
        let views = ctx.app.engine.views();
        views
            .refresh_token(&command.presented)
            .and_then(|t| views.family(&t.family))
            .and_then(|f| f.client_id.clone())
            .filter(|c| views.client(c).is_some())
    };
    if let Some(owner) = owner {
        let client = match authenticate(ctx, parts, pairs, "refresh_token") {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if client.client_id != owner {
            return Ok(Err(INVALID_GRANT));
        }
        let allowed = ctx
            .app
            .engine
            .views()
            .client(&owner)
            .is_some_and(|c| c.allows(GrantType::RefreshToken));
        if !allowed {
            return Ok(Err(rejection_error(&Rejection::UnauthorizedClient)));
        }
    }
    let outcome = ctx.app.engine.execute(command).await?;
    Ok(match outcome.reply {
        Ok(issued) => Ok(token_response(ctx, &issued)?),
        Err(r) => Err(match r.oauth_error() {
            Some(_) => INVALID_GRANT,
            None => return Err(Problem::from(r)),
        }),
    })
}

async fn code_grant(
    ctx: Ctx<'_>,
    parts: &http::request::Parts,
    pairs: &[(String, String)],
) -> Result<Answer, Problem> {
    let client = match authenticate(ctx, parts, pairs, "authorization_code") {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let (code, redirect_uri, verifier) = match (
        required(pairs, "code"),
        required(pairs, "redirect_uri"),
        required(pairs, "code_verifier"),
    ) {
        (Ok(c), Ok(r), Ok(v)) => (c, r, v),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(Err(e)),
    };
    let command = match ExchangeAuthorizationCode::new(
        code,
        client.client_id,
        redirect_uri.to_owned(),
        verifier.to_owned(),
    ) {
        Ok(c) => c,
        Err(r) => return Ok(Err(rejection_error(&r))),
    };
    tokens_or_error(ctx, command).await
}

async fn tokens_or_error<C>(ctx: Ctx<'_>, command: C) -> Result<Answer, Problem>
where
    C: tessera_core::Decide<Reply = TokensIssued>,
{
    let outcome = ctx.app.engine.execute(command).await?;
    Ok(match outcome.reply {
        Ok(issued) => Ok(token_response(ctx, &issued)?),
        Err(r) if r.oauth_error().is_some() => Err(rejection_error(&r)),
        Err(r) => return Err(Problem::from(r)),
    })
}

async fn device_grant(
    ctx: Ctx<'_>,
    parts: &http::request::Parts,
    pairs: &[(String, String)],
) -> Result<Answer, Problem> {
    let client = match authenticate(ctx, parts, pairs, "device_code") {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let device_code = match required(pairs, "device_code") {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    match PollDeviceCode::new(device_code, client.client_id) {
        Ok(command) => tokens_or_error(ctx, command).await,
        Err(r) => Ok(Err(rejection_error(&r))),
    }
}

#[derive(Serialize)]
struct ClientTokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}

fn client_credentials_grant(
    ctx: Ctx<'_>,
    parts: &http::request::Parts,
    pairs: &[(String, String)],
) -> Result<Answer, Problem> {
    let client = match authenticate(ctx, parts, pairs, "client_credentials") {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let claims = {
        let now = ctx.app.engine.now();
        let views = ctx.app.engine.views();
        let mut rng = crate::system::os_rng();
        let mut env = Env::new(now, &mut rng, ctx.app.engine.policy());
        issue_client_token(&views, &client, param(pairs, "scope"), &mut env)
    };
    let claims = match claims {
        Ok(c) => c,
        Err(r) => return Ok(Err(rejection_error(&r))),
    };
    let access_token = ctx.app.signing.signer().sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "signing an access token failed");
        Problem::internal()
    })?;
    let mut resp = json(
        StatusCode::OK,
        &ClientTokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: claims.expires_in_secs(),
            scope: claims.scope,
        },
    );
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(Ok(resp))
}

/// A presented token, identified: what revoking it takes, whom it was issued to (a
/// registered client, or `None` for a first-party token), and what introspection says.
struct Identified {
    revocation: Option<Revocation>,
    owner: Option<String>,
    active: Option<serde_json::Value>,
}

/// A revocation of any kind of token.
enum Revocation {
    FirstParty(usecase::Revocation),
    Client(RevokeClientToken),
}

fn identify(ctx: Ctx<'_>, token: &str) -> Identified {
    let now = ctx.app.engine.now();
    let views = ctx.app.engine.views();
    let policy = ctx.app.engine.policy();
    let registered = |c: Option<String>| c.filter(|c| views.client(c).is_some());
    let revocation = usecase::revocation(token, &views, now, policy).map(Revocation::FirstParty);
    if let Some(digest) = presented_digest(token) {
        let found = views
            .refresh_token(&digest)
            .and_then(|rt| views.family(&rt.family).map(|f| (rt, f)));
        let owner = registered(found.and_then(|(_, f)| f.client_id.clone()));
        let active = found
            .filter(|(rt, f)| rt.spent_at.is_none() && f.is_live(now) && now < rt.expires_at)
            .map(|(rt, family)| {
                let username = views.account(&family.account).map(|a| a.username.clone());
                json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "sub": family.account.to_string(),
                    "username": username,
                    "exp": rt.expires_at.as_secs(),
                    "iat": rt.issued_at.as_secs(),
                    "scope": family.scope,
                    "client_id": family.client_id,
                })
            });
        return Identified {
            revocation,
            owner,
            active,
        };
    }
    if let Ok(claims) = verify_access_token(token, views.signing_keys(), now, &policy.token) {
        let owner = registered(claims.client_id.clone());
        let active = tessera_core::blocklist::check_not_revoked(&views, &claims, now)
            .is_ok()
            .then(|| {
                let username = views.account(&claims.sub).map(|a| a.username.clone());
                let mut body = serde_json::to_value(&claims).unwrap_or_else(|_| json!({}));
                if let serde_json::Value::Object(map) = &mut body {
                    map.insert("active".into(), json!(true));
                    map.insert("token_type".into(), json!("Bearer"));
                    map.insert("username".into(), json!(username));
                }
                body
            });
        return Identified {
            revocation,
            owner,
            active,
        };
    }
    if let Ok(claims) = verify_client_token(token, views.signing_keys(), now, &policy.token) {
        let active = check_client_token_live(&views, &claims).is_ok().then(|| {
            let mut body = serde_json::to_value(&claims).unwrap_or_else(|_| json!({}));
            if let serde_json::Value::Object(map) = &mut body {
                map.insert("active".into(), json!(true));
                map.insert("token_type".into(), json!("Bearer"));
            }
            body
        });
        return Identified {
            revocation: Some(Revocation::Client(RevokeClientToken {
                claims: claims.clone(),
            })),
            owner: Some(claims.client_id),
            active,
        };
    }
    Identified {
        revocation,
        owner: None,
        active: None,
    }
}

/// POST /oauth/revoke (RFC 7009). A token issued to a registered client is revoked only by
/// that client, authenticated (RFC 7009 §2.1); another client's request changes nothing
/// and is answered 200 all the same. A first-party token (issued at `/v1/login`) is revoked
/// by whoever holds it, as before clients existed. Unknown, invalid and expired tokens
/// answer 200 as well.
pub async fn revoke(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, pairs) = match read_form(ctx, req).await {
        Ok(x) => x,
        Err(e) => return Ok(e.into_response()),
    };
    let Some(token) = param(&pairs, "token") else {
        return Ok(invalid_request("token is required").into_response());
    };
    let caller = match presented_client(&parts, &pairs) {
        Ok(Some(_)) => match authenticate(ctx, &parts, &pairs, "revocation") {
            Ok(c) => Some(c.client_id),
            Err(e) => return Ok(e.into_response()),
        },
        Ok(None) => None,
        Err(e) => return Ok(e.into_response()),
    };
    let found = identify(ctx, token);
    let allowed = match (&found.owner, &caller) {
        (None, None) => true,
        (Some(owner), Some(caller)) => owner == caller,
        (None, Some(_)) => false,
        (Some(_), None) => {
            log_client_failure(ctx, &parts, "revocation");
            return Ok(INVALID_CLIENT.into_response());
        }
    };
    match found.revocation.filter(|_| allowed) {
        Some(Revocation::FirstParty(command)) => {
            ctx.app
                .engine
                .execute(command)
                .await?
                .reply
                .map_err(Problem::from)?;
        }
        Some(Revocation::Client(command)) => {
            ctx.app
                .engine
                .execute(command)
                .await?
                .reply
                .map_err(Problem::from)?;
        }
        None => {}
    }
    Ok(json(StatusCode::OK, &json!({})))
}

/// Checks HTTP Basic client credentials against the operator-configured introspection
/// client, in constant time.
fn introspection_client_ok(ctx: Ctx<'_>, parts: &http::request::Parts) -> bool {
    let (Some(id), Some(secret)) = (
        &ctx.app.config.introspection_client_id,
        &ctx.app.config.introspection_client_secret,
    ) else {
        return false;
    };
    let Ok(Some((given_id, given_secret))) = basic_credentials(&parts.headers) else {
        return false;
    };
    let id_ok = given_id.as_bytes().ct_eq(id.as_bytes());
    let secret_ok = given_secret.as_bytes().ct_eq(secret.as_bytes());
    bool::from(id_ok & secret_ok)
}

/// POST /oauth/introspect (RFC 7662). Takes client authentication: a registered client sees
/// its own tokens only; the introspection client the operator designates
/// (`http.introspection_client_id`, with the configured secret or as a registered client)
/// sees every token. Anything else is `{"active": false}`.
pub async fn introspect(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, pairs) = match read_form(ctx, req).await {
        Ok(x) => x,
        Err(e) => return Ok(e.into_response()),
    };
    let caller = if introspection_client_ok(ctx, &parts) {
        ctx.app.config.introspection_client_id.clone()
    } else {
        match authenticate(ctx, &parts, &pairs, "introspection") {
            Ok(c) => Some(c.client_id),
            Err(e) => return Ok(e.into_response()),
        }
    };
    let designated = caller.is_some() && caller == ctx.app.config.introspection_client_id;
    let Some(token) = param(&pairs, "token") else {
        return Ok(invalid_request("token is required").into_response());
    };
    let found = identify(ctx, token);
    let visible = designated || (found.owner.is_some() && found.owner == caller);
    match found.active.filter(|_| visible) {
        Some(body) => Ok(json(StatusCode::OK, &body)),
        None => Ok(json(StatusCode::OK, &json!({"active": false}))),
    }
}

#[derive(Serialize)]
struct DeviceAuthorizationResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u32,
}

/// POST /oauth/device_authorization (RFC 8628 §3.1).
pub async fn device_authorization(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, pairs) = match read_form(ctx, req).await {
        Ok(x) => x,
        Err(e) => return Ok(e.into_response()),
    };
    let client = match authenticate(ctx, &parts, &pairs, "device_authorization") {
        Ok(c) => c,
        Err(e) => return Ok(e.into_response()),
    };
    let address = auth::client_address(ctx.peer, &parts.headers, &ctx.app.config);
    let command = StartDeviceAuthorization {
        client_id: client.client_id,
        scope: param(&pairs, "scope").map(str::to_owned),
        address: Some(address),
    };
    let started = match ctx.app.engine.execute(command).await?.reply {
        Ok(s) => s,
        Err(r) if r.oauth_error().is_some() => return Ok(rejection_error(&r).into_response()),
        Err(r) => return Err(Problem::from(r)),
    };
    let base = ctx.app.config.public_url.trim_end_matches('/');
    let verification_uri = format!("{base}/device");
    let mut resp = json(
        StatusCode::OK,
        &DeviceAuthorizationResponse {
            device_code: started.device_code.expose().to_owned(),
            verification_uri_complete: tessera_core::oauth::with_query(
                &verification_uri,
                &[("user_code", &started.user_code)],
            ),
            verification_uri,
            user_code: started.user_code,
            expires_in: started.expires_in_secs,
            interval: started.interval_secs,
        },
    );
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// GET /.well-known/jwks.json.
pub fn jwks(ctx: Ctx<'_>) -> Reply {
    let set = ctx
        .app
        .engine
        .views()
        .signing_keys()
        .jwks(ctx.app.engine.now());
    let bytes = serde_json::to_vec(&set).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Short, so that a rotation reaches verifiers quickly; the old key stays published far
    // longer than this.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// GET /.well-known/oauth-authorization-server (RFC 8414). `issuer` is the public URL, the
/// one the metadata is fetched under; the implicit and password grants are not listed
/// because they are refused (OAuth 2.1).
pub fn metadata(ctx: Ctx<'_>) -> Reply {
    let base = ctx.app.config.public_url.trim_end_matches('/');
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let grant_types: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
    let body = json!({
        "issuer": ctx.app.engine.policy().token.issuer,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "device_authorization_endpoint": format!("{base}/oauth/device_authorization"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "grant_types_supported": grant_types,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": true,
    });
    let mut resp = json(StatusCode::OK, &body);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}
