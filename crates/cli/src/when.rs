//! Times in people's terms for the CLI's tables: `2026-12-03 17:20 UTC (3 h ago)`, `… (in 29 days)`.
//! `--json` prints the server's numbers (milliseconds since the Unix epoch) untouched; only tables use this.

use time::OffsetDateTime;
use time::macros::format_description;

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// A Unix-ms time as `YYYY-MM-DD HH:MM UTC (3 h ago)`, relative to now.
pub(crate) fn when(ms: i64) -> String {
    when_at(ms, now_ms())
}

/// [`when`], `-` for none.
pub(crate) fn when_or_dash(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), when)
}

/// [`when`] seen from `now` (both Unix ms).
pub(crate) fn when_at(ms: i64, now: i64) -> String {
    let absolute = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        });
    match absolute {
        Some(a) => format!("{a} ({})", relative(ms, now)),
        // Beyond what a calendar date can show: the number as sent.
        None => ms.to_string(),
    }
}

/// `3 h ago`, `in 29 days`, `just now`.
fn relative(ms: i64, now: i64) -> String {
    let delta = i128::from(ms) - i128::from(now);
    let secs = delta.abs() / 1000;
    let amount = match secs {
        0..60 => return "just now".into(),
        60..3_600 => format!("{} min", secs / 60),
        3_600..172_800 => format!("{} h", secs / 3_600),
        _ => format!("{} days", secs / 86_400),
    };
    if delta > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_299_200_000; // 2026-12-03 12:00 UTC

    #[test]
    fn times_read_as_a_date_and_how_long_ago_or_ahead() {
        assert_eq!(
            when_at(NOW - 3 * 3_600_000 - 5_000, NOW),
            "2026-12-03 08:59 UTC (3 h ago)"
        );
        assert_eq!(
            when_at(NOW + 29 * 86_400_000 + 60_000, NOW),
            "2027-01-01 12:01 UTC (in 29 days)"
        );
        assert_eq!(
            when_at(NOW + 20_000, NOW),
            "2026-12-03 12:00 UTC (just now)"
        );
        assert_eq!(
            when_at(NOW - 90_000, NOW),
            "2026-12-03 11:58 UTC (1 min ago)"
        );
        assert_eq!(
            when_at(NOW - 3 * 86_400_000, NOW),
            "2026-11-30 12:00 UTC (3 days ago)"
        );
        assert_eq!(when_at(0, NOW), "1970-01-01 00:00 UTC (20790 days ago)");
        assert_eq!(when_at(i64::MAX, NOW), i64::MAX.to_string());
        assert_eq!(when_or_dash(None), "-");
    }
}
