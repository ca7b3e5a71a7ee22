//! Multi-factor authentication: TOTP (RFC 6238), backup codes, and the login challenge
//! (OWASP Multifactor Authentication Cheat Sheet).
//!
//! ```text
//!   account MFA:  Off ──StartTotpEnrolment──▶ Pending ──ConfirmTotp (valid code)──▶ On
//!                  ▲     (TotpEnrolmentStarted)  │        (TotpEnabled + 10 backup codes)
//!                  │                             └─ expires: a new enrolment may replace it
//!                  └──── DisableTotp (valid code) / ResetMfa (operator) ── TotpDisabled ─ On
//!
//!   login, right password, MFA on ──MfaChallengeStarted──▶ challenge Open (mfa_token)
//!   Open ──AnswerMfaChallenge, right code──▶ MfaChallengePassed + session or family
//!   Open ──wrong / replayed / spent code──▶ MfaCodeFailed; after attempts_max of them: Dead
//!   Dead ──any answer, the right code included──▶ refused (MfaChallengeExhausted)
//!   Open or Dead ──now ≥ expires_at──▶ gone (MfaChallengeInvalid), dropped from the views
//! ```
//!
//! # Calling it (the HTTP adapter)
//! Load the keys once: `storage::keys::KeyStore::mfa_keys_or_create(random 32 bytes)`
//! gives an [`MfaKeys`]; clone it into every command that needs it. Then:
//! - `POST /v1/mfa/totp`: [`StartTotpEnrolment`] → a [`TotpEnrolment`] (base32 secret,
//!   otpauth URI, QR SVG), shown once.
//! - `POST /v1/mfa/totp/confirm {code}`: [`TotpCode::parse`], then [`ConfirmTotp`] → the
//!   [`BackupCodes`], shown once.
//! - `POST /v1/login`: unchanged; with MFA on the reply is
//!   [`crate::session::LoginReply::MfaRequired`].
//! - `POST /v1/login/mfa {mfa_token, code | backup_code}`: [`crate::usecase::answer_challenge`]
//!   builds an [`AnswerMfaChallenge`] → [`crate::session::LoginCompleted`], in the mode the
//!   login asked for.
//! - `POST /v1/mfa/backup-codes {code}`: [`ReplaceBackupCodes`] → the new [`BackupCodes`].
//! - `DELETE /v1/mfa/totp {code | backup_code}`: [`DisableTotp`].
//! - `GET /v1/me`: [`Views::mfa_status`].
//!
//! # Why the keys travel in the command
//! The TOTP secret is sealed under a key kept outside the log, and the core reads no files.
//! Commands that must seal or open a secret, or hash a backup code, carry an [`MfaKeys`]
//! (derived subkeys behind an `Arc`; `Debug` shows only the key id). Nothing from it is
//! recorded: events hold the sealed secret with the key id, and keyed hashes of backup
//! codes. The alternative, keys in [`Env`], would have made every engine start take keys
//! that most commands never use.
//!
//! # Codes are accepted once
//! A TOTP step is accepted at most once per account: the step is recorded
//! (`TotpEnabled`, `TotpStepAccepted`) and a code for it or an earlier step is refused,
//! also inside the drift window (RFC 6238 §5.2). A backup code is spent by `BackupCodeUsed`;
//! a new set (`BackupCodesReplaced`) voids the old one.

mod codes;
mod seal;

pub use codes::{
    BACKUP_CODE_CHARS, BACKUP_CODES_PER_SET, BackupCode, BackupCodes, MfaAnswer, TOTP_DIGITS,
    TOTP_DRIFT_STEPS, TOTP_SECRET_BYTES, TOTP_STEP_SECS, TotpCheck, TotpCode, qr_svg, qr_terminal,
    step_at, totp_code_at,
};
pub use seal::{BackupCodeDigest, MASTER_KEY_BYTES, MfaKeys, SealedSecret};

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::decide::{Decide, Decision};
use crate::event::{Actor, Event, FamilyRevokeReason, Pending, SessionEndReason};
use crate::id::uuid_v7;
use crate::secret::{BearerSecret, SecretDigest};
use crate::session::LoginCompleted;
use crate::throttle::{account_wait_ms, throttled};
use crate::{
    AccountId, ChallengeId, Env, FamilyId, LoginMode, Rejection, SessionId, Timestamp, Views,
};

/// The prefix of every `mfa_token`: `tsm_` + 43 base64url characters.
pub const MFA_TOKEN_PREFIX: &str = "tsm_";
/// The longest challenge lifetime a policy may set; the views drop challenges by it.
pub const CHALLENGE_TTL_SECS_MAX: u64 = 60 * 60;
/// The most wrong attempts a policy may allow per challenge.
pub const ATTEMPTS_MAX_LIMIT: u32 = 10;
/// The longest enrolment lifetime a policy may set.
pub const ENROLMENT_TTL_SECS_MAX: u64 = 24 * 60 * 60;
/// The longest grace period a policy may give before MFA is required (about ten years):
/// keeps the days-to-milliseconds product far from overflow.
pub const REQUIRED_GRACE_DAYS_MAX: u64 = 3650;

/// Whether `account` is limited to enrolling a second factor (OWASP ASVS 6.3.3): the policy
/// requires MFA, the account was registered at least `required_grace_days` days before
/// `now`, and it has no enabled second factor. A pending, unconfirmed enrolment does not
/// count. An unknown account is not limited (it cannot authenticate anyway). Derived from
/// the account's state at each call, so confirming TOTP lifts it at once.
pub fn enrolment_required(
    views: &Views,
    account: &AccountId,
    now: Timestamp,
    policy: &crate::Policy,
) -> bool {
    if !policy.mfa.required {
        return false;
    }
    let Some(view) = views.account(account) else {
        return false;
    };
    let grace_ms = policy
        .mfa
        .required_grace_days
        .saturating_mul(24 * 60 * 60 * 1000);
    // With no grace period an account is limited from its first moment.
    if now.since(view.created_at) < grace_ms {
        return false;
    }
    let webauthn = views.credentials_of(account).next().is_some();
    !views.mfa(account).is_some_and(|m| m.enabled()) && !webauthn
}

/// The digest to look a presented `mfa_token` up by, if it has the shape of one.
pub fn presented_challenge_digest(presented: &str) -> Option<SecretDigest> {
    crate::secret::plausible(presented, MFA_TOKEN_PREFIX).then(|| SecretDigest::of(presented))
}

/// A TOTP enrolment waiting for its confirming code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTotp {
    /// The new TOTP secret, sealed under the MFA keys for this account.
    pub sealed_secret: SealedSecret,
    /// When the enrolment started.
    pub started_at: Timestamp,
    /// The enrolment must be confirmed before this; after it, a new one may replace it.
    pub expires_at: Timestamp,
}

/// TOTP in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveTotp {
    /// The TOTP secret in use, sealed under the MFA keys for this account.
    pub sealed_secret: SealedSecret,
    /// When a confirming code turned MFA on.
    pub enabled_at: Timestamp,
    /// The last accepted step: it and every earlier one are spent.
    pub last_step: u64,
}

/// An account's MFA state as the views hold it. Absent when MFA was never touched or was
/// turned off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaView {
    /// The account this state belongs to.
    pub account: AccountId,
    /// An enrolment awaiting its confirming code, if any (it may have expired: see
    /// [`MfaView::live_pending`]).
    pub pending: Option<PendingTotp>,
    /// TOTP in use, `None` while MFA is off.
    pub totp: Option<ActiveTotp>,
    /// Keyed hashes of the unspent backup codes of the current set.
    pub backup_codes: BTreeSet<BackupCodeDigest>,
}

impl MfaView {
    /// Whether MFA is on: a TOTP secret is in use, and logins are challenged.
    pub fn enabled(&self) -> bool {
        self.totp.is_some()
    }

    /// The pending enrolment, if it can still be confirmed at `now`.
    pub fn live_pending(&self, now: Timestamp) -> Option<&PendingTotp> {
        self.pending.as_ref().filter(|p| now < p.expires_at)
    }
}

/// What `GET /v1/me` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MfaStatus {
    /// MFA is on.
    pub enabled: bool,
    /// An enrolment awaits its confirming code.
    pub pending: bool,
    /// Unspent backup codes of the current set.
    pub backup_codes_remaining: usize,
}

/// An MFA challenge as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeView {
    /// The challenge's id.
    pub id: ChallengeId,
    /// The account logging in.
    pub account: AccountId,
    /// The SHA-256 digest of the `mfa_token`, by which an answer finds the challenge.
    pub token_digest: SecretDigest,
    /// What the login asked for, issued once the challenge passes.
    pub mode: LoginMode,
    /// When the challenge started (the login with the right password).
    pub started_at: Timestamp,
    /// The challenge must be answered before this; the views drop it once an event
    /// recorded at or after it is applied.
    pub expires_at: Timestamp,
    /// How many wrong answers the challenge takes before it is exhausted.
    pub attempts_max: u32,
    /// Wrong answers so far.
    pub failures: u32,
}

impl ChallengeView {
    /// Whether the challenge can still be answered at `now` as far as time goes (before
    /// `expires_at`); see also [`ChallengeView::exhausted`].
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// Whether it took its last wrong answer and accepts nothing more, the right code
    /// included.
    pub fn exhausted(&self) -> bool {
        self.failures >= self.attempts_max
    }

    /// Wrong answers it still takes before it is exhausted.
    pub fn attempts_left(&self) -> u32 {
        self.attempts_max.saturating_sub(self.failures)
    }
}

/// The methods a challenge can be answered with, as `/v1/login` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    /// A six-digit code from the authenticator app (`totp`).
    Totp,
    /// One of the account's unspent backup codes (`backup_code`); listed only while some
    /// are left.
    BackupCode,
    /// One of the account's WebAuthn credentials (`webauthn`): a passkey or a security key.
    Webauthn,
}

/// A started TOTP enrolment, to show once. `Debug` hides everything that holds the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The secret in base32 (RFC 4648, no padding), for typing into an app.
    pub secret_base32: Zeroizing<String>,
    /// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
    pub otpauth_uri: Zeroizing<String>,
    /// The QR code of `otpauth_uri`, as an SVG document.
    pub qr_svg: Zeroizing<String>,
    /// The enrolment must be confirmed before this.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A challenge handed to the caller of a login with MFA on:
/// `{mfa_required: true, mfa_token, methods, expires_in}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfaChallengeIssued {
    /// The challenge's id.
    pub challenge: ChallengeId,
    /// The account logging in.
    pub account: AccountId,
    /// The `mfa_token`, shown once.
    pub mfa_token: BearerSecret,
    /// The methods it can be answered with: TOTP, and backup codes while any are left.
    pub methods: Vec<MfaMethod>,
    /// `expires_in`: seconds the challenge stays open, the policy's challenge lifetime.
    pub expires_in_secs: u64,
}

/// What checking an answer found.
enum Checked {
    Step(u64),
    Backup(BackupCodeDigest),
    Replayed,
    Wrong,
    KeysUnavailable,
}

fn check_answer(
    account: &AccountId,
    mfa: &MfaView,
    answer: &MfaAnswer,
    keys: &MfaKeys,
    now: Timestamp,
) -> Checked {
    match answer {
        MfaAnswer::Totp(code) => {
            let Some(active) = &mfa.totp else {
                return Checked::Wrong;
            };
            let Some(secret) = keys.open(account, &active.sealed_secret) else {
                return Checked::KeysUnavailable;
            };
            let Some(totp) = codes::totp(&secret, "tessera", "check") else {
                return Checked::KeysUnavailable;
            };
            match codes::check_totp(&totp, code, now, Some(active.last_step)) {
                TotpCheck::Accepted(step) => Checked::Step(step),
                TotpCheck::Replayed => Checked::Replayed,
                TotpCheck::Wrong => Checked::Wrong,
            }
        }
        MfaAnswer::Backup(code) => {
            let digest = keys.backup_code_digest(account, code.normalised());
            if mfa.backup_codes.contains(&digest) {
                Checked::Backup(digest)
            } else {
                Checked::Wrong
            }
        }
    }
}

/// The event that spends what a right answer used.
fn spent(account: AccountId, checked: &Checked) -> Option<Pending> {
    match checked {
        Checked::Step(step) => Some(
            Event::TotpStepAccepted {
                account,
                step: *step,
            }
            .into(),
        ),
        Checked::Backup(code) => Some(
            Event::BackupCodeUsed {
                account,
                code: *code,
            }
            .into(),
        ),
        _ => None,
    }
}

/// A new set of backup codes: the codes to show and their keyed hashes to record.
fn new_backup_codes(
    account: &AccountId,
    keys: &MfaKeys,
    env: &mut Env<'_>,
) -> (BackupCodes, Vec<BackupCodeDigest>) {
    let mut shown = Vec::with_capacity(BACKUP_CODES_PER_SET);
    let mut digests = Vec::with_capacity(BACKUP_CODES_PER_SET);
    while shown.len() < BACKUP_CODES_PER_SET {
        let (display, normal) = codes::generate_backup_code(env);
        let digest = keys.backup_code_digest(account, &normal);
        // 60 bits each: a repeat within a set is a 1-in-10^16 event, but cheap to exclude.
        if !digests.contains(&digest) {
            shown.push(display);
            digests.push(digest);
        }
    }
    (BackupCodes(shown), digests)
}

/// The refusal for a wrong or replayed answer, with the failure event to record.
fn failed<R>(
    account: AccountId,
    challenge: Option<&ChallengeView>,
    client: Option<IpAddr>,
    replayed: bool,
) -> Decision<R> {
    let (events, rejection) = failure(account, challenge, client, replayed);
    Decision::refuse(events, rejection)
}

/// The failure event to record for a wrong or replayed answer, and the rejection.
fn failure(
    account: AccountId,
    challenge: Option<&ChallengeView>,
    client: Option<IpAddr>,
    replayed: bool,
) -> (Vec<Pending>, Rejection) {
    let attempts_left = challenge.map(|c| c.attempts_left().saturating_sub(1));
    let event = Event::MfaCodeFailed {
        account,
        challenge: challenge.map(|c| c.id),
        client,
    };
    let rejection = if replayed {
        Rejection::MfaCodeReplayed { attempts_left }
    } else {
        Rejection::MfaCodeInvalid { attempts_left }
    };
    (vec![event.into()], rejection)
}

/// The account's MFA state if the account is usable and not throttled for MFA attempts.
pub(crate) fn usable<'v>(
    views: &'v Views,
    account: &AccountId,
    env: &Env<'_>,
) -> Result<Option<&'v MfaView>, Rejection> {
    match views.account(account) {
        Some(a) if !a.disabled => {}
        _ => return Err(Rejection::Unauthenticated),
    }
    match account_wait_ms(views, account, env.now, &env.policy.throttle) {
        0 => Ok(views.mfa(account)),
        wait => Err(throttled(wait)),
    }
}

/// The otpauth:// URI of `account`'s pending enrolment, for an operator to show as a QR
/// code in a terminal (`tessera account mfa-qr`). Opens the sealed secret with `keys`.
/// [`Rejection::MfaNotEnrolled`] when no enrolment is pending at `now`.
pub fn pending_otpauth_uri(
    views: &Views,
    account: &AccountId,
    keys: &MfaKeys,
    policy: &crate::Policy,
    now: Timestamp,
) -> Result<Zeroizing<String>, Rejection> {
    let holder = views.account(account).ok_or(Rejection::AccountNotFound)?;
    let pending = views
        .mfa(account)
        .and_then(|m| m.live_pending(now))
        .ok_or(Rejection::MfaNotEnrolled)?;
    let secret = keys
        .open(account, &pending.sealed_secret)
        .ok_or(Rejection::MfaKeysUnavailable)?;
    codes::totp(&secret, &policy.mfa.issuer, &holder.username)
        .and_then(|t| codes::otpauth_uri(&t))
        .map(Zeroizing::new)
        .ok_or(Rejection::MfaKeysUnavailable)
}

fn start_enrolment(
    views: &Views,
    account: AccountId,
    keys: &MfaKeys,
    env: &mut Env<'_>,
) -> Decision<TotpEnrolment> {
    let Some(holder) = views.account(&account).filter(|a| !a.disabled) else {
        return Decision::refuse(vec![], Rejection::Unauthenticated);
    };
    if let Some(mfa) = views.mfa(&account) {
        if mfa.enabled() {
            return Decision::refuse(vec![], Rejection::MfaAlreadyEnabled);
        }
        if let Some(p) = mfa.live_pending(env.now) {
            let retry_after_secs = p.expires_at.since(env.now).div_ceil(1000).max(1);
            return Decision::refuse(vec![], Rejection::MfaEnrolmentPending { retry_after_secs });
        }
    }
    let secret = Zeroizing::new(env.random_bytes::<TOTP_SECRET_BYTES>());
    let policy = &env.policy.mfa;
    let enrolment = codes::totp(&secret[..], &policy.issuer, &holder.username).and_then(|t| {
        let uri = codes::otpauth_uri(&t)?;
        let svg = qr_svg(&uri)?;
        Some((uri, svg))
    });
    // Only an issuer or username the policy and registration refuse could fail here.
    let Some((uri, svg)) = enrolment else {
        return Decision::refuse(vec![], Rejection::MfaKeysUnavailable);
    };
    let expires_at = env
        .now
        .plus_ms(policy.enrolment_ttl_secs.saturating_mul(1000));
    let sealed_secret = keys.seal(&account, &secret[..], env);
    let event = Event::TotpEnrolmentStarted {
        account,
        sealed_secret,
        expires_at,
    };
    let reply = TotpEnrolment {
        secret_base32: Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&secret[..])),
        otpauth_uri: Zeroizing::new(uri),
        qr_svg: Zeroizing::new(svg),
        expires_at,
    };
    Decision::ok(vec![event.into()], reply)
}

fn confirm(
    views: &Views,
    account: AccountId,
    code: &TotpCode,
    keys: &MfaKeys,
    client: Option<IpAddr>,
    env: &mut Env<'_>,
) -> Decision<BackupCodes> {
    let mfa = match usable(views, &account, env) {
        Ok(mfa) => mfa,
        Err(r) => return Decision::refuse(vec![], r),
    };
    if mfa.is_some_and(MfaView::enabled) {
        return Decision::refuse(vec![], Rejection::MfaAlreadyEnabled);
    }
    let Some(pending) = mfa.and_then(|m| m.live_pending(env.now)) else {
        return Decision::refuse(vec![], Rejection::MfaNotEnrolled);
    };
    let Some(totp) = keys
        .open(&account, &pending.sealed_secret)
        .and_then(|secret| codes::totp(&secret, "tessera", "check"))
    else {
        return Decision::refuse(vec![], Rejection::MfaKeysUnavailable);
    };
    match codes::check_totp(&totp, code, env.now, None) {
        TotpCheck::Accepted(step) => {
            let (shown, backup_codes) = new_backup_codes(&account, keys, env);
            let event = Event::TotpEnabled {
                account,
                step,
                backup_codes,
            };
            Decision::ok(vec![event.into()], shown)
        }
        TotpCheck::Replayed | TotpCheck::Wrong => failed(account, None, client, false),
    }
}

/// Starts a challenge for an account whose password was right (called by login).
pub(crate) fn start_challenge(
    account: AccountId,
    mode: LoginMode,
    mfa: Option<&MfaView>,
    webauthn: bool,
    env: &mut Env<'_>,
) -> (Pending, MfaChallengeIssued) {
    let challenge = ChallengeId(uuid_v7(env.now, env.random_bytes()));
    let (mfa_token, token_digest) = BearerSecret::generate(MFA_TOKEN_PREFIX, env);
    let policy = &env.policy.mfa;
    let expires_at = env
        .now
        .plus_ms(policy.challenge_ttl_secs.saturating_mul(1000));
    let mut methods = Vec::with_capacity(3);
    if let Some(mfa) = mfa.filter(|m| m.enabled()) {
        methods.push(MfaMethod::Totp);
        if !mfa.backup_codes.is_empty() {
            methods.push(MfaMethod::BackupCode);
        }
    }
    if webauthn {
        methods.push(MfaMethod::Webauthn);
    }
    let event = Event::MfaChallengeStarted {
        challenge,
        account,
        token_digest,
        mode,
        attempts_max: policy.challenge_attempts_max,
        expires_at,
    };
    let issued = MfaChallengeIssued {
        challenge,
        account,
        mfa_token,
        methods,
        expires_in_secs: policy.challenge_ttl_secs,
    };
    (event.into(), issued)
}

fn answer_challenge(
    views: &Views,
    presented: SecretDigest,
    answer: &MfaAnswer,
    keys: &MfaKeys,
    client: Option<IpAddr>,
    supersedes: Option<SessionId>,
    env: &mut Env<'_>,
) -> Decision<LoginCompleted> {
    let Some(challenge) = views
        .challenge_by_digest(&presented)
        .filter(|c| c.is_live(env.now))
    else {
        return Decision::refuse(vec![], Rejection::MfaChallengeInvalid);
    };
    if challenge.exhausted() {
        return Decision::refuse(vec![], Rejection::MfaChallengeExhausted);
    }
    let account = challenge.account;
    let mfa = match usable(views, &account, env) {
        Ok(Some(mfa)) if mfa.enabled() => mfa,
        Ok(_) | Err(Rejection::Unauthenticated) => {
            return Decision::refuse(vec![], Rejection::MfaChallengeInvalid);
        }
        Err(r) => return Decision::refuse(vec![], r),
    };
    let checked = check_answer(&account, mfa, answer, keys, env.now);
    let Some(spend) = spent(account, &checked) else {
        return match checked {
            Checked::KeysUnavailable => Decision::refuse(vec![], Rejection::MfaKeysUnavailable),
            Checked::Replayed => failed(account, Some(challenge), client, true),
            _ => failed(account, Some(challenge), client, false),
        };
    };
    let mut events = vec![
        spend,
        Event::MfaChallengePassed {
            challenge: challenge.id,
        }
        .into(),
    ];
    crate::session::end_superseded(views, supersedes, env.now, &mut events);
    let reply = crate::session::complete_login(account, challenge.mode, env, &mut events);
    Decision::ok(events, reply)
}

/// Checks a proof for an authenticated MFA change: the events spending it, or the refusal.
// The refusal is a decision to return as is; boxing it would only obscure the flow.
#[allow(clippy::result_large_err)]
fn prove<R>(
    views: &Views,
    account: AccountId,
    answer: &MfaAnswer,
    keys: &MfaKeys,
    client: Option<IpAddr>,
    env: &Env<'_>,
) -> Result<Pending, Decision<R>> {
    prove_answer(views, account, answer, keys, client, env)
        .map_err(|(events, r)| Decision::refuse(events, r))
}

/// Checks a second-factor answer given outside a login challenge (an MFA change, or a
/// step-up with the password re-entered): the event spending it, or the events to record
/// (a wrong code counts towards the account's MFA throttle) and the rejection.
pub(crate) fn prove_answer(
    views: &Views,
    account: AccountId,
    answer: &MfaAnswer,
    keys: &MfaKeys,
    client: Option<IpAddr>,
    env: &Env<'_>,
) -> Result<Pending, (Vec<Pending>, Rejection)> {
    let mfa = match usable(views, &account, env) {
        Ok(Some(mfa)) if mfa.enabled() => mfa,
        Ok(_) => return Err((vec![], Rejection::MfaNotEnrolled)),
        Err(r) => return Err((vec![], r)),
    };
    let checked = check_answer(&account, mfa, answer, keys, env.now);
    match spent(account, &checked) {
        Some(spend) => Ok(spend),
        None => Err(match checked {
            Checked::KeysUnavailable => (vec![], Rejection::MfaKeysUnavailable),
            Checked::Replayed => failure(account, None, client, true),
            _ => failure(account, None, client, false),
        }),
    }
}

/// A second factor given with a re-entered password, for a sensitive action that carries
/// no code of its own (ending a session, signing out everywhere): with MFA on, the
/// password alone is not a full authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondFactor {
    /// The code or backup code.
    pub answer: MfaAnswer,
    /// The sealing keys, to open the TOTP secret and digest backup codes.
    pub keys: MfaKeys,
}

fn replace_backup_codes(
    views: &Views,
    account: AccountId,
    answer: &MfaAnswer,
    keys: &MfaKeys,
    client: Option<IpAddr>,
    env: &mut Env<'_>,
) -> Decision<BackupCodes> {
    let spend = match prove(views, account, answer, keys, client, env) {
        Ok(spend) => spend,
        Err(refusal) => return refusal,
    };
    let (shown, backup_codes) = new_backup_codes(&account, keys, env);
    let events = vec![
        spend,
        Event::BackupCodesReplaced {
            account,
            backup_codes,
        }
        .into(),
    ];
    Decision::ok(events, shown)
}

/// What survives turning MFA off: the session and family the request came through.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Keep {
    pub session: Option<SessionId>,
    pub family: Option<FamilyId>,
}

fn disable(
    views: &Views,
    account: AccountId,
    answer: &MfaAnswer,
    keys: &MfaKeys,
    client: Option<IpAddr>,
    keep: Keep,
    env: &mut Env<'_>,
) -> Decision<()> {
    let spend = match prove(views, account, answer, keys, client, env) {
        Ok(spend) => spend,
        Err(refusal) => return refusal,
    };
    let mut events = vec![
        spend,
        Event::TotpDisabled {
            account,
            by: Actor::Holder,
        }
        .into(),
    ];
    end_others(views, account, keep, env.now, &mut events);
    Decision::ok(events, ())
}

fn reset(views: &Views, account: AccountId, by: Actor, env: &Env<'_>) -> Decision<()> {
    if views.account(&account).is_none() {
        return Decision::refuse(vec![], Rejection::AccountNotFound);
    }
    if views.mfa(&account).is_none() {
        return Decision::refuse(vec![], Rejection::MfaNotEnrolled);
    }
    let mut events = vec![Event::TotpDisabled { account, by }.into()];
    end_others(views, account, Keep::default(), env.now, &mut events);
    Decision::ok(events, ())
}

/// Ends the account's live sessions and families except the ones to keep (and the
/// families bound to a kept session).
fn end_others(
    views: &Views,
    account: AccountId,
    keep: Keep,
    now: Timestamp,
    events: &mut Vec<Pending>,
) {
    for f in views.families_of(&account).filter(|f| f.is_live(now)) {
        let kept = Some(f.id) == keep.family || (f.session.is_some() && f.session == keep.session);
        if !kept {
            events.push(
                Event::RefreshFamilyRevoked {
                    family: f.id,
                    reason: FamilyRevokeReason::MfaDisabled,
                }
                .into(),
            );
        }
    }
    let kept_session = keep.session.or_else(|| {
        keep.family
            .and_then(|f| views.family(&f))
            .and_then(|f| f.session)
    });
    for s in views.sessions_of(&account).filter(|s| s.is_live(now)) {
        if Some(s.id) != kept_session {
            events.push(
                Event::SessionEnded {
                    session: s.id,
                    reason: SessionEndReason::MfaDisabled,
                }
                .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests;

/// Starts TOTP enrolment for the authenticated holder of `account`; the reply shows the
/// secret once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartTotpEnrolment {
    /// The holder.
    pub account: AccountId,
    /// The sealing keys.
    pub keys: MfaKeys,
    /// A recent authentication ([`crate::session::check_step_up`]).
    pub step_up: crate::session::StepUp,
}

impl Decide for StartTotpEnrolment {
    type Reply = TotpEnrolment;

    fn kind(&self) -> &'static str {
        "start_totp_enrolment"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<TotpEnrolment> {
        let spent =
            match crate::session::check_step_up(views, self.account, &self.step_up, false, env) {
                Ok(spent) => spent,
                Err((events, r)) => return Decision::refuse(events, r),
            };
        start_enrolment(views, self.account, &self.keys, env).after(spent)
    }
}

/// Confirms the pending enrolment with a code from the app: MFA is on, and the reply
/// carries the first backup codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmTotp {
    /// The holder.
    pub account: AccountId,
    /// The code from the app.
    pub code: TotpCode,
    /// The sealing keys.
    pub keys: MfaKeys,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
}

impl Decide for ConfirmTotp {
    type Reply = BackupCodes;

    fn kind(&self) -> &'static str {
        "confirm_totp"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<BackupCodes> {
        confirm(
            views,
            self.account,
            &self.code,
            &self.keys,
            self.client,
            env,
        )
    }
}

/// Answers an MFA challenge. `presented` comes from [`presented_challenge_digest`]; a
/// string that is no `mfa_token` never becomes a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerMfaChallenge {
    /// The presented `mfa_token`'s digest.
    pub presented: SecretDigest,
    /// A TOTP code or a backup code.
    pub answer: MfaAnswer,
    /// The sealing keys.
    pub keys: MfaKeys,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
    /// The live session whose cookie the second step arrived with: it ends when the login
    /// completes.
    pub supersedes: Option<SessionId>,
}

impl Decide for AnswerMfaChallenge {
    type Reply = LoginCompleted;

    fn kind(&self) -> &'static str {
        "answer_mfa_challenge"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<LoginCompleted> {
        answer_challenge(
            views,
            self.presented,
            &self.answer,
            &self.keys,
            self.client,
            self.supersedes,
            env,
        )
    }
}

/// Replaces the backup codes, proven with a TOTP code or a backup code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplaceBackupCodes {
    /// The holder.
    pub account: AccountId,
    /// The proof.
    pub answer: MfaAnswer,
    /// The sealing keys.
    pub keys: MfaKeys,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
    /// A recent authentication ([`crate::session::check_step_up`]).
    pub step_up: crate::session::StepUp,
}

impl Decide for ReplaceBackupCodes {
    type Reply = BackupCodes;

    fn kind(&self) -> &'static str {
        "replace_backup_codes"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<BackupCodes> {
        // The command's own code is the second factor, so the step-up spends nothing.
        if let Err((events, r)) =
            crate::session::check_step_up(views, self.account, &self.step_up, true, env)
        {
            return Decision::refuse(events, r);
        }
        replace_backup_codes(
            views,
            self.account,
            &self.answer,
            &self.keys,
            self.client,
            env,
        )
    }
}

/// Turns MFA off, proven with a TOTP code or a backup code, and ends every other session
/// and refresh family of the account (the ones the request came through survive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisableTotp {
    /// The holder.
    pub account: AccountId,
    /// The proof.
    pub answer: MfaAnswer,
    /// The sealing keys.
    pub keys: MfaKeys,
    /// Where the request came from (throttling).
    pub client: Option<IpAddr>,
    /// The session the request came through, which survives.
    pub current_session: Option<SessionId>,
    /// The refresh family the request came through, which survives.
    pub current_family: Option<FamilyId>,
    /// A recent authentication ([`crate::session::check_step_up`]).
    pub step_up: crate::session::StepUp,
}

impl Decide for DisableTotp {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "disable_totp"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        // The command's own code is the second factor, so the step-up spends nothing.
        if let Err((events, r)) =
            crate::session::check_step_up(views, self.account, &self.step_up, true, env)
        {
            return Decision::refuse(events, r);
        }
        let keep = Keep {
            session: self.current_session,
            family: self.current_family,
        };
        disable(
            views,
            self.account,
            &self.answer,
            &self.keys,
            self.client,
            keep,
            env,
        )
    }
}

/// An operator turns MFA off for a user who lost their device; every session and family
/// of the account ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetMfa {
    /// The account.
    pub account: AccountId,
    /// The operator, by name.
    pub by: Actor,
}

impl Decide for ResetMfa {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "reset_mfa"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        reset(views, self.account, self.by, env)
    }
}
