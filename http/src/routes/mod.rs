//! Routing: method and path to handler. Handlers parse, ask the engine, and map the reply.

mod accounts;
mod login;
mod mfa;
pub mod oauth;
mod ops;
mod sessions;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::App;
use crate::metrics::Route;
use crate::problem::Problem;

pub type Reply = Response<Full<Bytes>>;

/// Per-request context handlers need besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub app: &'a App,
    pub peer: SocketAddr,
}

/// Which route a request is for, before it is handled (for metrics).
pub fn classify(method: &Method, path: &str) -> Route {
    match (method, path) {
        (_, "/v1/accounts") => Route::Accounts,
        (_, "/v1/login") => Route::Login,
        (_, "/v1/logout") => Route::Logout,
        (_, "/v1/logout/everywhere") => Route::LogoutEverywhere,
        (_, "/v1/me") => Route::Me,
        (_, "/v1/sessions") => Route::Sessions,
        (_, p) if p.starts_with("/v1/sessions/") => Route::SessionDelete,
        (_, "/v1/password") => Route::Password,
        (_, "/v1/password/reset") => Route::PasswordReset,
        (_, "/v1/login/mfa") => Route::LoginMfa,
        (_, "/v1/mfa/totp") => Route::MfaTotp,
        (_, "/v1/mfa/totp/confirm") => Route::MfaConfirm,
        (_, "/v1/mfa/backup-codes") => Route::MfaBackupCodes,
        (_, "/healthz") => Route::Healthz,
        (_, "/metrics") => Route::Metrics,
        (_, "/oauth/token") => Route::Token,
        (_, "/oauth/revoke") => Route::Revoke,
        (_, "/oauth/introspect") => Route::Introspect,
        (_, "/.well-known/jwks.json") => Route::Jwks,
        (_, "/.well-known/oauth-authorization-server") => Route::Metadata,
        _ => Route::Other,
    }
}

/// The methods `route` accepts, for `Allow`. Every GET route also answers HEAD.
fn allowed(route: Route) -> &'static str {
    match route {
        Route::Accounts
        | Route::Login
        | Route::Logout
        | Route::LogoutEverywhere
        | Route::Password
        | Route::PasswordReset
        | Route::LoginMfa
        | Route::MfaConfirm
        | Route::MfaBackupCodes
        | Route::Token
        | Route::Revoke
        | Route::Introspect => "POST",
        Route::Me
        | Route::Sessions
        | Route::Healthz
        | Route::Metrics
        | Route::Jwks
        | Route::Metadata => "GET, HEAD",
        Route::SessionDelete => "DELETE",
        Route::MfaTotp => "POST, DELETE",
        Route::Other => "",
    }
}

pub async fn dispatch(
    ctx: Ctx<'_>,
    route: Route,
    mut req: Request<Incoming>,
) -> Result<Reply, Problem> {
    // HEAD is GET without the body (RFC 9110 section 9.3.2): the connection knows the request
    // was HEAD and sends the GET answer's head only.
    if req.method() == Method::HEAD && allowed(route).contains("HEAD") {
        *req.method_mut() = Method::GET;
    }
    let method = req.method().clone();
    match (route, method) {
        (Route::Accounts, Method::POST) => accounts::register(ctx, req).await,
        (Route::Login, Method::POST) => login::login(ctx, req).await,
        (Route::Logout, Method::POST) => login::logout(ctx, req).await,
        (Route::LogoutEverywhere, Method::POST) => login::logout_everywhere(ctx, req).await,
        (Route::Me, Method::GET) => sessions::me(ctx, req).await,
        (Route::Sessions, Method::GET) => sessions::list(ctx, req).await,
        (Route::SessionDelete, Method::DELETE) => sessions::delete(ctx, req).await,
        (Route::Password, Method::POST) => sessions::change_password(ctx, req).await,
        (Route::PasswordReset, Method::POST) => sessions::reset_password(ctx, req).await,
        (Route::LoginMfa, Method::POST) => mfa::answer_challenge(ctx, req).await,
        (Route::MfaTotp, Method::POST) => mfa::start_enrolment(ctx, req).await,
        (Route::MfaTotp, Method::DELETE) => mfa::disable(ctx, req).await,
        (Route::MfaConfirm, Method::POST) => mfa::confirm(ctx, req).await,
        (Route::MfaBackupCodes, Method::POST) => mfa::replace_backup_codes(ctx, req).await,
        (Route::Healthz, Method::GET) => Ok(ops::healthz(ctx)),
        (Route::Metrics, Method::GET) => Ok(ops::metrics(ctx)),
        (Route::Token, Method::POST) => oauth::token(ctx, req).await,
        (Route::Revoke, Method::POST) => oauth::revoke(ctx, req).await,
        (Route::Introspect, Method::POST) => oauth::introspect(ctx, req).await,
        (Route::Jwks, Method::GET) => Ok(oauth::jwks(ctx)),
        (Route::Metadata, Method::GET) => Ok(oauth::metadata(ctx)),
        (Route::Other, _) => Err(Problem::not_found()),
        (Route::SessionDelete, _) if parse_session_path(req.uri().path()).is_none() => {
            Err(Problem::not_found())
        }
        _ => Err(Problem::method_not_allowed(allowed(route))),
    }
}

fn parse_session_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/sessions/")
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}
