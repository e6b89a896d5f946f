//! Durations as operators write them, in the plan, the sidecar's config file and on the
//! command line: a number of seconds (`5`, `0.5`) or a number with a unit (`"500ms"`,
//! `"5s"`, `"2m"`, `"1h"`, also `"1m30s"` and `"2 min"`).
//!
//! Each key or flag checks its own range; this module only reads the text.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The longest duration accepted anywhere: a year.
const LONGEST: Duration = Duration::from_secs(366 * 86_400);

/// Units by the names they may be written with, and their length in nanoseconds.
const UNITS: [(&[&str], u64); 6] = [
    (&["us", "µs", "usec", "usecs"], 1_000),
    (&["ms", "msec", "msecs", "millisecond", "milliseconds"], 1_000_000),
    (&["s", "sec", "secs", "second", "seconds"], 1_000_000_000),
    (&["m", "min", "mins", "minute", "minutes"], 60_000_000_000),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600_000_000_000),
    (&["d", "day", "days"], 86_400_000_000_000),
];

/// What is wrong with a written duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration: write a number of seconds or a number with a unit (500ms, 5s, 2m, 1h)")]
    Malformed(String),
    #[error("{text:?} has an unknown unit {unit:?}: use ms, s, m or h (also us, min, d)")]
    UnknownUnit { text: String, unit: String },
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{0:?} is longer than a year")]
    TooLong(String),
}

/// Reads a duration: `"5"` and `"0.5"` are seconds, `"500ms"`, `"5s"`, `"2m"`, `"1h"`,
/// `"1m30s"` and `"2 min"` carry their unit.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(DurationError::Negative(text.to_owned()));
    }
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return from_seconds(seconds).map_err(|e| e.with_text(text));
    }
    let malformed = || DurationError::Malformed(text.to_owned());
    let mut rest = trimmed;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(malformed());
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().map_err(|_| malformed())?;
        rest = rest[number_end..].trim_start();
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace()).unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        if unit.is_empty() {
            return Err(malformed());
        }
        let nanos_per = unit_nanos(unit)
            .ok_or_else(|| DurationError::UnknownUnit { text: text.to_owned(), unit: unit.to_owned() })?;
        // Whole nanoseconds, rounded: 250us is exactly 250 µs, not a float's 249.999.
        let nanos = (number * nanos_per as f64).round();
        if nanos > LONGEST.as_nanos() as f64 {
            return Err(DurationError::TooLong(text.to_owned()));
        }
        total = total.saturating_add(Duration::from_nanos(nanos as u64));
        rest = rest[unit_end..].trim_start();
    }
    if total > LONGEST {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Ok(total)
}

/// A number of seconds as a duration.
pub fn from_seconds(seconds: f64) -> Result<Duration, DurationError> {
    if seconds.is_nan() {
        return Err(DurationError::Malformed(seconds.to_string()));
    }
    if seconds < 0.0 {
        return Err(DurationError::Negative(seconds.to_string()));
    }
    if seconds > LONGEST.as_secs_f64() {
        return Err(DurationError::TooLong(seconds.to_string()));
    }
    Ok(Duration::from_nanos((seconds * 1e9).round() as u64))
}

fn unit_nanos(unit: &str) -> Option<u64> {
    let lower = unit.to_lowercase();
    UNITS.iter().find(|(names, _)| names.contains(&lower.as_str())).map(|&(_, nanos)| nanos)
}

impl DurationError {
    /// The same error, quoting `text` as written.
    fn with_text(self, text: &str) -> DurationError {
        let text = text.to_owned();
        match self {
            DurationError::Malformed(_) => DurationError::Malformed(text),
            DurationError::Negative(_) => DurationError::Negative(text),
            DurationError::TooLong(_) => DurationError::TooLong(text),
            unknown @ DurationError::UnknownUnit { .. } => unknown,
        }
    }
}

/// A command-line flag's value parser: clap names the flag in its error.
pub fn parse_flag(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|e| e.to_string())
}

/// Writes a duration the way [`parse`] reads it back: `500ms`, `5s`, `2m30s`.
pub fn display(duration: Duration) -> impl fmt::Display {
    struct Shown(Duration);
    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let d = self.0;
            if d.subsec_nanos() != 0 || d.is_zero() {
                if d < Duration::from_secs(1) && d.subsec_nanos() % 1_000_000 == 0 {
                    return write!(f, "{}ms", d.as_millis());
                }
                return write!(f, "{}s", d.as_secs_f64());
            }
            let secs = d.as_secs();
            let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
            for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
                if value != 0 {
                    write!(f, "{value}{unit}")?;
                }
            }
            Ok(())
        }
    }
    Shown(duration)
}

/// A duration in a TOML file: a number of seconds (`5`, `0.5`) or a string with a unit
/// (`"500ms"`, `"5s"`, `"2m"`). A bad one is a serde error, so the file's reader names the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Written(pub Duration);

impl From<Duration> for Written {
    fn from(duration: Duration) -> Written {
        Written(duration)
    }
}

impl<'de> Deserialize<'de> for Written {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Written, D::Error> {
        deserializer.deserialize_any(WrittenVisitor)
    }
}

struct WrittenVisitor;

impl Visitor<'_> for WrittenVisitor {
    type Value = Written;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds or a duration with a unit (\"500ms\", \"5s\", \"2m\", \"1h\")")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Written, E> {
        from_seconds(v as f64).map(Written).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Written, E> {
        from_seconds(v as f64).map(Written).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Written, E> {
        from_seconds(v).map(Written).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Written, E> {
        parse(v).map(Written).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn numbers_are_seconds_and_units_are_read() {
        assert_eq!(parse("5"), Ok(ms(5000)));
        assert_eq!(parse("0.5"), Ok(ms(500)));
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("5s"), Ok(ms(5000)));
        assert_eq!(parse(" 2m "), Ok(ms(120_000)));
        assert_eq!(parse("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1h 2m 3s"), Ok(ms(3_723_000)));
        assert_eq!(parse("2 min"), Ok(ms(120_000)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("3S"), Ok(ms(3000)));
    }

    #[test]
    fn bad_text_says_what_is_wrong() {
        assert_eq!(
            parse("5 parsecs"),
            Err(DurationError::UnknownUnit { text: "5 parsecs".into(), unit: "parsecs".into() })
        );
        assert_eq!(parse("-1s"), Err(DurationError::Negative("-1s".into())));
        assert_eq!(parse("-1"), Err(DurationError::Negative("-1".into())));
        assert_eq!(parse(""), Err(DurationError::Malformed("".into())));
        assert_eq!(parse("s"), Err(DurationError::Malformed("s".into())));
        assert_eq!(parse("5 5"), Err(DurationError::Malformed("5 5".into())));
        assert_eq!(parse("1..2s"), Err(DurationError::Malformed("1..2s".into())));
        assert_eq!(parse("NaN"), Err(DurationError::Malformed("NaN".into())));
        assert_eq!(parse("400d"), Err(DurationError::TooLong("400d".into())));
        assert_eq!(parse("inf"), Err(DurationError::TooLong("inf".into())));
        assert!(parse("5 parsecs").unwrap_err().to_string().contains("parsecs"));
    }

    #[test]
    fn display_reads_back() {
        for d in [ms(500), ms(5000), ms(90_000), ms(3_723_000), ms(1500), ms(0), Duration::from_micros(1500), ms(2250)]
        {
            assert_eq!(parse(&display(d).to_string()), Ok(d), "{}", display(d));
        }
        assert_eq!(display(ms(90_000)).to_string(), "1m30s");
        assert_eq!(display(ms(500)).to_string(), "500ms");
    }

    #[derive(Deserialize)]
    struct File {
        timeout: Written,
    }

    #[test]
    fn toml_takes_numbers_and_strings() {
        for (text, want) in [("5", ms(5000)), ("0.25", ms(250)), ("\"5s\"", ms(5000)), ("\"2m\"", ms(120_000))] {
            let file: File = toml::from_str(&format!("timeout = {text}")).expect(text);
            assert_eq!(file.timeout, Written(want), "{text}");
        }
        let e = toml::from_str::<File>("timeout = \"5 parsecs\"").err().expect("refused");
        assert!(e.message().contains("parsecs"), "{}", e.message());
        let e = toml::from_str::<File>("timeout = -3").err().expect("refused");
        assert!(e.message().contains("negative"), "{}", e.message());
        let e = toml::from_str::<File>("timeout = true").err().expect("refused");
        assert!(e.message().contains("duration with a unit"), "{}", e.message());
    }
}
