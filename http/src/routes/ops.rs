//! GET /healthz and GET /metrics.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;

use super::{Ctx, Reply};
use crate::body::json;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    log_head: u64,
}

/// 200 while the engine accepts changes (the store is open and its last sync succeeded).
pub fn healthz(ctx: Ctx<'_>) -> Reply {
    let head = ctx.app.engine.head_sequence();
    match ctx.app.engine.failure() {
        None => json(
            StatusCode::OK,
            &Health {
                status: "ok",
                log_head: head,
            },
        ),
        Some(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &Health {
                status: "unavailable",
                log_head: head,
            },
        ),
    }
}

pub fn metrics(ctx: Ctx<'_>) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(crate::metrics::render(ctx.app))));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
