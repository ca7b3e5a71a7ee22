//! Accounts: usernames, and the state the views keep for each account.
//!
//! Usernames are compared case-insensitively. To make that unambiguous (no Unicode case
//! folding corner cases, no homoglyph twins like Cyrillic "а" and Latin "a"), a username is
//! restricted to ASCII letters, digits and `. _ - @ +` (so e-mail addresses fit), 3 to 64
//! characters, and its key is its ASCII lower-case form.

use serde::{Deserialize, Serialize};

use crate::password::PasswordHash;
use crate::{AccountId, Timestamp};

pub const USERNAME_CHARS_MIN: usize = 3;
pub const USERNAME_CHARS_MAX: usize = 64;
pub const EMAIL_BYTES_MAX: usize = 254;

/// Why a username was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum UsernameProblem {
    #[error("username must be {USERNAME_CHARS_MIN} to {USERNAME_CHARS_MAX} characters")]
    Length,
    #[error("username may contain only ASCII letters, digits and . _ - @ +")]
    Characters,
}

/// The lower-case form two usernames are compared by.
pub fn username_key(username: &str) -> Result<String, UsernameProblem> {
    let trimmed = username.trim();
    if trimmed.len() < USERNAME_CHARS_MIN || trimmed.len() > USERNAME_CHARS_MAX {
        return Err(UsernameProblem::Length);
    }
    if !trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'))
    {
        return Err(UsernameProblem::Characters);
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// A loose check that an e-mail address is an address: one `@` with something either side.
/// Deliverability is the application's business.
pub fn email_plausible(email: &str) -> bool {
    email.len() <= EMAIL_BYTES_MAX
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

/// An account as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: AccountId,
    /// As the user typed it (trimmed); `username_key` is what uniqueness is checked on.
    pub username: String,
    pub email: Option<String>,
    pub password_hash: PasswordHash,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub password_changed_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_normalise_case_insensitively() {
        assert_eq!(
            username_key("  Alice@Example.com "),
            Ok("alice@example.com".into())
        );
        assert_eq!(username_key("ab"), Err(UsernameProblem::Length));
        assert_eq!(username_key(&"a".repeat(65)), Err(UsernameProblem::Length));
        assert_eq!(username_key("аlice"), Err(UsernameProblem::Characters)); // Cyrillic а
        assert_eq!(username_key("al ice"), Err(UsernameProblem::Characters));
    }

    #[test]
    fn emails_are_loosely_checked() {
        assert!(email_plausible("a@b.example"));
        assert!(!email_plausible("a@b"));
        assert!(!email_plausible("@b.example"));
        assert!(!email_plausible("a b@c.example"));
    }
}
