//! Imported legacy password hashes: what an import may state, how each is stored, how a
//! login verifies it, and what a refusal costs.
//!
//! ```text
//!   import line ──parse──▶ LegacyHash ──store──▶ stored credential (PasswordHash string)
//!     raw or salted MD5 ─▶ argon2id(md5(salted password)), wrapped at import: no fast hash
//!                          ever rests in the log
//!     bcrypt, argon2 (other parameters), Django pbkdf2_sha256 ─▶ kept as given
//!   login ──verify (own scheme) + pad to every family's most expensive cost in use──▶
//!     match: re-hashed to argon2id at the policy's parameters (PasswordRehashed)
//! ```
//!
//! The stored forms are self-describing strings, so the account view and the events keep
//! one credential field ([`crate::password::PasswordHash`]):
//! `md5$<none|before|after>$<salt, base64url>$<argon2id PHC>` for a wrapped MD5, the PHC
//! string for argon2, the modular crypt string for bcrypt, Django's string for PBKDF2.
//!
//! Timing (OWASP Authentication Cheat Sheet, "Authentication Responses"): every check does
//! the work of every scheme family in use at that family's most expensive cost, its own
//! scheme's verification counting toward its family ([`WorkProfile`], [`pad`]). An unknown
//! username, a wrapped MD5, a bcrypt and a current account therefore cost the same to
//! refuse, and nothing in the answer depends on the scheme.

use argon2::{Algorithm, Argon2, Params, Version};
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER_PERMISSIVE};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::password::{self, PasswordHash, Verification, WorkArea};
use crate::policy::Argon2Params;

/// The highest bcrypt cost an import may carry: every refused login pays the most expensive
/// cost in use, so one absurd hash would slow every login down (cost 15 is about a second).
pub const BCRYPT_COST_MAX: u32 = 15;
/// The lowest bcrypt cost there is (its specification's minimum).
pub const BCRYPT_COST_MIN: u32 = 4;
/// The most PBKDF2 iterations an import may carry (Django 5.2 uses 1,000,000).
pub const PBKDF2_ITERATIONS_MAX: u32 = 2_000_000;
/// The most memory an imported argon2 hash may ask for, in KiB (256 MiB).
pub const ARGON2_MEMORY_KIB_MAX: u32 = 256 * 1024;
/// The most passes an imported argon2 hash may ask for.
pub const ARGON2_ITERATIONS_MAX: u32 = 16;
/// The longest legacy salt, in bytes.
pub const SALT_BYTES_MAX: usize = 256;

/// The stored prefix of a wrapped MD5.
const WRAPPED_MD5_PREFIX: &str = "md5$";
/// The stored prefix of a Django PBKDF2-SHA256 hash.
const PBKDF2_PREFIX: &str = "pbkdf2_sha256$";

/// Where a legacy salt went relative to the password before MD5 was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaltPosition {
    /// `md5(salt ‖ password)`.
    Before,
    /// `md5(password ‖ salt)`.
    After,
}

/// An MD5 salt and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Md5Salt {
    /// The salt's bytes, as the legacy system concatenated them.
    pub salt: Vec<u8>,
    /// Before or after the password.
    pub position: SaltPosition,
}

/// A legacy hash as an import states it, checked for shape.
#[derive(Clone, PartialEq, Eq)]
pub enum LegacyHash {
    /// A raw or salted MD5 digest: wrapped in argon2id before it is stored.
    Md5 {
        /// The 16-byte digest.
        digest: [u8; 16],
        /// The salt, for a salted MD5.
        salt: Option<Md5Salt>,
    },
    /// A bcrypt modular crypt string (`$2a$`, `$2b$`, `$2y$`), kept as given.
    Bcrypt(String),
    /// An argon2 PHC string under other parameters, kept as given.
    Argon2(String),
    /// A Django `pbkdf2_sha256$iterations$salt$hash` string, kept as given.
    Pbkdf2Sha256(String),
}

impl std::fmt::Debug for LegacyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A legacy hash is an offline-attack target (MD5 a trivial one): never shown.
        f.write_str(match self {
            Self::Md5 { salt: None, .. } => "LegacyHash::Md5(<redacted>)",
            Self::Md5 { salt: Some(_), .. } => "LegacyHash::SaltedMd5(<redacted>)",
            Self::Bcrypt(_) => "LegacyHash::Bcrypt(<redacted>)",
            Self::Argon2(_) => "LegacyHash::Argon2(<redacted>)",
            Self::Pbkdf2Sha256(_) => "LegacyHash::Pbkdf2Sha256(<redacted>)",
        })
    }
}

/// Why a legacy hash was refused at import. The messages name the line's problem for the
/// operator and never quote the hash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashProblem {
    /// No scheme matches the hash's shape.
    #[error(
        "unknown hash scheme (expected 32 hex digits of MD5, $2a$/$2b$/$2y$ bcrypt, $argon2 PHC or pbkdf2_sha256$)"
    )]
    UnknownScheme,
    /// The scheme is recognised but the hash is cut short or malformed.
    #[error("truncated or malformed {0} hash")]
    Malformed(&'static str),
    /// A bcrypt cost outside what bcrypt allows or what we verify at login.
    #[error("bcrypt cost {0} is invalid (allowed {BCRYPT_COST_MIN} to {BCRYPT_COST_MAX})")]
    BcryptCost(u32),
    /// PBKDF2 iterations outside 1 to [`PBKDF2_ITERATIONS_MAX`].
    #[error("pbkdf2 iterations {0} are invalid (allowed 1 to {PBKDF2_ITERATIONS_MAX})")]
    Pbkdf2Iterations(u32),
    /// argon2 parameters argon2 refuses, or above the import's bounds.
    #[error(
        "argon2 parameters are invalid or too expensive (at most m={ARGON2_MEMORY_KIB_MAX}, t={ARGON2_ITERATIONS_MAX})"
    )]
    Argon2Params,
    /// A salt position without its salt.
    #[error("salted MD5 without its salt")]
    SaltMissing,
    /// A salt without a position, or a salt on a scheme that carries its own.
    #[error("a salt needs salt_position (before or after) and applies to MD5 only")]
    SaltUnexpected,
    /// A salt longer than [`SALT_BYTES_MAX`].
    #[error("salt longer than {SALT_BYTES_MAX} bytes")]
    SaltTooLong,
}

impl LegacyHash {
    /// Reads a hash as an import line states it: `hash`, with `salt` and `position` for a
    /// salted MD5.
    pub fn parse(
        hash: &str,
        salt: Option<&str>,
        position: Option<SaltPosition>,
    ) -> Result<Self, HashProblem> {
        let hash = hash.trim();
        let is_md5 = hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let salt = match (salt, position) {
            (None, None) => None,
            (None, Some(_)) => return Err(HashProblem::SaltMissing),
            (Some(_), None) => return Err(HashProblem::SaltUnexpected),
            (Some(""), Some(_)) => return Err(HashProblem::SaltMissing),
            (Some(s), Some(_)) if s.len() > SALT_BYTES_MAX => {
                return Err(HashProblem::SaltTooLong);
            }
            (Some(s), Some(position)) => Some(Md5Salt {
                salt: s.as_bytes().to_vec(),
                position,
            }),
        };
        if salt.is_some() && !is_md5 {
            return Err(if looks_like_md5(hash) {
                HashProblem::Malformed("MD5")
            } else {
                HashProblem::SaltUnexpected
            });
        }
        if is_md5 {
            let mut digest = [0u8; 16];
            HEXLOWER_PERMISSIVE
                .decode_mut(hash.as_bytes(), &mut digest)
                .map_err(|_| HashProblem::Malformed("MD5"))?;
            return Ok(Self::Md5 { digest, salt });
        }
        if hash.starts_with("$2") {
            bcrypt_cost(hash)?;
            return Ok(Self::Bcrypt(hash.to_owned()));
        }
        if hash.starts_with("$argon2") {
            argon2_cost(hash)?;
            return Ok(Self::Argon2(hash.to_owned()));
        }
        if hash.starts_with(PBKDF2_PREFIX) {
            pbkdf2_parts(hash)?;
            return Ok(Self::Pbkdf2Sha256(hash.to_owned()));
        }
        if looks_like_md5(hash) {
            return Err(HashProblem::Malformed("MD5"));
        }
        Err(HashProblem::UnknownScheme)
    }

    /// The credential to store. An MD5 is wrapped: argon2id, at the policy's parameters and
    /// with `salt` (from the caller's RNG), over the 16-byte digest; the others are kept.
    pub fn into_stored(
        self,
        salt: [u8; 16],
        cost: &Argon2Params,
        area: &mut WorkArea,
    ) -> Result<PasswordHash, password::HashError> {
        match self {
            Self::Md5 { digest, salt: md5 } => {
                let inner = password::hash_bytes_in(&digest, salt, cost, area)?;
                let (position, legacy_salt) = match &md5 {
                    None => ("none", String::new()),
                    Some(s) => (
                        match s.position {
                            SaltPosition::Before => "before",
                            SaltPosition::After => "after",
                        },
                        BASE64URL_NOPAD.encode(&s.salt),
                    ),
                };
                Ok(PasswordHash(format!(
                    "{WRAPPED_MD5_PREFIX}{position}${legacy_salt}${}",
                    inner.0
                )))
            }
            Self::Bcrypt(s) | Self::Argon2(s) | Self::Pbkdf2Sha256(s) => Ok(PasswordHash(s)),
        }
    }
}

/// An MD5 digest with the wrong length or a stray character: reported as a truncated MD5
/// rather than an unknown scheme.
fn looks_like_md5(hash: &str) -> bool {
    (16..=40).contains(&hash.len()) && hash.bytes().filter(u8::is_ascii_hexdigit).count() >= 16
}

/// The scheme a stored credential is on, for counting and for choosing its verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scheme {
    /// argon2id, any parameters: made here (or imported and already argon2id).
    Argon2,
    /// argon2id over an MD5 digest, wrapped at import.
    WrappedMd5,
    /// bcrypt.
    Bcrypt,
    /// Django PBKDF2-SHA256.
    Pbkdf2Sha256,
}

impl Scheme {
    /// Every scheme, in reporting order.
    pub const ALL: [Self; 4] = [
        Self::Argon2,
        Self::WrappedMd5,
        Self::Bcrypt,
        Self::Pbkdf2Sha256,
    ];

    /// The scheme of a stored credential; `None` for a string no scheme reads.
    pub fn of(stored: &PasswordHash) -> Option<Self> {
        let s = stored.0.as_str();
        if s.starts_with(WRAPPED_MD5_PREFIX) {
            Some(Self::WrappedMd5)
        } else if s.starts_with("$argon2") {
            Some(Self::Argon2)
        } else if s.starts_with("$2") {
            Some(Self::Bcrypt)
        } else if s.starts_with(PBKDF2_PREFIX) {
            Some(Self::Pbkdf2Sha256)
        } else {
            None
        }
    }

    /// The name operators and metrics see.
    pub fn name(self) -> &'static str {
        match self {
            Self::Argon2 => "argon2",
            Self::WrappedMd5 => "md5-wrapped",
            Self::Bcrypt => "bcrypt",
            Self::Pbkdf2Sha256 => "pbkdf2-sha256",
        }
    }
}

/// The families whose costs a refusal pads to: argon2 (current hashes and wrapped MD5s),
/// bcrypt and PBKDF2. Wrapped MD5 adds one MD5 to an argon2, which costs nothing beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    /// argon2, in KiB-passes (memory × time cost).
    Argon2,
    /// bcrypt, in key-expansion rounds (2^cost).
    Bcrypt,
    /// PBKDF2-HMAC-SHA256, in iterations.
    Pbkdf2,
}

/// What verifying a stored credential costs: its family and the units of that family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cost {
    /// The family the work is counted in.
    pub family: Family,
    /// How many of the family's units.
    pub units: u64,
}

impl Cost {
    /// The cost of verifying `stored`; `None` for a credential no scheme reads.
    pub fn of(stored: &PasswordHash) -> Option<Self> {
        let s = stored.0.as_str();
        match Scheme::of(stored)? {
            Scheme::Argon2 => argon2_cost(s).ok(),
            Scheme::WrappedMd5 => argon2_cost(unwrap_md5(s)?.2).ok(),
            Scheme::Bcrypt => bcrypt_cost(s).ok().map(|c| Self {
                family: Family::Bcrypt,
                units: 1u64 << c,
            }),
            Scheme::Pbkdf2Sha256 => pbkdf2_parts(s).ok().map(|p| Self {
                family: Family::Pbkdf2,
                units: u64::from(p.0),
            }),
        }
    }

    /// The cost of verifying a hash under the policy's argon2 parameters.
    pub fn argon2(params: &Argon2Params) -> Self {
        Self {
            family: Family::Argon2,
            units: u64::from(params.memory_kib) * u64::from(params.iterations),
        }
    }
}

fn bcrypt_cost(hash: &str) -> Result<u32, HashProblem> {
    const MALFORMED: HashProblem = HashProblem::Malformed("bcrypt");
    // $2b$12$ + 22 salt characters + 31 hash characters.
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))
        .ok_or(HashProblem::UnknownScheme)?;
    let (cost, body) = rest.split_once('$').ok_or(MALFORMED)?;
    if cost.len() != 2 || !cost.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MALFORMED);
    }
    let cost: u32 = cost.parse().map_err(|_| MALFORMED)?;
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    if body.len() != 53 || !body.bytes().all(alphabet) {
        return Err(MALFORMED);
    }
    if !(BCRYPT_COST_MIN..=BCRYPT_COST_MAX).contains(&cost) {
        return Err(HashProblem::BcryptCost(cost));
    }
    Ok(cost)
}

fn argon2_cost(hash: &str) -> Result<Cost, HashProblem> {
    const MALFORMED: HashProblem = HashProblem::Malformed("argon2");
    let parsed = argon2::password_hash::phc::PasswordHash::new(hash).map_err(|_| MALFORMED)?;
    Algorithm::new(parsed.algorithm.as_str()).map_err(|_| MALFORMED)?;
    let (Some(salt), Some(output)) = (&parsed.salt, &parsed.hash) else {
        return Err(MALFORMED);
    };
    if salt.as_ref().len() < 8 || output.as_ref().len() < 16 {
        return Err(MALFORMED);
    }
    let params = Params::try_from(&parsed).map_err(|_| HashProblem::Argon2Params)?;
    if params.m_cost() > ARGON2_MEMORY_KIB_MAX || params.t_cost() > ARGON2_ITERATIONS_MAX {
        return Err(HashProblem::Argon2Params);
    }
    Ok(Cost {
        family: Family::Argon2,
        units: u64::from(params.m_cost()) * u64::from(params.t_cost()),
    })
}

/// Django's `pbkdf2_sha256$iterations$salt$base64(hash)`: the iterations, the salt and the
/// 32-byte derived key.
fn pbkdf2_parts(hash: &str) -> Result<(u32, &str, [u8; 32]), HashProblem> {
    const MALFORMED: HashProblem = HashProblem::Malformed("pbkdf2_sha256");
    let rest = hash.strip_prefix(PBKDF2_PREFIX).ok_or(MALFORMED)?;
    let mut parts = rest.split('$');
    let (Some(iterations), Some(salt), Some(encoded), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MALFORMED);
    };
    let iterations: u32 = iterations.parse().map_err(|_| MALFORMED)?;
    if iterations == 0 || iterations > PBKDF2_ITERATIONS_MAX {
        return Err(HashProblem::Pbkdf2Iterations(iterations));
    }
    if salt.is_empty() || salt.len() > SALT_BYTES_MAX {
        return Err(MALFORMED);
    }
    let decoded = BASE64.decode(encoded.as_bytes()).map_err(|_| MALFORMED)?;
    let key: [u8; 32] = decoded.try_into().map_err(|_| MALFORMED)?;
    Ok((iterations, salt, key))
}

/// A wrapped MD5's parts: the salt position (`none`, `before`, `after`), the legacy salt
/// (base64url) and the inner argon2id PHC string.
fn unwrap_md5(stored: &str) -> Option<(&str, &str, &str)> {
    let rest = stored.strip_prefix(WRAPPED_MD5_PREFIX)?;
    let (position, rest) = rest.split_once('$')?;
    let (salt, phc) = rest.split_once('$')?;
    Some((position, salt, phc))
}

/// The MD5 digest a legacy system stored for `password` with this salt.
fn md5_of(password: &str, position: &str, salt: &str) -> Option<[u8; 16]> {
    let salt = BASE64URL_NOPAD.decode(salt.as_bytes()).ok()?;
    let mut md5 = Md5::new();
    match position {
        "none" if salt.is_empty() => md5.update(password.as_bytes()),
        "before" => {
            md5.update(&salt);
            md5.update(password.as_bytes());
        }
        "after" => {
            md5.update(password.as_bytes());
            md5.update(&salt);
        }
        _ => return None,
    }
    Some(md5.finalize().into())
}

/// An account still on a legacy credential, as the views hold it: counted by scheme,
/// found by its reset token once retired, and dropped when a login, a change or a reset
/// replaces the credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyView {
    /// The account.
    pub account: crate::AccountId,
    /// The scheme of its credential.
    pub scheme: Scheme,
    /// What verifying it costs.
    pub cost: Cost,
    /// When it was imported.
    pub imported_at: crate::Timestamp,
    /// The holder's last activity: the legacy system's last login if the import said,
    /// else the import. Inactivity (for the sunset) counts from here.
    pub last_active_at: crate::Timestamp,
    /// Set when the sunset retired the credential: it no longer logs in.
    pub retired: Option<Retirement>,
}

/// A retired legacy credential's reset token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    /// The SHA-256 digest of the reset token.
    pub reset_digest: crate::secret::SecretDigest,
    /// The token is refused from this time on.
    pub expires_at: crate::Timestamp,
    /// When the credential was (last) retired.
    pub retired_at: crate::Timestamp,
}

/// The outcome of checking a password against a stored credential of any scheme, and the
/// work it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Whether it matched; a legacy or wrapped match is always stale (to be re-hashed).
    pub outcome: Verification,
    /// What the verification cost, `None` when the credential could not be read (no work
    /// was done: the padding then does all of it).
    pub cost: Option<Cost>,
}

/// Checks `password` against `stored`, whatever its scheme. A credential that cannot be
/// read is a mismatch, never a panic. Anything but argon2id at the policy's parameters is
/// reported stale on a match, so that the login replaces it.
pub fn verify_any(
    password: &str,
    stored: &PasswordHash,
    policy: &Argon2Params,
    area: &mut WorkArea,
) -> Checked {
    let cost = Cost::of(stored);
    let mismatch = Checked {
        outcome: Verification::Mismatch,
        cost,
    };
    if cost.is_none() {
        return mismatch;
    }
    let s = stored.0.as_str();
    let matched = match Scheme::of(stored) {
        None => false,
        Some(Scheme::Argon2) => {
            return Checked {
                outcome: password::verify_in(password, stored, policy, area),
                cost,
            };
        }
        Some(Scheme::WrappedMd5) => {
            let Some((position, salt, phc)) = unwrap_md5(s) else {
                return mismatch;
            };
            let Some(digest) = md5_of(password, position, salt) else {
                return mismatch;
            };
            password::verify_bytes_in(&digest, phc, area)
        }
        // bcrypt reads at most 72 bytes of the password, as the legacy system did.
        Some(Scheme::Bcrypt) => bcrypt::verify(password.as_bytes(), s).unwrap_or(false),
        Some(Scheme::Pbkdf2Sha256) => {
            let Ok((iterations, salt, expected)) = pbkdf2_parts(s) else {
                return mismatch;
            };
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                password.as_bytes(),
                salt.as_bytes(),
                iterations,
                &mut out,
            );
            bool::from(subtle::ConstantTimeEq::ct_eq(&out[..], &expected[..]))
        }
    };
    Checked {
        outcome: if matched {
            Verification::Match { stale: true }
        } else {
            Verification::Mismatch
        },
        cost,
    }
}

/// The most expensive cost of each family in use: what every password check pays in total,
/// so that no refusal tells schemes apart. Argon2 is always in use (new hashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkProfile {
    /// argon2 KiB-passes: the policy's or the most expensive imported argon2 in use.
    pub argon2_units: u64,
    /// bcrypt rounds (2^cost) of the most expensive bcrypt in use, if any.
    pub bcrypt_units: Option<u64>,
    /// PBKDF2 iterations of the most expensive PBKDF2 in use, if any.
    pub pbkdf2_units: Option<u64>,
}

impl WorkProfile {
    /// Only argon2, at the policy's parameters: no legacy credential in use.
    pub fn current(policy: &Argon2Params) -> Self {
        Self {
            argon2_units: Cost::argon2(policy).units,
            bcrypt_units: None,
            pbkdf2_units: None,
        }
    }

    /// Raises the profile to include `cost`.
    pub fn include(&mut self, cost: Cost) {
        match cost.family {
            Family::Argon2 => self.argon2_units = self.argon2_units.max(cost.units),
            Family::Bcrypt => {
                self.bcrypt_units = Some(self.bcrypt_units.unwrap_or(0).max(cost.units));
            }
            Family::Pbkdf2 => {
                self.pbkdf2_units = Some(self.pbkdf2_units.unwrap_or(0).max(cost.units));
            }
        }
    }

    /// The total each family must reach.
    pub fn targets(&self) -> Vec<Cost> {
        let mut all = vec![Cost {
            family: Family::Argon2,
            units: self.argon2_units,
        }];
        all.extend(self.bcrypt_units.map(|units| Cost {
            family: Family::Bcrypt,
            units,
        }));
        all.extend(self.pbkdf2_units.map(|units| Cost {
            family: Family::Pbkdf2,
            units,
        }));
        all
    }
}

/// The work a check did, per family, in the family's units: the test of the timing rule
/// reads it (the same totals for every kind of account and for none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkDone(pub std::collections::BTreeMap<Family, u64>);

impl WorkDone {
    fn add(&mut self, cost: Cost) {
        *self.0.entry(cost.family).or_insert(0) += cost.units;
    }
}

/// Does the work `profile` asks for beyond `spent` (the check's own verification), on
/// throw-away inputs, and returns the total. Argon2 pads in runs at the policy's memory;
/// bcrypt in runs of doubling cost from the spent one (2^c + … + 2^(m-1) = 2^m − 2^c);
/// PBKDF2 in one run of the missing iterations. The results are thrown away.
pub fn pad(
    profile: &WorkProfile,
    spent: Option<Cost>,
    policy: &Argon2Params,
    area: &mut WorkArea,
) -> WorkDone {
    let mut done = WorkDone::default();
    if let Some(cost) = spent {
        done.add(cost);
    }
    for target in profile.targets() {
        let have = done.0.get(&target.family).copied().unwrap_or(0);
        let missing = target.units.saturating_sub(have);
        if missing == 0 {
            continue;
        }
        let padded = match target.family {
            Family::Argon2 => pad_argon2(missing, policy, area),
            Family::Bcrypt => pad_bcrypt(have, target.units),
            Family::Pbkdf2 => pad_pbkdf2(missing),
        };
        done.add(Cost {
            family: target.family,
            units: padded,
        });
    }
    done
}

/// argon2's smallest memory, in KiB (8 per lane, one lane).
const ARGON2_MEMORY_KIB_MIN: u64 = 8;

fn pad_argon2(missing: u64, policy: &Argon2Params, area: &mut WorkArea) -> u64 {
    let memory = u64::from(policy.memory_kib).max(ARGON2_MEMORY_KIB_MIN);
    let passes = missing / memory;
    let rest = missing % memory;
    let mut done = 0;
    if passes > 0 {
        done += argon2_run(memory, passes, area);
    }
    if rest >= ARGON2_MEMORY_KIB_MIN {
        done += argon2_run(rest, 1, area);
    }
    done
}

fn argon2_run(memory_kib: u64, passes: u64, area: &mut WorkArea) -> u64 {
    let (Ok(m), Ok(t)) = (u32::try_from(memory_kib), u32::try_from(passes)) else {
        return 0;
    };
    let Ok(params) = Params::new(m, t, 1, Some(32)) else {
        return 0;
    };
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = [0u8; 32];
    if password::hash_into_area(&argon, b"padding", b"tessera-padding!", &mut out, area) {
        memory_kib * passes
    } else {
        0
    }
}

fn pad_bcrypt(have: u64, target: u64) -> u64 {
    let cost_of = |units: u64| 63 - units.leading_zeros();
    let top = cost_of(target.max(1));
    let start = if have == 0 { top } else { cost_of(have) };
    let mut done = 0;
    for cost in start..=top {
        if cost == top && have != 0 {
            break;
        }
        if bcrypt::hash_with_salt(b"padding", cost, [0x5a; 16]).is_ok() {
            done += 1u64 << cost;
        }
    }
    done
}

fn pad_pbkdf2(missing: u64) -> u64 {
    let Ok(iterations) = u32::try_from(missing) else {
        return 0;
    };
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"padding", b"tessera-padding", iterations, &mut out);
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Params = Argon2Params::INSECURE_FAST;

    fn md5_hex(s: &str) -> String {
        data_encoding::HEXLOWER.encode(&Md5::digest(s.as_bytes()))
    }

    fn stored(hash: LegacyHash) -> PasswordHash {
        hash.into_stored([9; 16], &FAST, &mut WorkArea::default())
            .expect("valid params")
    }

    fn check(password: &str, stored: &PasswordHash) -> Verification {
        verify_any(password, stored, &FAST, &mut WorkArea::default()).outcome
    }

    #[test]
    fn a_raw_md5_is_wrapped_and_verifies_through_the_wrapper() {
        let hex = md5_hex("hunter2 hunter2");
        let s = stored(LegacyHash::parse(&hex, None, None).expect("md5"));
        assert!(s.0.starts_with("md5$none$$$argon2id$"), "{}", s.0);
        assert!(
            !s.0.contains(&hex),
            "the MD5 never rests in the stored form"
        );
        assert_eq!(Scheme::of(&s), Some(Scheme::WrappedMd5));
        assert_eq!(
            check("hunter2 hunter2", &s),
            Verification::Match { stale: true }
        );
        assert_eq!(check("hunter2 hunter3", &s), Verification::Mismatch);
        // The MD5 digest itself, replayed as a password, is refused.
        assert_eq!(check(&hex, &s), Verification::Mismatch);
    }

    #[test]
    fn a_salted_md5_keeps_its_salt_and_position() {
        for (position, input) in [
            (SaltPosition::Before, "NaClsecret words"),
            (SaltPosition::After, "secret wordsNaCl"),
        ] {
            let hex = md5_hex(input);
            let s = stored(LegacyHash::parse(&hex, Some("NaCl"), Some(position)).expect("md5"));
            assert_eq!(
                check("secret words", &s),
                Verification::Match { stale: true }
            );
            assert_eq!(check(input, &s), Verification::Mismatch);
        }
    }

    #[test]
    fn bcrypt_pbkdf2_and_argon2_verify_as_given() {
        let b = bcrypt::hash_with_salt("pass word 1", 4, [3; 16])
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB);
        let s = stored(LegacyHash::parse(&b, None, None).expect("bcrypt"));
        assert_eq!(
            check("pass word 1", &s),
            Verification::Match { stale: true }
        );
        assert_eq!(check("pass word 2", &s), Verification::Mismatch);
        for prefix in ["$2a$", "$2y$"] {
            let other = format!("{prefix}{}", b.get(4..).unwrap_or_default());
            let s = stored(LegacyHash::parse(&other, None, None).expect("bcrypt"));
            assert_eq!(
                check("pass word 1", &s),
                Verification::Match { stale: true }
            );
        }

        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"django pass", b"seasalt", 1000, &mut key);
        let d = format!("pbkdf2_sha256$1000$seasalt${}", BASE64.encode(&key));
        let s = stored(LegacyHash::parse(&d, None, None).expect("pbkdf2"));
        assert_eq!(
            check("django pass", &s),
            Verification::Match { stale: true }
        );
        assert_eq!(check("django pasS", &s), Verification::Mismatch);

        let other = Argon2Params {
            memory_kib: 128,
            ..FAST
        };
        let a = password::hash("argon pass", [4; 16], &other).expect("argon2");
        let s = stored(LegacyHash::parse(&a.0, None, None).expect("argon2"));
        assert_eq!(check("argon pass", &s), Verification::Match { stale: true });
        let current = password::hash("argon pass", [4; 16], &FAST).expect("argon2");
        assert_eq!(
            check("argon pass", &current),
            Verification::Match { stale: false }
        );
    }

    #[test]
    fn malformed_hashes_are_refused_with_their_reason() {
        let hex = md5_hex("x");
        let good_bcrypt = bcrypt::hash_with_salt("x", 4, [3; 16])
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB);
        let cases: Vec<(String, Option<&str>, Option<SaltPosition>, HashProblem)> = vec![
            (
                hex.get(..31).unwrap_or_default().to_owned(),
                None,
                None,
                HashProblem::Malformed("MD5"),
            ),
            ("$1$abc$def".into(), None, None, HashProblem::UnknownScheme),
            ("sha1$abc".into(), None, None, HashProblem::UnknownScheme),
            (
                good_bcrypt.replacen("$04$", "$03$", 1),
                None,
                None,
                HashProblem::BcryptCost(3),
            ),
            (
                good_bcrypt.replacen("$04$", "$32$", 1),
                None,
                None,
                HashProblem::BcryptCost(32),
            ),
            (
                good_bcrypt.get(..40).unwrap_or_default().to_owned(),
                None,
                None,
                HashProblem::Malformed("bcrypt"),
            ),
            (
                hex.clone(),
                None,
                Some(SaltPosition::Before),
                HashProblem::SaltMissing,
            ),
            (
                hex.clone(),
                Some(""),
                Some(SaltPosition::After),
                HashProblem::SaltMissing,
            ),
            (hex.clone(), Some("s"), None, HashProblem::SaltUnexpected),
            (
                "pbkdf2_sha256$0$salt$AAAA".into(),
                None,
                None,
                HashProblem::Pbkdf2Iterations(0),
            ),
            (
                "pbkdf2_sha256$1000$salt$AAAA".into(),
                None,
                None,
                HashProblem::Malformed("pbkdf2_sha256"),
            ),
            (
                "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ".into(),
                None,
                None,
                HashProblem::Malformed("argon2"),
            ),
            (
                "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
                None,
                None,
                HashProblem::Argon2Params,
            ),
        ];
        for (hash, salt, position, want) in cases {
            assert_eq!(
                LegacyHash::parse(&hash, salt, position).err(),
                Some(want.clone()),
                "{hash}"
            );
            assert!(!want.to_string().contains(&hash) || hash.len() < 8);
        }
    }

    #[test]
    fn every_check_pads_to_the_same_work() {
        let mut profile = WorkProfile::current(&FAST);
        let b = bcrypt::hash_with_salt("pw", 6, [3; 16])
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB);
        let cheap_b = bcrypt::hash_with_salt("pw", 4, [3; 16])
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB);
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pw", b"s", 100, &mut key);
        let p = PasswordHash(format!("pbkdf2_sha256$100$s${}", BASE64.encode(&key)));
        let wrapped = stored(LegacyHash::parse(&md5_hex("pw"), None, None).expect("md5"));
        let current = password::hash("pw", [1; 16], &FAST).expect("argon2");
        let all = [
            PasswordHash(b.clone()),
            PasswordHash(cheap_b),
            p,
            wrapped,
            current,
        ];
        for s in &all {
            profile.include(Cost::of(s).expect("readable"));
        }
        let mut area = WorkArea::default();
        let unknown = pad(&profile, None, &FAST, &mut area);
        for s in &all {
            let checked = verify_any("wrong", s, &FAST, &mut area);
            assert_eq!(checked.outcome, Verification::Mismatch);
            assert_eq!(
                pad(&profile, checked.cost, &FAST, &mut area),
                unknown,
                "{s:?}"
            );
        }
        assert_eq!(unknown.0.get(&Family::Bcrypt), Some(&64));
        assert_eq!(unknown.0.get(&Family::Pbkdf2), Some(&100));
        assert_eq!(unknown.0.get(&Family::Argon2), Some(&64));
    }

    #[test]
    fn debug_never_shows_a_hash() {
        let h = LegacyHash::parse(&md5_hex("x"), None, None).expect("md5");
        assert!(!format!("{h:?}").contains(&md5_hex("x")));
    }
}
