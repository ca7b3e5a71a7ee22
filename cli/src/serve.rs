//! `tessera serve`: open the store, check the chain, start the writer and the HTTP server,
//! and stop cleanly on SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;
use tessera_http::system::{SystemClock, os_rng};

use tessera_http::signing::Signing;
use tessera_http::{App, start_on};
use tessera_pgstore::{PgOptions, PgStore};
use tessera_storage::engine::EngineConfig;
use tessera_storage::keys::KeyStore;
use tessera_storage::replay;
use tessera_storage::{Engine, EventStore, SledOptions, SledStore};

use crate::Failure;
use crate::config::{Config, LogConfig};

pub fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn open_store(config: &Config) -> Result<SledStore, Failure> {
    SledStore::open(
        &config.data,
        SledOptions {
            cache_bytes: config.store.cache_bytes,
            ..SledOptions::default()
        },
    )
    .map_err(Failure::new)
}

/// Where the log lives, for messages: the data folder, or the database (no password).
pub fn log_location(config: &Config) -> String {
    match config.storage.backend.as_str() {
        "postgres" => pg_options(config)
            .config()
            .map(|c| tessera_pgstore::pool::describe(&c))
            .unwrap_or_else(|_| "storage.url".into()),
        _ => config.data.display().to_string(),
    }
}

/// The PostgreSQL store's options from the configuration.
pub fn pg_options(config: &Config) -> PgOptions {
    let storage = &config.storage;
    let mut options = PgOptions::new(storage.url.clone());
    if !storage.password.is_empty() {
        options.password = Some(storage.password.clone());
    }
    options.advertise = Some(if storage.advertise.is_empty() {
        config.listen.to_string()
    } else {
        storage.advertise.clone()
    });
    options.follow_interval = Duration::from_millis(storage.follow_interval_ms);
    options.retry_window = Duration::from_millis(storage.retry_window_ms);
    options
}

/// Opens the configured store: sled in the data folder, or PostgreSQL.
pub fn open_any_store(config: &Config) -> Result<Box<dyn EventStore>, Failure> {
    match config.storage.backend.as_str() {
        "postgres" => PgStore::open(pg_options(config))
            .map(|s| Box::new(s) as Box<dyn EventStore>)
            .map_err(|e| Failure(format!("cannot open the PostgreSQL log: {e}"))),
        _ => open_store(config).map(|s| Box::new(s) as Box<dyn EventStore>),
    }
}

/// Opens the store, optionally verifying the chain first, and starts the writer.
pub fn start_engine(config: &Config, verify: bool) -> Result<Engine, Failure> {
    let store = open_any_store(config)?;
    if verify {
        let bar = crate::replay::progress_bar(store.head().sequence, "verifying log");
        let report = replay::verify(store.as_ref(), &mut |seq| bar.set_position(seq));
        bar.finish_and_clear();
        if let Err(e) = report {
            let location = log_location(config);
            return Err(Failure(format!(
                "refusing to start: the event log in {location} is damaged: {e}. Run `tessera verify` with the same configuration for details and restore from a backup."
            )));
        }
    }
    let engine_config = EngineConfig {
        batch_commands_max: config.store.batch_commands_max,
        queue_commands_max: config.store.queue_commands_max,
        check_invariants: false,
    };
    Engine::start(store, config.policy.clone(), Arc::new(SystemClock), Box::new(os_rng()), engine_config)
        .map_err(|e| Failure(format!("refusing to start: cannot load the views: {e}. Try `tessera replay --rebuild --repair`.")))
}

/// The engine for an operator command run on the store directly (no server answered on the
/// socket). On a shared log, a command that has just finished may still hold the writer
/// lease for a moment (its database session ends after the process), so wait up to
/// [`OPERATOR_LEASE_WAIT`] to lead before giving up; a node that still follows then answers
/// each command "retry shortly".
pub fn start_operator_engine(config: &Config) -> Result<Engine, Failure> {
    let engine = start_engine(config, false)?;
    if engine.is_shared() {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while engine.role() != tessera_storage::Role::Leader && waited < OPERATOR_LEASE_WAIT {
            #[allow(
                clippy::disallowed_methods,
                reason = "a command-line wait, outside the core"
            )]
            std::thread::sleep(step);
            waited += step;
        }
    }
    Ok(engine)
}

/// How long an operator command waits for the writer lease of a shared log.
const OPERATOR_LEASE_WAIT: Duration = Duration::from_secs(10);

pub fn run(mut config: Config) -> Result<ExitCode, Failure> {
    // Bound before the engine starts: the issuer every token carries is the public URL,
    // which defaults to the address actually bound (port 0 included).
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", config.listen)))?;
    let local = listener.local_addr().map_err(Failure::new)?;
    let public_url = tessera_http::config::effective_public_url(&config.http.public_url, local);
    config.http.public_url.clone_from(&public_url);
    config.policy.token.issuer = public_url;
    // The address other nodes forward writes to: the port actually bound (0 included).
    config.listen = local;
    let engine = start_engine(&config, config.store.verify_on_start)?;
    // zxcvbn builds its dictionaries on first use; off the start path, so that neither the
    // start nor the first registration waits for it. A failure to spawn only loses that.
    let _ = std::thread::Builder::new()
        .name("password-warm-up".into())
        .spawn(tessera_core::password::warm_up);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::new)?;
    runtime.block_on(async {
        // Listen for SIGTERM before anything can learn the server is up: a signal that
        // arrives between "listening" and the handler would kill the process mid-start.
        let stop = shutdown_signal();
        if engine.is_shared() {
            wait_for_signing_key(&engine).await?;
        }
        let keys = KeyStore::open(&config.data).map_err(Failure::new)?;
        // Created on first start; from then on the file always wins.
        let mfa_keys = keys.mfa_keys_or_create(&tessera_http::signing::new_seed()).map_err(Failure::new)?;
        let api_key_pepper = keys.api_key_pepper_or_create(&tessera_http::signing::new_seed()).map_err(Failure::new)?;
        let signing = Arc::new(Signing::start(&engine, keys).await.map_err(Failure::new)?);
        let days = config.http.signing_key_rotation_days;
        if days > 0 {
            let period = Duration::from_secs(days.saturating_mul(86_400));
            tokio::spawn(signing.clone().rotate_periodically(engine.clone(), period, Duration::from_secs(3600)));
        }
        let every = config.policy.migration.sunset_every_secs;
        if every > 0 {
            let sunset = tessera_http::admin::migration::sunset_periodically(engine.clone(), config.data.clone(), Duration::from_secs(every));
            tokio::spawn(sunset);
        }
        let app = Arc::new(App::new(engine.clone(), config.http.clone(), signing, mfa_keys, api_key_pepper).map_err(Failure::new)?);
        let handle = start_on(app.clone(), listener).await.map_err(|e| Failure(format!("cannot listen on {}: {e}", config.listen)))?;
        let admin = tessera_http::admin::start_admin(app, &config.data, tessera_http::admin::AdminOptions::default()).await;
        let admin = match admin {
            Ok(admin) => admin,
            Err(e) => {
                handle.shutdown().await;
                return Err(Failure::new(e));
            }
        };
        tracing::info!(address = %handle.local_addr, data = %config.data.display(), admin = %admin.path.display(), "tessera is serving");
        println!("tessera listening on http://{}", handle.local_addr);
        stop.await;
        tracing::info!("shutting down: draining requests");
        tokio::join!(handle.shutdown(), admin.shutdown());
        Ok::<_, Failure>(())
    })?;
    // Every answered request's events were durable before it was answered; this finishes the
    // batch in hand, if any, and stops the writer.
    engine.shutdown();
    tracing::info!("stopped; the log is durable");
    Ok(ExitCode::SUCCESS)
}

/// On a shared log, a node that follows signs nothing until it leads, but it must know the
/// current signing key (its file comes with the node's keys folder): wait until the log
/// records one, or this node leads and may make the first.
async fn wait_for_signing_key(engine: &Engine) -> Result<(), Failure> {
    for attempt in 0..600 {
        let has_key = engine.views().signing_keys().current().is_some();
        // Also wait (briefly) until the node knows where the leader is, so that the first
        // changes it takes are forwarded rather than refused.
        let placed = match engine.role() {
            tessera_storage::Role::Leader => return Ok(()),
            tessera_storage::Role::Follower { leader } => leader.is_some() || attempt >= 100,
        };
        if has_key && placed {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Failure::new(
        "no signing key in the shared log after 30 s, and no node took the writer lease to make one",
    ))
}

/// Registers the SIGTERM and Ctrl-C handlers now, and resolves when either arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        #[cfg(unix)]
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
    }
}
