//! UTC instants as Unix milliseconds: parsing RFC 3339 and `YYYY-MM-DD`, formatting, and
//! the day arithmetic the queries need. Hand-written (Howard Hinnant's civil-date
//! algorithms) so the sidecar carries no date library for a few conversions.

pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

/// A UTC calendar day, counted from 1970-01-01 (day 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcDay(pub i64);

impl UtcDay {
    /// The day that contains the instant.
    pub fn containing(ms: i64) -> Self {
        Self(ms.div_euclid(MS_PER_DAY))
    }

    pub fn today() -> Self {
        Self::containing(now_ms())
    }

    pub fn start_ms(self) -> i64 {
        self.0.saturating_mul(MS_PER_DAY)
    }

    pub fn plus(self, days: i64) -> Self {
        Self(self.0.saturating_add(days))
    }

    /// `YYYY-MM-DD`.
    pub fn iso(self) -> String {
        let (y, m, d) = civil_from_days(self.0);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// The current time, Unix milliseconds. A clock before 1970 reads as 0.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an RFC 3339 timestamp (2025-01-31T12:00:00Z) or a date (2025-01-31)")]
pub struct BadTimestamp(pub String);

/// Reads an RFC 3339 timestamp (`2025-01-31T12:30:00Z`, `…T12:30:00.250+02:00`) or a date
/// (`2025-01-31`, meaning its UTC midnight). Fractions beyond milliseconds are truncated.
pub fn parse_instant(s: &str) -> Result<i64, BadTimestamp> {
    parse(s.trim()).ok_or_else(|| BadTimestamp(s.chars().take(64).collect()))
}

fn parse(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * MS_PER_DAY;
    if b.len() == 10 {
        return Some(date_ms);
    }
    // RFC 3339 allows `t` and a space in place of `T` (§5.6 note).
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // 60 is a leap second; it reads as the next second's start.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        millis = frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
    }
    let offset_minutes = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let [h1, h2, m1, m2] = digits.map(|c| i64::from(c - b'0'));
            let (oh, om) = (h1 * 10 + h2, m1 * 10 + m2);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    Some(date_ms + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + millis)
}

/// `2025-01-31T12:30:00Z`, or with `.250` when the instant has milliseconds.
pub fn format_rfc3339(ms: i64) -> String {
    let day = UtcDay::containing(ms);
    let in_day = ms - day.start_ms();
    let (h, m, s, milli) = (
        in_day / MS_PER_HOUR,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    if milli == 0 {
        format!("{}T{h:02}:{m:02}:{s:02}Z", day.iso())
    } else {
        format!("{}T{h:02}:{m:02}:{s:02}.{milli:03}Z", day.iso())
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
