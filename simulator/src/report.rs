//! The report as a text table (for people) and JSON (for machines).

use std::fmt::Write as _;

use crate::RunReport;

pub fn text(r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "seed {}  steps {}  events {}  log {}",
        r.seed, r.steps, r.events, r.log_hash
    );
    let crashes: Vec<String> = r
        .swarm
        .crashes
        .iter()
        .map(|c| format!("append {} ({:?})", c.at_append, c.point))
        .collect();
    let _ = writeln!(
        out,
        "faults: crashes [{}], clock drift {} ppm{}",
        crashes.join(", "),
        r.swarm.clock_drift_ppm,
        if r.swarm.clock_steps_back {
            ", steps back"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "{:<18} {:>8} {:>9} {:>8} {:>8} {:>14} {:>7}  defence",
        "scenario", "attempts", "successes", "blocked", "detected", "to-detect (s)", "events"
    );
    for s in &r.scenarios {
        let ttd = s
            .time_to_detection_secs
            .map_or("-".to_owned(), |t| t.to_string());
        let _ = writeln!(
            out,
            "{:<18} {:>8} {:>9} {:>8} {:>8} {:>14} {:>7}  {}",
            s.name,
            s.stats.attempts,
            s.stats.successes,
            s.stats.blocked,
            s.stats.detected,
            ttd,
            s.stats.events_written,
            s.defence
        );
    }
    let _ = writeln!(out, "marks:");
    for (mark, n) in r.marks.iter() {
        let _ = writeln!(out, "  {n:>6}  {mark}");
    }
    out
}
