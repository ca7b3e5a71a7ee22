//! Who is calling: the session cookie, the CSRF check for cookie-authenticated changes, and
//! the client's address.
//!
//! Session cookies follow the OWASP Session Management Cheat Sheet: `__Host-` prefix (so no Domain attribute and Path=/, set over a secure context
//! only), HttpOnly (no script can read it), Secure, SameSite=Lax, and a Max-Age no longer
//! than the session's absolute lifetime.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue, Method, header};
use tessera_core::blocklist::check_not_revoked;
use tessera_core::session::{SessionView, authenticate, touch_due};
use tessera_core::token::{AccessClaims, TokenRejection, verify_access_token};
use tessera_core::{AccountId, SessionId, Timestamp};

use crate::App;
use crate::config::HttpConfig;
use crate::problem::Problem;
use crate::security_log::{SecurityEvent, SecurityNote};

pub const SESSION_COOKIE: &str = "__Host-tessera_session";

/// The session cookie value presented with a request, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// The live session a request's cookie names, if any: a login that arrives with it ends it.
pub fn presented_session(app: &App, headers: &HeaderMap) -> Option<SessionId> {
    let cookie = session_cookie(headers)?;
    let now = app.engine.now();
    let views = app.engine.views();
    tessera_core::session::authenticate(&views, &cookie, now)
        .ok()
        .map(|s| s.id)
}

/// `Set-Cookie` for a new session secret.
pub fn set_session_cookie(secret: &str, expires_at: Timestamp, now: Timestamp) -> HeaderValue {
    let max_age = expires_at.since(now) / 1000;
    let value = format!(
        "{SESSION_COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    );
    // The secret is base64url and the rest is fixed text, so this is always a valid value.
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("__Host-tessera_session=; Path=/; Max-Age=0"))
}

/// `Set-Cookie` that deletes the session cookie.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-tessera_session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
    )
}

/// A caller authenticated by a live session cookie.
#[derive(Clone, Debug)]
pub struct SessionCaller {
    pub session: SessionView,
}

/// Who made a request: a session cookie's holder or a bearer token's.
#[derive(Clone, Debug)]
pub enum Caller {
    Session(SessionView),
    Bearer(AccessClaims),
}

impl Caller {
    pub fn account(&self) -> AccountId {
        match self {
            Self::Session(s) => s.account,
            Self::Bearer(c) => c.sub,
        }
    }

    /// The session the request came through, if any (a bearer token bound to one).
    pub fn session(&self) -> Option<SessionId> {
        match self {
            Self::Session(s) => Some(s.id),
            Self::Bearer(c) => c.sid,
        }
    }

    /// When the caller last authenticated, for the step-up rule the core applies to
    /// sensitive actions: a session's start (a fresh session at every login), or a token's
    /// `auth_time` (kept unchanged through refresh).
    pub fn auth_time(&self) -> Option<Timestamp> {
        match self {
            Self::Session(s) => Some(tessera_core::session::session_auth_time(s)),
            Self::Bearer(c) => c.authenticated_at(),
        }
    }
}

/// The bearer token of an `Authorization` header, if the request has one. `Err` when the
/// header is there but is not a bearer credential.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Problem::invalid_token())?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Problem::invalid_token()),
    }
}

/// Verifies a bearer access token: signature, claims, then the blocklist.
pub fn verify_bearer(app: &App, token: &str) -> Result<AccessClaims, Problem> {
    let now = app.engine.now();
    // The signature check (tens of microseconds) runs without the views' lock, on a copy of
    // the few published keys, so that many verifications never hold up the writer.
    let keys = app.engine.views().signing_keys().clone();
    let claims = verify_access_token(token, &keys, now, &app.engine.policy().token).map_err(
        |r| match r {
            // Plain expiry is what every honest client meets; anything else at this stage
            // is a token this server did not issue as presented.
            TokenRejection::Expired => Problem::invalid_token(),
            other => Problem::invalid_token().reporting(forged(&other)),
        },
    )?;
    check_not_revoked(&app.engine.views(), &claims, now).map_err(|_| Problem::invalid_token())?;
    Ok(claims)
}

/// A fixed name for why a token failed, for the security log: never the token's content.
fn forged(r: &TokenRejection) -> &'static SecurityNote {
    match r {
        TokenRejection::TooLong => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "too_long",
        },
        TokenRejection::Malformed => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "malformed",
        },
        TokenRejection::RefreshTokenPresented => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "refresh_token_presented",
        },
        TokenRejection::AlgorithmNotAllowed => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "algorithm_not_allowed",
        },
        TokenRejection::WrongType => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "wrong_type",
        },
        TokenRejection::CriticalHeader => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "critical_header",
        },
        TokenRejection::UnknownKey => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "unknown_key",
        },
        TokenRejection::BadSignature => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "bad_signature",
        },
        TokenRejection::NotYetValid => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "not_yet_valid",
        },
        TokenRejection::WrongIssuer => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "wrong_issuer",
        },
        TokenRejection::WrongAudience => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "wrong_audience",
        },
        _ => &SecurityNote {
            event: SecurityEvent::TokenForged,
            reason: "other",
        },
    }
}

/// Which callers a route serves when the policy requires MFA (OWASP ASVS 6.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// Also a caller that must enrol a second factor first: the routes that enrol it, show
    /// the account, or end the session.
    EnrolmentOnly,
    /// Only a caller not limited to enrolment.
    Full,
}

/// [`caller_for`] a route that only a caller not limited to enrolment may use: every
/// authenticated route but the few that let a caller enrol, so a new route is closed by
/// default.
pub async fn caller(app: &App, method: &Method, headers: &HeaderMap) -> Result<Caller, Problem> {
    caller_for(app, method, headers, Allowed::Full).await
}

/// Authenticates a request, then refuses it with `mfa-enrolment-required` when the route is
/// [`Allowed::Full`] and the account must enrol a second factor first. The limit is read
/// from the account's state at each request, so confirming TOTP lifts it at once.
pub async fn caller_for(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    allowed: Allowed,
) -> Result<Caller, Problem> {
    let caller = authenticated(app, method, headers).await?;
    if allowed == Allowed::Full && enrolment_required(app, &caller.account()) {
        return Err(Problem::mfa_enrolment_required());
    }
    Ok(caller)
}

/// Whether the account must enrol a second factor before anything else, by the policy.
pub fn enrolment_required(app: &App, account: &AccountId) -> bool {
    tessera_core::mfa::enrolment_required(
        &app.engine.views(),
        account,
        app.engine.now(),
        app.engine.policy(),
    )
}

/// Authenticates a request by its bearer token, or else its session cookie. A change made
/// with a cookie must also pass the same-site check (a bearer token cannot be sent by a
/// forged cross-site form, so it needs none).
async fn authenticated(app: &App, method: &Method, headers: &HeaderMap) -> Result<Caller, Problem> {
    if let Some(token) = bearer(headers)? {
        return verify_bearer(app, token).map(Caller::Bearer);
    }
    check_same_site(method, headers, &app.config)?;
    session_caller(app, headers)
        .await
        .map(|c| Caller::Session(c.session))
}

/// Finds the live session the cookie names, recording activity when it is due. A cookie the
/// server did not issue, an ended session, or one past its deadlines: 401.
pub async fn session_caller(app: &App, headers: &HeaderMap) -> Result<SessionCaller, Problem> {
    let presented = session_cookie(headers).ok_or_else(Problem::unauthenticated)?;
    let now = app.engine.now();
    let session = authenticate(&app.engine.views(), &presented, now)?.clone();
    if touch_due(&session, now, app.engine.policy().session.touch_interval_ms) {
        let outcome = app
            .engine
            .execute(tessera_core::session::TouchSession {
                session: session.id,
            })
            .await?;
        outcome.reply.map_err(Problem::from)?;
    }
    Ok(SessionCaller { session })
}

/// Refuses a cookie-carrying change that a browser says came from another site.
///
/// Browsers send `Sec-Fetch-Site` on every request, and `Origin` on every cross-origin and
/// every POST. A request with neither is not from a browser (curl, a backend), where CSRF
/// cannot happen. OWASP CSRF Prevention Cheat Sheet, "Fetch Metadata" and "Verifying Origin".
pub fn check_same_site(
    method: &Method,
    headers: &HeaderMap,
    config: &HttpConfig,
) -> Result<(), Problem> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(Problem::cross_site()),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| Problem::cross_site())?;
    if config.allowed_origins.iter().any(|o| o == origin) {
        return Ok(());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(Problem::cross_site)?;
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    if origin != "null" && origin_host.eq_ignore_ascii_case(host) {
        return Ok(());
    }
    Err(Problem::cross_site())
}

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, config: &HttpConfig) -> IpAddr {
    let peer_ip = peer.ip();
    if !config.trusted_proxies.contains(&peer_ip) {
        return peer_ip;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !config.trusted_proxies.contains(ip))
        .unwrap_or(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_changes_are_refused() {
        let c = HttpConfig::default();
        let post = Method::POST;
        assert!(check_same_site(&post, &headers(&[("sec-fetch-site", "cross-site")]), &c).is_err());
        assert!(check_same_site(&post, &headers(&[("sec-fetch-site", "same-site")]), &c).is_err());
        assert!(check_same_site(&post, &headers(&[("sec-fetch-site", "same-origin")]), &c).is_ok());
        assert!(
            check_same_site(
                &post,
                &headers(&[("origin", "https://evil.example"), ("host", "auth.example")]),
                &c
            )
            .is_err()
        );
        assert!(
            check_same_site(
                &post,
                &headers(&[("origin", "null"), ("host", "auth.example")]),
                &c
            )
            .is_err()
        );
        assert!(
            check_same_site(
                &post,
                &headers(&[("origin", "https://auth.example"), ("host", "auth.example")]),
                &c
            )
            .is_ok()
        );
        assert!(check_same_site(&post, &headers(&[]), &c).is_ok());
        assert!(
            check_same_site(
                &Method::GET,
                &headers(&[("sec-fetch-site", "cross-site")]),
                &c
            )
            .is_ok()
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut c = HttpConfig::default();
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("literal");
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.2")]);
        assert_eq!(client_address(peer, &h, &c), peer.ip());
        c.trusted_proxies = vec![
            "10.0.0.1".parse().expect("literal"),
            "10.0.0.2".parse().expect("literal"),
        ];
        assert_eq!(
            client_address(peer, &h, &c),
            "203.0.113.9".parse::<IpAddr>().expect("literal")
        );
    }

    #[test]
    fn cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; __Host-tessera_session=tss_abc; b=2")]);
        assert_eq!(session_cookie(&h).as_deref(), Some("tss_abc"));
        assert_eq!(
            session_cookie(&headers(&[("cookie", "tessera_session=x")])),
            None
        );
    }
}

/// The optional body of a sensitive action that has no other fields: `{password?}`, and
/// with it, for an account with MFA on, `code` or `backup_code`. A request without a JSON
/// body re-enters nothing.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StepUpBody {
    #[serde(default)]
    pub password: Option<zeroize::Zeroizing<String>>,
    #[serde(default)]
    pub code: Option<zeroize::Zeroizing<String>>,
    #[serde(default)]
    pub backup_code: Option<zeroize::Zeroizing<String>>,
}

impl StepUpBody {
    /// The second factor given with the password: at most one of `code` and `backup_code`,
    /// and only beside a password (a code alone is not a re-authentication).
    pub fn second_factor(&self) -> Result<Option<tessera_core::mfa::MfaAnswer>, Problem> {
        second_factor(&self.password, &self.code, &self.backup_code)
    }
}

/// The second factor a sensitive action's body gives beside its re-entered password: at
/// most one of `code` and `backup_code`, and only with a password (a code alone is not a
/// re-authentication).
pub fn second_factor(
    password: &Option<zeroize::Zeroizing<String>>,
    code: &Option<zeroize::Zeroizing<String>>,
    backup_code: &Option<zeroize::Zeroizing<String>>,
) -> Result<Option<tessera_core::mfa::MfaAnswer>, Problem> {
    use tessera_core::mfa::MfaAnswer;
    let answer = match (code, backup_code) {
        (None, None) => return Ok(None),
        (Some(code), None) => MfaAnswer::totp(code).map_err(Problem::from)?,
        (None, Some(code)) => MfaAnswer::backup(code).map_err(Problem::from)?,
        (Some(_), Some(_)) => {
            return Err(Problem::unprocessable(
                "send at most one of code and backup_code",
                vec![crate::problem::FieldProblem {
                    pointer: "/code".into(),
                    code: "one_of_code_or_backup_code".into(),
                    detail: "at most one is allowed".into(),
                }],
            ));
        }
    };
    if password.is_none() {
        return Err(Problem::unprocessable(
            "a second-factor code is given with the re-entered password",
            vec![crate::problem::FieldProblem {
                pointer: "/password".into(),
                code: "password_required_with_code".into(),
                detail: "re-enter the password beside the code".into(),
            }],
        ));
    }
    Ok(Some(answer))
}

impl std::fmt::Debug for StepUpBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password or a code itself.
        let shown = |v: &Option<zeroize::Zeroizing<String>>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("StepUpBody")
            .field("password", &shown(&self.password))
            .field("code", &shown(&self.code))
            .field("backup_code", &shown(&self.backup_code))
            .finish()
    }
}

/// Reads [`StepUpBody`] when the request has a JSON body, else the empty one.
pub async fn step_up_body(
    body: hyper::body::Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<StepUpBody, Problem> {
    if headers.get(header::CONTENT_TYPE).is_none() {
        return Ok(StepUpBody::default());
    }
    crate::body::read_json(body, headers, limit).await
}

/// Runs a sensitive action: with the password re-entered in the request, through the
/// step-up use case (argon2 on the hashing pool, like a login); otherwise with the caller's
/// authentication time. The core decides either way. A wrong re-entered password is 403
/// `wrong-current-password` (the caller stays signed in).
pub async fn run_sensitive<C>(
    app: &App,
    mut command: C,
    caller: &Caller,
    password: Option<zeroize::Zeroizing<String>>,
    second_factor: Option<tessera_core::mfa::MfaAnswer>,
    client: Option<IpAddr>,
) -> Result<tessera_storage::Outcome<C::Reply>, Problem>
where
    C: tessera_core::usecase::NeedsStepUp,
{
    let outcome = match password {
        Some(password) => {
            let request = tessera_core::usecase::StepUpRequest {
                command,
                password: password.into(),
                client,
                second_factor: second_factor.map(|answer| tessera_core::mfa::SecondFactor {
                    answer,
                    keys: app.mfa_keys.clone(),
                }),
            };
            app.run(request).await?
        }
        None => {
            command.set_step_up(caller.auth_time().into());
            app.engine.execute(command).await?
        }
    };
    Ok(outcome)
}

/// The problem for a sensitive action's rejection: a wrong re-entered password does not
/// sign the caller out (401 would tell a client to), so it is 403.
pub fn sensitive_problem(r: tessera_core::Rejection) -> Problem {
    match r {
        tessera_core::Rejection::InvalidCredentials => Problem::new(
            http::StatusCode::FORBIDDEN,
            "wrong-current-password",
            "Current password is wrong",
            "the re-entered password does not match",
        ),
        other => other.into(),
    }
}
