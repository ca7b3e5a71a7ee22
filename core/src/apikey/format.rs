//! The key format: `<vendor>_<kind>_<body><checksum>`.
//!
//! ```text
//! tsr_sk_live_ 8Zk3...30 base62 characters... Q1w9xY
//! └ vendor ┘└ kind ┘└──── body: 178 bits ────┘└ CRC32 ┘
//! ```
//!
//! - The vendor tag (default `tsr`) and the kind (`sk_live_`, `sk_test_`, `pk_`) say whose key
//!   it is and what it may do; a bare `sk_live_` is what scanners attribute to another vendor.
//! - The body is [`BODY_CHARS`] base62 characters drawn uniformly from the RNG (rejection
//!   sampling, no modulo bias): 62^30 is about 2^178, above the 160 bits required.
//! - The checksum is the CRC32 of everything before it, in [`CHECKSUM_CHARS`] base62
//!   characters: a typo or a look-alike string is refused before any lookup, and a secret
//!   scanner can tell our keys from random strings offline. It is not a secret and protects
//!   nothing against an attacker; the HMAC digest does that.
//!
//! The pattern, for secret scanners ([`pattern`]): with the default vendor,
//! `\btsr_(?:sk_(?:live|test)|pk)_[0-9A-Za-z]{36}\b`.

use zeroize::Zeroizing;

use super::{ApiKeyKind, Environment};

/// Base62 body characters: 62^30 ≈ 2^178.6 ≥ 2^160.
pub const BODY_CHARS: usize = 30;
/// Base62 characters of the CRC32 checksum: 62^6 ≈ 5.7·10^10 > 2^32.
pub const CHECKSUM_CHARS: usize = 6;
/// Body characters shown in a key's display prefix (after the kind).
pub const DISPLAY_BODY_CHARS: usize = 8;
/// The longest vendor tag.
pub const VENDOR_BYTES_MAX: usize = 8;
/// The longest string that can be a key: anything longer is refused unread.
pub const KEY_BYTES_MAX: usize = VENDOR_BYTES_MAX + "_sk_live_".len() + BODY_CHARS + CHECKSUM_CHARS;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random bytes at or above this are redrawn: 248 = 4 × 62, so `b % 62` is uniform.
const UNBIASED_BELOW: u8 = 248;

const _: () = assert!(
    BODY_CHARS * 595 / 100 >= 160,
    "the body carries at least 160 bits"
);
const _: () = assert!(DISPLAY_BODY_CHARS < BODY_CHARS);

/// Why a presented string is not one of our keys, found without any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Not our vendor tag or not a kind we issue (`sk_live_`, `sk_test_`, `pk_`).
    WrongPrefix,
    /// Our prefix, but the wrong length or characters.
    Malformed,
    /// The right shape, but the checksum does not match: a typo or a made-up key.
    BadChecksum,
}

impl FormatError {
    /// A fixed word for the security log and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::WrongPrefix => "wrong_prefix",
            Self::Malformed => "malformed",
            Self::BadChecksum => "bad_checksum",
        }
    }
}

/// What the text of a well-formed key says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Secret or publishable.
    pub kind: ApiKeyKind,
    /// The environment its prefix names (`None` for publishable keys, whose prefix has none).
    pub environment: Option<Environment>,
    /// The display prefix: vendor, kind and the first body characters.
    pub display_prefix: &'a str,
}

/// The kind part of the prefix, after `<vendor>_`.
pub fn kind_tag(kind: ApiKeyKind, environment: Environment) -> &'static str {
    match (kind, environment) {
        (ApiKeyKind::Secret, Environment::Live) => "sk_live_",
        (ApiKeyKind::Secret, Environment::Test) => "sk_test_",
        (ApiKeyKind::Publishable, _) => "pk_",
    }
}

/// Whether `vendor` can be a vendor tag: 2 to 8 lower-case ASCII letters or digits.
pub fn vendor_valid(vendor: &str) -> bool {
    (2..=VENDOR_BYTES_MAX).contains(&vendor.len())
        && vendor
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The regular expression that matches every key this vendor tag issues, for secret
/// scanners.
pub fn pattern(vendor: &str) -> String {
    format!(
        r"\b{vendor}_(?:sk_(?:live|test)|pk)_[0-9A-Za-z]{{{}}}\b",
        BODY_CHARS + CHECKSUM_CHARS
    )
}

/// The CRC32 of `text` in [`CHECKSUM_CHARS`] base62 characters, most significant first.
pub fn checksum(text: &str) -> [u8; CHECKSUM_CHARS] {
    let mut n = crc32fast::hash(text.as_bytes());
    let mut out = [b'0'; CHECKSUM_CHARS];
    for slot in out.iter_mut().rev() {
        *slot = base62_digit(n % 62);
        n /= 62;
    }
    out
}

fn base62_digit(n: u32) -> u8 {
    ALPHABET
        .get(usize::try_from(n).unwrap_or(0))
        .copied()
        .unwrap_or(b'0')
}

/// A new key of this kind, with `fill` supplying random bytes.
pub fn generate(
    vendor: &str,
    kind: ApiKeyKind,
    environment: Environment,
    mut draw: impl FnMut() -> [u8; 64],
) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(KEY_BYTES_MAX));
    text.push_str(vendor);
    text.push('_');
    text.push_str(kind_tag(kind, environment));
    let mut drawn = 0;
    while drawn < BODY_CHARS {
        let pool = Zeroizing::new(draw());
        for &b in pool.iter().filter(|&&b| b < UNBIASED_BELOW) {
            if drawn == BODY_CHARS {
                break;
            }
            text.push(char::from(base62_digit(u32::from(b % 62))));
            drawn += 1;
        }
    }
    let sum = checksum(&text);
    text.extend(sum.iter().map(|&b| char::from(b)));
    text
}

/// Checks a presented string's shape and checksum. Cheap, and no lookup: a string that fails
/// here never reaches the views.
pub fn parse<'a>(vendor: &str, presented: &'a str) -> Result<Parsed<'a>, FormatError> {
    if presented.len() > KEY_BYTES_MAX {
        return Err(FormatError::Malformed);
    }
    let rest = presented
        .strip_prefix(vendor)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(FormatError::WrongPrefix)?;
    let (kind, environment, body) = if let Some(b) = rest.strip_prefix("sk_live_") {
        (ApiKeyKind::Secret, Some(Environment::Live), b)
    } else if let Some(b) = rest.strip_prefix("sk_test_") {
        (ApiKeyKind::Secret, Some(Environment::Test), b)
    } else if let Some(b) = rest.strip_prefix("pk_") {
        (ApiKeyKind::Publishable, None, b)
    } else {
        return Err(FormatError::WrongPrefix);
    };
    if body.len() != BODY_CHARS + CHECKSUM_CHARS || !body.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(FormatError::Malformed);
    }
    let split = presented.len() - CHECKSUM_CHARS;
    let (text, sum) = (
        presented.get(..split).ok_or(FormatError::Malformed)?,
        presented.get(split..).ok_or(FormatError::Malformed)?,
    );
    if checksum(text).as_slice() != sum.as_bytes() {
        return Err(FormatError::BadChecksum);
    }
    let display_len = presented.len() - body.len() + DISPLAY_BODY_CHARS;
    Ok(Parsed {
        kind,
        environment,
        display_prefix: presented.get(..display_len).ok_or(FormatError::Malformed)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngExt, SeedableRng};

    fn key(seed: u64, kind: ApiKeyKind, env: Environment) -> Zeroizing<String> {
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(seed);
        generate("tsr", kind, env, || {
            let mut buf = [0u8; 64];
            rng.fill_bytes(&mut buf);
            buf
        })
    }

    #[test]
    fn generated_keys_parse_and_carry_their_kind() {
        let cases = [
            (ApiKeyKind::Secret, Environment::Live, "tsr_sk_live_"),
            (ApiKeyKind::Secret, Environment::Test, "tsr_sk_test_"),
            (ApiKeyKind::Publishable, Environment::Live, "tsr_pk_"),
        ];
        for (seed, (kind, env, prefix)) in cases.into_iter().enumerate() {
            let k = key(seed as u64, kind, env);
            assert!(k.starts_with(prefix), "{}", &k[..prefix.len()]);
            assert_eq!(k.len(), prefix.len() + BODY_CHARS + CHECKSUM_CHARS);
            let p = parse("tsr", &k).expect("parses");
            assert_eq!(p.kind, kind);
            assert_eq!(p.display_prefix, &k[..prefix.len() + DISPLAY_BODY_CHARS]);
        }
    }

    #[test]
    fn typos_and_look_alikes_are_refused_before_lookup() {
        let k = key(1, ApiKeyKind::Secret, Environment::Live);
        // Every single-character substitution in the body breaks the checksum.
        let body_start = "tsr_sk_live_".len();
        for i in body_start..k.len() {
            let mut typo = k.as_bytes().to_vec();
            typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(typo).expect("ascii");
            assert_eq!(parse("tsr", &typo), Err(FormatError::BadChecksum), "at {i}");
        }
        assert_eq!(
            parse("tsr", &k.replace("tsr_", "xyz_")),
            Err(FormatError::WrongPrefix)
        );
        assert_eq!(
            parse("tsr", &k["tsr_".len()..]),
            Err(FormatError::WrongPrefix)
        );
        assert_eq!(parse("tsr", &k[..k.len() - 1]), Err(FormatError::Malformed));
        assert_eq!(
            parse("tsr", &format!("{}!", &k[..k.len() - 1])),
            Err(FormatError::Malformed)
        );
        assert_eq!(parse("tsr", ""), Err(FormatError::WrongPrefix));
        assert_eq!(
            parse("tsr", &"a".repeat(10_000)),
            Err(FormatError::Malformed)
        );
    }

    #[test]
    fn body_characters_are_uniform_enough() {
        let mut counts = [0u32; 62];
        for seed in 0..400 {
            let k = key(seed, ApiKeyKind::Secret, Environment::Test);
            for b in k["tsr_sk_test_".len()..][..BODY_CHARS].bytes() {
                let i = ALPHABET.iter().position(|&a| a == b).expect("base62");
                counts[i] += 1;
            }
        }
        // 12,000 draws, 193.5 expected per character.
        assert!(
            counts.iter().all(|&c| (120..280).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn the_published_pattern_names_the_vendor_and_lengths() {
        assert_eq!(
            pattern("tsr"),
            r"\btsr_(?:sk_(?:live|test)|pk)_[0-9A-Za-z]{36}\b"
        );
        assert!(vendor_valid("tsr") && vendor_valid("acme01"));
        assert!(!vendor_valid("T") && !vendor_valid("a_b") && !vendor_valid("toolongtag"));
    }

    proptest::proptest! {
        /// Attacker text never panics the parser, and whatever it accepts has our shape.
        #[test]
        fn arbitrary_text_is_parsed_without_panic(text in ".{0,80}") {
            if let Ok(p) = parse("tsr", &text) {
                proptest::prop_assert!(text.starts_with(p.display_prefix));
                proptest::prop_assert!(text.starts_with("tsr_"));
            }
        }
    }

    #[test]
    fn random_strings_are_refused() {
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(9);
        for _ in 0..1000 {
            let body: String = (0..BODY_CHARS + CHECKSUM_CHARS)
                .map(|_| char::from(ALPHABET[rng.random_range(0..62)]))
                .collect();
            // A random body passes the checksum with probability 2^-32 at most.
            assert!(parse("tsr", &format!("tsr_sk_live_{body}")).is_err());
        }
    }
}
