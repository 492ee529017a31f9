//! Human-friendly units in plans: sizes (`64MiB`), durations (`3d`) and dates
//! (`2015-01-01`).
//!
//! Each unit is a string in YAML. The JSON schema gives each one a `pattern`, and the
//! same string is parsed here; `PATTERNS` ties the two together so that a schema error
//! can say in words what was expected. The unit tests check that the pattern and the
//! parser agree.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, de};

/// `64MiB`, `250GB`, `1.5 TB`, `0`: a number with an optional SI or IEC unit.
pub(crate) const SIZE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)? ?([kKmMgGtTpPeE]([iI]?[bB])?|[bB])?$";
/// `3d`, `2s`, `1h30m`, `500ms`: one or more number-unit pairs, units ms s m h d w.
pub(crate) const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d|w))+$";
/// `2015-01-01` or an RFC 3339 timestamp such as `2015-01-01T08:00:00+01:00`.
pub(crate) const DATE_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$";

/// Task and plan names become folder names in the working folder.
pub(crate) const NAME_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
pub(crate) const NAME_EXPECTED: &str =
    "a name of 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit";
/// An extension without its dot, as Migration Manager writes them (`exe`, `tmp`).
pub(crate) const EXTENSION_PATTERN: &str = r"^[^./\\\s]+$";
pub(crate) const EXTENSION_EXPECTED: &str =
    "an extension without its dot, such as `exe` (no `.`, `/`, `\\` or spaces)";

/// What each pattern means, in the words an error message uses.
pub(crate) const PATTERNS: &[(&str, &str)] = &[
    (SIZE_PATTERN, "a size such as `64MiB`, `250GB` or `0`"),
    (
        DURATION_PATTERN,
        "a duration such as `3d`, `12h`, `1h30m` or `500ms`",
    ),
    (
        DATE_PATTERN,
        "a date such as `2015-01-01` or `2015-01-01T08:00:00+01:00`",
    ),
    (NAME_PATTERN, NAME_EXPECTED),
    (EXTENSION_PATTERN, EXTENSION_EXPECTED),
];

/// The words for a pattern, if it is one of ours.
pub(crate) fn describe_pattern(pattern: &str) -> Option<&'static str> {
    PATTERNS
        .iter()
        .find(|(p, _)| *p == pattern)
        .map(|(_, words)| *words)
}

/// Units travel as the strings a plan writes: parsed on the way in, shown on the way
/// out (in `ferry graph --format json`, say).
macro_rules! text_serde {
    ($($unit:ident),+) => {$(
        impl serde::Serialize for $unit {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $unit {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = Cow::<str>::deserialize(deserializer)?;
                $unit::parse(&text).map_err(de::Error::custom)
            }
        }
    )+};
}

text_serde!(Size, Duration, Date);

/// A number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    pub(crate) fn parse(text: &str) -> Result<Size, String> {
        if !matches_pattern(text, SIZE_PATTERN) {
            return Err(format!("`{text}` is not a size"));
        }
        text.parse::<bytesize::ByteSize>()
            .map(|b| Size(b.as_u64()))
            .map_err(|e| format!("`{text}` is not a size: {e}"))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// Exactly, in the unit that gives the smallest whole number: `64MiB`, `250GB`, `1234B`.
impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, &str); 6] = [
            ("KiB", "kB"),
            ("MiB", "MB"),
            ("GiB", "GB"),
            ("TiB", "TB"),
            ("PiB", "PB"),
            ("EiB", "EB"),
        ];
        let n = self.0;
        let mut best = (n, "B");
        for (power, (iec, si)) in UNITS.iter().enumerate() {
            for (size, unit) in [
                (1u64 << (10 * (power + 1)), *iec),
                (1000u64.pow(power as u32 + 1), *si),
            ] {
                if n > 0 && n.is_multiple_of(size) && n / size < best.0 {
                    best = (n / size, unit);
                }
            }
        }
        write!(f, "{}{}", best.0, best.1)
    }
}

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": SIZE_PATTERN,
            "description": "A size: a number with an optional unit, SI (kB, MB, GB, TB) or IEC (KiB, MiB, GiB, TiB). Examples: 64MiB, 250GB, 0.",
            "examples": ["64MiB", "250GB"]
        })
    }
}

/// A length of time, whole milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub(crate) fn parse(text: &str) -> Result<Duration, String> {
        if !matches_pattern(text, DURATION_PATTERN) {
            return Err(format!("`{text}` is not a duration"));
        }
        let span: jiff::Span = text
            .parse()
            .map_err(|e| format!("`{text}` is not a duration: {e}"))?;
        let seconds = span
            .total((
                jiff::Unit::Millisecond,
                jiff::SpanRelativeTo::days_are_24_hours(),
            ))
            .map_err(|e| format!("`{text}` is not a duration: {e}"))?;
        // `total` is exact for whole milliseconds well beyond any sensible duration.
        Ok(Duration(std::time::Duration::from_millis(seconds as u64)))
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
            ("ms", 1),
        ] {
            if millis >= size {
                write!(f, "{}{unit}", millis / size)?;
                millis %= size;
            }
        }
        Ok(())
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: number-unit pairs with units ms, s, m, h, d (24 hours), w. Examples: 3d, 12h, 1h30m, 500ms.",
            "examples": ["3d", "2s"]
        })
    }
}

/// A point in time. A date alone means midnight UTC; a time without an offset is UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub jiff::Timestamp);

impl Date {
    pub(crate) fn parse(text: &str) -> Result<Date, String> {
        if !matches_pattern(text, DATE_PATTERN) {
            return Err(format!("`{text}` is not a date"));
        }
        let invalid = |e: jiff::Error| format!("`{text}` is not a valid date: {e}");
        if let Ok(ts) = text.parse::<jiff::Timestamp>() {
            return Ok(Date(ts));
        }
        let civil: jiff::civil::DateTime = text.parse().map_err(invalid)?;
        jiff::tz::TimeZone::UTC
            .to_timestamp(civil)
            .map(Date)
            .map_err(invalid)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl JsonSchema for Date {
    fn schema_name() -> Cow<'static, str> {
        "Date".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "null"],
            "pattern": DATE_PATTERN,
            "description": "A date (midnight UTC) or an RFC 3339 timestamp; null for no limit. Examples: 2015-01-01, 2015-01-01T08:00:00+01:00.",
            "examples": ["2015-01-01"]
        })
    }
}

/// Whether `text` has the shape the schema's `pattern` allows. The parsers accept
/// more than the schema does (jiff reads `2 days`, bytesize reads `1 e`), and a plan
/// that passes the schema must mean the same thing everywhere, so the same regular
/// expression is checked here.
fn matches_pattern(text: &str, pattern: &'static str) -> bool {
    static COMPILED: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
        [SIZE_PATTERN, DURATION_PATTERN, DATE_PATTERN]
            .into_iter()
            .map(|p| {
                (
                    p,
                    Regex::new(p).expect("unit patterns are valid regular expressions"),
                )
            })
            .collect()
    });
    COMPILED
        .iter()
        .any(|(p, re)| *p == pattern && re.is_match(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_si_and_iec() {
        assert_eq!(Size::parse("64MiB"), Ok(Size(64 << 20)));
        assert_eq!(Size::parse("250GB"), Ok(Size(250_000_000_000)));
        assert_eq!(Size::parse("1.5 KiB"), Ok(Size(1536)));
        assert_eq!(Size::parse("0"), Ok(Size(0)));
        assert_eq!(Size::parse("10kib"), Ok(Size(10240)));
        for bad in [
            "", "-1", "1e3", "MiB", "1.5.5MB", "64 MiBs", "1i", " 1", "1  MB",
        ] {
            assert!(Size::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn sizes_display_exactly() {
        let shown = |n: u64| Size(n).to_string();
        assert_eq!(shown(64 << 20), "64MiB");
        assert_eq!(shown(250_000_000_000), "250GB");
        assert_eq!(shown(1234), "1234B");
        assert_eq!(shown(0), "0B");
        assert_eq!(shown(1536), "1536B");
    }

    #[test]
    fn durations_parse_compact_forms() {
        let secs = |s: &str| Duration::parse(s).map(|d| d.0.as_millis());
        assert_eq!(secs("3d"), Ok(3 * 86_400_000));
        assert_eq!(secs("1h30m"), Ok(5_400_000));
        assert_eq!(secs("500ms"), Ok(500));
        assert_eq!(secs("1w"), Ok(7 * 86_400_000));
        for bad in ["", "3", "3D", "2 days", "P3D", "-3d", "1.5h", "1y", "d"] {
            assert!(Duration::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn durations_display_round_trips() {
        for text in ["3d", "1h30m", "500ms", "2s", "0s", "1d1s"] {
            assert_eq!(
                Duration::parse(text).map(|d| d.to_string()),
                Ok(text.to_string())
            );
        }
    }

    #[test]
    fn dates_are_utc_unless_an_offset_is_given() {
        assert_eq!(
            Date::parse("2015-01-01").map(|d| d.to_string()),
            Ok("2015-01-01T00:00:00Z".into())
        );
        assert_eq!(
            Date::parse("2015-01-01T08:00:00+01:00").map(|d| d.to_string()),
            Ok("2015-01-01T07:00:00Z".into())
        );
        for bad in [
            "2015-02-30",
            "15-01-01",
            "2015-1-1",
            "yesterday",
            "2015-01-01x",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    /// The schema is checked by the jsonschema crate (ECMA-262 regular expressions),
    /// the parsers by the regex crate: both must read the patterns the same way, or a
    /// plan could pass an editor's schema check and fail `ferry validate`.
    #[test]
    fn both_regex_engines_agree_on_unit_patterns() {
        let samples = [
            "64MiB",
            "250GB",
            "1.5 KiB",
            "0",
            "10kib",
            "1e3",
            "-1",
            "1i",
            "1  MB",
            "MiB",
            "3d",
            "1h30m",
            "500ms",
            "3D",
            "2 days",
            "1y",
            "2015-01-01",
            "2015-01-01T08:00:00Z",
            "2015-01-01 08:00",
            "15-01-01",
            "2015-01-01x",
            "",
            "\u{661}",
        ];
        for pattern in [SIZE_PATTERN, DURATION_PATTERN, DATE_PATTERN] {
            let schema = serde_json::json!({"type": "string", "pattern": pattern});
            let validator = jsonschema::validator_for(&schema).expect("pattern compiles");
            for sample in samples {
                assert_eq!(
                    matches_pattern(sample, pattern),
                    validator.is_valid(&serde_json::json!(sample)),
                    "{sample:?} against {pattern}"
                );
            }
        }
    }
}
