//! Registered OAuth clients (RFC 6749 §2): confidential ones with a secret, public ones
//! without; exact redirect URIs; the grant types and scopes each may use.
//!
//! Redirect URIs are registered in full and compared as strings (RFC 9700 §4.1.3): no
//! wildcards, no fragments, no userinfo, no dot segments. The one exception is RFC 8252
//! §7.3: a native app's loopback URI (`http://127.0.0.1…` or `http://[::1]…`) matches
//! whatever port the app opened, and nothing else may differ.
//!
//! Client secrets are `tcs_` + 43 base64url characters (256 bits), shown once. The log keeps
//! their keyed digest ([`crate::mfa::MfaKeys::client_secret_digest`]). Rotating a secret
//! keeps the previous one valid until the overlap the operator chose ends.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{CLIENT_SECRET_PREFIX, scope};
use crate::decide::{Decide, Decision};
use crate::event::{Actor, Event, FamilyRevokeReason, Pending};
use crate::mfa::MfaKeys;
use crate::secret::BearerSecret;
use crate::{Env, Rejection, Timestamp, Views};

/// Longest client id.
pub const CLIENT_ID_BYTES_MAX: usize = 64;
/// Longest redirect URI.
pub const REDIRECT_URI_BYTES_MAX: usize = 512;
/// Most redirect URIs per client.
pub const REDIRECT_URIS_MAX: usize = 16;
/// Longest secret-rotation overlap an operator may choose: 30 days.
pub const ROTATION_OVERLAP_SECS_MAX: u64 = 30 * 86_400;

/// Whether the client can keep a secret (RFC 6749 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientKind {
    /// A server-side client with a secret (`client_secret_basic` or `client_secret_post`).
    Confidential,
    /// A native or browser app: no secret; PKCE alone binds its codes.
    Public,
}

impl ClientKind {
    /// `confidential` or `public`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }
}

/// A grant type a client may be allowed. Recorded in events: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GrantType {
    /// `authorization_code` (RFC 6749 §4.1 with RFC 7636).
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `client_credentials` (RFC 6749 §4.4): confidential clients only.
    ClientCredentials,
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628).
    DeviceCode,
}

impl GrantType {
    /// Every grant type, in the order the metadata lists them.
    pub const ALL: [GrantType; 4] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::DeviceCode,
    ];

    /// The `grant_type` parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    /// The grant type named `name`, if we support it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// The keyed digest of a client secret: what events and views hold.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientSecretDigest(pub [u8; 32]);

impl std::fmt::Debug for ClientSecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = self.0.get(..6).unwrap_or_default();
        write!(
            f,
            "ClientSecretDigest({}…)",
            data_encoding::HEXLOWER.encode(short)
        )
    }
}

/// One accepted secret of a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecretView {
    /// Its keyed digest.
    pub digest: ClientSecretDigest,
    /// `None` for the current secret; the end of the overlap for a rotated-out one.
    pub valid_until: Option<Timestamp>,
}

/// A registered client, as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    /// The `client_id`.
    pub id: String,
    /// The name shown on consent and device pages.
    pub name: String,
    /// Confidential or public.
    pub kind: ClientKind,
    /// The secrets accepted now or until their overlap ends (none for a public client).
    pub secrets: Vec<ClientSecretView>,
    /// The registered redirect URIs, compared exactly.
    pub redirect_uris: Vec<String>,
    /// The grant types it may use.
    pub grant_types: BTreeSet<GrantType>,
    /// The scopes it may be granted.
    pub scopes: BTreeSet<String>,
    /// When it was registered.
    pub registered_at: Timestamp,
}

impl ClientView {
    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// The registered redirect URI that `presented` matches, if any ([`redirect_uri_matches`]).
    pub fn redirect_uri_for(&self, presented: &str) -> Option<&str> {
        self.redirect_uris
            .iter()
            .find(|r| redirect_uri_matches(r, presented))
            .map(String::as_str)
    }

    /// Whether `digest` is one of its secrets accepted at `now`, compared in constant time.
    pub fn secret_accepted(&self, digest: &ClientSecretDigest, now: Timestamp) -> bool {
        let mut ok = subtle::Choice::from(0);
        for s in &self.secrets {
            let live = s.valid_until.is_none_or(|until| now < until);
            ok |= s.digest.0.ct_eq(&digest.0) & subtle::Choice::from(u8::from(live));
        }
        bool::from(ok)
    }
}

/// A client as an operator registers it (`tessera client add`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRegistration {
    /// The `client_id`: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub client_id: String,
    /// The name shown to users; defaults to the id.
    pub name: String,
    /// Confidential (gets a secret) or public.
    pub kind: ClientKind,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Allowed grant types.
    pub grant_types: Vec<GrantType>,
    /// Allowed scopes.
    pub scopes: Vec<String>,
}

/// What is wrong with a client registration, for the operator.
fn invalid(why: impl Into<String>) -> Rejection {
    Rejection::ClientInvalid(why.into())
}

/// Whether `id` is a valid client id.
pub fn client_id_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= CLIENT_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

const LOOPBACK_PREFIXES: [&str; 2] = ["http://127.0.0.1", "http://[::1]"];

/// Checks a redirect URI an operator registers: absolute, no fragment, wildcard, userinfo,
/// whitespace, backslash or dot segment; `https`, `http` on a loopback address only
/// (RFC 8252 §7.3), or a private-use scheme with a dot (RFC 8252 §7.1).
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() || uri.len() > REDIRECT_URI_BYTES_MAX {
        return Err(format!(
            "a redirect URI must have 1 to {REDIRECT_URI_BYTES_MAX} bytes"
        ));
    }
    if uri
        .bytes()
        .any(|b| !(0x21..=0x7E).contains(&b) || b == b'\\')
    {
        return Err(format!(
            "{uri}: spaces, control characters and backslashes are not allowed"
        ));
    }
    if uri.contains('#') || uri.contains('*') {
        return Err(format!("{uri}: fragments and wildcards are not allowed"));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(format!("{uri}: not an absolute URI"));
    };
    let path = if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let (authority, path) = after.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "{uri}: a host is required and userinfo is not allowed"
            ));
        }
        path
    } else {
        rest
    };
    let path_only = path.split('?').next().unwrap_or_default();
    if path_only.split('/').any(|seg| seg == ".." || seg == ".") || path_only.contains(';') {
        return Err(format!(
            "{uri}: dot segments and `;` are not allowed in the path"
        ));
    }
    match scheme {
        "https" if rest.starts_with("//") => Ok(()),
        "http"
            if LOOPBACK_PREFIXES
                .iter()
                .any(|p| loopback_rest(uri, p).is_some()) =>
        {
            Ok(())
        }
        "http" => Err(format!(
            "{uri}: plain http is only allowed on 127.0.0.1 or [::1] (use https)"
        )),
        s if s.contains('.')
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+')
            }) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{uri}: use https, http on a loopback address, or a reverse-domain private-use scheme"
        )),
    }
}

/// For a loopback URI starting with `prefix`: what follows the optional port, if that is a
/// path, a query or nothing. `None` when `uri` does not start with `prefix`, the port is
/// not a number, or anything but a path follows (`@`, another host).
fn loopback_rest<'a>(uri: &'a str, prefix: &str) -> Option<&'a str> {
    let after = uri.strip_prefix(prefix)?;
    let rest = match after.strip_prefix(':') {
        Some(port_and_rest) => {
            let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
            let (port, rest) = port_and_rest.split_at(digits);
            port.parse::<u16>().ok().filter(|p| *p != 0)?;
            rest
        }
        None => after,
    };
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then_some(rest)
}

/// Whether a presented redirect URI matches a registered one: the same string, or, for a
/// loopback registration, the same string but for the port (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered.as_bytes().ct_eq(presented.as_bytes()).into() {
        return true;
    }
    LOOPBACK_PREFIXES.iter().any(|prefix| {
        match (
            loopback_rest(registered, prefix),
            loopback_rest(presented, prefix),
        ) {
            (Some(r), Some(p)) => r == p,
            _ => false,
        }
    })
}

impl ClientRegistration {
    /// Checks the registration and puts it in canonical form.
    pub fn validate(mut self) -> Result<Self, Rejection> {
        if !client_id_valid(&self.client_id) {
            return Err(invalid(format!(
                "a client id has 1 to {CLIENT_ID_BYTES_MAX} of A-Z a-z 0-9 . _ -"
            )));
        }
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() {
            self.name.clone_from(&self.client_id);
        }
        if self.name.len() > 100 || self.name.chars().any(char::is_control) {
            return Err(invalid(
                "a client name has at most 100 printable characters",
            ));
        }
        let grants: BTreeSet<GrantType> = self.grant_types.iter().copied().collect();
        if grants.is_empty() {
            return Err(invalid("allow at least one grant type"));
        }
        if self.kind == ClientKind::Public && grants.contains(&GrantType::ClientCredentials) {
            return Err(invalid(
                "a public client cannot use client_credentials: it has no secret",
            ));
        }
        if grants.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(invalid(
                "authorization_code needs at least one redirect URI",
            ));
        }
        if self.redirect_uris.len() > REDIRECT_URIS_MAX {
            return Err(invalid(format!(
                "at most {REDIRECT_URIS_MAX} redirect URIs"
            )));
        }
        for uri in &self.redirect_uris {
            check_redirect_uri(uri).map_err(invalid)?;
        }
        if self.scopes.is_empty() {
            return Err(invalid("register at least one scope (--scope)"));
        }
        let scopes = scope::parse(&self.scopes.join(" ")).ok_or_else(|| {
            invalid("scopes are tokens of printable ASCII without spaces, quotes or backslashes")
        })?;
        self.grant_types = grants.into_iter().collect();
        self.scopes = scopes.into_iter().collect();
        let mut uris = Vec::new();
        for u in self.redirect_uris {
            if !uris.contains(&u) {
                uris.push(u);
            }
        }
        self.redirect_uris = uris;
        Ok(self)
    }
}

/// A registered client and, for a confidential one, its secret, shown once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRegistered {
    /// The client's id.
    pub client_id: String,
    /// The secret: shown to the operator once, never recorded.
    pub secret: Option<BearerSecret>,
}

/// Register a client (an operator's action). Carries the server keys, which digest the
/// secret; the secret itself is drawn from the environment and shown once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterClient {
    /// What to register; validated again by the decision.
    pub registration: ClientRegistration,
    /// The server keys the secret digest is made under.
    pub keys: MfaKeys,
    /// Who registers it.
    pub by: Actor,
}

impl Decide for RegisterClient {
    type Reply = ClientRegistered;

    fn kind(&self) -> &'static str {
        "register_client"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<ClientRegistered> {
        let reg = match self.registration.validate() {
            Ok(r) => r,
            Err(r) => return Decision::refuse(vec![], r),
        };
        if views.client(&reg.client_id).is_some() {
            return Decision::refuse(vec![], Rejection::ClientExists);
        }
        let (secret, digest) = match reg.kind {
            ClientKind::Confidential => {
                let (s, _) = BearerSecret::generate(CLIENT_SECRET_PREFIX, env);
                let d = self.keys.client_secret_digest(&reg.client_id, s.expose());
                (Some(s), Some(d))
            }
            ClientKind::Public => (None, None),
        };
        let event = Event::ClientRegistered {
            client_id: reg.client_id.clone(),
            name: reg.name,
            kind: reg.kind,
            secret: digest,
            redirect_uris: reg.redirect_uris,
            grant_types: reg.grant_types,
            scopes: reg.scopes,
            by: self.by,
        };
        Decision::ok(
            vec![event.into()],
            ClientRegistered {
                client_id: reg.client_id,
                secret,
            },
        )
    }
}

/// Give a confidential client a new secret; the current one stays valid for
/// `overlap_secs` (0: it stops at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotateClientSecret {
    /// The client.
    pub client_id: String,
    /// How long the current secret keeps working.
    pub overlap_secs: u64,
    /// The server keys the new digest is made under.
    pub keys: MfaKeys,
    /// Who rotates it.
    pub by: Actor,
}

impl Decide for RotateClientSecret {
    type Reply = ClientRegistered;

    fn kind(&self) -> &'static str {
        "rotate_client_secret"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<ClientRegistered> {
        let Some(client) = views.client(&self.client_id) else {
            return Decision::refuse(vec![], Rejection::ClientNotFound);
        };
        if client.kind != ClientKind::Confidential {
            return Decision::refuse(vec![], invalid("a public client has no secret to rotate"));
        }
        if self.overlap_secs > ROTATION_OVERLAP_SECS_MAX {
            return Decision::refuse(
                vec![],
                invalid(format!(
                    "the overlap is at most {ROTATION_OVERLAP_SECS_MAX} seconds"
                )),
            );
        }
        let (secret, _) = BearerSecret::generate(CLIENT_SECRET_PREFIX, env);
        let digest = self.keys.client_secret_digest(&client.id, secret.expose());
        let event = Event::ClientSecretRotated {
            client_id: client.id.clone(),
            secret: digest,
            previous_valid_until: env.now.plus_ms(self.overlap_secs.saturating_mul(1000)),
            by: self.by,
        };
        Decision::ok(
            vec![event.into()],
            ClientRegistered {
                client_id: client.id.clone(),
                secret: Some(secret),
            },
        )
    }
}

/// Remove a client: its grants go with it, every refresh family issued to it is revoked,
/// and its client-credentials tokens stop working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveClient {
    /// The client.
    pub client_id: String,
    /// Who removes it.
    pub by: Actor,
}

impl Decide for RemoveClient {
    type Reply = ();

    fn kind(&self) -> &'static str {
        "remove_client"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        let Some(client) = views.client(&self.client_id) else {
            return Decision::refuse(vec![], Rejection::ClientNotFound);
        };
        let mut events: Vec<Pending> = views
            .families_of_client(&client.id)
            .filter(|f| f.is_live(env.now))
            .map(|f| {
                Event::RefreshFamilyRevoked {
                    family: f.id,
                    reason: FamilyRevokeReason::Revoked,
                }
                .into()
            })
            .collect();
        events.push(
            Event::ClientRemoved {
                client_id: client.id.clone(),
                by: self.by,
            }
            .into(),
        );
        Decision::ok(events, ())
    }
}

/// The client credentials a request carried: from HTTP Basic (`client_secret_basic`), from
/// the form (`client_secret_post`), or only a `client_id` (a public client).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The `client_id`.
    pub client_id: String,
    /// The secret, if one was sent.
    pub secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A client whose credentials checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedClient {
    /// Its id.
    pub client_id: String,
    /// Whether it proved a secret (confidential) or only named itself (public).
    pub kind: ClientKind,
}

/// Authenticates a client at `now` (RFC 6749 §2.3): a confidential client must present one
/// of its accepted secrets; a public client must present none. Unknown clients, wrong or
/// rotated-out secrets and a secret sent by a public client are all
/// [`Rejection::ClientAuthenticationFailed`] (`invalid_client`). Pure and cheap (one HMAC):
/// the adapter runs it under the views' read lock before building a command.
pub fn authenticate_client(
    views: &Views,
    keys: &MfaKeys,
    credentials: &ClientCredentials,
    now: Timestamp,
) -> Result<AuthenticatedClient, Rejection> {
    let fail = Rejection::ClientAuthenticationFailed;
    let client = views.client(&credentials.client_id);
    match (client, &credentials.secret) {
        (Some(c), Some(secret)) if c.kind == ClientKind::Confidential => {
            let digest = keys.client_secret_digest(&c.id, secret);
            if c.secret_accepted(&digest, now) {
                Ok(AuthenticatedClient {
                    client_id: c.id.clone(),
                    kind: c.kind,
                })
            } else {
                Err(fail)
            }
        }
        (Some(c), None) if c.kind == ClientKind::Public => Ok(AuthenticatedClient {
            client_id: c.id.clone(),
            kind: c.kind,
        }),
        (None, Some(secret)) => {
            // The same HMAC as for a known client, so that timing says nothing about
            // which client ids exist.
            let _ = keys.client_secret_digest(&credentials.client_id, secret);
            Err(fail)
        }
        _ => Err(fail),
    }
}
