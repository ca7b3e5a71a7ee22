//! WebAuthn over HTTP: registering, listing and removing credentials, the passwordless
//! login, and the second-factor assertion of a login's MFA challenge.
//!
//! The ceremony (options, signature and client-data checks) is run by
//! [`tessera_webauthn::Ceremonies`]; every decision (step-up, counters, attempt limit, the
//! last way to log in) is core's. This module parses, authenticates and maps.
//!
//! ```text
//!   POST /v1/webauthn/register/start  {kind?}                     → {ceremony, publicKey}
//!   POST /v1/webauthn/register/finish {ceremony, name, credential, password?, code?…} → 201
//!   GET  /v1/webauthn/credentials                                 → [{id, name, …}]
//!   DELETE /v1/webauthn/credentials/{id}                          → 204
//!   POST /v1/login/webauthn/start  {}            → {ceremony, publicKey}   (passkey login)
//!   POST /v1/login/webauthn/start  {mfa_token}   → {ceremony, publicKey}   (second factor)
//!   POST /v1/login/webauthn/finish {ceremony, credential, mode?}  → as /v1/login
//!   POST /v1/login/mfa {mfa_token, webauthn: {ceremony, credential}} → as /v1/login
//! ```

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::session::LoginCompleted;
use tessera_core::webauthn::{CredentialId, CredentialKind, RegisterCredential, RemoveCredential};
use tessera_core::{LoginMode, Rejection};
use tessera_storage::Outcome;
use tessera_webauthn::{Ceremonies, CeremonyId, LoginContext, Started};
use zeroize::Zeroizing;

use super::{Ctx, Reply};
use crate::auth::{self, Allowed, check_same_site};
use crate::body::{empty, json, read_json};
use crate::problem::{FieldProblem, Problem};
use crate::time::rfc3339;

/// The ceremonies, or 503 when the public URL names no host WebAuthn can use.
fn ceremonies<'a>(ctx: &Ctx<'a>) -> Result<&'a Ceremonies, Problem> {
    ctx.app.webauthn.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webauthn-unavailable",
            "WebAuthn is not available",
            "set http.public_url to this server's address with a host name",
        )
    })
}

fn ceremony_id(presented: &str) -> Result<CeremonyId, Problem> {
    CeremonyId::parse(presented)
        .ok_or_else(|| tessera_core::Rejection::WebauthnCeremonyInvalid.into())
}

/// `{ceremony, publicKey, expires_in}`: the options as webauthn-rs gives them, plus the id.
fn started_reply(started: Started, ttl_ms: u64) -> Reply {
    let mut body = match started.options {
        Value::Object(map) => map,
        other => {
            let mut map = serde_json::Map::new();
            map.insert("publicKey".into(), other);
            map
        }
    };
    body.insert(
        "ceremony".into(),
        Value::String(started.ceremony.expose().to_owned()),
    );
    body.insert("expires_in".into(), Value::from(ttl_ms / 1000));
    json(StatusCode::OK, &Value::Object(body))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RegisterStart {
    #[serde(default)]
    kind: Option<String>,
}

/// POST /v1/webauthn/register/start: creation options for a passkey (the default) or a
/// security key. The fresh re-authentication is checked at `finish`, where the credential
/// is recorded.
pub async fn register_start(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller_for(
        ctx.app,
        &parts.method,
        &parts.headers,
        Allowed::EnrolmentOnly,
    )
    .await?;
    let ceremonies = ceremonies(&ctx)?;
    let input: RegisterStart = if crate::body::is_json(&parts.headers) {
        read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?
    } else {
        RegisterStart::default()
    };
    let kind = match input.kind.as_deref() {
        None => CredentialKind::Passkey,
        Some(k) => CredentialKind::parse(k).ok_or_else(|| {
            Problem::unprocessable(
                "kind is passkey or security_key",
                vec![FieldProblem {
                    pointer: "/kind".into(),
                    code: "webauthn_kind_invalid".into(),
                    detail: "passkey or security_key".into(),
                }],
            )
        })?,
    };
    let now = ctx.app.engine.now();
    let started = {
        let views = ctx.app.engine.views();
        ceremonies.start_registration(&views, caller.account(), kind, now)
    }
    .map_err(|e| Problem::from(e.rejection()))?;
    Ok(started_reply(started, ctx.app.webauthn_limits.ttl_ms))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterFinish {
    ceremony: String,
    name: String,
    credential: Value,
    #[serde(default)]
    password: Option<Zeroizing<String>>,
    #[serde(default)]
    code: Option<Zeroizing<String>>,
    #[serde(default)]
    backup_code: Option<Zeroizing<String>>,
}

#[derive(Serialize)]
struct Registered {
    id: String,
    name: String,
}

/// POST /v1/webauthn/register/finish: verifies the attestation, then records the credential
/// after the step-up (the password re-entered here, or a login within the re-authentication
/// window). 201 `{id, name}`.
pub async fn register_finish(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller_for(
        ctx.app,
        &parts.method,
        &parts.headers,
        Allowed::EnrolmentOnly,
    )
    .await?;
    let ceremonies = ceremonies(&ctx)?;
    let input: RegisterFinish =
        read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let second_factor = auth::second_factor(&input.password, &input.code, &input.backup_code)?;
    let ceremony = ceremony_id(&input.ceremony)?;
    let credential = ceremonies
        .finish_registration(
            &ceremony,
            caller.account(),
            &input.credential,
            ctx.app.engine.now(),
        )
        .map_err(|e| Problem::from(e.rejection()))?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let command = RegisterCredential {
        account: caller.account(),
        name: input.name,
        credential,
        step_up: caller.auth_time().into(),
    };
    let registered = auth::run_sensitive(
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
    Ok(json(
        StatusCode::CREATED,
        &Registered {
            id: registered.id.to_string(),
            name: registered.name,
        },
    ))
}

#[derive(Serialize)]
struct Listed {
    id: String,
    name: String,
    kind: &'static str,
    created_at: String,
    last_used_at: Option<String>,
    transports: Vec<String>,
    discoverable: bool,
    backup_eligible: bool,
    /// The counter went backwards once and the policy let the login through.
    clone_suspected: bool,
}

/// GET /v1/webauthn/credentials: the caller's credentials, oldest first.
pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let caller =
        auth::caller_for(ctx.app, req.method(), req.headers(), Allowed::EnrolmentOnly).await?;
    let listed: Vec<Listed> = {
        let views = ctx.app.engine.views();
        tessera_core::webauthn::list(&views, &caller.account())
    }
    .into_iter()
    .map(|c| Listed {
        id: c.id.to_string(),
        name: c.name,
        kind: c.kind.as_str(),
        created_at: rfc3339(c.created_at),
        last_used_at: c.last_used_at.map(rfc3339),
        transports: c.transports,
        discoverable: c.discoverable,
        backup_eligible: c.backup_eligible,
        clone_suspected: c.flagged,
    })
    .collect();
    Ok(json(StatusCode::OK, &listed))
}

/// The credential id of `/v1/webauthn/credentials/{id}`, if the path has that shape.
pub fn credential_of_path(path: &str) -> Option<CredentialId> {
    path.strip_prefix("/v1/webauthn/credentials/")
        .filter(|rest| !rest.contains('/'))
        .and_then(CredentialId::parse)
}

/// DELETE /v1/webauthn/credentials/{id}: 204, unless it is the account's last way to log in.
pub async fn delete(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let caller =
        auth::caller_for(ctx.app, req.method(), req.headers(), Allowed::EnrolmentOnly).await?;
    let credential = credential_of_path(req.uri().path()).ok_or_else(Problem::not_found)?;
    let command = RemoveCredential {
        account: caller.account(),
        credential,
    };
    ctx.app.engine.execute(command).await?.reply?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LoginStart {
    #[serde(default)]
    mfa_token: Option<Zeroizing<String>>,
}

/// POST /v1/login/webauthn/start: request options for a passwordless login (no body), or,
/// with `{mfa_token}`, for answering that login's MFA challenge with a credential.
pub async fn login_start(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let ceremonies = ceremonies(&ctx)?;
    let input: LoginStart = if crate::body::is_json(&parts.headers) {
        read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?
    } else {
        LoginStart::default()
    };
    let now = ctx.app.engine.now();
    let started = match input.mfa_token {
        None => ceremonies.start_login(now),
        Some(token) => {
            let digest = tessera_core::mfa::presented_challenge_digest(&token)
                .ok_or(tessera_core::Rejection::MfaChallengeInvalid)?;
            let views = ctx.app.engine.views();
            let challenge = views
                .challenge_by_digest(&digest)
                .filter(|c| c.is_live(now) && !c.exhausted())
                .ok_or(tessera_core::Rejection::MfaChallengeInvalid)?;
            ceremonies.start_second_factor(&views, challenge, now)
        }
    }
    .map_err(|e| Problem::from(e.rejection()))?;
    Ok(started_reply(started, ctx.app.webauthn_limits.ttl_ms))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Token,
    Session,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginFinish {
    ceremony: String,
    credential: Value,
    #[serde(default)]
    mode: Mode,
}

/// POST /v1/login/webauthn/finish: a passwordless login with a passkey; answers as
/// /v1/login does (tokens, or the session cookie).
pub async fn login_finish(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let ceremonies = ceremonies(&ctx)?;
    let input: LoginFinish = read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let mode = match input.mode {
        Mode::Session => {
            check_same_site(&parts.method, &parts.headers, &ctx.app.config)?;
            LoginMode::Session
        }
        Mode::Token => LoginMode::Token,
    };
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let outcome = passkey_login(
        ctx,
        ceremonies,
        &input.ceremony,
        &input.credential,
        mode,
        client,
        auth::presented_session(ctx.app, &parts.headers),
    )
    .await?;
    let done = outcome.reply.map_err(login_problem)?;
    super::mfa::completed_reply(ctx, done, outcome.recorded_at)
}

/// A login refusal: an unknown credential is a failed login (401), not a missing resource.
/// Refused assertions are security events (a phishing page relaying answers from another
/// origin, a cloned authenticator).
pub fn login_problem(r: Rejection) -> Problem {
    use crate::security_log::{SecurityEvent, SecurityNote};
    const ASSERTION: SecurityNote = SecurityNote {
        event: SecurityEvent::WebauthnRefused,
        reason: "assertion_invalid",
    };
    const UNKNOWN: SecurityNote = SecurityNote {
        event: SecurityEvent::WebauthnRefused,
        reason: "unknown_credential",
    };
    const COUNTER: SecurityNote = SecurityNote {
        event: SecurityEvent::WebauthnRefused,
        reason: "counter_regressed",
    };
    match r {
        Rejection::WebauthnCredentialUnknown => Problem::new(
            StatusCode::UNAUTHORIZED,
            r.slug(),
            "Unauthorized",
            r.to_string(),
        )
        .reporting(&UNKNOWN),
        Rejection::WebauthnAssertionInvalid { .. } => Problem::from(r).reporting(&ASSERTION),
        Rejection::WebauthnCounterRegressed => Problem::from(r).reporting(&COUNTER),
        other => other.into(),
    }
}

/// The passwordless login use case: the ceremony, then core's decision. Shared by the JSON
/// route and the login page.
pub async fn passkey_login(
    ctx: Ctx<'_>,
    ceremonies: &Ceremonies,
    ceremony: &str,
    credential: &Value,
    mode: LoginMode,
    client: Option<std::net::IpAddr>,
    supersedes: Option<tessera_core::SessionId>,
) -> Result<Outcome<LoginCompleted>, Problem> {
    let ceremony = ceremony_id(ceremony)?;
    let context = LoginContext { client, supersedes };
    let command = {
        let views = ctx.app.engine.views();
        ceremonies.passkey_login_command(
            &views,
            &ceremony,
            credential,
            ctx.app.engine.now(),
            mode,
            context,
        )
    }
    .map_err(|e| {
        tracing::info!(error = %e, "passkey login refused by the ceremony");
        login_problem(e.rejection())
    })?;
    Ok(ctx.app.engine.execute(command).await?)
}

/// `{ceremony, credential}` inside a `/v1/login/mfa` answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnAnswer {
    pub ceremony: String,
    pub credential: Value,
}

impl std::fmt::Debug for WebauthnAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ceremony id binds the login to this client: never in logs.
        f.debug_struct("WebauthnAnswer").finish_non_exhaustive()
    }
}

/// The second-factor use case: the ceremony bound to the challenge, then core's decision,
/// where a failed ceremony counts as a wrong code. Shared by `/v1/login/mfa` and the pages.
pub async fn answer_challenge(
    ctx: Ctx<'_>,
    mfa_token: &str,
    answer: &WebauthnAnswer,
    client: Option<std::net::IpAddr>,
    supersedes: Option<tessera_core::SessionId>,
) -> Result<Outcome<LoginCompleted>, Problem> {
    let ceremonies = ceremonies(&ctx)?;
    let presented = tessera_core::mfa::presented_challenge_digest(mfa_token)
        .ok_or(tessera_core::Rejection::MfaChallengeInvalid)?;
    let ceremony = ceremony_id(&answer.ceremony)?;
    let context = LoginContext { client, supersedes };
    let answer = {
        let views = ctx.app.engine.views();
        ceremonies.second_factor_command(
            &views,
            presented,
            &ceremony,
            &answer.credential,
            ctx.app.engine.now(),
            context,
        )?
    };
    if let Some(e) = &answer.refused {
        tracing::info!(error = %e, "second-factor assertion refused by the ceremony");
    }
    let command = answer.command;
    Ok(ctx.app.engine.execute(command).await?)
}
