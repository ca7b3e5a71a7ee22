//! Refresh tokens: opaque, rotating, with reuse detection (RFC 6749 §6 and §10.4, RFC 9700
//! §4.14.2 "refresh token rotation").
//!
//! ```text
//!   login (token mode) ──RefreshFamilyStarted──▶ family Live, token g0 current
//!
//!   present token g (digest lookup):
//!     g is current, live          ──RefreshTokenRotated──────▶ g spent, g+1 current
//!     g spent, is the one just rotated, within the grace window (policy, default off)
//!                                 ──RefreshTokenRotated{grace}─▶ g+1 spent unused, g+2 current
//!     g spent otherwise           ──RefreshTokenReused───────▶ family Revoked (and its session)
//!     family revoked / past deadline, token expired, unknown ──▶ refused, nothing recorded
//!
//!   logout, RFC 7009 revocation, password change, disable, sign-out everywhere
//!                                 ──RefreshFamilyRevoked─────▶ family Revoked
//!
//!   Live ──now ≥ min(expires_at, current token's expiry)──▶ Dead (lazily, from time)
//!   Revoked or Dead ──once no access token of it can be unexpired──▶ dropped from the views
//! ```
//!
//! A refresh token is a 256-bit [`BearerSecret`] with the prefix [`REFRESH_TOKEN_PREFIX`];
//! only its SHA-256 digest is recorded. Every use spends it and returns a new one with new
//! access-token claims. Every spent digest is kept, mapped to its family, until the family
//! is dropped: presenting any of them again is reuse, and revokes the whole family: every
//! refresh token, every access token carrying its `fam`, and the session it belongs to.
//! Whoever presents a spent token, the legitimate client or a thief, the other one holds
//! the live token; revoking the family stops both, and the holder logs in again.
//!
//! The single writer orders concurrent presentations: of two refreshes of one token exactly
//! one rotates and the other is reuse; a refresh and a revocation leave the family revoked
//! whichever comes first.

use serde::{Deserialize, Serialize};

use crate::decide::{Decide, Decision};
use crate::event::{Event, FamilyRevokeReason, Pending, SessionEndReason};
use crate::id::uuid_v7;
use crate::secret::{BearerSecret, SecretDigest};
use crate::token::{ACCESS_TOKEN_OUTLIVES_MS, AccessClaims, REVOCATION_MARGIN_MS, TokenBinding};
use crate::{AccountId, Env, FamilyId, Rejection, SessionId, Timestamp, Views};

/// The prefix of every refresh token: `tsr_` + 43 base64url characters.
pub const REFRESH_TOKEN_PREFIX: &str = "tsr_";

/// The digest to look a presented refresh token up by, if it has the shape of one. An
/// access token, a session cookie or garbage gives `None`: refuse it as `invalid_grant`.
pub fn presented_digest(presented: &str) -> Option<SecretDigest> {
    crate::secret::plausible(presented, REFRESH_TOKEN_PREFIX).then(|| SecretDigest::of(presented))
}

/// A refresh family as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyView {
    /// The family's id, carried by its access tokens as `fam`.
    pub id: FamilyId,
    /// The account its tokens are issued to.
    pub account: AccountId,
    /// The session it belongs to, if any: ending one ends the other.
    pub session: Option<SessionId>,
    /// The OAuth client it was issued to, if any; its access tokens carry it as `client_id`.
    pub client_id: Option<String>,
    /// The scope granted at login, if any, carried into every access token of the family.
    pub scope: Option<String>,
    /// When the family started (the login).
    pub started_at: Timestamp,
    /// The absolute deadline.
    pub expires_at: Timestamp,
    /// Generation of the current token: 0 for the one issued at login.
    pub generation: u32,
    /// The one live refresh token, `None` once the family is revoked.
    pub current: Option<SecretDigest>,
    /// When the current (or, once revoked, the last) refresh token expires.
    pub current_expires_at: Timestamp,
    /// When the family was revoked (by reuse or [`crate::Event::RefreshFamilyRevoked`]);
    /// `None` while it is not.
    pub revoked_at: Option<Timestamp>,
}

impl FamilyView {
    /// When the family stops minting: its absolute deadline, or its current token's expiry.
    pub fn deadline(&self) -> Timestamp {
        self.expires_at.min(self.current_expires_at)
    }

    /// Whether its refresh and access tokens are accepted at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.deadline()
    }

    /// When the views forget the family: once no token of it can be accepted any more,
    /// even with clock leeway. Until then, its spent digests detect reuse and its revoked
    /// flag refuses its access tokens.
    pub fn drop_at(&self) -> Timestamp {
        let end = match self.revoked_at {
            Some(r) => r.plus_ms(ACCESS_TOKEN_OUTLIVES_MS).min(self.deadline()),
            None => self.deadline(),
        };
        end.plus_ms(REVOCATION_MARGIN_MS)
    }
}

/// One refresh token (current or spent), by digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenView {
    /// The family the token belongs to.
    pub family: FamilyId,
    /// Its position in the family: 0 for the one issued at login, one more per rotation.
    pub generation: u32,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being accepted, never after its family's deadline.
    pub expires_at: Timestamp,
    /// When it was rotated; `None` while it is the family's current token.
    pub spent_at: Option<Timestamp>,
    /// Spent without being presented: replaced by a grace rotation, or its family revoked.
    /// Such a token never gets the grace window, and does not count as a "used" successor.
    pub spent_unused: bool,
}

/// New tokens handed to their holder: access-token claims to sign and the refresh token,
/// shown once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokensIssued {
    /// The family the tokens belong to.
    pub family: FamilyId,
    /// The account they are issued to.
    pub account: AccountId,
    /// Sign with the current [`crate::signing_key::Signer`] outside the writer.
    pub access: AccessClaims,
    /// The new refresh token, shown once; only its digest is recorded.
    pub refresh: BearerSecret,
    /// When the new refresh token expires, never after the family's deadline.
    pub refresh_expires_at: Timestamp,
}

fn new_token(family: &FamilyView, env: &mut Env<'_>) -> (BearerSecret, SecretDigest, Timestamp) {
    let (secret, digest) = BearerSecret::generate(REFRESH_TOKEN_PREFIX, env);
    let expires_at = env
        .now
        .plus_ms(env.policy.token.refresh_ttl_secs.saturating_mul(1000))
        .min(family.expires_at);
    (secret, digest, expires_at)
}

/// Starts a family for `account` and issues its first tokens.
pub(crate) fn start_family(
    account: AccountId,
    session: Option<SessionId>,
    client_id: Option<String>,
    scope: Option<String>,
    env: &mut Env<'_>,
) -> (Pending, TokensIssued) {
    let id = FamilyId(uuid_v7(env.now, env.random_bytes()));
    let expires_at = env
        .now
        .plus_ms(env.policy.token.family_lifetime_secs.saturating_mul(1000));
    let mut family = FamilyView {
        id,
        account,
        session,
        client_id: client_id.clone(),
        scope: scope.clone(),
        started_at: env.now,
        expires_at,
        generation: 0,
        current: None,
        current_expires_at: expires_at,
        revoked_at: None,
    };
    let (refresh, token_digest, token_expires_at) = new_token(&family, env);
    family.current_expires_at = token_expires_at;
    let access = crate::token::issue(
        account,
        TokenBinding::Family(id),
        scope.clone(),
        client_id.clone(),
        family.deadline(),
        // The family starts at the login: that is when the holder authenticated.
        env.now,
        env,
    );
    let event = Event::RefreshFamilyStarted {
        family: id,
        account,
        session,
        client_id,
        scope,
        token_digest,
        token_expires_at,
        expires_at,
    };
    (
        event.into(),
        TokensIssued {
            family: id,
            account,
            access,
            refresh,
            refresh_expires_at: token_expires_at,
        },
    )
}

/// Rotates the refresh token with digest `presented`, or detects its reuse.
fn refresh(views: &Views, presented: SecretDigest, env: &mut Env<'_>) -> Decision<TokensIssued> {
    let invalid = || Decision::refuse(vec![], Rejection::RefreshTokenInvalid);
    let Some(token) = views.refresh_token(&presented) else {
        return invalid();
    };
    let Some(family) = views.family(&token.family) else {
        return invalid();
    };
    if !family.is_live(env.now) {
        return invalid();
    }
    let holder_ok = views.account(&family.account).is_some_and(|a| !a.disabled)
        && family
            .session
            .is_none_or(|s| views.session(&s).is_some_and(|s| s.is_live(env.now)));
    match token.spent_at {
        None if holder_ok && env.now < token.expires_at => rotate(family, presented, false, env),
        None => invalid(),
        Some(spent_at) => {
            let grace_ms = env.policy.token.reuse_grace_secs.saturating_mul(1000);
            let just_rotated =
                !token.spent_unused && token.generation.checked_add(1) == Some(family.generation);
            if holder_ok && just_rotated && env.now.since(spent_at) < grace_ms {
                rotate(family, presented, true, env)
            } else {
                reused(views, family, presented, token, spent_at, env)
            }
        }
    }
}

fn rotate(
    family: &FamilyView,
    presented: SecretDigest,
    grace: bool,
    env: &mut Env<'_>,
) -> Decision<TokensIssued> {
    let (refresh, token_digest, token_expires_at) = new_token(family, env);
    let deadline = family.expires_at.min(token_expires_at);
    let access = crate::token::issue(
        family.account,
        TokenBinding::Family(family.id),
        family.scope.clone(),
        family.client_id.clone(),
        deadline,
        family.started_at,
        env,
    );
    let event = Event::RefreshTokenRotated {
        family: family.id,
        presented_digest: presented,
        token_digest,
        token_expires_at,
        grace,
    };
    let issued = TokensIssued {
        family: family.id,
        account: family.account,
        access,
        refresh,
        refresh_expires_at: token_expires_at,
    };
    Decision::ok(vec![event.into()], issued)
}

fn reused(
    views: &Views,
    family: &FamilyView,
    presented: SecretDigest,
    token: &RefreshTokenView,
    spent_at: Timestamp,
    env: &Env<'_>,
) -> Decision<TokensIssued> {
    let successor_used = views.family_tokens(&family.id).any(|t| {
        t.generation == token.generation.saturating_add(1)
            && t.spent_at.is_some()
            && !t.spent_unused
    });
    let mut events = vec![
        Event::RefreshTokenReused {
            family: family.id,
            presented_digest: presented,
            generation: token.generation,
            since_rotation_ms: env.now.since(spent_at),
            successor_used,
        }
        .into(),
    ];
    if let Some(s) = family
        .session
        .and_then(|s| views.session(&s))
        .filter(|s| s.is_live(env.now))
    {
        events.push(
            Event::SessionEnded {
                session: s.id,
                reason: SessionEndReason::TokenReused,
            }
            .into(),
        );
    }
    Decision::refuse(events, Rejection::RefreshTokenReused)
}

/// RFC 7009 revocation of a refresh token: revokes its family. Unknown, spent or already
/// revoked tokens succeed without events, so that the answer reveals nothing.
fn revoke_token(views: &Views, presented: SecretDigest, env: &Env<'_>) -> Decision<()> {
    let family = views
        .refresh_token(&presented)
        .and_then(|t| views.family(&t.family));
    let mut events = Vec::new();
    // A family past its deadline is dropped when these events apply, and needs no revoking.
    if let Some(f) = family.filter(|f| f.is_live(env.now)) {
        end_family(
            views,
            f,
            FamilyRevokeReason::Revoked,
            Some(SessionEndReason::Revoked),
            env,
            &mut events,
        );
    }
    Decision::ok(events, ())
}

/// Logout in token mode: ends the family and the session it belongs to.
fn logout(views: &Views, family: FamilyId, env: &Env<'_>) -> Decision<()> {
    match views.family(&family) {
        Some(f) if f.is_live(env.now) => {
            let mut events = Vec::new();
            end_family(
                views,
                f,
                FamilyRevokeReason::LoggedOut,
                Some(SessionEndReason::LoggedOut),
                env,
                &mut events,
            );
            Decision::ok(events, ())
        }
        _ => Decision::refuse(vec![], Rejection::Unauthenticated),
    }
}

/// Pushes the events that revoke `family` and, when `session_reason` is given, end the
/// session it belongs to if that is still there.
pub(crate) fn end_family(
    views: &Views,
    family: &FamilyView,
    reason: FamilyRevokeReason,
    session_reason: Option<SessionEndReason>,
    env: &Env<'_>,
    events: &mut Vec<Pending>,
) {
    events.push(
        Event::RefreshFamilyRevoked {
            family: family.id,
            reason,
        }
        .into(),
    );
    if let (Some(reason), Some(s)) = (
        session_reason,
        family
            .session
            .and_then(|s| views.session(&s))
            .filter(|s| s.is_live(env.now)),
    ) {
        events.push(
            Event::SessionEnded {
                session: s.id,
                reason,
            }
            .into(),
        );
    }
}

/// The events revoking every unrevoked family of `account` (sessions are the caller's).
///
/// Only live families: one past its deadline is dropped by the views when these events are
/// applied, and revoking it again would be an event the views refuse.
pub(crate) fn revoke_all(
    views: &Views,
    now: Timestamp,
    account: &AccountId,
    reason: FamilyRevokeReason,
    events: &mut Vec<Pending>,
) {
    for f in views.families_of(account).filter(|f| f.is_live(now)) {
        events.push(
            Event::RefreshFamilyRevoked {
                family: f.id,
                reason,
            }
            .into(),
        );
    }
}

/// The events revoking the unrevoked families bound to `session` (when the session ends).
pub(crate) fn revoke_for_session(
    views: &Views,
    now: Timestamp,
    account: &AccountId,
    session: SessionId,
    events: &mut Vec<Pending>,
) {
    for f in views
        .families_of(account)
        .filter(|f| f.is_live(now) && f.session == Some(session))
    {
        events.push(
            Event::RefreshFamilyRevoked {
                family: f.id,
                reason: FamilyRevokeReason::Revoked,
            }
            .into(),
        );
    }
}

#[cfg(test)]
mod tests;

/// Spend a refresh token for new tokens. `presented` comes from [`presented_digest`]; a
/// string that is no refresh token never becomes a command (answer `invalid_grant` at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTokens {
    /// The presented token's digest.
    pub presented: SecretDigest,
}

impl Decide for RefreshTokens {
    type Reply = TokensIssued;

    fn kind(&self) -> &'static str {
        "refresh_tokens"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<TokensIssued> {
        refresh(views, self.presented, env)
    }
}

/// RFC 7009 revocation of a refresh token: revokes its family. Unknown, spent or already
/// revoked tokens succeed without events, so that the answer reveals nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeRefreshToken {
    /// The presented token's digest.
    pub presented: SecretDigest,
}

impl Decide for RevokeRefreshToken {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "revoke_refresh_token"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        revoke_token(views, self.presented, env)
    }
}

/// Logout in token mode: ends the family (the access token's `fam`) and its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutFamily {
    /// The family.
    pub family: FamilyId,
}

impl Decide for LogoutFamily {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "logout_family"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        logout(views, self.family, env)
    }
}
