//! The signing key in use, and its rotation.
//!
//! The private key lives in the key store (`<data>/keys/<kid>.ed25519`, 0600), never in the
//! log; the log records the public key (`SigningKeyAdded`). At start-up the current key of
//! the views is loaded, or a first one generated. Rotation writes a new key file, records
//! the key, and switches signing to it only once that is durable; the old key stays
//! published until every token it signed has expired, and its file is deleted after that.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_core::Timestamp;
use tessera_core::signing_key::Signer;
use tessera_storage::Engine;
use tessera_storage::keys::KeyStore;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("signing key store: {0}")]
    Store(#[from] tessera_storage::keys::KeyStoreError),
    #[error("recording the new signing key: {0}")]
    Engine(#[from] tessera_storage::EngineError),
    #[error("the new signing key was refused: {0}")]
    Refused(tessera_core::Rejection),
}

/// The signer new access tokens are signed with. Swapped atomically on rotation.
#[derive(Debug)]
pub struct Signing {
    current: RwLock<Arc<Signer>>,
    pub keys: KeyStore,
}

/// 32 bytes from the OS, for a new key.
pub fn new_seed() -> Zeroizing<[u8; 32]> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand_core::Rng::fill_bytes(&mut crate::system::os_rng(), &mut seed[..]);
    seed
}

/// Writes a new key and records it through the engine, from a synchronous caller (the CLI).
pub fn rotate_blocking(engine: &Engine, keys: &KeyStore) -> Result<Signer, SigningError> {
    let signer = keys.write(&new_seed())?;
    engine
        .execute_blocking(signer.add_command())?
        .reply
        .map_err(SigningError::Refused)?;
    Ok(signer)
}

/// Writes a new key and records it through the engine, from an async caller that holds no
/// [`Signing`] (the CLI's operator commands when no server runs). The server rotates with
/// [`Signing::rotate`], which also swaps its signer.
pub async fn add_key(engine: &Engine, keys: &KeyStore) -> Result<Signer, SigningError> {
    Signing::record(engine, keys.write(&new_seed())?).await
}

impl Signing {
    /// Loads the current key, or makes the first one.
    pub async fn start(engine: &Engine, keys: KeyStore) -> Result<Self, SigningError> {
        tessera_core::token::install_crypto_provider();
        let current = engine
            .views()
            .signing_keys()
            .current()
            .map(|k| k.kid.clone());
        let signer = match current {
            Some(kid) => keys.load(&kid)?,
            None => Self::record(engine, keys.write(&new_seed())?).await?,
        };
        Ok(Self {
            current: RwLock::new(Arc::new(signer)),
            keys,
        })
    }

    async fn record(engine: &Engine, signer: Signer) -> Result<Signer, SigningError> {
        engine
            .execute(signer.add_command())
            .await?
            .reply
            .map_err(SigningError::Refused)?;
        Ok(signer)
    }

    pub fn signer(&self) -> Arc<Signer> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A new key signs from now on; the old one stays published until its tokens expire.
    pub async fn rotate(&self, engine: &Engine) -> Result<String, SigningError> {
        let signer = Self::record(engine, self.keys.write(&new_seed())?).await?;
        let kid = signer.kid().to_owned();
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(signer);
        Ok(kid)
    }

    /// Deletes the files of keys no longer published: nothing they signed is still valid.
    pub fn forget_unpublished(
        &self,
        engine: &Engine,
        now: Timestamp,
    ) -> Result<usize, SigningError> {
        let published: Vec<String> = engine
            .views()
            .signing_keys()
            .iter()
            .filter(|k| k.is_published(now))
            .map(|k| k.kid.clone())
            .collect();
        let current = self.signer().kid().to_owned();
        let mut removed = 0;
        for kid in self.keys.list()? {
            if kid != current && !published.contains(&kid) {
                self.keys.remove(&kid)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Rotates when the current key is older than `period`, and forgets retired keys; checks
    /// every `check_every`. Runs until the runtime stops.
    pub async fn rotate_periodically(
        self: Arc<Self>,
        engine: Engine,
        period: Duration,
        check_every: Duration,
    ) {
        let mut ticker = tokio::time::interval(check_every);
        loop {
            ticker.tick().await;
            let now = engine.now();
            let created = engine
                .views()
                .signing_keys()
                .current()
                .map(|k| k.created_at);
            let due = created.is_none_or(|c| {
                now.since(c) >= u64::try_from(period.as_millis()).unwrap_or(u64::MAX)
            });
            if due {
                match self.rotate(&engine).await {
                    Ok(kid) => tracing::info!(%kid, "signing key rotated"),
                    Err(error) => tracing::error!(%error, "signing key rotation failed"),
                }
            }
            if let Err(error) = self.forget_unpublished(&engine, now) {
                tracing::warn!(%error, "could not delete retired signing keys");
            }
        }
    }
}
