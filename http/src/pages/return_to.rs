//! Where a page sends the browser after a login: only ever a path on this server.
//!
//! OWASP Unvalidated Redirects and Forwards Cheat Sheet: the target is not a URL but a local
//! path, checked against a strict shape, so no input can turn it into another origin.
//! Browsers read `//host`, `/\host` and `\\host` as another host, strip tabs and newlines
//! inside URLs, and some decode `%2f` or `%5c` before they resolve a path; each of those is
//! refused rather than repaired.

/// The longest path kept (an authorization request with its parameters fits easily).
pub const RETURN_TO_BYTES_MAX: usize = 2048;

/// Where a browser goes when it gave no (acceptable) target.
pub const HOME: &str = "/";

/// A local path to continue at, checked by [`ReturnTo::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnTo(String);

impl ReturnTo {
    /// `raw` when it is a path on this server, else `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = raw.len() <= RETURN_TO_BYTES_MAX
            && raw.starts_with('/')
            && !raw.starts_with("//")
            && !raw.starts_with("/\\")
            && raw
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'"' && b != b'<')
            && !has_encoded_separator(raw);
        ok.then(|| Self(raw.to_owned()))
    }

    /// `raw` if acceptable, else [`HOME`].
    pub fn or_home(raw: Option<&str>) -> Self {
        raw.and_then(Self::parse)
            .unwrap_or_else(|| Self(HOME.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_home(&self) -> bool {
        self.0 == HOME
    }
}

/// `%2f`, `%5c` (any case) or `%25` anywhere in the path part: an encoded slash or
/// backslash, or a double encoding of one, that a decoding step could turn into `//` later.
fn has_encoded_separator(raw: &str) -> bool {
    let path = raw.split(['?', '#']).next().unwrap_or(raw);
    let lower = path.to_ascii_lowercase();
    lower.contains("%2f") || lower.contains("%5c") || lower.contains("%25")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        for ok in [
            "/",
            "/device",
            "/oauth/authorize?response_type=code&client_id=app&state=a%2Fb",
            "/a/b?c=d#e",
        ] {
            assert_eq!(
                ReturnTo::parse(ok).map(|r| r.0),
                Some(ok.to_owned()),
                "{ok}"
            );
        }
    }

    #[test]
    fn anything_that_could_leave_the_origin_is_refused() {
        for bad in [
            "",
            "https://evil.example/",
            "http:/evil.example",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\\/evil.example",
            "/a\\b",
            "javascript:alert(1)",
            "evil.example",
            "/%2f%2fevil.example",
            "/%5Cevil.example",
            "/%252f%252fevil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/\u{3000}/evil.example",
            "/\"><script>",
        ] {
            assert_eq!(ReturnTo::parse(bad), None, "{bad:?}");
        }
        let long = format!("/{}", "a".repeat(RETURN_TO_BYTES_MAX));
        assert_eq!(ReturnTo::parse(&long), None);
        assert!(ReturnTo::or_home(Some("//evil.example")).is_home());
        assert!(ReturnTo::or_home(None).is_home());
    }
}
