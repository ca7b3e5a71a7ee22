//! Grants: what a user consented to let a client do (the scopes), per account and client.
//!
//! A consent is recorded when the user approves a consent page (with the code it leads to,
//! see [`super::IssueAuthorizationCode`]) or a device (see
//! [`super::DecideDeviceAuthorization`]); a later request by the same client for scopes the
//! grant already covers skips the consent page ([`crate::Views::grant_covers`]). Revoking a
//! grant revokes every refresh family (and so every access token) issued under it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::GrantRevokeReason;
use crate::decide::{Decide, Decision};
use crate::event::{Event, FamilyRevokeReason, Pending};
use crate::{AccountId, Env, Rejection, Timestamp, Views};

/// One account's grant to one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// The user.
    pub account: AccountId,
    /// The client.
    pub client_id: String,
    /// Every scope consented to so far.
    pub scopes: BTreeSet<String>,
    /// When consent was first given.
    pub granted_at: Timestamp,
    /// When consent was last given (scopes added or confirmed).
    pub updated_at: Timestamp,
}

/// The events recording consent to `scope` for `client_id`, if the grant does not already
/// cover it.
pub(crate) fn consent(
    views: &Views,
    account: AccountId,
    client_id: &str,
    scopes: &BTreeSet<String>,
    events: &mut Vec<Pending>,
) {
    if !views.grant_covers(&account, client_id, scopes) {
        events.push(
            Event::ConsentGranted {
                account,
                client_id: client_id.to_owned(),
                scope: super::scope::join(scopes),
            }
            .into(),
        );
    }
}

/// DELETE /v1/grants/{client_id}: the user withdraws a grant; every family issued to the
/// client for the account is revoked in the same batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeGrant {
    /// The user.
    pub account: AccountId,
    /// The client.
    pub client_id: String,
}

impl Decide for RevokeGrant {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "revoke_grant"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        if views.grant(&self.account, &self.client_id).is_none() {
            return Decision::refuse(vec![], Rejection::GrantNotFound);
        }
        let mut events: Vec<Pending> = views
            .families_of(&self.account)
            .filter(|f| f.is_live(env.now) && f.client_id.as_deref() == Some(&self.client_id))
            .map(|f| {
                Event::RefreshFamilyRevoked {
                    family: f.id,
                    reason: FamilyRevokeReason::Revoked,
                }
                .into()
            })
            .collect();
        events.push(
            Event::GrantRevoked {
                account: self.account,
                client_id: self.client_id,
                reason: GrantRevokeReason::RevokedByUser,
            }
            .into(),
        );
        Decision::ok(events, ())
    }
}
