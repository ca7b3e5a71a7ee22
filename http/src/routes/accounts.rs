//! POST /v1/accounts: registration.

use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tessera_core::{Reply as CoreReply, prepare};
use zeroize::Zeroizing;

use super::{Ctx, Reply};
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
    // Cheap checks first, so that a taken or malformed username never costs an argon2 hash.
    tessera_core::account::username_key(&input.username)
        .map_err(|p| Problem::from(tessera_core::Rejection::InvalidUsername(p)))?;
    // Registration says whether a name is taken anyway (409); saying it before hashing saves
    // the pool. The writer checks again, so two racing registrations still get one winner.
    if ctx
        .app
        .engine
        .views()
        .account_by_username(&input.username)
        .is_some()
    {
        return Err(tessera_core::Rejection::UsernameTaken.into());
    }
    let policy = ctx.app.engine.policy().clone();
    let command = ctx
        .app
        .hashing
        .run(move |rng, _| {
            prepare::register(
                &input.username,
                input.email.as_deref(),
                &input.password,
                &policy,
                rng,
            )
        })
        .await??;
    let outcome = ctx.app.engine.execute(command).await?;
    match outcome.reply? {
        CoreReply::Registered { account, username } => {
            let mut resp = json(
                StatusCode::CREATED,
                &Registered {
                    id: account.to_string(),
                    username,
                },
            );
            if let Ok(loc) = HeaderValue::from_str(&format!("/v1/accounts/{account}")) {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            Ok(resp)
        }
        _ => Err(Problem::internal()),
    }
}
