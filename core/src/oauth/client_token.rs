//! Client-credentials access tokens (RFC 6749 §4.4, RFC 9068): issued to a confidential
//! client acting for itself.
//!
//! ```text
//!   POST /oauth/token grant_type=client_credentials (client authenticated: one HMAC)
//!        ─▶ issue_client_token (pure: scope within the client's, claims built) ─▶ signed
//!   presented ─▶ verify_client_token (signature, times, iss, aud)
//!             ─▶ check_client_token_live (client still registered and registered before
//!                the token; jti not revoked)
//! ```
//!
//! No refresh token, no event: such a token is a pure function of the client's
//! registration, so issuing one needs no writer. `sub` and `client_id` are the client.
//! Their claims carry neither `sid` nor `fam`, and [`ClientClaims`] refuses unknown members,
//! so a client token is never taken for a user's token or the other way round: Tessera's
//! own account API refuses it, which keeps it to the audience it was issued for.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::client::{AuthenticatedClient, ClientKind, GrantType};
use super::scope;
use crate::decide::{Decide, Decision};
use crate::event::Event;
use crate::id::uuid_v7;
use crate::policy::TokenPolicy;
use crate::signing_key::KeySet;
use crate::token::{REVOCATION_MARGIN_MS, TokenRejection};
use crate::{Env, Rejection, Timestamp, TokenId, Views};

/// The claims of a client-credentials access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientClaims {
    /// `iss`: the issuer URL.
    pub iss: String,
    /// `aud`: the policy's audience.
    pub aud: String,
    /// `sub`: the client itself (RFC 9068 §2.2).
    pub sub: String,
    /// `client_id`: the client.
    pub client_id: String,
    /// `exp`, whole seconds since the epoch.
    pub exp: u64,
    /// `iat`, whole seconds since the epoch.
    pub iat: u64,
    /// `nbf`, whole seconds since the epoch.
    pub nbf: u64,
    /// `jti`: by which the token can be revoked.
    pub jti: TokenId,
    /// `scope`: within the client's registered scopes.
    pub scope: String,
}

impl ClientClaims {
    /// `expires_in` for a token response.
    pub fn expires_in_secs(&self) -> u64 {
        self.exp.saturating_sub(self.iat)
    }

    /// When the token expires.
    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_millis(self.exp.saturating_mul(1000))
    }
}

/// The claims of a client-credentials token for `client`, at `env.now`: confidential
/// clients only, allowed the grant, for a scope within the registered ones (all of them
/// when none is asked). Pure; sign the result with the current signer.
pub fn issue_client_token(
    views: &Views,
    client: &AuthenticatedClient,
    requested_scope: Option<&str>,
    env: &mut Env<'_>,
) -> Result<ClientClaims, Rejection> {
    if client.kind != ClientKind::Confidential {
        return Err(Rejection::UnauthorizedClient);
    }
    let registered = views
        .client(&client.client_id)
        .ok_or(Rejection::ClientAuthenticationFailed)?;
    if !registered.allows(GrantType::ClientCredentials) {
        return Err(Rejection::UnauthorizedClient);
    }
    let scopes: BTreeSet<String> =
        scope::within(requested_scope, &registered.scopes).ok_or(Rejection::InvalidScope)?;
    let policy = &env.policy.token;
    let now = env.now;
    let exp = now.plus_ms(policy.access_ttl_ms());
    Ok(ClientClaims {
        iss: policy.issuer.clone(),
        aud: policy.audience.clone(),
        sub: registered.id.clone(),
        client_id: registered.id.clone(),
        exp: exp.as_secs(),
        iat: now.as_secs(),
        nbf: now.as_secs(),
        jti: TokenId(uuid_v7(now, env.random_bytes())),
        scope: scope::join(&scopes),
    })
}

/// Verifies a presented client token's form, signature, times, issuer and audience. Does
/// not consult the views: call [`check_client_token_live`] on the result.
pub fn verify_client_token(
    token: &str,
    keys: &KeySet,
    now: Timestamp,
    policy: &TokenPolicy,
) -> Result<ClientClaims, TokenRejection> {
    let claims: ClientClaims = crate::token::verify_signed(token, keys, now)?;
    crate::token::check_times(claims.exp, claims.nbf, claims.iat, now, policy)?;
    if claims.iss != policy.issuer {
        return Err(TokenRejection::WrongIssuer);
    }
    if claims.aud != policy.audience {
        return Err(TokenRejection::WrongAudience);
    }
    if claims.sub != claims.client_id {
        return Err(TokenRejection::Malformed);
    }
    Ok(claims)
}

/// Refuses a verified client token whose client is gone (or was registered anew after the
/// token was issued) or whose `jti` was revoked.
pub fn check_client_token_live(views: &Views, claims: &ClientClaims) -> Result<(), TokenRejection> {
    if views.client_token_revoked(&claims.jti) {
        return Err(TokenRejection::Revoked);
    }
    // The jti is a UUIDv7: its first 48 bits are the time of issue in milliseconds, finer
    // than `iat`, so a token issued before the client was removed and registered anew in
    // the same second still dies with the old registration.
    let bytes = claims.jti.as_bytes();
    let issued_ms = bytes
        .iter()
        .take(6)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let live = views
        .client(&claims.client_id)
        .is_some_and(|c| c.registered_at.as_millis() <= issued_ms);
    if !live {
        return Err(TokenRejection::AccountRevoked);
    }
    Ok(())
}

/// RFC 7009 revocation of a client-credentials token, by the client it was issued to.
/// An already revoked or expired token succeeds without events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeClientToken {
    /// The token's claims, verified.
    pub claims: ClientClaims,
}

impl Decide for RevokeClientToken {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "revoke_client_token"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        let expires_at = self.claims.expires_at();
        if views.client_token_revoked(&self.claims.jti)
            || expires_at.plus_ms(REVOCATION_MARGIN_MS) <= env.now
            || views.client(&self.claims.client_id).is_none()
        {
            return Decision::ok(vec![], ());
        }
        let event = Event::ClientAccessTokenRevoked {
            client_id: self.claims.client_id,
            jti: self.claims.jti,
            expires_at,
        };
        Decision::ok(vec![event.into()], ())
    }
}
