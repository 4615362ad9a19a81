//! The 1C:ЦЛ simulator: the standard OData interface (`standard.odata`) of the ЦЛ base as
//! far as the middleware uses it — `Catalog_Контрагенты`, `Document_ТелефонныйЗвонок`, the
//! rating and reschedule registers — with 1C's wire formats, query language, write rules,
//! errors and the daily limit, plus the operator actions of onec.md §10 for tests.
//!
//! Served by `crate::server::serve`, so every request is recorded and scripted faults
//! (including "committed, then the answer never came") apply around it.
//!
//! With [`OnecSim::set_webhook`] it also plays the 1C extension the contract expects:
//! every operator action and every REST `PATCH` of a consultation pushes one
//! `consultation.updated` event (format in `events.rs`).

mod error;
mod events;
mod filter;
mod http;
mod schema;
mod store;
mod value;

use crate::faults::Faults;
use crate::server::{Recorded, SimServer, Wiring};
use crate::webhooks::{SimWebhook, SimWebhooks, Webhooks};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use http::OnecState;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use uuid::Uuid;

/// The document attribute the simulator indexes as the middleware's marker (the ticket id
/// `cons_onec` writes into every consultation it creates).
pub const MARKER_FIELD: &str = schema::MARKER_FIELD;

/// The sets the simulator serves, by their 1C names.
pub const CONSULTATIONS: &str = "Document_ТелефонныйЗвонок";
pub const COUNTERPARTIES: &str = "Catalog_Контрагенты";
pub const RESCHEDULES: &str = "InformationRegister_РегистрацияПереносаКонсультации";
pub const RATINGS: &str = "InformationRegister_ОценкаКонсультацийПоЗаявкам";

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct OnecSimConfig {
    /// `127.0.0.1:0` for a free port.
    pub bind: String,
    /// The web-server publication path, e.g. `int/rbd_sl_copy`.
    pub publication: String,
    pub user: String,
    pub password: String,
    /// actix workers.
    pub workers: usize,
}

impl Default for OnecSimConfig {
    fn default() -> Self {
        OnecSimConfig {
            bind: "127.0.0.1:0".to_owned(),
            publication: "int/rbd_sl_copy".to_owned(),
            user: "odata".to_owned(),
            password: "odata-password".to_owned(),
            workers: 2,
        }
    }
}

/// What an operator action or a seed write ran into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnecSimError {
    #[error("no object with this key")]
    NotFound,
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// 1C would refuse this write (the daily limit, a bad value, …).
    #[error("1C refused the write: {status} code {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl From<error::ODataError> for OnecSimError {
    fn from(error: error::ODataError) -> Self {
        if error.status == 404 {
            return OnecSimError::NotFound;
        }
        OnecSimError::Refused {
            status: error.status,
            code: error.code.to_owned(),
            message: error.message.into_owned(),
        }
    }
}

/// A running 1C simulator. Dropping it stops the server.
pub struct OnecSim {
    server: SimServer,
    state: Arc<OnecState>,
    base_url: String,
}

impl std::fmt::Debug for OnecSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnecSim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

async fn handle(request: HttpRequest, body: Bytes, state: web::Data<OnecState>) -> HttpResponse {
    state.respond(&request, &body)
}

/// Percent-encodes the non-ASCII bytes of a path (a Cyrillic publication name).
fn encode_path(path: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_graphic() {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

impl OnecSim {
    /// Starts the simulator on the current tokio runtime.
    pub fn start(config: OnecSimConfig) -> std::io::Result<OnecSim> {
        let state = Arc::new(OnecState::new(
            &config.publication,
            &config.user,
            &config.password,
        ));
        let shared = state.clone();
        let server = crate::server::serve(
            &config.bind,
            config.workers,
            Arc::new(Wiring::default()),
            move |cfg| {
                cfg.app_data(web::Data::from(shared.clone()))
                    .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                    .default_service(web::to(handle));
            },
        )?;
        let base_url = format!("{}{}", server.base_url, encode_path(&state.prefix));
        Ok(OnecSim {
            server,
            state,
            base_url,
        })
    }

    /// `http://127.0.0.1:<port>/<publication>/odata/standard.odata/`, percent-encoded as a
    /// client would send it.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn faults(&self) -> &Faults {
        self.server.faults()
    }

    /// Every request so far (decoded path, raw query, headers, body).
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    pub fn clear_requests(&self) {
        self.server.wiring.clear_requests();
    }

    /// Requests for things real 1C serves but this simulator does not (other entity sets,
    /// `PUT`, navigation, `$expand`, filter functions beyond the supported ones). Tests
    /// keep it at 0 so the simulator never silently stands in for behaviour it lacks.
    pub fn unimplemented_calls(&self) -> usize {
        self.state.unimplemented.load(Ordering::Relaxed)
    }

    /// Stops the server; open (stalled) connections are dropped.
    pub async fn stop(&self) {
        self.server.stop().await;
    }

    // --- state inspection -------------------------------------------------------------

    fn objects(&self, set: usize) -> Vec<serde_json::Value> {
        let store = self.state.read();
        store.tables[set]
            .rows
            .values()
            .filter_map(|e| serde_json::from_str(&format!("{{{}}}", e.json)).ok())
            .collect()
    }

    fn set_index(name: &str) -> Option<usize> {
        schema::set_by_name(name)
    }

    /// All consultations as 1C would serve them (full objects, no envelope).
    pub fn consultations(&self) -> Vec<serde_json::Value> {
        self.objects(schema::CONSULTATIONS_SET)
    }

    pub fn consultation(&self, ref_key: Uuid) -> Option<serde_json::Value> {
        self.object(schema::CONSULTATIONS_SET, ref_key)
    }

    pub fn counterparties(&self) -> Vec<serde_json::Value> {
        self.objects(schema::COUNTERPARTIES_SET)
    }

    pub fn counterparty(&self, ref_key: Uuid) -> Option<serde_json::Value> {
        self.object(schema::COUNTERPARTIES_SET, ref_key)
    }

    /// Records of a register (`RESCHEDULES`, `RATINGS`).
    pub fn register_records(&self, register: &str) -> Vec<serde_json::Value> {
        Self::set_index(register)
            .map(|set| self.objects(set))
            .unwrap_or_default()
    }

    fn object(&self, set: usize, ref_key: Uuid) -> Option<serde_json::Value> {
        let store = self.state.read();
        let table = &store.tables[set];
        let entity = table.rows.get(&table.by_ref(ref_key)?)?;
        serde_json::from_str(&format!("{{{}}}", entity.json)).ok()
    }

    /// How many consultations carry `marker` in `MARKER_FIELD` (deleted-marked included):
    /// more than one means a create was duplicated.
    pub fn consultations_with_marker(&self, marker: &str) -> usize {
        let store = self.state.read();
        store.tables[schema::CONSULTATIONS_SET]
            .lookup(MARKER_FIELD, &value::IndexKey::Str(marker.to_owned()))
            .len()
    }

    pub fn consultation_count(&self) -> usize {
        self.state.read().tables[schema::CONSULTATIONS_SET]
            .rows
            .len()
    }

    pub fn counterparty_count(&self) -> usize {
        self.state.read().tables[schema::COUNTERPARTIES_SET]
            .rows
            .len()
    }

    // --- knobs --------------------------------------------------------------------------

    /// The daily limit of non-deleted consultations per subscriber and day (`None`: off).
    /// Default 3.
    pub fn set_daily_limit(&self, limit: Option<usize>) {
        self.state.write().daily_limit = limit;
    }

    /// IIS request-filtering limits (defaults 2048 bytes of query, 4096 of path); longer
    /// requests get an HTML 404.
    pub fn set_url_limits(&self, max_query: usize, max_path: usize) {
        self.state.max_query.store(max_query, Ordering::Relaxed);
        self.state.max_path.store(max_path, Ordering::Relaxed);
    }

    /// The base's local wall-clock time (Asia/Tashkent) the simulator stamps writes with.
    pub fn now_local(&self) -> NaiveDateTime {
        self.state.now().now_local
    }

    /// Stops the clock at this local time (writes in the same second share
    /// `ДатаИзменения`, as on a busy real base).
    pub fn freeze_clock(&self, local: NaiveDateTime) {
        let mut clock = self
            .state
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clock.frozen = Some(local);
        clock.shift = chrono::Duration::zero();
    }

    /// Moves the clock (frozen or not) by `by`.
    pub fn advance_clock(&self, by: chrono::Duration) {
        let mut clock = self
            .state
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clock.shift += by;
    }

    /// Where `consultation.updated` events go from now on (`None`: nowhere). Events
    /// emitted before are delivered to the target they had.
    pub fn set_webhook(&self, webhook: Option<SimWebhook>) {
        self.state.webhooks.set_target(webhook);
    }

    /// Back to the real time.
    pub fn release_clock(&self) {
        let mut clock = self
            .state
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *clock = http::Clock::default();
    }

    // --- seeding and operator actions (what people do in 1C, no HTTP) -----------------

    fn insert(
        &self,
        set: usize,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, OnecSimError> {
        let fields = body.as_object().ok_or(OnecSimError::NotAnObject)?;
        let ctx = self.state.now();
        let mut store = self.state.write();
        let row = store.create(set, fields, ctx)?;
        let entity = store.tables[set]
            .rows
            .get(&row)
            .ok_or(OnecSimError::NotFound)?;
        serde_json::from_str(&format!("{{{}}}", entity.json)).map_err(|_| OnecSimError::NotAnObject)
    }

    /// Creates a counterparty as if entered in 1C; returns the full object.
    pub fn insert_counterparty(
        &self,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, OnecSimError> {
        self.insert(schema::COUNTERPARTIES_SET, body)
    }

    /// Creates a consultation as if entered in 1C (same rules as a POST); returns the full
    /// object.
    pub fn insert_consultation(
        &self,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, OnecSimError> {
        self.insert(schema::CONSULTATIONS_SET, body)
    }

    /// Changes a consultation the way an operator saving the form would: `edit` gets the
    /// values by property position; the write bumps `DataVersion` and `ДатаИзменения` and
    /// runs the same rules as a PATCH.
    fn operate(
        &self,
        ref_key: Uuid,
        edit: impl FnOnce(&mut Vec<value::Val>, NaiveDateTime),
    ) -> Result<serde_json::Value, OnecSimError> {
        let set = schema::CONSULTATIONS_SET;
        let ctx = self.state.now();
        let mut store = self.state.write();
        let row = store.tables[set]
            .by_ref(ref_key)
            .ok_or(OnecSimError::NotFound)?;
        let mut vals = store.tables[set]
            .rows
            .get(&row)
            .map(|e| e.vals.clone())
            .ok_or(OnecSimError::NotFound)?;
        edit(&mut vals, ctx.now_local);
        store.replace(set, row, vals, ctx)?;
        self.state.consultation_updated(&store, set, row, ctx);
        let entity = store.tables[set]
            .rows
            .get(&row)
            .ok_or(OnecSimError::NotFound)?;
        serde_json::from_str(&format!("{{{}}}", entity.json)).map_err(|_| OnecSimError::NotAnObject)
    }

    fn put(vals: &mut [value::Val], name: &str, val: value::Val) {
        if let Some(index) = schema::CONSULTATIONS.index_of(name) {
            vals[index] = val;
        }
    }

    /// The operator held the consultation: `Конец` = now, `ВидОбращения` =
    /// `КонсультацияИТС`, one `КонсультацииИТС` row, time spent 15 minutes.
    pub fn close_consultation(&self, ref_key: Uuid) -> Result<serde_json::Value, OnecSimError> {
        self.operate(ref_key, |vals, now| {
            use value::Val;
            Self::put(vals, "Конец", Val::Date(now));
            Self::put(vals, "ВидОбращения", Val::Str("КонсультацияИТС".to_owned()));
            Self::put(vals, "Рассмотрено", Val::Bool(true));
            Self::put(
                vals,
                "ЗатраченноеВремя",
                Val::Date(value::EMPTY_DATE + chrono::Duration::minutes(15)),
            );
            if let Some(index) = schema::CONSULTATIONS.index_of("КонсультацииИТС")
                && let Val::Table(rows) = &mut vals[index]
            {
                rows.push(vec![
                    Val::Guid(Uuid::nil()),
                    Val::Guid(Uuid::nil()),
                    Val::Guid(Uuid::nil()),
                    Val::Guid(Uuid::nil()),
                    Val::Bool(false),
                    Val::Str("Вопрос клиента".to_owned()),
                    Val::Str("Ответ консультанта".to_owned()),
                ]);
            }
        })
    }

    /// The operator closed it without a consultation (`ЗакрытоБезКонсультации`, `Конец`).
    pub fn close_without_consultation(
        &self,
        ref_key: Uuid,
    ) -> Result<serde_json::Value, OnecSimError> {
        self.operate(ref_key, |vals, now| {
            Self::put(vals, "ЗакрытоБезКонсультации", value::Val::Bool(true));
            Self::put(vals, "Конец", value::Val::Date(now));
        })
    }

    /// The operator gave it to another consultant (`Менеджер_Key`).
    pub fn reassign_manager(
        &self,
        ref_key: Uuid,
        manager: Uuid,
    ) -> Result<serde_json::Value, OnecSimError> {
        self.operate(ref_key, |vals, _| {
            Self::put(vals, "Менеджер_Key", value::Val::Guid(manager))
        })
    }

    /// The operator moved it to another time (`ДатаКонсультации`, local wall-clock).
    pub fn reschedule_consultation(
        &self,
        ref_key: Uuid,
        at_local: NaiveDateTime,
    ) -> Result<serde_json::Value, OnecSimError> {
        self.operate(ref_key, |vals, _| {
            Self::put(vals, "ДатаКонсультации", value::Val::Date(at_local))
        })
    }

    /// Sets or clears the deletion mark (a cancelled consultation).
    pub fn mark_deleted(
        &self,
        ref_key: Uuid,
        deleted: bool,
    ) -> Result<serde_json::Value, OnecSimError> {
        self.operate(ref_key, |vals, _| {
            Self::put(vals, "DeletionMark", value::Val::Bool(deleted))
        })
    }

    /// Any other edit, given as a PATCH body would be.
    pub fn edit_consultation(
        &self,
        ref_key: Uuid,
        patch: &serde_json::Value,
    ) -> Result<serde_json::Value, OnecSimError> {
        let fields = patch.as_object().ok_or(OnecSimError::NotAnObject)?;
        let set = schema::CONSULTATIONS_SET;
        let ctx = self.state.now();
        let mut store = self.state.write();
        let row = store.tables[set]
            .by_ref(ref_key)
            .ok_or(OnecSimError::NotFound)?;
        store.patch(set, row, fields, ctx)?;
        self.state.consultation_updated(&store, set, row, ctx);
        let entity = store.tables[set]
            .rows
            .get(&row)
            .ok_or(OnecSimError::NotFound)?;
        serde_json::from_str(&format!("{{{}}}", entity.json)).map_err(|_| OnecSimError::NotAnObject)
    }

    /// Physical deletion (the document stops appearing; a read by key answers 404).
    pub fn delete_consultation(&self, ref_key: Uuid) -> bool {
        let set = schema::CONSULTATIONS_SET;
        let mut store = self.state.write();
        let Some(row) = store.tables[set].by_ref(ref_key) else {
            return false;
        };
        store.delete(set, row)
    }
}

impl SimWebhooks for OnecSim {
    fn webhooks(&self) -> &Webhooks {
        &self.state.webhooks
    }
}
