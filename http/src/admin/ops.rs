//! The operator actions, written once: the admin socket's handlers call them on the running
//! server's engine, and `tessera` calls the same functions on an engine of its own when no
//! server runs. Each action is a use case of the core run through the engine, so it is
//! decided by the writer and recorded as events like any API action.
//!
//! The answers are wire types (JSON both ways): the socket serialises them, the CLI
//! deserialises them, and the CLI formats them the same way whichever path produced them.

use serde::{Deserialize, Serialize};
use tessera_core::account::{DisableAccount, EnableAccount};
use tessera_core::blocklist::SignOutEverywhere;
use tessera_core::mfa::ResetMfa;
use tessera_core::{AccountId, Actor, Decide, Rejection, Views};
use tessera_storage::{Engine, EngineError};

use crate::problem::Problem;
use crate::signing::SigningError;
use crate::time::rfc3339;

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// No account has that username.
    #[error("no account named {0}")]
    NoSuchAccount(String),
    /// The core refused the action.
    #[error("{0}")]
    Refused(Rejection),
    /// The engine cannot take changes (stopped, overloaded, the store failed).
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// Writing or recording a signing key failed.
    #[error("{0}")]
    Signing(#[from] SigningError),
}

impl From<OpError> for Problem {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NoSuchAccount(_) => Self {
                code: Some(Rejection::AccountNotFound.code()),
                ..Self::new(
                    http::StatusCode::NOT_FOUND,
                    "account-not-found",
                    "Not found",
                    e.to_string(),
                )
            },
            OpError::Refused(r) => Self::from(r),
            OpError::Engine(e) => Self::from(e),
            OpError::Signing(error) => {
                tracing::error!(%error, "signing key rotation failed");
                Self::unavailable(format!("the signing key could not be rotated: {error}"))
            }
        }
    }
}

/// An account as an operator sees it. Never the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub email: Option<String>,
    pub disabled: bool,
    pub mfa_enabled: bool,
    pub created_at: String,
    pub live_sessions: usize,
    pub live_families: usize,
}

/// An account an action was applied to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    pub id: String,
    pub username: String,
}

/// A live cookie session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub created_at: String,
    pub last_seen_at: String,
    /// The earlier of the idle and absolute deadlines.
    pub expires_at: String,
}

/// A live refresh family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyInfo {
    pub id: String,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    pub started_at: String,
    pub expires_at: String,
    pub generation: u32,
}

/// An account's live sessions and refresh families.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsInfo {
    pub account: AccountRef,
    pub sessions: Vec<SessionInfo>,
    pub families: Vec<FamilyInfo>,
}

/// A signing key in the set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub kid: String,
    pub current: bool,
    pub published: bool,
    pub created_at: String,
    /// When a retired key leaves the JWKS; `None` for the current key.
    #[serde(default)]
    pub unpublish_at: Option<String>,
}

/// A new signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotated {
    pub kid: String,
}

/// The otpauth URI of a pending TOTP enrolment, for the terminal's QR code. It holds the
/// TOTP secret: it goes only to the operator, over the socket only its owner can use.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingEnrolment {
    pub otpauth_uri: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for PendingEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEnrolment").finish_non_exhaustive()
    }
}

/// The body of every operator change: who is acting, recorded in the events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorBody {
    pub operator: String,
}

/// The account `username` names (compared without case).
pub fn find(views: &Views, username: &str) -> Result<AccountRef, OpError> {
    views
        .account_by_username(username)
        .map(|a| AccountRef {
            id: a.id.to_string(),
            username: a.username.clone(),
        })
        .ok_or_else(|| OpError::NoSuchAccount(username.to_owned()))
}

fn account_id(views: &Views, username: &str) -> Result<(AccountId, AccountRef), OpError> {
    let a = views
        .account_by_username(username)
        .ok_or_else(|| OpError::NoSuchAccount(username.to_owned()))?;
    Ok((
        a.id,
        AccountRef {
            id: a.id.to_string(),
            username: a.username.clone(),
        },
    ))
}

fn info(views: &Views, a: &tessera_core::account::AccountView, engine: &Engine) -> AccountInfo {
    let now = engine.now();
    AccountInfo {
        id: a.id.to_string(),
        username: a.username.clone(),
        email: a.email.clone(),
        disabled: a.disabled,
        mfa_enabled: views.mfa_status(&a.id, now).enabled,
        created_at: rfc3339(a.created_at),
        live_sessions: views.sessions_of(&a.id).filter(|s| s.is_live(now)).count(),
        live_families: views.families_of(&a.id).filter(|f| f.is_live(now)).count(),
    }
}

/// One account.
pub fn show(engine: &Engine, username: &str) -> Result<AccountInfo, OpError> {
    let views = engine.views();
    let a = views
        .account_by_username(username)
        .ok_or_else(|| OpError::NoSuchAccount(username.to_owned()))?;
    Ok(info(&views, a, engine))
}

/// Every account, by username (compared without case).
pub fn list(engine: &Engine) -> Vec<AccountInfo> {
    let views = engine.views();
    let mut all: Vec<AccountInfo> = views.accounts().map(|a| info(&views, a, engine)).collect();
    all.sort_by_key(|a| a.username.to_ascii_lowercase());
    all
}

/// The account's live sessions and refresh families, oldest first.
pub fn sessions(engine: &Engine, username: &str) -> Result<SessionsInfo, OpError> {
    let now = engine.now();
    let views = engine.views();
    let (id, account) = account_id(&views, username)?;
    let mut sessions: Vec<_> = views.sessions_of(&id).filter(|s| s.is_live(now)).collect();
    sessions.sort_by_key(|s| (s.created_at, s.id));
    let mut families: Vec<_> = views.families_of(&id).filter(|f| f.is_live(now)).collect();
    families.sort_by_key(|f| (f.started_at, f.id));
    Ok(SessionsInfo {
        account,
        sessions: sessions
            .into_iter()
            .map(|s| SessionInfo {
                id: s.id.to_string(),
                created_at: rfc3339(s.created_at),
                last_seen_at: rfc3339(s.last_seen_at),
                expires_at: rfc3339(s.deadline()),
            })
            .collect(),
        families: families
            .into_iter()
            .map(|f| FamilyInfo {
                id: f.id.to_string(),
                session: f.session.map(|s| s.to_string()),
                client_id: f.client_id.clone(),
                started_at: rfc3339(f.started_at),
                expires_at: rfc3339(f.deadline()),
                generation: f.generation,
            })
            .collect(),
    })
}

/// Every signing key the views hold, current first, then by kid.
pub fn keys(engine: &Engine) -> Vec<KeyInfo> {
    let now = engine.now();
    let views = engine.views();
    let mut keys: Vec<KeyInfo> = views
        .signing_keys()
        .iter()
        .map(|k| KeyInfo {
            kid: k.kid.clone(),
            current: k.unpublish_at.is_none(),
            published: k.is_published(now),
            created_at: rfc3339(k.created_at),
            unpublish_at: k.unpublish_at.map(rfc3339),
        })
        .collect();
    keys.sort_by(|a, b| b.current.cmp(&a.current).then_with(|| a.kid.cmp(&b.kid)));
    keys
}

/// The otpauth URI of the account's pending TOTP enrolment.
pub fn pending_enrolment(
    engine: &Engine,
    mfa_keys: &tessera_core::mfa::MfaKeys,
    username: &str,
) -> Result<PendingEnrolment, OpError> {
    let now = engine.now();
    let views = engine.views();
    let (id, _) = account_id(&views, username)?;
    let uri = tessera_core::mfa::pending_otpauth_uri(&views, &id, mfa_keys, engine.policy(), now)
        .map_err(OpError::Refused)?;
    Ok(PendingEnrolment { otpauth_uri: uri })
}

/// Which operator action on one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountAction {
    /// `DisableAccount`: idempotent.
    Disable,
    /// `EnableAccount`: idempotent.
    Enable,
    /// `ResetMfa`: MFA off, every session and family ends.
    ResetMfa,
    /// `SignOutEverywhere`: every session and family ends, older access tokens are refused.
    Logout,
}

impl AccountAction {
    /// The path segment of the action on the admin socket.
    pub fn segment(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Enable => "enable",
            Self::ResetMfa => "reset-mfa",
            Self::Logout => "logout",
        }
    }

    /// The action a path segment names.
    pub fn from_segment(segment: &str) -> Option<Self> {
        [Self::Disable, Self::Enable, Self::ResetMfa, Self::Logout]
            .into_iter()
            .find(|a| a.segment() == segment)
    }
}

async fn execute<C: Decide<Reply = ()>>(engine: &Engine, command: C) -> Result<(), OpError> {
    engine
        .execute(command)
        .await?
        .reply
        .map_err(OpError::Refused)
}

/// Runs `action` on the account `username` names, recorded as done by `operator`.
pub async fn act(
    engine: &Engine,
    username: &str,
    action: AccountAction,
    operator: &str,
) -> Result<AccountRef, OpError> {
    let (account, found) = account_id(&engine.views(), username)?;
    let by = Actor::Operator {
        name: operator.to_owned(),
    };
    tracing::info!(
        operator,
        account = %account,
        action = action.segment(),
        "operator action"
    );
    match action {
        AccountAction::Disable => execute(engine, DisableAccount { account, by }).await?,
        AccountAction::Enable => execute(engine, EnableAccount { account, by }).await?,
        AccountAction::ResetMfa => execute(engine, ResetMfa { account, by }).await?,
        AccountAction::Logout => {
            // An operator's action: the holder's step-up rule does not apply.
            let step_up = None.into();
            execute(
                engine,
                SignOutEverywhere {
                    account,
                    by,
                    step_up,
                },
            )
            .await?
        }
    }
    Ok(found)
}

/// The reply to a registration, as the operator sees it.
pub fn registered(r: &tessera_core::account::Registered) -> AccountRef {
    AccountRef {
        id: r.account.to_string(),
        username: r.username.clone(),
    }
}

/// What `tessera apikey revoke --prefix` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub id: String,
    pub prefix: String,
    /// The username of the account that created it (its id if the account is gone).
    pub owner: String,
    /// Whether it had been revoked already (nothing recorded then).
    pub already_revoked: bool,
}

/// Revokes the API key an operator names by what a scanner found: the whole key, or its
/// beginning up to the display prefix. Several keys under one prefix: refused, give more.
pub async fn revoke_api_key(
    engine: &Engine,
    pepper: &tessera_core::apikey::ApiKeyPepper,
    presented: &str,
    operator: &str,
) -> Result<ApiKeyRevoked, OpError> {
    let vendor = engine.policy().api_keys.vendor.clone();
    let presented = tessera_core::apikey::PresentedPrefix::read(presented, pepper, &vendor)
        .map_err(OpError::Refused)?;
    let done = engine
        .execute(tessera_core::apikey::RevokeApiKeyByPrefix {
            presented,
            operator: operator.to_owned(),
        })
        .await?
        .reply
        .map_err(OpError::Refused)?;
    tracing::info!(%operator, key = %done.key, prefix = %done.prefix, "operator action: API key revoked");
    let owner = engine
        .views()
        .account(&done.account)
        .map_or_else(|| done.account.to_string(), |a| a.username.clone());
    Ok(ApiKeyRevoked {
        id: done.key.to_string(),
        prefix: done.prefix,
        owner,
        already_revoked: done.already_inactive,
    })
}
