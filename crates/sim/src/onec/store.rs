//! The simulated infobase: one table per entity set, kept indexed by `Ref_Key` (or the
//! register key) and by a few properties, with each object's JSON rendered once per write
//! so reads only copy it. Writes apply 1C's rules: assigned `Ref_Key`/`Number`/`Code`,
//! `DataVersion` +1 on every write, ЦЛ's `ДатаИзменения`, and the daily limit of
//! consultations per subscriber.

use crate::onec::error::ODataError;
use crate::onec::filter::{Expr, Lit, Op};
use crate::onec::schema::{self, Keying, Kind, SETS, SetSchema};
use crate::onec::value::{self, IndexKey, Val};
use chrono::{NaiveDateTime, Timelike};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// One stored object or register record.
#[derive(Debug, Clone)]
pub(crate) struct Entity {
    pub vals: Vec<Val>,
    /// The properties as JSON without the braces (`"Ref_Key":"…",…`), rendered at write.
    pub json: String,
}

/// One entity set's rows. Row ids are a hash of the object's key, so iterating `rows`
/// gives a deterministic order that is not the insertion order (onec.md §10: clients that
/// page without `$orderby` must be caught).
#[derive(Debug)]
pub(crate) struct Table {
    pub schema: &'static SetSchema,
    pub rows: BTreeMap<u64, Entity>,
    by_ref: HashMap<Uuid, u64>,
    by_key: HashMap<Vec<IndexKey>, u64>,
    indexes: Vec<(usize, BTreeMap<IndexKey, BTreeSet<u64>>)>,
    next_number: u64,
}

/// A parsed read: `$filter`, `$select`, `$orderby`, `$top`, `$skip`, `$inlinecount`.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub filter: Option<Expr>,
    /// Which properties to return (`None`: all).
    pub select: Option<Vec<bool>>,
    /// (property, descending)
    pub order_by: Vec<(usize, bool)>,
    pub top: Option<usize>,
    pub skip: usize,
    pub inline_count: bool,
}

impl Table {
    fn new(schema: &'static SetSchema) -> Self {
        let indexes = schema
            .indexed
            .iter()
            .filter_map(|name| schema.index_of(name))
            .map(|index| (index, BTreeMap::new()))
            .collect();
        Table {
            schema,
            rows: BTreeMap::new(),
            by_ref: HashMap::new(),
            by_key: HashMap::new(),
            indexes,
            next_number: 1,
        }
    }

    pub(crate) fn by_ref(&self, ref_key: Uuid) -> Option<u64> {
        self.by_ref.get(&ref_key).copied()
    }

    pub(crate) fn by_register_key(&self, key: &[IndexKey]) -> Option<u64> {
        self.by_key.get(key).copied()
    }

    /// Rows whose indexed property `name` equals `key`.
    pub(crate) fn lookup(&self, name: &str, key: &IndexKey) -> Vec<u64> {
        let Some(index) = self.schema.index_of(name) else {
            return Vec::new();
        };
        self.indexes
            .iter()
            .find(|(i, _)| *i == index)
            .and_then(|(_, map)| map.get(key))
            .map(|rows| rows.iter().copied().collect())
            .unwrap_or_default()
    }

    fn unused_row_id(&self, seed: u64) -> u64 {
        let mut id = splitmix(seed);
        while self.rows.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        id
    }

    fn index_insert(&mut self, row: u64, vals: &[Val]) {
        for (index, map) in &mut self.indexes {
            if let Some(key) = vals.get(*index).and_then(IndexKey::of) {
                map.entry(key).or_default().insert(row);
            }
        }
    }

    fn index_remove(&mut self, row: u64, vals: &[Val]) {
        for (index, map) in &mut self.indexes {
            if let Some(key) = vals.get(*index).and_then(IndexKey::of)
                && let Some(rows) = map.get_mut(&key)
            {
                rows.remove(&row);
                if rows.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    /// Candidate rows for `expr` from the indexes, or `None` for a full scan. The filter
    /// still runs on every candidate.
    fn plan(&self, expr: &Expr) -> Option<Vec<u64>> {
        match expr {
            Expr::And(a, b) => match (self.plan(a), self.plan(b)) {
                (Some(x), Some(y)) => Some(if x.len() <= y.len() { x } else { y }),
                (x, y) => x.or(y),
            },
            Expr::Or(a, b) => {
                let mut rows = self.plan(a)?;
                rows.extend(self.plan(b)?);
                rows.sort_unstable();
                rows.dedup();
                Some(rows)
            }
            Expr::Cmp(op, left, right) => match (left.as_ref(), right.as_ref()) {
                (Expr::Prop(p), Expr::Lit(l)) => self.plan_comparison(*op, *p, l),
                (Expr::Lit(l), Expr::Prop(p)) => self.plan_comparison(flip(*op), *p, l),
                _ => None,
            },
            _ => None,
        }
    }

    fn plan_comparison(&self, op: Op, prop: usize, lit: &Lit) -> Option<Vec<u64>> {
        let kind = self.schema.props.get(prop)?.kind;
        let key = match (kind, lit) {
            (Kind::Str(_), Lit::Str(s)) => IndexKey::Str(s.clone()),
            (Kind::Int64 | Kind::Int32, Lit::Int(i)) => IndexKey::Int(*i),
            (Kind::Date, Lit::Date(d)) => IndexKey::Date(*d),
            (Kind::Guid, Lit::Guid(g)) => IndexKey::Guid(*g),
            (Kind::Bool, Lit::Bool(b)) => IndexKey::Bool(*b),
            _ => return None,
        };
        if prop == 0
            && self.schema.is_object()
            && op == Op::Eq
            && let IndexKey::Guid(guid) = key
        {
            return Some(self.by_ref(guid).into_iter().collect());
        }
        let (_, map) = self.indexes.iter().find(|(i, _)| *i == prop)?;
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let range = match op {
            Op::Eq => (Included(&key), Included(&key)),
            Op::Gt => (Excluded(&key), Unbounded),
            Op::Ge => (Included(&key), Unbounded),
            Op::Lt => (Unbounded, Excluded(&key)),
            Op::Le => (Unbounded, Included(&key)),
            Op::Ne => return None,
        };
        let mut rows: Vec<u64> = map
            .range::<IndexKey, _>(range)
            .flat_map(|(_, rows)| rows.iter().copied())
            .collect();
        rows.sort_unstable();
        Some(rows)
    }

    /// Runs a read: the matching entities in answer order, and the total count when
    /// `$inlinecount=allpages` asked for it (which makes 1C ignore `$top`/`$skip`).
    pub(crate) fn run(&self, query: &Query) -> (Vec<&Entity>, Option<usize>) {
        let planned = query.filter.as_ref().and_then(|f| self.plan(f));
        let matching = |entity: &&Entity| {
            query
                .filter
                .as_ref()
                .is_none_or(|f| crate::onec::filter::matches(f, &entity.vals))
        };
        let candidates: Box<dyn Iterator<Item = (u64, &Entity)>> = match planned {
            Some(rows) => Box::new(
                rows.into_iter()
                    .filter_map(|id| self.rows.get(&id).map(|e| (id, e))),
            ),
            None => Box::new(self.rows.iter().map(|(id, e)| (*id, e))),
        };
        let candidates = candidates.filter(|(_, e)| matching(e));
        if query.order_by.is_empty() && !query.inline_count {
            let taken = candidates
                .skip(query.skip)
                .take(query.top.unwrap_or(usize::MAX))
                .map(|(_, e)| e);
            return (taken.collect(), None);
        }
        let mut all: Vec<(u64, &Entity)> = candidates.collect();
        if !query.order_by.is_empty() {
            let props = self.schema.props;
            all.sort_by(|(ia, a), (ib, b)| {
                for (index, descending) in &query.order_by {
                    let ordering =
                        value::compare(props[*index].kind, &a.vals[*index], &b.vals[*index]);
                    let ordering = if *descending {
                        ordering.reverse()
                    } else {
                        ordering
                    };
                    if ordering.is_ne() {
                        return ordering;
                    }
                }
                ia.cmp(ib)
            });
        }
        if query.inline_count {
            let count = all.len();
            return (all.into_iter().map(|(_, e)| e).collect(), Some(count));
        }
        let page = all
            .into_iter()
            .skip(query.skip)
            .take(query.top.unwrap_or(usize::MAX))
            .map(|(_, e)| e);
        (page.collect(), None)
    }
}

fn flip(op: Op) -> Op {
    match op {
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        other => other,
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_of(key: &[IndexKey]) -> u64 {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() has fixed keys: the order is the same in every run
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The JSON properties of an entity (without braces), optionally only the selected ones.
pub(crate) fn render(schema: &SetSchema, vals: &[Val], select: Option<&[bool]>) -> String {
    let owner = if schema.is_object() {
        vals.first().and_then(Val::as_guid)
    } else {
        None
    };
    let mut out = String::with_capacity(256);
    let mut first = true;
    for (index, (prop, val)) in schema.props.iter().zip(vals).enumerate() {
        if select.is_some_and(|mask| !mask.get(index).copied().unwrap_or(false)) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        value::push_json_str(&mut out, prop.name);
        out.push(':');
        value::push_json(&mut out, prop.kind, val, owner.as_ref());
    }
    out
}

/// Where a write comes from: the HTTP interface, or an operator acting in 1C.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteContext {
    /// The base's local wall-clock time, whole seconds.
    pub now_local: NaiveDateTime,
    pub now_utc: chrono::DateTime<chrono::Utc>,
}

/// The whole simulated infobase.
#[derive(Debug)]
pub(crate) struct Store {
    pub tables: Vec<Table>,
    last_ticks: u64,
    /// Most non-deleted consultations per subscriber and day; `None` switches the rule off.
    pub daily_limit: Option<usize>,
}

impl Store {
    pub(crate) fn new() -> Self {
        Store {
            tables: SETS.iter().map(|s| Table::new(s)).collect(),
            last_ticks: 0,
            daily_limit: Some(3),
        }
    }

    fn next_guid(&mut self, now: chrono::DateTime<chrono::Utc>) -> Uuid {
        let ticks = value::gregorian_ticks(now).max(self.last_ticks + 1);
        self.last_ticks = ticks;
        value::time_based_guid(ticks)
    }

    /// POST: a new object (201) or register record (200). Returns its row.
    pub(crate) fn create(
        &mut self,
        set: usize,
        body: &serde_json::Map<String, serde_json::Value>,
        ctx: WriteContext,
    ) -> Result<u64, ODataError> {
        let schema = SETS.get(set).copied().ok_or_else(ODataError::internal)?;
        let mut vals: Vec<Val> = schema.props.iter().map(Val::default_for).collect();
        for (index, prop) in schema.props.iter().enumerate() {
            if prop.name == "Ref_Key" || prop.kind == Kind::Version {
                continue;
            }
            if let Some(raw) = body.get(prop.name) {
                vals[index] = value::from_json(prop, raw)?;
            }
        }
        match &schema.keying {
            Keying::Object { number } => {
                let guid = self.next_guid(ctx.now_utc);
                vals[0] = Val::Guid(guid);
                let table = &mut self.tables[set];
                if let Some(slot) = schema.index_of(number.property)
                    && vals[slot].as_str().is_none_or(str::is_empty)
                {
                    let text = format!(
                        "{}{:0width$}",
                        number.prefix,
                        table.next_number,
                        width = number.digits
                    );
                    table.next_number += 1;
                    vals[slot] = Val::Str(text);
                }
                self.touch(schema, &mut vals, ctx);
                self.check_rules(set, &vals, None, None)?;
                let table = &mut self.tables[set];
                let (high, low) = guid.as_u64_pair();
                let row = table.unused_row_id(high ^ low);
                table.by_ref.insert(guid, row);
                table.index_insert(row, &vals);
                let json = render(schema, &vals, None);
                table.rows.insert(row, Entity { vals, json });
                Ok(row)
            }
            Keying::Register { key } => {
                let key = register_key(schema, key, &vals);
                let table = &mut self.tables[set];
                if table.by_key.contains_key(&key) {
                    return Err(ODataError::duplicate_record());
                }
                let row = table.unused_row_id(seed_of(&key));
                table.by_key.insert(key, row);
                table.index_insert(row, &vals);
                let json = render(schema, &vals, None);
                table.rows.insert(row, Entity { vals, json });
                Ok(row)
            }
        }
    }

    /// PATCH: only the sent properties change (a tabular part is replaced whole); unknown
    /// properties and `Ref_Key` are ignored; `DataVersion` grows even if nothing changed.
    pub(crate) fn patch(
        &mut self,
        set: usize,
        row: u64,
        body: &serde_json::Map<String, serde_json::Value>,
        ctx: WriteContext,
    ) -> Result<(), ODataError> {
        let schema = SETS.get(set).copied().ok_or_else(ODataError::internal)?;
        let old = self.tables[set]
            .rows
            .get(&row)
            .ok_or_else(|| ODataError::not_found(schema.short))?;
        let mut vals = old.vals.clone();
        let key_props: &[&str] = match &schema.keying {
            Keying::Object { .. } => &["Ref_Key"],
            Keying::Register { key } => key,
        };
        for (index, prop) in schema.props.iter().enumerate() {
            if key_props.contains(&prop.name) || prop.kind == Kind::Version {
                continue;
            }
            if let Some(raw) = body.get(prop.name) {
                vals[index] = value::from_json(prop, raw)?;
            }
        }
        self.replace(set, row, vals, ctx)
    }

    /// Writes new values of an existing row: version +1, `ДатаИзменения`, rules, indexes,
    /// rendering.
    pub(crate) fn replace(
        &mut self,
        set: usize,
        row: u64,
        mut vals: Vec<Val>,
        ctx: WriteContext,
    ) -> Result<(), ODataError> {
        let schema = SETS.get(set).copied().ok_or_else(ODataError::internal)?;
        let old = self.tables[set]
            .rows
            .get(&row)
            .ok_or_else(|| ODataError::not_found(schema.short))?
            .vals
            .clone();
        if let Some(version) = schema.index_of("DataVersion")
            && let Some(Val::Version(v)) = old.get(version)
        {
            vals[version] = Val::Version(v + 1);
        }
        self.touch(schema, &mut vals, ctx);
        self.check_rules(set, &vals, Some(&old), Some(row))?;
        let table = &mut self.tables[set];
        table.index_remove(row, &old);
        table.index_insert(row, &vals);
        let json = render(schema, &vals, None);
        table.rows.insert(row, Entity { vals, json });
        Ok(())
    }

    /// Physical DELETE.
    pub(crate) fn delete(&mut self, set: usize, row: u64) -> bool {
        let Some(table) = self.tables.get_mut(set) else {
            return false;
        };
        let Some(entity) = table.rows.remove(&row) else {
            return false;
        };
        table.index_remove(row, &entity.vals);
        match &table.schema.keying {
            Keying::Object { .. } => {
                if let Some(guid) = entity.vals.first().and_then(Val::as_guid) {
                    table.by_ref.remove(&guid);
                }
            }
            Keying::Register { key } => {
                let key = register_key(table.schema, key, &entity.vals);
                table.by_key.remove(&key);
            }
        }
        true
    }

    fn touch(&self, schema: &SetSchema, vals: &mut [Val], ctx: WriteContext) {
        if let Some(index) = schema.touch.and_then(|name| schema.index_of(name)) {
            vals[index] = Val::Date(ctx.now_local.with_nanosecond(0).unwrap_or(ctx.now_local));
        }
    }

    /// ЦЛ's `ПередЗаписью` of `ТелефонныйЗвонок`: at most `daily_limit` documents without
    /// deletion mark per subscriber and calendar day of `ДатаКонсультации`. Checked when a
    /// write could add one to a day: a create, an unmark, a new subscriber or day.
    fn check_rules(
        &self,
        set: usize,
        vals: &[Val],
        old: Option<&[Val]>,
        row: Option<u64>,
    ) -> Result<(), ODataError> {
        let (Some(limit), true) = (self.daily_limit, set == schema::CONSULTATIONS_SET) else {
            return Ok(());
        };
        let schema = &schema::CONSULTATIONS;
        let (Some(deleted), Some(subscriber), Some(day)) = (
            schema.index_of("DeletionMark"),
            schema.index_of("Абонент_Key"),
            schema.index_of("ДатаКонсультации"),
        ) else {
            return Ok(());
        };
        let slot = |vals: &[Val]| {
            let live = vals[deleted].as_bool() == Some(false);
            let who = vals[subscriber].as_guid().filter(|g| !g.is_nil());
            let date = vals[day]
                .as_date()
                .filter(|d| *d != value::EMPTY_DATE)
                .map(|d| d.date());
            (live, who, date)
        };
        let (live, Some(who), Some(date)) = slot(vals) else {
            return Ok(());
        };
        if !live || old.is_some_and(|old| slot(old) == (live, Some(who), Some(date))) {
            return Ok(());
        }
        let table = &self.tables[set];
        let taken = table
            .lookup("Абонент_Key", &IndexKey::Guid(who))
            .into_iter()
            .filter(|id| Some(*id) != row)
            .filter_map(|id| table.rows.get(&id))
            .filter(|e| slot(&e.vals) == (true, Some(who), Some(date)))
            .count();
        if taken >= limit {
            let message = format!(
                "Превышен лимит: не более {limit} консультаций абонента на {}",
                date.format("%d.%m.%Y")
            );
            return Err(ODataError::handler(
                "ПередЗаписью",
                "Документ.ТелефонныйЗвонок.МодульОбъекта",
                214,
                &message,
            ));
        }
        Ok(())
    }
}

fn register_key(schema: &SetSchema, key: &[&str], vals: &[Val]) -> Vec<IndexKey> {
    key.iter()
        .filter_map(|name| schema.index_of(name))
        .filter_map(|index| vals.get(index).and_then(IndexKey::of))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> WriteContext {
        let now_local = value::parse_date("2026-11-26T10:15:02").unwrap();
        WriteContext {
            now_local,
            now_utc: chrono::Utc::now(),
        }
    }

    fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn create_assigns_identity_and_touches() {
        let mut store = Store::new();
        let body = object(
            json!({"Абонент_Key": "3f9a6c12-a7b4-11f0-9c3e-00155d0a1c07", "ДатаКонсультации": "2026-11-27T11:00:00", "Number": ""}),
        );
        let row = store
            .create(schema::CONSULTATIONS_SET, &body, ctx())
            .unwrap();
        let entity = &store.tables[schema::CONSULTATIONS_SET].rows[&row];
        assert!(entity.json.contains("\"Number\":\"ЦЛ00-000001\""));
        assert!(entity.json.contains("\"DataVersion\":\"AAAAAAAAAAA=\""));
        assert!(
            entity
                .json
                .contains("\"ДатаИзменения\":\"2026-11-26T10:15:02\"")
        );
        store
            .patch(schema::CONSULTATIONS_SET, row, &object(json!({})), ctx())
            .unwrap();
        let entity = &store.tables[schema::CONSULTATIONS_SET].rows[&row];
        assert!(entity.json.contains("\"DataVersion\":\"AAAAAAAAAAE=\""));
    }

    #[test]
    fn register_keys_are_unique() {
        let mut store = Store::new();
        let set =
            schema::set_by_name("InformationRegister_РегистрацияПереносаКонсультации").unwrap();
        let body = object(
            json!({"Period": "2026-11-26T10:31:25", "ДокументОбращения_Key": "5e8c7d14-cab2-11f0-9c3e-00155d0a1c07"}),
        );
        store.create(set, &body, ctx()).unwrap();
        assert_eq!(store.create(set, &body, ctx()).unwrap_err().code, "15");
    }
}
