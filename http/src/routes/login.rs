//! POST /v1/login and POST /v1/logout.
//!
//! Login runs [`LoginRequest`]: the address pre-check and the account lookup, the password
//! check on the argon2 pool (against the decoy hash when there is no such account, so
//! unknown usernames cost the same), then the writer's decision. Every failure, whatever its
//! cause, is the same 401.

use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;
use tessera_core::blocklist::SignOutEverywhere;
use tessera_core::refresh::LogoutFamily;
use tessera_core::session::Logout;
use tessera_core::usecase::LoginRequest;
use tessera_core::{Command, LoginMode, Rejection};
use zeroize::Zeroizing;

use super::{Ctx, Reply};
use crate::auth::{self, Allowed, Caller, check_same_site, clear_session_cookie};
use crate::body::{empty, read_json};
use crate::problem::Problem;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Token,
    Session,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: Zeroizing<String>,
    #[serde(default)]
    mode: Mode,
}

pub async fn login(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let input: LoginBody = read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let mode = match input.mode {
        Mode::Session => {
            // A forged cross-site login would plant the attacker's session in the victim's
            // browser (login CSRF).
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
    let outcome = ctx
        .app
        .run(LoginRequest {
            username: input.username,
            password: input.password.into(),
            mode,
            client,
            supersedes: auth::presented_session(ctx.app, &parts.headers),
        })
        .await?;
    super::mfa::login_reply(ctx, outcome.reply?, outcome.recorded_at)
}

pub async fn logout(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let caller =
        auth::caller_for(ctx.app, req.method(), req.headers(), Allowed::EnrolmentOnly).await?;
    let command = match &caller {
        Caller::Session(s) => Command::from(Logout { session: s.id }),
        // A token-mode login: end its refresh family (and the session it is bound to).
        Caller::Bearer(claims) => match (claims.fam, claims.sid) {
            (Some(family), _) => LogoutFamily { family }.into(),
            (None, Some(session)) => Logout { session }.into(),
            (None, None) => return Err(Problem::invalid_token()),
        },
    };
    let outcome = ctx.app.engine.execute(command).await?;
    match outcome.reply {
        Ok(_) | Err(Rejection::Unauthenticated) => {
            let mut resp = empty(StatusCode::NO_CONTENT);
            if matches!(caller, Caller::Session(_)) {
                resp.headers_mut()
                    .insert(header::SET_COOKIE, clear_session_cookie());
            }
            Ok(resp)
        }
        Err(r) => Err(r.into()),
    }
}

/// POST /v1/logout/everywhere: every session and refresh family of the account ends, and
/// every access token issued before now is refused (the account's not-before time).
pub async fn logout_everywhere(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let input = auth::step_up_body(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let second_factor = input.second_factor()?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let command = SignOutEverywhere {
        account: caller.account(),
        by: tessera_core::Actor::Holder,
        step_up: caller.auth_time().into(),
    };
    auth::run_sensitive(
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
    let mut resp = empty(StatusCode::NO_CONTENT);
    if matches!(caller, Caller::Session(_)) {
        resp.headers_mut()
            .insert(header::SET_COOKIE, clear_session_cookie());
    }
    Ok(resp)
}
