//! `tessera`: the server, and the operator's tools for its event log.
//!
//! This crate owns process concerns only: flags and configuration, logging, signals, exit
//! codes, progress bars and output formats. Every rule lives in `tessera-core`, every byte
//! on disk in `tessera-storage`, every HTTP detail in `tessera-http`.

mod account;
mod admin_client;
mod client;
mod config;
mod migrate;
mod migration;
mod ops;
mod replay;
mod serve;
mod simulate;
mod timearg;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "An event-sourced authentication server"
)]
struct Cli {
    /// A TOML configuration file. Every key can also be set as a TESSERA_* variable.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data folder (default ./tessera-data).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Print events from the log, or rebuild the views from it.
    Replay(replay::ReplayArgs),
    /// Check the log's hash chain; exit status 0 when intact. Works while the server runs.
    Verify {
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Copy the data folder (log, views, keys) into DIR, a new or empty folder, consistent as
    /// of one moment; the server goes on serving meanwhile. The copy is a data folder:
    /// `tessera serve --data DIR` starts from it.
    Backup {
        /// Where the copy goes: a folder that does not exist yet, or an empty one.
        dir: PathBuf,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Copy a sled log into PostgreSQL, hash chain intact; resumable after a crash.
    Migrate(migrate::MigrateArgs),
    /// Run the deterministic attack simulator.
    Simulate(simulate::SimulateArgs),
    /// Operator actions on accounts, each recorded as events.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// OAuth clients, each change recorded as events.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// API keys: `revoke --prefix P` revokes a leaked key by what a scanner found.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Import accounts from a legacy password table.
    #[command(subcommand)]
    Import(migration::ImportCommand),
    /// The legacy password migration: its progress, and the sunset of inactive legacy
    /// credentials.
    #[command(subcommand)]
    Migration(migration::MigrationCommand),
}

fn main() -> ExitCode {
    // jsonwebtoken needs its crypto provider chosen before the first sign or verify.
    tessera_core::token::install_crypto_provider();
    let cli = Cli::parse();
    let config = match config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(2);
        }
    };
    // The simulator's injected crashes are expected; its report says what happened.
    if !matches!(cli.command, Command::Simulate(_)) {
        serve::init_logging(&config.log);
    }
    let result = match cli.command {
        Command::Serve { listen, data } => {
            let mut config = config;
            config.listen = listen.unwrap_or(config.listen);
            config.data = data.unwrap_or(config.data);
            serve::run(config)
        }
        Command::Replay(args) => replay::run(&config, args),
        Command::Verify { data } => replay::verify(&config, data),
        Command::Backup { dir, data } => replay::backup(&config, dir, data),
        Command::Account(cmd) => account::run(&config, cmd),
        Command::Client(cmd) => client::run(&config, cmd),
        Command::Migrate(args) => migrate::run(&config, args),
        Command::Simulate(args) => simulate::run(&config, args),
        Command::Import(cmd) => migration::import(&config, cmd),
        Command::Migration(cmd) => migration::run(&config, cmd),
        Command::Keys(KeysCommand::Rotate { data, operator }) => {
            ops::run(&config, data, ops::Op::KeysRotate { operator }).map(|()| ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::List { data }) => {
            ops::run(&config, data, ops::Op::KeysList).map(|()| ExitCode::SUCCESS)
        }
        Command::Apikey(ApikeyCommand::Revoke {
            prefix,
            operator,
            data,
        }) => ops::run(
            &config,
            data,
            ops::Op::ApiKeyRevoke {
                prefix: zeroize::Zeroizing::new(prefix),
                operator,
            },
        )
        .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report_error(&e);
            ExitCode::from(2)
        }
    }
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Revoke a leaked API key at once, naming it by the whole key or by its beginning (at
    /// least the display prefix, e.g. `tsr_sk_live_AbCd1234`). Through the running server
    /// when there is one, else on the store directly. Recorded with the operator's name.
    Revoke {
        /// The key, or its beginning up to the display prefix.
        #[arg(long)]
        prefix: String,
        /// Who is doing this, recorded in the event.
        #[arg(long, default_value = "cli")]
        operator: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key: it signs from now on; the old one stays published until
    /// every token it signed has expired. Through the running server when there is one.
    Rotate {
        #[arg(long)]
        data: Option<PathBuf>,
        /// Who is doing this, logged (the key set's events name no actor).
        #[arg(long, default_value = "cli")]
        operator: String,
    },
    /// List the signing keys: kid, current or retired, published, when it leaves the JWKS.
    List {
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// Prints an error that ends the process on stderr as one line, `tessera: <message>`, ending
/// in exactly one newline whatever the message ends with (a shell prompt must not land on the
/// message's line). Every error path of `main` prints through here.
fn report_error(e: &dyn std::fmt::Display) {
    use std::io::Write;
    let message = e.to_string();
    let mut stderr = std::io::stderr().lock();
    // Nothing useful is left to do if stderr itself is gone.
    let _ = writeln!(stderr, "tessera: {}", message.trim_end());
    let _ = stderr.flush();
}

/// An error the operator can act on; printed as `tessera: <message>`, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl Failure {
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self(message.to_string())
    }
}
