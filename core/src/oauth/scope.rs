//! Scopes (RFC 6749 §3.3): space-delimited tokens of `%x21 / %x23-5B / %x5D-7E`.
//!
//! A scope is kept in one canonical form, its tokens sorted and unique, so that "does the
//! user's grant already cover this request" is a set comparison.

use std::collections::BTreeSet;

/// The longest scope string accepted, and the most tokens in it.
pub const SCOPE_BYTES_MAX: usize = 1024;
/// The most scope tokens a request or a client may carry.
pub const SCOPE_TOKENS_MAX: usize = 32;

/// Whether `token` is one scope token (RFC 6749 §3.3 `scope-token`).
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Parses a scope string into its set of tokens. `None` for a malformed one: an empty
/// token between spaces, a forbidden character, or too long.
pub fn parse(scope: &str) -> Option<BTreeSet<String>> {
    if scope.len() > SCOPE_BYTES_MAX {
        return None;
    }
    let mut set = BTreeSet::new();
    for token in scope.split(' ') {
        if !is_scope_token(token) {
            return None;
        }
        set.insert(token.to_owned());
    }
    (set.len() <= SCOPE_TOKENS_MAX).then_some(set)
}

/// The canonical form of a set of tokens: sorted, unique, joined by one space.
pub fn join(set: &BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}

/// The scope to grant: the requested one, which must be within `allowed`; or, when none is
/// requested, everything `allowed` (RFC 6749 §3.3 lets the server default). `None` when the
/// request is malformed, asks beyond `allowed`, or comes to nothing.
pub fn within(requested: Option<&str>, allowed: &BTreeSet<String>) -> Option<BTreeSet<String>> {
    let set = match requested {
        Some(s) => parse(s)?,
        None => allowed.clone(),
    };
    (!set.is_empty() && set.is_subset(allowed)).then_some(set)
}
