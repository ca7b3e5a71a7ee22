//! Online backup: a complete, openable copy of a running server's data folder (the log, the
//! views, the key files), taken without stopping or slowing the writer.
//!
//! Why it is consistent without stopping writes: the log is append-only, so the prefix up to
//! a head the engine has made durable never changes; the backup reads exactly that prefix
//! through a [`LogReader`] (which never waits for the writer) and imports it byte for byte
//! into a new store ([`SledStore::import`]). The views are not copied (they move on with
//! every batch, so a copy taken mid-write would match no single point of the log): they are
//! rebuilt from the imported log, which by construction gives the views at that head. Key
//! files are written before the events that name them, so every key the copied log refers
//! to (and has not retired) is already in the keys folder when the backup lists it.
//!
//! A backup folder is a data folder: `tessera serve --data <backup>` starts from it. Until
//! the copy is complete and durable the folder holds [`INCOMPLETE_MARKER`], written first and
//! removed last; [`SledStore::open`] and [`KeyStore::open`] refuse a folder that still has
//! it, so an interrupted copy is never mistaken for a good one.
//!
//! [`KeyStore::open`]: crate::keys::KeyStore::open

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tessera_core::{Policy, Views};

use crate::event_store::{EventStore, Head, LogReader, OpenError, ReadError};
use crate::keys::KeyStoreError;
use crate::replay::{self, ReplayError};
use crate::sled_store::{ImportError, SledOptions, SledStore};

/// The file an unfinished backup holds: written (and synced) before anything else, removed
/// last. A folder that holds it must not be used.
pub const INCOMPLETE_MARKER: &str = "BACKUP-INCOMPLETE";

/// sled's page cache for the store being written: the backup runs inside the server's
/// process, beside the server's own cache, and writes each key once.
const BACKUP_CACHE_BYTES: u64 = 32 * 1024 * 1024;

const MARKER_TEXT: &str = "This folder is an online backup of a tessera data folder that has \
not finished (or was interrupted). It may hold any part of the copy and must not be used: \
delete the folder and take the backup again.\n";

/// Whether `folder` holds [`INCOMPLETE_MARKER`]. A folder that cannot be looked into counts
/// as not marked: opening it then fails on its own.
pub(crate) fn is_incomplete(folder: &Path) -> bool {
    matches!(folder.join(INCOMPLETE_MARKER).try_exists(), Ok(true))
}

/// What a finished backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupReport {
    /// Events copied: every one from the first through `last_sequence`.
    pub events: u64,
    /// The last sequence copied: the head the backup was taken at.
    pub last_sequence: u64,
    /// The last copied envelope's hash ([`crate::chain::GENESIS`] for an empty log).
    pub last_hash: [u8; 32],
    /// The copied envelopes' stored size, bytes.
    pub bytes: u64,
    /// Key files copied (signing keys and the MFA key).
    pub key_files: u64,
    /// How long the backup took, milliseconds.
    pub elapsed_ms: u64,
}

/// Why a backup failed. Unless the error is [`BackupError::DestinationNotEmpty`] (which
/// touches nothing), the destination may hold a partial copy, still marked incomplete.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination exists and is not an empty folder: a backup never overwrites or mixes
    /// with anything.
    #[error(
        "refusing to back up into {path}: it exists and is not an empty folder; name a new or empty folder"
    )]
    DestinationNotEmpty {
        /// The destination.
        path: String,
    },
    /// The destination folder or its marker could not be created, synced or removed.
    #[error("backup destination {path}: {why}")]
    Destination {
        /// The file or folder operated on.
        path: String,
        /// What the file system reported.
        why: String,
    },
    /// The new store at the destination could not be created.
    #[error("creating the backup's store: {0}")]
    Open(#[from] OpenError),
    /// Copying the log failed: the source could not be read, its chain is broken (the error
    /// names the sequence), or the copy could not be written.
    #[error("copying the log: {0}")]
    Import(#[from] ImportError),
    /// The log ends before the head the backup was asked to stop at.
    #[error(
        "the log ends at sequence {found}, before the requested head {through}: was the head taken from this server?"
    )]
    ShortLog {
        /// The head's sequence.
        through: u64,
        /// The last sequence found.
        found: u64,
    },
    /// The last copied envelope's hash is not the head's: the log the reader sees is not the
    /// one the head was taken from.
    #[error("the envelope at sequence {sequence} does not carry the requested head's hash")]
    HeadMismatch {
        /// The head's sequence.
        sequence: u64,
    },
    /// Rebuilding the views from the copied log failed, or storing them did.
    #[error("rebuilding the backup's views: {0}")]
    Views(#[from] ReplayError),
    /// The key files could not be copied, or a copy does not read back.
    #[error("copying the key files: {0}")]
    Keys(#[from] KeyStoreError),
}

fn destination(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Destination {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// Syncs a folder, so the entries created or removed in it are durable.
fn sync_dir(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(destination(path))
}

/// Backs up a running server's data into the new folder `dest`: every envelope from the
/// first through `through` (a head the engine made durable, such as
/// [`crate::Engine::head`]), read through `reader`, imported byte for byte into a new store
/// laid out as `tessera serve --data` expects it; the views rebuilt from that log (bounded as
/// `policy`, the server's, bounds them) and stored; and the key files of `keys_dir` (the
/// server's `<data>/keys`) copied into `dest/keys` with the same permissions. Everything is
/// made durable before the marker is removed, last. `progress` is called with each
/// sequence copied, then with each sequence again as the views are rebuilt from the copy (a
/// caller that paces the backup by it paces both passes).
///
/// Only reads through `reader`: the writer is never blocked or slowed beyond sharing the
/// disk. Refuses a `dest` that exists and is not an empty folder. Blocking, for as long as
/// the copy takes: an async caller runs it on a blocking thread.
pub fn write(
    reader: &dyn LogReader,
    through: Head,
    keys_dir: &Path,
    dest: &Path,
    policy: &Policy,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupReport, BackupError> {
    #[allow(
        clippy::disallowed_methods,
        reason = "measuring how long the backup took, for the operator: not domain time"
    )]
    let started = std::time::Instant::now();
    prepare_destination(dest)?;
    let marker = dest.join(INCOMPLETE_MARKER);
    write_marker(&marker)?;

    let mut store = SledStore::open_unchecked(
        dest,
        SledOptions {
            cache_bytes: BACKUP_CACHE_BYTES,
            background_flush: false,
            ..SledOptions::default()
        },
    )?;
    let imported = store.import(reader.read_range(1, through.sequence), progress)?;
    if imported.head.sequence != through.sequence {
        return Err(BackupError::ShortLog {
            through: through.sequence,
            found: imported.head.sequence,
        });
    }
    if imported.head.hash != through.hash {
        return Err(BackupError::HeadMismatch {
            sequence: through.sequence,
        });
    }
    // The rebuild reads the copy back and checks its chain again on the way.
    // `progress` sees the rebuild too (its sequences start again from 1), so a caller that
    // paces the backup by it paces the whole of it.
    let views = replay::rebuild_into(Views::for_policy(policy), &store, progress)?;
    let records = views
        .keys()
        .into_iter()
        .filter_map(|k| views.record(&k).map(|r| (k, r)))
        .collect();
    store
        .replace_views(records)
        .map_err(|e| ReplayError::Read(ReadError::Io(e.to_string())))?;
    store
        .sync()
        .map_err(|e| ReplayError::Read(ReadError::Io(e.to_string())))?;
    drop(store);

    let key_files = crate::keys::copy_keys(keys_dir, &dest.join("keys"))?;
    sync_dir(dest)?;

    fs::remove_file(&marker).map_err(destination(&marker))?;
    sync_dir(dest)?;
    Ok(BackupReport {
        events: imported.events,
        last_sequence: imported.head.sequence,
        last_hash: imported.head.hash,
        bytes: imported.bytes,
        key_files,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Creates `dest` (and its parents), or accepts it if it is an empty folder; refuses
/// anything else. Syncs the parent so the new folder's entry is durable.
fn prepare_destination(dest: &Path) -> Result<(), BackupError> {
    let not_empty = || BackupError::DestinationNotEmpty {
        path: dest.display().to_string(),
    };
    match fs::symlink_metadata(dest) {
        Ok(meta) if !meta.is_dir() => return Err(not_empty()),
        Ok(_) => {
            let mut entries = fs::read_dir(dest).map_err(destination(dest))?;
            if entries.next().is_some() {
                return Err(not_empty());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(destination(dest))?;
        }
        Err(e) => return Err(destination(dest)(e)),
    }
    let parent: PathBuf = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    sync_dir(&parent)
}

/// Writes the marker, syncs it and the folder: from here on the folder is known incomplete.
fn write_marker(marker: &Path) -> Result<(), BackupError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .map_err(destination(marker))?;
    file.write_all(MARKER_TEXT.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(destination(marker))?;
    match marker.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}
