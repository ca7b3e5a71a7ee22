//! The blocklist: what refuses an access token that verifies but must no longer work
//! (RFC 7009 revocation; logout; password change; account disable; reuse detection).
//!
//! ```text
//!   verified claims ──▶ jti in revoked access tokens?          ──▶ Revoked
//!                   ──▶ fam: family gone, revoked or dead?     ──▶ FamilyRevoked
//!                   ──▶ sid: session gone or past its deadline? ──▶ SessionEnded
//!                   ──▶ account gone or disabled, or its not-before time later than iat?
//!                                                             ──▶ AccountRevoked
//!                   ──▶ accepted
//! ```
//!
//! Entries last only while they can matter, and are dropped deterministically from the
//! recorded time of the events applied, as sessions are:
//! - a revoked `jti` until its `exp` + [`REVOCATION_MARGIN_MS`];
//! - an account's not-before time (set by sign-out everywhere, password change and disable)
//!   for [`ACCESS_TOKEN_OUTLIVES_MS`], the longest any token issued before it can live;
//! - a revoked family until the same bound after its revocation (see [`crate::refresh`]).
//!
//! The not-before time is kept in whole seconds, rounded down, and compared with `iat`
//! (also whole seconds): a token issued in the same second as, but before, the change
//! passes this check. That is deliberate: the same change revokes the token's family or
//! ends its session explicitly, which catches it; the not-before time is the second line,
//! and it must never refuse a token issued just *after* the change.

use serde::{Deserialize, Serialize};

use crate::decide::{Decide, Decision};
use crate::event::{Actor, Event, FamilyRevokeReason, SessionEndReason};
use crate::token::{AccessClaims, TokenRejection};
use crate::{AccountId, Env, Rejection, Timestamp, TokenId, Views};

pub use crate::token::{ACCESS_TOKEN_OUTLIVES_MS, REVOCATION_MARGIN_MS};

/// A revoked access token, as the blocklist holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedAccessToken {
    /// The revoked token's `jti` claim (RFC 7519 §4.1.7).
    pub jti: TokenId,
    /// The account the token was issued to (its `sub`).
    pub account: AccountId,
    /// The token's `exp`, as a timestamp.
    pub expires_at: Timestamp,
}

impl RevokedAccessToken {
    /// When the entry is dropped: [`REVOCATION_MARGIN_MS`] after the token's expiry, when no
    /// verifier accepts it any more.
    pub fn drop_at(&self) -> Timestamp {
        self.expires_at.plus_ms(REVOCATION_MARGIN_MS)
    }
}

/// An account's not-before time: tokens issued before it are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotBefore {
    /// When the account last signed out everywhere, changed its password or was disabled:
    /// the recorded time of that event. Compared in whole seconds with a token's `iat`.
    pub at: Timestamp,
}

impl NotBefore {
    /// When the entry is dropped: [`ACCESS_TOKEN_OUTLIVES_MS`] after `at`, when every token
    /// issued before it has expired.
    pub fn drop_at(&self) -> Timestamp {
        self.at.plus_ms(ACCESS_TOKEN_OUTLIVES_MS)
    }
}

/// Checks verified claims against the views at `now`. Run it after
/// [`crate::token::verify_access_token`], under the views' read lock.
pub fn check_not_revoked(
    views: &Views,
    claims: &AccessClaims,
    now: Timestamp,
) -> Result<(), TokenRejection> {
    if views.revoked_access_tokens.contains_key(&claims.jti) {
        return Err(TokenRejection::Revoked);
    }
    if let Some(fam) = claims.fam {
        let live = views
            .family(&fam)
            .is_some_and(|f| f.account == claims.sub && f.is_live(now));
        if !live {
            return Err(TokenRejection::FamilyRevoked);
        }
    }
    if let Some(sid) = claims.sid {
        let live = views
            .session(&sid)
            .is_some_and(|s| s.account == claims.sub && s.is_live(now));
        if !live {
            return Err(TokenRejection::SessionEnded);
        }
    }
    let account_ok = views.account(&claims.sub).is_some_and(|a| !a.disabled);
    let not_before_secs = views
        .not_before
        .get(&claims.sub)
        .map_or(0, |nb| nb.at.as_secs());
    if !account_ok || claims.iat < not_before_secs {
        return Err(TokenRejection::AccountRevoked);
    }
    Ok(())
}

/// Revokes one access token (RFC 7009). The caller verified it first (signature; expiry
/// may be past) and passes its `jti`, `sub` and `exp`. An already revoked or expired token
/// succeeds without events.
fn revoke_access_token(
    views: &Views,
    jti: TokenId,
    account: AccountId,
    expires_at: Timestamp,
    env: &Env<'_>,
) -> Decision<()> {
    if views.revoked_access_tokens.contains_key(&jti)
        || expires_at.plus_ms(REVOCATION_MARGIN_MS) <= env.now
    {
        return Decision::ok(vec![], ());
    }
    if views.account(&account).is_none() {
        return Decision::ok(vec![], ());
    }
    Decision::ok(
        vec![
            Event::AccessTokenRevoked {
                jti,
                account,
                expires_at,
            }
            .into(),
        ],
        (),
    )
}

/// Signs the account out everywhere: every session ends, every family is revoked, and
/// every access token issued before now is refused.
fn sign_out_everywhere(
    views: &Views,
    account: AccountId,
    by: Actor,
    now: Timestamp,
) -> Decision<()> {
    if views.account(&account).is_none() {
        return Decision::refuse(vec![], Rejection::AccountNotFound);
    }
    let mut events = vec![Event::AccountSignedOutEverywhere { account, by }.into()];
    crate::refresh::revoke_all(
        views,
        now,
        &account,
        FamilyRevokeReason::SignedOutEverywhere,
        &mut events,
    );
    let live = views.sessions_of(&account).filter(|s| s.is_live(now));
    events.extend(live.map(|s| {
        Event::SessionEnded {
            session: s.id,
            reason: SessionEndReason::SignedOutEverywhere,
        }
        .into()
    }));
    Decision::ok(events, ())
}

/// RFC 7009 revocation of an access token, from its verified claims (signature checked;
/// expiry may be past).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeAccessToken {
    /// The token's `jti`.
    pub jti: TokenId,
    /// Its `sub`.
    pub account: AccountId,
    /// Its `exp`.
    pub expires_at: Timestamp,
}

impl Decide for RevokeAccessToken {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "revoke_access_token"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        revoke_access_token(views, self.jti, self.account, self.expires_at, env)
    }
}

/// Ends every session and family of the account and refuses every access token issued
/// before now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignOutEverywhere {
    /// The account.
    pub account: AccountId,
    /// The holder, or an operator by name.
    pub by: Actor,
    /// A recent authentication ([`crate::session::check_step_up`]) of the holder; not consulted
    /// for an operator.
    pub step_up: crate::session::StepUp,
}

impl Decide for SignOutEverywhere {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "sign_out_everywhere"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        let spent = if self.by == Actor::Holder {
            match crate::session::check_step_up(views, self.account, &self.step_up, false, env) {
                Ok(spent) => spent,
                Err((events, r)) => return Decision::refuse(events, r),
            }
        } else {
            vec![]
        };
        sign_out_everywhere(views, self.account, self.by, env.now).after(spent)
    }
}
