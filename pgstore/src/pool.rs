//! Connections: how they are opened, described in errors, and pooled for reads.

use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, NoTls};
use tessera_storage::ReadError;

/// Connections kept open for reads; more may be open at once, the rest are closed when put
/// back.
const IDLE_READERS_MAX: usize = 4;

/// How long opening a connection may take before it is reported as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens one connection (plain TCP or a Unix socket; see docs/decisions.md on TLS).
pub fn connect(config: &postgres::Config) -> Result<Client, postgres::Error> {
    let mut config = config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.connect(NoTls)
}

/// Where a configuration points, for messages: user, hosts, ports and database, never the
/// password.
pub fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgres://{}@{}:{}/{}",
        config.get_user().unwrap_or("(default user)"),
        hosts.join(","),
        if ports.is_empty() {
            "5432".to_owned()
        } else {
            ports.join(",")
        },
        config.get_dbname().unwrap_or("(default database)")
    )
}

/// What went wrong, in the server's words when it answered (a wrong password, a missing
/// database), else the driver's (refused, timed out). Never contains the password.
pub fn why(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Whether the error means the connection is gone (as opposed to a refused statement).
pub fn connection_lost(e: &postgres::Error, client: &Client) -> bool {
    client.is_closed() || e.as_db_error().is_none()
}

/// A small pool of read connections shared by a store and its log readers.
pub struct Pool {
    config: postgres::Config,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &describe(&self.config))
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool that opens connections with `config` as they are needed.
    pub fn new(config: postgres::Config) -> Self {
        Self {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a pooled connection (opened if none is idle). A connection that failed
    /// is dropped, not put back.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, postgres::Error>,
    ) -> Result<R, ReadError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut client = match idle {
            Some(c) if !c.is_closed() => c,
            _ => connect(&self.config)
                .map_err(|e| ReadError::Io(format!("{}: {}", describe(&self.config), why(&e))))?,
        };
        let result = f(&mut client).map_err(|e| ReadError::Io(why(&e)));
        if result.is_ok() && !client.is_closed() {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < IDLE_READERS_MAX {
                idle.push(client);
            }
        }
        result
    }
}
