//! GET /v1/me, GET /v1/sessions, DELETE /v1/sessions/{id}, POST /v1/password.

use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tessera_core::SessionId;
use tessera_core::session::RevokeSession;
use tessera_core::usecase::ChangePasswordRequest;
use zeroize::Zeroizing;

use super::{Ctx, Reply, parse_session_path};
use crate::auth::{self, Allowed, set_session_cookie};
use crate::body::{empty, json, read_json};
use crate::problem::Problem;
use crate::security_log::{Occurrence, SecurityEvent};
use crate::time::rfc3339;

#[derive(Serialize)]
struct Me {
    id: String,
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    mfa_enabled: bool,
    /// A TOTP enrolment waits for its confirming code.
    mfa_pending: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_codes_remaining: Option<usize>,
    /// The policy requires a second factor and the account has none yet: every other
    /// authenticated route is refused until TOTP is confirmed.
    mfa_enrolment_required: bool,
}

pub async fn me(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let caller =
        auth::caller_for(ctx.app, req.method(), req.headers(), Allowed::EnrolmentOnly).await?;
    let enrolment_required = auth::enrolment_required(ctx.app, &caller.account());
    let (account, mfa) = {
        let views = ctx.app.engine.views();
        let account = views
            .account(&caller.account())
            .cloned()
            .ok_or_else(Problem::unauthenticated)?;
        (
            account,
            views.mfa_status(&caller.account(), ctx.app.engine.now()),
        )
    };
    Ok(json(
        StatusCode::OK,
        &Me {
            id: account.id.to_string(),
            username: account.username,
            email: account.email,
            mfa_enabled: mfa.enabled,
            mfa_pending: mfa.pending,
            backup_codes_remaining: mfa.enabled.then_some(mfa.backup_codes_remaining),
            mfa_enrolment_required: enrolment_required,
        },
    ))
}

#[derive(Serialize)]
struct SessionItem {
    id: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    current: bool,
}

pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let caller = auth::caller(ctx.app, req.method(), req.headers()).await?;
    let current = caller.session();
    let now = ctx.app.engine.now();
    let mut items: Vec<SessionItem> = ctx
        .app
        .engine
        .views()
        .sessions_of(&caller.account())
        .filter(|s| s.is_live(now))
        .map(|s| SessionItem {
            id: s.id.to_string(),
            created_at: rfc3339(s.created_at),
            last_seen_at: rfc3339(s.last_seen_at),
            expires_at: rfc3339(s.deadline()),
            current: Some(s.id) == current,
        })
        .collect();
    items.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(json(StatusCode::OK, &items))
}

pub async fn delete(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let id = parse_session_path(parts.uri.path())
        .and_then(SessionId::parse)
        .ok_or_else(Problem::not_found)?;
    let input = auth::step_up_body(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let second_factor = input.second_factor()?;
    let client_addr = auth::client_address(ctx.peer, &parts.headers, &ctx.app.config);
    let client = Some(client_addr);
    let command = RevokeSession {
        account: caller.account(),
        session: id,
        step_up: caller.auth_time().into(),
    };
    let outcome = auth::run_sensitive(
        ctx.app,
        command,
        &caller,
        input.password,
        second_factor,
        client,
    )
    .await?;
    if outcome.reply.is_err() {
        // Answered as not found either way; the log says when the session was someone
        // else's.
        let foreign = ctx
            .app
            .engine
            .views()
            .session(&id)
            .is_some_and(|s| s.account != caller.account());
        if foreign {
            ctx.app.metrics.security.record(
                ctx.app.engine.now().as_millis(),
                Occurrence {
                    event: SecurityEvent::ForeignResource,
                    client: client_addr,
                    account: Some(caller.account()),
                    client_id: None,
                    reason: "session_delete",
                },
            );
        }
    }
    outcome.reply.map_err(auth::sensitive_problem)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: Zeroizing<String>,
    new_password: Zeroizing<String>,
}

pub async fn change_password(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let input: PasswordBody =
        read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let request = ChangePasswordRequest {
        account: caller.account(),
        current_password: input.current_password.into(),
        new_password: input.new_password.into(),
        current_session: caller.session(),
        client,
    };
    let outcome = ctx.app.run(request).await?;
    let session = outcome.reply.map_err(|r| match r {
        // The caller is authenticated; a wrong current password is a refusal, not a logout.
        tessera_core::Rejection::InvalidCredentials => Problem::new(
            http::StatusCode::FORBIDDEN,
            "wrong-current-password",
            "Current password is wrong",
            "the current password does not match",
        ),
        other => other.into(),
    })?;
    let mut resp = empty(StatusCode::NO_CONTENT);
    // A cookie caller continues under a fresh cookie; a bearer caller's session (if any) was
    // rotated too, and its tokens were revoked: it logs in again.
    if let (Some(issued), auth::Caller::Session(_)) = (session, &caller) {
        resp.headers_mut().insert(
            header::SET_COOKIE,
            set_session_cookie(
                issued.secret.expose(),
                issued.expires_at,
                outcome.recorded_at,
            ),
        );
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    reset_token: Zeroizing<String>,
    new_password: Zeroizing<String>,
}

/// `POST /v1/password/reset`: a new password with the reset token an operator delivered
/// after the legacy sunset. No credential: the token is one. A token that was never issued,
/// was spent or replaced, or has expired gets the same 400.
pub async fn reset_password(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let input: ResetBody = read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let request = tessera_core::usecase::ResetPasswordRequest {
        reset_token: input.reset_token,
        new_password: input.new_password.into(),
        client,
    };
    ctx.app.run(request).await?.reply?;
    Ok(empty(StatusCode::NO_CONTENT))
}
