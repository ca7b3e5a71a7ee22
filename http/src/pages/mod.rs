//! The browser pages: sign-in, the second factor, sign-out, and the OAuth pages built on
//! them. Small server-rendered HTML that needs no JavaScript, one more adapter over the same
//! use cases as the JSON API: a page's login runs [`tessera_core::usecase::LoginRequest`]
//! and the MFA step [`tessera_core::usecase::answer_challenge`], exactly as POST /v1/login
//! and POST /v1/login/mfa do, and sets the same session cookie.
//!
//! Every page answer carries:
//! - `Content-Security-Policy`: nothing but this server's stylesheet and forms; no script
//!   at all; `frame-ancestors 'none'` (no clickjacking: the consent button cannot be framed);
//! - `Cache-Control: no-store` (a page can name the account; the back button must not show
//!   it to the next person at the computer), `X-Content-Type-Options: nosniff` (added for
//!   every answer by the server), `Referrer-Policy: no-referrer` (an authorization request's
//!   URL never leaks to another site);
//! - on every form, a CSRF token ([`csrf`]), and the same-site check the JSON API uses.
//!
//! A POST that succeeds, or fails in a way the user can correct (a wrong password), answers
//! 303 See Other to a page (Post/Redirect/Get: reloading never resubmits). Other failures
//! are error pages with the status the JSON API would use, and never an internal detail.

pub mod authorize;
pub mod csrf;
mod device;
pub mod html;
mod login;
mod passkeys;
pub mod return_to;

pub use login::{mfa_required, query_param as login_query_param};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use zeroize::Zeroize;

use self::csrf::BrowserSecret;
use self::html::Html;
use crate::metrics::Route;
use crate::problem::Problem;
use crate::routes::{Ctx, Reply};

/// The policy of every page. `form-action` is left out on purpose: an OAuth form's answer
/// redirects to the client's site, which `form-action` would block in browsers that apply
/// it to redirects; the forms are fixed markup, and no injected form can exist when no text
/// reaches a page unescaped.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The stylesheet of every page, served at [`STYLESHEET_PATH`].
const STYLESHEET: &str = include_str!("page.css");
pub const STYLESHEET_PATH: &str = "/assets/page.css";
pub use passkeys::SCRIPT_PATH;

/// Which page a path is, or `None` for the JSON API.
pub fn classify(path: &str) -> Option<Route> {
    Some(match path {
        "/" => Route::PageHome,
        "/login" => Route::PageLogin,
        "/login/mfa" => Route::PageLoginMfa,
        "/logout" => Route::PageLogout,
        "/oauth/authorize" => Route::PageAuthorize,
        "/device" => Route::PageDevice,
        STYLESHEET_PATH => Route::PageAsset,
        passkeys::SCRIPT_PATH => Route::PageScript,
        "/login/passkey" => Route::PageLoginPasskey,
        "/account/passkeys" => Route::PagePasskeys,
        p => match crate::signin::login_path(p) {
            Some((_, false)) => Route::PageExternalLogin,
            Some((_, true)) => Route::PageExternalCallback,
            None => return None,
        },
    })
}

/// The methods a page accepts, for `Allow`.
pub fn allowed(route: Route) -> Option<&'static str> {
    Some(match route {
        Route::PageHome | Route::PageAsset | Route::PageScript | Route::PageExternalLogin => {
            "GET, HEAD"
        }
        // The callback spends its state and the provider's code: a HEAD (a link checker, a
        // prefetch) must not run it.
        Route::PageExternalCallback => "GET",
        Route::PageLogin
        | Route::PageLoginMfa
        | Route::PageAuthorize
        | Route::PageDevice
        | Route::PagePasskeys => "GET, HEAD, POST",
        Route::PageLogout | Route::PageLoginPasskey => "POST",
        _ => return None,
    })
}

/// Serves a page request.
pub async fn dispatch(
    ctx: Ctx<'_>,
    route: Route,
    req: Request<Incoming>,
) -> Result<Reply, Problem> {
    let method = req.method().clone();
    match (route, method) {
        (Route::PageHome, Method::GET) => login::home(ctx, req),
        (Route::PageLogin, Method::GET) => Ok(login::login_page(ctx, &req)),
        (Route::PageLogin, Method::POST) => login::login(ctx, req).await,
        (Route::PageLoginMfa, Method::GET) => Ok(login::mfa_page(ctx, &req)),
        (Route::PageLoginMfa, Method::POST) => login::answer(ctx, req).await,
        (Route::PageLogout, Method::POST) => login::logout(ctx, req).await,
        (Route::PageAsset, Method::GET) => Ok(stylesheet()),
        (Route::PageScript, Method::GET) => Ok(passkeys::script()),
        (Route::PageLoginPasskey, Method::POST) => passkeys::login(ctx, req).await,
        (Route::PagePasskeys, Method::GET) => passkeys::passkeys_page(ctx, req).await,
        (Route::PagePasskeys, Method::POST) => passkeys::passkeys_submit(ctx, req).await,
        (Route::PageAuthorize, Method::GET) => authorize::authorize(ctx, req).await,
        (Route::PageAuthorize, Method::POST) => authorize::decide(ctx, req).await,
        (Route::PageDevice, Method::GET) => device::device(ctx, req).await,
        (Route::PageDevice, Method::POST) => device::submit(ctx, req).await,
        (Route::PageExternalLogin, Method::GET) => crate::signin::start(ctx, req).await,
        (Route::PageExternalCallback, Method::GET) => crate::signin::callback(ctx, req).await,
        (route, _) => Err(Problem::method_not_allowed(allowed(route).unwrap_or(""))),
    }
}

/// A page: the layout around `body`, with the headers every page carries, and the CSRF
/// cookie when the browser has none yet.
pub fn page(status: StatusCode, title: &str, body: Html, secret: Option<&BrowserSecret>) -> Reply {
    let doc = Html::new()
        .raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<title>")
        .text(title)
        .raw(" · Tessera</title><link rel=\"stylesheet\" href=\"/assets/page.css\"></head>")
        .raw("<body><main><p class=\"brand\">Tessera</p><h1>")
        .text(title)
        .raw("</h1>")
        .fragment(body)
        .raw("</main></body></html>\n");
    let mut resp = Response::new(Full::new(Bytes::from(doc.into_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page_headers(h);
    if let Some(cookie) = secret.and_then(BrowserSecret::set_cookie) {
        h.append(header::SET_COOKIE, cookie);
    }
    resp
}

fn page_headers(h: &mut http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // For browsers that predate `frame-ancestors`.
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// 303 See Other to a local path (the answer to a page's POST).
pub fn see_other(location: &str) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    let h = resp.headers_mut();
    page_headers(h);
    if let Ok(value) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, value);
    } else {
        h.insert(header::LOCATION, HeaderValue::from_static(return_to::HOME));
    }
    resp
}

/// `path` with its query, form-encoded from `pairs` (empty values left out).
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    match serde_urlencoded::to_string(&kept) {
        Ok(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    }
}

fn stylesheet() -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from_static(STYLESHEET.as_bytes())));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

/// An error as a page: the problem's status (and `Retry-After`, `Allow`), a title and a
/// sentence a person can act on. The problem's detail is shown only for the client's own
/// mistakes (4xx), where it is the same text the JSON API gives; a 5xx shows none.
pub fn error_page(problem: Problem) -> Reply {
    let (title, body) = error_body(&problem);
    let mut resp = page(problem.status, title, body, None);
    let h = resp.headers_mut();
    if let Some(secs) = problem.retry_after_secs {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let (StatusCode::METHOD_NOT_ALLOWED, Some(allow)) = (problem.status, problem.status_header) {
        h.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

/// An error page's title and body.
fn error_body(problem: &Problem) -> (&'static str, Html) {
    let (title, advice) = advice(problem);
    let mut body = Html::new().raw("<p>").text(advice).raw("</p>");
    if problem.status.is_client_error() && problem.status != StatusCode::FORBIDDEN {
        body = body
            .raw("<p class=\"note\">")
            .text(&problem.detail)
            .raw("</p>");
    }
    if let Some(secs) = problem.retry_after_secs {
        body = body.raw("<p class=\"note\">Try again in ");
        body = match secs {
            0 | 1 => body.raw("1 second.</p>"),
            2..=120 => body.number(u64::from(secs)).raw(" seconds.</p>"),
            _ => body
                .number(u64::from(secs.div_ceil(60)))
                .raw(" minutes.</p>"),
        };
    }
    (
        title,
        body.raw("<p><a href=\"/\">Go to the start page</a></p>"),
    )
}

fn advice(problem: &Problem) -> (&'static str, &'static str) {
    match (problem.status, problem.slug) {
        (StatusCode::FORBIDDEN, "cross-site-request") => (
            "This form was refused",
            "It did not come from this site's own page, or the page was too old. Go back, \
             reload the page and try again.",
        ),
        (StatusCode::FORBIDDEN, "mfa-enrolment-required") => (
            "Set up two-step verification first",
            "This account must turn on two-step verification (an authenticator app) before it \
             can sign in to applications.",
        ),
        (StatusCode::FORBIDDEN, "external-sign-in-not-linked") => (
            "No account is linked to this identity",
            "Sign in to your account with its password, then link this provider from the \
             start page. New accounts cannot be made by signing in with this provider.",
        ),
        (StatusCode::FORBIDDEN, "external-account-disabled") => (
            "This account is disabled",
            "The account this identity signs in to has been disabled. Ask the administrator.",
        ),
        (StatusCode::CONFLICT, "external-email-in-use") => (
            "An account with this e-mail address already exists",
            "For your safety it was not linked automatically. Sign in to that account with its \
             password, then link this provider from the start page.",
        ),
        (StatusCode::CONFLICT, "identity-linked-elsewhere") => (
            "This identity belongs to another account",
            "It is already linked to a different account here. Unlink it there first.",
        ),
        (StatusCode::BAD_REQUEST, "external-sign-in-not-started" | "external-state-mismatch") => (
            "This sign-in cannot be completed",
            "It was not started in this browser, or it took too long. Start again from the \
             sign-in page.",
        ),
        (StatusCode::BAD_REQUEST, "external-state-spent") => (
            "This sign-in was already completed",
            "Its answer cannot be used twice. Start again from the sign-in page.",
        ),
        (StatusCode::BAD_REQUEST, "upstream-refused") => (
            "The sign-in was not completed",
            "The provider did not sign you in. Start again if you meant to.",
        ),
        (StatusCode::BAD_GATEWAY, "upstream-failed") => (
            "The sign-in provider did not answer",
            "It did not answer in time, or answered something this server cannot accept. Try \
             again in a moment, or sign in with your password.",
        ),
        (StatusCode::FORBIDDEN, _) => ("Not allowed", "This account cannot do that here."),
        (StatusCode::TOO_MANY_REQUESTS, _) => (
            "Too many attempts",
            "There were too many failed attempts from here. Wait a little before trying again.",
        ),
        (StatusCode::NOT_FOUND, _) => ("Page not found", "There is no page at this address."),
        (StatusCode::METHOD_NOT_ALLOWED, _) => (
            "Not allowed here",
            "This page cannot be used that way. Open it from a link instead.",
        ),
        (StatusCode::UNAUTHORIZED, _) => ("Sign in first", "This page needs you to sign in."),
        (s, _) if s.is_server_error() => (
            "Something went wrong",
            "The server cannot complete this right now. Try again in a moment.",
        ),
        _ => (
            "This request cannot be used",
            "The link or form you used is not valid.",
        ),
    }
}

/// A page form's fields. Values are wiped from memory when it is dropped: one of them is a
/// password.
pub struct Form(Vec<(String, String)>);

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values can be secrets.
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Form {
    /// Reads a page's form body (at most the configured body size; a field given twice is
    /// refused).
    pub async fn read(
        body: Incoming,
        headers: &http::HeaderMap,
        limit: usize,
    ) -> Result<Self, Problem> {
        crate::body::read_form(body, headers, limit)
            .await
            .map(Self)
            .map_err(|e| Problem::bad_request(e.description()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Moves a field out (for a password, which then lives in a wiped buffer).
    pub fn take(&mut self, name: &str) -> Option<zeroize::Zeroizing<String>> {
        self.0
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, v)| zeroize::Zeroizing::new(std::mem::take(v)))
    }
}

impl Drop for Form {
    fn drop(&mut self) {
        for (_, v) in &mut self.0 {
            v.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_is_locked_down() {
        let resp = page(StatusCode::OK, "T <x>", Html::new(), None);
        let h = resp.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("default-src 'none'"));
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"),
            "scripts from this origin only, never inline"
        );
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    }

    #[test]
    fn error_pages_keep_status_and_hide_internals() {
        let resp = error_page(Problem::internal());
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let unavailable = error_page(Problem::unavailable("queue full at writer 3"));
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "1");
        let not_allowed = error_page(Problem::method_not_allowed("POST"));
        assert_eq!(not_allowed.headers()[header::ALLOW], "POST");
    }

    #[test]
    fn a_server_error_page_shows_no_detail() {
        let (_, body) = error_body(&Problem::unavailable("writer queue 7 full at sled"));
        assert!(!body.as_str().contains("sled"), "{}", body.as_str());
        let (_, body) = error_body(&Problem::bad_request("the request's query is malformed"));
        assert!(body.as_str().contains("malformed"));
        let (title, _) = error_body(&Problem::mfa_enrolment_required());
        assert!(title.contains("two-step"));
        let (_, body) = error_body(&Problem::from(tessera_core::Rejection::Throttled {
            retry_after_secs: 900,
        }));
        assert!(body.as_str().contains("15 minutes"), "{}", body.as_str());
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            with_query("/login", &[("return_to", "/a?b=c&d"), ("error", "")]),
            "/login?return_to=%2Fa%3Fb%3Dc%26d"
        );
        assert_eq!(with_query("/login", &[("error", "")]), "/login");
    }
}
