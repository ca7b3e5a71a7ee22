//! The sign-in pages: GET/POST /login (password), GET/POST /login/mfa (second factor),
//! POST /logout, and the start page.
//!
//! ```text
//!  GET /login ─▶ form ─POST─▶ LoginRequest (as POST /v1/login, session mode)
//!     ├─ completed ─────────▶ Set-Cookie session, 303 return_to
//!     ├─ MFA required ──────▶ Set-Cookie __Host-tessera_mfa (the challenge), 303 /login/mfa
//!     └─ wrong credentials ─▶ 303 /login?error=credentials   (429 page when throttled)
//!  GET /login/mfa ─▶ form ─POST─▶ answer_challenge (as POST /v1/login/mfa)
//!     ├─ completed ─────────▶ Set-Cookie session, challenge cookie cleared, 303 return_to
//!     ├─ wrong code ────────▶ 303 /login/mfa?error=code     (the core counts the attempt)
//!     └─ challenge dead ────▶ challenge cookie cleared, 303 /login?error=expired
//! ```
//!
//! The challenge's `mfa_token` travels in a `__Host-` cookie (HttpOnly, SameSite=Strict,
//! as long-lived as the challenge) rather than in the page, so the GET after the 303 can
//! show the form and the token never appears in a URL.

use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use tessera_core::mfa::MfaAnswer;
use tessera_core::session::{LoginCompleted, LoginReply, Logout};
use tessera_core::usecase::{self, LoginRequest};
use tessera_core::{LoginMode, Rejection, Timestamp};

use super::csrf::{BrowserSecret, check_form, cookie_value};
use super::html::Html;
use super::return_to::ReturnTo;
use super::{Form, page, see_other, with_query};
use crate::auth;
use crate::problem::Problem;
use crate::routes::{Ctx, Reply};

const MFA_COOKIE: &str = "__Host-tessera_mfa";

/// CSRF purposes of the forms here.
const LOGIN_FORM: &str = "login";
const MFA_FORM: &str = "login-mfa";
const LOGOUT_FORM: &str = "logout";

/// Messages a page shows for an `error` query parameter; anything else shows nothing.
fn message(error: Option<&str>) -> Option<&'static str> {
    Some(match error? {
        "credentials" => "The username or password is not right.",
        "expired" => "The sign-in took too long, or too many codes were wrong. Start again.",
        "code" => "That code is not right. Enter the newest code from your app.",
        "malformed" => "Enter the 6 digits from your authenticator app, or a backup code.",
        "passkey" => "That passkey did not sign you in. Try again, or use your password.",
        _ => return None,
    })
}

/// A query parameter of the request (the first, decoded), if present.
pub fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

pub(super) fn alert(body: Html, error: Option<&str>) -> Html {
    match message(error) {
        Some(text) => body
            .raw("<p class=\"alert\" role=\"alert\">")
            .text(text)
            .raw("</p>"),
        None => body,
    }
}

/// The hidden fields every form here carries.
pub(super) fn hidden(
    body: Html,
    secret: &BrowserSecret,
    purpose: &str,
    return_to: &ReturnTo,
) -> Html {
    body.raw("<input type=\"hidden\" name=\"csrf_token\" value=\"")
        .text(&secret.token(purpose))
        .raw("\"><input type=\"hidden\" name=\"return_to\" value=\"")
        .text(return_to.as_str())
        .raw("\">")
}

/// GET /login: the password form.
pub fn login_page(ctx: Ctx<'_>, req: &Request<Incoming>) -> Reply {
    let secret = BrowserSecret::for_page(req.headers());
    let return_to = ReturnTo::or_home(query_param(req.uri(), "return_to").as_deref());
    let error = query_param(req.uri(), "error");
    let mut body = alert(Html::new(), error.as_deref());
    if let Some(client) = super::authorize::client_of(&ctx.app.engine.views(), &return_to) {
        body = body
            .raw("<p>Sign in to continue to <strong>")
            .text(&client)
            .raw("</strong>.</p>");
    }
    let body = body.raw("<form method=\"post\" action=\"/login\">");
    let body = hidden(body, &secret, LOGIN_FORM, &return_to)
        .raw("<label for=\"username\">Username</label>")
        .raw("<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" ")
        .raw("autocapitalize=\"none\" spellcheck=\"false\" required autofocus>")
        .raw("<label for=\"password\">Password</label>")
        .raw("<input id=\"password\" name=\"password\" type=\"password\" ")
        .raw("autocomplete=\"current-password\" required>")
        .raw("<button type=\"submit\">Sign in</button></form>");
    let body = if ctx.app.webauthn.is_some() {
        super::passkeys::login_form(body, &secret, &return_to)
    } else {
        body
    };
    let body = body.fragment(crate::signin::buttons(ctx.app, &return_to));
    page(StatusCode::OK, "Sign in", body, Some(&secret))
}

/// POST /login: the same use case as POST /v1/login in session mode.
pub async fn login(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let mut form = Form::read(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    check_form(
        &parts.method,
        &parts.headers,
        &ctx.app.config,
        LOGIN_FORM,
        form.get("csrf_token"),
    )?;
    let return_to = ReturnTo::or_home(form.get("return_to"));
    let username = form.get("username").unwrap_or("").to_owned();
    let password = form.take("password").unwrap_or_default();
    let outcome = ctx
        .app
        .run(LoginRequest {
            username,
            password: password.into(),
            mode: LoginMode::Session,
            client: Some(auth::client_address(
                ctx.peer,
                &parts.headers,
                &ctx.app.config,
            )),
            supersedes: auth::presented_session(ctx.app, &parts.headers),
        })
        .await?;
    match outcome.reply {
        Ok(LoginReply::Completed(done)) => signed_in(done, outcome.recorded_at, &return_to),
        Ok(LoginReply::MfaRequired(challenge)) => Ok(mfa_required(&challenge, &return_to)),
        Err(Rejection::InvalidCredentials) => Ok(see_other(&with_query(
            "/login",
            &[("return_to", kept(&return_to)), ("error", "credentials")],
        ))),
        Err(other) => Err(other.into()),
    }
}

/// The password was right (or the provider vouched for the user) and MFA is on: the
/// challenge cookie, and on to the code form. An external sign-in ends here too.
pub fn mfa_required(
    challenge: &tessera_core::mfa::MfaChallengeIssued,
    return_to: &ReturnTo,
) -> Reply {
    let mut resp = see_other(&with_query("/login/mfa", &[("return_to", kept(return_to))]));
    let cookie = format!(
        "{MFA_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        challenge.mfa_token.expose(),
        challenge.expires_in_secs
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, value);
    }
    resp
}

/// The return target for a query: empty (left out) for the start page.
pub(super) fn kept(return_to: &ReturnTo) -> &str {
    if return_to.is_home() {
        ""
    } else {
        return_to.as_str()
    }
}

/// A completed login: the session cookie (as POST /v1/login sets it), the challenge cookie
/// cleared, and on to `return_to`.
pub(super) fn signed_in(
    done: LoginCompleted,
    now: Timestamp,
    return_to: &ReturnTo,
) -> Result<Reply, Problem> {
    let LoginCompleted::Session(issued) = done else {
        // The pages only ever ask for session mode.
        return Err(Problem::internal());
    };
    let mut resp = see_other(return_to.as_str());
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        auth::set_session_cookie(issued.secret.expose(), issued.expires_at, now),
    );
    h.append(header::SET_COOKIE, clear_mfa_cookie());
    Ok(resp)
}

fn clear_mfa_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-tessera_mfa=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    )
}

fn restart(return_to: &ReturnTo) -> Reply {
    let mut resp = see_other(&with_query(
        "/login",
        &[("return_to", kept(return_to)), ("error", "expired")],
    ));
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_mfa_cookie());
    resp
}

/// GET /login/mfa: the code form, while a challenge is open, and the passkey form when the
/// account has a WebAuthn credential.
pub fn mfa_page(ctx: Ctx<'_>, req: &Request<Incoming>) -> Reply {
    let return_to = ReturnTo::or_home(query_param(req.uri(), "return_to").as_deref());
    let Some(token) = cookie_value(req.headers(), MFA_COOKIE).filter(|v| !v.is_empty()) else {
        return restart(&return_to);
    };
    let secret = BrowserSecret::for_page(req.headers());
    let error = query_param(req.uri(), "error");
    let now = ctx.app.engine.now();
    let challenge = tessera_core::mfa::presented_challenge_digest(&token).and_then(|digest| {
        ctx.app
            .engine
            .views()
            .challenge_by_digest(&digest)
            .filter(|c| c.is_live(now) && !c.exhausted())
            .cloned()
    });
    let Some(challenge) = challenge else {
        return restart(&return_to);
    };
    let mut body = alert(Html::new(), error.as_deref());
    let totp = ctx
        .app
        .engine
        .views()
        .mfa(&challenge.account)
        .is_some_and(tessera_core::mfa::MfaView::enabled);
    if let Some(form) =
        super::passkeys::second_factor_form(ctx, &challenge, &secret, MFA_FORM, &return_to)
    {
        body = body
            .raw("<p>Use your passkey or security key.</p>")
            .fragment(form);
        if !totp {
            // No authenticator app to fall back on: the code forms could only fail.
            let body = body.raw(
                "<noscript><p class=\"note\">Your second step is a passkey or security key, \
                 which needs JavaScript in this browser.</p></noscript>",
            );
            return page(StatusCode::OK, "Two-step verification", body, Some(&secret));
        }
        body = body.raw("<p class=\"note\">Or, with an authenticator app:</p>");
    }
    let body = body
        .raw("<p>Enter the 6-digit code from your authenticator app.</p>")
        .raw("<form method=\"post\" action=\"/login/mfa\">");
    let body = hidden(body, &secret, MFA_FORM, &return_to)
        .raw("<label for=\"code\">Authentication code</label>")
        .raw("<input id=\"code\" name=\"code\" type=\"text\" class=\"code\" inputmode=\"numeric\" ")
        .raw("autocomplete=\"one-time-code\" pattern=\"[0-9 ]{6,7}\" maxlength=\"7\" ")
        .raw("required autofocus>")
        .raw("<button type=\"submit\">Verify</button></form>")
        .raw("<details><summary>Use a backup code instead</summary>")
        .raw("<form method=\"post\" action=\"/login/mfa\">");
    let body = hidden(body, &secret, MFA_FORM, &return_to)
        .raw("<label for=\"backup_code\">Backup code</label>")
        .raw("<input id=\"backup_code\" name=\"backup_code\" type=\"text\" class=\"code\" ")
        .raw("autocomplete=\"off\" autocapitalize=\"none\" spellcheck=\"false\" required>")
        .raw("<button type=\"submit\" class=\"secondary\">Use backup code</button></form>")
        .raw("</details>");
    page(StatusCode::OK, "Two-step verification", body, Some(&secret))
}

/// POST /login/mfa: the same use case as POST /v1/login/mfa.
pub async fn answer(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let mut form = Form::read(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    check_form(
        &parts.method,
        &parts.headers,
        &ctx.app.config,
        MFA_FORM,
        form.get("csrf_token"),
    )?;
    let return_to = ReturnTo::or_home(form.get("return_to"));
    let Some(token) = cookie_value(&parts.headers, MFA_COOKIE).filter(|v| !v.is_empty()) else {
        return Ok(restart(&return_to));
    };
    if form.get("credential").is_some() {
        return answer_with_credential(ctx, &parts.headers, &form, &token, &return_to).await;
    }
    let parsed = match (form.take("code"), form.take("backup_code")) {
        (Some(code), None) => MfaAnswer::totp(code.trim()),
        (None, Some(code)) => MfaAnswer::backup(&code),
        _ => Err(Rejection::MfaCodeMalformed),
    };
    let Ok(mfa_answer) = parsed else {
        return Ok(retry_code(&return_to, "malformed"));
    };
    let client = Some(auth::client_address(
        ctx.peer,
        &parts.headers,
        &ctx.app.config,
    ));
    let command = match usecase::answer_challenge(
        &token,
        mfa_answer,
        ctx.app.mfa_keys.clone(),
        client,
        auth::presented_session(ctx.app, &parts.headers),
    ) {
        Ok(command) => command,
        Err(_) => return Ok(restart(&return_to)),
    };
    let outcome = ctx.app.engine.execute(command).await?;
    match outcome.reply {
        Ok(done) => signed_in(done, outcome.recorded_at, &return_to),
        Err(Rejection::MfaCodeInvalid { .. } | Rejection::MfaCodeReplayed { .. }) => {
            Ok(retry_code(&return_to, "code"))
        }
        Err(Rejection::MfaChallengeInvalid | Rejection::MfaChallengeExhausted) => {
            Ok(restart(&return_to))
        }
        Err(other) => Err(other.into()),
    }
}

/// The passkey answer of the second step: the same use case as POST /v1/login/mfa with
/// `webauthn`. A failed assertion is a wrong answer (the core counts it).
async fn answer_with_credential(
    ctx: Ctx<'_>,
    headers: &HeaderMap,
    form: &Form,
    token: &str,
    return_to: &ReturnTo,
) -> Result<Reply, Problem> {
    let Ok(credential) = serde_json::from_str(form.get("credential").unwrap_or("")) else {
        return Ok(retry_code(return_to, "passkey"));
    };
    let answer = crate::routes::webauthn::WebauthnAnswer {
        ceremony: form.get("ceremony").unwrap_or("").to_owned(),
        credential,
    };
    let client = Some(auth::client_address(ctx.peer, headers, &ctx.app.config));
    let supersedes = auth::presented_session(ctx.app, headers);
    let outcome =
        crate::routes::webauthn::answer_challenge(ctx, token, &answer, client, supersedes).await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(p) if p.status.is_server_error() => return Err(p),
        Err(_) => return Ok(retry_code(return_to, "passkey")),
    };
    match outcome.reply {
        Ok(done) => signed_in(done, outcome.recorded_at, return_to),
        Err(Rejection::MfaChallengeInvalid | Rejection::MfaChallengeExhausted) => {
            Ok(restart(return_to))
        }
        Err(Rejection::Throttled { retry_after_secs }) => {
            Err(Rejection::Throttled { retry_after_secs }.into())
        }
        Err(_) => Ok(retry_code(return_to, "passkey")),
    }
}

fn retry_code(return_to: &ReturnTo, error: &str) -> Reply {
    see_other(&with_query(
        "/login/mfa",
        &[("return_to", kept(return_to)), ("error", error)],
    ))
}

/// GET /: who is signed in in this browser, with a sign-out button; or a link to sign in.
pub fn home(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let secret = BrowserSecret::for_page(req.headers());
    let username = signed_in_username(ctx, req.headers());
    let body = match username {
        Some((name, account)) => Html::new()
            .raw("<p>Signed in as <strong>")
            .text(&name)
            .raw("</strong>.</p>")
            .raw("<p><a href=\"/account/passkeys\">Passkeys and security keys</a></p>")
            .fragment(identities(ctx, account))
            .raw("<form method=\"post\" action=\"/logout\">")
            .raw("<input type=\"hidden\" name=\"csrf_token\" value=\"")
            .text(&secret.token(LOGOUT_FORM))
            .raw("\"><button type=\"submit\" class=\"secondary\">Sign out</button></form>"),
        None => {
            Html::new().raw("<p>You are not signed in.</p><p><a href=\"/login\">Sign in</a></p>")
        }
    };
    Ok(page(StatusCode::OK, "Your account", body, Some(&secret)))
}

/// The username of the live session the request's cookie names (no activity recorded: the
/// start page is only a look).
fn signed_in_username(
    ctx: Ctx<'_>,
    headers: &HeaderMap,
) -> Option<(String, tessera_core::AccountId)> {
    let cookie = auth::session_cookie(headers)?;
    let now = ctx.app.engine.now();
    let views = ctx.app.engine.views();
    let session = tessera_core::session::authenticate(&views, &cookie, now).ok()?;
    views
        .account(&session.account)
        .map(|a| (a.username.clone(), a.id))
}

/// The account's linked providers, and a button to link each other configured one (a plain
/// form POST to /v1/identities/{provider}, which redirects through the provider).
fn identities(ctx: Ctx<'_>, account: tessera_core::AccountId) -> Html {
    let linked: Vec<String> = ctx
        .app
        .engine
        .views()
        .identities_of(&account)
        .map(|i| i.provider.clone())
        .collect();
    let mut body = Html::new();
    for p in ctx.app.signin.all() {
        let name = &p.config.name;
        if linked.contains(name) {
            body = body
                .raw("<p class=\"note linked\">Linked to ")
                .text(&p.config.display_name)
                .raw(".</p>");
        } else {
            body = body
                .raw("<form method=\"post\" action=\"/v1/identities/")
                .text(name)
                .raw("\"><button type=\"submit\" class=\"secondary\">Link ")
                .text(&p.config.display_name)
                .raw("</button></form>");
        }
    }
    body
}

/// POST /logout: ends this browser's session (as a cookie POST /v1/logout does).
pub async fn logout(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let form = Form::read(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    check_form(
        &parts.method,
        &parts.headers,
        &ctx.app.config,
        LOGOUT_FORM,
        form.get("csrf_token"),
    )?;
    if let Some(session) = auth::presented_session(ctx.app, &parts.headers) {
        let outcome = ctx.app.engine.execute(Logout { session }).await?;
        match outcome.reply {
            Ok(_) | Err(Rejection::Unauthenticated) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let mut resp = see_other("/");
    resp.headers_mut()
        .append(header::SET_COOKIE, auth::clear_session_cookie());
    Ok(resp)
}
