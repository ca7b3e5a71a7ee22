//! The operator commands, run one of two ways with the same arguments and the same output:
//! through the admin socket of the server running on the data folder, or, when none runs,
//! on an engine of this process over the folder (as before the socket existed). Both paths
//! run the same functions (`tessera_http::admin::ops`, the same use cases), and the output
//! is formatted once, here, from the same answer types.

use std::path::PathBuf;

use http::Method;
use tessera_core::usecase::RegisterRequest;
use tessera_http::admin::clients::{
    self as clients, AddClient, ClientInfo, ClientWithSecret, Removed, RotateSecret,
};
use tessera_http::admin::ops::{
    self as admin, AccountAction, AccountInfo, AccountRef, KeyInfo, KeyRotated, OpError,
    OperatorBody, PendingEnrolment, SessionsInfo,
};
use tessera_storage::Engine;
use zeroize::Zeroizing;

use crate::Failure;
use crate::admin_client::{AdminClient, ProblemBody};
use crate::config::Config;

/// One operator command. `Debug` leaves the password out.
pub enum Op {
    Add {
        username: String,
        email: Option<String>,
        password: Zeroizing<String>,
    },
    Show(String),
    List,
    Act {
        username: String,
        action: AccountAction,
        operator: String,
    },
    Sessions(String),
    MfaQr(String),
    KeysList,
    KeysRotate {
        operator: String,
    },
    ClientAdd(AddClient),
    ClientList,
    ClientShow(String),
    ClientRotate(String, RotateSecret),
    ClientRemove(String, String),
    /// Revoke an API key by what a scanner found (the whole key or its beginning).
    ApiKeyRevoke {
        prefix: Zeroizing<String>,
        operator: String,
    },
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Add {
                username, email, ..
            } => f
                .debug_struct("Add")
                .field("username", username)
                .field("email", email)
                .finish_non_exhaustive(),
            Self::Show(u) => f.debug_tuple("Show").field(u).finish(),
            Self::List => f.write_str("List"),
            Self::Act {
                username,
                action,
                operator,
            } => f
                .debug_struct("Act")
                .field("username", username)
                .field("action", action)
                .field("operator", operator)
                .finish(),
            Self::Sessions(u) => f.debug_tuple("Sessions").field(u).finish(),
            Self::MfaQr(u) => f.debug_tuple("MfaQr").field(u).finish(),
            Self::KeysList => f.write_str("KeysList"),
            Self::KeysRotate { operator } => f
                .debug_struct("KeysRotate")
                .field("operator", operator)
                .finish(),
            Self::ClientAdd(a) => f.debug_tuple("ClientAdd").field(a).finish(),
            Self::ClientList => f.write_str("ClientList"),
            Self::ClientShow(id) => f.debug_tuple("ClientShow").field(id).finish(),
            Self::ClientRotate(id, r) => f.debug_tuple("ClientRotate").field(id).field(r).finish(),
            Self::ClientRemove(id, o) => f.debug_tuple("ClientRemove").field(id).field(o).finish(),
            Self::ApiKeyRevoke { operator, .. } => f
                .debug_struct("ApiKeyRevoke")
                .field("operator", operator)
                .finish_non_exhaustive(),
        }
    }
}

/// The body of `POST /admin/v1/accounts`, borrowing the password rather than copying it.
#[derive(serde::Serialize)]
struct AddBody<'a> {
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    password: &'a str,
}

/// Why a command failed: an answer the server (or the same code in this process) gave as a
/// problem, or anything else.
#[derive(Debug)]
pub enum CommandError {
    Problem(ProblemBody),
    Failure(Failure),
}

impl From<Failure> for CommandError {
    fn from(f: Failure) -> Self {
        Self::Failure(f)
    }
}

impl From<tessera_http::problem::Problem> for CommandError {
    fn from(p: tessera_http::problem::Problem) -> Self {
        Self::Problem(ProblemBody {
            status: p.status.as_u16(),
            detail: p.detail,
            errors: p
                .errors
                .into_iter()
                .map(|e| crate::admin_client::ProblemField { detail: e.detail })
                .collect(),
        })
    }
}

impl From<OpError> for CommandError {
    fn from(e: OpError) -> Self {
        tessera_http::problem::Problem::from(e).into()
    }
}

impl From<CommandError> for Failure {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Failure(f) => f,
            CommandError::Problem(p) if p.errors.is_empty() => Failure(p.detail),
            CommandError::Problem(p) => {
                let list: Vec<&str> = p.errors.iter().map(|e| e.detail.as_str()).collect();
                Failure(format!("{}: {}", p.detail, list.join("; ")))
            }
        }
    }
}

/// What a command answered, whichever path ran it.
#[derive(Debug)]
enum Output {
    Added(AccountRef),
    Account(AccountInfo),
    Accounts(Vec<AccountInfo>),
    Acted(AccountAction, AccountRef),
    Sessions(SessionsInfo),
    Enrolment(String, PendingEnrolment),
    Keys(Vec<KeyInfo>),
    Rotated(KeyRotated),
    Client(ClientInfo),
    Clients(Vec<ClientInfo>),
    ClientSecret(ClientWithSecret),
    ClientRemoved(Removed),
    ApiKeyRevoked(admin::ApiKeyRevoked),
}

/// Runs `op` on the data folder `data`: through the running server's socket if one answers,
/// else directly.
pub fn run(config: &Config, data: Option<PathBuf>, op: Op) -> Result<(), Failure> {
    let mut config = config.clone();
    config.data = data.unwrap_or(config.data);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::new)?;
    let client = runtime.block_on(crate::admin_client::connect(&config.data))?;
    let output = match client {
        Some(mut client) => runtime.block_on(through_socket(&mut client, op)),
        None => {
            // The engine's start and shutdown block: outside the runtime.
            let engine = crate::serve::start_operator_engine(&config)?;
            let result = runtime.block_on(directly(&config, &engine, op));
            engine.shutdown();
            result
        }
    };
    print(output.map_err(Failure::from)?)
}

fn account_path(username: &str, tail: &str) -> String {
    if tail.is_empty() {
        format!("/admin/v1/accounts/{username}")
    } else {
        format!("/admin/v1/accounts/{username}/{tail}")
    }
}

/// Usernames are ASCII letters, digits and `. _ - @ +`: safe in a path as they are. Anything
/// else names no account, and is refused here rather than sent as a malformed path.
fn checked(username: &str) -> Result<&str, CommandError> {
    let fine = !username.is_empty()
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'));
    if fine {
        Ok(username)
    } else {
        Err(OpError::NoSuchAccount(username.to_owned()).into())
    }
}

async fn through_socket(client: &mut AdminClient, op: Op) -> Result<Output, CommandError> {
    let none: Option<&()> = None;
    Ok(match op {
        Op::Add {
            username,
            email,
            password,
        } => {
            let body = AddBody {
                username: &username,
                email: email.as_deref(),
                password: password.as_str(),
            };
            let body = Zeroizing::new(serde_json::to_vec(&body).map_err(Failure::new)?);
            let resp: AccountRef = client
                .call_raw(Method::POST, "/admin/v1/accounts", body.to_vec())
                .await?;
            Output::Added(resp)
        }
        Op::Show(username) => Output::Account(
            client
                .call(Method::GET, &account_path(checked(&username)?, ""), none)
                .await?,
        ),
        Op::List => Output::Accounts(client.call(Method::GET, "/admin/v1/accounts", none).await?),
        Op::Act {
            username,
            action,
            operator,
        } => {
            let path = account_path(checked(&username)?, action.segment());
            let body = OperatorBody { operator };
            Output::Acted(action, client.call(Method::POST, &path, Some(&body)).await?)
        }
        Op::Sessions(username) => Output::Sessions(
            client
                .call(
                    Method::GET,
                    &account_path(checked(&username)?, "sessions"),
                    none,
                )
                .await?,
        ),
        Op::MfaQr(username) => Output::Enrolment(
            username.clone(),
            client
                .call(
                    Method::GET,
                    &account_path(checked(&username)?, "mfa-enrolment"),
                    none,
                )
                .await?,
        ),
        Op::KeysList => Output::Keys(client.call(Method::GET, "/admin/v1/keys", none).await?),
        Op::ClientAdd(body) => Output::ClientSecret(
            client
                .call(Method::POST, "/admin/v1/clients", Some(&body))
                .await?,
        ),
        Op::ClientList => {
            Output::Clients(client.call(Method::GET, "/admin/v1/clients", none).await?)
        }
        Op::ClientShow(id) => Output::Client(
            client
                .call(
                    Method::GET,
                    &format!("/admin/v1/clients/{}", client_checked(&id)?),
                    none,
                )
                .await?,
        ),
        Op::ClientRotate(id, body) => Output::ClientSecret(
            client
                .call(
                    Method::POST,
                    &format!("/admin/v1/clients/{}/rotate-secret", client_checked(&id)?),
                    Some(&body),
                )
                .await?,
        ),
        Op::ClientRemove(id, operator) => Output::ClientRemoved(
            client
                .call(
                    Method::DELETE,
                    &format!("/admin/v1/clients/{}", client_checked(&id)?),
                    Some(&OperatorBody { operator }),
                )
                .await?,
        ),
        Op::KeysRotate { operator } => Output::Rotated(
            client
                .call(
                    Method::POST,
                    "/admin/v1/keys/rotate",
                    Some(&serde_json::json!({ "operator": operator })),
                )
                .await?,
        ),
        Op::ApiKeyRevoke { prefix, operator } => {
            let body = Zeroizing::new(
                serde_json::to_vec(&serde_json::json!({
                    "prefix": prefix.as_str(),
                    "operator": operator,
                }))
                .map_err(Failure::new)?,
            );
            Output::ApiKeyRevoked(
                client
                    .call_raw(Method::POST, "/admin/v1/api-keys/revoke", body.to_vec())
                    .await?,
            )
        }
    })
}

async fn directly(config: &Config, engine: &Engine, op: Op) -> Result<Output, CommandError> {
    Ok(match op {
        Op::Add {
            username,
            email,
            password,
        } => {
            let mut rng = tessera_http::system::os_rng();
            let mut area = tessera_core::password::WorkArea::default();
            let request = RegisterRequest {
                username,
                email,
                password: password.as_str().into(),
                client: None,
            };
            let command = engine
                .prepare_here(request, &mut rng, &mut area)
                .map_err(OpError::Refused)?;
            let registered = engine
                .execute(command)
                .await
                .map_err(OpError::from)?
                .reply
                .map_err(OpError::Refused)?;
            Output::Added(admin::registered(&registered))
        }
        Op::Show(username) => Output::Account(admin::show(engine, &username)?),
        Op::List => Output::Accounts(admin::list(engine)),
        Op::Act {
            username,
            action,
            operator,
        } => Output::Acted(
            action,
            admin::act(engine, &username, action, &operator).await?,
        ),
        Op::Sessions(username) => Output::Sessions(admin::sessions(engine, &username)?),
        Op::MfaQr(username) => {
            let keys = tessera_storage::keys::KeyStore::open(&config.data)
                .and_then(|k| k.mfa_keys())
                .map_err(|e| Failure(format!("cannot load the MFA key: {e}")))?;
            let enrolment = admin::pending_enrolment(engine, &keys, &username)?;
            Output::Enrolment(username, enrolment)
        }
        Op::KeysList => Output::Keys(admin::keys(engine)),
        Op::ClientAdd(body) => {
            Output::ClientSecret(clients::add(engine, &server_keys(config)?, body).await?)
        }
        Op::ClientList => Output::Clients(clients::list(engine)),
        Op::ClientShow(id) => Output::Client(clients::show(engine, &id)?),
        Op::ClientRotate(id, body) => Output::ClientSecret(
            clients::rotate_secret(engine, &server_keys(config)?, &id, body).await?,
        ),
        Op::ClientRemove(id, operator) => {
            clients::remove(engine, &id, &operator).await?;
            Output::ClientRemoved(Removed { client_id: id })
        }
        Op::KeysRotate { operator } => {
            tracing::info!(%operator, "operator action: rotate the signing key");
            let keys = tessera_storage::keys::KeyStore::open(&config.data).map_err(Failure::new)?;
            let signer = tessera_http::signing::add_key(engine, &keys)
                .await
                .map_err(OpError::from)?;
            Output::Rotated(KeyRotated {
                kid: signer.kid().to_owned(),
            })
        }
        Op::ApiKeyRevoke { prefix, operator } => {
            let pepper = tessera_storage::keys::KeyStore::open(&config.data)
                .and_then(|k| k.api_key_pepper())
                .map_err(|e| Failure(format!("cannot load the API-key key: {e}")))?;
            Output::ApiKeyRevoked(admin::revoke_api_key(engine, &pepper, &prefix, &operator).await?)
        }
    })
}

/// Client ids are ASCII letters, digits and `. _ -`: safe in a path as they are.
fn client_checked(id: &str) -> Result<&str, CommandError> {
    if tessera_core::oauth::client::client_id_valid(id) {
        Ok(id)
    } else {
        Err(OpError::Refused(tessera_core::Rejection::ClientNotFound).into())
    }
}

/// The server keys (which digest client secrets), created on first use as the server
/// would create them.
fn server_keys(config: &Config) -> Result<tessera_core::mfa::MfaKeys, Failure> {
    tessera_storage::keys::KeyStore::open(&config.data)
        .and_then(|k| k.mfa_keys_or_create(&tessera_http::signing::new_seed()))
        .map_err(|e| Failure(format!("cannot load the server key: {e}")))
}

fn print_client(c: &ClientInfo) {
    println!("client    {} ({})", c.client_id, c.name);
    println!("kind      {}", c.kind);
    println!("redirect  {}", c.redirect_uris.join(" "));
    println!("grants    {}", c.grant_types.join(" "));
    println!("scopes    {}", c.scopes.join(" "));
    println!("created   {}", c.registered_at);
    println!(
        "secrets   {}{}",
        c.secrets,
        c.overlap_until
            .as_deref()
            .map(|u| format!(" (the previous one until {u})"))
            .unwrap_or_default()
    );
    println!("live      {} refresh families", c.live_families);
}

/// The one formatting of every answer, for both paths.
fn print(output: Output) -> Result<(), Failure> {
    match output {
        Output::Added(a) => println!("created account {} ({})", a.username, a.id),
        Output::Account(a) => print_account(&a),
        Output::Accounts(all) => {
            if all.is_empty() {
                println!("no accounts");
            }
            for a in &all {
                println!(
                    "{}\t{}\t{}\tmfa {}\t{} sessions\t{} families",
                    a.username,
                    a.id,
                    if a.disabled { "disabled" } else { "enabled" },
                    if a.mfa_enabled { "on" } else { "off" },
                    a.live_sessions,
                    a.live_families
                );
            }
        }
        Output::Acted(action, a) => match action {
            AccountAction::Disable => println!(
                "disabled account {} ({}); its sessions have ended",
                a.username, a.id
            ),
            AccountAction::Enable => println!("enabled account {} ({})", a.username, a.id),
            AccountAction::ResetMfa => println!(
                "reset MFA of {} ({}); its sessions have ended",
                a.username, a.id
            ),
            AccountAction::Logout => println!(
                "signed {} ({}) out everywhere; its sessions and refresh families have ended",
                a.username, a.id
            ),
        },
        Output::Sessions(s) => {
            if s.sessions.is_empty() && s.families.is_empty() {
                println!(
                    "{} ({}) has no live session or refresh family",
                    s.account.username, s.account.id
                );
            }
            for x in &s.sessions {
                println!(
                    "session {}\tcreated {}\tlast seen {}\texpires {}",
                    x.id, x.created_at, x.last_seen_at, x.expires_at
                );
            }
            for f in &s.families {
                println!(
                    "family {}\tstarted {}\texpires {}\tgeneration {}\tsession {}\tclient {}",
                    f.id,
                    f.started_at,
                    f.expires_at,
                    f.generation,
                    f.session.as_deref().unwrap_or("-"),
                    f.client_id.as_deref().unwrap_or("-")
                );
            }
        }
        Output::Enrolment(username, e) => {
            let qr = tessera_core::mfa::qr_terminal(&e.otpauth_uri)
                .ok_or_else(|| Failure::new("the URI does not fit in a QR code"))?;
            println!("{qr}");
            println!(
                "scan this with the authenticator app of {username}, then confirm with a code"
            );
        }
        Output::Keys(keys) => {
            for k in &keys {
                println!(
                    "{}\t{}\t{}\tcreated {}\tunpublished {}",
                    k.kid,
                    if k.current { "current" } else { "retired" },
                    if k.published {
                        "published"
                    } else {
                        "unpublished"
                    },
                    k.created_at,
                    k.unpublish_at.as_deref().unwrap_or("-")
                );
            }
        }
        Output::Client(c) => print_client(&c),
        Output::Clients(all) => {
            if all.is_empty() {
                println!("no clients");
            }
            for c in &all {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.client_id,
                    c.kind,
                    c.grant_types.join(","),
                    c.scopes.join(","),
                    c.name
                );
            }
        }
        Output::ClientSecret(done) => {
            print_client(&done.client);
            if let Some(secret) = &done.client_secret {
                println!("secret    {}", secret.as_str());
                println!("the secret is shown once: store it now");
            }
        }
        Output::ClientRemoved(r) => println!(
            "removed client {}; its grants and tokens are revoked",
            r.client_id
        ),
        Output::ApiKeyRevoked(r) if r.already_revoked => println!(
            "API key {} ({}) of {} was already revoked",
            r.prefix, r.id, r.owner
        ),
        Output::ApiKeyRevoked(r) => println!(
            "revoked API key {} ({}) of {}; it is refused from now on",
            r.prefix, r.id, r.owner
        ),
        Output::Rotated(r) => println!(
            "new signing key {}; the previous one stays published until its tokens expire",
            r.kid
        ),
    }
    Ok(())
}

fn print_account(a: &AccountInfo) {
    println!("account   {} ({})", a.username, a.id);
    println!("email     {}", a.email.as_deref().unwrap_or("-"));
    println!(
        "status    {}",
        if a.disabled { "disabled" } else { "enabled" }
    );
    println!("mfa       {}", if a.mfa_enabled { "on" } else { "off" });
    println!("created   {}", a.created_at);
    println!(
        "live      {} sessions, {} refresh families",
        a.live_sessions, a.live_families
    );
}
