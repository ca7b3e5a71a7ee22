//! What a user types: TOTP codes (RFC 6238) and backup codes, parsed at the edge.
//!
//! A string that cannot be a code never becomes a command: [`MfaAnswer::totp`] and
//! [`MfaAnswer::backup`] refuse it with [`Rejection::MfaCodeMalformed`], which spends no
//! attempt (a malformed code cannot be right, so refusing it gives a guesser nothing).
//!
//! TOTP: SHA-1, 6 digits, 30-second steps, one step of drift either way (RFC 6238 §5.2,
//! RFC 4226 §5.3 for the digits). A step is accepted once: the last accepted step is kept
//! per account, and a code for that step or an earlier one is refused even inside the
//! drift window.
//!
//! Backup codes: 12 characters of Crockford base32 (60 bits), shown as `xxxx-xxxx-xxxx`.
//! Input is normalised before hashing: dashes and spaces dropped, lower case, and the
//! look-alikes `i`/`l` read as `1`, `o` as `0`.

use subtle::ConstantTimeEq;
use totp_rs::{Builder, Totp};
use zeroize::Zeroizing;

use crate::{Env, Rejection, Timestamp};

/// Digits in a TOTP code.
pub const TOTP_DIGITS: usize = 6;
/// Seconds in one TOTP step.
pub const TOTP_STEP_SECS: u64 = 30;
/// Steps of drift accepted either side of the current one.
pub const TOTP_DRIFT_STEPS: u64 = 1;
/// Bytes in a TOTP secret: 160 bits, as RFC 4226 §4 recommends.
pub const TOTP_SECRET_BYTES: usize = 20;
/// Backup codes in a set.
pub const BACKUP_CODES_PER_SET: usize = 10;
/// Characters in a backup code; 5 bits each.
pub const BACKUP_CODE_CHARS: usize = 12;
const _: () = assert!(BACKUP_CODE_CHARS * 5 >= 50, "backup codes need 50 bits");

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A presented TOTP code: six ASCII digits. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(Zeroizing<String>);

impl TotpCode {
    /// Parses a TOTP code: exactly six ASCII digits (surrounding spaces, and one space in
    /// the middle as authenticator apps show it, are allowed).
    pub fn parse(presented: &str) -> Result<Self, Rejection> {
        let trimmed = presented.trim();
        if trimmed.len() > 2 * TOTP_DIGITS {
            return Err(Rejection::MfaCodeMalformed);
        }
        let compact: String = match trimmed.split_once(' ') {
            Some((a, b)) if a.len() == 3 && b.len() == 3 => format!("{a}{b}"),
            _ => trimmed.to_owned(),
        };
        let compact = Zeroizing::new(compact);
        if compact.len() != TOTP_DIGITS || !compact.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::MfaCodeMalformed);
        }
        Ok(Self(compact))
    }
}

impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpCode(<redacted>)")
    }
}

/// A presented backup code, normalised. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCode(Zeroizing<String>);

impl std::fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupCode(<redacted>)")
    }
}

impl BackupCode {
    /// The normalised form, which is what gets hashed.
    pub fn normalised(&self) -> &str {
        &self.0
    }
}

/// What a user answers an MFA prompt with.
#[derive(Clone, PartialEq, Eq)]
pub enum MfaAnswer {
    /// A TOTP code from the authenticator app.
    Totp(TotpCode),
    /// A backup code, normalised.
    Backup(BackupCode),
}

impl std::fmt::Debug for MfaAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Totp(_) => f.write_str("Totp(<redacted>)"),
            Self::Backup(_) => f.write_str("Backup(<redacted>)"),
        }
    }
}

impl MfaAnswer {
    /// Parses a TOTP code (see [`TotpCode::parse`]).
    pub fn totp(presented: &str) -> Result<Self, Rejection> {
        TotpCode::parse(presented).map(Self::Totp)
    }

    /// Parses and normalises a backup code.
    pub fn backup(presented: &str) -> Result<Self, Rejection> {
        // Bound the work before looking at the characters.
        if presented.len() > 4 * BACKUP_CODE_CHARS {
            return Err(Rejection::MfaCodeMalformed);
        }
        let mut out = Zeroizing::new(String::with_capacity(BACKUP_CODE_CHARS));
        for c in presented.trim().chars() {
            let c = match c.to_ascii_lowercase() {
                '-' | ' ' => continue,
                'i' | 'l' => '1',
                'o' => '0',
                c => c,
            };
            if !c.is_ascii() || !CROCKFORD.contains(&(c as u8)) {
                return Err(Rejection::MfaCodeMalformed);
            }
            out.push(c);
        }
        if out.len() != BACKUP_CODE_CHARS {
            return Err(Rejection::MfaCodeMalformed);
        }
        Ok(Self::Backup(BackupCode(out)))
    }
}

/// A fresh set of backup codes in display form (`xxxx-xxxx-xxxx`), to show once.
/// `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCodes(pub(crate) Vec<Zeroizing<String>>);

impl BackupCodes {
    /// The codes, to put in the JSON reply and nowhere else.
    pub fn expose(&self) -> Vec<&str> {
        self.0.iter().map(|c| c.as_str()).collect()
    }

    /// How many codes the set holds ([`BACKUP_CODES_PER_SET`] when freshly made).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set holds no code.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupCodes({} codes, <redacted>)", self.0.len())
    }
}

/// One backup code from the environment's RNG: (display form, normalised form).
pub(crate) fn generate_backup_code(env: &mut Env<'_>) -> (Zeroizing<String>, Zeroizing<String>) {
    let raw = Zeroizing::new(env.random_bytes::<BACKUP_CODE_CHARS>());
    let mut normal = Zeroizing::new(String::with_capacity(BACKUP_CODE_CHARS));
    let mut display = Zeroizing::new(String::with_capacity(BACKUP_CODE_CHARS + 2));
    for (i, b) in raw.iter().enumerate() {
        // 32 divides 256, so masking keeps every character equally likely.
        let c = char::from(CROCKFORD.get(usize::from(b & 31)).copied().unwrap_or(b'0'));
        if i > 0 && i % 4 == 0 {
            display.push('-');
        }
        display.push(c);
        normal.push(c);
    }
    (display, normal)
}

/// The TOTP generator for a secret. `None` only for a secret shorter than RFC 4226 allows,
/// which we never make.
pub(crate) fn totp(secret: &[u8], issuer: &str, account_name: &str) -> Option<Totp> {
    Builder::new()
        .with_secret(secret.to_vec())
        .with_account_name(account_name)
        .with_issuer(Some(issuer))
        .build()
        .ok()
}

/// The step a time falls in.
pub fn step_at(now: Timestamp) -> u64 {
    now.as_secs() / TOTP_STEP_SECS
}

/// What checking a TOTP code found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code is right for this step, later than any accepted before.
    Accepted(u64),
    /// The code is right for a step already accepted (or an earlier one): a replay.
    Replayed,
    /// The code matches no step within the drift window.
    Wrong,
}

/// Checks `code` against the steps within the drift window of `now`, refusing steps at or
/// before `last_step`. Every candidate is compared in constant time.
pub(crate) fn check_totp(
    totp: &Totp,
    code: &TotpCode,
    now: Timestamp,
    last_step: Option<u64>,
) -> TotpCheck {
    let current = step_at(now);
    let mut result = TotpCheck::Wrong;
    for step in current.saturating_sub(TOTP_DRIFT_STEPS)..=current.saturating_add(TOTP_DRIFT_STEPS)
    {
        let expected = Zeroizing::new(
            totp.generate(step.saturating_mul(TOTP_STEP_SECS))
                .to_string(),
        );
        let matches: bool = expected.as_bytes().ct_eq(code.0.as_bytes()).into();
        if !matches {
            continue;
        }
        if last_step.is_some_and(|last| step <= last) {
            if result == TotpCheck::Wrong {
                result = TotpCheck::Replayed;
            }
        } else if !matches!(result, TotpCheck::Accepted(_)) {
            result = TotpCheck::Accepted(step);
        }
    }
    result
}

/// The otpauth:// URI an authenticator app scans (Key URI Format): issuer and account name
/// in the label and the `issuer` parameter, SHA1, 6 digits, 30 s, all spelled out.
pub(crate) fn otpauth_uri(totp: &Totp) -> Option<String> {
    let base = totp.to_url().ok()?;
    Some(format!(
        "{base}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}"
    ))
}

/// The QR code of `uri` as an SVG document.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

/// The QR code of `uri` drawn with Unicode half blocks, for a terminal.
pub fn qr_terminal(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build(),
    )
}

/// A TOTP code for `secret` at `now`, for tests and the simulator's honest users.
pub fn totp_code_at(secret: &[u8], now: Timestamp) -> Option<String> {
    let t = totp(secret, "t", "t")?;
    Some(t.generate(now.as_secs()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_codes_are_six_digits() {
        assert!(MfaAnswer::totp("123456").is_ok());
        assert!(MfaAnswer::totp(" 123 456 ").is_ok());
        for bad in [
            "12345",
            "1234567",
            "12a456",
            "",
            "１２３４５６",
            "+12345",
            "12 3456",
        ] {
            assert_eq!(
                MfaAnswer::totp(bad),
                Err(Rejection::MfaCodeMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn backup_codes_normalise_and_refuse_garbage() {
        let a = MfaAnswer::backup("ABCD-EFGH-JK01").expect("valid");
        let b = MfaAnswer::backup("abcdefghjkol").expect("valid, with look-alikes");
        assert_eq!(a, b);
        for bad in [
            "abcd",
            "abcd-efgh-jk01-2",
            "abcd-efgh-jku1",
            "é",
            &"-".repeat(100),
        ] {
            assert_eq!(
                MfaAnswer::backup(bad),
                Err(Rejection::MfaCodeMalformed),
                "{bad}"
            );
        }
        assert!(!format!("{a:?}").contains("abcd"));
    }

    #[test]
    fn rfc6238_vector_and_drift_window() {
        // RFC 6238 appendix B, SHA-1 secret, T = 59 s: 94287082 (8 digits), so 287082.
        let secret = b"12345678901234567890";
        let t = totp(secret, "x", "y").expect("valid secret");
        let at = Timestamp::from_millis(59_000);
        let code = |s: &str| match MfaAnswer::totp(s) {
            Ok(MfaAnswer::Totp(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            check_totp(&t, &code("287082"), at, None),
            TotpCheck::Accepted(1)
        );
        // One step of drift either way, not two.
        let later = Timestamp::from_millis(59_000 + 30_000);
        assert_eq!(
            check_totp(&t, &code("287082"), later, None),
            TotpCheck::Accepted(1)
        );
        let much_later = Timestamp::from_millis(59_000 + 60_000);
        assert_eq!(
            check_totp(&t, &code("287082"), much_later, None),
            TotpCheck::Wrong
        );
        // Accepted once: the same step again is a replay, even in the window.
        assert_eq!(
            check_totp(&t, &code("287082"), later, Some(1)),
            TotpCheck::Replayed
        );
        assert_eq!(check_totp(&t, &code("000000"), at, None), TotpCheck::Wrong);
    }

    #[test]
    fn otpauth_uri_spells_out_parameters() {
        let t = totp(&[1; 20], "Tessera", "alice@example.com").expect("valid");
        let uri = otpauth_uri(&t).expect("uri");
        assert!(
            uri.starts_with("otpauth://totp/Tessera:alice%40example.com?secret="),
            "{uri}"
        );
        for p in ["issuer=Tessera", "algorithm=SHA1", "digits=6", "period=30"] {
            assert!(uri.contains(p), "{uri} lacks {p}");
        }
        assert!(qr_svg(&uri).is_some_and(|s| s.contains("<svg")));
        assert!(qr_terminal(&uri).is_some_and(|s| s.contains('█') || s.contains('▀')));
    }
}
