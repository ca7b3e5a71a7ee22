//! The device authorization grant (RFC 8628).
//!
//! ```text
//!   POST /oauth/device_authorization ─▶ StartDeviceAuthorization
//!        ─▶ DeviceAuthorizationStarted { device code digest, user code, client, scope,
//!                                        device address, interval 5 s, expires in 10 min }
//!   device polls POST /oauth/token ─▶ PollDeviceCode
//!        pending, polled at least `interval` after the last poll ─▶ authorization_pending
//!        pending, polled sooner ─▶ slow_down; the interval grows by 5 s     (each poll is a
//!                                                                            DeviceCodePolled)
//!        approved ─▶ DeviceCodeRedeemed + RefreshFamilyStarted ─▶ tokens
//!        denied ─▶ access_denied; past its deadline ─▶ expired_token
//!   user on GET /device ─▶ EnterUserCode ─▶ what the approval page shows
//!        wrong code ─▶ DeviceUserCodeFailed (per browser session and per address: the
//!                      sixth wrong entry within 15 minutes waits)
//!   approve / deny ─▶ DecideDeviceAuthorization ─▶ DeviceAuthorizationApproved (+ consent)
//!                                                 / DeviceAuthorizationDenied
//! ```
//!
//! User codes are 8 letters from a 20-letter alphabet without vowels (no words) and without
//! look-alikes (RFC 8628 §6.1): about 34.6 bits, shown as `BCDF-GHJK`, accepted in any case
//! with any punctuation. With at most 5 wrong entries per session and per address every
//! 15 minutes, guessing one of the live codes is hopeless.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::client::GrantType;
use super::{
    DEVICE_CODE_PREFIX, DEVICE_CODE_TTL_MS, DEVICE_INTERVAL_SECS, DEVICE_INTERVAL_SECS_MAX,
    SLOW_DOWN_STEP_SECS, USER_CODE_FAILURES_MAX, USER_CODE_WINDOW_MS, scope,
};
use crate::decide::{Decide, Decision};
use crate::event::{Event, Pending};
use crate::refresh::TokensIssued;
use crate::secret::{BearerSecret, SecretDigest};
use crate::{AccountId, Env, FamilyId, Rejection, SessionId, Timestamp, Views};

/// The user-code alphabet: 20 consonants, no vowels, none that look alike.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
pub const USER_CODE_LEN: usize = 8;

/// Where a device authorization stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// The user approved; the next poll gets tokens.
    Approved {
        /// Who approved.
        account: AccountId,
    },
    /// The user denied.
    Denied,
    /// Tokens were issued.
    Redeemed {
        /// The family started.
        family: FamilyId,
    },
}

/// A device authorization, as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    /// The device code's digest.
    pub digest: SecretDigest,
    /// The user code, normalised (8 letters, no dash).
    pub user_code: String,
    /// The client that asked.
    pub client_id: String,
    /// The scope asked for, canonical.
    pub scope: String,
    /// The requesting device's address, shown on the approval page.
    pub address: Option<IpAddr>,
    /// When the codes were issued.
    pub issued_at: Timestamp,
    /// When they expire.
    pub expires_at: Timestamp,
    /// The current polling interval.
    pub interval_secs: u32,
    /// When the device last polled.
    pub last_poll_at: Option<Timestamp>,
    /// Where it stands.
    pub status: DeviceStatus,
}

impl DeviceView {
    /// When the views forget it.
    pub fn drop_at(&self) -> Timestamp {
        self.expires_at.plus_ms(super::CODE_KEPT_MS)
    }

    /// Whether it can still be approved or denied at `now`.
    pub fn awaits_user(&self, now: Timestamp) -> bool {
        self.status == DeviceStatus::Pending && now < self.expires_at
    }
}

/// Formats a normalised user code for display: `BCDF-GHJK`.
pub fn display_user_code(normalised: &str) -> String {
    let (a, b) = normalised.split_at(normalised.len().min(USER_CODE_LEN / 2));
    format!("{a}-{b}")
}

/// A user code as typed, normalised: letters upper-cased, everything but letters and digits
/// dropped. `None` unless exactly 8 letters of the alphabet remain.
pub fn normalise_user_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

fn generate_user_code(env: &mut Env<'_>) -> String {
    let mut code = String::with_capacity(USER_CODE_LEN);
    // Rejection sampling: 240 is the largest multiple of 20 below 256, so every letter is
    // equally likely.
    while code.len() < USER_CODE_LEN {
        let [b] = env.random_bytes::<1>();
        if b < 240
            && let Some(&c) = USER_CODE_ALPHABET.get(usize::from(b % 20))
        {
            code.push(char::from(c));
        }
    }
    code
}

/// What a device is told to show its user, and the device code to poll with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorizationStarted {
    /// The device code (256 bits), shown once.
    pub device_code: BearerSecret,
    /// The user code, for display (`BCDF-GHJK`).
    pub user_code: String,
    /// Seconds until both expire.
    pub expires_in_secs: u64,
    /// Seconds between polls.
    pub interval_secs: u32,
}

/// POST /oauth/device_authorization: start a device flow for an authenticated client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartDeviceAuthorization {
    /// The client (authenticated, or a public client naming itself).
    pub client_id: String,
    /// The `scope` parameter.
    pub scope: Option<String>,
    /// The device's address, for the approval page.
    pub address: Option<IpAddr>,
}

impl Decide for StartDeviceAuthorization {
    type Reply = DeviceAuthorizationStarted;

    fn kind(&self) -> &'static str {
        "start_device_authorization"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<DeviceAuthorizationStarted> {
        let Some(client) = views.client(&self.client_id) else {
            return Decision::refuse(vec![], Rejection::ClientAuthenticationFailed);
        };
        if !client.allows(GrantType::DeviceCode) {
            return Decision::refuse(vec![], Rejection::UnauthorizedClient);
        }
        let Some(scopes) = scope::within(self.scope.as_deref(), &client.scopes) else {
            return Decision::refuse(vec![], Rejection::InvalidScope);
        };
        let mut user_code = generate_user_code(env);
        while views.device_by_user_code(&user_code).is_some() {
            user_code = generate_user_code(env);
        }
        let (device_code, digest) = BearerSecret::generate(DEVICE_CODE_PREFIX, env);
        let event = Event::DeviceAuthorizationStarted {
            device: digest,
            user_code: user_code.clone(),
            client_id: client.id.clone(),
            scope: scope::join(&scopes),
            address: self.address,
            interval_secs: DEVICE_INTERVAL_SECS,
            expires_at: env.now.plus_ms(DEVICE_CODE_TTL_MS),
        };
        Decision::ok(
            vec![event.into()],
            DeviceAuthorizationStarted {
                device_code,
                user_code: display_user_code(&user_code),
                expires_in_secs: DEVICE_CODE_TTL_MS / 1000,
                interval_secs: DEVICE_INTERVAL_SECS,
            },
        )
    }
}

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code`: a device polls.
///
/// Refusals: [`Rejection::AuthorizationPending`], [`Rejection::SlowDown`] (both recorded as
/// a `DeviceCodePolled`), [`Rejection::AccessDenied`], [`Rejection::ExpiredToken`],
/// [`Rejection::DeviceCodeInvalid`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollDeviceCode {
    /// The presented device code's digest.
    pub presented: SecretDigest,
    /// The authenticated client.
    pub client_id: String,
}

impl PollDeviceCode {
    /// The command, or [`Rejection::DeviceCodeInvalid`] when `device_code` has not even the
    /// shape of one of ours.
    pub fn new(device_code: &str, client_id: String) -> Result<Self, Rejection> {
        crate::secret::plausible(device_code, DEVICE_CODE_PREFIX)
            .then(|| Self {
                presented: SecretDigest::of(device_code),
                client_id,
            })
            .ok_or(Rejection::DeviceCodeInvalid)
    }
}

impl Decide for PollDeviceCode {
    type Reply = TokensIssued;

    fn kind(&self) -> &'static str {
        "poll_device_code"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<TokensIssued> {
        let Some(device) = views
            .device(&self.presented)
            .filter(|d| d.client_id == self.client_id)
        else {
            return Decision::refuse(vec![], Rejection::DeviceCodeInvalid);
        };
        let client_ok = views
            .client(&device.client_id)
            .is_some_and(|c| c.allows(GrantType::DeviceCode));
        if !client_ok {
            return Decision::refuse(vec![], Rejection::DeviceCodeInvalid);
        }
        if env.now >= device.expires_at {
            return Decision::refuse(vec![], Rejection::ExpiredToken);
        }
        match device.status {
            DeviceStatus::Denied => Decision::refuse(vec![], Rejection::AccessDenied),
            DeviceStatus::Redeemed { .. } => Decision::refuse(vec![], Rejection::DeviceCodeInvalid),
            DeviceStatus::Pending => {
                let too_fast = device.last_poll_at.is_some_and(|last| {
                    env.now.since(last) < u64::from(device.interval_secs).saturating_mul(1000)
                });
                let interval_secs = if too_fast {
                    device
                        .interval_secs
                        .saturating_add(SLOW_DOWN_STEP_SECS)
                        .min(DEVICE_INTERVAL_SECS_MAX)
                } else {
                    device.interval_secs
                };
                let event = Event::DeviceCodePolled {
                    device: device.digest,
                    slow_down: too_fast,
                    interval_secs,
                };
                let rejection = if too_fast {
                    Rejection::SlowDown { interval_secs }
                } else {
                    Rejection::AuthorizationPending
                };
                Decision::refuse(vec![event.into()], rejection)
            }
            DeviceStatus::Approved { account } => {
                if views.account(&account).is_none_or(|a| a.disabled) {
                    return Decision::refuse(vec![], Rejection::AccessDenied);
                }
                let (started, issued) = crate::refresh::start_family(
                    account,
                    None,
                    Some(device.client_id.clone()),
                    Some(device.scope.clone()),
                    env,
                );
                let events = vec![
                    Event::DeviceCodeRedeemed {
                        device: device.digest,
                        family: issued.family,
                    }
                    .into(),
                    started,
                ];
                Decision::ok(events, issued)
            }
        }
    }
}

/// Whose wrong user-code entries are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum UserCodeStrikeKey {
    /// A browser session.
    Session(SessionId),
    /// An address ([`crate::throttle::address_key`]: IPv6 by /64).
    Address(IpAddr),
}

/// The keys a request's wrong entries count under.
fn strike_keys(session: Option<SessionId>, address: Option<IpAddr>) -> Vec<UserCodeStrikeKey> {
    let mut keys = Vec::new();
    if let Some(s) = session {
        keys.push(UserCodeStrikeKey::Session(s));
    }
    if let Some(a) = address {
        keys.push(UserCodeStrikeKey::Address(crate::throttle::address_key(a)));
    }
    keys
}

/// Refuses with [`Rejection::Throttled`] when the session or the address has made
/// [`USER_CODE_FAILURES_MAX`] wrong entries within the window.
fn check_strikes(
    views: &Views,
    keys: &[UserCodeStrikeKey],
    now: Timestamp,
) -> Result<(), Rejection> {
    let mut wait_ms = 0;
    for key in keys {
        let recent: Vec<Timestamp> = views
            .user_code_strikes(key)
            .iter()
            .copied()
            .filter(|t| now.since(*t) < USER_CODE_WINDOW_MS)
            .collect();
        if recent.len() >= USER_CODE_FAILURES_MAX
            && let Some(oldest) = recent.iter().min()
        {
            wait_ms = wait_ms.max(oldest.plus_ms(USER_CODE_WINDOW_MS).since(now));
        }
    }
    if wait_ms > 0 {
        return Err(Rejection::Throttled {
            retry_after_secs: wait_ms.div_ceil(1000).max(1),
        });
    }
    Ok(())
}

/// The live device authorization a typed user code names, or the refusal (with the
/// `DeviceUserCodeFailed` event for a wrong code).
fn find<'v>(
    views: &'v Views,
    typed: &str,
    session: Option<SessionId>,
    address: Option<IpAddr>,
    now: Timestamp,
) -> Result<&'v DeviceView, (Vec<Pending>, Rejection)> {
    let keys = strike_keys(session, address);
    check_strikes(views, &keys, now).map_err(|r| (vec![], r))?;
    let found = normalise_user_code(typed)
        .and_then(|c| views.device_by_user_code(&c))
        .filter(|d| d.awaits_user(now));
    match found {
        Some(d) => Ok(d),
        None => {
            let event = Event::DeviceUserCodeFailed {
                session,
                address: address.map(crate::throttle::address_key),
            };
            let left = keys
                .iter()
                .map(|k| {
                    let recent = views
                        .user_code_strikes(k)
                        .iter()
                        .filter(|t| now.since(**t) < USER_CODE_WINDOW_MS)
                        .count();
                    USER_CODE_FAILURES_MAX.saturating_sub(recent.saturating_add(1))
                })
                .min()
                .unwrap_or(USER_CODE_FAILURES_MAX);
            Err((
                vec![event.into()],
                Rejection::UserCodeInvalid {
                    attempts_left: u32::try_from(left).unwrap_or(0),
                },
            ))
        }
    }
}

/// What the approval page shows about a device authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceLookup {
    /// The user code, for display (`BCDF-GHJK`); the approve and deny forms carry it.
    pub user_code: String,
    /// The client.
    pub client_id: String,
    /// Its display name.
    pub client_name: String,
    /// The scopes asked for.
    pub scopes: BTreeSet<String>,
    /// The requesting device's address.
    pub device_address: Option<IpAddr>,
    /// When the code was issued ("how long ago": `now.since(issued_at)`).
    pub issued_at: Timestamp,
}

/// GET /device with a code typed in (or from `verification_uri_complete`): find the device
/// authorization, counting a wrong code against the browser session and the address.
///
/// The device page runs `engine.execute(EnterUserCode { user_code, session, address })`:
/// `Ok(lookup)` → show the approval page with approve and deny buttons (each a form
/// carrying `lookup.user_code`); `Err(UserCodeInvalid { attempts_left })` → say the code is
/// wrong; `Err(Throttled { retry_after_secs })` → say to wait (429).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnterUserCode {
    /// As typed.
    pub user_code: String,
    /// The logged-in user's session, if the page has one.
    pub session: Option<SessionId>,
    /// The browser's address.
    pub address: Option<IpAddr>,
}

impl Decide for EnterUserCode {
    type Reply = DeviceLookup;

    fn kind(&self) -> &'static str {
        "enter_user_code"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<DeviceLookup> {
        match find(views, &self.user_code, self.session, self.address, env.now) {
            Ok(d) => {
                let client_name = views
                    .client(&d.client_id)
                    .map_or_else(|| d.client_id.clone(), |c| c.name.clone());
                Decision::ok(
                    vec![],
                    DeviceLookup {
                        user_code: display_user_code(&d.user_code),
                        client_id: d.client_id.clone(),
                        client_name,
                        scopes: scope::parse(&d.scope).unwrap_or_default(),
                        device_address: d.address,
                        issued_at: d.issued_at,
                    },
                )
            }
            Err((events, r)) => Decision::refuse(events, r),
        }
    }
}

/// The user's answer on the approval page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceDecision {
    /// The device gets tokens at its next poll; consent is recorded as a grant.
    Approve,
    /// The device is told `access_denied`.
    Deny,
}

/// POST from the approval page: approve or deny the device authorization named by
/// `user_code`, for the logged-in `account` (with MFA done when the account has it). A
/// wrong or expired code counts as a wrong entry, as in [`EnterUserCode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecideDeviceAuthorization {
    /// As carried by the form.
    pub user_code: String,
    /// The user deciding.
    pub account: AccountId,
    /// Their browser session.
    pub session: Option<SessionId>,
    /// The browser's address.
    pub address: Option<IpAddr>,
    /// Approve or deny.
    pub decision: DeviceDecision,
}

impl Decide for DecideDeviceAuthorization {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "decide_device_authorization"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        if views.account(&self.account).is_none_or(|a| a.disabled) {
            return Decision::refuse(vec![], Rejection::Unauthenticated);
        }
        let device = match find(views, &self.user_code, self.session, self.address, env.now) {
            Ok(d) => d,
            Err((events, r)) => return Decision::refuse(events, r),
        };
        let mut events = Vec::new();
        match self.decision {
            DeviceDecision::Approve => {
                let scopes = scope::parse(&device.scope).unwrap_or_default();
                super::grant::consent(views, self.account, &device.client_id, &scopes, &mut events);
                events.push(
                    Event::DeviceAuthorizationApproved {
                        device: device.digest,
                        account: self.account,
                    }
                    .into(),
                );
            }
            DeviceDecision::Deny => events.push(
                Event::DeviceAuthorizationDenied {
                    device: device.digest,
                    account: self.account,
                }
                .into(),
            ),
        }
        Decision::ok(events, ())
    }
}
