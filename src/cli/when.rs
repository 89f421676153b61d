//! Points in time as the CLI takes them (`job create --at`, `token create --expires`,
//! `audit --since/--until`): RFC 3339, Unix seconds, `+DURATION` from now or `-DURATION` before
//! now, one format wherever a time is asked for.

use anyhow::Result;

use super::UsageError;

/// `text`, given for `flag`, as a Unix time: RFC 3339 (2025-06-01T02:00:00Z), Unix seconds, or
/// +N or -N with a unit s, m, h or d (seconds without one) added to or taken from `now`. A
/// negative number is a time before now, never one before 1970: no time asked for is.
/// A text that is none of these is a usage error (exit 2), naming `flag`.
pub fn parse_time(flag: &str, text: &str, now: i64) -> Result<i64> {
    parse(flag, text, now).map_err(|why| UsageError(why).into())
}

fn parse(flag: &str, text: &str, now: i64) -> Result<i64, String> {
    let relative = match text.as_bytes().first() {
        Some(b'+') => Some((1, &text[1..])),
        Some(b'-') => Some((-1, &text[1..])),
        _ => None,
    };
    if let Some((sign, rel)) = relative {
        let split = rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len());
        let (n, unit) = rel.split_at(split);
        let n: i64 = n
            .parse()
            .map_err(|_| format!("{flag} {text:?}: expected +N or -N followed by s, m, h or d"))?;
        let scale = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("{flag} {text:?}: the unit must be s, m, h or d")),
        };
        return n
            .checked_mul(scale * sign)
            .and_then(|secs| now.checked_add(secs))
            .ok_or_else(|| format!("{flag} {text:?}: too far from now"));
    }
    if let Ok(t) = text.parse::<i64>() {
        return Ok(t);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| {
            format!(
                "{flag} {text:?}: not RFC 3339 (2025-06-01T02:00:00Z), Unix seconds, \
                 +DURATION or -DURATION: {e}"
            )
        })
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`. The zone is said: an administrator of sites in
/// several zones read `job create --at 2026-01-01T02:00:00+01:00 … runs at 2026-01-01
/// 01:00:00` as the box's or the site's local time, an hour off from what was asked.
pub fn time_text(t: i64) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::{parse_time, time_text};

    /// A time given in any zone is shown in UTC, saying so.
    #[test]
    fn a_time_is_shown_in_utc_and_says_so() {
        let t = parse_time("--at", "2026-01-01T02:00:00+01:00", 0).unwrap();
        assert_eq!(time_text(t), "2026-01-01 01:00:00 UTC");
        assert_eq!(time_text(i64::MAX), i64::MAX.to_string());
    }

    fn at(text: &str, now: i64) -> anyhow::Result<i64> {
        parse_time("--at", text, now)
    }

    #[test]
    fn a_time_past_the_clock_range_is_refused() {
        for text in [
            "+9223372036854775807d",
            "+2562047788015216h",
            "+9223372036854775807",
            "-9223372036854775807d",
        ] {
            let err = at(text, 1_700_000_000).unwrap_err().to_string();
            assert!(err.contains("--at") && err.contains(text), "{text}: {err}");
        }
    }

    #[test]
    fn rfc3339_unix_and_relative_are_accepted() {
        assert_eq!(at("2025-06-01T02:00:00Z", 0).unwrap(), 1_748_743_200);
        assert_eq!(at("2025-06-01T04:00:00+02:00", 0).unwrap(), 1_748_743_200);
        assert_eq!(at("1748743200", 0).unwrap(), 1_748_743_200);
        assert_eq!(at("+90", 1000).unwrap(), 1090);
        assert_eq!(at("+10m", 1000).unwrap(), 1600);
        assert_eq!(at("+2h", 0).unwrap(), 7200);
        assert_eq!(at("+90d", 0).unwrap(), 90 * 86_400);
        assert_eq!(at("-2h", 10_000).unwrap(), 10_000 - 7200);
        assert_eq!(at("-90", 1000).unwrap(), 910);
        assert!(at("-", 0).is_err());
        assert!(at("+2w", 0).is_err());
        assert!(at("tomorrow", 0).is_err());
        let err = parse_time("--expires", "soon", 0).unwrap_err().to_string();
        assert!(err.starts_with("--expires \"soon\""), "{err}");
    }
}
