//! The HTTP face of the 1C simulator: what IIS and the 1C web extension do before the
//! interface (URL limits, characters IIS refuses, Basic auth), URL routing, query options,
//! format negotiation (JSON only when asked for, Atom-ish XML otherwise) and the response
//! envelopes of onec.md §4.

use crate::onec::error::ODataError;
use crate::onec::filter;
use crate::onec::schema::{self, Keying, Kind, SETS, SetSchema};
use crate::onec::store::{Query, Store, WriteContext, render};
use crate::onec::value::{self, IndexKey, Val};
use crate::server::percent_decode;
use crate::webhooks::{ONEC_HEADERS, Webhooks};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{Duration, NaiveDateTime, Utc};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The base's zone: Asia/Tashkent, UTC+5 all year (no DST since 1992).
pub(crate) const LOCAL_OFFSET_HOURS: i64 = 5;

/// The instant a local wall-clock time of the base stands for.
pub(crate) fn local_to_utc(local: NaiveDateTime) -> chrono::DateTime<Utc> {
    (local - Duration::hours(LOCAL_OFFSET_HOURS)).and_utc()
}

/// The simulator's clock, injectable from tests.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// A fixed local time instead of the real one.
    pub frozen: Option<NaiveDateTime>,
    /// Added to the real or frozen time.
    pub shift: Duration,
}

/// Everything the handler shares.
#[derive(Debug)]
pub(crate) struct OnecState {
    pub store: RwLock<Store>,
    /// `/<publication>/odata/standard.odata/`, decoded.
    pub prefix: String,
    /// `user:password` as UTF-8.
    credentials: Vec<u8>,
    pub unimplemented: AtomicUsize,
    pub clock: Mutex<Clock>,
    pub max_query: AtomicUsize,
    pub max_path: AtomicUsize,
    /// The push of the 1C extension (`consultation.updated`), when configured.
    pub webhooks: Webhooks,
}

impl OnecState {
    pub(crate) fn new(publication: &str, user: &str, password: &str) -> Self {
        let publication = publication.trim_matches('/');
        let prefix = if publication.is_empty() {
            "/odata/standard.odata/".to_owned()
        } else {
            format!("/{publication}/odata/standard.odata/")
        };
        OnecState {
            store: RwLock::new(Store::new()),
            prefix,
            credentials: format!("{user}:{password}").into_bytes(),
            unimplemented: AtomicUsize::new(0),
            clock: Mutex::new(Clock::default()),
            // IIS request filtering defaults (onec.md §2.2)
            max_query: AtomicUsize::new(2048),
            max_path: AtomicUsize::new(4096),
            webhooks: Webhooks::new(ONEC_HEADERS),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The base's local wall-clock time now, whole seconds.
    pub(crate) fn now(&self) -> WriteContext {
        let clock = self
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let real_local = Utc::now().naive_utc() + Duration::hours(LOCAL_OFFSET_HOURS);
        let local = clock.frozen.unwrap_or(real_local) + clock.shift;
        let local = local.with_nanosecond_zero();
        WriteContext {
            now_local: local,
            now_utc: local_to_utc(local),
        }
    }

    fn authorized(&self, request: &HttpRequest) -> bool {
        let Some(header) = request.headers().get("authorization") else {
            return false;
        };
        let header = header.as_bytes();
        if header.len() < 6 || !header[..6].eq_ignore_ascii_case(b"basic ") {
            return false;
        }
        base64::engine::general_purpose::STANDARD
            .decode(header[6..].trim_ascii())
            .is_ok_and(|decoded| decoded == self.credentials)
    }

    /// Answers one request (recording and faults are applied around this by
    /// `crate::server`).
    pub(crate) fn respond(&self, request: &HttpRequest, body: &Bytes) -> HttpResponse {
        let raw_path = request.path();
        let raw_query = request.query_string();
        if raw_query.len() > self.max_query.load(Ordering::Relaxed)
            || raw_path.len() > self.max_path.load(Ordering::Relaxed)
        {
            return iis_404();
        }
        // IIS refuses `+` in the path (double-escaping filter) and never passes `?` on;
        // it turns `\` into `/` and refuses control characters (onec.md §2.1).
        let path = percent_decode(raw_path);
        if path.contains('+') || path.contains('?') {
            return iis_404();
        }
        if path.chars().any(char::is_control) {
            return plain(
                StatusCode::BAD_REQUEST,
                "text/html",
                "<html><body><h1>Bad Request</h1></body></html>",
            );
        }
        let path = path.replace('\\', "/");
        let Some(rest) = path.strip_prefix(&self.prefix) else {
            return iis_404();
        };
        if !self.authorized(request) {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Basic realm=\"1C:Enterprise\""))
                .content_type("text/html")
                .body("<html><body><h1>401 Unauthorized</h1></body></html>");
        }
        let options = match Options::parse(raw_query, request) {
            Ok(options) => options,
            Err((error, json)) => return self.error(error, json),
        };
        let json = options.json;
        let base = format!("http://{}{}", request.connection_info().host(), self.prefix);
        let result = self.route(request.method().as_str(), rest, &options, body, &base);
        match result {
            Ok(response) => response,
            Err(error) => self.error(error, json),
        }
    }

    fn error(&self, error: ODataError, json: bool) -> HttpResponse {
        if error.unimplemented {
            self.unimplemented.fetch_add(1, Ordering::Relaxed);
        }
        let status =
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if json {
            json_response(status, error.to_json())
        } else {
            plain(status, "application/xml;charset=utf-8", error.to_xml())
        }
    }

    fn route(
        &self,
        method: &str,
        rest: &str,
        options: &Options,
        body: &Bytes,
        base: &str,
    ) -> Result<HttpResponse, ODataError> {
        if rest.is_empty() {
            return match method {
                "GET" => Ok(self.service_document(options.json, base)),
                _ => Err(ODataError::method_not_allowed()),
            };
        }
        if rest == "$metadata" {
            return match method {
                "GET" => Ok(plain(
                    StatusCode::OK,
                    "application/xml;charset=utf-8",
                    metadata(),
                )),
                _ => Err(ODataError::method_not_allowed()),
            };
        }
        let name_end = rest.find(['(', '/']).unwrap_or(rest.len());
        let (name, tail) = rest.split_at(name_end);
        let Some(set) = schema::set_by_name(name) else {
            // any other entity set, tabular-part set or register exists in the real base
            return Err(ODataError::unknown_set(name).unimplemented());
        };
        let schema = SETS[set];
        if tail.is_empty() {
            return match method {
                "GET" => self.list(set, options, base),
                "POST" => self.create(set, options, body, base),
                _ => Err(ODataError::method_not_allowed()),
            };
        }
        if tail == "/$count" {
            return match method {
                "GET" => self.count(set, options),
                _ => Err(ODataError::method_not_allowed()),
            };
        }
        let Some(after_open) = tail.strip_prefix('(') else {
            return Err(ODataError::endpoint_not_implemented(rest));
        };
        let Some(close) = after_open.rfind(')') else {
            return Err(ODataError::bad_key());
        };
        let (key_text, action) = (&after_open[..close], &after_open[close + 1..]);
        let key = parse_key(schema, key_text)?;
        match (method, action) {
            ("GET", "") => self.get(set, &key, options, base),
            ("PATCH", "") => self.patch(set, &key, options, body, base),
            ("DELETE", "") => self.delete(set, &key),
            ("POST", "/Post" | "/Post()" | "/Unpost" | "/Unpost()")
                if schema.name.starts_with("Document_") =>
            {
                self.post_document(set, &key, action.starts_with("/Post"))
            }
            ("POST", "") => Err(ODataError::method_not_allowed()),
            // PUT, navigation "through the dot", other actions: real, not simulated
            _ => Err(ODataError::endpoint_not_implemented(rest)),
        }
    }

    fn service_document(&self, json: bool, base: &str) -> HttpResponse {
        if !json {
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<service xmlns=\"http://www.w3.org/2007/app\" xml:base=\"{}\"><workspace>",
                value::xml_escape(base)
            );
            for set in SETS {
                let _ = write!(
                    xml,
                    "<collection href=\"{0}\"><title>{0}</title></collection>",
                    set.name
                );
            }
            xml.push_str("</workspace></service>");
            return plain(StatusCode::OK, "application/xml;charset=utf-8", xml);
        }
        let mut out = String::from("{\"odata.metadata\":");
        value::push_json_str(&mut out, &format!("{base}$metadata"));
        out.push_str(",\"value\":[");
        for (index, set) in SETS.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"name\":\"{0}\",\"url\":\"{0}\"}}", set.name);
        }
        out.push_str("]}");
        json_response(StatusCode::OK, out)
    }

    fn query(&self, schema: &'static SetSchema, options: &Options) -> Result<Query, ODataError> {
        let query = Query {
            filter: options
                .filter
                .as_deref()
                .map(|f| filter::parse(schema, f))
                .transpose()?,
            select: options
                .select
                .as_deref()
                .map(|s| parse_select(schema, s))
                .transpose()?,
            order_by: options
                .order_by
                .as_deref()
                .map(|o| parse_order_by(schema, o))
                .transpose()?
                .unwrap_or_default(),
            top: options.top,
            skip: options.skip.unwrap_or(0),
            inline_count: options.inline_count,
        };
        if options.expand {
            return Err(ODataError::option("$expand").unimplemented());
        }
        Ok(query)
    }

    fn list(&self, set: usize, options: &Options, base: &str) -> Result<HttpResponse, ODataError> {
        let schema = SETS[set];
        let query = self.query(schema, options)?;
        let store = self.read();
        let table = &store.tables[set];
        let (entities, count) = table.run(&query);
        if !options.json {
            let xml = atom_feed(schema, entities.iter().map(|e| e.vals.as_slice()), base);
            return Ok(plain(
                StatusCode::OK,
                "application/atom+xml;type=feed;charset=utf-8",
                xml,
            ));
        }
        let size: usize = entities.iter().map(|e| e.json.len() + 3).sum();
        let mut out = String::with_capacity(size + 128);
        out.push_str("{\"odata.metadata\":");
        value::push_json_str(&mut out, &format!("{base}$metadata#{}", schema.name));
        if let Some(count) = count {
            let _ = write!(out, ",\"odata.count\":\"{count}\"");
        }
        out.push_str(",\"value\":[");
        for (index, entity) in entities.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push('{');
            match &query.select {
                Some(mask) => out.push_str(&render(schema, &entity.vals, Some(mask))),
                None => out.push_str(&entity.json),
            }
            out.push('}');
        }
        out.push_str("]}");
        drop(store);
        Ok(json_response(StatusCode::OK, out))
    }

    fn count(&self, set: usize, options: &Options) -> Result<HttpResponse, ODataError> {
        let schema = SETS[set];
        let query = Query {
            filter: options
                .filter
                .as_deref()
                .map(|f| filter::parse(schema, f))
                .transpose()?,
            inline_count: true,
            ..Query::default()
        };
        let store = self.read();
        let (_, count) = store.tables[set].run(&query);
        Ok(plain(
            StatusCode::OK,
            "text/plain;charset=utf-8",
            count.unwrap_or(0).to_string(),
        ))
    }

    fn find(store: &Store, set: usize, key: &Key) -> Result<u64, ODataError> {
        let table = &store.tables[set];
        let row = match key {
            Key::Ref(guid) => table.by_ref(*guid),
            Key::Register(key) => table.by_register_key(key),
        };
        row.ok_or_else(|| ODataError::not_found(table.schema.short))
    }

    fn element(
        &self,
        store: &Store,
        set: usize,
        row: u64,
        select: Option<&[bool]>,
        json: bool,
        base: &str,
    ) -> String {
        let schema = SETS[set];
        let Some(entity) = store.tables[set].rows.get(&row) else {
            return String::new();
        };
        if !json {
            return atom_entry(schema, &entity.vals, base);
        }
        let mut out = String::with_capacity(entity.json.len() + 128);
        out.push_str("{\"odata.metadata\":");
        value::push_json_str(
            &mut out,
            &format!("{base}$metadata#{}/@Element", schema.name),
        );
        out.push(',');
        match select {
            Some(mask) => out.push_str(&render(schema, &entity.vals, Some(mask))),
            None => out.push_str(&entity.json),
        }
        out.push('}');
        out
    }

    fn entity_response(&self, status: StatusCode, body: String, json: bool) -> HttpResponse {
        if json {
            json_response(status, body)
        } else {
            plain(
                status,
                "application/atom+xml;type=entry;charset=utf-8",
                body,
            )
        }
    }

    fn get(
        &self,
        set: usize,
        key: &Key,
        options: &Options,
        base: &str,
    ) -> Result<HttpResponse, ODataError> {
        let schema = SETS[set];
        let select = options
            .select
            .as_deref()
            .map(|s| parse_select(schema, s))
            .transpose()?;
        let store = self.read();
        let row = Self::find(&store, set, key)?;
        let body = self.element(&store, set, row, select.as_deref(), options.json, base);
        drop(store);
        Ok(self.entity_response(StatusCode::OK, body, options.json))
    }

    fn create(
        &self,
        set: usize,
        options: &Options,
        body: &Bytes,
        base: &str,
    ) -> Result<HttpResponse, ODataError> {
        let schema = SETS[set];
        let fields = json_object(body)?;
        let ctx = self.now();
        let mut store = self.write();
        let row = store.create(set, &fields, ctx)?;
        let response_body = self.element(&store, set, row, None, options.json, base);
        let ref_key = store.tables[set]
            .rows
            .get(&row)
            .and_then(|e| e.vals.first())
            .and_then(Val::as_guid);
        drop(store);
        if !schema.is_object() {
            // register records: 200 observed on a real base (onec.md §4)
            return Ok(self.entity_response(StatusCode::OK, response_body, options.json));
        }
        let mut response = self.entity_response(StatusCode::CREATED, response_body, options.json);
        if let Some(ref_key) = ref_key {
            // raw UTF-8 bytes, not percent-encoded, as 1C sends it (onec.md §4)
            let location = format!("{base}{}(guid'{ref_key}')", schema.name);
            if let Ok(value) = HeaderValue::from_bytes(location.as_bytes()) {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::LOCATION, value);
            }
        }
        Ok(response)
    }

    fn patch(
        &self,
        set: usize,
        key: &Key,
        options: &Options,
        body: &Bytes,
        base: &str,
    ) -> Result<HttpResponse, ODataError> {
        let fields = json_object(body)?;
        let ctx = self.now();
        let mut store = self.write();
        let row = Self::find(&store, set, key)?;
        store.patch(set, row, &fields, ctx)?;
        self.consultation_updated(&store, set, row, ctx);
        let response_body = self.element(&store, set, row, None, options.json, base);
        drop(store);
        Ok(self.entity_response(StatusCode::OK, response_body, options.json))
    }

    fn delete(&self, set: usize, key: &Key) -> Result<HttpResponse, ODataError> {
        let mut store = self.write();
        let row = Self::find(&store, set, key)?;
        store.delete(set, row);
        Ok(HttpResponse::NoContent().finish())
    }

    fn post_document(&self, set: usize, key: &Key, post: bool) -> Result<HttpResponse, ODataError> {
        let ctx = self.now();
        let mut store = self.write();
        let row = Self::find(&store, set, key)?;
        let schema = SETS[set];
        let mut vals = store.tables[set]
            .rows
            .get(&row)
            .map(|e| e.vals.clone())
            .ok_or_else(ODataError::internal)?;
        if let Some(posted) = schema.index_of("Posted") {
            vals[posted] = Val::Bool(post);
        }
        store.replace(set, row, vals, ctx)?;
        Ok(HttpResponse::Ok()
            .insert_header(("DataServiceVersion", "3.0"))
            .finish())
    }
}

trait NanosecondZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl NanosecondZero for NaiveDateTime {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike as _;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

/// The key of one addressed object or record.
#[derive(Debug)]
pub(crate) enum Key {
    Ref(uuid::Uuid),
    Register(Vec<IndexKey>),
}

/// `guid'…'` for objects; `Name=value,…` with every key field for registers (onec.md §2).
fn parse_key(schema: &SetSchema, text: &str) -> Result<Key, ODataError> {
    match &schema.keying {
        Keying::Object { .. } => {
            let guid = text
                .strip_prefix("guid'")
                .and_then(|t| t.strip_suffix('\''))
                .and_then(value::parse_guid)
                .ok_or_else(ODataError::bad_key)?;
            Ok(Key::Ref(guid))
        }
        Keying::Register { key } => {
            let mut values = Vec::with_capacity(key.len());
            let parts = split_outside_quotes(text);
            for name in *key {
                let part = parts
                    .iter()
                    .find_map(|p| {
                        p.split_once('=')
                            .filter(|(n, _)| n.trim() == *name)
                            .map(|(_, v)| v.trim())
                    })
                    .ok_or_else(|| {
                        ODataError::new(400, "7", format!("Не указан элемент ключа {name}"))
                    })?;
                let prop = schema
                    .index_of(name)
                    .map(|i| &schema.props[i])
                    .ok_or_else(ODataError::internal)?;
                let parsed = match prop.kind {
                    Kind::Date => part
                        .strip_prefix("datetime'")
                        .and_then(|t| t.strip_suffix('\''))
                        .and_then(value::parse_date)
                        .map(IndexKey::Date),
                    Kind::Guid => part
                        .strip_prefix("guid'")
                        .and_then(|t| t.strip_suffix('\''))
                        .and_then(value::parse_guid)
                        .map(IndexKey::Guid),
                    Kind::Int32 | Kind::Int64 => part.parse().ok().map(IndexKey::Int),
                    Kind::Str(_) | Kind::Enum(_) => part
                        .strip_prefix('\'')
                        .and_then(|t| t.strip_suffix('\''))
                        .map(|t| IndexKey::Str(t.replace("''", "'"))),
                    Kind::Bool => part.parse().ok().map(IndexKey::Bool),
                    Kind::Version | Kind::Table(_) => None,
                };
                values.push(parsed.ok_or_else(ODataError::bad_key)?);
            }
            Ok(Key::Register(values))
        }
    }
}

fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `$select`: a comma list (spaces allowed), `*` all, `**` all but tabular parts; an
/// unknown name is 400 code 6 (onec.md §6.2).
fn parse_select(schema: &SetSchema, text: &str) -> Result<Vec<bool>, ODataError> {
    let mut mask = vec![false; schema.props.len()];
    for name in text.split(',').map(str::trim) {
        match name {
            "" => return Err(ODataError::option("$select")),
            "*" => mask.iter_mut().for_each(|m| *m = true),
            "**" => {
                for (slot, prop) in mask.iter_mut().zip(schema.props) {
                    if !matches!(prop.kind, Kind::Table(_)) {
                        *slot = true;
                    }
                }
            }
            _ if name.contains('/') || name.ends_with("____Presentation") => {
                // row columns and presentations exist in real 1C
                return Err(ODataError::option("$select").unimplemented());
            }
            _ => match schema.index_of(name) {
                Some(index) => mask[index] = true,
                None => return Err(ODataError::segment(name)),
            },
        }
    }
    Ok(mask)
}

/// `$orderby=Prop1 asc, Prop2 desc` (direction optional).
fn parse_order_by(schema: &SetSchema, text: &str) -> Result<Vec<(usize, bool)>, ODataError> {
    let mut keys = Vec::new();
    for item in text.split(',') {
        let mut words = item.split_whitespace();
        let name = words.next().ok_or_else(|| ODataError::option("$orderby"))?;
        let descending = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(ODataError::option("$orderby")),
        };
        if words.next().is_some() {
            return Err(ODataError::option("$orderby"));
        }
        if name.contains('/') {
            return Err(ODataError::option("$orderby").unimplemented());
        }
        let index = schema
            .index_of(name)
            .ok_or_else(|| ODataError::segment(name))?;
        if matches!(schema.props[index].kind, Kind::Table(_)) {
            return Err(ODataError::option("$orderby"));
        }
        keys.push((index, descending));
    }
    Ok(keys)
}

/// The query options of one request.
#[derive(Debug, Default)]
pub(crate) struct Options {
    pub json: bool,
    pub filter: Option<String>,
    pub select: Option<String>,
    pub order_by: Option<String>,
    pub top: Option<usize>,
    pub skip: Option<usize>,
    pub inline_count: bool,
    pub expand: bool,
}

impl Options {
    /// Splits the raw query on `&` and `=` and percent-decodes names and values as UTF-8,
    /// keeping `+` literal (so form-encoding clients fail as on the real platform).
    fn parse(raw: &str, request: &HttpRequest) -> Result<Options, (ODataError, bool)> {
        let accept_json = request
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        let mut options = Options {
            json: accept_json,
            ..Options::default()
        };
        let mut failure = None;
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (percent_decode(name), percent_decode(value));
            let number = |option: &str| {
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| ODataError::option(option))
            };
            let outcome = match name.as_str() {
                "$format" => {
                    if value == "json" || value.starts_with("application/json") {
                        options.json = true;
                        Ok(())
                    } else if matches!(
                        value.as_str(),
                        "xml" | "atom" | "application/atom+xml" | "application/xml"
                    ) {
                        options.json = false;
                        Ok(())
                    } else {
                        Err(ODataError::new(400, "3", "Представление не поддерживается"))
                    }
                }
                "$filter" => {
                    options.filter = Some(value);
                    Ok(())
                }
                "$select" => {
                    options.select = Some(value);
                    Ok(())
                }
                "$orderby" => {
                    options.order_by = Some(value);
                    Ok(())
                }
                "$top" => number("$top").map(|n| options.top = Some(n)),
                "$skip" => number("$skip").map(|n| options.skip = Some(n)),
                "$inlinecount" => match value.as_str() {
                    "allpages" => {
                        options.inline_count = true;
                        Ok(())
                    }
                    "none" => Ok(()),
                    _ => Err(ODataError::option("$inlinecount")),
                },
                "$expand" => {
                    options.expand = true;
                    Ok(())
                }
                // no row-level security in the simulator: nothing to hide
                "allowedOnly" | "$allowedOnly" | "PostingModeOperational" => Ok(()),
                other if other.starts_with('$') => Err(ODataError::option(other)),
                // 1C ignores parameters it does not know
                _ => Ok(()),
            };
            if let Err(error) = outcome {
                failure.get_or_insert(error);
            }
        }
        match failure {
            Some(error) => Err((error, options.json)),
            None => Ok(options),
        }
    }
}

fn json_object(body: &Bytes) -> Result<serde_json::Map<String, serde_json::Value>, ODataError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ODataError::internal()),
        Err(_) => Err(ODataError::broken_json()),
    }
}

fn json_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Content-Type", "application/json;charset=utf-8"))
        .insert_header(("DataServiceVersion", "3.0"))
        .body(body)
}

fn plain(status: StatusCode, content_type: &str, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Content-Type", content_type.to_owned()))
        .insert_header(("DataServiceVersion", "3.0"))
        .body(body.into())
}

/// IIS's own 404 (URL too long, characters its filters refuse, no such publication): an
/// HTML page, not an `odata.error` (onec.md §2.2).
fn iis_404() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html")
        .body("<!DOCTYPE html><html><head><title>404 - File or directory not found.</title></head><body><h2>404 - File or directory not found.</h2></body></html>")
}

fn xml_text(val: &Val) -> String {
    match val {
        Val::Str(s) => value::xml_escape(s),
        Val::Int(i) => i.to_string(),
        Val::Bool(b) => b.to_string(),
        Val::Date(d) => value::format_date(d),
        Val::Guid(g) => g.to_string(),
        Val::Version(v) => value::data_version(*v),
        // Atom mode exists so that clients forgetting JSON fail; rows are not rendered
        Val::Table(rows) => format!("{} rows", rows.len()),
    }
}

fn atom_properties(schema: &SetSchema, vals: &[Val]) -> String {
    let mut out = String::from("<m:properties>");
    for (prop, val) in schema.props.iter().zip(vals) {
        let _ = write!(out, "<d:{0}>{1}</d:{0}>", prop.name, xml_text(val));
    }
    out.push_str("</m:properties>");
    out
}

const ATOM_NAMESPACES: &str = "xmlns=\"http://www.w3.org/2005/Atom\" xmlns:d=\"http://schemas.microsoft.com/ado/2007/08/dataservices\" xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\"";

fn atom_entry(schema: &SetSchema, vals: &[Val], base: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<entry {ATOM_NAMESPACES} xml:base=\"{}\"><category term=\"StandardODATA.{}\"/><content type=\"application/xml\">{}</content></entry>",
        value::xml_escape(base),
        schema.name,
        atom_properties(schema, vals)
    )
}

fn atom_feed<'a>(schema: &SetSchema, rows: impl Iterator<Item = &'a [Val]>, base: &str) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed {ATOM_NAMESPACES} xml:base=\"{}\"><title type=\"text\">{}</title>",
        value::xml_escape(base),
        schema.name
    );
    for vals in rows {
        let _ = write!(
            out,
            "<entry><content type=\"application/xml\">{}</content></entry>",
            atom_properties(schema, vals)
        );
    }
    out.push_str("</feed>");
    out
}

/// A CSDL document for the simulated sets (XML only, as in 1C).
fn metadata() -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edmx:Edmx xmlns:edmx=\"http://schemas.microsoft.com/ado/2007/06/edmx\" Version=\"1.0\"><edmx:DataServices xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\" m:DataServiceVersion=\"3.0\"><Schema xmlns=\"http://schemas.microsoft.com/ado/2009/11/edm\" Namespace=\"StandardODATA\">",
    );
    for set in SETS {
        let _ = write!(out, "<EntityType Name=\"{}\"><Key>", set.name);
        match &set.keying {
            Keying::Object { .. } => out.push_str("<PropertyRef Name=\"Ref_Key\"/>"),
            Keying::Register { key } => {
                for name in *key {
                    let _ = write!(out, "<PropertyRef Name=\"{name}\"/>");
                }
            }
        }
        out.push_str("</Key>");
        for prop in set.props {
            match prop.kind {
                Kind::Table(_) => {
                    let _ = write!(
                        out,
                        "<Property Name=\"{0}\" Type=\"Collection(StandardODATA.{1}_{0}_RowType)\" Nullable=\"false\"/>",
                        prop.name, set.name
                    );
                }
                kind => {
                    let _ = write!(
                        out,
                        "<Property Name=\"{}\" Type=\"{}\" Nullable=\"true\"/>",
                        prop.name,
                        kind.edm()
                    );
                }
            }
        }
        out.push_str("</EntityType>");
    }
    out.push_str("<EntityContainer Name=\"EnterpriseV8\" m:IsDefaultEntityContainer=\"true\">");
    for set in SETS {
        let _ = write!(
            out,
            "<EntitySet Name=\"{0}\" EntityType=\"StandardODATA.{0}\"/>",
            set.name
        );
    }
    out.push_str("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    out
}
