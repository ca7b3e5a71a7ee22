//! The pages' CSRF defence over HTTP: the browser's secret in the `__Host-tessera_csrf`
//! cookie, and the check of every page POST. The rule itself (tokens, purposes, what is
//! refused) is [`tessera_core::csrf`]; this module reads cookies and headers.
//!
//! The cookie is HttpOnly, Secure, SameSite=Lax, Path=/ with no Domain: the `__Host-` prefix
//! makes the browser refuse it from a sibling host or over plain HTTP, so another site
//! cannot plant a known secret. Lax rather than Strict: an OAuth client sends the browser
//! here with a cross-site navigation, and the form shown then must match the cookie the
//! browser already has.

use http::{HeaderMap, HeaderValue, header};
use tessera_core::csrf::{self, CsrfRefusal};

use crate::problem::Problem;
use crate::security_log::{SecurityEvent, SecurityNote};

pub const CSRF_COOKIE: &str = "__Host-tessera_csrf";

/// How long the browser keeps its secret: long enough that an open form does not go stale.
const COOKIE_MAX_AGE_SECS: u64 = 12 * 3600;

/// The browser's CSRF secret: the one its cookie holds, or a new one the answer sets.
#[derive(Clone, Debug)]
pub struct BrowserSecret {
    secret: csrf::BrowserSecret,
    /// True when the browser did not send one: the answer must set it.
    fresh: bool,
}

impl BrowserSecret {
    /// The secret the request's cookie carries, when it has the right shape.
    pub fn presented(headers: &HeaderMap) -> Option<csrf::BrowserSecret> {
        cookie_value(headers, CSRF_COOKIE).and_then(|v| csrf::BrowserSecret::parse(&v))
    }

    /// The request's secret, or a new one from the OS random source.
    pub fn for_page(headers: &HeaderMap) -> Self {
        match Self::presented(headers) {
            Some(secret) => Self {
                secret,
                fresh: false,
            },
            None => Self {
                secret: csrf::BrowserSecret::generate(&mut crate::system::os_rng()),
                fresh: true,
            },
        }
    }

    /// The token a form with this purpose carries.
    pub fn token(&self, purpose: &str) -> String {
        self.secret.token(purpose)
    }

    /// `Set-Cookie` for a secret the browser does not have yet.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        if !self.fresh {
            return None;
        }
        let value = format!(
            "{CSRF_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={COOKIE_MAX_AGE_SECS}",
            self.secret.cookie_value()
        );
        HeaderValue::from_str(&value).ok()
    }
}

/// Checks a page's POST: from this site (the check the JSON API applies to
/// cookie-authenticated changes), and carrying this browser's token for `purpose`. Both
/// refusals are 403 and reported as refused cross-site requests.
pub fn check_form(
    method: &http::Method,
    headers: &HeaderMap,
    config: &crate::config::HttpConfig,
    purpose: &str,
    presented: Option<&str>,
) -> Result<(), Problem> {
    let same_site = crate::auth::check_same_site(method, headers, config).is_ok();
    let secret = BrowserSecret::presented(headers);
    csrf::check_form(secret.as_ref(), purpose, presented, same_site).map_err(|r| match r {
        CsrfRefusal::CrossSite => Problem::cross_site(),
        CsrfRefusal::Token => token_problem(),
    })
}

fn token_problem() -> Problem {
    Problem::new(
        http::StatusCode::FORBIDDEN,
        "cross-site-request",
        "Cross-site request refused",
        "the form's security token is missing or does not match this browser",
    )
    .reporting(&SecurityNote {
        event: SecurityEvent::CrossSiteRefused,
        reason: "csrf_token",
    })
}

/// The value of the cookie `name`, if the request has one.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {CSRF_COOKIE}={value}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_page_form_needs_its_cookie_token_and_site() {
        let c = crate::config::HttpConfig::default();
        let fresh = BrowserSecret::for_page(&HeaderMap::new());
        assert!(fresh.set_cookie().is_some());
        let mut h = with_cookie(fresh.secret.cookie_value());
        let known = BrowserSecret::for_page(&h);
        assert!(
            known.set_cookie().is_none(),
            "a known secret is not set again"
        );
        let post = http::Method::POST;
        let token = fresh.token("login");
        assert!(check_form(&post, &h, &c, "login", Some(&token)).is_ok());
        assert_eq!(
            check_form(&post, &h, &c, "login", None).unwrap_err().status,
            403
        );
        assert!(check_form(&post, &HeaderMap::new(), &c, "login", Some(&token)).is_err());
        assert!(BrowserSecret::for_page(&with_cookie("short")).fresh);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_form(&post, &h, &c, "login", Some(&token)).is_err());
    }
}
