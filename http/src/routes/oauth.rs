//! The OAuth 2 endpoints that exist so far: the refresh-token grant (RFC 6749 §6), token
//! revocation (RFC 7009), introspection (RFC 7662), and the metadata a client discovers them
//! by (RFC 8414, and the JWKS of RFC 7517). Errors here are RFC 6749 §5.2 JSON, not
//! problem+json, because OAuth clients parse them.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tessera_core::refresh::{TokensIssued, presented_digest};
use tessera_core::token::verify_access_token;
use tessera_core::usecase;

use super::{Ctx, Reply};
use crate::auth;
use crate::body::{self, json};
use crate::problem::Problem;
use crate::security_log::{Occurrence, SecurityEvent};

/// An RFC 6749 §5.2 error answer.
#[derive(Debug, Clone, Copy)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: &'static str,
}

impl OAuthError {
    const fn new(status: StatusCode, error: &'static str, description: &'static str) -> Self {
        Self {
            status,
            error,
            description,
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

/// POST /oauth/token.
pub async fn token(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let pairs = match read_form(ctx, req).await {
        Ok((_, pairs)) => pairs,
        Err(e) => return Ok(e.into_response()),
    };
    match param(&pairs, "grant_type") {
        Some("refresh_token") => {}
        Some(_) => {
            return Ok(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only refresh_token is supported here",
            )
            .into_response());
        }
        None => return Ok(invalid_request("grant_type is required").into_response()),
    }
    let Some(presented) = param(&pairs, "refresh_token") else {
        return Ok(invalid_request("refresh_token is required").into_response());
    };
    let Ok(command) = usecase::refresh(presented) else {
        return Ok(INVALID_GRANT.into_response());
    };
    let outcome = ctx.app.engine.execute(command).await?;
    match outcome.reply {
        Ok(issued) => token_response(ctx, &issued),
        Err(r) => Ok(match r.oauth_error() {
            Some(_) => INVALID_GRANT.into_response(),
            None => Problem::from(r).into_response(),
        }),
    }
}

/// POST /oauth/revoke (RFC 7009). Holding a token is the right to revoke it, so no client
/// authentication is asked. Unknown, invalid and expired tokens answer 200 as well.
pub async fn revoke(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let pairs = match read_form(ctx, req).await {
        Ok((_, pairs)) => pairs,
        Err(e) => return Ok(e.into_response()),
    };
    let Some(token) = param(&pairs, "token") else {
        return Ok(invalid_request("token is required").into_response());
    };
    let command = {
        let now = ctx.app.engine.now();
        let views = ctx.app.engine.views();
        usecase::revocation(token, &views, now, ctx.app.engine.policy())
    };
    if let Some(command) = command {
        ctx.app
            .engine
            .execute(command)
            .await?
            .reply
            .map_err(Problem::from)?;
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
    let Some(encoded) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return false;
    };
    let Ok(decoded) = data_encoding::BASE64.decode(encoded.as_bytes()) else {
        return false;
    };
    let Some((given_id, given_secret)) = std::str::from_utf8(&decoded)
        .ok()
        .and_then(|s| s.split_once(':'))
    else {
        return false;
    };
    // RFC 6749 §2.3.1: both are form-urlencoded before being joined.
    let decode = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
    };
    let (Some(given_id), Some(given_secret)) = (decode(given_id), decode(given_secret)) else {
        return false;
    };
    let id_ok = given_id.as_bytes().ct_eq(id.as_bytes());
    let secret_ok = given_secret.as_bytes().ct_eq(secret.as_bytes());
    bool::from(id_ok & secret_ok)
}

/// POST /oauth/introspect (RFC 7662), for the operator-configured resource-server client.
pub async fn introspect(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, pairs) = match read_form(ctx, req).await {
        Ok(x) => x,
        Err(e) => return Ok(e.into_response()),
    };
    if !introspection_client_ok(ctx, &parts) {
        let client = auth::client_address(ctx.peer, &parts.headers, &ctx.app.config);
        ctx.app.metrics.security.record(
            ctx.app.engine.now().as_millis(),
            Occurrence {
                event: SecurityEvent::ClientAuthFailed,
                client,
                account: None,
                client_id: None,
                reason: "introspection",
            },
        );
        return Ok(INVALID_CLIENT.into_response());
    }
    let Some(token) = param(&pairs, "token") else {
        return Ok(invalid_request("token is required").into_response());
    };
    let now = ctx.app.engine.now();
    let views = ctx.app.engine.views();
    let inactive = || json(StatusCode::OK, &json!({"active": false}));
    if let Some(digest) = presented_digest(token) {
        let Some(rt) = views.refresh_token(&digest) else {
            return Ok(inactive());
        };
        let Some(family) = views.family(&rt.family) else {
            return Ok(inactive());
        };
        if rt.spent_at.is_some() || !family.is_live(now) || now >= rt.expires_at {
            return Ok(inactive());
        }
        let username = views.account(&family.account).map(|a| a.username.clone());
        return Ok(json(
            StatusCode::OK,
            &json!({
                "active": true,
                "token_type": "refresh_token",
                "sub": family.account.to_string(),
                "username": username,
                "exp": rt.expires_at.as_secs(),
                "iat": rt.issued_at.as_secs(),
                "scope": family.scope,
                "client_id": family.client_id,
            }),
        ));
    }
    let Ok(claims) = verify_access_token(
        token,
        views.signing_keys(),
        now,
        &ctx.app.engine.policy().token,
    ) else {
        return Ok(inactive());
    };
    if tessera_core::blocklist::check_not_revoked(&views, &claims, now).is_err() {
        return Ok(inactive());
    }
    let username = views.account(&claims.sub).map(|a| a.username.clone());
    let mut body = serde_json::to_value(&claims).unwrap_or_else(|_| json!({}));
    if let serde_json::Value::Object(map) = &mut body {
        map.insert("active".into(), json!(true));
        map.insert("token_type".into(), json!("Bearer"));
        map.insert("username".into(), json!(username));
    }
    Ok(json(StatusCode::OK, &body))
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

/// GET /.well-known/oauth-authorization-server (RFC 8414): only what exists.
pub fn metadata(ctx: Ctx<'_>) -> Reply {
    let base = ctx.app.config.public_url.trim_end_matches('/');
    let mut body = json!({
        "issuer": ctx.app.engine.policy().token.issuer,
        "token_endpoint": format!("{base}/oauth/token"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "grant_types_supported": ["refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
    });
    if ctx.app.config.introspection_client_id.is_none()
        && let serde_json::Value::Object(map) = &mut body
    {
        map.remove("introspection_endpoint");
        map.remove("introspection_endpoint_auth_methods_supported");
    }
    let mut resp = json(StatusCode::OK, &body);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}
