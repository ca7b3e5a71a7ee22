//! The operator actions on OAuth clients (`tessera client add|list|show|rotate-secret|remove`),
//! written once: the admin socket calls them on the running server's engine, `tessera` on
//! an engine of its own when no server runs. Each change is a core use case decided by the
//! writer and recorded as events.

use serde::{Deserialize, Serialize};
use tessera_core::mfa::MfaKeys;
use tessera_core::oauth::{
    ClientKind, ClientRegistration, ClientView, GrantType, RegisterClient, RemoveClient,
    RotateClientSecret,
};
use tessera_core::{Actor, Rejection};
use tessera_storage::Engine;

use super::ops::OpError;
use crate::time::rfc3339;

/// `POST /admin/v1/clients`: a client to register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddClient {
    pub client_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A public client (no secret); confidential otherwise.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `grant_type` values; defaults to `authorization_code` and `refresh_token`.
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub operator: String,
}

/// `POST /admin/v1/clients/{id}/rotate-secret`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the current secret keeps working.
    #[serde(default)]
    pub overlap_secs: u64,
    pub operator: String,
}

/// A removed client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub client_id: String,
}

/// A client as an operator sees it. Never a secret or its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    pub kind: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub registered_at: String,
    /// Secrets accepted now (two during a rotation's overlap).
    pub secrets: usize,
    /// When the rotated-out secret stops working, during an overlap.
    #[serde(default)]
    pub overlap_until: Option<String>,
    pub live_families: usize,
}

/// A client and its new secret, shown once.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClientWithSecret {
    pub client: ClientInfo,
    #[serde(default)]
    pub client_secret: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for ClientWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientWithSecret")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn info(engine: &Engine, c: &ClientView) -> ClientInfo {
    let now = engine.now();
    let views = engine.views();
    ClientInfo {
        client_id: c.id.clone(),
        name: c.name.clone(),
        kind: c.kind.as_str().to_owned(),
        redirect_uris: c.redirect_uris.clone(),
        grant_types: c
            .grant_types
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        scopes: c.scopes.iter().cloned().collect(),
        registered_at: rfc3339(c.registered_at),
        secrets: c
            .secrets
            .iter()
            .filter(|s| s.valid_until.is_none_or(|u| now < u))
            .count(),
        overlap_until: c
            .secrets
            .iter()
            .filter_map(|s| s.valid_until)
            .find(|u| now < *u)
            .map(rfc3339),
        live_families: views
            .families_of_client(&c.id)
            .filter(|f| f.is_live(now))
            .count(),
    }
}

/// Every client, by id.
pub fn list(engine: &Engine) -> Vec<ClientInfo> {
    let views = engine.views().clone();
    views
        .clients()
        .into_iter()
        .map(|c| info(engine, c))
        .collect()
}

/// One client.
pub fn show(engine: &Engine, client_id: &str) -> Result<ClientInfo, OpError> {
    let views = engine.views().clone();
    views
        .client(client_id)
        .map(|c| info(engine, c))
        .ok_or(OpError::Refused(Rejection::ClientNotFound))
}

fn parse_grants(names: &[String]) -> Result<Vec<GrantType>, OpError> {
    if names.is_empty() {
        return Ok(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]);
    }
    names
        .iter()
        .map(|n| {
            let n = match n.as_str() {
                "device_code" => GrantType::DeviceCode.as_str(),
                other => other,
            };
            GrantType::parse(n).ok_or_else(|| {
                OpError::Refused(Rejection::ClientInvalid(format!(
                    "unknown grant type {n}: use authorization_code, refresh_token, client_credentials or device_code"
                )))
            })
        })
        .collect()
}

/// Registers a client; a confidential one's secret is in the answer, once.
pub async fn add(
    engine: &Engine,
    keys: &MfaKeys,
    body: AddClient,
) -> Result<ClientWithSecret, OpError> {
    let registration = ClientRegistration {
        name: body.name.unwrap_or_default(),
        kind: if body.public {
            ClientKind::Public
        } else {
            ClientKind::Confidential
        },
        grant_types: parse_grants(&body.grant_types)?,
        client_id: body.client_id,
        redirect_uris: body.redirect_uris,
        scopes: body.scopes,
    };
    tracing::info!(operator = %body.operator, client = %registration.client_id, "operator action: client added");
    let done = engine
        .execute(RegisterClient {
            registration,
            keys: keys.clone(),
            by: Actor::Operator {
                name: body.operator,
            },
        })
        .await?
        .reply
        .map_err(OpError::Refused)?;
    with_secret(engine, &done.client_id, done.secret)
}

fn with_secret(
    engine: &Engine,
    client_id: &str,
    secret: Option<tessera_core::secret::BearerSecret>,
) -> Result<ClientWithSecret, OpError> {
    Ok(ClientWithSecret {
        client: show(engine, client_id)?,
        client_secret: secret.map(|s| zeroize::Zeroizing::new(s.expose().to_owned())),
    })
}

/// A new secret for a confidential client; the current one works for `overlap_secs` more.
pub async fn rotate_secret(
    engine: &Engine,
    keys: &MfaKeys,
    client_id: &str,
    body: RotateSecret,
) -> Result<ClientWithSecret, OpError> {
    tracing::info!(operator = %body.operator, client = client_id, "operator action: client secret rotated");
    let done = engine
        .execute(RotateClientSecret {
            client_id: client_id.to_owned(),
            overlap_secs: body.overlap_secs,
            keys: keys.clone(),
            by: Actor::Operator {
                name: body.operator,
            },
        })
        .await?
        .reply
        .map_err(OpError::Refused)?;
    with_secret(engine, &done.client_id, done.secret)
}

/// Removes a client: its grants, families and tokens go with it.
pub async fn remove(engine: &Engine, client_id: &str, operator: &str) -> Result<(), OpError> {
    tracing::info!(
        operator,
        client = client_id,
        "operator action: client removed"
    );
    engine
        .execute(RemoveClient {
            client_id: client_id.to_owned(),
            by: Actor::Operator {
                name: operator.to_owned(),
            },
        })
        .await?
        .reply
        .map_err(OpError::Refused)
}
