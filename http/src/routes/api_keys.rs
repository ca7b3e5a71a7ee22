//! API keys over HTTP: create (step-up), list with usage, rotate, revoke, `whoami` by key,
//! token verification by key, and secret-scanning leak alerts. Every rule is the core's
//! (`tessera_core::apikey`); this module parses, authenticates and maps.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tessera_core::apikey::{
    ApiKeyIssued, ApiKeyKind, ApiKeySpec, ApiKeyView, Cidr, CreateApiKey, Environment, KeyRoute,
    LeakOutcome, LeakReport, ReportLeakedApiKeys, RevokeApiKey, RotateApiKey, format,
};
use tessera_core::{ApiKeyId, Timestamp};
use zeroize::Zeroizing;

use super::{Ctx, Reply};
use crate::apikey::key_caller;
use crate::auth::{self, Caller};
use crate::body::{empty, json, parse_json, read_bytes, read_json};
use crate::problem::{FieldProblem, Problem};
use crate::security_log::{SecurityEvent, SecurityNote};
use crate::time::rfc3339;

/// `GET /v1/api-keys/whoami`: any environment, no scope needed.
pub const WHOAMI: KeyRoute = KeyRoute {
    live_only: false,
    scope: None,
};

/// `POST /v1/tokens/verify`: live keys with `tokens:read` only.
pub const TOKEN_VERIFY: KeyRoute = KeyRoute {
    live_only: true,
    scope: Some("tokens:read"),
};

/// The largest secret-scanning alert accepted, in bytes.
pub const LEAK_ALERT_BYTES_MAX: usize = 256 * 1024;
/// The most tokens one alert may name.
pub const LEAK_ALERT_TOKENS_MAX: usize = 1000;

/// `live` or `test`, as the API spells them.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum EnvironmentName {
    Live,
    Test,
}

/// `secret` or `publishable`.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum KindName {
    Secret,
    Publishable,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    environment: EnvironmentName,
    #[serde(default)]
    kind: Option<KindName>,
    #[serde(default)]
    scopes: Vec<String>,
    expires_in: u64,
    #[serde(default)]
    allowed_cidrs: Vec<String>,
    #[serde(default)]
    rate_limit: Option<u32>,
    /// The password re-entered for the step-up, when the caller's login is not recent.
    #[serde(default)]
    password: Option<Zeroizing<String>>,
    /// With MFA on, the second factor beside the re-entered password.
    #[serde(default)]
    code: Option<Zeroizing<String>>,
    #[serde(default)]
    backup_code: Option<Zeroizing<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    overlap_seconds: Option<u64>,
    #[serde(default)]
    password: Option<Zeroizing<String>>,
    #[serde(default)]
    code: Option<Zeroizing<String>>,
    #[serde(default)]
    backup_code: Option<Zeroizing<String>>,
}

#[derive(Serialize)]
struct Issued<'a> {
    id: String,
    key: &'a str,
    prefix: &'a str,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<Previous>,
}

#[derive(Serialize)]
struct Previous {
    id: String,
    retires_at: Option<String>,
}

fn issued_reply(issued: &ApiKeyIssued, previous: Option<Previous>) -> Reply {
    json(
        StatusCode::CREATED,
        &Issued {
            id: issued.id.to_string(),
            key: &issued.key,
            prefix: &issued.prefix,
            expires_at: rfc3339(issued.expires_at),
            previous,
        },
    )
}

/// The scopes a caller holds: a token's granted scope, or every scope for a first-party
/// login (a session, or a token without a scope).
fn creator_scopes(caller: &Caller) -> Option<Vec<String>> {
    match caller {
        Caller::Bearer(c) => c
            .scope
            .as_ref()
            .map(|s| s.split_whitespace().map(str::to_owned).collect()),
        Caller::Session(_) => None,
    }
}

fn cidrs(texts: &[String]) -> Result<Vec<Cidr>, Problem> {
    texts
        .iter()
        .map(|t| {
            Cidr::parse(t).ok_or_else(|| {
                Problem::unprocessable(
                    "an address range is not valid",
                    vec![FieldProblem {
                        pointer: "/allowed_cidrs".into(),
                        code: "invalid_cidr".into(),
                        detail: format!("{t:?} is not an address or address/prefix"),
                    }],
                )
            })
        })
        .collect()
}

/// POST /v1/api-keys: a key for an application, shown once. A sensitive action.
pub async fn create(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let input: CreateBody = read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let command = CreateApiKey {
        account: caller.account(),
        creator_scopes: creator_scopes(&caller),
        spec: ApiKeySpec {
            name: input.name,
            kind: match input.kind {
                None | Some(KindName::Secret) => ApiKeyKind::Secret,
                Some(KindName::Publishable) => ApiKeyKind::Publishable,
            },
            environment: match input.environment {
                EnvironmentName::Live => Environment::Live,
                EnvironmentName::Test => Environment::Test,
            },
            scopes: input.scopes,
            allowed_cidrs: cidrs(&input.allowed_cidrs)?,
            rate_limit_per_minute: input.rate_limit,
            expires_in_secs: input.expires_in,
        },
        pepper: ctx.app.api_keys.pepper.clone(),
        step_up: caller.auth_time().into(),
    };
    let second_factor = auth::second_factor(&input.password, &input.code, &input.backup_code)?;
    let issued = auth::run_sensitive(
        ctx.app,
        command,
        &caller,
        input.password,
        second_factor,
        client,
    )
    .await?
    .reply
    .map_err(auth::sensitive_problem)?;
    Ok(issued_reply(&issued, None))
}

#[derive(Serialize)]
struct Usage {
    requests: u64,
    accepted: u64,
    refused: u64,
    rate_limited: u64,
    first_used_at: Option<String>,
    last_used_at: Option<String>,
    last_addresses: Vec<String>,
}

#[derive(Serialize)]
struct Listed {
    id: String,
    name: String,
    kind: &'static str,
    environment: &'static str,
    prefix: String,
    scopes: Vec<String>,
    allowed_cidrs: Vec<String>,
    rate_limit: Option<u32>,
    status: &'static str,
    created_at: String,
    expires_at: String,
    expiring_soon: bool,
    rotated_from: Option<String>,
    rotated_to: Option<String>,
    retires_at: Option<String>,
    revoked_at: Option<String>,
    usage: Usage,
}

fn listed(k: &ApiKeyView, now: Timestamp, warning_days: u64) -> Listed {
    let u = &k.usage;
    let state = k.state(now);
    Listed {
        id: k.id.to_string(),
        name: k.name.clone(),
        kind: k.kind.as_str(),
        environment: k.environment.as_str(),
        prefix: k.prefix.clone(),
        scopes: k.scopes.clone(),
        allowed_cidrs: k.allowed_cidrs.iter().map(ToString::to_string).collect(),
        rate_limit: k.rate_limit_per_minute,
        status: state.as_str(),
        created_at: rfc3339(k.created_at),
        expires_at: rfc3339(k.expires_at),
        expiring_soon: state.accepted()
            && k.expires_at.since(now) <= warning_days.saturating_mul(86_400_000),
        rotated_from: k.rotated_from.map(|id| id.to_string()),
        rotated_to: k.rotated_to.map(|id| id.to_string()),
        retires_at: k.retires_at.map(rfc3339),
        revoked_at: k.revoked.as_ref().map(|(at, _)| rfc3339(*at)),
        usage: Usage {
            requests: u.requests,
            accepted: u.accepted,
            refused: u.refused,
            rate_limited: u.rate_limited,
            first_used_at: u.first_used_at.map(rfc3339),
            last_used_at: u.last_used_at.map(rfc3339),
            last_addresses: u.last_addresses.iter().map(ToString::to_string).collect(),
        },
    }
}

/// GET /v1/api-keys: the caller's keys with their usage; never a key itself.
pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let caller = auth::caller(ctx.app, req.method(), req.headers()).await?;
    let now = ctx.app.engine.now();
    let warning_days = ctx.app.engine.policy().api_keys.expiry_warning_days;
    let views = ctx.app.engine.views();
    let keys: Vec<Listed> = views
        .api_keys_of(&caller.account())
        .map(|k| listed(k, now, warning_days))
        .collect();
    drop(views);
    Ok(json(StatusCode::OK, &keys))
}

/// `/v1/api-keys/{id}` and `/v1/api-keys/{id}/rotate`: the id, if well formed.
pub fn parse_item_path(path: &str) -> Option<(ApiKeyId, bool)> {
    let rest = path.strip_prefix("/v1/api-keys/")?;
    let (id, rotate) = match rest.strip_suffix("/rotate") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    ApiKeyId::parse(id).map(|id| (id, rotate))
}

/// POST /v1/api-keys/{id}/rotate: a successor with the same settings; the old key works
/// until the overlap ends. Issues a key, so a sensitive action too.
pub async fn rotate(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (id, _) = parse_item_path(req.uri().path()).ok_or_else(Problem::not_found)?;
    let (parts, body) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let input: RotateBody = if parts.headers.get(http::header::CONTENT_TYPE).is_some() {
        read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?
    } else {
        RotateBody::default()
    };
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let command = RotateApiKey {
        account: caller.account(),
        key: id,
        overlap_secs: input.overlap_seconds,
        pepper: ctx.app.api_keys.pepper.clone(),
        step_up: caller.auth_time().into(),
    };
    let second_factor = auth::second_factor(&input.password, &input.code, &input.backup_code)?;
    let issued = auth::run_sensitive(
        ctx.app,
        command,
        &caller,
        input.password,
        second_factor,
        client,
    )
    .await?
    .reply
    .map_err(auth::sensitive_problem)?;
    let retires_at = ctx
        .app
        .engine
        .views()
        .api_key(&id)
        .and_then(|k| k.retires_at);
    Ok(issued_reply(
        &issued,
        Some(Previous {
            id: id.to_string(),
            retires_at: retires_at.map(rfc3339),
        }),
    ))
}

/// DELETE /v1/api-keys/{id}: revoked at once.
pub async fn revoke(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (id, _) = parse_item_path(req.uri().path()).ok_or_else(Problem::not_found)?;
    let caller = auth::caller(ctx.app, req.method(), req.headers()).await?;
    let outcome = ctx
        .app
        .engine
        .execute(RevokeApiKey {
            account: caller.account(),
            key: id,
        })
        .await?;
    outcome.reply?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// GET /v1/api-keys/whoami: the application the presented key identifies.
pub async fn whoami(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let client = auth::client_address(ctx.peer, req.headers(), &ctx.app.config);
    let caller = key_caller(ctx.app, req.uri(), req.headers(), client, WHOAMI)?;
    let k = &caller.key;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "key_id": k.id.to_string(),
            "name": k.name,
            "kind": k.kind.as_str(),
            "environment": k.environment.as_str(),
            "scopes": k.scopes,
            "expires_at": rfc3339(k.expires_at),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: Zeroizing<String>,
}

/// POST /v1/tokens/verify: an application holding a live key with `tokens:read` checks a
/// user's access token (signature, claims, revocation).
pub async fn verify_token(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let client = auth::client_address(ctx.peer, &parts.headers, &ctx.app.config);
    key_caller(ctx.app, &parts.uri, &parts.headers, client, TOKEN_VERIFY)?;
    let input: VerifyBody = read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let answer = match auth::verify_bearer(ctx.app, &input.token) {
        Ok(c) => serde_json::json!({
            "active": true,
            "sub": c.sub.to_string(),
            "scope": c.scope,
            "exp": c.exp,
        }),
        Err(_) => serde_json::json!({ "active": false }),
    };
    Ok(json(StatusCode::OK, &answer))
}

/// One token of a secret-scanning alert (GitHub's partner-program shape).
#[derive(Deserialize)]
struct AlertToken {
    token: Zeroizing<String>,
    #[serde(rename = "type", default)]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Serialize)]
struct AlertAnswer {
    token_type: String,
    /// Our display prefix, when the token is one of ours in shape; never the token.
    token_prefix: Option<String>,
    label: &'static str,
    outcome: &'static str,
}

const ALERT_UNSIGNED: SecurityNote = SecurityNote {
    event: SecurityEvent::LeakAlertRefused,
    reason: "unsigned_or_unknown_key",
};
const ALERT_BAD_SIGNATURE: SecurityNote = SecurityNote {
    event: SecurityEvent::LeakAlertRefused,
    reason: "bad_signature",
};

fn alert_refused(note: &'static SecurityNote) -> Problem {
    Problem {
        status_header: Some("Signature"),
        ..Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-signature",
            "Unauthorized",
            "the alert is not signed by a configured secret-scanning key",
        )
    }
    .reporting(note)
}

/// POST /v1/api-keys/leaked: a secret-scanning alert, signed (ECDSA P-256, SHA-256, over
/// the raw body) by a key the operator configured. Each of our keys in it is revoked, with
/// where it was found; the answer says what happened to each token.
pub async fn leaked(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let (Some(key_id), Some(signature)) = (
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
    ) else {
        return Err(alert_refused(&ALERT_UNSIGNED));
    };
    let Some(key) = ctx
        .app
        .config
        .secret_scanning_keys
        .iter()
        .find(|k| k.key_identifier == key_id)
    else {
        return Err(alert_refused(&ALERT_UNSIGNED));
    };
    let bytes = read_bytes(body, &parts.headers, LEAK_ALERT_BYTES_MAX).await?;
    if !crate::leak::verify(&key.key, signature, &bytes) {
        return Err(alert_refused(&ALERT_BAD_SIGNATURE));
    }
    let tokens: Vec<AlertToken> = parse_json(&bytes)?;
    if tokens.len() > LEAK_ALERT_TOKENS_MAX {
        return Err(Problem::unprocessable(
            format!("an alert may name at most {LEAK_ALERT_TOKENS_MAX} tokens"),
            vec![],
        ));
    }
    let vendor = ctx.app.engine.policy().api_keys.vendor.clone();
    let pepper = &ctx.app.api_keys.pepper;
    let prefixes: Vec<Option<String>> = tokens
        .iter()
        .map(|t| {
            format::parse(&vendor, t.token.trim())
                .ok()
                .map(|p| p.display_prefix.to_owned())
        })
        .collect();
    let reports = tokens
        .iter()
        .zip(&prefixes)
        .map(|(t, p)| LeakReport {
            digest: p.as_ref().map(|_| pepper.digest(t.token.trim())),
            source: t.source.clone().unwrap_or_else(|| "unknown".into()),
            url: t.url.clone(),
        })
        .collect();
    let outcomes = ctx
        .app
        .engine
        .execute(ReportLeakedApiKeys { reports })
        .await?
        .reply?;
    let answers: Vec<AlertAnswer> = tokens
        .into_iter()
        .zip(prefixes)
        .zip(outcomes)
        .map(|((t, prefix), outcome)| {
            let (label, outcome) = match outcome {
                LeakOutcome::Revoked(_) => ("true_positive", "revoked"),
                LeakOutcome::AlreadyInactive(_) => ("true_positive", "already_inactive"),
                LeakOutcome::Unknown => ("false_positive", "unknown"),
            };
            AlertAnswer {
                token_type: t.token_type,
                token_prefix: prefix,
                label,
                outcome,
            }
        })
        .collect();
    Ok(json(StatusCode::OK, &answers))
}
