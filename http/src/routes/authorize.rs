//! GET /oauth/authorize (RFC 6749 §4.1.1): the request is checked by the core
//! ([`validate_authorization`]) before anything else happens.
//!
//! ```text
//!   unknown client, missing or unregistered redirect URI ─▶ 400 error page (never a redirect)
//!   other errors (response_type, state, PKCE, scope)     ─▶ 302 redirect_uri?error&state&iss
//!   valid, signed in, grant covers the scopes            ─▶ 302 redirect_uri?code&state&iss
//!   valid otherwise                                       ─▶ the sign-in / consent page
//! ```

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tessera_core::oauth::{
    AuthorizationRequest, AuthorizeError, IssueAuthorizationCode, ValidAuthorization,
    validate_authorization,
};

use super::{Ctx, Reply};
use crate::auth;
use crate::problem::Problem;

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small HTML page with the headers every page carries: no caching, no framing, no
/// scripts, no referrer.
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Reply {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head><body><h1>{}</h1>{}</body></html>",
        escape_html(title),
        escape_html(title),
        body_html
    );
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// A 302 to `location` (a verified redirect URI with its parameters).
pub fn redirect(location: &str) -> Result<Reply, Problem> {
    let value = HeaderValue::from_str(location).map_err(|_| Problem::internal())?;
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut().insert(header::LOCATION, value);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The authorization request in a URI's query, checked. `Err` is the answer to give: the
/// error page, or the redirect with the error.
pub fn checked_request(ctx: Ctx<'_>, query: &str) -> Result<ValidAuthorization, Box<Reply>> {
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return Err(Box::new(page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "<p>The authorization request is malformed.</p>",
        )));
    };
    let request = AuthorizationRequest::from_pairs(&pairs);
    let checked = {
        let views = ctx.app.engine.views();
        validate_authorization(&views, &request)
    };
    checked.map_err(|e| Box::new(match &e {
        AuthorizeError::Untrusted(problem) => page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            &format!(
                "<p>{}. The application that sent you here is misconfigured; you were not redirected.</p>",
                escape_html(&problem.to_string())
            ),
        ),
        AuthorizeError::Redirect { .. } => {
            let issuer = &ctx.app.engine.policy().token.issuer;
            e.redirect_location(issuer)
                .ok_or_else(Problem::internal)
                .and_then(|location| redirect(&location))
                .unwrap_or_else(Problem::into_response)
        }
    }))
}

/// GET /oauth/authorize.
pub async fn authorize(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let query = req.uri().query().unwrap_or("").to_owned();
    let valid = match checked_request(ctx, &query) {
        Ok(v) => v,
        Err(answer) => return Ok(*answer),
    };
    let account = auth::presented_session(ctx.app, req.headers())
        .and_then(|id| ctx.app.engine.views().session(&id).map(|s| s.account));
    let covered = account.is_some_and(|a| {
        ctx.app
            .engine
            .views()
            .grant_covers(&a, &valid.client_id, &valid.scopes)
    });
    if let (Some(account), true) = (account, covered) {
        let issued = ctx
            .app
            .engine
            .execute(IssueAuthorizationCode::from_valid(valid, account, false))
            .await?
            .reply
            .map_err(Problem::from)?;
        return redirect(&issued.location);
    }
    Ok(page(
        StatusCode::OK,
        "Sign in to continue",
        &format!(
            "<p>{} asks for access to your account ({}). Sign in to continue.</p>",
            escape_html(&valid.client_name),
            escape_html(&valid.scope())
        ),
    ))
}
