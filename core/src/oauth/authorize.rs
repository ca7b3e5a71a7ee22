//! The authorization-code grant with PKCE (RFC 6749 §4.1, RFC 7636, RFC 9700 §2.1.1).
//!
//! ```text
//!   GET /oauth/authorize ─▶ validate_authorization(views, request)
//!        client unknown, redirect URI missing/unregistered/duplicated ─▶ Untrusted: a page,
//!                                                                        never a redirect
//!        anything else wrong (response_type, scope, state, PKCE) ─▶ Redirect with error, state, iss
//!        ok ─▶ ValidAuthorization ─▶ (login, MFA, consent pages)
//!   IssueAuthorizationCode ─▶ AuthorizationCodeIssued { code digest, client, redirect URI,
//!                             scope, S256 challenge, expires in 60 s } (+ ConsentGranted)
//!   POST /oauth/token grant_type=authorization_code
//!        ─▶ ExchangeAuthorizationCode (the writer: single use by construction)
//!             first use, same client, same redirect URI, SHA-256(verifier) = challenge
//!                 ─▶ AuthorizationCodeRedeemed + RefreshFamilyStarted ─▶ tokens
//!             used before ─▶ AuthorizationCodeReplayed + RefreshFamilyRevoked ─▶ invalid_grant
//! ```
//!
//! PKCE is required of every client, with S256 only: `plain` would hand the verifier to
//! whoever sees the authorization request (RFC 9700 §2.1.1). Every code therefore has a
//! challenge, so a verifier can never be sent for a code issued without one (the downgrade
//! of RFC 9700 §4.8.2).

use std::collections::BTreeSet;

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::client::GrantType;
use super::{CODE_PREFIX, CODE_TTL_MS, scope, with_query};
use crate::decide::{Decide, Decision};
use crate::event::{Event, FamilyRevokeReason};
use crate::refresh::TokensIssued;
use crate::secret::{BearerSecret, SecretDigest};
use crate::{AccountId, Env, FamilyId, Rejection, Timestamp, Views};

/// Longest `state` accepted.
pub const STATE_BYTES_MAX: usize = 512;
/// Shortest and longest PKCE verifier (RFC 7636 §4.1).
pub const VERIFIER_CHARS_MIN: usize = 43;
/// See [`VERIFIER_CHARS_MIN`].
pub const VERIFIER_CHARS_MAX: usize = 128;

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3), as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// `response_type`: must be `code`.
    pub response_type: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`: required, and matched exactly.
    pub redirect_uri: Option<String>,
    /// `scope`: within the client's; all of them when absent.
    pub scope: Option<String>,
    /// `state`: required, 1 to 512 printable ASCII characters, echoed back.
    pub state: Option<String>,
    /// `code_challenge`: 43 base64url characters (an S256 challenge).
    pub code_challenge: Option<String>,
    /// `code_challenge_method`: must be `S256`.
    pub code_challenge_method: Option<String>,
    /// Parameters given more than once (RFC 6749 §3.1 forbids it).
    pub repeated: Vec<String>,
}

impl AuthorizationRequest {
    /// The request from its query parameters, noting any given twice.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut req = Self::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "response_type" => &mut req.response_type,
                "client_id" => &mut req.client_id,
                "redirect_uri" => &mut req.redirect_uri,
                "scope" => &mut req.scope,
                "state" => &mut req.state,
                "code_challenge" => &mut req.code_challenge,
                "code_challenge_method" => &mut req.code_challenge_method,
                _ => continue,
            };
            if slot.is_some() {
                req.repeated.push(k.clone());
            }
            *slot = Some(v.clone());
        }
        req
    }
}

/// An authorization request that passed every check: what the login and consent pages show
/// and what [`IssueAuthorizationCode`] is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidAuthorization {
    /// The client.
    pub client_id: String,
    /// Its display name, for the consent page.
    pub client_name: String,
    /// The redirect URI as presented (it matched a registered one).
    pub redirect_uri: String,
    /// The scopes asked for, canonical.
    pub scopes: BTreeSet<String>,
    /// The client's `state`, echoed back.
    pub state: String,
    /// The S256 challenge.
    pub code_challenge: String,
}

impl ValidAuthorization {
    /// The scope string, canonical.
    pub fn scope(&self) -> String {
        scope::join(&self.scopes)
    }
}

/// Why an authorization request cannot go back to the client: shown on a page (RFC 6749
/// §4.1.2.1; RFC 9700 §4.11, no open redirect).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeProblem {
    /// No `client_id`, or one no client has.
    #[error("the application is unknown")]
    UnknownClient,
    /// No `redirect_uri`.
    #[error("the request names no redirect URI")]
    MissingRedirectUri,
    /// A `redirect_uri` the client did not register.
    #[error("the redirect URI is not registered for this application")]
    UnregisteredRedirectUri,
    /// `client_id` or `redirect_uri` given twice.
    #[error("the client or redirect URI is given more than once")]
    RepeatedParameter,
}

/// A refused authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Show it on a page; never redirect.
    Untrusted(AuthorizeProblem),
    /// Redirect back to the client with `error` (RFC 6749 §4.1.2.1), `state` and `iss`
    /// ([`AuthorizeError::redirect_location`]).
    Redirect {
        /// The verified redirect URI.
        redirect_uri: String,
        /// The RFC 6749 error code.
        error: &'static str,
        /// A human-readable description.
        description: &'static str,
        /// The client's `state`, if it sent one that can be echoed.
        state: Option<String>,
    },
}

impl AuthorizeError {
    /// For a redirect error: the `Location` to send the browser to, carrying `error`,
    /// `error_description`, `state` and `iss` (RFC 9207).
    pub fn redirect_location(&self, issuer: &str) -> Option<String> {
        match self {
            Self::Untrusted(_) => None,
            Self::Redirect {
                redirect_uri,
                error,
                description,
                state,
            } => {
                let mut params = vec![("error", *error), ("error_description", *description)];
                if let Some(s) = state {
                    params.push(("state", s.as_str()));
                }
                params.push(("iss", issuer));
                Some(with_query(redirect_uri, &params))
            }
        }
    }
}

/// Whether `s` is a well-formed S256 challenge: 43 base64url characters (a SHA-256).
fn challenge_well_formed(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `v` is a well-formed code verifier (RFC 7636 §4.1): 43 to 128 unreserved
/// characters.
pub fn verifier_well_formed(v: &str) -> bool {
    (VERIFIER_CHARS_MIN..=VERIFIER_CHARS_MAX).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))) (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()))
}

fn state_well_formed(s: &str) -> bool {
    !s.is_empty() && s.len() <= STATE_BYTES_MAX && s.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

/// Checks an authorization request against the registered clients. Pure; the authorize
/// page calls it first, under the views' read lock, and again when the user approves:
///
/// ```text
/// let valid = validate_authorization(&views, &AuthorizationRequest::from_pairs(&query))?;
/// // Err(Untrusted(p)): render an error page with `p`; Err(e @ Redirect {..}): 302 to
/// // e.redirect_location(issuer); Ok(valid): show login / consent for `valid`.
/// ```
pub fn validate_authorization(
    views: &Views,
    req: &AuthorizationRequest,
) -> Result<ValidAuthorization, AuthorizeError> {
    use AuthorizeError::Untrusted;
    if req
        .repeated
        .iter()
        .any(|k| k == "client_id" || k == "redirect_uri")
    {
        return Err(Untrusted(AuthorizeProblem::RepeatedParameter));
    }
    let client = req
        .client_id
        .as_deref()
        .and_then(|id| views.client(id))
        .ok_or(Untrusted(AuthorizeProblem::UnknownClient))?;
    let presented = req
        .redirect_uri
        .as_deref()
        .ok_or(Untrusted(AuthorizeProblem::MissingRedirectUri))?;
    if client.redirect_uri_for(presented).is_none() {
        return Err(Untrusted(AuthorizeProblem::UnregisteredRedirectUri));
    }
    let state = req
        .state
        .clone()
        .filter(|s| state_well_formed(s) && !req.repeated.iter().any(|k| k == "state"));
    let refuse = |error: &'static str, description: &'static str| AuthorizeError::Redirect {
        redirect_uri: presented.to_owned(),
        error,
        description,
        state: state.clone(),
    };
    if !req.repeated.is_empty() {
        return Err(refuse(
            "invalid_request",
            "a parameter is given more than once",
        ));
    }
    match req.response_type.as_deref() {
        Some("code") => {}
        Some("token") => {
            return Err(refuse(
                "unsupported_response_type",
                "the implicit grant is not supported (OAuth 2.1); use response_type=code with PKCE",
            ));
        }
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        None => return Err(refuse("invalid_request", "response_type is required")),
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(refuse(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        ));
    }
    let Some(state) = state.clone() else {
        return Err(refuse(
            "invalid_request",
            "state is required: 1 to 512 printable ASCII characters",
        ));
    };
    match req.code_challenge_method.as_deref() {
        Some("S256") => {}
        Some("plain") | None => {
            return Err(refuse(
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required; plain is refused",
            ));
        }
        Some(_) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
    }
    let Some(code_challenge) = req
        .code_challenge
        .clone()
        .filter(|c| challenge_well_formed(c))
    else {
        return Err(refuse(
            "invalid_request",
            "code_challenge is required: 43 base64url characters (S256)",
        ));
    };
    let Some(scopes) = scope::within(req.scope.as_deref(), &client.scopes) else {
        return Err(refuse(
            "invalid_scope",
            "the scope is malformed or beyond what the client is registered for",
        ));
    };
    Ok(ValidAuthorization {
        client_id: client.id.clone(),
        client_name: client.name.clone(),
        redirect_uri: presented.to_owned(),
        scopes,
        state,
        code_challenge,
    })
}

/// An authorization code as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeView {
    /// The code's digest.
    pub digest: SecretDigest,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who authorized it.
    pub account: AccountId,
    /// The redirect URI it was issued for; the exchange must present the same.
    pub redirect_uri: String,
    /// The scope granted.
    pub scope: String,
    /// The S256 challenge.
    pub code_challenge: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being exchangeable.
    pub expires_at: Timestamp,
    /// The family its exchange started, once redeemed.
    pub redeemed: Option<FamilyId>,
}

impl CodeView {
    /// When the views forget it.
    pub fn drop_at(&self) -> Timestamp {
        self.issued_at.plus_ms(super::CODE_KEPT_MS)
    }
}

/// A fresh code, shown once, and where to send the browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationCodeIssued {
    /// The code itself.
    pub code: BearerSecret,
    /// `redirect_uri?code=…&state=…&iss=…`: the `Location` of the 302 (or 303 after a
    /// form post).
    pub location: String,
}

/// Issue an authorization code for a user who is logged in (with MFA when the account has
/// it) and whose request passed [`validate_authorization`].
///
/// The consent page calls it with `record_consent: true` when the user presses "allow";
/// the authorize route calls it with `record_consent: false` when
/// [`Views::grant_covers`] says the grant already covers the scopes (no consent page). The
/// decision checks everything again (client, redirect URI, grant) and answers
/// [`Rejection::ConsentRequired`] if consent is neither recorded nor already given. Run it
/// with `engine.execute(IssueAuthorizationCode::from_valid(valid, account, true))`, then
/// redirect to the reply's `location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueAuthorizationCode {
    /// The logged-in user.
    pub account: AccountId,
    /// The client.
    pub client_id: String,
    /// The redirect URI as presented.
    pub redirect_uri: String,
    /// The scopes granted.
    pub scopes: BTreeSet<String>,
    /// The S256 challenge.
    pub code_challenge: String,
    /// The client's `state`.
    pub state: String,
    /// Whether the user just consented (record a grant) or the grant already covers it.
    pub record_consent: bool,
}

impl IssueAuthorizationCode {
    /// The command for a validated request.
    pub fn from_valid(valid: ValidAuthorization, account: AccountId, record_consent: bool) -> Self {
        Self {
            account,
            client_id: valid.client_id,
            redirect_uri: valid.redirect_uri,
            scopes: valid.scopes,
            code_challenge: valid.code_challenge,
            state: valid.state,
            record_consent,
        }
    }
}

impl Decide for IssueAuthorizationCode {
    type Reply = AuthorizationCodeIssued;

    fn kind(&self) -> &'static str {
        "issue_authorization_code"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<AuthorizationCodeIssued> {
        let ok = views.account(&self.account).is_some_and(|a| !a.disabled);
        if !ok {
            return Decision::refuse(vec![], Rejection::Unauthenticated);
        }
        let client_ok = views.client(&self.client_id).is_some_and(|c| {
            c.allows(GrantType::AuthorizationCode)
                && c.redirect_uri_for(&self.redirect_uri).is_some()
                && self.scopes.is_subset(&c.scopes)
                && !self.scopes.is_empty()
        });
        if !client_ok || !challenge_well_formed(&self.code_challenge) {
            return Decision::refuse(vec![], Rejection::AuthorizationRequestInvalid);
        }
        let mut events = Vec::new();
        if self.record_consent {
            super::grant::consent(
                views,
                self.account,
                &self.client_id,
                &self.scopes,
                &mut events,
            );
        } else if !views.grant_covers(&self.account, &self.client_id, &self.scopes) {
            return Decision::refuse(vec![], Rejection::ConsentRequired);
        }
        let (code, digest) = BearerSecret::generate(CODE_PREFIX, env);
        events.push(
            Event::AuthorizationCodeIssued {
                code: digest,
                client_id: self.client_id,
                account: self.account,
                redirect_uri: self.redirect_uri.clone(),
                scope: scope::join(&self.scopes),
                code_challenge: self.code_challenge,
                expires_at: env.now.plus_ms(CODE_TTL_MS),
            }
            .into(),
        );
        let location = with_query(
            &self.redirect_uri,
            &[
                ("code", code.expose()),
                ("state", &self.state),
                ("iss", &env.policy.token.issuer),
            ],
        );
        Decision::ok(events, AuthorizationCodeIssued { code, location })
    }
}

/// `grant_type=authorization_code`: exchange a code for tokens. Built by the token endpoint
/// after the client authenticated ([`super::authenticate_client`]); a string that is no
/// code never becomes a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeAuthorizationCode {
    /// The presented code's digest.
    pub presented: SecretDigest,
    /// The authenticated client.
    pub client_id: String,
    /// The `redirect_uri` parameter (required: every code is bound to one).
    pub redirect_uri: String,
    /// The `code_verifier` parameter.
    pub code_verifier: String,
}

impl ExchangeAuthorizationCode {
    /// The command, or [`Rejection::AuthorizationCodeInvalid`] when `code` has not even the
    /// shape of one of ours.
    pub fn new(
        code: &str,
        client_id: String,
        redirect_uri: String,
        code_verifier: String,
    ) -> Result<Self, Rejection> {
        crate::secret::plausible(code, CODE_PREFIX)
            .then(|| Self {
                presented: SecretDigest::of(code),
                client_id,
                redirect_uri,
                code_verifier,
            })
            .ok_or(Rejection::AuthorizationCodeInvalid)
    }
}

impl Decide for ExchangeAuthorizationCode {
    type Reply = TokensIssued;

    fn kind(&self) -> &'static str {
        "exchange_authorization_code"
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<TokensIssued> {
        let invalid = || Decision::refuse(vec![], Rejection::AuthorizationCodeInvalid);
        let Some(code) = views.code(&self.presented) else {
            return invalid();
        };
        if let Some(family) = code.redeemed {
            let mut events = vec![Event::AuthorizationCodeReplayed { code: code.digest }.into()];
            if views.family(&family).is_some_and(|f| f.is_live(env.now)) {
                events.push(
                    Event::RefreshFamilyRevoked {
                        family,
                        reason: FamilyRevokeReason::Revoked,
                    }
                    .into(),
                );
            }
            return Decision::refuse(events, Rejection::AuthorizationCodeReused);
        }
        let verifier_ok = verifier_well_formed(&self.code_verifier)
            && bool::from(
                s256(&self.code_verifier)
                    .as_bytes()
                    .ct_eq(code.code_challenge.as_bytes()),
            );
        let client_ok = views
            .client(&code.client_id)
            .is_some_and(|c| c.allows(GrantType::AuthorizationCode));
        let holder_ok = views.account(&code.account).is_some_and(|a| !a.disabled);
        if env.now >= code.expires_at
            || code.client_id != self.client_id
            || code.redirect_uri != self.redirect_uri
            || !verifier_ok
            || !client_ok
            || !holder_ok
        {
            return invalid();
        }
        let (started, issued) = crate::refresh::start_family(
            code.account,
            None,
            Some(code.client_id.clone()),
            Some(code.scope.clone()),
            env,
        );
        let events = vec![
            Event::AuthorizationCodeRedeemed {
                code: code.digest,
                family: issued.family,
            }
            .into(),
            started,
        ];
        Decision::ok(events, issued)
    }
}
