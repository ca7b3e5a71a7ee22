//! The holder's external identities: GET /v1/identities lists them; POST
//! /v1/identities/{provider} links one (a redirect through the provider, whose callback
//! links instead of signing in); DELETE /v1/identities/{provider} unlinks one, never the
//! account's last way to sign in.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use tessera_core::identity::{SignInPurpose, UnlinkIdentity};

use super::{Ctx, Reply};
use crate::auth;
use crate::body::{empty, json};
use crate::pages::return_to::ReturnTo;
use crate::problem::Problem;
use crate::time::rfc3339;

#[derive(Serialize)]
struct IdentityInfo {
    provider: String,
    display_name: String,
    subject: String,
    linked_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_sign_in_at: Option<String>,
}

/// GET /v1/identities.
pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, _) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let views = ctx.app.engine.views();
    let items: Vec<IdentityInfo> = views
        .identities_of(&caller.account())
        .map(|i| IdentityInfo {
            provider: i.provider.clone(),
            display_name: ctx
                .app
                .signin
                .get(&i.provider)
                .map_or_else(|_| i.provider.clone(), |p| p.config.display_name.clone()),
            subject: i.subject.clone(),
            linked_at: rfc3339(i.linked_at),
            last_sign_in_at: i.last_sign_in_at.map(rfc3339),
        })
        .collect();
    Ok(json(StatusCode::OK, &items))
}

/// POST /v1/identities/{provider}: 302 to the provider; the callback links the identity to
/// the caller's account, then goes to the start page.
pub async fn link(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, _) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let name = crate::signin::identity_path(parts.uri.path()).ok_or_else(Problem::not_found)?;
    let provider = ctx.app.signin.get(name)?;
    let purpose = SignInPurpose::Link {
        account: caller.account(),
    };
    crate::signin::redirect(ctx.app, provider, &ReturnTo::or_home(None), purpose).await
}

/// DELETE /v1/identities/{provider}.
pub async fn unlink(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, _) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let provider = crate::signin::identity_path(parts.uri.path())
        .ok_or_else(Problem::not_found)?
        .to_owned();
    ctx.app
        .engine
        .execute(UnlinkIdentity {
            account: caller.account(),
            provider,
        })
        .await?
        .reply
        .map_err(Problem::from)?;
    Ok(empty(StatusCode::NO_CONTENT))
}
