//! Events: the facts the log keeps. A public, versioned format.
//!
//! Rules (docs/events.md repeats them): never reorder, remove or change the meaning or
//! encoding of a released variant or field; add new variants at the end; a change of shape is
//! a new variant or an upcaster in the storage codec. Every variant has a golden-bytes test in
//! `storage::codec`. Names are past tense. The time of an event is the envelope's
//! `recorded_at`, so variants carry only the deadlines a decision computed from policy.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::apikey::{ApiKeyId, ApiKeyKind, ApiKeyRevokeReason, Cidr, Environment};
use crate::mfa::{BackupCodeDigest, SealedSecret};
use crate::oauth::{ClientKind, ClientSecretDigest, GrantRevokeReason, GrantType};
use crate::password::PasswordHash;
use crate::secret::SecretDigest;
use crate::{AccountId, ChallengeId, FamilyId, LoginMode, SessionId, StreamId, Timestamp, TokenId};

/// Who asked for a change, when it was not the account holder through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// The account holder, authenticated.
    Holder,
    /// An operator at the command line.
    Operator {
        /// The name the operator gave (`--operator`), recorded as given.
        name: String,
    },
}

/// Why a session ended before its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEndReason {
    /// Its holder logged out with it, or with a refresh family bound to it.
    LoggedOut,
    /// Deleted by its holder from another session (DELETE /v1/sessions/{id}).
    Revoked,
    /// The account's password was changed; every other session of the account ends with it.
    PasswordChanged,
    /// The account was disabled; every session of the account ends with it.
    AccountDisabled,
    /// Replaced by a fresh id after a privilege change.
    Rotated,
    /// A refresh token of a family bound to this session was reused (added with tokens).
    TokenReused,
    /// The holder or an operator signed the account out everywhere (added with tokens).
    SignedOutEverywhere,
    /// MFA was turned off by its holder or reset by an operator (added with MFA).
    MfaDisabled,
    /// A login arrived carrying this session's cookie: the browser got a fresh session and
    /// this one ended (added with the re-authentication rules).
    Superseded,
}

/// Why a refresh family was revoked before its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FamilyRevokeReason {
    /// Its holder logged out.
    LoggedOut,
    /// A token of it was revoked (RFC 7009), or its session was ended.
    Revoked,
    /// The account's password was changed; every family of the account is revoked with it.
    PasswordChanged,
    /// The account was disabled; every family of the account is revoked with it.
    AccountDisabled,
    /// The holder or an operator signed the account out everywhere.
    SignedOutEverywhere,
    /// MFA was turned off by its holder or reset by an operator (added with MFA).
    MfaDisabled,
}

/// Why a login failed. Only failures against an existing account are recorded: the account
/// stream is where they matter, and recording unknown usernames would log mistyped passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginFailure {
    /// The password did not verify against the account's current hash (also when the hash
    /// changed after the password was checked).
    WrongPassword,
    /// The account is disabled: refused before the password or the throttle is considered.
    AccountDisabled,
    /// Refused unchecked: the account was throttled by earlier failures (added with MFA and
    /// throttling). Answered like a wrong password, and not counted as a failure again.
    Throttled,
}

/// Every fact Tessera records. Variant order is part of the encoding: append only.
///
/// Each variant's documentation says when it is recorded and what each field records; the
/// time of the event is its envelope's `recorded_at`, never a field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An account was created, through the API or by an operator (`tessera account add`).
    AccountRegistered {
        /// The new account's id.
        account: AccountId,
        /// The username as typed, trimmed; uniqueness is checked on its lower-case form
        /// ([`crate::account::username_key`]).
        username: String,
        /// The optional contact address, as given (loosely checked).
        email: Option<String>,
        /// The argon2id hash of the account's first password.
        password_hash: PasswordHash,
    },
    /// The holder changed the password. The account's sessions end and its refresh families
    /// are revoked in the same batch; the session the change came through is replaced by a
    /// fresh one.
    PasswordChanged {
        /// The account whose password changed.
        account: AccountId,
        /// The argon2id hash of the new password.
        password_hash: PasswordHash,
    },
    /// The same password, re-hashed because the policy's argon2 parameters changed: recorded
    /// when a login succeeded against a hash with stale parameters.
    PasswordRehashed {
        /// The account whose hash was upgraded.
        account: AccountId,
        /// The argon2id hash of the same password under the current parameters.
        password_hash: PasswordHash,
    },
    /// An account was disabled. Its sessions end and its refresh families are revoked in the
    /// same batch; its access tokens stop working.
    AccountDisabled {
        /// The disabled account.
        account: AccountId,
        /// Who disabled it.
        by: Actor,
    },
    /// A login or password change named an existing account and failed. `client` is the
    /// caller's address as the HTTP adapter saw it, for throttling.
    LoginFailed {
        /// The account the attempt named.
        account: AccountId,
        /// Why the attempt failed.
        reason: LoginFailure,
        /// The caller's IP address, if the adapter knew it.
        client: Option<IpAddr>,
    },
    /// A login named no account. The username is not recorded: people type passwords into
    /// username fields. Recording the attempt at all keeps its cost (one durable append) the
    /// same as a wrong password's, so the answer's timing does not reveal which accounts exist.
    UnknownAccountLoginFailed {
        /// The caller's IP address, if the adapter knew it; counted by the address throttle.
        client: Option<IpAddr>,
    },
    /// A session started: a session-mode login succeeded, or a session was rotated (its
    /// replacement starts here).
    SessionStarted {
        /// The new session's id.
        session: SessionId,
        /// The account the session authenticates.
        account: AccountId,
        /// The SHA-256 digest of the session secret handed to the holder; the secret itself
        /// is never recorded.
        secret_digest: SecretDigest,
        /// How long the session may go unused before it dies, in milliseconds (from the
        /// policy at the time it started).
        idle_timeout_ms: u64,
        /// The absolute deadline: the session dies then however often it is used.
        expires_at: Timestamp,
    },
    /// A live session was used; recorded at most once per the policy's touch interval. The
    /// envelope's time becomes the session's last-seen time, which restarts its idle timeout.
    SessionTouched {
        /// The session that was used.
        session: SessionId,
    },
    /// A session ended before its deadline (expiry is not an event).
    SessionEnded {
        /// The session that ended.
        session: SessionId,
        /// Why it ended.
        reason: SessionEndReason,
    },
    /// A signing key joined the key set and signs from now on (first start, `tessera keys
    /// rotate`, periodic rotation). The private key is kept outside the log.
    SigningKeyAdded {
        /// The key id: the RFC 7638 JWK thumbprint of `public_key`.
        kid: String,
        /// The Ed25519 public key, 32 bytes.
        public_key: [u8; 32],
    },
    /// A key stopped signing (a newer one was added). It stays published for verification
    /// until `unpublish_at`, when every token it signed has expired.
    SigningKeyRetired {
        /// The retired key's id (RFC 7638 thumbprint).
        kid: String,
        /// When the key leaves the published key set: retirement plus the longest
        /// access-token lifetime a policy allows plus leeway.
        unpublish_at: Timestamp,
    },
    /// A login in token mode started a refresh family with its first refresh token.
    RefreshFamilyStarted {
        /// The new family's id; access tokens of the family carry it as `fam`.
        family: FamilyId,
        /// The account the family's tokens are issued to.
        account: AccountId,
        /// The session the family belongs to, if any: ending one ends the other.
        session: Option<SessionId>,
        /// The OAuth client it was issued to, if any (RFC 6749 §6 binds refresh to client).
        client_id: Option<String>,
        /// The scope granted (RFC 6749 §3.3), if any, carried into every access token of
        /// the family.
        scope: Option<String>,
        /// The SHA-256 digest of the first refresh token (generation 0).
        token_digest: SecretDigest,
        /// When the first refresh token expires: the policy's refresh-token lifetime, never
        /// after the family's deadline.
        token_expires_at: Timestamp,
        /// The family's absolute deadline.
        expires_at: Timestamp,
    },
    /// A refresh token was spent and replaced. `grace` says the presented token had already
    /// been rotated, within the policy's grace window: the successor issued then is spent
    /// unused, and this one replaces it.
    RefreshTokenRotated {
        /// The family the tokens belong to.
        family: FamilyId,
        /// The SHA-256 digest of the refresh token presented, spent from now on.
        presented_digest: SecretDigest,
        /// The SHA-256 digest of the new refresh token, the family's current one.
        token_digest: SecretDigest,
        /// When the new refresh token expires, never after the family's deadline.
        token_expires_at: Timestamp,
        /// Whether this was a grace rotation of an already rotated token.
        grace: bool,
    },
    /// A spent refresh token was presented: the family is revoked (and the session it belongs
    /// to ends in the same batch). `since_rotation_ms` is how long after its rotation it came
    /// back, `successor_used` whether the token that replaced it had been presented too: a
    /// short delay with an unused successor looks like a lost response, a used successor like
    /// theft (RFC 9700 §4.14.2).
    RefreshTokenReused {
        /// The family revoked by the reuse.
        family: FamilyId,
        /// The SHA-256 digest of the spent refresh token that was presented.
        presented_digest: SecretDigest,
        /// The presented token's generation in its family: 0 for the one issued at login.
        generation: u32,
        /// Milliseconds from the presented token's rotation to this presentation.
        since_rotation_ms: u64,
        /// Whether the token that replaced the presented one had been presented as well.
        successor_used: bool,
    },
    /// A refresh family was revoked before its deadline (reuse revokes through
    /// [`Event::RefreshTokenReused`] instead).
    RefreshFamilyRevoked {
        /// The revoked family.
        family: FamilyId,
        /// Why it was revoked.
        reason: FamilyRevokeReason,
    },
    /// One access token was revoked (RFC 7009); the blocklist keeps its `jti` until
    /// `expires_at`.
    AccessTokenRevoked {
        /// The revoked token's `jti` claim (RFC 7519 §4.1.7).
        jti: TokenId,
        /// The account the token was issued to (its `sub`).
        account: AccountId,
        /// The token's own expiry (its `exp`): after it the token is refused anyway.
        expires_at: Timestamp,
    },
    /// Every token issued to the account before now stops working (logout everywhere): its
    /// sessions end and its refresh families are revoked in the same batch.
    AccountSignedOutEverywhere {
        /// The account signed out.
        account: AccountId,
        /// Who asked: the holder, or an operator.
        by: Actor,
    },
    /// TOTP enrolment began: the secret, sealed (see `mfa::seal`), pending until a code
    /// confirms it or `expires_at` passes.
    TotpEnrolmentStarted {
        /// The account enrolling.
        account: AccountId,
        /// The new TOTP secret, sealed (XChaCha20-Poly1305) under the MFA key named by its
        /// key id; never recorded in the clear.
        sealed_secret: SealedSecret,
        /// The enrolment must be confirmed before this.
        expires_at: Timestamp,
    },
    /// A code confirmed the pending enrolment: MFA is on. `step` is the accepted TOTP step;
    /// `backup_codes` the keyed hashes of the first set of backup codes.
    TotpEnabled {
        /// The account whose MFA is now on.
        account: AccountId,
        /// The TOTP time step of the confirming code: it and every earlier step are spent.
        step: u64,
        /// HMAC-SHA256 digests of the first set of backup codes.
        backup_codes: Vec<BackupCodeDigest>,
    },
    /// A TOTP code was accepted for `step` (answering a challenge, renewing backup codes or
    /// disabling MFA): that step and every earlier one are spent (RFC 6238 §5.2).
    TotpStepAccepted {
        /// The account whose code was accepted.
        account: AccountId,
        /// The accepted TOTP time step: Unix time in seconds divided by the step length
        /// ([`crate::mfa::step_at`]).
        step: u64,
    },
    /// A backup code was spent.
    BackupCodeUsed {
        /// The account whose code was spent.
        account: AccountId,
        /// The HMAC-SHA256 digest of the spent code.
        code: BackupCodeDigest,
    },
    /// A new set of backup codes replaced the old one.
    BackupCodesReplaced {
        /// The account whose codes were replaced.
        account: AccountId,
        /// HMAC-SHA256 digests of the new set; every code of the old set is void.
        backup_codes: Vec<BackupCodeDigest>,
    },
    /// MFA is off: TOTP, a pending enrolment and backup codes are gone. `by` says whether
    /// the holder (with a valid code) or an operator (a reset) did it. The account's live
    /// sessions and families end in the same batch, except, when the holder did it, the
    /// session and family the request came through.
    TotpDisabled {
        /// The account whose MFA was turned off.
        account: AccountId,
        /// Who turned it off: the holder, or an operator (`tessera account reset-mfa`).
        by: Actor,
    },
    /// A right password for an account with MFA on opened a challenge, answered with the
    /// bearer secret whose digest is `token_digest`, in the login's `mode`. Nothing else is
    /// issued until the challenge is passed.
    MfaChallengeStarted {
        /// The new challenge's id.
        challenge: ChallengeId,
        /// The account logging in.
        account: AccountId,
        /// The SHA-256 digest of the `mfa_token` handed to the caller.
        token_digest: SecretDigest,
        /// What the login asked for: a session or tokens, issued once the challenge passes.
        mode: LoginMode,
        /// How many wrong answers the challenge takes before it is exhausted.
        attempts_max: u32,
        /// The challenge must be answered before this.
        expires_at: Timestamp,
    },
    /// A wrong, replayed or spent code: in answer to `challenge`, or (when `None`) to an
    /// authenticated MFA change. Counts toward the account's throttle.
    MfaCodeFailed {
        /// The account the code was for.
        account: AccountId,
        /// The challenge answered, or `None` for an authenticated MFA change.
        challenge: Option<ChallengeId>,
        /// The caller's IP address, if the adapter knew it.
        client: Option<IpAddr>,
    },
    /// A challenge was answered right; the login completes in the same decision.
    MfaChallengePassed {
        /// The challenge passed; it cannot be answered again.
        challenge: ChallengeId,
    },
    /// A disabled account was enabled again by an operator: it can log in again. Nothing
    /// ended when it was disabled comes back; its holder logs in afresh.
    AccountEnabled {
        /// The enabled account.
        account: AccountId,
        /// Who enabled it (an operator, by name).
        by: Actor,
    },
    /// A registration from a known address reached the writer: it created an account (the
    /// `AccountRegistered` in the same batch) or was refused because the name was taken.
    /// Counted by the registration throttle under the address, so that one address can
    /// neither create accounts nor harvest taken usernames at full speed. Operator-created
    /// accounts carry no address and record none.
    RegistrationAttempted {
        /// The caller's IP address.
        client: IpAddr,
        /// What the attempt came to.
        outcome: RegistrationOutcome,
    },
    /// An operator registered an OAuth client (`tessera client add`).
    ClientRegistered {
        /// The `client_id`.
        client_id: String,
        /// The name shown to users on consent and device pages.
        name: String,
        /// Confidential (with a secret) or public.
        kind: ClientKind,
        /// The keyed digest of the secret shown once to the operator (confidential only).
        secret: Option<ClientSecretDigest>,
        /// The exact redirect URIs.
        redirect_uris: Vec<String>,
        /// The grant types it may use.
        grant_types: Vec<GrantType>,
        /// The scopes it may be granted.
        scopes: Vec<String>,
        /// Who registered it.
        by: Actor,
    },
    /// A confidential client got a new secret; the previous one stays accepted until
    /// `previous_valid_until` (the overlap the operator chose), the ones before it stop now.
    ClientSecretRotated {
        /// The client.
        client_id: String,
        /// The keyed digest of the new secret.
        secret: ClientSecretDigest,
        /// When the previous secret stops being accepted.
        previous_valid_until: Timestamp,
        /// Who rotated it.
        by: Actor,
    },
    /// A client was removed: its grants are gone, its client-credentials tokens refused;
    /// its refresh families are revoked in the same batch.
    ClientRemoved {
        /// The client.
        client_id: String,
        /// Who removed it.
        by: Actor,
    },
    /// A user consented to let a client use `scope` (added to the grant's scopes).
    ConsentGranted {
        /// The user.
        account: AccountId,
        /// The client.
        client_id: String,
        /// The scopes consented to, canonical (sorted, space-separated).
        scope: String,
    },
    /// A user withdrew a grant; its refresh families are revoked in the same batch.
    GrantRevoked {
        /// The user.
        account: AccountId,
        /// The client.
        client_id: String,
        /// Why.
        reason: GrantRevokeReason,
    },
    /// An authorization code was issued (RFC 6749 §4.1.2), bound to its client, redirect
    /// URI and PKCE challenge.
    AuthorizationCodeIssued {
        /// The SHA-256 digest of the code.
        code: SecretDigest,
        /// The client.
        client_id: String,
        /// The user who authorized it.
        account: AccountId,
        /// The redirect URI it was issued for.
        redirect_uri: String,
        /// The scope granted, canonical.
        scope: String,
        /// The S256 challenge (RFC 7636 §4.2).
        code_challenge: String,
        /// When it stops being exchangeable.
        expires_at: Timestamp,
    },
    /// A code was exchanged; the family recorded in the same batch holds its tokens.
    AuthorizationCodeRedeemed {
        /// The code's digest.
        code: SecretDigest,
        /// The family its tokens belong to.
        family: FamilyId,
    },
    /// A redeemed code was presented again: refused, and the family of its first use is
    /// revoked in the same batch (RFC 6749 §4.1.2, RFC 9700 §4.5).
    AuthorizationCodeReplayed {
        /// The code's digest.
        code: SecretDigest,
    },
    /// A device authorization started (RFC 8628 §3.2).
    DeviceAuthorizationStarted {
        /// The SHA-256 digest of the device code.
        device: SecretDigest,
        /// The user code, normalised (8 letters).
        user_code: String,
        /// The client that asked.
        client_id: String,
        /// The scope asked for, canonical.
        scope: String,
        /// The device's address, shown on the approval page.
        address: Option<IpAddr>,
        /// The first polling interval.
        interval_secs: u32,
        /// When the codes expire.
        expires_at: Timestamp,
    },
    /// A device polled while its authorization was pending; `slow_down` when it polled
    /// sooner than its interval, which is then `interval_secs` (5 s more).
    DeviceCodePolled {
        /// The device code's digest.
        device: SecretDigest,
        /// Whether the poll came too soon.
        slow_down: bool,
        /// The interval from now on.
        interval_secs: u32,
    },
    /// A wrong, expired or used user code was entered on the device page; counted per
    /// browser session and per address.
    DeviceUserCodeFailed {
        /// The browser session, if any.
        session: Option<SessionId>,
        /// The browser's address (IPv6 by /64), if known.
        address: Option<IpAddr>,
    },
    /// The user approved the device; its next poll gets tokens.
    DeviceAuthorizationApproved {
        /// The device code's digest.
        device: SecretDigest,
        /// The user.
        account: AccountId,
    },
    /// The user denied the device.
    DeviceAuthorizationDenied {
        /// The device code's digest.
        device: SecretDigest,
        /// The user.
        account: AccountId,
    },
    /// The device got its tokens; the family recorded in the same batch holds them.
    DeviceCodeRedeemed {
        /// The device code's digest.
        device: SecretDigest,
        /// The family started.
        family: FamilyId,
    },
    /// A client-credentials access token was revoked (RFC 7009) by its client.
    ClientAccessTokenRevoked {
        /// The client.
        client_id: String,
        /// The token's `jti`.
        jti: TokenId,
        /// Its `exp`: the entry is kept until then.
        expires_at: Timestamp,
    },
    /// An API key was created for an application (POST /v1/api-keys), or as the successor
    /// of a rotated key (`rotated_from`). The key itself is shown once and never recorded:
    /// only its HMAC-SHA-256 digest under the server key and its display prefix.
    ApiKeyCreated {
        /// The new key's id.
        key: ApiKeyId,
        /// The account that created it.
        account: AccountId,
        /// The application's name, as given (trimmed).
        name: String,
        /// Secret or publishable.
        kind: ApiKeyKind,
        /// Live or test.
        environment: Environment,
        /// Its scopes, a subset of the creator's.
        scopes: Vec<String>,
        /// The address ranges it may be used from; empty means anywhere.
        allowed_cidrs: Vec<Cidr>,
        /// Its rate limit in requests per minute, if any.
        rate_limit_per_minute: Option<u32>,
        /// HMAC-SHA-256 of the key under the server's API-key key (`<data>/keys/apikey.key`).
        digest: SecretDigest,
        /// The display prefix: vendor, kind and the first body characters.
        prefix: String,
        /// Its absolute deadline (required, bounded by the policy).
        expires_at: Timestamp,
        /// The key it replaces, when issued by a rotation.
        rotated_from: Option<ApiKeyId>,
    },
    /// A key was rotated: `successor` (created in the same batch) replaces it, and it keeps
    /// working until `retires_at`, the end of the overlap.
    ApiKeyRotated {
        /// The rotated key.
        key: ApiKeyId,
        /// Its successor.
        successor: ApiKeyId,
        /// When it stops working.
        retires_at: Timestamp,
    },
    /// A key was revoked: refused from now on.
    ApiKeyRevoked {
        /// The revoked key.
        key: ApiKeyId,
        /// Who revoked it and why (a leak alert records where the key was found).
        reason: ApiKeyRevokeReason,
    },
    /// An active key came within the policy's warning window of its expiry.
    ApiKeyExpiryWarned {
        /// The key about to expire.
        key: ApiKeyId,
        /// When it expires.
        expires_at: Timestamp,
    },
    /// A key's use over one usage interval, folded in memory: at most one per key per
    /// interval (and one at shutdown), however many requests it served.
    ApiKeyUsed {
        /// The key.
        key: ApiKeyId,
        /// Requests that presented it.
        requests: u64,
        /// Requests it authenticated.
        accepted: u64,
        /// Requests refused although it was known (state, environment, address, scope).
        refused: u64,
        /// Requests refused by its rate limit.
        rate_limited: u64,
        /// The interval's first request.
        first_at: Timestamp,
        /// The interval's last request.
        last_at: Timestamp,
        /// The most recent distinct client addresses, newest last (at most 5).
        addresses: Vec<IpAddr>,
    },
    /// An operator imported an account from a legacy password table (`tessera import
    /// users`). Its credential is a legacy hash ([`crate::legacy`]): an MD5 wrapped in
    /// argon2id at import, or a bcrypt, argon2 or PBKDF2 hash kept as given; the next
    /// successful login replaces it ([`Event::PasswordRehashed`]).
    AccountImported {
        /// The new account's id.
        account: AccountId,
        /// The username as the table had it, trimmed.
        username: String,
        /// The optional contact address, as given (loosely checked).
        email: Option<String>,
        /// The stored legacy credential; never a bare MD5.
        password_hash: PasswordHash,
        /// When the holder last logged in to the legacy system, if the table said; the
        /// inactivity of a legacy account counts from it (else from the import).
        last_active_at: Option<Timestamp>,
    },
    /// A legacy credential unused for too long was retired (`tessera migration sunset`): it
    /// no longer logs in (answered like a wrong password) and a one-time reset token was
    /// issued to the operator for delivery. A later sunset may issue a new token, which
    /// replaces this one.
    LegacyCredentialRetired {
        /// The account whose legacy credential was retired.
        account: AccountId,
        /// The SHA-256 digest of the reset token; the token itself is never recorded.
        reset_digest: SecretDigest,
        /// The token is refused from this time on.
        reset_expires_at: Timestamp,
    },
    /// The holder set a new password with a reset token (`POST /v1/password/reset`): the
    /// token is spent, and the account's sessions end and families are revoked in the same
    /// batch.
    PasswordReset {
        /// The account whose password was reset.
        account: AccountId,
        /// The argon2id hash of the new password.
        password_hash: PasswordHash,
        /// The SHA-256 digest of the reset token spent.
        reset_digest: SecretDigest,
    },
    /// A first sign-in with an external identity created an account for it, with no
    /// password, and linked the identity to it ([`crate::identity`]).
    ExternalAccountCreated {
        /// The new account's id.
        account: AccountId,
        /// Its username: the provider's, made valid and unique.
        username: String,
        /// The e-mail address the provider gave, if plausible.
        email: Option<String>,
        /// The provider's configured name.
        provider: String,
        /// The provider's stable id for the user.
        subject: String,
    },
    /// A signed-in holder linked an external identity to the account, through the provider.
    ExternalIdentityLinked {
        /// The account.
        account: AccountId,
        /// The provider's configured name.
        provider: String,
        /// The provider's stable id for the user.
        subject: String,
        /// The SHA-256 digest of the sign-in's state, spent by this callback.
        state: SecretDigest,
        /// The sign-in's deadline: the spent state is remembered until then.
        state_expires_at: Timestamp,
    },
    /// The holder unlinked an external identity from the account.
    ExternalIdentityUnlinked {
        /// The account.
        account: AccountId,
        /// The provider's configured name.
        provider: String,
        /// The provider's id for the user that was linked.
        subject: String,
    },
    /// An external identity signed in to its account (as a successful password check is:
    /// the session, or the account's MFA challenge, follows in the same batch).
    ExternalSignInRecorded {
        /// The account signed in to.
        account: AccountId,
        /// The provider's configured name.
        provider: String,
        /// The SHA-256 digest of the sign-in's state, spent by this callback.
        state: SecretDigest,
        /// The sign-in's deadline: the spent state is remembered until then.
        state_expires_at: Timestamp,
        /// The caller's IP address, if the adapter knew it.
        client: Option<IpAddr>,
    },
    /// A credential (passkey or security key) was registered to the account, after a fresh
    /// re-authentication. Everything here is public: the credential id, the COSE public key
    /// inside `public_key`, the counter and the transports.
    WebauthnCredentialRegistered {
        /// The account it logs in to.
        account: AccountId,
        /// The credential's id.
        credential: crate::webauthn::CredentialId,
        /// The holder's name for it.
        name: String,
        /// Passkey (discoverable, user-verifying: logs in alone) or security key (second
        /// factor).
        kind: crate::webauthn::CredentialKind,
        /// The credential as webauthn-rs stores it, serialized as JSON: the COSE public key,
        /// its algorithm, the flags and the counter at registration.
        public_key: String,
        /// The signature counter at registration.
        counter: u32,
        /// The transports the authenticator reported.
        transports: Vec<String>,
        /// Whether the credential is discoverable (a resident key).
        discoverable: bool,
        /// Whether the authenticator verified the user at registration.
        user_verified: bool,
        /// Whether the credential may be synced to other devices.
        backup_eligible: bool,
    },
    /// A credential logged in (a passwordless login or an MFA answer), with the signature
    /// counter it presented.
    WebauthnCredentialUsed {
        /// The account.
        account: AccountId,
        /// The credential.
        credential: crate::webauthn::CredentialId,
        /// The presented signature counter; the view keeps the highest seen.
        counter: u32,
        /// Whether the authenticator verified the user.
        user_verified: bool,
        /// Whether the credential is currently backed up (synced).
        backup_state: bool,
    },
    /// A credential presented a signature counter that did not advance past the stored one:
    /// a possible cloned authenticator. `accepted` says whether the policy let the login
    /// through (and flagged the credential) or refused it.
    WebauthnCounterRegressed {
        /// The account.
        account: AccountId,
        /// The credential.
        credential: crate::webauthn::CredentialId,
        /// The counter stored before.
        stored: u32,
        /// The counter presented.
        presented: u32,
        /// Whether the login went through (policy `accept_and_flag`).
        accepted: bool,
        /// The caller's IP address, if the adapter knew it.
        client: Option<IpAddr>,
    },
    /// A credential was removed; it logs in no more.
    WebauthnCredentialRemoved {
        /// The account.
        account: AccountId,
        /// The credential.
        credential: crate::webauthn::CredentialId,
        /// Who removed it.
        by: Actor,
    },
}

/// What a counted registration attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistrationOutcome {
    /// The account was created.
    Registered,
    /// The username was already taken.
    UsernameTaken,
}

impl Event {
    /// The variant's name, as `tessera replay` prints it and docs/events.md lists it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccountRegistered { .. } => "AccountRegistered",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::PasswordRehashed { .. } => "PasswordRehashed",
            Self::AccountDisabled { .. } => "AccountDisabled",
            Self::LoginFailed { .. } => "LoginFailed",
            Self::UnknownAccountLoginFailed { .. } => "UnknownAccountLoginFailed",
            Self::SessionStarted { .. } => "SessionStarted",
            Self::SessionTouched { .. } => "SessionTouched",
            Self::SessionEnded { .. } => "SessionEnded",
            Self::SigningKeyAdded { .. } => "SigningKeyAdded",
            Self::SigningKeyRetired { .. } => "SigningKeyRetired",
            Self::RefreshFamilyStarted { .. } => "RefreshFamilyStarted",
            Self::RefreshTokenRotated { .. } => "RefreshTokenRotated",
            Self::RefreshTokenReused { .. } => "RefreshTokenReused",
            Self::RefreshFamilyRevoked { .. } => "RefreshFamilyRevoked",
            Self::AccessTokenRevoked { .. } => "AccessTokenRevoked",
            Self::AccountSignedOutEverywhere { .. } => "AccountSignedOutEverywhere",
            Self::TotpEnrolmentStarted { .. } => "TotpEnrolmentStarted",
            Self::TotpEnabled { .. } => "TotpEnabled",
            Self::TotpStepAccepted { .. } => "TotpStepAccepted",
            Self::BackupCodeUsed { .. } => "BackupCodeUsed",
            Self::BackupCodesReplaced { .. } => "BackupCodesReplaced",
            Self::TotpDisabled { .. } => "TotpDisabled",
            Self::MfaChallengeStarted { .. } => "MfaChallengeStarted",
            Self::MfaCodeFailed { .. } => "MfaCodeFailed",
            Self::MfaChallengePassed { .. } => "MfaChallengePassed",
            Self::AccountEnabled { .. } => "AccountEnabled",
            Self::RegistrationAttempted { .. } => "RegistrationAttempted",
            Self::ClientRegistered { .. } => "ClientRegistered",
            Self::ClientSecretRotated { .. } => "ClientSecretRotated",
            Self::ClientRemoved { .. } => "ClientRemoved",
            Self::ConsentGranted { .. } => "ConsentGranted",
            Self::GrantRevoked { .. } => "GrantRevoked",
            Self::AuthorizationCodeIssued { .. } => "AuthorizationCodeIssued",
            Self::AuthorizationCodeRedeemed { .. } => "AuthorizationCodeRedeemed",
            Self::AuthorizationCodeReplayed { .. } => "AuthorizationCodeReplayed",
            Self::DeviceAuthorizationStarted { .. } => "DeviceAuthorizationStarted",
            Self::DeviceCodePolled { .. } => "DeviceCodePolled",
            Self::DeviceUserCodeFailed { .. } => "DeviceUserCodeFailed",
            Self::DeviceAuthorizationApproved { .. } => "DeviceAuthorizationApproved",
            Self::DeviceAuthorizationDenied { .. } => "DeviceAuthorizationDenied",
            Self::DeviceCodeRedeemed { .. } => "DeviceCodeRedeemed",
            Self::ClientAccessTokenRevoked { .. } => "ClientAccessTokenRevoked",
            Self::ApiKeyCreated { .. } => "ApiKeyCreated",
            Self::ApiKeyRotated { .. } => "ApiKeyRotated",
            Self::ApiKeyRevoked { .. } => "ApiKeyRevoked",
            Self::ApiKeyExpiryWarned { .. } => "ApiKeyExpiryWarned",
            Self::ApiKeyUsed { .. } => "ApiKeyUsed",
            Self::AccountImported { .. } => "AccountImported",
            Self::LegacyCredentialRetired { .. } => "LegacyCredentialRetired",
            Self::PasswordReset { .. } => "PasswordReset",
            Self::ExternalAccountCreated { .. } => "ExternalAccountCreated",
            Self::ExternalIdentityLinked { .. } => "ExternalIdentityLinked",
            Self::ExternalIdentityUnlinked { .. } => "ExternalIdentityUnlinked",
            Self::ExternalSignInRecorded { .. } => "ExternalSignInRecorded",
            Self::WebauthnCredentialRegistered { .. } => "WebauthnCredentialRegistered",
            Self::WebauthnCredentialUsed { .. } => "WebauthnCredentialUsed",
            Self::WebauthnCounterRegressed { .. } => "WebauthnCounterRegressed",
            Self::WebauthnCredentialRemoved { .. } => "WebauthnCredentialRemoved",
        }
    }

    /// Every variant name, for filters and documentation checks.
    pub const KINDS: &'static [&'static str] = &[
        "AccountRegistered",
        "PasswordChanged",
        "PasswordRehashed",
        "AccountDisabled",
        "LoginFailed",
        "UnknownAccountLoginFailed",
        "SessionStarted",
        "SessionTouched",
        "SessionEnded",
        "SigningKeyAdded",
        "SigningKeyRetired",
        "RefreshFamilyStarted",
        "RefreshTokenRotated",
        "RefreshTokenReused",
        "RefreshFamilyRevoked",
        "AccessTokenRevoked",
        "AccountSignedOutEverywhere",
        "TotpEnrolmentStarted",
        "TotpEnabled",
        "TotpStepAccepted",
        "BackupCodeUsed",
        "BackupCodesReplaced",
        "TotpDisabled",
        "MfaChallengeStarted",
        "MfaCodeFailed",
        "MfaChallengePassed",
        "AccountEnabled",
        "RegistrationAttempted",
        "ClientRegistered",
        "ClientSecretRotated",
        "ClientRemoved",
        "ConsentGranted",
        "GrantRevoked",
        "AuthorizationCodeIssued",
        "AuthorizationCodeRedeemed",
        "AuthorizationCodeReplayed",
        "DeviceAuthorizationStarted",
        "DeviceCodePolled",
        "DeviceUserCodeFailed",
        "DeviceAuthorizationApproved",
        "DeviceAuthorizationDenied",
        "DeviceCodeRedeemed",
        "ClientAccessTokenRevoked",
        "ApiKeyCreated",
        "ApiKeyRotated",
        "ApiKeyRevoked",
        "ApiKeyExpiryWarned",
        "ApiKeyUsed",
        "AccountImported",
        "LegacyCredentialRetired",
        "PasswordReset",
        "ExternalAccountCreated",
        "ExternalIdentityLinked",
        "ExternalIdentityUnlinked",
        "ExternalSignInRecorded",
        "WebauthnCredentialRegistered",
        "WebauthnCredentialUsed",
        "WebauthnCounterRegressed",
        "WebauthnCredentialRemoved",
    ];

    /// The stream the event belongs to.
    pub fn stream(&self) -> StreamId {
        match self {
            Self::AccountRegistered { account, .. }
            | Self::PasswordChanged { account, .. }
            | Self::PasswordRehashed { account, .. }
            | Self::AccountDisabled { account, .. }
            | Self::AccountEnabled { account, .. }
            | Self::AccountImported { account, .. }
            | Self::LegacyCredentialRetired { account, .. }
            | Self::PasswordReset { account, .. }
            | Self::ExternalAccountCreated { account, .. }
            | Self::ExternalIdentityLinked { account, .. }
            | Self::ExternalIdentityUnlinked { account, .. }
            | Self::ExternalSignInRecorded { account, .. }
            | Self::WebauthnCredentialRegistered { account, .. }
            | Self::WebauthnCredentialUsed { account, .. }
            | Self::WebauthnCounterRegressed { account, .. }
            | Self::WebauthnCredentialRemoved { account, .. }
            | Self::LoginFailed { account, .. }
            | Self::AccessTokenRevoked { account, .. }
            | Self::AccountSignedOutEverywhere { account, .. }
            | Self::TotpEnrolmentStarted { account, .. }
            | Self::TotpEnabled { account, .. }
            | Self::TotpStepAccepted { account, .. }
            | Self::BackupCodeUsed { account, .. }
            | Self::BackupCodesReplaced { account, .. }
            | Self::TotpDisabled { account, .. }
            | Self::MfaCodeFailed {
                account,
                challenge: None,
                ..
            } => account.stream(),
            Self::MfaChallengeStarted { challenge, .. }
            | Self::MfaCodeFailed {
                challenge: Some(challenge),
                ..
            }
            | Self::MfaChallengePassed { challenge } => challenge.stream(),
            Self::UnknownAccountLoginFailed { .. } => StreamId(UNKNOWN_ACCOUNT_STREAM.to_owned()),
            Self::RegistrationAttempted { .. } => StreamId(REGISTRATIONS_STREAM.to_owned()),
            Self::SessionStarted { session, .. }
            | Self::SessionTouched { session }
            | Self::SessionEnded { session, .. } => session.stream(),
            Self::SigningKeyAdded { .. } | Self::SigningKeyRetired { .. } => {
                StreamId(SIGNING_KEYS_STREAM.to_owned())
            }
            Self::RefreshFamilyStarted { family, .. }
            | Self::RefreshTokenRotated { family, .. }
            | Self::RefreshTokenReused { family, .. }
            | Self::RefreshFamilyRevoked { family, .. } => family.stream(),
            Self::ClientRegistered { client_id, .. }
            | Self::ClientSecretRotated { client_id, .. }
            | Self::ClientRemoved { client_id, .. }
            | Self::ClientAccessTokenRevoked { client_id, .. } => client_stream(client_id),
            Self::ConsentGranted { account, .. } | Self::GrantRevoked { account, .. } => {
                account.stream()
            }
            Self::AuthorizationCodeIssued { code, .. }
            | Self::AuthorizationCodeRedeemed { code, .. }
            | Self::AuthorizationCodeReplayed { code } => digest_stream(CODE_STREAM_PREFIX, code),
            Self::DeviceAuthorizationStarted { device, .. }
            | Self::DeviceCodePolled { device, .. }
            | Self::DeviceAuthorizationApproved { device, .. }
            | Self::DeviceAuthorizationDenied { device, .. }
            | Self::DeviceCodeRedeemed { device, .. } => {
                digest_stream(DEVICE_STREAM_PREFIX, device)
            }
            Self::DeviceUserCodeFailed { .. } => StreamId(USER_CODE_FAILURES_STREAM.to_owned()),
            Self::ApiKeyCreated { key, .. }
            | Self::ApiKeyRotated { key, .. }
            | Self::ApiKeyRevoked { key, .. }
            | Self::ApiKeyExpiryWarned { key, .. }
            | Self::ApiKeyUsed { key, .. } => key.stream(),
        }
    }
}

/// The stream of an OAuth client: `client-<client_id>`.
pub fn client_stream(client_id: &str) -> StreamId {
    StreamId(format!("client-{client_id}"))
}

fn digest_stream(prefix: &str, digest: &SecretDigest) -> StreamId {
    StreamId(format!(
        "{prefix}-{}",
        data_encoding::HEXLOWER.encode(&digest.0)
    ))
}

/// The prefix of an authorization code's stream (then the hex digest of the code).
pub const CODE_STREAM_PREFIX: &str = "authorization-code";
/// The prefix of a device authorization's stream (then the hex digest of the device code).
pub const DEVICE_STREAM_PREFIX: &str = "device";
/// The stream of wrong user-code entries.
pub const USER_CODE_FAILURES_STREAM: &str = "device-user-code-failures";

/// The stream of failed logins that named no account.
pub const UNKNOWN_ACCOUNT_STREAM: &str = "login-unknown";

/// The stream of counted registration attempts (they belong to an address, not an account).
pub const REGISTRATIONS_STREAM: &str = "registrations";

/// The stream of the signing-key set (one aggregate).
pub const SIGNING_KEYS_STREAM: &str = "signing-keys";

/// An event a decision wants appended, not yet in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The stream to append it to: the one [`Event::stream`] names.
    pub stream: StreamId,
    /// The event itself.
    pub event: Event,
}

impl From<Event> for Pending {
    fn from(event: Event) -> Self {
        Self {
            stream: event.stream(),
            event,
        }
    }
}
