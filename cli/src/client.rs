//! `tessera client ...`: OAuth clients, registered, rotated and removed through the same use
//! cases as everything else: through the running server's admin socket, or directly on the
//! data folder when no server runs (`crate::ops`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use tessera_http::admin::clients::{AddClient, RotateSecret};

use crate::Failure;
use crate::config::Config;
use crate::ops::Op;

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client. A confidential client's secret is printed once; keep it.
    Add {
        /// The client_id: 1 to 64 of A-Z a-z 0-9 . _ -
        client_id: String,
        /// The name users see on the consent and device pages (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// A public client (a native or browser app): no secret, PKCE only.
        #[arg(long)]
        public: bool,
        /// An exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// An allowed grant type: authorization_code, refresh_token, client_credentials,
        /// device_code (repeat; default authorization_code and refresh_token).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// An allowed scope (repeat for several).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// List every client.
    List {
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Show one client (never its secret).
    Show {
        client_id: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Give a confidential client a new secret (printed once); the current one keeps
    /// working for the overlap.
    RotateSecret {
        client_id: String,
        /// Seconds the current secret keeps working (default 0: it stops now).
        #[arg(long, default_value_t = 0)]
        overlap_secs: u64,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Remove a client: its grants and every token it holds are revoked.
    Remove {
        client_id: String,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

pub fn run(config: &Config, cmd: ClientCommand) -> Result<ExitCode, Failure> {
    let (data, op) = match cmd {
        ClientCommand::Add {
            client_id,
            name,
            public,
            redirect_uris,
            grants,
            scopes,
            operator,
            data,
        } => (
            data,
            Op::ClientAdd(AddClient {
                client_id,
                name,
                public,
                redirect_uris,
                grant_types: grants,
                scopes,
                operator,
            }),
        ),
        ClientCommand::List { data } => (data, Op::ClientList),
        ClientCommand::Show { client_id, data } => (data, Op::ClientShow(client_id)),
        ClientCommand::RotateSecret {
            client_id,
            overlap_secs,
            operator,
            data,
        } => (
            data,
            Op::ClientRotate(
                client_id,
                RotateSecret {
                    overlap_secs,
                    operator,
                },
            ),
        ),
        ClientCommand::Remove {
            client_id,
            operator,
            data,
        } => (data, Op::ClientRemove(client_id, operator)),
    };
    crate::ops::run(config, data, op)?;
    Ok(ExitCode::SUCCESS)
}
