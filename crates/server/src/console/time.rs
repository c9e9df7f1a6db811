//! Times in people's terms, the one helper every console page uses: relative text ("3 hours ago", "in 12
//! days") inside `<time datetime="…Z" title="… UTC">`, so the absolute UTC time is one hover away and machine
//! readable. Templates call it through their page's `when` method and print it with `|safe`: the HTML is built
//! here from numbers and fixed words only.

/// A time as the console shows it: `<time>` with the relative text, or an em dash when there is none.
pub fn when(at: Option<i64>, now: i64) -> String {
    match at {
        Some(at) => {
            let iso = iso_utc(at);
            format!(
                "<time datetime=\"{iso}\" title=\"{} UTC\">{}</time>",
                iso.trim_end_matches('Z').replace('T', " "),
                relative(at, now)
            )
        }
        None => "—".to_string(),
    }
}

/// A time value a template may hold: a Unix-ms number, or an optional one, by value or reference.
pub trait Stamp {
    fn millis(&self) -> Option<i64>;
}

impl Stamp for i64 {
    fn millis(&self) -> Option<i64> {
        Some(*self)
    }
}

impl Stamp for Option<i64> {
    fn millis(&self) -> Option<i64> {
        *self
    }
}

impl<T: Stamp + ?Sized> Stamp for &T {
    fn millis(&self) -> Option<i64> {
        (**self).millis()
    }
}

/// "just now", "5 minutes ago", "in 3 days": the largest whole unit.
pub fn relative(at: i64, now: i64) -> String {
    let diff = now - at;
    let secs = diff.abs() / 1000;
    if secs < 45 {
        return "just now".to_string();
    }
    let (n, unit) = match secs {
        s if s < 90 * 60 => ((s + 30) / 60, "minute"),
        s if s < 22 * 3600 => ((s + 1800) / 3600, "hour"),
        s if s < 60 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s < 730 * 86_400 => (s / (30 * 86_400), "month"),
        s => (s / (365 * 86_400), "year"),
    };
    let n = n.max(1);
    let plural = if n == 1 { "" } else { "s" };
    if diff >= 0 {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

/// `2026-12-03T17:42:46Z` (whole seconds, UTC); a time beyond what `time` represents reads as the epoch.
pub fn iso_utc(millis: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-12-03`: the UTC day of a time.
pub fn day_utc(millis: i64) -> String {
    iso_utc(millis)[..10].to_string()
}

/// Now, in Unix ms (the pages' reference for relative times).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_times_are_utc_iso() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_796_279_982_961), "2026-12-03T06:39:42Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(day_utc(1_796_279_982_961), "2026-12-03");
    }

    #[test]
    fn relative_times_read_like_people_say_them() {
        let now = 1_796_279_982_961;
        assert_eq!(relative(now - 10_000, now), "just now");
        assert_eq!(relative(now - 5 * 60_000, now), "5 minutes ago");
        assert_eq!(relative(now - 3 * 3_600_000, now), "3 hours ago");
        assert_eq!(relative(now + 12 * 86_400_000, now), "in 12 days");
        assert_eq!(relative(now - 86_400_000, now), "1 day ago");
        let html = when(Some(now - 60_000), now);
        assert!(
            html.starts_with("<time datetime=\"2026-12-03T06:38:42Z\""),
            "{html}"
        );
        assert!(html.contains("title=\"2026-12-03 06:38:42 UTC\""), "{html}");
        assert_eq!(when(None, now), "—");
    }
}
