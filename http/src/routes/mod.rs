//! Routing: method and path to handler. Handlers parse, ask the engine, and map the reply.

mod accounts;
pub mod api_keys;
mod grants;
mod identities;
mod login;
mod mfa;
pub mod oauth;
mod ops;
mod sessions;
pub mod webauthn;

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
    if let Some(page) = crate::pages::classify(path) {
        return page;
    }
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
        (_, "/v1/api-keys") => Route::ApiKeys,
        (_, "/v1/api-keys/whoami") => Route::ApiKeyWhoami,
        (_, "/v1/api-keys/leaked") => Route::ApiKeyLeaked,
        (_, p) if p.starts_with("/v1/api-keys/") && p.ends_with("/rotate") => Route::ApiKeyRotate,
        (_, p) if p.starts_with("/v1/api-keys/") => Route::ApiKeyItem,
        (_, "/v1/tokens/verify") => Route::TokenVerify,
        (_, "/healthz") => Route::Healthz,
        (_, "/metrics") => Route::Metrics,
        (_, "/oauth/token") => Route::Token,
        (_, "/oauth/revoke") => Route::Revoke,
        (_, "/oauth/introspect") => Route::Introspect,
        (_, "/.well-known/jwks.json") => Route::Jwks,
        (_, "/.well-known/oauth-authorization-server") => Route::Metadata,
        (_, "/oauth/device_authorization") => Route::DeviceAuthorization,
        (_, "/v1/grants") => Route::Grants,
        (_, p) if p.starts_with("/v1/grants/") => Route::GrantDelete,
        (_, "/v1/identities") => Route::Identities,
        (_, p) if p.starts_with("/v1/identities/") => Route::IdentityItem,
        (_, "/v1/webauthn/register/start") => Route::WebauthnRegisterStart,
        (_, "/v1/webauthn/register/finish") => Route::WebauthnRegisterFinish,
        (_, "/v1/webauthn/credentials") => Route::WebauthnCredentials,
        (_, p) if p.starts_with("/v1/webauthn/credentials/") => Route::WebauthnCredentialItem,
        (_, "/v1/login/webauthn/start") => Route::LoginWebauthnStart,
        (_, "/v1/login/webauthn/finish") => Route::LoginWebauthnFinish,
        _ => Route::Other,
    }
}

/// The path template of each route the router serves, as the OpenAPI document names it
/// (`{…}` for a path parameter); `None` for [`Route::Other`].
pub fn template(route: Route) -> Option<&'static str> {
    Some(match route {
        Route::Accounts => "/v1/accounts",
        Route::Login => "/v1/login",
        Route::Logout => "/v1/logout",
        Route::LogoutEverywhere => "/v1/logout/everywhere",
        Route::Me => "/v1/me",
        Route::Sessions => "/v1/sessions",
        Route::SessionDelete => "/v1/sessions/{id}",
        Route::Password => "/v1/password",
        Route::PasswordReset => "/v1/password/reset",
        Route::LoginMfa => "/v1/login/mfa",
        Route::MfaTotp => "/v1/mfa/totp",
        Route::MfaConfirm => "/v1/mfa/totp/confirm",
        Route::MfaBackupCodes => "/v1/mfa/backup-codes",
        Route::Healthz => "/healthz",
        Route::Metrics => "/metrics",
        Route::Token => "/oauth/token",
        Route::Revoke => "/oauth/revoke",
        Route::Introspect => "/oauth/introspect",
        Route::Jwks => "/.well-known/jwks.json",
        Route::Metadata => "/.well-known/oauth-authorization-server",
        Route::PageAuthorize => "/oauth/authorize",
        Route::PageHome => "/",
        Route::PageLogin => "/login",
        Route::PageLoginMfa => "/login/mfa",
        Route::PageLogout => "/logout",
        Route::PageAsset => crate::pages::STYLESHEET_PATH,
        Route::PageDevice => "/device",
        Route::DeviceAuthorization => "/oauth/device_authorization",
        Route::Grants => "/v1/grants",
        Route::GrantDelete => "/v1/grants/{client_id}",
        Route::ApiKeys => "/v1/api-keys",
        Route::ApiKeyWhoami => "/v1/api-keys/whoami",
        Route::ApiKeyLeaked => "/v1/api-keys/leaked",
        Route::ApiKeyRotate => "/v1/api-keys/{id}/rotate",
        Route::ApiKeyItem => "/v1/api-keys/{id}",
        Route::TokenVerify => "/v1/tokens/verify",
        Route::PageExternalLogin => "/v1/login/{provider}",
        Route::PageExternalCallback => "/v1/login/{provider}/callback",
        Route::Identities => "/v1/identities",
        Route::IdentityItem => "/v1/identities/{provider}",
        Route::WebauthnRegisterStart => "/v1/webauthn/register/start",
        Route::WebauthnRegisterFinish => "/v1/webauthn/register/finish",
        Route::WebauthnCredentials => "/v1/webauthn/credentials",
        Route::WebauthnCredentialItem => "/v1/webauthn/credentials/{id}",
        Route::LoginWebauthnStart => "/v1/login/webauthn/start",
        Route::LoginWebauthnFinish => "/v1/login/webauthn/finish",
        Route::PageScript => crate::pages::SCRIPT_PATH,
        Route::PageLoginPasskey => "/login/passkey",
        Route::PagePasskeys => "/account/passkeys",
        Route::Other => return None,
    })
}

/// Every (method, path template) the router serves, HEAD left out (every GET answers it):
/// what the OpenAPI document must describe, no more and no less.
pub fn served() -> Vec<(&'static str, &'static str)> {
    Route::ALL
        .into_iter()
        .filter_map(|r| template(r).map(|t| (r, t)))
        .flat_map(|(r, t)| {
            allowed(r)
                .split(", ")
                .filter(|m| !m.is_empty() && *m != "HEAD")
                .map(move |m| (m, t))
        })
        .collect()
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
        | Route::Introspect
        | Route::DeviceAuthorization
        | Route::ApiKeyLeaked
        | Route::ApiKeyRotate
        | Route::TokenVerify
        | Route::WebauthnRegisterStart
        | Route::WebauthnRegisterFinish
        | Route::LoginWebauthnStart
        | Route::LoginWebauthnFinish => "POST",
        Route::Me
        | Route::Sessions
        | Route::Healthz
        | Route::Metrics
        | Route::Jwks
        | Route::Metadata
        | Route::Grants
        | Route::ApiKeyWhoami
        | Route::Identities
        | Route::WebauthnCredentials => "GET, HEAD",
        Route::IdentityItem => "POST, DELETE",
        Route::SessionDelete
        | Route::GrantDelete
        | Route::ApiKeyItem
        | Route::WebauthnCredentialItem => "DELETE",
        Route::ApiKeys => "GET, HEAD, POST",
        Route::MfaTotp => "POST, DELETE",
        page => crate::pages::allowed(page).unwrap_or(""),
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
    if route.is_page() {
        return crate::pages::dispatch(ctx, route, req).await;
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
        (Route::DeviceAuthorization, Method::POST) => oauth::device_authorization(ctx, req).await,
        (Route::Grants, Method::GET) => grants::list(ctx, req).await,
        (Route::GrantDelete, Method::DELETE)
            if grants::client_of_path(req.uri().path()).is_some() =>
        {
            grants::delete(ctx, req).await
        }
        (Route::GrantDelete, _) if grants::client_of_path(req.uri().path()).is_none() => {
            Err(Problem::not_found())
        }
        (Route::ApiKeys, Method::POST) => api_keys::create(ctx, req).await,
        (Route::ApiKeys, Method::GET) => api_keys::list(ctx, req).await,
        (Route::ApiKeyWhoami, Method::GET) => api_keys::whoami(ctx, req).await,
        (Route::ApiKeyLeaked, Method::POST) => api_keys::leaked(ctx, req).await,
        (Route::ApiKeyRotate | Route::ApiKeyItem, _)
            if api_keys::parse_item_path(req.uri().path())
                .is_none_or(|(_, rotate)| rotate != (route == Route::ApiKeyRotate)) =>
        {
            Err(Problem::not_found())
        }
        (Route::ApiKeyRotate, Method::POST) => api_keys::rotate(ctx, req).await,
        (Route::ApiKeyItem, Method::DELETE) => api_keys::revoke(ctx, req).await,
        (Route::TokenVerify, Method::POST) => api_keys::verify_token(ctx, req).await,
        (Route::Identities, Method::GET) => identities::list(ctx, req).await,
        (Route::IdentityItem, _) if crate::signin::identity_path(req.uri().path()).is_none() => {
            Err(Problem::not_found())
        }
        (Route::IdentityItem, Method::POST) => identities::link(ctx, req).await,
        (Route::IdentityItem, Method::DELETE) => identities::unlink(ctx, req).await,
        (Route::WebauthnRegisterStart, Method::POST) => webauthn::register_start(ctx, req).await,
        (Route::WebauthnRegisterFinish, Method::POST) => webauthn::register_finish(ctx, req).await,
        (Route::WebauthnCredentials, Method::GET) => webauthn::list(ctx, req).await,
        (Route::WebauthnCredentialItem, _)
            if webauthn::credential_of_path(req.uri().path()).is_none() =>
        {
            Err(Problem::not_found())
        }
        (Route::WebauthnCredentialItem, Method::DELETE) => webauthn::delete(ctx, req).await,
        (Route::LoginWebauthnStart, Method::POST) => webauthn::login_start(ctx, req).await,
        (Route::LoginWebauthnFinish, Method::POST) => webauthn::login_finish(ctx, req).await,
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
