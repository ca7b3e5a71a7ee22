//! CSRF tokens for the pages' forms: a per-browser secret in a `__Host-` cookie, and per form
//! a token derived from it.
//!
//! OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit Cookie": the browser holds a
//! 256-bit random value in `__Host-tessera_csrf` (HttpOnly, Secure, SameSite=Lax, Path=/, no
//! Domain: the prefix makes the browser refuse it from a sibling host or over plain HTTP, so
//! another site cannot plant a known value). A form carries
//! `HMAC-SHA256(key = that value, message = the form's purpose)`, so a token taken from one
//! form does not work on another, and the consent and device forms name the session in their
//! purpose, which ties them to it. A page's POST is refused unless the token matches the
//! cookie it arrived with, and unless `Origin` / `Sec-Fetch-Site` say it came from this
//! site ([`crate::auth::check_same_site`]): either check alone would stop a forged form.

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue, header};
use rand_core::Rng;
use sha2::Sha256;

use crate::problem::Problem;
use crate::security_log::{SecurityEvent, SecurityNote};

pub const CSRF_COOKIE: &str = "__Host-tessera_csrf";

/// Bytes of the browser's secret.
const SECRET_BYTES: usize = 32;
/// Its cookie form: unpadded base64url.
const SECRET_CHARS: usize = 43;
/// How long the browser keeps it: long enough that an open form does not go stale.
const COOKIE_MAX_AGE_SECS: u64 = 12 * 3600;

/// The browser's CSRF secret: the one its cookie holds, or a new one to set.
#[derive(Clone)]
pub struct BrowserSecret {
    value: String,
    /// True when the browser did not send one: the answer must set it.
    fresh: bool,
}

impl std::fmt::Debug for BrowserSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSecret")
            .field("fresh", &self.fresh)
            .finish_non_exhaustive()
    }
}

impl BrowserSecret {
    /// The secret the request's cookie carries, when it has the right shape.
    pub fn presented(headers: &HeaderMap) -> Option<Self> {
        cookie_value(headers, CSRF_COOKIE)
            .filter(|v| v.len() == SECRET_CHARS && BASE64URL_NOPAD.decode(v.as_bytes()).is_ok())
            .map(|value| Self {
                value,
                fresh: false,
            })
    }

    /// The request's secret, or a new one from the OS random source.
    pub fn for_page(headers: &HeaderMap) -> Self {
        Self::presented(headers).unwrap_or_else(|| {
            let mut bytes = [0u8; SECRET_BYTES];
            crate::system::os_rng().fill_bytes(&mut bytes);
            Self {
                value: BASE64URL_NOPAD.encode(&bytes),
                fresh: true,
            }
        })
    }

    /// The token a form with this purpose carries.
    pub fn token(&self, purpose: &str) -> String {
        BASE64URL_NOPAD.encode(&self.mac(purpose).finalize().into_bytes())
    }

    /// Whether `presented` is this browser's token for `purpose`, compared in constant time.
    pub fn verifies(&self, purpose: &str, presented: &str) -> bool {
        let Ok(bytes) = BASE64URL_NOPAD.decode(presented.as_bytes()) else {
            return false;
        };
        self.mac(purpose).verify_slice(&bytes).is_ok()
    }

    fn mac(&self, purpose: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length, so this never fails; the fallback key would only
        // make every token wrong, never right.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.value.as_bytes())
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(b"tessera-csrf-v1\0");
        mac.update(purpose.as_bytes());
        mac
    }

    /// `Set-Cookie` for a secret the browser does not have yet.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        if !self.fresh {
            return None;
        }
        let value = format!(
            "{CSRF_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={COOKIE_MAX_AGE_SECS}",
            self.value
        );
        HeaderValue::from_str(&value).ok()
    }
}

/// Checks a page's POST: same site, and a token that matches the browser's cookie. Both
/// failures are the same 403, reported as a refused cross-site request.
pub fn check_form(
    method: &http::Method,
    headers: &HeaderMap,
    config: &crate::config::HttpConfig,
    purpose: &str,
    presented: Option<&str>,
) -> Result<(), Problem> {
    crate::auth::check_same_site(method, headers, config)?;
    let ok = match (BrowserSecret::presented(headers), presented) {
        (Some(secret), Some(token)) => secret.verifies(purpose, token),
        _ => false,
    };
    if ok { Ok(()) } else { Err(token_problem()) }
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
    fn a_token_works_for_its_browser_and_purpose_only() {
        let mine = BrowserSecret::for_page(&HeaderMap::new());
        assert!(mine.set_cookie().is_some());
        let theirs = BrowserSecret::for_page(&HeaderMap::new());
        let token = mine.token("login");
        assert!(mine.verifies("login", &token));
        assert!(!mine.verifies("consent", &token));
        assert!(!theirs.verifies("login", &token));
        assert!(!mine.verifies("login", ""));
        assert!(!mine.verifies("login", "not base64 !"));
        let back = BrowserSecret::presented(&with_cookie(&mine.value)).unwrap();
        assert!(
            back.set_cookie().is_none(),
            "a known secret is not set again"
        );
        assert!(back.verifies("login", &token));
    }

    #[test]
    fn a_malformed_cookie_is_not_a_secret() {
        assert!(BrowserSecret::presented(&with_cookie("short")).is_none());
        assert!(BrowserSecret::presented(&with_cookie(&"!".repeat(SECRET_CHARS))).is_none());
        assert!(BrowserSecret::for_page(&with_cookie("short")).fresh);
    }

    #[test]
    fn a_form_without_its_token_is_refused() {
        let c = crate::config::HttpConfig::default();
        let secret = BrowserSecret::for_page(&HeaderMap::new());
        let mut h = with_cookie(&secret.value);
        let post = http::Method::POST;
        let token = secret.token("login");
        assert!(check_form(&post, &h, &c, "login", Some(&token)).is_ok());
        assert_eq!(
            check_form(&post, &h, &c, "login", None).unwrap_err().status,
            403
        );
        assert!(check_form(&post, &HeaderMap::new(), &c, "login", Some(&token)).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_form(&post, &h, &c, "login", Some(&token)).is_err());
    }
}
