//! The user's OAuth grants: GET /v1/grants lists the clients the user consented to, with
//! their scopes; DELETE /v1/grants/{client_id} withdraws one and revokes every token issued
//! under it.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use tessera_core::oauth::RevokeGrant;

use super::{Ctx, Reply};
use crate::auth;
use crate::body::{empty, json};
use crate::problem::Problem;
use crate::time::rfc3339;

#[derive(Serialize)]
struct GrantInfo {
    client_id: String,
    client_name: String,
    scopes: Vec<String>,
    granted_at: String,
    updated_at: String,
}

/// The client id in `/v1/grants/{client_id}`, if the path has that shape.
pub fn client_of_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/grants/")
        .filter(|rest| tessera_core::oauth::client::client_id_valid(rest))
}

/// GET /v1/grants.
pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, _) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let views = ctx.app.engine.views();
    let grants: Vec<GrantInfo> = views
        .grants_of(&caller.account())
        .into_iter()
        .map(|g| GrantInfo {
            client_id: g.client_id.clone(),
            client_name: views
                .client(&g.client_id)
                .map_or_else(|| g.client_id.clone(), |c| c.name.clone()),
            scopes: g.scopes.iter().cloned().collect(),
            granted_at: rfc3339(g.granted_at),
            updated_at: rfc3339(g.updated_at),
        })
        .collect();
    Ok(json(StatusCode::OK, &grants))
}

/// DELETE /v1/grants/{client_id}.
pub async fn delete(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, _) = req.into_parts();
    let caller = auth::caller(ctx.app, &parts.method, &parts.headers).await?;
    let client_id = client_of_path(parts.uri.path())
        .ok_or_else(Problem::not_found)?
        .to_owned();
    ctx.app
        .engine
        .execute(RevokeGrant {
            account: caller.account(),
            client_id,
        })
        .await?
        .reply
        .map_err(Problem::from)?;
    Ok(empty(StatusCode::NO_CONTENT))
}
