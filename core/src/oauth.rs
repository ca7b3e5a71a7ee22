//! The OAuth 2 provider: registered clients, the authorization-code grant with PKCE, the
//! device authorization grant, client credentials, and the user's grants (consents).
//!
//! Follows OAuth 2.1 and the OAuth 2.0 Security Best Current Practice (RFC 9700):
//!
//! ```text
//!   client (RFC 6749 §2)  ──ClientRegistered──▶ Registered ──ClientSecretRotated──▶ (old secret
//!                                                  │               valid until the overlap ends)
//!                                                  └─ClientRemoved──▶ gone: grants, families and
//!                                                                     client tokens revoked
//!
//!   authorization code (RFC 6749 §4.1, RFC 7636)
//!     GET /oauth/authorize ──validate_authorization (pure)──▶ page (login, consent)
//!        ──IssueAuthorizationCode──▶ Issued (60 s, bound to client, redirect URI, S256 challenge)
//!        ──ExchangeAuthorizationCode (verifier)──▶ Redeemed (a refresh family started)
//!        ──presented again──▶ Replayed: the family it started is revoked (RFC 9700 §4.5.3)
//!
//!   device authorization (RFC 8628)
//!     StartDeviceAuthorization ──▶ Pending ──PollDeviceCode──▶ authorization_pending
//!                                     │     (faster than the interval: slow_down, +5 s)
//!                                     ├─DecideDeviceAuthorization(approve)──▶ Approved
//!                                     │        ──PollDeviceCode──▶ Redeemed (a family)
//!                                     ├─DecideDeviceAuthorization(deny)──▶ Denied (access_denied)
//!                                     └─ now ≥ expires_at ──▶ expired_token
//! ```
//!
//! Secrets (client secrets, codes, device codes) are handed out once; the log keeps a
//! keyed digest of client secrets (HMAC under the server's key) and the SHA-256 digest of
//! codes, which carry 256 bits of entropy.

pub mod authorize;
pub mod client;
pub mod client_token;
pub mod device;
pub mod grant;
pub mod scope;

use serde::{Deserialize, Serialize};

pub use authorize::{
    AuthorizationCodeIssued, AuthorizationRequest, AuthorizeError, AuthorizeProblem, CodeView,
    ExchangeAuthorizationCode, IssueAuthorizationCode, ValidAuthorization, validate_authorization,
};
pub use client::{
    AuthenticatedClient, ClientCredentials, ClientKind, ClientRegistration, ClientSecretDigest,
    ClientView, GrantType, RegisterClient, RemoveClient, RotateClientSecret, authenticate_client,
};
pub use client_token::{ClientClaims, RevokeClientToken, issue_client_token};
pub use device::{
    DecideDeviceAuthorization, DeviceAuthorizationStarted, DeviceDecision, DeviceLookup,
    DeviceStatus, DeviceView, EnterUserCode, PollDeviceCode, StartDeviceAuthorization,
    UserCodeStrikeKey, normalise_user_code,
};
pub use grant::{GrantView, RevokeGrant};

/// How long an authorization code may be exchanged (RFC 6749 §4.1.2 recommends at most
/// ten minutes; one minute is ample for a redirect).
pub const CODE_TTL_MS: u64 = 60_000;
/// How long a redeemed or expired code's record is kept, so that a replay still revokes
/// the tokens of its first use.
pub const CODE_KEPT_MS: u64 = 60 * 60 * 1000;
/// How long a device code lives (RFC 8628 §3.2 `expires_in`): 10 minutes.
pub const DEVICE_CODE_TTL_MS: u64 = 10 * 60 * 1000;
/// The first polling interval handed to a device, in seconds (RFC 8628 §3.2 default).
pub const DEVICE_INTERVAL_SECS: u32 = 5;
/// How much the interval grows on each `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP_SECS: u32 = 5;
/// The longest interval a device is ever told to wait.
pub const DEVICE_INTERVAL_SECS_MAX: u32 = 60;
/// Wrong user-code entries a browser session or an address may make within
/// [`USER_CODE_WINDOW_MS`] before it has to wait.
pub const USER_CODE_FAILURES_MAX: usize = 5;
/// The window over which wrong user-code entries are counted.
pub const USER_CODE_WINDOW_MS: u64 = 15 * 60 * 1000;

const _: () = assert!(DEVICE_CODE_TTL_MS >= 10 * 60 * 1000 && DEVICE_CODE_TTL_MS <= 15 * 60 * 1000);
const _: () = assert!(CODE_KEPT_MS > CODE_TTL_MS);

/// The prefix of authorization codes: `tac_` + 43 base64url characters.
pub const CODE_PREFIX: &str = "tac_";
/// The prefix of device codes: `tdc_` + 43 base64url characters.
pub const DEVICE_CODE_PREFIX: &str = "tdc_";
/// The prefix of client secrets: `tcs_` + 43 base64url characters.
pub const CLIENT_SECRET_PREFIX: &str = "tcs_";

/// Why a grant was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantRevokeReason {
    /// The user revoked it (DELETE /v1/grants/{client_id}).
    RevokedByUser,
}

/// What an OAuth command produced, for drivers that run a mix of commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthReply {
    /// A client was registered; its secret (confidential clients) is shown once.
    ClientRegistered(client::ClientRegistered),
    /// A new secret, shown once.
    ClientSecretRotated(client::ClientRegistered),
    /// The client is gone.
    ClientRemoved,
    /// A code to hand back through the redirect.
    CodeIssued(AuthorizationCodeIssued),
    /// Tokens from a code or a device code.
    Tokens(crate::refresh::TokensIssued),
    /// A device flow started.
    DeviceStarted(DeviceAuthorizationStarted),
    /// What a polling device is told when there are no tokens yet.
    DevicePending,
    /// A user code was found.
    DeviceFound(DeviceLookup),
    /// The user approved or denied.
    DeviceDecided,
    /// A grant was revoked.
    GrantRevoked,
    /// A client token was revoked.
    ClientTokenRevoked,
}

/// Percent-encodes `value` for a query component: unreserved characters (RFC 3986 §2.3)
/// stay, everything else becomes `%XX`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push_str(&data_encoding::HEXUPPER.encode(&[b]));
        }
    }
    out
}

/// `uri` with `params` added to its query (RFC 6749 §4.1.2: keep the existing query).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
        sep = '&';
    }
    out
}

#[cfg(test)]
mod tests;
