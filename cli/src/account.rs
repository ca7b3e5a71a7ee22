//! `tessera account add|disable|reset-mfa|mfa-qr`: operator actions, run through the same use
//! cases and recorded by the same writer as the API's. The server must be stopped (sled allows one process).

use std::io::BufRead;
use std::process::ExitCode;

use clap::Subcommand;
use tessera_core::usecase::RegisterRequest;
use tessera_core::{Actor, Command};
use tessera_storage::UseCaseError;
use zeroize::Zeroizing;

use crate::Failure;
use crate::config::Config;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account. The password is read from the first line of standard input.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        data: Option<std::path::PathBuf>,
    },
    /// Turn MFA off for a user who lost their device; every session and family ends. Recorded
    /// as `TotpDisabled` naming the operator.
    ResetMfa {
        username: String,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<std::path::PathBuf>,
    },
    /// Print the QR code of a pending TOTP enrolment in the terminal, for the user to scan.
    /// Needs the MFA key in `<data>/keys/mfa.key`.
    MfaQr {
        username: String,
        #[arg(long)]
        data: Option<std::path::PathBuf>,
    },
    /// Disable an account and end all its sessions.
    Disable {
        username: String,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<std::path::PathBuf>,
    },
}

pub fn run(config: &Config, cmd: AccountCommand) -> Result<ExitCode, Failure> {
    let mut config = config.clone();
    match cmd {
        AccountCommand::Add {
            username,
            email,
            data,
        } => {
            config.data = data.unwrap_or(config.data);
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure(format!("cannot read the password from stdin: {e}")))?;
            let password = line.trim_end_matches(['\n', '\r']);
            let mut rng = tessera_http::system::os_rng();
            let mut area = tessera_core::password::WorkArea::default();
            let request = RegisterRequest {
                username,
                email,
                password: password.into(),
            };
            let engine = crate::serve::start_engine(&config, false)?;
            let outcome = engine.run_blocking(request, &mut rng, &mut area);
            engine.shutdown();
            let registered = match outcome {
                Ok(outcome) => outcome.reply.map_err(|r| Failure(describe(&r)))?,
                Err(UseCaseError::Refused(r)) => return Err(Failure(describe(&r))),
                Err(UseCaseError::Engine(e)) => return Err(Failure::new(e)),
            };
            println!(
                "created account {} ({})",
                registered.username, registered.account
            );
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::ResetMfa {
            username,
            operator,
            data,
        } => {
            config.data = data.unwrap_or(config.data);
            let by = Actor::Operator { name: operator };
            let account = operator_action(&config, &username, |account| {
                Command::from(tessera_core::mfa::ResetMfa { account, by })
            })?;
            println!("reset MFA of {username} ({account}); its sessions have ended");
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::MfaQr { username, data } => {
            config.data = data.unwrap_or(config.data);
            let keys = tessera_storage::keys::KeyStore::open(&config.data)
                .and_then(|k| k.mfa_keys())
                .map_err(|e| Failure(format!("cannot load the MFA key: {e}")))?;
            let engine = crate::serve::start_engine(&config, false)?;
            let uri = {
                let views = engine.views();
                let account = views.account_by_username(&username).map(|a| a.id);
                account
                    .ok_or(tessera_core::Rejection::AccountNotFound)
                    .and_then(|a| {
                        tessera_core::mfa::pending_otpauth_uri(
                            &views,
                            &a,
                            &keys,
                            &config.policy,
                            engine.now(),
                        )
                    })
            };
            engine.shutdown();
            let uri = uri.map_err(|r| Failure(format!("{username}: {}", describe(&r))))?;
            let qr = tessera_core::mfa::qr_terminal(&uri)
                .ok_or_else(|| Failure::new("the URI does not fit in a QR code"))?;
            println!("{qr}");
            println!(
                "scan this with the authenticator app of {username}, then confirm with a code"
            );
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::Disable {
            username,
            operator,
            data,
        } => {
            config.data = data.unwrap_or(config.data);
            let by = Actor::Operator { name: operator };
            let account = operator_action(&config, &username, |account| {
                Command::from(tessera_core::account::DisableAccount { account, by })
            })?;
            println!("disabled account {username} ({account}); its sessions have ended");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs one operator command on the named account through its own engine, and stops it.
fn operator_action(
    config: &Config,
    username: &str,
    command: impl FnOnce(tessera_core::AccountId) -> Command,
) -> Result<tessera_core::AccountId, Failure> {
    let engine = crate::serve::start_engine(config, false)?;
    let account = engine.views().account_by_username(username).map(|a| a.id);
    let Some(account) = account else {
        engine.shutdown();
        return Err(Failure(format!("no account named {username}")));
    };
    let outcome = engine.execute_blocking(command(account));
    engine.shutdown();
    outcome
        .map_err(Failure::new)?
        .reply
        .map_err(|r| Failure(describe(&r)))?;
    Ok(account)
}

fn describe(r: &tessera_core::Rejection) -> String {
    match r {
        tessera_core::Rejection::WeakPassword(problems) => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            format!("the password does not meet the policy: {}", list.join("; "))
        }
        other => other.to_string(),
    }
}
