//! The OAuth views: clients, grants, authorization codes, device authorizations, wrong
//! user-code entries and revoked client tokens.
//!
//! Persisted records: one per [`OAuthKey`], all in one tree. Derived on load: device
//! authorizations by user code, and one expiry index over everything dropped with time
//! (codes and device authorizations after [`crate::oauth::CODE_KEPT_MS`], strikes after
//! their window, revoked client tokens after their expiry). Dropping uses only recorded
//! times, so a rebuild drops exactly what the writer dropped.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{ApplyError, ViewKey, ViewRecord, Views};
use crate::event::Event;
use crate::oauth::{
    ClientView, CodeView, DeviceStatus, DeviceView, GrantView, USER_CODE_WINDOW_MS,
    UserCodeStrikeKey, client::ClientSecretView,
};
use crate::refresh::FamilyView;
use crate::secret::SecretDigest;
use crate::token::REVOCATION_MARGIN_MS;
use crate::{AccountId, Timestamp, TokenId};

/// The key of one persisted OAuth record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OAuthKey {
    /// A client, by id.
    Client(String),
    /// A grant, by account and client.
    Grant(AccountId, String),
    /// An authorization code, by digest.
    Code(SecretDigest),
    /// A device authorization, by device-code digest.
    Device(SecretDigest),
    /// Wrong user-code entries of a session or an address.
    UserCodeStrikes(UserCodeStrikeKey),
    /// A revoked client-credentials token, by jti.
    RevokedClientToken(TokenId),
}

/// A revoked client-credentials token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedClientToken {
    /// Its `jti`.
    pub jti: TokenId,
    /// Its client.
    pub client_id: String,
    /// Its `exp`.
    pub expires_at: Timestamp,
}

/// One persisted OAuth record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OAuthRecord {
    /// Under [`OAuthKey::Client`].
    Client(ClientView),
    /// Under [`OAuthKey::Grant`].
    Grant(GrantView),
    /// Under [`OAuthKey::Code`].
    Code(CodeView),
    /// Under [`OAuthKey::Device`].
    Device(DeviceView),
    /// Under [`OAuthKey::UserCodeStrikes`]: the times of the wrong entries in the window.
    UserCodeStrikes(Vec<Timestamp>),
    /// Under [`OAuthKey::RevokedClientToken`].
    RevokedClientToken(RevokedClientToken),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OAuthViews {
    pub(crate) clients: HashMap<String, ClientView>,
    pub(crate) grants: HashMap<(AccountId, String), GrantView>,
    pub(crate) codes: HashMap<SecretDigest, CodeView>,
    pub(crate) devices: HashMap<SecretDigest, DeviceView>,
    pub(crate) strikes: HashMap<UserCodeStrikeKey, Vec<Timestamp>>,
    pub(crate) revoked_client_tokens: HashMap<TokenId, RevokedClientToken>,
    /// Derived: device authorizations by normalised user code.
    pub(crate) user_codes: HashMap<String, SecretDigest>,
    /// Derived: when each dropped-with-time record goes.
    pub(crate) expiry: BTreeSet<(Timestamp, OAuthKey)>,
}

fn strikes_drop_at(times: &[Timestamp]) -> Option<Timestamp> {
    times.iter().max().map(|t| t.plus_ms(USER_CODE_WINDOW_MS))
}

impl Views {
    /// The registered client with this id.
    pub fn client(&self, id: &str) -> Option<&ClientView> {
        self.oauth.clients.get(id)
    }

    /// Every registered client, sorted by id.
    pub fn clients(&self) -> Vec<&ClientView> {
        let mut v: Vec<&ClientView> = self.oauth.clients.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The account's grant to `client_id`, if it has one.
    pub fn grant(&self, account: &AccountId, client_id: &str) -> Option<&GrantView> {
        self.oauth.grants.get(&(*account, client_id.to_owned()))
    }

    /// The account's grants, sorted by client id (GET /v1/grants).
    pub fn grants_of(&self, account: &AccountId) -> Vec<&GrantView> {
        let mut v: Vec<&GrantView> = self
            .oauth
            .grants
            .values()
            .filter(|g| g.account == *account)
            .collect();
        v.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        v
    }

    /// Whether the account has already consented to every scope in `scopes` for
    /// `client_id`: if so, the authorize page skips the consent page.
    pub fn grant_covers(
        &self,
        account: &AccountId,
        client_id: &str,
        scopes: &BTreeSet<String>,
    ) -> bool {
        self.grant(account, client_id)
            .is_some_and(|g| scopes.is_subset(&g.scopes))
    }

    /// The authorization code with this digest, while the views keep it.
    pub fn code(&self, digest: &SecretDigest) -> Option<&CodeView> {
        self.oauth.codes.get(digest)
    }

    /// The device authorization with this device-code digest, while the views keep it.
    pub fn device(&self, digest: &SecretDigest) -> Option<&DeviceView> {
        self.oauth.devices.get(digest)
    }

    /// The device authorization with this normalised user code
    /// ([`crate::oauth::normalise_user_code`]), while the views keep it: check
    /// [`DeviceView::awaits_user`].
    pub fn device_by_user_code(&self, normalised: &str) -> Option<&DeviceView> {
        self.oauth
            .user_codes
            .get(normalised)
            .and_then(|d| self.oauth.devices.get(d))
    }

    /// The wrong user-code entries recorded under `key` within the window.
    pub fn user_code_strikes(&self, key: &UserCodeStrikeKey) -> &[Timestamp] {
        self.oauth.strikes.get(key).map_or(&[], Vec::as_slice)
    }

    /// Whether a client-credentials token with this jti was revoked.
    pub fn client_token_revoked(&self, jti: &TokenId) -> bool {
        self.oauth.revoked_client_tokens.contains_key(jti)
    }

    /// The refresh families issued to `client_id`, live or not yet dropped.
    pub fn families_of_client<'a>(
        &'a self,
        client_id: &'a str,
    ) -> impl Iterator<Item = &'a FamilyView> + 'a {
        self.families
            .values()
            .filter(move |f| f.client_id.as_deref() == Some(client_id))
    }

    pub(super) fn oauth_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        let o = &self.oauth;
        o.clients
            .keys()
            .map(|k| OAuthKey::Client(k.clone()))
            .chain(o.grants.keys().map(|(a, c)| OAuthKey::Grant(*a, c.clone())))
            .chain(o.codes.keys().map(|k| OAuthKey::Code(*k)))
            .chain(o.devices.keys().map(|k| OAuthKey::Device(*k)))
            .chain(o.strikes.keys().map(|k| OAuthKey::UserCodeStrikes(*k)))
            .chain(
                o.revoked_client_tokens
                    .keys()
                    .map(|k| OAuthKey::RevokedClientToken(*k)),
            )
            .map(ViewKey::OAuth)
    }

    pub(super) fn oauth_record(&self, key: &OAuthKey) -> Option<ViewRecord> {
        let o = &self.oauth;
        let record = match key {
            OAuthKey::Client(id) => OAuthRecord::Client(o.clients.get(id)?.clone()),
            OAuthKey::Grant(a, c) => OAuthRecord::Grant(o.grants.get(&(*a, c.clone()))?.clone()),
            OAuthKey::Code(d) => OAuthRecord::Code(o.codes.get(d)?.clone()),
            OAuthKey::Device(d) => OAuthRecord::Device(o.devices.get(d)?.clone()),
            OAuthKey::UserCodeStrikes(k) => OAuthRecord::UserCodeStrikes(o.strikes.get(k)?.clone()),
            OAuthKey::RevokedClientToken(j) => {
                OAuthRecord::RevokedClientToken(o.revoked_client_tokens.get(j)?.clone())
            }
        };
        Some(ViewRecord::OAuth(record))
    }

    /// Loads one OAuth record, deriving the indexes.
    pub(super) fn load_oauth(
        &mut self,
        key: OAuthKey,
        record: OAuthRecord,
    ) -> Result<(), ApplyError> {
        let mismatch = || ApplyError {
            kind: "load",
            why: format!("record does not match its key {key:?}"),
        };
        let o = &mut self.oauth;
        match (&key, record) {
            (OAuthKey::Client(id), OAuthRecord::Client(c)) if *id == c.id => {
                o.clients.insert(c.id.clone(), c);
            }
            (OAuthKey::Grant(a, id), OAuthRecord::Grant(g))
                if *a == g.account && *id == g.client_id =>
            {
                o.grants.insert((*a, id.clone()), g);
            }
            (OAuthKey::Code(d), OAuthRecord::Code(c)) if *d == c.digest => {
                o.expiry.insert((c.drop_at(), key.clone()));
                o.codes.insert(*d, c);
            }
            (OAuthKey::Device(d), OAuthRecord::Device(v)) if *d == v.digest => {
                o.expiry.insert((v.drop_at(), key.clone()));
                o.user_codes.insert(v.user_code.clone(), *d);
                o.devices.insert(*d, v);
            }
            (OAuthKey::UserCodeStrikes(k), OAuthRecord::UserCodeStrikes(times)) => {
                let at = strikes_drop_at(&times).ok_or_else(mismatch)?;
                o.expiry.insert((at, key.clone()));
                o.strikes.insert(*k, times);
            }
            (OAuthKey::RevokedClientToken(j), OAuthRecord::RevokedClientToken(r))
                if *j == r.jti =>
            {
                o.expiry
                    .insert((r.expires_at.plus_ms(REVOCATION_MARGIN_MS), key.clone()));
                o.revoked_client_tokens.insert(*j, r);
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    /// Drops what has outlived its use at `at`.
    pub(super) fn drop_expired_oauth(&mut self, at: Timestamp, touched: &mut Vec<ViewKey>) {
        let o = &mut self.oauth;
        while let Some((when, _)) = o.expiry.first() {
            if *when > at {
                break;
            }
            let Some((_, key)) = o.expiry.pop_first() else {
                break;
            };
            match &key {
                OAuthKey::Code(d) => {
                    o.codes.remove(d);
                }
                OAuthKey::Device(d) => {
                    if let Some(v) = o.devices.remove(d)
                        && o.user_codes.get(&v.user_code) == Some(d)
                    {
                        o.user_codes.remove(&v.user_code);
                    }
                }
                OAuthKey::UserCodeStrikes(k) => {
                    o.strikes.remove(k);
                }
                OAuthKey::RevokedClientToken(j) => {
                    o.revoked_client_tokens.remove(j);
                }
                OAuthKey::Client(_) | OAuthKey::Grant(..) => continue,
            }
            touched.push(ViewKey::OAuth(key));
        }
    }

    /// Folds an OAuth event (routed here by [`Views::apply`]).
    pub(super) fn apply_oauth(
        &mut self,
        at: Timestamp,
        event: &Event,
        touched: &mut Vec<ViewKey>,
    ) -> Result<(), ApplyError> {
        let fail = ApplyError::about(event);
        let o = &mut self.oauth;
        match event {
            Event::ClientRegistered {
                client_id,
                name,
                kind,
                secret,
                redirect_uris,
                grant_types,
                scopes,
                ..
            } => {
                if o.clients.contains_key(client_id) {
                    return Err(fail("client already registered"));
                }
                o.clients.insert(
                    client_id.clone(),
                    ClientView {
                        id: client_id.clone(),
                        name: name.clone(),
                        kind: *kind,
                        secrets: secret
                            .iter()
                            .map(|d| ClientSecretView {
                                digest: *d,
                                valid_until: None,
                            })
                            .collect(),
                        redirect_uris: redirect_uris.clone(),
                        grant_types: grant_types.iter().copied().collect(),
                        scopes: scopes.iter().cloned().collect(),
                        registered_at: at,
                    },
                );
                touched.push(ViewKey::OAuth(OAuthKey::Client(client_id.clone())));
            }
            Event::ClientSecretRotated {
                client_id,
                secret,
                previous_valid_until,
                ..
            } => {
                let c = o
                    .clients
                    .get_mut(client_id)
                    .ok_or_else(|| fail("unknown client"))?;
                // Only the secret current until now keeps an overlap; older ones stop.
                c.secrets.retain(|s| s.valid_until.is_none());
                for s in &mut c.secrets {
                    s.valid_until = Some(*previous_valid_until);
                }
                c.secrets.retain(|s| s.valid_until.is_some_and(|u| u > at));
                c.secrets.push(ClientSecretView {
                    digest: *secret,
                    valid_until: None,
                });
                touched.push(ViewKey::OAuth(OAuthKey::Client(client_id.clone())));
            }
            Event::ClientRemoved { client_id, .. } => {
                o.clients
                    .remove(client_id)
                    .ok_or_else(|| fail("unknown client"))?;
                touched.push(ViewKey::OAuth(OAuthKey::Client(client_id.clone())));
                let gone: Vec<(AccountId, String)> = o
                    .grants
                    .keys()
                    .filter(|(_, c)| c == client_id)
                    .cloned()
                    .collect();
                for k in gone {
                    o.grants.remove(&k);
                    touched.push(ViewKey::OAuth(OAuthKey::Grant(k.0, k.1)));
                }
            }
            Event::ConsentGranted {
                account,
                client_id,
                scope,
            } => {
                if !o.clients.contains_key(client_id) || !self.accounts.contains_key(account) {
                    return Err(fail("unknown client or account"));
                }
                let scopes = crate::oauth::scope::parse(scope).ok_or_else(|| fail("bad scope"))?;
                let g = o
                    .grants
                    .entry((*account, client_id.clone()))
                    .or_insert_with(|| GrantView {
                        account: *account,
                        client_id: client_id.clone(),
                        scopes: BTreeSet::new(),
                        granted_at: at,
                        updated_at: at,
                    });
                g.scopes.extend(scopes);
                g.updated_at = at;
                touched.push(ViewKey::OAuth(OAuthKey::Grant(*account, client_id.clone())));
            }
            Event::GrantRevoked {
                account, client_id, ..
            } => {
                o.grants
                    .remove(&(*account, client_id.clone()))
                    .ok_or_else(|| fail("unknown grant"))?;
                touched.push(ViewKey::OAuth(OAuthKey::Grant(*account, client_id.clone())));
            }
            Event::AuthorizationCodeIssued {
                code,
                client_id,
                account,
                redirect_uri,
                scope,
                code_challenge,
                expires_at,
            } => {
                if o.codes.contains_key(code) {
                    return Err(fail("duplicate code"));
                }
                let view = CodeView {
                    digest: *code,
                    client_id: client_id.clone(),
                    account: *account,
                    redirect_uri: redirect_uri.clone(),
                    scope: scope.clone(),
                    code_challenge: code_challenge.clone(),
                    issued_at: at,
                    expires_at: *expires_at,
                    redeemed: None,
                };
                o.expiry.insert((view.drop_at(), OAuthKey::Code(*code)));
                o.codes.insert(*code, view);
                touched.push(ViewKey::OAuth(OAuthKey::Code(*code)));
            }
            Event::AuthorizationCodeRedeemed { code, family } => {
                let c = o.codes.get_mut(code).ok_or_else(|| fail("unknown code"))?;
                if c.redeemed.is_some() {
                    return Err(fail("code already redeemed"));
                }
                c.redeemed = Some(*family);
                touched.push(ViewKey::OAuth(OAuthKey::Code(*code)));
            }
            Event::AuthorizationCodeReplayed { code } => {
                o.codes
                    .get(code)
                    .filter(|c| c.redeemed.is_some())
                    .ok_or_else(|| fail("unknown or unredeemed code"))?;
            }
            Event::DeviceAuthorizationStarted {
                device,
                user_code,
                client_id,
                scope,
                address,
                interval_secs,
                expires_at,
            } => {
                if o.devices.contains_key(device) || o.user_codes.contains_key(user_code) {
                    return Err(fail("duplicate device or user code"));
                }
                let view = DeviceView {
                    digest: *device,
                    user_code: user_code.clone(),
                    client_id: client_id.clone(),
                    scope: scope.clone(),
                    address: *address,
                    issued_at: at,
                    expires_at: *expires_at,
                    interval_secs: *interval_secs,
                    last_poll_at: None,
                    status: DeviceStatus::Pending,
                };
                o.expiry.insert((view.drop_at(), OAuthKey::Device(*device)));
                o.user_codes.insert(user_code.clone(), *device);
                o.devices.insert(*device, view);
                touched.push(ViewKey::OAuth(OAuthKey::Device(*device)));
            }
            Event::DeviceCodePolled {
                device,
                interval_secs,
                ..
            } => {
                let d = o
                    .devices
                    .get_mut(device)
                    .ok_or_else(|| fail("unknown device"))?;
                d.last_poll_at = Some(at);
                d.interval_secs = *interval_secs;
                touched.push(ViewKey::OAuth(OAuthKey::Device(*device)));
            }
            Event::DeviceAuthorizationApproved { device, account } => {
                let d = o
                    .devices
                    .get_mut(device)
                    .ok_or_else(|| fail("unknown device"))?;
                if d.status != DeviceStatus::Pending {
                    return Err(fail("device not pending"));
                }
                d.status = DeviceStatus::Approved { account: *account };
                touched.push(ViewKey::OAuth(OAuthKey::Device(*device)));
            }
            Event::DeviceAuthorizationDenied { device, .. } => {
                let d = o
                    .devices
                    .get_mut(device)
                    .ok_or_else(|| fail("unknown device"))?;
                if d.status != DeviceStatus::Pending {
                    return Err(fail("device not pending"));
                }
                d.status = DeviceStatus::Denied;
                touched.push(ViewKey::OAuth(OAuthKey::Device(*device)));
            }
            Event::DeviceCodeRedeemed { device, family } => {
                let d = o
                    .devices
                    .get_mut(device)
                    .ok_or_else(|| fail("unknown device"))?;
                if !matches!(d.status, DeviceStatus::Approved { .. }) {
                    return Err(fail("device not approved"));
                }
                d.status = DeviceStatus::Redeemed { family: *family };
                touched.push(ViewKey::OAuth(OAuthKey::Device(*device)));
            }
            Event::DeviceUserCodeFailed { session, address } => {
                let keys = session
                    .map(UserCodeStrikeKey::Session)
                    .into_iter()
                    .chain(address.map(UserCodeStrikeKey::Address));
                for k in keys {
                    let times = o.strikes.entry(k).or_default();
                    if let Some(old) = strikes_drop_at(times) {
                        o.expiry.remove(&(old, OAuthKey::UserCodeStrikes(k)));
                    }
                    times.retain(|t| at.since(*t) < USER_CODE_WINDOW_MS);
                    times.push(at);
                    o.expiry.insert((
                        at.plus_ms(USER_CODE_WINDOW_MS),
                        OAuthKey::UserCodeStrikes(k),
                    ));
                    touched.push(ViewKey::OAuth(OAuthKey::UserCodeStrikes(k)));
                }
            }
            Event::ClientAccessTokenRevoked {
                client_id,
                jti,
                expires_at,
            } => {
                let r = RevokedClientToken {
                    jti: *jti,
                    client_id: client_id.clone(),
                    expires_at: *expires_at,
                };
                o.expiry.insert((
                    expires_at.plus_ms(REVOCATION_MARGIN_MS),
                    OAuthKey::RevokedClientToken(*jti),
                ));
                o.revoked_client_tokens.insert(*jti, r);
                touched.push(ViewKey::OAuth(OAuthKey::RevokedClientToken(*jti)));
            }
            _ => return Err(fail("not an OAuth event")),
        }
        Ok(())
    }

    /// Checks one OAuth record and its index entries.
    pub(crate) fn check_oauth_record(&self, key: &OAuthKey) -> Result<(), String> {
        let o = &self.oauth;
        let ok = match key {
            OAuthKey::Client(id) => o.clients.get(id).is_none_or(|c| c.id == *id),
            OAuthKey::Grant(a, id) => o.grants.get(&(*a, id.clone())).is_none_or(|g| {
                g.account == *a && g.client_id == *id && o.clients.contains_key(id)
            }),
            OAuthKey::Code(d) => o
                .codes
                .get(d)
                .is_none_or(|c| c.digest == *d && o.expiry.contains(&(c.drop_at(), key.clone()))),
            OAuthKey::Device(d) => o.devices.get(d).is_none_or(|v| {
                v.digest == *d
                    && o.user_codes.get(&v.user_code) == Some(d)
                    && o.expiry.contains(&(v.drop_at(), key.clone()))
            }),
            OAuthKey::UserCodeStrikes(k) => o.strikes.get(k).is_none_or(|t| {
                !t.is_empty()
                    && strikes_drop_at(t).is_some_and(|at| o.expiry.contains(&(at, key.clone())))
            }),
            OAuthKey::RevokedClientToken(j) => {
                o.revoked_client_tokens.get(j).is_none_or(|r| r.jti == *j)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{key:?}: record, key or index disagree"))
        }
    }

    /// Checks every OAuth record.
    pub(crate) fn check_oauth_invariants(&self) -> Result<(), String> {
        self.oauth_keys().try_for_each(|k| match k {
            ViewKey::OAuth(k) => self.check_oauth_record(&k),
            _ => Ok(()),
        })?;
        if self.oauth.user_codes.len() != self.oauth.devices.len() {
            return Err("user-code index and device authorizations differ".into());
        }
        Ok(())
    }
}
