//! The application state every handler shares.

use std::sync::Arc;

use tessera_core::mfa::MfaKeys;
use tessera_core::usecase::{Planned, Prepare, UseCase};
use tessera_storage::{Engine, Outcome, UseCaseReply};

use crate::config::HttpConfig;
use crate::hashing::Hashing;
use crate::metrics::HttpMetrics;
use crate::signing::Signing;

#[derive(Debug)]
pub struct App {
    pub engine: Engine,
    pub config: HttpConfig,
    pub hashing: Hashing,
    pub metrics: HttpMetrics,
    /// The key access tokens are signed with.
    pub signing: Arc<Signing>,
    /// Seals TOTP secrets and keys backup-code digests; kept outside the log.
    pub mfa_keys: MfaKeys,
    /// The API-key digest key, per-key rate limits and usage counters.
    pub api_keys: crate::apikey::ApiKeys,
    /// The external sign-in providers and their outgoing client.
    pub signin: crate::signin::Providers,
    /// The WebAuthn relying party and its pending ceremonies; `None` when the public URL
    /// names no host WebAuthn can use (the routes then answer 503).
    pub webauthn: Option<tessera_webauthn::Ceremonies>,
    /// The bounds the ceremonies were made with.
    pub webauthn_limits: tessera_webauthn::Limits,
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
        api_key_pepper: tessera_core::apikey::ApiKeyPepper,
    ) -> Result<Self, AppError> {
        config.validate().map_err(AppError::Config)?;
        engine.policy().validate().map_err(AppError::Config)?;
        let hashing = Hashing::new(config.hash_workers, config.hash_queue_max);
        let signin = crate::signin::Providers::new(&config.upstreams, &config.upstream_limits)
            .map_err(AppError::Config)?;
        let webauthn_limits = tessera_webauthn::Limits {
            capacity: config.webauthn_ceremonies_max,
            ..tessera_webauthn::Limits::default()
        };
        let webauthn = match tessera_webauthn::Ceremonies::new(
            &config.public_url,
            &engine.policy().mfa.issuer,
            webauthn_limits,
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "WebAuthn is off");
                None
            }
        };
        Ok(Self {
            webauthn,
            webauthn_limits,
            engine,
            config,
            hashing,
            metrics: HttpMetrics::default(),
            signing,
            mfa_keys,
            api_keys: crate::apikey::ApiKeys::new(api_key_pepper),
            signin,
        })
    }
}

impl App {
    /// Runs a use case that needs argon2 work: [`App::prepare`], then the writer.
    pub async fn run<U: UseCase>(
        &self,
        usecase: U,
    ) -> Result<Outcome<UseCaseReply<U>>, crate::problem::Problem> {
        let command = self.prepare(usecase).await?;
        Ok(self.engine.execute(command).await?)
    }

    /// The use case's halves before the writer: the plan under the views' read lock, then
    /// the argon2 half on the bounded hashing pool (no lock held). The same halves as
    /// [`Engine::prepare_here`], with the hashing moved off the async workers.
    pub async fn prepare<U: UseCase>(
        &self,
        usecase: U,
    ) -> Result<<U::Plan as Planned>::Command, crate::problem::Problem> {
        let plan = self.engine.plan(usecase)?;
        let decoy = self.engine.decoy();
        let policy = self.engine.shared_policy();
        Ok(self
            .hashing
            .run(move |rng, area| {
                plan.prepare(Prepare {
                    rng,
                    area,
                    decoy: &decoy,
                    policy: &policy,
                })
            })
            .await??)
    }
}
