//! The breached-password set: the fingerprints of every entry of
//! `core/data/breached-passwords.txt`, sorted, compiled in by the build script.

use super::fingerprint::fingerprint;

/// Little-endian `u64` fingerprints, ascending, without repeats.
static FINGERPRINTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/breached-fingerprints.bin"));

/// How many distinct entries the set holds.
pub fn len() -> usize {
    FINGERPRINTS.len() / 8
}

fn at(i: usize) -> Option<u64> {
    let start = i.checked_mul(8)?;
    let bytes: [u8; 8] = FINGERPRINTS
        .get(start..start.checked_add(8)?)?
        .try_into()
        .ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Whether `lower` (already lower case) is on the breached list.
pub fn contains(lower: &str) -> bool {
    let target = fingerprint(lower);
    let (mut lo, mut hi) = (0, len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match at(mid) {
            Some(v) if v == target => return true,
            Some(v) if v < target => lo = mid + 1,
            Some(_) => hi = mid,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use crate::password::{PasswordContext, PasswordPolicy, PasswordProblem, is_common};

    const LIST: &str = include_str!("../../data/breached-passwords.txt");

    fn entries() -> impl Iterator<Item = &'static str> {
        LIST.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
    }

    #[test]
    fn every_entry_is_in_the_compiled_set() {
        let mut n = 0;
        for entry in entries() {
            assert!(super::contains(entry), "{entry}");
            n += 1;
        }
        assert_eq!(n, super::len(), "one fingerprint per distinct entry");
        assert!(n > 100_000, "{n}");
    }

    #[test]
    fn the_most_common_passwords_that_meet_the_length_rule_are_refused_in_any_case() {
        let policy = PasswordPolicy::default();
        let long: Vec<&str> = entries()
            .filter(|e| e.chars().count() >= policy.min_chars)
            .collect();
        assert!(
            long.len() >= 3_000,
            "{} entries of 12+ characters",
            long.len()
        );
        for (rank, entry) in long.iter().take(3_000).enumerate() {
            let capitalised: String = entry
                .chars()
                .enumerate()
                .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
                .collect();
            let mut variants = vec![entry.to_string(), capitalised.clone()];
            // A symbol added after an entry that ends in one is not told apart from it.
            if entry.ends_with(|c: char| c.is_alphanumeric()) {
                variants.push(format!("{capitalised}!"));
            }
            for variant in variants {
                assert!(is_common(&variant), "{variant}");
                // The whole policy on the first few hundred (zxcvbn is slow in debug builds).
                if rank < 200 {
                    let problems = policy.problems(&variant, &PasswordContext::default());
                    assert!(problems.contains(&PasswordProblem::Common), "{variant}");
                }
            }
        }
    }

    #[test]
    fn strong_passwords_are_not_taken_for_breached_ones() {
        // Fingerprints could collide; a few thousand distinct strong passwords must all pass.
        for i in 0..5_000u32 {
            let candidate = format!("correct horse {i} battery staple");
            assert!(!super::contains(&candidate), "{candidate}");
        }
        assert!(!is_common("vivid-otter-planet-4417"));
    }
}
