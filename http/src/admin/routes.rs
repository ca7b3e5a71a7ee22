//! The admin routes (docs/http-api.md, "Admin socket"). JSON in and out; errors are
//! problem+json like the public API's. Every change goes through [`super::ops`], the same
//! functions `tessera` runs when no server is up.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use tessera_core::usecase::RegisterRequest;
use zeroize::Zeroizing;

use super::clients;
use super::log::AdminBody;
use super::migration::{
    IMPORT_BATCH_BYTES_MAX, IMPORT_BATCH_LINES_MAX, IMPORT_LINE_BYTES_MAX, ImportBatch,
    StatusError, SunsetBody,
};
use super::ops::{self, AccountAction, KeyRotated, OpError, OperatorBody};
use crate::App;
use crate::body::{json, read_json};
use crate::problem::Problem;
use crate::routes::Reply;

/// `POST /admin/v1/accounts`. The password never reaches a log: it is zeroized, and this
/// type has no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    username: String,
    password: Zeroizing<String>,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /admin/v1/api-keys/revoke`: `prefix` may be a whole key, so it is zeroized and
/// this type has no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeApiKeyBody {
    prefix: Zeroizing<String>,
    operator: String,
}

/// `POST /admin/v1/keys/rotate`. The key set's events carry no actor, so the operator is
/// logged only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    operator: String,
}

pub(super) async fn handle(app: &App, req: Request<Incoming>) -> Response<AdminBody> {
    // Reading the whole log, following it, and copying it take as long as the log is long:
    // they run without the request deadline (the reader hanging up ends them).
    let path = req.uri().path().to_owned();
    let long = match (path.as_str(), req.method().clone()) {
        ("/admin/v1/log", Method::GET) => Some(super::log::log(app, &req).await),
        ("/admin/v1/verify", Method::GET) => Some(
            super::log::verify(app)
                .await
                .map(|r| r.map(AdminBody::Full)),
        ),
        ("/admin/v1/backup", Method::POST) => {
            let answer = super::log::backup(app, req).await;
            return answer
                .map(|r| r.map(AdminBody::Full))
                .unwrap_or_else(|problem| problem.into_response().map(AdminBody::Full));
        }
        // A batch of imports hashes as many MD5s as it has lines.
        ("/admin/v1/import", Method::POST) => {
            return import(app, req)
                .await
                .unwrap_or_else(|problem| problem.into_response().map(AdminBody::Full));
        }
        ("/admin/v1/import", _) => Some(Err(Problem::method_not_allowed("POST"))),
        ("/admin/v1/migration", Method::GET) => Some(migration_status(app).await),
        ("/admin/v1/migration", _) => Some(Err(Problem::method_not_allowed("GET"))),
        ("/admin/v1/log" | "/admin/v1/verify", _) => Some(Err(Problem::method_not_allowed("GET"))),
        ("/admin/v1/backup", _) => Some(Err(Problem::method_not_allowed("POST"))),
        _ => None,
    };
    if let Some(answer) = long {
        return answer.unwrap_or_else(|problem| problem.into_response().map(AdminBody::Full));
    }
    let deadline = Duration::from_millis(app.config.request_timeout_ms);
    let resp = match tokio::time::timeout(deadline, dispatch(app, req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(problem)) => problem.into_response(),
        Err(_) => Problem::timeout().into_response(),
    };
    resp.map(AdminBody::Full)
}

async fn dispatch(app: &App, req: Request<Incoming>) -> Result<Reply, Problem> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/admin/v1/") else {
        return Err(Problem::not_found());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let method = req.method().clone();
    match (segments.as_slice(), method) {
        (["accounts"], Method::GET) => Ok(json(StatusCode::OK, &ops::list(&app.engine))),
        (["accounts"], Method::POST) => add(app, req).await,
        (["accounts", name], Method::GET) => {
            Ok(json(StatusCode::OK, &ops::show(&app.engine, name)?))
        }
        (["accounts", name, "sessions"], Method::GET) => {
            Ok(json(StatusCode::OK, &ops::sessions(&app.engine, name)?))
        }
        (["accounts", name, "mfa-enrolment"], Method::GET) => Ok(json(
            StatusCode::OK,
            &ops::pending_enrolment(&app.engine, &app.mfa_keys, name)?,
        )),
        (["accounts", name, action], Method::POST)
            if AccountAction::from_segment(action).is_some() =>
        {
            let Some(action) = AccountAction::from_segment(action) else {
                return Err(Problem::not_found());
            };
            let name = (*name).to_owned();
            let (parts, body) = req.into_parts();
            let input: OperatorBody =
                read_json(body, &parts.headers, app.config.body_bytes_max).await?;
            let done = ops::act(&app.engine, &name, action, &input.operator).await?;
            Ok(json(StatusCode::OK, &done))
        }
        (["migration", "sunset"], Method::POST) => {
            let (parts, body) = req.into_parts();
            let input: SunsetBody =
                read_json(body, &parts.headers, app.config.body_bytes_max).await?;
            let exports = super::migration::sunset(&app.engine, &input.operator).await?;
            Ok(json(StatusCode::OK, &exports))
        }
        (["migration", "sunset"], _) => Err(Problem::method_not_allowed("POST")),
        (["keys"], Method::GET) => Ok(json(StatusCode::OK, &ops::keys(&app.engine))),
        (["keys", "rotate"], Method::POST) => {
            let (parts, body) = req.into_parts();
            let input: RotateBody =
                read_json(body, &parts.headers, app.config.body_bytes_max).await?;
            tracing::info!(operator = %input.operator, "operator action: rotate the signing key");
            let kid = app
                .signing
                .rotate(&app.engine)
                .await
                .map_err(OpError::from)?;
            Ok(json(StatusCode::OK, &KeyRotated { kid }))
        }
        (["clients"], Method::GET) => Ok(json(StatusCode::OK, &clients::list(&app.engine))),
        (["clients"], Method::POST) => {
            let (parts, body) = req.into_parts();
            let input: clients::AddClient =
                read_json(body, &parts.headers, app.config.body_bytes_max).await?;
            let done = clients::add(&app.engine, &app.mfa_keys, input).await?;
            Ok(json(StatusCode::CREATED, &done))
        }
        (["clients", id], Method::GET) => {
            Ok(json(StatusCode::OK, &clients::show(&app.engine, id)?))
        }
        (["clients", id], Method::DELETE) => {
            let id = (*id).to_owned();
            let (parts, body) = req.into_parts();
            let input: OperatorBody =
                read_json(body, &parts.headers, app.config.body_bytes_max).await?;
            clients::remove(&app.engine, &id, &input.operator).await?;
            Ok(json(StatusCode::OK, &clients::Removed { client_id: id }))
        }
        (["clients", id, "rotate-secret"], Method::POST) => {
            let id = (*id).to_owned();
            let (parts, body) = req.into_parts();
            let input: clients::RotateSecret =
                read_json(body, &parts.headers, app.config.body_bytes_max).await?;
            let done = clients::rotate_secret(&app.engine, &app.mfa_keys, &id, input).await?;
            Ok(json(StatusCode::OK, &done))
        }
        (["clients"], _) => Err(Problem::method_not_allowed("GET, POST")),
        (["clients", _], _) => Err(Problem::method_not_allowed("GET, DELETE")),
        (["clients", _, "rotate-secret"], _) => Err(Problem::method_not_allowed("POST")),
        (["api-keys", "revoke"], Method::POST) => {
            let (parts, body) = req.into_parts();
            let input: RevokeApiKeyBody =
                read_json(body, &parts.headers, app.config.body_bytes_max).await?;
            let done = ops::revoke_api_key(
                &app.engine,
                &app.api_keys.pepper,
                &input.prefix,
                &input.operator,
            )
            .await?;
            Ok(json(StatusCode::OK, &done))
        }
        (["api-keys", "revoke"], _) => Err(Problem::method_not_allowed("POST")),
        (["accounts"], _) => Err(Problem::method_not_allowed("GET, POST")),
        (["keys"] | ["accounts", _] | ["accounts", _, "sessions" | "mfa-enrolment"], _) => {
            Err(Problem::method_not_allowed("GET"))
        }
        (["keys", "rotate"], _) => Err(Problem::method_not_allowed("POST")),
        (["accounts", _, action], _) if AccountAction::from_segment(action).is_some() => {
            Err(Problem::method_not_allowed("POST"))
        }
        _ => Err(Problem::not_found()),
    }
}

/// `POST /admin/v1/import`: a batch of import lines, imported on every core off the async
/// workers; one result per line.
async fn import(app: &App, req: Request<Incoming>) -> Result<Response<AdminBody>, Problem> {
    let (parts, body) = req.into_parts();
    let input: ImportBatch = read_json(body, &parts.headers, IMPORT_BATCH_BYTES_MAX).await?;
    if input.lines.len() > IMPORT_BATCH_LINES_MAX
        || input
            .lines
            .iter()
            .any(|l| l.text.len() > IMPORT_LINE_BYTES_MAX)
    {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "import-batch-too-large",
            "Import batch too large",
            format!(
                "at most {IMPORT_BATCH_LINES_MAX} lines of at most {IMPORT_LINE_BYTES_MAX} bytes"
            ),
        ));
    }
    let engine = app.engine.clone();
    let results = tokio::task::spawn_blocking(move || {
        super::migration::import_lines(&engine, input.lines, super::migration::import_workers())
    })
    .await
    .map_err(|e| Problem::unavailable(format!("the import stopped: {e}")))??;
    Ok(json(StatusCode::OK, &results).map(AdminBody::Full))
}

/// `GET /admin/v1/migration`: accounts by scheme and the history, read from the log.
async fn migration_status(app: &App) -> Result<Response<AdminBody>, Problem> {
    let engine = app.engine.clone();
    let status = tokio::task::spawn_blocking(move || super::migration::status(&engine))
        .await
        .map_err(|e| Problem::unavailable(format!("the status stopped: {e}")))?
        .map_err(|e| match e {
            StatusError::Engine(e) => Problem::from(e),
            StatusError::Read(why) => Problem::unavailable(why),
        })?;
    Ok(json(StatusCode::OK, &status).map(AdminBody::Full))
}

async fn add(app: &App, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let input: AddBody = read_json(body, &parts.headers, app.config.body_bytes_max).await?;
    let outcome = app
        .run(RegisterRequest {
            username: input.username,
            email: input.email,
            password: input.password.into(),
            // An operator's account: not counted or throttled per address.
            client: None,
        })
        .await?;
    let registered = outcome.reply?;
    tracing::info!(account = %registered.account, "operator action: account added");
    Ok(json(StatusCode::CREATED, &ops::registered(&registered)))
}
