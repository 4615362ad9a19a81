//! The simulator's answers that are not success: 1C's `odata.error` bodies (onec.md §5,
//! the `error.*.json` fixtures) with the status and internal code 1C uses for each case.

use std::borrow::Cow;

/// An error 1C would answer with: HTTP status, internal code (a string on the wire) and the
/// Russian message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ODataError {
    pub status: u16,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    /// Real 1C would have served this; the simulator does not implement it. Counted by
    /// `OnecSim::unimplemented_calls`, which tests keep at 0.
    pub unimplemented: bool,
}

impl ODataError {
    pub(crate) fn new(
        status: u16,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ODataError {
            status,
            code,
            message: message.into(),
            unimplemented: false,
        }
    }

    /// Marks a refusal of something real 1C supports but the simulator does not.
    pub(crate) fn unimplemented(mut self) -> Self {
        self.unimplemented = true;
        self
    }

    /// An endpoint real 1C serves but the simulator does not (404, counted).
    pub(crate) fn endpoint_not_implemented(path: &str) -> Self {
        Self::new(404, "6", format!("Сегмент пути {path} не найден!")).unimplemented()
    }

    /// A body value that does not parse as the property's type (code 1, the text quotes the
    /// value, as in `error.400.bad_guid.json`).
    pub(crate) fn bad_value(raw: &str, edm: &str) -> Self {
        Self::new(
            400,
            "1",
            format!("Не удалось разобрать строку '{raw}' как значение типа {edm}!"),
        )
    }

    /// 1C's catch-all for a body it cannot map (array in a scalar, row without
    /// `LineNumber`): the verbatim platform text of `error.500.internal.json`.
    pub(crate) fn internal() -> Self {
        Self::new(
            500,
            "-1",
            "Произошла внутренняя ошибка OData сервиса. Дополнительные сведения можно найти в технологическом журнале.",
        )
    }

    pub(crate) fn broken_json() -> Self {
        Self::new(500, "-1", "Непредвиденный символ при чтении JSON")
    }

    /// A query option that does not parse (code 14, `error.400.filter_syntax.json`).
    pub(crate) fn option(option: &str) -> Self {
        Self::new(
            400,
            "14",
            format!("Ошибка при разборе опции запроса {option}"),
        )
    }

    pub(crate) fn filter() -> Self {
        Self::option("$filter")
    }

    /// An unknown name in `$select`, `$orderby` or `$filter` (code 6; 1C echoes the name).
    pub(crate) fn segment(name: &str) -> Self {
        Self::new(400, "6", format!("Сегмент пути {name} не найден!"))
    }

    /// A well-formed key that matches nothing (code 9, `error.404.not_found.json`).
    pub(crate) fn not_found(short: &str) -> Self {
        Self::new(
            404,
            "9",
            format!("Экземпляр сущности \"{short}\" не найден по переданному ключу."),
        )
    }

    pub(crate) fn unknown_set(name: &str) -> Self {
        Self::new(404, "8", format!("Тип сущности {name} не найден!"))
    }

    pub(crate) fn bad_key() -> Self {
        Self::new(400, "7", "Неверный формат ключа сущности")
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(405, "19", "HTTP метод не допустим для данного ресурса")
    }

    pub(crate) fn duplicate_record() -> Self {
        Self::new(
            400,
            "15",
            "Запись с такими значениями ключевых полей уже существует",
        )
    }

    /// A configuration event handler refused the write (`error.500.business_rule.json`):
    /// same status and code as `internal()`, only the text differs (onec.md §5.3).
    pub(crate) fn handler(handler: &str, module: &str, line: u32, message: &str) -> Self {
        Self::new(
            500,
            "-1",
            format!(
                "Ошибка при выполнении обработчика - '{handler}'\n{{{module}({line})}}: {message}"
            ),
        )
    }

    pub(crate) fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.message.len() + 80);
        out.push_str("{\"odata.error\":{\"code\":");
        crate::onec::value::push_json_str(&mut out, self.code);
        out.push_str(",\"message\":{\"lang\":\"ru\",\"value\":");
        crate::onec::value::push_json_str(&mut out, &self.message);
        out.push_str("}}}");
        out
    }

    /// Atom mode's error body (onec.md §5.1).
    pub(crate) fn to_xml(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<m:error xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\"><m:code>{}</m:code><m:message xml:lang=\"ru\">{}</m:message></m:error>",
            crate::onec::value::xml_escape(self.code),
            crate::onec::value::xml_escape(&self.message)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_fixture_shape() {
        let fixture: serde_json::Value = serde_json::from_str(
            r#"{"odata.error":{"code":"1","message":{"lang":"ru","value":"Не удалось разобрать строку 'FRONT' как значение типа Edm.Guid!"}}}"#,
        )
        .unwrap();
        let ours: serde_json::Value =
            serde_json::from_str(&ODataError::bad_value("FRONT", "Edm.Guid").to_json()).unwrap();
        assert_eq!(ours, fixture);
        let handler = ODataError::handler(
            "ПередЗаписью",
            "Документ.ТелефонныйЗвонок.МодульОбъекта",
            214,
            "Превышен лимит",
        );
        assert_eq!(
            handler.message,
            "Ошибка при выполнении обработчика - 'ПередЗаписью'\n{Документ.ТелефонныйЗвонок.МодульОбъекта(214)}: Превышен лимит"
        );
        assert!(
            ODataError::not_found("X")
                .to_xml()
                .contains("<m:code>9</m:code>")
        );
    }
}
