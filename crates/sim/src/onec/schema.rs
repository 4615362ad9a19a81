//! The slice of the ЦЛ configuration the simulator serves: entity sets, their properties
//! and JSON types, keys, numbering and which properties are indexed (onec.md §9).
//!
//! Attribute lengths are not public (onec.md §9.4); the lengths below are assumptions large
//! enough for what the middleware writes, so truncation only bites values that are really
//! too long.

/// The JSON/Edm type of one property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Edm.String` of at most this many characters; 0 = unlimited (such strings cannot be
    /// compared in 1C queries).
    Str(usize),
    /// `Edm.Int64`: travels as a JSON string.
    Int64,
    /// `Edm.Int32`: travels as a JSON number.
    Int32,
    /// `Edm.Boolean`.
    Bool,
    /// `Edm.DateTime`: local wall-clock `YYYY-MM-DDTHH:MM:SS`, empty = `0001-01-01T00:00:00`.
    Date,
    /// `Edm.Guid`: references (`…_Key`), empty = the nil GUID.
    Guid,
    /// An enumeration: `Edm.String` holding the value name, `""` when empty.
    Enum(&'static [&'static str]),
    /// The standard `DataVersion`: base64 of an 8-byte counter.
    Version,
    /// A tabular part: an array of rows with these columns.
    Table(&'static [Prop]),
}

impl Kind {
    pub(crate) fn edm(self) -> &'static str {
        match self {
            Kind::Str(_) | Kind::Enum(_) | Kind::Version => "Edm.String",
            Kind::Int64 => "Edm.Int64",
            Kind::Int32 => "Edm.Int32",
            Kind::Bool => "Edm.Boolean",
            Kind::Date => "Edm.DateTime",
            Kind::Guid => "Edm.Guid",
            Kind::Table(_) => "Collection",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Prop {
    pub name: &'static str,
    pub kind: Kind,
    /// The value of a string property nobody set (composite `_Type` halves are
    /// `StandardODATA.Undefined`, onec.md §3).
    pub default: &'static str,
}

const fn p(name: &'static str, kind: Kind) -> Prop {
    Prop {
        name,
        kind,
        default: "",
    }
}

/// How objects of a set are identified and numbered.
#[derive(Debug)]
pub(crate) enum Keying {
    /// Catalogues and documents: `Ref_Key`, plus a number/code assigned on create.
    Object { number: Numbering },
    /// Independent information registers: the listed properties are the record key.
    Register { key: &'static [&'static str] },
}

#[derive(Debug)]
pub(crate) struct Numbering {
    /// `Number` (documents) or `Code` (catalogues).
    pub property: &'static str,
    pub prefix: &'static str,
    pub digits: usize,
}

#[derive(Debug)]
pub(crate) struct SetSchema {
    pub name: &'static str,
    /// The object's name as 1C's messages quote it ("ТелефонныйЗвонок").
    pub short: &'static str,
    pub props: &'static [Prop],
    pub keying: Keying,
    /// Properties with a secondary index (eq and range lookups skip the full scan).
    pub indexed: &'static [&'static str],
    /// A property ЦЛ code sets to "now" on every write (documents: `ДатаИзменения`).
    pub touch: Option<&'static str>,
}

impl SetSchema {
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.props.iter().position(|p| p.name == name)
    }

    pub(crate) fn is_object(&self) -> bool {
        matches!(self.keying, Keying::Object { .. })
    }
}

pub(crate) const CONSULTATION_KINDS: &[&str] =
    &["ВОчередьНаКонсультацию", "КонсультацияИТС", "Другое"];
const IMPORTANCE: &[&str] = &["Низкая", "Обычная", "Высокая"];
const CHANNELS: &[&str] = &["ПоТелефону", "ПоТелеграм", "ПоСайту"];
const LEGAL_FORMS: &[&str] = &["ЮридическоеЛицо", "ФизическоеЛицо"];
const CONTACT_TYPES: &[&str] = &[
    "Адрес",
    "АдресЭлектроннойПочты",
    "ВебСтраница",
    "Другое",
    "Skype",
    "Телефон",
    "Факс",
];

const ITS_ROWS: &[Prop] = &[
    p("ВидПО_Key", Kind::Guid),
    p("РазделПО_Key", Kind::Guid),
    p("НаличиеПомех_Key", Kind::Guid),
    p("ПомощьМенеджера_Key", Kind::Guid),
    p("ПовторноеОбращение", Kind::Bool),
    p("Вопрос", Kind::Str(0)),
    p("Ответ", Kind::Str(0)),
];

const QA_ROWS: &[Prop] = &[p("Вопрос", Kind::Str(0)), p("Ответ", Kind::Str(0))];

const CONTACT_ROWS: &[Prop] = &[
    p("Тип", Kind::Enum(CONTACT_TYPES)),
    p("Вид_Key", Kind::Guid),
    p("Представление", Kind::Str(500)),
    p("Страна", Kind::Str(100)),
    p("Регион", Kind::Str(100)),
    p("Город", Kind::Str(100)),
    p("АдресЭП", Kind::Str(100)),
    p("НомерТелефона", Kind::Str(20)),
];

pub(crate) const CONSULTATIONS: SetSchema = SetSchema {
    name: "Document_ТелефонныйЗвонок",
    short: "ТелефонныйЗвонок",
    props: &[
        p("Ref_Key", Kind::Guid),
        p("DataVersion", Kind::Version),
        p("DeletionMark", Kind::Bool),
        p("Number", Kind::Str(11)),
        p("Date", Kind::Date),
        p("Posted", Kind::Bool),
        p("АбонентКакСвязаться", Kind::Str(150)),
        p("АбонентКонтакт_Key", Kind::Guid),
        p("АбонентПредставление", Kind::Str(150)),
        p("Автор_Key", Kind::Guid),
        p("Важность", Kind::Enum(IMPORTANCE)),
        p("Входящий", Kind::Bool),
        p("Описание", Kind::Str(0)),
        p("Ответственный_Key", Kind::Guid),
        p("Рассмотрено", Kind::Bool),
        p("РассмотретьПосле", Kind::Date),
        p("Предмет", Kind::Str(0)),
        Prop {
            name: "Предмет_Type",
            kind: Kind::Str(200),
            default: "StandardODATA.Undefined",
        },
        p("ВзаимодействиеОснование", Kind::Str(0)),
        Prop {
            name: "ВзаимодействиеОснование_Type",
            kind: Kind::Str(200),
            default: "StandardODATA.Undefined",
        },
        p("Тема", Kind::Str(200)),
        p("Комментарий", Kind::Str(0)),
        p("Абонент_Key", Kind::Guid),
        p("Вопрос", Kind::Str(0)),
        p("Ответ", Kind::Str(0)),
        p("Конец", Kind::Date),
        p("ВидОбращения", Kind::Enum(CONSULTATION_KINDS)),
        p("Менеджер_Key", Kind::Guid),
        p("УведомлятьПриЗаписи", Kind::Bool),
        p("ДатаСоздания", Kind::Date),
        p("ДатаКонсультации", Kind::Date),
        p("ДатаИзменения", Kind::Date),
        p("ВременныйРеквизит", Kind::Bool),
        p("Язык_Key", Kind::Guid),
        p("КатегорияВопроса_Key", Kind::Guid),
        p("ВопросНаКонсультацию_Key", Kind::Guid),
        p("СпособСвязи", Kind::Enum(CHANNELS)),
        p("ЗакрытоБезКонсультации", Kind::Bool),
        p("ОтправленаБаза", Kind::Bool),
        p("ЗатраченноеВремя", Kind::Date),
        p("КонсультацииИТС", Kind::Table(ITS_ROWS)),
        p("ВопросыИОтветы", Kind::Table(QA_ROWS)),
    ],
    keying: Keying::Object {
        number: Numbering {
            property: "Number",
            prefix: "ЦЛ00-",
            digits: 6,
        },
    },
    indexed: &["АбонентПредставление", "Абонент_Key", "ДатаИзменения"],
    touch: Some("ДатаИзменения"),
};

pub(crate) const COUNTERPARTIES: SetSchema = SetSchema {
    name: "Catalog_Контрагенты",
    short: "Контрагенты",
    props: &[
        p("Ref_Key", Kind::Guid),
        p("DataVersion", Kind::Version),
        p("DeletionMark", Kind::Bool),
        p("Parent_Key", Kind::Guid),
        p("IsFolder", Kind::Bool),
        p("Code", Kind::Str(9)),
        p("Description", Kind::Str(150)),
        p("ЮридическоеФизическоеЛицо", Kind::Enum(LEGAL_FORMS)),
        p("Комментарий", Kind::Str(0)),
        p("ИНН", Kind::Str(14)),
        p("ОсновноеКонтактноеЛицо_Key", Kind::Guid),
        p("КодАбонентаClobus", Kind::Int64),
        p("КонтактнаяИнформация", Kind::Table(CONTACT_ROWS)),
        p("Predefined", Kind::Bool),
        p("PredefinedDataName", Kind::Str(256)),
    ],
    keying: Keying::Object {
        number: Numbering {
            property: "Code",
            prefix: "",
            digits: 9,
        },
    },
    indexed: &["КодАбонентаClobus", "ИНН", "Code"],
    touch: None,
};

pub(crate) const RESCHEDULES: SetSchema = SetSchema {
    name: "InformationRegister_РегистрацияПереносаКонсультации",
    short: "РегистрацияПереносаКонсультации",
    props: &[
        p("Period", Kind::Date),
        p("ДокументОбращения_Key", Kind::Guid),
        p("Абонент_Key", Kind::Guid),
        p("Менеджер_Key", Kind::Guid),
        p("СтараяДата", Kind::Date),
        p("НоваяДата", Kind::Date),
        p("Комментарий", Kind::Str(0)),
    ],
    // The real key fields are unknown (onec.md §9.4): one reschedule per document and second.
    keying: Keying::Register {
        key: &["Period", "ДокументОбращения_Key"],
    },
    indexed: &["ДокументОбращения_Key"],
    touch: None,
};

pub(crate) const RATINGS: SetSchema = SetSchema {
    name: "InformationRegister_ОценкаКонсультацийПоЗаявкам",
    short: "ОценкаКонсультацийПоЗаявкам",
    props: &[
        p("Period", Kind::Date),
        p("Обращение_Key", Kind::Guid),
        p("Контрагент_Key", Kind::Guid),
        p("Менеджер_Key", Kind::Guid),
        p("НомерВопроса", Kind::Int32),
        p("Оценка", Kind::Int32),
        p("ДатаОценки", Kind::Date),
        p("Вопрос", Kind::Str(0)),
        p("Комментарий", Kind::Str(0)),
        p("ОтправленаБаза", Kind::Bool),
    ],
    // Unknown in the real base (onec.md §9.4): one rating per document, question and second.
    keying: Keying::Register {
        key: &["Period", "Обращение_Key", "НомерВопроса"],
    },
    indexed: &["Обращение_Key"],
    touch: None,
};

/// Every set the simulator serves, in the order of the service document.
pub(crate) const SETS: &[&SetSchema] = &[&COUNTERPARTIES, &CONSULTATIONS, &RATINGS, &RESCHEDULES];

/// Position of `CONSULTATIONS` in `SETS`.
pub(crate) const CONSULTATIONS_SET: usize = 1;
/// Position of `COUNTERPARTIES` in `SETS`.
pub(crate) const COUNTERPARTIES_SET: usize = 0;

/// The document attribute the middleware stores its ticket id in (see `cons_onec`'s
/// `MARKER_FIELD` for why this one).
pub(crate) const MARKER_FIELD: &str = "АбонентПредставление";

/// The position in `SETS` of the set with this 1C name.
pub(crate) fn set_by_name(name: &str) -> Option<usize> {
    SETS.iter().position(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_keyed_and_touched_properties_exist() {
        for set in SETS {
            for name in set.indexed.iter().chain(set.touch.iter()) {
                assert!(set.index_of(name).is_some(), "{}.{name}", set.name);
            }
            match &set.keying {
                Keying::Object { number } => {
                    assert!(set.index_of(number.property).is_some());
                    assert_eq!(set.index_of("Ref_Key"), Some(0));
                }
                Keying::Register { key } => assert!(key.iter().all(|k| set.index_of(k).is_some())),
            }
        }
        assert_eq!(SETS[CONSULTATIONS_SET].name, CONSULTATIONS.name);
        assert_eq!(SETS[COUNTERPARTIES_SET].name, COUNTERPARTIES.name);
        assert!(CONSULTATIONS.index_of(MARKER_FIELD).is_some());
    }
}
