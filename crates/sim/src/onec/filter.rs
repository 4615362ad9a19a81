//! `$filter` as 1C's standard OData interface takes it (onec.md §6.1): lexing, parsing
//! with 1C's precedence, type checks against the set's schema (the refusals clients trip
//! over: a quoted number, a bare number for a string, `gt` on a GUID, an unknown
//! property), and evaluation against stored values.
//!
//! Supported: `eq ne gt ge lt le and or not ( )`, literals `guid'…'`, `datetime'…'`,
//! `'…'` with `''`, integers, decimals, `true`/`false`, and `substringof`, `startswith`,
//! `endswith`. What real 1C also supports (navigation `/`, arithmetic, date functions,
//! `like`, `cast`, `isof`, lambdas, …) is refused with 400 and counted as unimplemented;
//! what 1C itself refuses (`length`, `tolower`, …) is a plain 400.

use crate::onec::error::ODataError;
use crate::onec::schema::{Kind, SetSchema};
use crate::onec::value::{Val, data_version, parse_date, parse_guid};
use chrono::NaiveDateTime;
use std::cmp::Ordering;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    /// `substringof(needle, haystack)`: needle first.
    SubstringOf,
    StartsWith,
    EndsWith,
}

/// A literal of the filter language.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    Guid(Uuid),
    Date(NaiveDateTime),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A property of the set, by position in the schema.
    Prop(usize),
    Lit(Lit),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Op, Box<Expr>, Box<Expr>),
    Func(Func, Vec<Expr>),
    /// A comparison 1C accepts but that can never hold (a `datetime'…'` against a string
    /// property answers 200 with nothing, onec.md §5.3).
    Never,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit(Lit),
    Open,
    Close,
    Comma,
}

fn lex(text: &str) -> Result<Vec<Tok>, ODataError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                tokens.push(Tok::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Tok::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let (text, next) = quoted(&chars, i)?;
                tokens.push(Tok::Lit(Lit::Str(text)));
                i = next;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                // OData type suffixes (10L, 1.5M, 2D)
                if i < chars.len()
                    && matches!(chars[i], 'L' | 'l' | 'M' | 'm' | 'D' | 'd' | 'F' | 'f')
                {
                    i += 1;
                }
                if chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    return Err(ODataError::filter());
                }
                let lit = if raw.contains('.') {
                    Lit::Num(raw.parse().map_err(|_| ODataError::filter())?)
                } else {
                    Lit::Int(raw.parse().map_err(|_| ODataError::filter())?)
                };
                tokens.push(Tok::Lit(lit));
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '/' | '$'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'\'') {
                    let (body, next) = quoted(&chars, i)?;
                    i = next;
                    let lit = match word.as_str() {
                        "guid" => Lit::Guid(parse_guid(&body).ok_or_else(ODataError::filter)?),
                        "datetime" => Lit::Date(parse_date(&body).ok_or_else(ODataError::filter)?),
                        _ => return Err(ODataError::filter()),
                    };
                    tokens.push(Tok::Lit(lit));
                } else {
                    tokens.push(match word.as_str() {
                        "true" => Tok::Lit(Lit::Bool(true)),
                        "false" => Tok::Lit(Lit::Bool(false)),
                        _ => Tok::Ident(word),
                    });
                }
            }
            _ => return Err(ODataError::filter()),
        }
    }
    Ok(tokens)
}

/// A single-quoted literal starting at `start`; `''` is a quote. Returns the text and the
/// index after the closing quote.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), ODataError> {
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(ODataError::filter()),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                out.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((out, i + 1)),
            Some(c) => {
                out.push(*c);
                i += 1;
            }
        }
    }
}

/// What an expression evaluates to, for type checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// `unlimited`: a string attribute of unlimited length, which 1C cannot compare.
    Str {
        unlimited: bool,
    },
    Int,
    Num,
    Bool,
    Date,
    Guid,
    Table,
}

/// Functions real 1C has that the simulator does not (refused and counted).
const KNOWN_TO_1C: &[&str] = &[
    "concat",
    "substring",
    "like",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "dayofweek",
    "dayofyear",
    "quarter",
    "dateadd",
    "datedifference",
    "cast",
    "isof",
    "round",
];

struct Parser<'a> {
    schema: &'a SetSchema,
    tokens: Vec<Tok>,
    at: usize,
}

/// Parses and type-checks `text` against `schema`.
pub(crate) fn parse(schema: &SetSchema, text: &str) -> Result<Expr, ODataError> {
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err(ODataError::filter());
    }
    let mut parser = Parser {
        schema,
        tokens,
        at: 0,
    };
    let expr = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(ODataError::filter());
    }
    if parser.ty(&expr) != Ty::Bool {
        return Err(ODataError::filter());
    }
    Ok(expr)
}

impl Parser<'_> {
    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.at) {
            Some(Tok::Ident(word)) => Some(word.as_str()),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Expr, ODataError> {
        let mut left = self.and()?;
        while self.peek_word() == Some("or") {
            self.at += 1;
            let right = self.and()?;
            self.want_bool(&left)?;
            self.want_bool(&right)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ODataError> {
        let mut left = self.comparison()?;
        while self.peek_word() == Some("and") {
            self.at += 1;
            let right = self.comparison()?;
            self.want_bool(&left)?;
            self.want_bool(&right)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, ODataError> {
        let left = self.unary()?;
        let op = match self.peek_word() {
            Some("eq") => Op::Eq,
            Some("ne") => Op::Ne,
            Some("gt") => Op::Gt,
            Some("ge") => Op::Ge,
            Some("lt") => Op::Lt,
            Some("le") => Op::Le,
            Some("add" | "sub" | "mul" | "div" | "mod") => {
                return Err(ODataError::filter().unimplemented());
            }
            _ => return Ok(left),
        };
        self.at += 1;
        let right = self.unary()?;
        self.check_comparison(op, left, right)
    }

    fn unary(&mut self) -> Result<Expr, ODataError> {
        if self.peek_word() == Some("not") {
            self.at += 1;
            let inner = self.unary()?;
            self.want_bool(&inner)?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ODataError> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(ODataError::filter)?;
        self.at += 1;
        match token {
            Tok::Open => {
                let inner = self.or()?;
                if self.tokens.get(self.at) != Some(&Tok::Close) {
                    return Err(ODataError::filter());
                }
                self.at += 1;
                Ok(inner)
            }
            Tok::Lit(lit) => Ok(Expr::Lit(lit)),
            Tok::Ident(word) => {
                if self.tokens.get(self.at) == Some(&Tok::Open) {
                    return self.call(&word);
                }
                match word.as_str() {
                    "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "and" | "or" | "not" => {
                        Err(ODataError::filter())
                    }
                    "null" => Err(ODataError::filter()),
                    _ if word.contains('/') => {
                        // navigation (`Абонент/Parent_Key`) and lambdas: real 1C has them
                        let head = word.split('/').next().unwrap_or_default();
                        let known = self.schema.index_of(head).is_some()
                            || self.schema.index_of(&format!("{head}_Key")).is_some();
                        if known {
                            Err(ODataError::filter().unimplemented())
                        } else {
                            Err(ODataError::segment(head))
                        }
                    }
                    _ => self
                        .schema
                        .index_of(&word)
                        .map(Expr::Prop)
                        .ok_or_else(|| ODataError::segment(&word)),
                }
            }
            Tok::Close | Tok::Comma => Err(ODataError::filter()),
        }
    }

    fn call(&mut self, name: &str) -> Result<Expr, ODataError> {
        let func = match name {
            "substringof" => Func::SubstringOf,
            "startswith" => Func::StartsWith,
            "endswith" => Func::EndsWith,
            _ if KNOWN_TO_1C.contains(&name) => return Err(ODataError::filter().unimplemented()),
            _ => {
                return Err(ODataError::new(
                    400,
                    "21",
                    format!("Функция {name} не реализована"),
                ));
            }
        };
        self.at += 1; // the opening parenthesis
        let mut args = Vec::new();
        loop {
            args.push(self.or()?);
            match self.tokens.get(self.at) {
                Some(Tok::Comma) => self.at += 1,
                Some(Tok::Close) => {
                    self.at += 1;
                    break;
                }
                _ => return Err(ODataError::filter()),
            }
        }
        if args.len() != 2 {
            return Err(ODataError::new(
                400,
                "21",
                format!("Неверное количество параметров функции {name}"),
            ));
        }
        for arg in &args {
            if !matches!(self.ty(arg), Ty::Str { .. }) {
                // a function applied to an unsuitable property is a 500 (onec.md §5.3)
                return Err(ODataError::internal());
            }
        }
        Ok(Expr::Func(func, args))
    }

    fn want_bool(&self, expr: &Expr) -> Result<(), ODataError> {
        if self.ty(expr) == Ty::Bool {
            Ok(())
        } else {
            Err(ODataError::filter())
        }
    }

    fn ty(&self, expr: &Expr) -> Ty {
        match expr {
            Expr::Prop(index) => match self.schema.props[*index].kind {
                Kind::Str(max) => Ty::Str {
                    unlimited: max == 0,
                },
                Kind::Enum(_) | Kind::Version => Ty::Str { unlimited: false },
                Kind::Int64 | Kind::Int32 => Ty::Int,
                Kind::Bool => Ty::Bool,
                Kind::Date => Ty::Date,
                Kind::Guid => Ty::Guid,
                Kind::Table(_) => Ty::Table,
            },
            Expr::Lit(Lit::Str(_)) => Ty::Str { unlimited: false },
            Expr::Lit(Lit::Int(_)) => Ty::Int,
            Expr::Lit(Lit::Num(_)) => Ty::Num,
            Expr::Lit(Lit::Bool(_)) => Ty::Bool,
            Expr::Lit(Lit::Guid(_)) => Ty::Guid,
            Expr::Lit(Lit::Date(_)) => Ty::Date,
            Expr::Not(_)
            | Expr::And(..)
            | Expr::Or(..)
            | Expr::Cmp(..)
            | Expr::Func(..)
            | Expr::Never => Ty::Bool,
        }
    }

    fn check_comparison(&self, op: Op, left: Expr, right: Expr) -> Result<Expr, ODataError> {
        let (lt, rt) = (self.ty(&left), self.ty(&right));
        let ordered = !matches!(op, Op::Eq | Op::Ne);
        match (lt, rt) {
            (Ty::Str { unlimited: a }, Ty::Str { unlimited: b }) => {
                if a || b {
                    // 1C's query language cannot compare unlimited strings
                    return Err(ODataError::internal());
                }
            }
            (Ty::Int | Ty::Num, Ty::Int | Ty::Num)
            | (Ty::Bool, Ty::Bool)
            | (Ty::Date, Ty::Date) => {}
            (Ty::Guid, Ty::Guid) if !ordered => {}
            // GUIDs compare only with eq/ne (what the original found out)
            (Ty::Guid, Ty::Guid) => return Err(ODataError::filter()),
            (Ty::Str { .. }, Ty::Date) | (Ty::Date, Ty::Str { .. }) => return Ok(Expr::Never),
            _ => return Err(ODataError::filter()),
        }
        Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum V<'a> {
    Str(std::borrow::Cow<'a, str>),
    Int(i64),
    Num(f64),
    Bool(bool),
    Date(NaiveDateTime),
    Guid(Uuid),
    Missing,
}

fn value<'a>(expr: &'a Expr, vals: &'a [Val]) -> V<'a> {
    match expr {
        Expr::Prop(index) => match vals.get(*index) {
            Some(Val::Str(s)) => V::Str(std::borrow::Cow::Borrowed(s)),
            Some(Val::Int(i)) => V::Int(*i),
            Some(Val::Bool(b)) => V::Bool(*b),
            Some(Val::Date(d)) => V::Date(*d),
            Some(Val::Guid(g)) => V::Guid(*g),
            Some(Val::Version(v)) => V::Str(std::borrow::Cow::Owned(data_version(*v))),
            Some(Val::Table(_)) | None => V::Missing,
        },
        Expr::Lit(Lit::Str(s)) => V::Str(std::borrow::Cow::Borrowed(s)),
        Expr::Lit(Lit::Int(i)) => V::Int(*i),
        Expr::Lit(Lit::Num(n)) => V::Num(*n),
        Expr::Lit(Lit::Bool(b)) => V::Bool(*b),
        Expr::Lit(Lit::Guid(g)) => V::Guid(*g),
        Expr::Lit(Lit::Date(d)) => V::Date(*d),
        other => V::Bool(matches(other, vals)),
    }
}

fn order(a: &V<'_>, b: &V<'_>) -> Option<Ordering> {
    match (a, b) {
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Int(x), V::Num(y)) => (*x as f64).partial_cmp(y),
        (V::Num(x), V::Int(y)) => x.partial_cmp(&(*y as f64)),
        (V::Num(x), V::Num(y)) => x.partial_cmp(y),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Date(x), V::Date(y)) => Some(x.cmp(y)),
        (V::Guid(x), V::Guid(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Does the object with these values satisfy `expr`?
pub(crate) fn matches(expr: &Expr, vals: &[Val]) -> bool {
    match expr {
        Expr::Never => false,
        Expr::Not(inner) => !matches(inner, vals),
        Expr::And(a, b) => matches(a, vals) && matches(b, vals),
        Expr::Or(a, b) => matches(a, vals) || matches(b, vals),
        Expr::Cmp(op, a, b) => order(&value(a, vals), &value(b, vals)).is_some_and(|o| op.holds(o)),
        Expr::Func(func, args) => {
            let (V::Str(first), V::Str(second)) = (value(&args[0], vals), value(&args[1], vals))
            else {
                return false;
            };
            match func {
                Func::SubstringOf => second.contains(first.as_ref()),
                Func::StartsWith => first.starts_with(second.as_ref()),
                Func::EndsWith => first.ends_with(second.as_ref()),
            }
        }
        Expr::Prop(_) | Expr::Lit(_) => value(expr, vals) == V::Bool(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onec::schema::{CONSULTATIONS, COUNTERPARTIES};

    fn status(schema: &SetSchema, text: &str) -> (u16, &'static str, bool) {
        match parse(schema, text) {
            Ok(_) => (200, "", false),
            Err(e) => (e.status, e.code, e.unimplemented),
        }
    }

    #[test]
    fn parses_what_the_middleware_sends() {
        let ok = [
            "КодАбонентаClobus eq 10240 and ИНН eq '303045154' and Parent_Key eq guid'7ccd31ca-887b-11eb-938b-00e04cd03b68' and DeletionMark eq false",
            "ИНН eq 'O''Neil'",
            "not (DeletionMark eq true) or (Code ge '000000001')",
            "substringof('Clobus', Description) eq true",
            "startswith(Description, 'Clobus')",
        ];
        for text in ok {
            assert_eq!(status(&COUNTERPARTIES, text), (200, "", false), "{text}");
        }
        let poll = "(ДатаИзменения gt datetime'2026-11-19T10:00:00') or (ДатаИзменения eq datetime'2026-11-19T10:00:00' and Number gt 'ЦЛ00-000001')";
        assert_eq!(status(&CONSULTATIONS, poll), (200, "", false));
    }

    #[test]
    fn refuses_like_1c() {
        let cases: &[(&str, (u16, &str, bool))] = &[
            ("ИНН eq 303045154", (400, "14", false)),
            ("КодАбонентаClobus eq '10240'", (400, "14", false)),
            (
                "Ref_Key gt guid'7ccd31ca-887b-11eb-938b-00e04cd03b68'",
                (400, "14", false),
            ),
            ("Нет eq 1", (400, "6", false)),
            ("ИНН eq 'unclosed", (400, "14", false)),
            ("ИНН eq '1' and", (400, "14", false)),
            ("Ref_Key eq guid'FRONT'", (400, "14", false)),
            ("Code eq datetime'2026-11-19T10:00'", (400, "14", false)),
            ("tolower(ИНН) eq 'a'", (400, "21", false)),
            ("ИНН eq null", (400, "14", false)),
            ("year(DeletionMark) eq 1", (400, "14", true)),
            ("КодАбонентаClobus add 1 eq 2", (400, "14", true)),
            ("Parent/Code eq '1'", (400, "14", true)),
            ("Комментарий eq 'x'", (500, "-1", false)),
        ];
        for (text, expected) in cases {
            assert_eq!(status(&COUNTERPARTIES, text), *expected, "{text}");
        }
        // a datetime against a string property is accepted and matches nothing
        let never = parse(&COUNTERPARTIES, "ИНН eq datetime'2026-11-19T10:00:00'").unwrap();
        assert_eq!(never, Expr::Never);
    }

    #[test]
    fn evaluates_with_precedence() {
        let schema = &COUNTERPARTIES;
        let mut vals: Vec<Val> = schema.props.iter().map(Val::default_for).collect();
        vals[schema.index_of("ИНН").unwrap()] = Val::Str("O'Neil".into());
        vals[schema.index_of("КодАбонентаClobus").unwrap()] = Val::Int(7);
        let check = |text: &str| matches(&parse(schema, text).unwrap(), &vals);
        assert!(check("ИНН eq 'O''Neil'"));
        assert!(check("КодАбонентаClobus gt 6 and КодАбонентаClobus le 7.5"));
        assert!(check(
            "DeletionMark eq true or ИНН eq 'O''Neil' and КодАбонентаClobus eq 7"
        ));
        assert!(!check(
            "(DeletionMark eq true or ИНН eq 'O''Neil') and КодАбонентаClobus eq 8"
        ));
        assert!(check("not (DeletionMark eq true)"));
        assert!(check("substringof('Ne', ИНН) eq true"));
        assert!(!check("endswith(ИНН, 'x')"));
        assert!(check("DataVersion eq 'AAAAAAAAAAA='"));
    }
}
