//! Expected refusals: what a caller did that the rules do not allow.
//!
//! Each has a stable numeric code (never reused, never renumbered) and an HTTP mapping in the
//! http crate. A rejection is not an error of the system: it can come with events (a failed
//! login is recorded) and it is safe to show to the caller.

use crate::account::UsernameProblem;
use crate::password::PasswordProblem;

/// A refusal: the command broke a rule, and the caller is told which (see [`Rejection::code`]
/// for the stable numbers). Each variant's message is safe to show to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Another account already has this username, compared case-insensitively.
    #[error("that username is taken")]
    UsernameTaken,
    /// The username has the wrong length or characters; the problem says which.
    #[error("{0}")]
    InvalidUsername(UsernameProblem),
    /// The e-mail address is not even plausibly an address (one `@`, a dot in the domain,
    /// no spaces, at most 254 bytes).
    #[error("the e-mail address is not valid")]
    InvalidEmail,
    /// The new password breaks the password policy; every problem found is listed.
    #[error("the password does not meet the policy")]
    WeakPassword(Vec<PasswordProblem>),
    /// Unknown username, wrong password and disabled account all look like this, on purpose.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The request carried no credential the server accepts: none, one it never issued, one
    /// whose session or family is no longer live, or one whose account is disabled.
    #[error("not authenticated, or the session has ended")]
    Unauthenticated,
    /// The session to end is not one of the caller's live sessions (someone else's is
    /// answered the same way).
    #[error("no such session")]
    SessionNotFound,
    /// No account has this id (operator commands, and commands naming an account).
    #[error("no such account")]
    AccountNotFound,
    /// A refresh token that is unknown, expired, or of a revoked or expired family. OAuth
    /// `invalid_grant` (RFC 6749 §5.2).
    #[error("the refresh token is invalid, expired or revoked")]
    RefreshTokenInvalid,
    /// A refresh token presented after it was rotated: its whole family is now revoked.
    /// OAuth `invalid_grant`.
    #[error("the refresh token was already used; every token of its family is revoked")]
    RefreshTokenReused,
    /// A signing key whose kid is not the RFC 7638 thumbprint of its public key, or that is
    /// already in the key set.
    #[error("the signing key is invalid or already known")]
    SigningKeyInvalid,
    /// A TOTP code that is not six digits, or a backup code of the wrong shape. Nothing is
    /// spent: such a string cannot be right. HTTP 422.
    #[error("the code is not a six-digit TOTP code or a backup code")]
    MfaCodeMalformed,
    /// A wrong TOTP code or an unknown or spent backup code. In answer to a challenge,
    /// `attempts_left` says how many more the challenge takes. HTTP 401.
    #[error("the code is wrong")]
    MfaCodeInvalid {
        /// Wrong answers the challenge still takes; `None` outside a challenge.
        attempts_left: Option<u32>,
    },
    /// A TOTP code for a step already accepted (RFC 6238 §5.2): wait for the next code.
    /// Counts as a wrong attempt. HTTP 401.
    #[error("the code was already used; wait for the next one")]
    MfaCodeReplayed {
        /// Wrong answers the challenge still takes; `None` outside a challenge.
        attempts_left: Option<u32>,
    },
    /// An `mfa_token` that is unknown, expired, already answered, or whose account no longer
    /// has MFA on or is disabled. HTTP 401; log in again.
    #[error("the MFA challenge is unknown or has expired; log in again")]
    MfaChallengeInvalid,
    /// The challenge took its last wrong attempt and accepts nothing more, the right code
    /// included. HTTP 401; log in again.
    #[error("too many wrong codes for this login; log in again")]
    MfaChallengeExhausted,
    /// Confirming, changing or disabling MFA that is not on (or not being enrolled).
    /// HTTP 409.
    #[error("MFA is not enrolled")]
    MfaNotEnrolled,
    /// Enrolling when MFA is already on: disable it first. HTTP 409.
    #[error("MFA is already on")]
    MfaAlreadyEnabled,
    /// Enrolling while an enrolment is pending: confirm it, or start again once it expires
    /// in `retry_after_secs`. HTTP 409.
    #[error("a TOTP enrolment is already pending; confirm it or wait for it to expire")]
    MfaEnrolmentPending {
        /// Seconds until the pending enrolment expires, rounded up, at least 1.
        retry_after_secs: u64,
    },
    /// The TOTP secret was sealed under a key this server does not hold. An operator
    /// problem, not the caller's: nothing is spent. HTTP 503.
    #[error("MFA is unavailable: the sealing key is missing")]
    MfaKeysUnavailable,
    /// Too many failures: try again after `retry_after_secs`. HTTP 429 + Retry-After.
    #[error("too many failed attempts; retry later")]
    Throttled {
        /// Seconds to wait before trying again, rounded up, at least 1.
        retry_after_secs: u64,
    },
    /// A sensitive action needs an authentication more recent than the policy's
    /// `session.reauth_window_secs`: log in again, or repeat the request with the password
    /// (and a second-factor code when MFA is on). HTTP 403.
    #[error("this action needs a recent authentication; log in again or give the password")]
    ReauthenticationRequired,
    /// No OAuth client has this id (operator commands). HTTP 404.
    #[error("no such client")]
    ClientNotFound,
    /// A client with this id is already registered. HTTP 409.
    #[error("a client with this id is already registered")]
    ClientExists,
    /// The client registration is not valid; the message says why. HTTP 422.
    #[error("{0}")]
    ClientInvalid(String),
    /// Unknown client, wrong or expired secret, missing secret of a confidential client or
    /// a secret sent by a public one. OAuth `invalid_client`, HTTP 401.
    #[error("client authentication failed")]
    ClientAuthenticationFailed,
    /// The client may not use this grant type (or is public where a secret is needed).
    /// OAuth `unauthorized_client`.
    #[error("this client may not use this grant type")]
    UnauthorizedClient,
    /// The scope is malformed or beyond the client's registered scopes. OAuth
    /// `invalid_scope`.
    #[error("the scope is malformed or beyond what the client is registered for")]
    InvalidScope,
    /// An authorization request no longer valid when the code was to be issued (the client,
    /// its redirect URI or scopes changed). Start the authorization again.
    #[error("the authorization request is no longer valid; start again")]
    AuthorizationRequestInvalid,
    /// The user has not consented to these scopes for this client: show the consent page.
    #[error("consent is required")]
    ConsentRequired,
    /// An authorization code that is unknown, expired, issued to another client or for
    /// another redirect URI, or whose PKCE verifier does not match. OAuth `invalid_grant`.
    #[error(
        "the authorization code is invalid, expired, or was issued for another client, redirect URI or verifier"
    )]
    AuthorizationCodeInvalid,
    /// An authorization code presented a second time: every token of its first use is
    /// revoked. OAuth `invalid_grant`.
    #[error("the authorization code was already used; the tokens issued for it are revoked")]
    AuthorizationCodeReused,
    /// RFC 8628: the user has not decided yet; poll again after the interval.
    #[error("the user has not yet approved the device")]
    AuthorizationPending,
    /// RFC 8628: polled sooner than the interval, which is now `interval_secs`.
    #[error("polling too fast; slow down")]
    SlowDown {
        /// The interval from now on.
        interval_secs: u32,
    },
    /// RFC 8628: the user denied the device.
    #[error("the user denied the request")]
    AccessDenied,
    /// RFC 8628: the device code expired; start again.
    #[error("the device code has expired")]
    ExpiredToken,
    /// A device code that is unknown, already used, or another client's. OAuth
    /// `invalid_grant`.
    #[error("the device code is invalid or was already used")]
    DeviceCodeInvalid,
    /// The user code typed on the device page is wrong, expired or already used.
    #[error("that code is not valid; check the code shown on the device")]
    UserCodeInvalid {
        /// Wrong entries left before a wait.
        attempts_left: u32,
    },
    /// The user has no grant for this client. HTTP 404.
    #[error("no grant for this client")]
    GrantNotFound,
    /// An API-key request breaks a rule; `field` (a JSON pointer) and `why` say which.
    /// HTTP 422.
    #[error("the API key request is not valid: {field}: {why}")]
    ApiKeyRequestInvalid {
        /// The JSON pointer of the field at fault.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// No such API key among the caller's (someone else's is answered the same way).
    /// HTTP 404.
    #[error("no such API key")]
    ApiKeyNotFound,
    /// The key is revoked, expired, or already rotated: it cannot be rotated. HTTP 409.
    #[error("the API key is revoked, expired or already rotated")]
    ApiKeyNotActive,
    /// The account holds as many live keys as allowed: revoke one first. HTTP 409.
    #[error("too many live API keys; revoke one first")]
    ApiKeyLimitReached,
    /// A prefix matched more than one key: give more of the key. HTTP 409.
    #[error("the prefix matches more than one API key; give more of the key")]
    ApiKeyPrefixAmbiguous,
    /// A password reset token that was never issued, was already spent, was replaced by a
    /// newer one or has expired: all look alike (added with the legacy migration). HTTP 400.
    #[error("the reset token is invalid or expired; ask for a new one")]
    ResetTokenInvalid,
    /// A sign-in callback with no sign-in started in this browser (no cookie, or it
    /// expired). HTTP 400; start again.
    #[error("this sign-in was not started in this browser, or took too long; start again")]
    ExternalSignInNotStarted,
    /// A callback whose state is not the one this browser's sign-in sent, or that answers
    /// another provider: a forged or cross-site callback. HTTP 400.
    #[error(
        "the provider's answer does not belong to the sign-in this browser started; start again"
    )]
    ExternalStateMismatch,
    /// A callback whose state was already spent by a completed sign-in. HTTP 400.
    #[error("this sign-in was already completed; start again")]
    ExternalStateSpent,
    /// No provider of that name is configured. HTTP 404.
    #[error("no sign-in provider of that name is configured")]
    ProviderUnknown,
    /// A first sign-in whose e-mail address belongs to an existing account: never linked
    /// silently. HTTP 409.
    #[error(
        "an account with this e-mail address already exists: sign in to it, then link your {provider} identity from its settings"
    )]
    ExternalEmailInUse {
        /// The provider signed in with.
        provider: String,
    },
    /// A first sign-in with a provider whose policy is `link_only`. HTTP 403.
    #[error(
        "no account is linked to this {provider} identity: sign in to your account, then link it from its settings"
    )]
    ExternalSignInNotLinked {
        /// The provider signed in with.
        provider: String,
    },
    /// The identity is already linked to another account. HTTP 409.
    #[error("this {provider} identity is already linked to another account")]
    IdentityLinkedElsewhere {
        /// The provider.
        provider: String,
    },
    /// The account already has an identity from this provider. HTTP 409.
    #[error("this account already has a {provider} identity: unlink it first")]
    ProviderAlreadyLinked {
        /// The provider.
        provider: String,
    },
    /// The account has no identity from this provider. HTTP 404.
    #[error("no identity from that provider is linked to this account")]
    IdentityNotLinked,
    /// Unlinking would leave the account no way to sign in (no password, no other
    /// identity). HTTP 409.
    #[error("this is the account's last way to sign in: link another provider first")]
    LastWayToSignIn,
    /// The account an external sign-in leads to is disabled. HTTP 403.
    #[error("this account is disabled")]
    ExternalAccountDisabled,
    /// The provider's ID token does not answer this sign-in. HTTP 400.
    #[error("the provider's answer could not be accepted: {0}")]
    IdTokenRejected(crate::identity::IdTokenProblem),
    /// A WebAuthn answer to an MFA challenge that did not verify (a bad signature, another
    /// origin or relying party, a tampered response, another login's challenge, an unknown
    /// credential). Counts as a wrong code. HTTP 401.
    #[error("the security key or passkey answer did not verify")]
    WebauthnAssertionInvalid {
        /// Wrong answers the challenge still takes.
        attempts_left: Option<u32>,
    },
    /// The WebAuthn ceremony is unknown, was already finished, expired, or belongs to
    /// another account or login: start again. HTTP 400.
    #[error("the WebAuthn ceremony is unknown or has expired; start again")]
    WebauthnCeremonyInvalid,
    /// No credential with this id is registered (to this account). HTTP 404, or 401 at
    /// login.
    #[error("no such credential")]
    WebauthnCredentialUnknown,
    /// The credential's signature counter went backwards: it may be a cloned authenticator,
    /// and the login is refused. HTTP 401.
    #[error("the credential's signature counter went backwards; the login is refused")]
    WebauthnCounterRegressed,
    /// Removing this credential would leave the account no way to log in. HTTP 409.
    #[error("this is the account's last way to log in; add another first")]
    WebauthnLastLoginMethod,
    /// The credential is already registered. HTTP 409.
    #[error("this credential is already registered")]
    WebauthnCredentialExists,
    /// The account has as many credentials as allowed: remove one first. HTTP 409.
    #[error("too many credentials; remove one first")]
    WebauthnCredentialLimit,
    /// The credential name is empty, too long, or has control characters. HTTP 422.
    #[error("the credential name must be 1 to 64 characters, without control characters")]
    WebauthnNameInvalid,
    /// A passkey must verify the user (PIN or biometric) to log in without a password, and
    /// be discoverable. HTTP 401 at login, 422 at registration.
    #[error("the authenticator did not verify the user")]
    WebauthnUserVerificationRequired,
    /// The registration response did not verify (another origin, a tampered response, an
    /// unsupported algorithm). HTTP 422.
    #[error("the registration response did not verify")]
    WebauthnRegistrationInvalid,
    /// Too many WebAuthn ceremonies are pending: try again shortly. HTTP 503.
    #[error("too many WebAuthn ceremonies are pending; try again shortly")]
    WebauthnBusy,
}

impl Rejection {
    /// The stable code: 1xxx accounts, 2xxx credentials, 3xxx sessions, 4xxx tokens, 5xxx
    /// MFA and throttling, 6xxx OAuth, 7xxx API keys, 8xxx external sign-in.
    /// MFA and throttling, 6xxx OAuth, 7xxx API keys, 9xxx WebAuthn.
    pub fn code(&self) -> u16 {
        match self {
            Self::UsernameTaken => 1001,
            Self::InvalidUsername(_) => 1002,
            Self::InvalidEmail => 1003,
            Self::WeakPassword(_) => 1004,
            Self::AccountNotFound => 1005,
            Self::InvalidCredentials => 2001,
            Self::Unauthenticated => 3001,
            Self::SessionNotFound => 3002,
            Self::RefreshTokenInvalid => 4001,
            Self::RefreshTokenReused => 4002,
            Self::SigningKeyInvalid => 4003,
            Self::MfaCodeMalformed => 5001,
            Self::MfaCodeInvalid { .. } => 5002,
            Self::MfaCodeReplayed { .. } => 5003,
            Self::MfaChallengeInvalid => 5004,
            Self::MfaChallengeExhausted => 5005,
            Self::MfaNotEnrolled => 5006,
            Self::MfaAlreadyEnabled => 5007,
            Self::MfaEnrolmentPending { .. } => 5008,
            Self::MfaKeysUnavailable => 5009,
            Self::Throttled { .. } => 5010,
            Self::ReauthenticationRequired => 3003,
            Self::ClientNotFound => 6001,
            Self::ClientExists => 6002,
            Self::ClientInvalid(_) => 6003,
            Self::ClientAuthenticationFailed => 6004,
            Self::UnauthorizedClient => 6005,
            Self::InvalidScope => 6006,
            Self::AuthorizationRequestInvalid => 6007,
            Self::ConsentRequired => 6008,
            Self::AuthorizationCodeInvalid => 6009,
            Self::AuthorizationCodeReused => 6010,
            Self::AuthorizationPending => 6011,
            Self::SlowDown { .. } => 6012,
            Self::AccessDenied => 6013,
            Self::ExpiredToken => 6014,
            Self::DeviceCodeInvalid => 6015,
            Self::UserCodeInvalid { .. } => 6016,
            Self::GrantNotFound => 6017,
            Self::ApiKeyRequestInvalid { .. } => 7001,
            Self::ApiKeyNotFound => 7002,
            Self::ApiKeyNotActive => 7003,
            Self::ApiKeyLimitReached => 7004,
            Self::ApiKeyPrefixAmbiguous => 7005,
            Self::ResetTokenInvalid => 2002,
            Self::ExternalSignInNotStarted => 8001,
            Self::ExternalStateMismatch => 8002,
            Self::ExternalStateSpent => 8003,
            Self::ProviderUnknown => 8004,
            Self::ExternalEmailInUse { .. } => 8005,
            Self::ExternalSignInNotLinked { .. } => 8006,
            Self::IdentityLinkedElsewhere { .. } => 8007,
            Self::ProviderAlreadyLinked { .. } => 8008,
            Self::IdentityNotLinked => 8009,
            Self::LastWayToSignIn => 8010,
            Self::ExternalAccountDisabled => 8011,
            Self::IdTokenRejected(_) => 8012,
            Self::WebauthnAssertionInvalid { .. } => 9001,
            Self::WebauthnCeremonyInvalid => 9002,
            Self::WebauthnCredentialUnknown => 9003,
            Self::WebauthnCounterRegressed => 9004,
            Self::WebauthnLastLoginMethod => 9005,
            Self::WebauthnCredentialExists => 9006,
            Self::WebauthnCredentialLimit => 9007,
            Self::WebauthnNameInvalid => 9008,
            Self::WebauthnUserVerificationRequired => 9009,
            Self::WebauthnRegistrationInvalid => 9010,
            Self::WebauthnBusy => 9011,
        }
    }

    /// A short stable slug, used in problem `type` URIs.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::UsernameTaken => "username-taken",
            Self::InvalidUsername(_) => "invalid-username",
            Self::InvalidEmail => "invalid-email",
            Self::WeakPassword(_) => "weak-password",
            Self::AccountNotFound => "account-not-found",
            Self::InvalidCredentials => "invalid-credentials",
            Self::Unauthenticated => "unauthenticated",
            Self::SessionNotFound => "session-not-found",
            Self::RefreshTokenInvalid => "refresh-token-invalid",
            Self::RefreshTokenReused => "refresh-token-reused",
            Self::SigningKeyInvalid => "signing-key-invalid",
            Self::MfaCodeMalformed => "mfa-code-malformed",
            Self::MfaCodeInvalid { .. } => "mfa-code-invalid",
            Self::MfaCodeReplayed { .. } => "mfa-code-replayed",
            Self::MfaChallengeInvalid => "mfa-challenge-invalid",
            Self::MfaChallengeExhausted => "mfa-challenge-exhausted",
            Self::MfaNotEnrolled => "mfa-not-enrolled",
            Self::MfaAlreadyEnabled => "mfa-already-enabled",
            Self::MfaEnrolmentPending { .. } => "mfa-enrolment-pending",
            Self::MfaKeysUnavailable => "mfa-unavailable",
            Self::Throttled { .. } => "throttled",
            Self::ReauthenticationRequired => "reauthentication-required",
            Self::ClientNotFound => "client-not-found",
            Self::ClientExists => "client-exists",
            Self::ClientInvalid(_) => "client-invalid",
            Self::ClientAuthenticationFailed => "client-authentication-failed",
            Self::UnauthorizedClient => "unauthorized-client",
            Self::InvalidScope => "invalid-scope",
            Self::AuthorizationRequestInvalid => "authorization-request-invalid",
            Self::ConsentRequired => "consent-required",
            Self::AuthorizationCodeInvalid => "authorization-code-invalid",
            Self::AuthorizationCodeReused => "authorization-code-reused",
            Self::AuthorizationPending => "authorization-pending",
            Self::SlowDown { .. } => "slow-down",
            Self::AccessDenied => "access-denied",
            Self::ExpiredToken => "expired-token",
            Self::DeviceCodeInvalid => "device-code-invalid",
            Self::UserCodeInvalid { .. } => "user-code-invalid",
            Self::GrantNotFound => "grant-not-found",
            Self::ApiKeyRequestInvalid { .. } => "api-key-request-invalid",
            Self::ApiKeyNotFound => "api-key-not-found",
            Self::ApiKeyNotActive => "api-key-not-active",
            Self::ApiKeyLimitReached => "api-key-limit-reached",
            Self::ApiKeyPrefixAmbiguous => "api-key-prefix-ambiguous",
            Self::ResetTokenInvalid => "reset-token-invalid",
            Self::ExternalSignInNotStarted => "external-sign-in-not-started",
            Self::ExternalStateMismatch => "external-state-mismatch",
            Self::ExternalStateSpent => "external-state-spent",
            Self::ProviderUnknown => "provider-unknown",
            Self::ExternalEmailInUse { .. } => "external-email-in-use",
            Self::ExternalSignInNotLinked { .. } => "external-sign-in-not-linked",
            Self::IdentityLinkedElsewhere { .. } => "identity-linked-elsewhere",
            Self::ProviderAlreadyLinked { .. } => "provider-already-linked",
            Self::IdentityNotLinked => "identity-not-linked",
            Self::LastWayToSignIn => "last-way-to-sign-in",
            Self::ExternalAccountDisabled => "external-account-disabled",
            Self::IdTokenRejected(_) => "id-token-rejected",
            Self::WebauthnAssertionInvalid { .. } => "webauthn-assertion-invalid",
            Self::WebauthnCeremonyInvalid => "webauthn-ceremony-invalid",
            Self::WebauthnCredentialUnknown => "webauthn-credential-unknown",
            Self::WebauthnCounterRegressed => "webauthn-counter-regressed",
            Self::WebauthnLastLoginMethod => "webauthn-last-login-method",
            Self::WebauthnCredentialExists => "webauthn-credential-exists",
            Self::WebauthnCredentialLimit => "webauthn-credential-limit",
            Self::WebauthnNameInvalid => "webauthn-name-invalid",
            Self::WebauthnUserVerificationRequired => "webauthn-user-verification-required",
            Self::WebauthnRegistrationInvalid => "webauthn-registration-invalid",
            Self::WebauthnBusy => "webauthn-busy",
        }
    }

    /// Seconds the caller should wait before retrying (HTTP `Retry-After`), if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Throttled { retry_after_secs } => Some(*retry_after_secs),
            // Pending ceremonies expire within minutes; a second is enough to try again.
            Self::WebauthnBusy => Some(1),
            _ => None,
        }
    }

    /// The RFC 6749 §5.2 error code for rejections a token endpoint can give.
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self {
            Self::RefreshTokenInvalid
            | Self::RefreshTokenReused
            | Self::InvalidCredentials
            | Self::AuthorizationCodeInvalid
            | Self::AuthorizationCodeReused
            | Self::DeviceCodeInvalid => Some("invalid_grant"),
            Self::ClientAuthenticationFailed => Some("invalid_client"),
            Self::UnauthorizedClient => Some("unauthorized_client"),
            Self::InvalidScope => Some("invalid_scope"),
            Self::AuthorizationRequestInvalid => Some("invalid_request"),
            Self::AuthorizationPending => Some("authorization_pending"),
            Self::SlowDown { .. } => Some("slow_down"),
            Self::AccessDenied => Some("access_denied"),
            Self::ExpiredToken => Some("expired_token"),
            _ => None,
        }
    }
}
