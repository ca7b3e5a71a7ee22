//! Sign in with an external provider: the browser flow around [`tessera_core::identity`].
//!
//! ```text
//!  GET /v1/login/{p}?return_to ─▶ PendingSignIn::start ─▶ Set-Cookie __Host-tessera_signin (sealed)
//!                               ─▶ 302 provider authorize URL (state, PKCE S256, nonce for oidc)
//!  GET /v1/login/{p}/callback?code&state
//!     ├─ address throttled ─────────────────────────────▶ 429 page
//!     ├─ check_callback (cookie, state, provider) fails ─▶ 400 page (the address takes a strike)
//!     ├─ provider said error= ───────────────────────────▶ 400 page
//!     ├─ code exchange (1 round trip), then the ID token (keys from the cache) or the
//!     │  user info (1 round trip); any failure ──────────▶ 502 page, within the client's timeout
//!     ├─ purpose Login: ExternalSignIn ─┬─ session ─────▶ Set-Cookie session, 303 return_to
//!     │                                 ├─ MFA ─────────▶ the challenge cookie, 303 /login/mfa
//!     │                                 └─ refused ─────▶ the page for the rejection
//!     └─ purpose Link: LinkIdentity ─────────────────────▶ 303 return_to, or the page for the refusal
//!  POST /v1/identities/{p} (signed in) ─▶ the same redirect, purpose Link
//! ```
//!
//! The pending sign-in lives only in the browser, sealed under a key derived from the MFA
//! master key (so it survives restarts and is the same on every node); the state is spent
//! in the log by the callback that succeeds, so a replayed callback is refused.

use std::sync::Arc;

use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use tessera_core::identity::{
    ExternalSignIn, IdTokenExpectation, IdTokenFacts, LinkIdentity, PendingSignIn, ProviderRules,
    SignInPurpose, StateSpent, UpstreamProfile, accept_id_token, check_callback, mfa_asserted,
};
use tessera_core::session::{LoginCompleted, LoginReply};
use tessera_core::{AccountId, LoginMode, Rejection, Timestamp};

use crate::App;
use crate::auth;
use crate::config::{UpstreamConfig, UpstreamKind};
use crate::pages::return_to::ReturnTo;
use crate::pages::{error_page, see_other};
use crate::problem::Problem;
use crate::routes::{Ctx, Reply};
use crate::upstream::{
    AuthorizationRequest, ClientLimits, CodeExchange, OidcProvider, UpstreamClient, UpstreamToken,
    UpstreamUrl, UserInfoMapping, exchange_code, fetch_user_info,
};

/// The cookie that binds a started sign-in to its browser. SameSite=Lax: the provider's
/// redirect back is a top-level GET from another site, which Lax lets through.
pub const SIGN_IN_COOKIE: &str = "__Host-tessera_signin";

/// The configured providers, and the one outgoing client they share.
pub struct Providers {
    client: Option<UpstreamClient>,
    list: Vec<Provider>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|p| &p.config.name))
            .finish()
    }
}

/// One provider: its configuration, and for OpenID Connect its metadata and key cache,
/// discovered on first use (so a provider that is down does not stop the server starting).
#[derive(Debug)]
pub struct Provider {
    pub config: UpstreamConfig,
    oidc: tokio::sync::OnceCell<Arc<OidcProvider>>,
}

impl Providers {
    /// The providers of `configs`; the outgoing client is built only when there is one.
    pub fn new(configs: &[UpstreamConfig], limits: &ClientLimits) -> Result<Self, String> {
        let client = if configs.is_empty() {
            None
        } else {
            Some(UpstreamClient::new(limits.clone()).map_err(|e| e.to_string())?)
        };
        Ok(Self {
            client,
            list: configs
                .iter()
                .map(|c| Provider {
                    config: c.clone(),
                    oidc: tokio::sync::OnceCell::new(),
                })
                .collect(),
        })
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Result<&Provider, Problem> {
        self.list
            .iter()
            .find(|p| p.config.name == name)
            .ok_or_else(|| Problem::from(Rejection::ProviderUnknown))
    }

    /// Every provider, in configuration order (the buttons' order).
    pub fn all(&self) -> impl Iterator<Item = &Provider> {
        self.list.iter()
    }

    fn client(&self) -> Result<&UpstreamClient, Problem> {
        self.client.as_ref().ok_or_else(Problem::internal)
    }
}

/// The provider name and whether it is the callback, for `/v1/login/{p}` and
/// `/v1/login/{p}/callback`; `None` for other paths (`/v1/login/mfa` included).
pub fn login_path(path: &str) -> Option<(&str, bool)> {
    let rest = path.strip_prefix("/v1/login/")?;
    let (name, callback) = match rest.strip_suffix("/callback") {
        Some(name) => (name, true),
        None => (rest, false),
    };
    let ok = tessera_core::identity::provider_name_valid(name)
        && !crate::config::RESERVED_PROVIDER_NAMES.contains(&name);
    ok.then_some((name, callback))
}

/// The provider name in `/v1/identities/{p}`.
pub fn identity_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/identities/")
        .filter(|name| tessera_core::identity::provider_name_valid(name))
}

/// A provider's answer could not be used: unreachable, too slow, or not what it should be.
/// The page says so in plain words; the reason goes to the log only.
fn upstream_failed(provider: &str, why: &dyn std::fmt::Display) -> Problem {
    tracing::warn!(provider, error = %why, "external sign-in: the provider's answer was not usable");
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "upstream-failed",
        "The sign-in provider did not answer",
        "the sign-in provider did not answer in time, or answered something this server cannot accept",
    )
}

impl Provider {
    fn rules(&self) -> ProviderRules {
        ProviderRules {
            first_sign_in: self.config.first_sign_in,
            trusted_for_mfa: self.config.trusted_for_mfa,
        }
    }

    async fn oidc(&self, client: &UpstreamClient) -> Result<Arc<OidcProvider>, Problem> {
        let issuer = self.config.issuer.as_deref().unwrap_or("");
        self.oidc
            .get_or_try_init(|| async {
                OidcProvider::discover(client, issuer, Default::default())
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
            .map_err(|e| upstream_failed(&self.config.name, &e))
    }

    fn url(&self, field: Option<&String>) -> Result<UpstreamUrl, Problem> {
        UpstreamUrl::parse(field.map_or("", String::as_str))
            .map_err(|e| upstream_failed(&self.config.name, &e))
    }

    fn scope(&self) -> String {
        let mut scopes: Vec<&str> = Vec::new();
        if self.config.kind == UpstreamKind::Oidc {
            scopes.push("openid");
        }
        for s in &self.config.scopes {
            if !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        scopes.join(" ")
    }
}

fn redirect_uri(app: &App, provider: &str) -> String {
    let base = app.engine.policy().token.issuer.trim_end_matches('/');
    format!("{base}/v1/login/{provider}/callback")
}

/// Starts a sign-in (or a link) with `provider`: the sealed cookie and the 302 to the
/// provider's authorization endpoint.
pub async fn redirect(
    app: &App,
    provider: &Provider,
    return_to: &ReturnTo,
    purpose: SignInPurpose,
) -> Result<Reply, Problem> {
    let client = app.signin.client()?;
    let oidc = provider.config.kind == UpstreamKind::Oidc;
    let endpoint = if oidc {
        provider
            .oidc(client)
            .await?
            .metadata
            .authorization_endpoint
            .clone()
    } else {
        provider.url(provider.config.authorize_url.as_ref())?
    };
    let now = app.engine.now();
    let mut rng = crate::system::os_rng();
    let pending = PendingSignIn::start(
        &provider.config.name,
        oidc,
        return_to.as_str(),
        purpose,
        now,
        &mut rng,
    );
    let mut nonce = [0u8; 24];
    rand_core::Rng::fill_bytes(&mut rng, &mut nonce);
    let sealed = pending.seal(&app.mfa_keys, nonce);
    let redirect_uri = redirect_uri(app, &provider.config.name);
    let scope = provider.scope();
    let url = AuthorizationRequest {
        authorization_endpoint: &endpoint,
        client_id: &provider.config.client_id,
        redirect_uri: &redirect_uri,
        scope: &scope,
        state: &pending.state,
        code_verifier: &pending.verifier,
        nonce: pending.nonce.as_deref(),
    }
    .url();
    let mut resp = see_other(&url);
    *resp.status_mut() = StatusCode::FOUND;
    let max_age = tessera_core::identity::SIGN_IN_TTL_MS / 1000;
    let cookie = format!(
        "{SIGN_IN_COOKIE}={sealed}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    );
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&url).map_err(|_| Problem::internal())?,
    );
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| Problem::internal())?,
    );
    Ok(resp)
}

/// GET /v1/login/{provider}: 302 to the provider.
pub async fn start(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (name, _) = login_path(req.uri().path()).ok_or_else(Problem::not_found)?;
    let provider = ctx.app.signin.get(name)?;
    let return_to =
        ReturnTo::or_home(crate::pages::login_query_param(req.uri(), "return_to").as_deref());
    redirect(ctx.app, provider, &return_to, SignInPurpose::Login).await
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-tessera_signin=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
    )
}

/// An error page that also ends the browser's pending sign-in.
fn refused(problem: Problem) -> Reply {
    let mut resp = error_page(problem);
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_cookie());
    resp
}

/// GET /v1/login/{provider}/callback.
pub async fn callback(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Reply, Problem> {
    let (name, _) = login_path(req.uri().path()).ok_or_else(Problem::not_found)?;
    let provider = ctx.app.signin.get(name)?;
    let headers = req.headers();
    let client = auth::client_address(ctx.peer, headers, &ctx.app.config);
    let now = ctx.app.engine.now();
    tessera_core::throttle::check_address(
        &ctx.app.engine.views(),
        Some(client),
        now,
        &ctx.app.engine.policy().throttle,
    )?;
    let query = |k: &str| crate::pages::login_query_param(req.uri(), k);
    let pending = crate::pages::csrf::cookie_value(headers, SIGN_IN_COOKIE)
        .and_then(|c| PendingSignIn::open(&c, &ctx.app.mfa_keys));
    let pending = match check_callback(pending.as_ref(), name, query("state").as_deref(), now) {
        Ok(p) => p.clone(),
        Err(r) => {
            strike(ctx.app, client).await;
            return Ok(refused(r.into()));
        }
    };
    // Checked again by the writer; here so that a replayed callback costs no round trip
    // to the provider and gets its own answer rather than the provider's refusal.
    if ctx.app.engine.views().state_spent(&pending.state_digest()) {
        return Ok(refused(Rejection::ExternalStateSpent.into()));
    }
    if let Some(error) = query("error") {
        let problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "upstream-refused",
            "The sign-in was not completed",
            format!(
                "{} did not sign you in ({}). Start again if you meant to.",
                provider.config.display_name,
                crate::upstream::client::excerpt(error.as_bytes())
            ),
        );
        return Ok(refused(problem));
    }
    let Some(code) = query("code").filter(|c| !c.is_empty()) else {
        return Ok(refused(Problem::bad_request(
            "the provider's answer carries no code",
        )));
    };
    let profile = match establish(ctx.app, provider, &pending, &code, now).await {
        Ok(profile) => profile,
        Err(problem) => {
            strike(ctx.app, client).await;
            return Ok(refused(problem));
        }
    };
    let return_to = ReturnTo::or_home(Some(&pending.return_to));
    let state = StateSpent::from(&pending);
    match pending.purpose {
        SignInPurpose::Login => {
            let command = ExternalSignIn {
                profile,
                rules: provider.rules(),
                state,
                mode: LoginMode::Session,
                client: Some(client),
                supersedes: auth::presented_session(ctx.app, headers),
            };
            let outcome = ctx.app.engine.execute(command).await?;
            match outcome.reply {
                Ok(signed) => signed_in(signed.login, outcome.recorded_at, &return_to),
                Err(r) => Ok(refused(r.into())),
            }
        }
        SignInPurpose::Link { account } => {
            link(ctx, account, profile, state, client, &return_to).await
        }
    }
}

async fn link(
    ctx: Ctx<'_>,
    account: AccountId,
    profile: UpstreamProfile,
    state: StateSpent,
    client: std::net::IpAddr,
    return_to: &ReturnTo,
) -> Result<Reply, Problem> {
    let outcome = ctx
        .app
        .engine
        .execute(LinkIdentity {
            account,
            profile,
            state,
            client: Some(client),
        })
        .await?;
    match outcome.reply {
        Ok(()) => {
            let mut resp = see_other(return_to.as_str());
            resp.headers_mut()
                .append(header::SET_COOKIE, clear_cookie());
            Ok(resp)
        }
        Err(r) => Ok(refused(r.into())),
    }
}

/// A failed callback counts against its address like a failed login.
async fn strike(app: &App, client: std::net::IpAddr) {
    let failed = tessera_core::identity::FailedCallback {
        client: Some(client),
    };
    if let Err(e) = app.engine.execute(failed).await {
        tracing::warn!(error = %e, "a failed sign-in callback could not be recorded");
    }
}

/// The end of a completed external sign-in: as the password login page ends.
fn signed_in(login: LoginReply, now: Timestamp, return_to: &ReturnTo) -> Result<Reply, Problem> {
    let mut resp = match login {
        LoginReply::Completed(LoginCompleted::Session(issued)) => {
            let mut resp = see_other(return_to.as_str());
            resp.headers_mut().append(
                header::SET_COOKIE,
                auth::set_session_cookie(issued.secret.expose(), issued.expires_at, now),
            );
            resp
        }
        LoginReply::MfaRequired(challenge) => crate::pages::mfa_required(&challenge, return_to),
        LoginReply::Completed(LoginCompleted::Tokens(_)) => return Err(Problem::internal()),
    };
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_cookie());
    Ok(resp)
}

/// Who the provider says the user is: the code exchanged (one round trip), then the ID
/// token checked against the provider's keys (from the cache) or the user info fetched (one
/// round trip).
async fn establish(
    app: &App,
    provider: &Provider,
    pending: &PendingSignIn,
    code: &str,
    now: Timestamp,
) -> Result<UpstreamProfile, Problem> {
    let client = app.signin.client()?;
    let config = &provider.config;
    let name = &config.name;
    let secret = config
        .client_secret
        .clone()
        .unwrap_or_else(|| crate::config::ClientSecret(String::new()));
    let redirect_uri = redirect_uri(app, name);
    let exchange = |token_endpoint| CodeExchange {
        token_endpoint,
        client_id: &config.client_id,
        client_secret: &secret,
        auth_method: config.token_auth_method,
        code,
        redirect_uri: &redirect_uri,
        code_verifier: &pending.verifier,
    };
    match config.kind {
        UpstreamKind::Oidc => {
            let oidc = provider.oidc(client).await?;
            let tokens = exchange_code(client, &exchange(&oidc.metadata.token_endpoint))
                .await
                .map_err(|e| upstream_failed(name, &e))?;
            let id_token = tokens
                .id_token
                .ok_or_else(|| upstream_failed(name, &"no ID token in the token response"))?;
            let nonce = pending.nonce.as_deref().unwrap_or("");
            let claims = oidc
                .verify_id_token(client, &id_token, &config.client_id, nonce, now)
                .await
                .map_err(|e| upstream_failed(name, &e))?;
            let facts = id_token_facts(&id_token, &claims)
                .ok_or_else(|| upstream_failed(name, &"the ID token's claims are malformed"))?;
            accept_id_token(
                &facts,
                IdTokenExpectation {
                    issuer: &oidc.metadata.issuer,
                    client_id: &config.client_id,
                },
                pending,
                now,
            )?;
            let user = claims.into_external_user();
            Ok(UpstreamProfile {
                provider: name.clone(),
                subject: user.subject,
                username: user.username,
                // An address the provider has not verified is anyone's to type: it is
                // neither stored on an account nor compared with one.
                email: user.email.filter(|_| user.email_verified),
                mfa_asserted: mfa_asserted(&facts),
            })
        }
        UpstreamKind::Oauth2 => {
            let token_url = provider.url(config.token_url.as_ref())?;
            let user_info_url = provider.url(config.user_info_url.as_ref())?;
            let tokens = exchange_code(client, &exchange(&token_url))
                .await
                .map_err(|e| upstream_failed(name, &e))?;
            let mapping = config
                .fields
                .clone()
                .unwrap_or_else(UserInfoMapping::github);
            let user = fetch_user_info(client, &user_info_url, &tokens.access_token, &mapping)
                .await
                .map_err(|e| upstream_failed(name, &e))?;
            Ok(UpstreamProfile {
                provider: name.clone(),
                subject: user.subject,
                username: user.username,
                email: user.email,
                mfa_asserted: false,
            })
        }
    }
}

/// The claims of an ID token whose signature was verified, as the core checks them against
/// the sign-in: read from its payload (the part the signature covers).
fn id_token_facts(
    token: &UpstreamToken,
    claims: &crate::upstream::IdTokenClaims,
) -> Option<IdTokenFacts> {
    #[derive(serde::Deserialize)]
    struct Wire {
        iss: String,
        aud: Audience,
        azp: Option<String>,
        nonce: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    let payload = token.expose().split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .ok()?;
    let wire: Wire = serde_json::from_slice(&bytes).ok()?;
    Some(IdTokenFacts {
        issuer: wire.iss,
        audience: match wire.aud {
            Audience::One(a) => vec![a],
            Audience::Many(a) => a,
        },
        authorized_party: wire.azp,
        subject: claims.sub.clone(),
        nonce: wire.nonce,
        expires_at: Timestamp::from_millis(claims.exp.saturating_mul(1000)),
        amr: claims.amr.clone(),
        acr: claims.acr.clone(),
    })
}

/// The sign-in buttons: plain links, one per provider, that come back to `return_to`.
pub fn buttons(app: &App, return_to: &ReturnTo) -> crate::pages::html::Html {
    let mut body = crate::pages::html::Html::new();
    let providers: Vec<&Provider> = app.signin.all().collect();
    if providers.is_empty() {
        return body;
    }
    body = body.raw("<div class=\"providers\"><p class=\"note\">Or sign in with</p>");
    for p in providers {
        let href = crate::pages::with_query(
            &format!("/v1/login/{}", p.config.name),
            &[(
                "return_to",
                if return_to.is_home() {
                    ""
                } else {
                    return_to.as_str()
                },
            )],
        );
        body = body
            .raw("<a class=\"button\" href=\"")
            .text(&href)
            .raw("\">Sign in with ")
            .text(&p.config.display_name)
            .raw("</a>");
    }
    body.raw("</div>")
}
