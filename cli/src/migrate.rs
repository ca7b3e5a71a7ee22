//! `tessera migrate --from DIR --to postgres://...`: copies a sled log into PostgreSQL with
//! its hash chain intact, byte for byte, then rebuilds the views there from the copied log.
//!
//! Resumable: the copy goes in transactions of [`CHUNK`] envelopes, each moving the
//! database's head, so a run that stops (a crash, Ctrl-C) leaves a prefix of the log, and
//! the next run checks that prefix against the source and continues after it.

use std::path::PathBuf;
use std::process::ExitCode;

use tessera_pgstore::PgStore;
use tessera_storage::{EventStore, replay};

use crate::Failure;
use crate::config::Config;
use crate::replay::progress_bar;

/// Envelopes per transaction.
pub const CHUNK: usize = 1024;

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The sled data folder to copy from (no server may be running on it).
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database to copy into: postgres://user@host:port/database. The
    /// password may come from storage.password (TESSERA_STORAGE__PASSWORD) instead.
    #[arg(long)]
    to: String,
}

pub fn run(config: &Config, args: MigrateArgs) -> Result<ExitCode, Failure> {
    let mut source_config = config.clone();
    source_config.data = args.from.clone();
    let source = crate::serve::open_store(&source_config)?;
    let mut target_config = config.clone();
    target_config.storage.url = args.to.clone();
    let mut target = PgStore::open(crate::serve::pg_options(&target_config))
        .map_err(|e| Failure(format!("cannot open the PostgreSQL log: {e}")))?;
    let from = resume_point(&source, &target)?;
    let total = source.head().sequence;
    if from > total {
        println!(
            "{} already holds all {total} events of {}",
            target.target(),
            args.from.display()
        );
    } else {
        let bar = progress_bar(total, "copying the log");
        bar.set_position(from - 1);
        let head = target
            .import(source.read_from(from), CHUNK, &mut |seq| {
                bar.set_position(seq)
            })
            .map_err(|e| {
                Failure(format!(
                    "{e}; the copy stopped and can be resumed by running the same command again"
                ))
            })?;
        bar.finish_and_clear();
        println!(
            "copied events {from} to {} into {}",
            head.sequence,
            target.target()
        );
    }
    rebuild_views(&mut target, config)?;
    println!(
        "migrated {total} events; now copy {} to every node's data folder and set storage.backend = \"postgres\"",
        args.from.join("keys").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The first sequence still to copy: after the target's head, once that head is checked
/// to be the source's envelope at the same sequence (the same log, copied so far).
fn resume_point(source: &dyn EventStore, target: &PgStore) -> Result<u64, Failure> {
    let head = target.head();
    if head.sequence == 0 {
        return Ok(1);
    }
    let same = source
        .read_from(head.sequence)
        .next()
        .transpose()
        .map_err(Failure::new)?
        .is_some_and(|e| e.sequence == head.sequence && e.hash == head.hash);
    if !same {
        return Err(Failure(format!(
            "{} already holds a log that is not a copy of this one (its event {} differs): migrate into an empty database",
            target.target(),
            head.sequence
        )));
    }
    Ok(head.sequence + 1)
}

/// Folds the copied log (read back from PostgreSQL, chain checked) into fresh views and
/// stores them there.
fn rebuild_views(target: &mut PgStore, config: &Config) -> Result<(), Failure> {
    let bar = progress_bar(target.head().sequence, "rebuilding the views");
    let rebuilt = replay::rebuild_into(
        tessera_core::Views::for_policy(&config.policy),
        target,
        &mut |seq| {
            if seq % 1024 == 0 {
                bar.set_position(seq);
            }
        },
    )
    .map_err(|e| Failure(format!("the copied log does not fold: {e}")))?;
    bar.finish_and_clear();
    let records = rebuilt
        .keys()
        .into_iter()
        .filter_map(|k| rebuilt.record(&k).map(|r| (k, r)))
        .collect();
    target.replace_views(records).map_err(Failure::new)
}
