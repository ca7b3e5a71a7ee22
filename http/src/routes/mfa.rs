//! MFA over HTTP (RFC 6238 TOTP with backup codes): TOTP enrolment and confirmation, the
//! second login step, backup codes, and turning MFA off. Every decision (code checks, the
//! 5-attempt limit, replay of a spent step, throttling) is the core's; this module parses,
//! authenticates and maps.

use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tessera_core::mfa::{DisableTotp, MfaAnswer, ReplaceBackupCodes, StartTotpEnrolment};
use tessera_core::session::{LoginCompleted, LoginReply};
use tessera_core::usecase;
use zeroize::Zeroizing;

use super::{Ctx, Reply};
use crate::auth::{self, Allowed, Caller, check_same_site, set_session_cookie};
use crate::body::{empty, json, read_json};
use crate::problem::{FieldProblem, Problem};
use crate::time::rfc3339;

/// `{code}` or `{backup_code}`: exactly one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proof {
    #[serde(default)]
    code: Option<Zeroizing<String>>,
    #[serde(default)]
    backup_code: Option<Zeroizing<String>>,
    /// The password re-entered for the step-up, when the caller's login is not recent.
    #[serde(default)]
    password: Option<Zeroizing<String>>,
}

impl Proof {
    fn answer(&self) -> Result<MfaAnswer, Problem> {
        match (&self.code, &self.backup_code) {
            (Some(code), None) => MfaAnswer::totp(code).map_err(Problem::from),
            (None, Some(code)) => MfaAnswer::backup(code).map_err(Problem::from),
            _ => Err(Problem::unprocessable(
                "send exactly one of code and backup_code",
                vec![FieldProblem {
                    pointer: "/code".into(),
                    code: "one_of_code_or_backup_code".into(),
                    detail: "exactly one is required".into(),
                }],
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeAnswer {
    mfa_token: Zeroizing<String>,
    #[serde(default)]
    code: Option<Zeroizing<String>>,
    #[serde(default)]
    backup_code: Option<Zeroizing<String>>,
    /// A WebAuthn assertion, from a ceremony started with this `mfa_token`.
    #[serde(default)]
    webauthn: Option<super::webauthn::WebauthnAnswer>,
}

#[derive(Serialize)]
struct SessionLogin {
    session_id_hint: String,
    expires_at: String,
}

/// Renders a password login's answer: the login itself, or the MFA challenge.
pub fn login_reply(
    ctx: Ctx<'_>,
    reply: LoginReply,
    recorded_at: tessera_core::Timestamp,
) -> Result<Reply, Problem> {
    match reply {
        LoginReply::Completed(done) => completed_reply(ctx, done, recorded_at),
        LoginReply::MfaRequired(challenge) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "mfa_required": true,
                "mfa_token": challenge.mfa_token.expose(),
                "methods": challenge.methods,
                "expires_in": challenge.expires_in_secs,
            }),
        )),
    }
}

/// Renders a completed login: the cookie in session mode, the tokens in token mode.
pub fn completed_reply(
    ctx: Ctx<'_>,
    done: LoginCompleted,
    recorded_at: tessera_core::Timestamp,
) -> Result<Reply, Problem> {
    match done {
        LoginCompleted::Session(issued) => {
            let mut resp = json(
                StatusCode::OK,
                &SessionLogin {
                    session_id_hint: issued.session.to_string(),
                    expires_at: rfc3339(issued.expires_at),
                },
            );
            resp.headers_mut().insert(
                header::SET_COOKIE,
                set_session_cookie(issued.secret.expose(), issued.expires_at, recorded_at),
            );
            Ok(resp)
        }
        LoginCompleted::Tokens(issued) => super::oauth::token_response(ctx, &issued),
    }
}

/// POST /v1/login/mfa: the second step.
pub async fn answer_challenge(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    // The step can set a session cookie: the same login-CSRF check as /v1/login.
    check_same_site(&parts.method, &parts.headers, &ctx.app.config)?;
    let input: ChallengeAnswer =
        read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    if let Some(answer) = &input.webauthn {
        if input.code.is_some() || input.backup_code.is_some() {
            return Err(Problem::bad_request(
                "send one of code, backup_code and webauthn",
            ));
        }
        let client = Some(auth::client_address(
            ctx.peer,
            &parts.headers,
            &ctx.app.config,
        ));
        let supersedes = auth::presented_session(ctx.app, &parts.headers);
        let outcome =
            super::webauthn::answer_challenge(ctx, &input.mfa_token, answer, client, supersedes)
                .await?;
        let done = outcome.reply.map_err(super::webauthn::login_problem)?;
        return completed_reply(ctx, done, outcome.recorded_at);
    }
    let answer = Proof {
        code: input.code,
        backup_code: input.backup_code,
        password: None,
    }
    .answer()?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let command = usecase::answer_challenge(
        &input.mfa_token,
        answer,
        ctx.app.mfa_keys.clone(),
        client,
        auth::presented_session(ctx.app, &parts.headers),
    )?;
    let outcome = ctx.app.engine.execute(command).await?;
    completed_reply(ctx, outcome.reply?, outcome.recorded_at)
}

/// POST /v1/mfa/totp: starts enrolment; pending until confirmed.
pub async fn start_enrolment(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller_for(
        ctx.app,
        &parts.method,
        &parts.headers,
        Allowed::EnrolmentOnly,
    )
    .await?;
    let input = auth::step_up_body(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let second_factor = input.second_factor()?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let command = StartTotpEnrolment {
        account: caller.account(),
        keys: ctx.app.mfa_keys.clone(),
        step_up: caller.auth_time().into(),
    };
    let e = auth::run_sensitive(
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
        StatusCode::OK,
        &serde_json::json!({
            "secret": e.secret_base32.as_str(),
            "otpauth_uri": e.otpauth_uri.as_str(),
            "qr_svg": e.qr_svg.as_str(),
            "expires_at": rfc3339(e.expires_at),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    code: Zeroizing<String>,
}

/// POST /v1/mfa/totp/confirm: a valid code turns MFA on; the answer has the backup codes.
pub async fn confirm(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller_for(
        ctx.app,
        &parts.method,
        &parts.headers,
        Allowed::EnrolmentOnly,
    )
    .await?;
    let input: ConfirmBody = read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let command = usecase::confirm_totp(
        caller.account(),
        &input.code,
        ctx.app.mfa_keys.clone(),
        client,
    )?;
    let backup_codes = ctx.app.engine.execute(command).await?.reply?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "backup_codes": backup_codes.expose() }),
    ))
}

/// An authenticated request that proves the second factor with `{code}` or `{backup_code}`:
/// who, the proof, and from where.
async fn proven(
    ctx: Ctx<'_>,
    req: Request<Incoming>,
) -> Result<
    (
        Caller,
        MfaAnswer,
        Option<std::net::IpAddr>,
        Option<Zeroizing<String>>,
    ),
    Problem,
> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let mut proof: Proof = read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let answer = proof.answer()?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let password = proof.password.take();
    Ok((caller, answer, client, password))
}

/// POST /v1/mfa/backup-codes: a new set; the old one stops working.
pub async fn replace_backup_codes(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (caller, answer, client, password) = proven(ctx, req).await?;
    let command = ReplaceBackupCodes {
        account: caller.account(),
        answer,
        keys: ctx.app.mfa_keys.clone(),
        client,
        step_up: caller.auth_time().into(),
    };
    let backup_codes = auth::run_sensitive(ctx.app, command, &caller, password, None, client)
        .await?
        .reply
        .map_err(auth::sensitive_problem)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "backup_codes": backup_codes.expose() }),
    ))
}

/// DELETE /v1/mfa/totp: MFA off, proven with a code; other sessions and families end.
pub async fn disable(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (caller, answer, client, password) = proven(ctx, req).await?;
    let current_family = match &caller {
        Caller::Bearer(claims) => claims.fam,
        Caller::Session(_) => None,
    };
    let command = DisableTotp {
        account: caller.account(),
        answer,
        keys: ctx.app.mfa_keys.clone(),
        client,
        current_session: caller.session(),
        current_family,
        step_up: caller.auth_time().into(),
    };
    auth::run_sensitive(ctx.app, command, &caller, password, None, client)
        .await?
        .reply
        .map_err(auth::sensitive_problem)?;
    Ok(empty(StatusCode::NO_CONTENT))
}
