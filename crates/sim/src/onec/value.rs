//! Values as the simulator stores them and as they travel in JSON (onec.md §3): local
//! wall-clock dates without zone, `0001-01-01T00:00:00` and the nil GUID as "empty", Int64
//! as JSON strings, `DataVersion` as base64 of an 8-byte counter, tabular parts as arrays.

use crate::onec::error::ODataError;
use crate::onec::schema::{Kind, Prop};
use base64::Engine as _;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use std::cmp::Ordering;
use std::fmt::Write as _;
use uuid::Uuid;

/// 1C's empty date.
pub(crate) const EMPTY_DATE: NaiveDateTime = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(date) => date.and_time(NaiveTime::MIN),
    None => NaiveDateTime::MIN,
};

/// One stored value. Enumerations are stored by value name (`Str`), Int32 and Int64 both as
/// `Int`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Str(String),
    Int(i64),
    Bool(bool),
    Date(NaiveDateTime),
    Guid(Uuid),
    Version(u64),
    /// Rows of a tabular part, each with one value per column (owner `Ref_Key` and
    /// `LineNumber` are implied by position).
    Table(Vec<Vec<Val>>),
}

impl Val {
    pub(crate) fn default_for(prop: &Prop) -> Val {
        match prop.kind {
            Kind::Str(_) | Kind::Enum(_) => Val::Str(prop.default.to_owned()),
            Kind::Int64 | Kind::Int32 => Val::Int(0),
            Kind::Bool => Val::Bool(false),
            Kind::Date => Val::Date(EMPTY_DATE),
            Kind::Guid => Val::Guid(Uuid::nil()),
            Kind::Version => Val::Version(0),
            Kind::Table(_) => Val::Table(Vec::new()),
        }
    }

    pub(crate) fn as_guid(&self) -> Option<Uuid> {
        match self {
            Val::Guid(g) => Some(*g),
            _ => None,
        }
    }

    pub(crate) fn as_date(&self) -> Option<NaiveDateTime> {
        match self {
            Val::Date(d) => Some(*d),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// An orderable, hashable form of a scalar value, for secondary indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum IndexKey {
    Str(String),
    Int(i64),
    Bool(bool),
    Date(NaiveDateTime),
    Guid(Uuid),
    Version(u64),
}

impl IndexKey {
    pub(crate) fn of(val: &Val) -> Option<IndexKey> {
        Some(match val {
            Val::Str(s) => IndexKey::Str(s.clone()),
            Val::Int(i) => IndexKey::Int(*i),
            Val::Bool(b) => IndexKey::Bool(*b),
            Val::Date(d) => IndexKey::Date(*d),
            Val::Guid(g) => IndexKey::Guid(*g),
            Val::Version(v) => IndexKey::Version(*v),
            Val::Table(_) => return None,
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS`, exactly (no zone, no fraction).
pub(crate) fn parse_date(raw: &str) -> Option<NaiveDateTime> {
    if raw.len() != 19 {
        return None;
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S").ok()
}

pub(crate) fn push_date(out: &mut String, date: &NaiveDateTime) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        date.year(),
        date.month(),
        date.day(),
        date.hour(),
        date.minute(),
        date.second()
    );
}

pub(crate) fn format_date(date: &NaiveDateTime) -> String {
    let mut out = String::with_capacity(19);
    push_date(&mut out, date);
    out
}

/// The GUID text 1C accepts: the 36-character hyphenated form only.
pub(crate) fn parse_guid(raw: &str) -> Option<Uuid> {
    if raw.len() != 36 {
        return None;
    }
    Uuid::try_parse(raw).ok()
}

pub(crate) fn data_version(counter: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(counter.to_be_bytes())
}

/// The order 1C (on MS SQL) gives references: by the stored `_IDRRef` bytes, which are the
/// GUID's groups in reverse (`dddd-eeeeeeeeeeee`, `cccc`, `bbbb`, `aaaaaaaa`), not the text
/// order. Clients that compare GUID strings to page are caught by this.
pub(crate) fn guid_order_key(guid: &Uuid) -> [u8; 16] {
    let b = guid.as_bytes();
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&b[8..16]);
    key[8..10].copy_from_slice(&b[6..8]);
    key[10..12].copy_from_slice(&b[4..6]);
    key[12..16].copy_from_slice(&b[0..4]);
    key
}

/// Compares two values of the same property the way 1C orders them.
pub(crate) fn compare(kind: Kind, a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => match kind {
            // enumerations order by their position in the configuration, empty first
            Kind::Enum(values) => {
                let rank = |v: &str| values.iter().position(|n| *n == v).map_or(0, |i| i + 1);
                rank(x).cmp(&rank(y))
            }
            _ => x.cmp(y),
        },
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Date(x), Val::Date(y)) => x.cmp(y),
        (Val::Guid(x), Val::Guid(y)) => guid_order_key(x).cmp(&guid_order_key(y)),
        (Val::Version(x), Val::Version(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Converts a JSON body value for `prop` the way 1C does on POST/PATCH (onec.md §3, §5.3,
/// §5.4): strings silently truncated, Int64 from numbers or strings (non-numeric → 0),
/// unparsable GUIDs/booleans/dates → 400 code 1, arrays or objects in a scalar → 500 `-1`.
pub(crate) fn from_json(prop: &Prop, value: &serde_json::Value) -> Result<Val, ODataError> {
    use serde_json::Value as J;
    if matches!(value, J::Array(_) | J::Object(_)) && !matches!(prop.kind, Kind::Table(_)) {
        return Err(ODataError::internal());
    }
    match prop.kind {
        Kind::Str(max) => Ok(Val::Str(match value {
            J::String(s) => truncate(s, max),
            J::Null => prop.default.to_owned(),
            J::Number(n) => truncate(&n.to_string(), max),
            J::Bool(b) => b.to_string(),
            _ => return Err(ODataError::internal()),
        })),
        Kind::Int64 | Kind::Int32 => {
            let number = match value {
                J::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
                    .unwrap_or(0),
                J::String(s) => s.trim().parse::<i64>().unwrap_or(0),
                J::Null => 0,
                _ => return Err(ODataError::internal()),
            };
            Ok(Val::Int(if prop.kind == Kind::Int32 {
                number.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
            } else {
                number
            }))
        }
        Kind::Bool => match value {
            J::Bool(b) => Ok(Val::Bool(*b)),
            J::Null => Ok(Val::Bool(false)),
            J::String(s) if s == "true" => Ok(Val::Bool(true)),
            J::String(s) if s == "false" => Ok(Val::Bool(false)),
            J::String(s) => Err(ODataError::bad_value(s, "Edm.Boolean")),
            other => Err(ODataError::bad_value(&other.to_string(), "Edm.Boolean")),
        },
        Kind::Date => match value {
            J::String(s) => parse_date(s)
                .map(Val::Date)
                .ok_or_else(|| ODataError::bad_value(s, "Edm.DateTime")),
            J::Null => Ok(Val::Date(EMPTY_DATE)),
            other => Err(ODataError::bad_value(&other.to_string(), "Edm.DateTime")),
        },
        Kind::Guid => match value {
            J::String(s) => parse_guid(s)
                .map(Val::Guid)
                .ok_or_else(|| ODataError::bad_value(s, "Edm.Guid")),
            J::Null => Ok(Val::Guid(Uuid::nil())),
            other => Err(ODataError::bad_value(&other.to_string(), "Edm.Guid")),
        },
        Kind::Enum(values) => match value {
            J::String(s) if s.is_empty() || values.contains(&s.as_str()) => Ok(Val::Str(s.clone())),
            J::String(s) => Err(ODataError::bad_value(s, prop.name)),
            J::Null => Ok(Val::Str(String::new())),
            other => Err(ODataError::bad_value(&other.to_string(), prop.name)),
        },
        // Never written from a body: the simulator counts versions itself.
        Kind::Version => Ok(Val::Version(0)),
        Kind::Table(columns) => table_from_json(columns, value),
    }
}

/// A tabular part replaces the whole part (onec.md §7.2). Rows need `LineNumber` 1..n in
/// order: missing → 500 `-1`, a gap or a start other than 1 → 400.
fn table_from_json(columns: &[Prop], value: &serde_json::Value) -> Result<Val, ODataError> {
    use serde_json::Value as J;
    let rows = match value {
        J::Array(rows) => rows,
        J::Null => return Ok(Val::Table(Vec::new())),
        _ => return Err(ODataError::internal()),
    };
    let mut out = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let J::Object(fields) = row else {
            return Err(ODataError::internal());
        };
        let line = match fields.get("LineNumber") {
            None | Some(J::Null) => return Err(ODataError::internal()),
            Some(J::Number(n)) => n.as_i64(),
            Some(J::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => return Err(ODataError::internal()),
        };
        if line != i64::try_from(index + 1).ok() {
            return Err(ODataError::new(
                400,
                "4",
                "Неверное значение свойства LineNumber",
            ));
        }
        let mut values: Vec<Val> = columns.iter().map(Val::default_for).collect();
        for (column, slot) in columns.iter().zip(values.iter_mut()) {
            if let Some(raw) = fields.get(column.name) {
                *slot = from_json(column, raw)?;
            }
        }
        out.push(values);
    }
    Ok(Val::Table(out))
}

fn truncate(text: &str, max: usize) -> String {
    if max == 0 {
        return text.to_owned();
    }
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

/// Appends `value` of `kind` as JSON. `owner` is the object's `Ref_Key`, which tabular
/// rows repeat (registers have none).
pub(crate) fn push_json(out: &mut String, kind: Kind, value: &Val, owner: Option<&Uuid>) {
    match value {
        Val::Str(s) => push_json_str(out, s),
        Val::Int(i) => {
            if kind == Kind::Int64 {
                let _ = write!(out, "\"{i}\"");
            } else {
                let _ = write!(out, "{i}");
            }
        }
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Date(d) => {
            out.push('"');
            push_date(out, d);
            out.push('"');
        }
        Val::Guid(g) => {
            let _ = write!(out, "\"{}\"", g.hyphenated());
        }
        Val::Version(v) => {
            out.push('"');
            out.push_str(&data_version(*v));
            out.push('"');
        }
        Val::Table(rows) => {
            let Kind::Table(columns) = kind else {
                out.push_str("[]");
                return;
            };
            out.push('[');
            for (index, row) in rows.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push('{');
                if let Some(owner) = owner {
                    let _ = write!(out, "\"Ref_Key\":\"{}\",", owner.hyphenated());
                }
                let _ = write!(out, "\"LineNumber\":\"{}\"", index + 1);
                for (column, cell) in columns.iter().zip(row) {
                    out.push(',');
                    push_json_str(out, column.name);
                    out.push(':');
                    push_json(out, column.kind, cell, owner);
                }
                out.push('}');
            }
            out.push(']');
        }
    }
}

/// A JSON string literal (quotes and escapes included).
pub(crate) fn push_json_str(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A time-based (version 1 layout) GUID like the ones 1C assigns, e.g.
/// `5e8c7d14-cab2-11f0-9c3e-00155d0a1c07`: `ticks` is a 60-bit count of 100 ns since
/// 1582-10-15 that the caller keeps strictly increasing.
pub(crate) fn time_based_guid(ticks: u64) -> Uuid {
    let time_low = (ticks & 0xffff_ffff) as u32;
    let time_mid = ((ticks >> 32) & 0xffff) as u16;
    let time_hi = (((ticks >> 48) & 0x0fff) as u16) | 0x1000;
    Uuid::from_fields(
        time_low,
        time_mid,
        time_hi,
        &[0x9c, 0x3e, 0x00, 0x15, 0x5d, 0x0a, 0x1c, 0x07],
    )
}

/// 100-ns ticks since the Gregorian epoch for a UTC instant.
pub(crate) fn gregorian_ticks(now: chrono::DateTime<chrono::Utc>) -> u64 {
    // 1582-10-15 to 1970-01-01
    const OFFSET: i64 = 0x01B2_1DD2_1381_4000;
    let unix_100ns =
        now.timestamp().saturating_mul(10_000_000) + i64::from(now.timestamp_subsec_nanos() / 100);
    u64::try_from(unix_100ns.saturating_add(OFFSET)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onec::schema::{CONSULTATIONS, COUNTERPARTIES};
    use serde_json::json;

    fn prop(name: &str) -> &'static Prop {
        CONSULTATIONS
            .props
            .iter()
            .chain(COUNTERPARTIES.props)
            .find(|p| p.name == name)
            .unwrap()
    }

    #[test]
    fn formats_follow_the_wire() {
        assert_eq!(format_date(&EMPTY_DATE), "0001-01-01T00:00:00");
        assert_eq!(data_version(0), "AAAAAAAAAAA=");
        assert_eq!(data_version(1), "AAAAAAAAAAE=");
        let mut out = String::new();
        push_json(&mut out, Kind::Int64, &Val::Int(10240), None);
        push_json(&mut out, Kind::Int32, &Val::Int(5), None);
        assert_eq!(out, "\"10240\"5");
        let guid = time_based_guid(gregorian_ticks(chrono::Utc::now()));
        assert_eq!(guid.get_version_num(), 1);
        assert!(
            guid.hyphenated()
                .to_string()
                .ends_with("-9c3e-00155d0a1c07")
        );
    }

    #[test]
    fn body_values_convert_like_1c() {
        assert_eq!(
            from_json(prop("КодАбонентаClobus"), &json!(10240)).unwrap(),
            Val::Int(10240)
        );
        assert_eq!(
            from_json(prop("КодАбонентаClobus"), &json!("30")).unwrap(),
            Val::Int(30)
        );
        assert_eq!(
            from_json(prop("КодАбонентаClobus"), &json!("abc")).unwrap(),
            Val::Int(0)
        );
        let bad = from_json(prop("Менеджер_Key"), &json!("FRONT")).unwrap_err();
        assert_eq!((bad.status, bad.code), (400, "1"));
        assert!(bad.message.contains("'FRONT'"));
        assert_eq!(
            from_json(prop("Тема"), &json!([1])).unwrap_err().status,
            500
        );
        let long = "я".repeat(300);
        assert_eq!(
            from_json(prop("Тема"), &json!(long)).unwrap(),
            Val::Str("я".repeat(200))
        );
        let rows = json!([{"LineNumber": "1", "Вопрос": "a"}, {"LineNumber": 2, "Ответ": "b"}]);
        let Val::Table(rows) = from_json(prop("ВопросыИОтветы"), &rows).unwrap()
        else {
            panic!()
        };
        assert_eq!(rows.len(), 2);
        let gap = json!([{"LineNumber": "2"}]);
        assert_eq!(
            from_json(prop("ВопросыИОтветы"), &gap).unwrap_err().status,
            400
        );
        let missing = json!([{"Вопрос": "a"}]);
        assert_eq!(
            from_json(prop("ВопросыИОтветы"), &missing)
                .unwrap_err()
                .status,
            500
        );
    }

    #[test]
    fn guids_order_by_stored_bytes_not_text() {
        let a = Uuid::parse_str("ffffffff-0000-11f0-9c3e-00155d0a1c07").unwrap();
        let b = Uuid::parse_str("00000000-0001-11f0-9c3e-00155d0a1c07").unwrap();
        assert_eq!(
            compare(Kind::Guid, &Val::Guid(a), &Val::Guid(b)),
            Ordering::Less
        );
    }
}
