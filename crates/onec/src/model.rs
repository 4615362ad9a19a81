//! The records the client reads and writes: counterparties (`Catalog_Контрагенты`) and
//! consultations (`Document_ТелефонныйЗвонок`) with the field set of domain.md §1.4 and
//! onec.md §9, in our terms (UTC instants, `Option` for 1C's empty values), plus the
//! private wire shapes they are decoded from and encoded to.

use crate::wire;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The document attribute that carries our ticket id (the "marker").
///
/// `АбонентПредставление` is the presentation of `АбонентКонтакт`, a pair ЦЛ does not use
/// (the subscriber is ЦЛ's own `Абонент_Key`; `АбонентКонтакт_Key` stays empty, onec.md
/// §9.1), so operators have no reason to edit it and the middleware never PATCHes it. It
/// is a string of limited length, which 1C can compare exactly in `$filter` (the long
/// texts `Комментарий` and `Описание` are unlimited strings, which 1C's query language
/// cannot compare with `eq`, and operators and the relay edit them). What the original
/// wrote there, the counterparty's display name, is the `Description` of `Абонент_Key`.
/// Its length in ЦЛ is not public (onec.md §9.4); our marker has 41 characters, and the
/// client checks on every create that it came back unchanged.
pub const MARKER_FIELD: &str = "АбонентПредставление";

/// Our marker for a ticket: `cons:<ticket uuid>` (lower-case, hyphenated). The prefix tells
/// an operator who sees it what it is.
pub fn consultation_marker(ticket_id: Uuid) -> String {
    format!("cons:{}", ticket_id.hyphenated())
}

/// 1C's write counter of an object (`DataVersion`): opaque, compare for equality only. It
/// changes on every write, even one that changes nothing (onec.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DataVersion(String);

impl DataVersion {
    pub fn new(raw: impl Into<String>) -> Self {
        DataVersion(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The counter inside, on platforms that keep it as 8 bytes big-endian
    /// (`AAAAAAAAAAE=` = 1). Other layouts exist on older bases: for display only.
    pub fn counter(&self) -> Option<u64> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.0)
            .ok()?;
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// `ЮридическоеФизическоеЛицо`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegalForm {
    /// `ЮридическоеЛицо`: a 9-digit INN.
    Legal,
    /// `ФизическоеЛицо`: a 14-digit INN (ПИНФЛ).
    Individual,
}

impl LegalForm {
    /// As the original decided: 14 digits is a person, anything else a company.
    pub fn from_inn(inn: &str) -> Self {
        if inn.len() == 14 {
            LegalForm::Individual
        } else {
            LegalForm::Legal
        }
    }

    pub fn as_1c(self) -> &'static str {
        match self {
            LegalForm::Legal => "ЮридическоеЛицо",
            LegalForm::Individual => "ФизическоеЛицо",
        }
    }
}

/// `Тип` of a contact-information row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    Phone,
    Email,
}

impl ContactKind {
    pub fn as_1c(self) -> &'static str {
        match self {
            ContactKind::Phone => "Телефон",
            ContactKind::Email => "АдресЭлектроннойПочты",
        }
    }
}

/// One `КонтактнаяИнформация` row to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    pub kind: ContactKind,
    /// `Вид_Key`: the contact-kind GUID of the base (configuration, domain.md §1.7).
    pub kind_key: Uuid,
    /// `Представление`: the phone number or e-mail as text.
    pub presentation: String,
}

/// A counterparty as read from `Catalog_Контрагенты`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterparty {
    pub ref_key: Uuid,
    /// `Code`, assigned by 1C.
    pub code: String,
    pub description: String,
    pub inn: String,
    /// `КодАбонентаClobus` (`None` when 0 or empty).
    pub code_abonent: Option<i64>,
    /// `Parent_Key`: the folder.
    pub folder: Option<Uuid>,
    pub deletion_mark: bool,
    pub data_version: Option<DataVersion>,
}

/// A counterparty to create in the Clobus folder (domain.md §1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCounterparty {
    /// `Parent_Key`: the configured Clobus folder.
    pub folder: Uuid,
    /// `Description`: `Clobus <company or name> <code_abonent> (<INN>)`.
    pub description: String,
    pub inn: String,
    /// `КодАбонентаClobus`: digits only.
    pub code_abonent: String,
    pub legal_form: LegalForm,
    pub contacts: Vec<ContactInfo>,
}

/// `ВидОбращения` (domain.md §1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsultationKind {
    /// `ВОчередьНаКонсультацию`: queued.
    Queued,
    /// `КонсультацияИТС`: an ITS consultation, in work or done.
    ItsConsultation,
    /// `Другое`.
    Other,
    /// `""`: not set.
    Unset,
    /// A value this client does not know (kept for logs and the decision upstream).
    Unknown(String),
}

impl ConsultationKind {
    pub fn from_1c(raw: &str) -> Self {
        match raw {
            "ВОчередьНаКонсультацию" => ConsultationKind::Queued,
            "КонсультацияИТС" => ConsultationKind::ItsConsultation,
            "Другое" => ConsultationKind::Other,
            "" => ConsultationKind::Unset,
            other => ConsultationKind::Unknown(other.to_owned()),
        }
    }

    pub fn as_1c(&self) -> &str {
        match self {
            ConsultationKind::Queued => "ВОчередьНаКонсультацию",
            ConsultationKind::ItsConsultation => "КонсультацияИТС",
            ConsultationKind::Other => "Другое",
            ConsultationKind::Unset => "",
            ConsultationKind::Unknown(raw) => raw,
        }
    }
}

/// `Важность`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    Low,
    Normal,
    High,
}

impl Importance {
    pub fn from_1c(raw: &str) -> Option<Self> {
        match raw {
            "Низкая" => Some(Importance::Low),
            "Обычная" => Some(Importance::Normal),
            "Высокая" => Some(Importance::High),
            _ => None,
        }
    }

    pub fn as_1c(self) -> &'static str {
        match self {
            Importance::Low => "Низкая",
            Importance::Normal => "Обычная",
            Importance::High => "Высокая",
        }
    }
}

/// `СпособСвязи`: how the client reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Phone,
    Telegram,
    Site,
}

impl Channel {
    pub fn from_1c(raw: &str) -> Option<Self> {
        match raw {
            "ПоТелефону" => Some(Channel::Phone),
            "ПоТелеграм" => Some(Channel::Telegram),
            "ПоСайту" => Some(Channel::Site),
            _ => None,
        }
    }

    pub fn as_1c(self) -> &'static str {
        match self {
            Channel::Phone => "ПоТелефону",
            Channel::Telegram => "ПоТелеграм",
            Channel::Site => "ПоСайту",
        }
    }
}

/// One `КонсультацииИТС` row (filled by operators).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItsRow {
    pub software_kind_key: Option<Uuid>,
    pub software_section_key: Option<Uuid>,
    pub interference_key: Option<Uuid>,
    pub manager_help_key: Option<Uuid>,
    pub repeated: bool,
    pub question: String,
    pub answer: String,
}

/// One `ВопросыИОтветы` row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QaRow {
    pub question: String,
    pub answer: String,
}

/// A consultation as read from `Document_ТелефонныйЗвонок`. Instants are UTC (converted
/// from the base's local time); empty dates and references are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consultation {
    pub ref_key: Uuid,
    /// `Number`, assigned by 1C (`ЦЛ00-004812`).
    pub number: String,
    pub data_version: DataVersion,
    /// Cancelled (or deleted by an operator).
    pub deletion_mark: bool,
    pub posted: bool,
    /// `Date`: the document date (the original set it to the scheduled time).
    pub date: Option<DateTime<Utc>>,
    /// `ДатаСоздания`.
    pub date_created: Option<DateTime<Utc>>,
    /// `ДатаКонсультации`: the scheduled time; the daily limit counts by its day.
    pub consultation_date: Option<DateTime<Utc>>,
    /// `ДатаИзменения`: last change by ЦЛ code, one-second resolution, may lie in the
    /// future (onec.md §8); the polling watermark.
    pub date_changed: Option<DateTime<Utc>>,
    /// `Конец`: the end of the consultation; `Some` = finished.
    pub end: Option<DateTime<Utc>>,
    /// `ВидОбращения`.
    pub kind: ConsultationKind,
    /// `ЗакрытоБезКонсультации`: closed without a consultation (cancelled).
    pub closed_without_consultation: bool,
    /// `Абонент_Key`: the counterparty.
    pub counterparty_key: Option<Uuid>,
    /// `Менеджер_Key`: the consultant.
    pub manager_key: Option<Uuid>,
    /// `Ответственный_Key`.
    pub responsible_key: Option<Uuid>,
    /// `Автор_Key`.
    pub author_key: Option<Uuid>,
    /// `Язык_Key`.
    pub language_key: Option<Uuid>,
    /// `КатегорияВопроса_Key`.
    pub category_key: Option<Uuid>,
    /// `ВопросНаКонсультацию_Key`.
    pub question_key: Option<Uuid>,
    /// `СпособСвязи`.
    pub channel: Option<Channel>,
    /// `Важность`.
    pub importance: Option<Importance>,
    /// `Тема`.
    pub topic: String,
    /// `Описание`: the client's question.
    pub description: String,
    /// `Комментарий`.
    pub comment: String,
    /// `АбонентКакСвязаться`.
    pub how_to_contact: String,
    /// [`MARKER_FIELD`]: `cons:<ticket id>` for documents we created.
    pub marker: String,
    /// `Вопрос`, `Ответ`: filled by operators.
    pub question: String,
    pub answer: String,
    /// `ЗатраченноеВремя`.
    pub time_spent: Option<Duration>,
    pub its_rows: Vec<ItsRow>,
    pub qa_rows: Vec<QaRow>,
}

impl Consultation {
    /// Our ticket id, when this document carries our marker.
    pub fn ticket_id(&self) -> Option<Uuid> {
        self.marker
            .strip_prefix("cons:")
            .and_then(|id| Uuid::try_parse(id).ok())
    }

    /// The polling position right after this document (see
    /// `OnecClient::consultations_changed_since`).
    pub fn watermark(&self) -> Option<(DateTime<Utc>, Uuid)> {
        self.date_changed.map(|changed| (changed, self.ref_key))
    }

    /// `Конец` is filled.
    pub fn is_finished(&self) -> bool {
        self.end.is_some()
    }

    /// Cancelled in 1C: marked deleted or closed without a consultation.
    pub fn is_cancelled(&self) -> bool {
        self.deletion_mark || self.closed_without_consultation
    }
}

/// A consultation to create (domain.md §1.4). The client adds `Posted: false`,
/// `ВидОбращения: ВОчередьНаКонсультацию`, `Входящий: true`, empty tabular parts and the
/// marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsultation {
    /// Our ticket id, written as the marker so a retry can find the document.
    pub ticket_id: Uuid,
    /// `Абонент_Key`: the owner's counterparty.
    pub counterparty_key: Uuid,
    /// `Автор_Key`: the service author user (empty GUID when `None`).
    pub author_key: Option<Uuid>,
    /// `Менеджер_Key` and `Ответственный_Key` (empty GUID when `None`).
    pub manager_key: Option<Uuid>,
    /// `Date` and `ДатаКонсультации`.
    pub scheduled_at: DateTime<Utc>,
    /// `ДатаСоздания`.
    pub created_at: DateTime<Utc>,
    /// `Описание`: the client's comment.
    pub description: String,
    /// `Тема`, sent only when given.
    pub topic: Option<String>,
    /// `Язык_Key` (RU or UZ GUID from configuration).
    pub language_key: Uuid,
    /// `КатегорияВопроса_Key` (empty GUID when `None`, always sent).
    pub category_key: Option<Uuid>,
    /// `ВопросНаКонсультацию_Key` (empty GUID when `None`, always sent).
    pub question_key: Option<Uuid>,
    /// `СпособСвязи`.
    pub channel: Channel,
    /// `АбонентКакСвязаться`: "phone / contact name / source".
    pub how_to_contact: String,
    /// `Важность`.
    pub importance: Importance,
    /// `Комментарий`: "Создано из Clobus.uz" + category + question + comment.
    pub comment: String,
}

/// Changes to a consultation; only the `Some` fields are sent (a PATCH changes only what it
/// carries, onec.md §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsultationPatch {
    /// `ВидОбращения`.
    pub kind: Option<ConsultationKind>,
    /// `Менеджер_Key` (`Uuid::nil()` clears it).
    pub manager_key: Option<Uuid>,
    /// `Ответственный_Key` (`Uuid::nil()` clears it).
    pub responsible_key: Option<Uuid>,
    /// `ДатаКонсультации`.
    pub consultation_date: Option<DateTime<Utc>>,
    /// `Конец`: `Some(None)` clears it (sends the empty date).
    pub end: Option<Option<DateTime<Utc>>>,
    /// `Описание`.
    pub description: Option<String>,
    /// `DeletionMark`: `true` cancels.
    pub deletion_mark: Option<bool>,
    /// `КонсультацииИТС`: replaces the whole part.
    pub its_rows: Option<Vec<ItsRow>>,
}

impl ConsultationPatch {
    pub fn is_empty(&self) -> bool {
        *self == ConsultationPatch::default()
    }

    pub(crate) fn body(&self, zone: Tz) -> Value {
        let mut body = Map::new();
        if let Some(kind) = &self.kind {
            body.insert("ВидОбращения".into(), json!(kind.as_1c()));
        }
        if let Some(manager) = self.manager_key {
            body.insert(
                "Менеджер_Key".into(),
                json!(manager.hyphenated().to_string()),
            );
        }
        if let Some(responsible) = self.responsible_key {
            body.insert(
                "Ответственный_Key".into(),
                json!(responsible.hyphenated().to_string()),
            );
        }
        if let Some(date) = self.consultation_date {
            body.insert(
                "ДатаКонсультации".into(),
                json!(wire::format_local(zone, date)),
            );
        }
        if let Some(end) = self.end {
            let text = end.map_or_else(
                || EMPTY_DATE.to_owned(),
                |end| wire::format_local(zone, end),
            );
            body.insert("Конец".into(), json!(text));
        }
        if let Some(description) = &self.description {
            body.insert("Описание".into(), json!(description));
        }
        if let Some(mark) = self.deletion_mark {
            body.insert("DeletionMark".into(), json!(mark));
        }
        if let Some(rows) = &self.its_rows {
            body.insert("КонсультацииИТС".into(), Value::Array(its_rows(rows)));
        }
        Value::Object(body)
    }
}

const EMPTY_DATE: &str = "0001-01-01T00:00:00";

fn its_rows(rows: &[ItsRow]) -> Vec<Value> {
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            json!({
                "LineNumber": (index + 1).to_string(),
                "ВидПО_Key": wire::reference_or_empty(row.software_kind_key),
                "РазделПО_Key": wire::reference_or_empty(row.software_section_key),
                "НаличиеПомех_Key": wire::reference_or_empty(row.interference_key),
                "ПомощьМенеджера_Key": wire::reference_or_empty(row.manager_help_key),
                "ПовторноеОбращение": row.repeated,
                "Вопрос": row.question,
                "Ответ": row.answer,
            })
        })
        .collect()
}

impl NewConsultation {
    /// The POST body: the fields of the original (`document.create.request.json`) with the
    /// marker in [`MARKER_FIELD`]. Property order is not significant to 1C.
    pub(crate) fn body(&self, zone: Tz) -> Value {
        let scheduled = wire::format_local(zone, self.scheduled_at);
        let manager = wire::reference_or_empty(self.manager_key);
        let mut body = Map::new();
        body.insert("Date".into(), json!(scheduled));
        body.insert("Posted".into(), json!(false));
        body.insert("Описание".into(), json!(self.description));
        body.insert(
            "ВидОбращения".into(),
            json!(ConsultationKind::Queued.as_1c()),
        );
        body.insert("Входящий".into(), json!(true));
        body.insert(
            "ДатаСоздания".into(),
            json!(wire::format_local(zone, self.created_at)),
        );
        body.insert(
            "Абонент_Key".into(),
            json!(self.counterparty_key.hyphenated().to_string()),
        );
        body.insert(
            "Автор_Key".into(),
            json!(wire::reference_or_empty(self.author_key)),
        );
        body.insert("Менеджер_Key".into(), json!(manager));
        body.insert("Ответственный_Key".into(), json!(manager));
        if let Some(topic) = &self.topic {
            body.insert("Тема".into(), json!(topic));
        }
        body.insert("ДатаКонсультации".into(), json!(scheduled));
        body.insert(
            "Язык_Key".into(),
            json!(self.language_key.hyphenated().to_string()),
        );
        body.insert(
            "КатегорияВопроса_Key".into(),
            json!(wire::reference_or_empty(self.category_key)),
        );
        body.insert(
            "ВопросНаКонсультацию_Key".into(),
            json!(wire::reference_or_empty(self.question_key)),
        );
        body.insert("СпособСвязи".into(), json!(self.channel.as_1c()));
        body.insert("АбонентКакСвязаться".into(), json!(self.how_to_contact));
        body.insert(
            MARKER_FIELD.into(),
            json!(consultation_marker(self.ticket_id)),
        );
        body.insert("Важность".into(), json!(self.importance.as_1c()));
        body.insert("Комментарий".into(), json!(self.comment));
        body.insert("КонсультацииИТС".into(), json!([]));
        body.insert("ВопросыИОтветы".into(), json!([]));
        Value::Object(body)
    }
}

impl NewCounterparty {
    /// The POST body of `counterparty.create.request.json`; `КодАбонентаClobus` as a JSON
    /// integer, as the original wrote it. `code` is the validated subscriber code.
    pub(crate) fn body(&self, code: u64) -> Value {
        let contacts: Vec<Value> = self
            .contacts
            .iter()
            .enumerate()
            .map(|(index, contact)| {
                json!({
                    "LineNumber": (index + 1).to_string(),
                    "Тип": contact.kind.as_1c(),
                    "Вид_Key": contact.kind_key.hyphenated().to_string(),
                    "Представление": contact.presentation,
                })
            })
            .collect();
        let mut body = Map::new();
        body.insert("Description".into(), json!(self.description));
        body.insert("ИНН".into(), json!(self.inn));
        body.insert("КодАбонентаClobus".into(), json!(code));
        body.insert(
            "Parent_Key".into(),
            json!(self.folder.hyphenated().to_string()),
        );
        body.insert(
            "ЮридическоеФизическоеЛицо".into(),
            json!(self.legal_form.as_1c()),
        );
        body.insert("КонтактнаяИнформация".into(), Value::Array(contacts));
        Value::Object(body)
    }
}

// --- wire shapes ---------------------------------------------------------------------

/// A collection answer: `{"odata.metadata": …, "value": [...]}`.
#[derive(Deserialize)]
pub(crate) struct Collection<T> {
    pub value: Vec<T>,
}

#[derive(Deserialize)]
pub(crate) struct RawCounterparty {
    #[serde(rename = "Ref_Key")]
    ref_key: Uuid,
    #[serde(rename = "Code", default)]
    code: Option<String>,
    #[serde(rename = "Description", default)]
    description: Option<String>,
    #[serde(rename = "ИНН", default)]
    inn: Option<String>,
    #[serde(
        rename = "КодАбонентаClobus",
        default,
        deserialize_with = "wire::int64"
    )]
    code_abonent: Option<i64>,
    #[serde(
        rename = "Parent_Key",
        default,
        deserialize_with = "wire::lenient_guid"
    )]
    folder: Option<Uuid>,
    #[serde(rename = "DeletionMark", default)]
    deletion_mark: Option<bool>,
    #[serde(rename = "DataVersion", default)]
    data_version: Option<String>,
}

impl From<RawCounterparty> for Counterparty {
    fn from(raw: RawCounterparty) -> Self {
        Counterparty {
            ref_key: raw.ref_key,
            // fixed-length strings can come back padded with spaces (onec.md §3)
            code: raw.code.unwrap_or_default().trim_end().to_owned(),
            description: raw.description.unwrap_or_default(),
            inn: raw.inn.unwrap_or_default().trim_end().to_owned(),
            code_abonent: raw.code_abonent.filter(|c| *c != 0),
            folder: raw.folder,
            deletion_mark: raw.deletion_mark.unwrap_or(false),
            data_version: raw.data_version.map(DataVersion),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawItsRow {
    #[serde(rename = "ВидПО_Key", deserialize_with = "wire::lenient_guid")]
    software_kind_key: Option<Uuid>,
    #[serde(rename = "РазделПО_Key", deserialize_with = "wire::lenient_guid")]
    software_section_key: Option<Uuid>,
    #[serde(rename = "НаличиеПомех_Key", deserialize_with = "wire::lenient_guid")]
    interference_key: Option<Uuid>,
    #[serde(
        rename = "ПомощьМенеджера_Key",
        deserialize_with = "wire::lenient_guid"
    )]
    manager_help_key: Option<Uuid>,
    #[serde(rename = "ПовторноеОбращение")]
    repeated: Option<bool>,
    #[serde(rename = "Вопрос")]
    question: Option<String>,
    #[serde(rename = "Ответ")]
    answer: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawQaRow {
    #[serde(rename = "Вопрос")]
    question: Option<String>,
    #[serde(rename = "Ответ")]
    answer: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawConsultation {
    #[serde(rename = "Ref_Key")]
    ref_key: Uuid,
    #[serde(rename = "DataVersion", default)]
    data_version: Option<String>,
    #[serde(rename = "DeletionMark", default)]
    deletion_mark: Option<bool>,
    #[serde(rename = "Number", default)]
    number: Option<String>,
    #[serde(rename = "Date", default)]
    date: Option<String>,
    #[serde(rename = "Posted", default)]
    posted: Option<bool>,
    #[serde(rename = "АбонентКакСвязаться", default)]
    how_to_contact: Option<String>,
    #[serde(rename = "АбонентПредставление", default)]
    marker: Option<String>,
    #[serde(rename = "Автор_Key", default, deserialize_with = "wire::lenient_guid")]
    author_key: Option<Uuid>,
    #[serde(rename = "Важность", default)]
    importance: Option<String>,
    #[serde(rename = "Описание", default)]
    description: Option<String>,
    #[serde(
        rename = "Ответственный_Key",
        default,
        deserialize_with = "wire::lenient_guid"
    )]
    responsible_key: Option<Uuid>,
    #[serde(rename = "Тема", default)]
    topic: Option<String>,
    #[serde(rename = "Комментарий", default)]
    comment: Option<String>,
    #[serde(
        rename = "Абонент_Key",
        default,
        deserialize_with = "wire::lenient_guid"
    )]
    counterparty_key: Option<Uuid>,
    #[serde(rename = "Вопрос", default)]
    question: Option<String>,
    #[serde(rename = "Ответ", default)]
    answer: Option<String>,
    #[serde(rename = "Конец", default)]
    end: Option<String>,
    #[serde(rename = "ВидОбращения", default)]
    kind: Option<String>,
    #[serde(
        rename = "Менеджер_Key",
        default,
        deserialize_with = "wire::lenient_guid"
    )]
    manager_key: Option<Uuid>,
    #[serde(rename = "ДатаСоздания", default)]
    date_created: Option<String>,
    #[serde(rename = "ДатаКонсультации", default)]
    consultation_date: Option<String>,
    #[serde(rename = "ДатаИзменения", default)]
    date_changed: Option<String>,
    #[serde(rename = "Язык_Key", default, deserialize_with = "wire::lenient_guid")]
    language_key: Option<Uuid>,
    #[serde(
        rename = "КатегорияВопроса_Key",
        default,
        deserialize_with = "wire::lenient_guid"
    )]
    category_key: Option<Uuid>,
    #[serde(
        rename = "ВопросНаКонсультацию_Key",
        default,
        deserialize_with = "wire::lenient_guid"
    )]
    question_key: Option<Uuid>,
    #[serde(rename = "СпособСвязи", default)]
    channel: Option<String>,
    #[serde(rename = "ЗакрытоБезКонсультации", default)]
    closed_without_consultation: Option<bool>,
    #[serde(rename = "ЗатраченноеВремя", default)]
    time_spent: Option<String>,
    #[serde(rename = "КонсультацииИТС", default)]
    its_rows: Option<Vec<RawItsRow>>,
    #[serde(rename = "ВопросыИОтветы", default)]
    qa_rows: Option<Vec<RawQaRow>>,
}

impl RawConsultation {
    /// Converts 1C's values to ours; only a date that does not parse fails (naming the
    /// field, never the value).
    pub(crate) fn into_consultation(self, zone: Tz) -> Result<Consultation, String> {
        let date = |name: &str, raw: Option<&str>| {
            wire::parse_date(zone, raw).map_err(|e| format!("{name}: {e}"))
        };
        Ok(Consultation {
            ref_key: self.ref_key,
            number: self.number.unwrap_or_default().trim_end().to_owned(),
            data_version: DataVersion(self.data_version.unwrap_or_default()),
            deletion_mark: self.deletion_mark.unwrap_or(false),
            posted: self.posted.unwrap_or(false),
            date: date("Date", self.date.as_deref())?,
            date_created: date("ДатаСоздания", self.date_created.as_deref())?,
            consultation_date: date("ДатаКонсультации", self.consultation_date.as_deref())?,
            date_changed: date("ДатаИзменения", self.date_changed.as_deref())?,
            end: date("Конец", self.end.as_deref())?,
            kind: ConsultationKind::from_1c(self.kind.as_deref().unwrap_or_default()),
            closed_without_consultation: self.closed_without_consultation.unwrap_or(false),
            counterparty_key: self.counterparty_key,
            manager_key: self.manager_key,
            responsible_key: self.responsible_key,
            author_key: self.author_key,
            language_key: self.language_key,
            category_key: self.category_key,
            question_key: self.question_key,
            channel: self.channel.as_deref().and_then(Channel::from_1c),
            importance: self.importance.as_deref().and_then(Importance::from_1c),
            topic: self.topic.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            comment: self.comment.unwrap_or_default(),
            how_to_contact: self.how_to_contact.unwrap_or_default(),
            marker: self.marker.unwrap_or_default().trim_end().to_owned(),
            question: self.question.unwrap_or_default(),
            answer: self.answer.unwrap_or_default(),
            time_spent: wire::time_of_day(self.time_spent.as_deref()),
            its_rows: self
                .its_rows
                .unwrap_or_default()
                .into_iter()
                .map(|row| ItsRow {
                    software_kind_key: row.software_kind_key,
                    software_section_key: row.software_section_key,
                    interference_key: row.interference_key,
                    manager_help_key: row.manager_help_key,
                    repeated: row.repeated.unwrap_or(false),
                    question: row.question.unwrap_or_default(),
                    answer: row.answer.unwrap_or_default(),
                })
                .collect(),
            qa_rows: self
                .qa_rows
                .unwrap_or_default()
                .into_iter()
                .map(|row| QaRow {
                    question: row.question.unwrap_or_default(),
                    answer: row.answer.unwrap_or_default(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASHKENT: Tz = chrono_tz::Asia::Tashkent;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../../shared/fixtures/onec/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        )
        .unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn data_version_counter() {
        assert_eq!(DataVersion::new("AAAAAAAAAAA=").counter(), Some(0));
        assert_eq!(DataVersion::new("AAAAAAAAAAE=").counter(), Some(1));
        assert_eq!(DataVersion::new("AAAAAQAAAAA=").counter(), Some(1 << 32));
        assert_eq!(DataVersion::new("not base64!").counter(), None);
    }

    #[test]
    fn documents_decode_from_the_fixtures() {
        let raw: RawConsultation =
            serde_json::from_value(fixture("document.create.response.json")).unwrap();
        let doc = raw.into_consultation(TASHKENT).unwrap();
        assert_eq!(doc.number, "ЦЛ00-004812");
        assert_eq!(doc.data_version.counter(), Some(0));
        assert_eq!(doc.kind, ConsultationKind::Queued);
        assert_eq!(doc.date_created, Some(utc("2026-11-26T05:15:02Z")));
        assert_eq!(doc.consultation_date, Some(utc("2026-11-27T06:00:00Z")));
        assert_eq!(doc.end, None);
        assert_eq!(doc.channel, Some(Channel::Site));
        assert_eq!(doc.importance, Some(Importance::Normal));
        assert_eq!(
            doc.author_key,
            Uuid::try_parse("062699c7-24b2-11e9-a1e3-60a44cafb67d").ok()
        );
        assert_eq!(doc.time_spent, None);
        assert!(!doc.is_finished() && !doc.is_cancelled());
        // the fixture is the original's document: no marker of ours
        assert_eq!(doc.ticket_id(), None);

        let list: Collection<RawConsultation> =
            serde_json::from_value(fixture("document.list.changed_since.response.json")).unwrap();
        let docs: Vec<Consultation> = list
            .value
            .into_iter()
            .map(|r| r.into_consultation(TASHKENT).unwrap())
            .collect();
        let closed = &docs[0];
        assert_eq!(closed.kind, ConsultationKind::ItsConsultation);
        assert_eq!(closed.end, Some(utc("2026-11-25T10:27:40Z")));
        assert!(closed.is_finished());
        assert_eq!(closed.time_spent, Some(Duration::from_secs(27 * 60)));
        assert_eq!(closed.its_rows.len(), 1);
        assert_eq!(closed.its_rows[0].interference_key, None);
        assert_eq!(closed.qa_rows[0].answer, "Да, до проведения возврата");
        assert_eq!(closed.category_key, None);
        assert_eq!(closed.data_version.counter(), Some(3));
        assert_eq!(
            docs[1].watermark(),
            Some((utc("2026-11-26T05:31:27Z"), docs[1].ref_key))
        );
    }

    #[test]
    fn counterparties_decode_from_the_fixtures() {
        let raw: RawCounterparty =
            serde_json::from_value(fixture("counterparty.create.response.json")).unwrap();
        let party = Counterparty::from(raw);
        assert_eq!(party.code, "000012345");
        assert_eq!(party.code_abonent, Some(10240));
        assert_eq!(
            party.folder,
            Uuid::try_parse("7ccd31ca-887b-11eb-938b-00e04cd03b68").ok()
        );
        assert_eq!(party.data_version, Some(DataVersion::new("AAAAAAAAAAA=")));
        let list: Collection<RawCounterparty> =
            serde_json::from_value(fixture("counterparty.filter.response.json")).unwrap();
        let found = Counterparty::from(list.value.into_iter().next().unwrap());
        assert_eq!(found.inn, "303045154");
        assert_eq!(found.data_version, None);
    }

    #[test]
    fn bodies_match_the_original_requests() {
        let new = NewConsultation {
            ticket_id: Uuid::try_parse("0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6071").unwrap(),
            counterparty_key: Uuid::try_parse("3f9a6c12-a7b4-11f0-9c3e-00155d0a1c07").unwrap(),
            author_key: Uuid::try_parse("062699c7-24b2-11e9-a1e3-60a44cafb67d").ok(),
            manager_key: Uuid::try_parse("8d2e41b0-5e7a-11ef-9c3e-00155d0a1c07").ok(),
            scheduled_at: utc("2026-11-27T06:00:00Z"),
            created_at: utc("2026-11-26T05:15:02.5Z"),
            description: "Не закрывается октябрь: ошибка при расчёте себестоимости".into(),
            topic: Some("Закрытие месяца".into()),
            language_key: Uuid::try_parse("15d38cda-1812-11ef-b824-c67597d01fa8").unwrap(),
            category_key: Uuid::try_parse("c41b7e2a-6f03-11ef-9c3e-00155d0a1c07").ok(),
            question_key: Uuid::try_parse("c41b7e2b-6f03-11ef-9c3e-00155d0a1c07").ok(),
            channel: Channel::Site,
            how_to_contact: "+998901234567 / Азизов Бахтиёр / SITE".into(),
            importance: Importance::Normal,
            comment: "Создано из Clobus.uz\nКатегория вопроса: Закрытие месяца\nВопрос: Расчёт себестоимости\nНе закрывается октябрь: ошибка при расчёте себестоимости".into(),
        };
        let mut expected = fixture("document.create.request.json");
        // the one deliberate difference: the marker instead of the display name
        expected[MARKER_FIELD] = json!("cons:0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6071");
        assert_eq!(new.body(TASHKENT), expected);

        let party = NewCounterparty {
            folder: Uuid::try_parse("7ccd31ca-887b-11eb-938b-00e04cd03b68").unwrap(),
            description: "Clobus OOO ZARAFSHON SAVDO 10240 (303045154)".into(),
            inn: "303045154".into(),
            code_abonent: "10240".into(),
            legal_form: LegalForm::from_inn("303045154"),
            contacts: vec![
                ContactInfo {
                    kind: ContactKind::Phone,
                    kind_key: Uuid::try_parse("c07763c7-2ae8-4708-a608-7691be9d782b").unwrap(),
                    presentation: "+998901234567".into(),
                },
                ContactInfo {
                    kind: ContactKind::Email,
                    kind_key: Uuid::try_parse("f0dddb0f-1cac-49ab-ad37-f9480b0ef654").unwrap(),
                    presentation: "buh@zarafshon.uz".into(),
                },
            ],
        };
        assert_eq!(
            party.body(10240),
            fixture("counterparty.create.request.json")
        );

        let patch = ConsultationPatch {
            consultation_date: Some(utc("2026-11-28T05:00:00Z")),
            ..Default::default()
        };
        assert_eq!(patch.body(TASHKENT), fixture("document.patch.request.json"));
        let cancel = ConsultationPatch {
            deletion_mark: Some(true),
            end: Some(None),
            ..Default::default()
        };
        assert_eq!(
            cancel.body(TASHKENT),
            json!({"Конец": "0001-01-01T00:00:00", "DeletionMark": true})
        );
        assert!(ConsultationPatch::default().is_empty());
    }
}
