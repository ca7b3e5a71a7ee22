//! Passkeys and security keys on the pages: "Sign in with a passkey" on the sign-in page,
//! the passkey answer at the second step (which the OAuth authorize and device pages reach
//! through /login), and GET/POST /account/passkeys to register, list and remove them.
//!
//! ```text
//!  GET /login ─ passkey form ─JS: POST /v1/login/webauthn/start, navigator.credentials.get─▶
//!     POST /login/passkey {ceremony, credential} ─▶ passkey_login (as /v1/login/webauthn/finish)
//!        ├─ completed ─▶ Set-Cookie session, 303 return_to
//!        └─ refused ───▶ 303 /login?error=passkey
//!  GET /login/mfa ─ the page starts a second-factor ceremony for the challenge and embeds its
//!     options ─JS: navigator.credentials.get─▶ POST /login/mfa {ceremony, credential}
//!  GET /account/passkeys ─ list, remove buttons, register form
//!     ─JS: POST /v1/webauthn/register/start, navigator.credentials.create─▶
//!     POST /account/passkeys {action=register, ceremony, credential, name, password?}
//! ```
//!
//! The script (`/assets/webauthn.js`) is the only JavaScript, served from this origin under
//! the pages' policy (`script-src 'self'`, no inline script). The WebAuthn forms are hidden
//! until it runs, so without it every page still works with passwords and codes.

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tessera_core::mfa::ChallengeView;
use tessera_core::webauthn::{CredentialId, RegisterCredential, RemoveCredential};
use tessera_core::{LoginMode, Rejection};

use super::csrf::{BrowserSecret, check_form};
use super::html::Html;
use super::login::{hidden, kept, query_param, signed_in};
use super::return_to::ReturnTo;
use super::{Form, page, see_other, with_query};
use crate::auth::{self, Caller};
use crate::problem::Problem;
use crate::routes::{Ctx, Reply};
use crate::time::rfc3339;

/// The script, served at [`SCRIPT_PATH`].
const SCRIPT: &str = include_str!("webauthn.js");
pub const SCRIPT_PATH: &str = "/assets/webauthn.js";

const PASSKEY_FORM: &str = "login-passkey";
const PASSKEYS_FORM: &str = "passkeys";

/// GET /assets/webauthn.js.
pub fn script() -> Reply {
    let mut resp = http::Response::new(Full::new(Bytes::from_static(SCRIPT.as_bytes())));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

/// The script tag, at the end of a page that has a WebAuthn form.
fn with_script(body: Html) -> Html {
    body.raw("<script src=\"/assets/webauthn.js\"></script>")
}

/// The hidden fields a WebAuthn form fills, and the line it reports a failure on.
fn ceremony_fields(body: Html) -> Html {
    body.raw("<input type=\"hidden\" name=\"ceremony\" value=\"\">")
        .raw("<input type=\"hidden\" name=\"credential\" value=\"\">")
        .raw("<p class=\"note webauthn-status\" role=\"status\"></p>")
}

/// The "Sign in with a passkey" form of the sign-in page.
pub fn login_form(body: Html, secret: &BrowserSecret, return_to: &ReturnTo) -> Html {
    let body = body.raw(
        "<form method=\"post\" action=\"/login/passkey\" data-webauthn=\"get\" \
         data-start=\"/v1/login/webauthn/start\" hidden>",
    );
    let body = hidden(body, secret, PASSKEY_FORM, return_to);
    with_script(
        ceremony_fields(body)
            .raw("<button type=\"submit\" class=\"secondary\">Sign in with a passkey</button>")
            .raw("</form>"),
    )
}

/// POST /login/passkey: the same use case as POST /v1/login/webauthn/finish in session mode.
pub async fn login(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let form = Form::read(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    check_form(
        &parts.method,
        &parts.headers,
        &ctx.app.config,
        PASSKEY_FORM,
        form.get("csrf_token"),
    )?;
    let return_to = ReturnTo::or_home(form.get("return_to"));
    let Some(ceremonies) = ctx.app.webauthn.as_ref() else {
        return Ok(passkey_refused(&return_to));
    };
    let credential: serde_json::Value =
        match serde_json::from_str(form.get("credential").unwrap_or("")) {
            Ok(v) => v,
            Err(_) => return Ok(passkey_refused(&return_to)),
        };
    let outcome = crate::routes::webauthn::passkey_login(
        ctx,
        ceremonies,
        form.get("ceremony").unwrap_or(""),
        &credential,
        LoginMode::Session,
        Some(auth::client_address(
            ctx.peer,
            &parts.headers,
            &ctx.app.config,
        )),
        auth::presented_session(ctx.app, &parts.headers),
    )
    .await;
    match outcome {
        Ok(outcome) => match outcome.reply {
            Ok(done) => signed_in(done, outcome.recorded_at, &return_to),
            Err(Rejection::Throttled { retry_after_secs }) => {
                Err(Rejection::Throttled { retry_after_secs }.into())
            }
            Err(_) => Ok(passkey_refused(&return_to)),
        },
        Err(p) if p.status.is_server_error() => Err(p),
        Err(_) => Ok(passkey_refused(&return_to)),
    }
}

fn passkey_refused(return_to: &ReturnTo) -> Reply {
    see_other(&with_query(
        "/login",
        &[("return_to", kept(return_to)), ("error", "passkey")],
    ))
}

/// The passkey form of the second step, for a challenge whose account has credentials: a
/// ceremony bound to the challenge is started now and its options embedded in the form.
/// `None` when the account has none, or no ceremony can start (the code form still works).
pub fn second_factor_form(
    ctx: Ctx<'_>,
    challenge: &ChallengeView,
    secret: &BrowserSecret,
    purpose: &str,
    return_to: &ReturnTo,
) -> Option<Html> {
    let ceremonies = ctx.app.webauthn.as_ref()?;
    let started = {
        let views = ctx.app.engine.views();
        ceremonies
            .start_second_factor(&views, challenge, ctx.app.engine.now())
            .ok()?
    };
    let mut options = started.options;
    if let serde_json::Value::Object(map) = &mut options {
        map.insert(
            "ceremony".into(),
            serde_json::Value::String(started.ceremony.expose().to_owned()),
        );
    }
    let body = Html::new()
        .raw("<form method=\"post\" action=\"/login/mfa\" data-webauthn=\"get\" data-options=\"")
        .text(&options.to_string())
        .raw("\" hidden>");
    let body = hidden(body, secret, purpose, return_to);
    Some(with_script(ceremony_fields(body).raw(
        "<button type=\"submit\">Use a passkey or security key</button></form>",
    )))
}

/// Messages of the credentials page for an `error` query parameter.
fn message(error: Option<&str>) -> Option<&'static str> {
    Some(match error? {
        "reauthenticate" => "Enter your password to add a passkey: your sign-in is not recent.",
        "password" => "That password is not right.",
        "name" => "Give the passkey a name of 1 to 64 characters.",
        "failed" => "The passkey could not be added. Try again.",
        "exists" => "That passkey or security key is already added.",
        "last" => "This is your last way to sign in: add another before removing it.",
        "limit" => "You have as many passkeys as allowed: remove one first.",
        _ => return None,
    })
}

/// GET /account/passkeys: the signed-in account's credentials, with a remove button each,
/// and the form that registers a new one.
pub async fn passkeys_page(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let Ok(caller) = auth::session_caller(ctx.app, req.headers()).await else {
        return Ok(see_other("/login?return_to=%2Faccount%2Fpasskeys"));
    };
    let secret = BrowserSecret::for_page(req.headers());
    let error = query_param(req.uri(), "error");
    let mut body = match message(error.as_deref()) {
        Some(text) => Html::new()
            .raw("<p class=\"alert\" role=\"alert\">")
            .text(text)
            .raw("</p>"),
        None => Html::new(),
    };
    let listed = {
        let views = ctx.app.engine.views();
        tessera_core::webauthn::list(&views, &caller.session.account)
    };
    if listed.is_empty() {
        body = body.raw("<p>No passkey or security key yet.</p>");
    } else {
        body = body.raw("<ul class=\"credentials\">");
        for c in &listed {
            body = body
                .raw("<li><strong>")
                .text(&c.name)
                .raw("</strong> <span class=\"note\">")
                .text(
                    if c.kind == tessera_core::webauthn::CredentialKind::Passkey {
                        "passkey"
                    } else {
                        "security key"
                    },
                )
                .raw(", added ")
                .text(&rfc3339(c.created_at))
                .raw(", last used ")
                .text(&c.last_used_at.map_or_else(|| "never".to_owned(), rfc3339))
                .raw("</span>");
            if c.flagged {
                body = body.raw(" <span class=\"alert\">its counter went backwards once</span>");
            }
            body = body
                .raw("<form method=\"post\" action=\"/account/passkeys\">")
                .raw("<input type=\"hidden\" name=\"csrf_token\" value=\"")
                .text(&secret.token(PASSKEYS_FORM))
                .raw("\"><input type=\"hidden\" name=\"action\" value=\"remove\">")
                .raw("<input type=\"hidden\" name=\"id\" value=\"")
                .text(&c.id.to_string())
                .raw("\"><button type=\"submit\" class=\"secondary\">Remove</button></form></li>");
        }
        body = body.raw("</ul>");
    }
    body = body
        .raw("<h2>Add a passkey or security key</h2>")
        .raw(
            "<form method=\"post\" action=\"/account/passkeys\" data-webauthn=\"create\" \
             data-start=\"/v1/webauthn/register/start\" hidden>",
        )
        .raw("<input type=\"hidden\" name=\"csrf_token\" value=\"")
        .text(&secret.token(PASSKEYS_FORM))
        .raw("\"><input type=\"hidden\" name=\"action\" value=\"register\">")
        .raw("<label for=\"name\">Name</label>")
        .raw("<input id=\"name\" name=\"name\" type=\"text\" maxlength=\"64\" required>")
        .raw("<label for=\"kind\">Kind</label><select id=\"kind\" name=\"kind\">")
        .raw("<option value=\"passkey\">Passkey (signs in without a password)</option>")
        .raw("<option value=\"security_key\">Security key (second step only)</option></select>")
        .raw("<label for=\"password\">Password (if you signed in more than 5 minutes ago)</label>")
        .raw("<input id=\"password\" name=\"password\" type=\"password\" ")
        .raw("autocomplete=\"current-password\">");
    body = ceremony_fields(body).raw("<button type=\"submit\">Add</button></form>");
    body = body.raw(
        "<noscript><p class=\"note\">Adding a passkey needs JavaScript: the browser's \
         passkey prompt has no form of its own.</p></noscript>",
    );
    body = body.raw("<p><a href=\"/\">Back to your account</a></p>");
    Ok(page(
        StatusCode::OK,
        "Passkeys and security keys",
        with_script(body),
        Some(&secret),
    ))
}

fn back(error: &str) -> Reply {
    see_other(&with_query("/account/passkeys", &[("error", error)]))
}

/// POST /account/passkeys: `action=register` (the same use case as POST
/// /v1/webauthn/register/finish) or `action=remove` (as DELETE /v1/webauthn/credentials/{id}).
pub async fn passkeys_submit(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let mut form = Form::read(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    check_form(
        &parts.method,
        &parts.headers,
        &ctx.app.config,
        PASSKEYS_FORM,
        form.get("csrf_token"),
    )?;
    let Ok(caller) = auth::session_caller(ctx.app, &parts.headers).await else {
        return Ok(see_other("/login?return_to=%2Faccount%2Fpasskeys"));
    };
    let account = caller.session.account;
    match form.get("action") {
        Some("remove") => {
            let Some(credential) = form.get("id").and_then(CredentialId::parse) else {
                return Ok(see_other("/account/passkeys"));
            };
            let outcome = ctx
                .app
                .engine
                .execute(RemoveCredential {
                    account,
                    credential,
                })
                .await?;
            Ok(match outcome.reply {
                Err(Rejection::WebauthnLastLoginMethod) => back("last"),
                _ => see_other("/account/passkeys"),
            })
        }
        Some("register") => {
            let Some(ceremonies) = ctx.app.webauthn.as_ref() else {
                return Ok(back("failed"));
            };
            let new = form
                .get("ceremony")
                .and_then(tessera_webauthn::CeremonyId::parse)
                .zip(
                    form.get("credential")
                        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()),
                )
                .and_then(|(ceremony, credential)| {
                    ceremonies
                        .finish_registration(&ceremony, account, &credential, ctx.app.engine.now())
                        .ok()
                });
            let Some(credential) = new else {
                return Ok(back("failed"));
            };
            let password = form.take("password").filter(|p| !p.is_empty());
            let command = RegisterCredential {
                account,
                name: form.get("name").unwrap_or("").to_owned(),
                credential,
                step_up: Some(tessera_core::session::session_auth_time(&caller.session)).into(),
            };
            let client = Some(auth::client_address(
                ctx.peer,
                &parts.headers,
                &ctx.app.config,
            ));
            let caller = Caller::Session(caller.session);
            let outcome =
                auth::run_sensitive(ctx.app, command, &caller, password, None, client).await;
            Ok(match outcome.map(|o| o.reply) {
                Ok(Ok(_)) => see_other("/account/passkeys"),
                Ok(Err(Rejection::ReauthenticationRequired)) => back("reauthenticate"),
                Ok(Err(Rejection::InvalidCredentials)) => back("password"),
                Ok(Err(Rejection::WebauthnNameInvalid)) => back("name"),
                Ok(Err(Rejection::WebauthnCredentialExists)) => back("exists"),
                Ok(Err(Rejection::WebauthnCredentialLimit)) => back("limit"),
                Ok(Err(other)) => return Err(other.into()),
                Err(p) => return Err(p),
            })
        }
        _ => Ok(see_other("/account/passkeys")),
    }
}
