//! GET/POST /oauth/authorize: the authorization-code grant's browser side (RFC 6749 §4.1,
//! RFC 7636, RFC 9207 `iss`).
//!
//! ```text
//!  GET /oauth/authorize?… ─▶ validate_authorization (core, pure)
//!     ├─ client or redirect URI not trusted ─▶ 400 page (never a redirect: RFC 9700 §4.11)
//!     ├─ other error ────────────────────────▶ 302 redirect_uri?error=…&state&iss
//!     ├─ no session ─────────────────────────▶ 303 /login?return_to=<this request>
//!     │                                        (password, then the MFA step, then back here)
//!     ├─ grant already covers client+scopes ─▶ IssueAuthorizationCode ─▶ 302 redirect_uri?code&state&iss
//!     └─ else ───────────────────────────────▶ consent page (client, each scope, allow / deny)
//!  POST /oauth/authorize (consent form; CSRF token bound to this browser and session)
//!     ├─ allow ─▶ validated again ─▶ IssueAuthorizationCode (records the grant) ─▶ 303 redirect_uri?code&state&iss
//!     └─ deny ──▶ 303 redirect_uri?error=access_denied&state&iss
//! ```

use std::collections::BTreeSet;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tessera_core::oauth::{
    AuthorizationRequest, AuthorizeError, IssueAuthorizationCode, ValidAuthorization,
    validate_authorization,
};
use tessera_core::{AccountId, Rejection, SessionId};

use super::csrf::{BrowserSecret, check_form};
use super::html::Html;
use super::return_to::ReturnTo;
use super::{Form, page, see_other, with_query};
use crate::auth;
use crate::problem::Problem;
use crate::routes::{Ctx, Reply};

/// The parameters the consent form carries back, as the client sent them.
const PARAMS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// The consent form's CSRF purpose: bound to the session it was shown to.
fn consent_purpose(session: SessionId) -> String {
    format!("consent:{session}")
}

/// The request's query as pairs (a malformed query is a 400 page).
fn query_pairs(uri: &http::Uri) -> Result<Vec<(String, String)>, Problem> {
    serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|_| Problem::bad_request("the request's query is malformed"))
}

/// Where the user goes after signing in: this same authorization request.
fn this_request(pairs: &[(String, String)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    with_query("/oauth/authorize", &kept)
}

/// A validation error as the page answers it: a page for an untrusted client or redirect
/// URI, else the RFC 6749 §4.1.2.1 redirect (`status`: 302 for GET, 303 after the form).
fn refused(e: &AuthorizeError, issuer: &str, status: StatusCode) -> Result<Reply, Problem> {
    match e {
        AuthorizeError::Untrusted(p) => Err(Problem::bad_request(p.to_string())),
        AuthorizeError::Redirect { .. } => Ok(redirect(
            status,
            &e.redirect_location(issuer).unwrap_or_default(),
        )),
    }
}

/// A redirect to the client. No CSP `form-action` stands in its way (see
/// [`super::CONTENT_SECURITY_POLICY`]).
fn redirect(status: StatusCode, location: &str) -> Reply {
    let mut resp = Response::new(http_body_util::Full::new(bytes::Bytes::new()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    match HeaderValue::from_str(location) {
        Ok(v) => {
            h.insert(header::LOCATION, v);
            resp
        }
        Err(_) => super::error_page(Problem::internal()),
    }
}

/// The signed-in account and session of a page request, or `None`. A caller the policy
/// limits to MFA enrolment is refused (403): an OAuth login is never weaker than the API's.
async fn signed_in(
    ctx: Ctx<'_>,
    headers: &http::HeaderMap,
) -> Result<Option<(AccountId, SessionId)>, Problem> {
    let caller = match auth::session_caller(ctx.app, headers).await {
        Ok(c) => c,
        Err(p) if p.status == StatusCode::UNAUTHORIZED => return Ok(None),
        Err(p) => return Err(p),
    };
    let account = caller.session.account;
    if auth::enrolment_required(ctx.app, &account) {
        return Err(Problem::mfa_enrolment_required());
    }
    Ok(Some((account, caller.session.id)))
}

/// GET /oauth/authorize.
pub async fn authorize(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let pairs = query_pairs(req.uri())?;
    let issuer = ctx.app.engine.policy().token.issuer.clone();
    let checked = validate_authorization(
        &ctx.app.engine.views(),
        &AuthorizationRequest::from_pairs(&pairs),
    );
    let valid = match checked {
        Ok(v) => v,
        Err(e) => return refused(&e, &issuer, StatusCode::FOUND),
    };
    let Some((account, session)) = signed_in(ctx, req.headers()).await? else {
        let back = ReturnTo::or_home(Some(&this_request(&pairs)));
        return Ok(see_other(&with_query(
            "/login",
            &[("return_to", back.as_str())],
        )));
    };
    let covered = ctx
        .app
        .engine
        .views()
        .grant_covers(&account, &valid.client_id, &valid.scopes);
    if covered {
        return issue(ctx, valid, account, false, StatusCode::FOUND).await;
    }
    let secret = BrowserSecret::for_page(req.headers());
    let username = ctx
        .app
        .engine
        .views()
        .account(&account)
        .map(|a| a.username.clone())
        .unwrap_or_default();
    Ok(consent_page(&valid, &pairs, &secret, session, &username))
}

/// Issues the code and sends the browser back to the client.
async fn issue(
    ctx: Ctx<'_>,
    valid: ValidAuthorization,
    account: AccountId,
    record_consent: bool,
    status: StatusCode,
) -> Result<Reply, Problem> {
    let command = IssueAuthorizationCode::from_valid(valid, account, record_consent);
    let outcome = ctx.app.engine.execute(command).await?;
    match outcome.reply {
        Ok(issued) => Ok(redirect(status, &issued.location)),
        Err(Rejection::AuthorizationRequestInvalid) => Err(Problem::bad_request(
            "the application's registration changed; start again from the application",
        )),
        Err(other) => Err(other.into()),
    }
}

fn consent_page(
    valid: &ValidAuthorization,
    pairs: &[(String, String)],
    secret: &BrowserSecret,
    session: SessionId,
    username: &str,
) -> Reply {
    let mut body = Html::new()
        .raw("<p><strong>")
        .text(&valid.client_name)
        .raw("</strong> wants to access your account <strong>")
        .text(username)
        .raw("</strong>.</p>")
        .fragment(scope_list(&valid.scopes))
        .raw("<p class=\"note\">After you choose, you go back to ")
        .text(&redirect_origin(&valid.redirect_uri))
        .raw(".</p><form method=\"post\" action=\"/oauth/authorize\">")
        .raw("<input type=\"hidden\" name=\"csrf_token\" value=\"")
        .text(&secret.token(&consent_purpose(session)))
        .raw("\">");
    for name in PARAMS {
        if let Some((_, value)) = pairs.iter().find(|(k, _)| k == name) {
            body = body
                .raw("<input type=\"hidden\" name=\"")
                .text(name)
                .raw("\" value=\"")
                .text(value)
                .raw("\">");
        }
    }
    let body = body
        .raw("<div class=\"actions\">")
        .raw("<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>")
        .raw("<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>")
        .raw("</div></form>");
    page(StatusCode::OK, "Allow access?", body, Some(secret))
}

/// The scopes as a list a person reads.
pub fn scope_list(scopes: &BTreeSet<String>) -> Html {
    let mut list = Html::new().raw("<p>It asks to:</p><ul class=\"scopes\">");
    for scope in scopes {
        list = match scope_meaning(scope) {
            Some(meaning) => list
                .raw("<li>")
                .text(meaning)
                .raw(" <span class=\"note\">(<code>")
                .text(scope)
                .raw("</code>)</span></li>"),
            None => list.raw("<li><code>").text(scope).raw("</code></li>"),
        };
    }
    list.raw("</ul>")
}

/// What a scope lets the client do, in words, for the scopes this server defines; others
/// are shown by their name alone.
fn scope_meaning(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "confirm who you are",
        "profile" => "see your username",
        "email" => "see your e-mail address",
        "offline_access" => "stay connected when you are away",
        _ => return None,
    })
}

/// The name of the client an authorization request in `return_to` is for, when it is one
/// and it is valid: the login page says whom the user signs in for.
pub fn client_of(views: &tessera_core::Views, return_to: &ReturnTo) -> Option<String> {
    let query = return_to.as_str().strip_prefix("/oauth/authorize?")?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    validate_authorization(views, &AuthorizationRequest::from_pairs(&pairs))
        .ok()
        .map(|v| v.client_name)
}

/// `scheme://host[:port]` of a redirect URI, to tell the user where they are sent.
fn redirect_origin(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

/// POST /oauth/authorize: the consent form's answer.
pub async fn decide(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let form = Form::read(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let pairs: Vec<(String, String)> = PARAMS
        .iter()
        .filter_map(|k| form.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect();
    let Some((account, session)) = signed_in(ctx, &parts.headers).await? else {
        // Signed out meanwhile: sign in again and see the request afresh.
        auth::check_same_site(&parts.method, &parts.headers, &ctx.app.config)?;
        let back = ReturnTo::or_home(Some(&this_request(&pairs)));
        return Ok(see_other(&with_query(
            "/login",
            &[("return_to", back.as_str())],
        )));
    };
    check_form(
        &parts.method,
        &parts.headers,
        &ctx.app.config,
        &consent_purpose(session),
        form.get("csrf_token"),
    )?;
    let issuer = ctx.app.engine.policy().token.issuer.clone();
    let checked = validate_authorization(
        &ctx.app.engine.views(),
        &AuthorizationRequest::from_pairs(&pairs),
    );
    let valid = match checked {
        Ok(v) => v,
        Err(e) => return refused(&e, &issuer, StatusCode::SEE_OTHER),
    };
    match form.get("decision") {
        Some("allow") => issue(ctx, valid, account, true, StatusCode::SEE_OTHER).await,
        Some("deny") => {
            let denied = AuthorizeError::Redirect {
                redirect_uri: valid.redirect_uri,
                error: "access_denied",
                description: "the user denied the request",
                state: Some(valid.state),
            };
            refused(&denied, &issuer, StatusCode::SEE_OTHER)
        }
        _ => Err(Problem::bad_request("choose allow or deny")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_told_where_they_go() {
        assert_eq!(
            redirect_origin("https://app.example:8443/cb?x=1"),
            "https://app.example:8443"
        );
        assert_eq!(
            redirect_origin("http://127.0.0.1:5000/cb"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            redirect_origin("com.example.app:/cb"),
            "com.example.app:/cb"
        );
    }

    #[test]
    fn the_request_to_return_to_keeps_only_oauth_parameters() {
        let pairs = vec![
            ("client_id".to_owned(), "app".to_owned()),
            ("evil".to_owned(), "x".to_owned()),
            ("redirect_uri".to_owned(), "http://a/cb".to_owned()),
        ];
        let back = this_request(&pairs);
        assert_eq!(
            back,
            "/oauth/authorize?client_id=app&redirect_uri=http%3A%2F%2Fa%2Fcb"
        );
        assert_eq!(
            ReturnTo::parse(&back).map(|r| r.as_str().to_owned()),
            Some(back)
        );
    }
}
