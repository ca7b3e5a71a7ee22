//! CSRF tokens for the browser pages' forms (OWASP CSRF Prevention Cheat Sheet, "Signed
//! Double-Submit Cookie"), as pure functions so that the pages and the attack simulator
//! check forms with the same code.
//!
//! ```text
//!   browser ── first page ──▶ BrowserSecret (256 random bits) in a __Host- cookie
//!   form    ── token = base64url(HMAC-SHA256(key = secret, "tessera-csrf-v1\0" ‖ purpose))
//!   POST    ── check_form(cookie's secret, purpose, token, same_site)
//!                 no secret, no token, wrong token, or not same-site ─▶ refused
//! ```
//!
//! The purpose names the form (`login`, `login-mfa`, `consent:<session>`, ...), so a token
//! lifted from one form works on no other, and forms shown to a signed-in user name the
//! session, which binds their tokens to it. The cookie's `__Host-` prefix keeps another
//! host from planting a known secret; the same-site verdict (Origin / Sec-Fetch-Site) is a
//! second, independent defence: each alone stops a forged cross-site form.

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;

/// Bytes of a browser's secret.
pub const SECRET_BYTES: usize = 32;
/// Its cookie form: unpadded base64url.
pub const SECRET_CHARS: usize = 43;

/// A browser's CSRF secret. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BrowserSecret(String);

impl std::fmt::Debug for BrowserSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrowserSecret(<redacted>)")
    }
}

impl BrowserSecret {
    /// A new secret from `rng` (the OS source in the server, a seeded one in the simulator).
    pub fn generate(rng: &mut dyn CryptoRng) -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        Self(BASE64URL_NOPAD.encode(&bytes))
    }

    /// The secret a cookie holds, when it has the right shape.
    pub fn parse(cookie_value: &str) -> Option<Self> {
        let ok = cookie_value.len() == SECRET_CHARS
            && BASE64URL_NOPAD
                .decode(cookie_value.as_bytes())
                .is_ok_and(|b| b.len() == SECRET_BYTES);
        ok.then(|| Self(cookie_value.to_owned()))
    }

    /// The cookie value.
    pub fn cookie_value(&self) -> &str {
        &self.0
    }

    /// The token a form with this purpose carries.
    pub fn token(&self, purpose: &str) -> String {
        BASE64URL_NOPAD.encode(&self.mac(purpose).finalize().into_bytes())
    }

    /// Whether `presented` is this browser's token for `purpose` (constant-time compare).
    pub fn verifies(&self, purpose: &str, presented: &str) -> bool {
        let Ok(bytes) = BASE64URL_NOPAD.decode(presented.as_bytes()) else {
            return false;
        };
        self.mac(purpose).verify_slice(&bytes).is_ok()
    }

    fn mac(&self, purpose: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length; the fallback (never reached) would only make
        // every token wrong, never right.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(b"tessera-csrf-v1\0");
        mac.update(purpose.as_bytes());
        mac
    }
}

/// Why a page's form was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsrfRefusal {
    /// The browser says the form was posted from another site.
    #[error("the form was posted from another site")]
    CrossSite,
    /// No token, no cookie, or a token that is not this browser's for this form.
    #[error("the form's security token is missing or does not match this browser")]
    Token,
}

/// The rule for a page's POST: it came from this site (`same_site`, the adapter's reading
/// of `Origin` / `Sec-Fetch-Site`), and it carries this browser's token for `purpose`.
pub fn check_form(
    secret: Option<&BrowserSecret>,
    purpose: &str,
    presented: Option<&str>,
    same_site: bool,
) -> Result<(), CsrfRefusal> {
    if !same_site {
        return Err(CsrfRefusal::CrossSite);
    }
    match (secret, presented) {
        (Some(secret), Some(token)) if secret.verifies(purpose, token) => Ok(()),
        _ => Err(CsrfRefusal::Token),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn secret(seed: u64) -> BrowserSecret {
        BrowserSecret::generate(&mut rand::rngs::ChaCha20Rng::seed_from_u64(seed))
    }

    #[test]
    fn a_token_works_for_its_browser_and_purpose_only() {
        let (mine, theirs) = (secret(1), secret(2));
        let token = mine.token("login");
        assert!(check_form(Some(&mine), "login", Some(&token), true).is_ok());
        assert_eq!(
            check_form(Some(&mine), "login", Some(&token), false),
            Err(CsrfRefusal::CrossSite)
        );
        for (s, purpose, t) in [
            (Some(&mine), "consent:x", Some(token.as_str())),
            (Some(&theirs), "login", Some(token.as_str())),
            (None, "login", Some(token.as_str())),
            (Some(&mine), "login", None),
            (Some(&mine), "login", Some("")),
            (Some(&mine), "login", Some("not base64!")),
        ] {
            assert_eq!(check_form(s, purpose, t, true), Err(CsrfRefusal::Token));
        }
        assert_eq!(format!("{mine:?}"), "BrowserSecret(<redacted>)");
    }

    #[test]
    fn only_well_formed_cookies_are_secrets() {
        let s = secret(3);
        assert_eq!(BrowserSecret::parse(s.cookie_value()), Some(s));
        assert_eq!(BrowserSecret::parse("short"), None);
        assert_eq!(BrowserSecret::parse(&"!".repeat(SECRET_CHARS)), None);
    }
}
