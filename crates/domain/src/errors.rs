//! Validation errors: one reason per invalid value, collected per request field.

use std::collections::BTreeMap;

/// Why one value was refused. The message is safe to show to the caller: it never echoes
/// the value itself, which may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// Field path (`client.phone_number`) → reason, for the `details` of a 422 answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        // The first reason for a field wins: it is the most basic one.
        self.0.entry(field.into()).or_insert_with(|| reason.into());
    }

    /// Parses `raw` with `parse`, recording the failure under `field`.
    pub fn check<T>(
        &mut self,
        field: &str,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        match parse(raw) {
            Ok(value) => Some(value),
            Err(InvalidValue(reason)) => {
                self.add(field, reason);
                None
            }
        }
    }

    /// Like `check`, for a value that may be absent (absent is not an error).
    pub fn check_present<T>(
        &mut self,
        field: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        raw.and_then(|raw| self.check(field, raw, parse))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, FieldErrors> {
        if self.is_empty() {
            // Every `None` a caller can produce was recorded as an error, so a value exists.
            value().ok_or(self)
        } else {
            Err(self)
        }
    }
}
