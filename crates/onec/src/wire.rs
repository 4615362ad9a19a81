//! How values travel to and from 1C (onec.md §2.1, §3, §6.1): percent-encoding of
//! Cyrillic names and query values (UTF-8, space as `%20`, never `+`), filter literals,
//! local wall-clock dates without offset converted at this boundary (we hold UTC), the
//! empty GUID and date as "none", Int64 numbers as JSON strings.

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, Offset as _, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};
use std::fmt::Write as _;
use uuid::Uuid;

/// 1C's date format: no zone, no fraction.
const DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Percent-encodes `text` as UTF-8, keeping RFC 3986 unreserved characters and `keep`.
fn encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || keep.contains(&byte)
        {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// An entity-set name in the path (`Document_ТелефонныйЗвонок` →
/// `Document_%D0%A2…`).
pub(crate) fn path_name(name: &str) -> String {
    encode(name, b"")
}

/// A query option value: everything but unreserved characters and the punctuation 1C's
/// own clients leave readable (`'`, `(`, `)`, `,`) is encoded; a space is `%20`, a `+`
/// (phone numbers) `%2B`, `:` `%3A`.
pub(crate) fn query_value(value: &str) -> String {
    encode(value, b"'(),")
}

/// Builds `?$format=json&$filter=…` with option names written literally and values
/// encoded by [`query_value`] (not form encoding, which 1C reads differently).
#[derive(Debug, Default)]
pub(crate) struct QueryString(String);

impl QueryString {
    pub(crate) fn json() -> Self {
        QueryString("$format=json".to_owned())
    }

    pub(crate) fn option(mut self, name: &str, value: &str) -> Self {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(name);
        self.0.push('=');
        self.0.push_str(&query_value(value));
        self
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string literal for `$filter`: single quotes, inner quotes doubled.
pub(crate) fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub(crate) fn guid_literal(guid: Uuid) -> String {
    format!("guid'{}'", guid.hyphenated())
}

pub(crate) fn datetime_literal(local: NaiveDateTime) -> String {
    format!("datetime'{}'", local.format(DATE_FORMAT))
}

/// The base's local wall-clock time of a UTC instant, whole seconds (1C has no fractions).
pub(crate) fn to_local(zone: Tz, instant: DateTime<Utc>) -> NaiveDateTime {
    let local = instant.with_timezone(&zone).naive_local();
    local.with_nanosecond(0).unwrap_or(local)
}

/// `YYYY-MM-DDTHH:MM:SS` in the base's zone.
pub(crate) fn format_local(zone: Tz, instant: DateTime<Utc>) -> String {
    to_local(zone, instant).format(DATE_FORMAT).to_string()
}

/// The instant a local wall-clock time of the base stands for. A time that occurs twice
/// (clocks going back) is taken as the earlier; one that does not exist (clocks going
/// forward) is read with the offset before the jump. Asia/Tashkent has neither.
pub(crate) fn from_local(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local).earliest() {
        Some(instant) => instant.with_timezone(&Utc),
        None => {
            // in a gap: the offset before the jump applies
            let before = zone
                .from_utc_datetime(&(local - chrono::Duration::hours(3)))
                .offset()
                .fix();
            (local - before).and_utc()
        }
    }
}

/// Parses one of 1C's dates. `Ok(None)` for the empty date (`0001-01-01T00:00:00`),
/// `null` or `""`; any year-1 value is a time of day, not an instant, and also `None`
/// here (see [`time_of_day`]).
pub(crate) fn parse_date(zone: Tz, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let local = NaiveDateTime::parse_from_str(raw, DATE_FORMAT)
        .map_err(|_| "a date is not YYYY-MM-DDTHH:MM:SS".to_owned())?;
    if local.year() == 1 {
        return Ok(None);
    }
    Ok(Some(from_local(zone, local)))
}

/// A time-only attribute (a date on 0001-01-01, e.g. `ЗатраченноеВремя`) as a duration
/// since midnight; `None` when empty or not a time.
pub(crate) fn time_of_day(raw: Option<&str>) -> Option<std::time::Duration> {
    let local = NaiveDateTime::parse_from_str(raw?, DATE_FORMAT).ok()?;
    let seconds = local
        .time()
        .signed_duration_since(NaiveTime::MIN)
        .num_seconds();
    u64::try_from(seconds)
        .ok()
        .filter(|s| *s > 0)
        .map(std::time::Duration::from_secs)
}

/// A reference: the empty GUID means "none".
pub(crate) fn reference(guid: Option<Uuid>) -> Option<Uuid> {
    guid.filter(|g| !g.is_nil())
}

/// The empty GUID for "none", as 1C expects references to be written.
pub(crate) fn reference_or_empty(guid: Option<Uuid>) -> String {
    guid.unwrap_or_default().hyphenated().to_string()
}

/// An `Edm.Int64` value: 1C sends it as a JSON string (`"10240"`), older code may send a
/// number; `null`, `""` and non-numbers read as absent.
pub(crate) fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(i64),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Raw>::deserialize(deserializer)? {
        Some(Raw::Text(text)) => text.trim().parse().ok(),
        Some(Raw::Number(number)) => Some(number),
        Some(Raw::Other(_)) | None => None,
    })
}

/// A GUID property read leniently: `null`, `""` or a malformed value of a property we
/// only display is "none" rather than a failed call.
pub(crate) fn lenient_guid<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Uuid>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    Ok(reference(raw.and_then(|r| Uuid::try_parse(&r).ok())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASHKENT: Tz = chrono_tz::Asia::Tashkent;

    #[test]
    fn names_and_values_encode_like_onec_md() {
        assert_eq!(
            path_name("Document_ТелефонныйЗвонок"),
            "Document_%D0%A2%D0%B5%D0%BB%D0%B5%D1%84%D0%BE%D0%BD%D0%BD%D1%8B%D0%B9%D0%97%D0%B2%D0%BE%D0%BD%D0%BE%D0%BA"
        );
        // the example of onec.md §2.1, byte for byte
        assert_eq!(
            query_value("ДатаИзменения ge datetime'2026-11-19T10:00:00'"),
            "%D0%94%D0%B0%D1%82%D0%B0%D0%98%D0%B7%D0%BC%D0%B5%D0%BD%D0%B5%D0%BD%D0%B8%D1%8F%20ge%20datetime'2026-11-19T10%3A00%3A00'"
        );
        assert_eq!(query_value("+998 90"), "%2B998%2090");
        assert_eq!(query_value("a&b=c#d%"), "a%26b%3Dc%23d%25");
        let query = QueryString::json()
            .option("$filter", "ИНН eq '1'")
            .option("$top", "2");
        assert_eq!(
            query.as_str(),
            "$format=json&$filter=%D0%98%D0%9D%D0%9D%20eq%20'1'&$top=2"
        );
        assert!(!query.as_str().contains('+'));
    }

    #[test]
    fn literals() {
        assert_eq!(string_literal("O'Neil"), "'O''Neil'");
        let guid = Uuid::parse_str("7ccd31ca-887b-11eb-938b-00e04cd03b68").unwrap();
        assert_eq!(
            guid_literal(guid),
            "guid'7ccd31ca-887b-11eb-938b-00e04cd03b68'"
        );
        let local = NaiveDateTime::parse_from_str("2026-11-19T10:00:00", DATE_FORMAT).unwrap();
        assert_eq!(datetime_literal(local), "datetime'2026-11-19T10:00:00'");
    }

    #[test]
    fn dates_convert_at_the_boundary() {
        let utc = DateTime::parse_from_rfc3339("2026-11-26T05:15:02.731Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_local(TASHKENT, utc), "2026-11-26T10:15:02");
        let back = parse_date(TASHKENT, Some("2026-11-26T10:15:02"))
            .unwrap()
            .unwrap();
        assert_eq!(back.to_rfc3339(), "2026-11-26T05:15:02+00:00");
        assert_eq!(
            parse_date(TASHKENT, Some("0001-01-01T00:00:00")).unwrap(),
            None
        );
        assert_eq!(parse_date(TASHKENT, None).unwrap(), None);
        assert!(parse_date(TASHKENT, Some("2026-11-26 10:15")).is_err());
        assert_eq!(
            time_of_day(Some("0001-01-01T00:27:00")),
            Some(std::time::Duration::from_secs(27 * 60))
        );
        assert_eq!(time_of_day(Some("0001-01-01T00:00:00")), None);
        // a zone with DST: Berlin's 02:30 on 2026-03-29 does not exist, 02:30 on
        // 2026-10-25 exists twice
        let berlin = chrono_tz::Europe::Berlin;
        let gap = from_local(
            berlin,
            NaiveDateTime::parse_from_str("2026-03-29T02:30:00", DATE_FORMAT).unwrap(),
        );
        assert_eq!(gap.to_rfc3339(), "2026-03-29T01:30:00+00:00");
        let twice = from_local(
            berlin,
            NaiveDateTime::parse_from_str("2026-10-25T02:30:00", DATE_FORMAT).unwrap(),
        );
        assert_eq!(twice.to_rfc3339(), "2026-10-25T00:30:00+00:00");
    }

    #[test]
    fn int64_and_guids_read_leniently() {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default, deserialize_with = "int64")]
            code: Option<i64>,
            #[serde(default, deserialize_with = "lenient_guid")]
            key: Option<Uuid>,
        }
        let read = |json: &str| serde_json::from_str::<Probe>(json).unwrap();
        assert_eq!(read(r#"{"code":"10240"}"#).code, Some(10240));
        assert_eq!(read(r#"{"code":10240}"#).code, Some(10240));
        assert_eq!(read(r#"{"code":null}"#).code, None);
        assert_eq!(read(r#"{}"#).code, None);
        assert_eq!(
            read(r#"{"key":"00000000-0000-0000-0000-000000000000"}"#).key,
            None
        );
        assert_eq!(read(r#"{"key":"FRONT"}"#).key, None);
        assert!(
            read(r#"{"key":"7ccd31ca-887b-11eb-938b-00e04cd03b68"}"#)
                .key
                .is_some()
        );
        assert_eq!(
            reference_or_empty(None),
            "00000000-0000-0000-0000-000000000000"
        );
    }
}
