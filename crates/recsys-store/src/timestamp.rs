//! Parsing and formatting of timestamps (ISO 8601 or Unix seconds), without a date library.

use crate::StoreError;

const SECONDS_PER_DAY: i64 = 86_400;

/// Parses a timestamp into seconds since the Unix epoch (UTC).
///
/// Accepted forms (surrounding white space is ignored):
///
/// * integer Unix seconds: `1504996246`, `-1`;
/// * a date: `2017-09-09` (midnight UTC);
/// * a date and time, separated by `T`, `t` or a space: `2017-09-09T22:30:46Z`, with optional
///   seconds (`22:30`), optional fractional seconds (`22:30:46.123`, dropped, i.e. rounded
///   down) and an optional zone: `Z`, `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH`. A time without a
///   zone is taken as UTC.
///
/// An all-digit text is always read as Unix seconds, never as a compact ISO date.
///
/// ```
/// use recsys_store::parse_timestamp;
/// assert_eq!(parse_timestamp("2017-09-09T22:30:46Z").unwrap(), 1_504_996_246);
/// assert_eq!(parse_timestamp("2017-09-10T00:30:46.5+02:00").unwrap(), 1_504_996_246);
/// assert_eq!(parse_timestamp("1504996246").unwrap(), 1_504_996_246);
/// assert_eq!(parse_timestamp("1970-01-02").unwrap(), 86_400);
/// assert!(parse_timestamp("2017-02-29").is_err());
/// ```
pub fn parse_timestamp(text: &str) -> Result<i64, StoreError> {
    parse_timestamp_reason(text).map_err(|reason| StoreError::InvalidTimestamp {
        value: text.to_string(),
        reason,
    })
}

/// Formats seconds since the Unix epoch as ISO 8601 in UTC: `2017-09-09T22:30:46Z`.
///
/// [`parse_timestamp`] reads the result back to the same value.
///
/// ```
/// use recsys_store::format_timestamp;
/// assert_eq!(format_timestamp(1_504_996_246), "2017-09-09T22:30:46Z");
/// assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59Z");
/// ```
pub fn format_timestamp(seconds: i64) -> String {
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let rest = seconds.rem_euclid(SECONDS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        (rest / 60) % 60,
        rest % 60
    )
}

/// The parser behind [`parse_timestamp`], returning only the reason on failure (no
/// allocation).
pub(crate) fn parse_timestamp_reason(text: &str) -> Result<i64, &'static str> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty");
    }
    let b = t.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        return t.parse::<i64>().map_err(|_| "Unix seconds out of range");
    }
    let mut p = Cursor { b, i: 0 };
    let year = p.number(4).ok_or("expected a 4-digit year")?;
    p.expect(b'-').ok_or("expected '-' after the year")?;
    let month = p.number(2).ok_or("expected a 2-digit month")?;
    p.expect(b'-').ok_or("expected '-' after the month")?;
    let day = p.number(2).ok_or("expected a 2-digit day")?;
    if !(1..=12).contains(&month) {
        return Err("month out of range 01-12");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range for the month");
    }
    let mut seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY;
    if p.at_end() {
        return Ok(seconds);
    }
    if !matches!(p.peek(), Some(b'T' | b't' | b' ')) {
        return Err("expected 'T' between date and time");
    }
    p.i += 1;
    let hour = p.number(2).ok_or("expected a 2-digit hour")?;
    p.expect(b':').ok_or("expected ':' after the hour")?;
    let minute = p.number(2).ok_or("expected 2-digit minutes")?;
    let mut second = 0;
    if p.expect(b':').is_some() {
        second = p.number(2).ok_or("expected 2-digit seconds")?;
        if matches!(p.peek(), Some(b'.' | b',')) {
            p.i += 1;
            let start = p.i;
            while matches!(p.peek(), Some(c) if c.is_ascii_digit()) {
                p.i += 1;
            }
            if p.i == start {
                return Err("expected digits after the decimal point");
            }
        }
    }
    if hour > 23 {
        return Err("hour out of range 00-23");
    }
    if minute > 59 {
        return Err("minutes out of range 00-59");
    }
    if second > 60 {
        return Err("seconds out of range 00-60");
    }
    seconds += hour * 3600 + minute * 60 + second;
    match p.peek() {
        None => {}
        Some(b'Z' | b'z') => p.i += 1,
        Some(sign @ (b'+' | b'-')) => {
            p.i += 1;
            let oh = p.number(2).ok_or("expected a 2-digit zone hour")?;
            p.expect(b':');
            let om = if p.at_end() {
                0
            } else {
                p.number(2).ok_or("expected 2-digit zone minutes")?
            };
            if oh > 23 || om > 59 {
                return Err("zone offset out of range");
            }
            let offset = oh * 3600 + om * 60;
            // Local time = UTC + offset, so UTC = local - offset.
            seconds -= if sign == b'+' { offset } else { -offset };
        }
        Some(_) => return Err("unexpected text after the time"),
    }
    if !p.at_end() {
        return Err("unexpected text after the time zone");
    }
    Ok(seconds)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }
    /// Exactly `n` ASCII digits.
    fn number(&mut self, n: usize) -> Option<i64> {
        let s = self.b.get(self.i..self.i + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(s.iter().fold(0, |acc, &c| acc * 10 + i64::from(c - b'0')))
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // Reference values from GNU `date -u -d … +%s`.
        let cases = [
            ("2017-09-09T22:30:46Z", 1_504_996_246),
            ("2017-09-09T22:30:46", 1_504_996_246),
            ("2017-09-09 22:30:46Z", 1_504_996_246),
            ("2017-09-09T22:30:46.999Z", 1_504_996_246),
            ("2017-09-09T22:30:46,5Z", 1_504_996_246),
            ("2017-09-09T22:30:46+02:00", 1_504_989_046),
            ("2017-09-09T22:30:46+0200", 1_504_989_046),
            ("2017-09-09T22:30:46+02", 1_504_989_046),
            ("2017-09-09T20:30:46-02:00", 1_504_996_246),
            ("2017-09-09T22:30Z", 1_504_996_200),
            ("2000-02-29", 951_782_400),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59Z", -1),
            ("2100-03-01T00:00:00Z", 4_107_542_400),
            ("  1504996246 ", 1_504_996_246),
            ("-86400", -86_400),
            ("0", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_timestamp(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_bad_text() {
        for text in [
            "",
            "yesterday",
            "2017-13-01",
            "2017-00-10",
            "2017-02-29",
            "2017-04-31",
            "2017-9-9",
            "2017-09-09T24:00:00Z",
            "2017-09-09T22:60:00Z",
            "2017-09-09T22:30:61Z",
            "2017-09-09T22:30:46.Z",
            "2017-09-09T22:30:46Q",
            "2017-09-09T22:30:46+25:00",
            "2017-09-09T22:30:46Z junk",
            "2017-09-09X22:30:46",
            "1.5",
            "99999999999999999999",
        ] {
            let err = parse_timestamp(text).unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidTimestamp { value, .. } if value == text),
                "{text}: {err}"
            );
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in -62_135_596_800i64..253_402_300_799) {
            let text = format_timestamp(secs);
            prop_assert_eq!(parse_timestamp(&text).unwrap(), secs, "{}", text);
        }

        #[test]
        fn civil_round_trips(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m));
            prop_assert!(d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
