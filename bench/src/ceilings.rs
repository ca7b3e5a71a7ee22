//! The machine's own ceilings, measured in the same run as the workload they bound, so that
//! every result is a ratio rather than an absolute time on a shared, noisy machine.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tessera_core::password;
use tessera_core::policy::Argon2Params;
use tessera_http::system::monotonic;

use crate::Failure;

/// Most iterations any ceiling loop makes, whatever the time says.
const ITERATIONS_MAX: u64 = 10_000_000;

/// argon2id hashes per second of wall time and per CPU second.
#[derive(Clone, Copy, Debug)]
pub struct Argon2Rate {
    pub per_s: f64,
    /// Hashes per CPU second this process used: what one fully available core does,
    /// whatever share of the machine other processes took meanwhile.
    pub per_cpu_s: f64,
}

/// argon2id verifications per second on `threads` threads at `params`, for about `secs`
/// (`tessera_core::password::verify_in` with a work area reused per thread, as the login
/// path does; a verification recomputes the hash, so it costs what hashing does).
pub fn argon2_per_s(
    params: &Argon2Params,
    threads: usize,
    secs: f64,
) -> Result<Argon2Rate, Failure> {
    password::hash("warm-up Password 1", [7; 16], params).map_err(|e| Failure(e.to_string()))?;
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let cpu0 = super::stats::cpu_seconds(std::process::id());
    let started = monotonic();
    let deadline = started + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for t in 0..threads.max(1) {
            let (stop, done) = (&stop, &done);
            s.spawn(move || {
                let mut salt = [0u8; 16];
                salt[0] = t as u8;
                let Ok(stored) = password::hash("Bench password 123", salt, params) else {
                    return;
                };
                // Verification in one reused work area per thread: exactly the server's
                // login path at its best, so the ceiling is not lowered by allocation.
                let mut area = password::WorkArea::default();
                for _ in 0..ITERATIONS_MAX {
                    if stop.load(Ordering::Relaxed) || monotonic() >= deadline {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    let checked =
                        password::verify_in("Bench password 123", &stored, params, &mut area);
                    if matches!(checked, password::Verification::Match { .. }) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed) as f64;
    let cpu = match (cpu0, super::stats::cpu_seconds(std::process::id())) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => elapsed * threads.max(1) as f64,
    };
    Ok(Argon2Rate {
        per_s: n / elapsed,
        per_cpu_s: n / cpu,
    })
}

/// Small appends made durable one at a time: write 100 bytes to the end of a file in `dir`,
/// then `fdatasync`, in a loop for about `secs`. Each sync grows the file, so its size is
/// synced too, as sled's data file's is. The file is removed afterwards.
pub fn fdatasync_per_s(dir: &Path, secs: f64) -> Result<f64, Failure> {
    let file = tempfile::Builder::new()
        .prefix("tessera-fsync-probe-")
        .tempfile_in(dir)
        .map_err(|e| {
            Failure(format!(
                "cannot make a probe file in {}: {e}",
                dir.display()
            ))
        })?;
    let mut f = file.as_file();
    let record = [0x5a_u8; 100];
    let started = monotonic();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while n < ITERATIONS_MAX && monotonic() < deadline {
        f.write_all(&record).map_err(Failure::new)?;
        f.sync_data().map_err(Failure::new)?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Small writes made durable one at a time *in place*: a 1 MiB file is written and synced
/// first, then 100-byte records overwrite it in turn, each followed by `fdatasync`. The file
/// never grows, so no sync has to commit a size change to the filesystem journal: this is
/// the pattern of a log that writes into preallocated space (sled's segments), and the
/// fairer ceiling for it. The file is removed afterwards.
pub fn fdatasync_in_place_per_s(dir: &Path, secs: f64) -> Result<f64, Failure> {
    use std::io::{Seek, SeekFrom};
    const SIZE: u64 = 1 << 20;
    let file = tempfile::Builder::new()
        .prefix("tessera-fsync-probe-")
        .tempfile_in(dir)
        .map_err(|e| {
            Failure(format!(
                "cannot make a probe file in {}: {e}",
                dir.display()
            ))
        })?;
    let mut f = file.as_file();
    f.write_all(&vec![0u8; SIZE as usize])
        .map_err(Failure::new)?;
    f.sync_all().map_err(Failure::new)?;
    let record = [0x5a_u8; 100];
    let started = monotonic();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while n < ITERATIONS_MAX && monotonic() < deadline {
        let at = (n * 100) % (SIZE - 100);
        f.seek(SeekFrom::Start(at)).map_err(Failure::new)?;
        f.write_all(&record).map_err(Failure::new)?;
        f.sync_data().map_err(Failure::new)?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_measure_something() {
        let fast = Argon2Params::INSECURE_FAST;
        assert!(argon2_per_s(&fast, 2, 0.05).expect("argon2").per_s > 0.0);
        let dir = tempfile::tempdir().expect("dir");
        assert!(fdatasync_per_s(dir.path(), 0.05).expect("fsync") > 0.0);
        assert!(fdatasync_in_place_per_s(dir.path(), 0.05).expect("fsync") > 0.0);
    }
}
