//! POST /v1/accounts: registration.

use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tessera_core::usecase::RegisterRequest;
use zeroize::Zeroizing;

use super::{Ctx, Reply};
use crate::auth;
use crate::body::{json, read_json};
use crate::problem::Problem;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    password: Zeroizing<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Serialize)]
struct Registered {
    id: String,
    username: String,
}

pub async fn register(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let input: RegisterBody =
        read_json(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let outcome = ctx
        .app
        .run(RegisterRequest {
            username: input.username,
            email: input.email,
            password: input.password.into(),
            client,
        })
        .await?;
    let registered = outcome.reply?;
    let account = registered.account;
    let mut resp = json(
        StatusCode::CREATED,
        &Registered {
            id: account.to_string(),
            username: registered.username,
        },
    );
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/accounts/{account}")) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}
