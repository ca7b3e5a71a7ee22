//! GET/POST /device: the device authorization grant's browser side (RFC 8628 §3.3).
//!
//! ```text
//!  GET /device ─▶ no session ─▶ 303 /login?return_to=/device[?user_code=…]
//!             ─▶ code form ─POST─▶ 303 /device?user_code=… (or ?error=code)
//!  GET /device?user_code=…  (typed, or from verification_uri_complete)
//!             ─▶ EnterUserCode (core: a wrong code counts against this browser's session
//!                and its address; 5 within the window, then 429 until it passes)
//!             ─▶ approval page: client, each scope, the device's address, when the code
//!                was issued, and explicit Approve / Deny buttons
//!  POST /device (decision) ─▶ DecideDeviceAuthorization ─▶ 303 /device?done=approved|denied
//! ```
//!
//! RFC 8628 §5.4 (remote phishing): a code arriving in a link still leads to the approval
//! page, never to an approval; the page names the client and where the device asked from.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use tessera_core::oauth::{DecideDeviceAuthorization, DeviceDecision, DeviceLookup, EnterUserCode};
use tessera_core::{AccountId, Rejection, SessionId, Timestamp};

use super::csrf::{BrowserSecret, check_form};
use super::html::Html;
use super::login::query_param;
use super::return_to::ReturnTo;
use super::{Form, page, see_other, with_query};
use crate::auth;
use crate::problem::Problem;
use crate::routes::{Ctx, Reply};

/// The CSRF purposes of the two forms, bound to the session they were shown to.
fn code_purpose(session: SessionId) -> String {
    format!("device-code:{session}")
}

fn decision_purpose(session: SessionId) -> String {
    format!("device:{session}")
}

/// The signed-in account and session, or the 303 to the login page that comes back here.
async fn signed_in(
    ctx: Ctx<'_>,
    headers: &http::HeaderMap,
    back: &str,
) -> Result<Result<(AccountId, SessionId), Reply>, Problem> {
    let caller = match auth::session_caller(ctx.app, headers).await {
        Ok(c) => c,
        Err(p) if p.status == StatusCode::UNAUTHORIZED => {
            let back = ReturnTo::or_home(Some(back));
            return Ok(Err(see_other(&with_query(
                "/login",
                &[("return_to", back.as_str())],
            ))));
        }
        Err(p) => return Err(p),
    };
    if auth::enrolment_required(ctx.app, &caller.session.account) {
        return Err(Problem::mfa_enrolment_required());
    }
    Ok(Ok((caller.session.account, caller.session.id)))
}

/// GET /device.
pub async fn device(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let typed = query_param(req.uri(), "user_code").filter(|c| !c.trim().is_empty());
    let back = match &typed {
        Some(code) => with_query("/device", &[("user_code", code)]),
        None => "/device".to_owned(),
    };
    let (_, session) = match signed_in(ctx, req.headers(), &back).await? {
        Ok(who) => who,
        Err(to_login) => return Ok(to_login),
    };
    let secret = BrowserSecret::for_page(req.headers());
    if let Some(done) = query_param(req.uri(), "done") {
        return Ok(done_page(&done, &secret));
    }
    let Some(user_code) = typed else {
        let error = query_param(req.uri(), "error");
        return Ok(code_page(&secret, session, error.as_deref(), None));
    };
    let command = EnterUserCode {
        user_code,
        session: Some(session),
        address: Some(auth::client_address(
            ctx.peer,
            req.headers(),
            &ctx.app.config,
        )),
    };
    let outcome = ctx.app.engine.execute(command).await?;
    match outcome.reply {
        Ok(lookup) => Ok(approval_page(
            &lookup,
            &secret,
            session,
            outcome.recorded_at,
        )),
        Err(Rejection::UserCodeInvalid { attempts_left }) => Ok(code_page(
            &secret,
            session,
            Some("code"),
            Some(attempts_left),
        )),
        Err(other) => Err(other.into()),
    }
}

fn code_page(
    secret: &BrowserSecret,
    session: SessionId,
    error: Option<&str>,
    attempts_left: Option<u32>,
) -> Reply {
    let mut body = Html::new();
    if error == Some("code") {
        body = body
            .raw("<p class=\"alert\" role=\"alert\">That code is not valid. Check the code shown on your device.");
        body = match attempts_left {
            Some(0) => body.raw(" No tries are left: the next one must wait."),
            Some(1) => body.raw(" One try is left before a wait."),
            Some(left) => body
                .raw(" ")
                .number(u64::from(left))
                .raw(" tries are left before a wait."),
            None => body,
        };
        body = body.raw("</p>");
    }
    let body = body
        .raw("<p>Enter the code shown on your device.</p>")
        .raw("<form method=\"post\" action=\"/device\">")
        .raw("<input type=\"hidden\" name=\"csrf_token\" value=\"")
        .text(&secret.token(&code_purpose(session)))
        .raw("\"><label for=\"user_code\">Device code</label>")
        .raw("<input id=\"user_code\" name=\"user_code\" type=\"text\" class=\"code\" ")
        .raw("autocomplete=\"off\" autocapitalize=\"characters\" spellcheck=\"false\" ")
        .raw("placeholder=\"XXXX-XXXX\" required autofocus>")
        .raw("<button type=\"submit\">Continue</button></form>");
    page(StatusCode::OK, "Connect a device", body, Some(secret))
}

/// "just now", "45 seconds ago", "3 minutes ago".
fn ago(issued_at: Timestamp, now: Timestamp) -> String {
    let secs = now.since(issued_at) / 1000;
    match secs {
        0..=4 => "just now".to_owned(),
        5..=119 => format!("{secs} seconds ago"),
        _ => format!("{} minutes ago", secs / 60),
    }
}

fn approval_page(
    lookup: &DeviceLookup,
    secret: &BrowserSecret,
    session: SessionId,
    now: Timestamp,
) -> Reply {
    let address = lookup
        .device_address
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let body = Html::new()
        .raw("<p><strong>")
        .text(&lookup.client_name)
        .raw("</strong> on a device wants to access your account.</p>")
        .raw("<dl class=\"facts\"><dt>Code</dt><dd class=\"code\">")
        .text(&lookup.user_code)
        .raw("</dd><dt>Device address</dt><dd>")
        .text(&address)
        .raw("</dd><dt>Requested</dt><dd>")
        .text(&ago(lookup.issued_at, now))
        .raw("</dd></dl>")
        .fragment(super::authorize::scope_list(&lookup.scopes))
        .raw("<p class=\"note\">Approve only if you started this on your own device just now.</p>")
        .raw("<form method=\"post\" action=\"/device\">")
        .raw("<input type=\"hidden\" name=\"csrf_token\" value=\"")
        .text(&secret.token(&decision_purpose(session)))
        .raw("\"><input type=\"hidden\" name=\"user_code\" value=\"")
        .text(&lookup.user_code)
        .raw("\"><div class=\"actions\">")
        .raw("<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>")
        .raw("<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>")
        .raw("</div></form>");
    page(StatusCode::OK, "Connect a device?", body, Some(secret))
}

fn done_page(done: &str, secret: &BrowserSecret) -> Reply {
    let (title, text) = if done == "approved" {
        (
            "Device connected",
            "The device is connected. You can go back to it now.",
        )
    } else {
        (
            "Request denied",
            "The device was not connected. You can close this page.",
        )
    };
    page(
        StatusCode::OK,
        title,
        Html::new().raw("<p>").text(text).raw("</p>"),
        Some(secret),
    )
}

/// POST /device: the code form, or the approve / deny form.
pub async fn submit(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (parts, body) = req.into_parts();
    let form = Form::read(body, &parts.headers, ctx.app.config.body_bytes_max).await?;
    let (account, session) = match signed_in(ctx, &parts.headers, "/device").await? {
        Ok(who) => who,
        Err(to_login) => {
            auth::check_same_site(&parts.method, &parts.headers, &ctx.app.config)?;
            return Ok(to_login);
        }
    };
    let user_code = form.get("user_code").unwrap_or("").to_owned();
    let Some(decision) = form.get("decision") else {
        check_form(
            &parts.method,
            &parts.headers,
            &ctx.app.config,
            &code_purpose(session),
            form.get("csrf_token"),
        )?;
        return Ok(see_other(&with_query(
            "/device",
            &[("user_code", &user_code)],
        )));
    };
    check_form(
        &parts.method,
        &parts.headers,
        &ctx.app.config,
        &decision_purpose(session),
        form.get("csrf_token"),
    )?;
    let decision = match decision {
        "approve" => DeviceDecision::Approve,
        "deny" => DeviceDecision::Deny,
        _ => return Err(Problem::bad_request("choose approve or deny")),
    };
    let command = DecideDeviceAuthorization {
        user_code,
        account,
        session: Some(session),
        address: Some(auth::client_address(
            ctx.peer,
            &parts.headers,
            &ctx.app.config,
        )),
        decision,
    };
    let outcome = ctx.app.engine.execute(command).await?;
    match outcome.reply {
        Ok(()) => Ok(see_other(match decision {
            DeviceDecision::Approve => "/device?done=approved",
            DeviceDecision::Deny => "/device?done=denied",
        })),
        Err(Rejection::UserCodeInvalid { .. }) => Ok(see_other("/device?error=code")),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let t = Timestamp::from_millis(1_000_000);
        assert_eq!(ago(t, t.plus_ms(1_000)), "just now");
        assert_eq!(ago(t, t.plus_ms(45_000)), "45 seconds ago");
        assert_eq!(ago(t, t.plus_ms(180_000)), "3 minutes ago");
    }
}
