//! The private signing keys: one file per key, outside the log.
//!
//! `<data>/keys/<kid>.ed25519` holds the key's 32-byte Ed25519 seed (RFC 8032), nothing
//! else. The folder is 0700 and every file 0600; a file is written to a temporary name,
//! fsynced, renamed into place and the folder fsynced, so a crash leaves either no key or
//! the whole key, never half of one. The log records only the public key and kid
//! (`SigningKeyAdded`): the private key never enters it.
//!
//! Generating the seed is the caller's job (the OS RNG lives in `cli`/`http`, never here),
//! so this module, like the rest of storage, reads no randomness. Rotation, as an operator
//! runs it:
//! 1. draw 32 random bytes; [`KeyStore::write`] them; build the [`Signer`];
//! 2. submit [`Signer::add_command`] to the engine; once acknowledged, sign with it;
//! 3. after the retired key's `unpublish_at`, [`KeyStore::remove`] its file (it signs
//!    nothing after step 2, so it could go at once; keeping it until then allows a
//!    rollback).
//!
//! A kid must look like one of ours ([`kid_plausible`]) before it becomes a path, so no
//! `..` or `/` ever reaches the file system.
//!
//! The MFA master key lives beside them in `<data>/keys/mfa.key` (32 bytes, 0600), created
//! on first use from 32 random bytes the caller supplies ([`KeyStore::mfa_keys_or_create`]).
//! It seals TOTP secrets and peppers backup-code hashes ([`MfaKeys`]); the log holds only
//! sealed secrets and keyed hashes, so a copy of the log without this file reveals neither.
//! Losing the file makes every enrolled TOTP secret unreadable (users fall back to an
//! operator reset): back it up with the data folder, but apart from the log.
//!
//! The API-key key lives there too, `<data>/keys/apikey.key` (32 bytes, 0600, created on
//! first use, [`KeyStore::api_key_pepper_or_create`]): API keys are recorded only as
//! HMAC-SHA-256 digests under it, so a copy of the log cannot test guessed keys offline.
//! Losing it makes every issued API key unusable (their holders create new ones).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tessera_core::apikey::{ApiKeyPepper, PEPPER_BYTES};
use tessera_core::mfa::{MASTER_KEY_BYTES, MfaKeys};
use tessera_core::signing_key::{Signer, SignerError, kid_for, kid_plausible};
use zeroize::Zeroizing;

const SUFFIX: &str = ".ed25519";
const MFA_KEY_FILE: &str = "mfa.key";
const API_KEY_FILE: &str = "apikey.key";
const SEED_BYTES: usize = 32;

/// Why a key could not be stored, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The file system refused an operation.
    #[error("key store I/O at {path}: {why}")]
    Io {
        /// The file or folder operated on.
        path: String,
        /// What the file system reported.
        why: String,
    },
    /// The string does not look like one of our kids, so it never becomes a path.
    #[error("{0:?} is not a key id")]
    BadKid(String),
    /// No file for this kid (or for the MFA key, named `mfa.key`).
    #[error("key {0} is not in the key store")]
    NotFound(String),
    /// The file exists but does not hold a valid key: wrong length, or a signing key that
    /// does not match the kid in its name.
    #[error("key file {path} is corrupt: {why}")]
    Corrupt {
        /// The key file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The file's permissions let the group or others read or write it; it is not used
    /// until they are removed.
    #[error("key file {path} is open to group or others (mode {mode:o}); chmod 600 it")]
    Exposed {
        /// The key file.
        path: String,
        /// Its permission bits (for example 0o644).
        mode: u32,
    },
    /// The seed did not make a signing key.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The data folder is an online backup that did not finish (it still holds
    /// [`crate::backup::INCOMPLETE_MARKER`]): its keys may be missing.
    #[error(
        "{path} is an incomplete backup (the copy was interrupted; it still holds {marker}) and must not be used: delete it and take the backup again",
        marker = crate::backup::INCOMPLETE_MARKER
    )]
    IncompleteBackup {
        /// The data folder.
        path: String,
    },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeyStoreError + '_ {
    move |e| KeyStoreError::Io {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// The folder of private signing keys.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// Opens (creating if needed, mode 0700) `<data_dir>/keys`. Refuses a data folder that
    /// is an unfinished backup.
    pub fn open(data_dir: &Path) -> Result<Self, KeyStoreError> {
        if crate::backup::is_incomplete(data_dir) {
            return Err(KeyStoreError::IncompleteBackup {
                path: data_dir.display().to_string(),
            });
        }
        let dir = data_dir.join("keys");
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_error(&dir))?;
        Ok(Self { dir })
    }

    /// The keys folder, `<data>/keys`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, kid: &str) -> Result<PathBuf, KeyStoreError> {
        if !kid_plausible(kid) {
            return Err(KeyStoreError::BadKid(kid.to_owned()));
        }
        Ok(self.dir.join(format!("{kid}{SUFFIX}")))
    }

    /// Stores `seed` under its kid, durably, and returns the signer for it. Writing a seed
    /// that is already stored is a no-op.
    pub fn write(&self, seed: &Zeroizing<[u8; SEED_BYTES]>) -> Result<Signer, KeyStoreError> {
        let signer = Signer::from_seed(seed)?;
        let path = self.path_of(signer.kid())?;
        if path.exists() {
            self.load(signer.kid())?;
            return Ok(signer);
        }
        write_private(
            &self.dir,
            &format!("{}{SUFFIX}", signer.kid()),
            seed.as_slice(),
        )?;
        Ok(signer)
    }

    /// The signer for `kid`, read from its file through the same check as every key file
    /// (`read_private`). Refuses a file the group or others can access, one of the wrong
    /// length, and one whose key does not match its name.
    pub fn load(&self, kid: &str) -> Result<Signer, KeyStoreError> {
        let path = self.path_of(kid)?;
        let bytes = read_private(&path, SEED_BYTES, kid)?;
        let corrupt = |why: &str| KeyStoreError::Corrupt {
            path: path.display().to_string(),
            why: why.to_owned(),
        };
        // read_private checked the length; the conversion cannot fail, but stays typed.
        let seed: Zeroizing<[u8; SEED_BYTES]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("not a 32-byte Ed25519 seed"))?,
        );
        let signer = Signer::from_seed(&seed)?;
        if signer.kid() != kid || kid_for(signer.public_key()) != kid {
            return Err(corrupt("the key does not match its kid"));
        }
        Ok(signer)
    }

    /// The kids of every stored key, sorted.
    pub fn list(&self) -> Result<Vec<String>, KeyStoreError> {
        let mut kids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let name = entry.map_err(io_error(&self.dir))?.file_name();
            if let Some(kid) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .filter(|k| kid_plausible(k))
            {
                kids.push(kid.to_owned());
            }
        }
        kids.sort();
        Ok(kids)
    }

    /// The MFA keys, from `mfa.key`; [`KeyStoreError::NotFound`] if it was never created.
    pub fn mfa_keys(&self) -> Result<MfaKeys, KeyStoreError> {
        let path = self.dir.join(MFA_KEY_FILE);
        let bytes = read_private(&path, MASTER_KEY_BYTES, MFA_KEY_FILE)?;
        let master: Zeroizing<[u8; MASTER_KEY_BYTES]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyStoreError::Corrupt {
                    path: path.display().to_string(),
                    why: "not a 32-byte MFA master key".into(),
                })?,
        );
        Ok(MfaKeys::from_master(&master))
    }

    /// The MFA keys, creating `mfa.key` from `fresh` (32 bytes from the OS RNG) if it does
    /// not exist yet. An existing file always wins: `fresh` is then unused.
    pub fn mfa_keys_or_create(
        &self,
        fresh: &Zeroizing<[u8; MASTER_KEY_BYTES]>,
    ) -> Result<MfaKeys, KeyStoreError> {
        match self.mfa_keys() {
            Err(KeyStoreError::NotFound(_)) => {}
            other => return other,
        }
        write_private(&self.dir, MFA_KEY_FILE, &fresh[..])?;
        self.mfa_keys()
    }

    /// The API-key digest key, from `apikey.key`; [`KeyStoreError::NotFound`] if it was
    /// never created.
    pub fn api_key_pepper(&self) -> Result<ApiKeyPepper, KeyStoreError> {
        let path = self.dir.join(API_KEY_FILE);
        let bytes = read_private(&path, PEPPER_BYTES, API_KEY_FILE)?;
        let key: Zeroizing<[u8; PEPPER_BYTES]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyStoreError::Corrupt {
                    path: path.display().to_string(),
                    why: "not a 32-byte API-key key".into(),
                })?,
        );
        Ok(ApiKeyPepper::from_key(&key))
    }

    /// The API-key digest key, creating `apikey.key` from `fresh` (32 bytes from the OS
    /// RNG) if it does not exist yet. An existing file always wins.
    pub fn api_key_pepper_or_create(
        &self,
        fresh: &Zeroizing<[u8; PEPPER_BYTES]>,
    ) -> Result<ApiKeyPepper, KeyStoreError> {
        match self.api_key_pepper() {
            Err(KeyStoreError::NotFound(_)) => {}
            other => return other,
        }
        write_private(&self.dir, API_KEY_FILE, &fresh[..])?;
        self.api_key_pepper()
    }

    /// Deletes a retired key's file. Removing an absent key is not an error.
    pub fn remove(&self, kid: &str) -> Result<(), KeyStoreError> {
        let path = self.path_of(kid)?;
        match fs::remove_file(&path) {
            Ok(()) => File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(&self.dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path)(e)),
        }
    }
}

/// Copies every key file of the keys folder `from` (signing keys and `mfa.key`; nothing
/// else) into the keys folder `to`, created 0700, each file 0600 and synced, then the folder
/// synced; returns how many were copied. Each file is read through the same check as every
/// key read (private permissions, length) and each copy is read back (a signing key must
/// match its kid). A signing key removed while the copy runs (a retired key) is skipped.
pub(crate) fn copy_keys(from: &Path, to: &Path) -> Result<u64, KeyStoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .map_err(io_error(to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).map_err(io_error(to))?;
    let copy = KeyStore { dir: to.to_owned() };
    let mut copied = 0;
    for entry in fs::read_dir(from).map_err(io_error(from))? {
        let name = entry.map_err(io_error(from))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let kid = name.strip_suffix(SUFFIX).filter(|k| kid_plausible(k));
        let len = match (name, kid) {
            (MFA_KEY_FILE, _) => MASTER_KEY_BYTES,
            (API_KEY_FILE, _) => PEPPER_BYTES,
            (_, Some(_)) => SEED_BYTES,
            _ => continue,
        };
        let bytes = match read_private(&from.join(name), len, name) {
            Ok(bytes) => bytes,
            Err(KeyStoreError::NotFound(_)) if kid.is_some() => continue,
            Err(e) => return Err(e),
        };
        write_private(to, name, &bytes)?;
        match (kid, name) {
            (Some(kid), _) => drop(copy.load(kid)?),
            (None, API_KEY_FILE) => drop(copy.api_key_pepper()?),
            (None, _) => drop(copy.mfa_keys()?),
        }
        copied += 1;
    }
    File::open(to)
        .and_then(|d| d.sync_all())
        .map_err(io_error(to))?;
    Ok(copied)
}

/// Writes `bytes` to `<dir>/<name>` (0600) durably: temporary file, fsync, hard link into
/// place, fsync of the folder. The one path by which every key file is written. Never
/// replaces an existing file: if `name` already exists, that file stays.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    // A leftover from a crash mid-write holds nothing we need.
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    // hard_link fails if the target exists, so a concurrent creator's key is never replaced.
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(&path)(e)),
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Reads a private file of exactly `len` bytes: the one path by which every key file (signing
/// keys and the MFA key) is read, so the permission check cannot drift between them. Refuses a
/// file the group or others can read or write ([`KeyStoreError::Exposed`]), and one of another
/// length ([`KeyStoreError::Corrupt`]); a missing file is [`KeyStoreError::NotFound`] naming
/// `name`.
fn read_private(path: &Path, len: usize, name: &str) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyStoreError::NotFound(name.to_owned()));
        }
        Err(e) => return Err(io_error(path)(e)),
    };
    let mode = file
        .metadata()
        .map_err(io_error(path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyStoreError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(len + 1));
    file.take(len as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() != len {
        return Err(KeyStoreError::Corrupt {
            path: path.display().to_string(),
            why: format!("{} bytes, want {len}", bytes.len()),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_private_permissions() {
        let data = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(data.path()).expect("opens");
        let signer = store.write(&Zeroizing::new([5; 32])).expect("writes");
        let path = store.dir().join(format!("{}.ed25519", signer.kid()));
        assert_eq!(
            fs::metadata(&path).expect("file").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(store.dir()).expect("dir").permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(fs::read(&path).expect("reads"), vec![5; 32]);
        let loaded = store.load(signer.kid()).expect("loads");
        assert_eq!(loaded.public_key(), signer.public_key());
        assert_eq!(store.list().expect("lists"), vec![signer.kid().to_owned()]);
        store
            .write(&Zeroizing::new([5; 32]))
            .expect("rewriting the same key is a no-op");
        store.remove(signer.kid()).expect("removes");
        store.remove(signer.kid()).expect("removing twice is fine");
        assert!(matches!(
            store.load(signer.kid()),
            Err(KeyStoreError::NotFound(_))
        ));
    }

    #[test]
    fn mfa_key_is_created_once_private_and_kept() {
        let data = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(data.path()).expect("opens");
        assert!(matches!(store.mfa_keys(), Err(KeyStoreError::NotFound(_))));
        let keys = store
            .mfa_keys_or_create(&Zeroizing::new([9; 32]))
            .expect("creates");
        let path = store.dir().join("mfa.key");
        assert_eq!(
            fs::metadata(&path).expect("file").permissions().mode() & 0o777,
            0o600
        );
        let again = store
            .mfa_keys_or_create(&Zeroizing::new([10; 32]))
            .expect("loads the existing key");
        assert_eq!(again.key_id(), keys.key_id(), "an existing key always wins");
        assert_eq!(store.mfa_keys().expect("loads").key_id(), keys.key_id());
        assert!(store.list().expect("lists").is_empty(), "not a signing key");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(
            store.mfa_keys(),
            Err(KeyStoreError::Exposed { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, [1; 31]).expect("overwrite");
        assert!(matches!(
            store.mfa_keys(),
            Err(KeyStoreError::Corrupt { .. })
        ));
    }

    /// Signing keys and the MFA key are read through one check: any access for the group or
    /// others, read or write, refuses the file.
    #[test]
    fn every_key_file_is_refused_when_group_or_others_can_reach_it() {
        let data = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(data.path()).expect("opens");
        let signer = store.write(&Zeroizing::new([8; 32])).expect("writes");
        store
            .mfa_keys_or_create(&Zeroizing::new([9; 32]))
            .expect("creates");
        let key = store.dir().join(format!("{}.ed25519", signer.kid()));
        let mfa = store.dir().join("mfa.key");
        for mode in [0o640, 0o620, 0o610, 0o604, 0o602, 0o601, 0o666] {
            for path in [&key, &mfa] {
                fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
            }
            assert!(
                matches!(
                    store.load(signer.kid()),
                    Err(KeyStoreError::Exposed { mode: m, .. }) if m == mode
                ),
                "signing key at {mode:o}"
            );
            assert!(
                matches!(store.mfa_keys(), Err(KeyStoreError::Exposed { mode: m, .. }) if m == mode),
                "MFA key at {mode:o}"
            );
        }
        for path in [&key, &mfa] {
            fs::set_permissions(path, fs::Permissions::from_mode(0o400)).expect("chmod");
        }
        store.load(signer.kid()).expect("owner-only is enough");
        store.mfa_keys().expect("owner-only is enough");
    }

    #[test]
    fn bad_kids_exposed_and_corrupt_files_are_refused() {
        let data = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(data.path()).expect("opens");
        for kid in ["../../etc/passwd", "", "a/b", &"a".repeat(44)] {
            assert!(
                matches!(store.load(kid), Err(KeyStoreError::BadKid(_))),
                "{kid}"
            );
        }
        let signer = store.write(&Zeroizing::new([6; 32])).expect("writes");
        let path = store.dir().join(format!("{}.ed25519", signer.kid()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            store.load(signer.kid()),
            Err(KeyStoreError::Exposed { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, [6; 33]).expect("overwrite");
        assert!(matches!(
            store.load(signer.kid()),
            Err(KeyStoreError::Corrupt { .. })
        ));
        fs::write(&path, [7; 32]).expect("overwrite");
        assert!(
            matches!(store.load(signer.kid()), Err(KeyStoreError::Corrupt { .. })),
            "a key under another key's name"
        );
    }
}
