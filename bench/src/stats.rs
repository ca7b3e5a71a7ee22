//! Small statistics: latency percentiles, medians of repeats, process CPU time.

use serde::Serialize;

/// Latency percentiles of one run, in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: u64,
}

impl Latency {
    /// Exact percentiles (nearest rank) of `samples`, which it sorts.
    pub fn of(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            u64::from(samples[i])
        };
        let sum: u64 = samples.iter().map(|s| u64::from(*s)).sum();
        Self {
            p50_us: rank(0.50),
            p90_us: rank(0.90),
            p99_us: rank(0.99),
            max_us: u64::from(samples[samples.len() - 1]),
            mean_us: sum / samples.len() as u64,
        }
    }

    /// The per-field median of several runs' percentiles.
    pub fn median(runs: &[Latency]) -> Self {
        let m = |f: fn(&Latency) -> u64| {
            let mut v: Vec<f64> = runs.iter().map(|r| f(r) as f64).collect();
            median(&mut v) as u64
        };
        Self {
            p50_us: m(|r| r.p50_us),
            p90_us: m(|r| r.p90_us),
            p99_us: m(|r| r.p99_us),
            max_us: m(|r| r.max_us),
            mean_us: m(|r| r.mean_us),
        }
    }
}

/// The median of `values` (mean of the two middle ones for an even count); 0 when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// User + system CPU seconds a process has used so far, from /proc/PID/stat (Linux only;
/// `None` elsewhere). Assumes the usual 100 clock ticks per second.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields restart after the closing parenthesis.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3 of the full line, utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Microseconds during which some runnable task waited for a CPU, machine-wide, since boot
/// (Linux pressure stall information, `/proc/pressure/cpu`, the `some` line's `total`).
/// The difference over a window divided by the window is the share of it in which something
/// was kept off a CPU: on this shared machine, the neighbours' load. `None` without PSI.
pub fn cpu_pressure_us() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let line = text.lines().find(|l| l.starts_with("some"))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Resident set size of this process, bytes, from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut s: Vec<u32> = (1..=100).collect();
        let l = Latency::of(&mut s);
        assert_eq!((l.p50_us, l.p90_us, l.p99_us, l.max_us), (50, 90, 99, 100));
        assert_eq!(Latency::of(&mut []), Latency::default());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn own_cpu_time_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(cpu_seconds(std::process::id()).is_some());
            assert!(rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
