//! The application state every handler shares.

use std::sync::Arc;

use tessera_core::mfa::MfaKeys;
use tessera_core::password::{PasswordHash, decoy_hash};
use tessera_storage::Engine;

use crate::config::HttpConfig;
use crate::hashing::Hashing;
use crate::metrics::HttpMetrics;
use crate::signing::Signing;

#[derive(Debug)]
pub struct App {
    pub engine: Engine,
    pub config: HttpConfig,
    pub hashing: Hashing,
    /// Checked instead of a real hash when a login names no account, so both take as long.
    pub decoy: PasswordHash,
    pub metrics: HttpMetrics,
    /// The key access tokens are signed with.
    pub signing: Arc<Signing>,
    /// Seals TOTP secrets and keys backup-code digests; kept outside the log.
    pub mfa_keys: MfaKeys,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl App {
    pub fn new(
        engine: Engine,
        config: HttpConfig,
        signing: Arc<Signing>,
        mfa_keys: MfaKeys,
    ) -> Result<Self, AppError> {
        config.validate().map_err(AppError::Config)?;
        engine.policy().validate().map_err(AppError::Config)?;
        let decoy =
            decoy_hash(&engine.policy().argon2).map_err(|e| AppError::Config(e.to_string()))?;
        let hashing = Hashing::new(config.hash_workers, config.hash_queue_max);
        Ok(Self {
            engine,
            config,
            hashing,
            decoy,
            metrics: HttpMetrics::default(),
            signing,
            mfa_keys,
        })
    }
}
