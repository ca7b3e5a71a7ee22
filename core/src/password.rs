//! Password rules and argon2id hashing.
//!
//! By default a password needs at least 12 characters, at most 1024 bytes (so that nobody
//! can make argon2 chew on a megabyte), must not be a common or breached one, must not be
//! easy to guess by zxcvbn's estimate, and must not be built on the holder's username, email
//! or the service's name. There are no composition rules by default (NIST SP 800-63B
//! §3.1.1.2, ASVS 6.2.5): they stay available as configuration. Hashes are argon2id PHC
//! strings (RFC 9106; OWASP Password Storage Cheat Sheet parameters by default).

mod breached;
mod fingerprint;

use argon2::password_hash::{PasswordHasher, phc::PasswordHash as Phc};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::policy::Argon2Params;

/// The rules a new password must meet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// The shortest password, in characters (Unicode scalar values). Default 12.
    pub min_chars: usize,
    /// Counted in bytes of UTF-8: what argon2 actually reads.
    pub max_bytes: usize,
    /// Require at least one upper-case letter (any script). Default off: composition rules
    /// make passwords predictable (NIST SP 800-63B §3.1.1.2).
    pub require_upper: bool,
    /// Require at least one lower-case letter (any script). Default off.
    pub require_lower: bool,
    /// Require at least one ASCII digit. Default off.
    pub require_digit: bool,
    /// Refuse passwords on the shipped common-password list, whatever the rules above say.
    pub refuse_common: bool,
    /// The lowest zxcvbn score (0 to 4) a new password may have; 0 turns the estimate off.
    /// Default 3: more than 10^8 guesses by zxcvbn's estimate.
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_bytes: 1024,
            require_upper: false,
            require_lower: false,
            require_digit: false,
            refuse_common: true,
            min_score: 3,
        }
    }
}

impl PasswordPolicy {
    /// Checks the limits make sense: `0 < min_chars <= max_bytes <= 65536` and
    /// `min_score <= 4`. The error says what is wrong, for the operator.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_chars == 0 || self.max_bytes < self.min_chars || self.max_bytes > 64 * 1024 {
            return Err("password limits: need 0 < min_chars <= max_bytes <= 65536".into());
        }
        if self.min_score > 4 {
            return Err("password min_score must be 0..=4 (zxcvbn scores)".into());
        }
        Ok(())
    }

    /// Every rule the password breaks, so that the caller can fix them all at once.
    /// `context` holds the words the password must not be built on (the username, the
    /// email's local part, the service's names); see [`PasswordContext`].
    pub fn problems(&self, password: &str, context: &PasswordContext<'_>) -> Vec<PasswordProblem> {
        let mut problems = Vec::new();
        if password.len() > self.max_bytes {
            // Nothing else is worth checking on an absurd input.
            problems.push(PasswordProblem::TooLong {
                max_bytes: self.max_bytes,
            });
            return problems;
        }
        if password.chars().count() < self.min_chars {
            problems.push(PasswordProblem::TooShort {
                min_chars: self.min_chars,
            });
        }
        if self.require_upper && !password.chars().any(char::is_uppercase) {
            problems.push(PasswordProblem::NoUpper);
        }
        if self.require_lower && !password.chars().any(char::is_lowercase) {
            problems.push(PasswordProblem::NoLower);
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            problems.push(PasswordProblem::NoDigit);
        }
        if self.refuse_common && is_common(password) {
            problems.push(PasswordProblem::Common);
        }
        let words = context.words();
        if builds_on_context(password, &words) {
            problems.push(PasswordProblem::ContainsPersonalInfo);
        }
        if self.min_score > 0 {
            let (score, warning) = estimate(password, &words);
            if score < self.min_score {
                problems.push(PasswordProblem::TooGuessable { warning });
            }
        }
        problems
    }
}

/// The service's own name, always refused as a password's basis whatever the configured one.
pub const SERVICE_NAME: &str = "tessera";

/// Words a password must not be built on: who it belongs to and where it is used (ASVS
/// 6.2.11).
#[derive(Clone, Copy, Debug, Default)]
pub struct PasswordContext<'a> {
    /// The holder's username, as given.
    pub username: Option<&'a str>,
    /// The holder's email; only its local part is used (the domain is usually a provider's).
    pub email: Option<&'a str>,
    /// The configured name users know the service by (the MFA issuer), besides
    /// [`SERVICE_NAME`].
    pub service_name: Option<&'a str>,
}

impl PasswordContext<'_> {
    /// The context words, lower case, without empties.
    fn words(&self) -> Vec<String> {
        let local = self.email.map(|e| e.rsplit_once('@').map_or(e, |(l, _)| l));
        [self.username, local, self.service_name, Some(SERVICE_NAME)]
            .into_iter()
            .flatten()
            .map(|w| w.trim().to_lowercase())
            .filter(|w| !w.is_empty())
            .collect()
    }
}

/// Whether a character only pads a password: digits, punctuation and spaces add almost
/// nothing to a guessable word (`alice2024!!!!`).
fn is_padding(c: char) -> bool {
    c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace()
}

/// Whether `password` contains a context word of at least four characters, or is a shorter
/// one padded only with digits and symbols. Shorter words are not searched inside the
/// password: a three-letter username would refuse many good passphrases by accident.
fn builds_on_context(password: &str, words: &[String]) -> bool {
    let lower = password.to_lowercase();
    let stem = lower.trim_matches(is_padding);
    words
        .iter()
        .any(|w| stem == w || (w.chars().count() >= 4 && lower.contains(w.as_str())))
}

/// zxcvbn reads at most this many characters: its matching is quadratic in the length, and a
/// password whose first 64 characters are hard to guess is hard to guess.
const ESTIMATE_CHARS: usize = 64;

/// zxcvbn's score (0 to 4) and its warning, if any, with the context words as user inputs.
fn estimate(password: &str, words: &[String]) -> (u8, Option<String>) {
    let end = password
        .char_indices()
        .nth(ESTIMATE_CHARS)
        .map_or(password.len(), |(i, _)| i);
    let head = password.get(..end).unwrap_or(password);
    let inputs: Vec<&str> = words.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(head, &inputs);
    let warning = entropy
        .feedback()
        .and_then(|f| f.warning())
        .map(|w| w.to_string());
    (u8::from(entropy.score()), warning)
}

/// Loads zxcvbn's dictionaries and the common list, which are built on first use, so that the
/// first registration does not pay for it. Servers call it at start-up.
pub fn warm_up() {
    let _ = common_set();
    let _ = zxcvbn::zxcvbn("warm up the dictionaries", &[]);
}

/// The shipped list of common and breached passwords (see the file's header for where it
/// comes from), lower case.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

fn common_set() -> &'static std::collections::HashSet<String> {
    static SET: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect()
    })
}

/// Whether `password` is on the common list or the breached list, ignoring case, as typed
/// or with its trailing digits and symbols removed (`Password2024!` is `password` with
/// decoration).
pub fn is_common(password: &str) -> bool {
    let lower = password.trim().to_lowercase();
    let set = common_set();
    let listed = |p: &str| !p.is_empty() && (set.contains(p) || breached::contains(p));
    // As typed; without trailing symbols (`123456789123456!`); without trailing digits and
    // symbols (`password2024!`).
    let symbols = lower.trim_end_matches(|c: char| c.is_ascii_punctuation() || c == ' ');
    let stem = lower
        .trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation() || c == ' ');
    listed(&lower) || listed(symbols) || listed(stem)
}

/// How many distinct passwords the breached list holds (the hand-made common list aside).
pub fn breached_len() -> usize {
    breached::len()
}

/// One broken password rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PasswordProblem {
    /// Fewer characters than the policy's minimum.
    #[error("password must be at least {min_chars} characters")]
    TooShort {
        /// The policy's minimum, in characters.
        min_chars: usize,
    },
    /// More bytes of UTF-8 than the policy's maximum; when this is reported, nothing else
    /// was checked.
    #[error("password must be at most {max_bytes} bytes")]
    TooLong {
        /// The policy's maximum, in bytes.
        max_bytes: usize,
    },
    /// No upper-case letter, and the policy requires one.
    #[error("password must contain an upper-case letter")]
    NoUpper,
    /// No lower-case letter, and the policy requires one.
    #[error("password must contain a lower-case letter")]
    NoLower,
    /// No digit, and the policy requires one.
    #[error("password must contain a digit")]
    NoDigit,
    /// On the list of common and breached passwords (added with MFA and login defences).
    #[error("password is too common: it appears on lists of breached passwords")]
    Common,
    /// Built on the username, the email's local part or the service's name: the first words
    /// an attacker who knows the account tries.
    #[error("password must not contain the username, the email's name or the service's name")]
    ContainsPersonalInfo,
    /// zxcvbn estimates it below the policy's minimum score; `warning` is zxcvbn's reason
    /// when it gives one (for example a common password, a keyboard row or a date).
    #[error("password is too easy to guess{}", warning.as_deref().map(|w| format!(": {w}")).unwrap_or_default())]
    TooGuessable {
        /// zxcvbn's warning, in English, when it has one.
        warning: Option<String>,
    },
}

impl PasswordProblem {
    /// A stable machine-readable name for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::NoUpper => "password_needs_upper",
            Self::NoLower => "password_needs_lower",
            Self::NoDigit => "password_needs_digit",
            Self::Common => "password_too_common",
            Self::ContainsPersonalInfo => "password_contains_personal_info",
            Self::TooGuessable { .. } => "password_too_guessable",
        }
    }
}

/// An argon2id PHC string. Not a secret in itself, but an offline-attack target, so `Debug`
/// shows only its parameters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash(pub String);

impl PasswordHash {
    /// The hash of an account with no password (one created by an external sign-in): the
    /// empty string, which no password verifies against.
    pub fn absent() -> Self {
        Self(String::new())
    }

    /// Whether the account has no password ([`PasswordHash::absent`]).
    pub fn is_absent(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params: Vec<&str> = self.0.split('$').take(4).collect();
        write!(f, "PasswordHash({}$…)", params.join("$"))
    }
}

/// Hashing failed: only possible with parameters argon2 refuses, which policy validation
/// catches at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

pub(crate) fn params(p: &Argon2Params) -> Result<Params, HashError> {
    Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| HashError(e.to_string()))
}

fn hasher(p: &Argon2Params) -> Result<Argon2<'static>, HashError> {
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params(p)?))
}

/// Hashes `password` with a 16-byte salt the caller drew from its RNG.
pub fn hash(
    password: &str,
    salt: [u8; 16],
    cost: &Argon2Params,
) -> Result<PasswordHash, HashError> {
    let phc = hasher(cost)?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(PasswordHash(phc.to_string()))
}

/// Hashes raw bytes (a legacy digest being wrapped) like [`hash`] hashes a password.
pub fn hash_bytes(
    input: &[u8],
    salt: [u8; 16],
    cost: &Argon2Params,
) -> Result<PasswordHash, HashError> {
    let phc = hasher(cost)?
        .hash_password_with_salt(input, &salt)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(PasswordHash(phc.to_string()))
}

/// [`hash_bytes`] in the caller's work area: the same PHC string, without allocating
/// argon2's memory per hash (the import wraps many MD5s on each thread).
pub fn hash_bytes_in(
    input: &[u8],
    salt: [u8; 16],
    cost: &Argon2Params,
    area: &mut WorkArea,
) -> Result<PasswordHash, HashError> {
    let argon = hasher(cost)?;
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    if !hash_into_area(&argon, input, &salt, &mut out, area) {
        return Err(HashError("argon2 refused the input".into()));
    }
    let b64 = data_encoding::BASE64_NOPAD;
    Ok(PasswordHash(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        b64.encode(&salt),
        b64.encode(&out)
    )))
}

/// The outcome of checking a password against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The password is wrong, or the stored hash could not be parsed.
    Mismatch,
    /// The password is right; `stale` says the hash was made under other parameters than
    /// the policy's and should be replaced.
    Match {
        /// The hash's parameters differ from the policy's: record a rehash.
        stale: bool,
    },
}

/// Checks `password` against `stored`. A stored hash that cannot be parsed is a mismatch,
/// never a panic: a corrupt record must not open the account.
pub fn verify(password: &str, stored: &PasswordHash, cost: &Argon2Params) -> Verification {
    verify_in(password, stored, cost, &mut WorkArea::default())
}

/// A password as presented, zeroed on drop and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(zeroize::Zeroizing<String>);

impl Password {
    /// The password itself, to hash or check.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<zeroize::Zeroizing<String>> for Password {
    fn from(p: zeroize::Zeroizing<String>) -> Self {
        Self(p)
    }
}

impl From<String> for Password {
    fn from(p: String) -> Self {
        Self(zeroize::Zeroizing::new(p))
    }
}

impl From<&str> for Password {
    fn from(p: &str) -> Self {
        Self(zeroize::Zeroizing::new(p.to_owned()))
    }
}

/// The memory argon2 works in (19 MiB at OWASP cost), kept by a hashing thread between
/// hashes, so that a verification neither allocates nor faults in fresh pages.
#[derive(Default)]
pub struct WorkArea(Vec<argon2::Block>);

impl std::fmt::Debug for WorkArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkArea({} blocks)", self.0.len())
    }
}

/// [`verify`], in the caller's work area. The comparison is constant-time.
pub fn verify_in(
    password: &str,
    stored: &PasswordHash,
    cost: &Argon2Params,
    area: &mut WorkArea,
) -> Verification {
    let Ok(parsed) = Phc::new(&stored.0) else {
        return Verification::Mismatch;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Verification::Mismatch;
    };
    let Ok(stored_params) = Params::try_from(&parsed) else {
        return Verification::Mismatch;
    };
    let Ok(algorithm) = Algorithm::new(parsed.algorithm.as_str()) else {
        return Verification::Mismatch;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return Verification::Mismatch,
    };
    let argon = Argon2::new(algorithm, version, stored_params.clone());
    let blocks = stored_params.block_count();
    if area.0.len() < blocks {
        area.0.resize(blocks, argon2::Block::default());
    }
    let expected: &[u8] = expected.as_ref();
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return Verification::Mismatch;
    };
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), out, &mut area.0[..])
        .is_err()
    {
        return Verification::Mismatch;
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&out[..], expected)) {
        return Verification::Mismatch;
    }
    let current = params(cost).ok();
    let same_alg = algorithm == Algorithm::Argon2id;
    let stale = !same_alg
        || current.is_none_or(|c| {
            c.m_cost() != stored_params.m_cost()
                || c.t_cost() != stored_params.t_cost()
                || c.p_cost() != stored_params.p_cost()
        });
    Verification::Match { stale }
}

/// Whether `input` (raw bytes: a legacy digest) matches the argon2 PHC string `phc`,
/// computed in the caller's work area; constant-time comparison.
pub fn verify_bytes_in(input: &[u8], phc: &str, area: &mut WorkArea) -> bool {
    let Ok(parsed) = Phc::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (
        Params::try_from(&parsed),
        Algorithm::new(parsed.algorithm.as_str()),
    ) else {
        return false;
    };
    let argon = Argon2::new(algorithm, Version::V0x13, params);
    let expected: &[u8] = expected.as_ref();
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    hash_into_area(&argon, input, salt.as_ref(), out, area)
        && bool::from(subtle::ConstantTimeEq::ct_eq(&out[..], expected))
}

/// Runs `argon` over `input` into `out` in the caller's work area, growing it if needed;
/// `false` when argon2 refuses the inputs.
pub(crate) fn hash_into_area(
    argon: &Argon2<'_>,
    input: &[u8],
    salt: &[u8],
    out: &mut [u8],
    area: &mut WorkArea,
) -> bool {
    let blocks = argon.params().block_count();
    if area.0.len() < blocks {
        area.0.resize(blocks, argon2::Block::default());
    }
    argon
        .hash_password_into_with_memory(input, salt, out, &mut area.0[..])
        .is_ok()
}

/// A hash of a password nobody knows, under the given parameters. Logins for unknown
/// usernames verify against it so that they take as long as a real wrong password.
pub fn decoy_hash(cost: &Argon2Params) -> Result<PasswordHash, HashError> {
    hash(
        "decoy password that no account has: 7f3a9c",
        *b"tessera-decoy-01",
        cost,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: PasswordContext<'static> = PasswordContext {
        username: None,
        email: None,
        service_name: None,
    };

    fn alice() -> PasswordContext<'static> {
        PasswordContext {
            username: Some("alice"),
            email: Some("j.bloggs@example.com"),
            service_name: Some("Acme Login"),
        }
    }

    fn codes(problems: &[PasswordProblem]) -> Vec<&'static str> {
        problems.iter().map(PasswordProblem::code).collect()
    }

    fn composition() -> PasswordPolicy {
        PasswordPolicy {
            require_upper: true,
            require_lower: true,
            require_digit: true,
            min_score: 0,
            ..PasswordPolicy::default()
        }
    }

    #[test]
    fn composition_rules_are_off_by_default_and_available() {
        let d = PasswordPolicy::default();
        assert!(!d.require_upper && !d.require_lower && !d.require_digit);
        assert_eq!(d.min_score, 3);
        let p = composition();
        assert_eq!(
            p.problems("short", &NONE),
            vec![
                PasswordProblem::TooShort { min_chars: 12 },
                PasswordProblem::NoUpper,
                PasswordProblem::NoDigit
            ]
        );
        assert!(p.problems("Correct horse 9 battery", &NONE).is_empty());
        assert_eq!(
            p.problems(&"A1a".repeat(400), &NONE),
            vec![PasswordProblem::TooLong { max_bytes: 1024 }]
        );
        // Characters, not bytes, count toward the minimum.
        assert_eq!(p.problems("Ééééééééééé1", &NONE), vec![]);
        assert!(
            PasswordPolicy {
                min_score: 5,
                ..PasswordPolicy::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn a_common_password_is_refused_with_every_reason() {
        let p = PasswordPolicy::default();
        // On our own list, and zxcvbn knows it too.
        let problems = p.problems("Password1234", &NONE);
        assert_eq!(
            codes(&problems),
            ["password_too_common", "password_too_guessable"]
        );
        assert!(problems.iter().any(|x| x.to_string().contains("common")));
        assert_eq!(
            codes(&p.problems("password", &NONE)),
            [
                "password_too_short",
                "password_too_common",
                "password_too_guessable"
            ],
            "every problem is listed"
        );
        let lax = PasswordPolicy {
            refuse_common: false,
            min_score: 0,
            ..PasswordPolicy::default()
        };
        assert!(lax.problems("Password1234", &NONE).is_empty());
        assert!(common_set().len() > 800);
    }

    #[test]
    fn a_password_from_zxcvbns_breached_list_is_refused() {
        let p = PasswordPolicy::default();
        // Not on our list, but among zxcvbn's 30,000 most common passwords; padded or in
        // l33t it is still refused.
        for pw in ["baseballbaseball", "m0nkey123456789"] {
            let problems = p.problems(pw, &NONE);
            assert!(
                codes(&problems).contains(&"password_too_guessable"),
                "{pw}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_password_built_on_the_username_is_refused() {
        let p = PasswordPolicy::default();
        assert!(
            codes(&p.problems("alice2024!!!!", &alice()))
                .contains(&"password_contains_personal_info")
        );
        assert!(
            codes(&p.problems("xQ7!AlIcE-vortex-9k", &alice()))
                .contains(&"password_contains_personal_info")
        );
        // A three-letter username is refused only as the whole password, padded.
        let bob = PasswordContext {
            username: Some("bob"),
            ..NONE
        };
        assert!(
            codes(&p.problems("bob!!!!2024!!", &bob)).contains(&"password_contains_personal_info")
        );
        assert!(p.problems("bobcat lantern orbit velvet", &bob).is_empty());
    }

    #[test]
    fn a_password_built_on_the_email_is_refused() {
        let p = PasswordPolicy::default();
        assert!(
            codes(&p.problems("j.bloggs#2024#2024", &alice()))
                .contains(&"password_contains_personal_info")
        );
        // The domain is the provider's, not the holder's.
        assert!(
            !codes(&p.problems("example quartz lantern nine", &alice()))
                .contains(&"password_contains_personal_info")
        );
    }

    #[test]
    fn a_password_built_on_the_service_name_is_refused() {
        let p = PasswordPolicy::default();
        for pw in [
            "Tessera2024!!!!",
            "my tessera login 77 zebra",
            "acme login 2024!!",
        ] {
            assert!(
                codes(&p.problems(pw, &alice())).contains(&"password_contains_personal_info"),
                "{pw}"
            );
        }
    }

    #[test]
    fn a_word_padded_with_digits_is_refused() {
        let p = PasswordPolicy::default();
        assert!(!p.problems("Password1234!", &NONE).is_empty());
        assert!(!p.problems("Summer2024!!!", &NONE).is_empty());
        assert!(!p.problems("alice2024!!!!", &alice()).is_empty());
    }

    #[test]
    fn a_strong_passphrase_is_accepted() {
        let p = PasswordPolicy::default();
        assert!(
            p.problems("correct horse battery staple", &alice())
                .is_empty()
        );
        assert!(p.problems("Password is not 1 word", &NONE).is_empty());
        // Long passwords are estimated on their first 64 characters only.
        assert!(
            p.problems(&"tangerine quartz ".repeat(50), &alice())
                .is_empty()
        );
    }

    #[test]
    fn hash_verify_and_staleness() {
        let fast = Argon2Params::INSECURE_FAST;
        let h = hash("Correct horse 9", [1; 16], &fast).expect("valid params");
        assert!(h.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            verify("Correct horse 9", &h, &fast),
            Verification::Match { stale: false }
        );
        assert_eq!(verify("correct horse 9", &h, &fast), Verification::Mismatch);
        let stronger = Argon2Params {
            memory_kib: 128,
            ..fast
        };
        assert_eq!(
            verify("Correct horse 9", &h, &stronger),
            Verification::Match { stale: true }
        );
        assert_eq!(
            verify("x", &PasswordHash("garbage".into()), &fast),
            Verification::Mismatch
        );
        assert!(!format!("{h:?}").contains(h.0.rsplit('$').next().unwrap_or("?")));
    }

    #[test]
    fn hashing_in_a_work_area_makes_the_same_phc_string() {
        let cost = Argon2Params {
            memory_kib: 256,
            ..Argon2Params::INSECURE_FAST
        };
        let mut area = WorkArea::default();
        for input in [&b"abc"[..], &[0u8; 16][..]] {
            assert_eq!(
                hash_bytes_in(input, [5; 16], &cost, &mut area),
                hash_bytes(input, [5; 16], &cost)
            );
        }
    }

    #[test]
    fn one_work_area_serves_hashes_of_any_cost() {
        let small = Argon2Params::INSECURE_FAST;
        let large = Argon2Params {
            memory_kib: 256,
            ..small
        };
        let a = hash("Correct horse 9", [2; 16], &large).expect("valid params");
        let b = hash("Battery staple 7", [3; 16], &small).expect("valid params");
        let mut area = WorkArea::default();
        assert_eq!(
            verify_in("Correct horse 9", &a, &large, &mut area),
            Verification::Match { stale: false }
        );
        assert_eq!(
            verify_in("Battery staple 7", &b, &large, &mut area),
            Verification::Match { stale: true }
        );
        assert_eq!(
            verify_in("Battery staple 8", &b, &small, &mut area),
            Verification::Mismatch
        );
        assert_eq!(
            verify_in("Correct horse 9", &a, &large, &mut area),
            Verification::Match { stale: false }
        );
        assert_eq!(
            verify_in(
                "x",
                &PasswordHash("$argon2id$v=19$m=64,t=1,p=1$c2FsdA$".into()),
                &small,
                &mut area
            ),
            Verification::Mismatch
        );
    }
}
