//! Times on the command line: RFC 3339 (`2024-01-25T10:00:00Z`) or Unix seconds.

use tessera_core::Timestamp;

pub fn parse(text: &str) -> Result<Timestamp, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Timestamp::from_millis(secs.saturating_mul(1000)));
    }
    let bad = || {
        format!("`{text}` is not a time: use RFC 3339 like 2024-01-25T10:00:00Z, or Unix seconds")
    };
    let (date, time) = text.trim_end_matches('Z').split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.split('.').next().unwrap_or(p).parse())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    if !(1..=12).contains(m) || !(1..=31).contains(day) || *hh > 23 || *mm > 59 || *ss > 60 {
        return Err(bad());
    }
    let days = days_from_civil(*y, *m, *day);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .map(|s| Timestamp::from_millis(s * 1000))
        .map_err(|_| bad())
}

/// Howard Hinnant's civil-to-days algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(parse("0"), Ok(Timestamp::from_millis(0)));
        assert_eq!(
            parse("2024-01-25T00:00:00Z"),
            Ok(Timestamp::from_millis(1_706_140_800_000))
        );
        assert_eq!(
            parse("2000-02-29T00:00:00Z"),
            Ok(Timestamp::from_millis(951_782_400_000))
        );
        assert!(parse("yesterday").is_err());
        assert!(parse("2024-13-01T00:00:00Z").is_err());
    }
}
