//! `tessera account ...`: operator actions on accounts, run through the same use cases and
//! recorded by the same writer as the API's: through the running server's admin socket, or
//! directly on the data folder when no server runs (`crate::ops`).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use tessera_http::admin::ops::AccountAction;
use zeroize::Zeroizing;

use crate::Failure;
use crate::config::Config;
use crate::ops::Op;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account. The password is read from the first line of standard input.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Show one account: status, MFA, live sessions and refresh families.
    Show {
        username: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// List every account.
    List {
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Disable an account and end all its sessions. Disabling a disabled account records
    /// nothing.
    Disable {
        username: String,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Enable a disabled account again. Enabling an enabled account records nothing.
    Enable {
        username: String,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Turn MFA off for a user who lost their device; every session and family ends. Recorded
    /// as `TotpDisabled` naming the operator.
    ResetMfa {
        username: String,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// List the account's live sessions and refresh families.
    Sessions {
        username: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// End every session and refresh family of the account; older access tokens are refused.
    Logout {
        username: String,
        /// Who is doing this, recorded in the event.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Print the QR code of a pending TOTP enrolment in the terminal, for the user to scan.
    /// Needs the MFA key in `<data>/keys/mfa.key`.
    MfaQr {
        username: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

pub fn run(config: &Config, cmd: AccountCommand) -> Result<ExitCode, Failure> {
    let act = |username, action, operator| Op::Act {
        username,
        action,
        operator,
    };
    let (data, op) = match cmd {
        AccountCommand::Add {
            username,
            email,
            data,
        } => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure(format!("cannot read the password from stdin: {e}")))?;
            let password = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
            (
                data,
                Op::Add {
                    username,
                    email,
                    password,
                },
            )
        }
        AccountCommand::Show { username, data } => (data, Op::Show(username)),
        AccountCommand::List { data } => (data, Op::List),
        AccountCommand::Disable {
            username,
            operator,
            data,
        } => (data, act(username, AccountAction::Disable, operator)),
        AccountCommand::Enable {
            username,
            operator,
            data,
        } => (data, act(username, AccountAction::Enable, operator)),
        AccountCommand::ResetMfa {
            username,
            operator,
            data,
        } => (data, act(username, AccountAction::ResetMfa, operator)),
        AccountCommand::Sessions { username, data } => (data, Op::Sessions(username)),
        AccountCommand::Logout {
            username,
            operator,
            data,
        } => (data, act(username, AccountAction::Logout, operator)),
        AccountCommand::MfaQr { username, data } => (data, Op::MfaQr(username)),
    };
    crate::ops::run(config, data, op)?;
    Ok(ExitCode::SUCCESS)
}
