//! The push of a 1C extension (contract, "Webhooks": `POST /webhook/1c_cl`), which stock
//! 1C does not have: after every write to a consultation (an operator action of
//! [`super::OnecSim`] or a REST `PATCH`) one event, sent like Chatwoot's webhooks (see
//! [`crate::webhooks`]) with `X-Timestamp: <unix seconds>` and `X-Signature: sha256=<hex
//! HMAC-SHA256(secret, timestamp + "." + raw body)>` when a secret is set:
//!
//! ```json
//! {"event_id": "<fresh UUID per event; a duplicate delivery repeats it>",
//!  "event": "consultation.updated",
//!  "occurred_at": "2026-11-26T05:15:02Z",
//!  "data": {
//!    "ref_key": "<Ref_Key>",
//!    "number": "ЦЛ00-000001",
//!    "status_1c": "КонсультацияИТС",        // ВидОбращения, "" when empty
//!    "end": "2026-11-26T05:15:02Z",         // Конец, null when empty
//!    "closed_without_consultation": false,  // ЗакрытоБезКонсультации
//!    "deletion_mark": false,                // DeletionMark
//!    "manager_key": "<uuid>",               // Менеджер_Key, null when empty
//!    "consultation_date": "2026-11-27T06:00:00Z", // ДатаКонсультации, null when empty
//!    "date_changed": "2026-11-26T05:15:02Z",      // ДатаИзменения
//!    "data_version": "AAAAAAAAAAE=",        // DataVersion, as OData serves it
//!    "marker": "cons:<uuid>"}}              // АбонентПредставление (our marker)
//! ```
//!
//! Times are UTC (RFC 3339, whole seconds), converted from the base's local wall-clock
//! time; `occurred_at` is the time of the write. The data is the document as that write
//! left it, so a delayed delivery carries an older state.

use super::http::{OnecState, local_to_utc};
use super::schema::{self, CONSULTATIONS, MARKER_FIELD};
use super::store::{Store, WriteContext};
use super::value::{self, Val};
use actix_web::web::Bytes;
use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serialize;
use uuid::Uuid;

pub(crate) const CONSULTATION_UPDATED: &str = "consultation.updated";

#[derive(Serialize)]
struct Event<'a> {
    event_id: String,
    event: &'static str,
    occurred_at: String,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    ref_key: Option<Uuid>,
    number: &'a str,
    status_1c: &'a str,
    end: Option<String>,
    closed_without_consultation: bool,
    deletion_mark: bool,
    manager_key: Option<Uuid>,
    consultation_date: Option<String>,
    date_changed: Option<String>,
    data_version: String,
    marker: &'a str,
}

fn rfc3339(local: NaiveDateTime) -> String {
    local_to_utc(local).to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl<'a> Data<'a> {
    fn of(vals: &'a [Val]) -> Self {
        let val = |name: &str| CONSULTATIONS.index_of(name).and_then(|i| vals.get(i));
        let text = |name: &str| val(name).and_then(Val::as_str).unwrap_or_default();
        let flag = |name: &str| val(name).and_then(Val::as_bool).unwrap_or(false);
        let time = |name: &str| {
            val(name)
                .and_then(Val::as_date)
                .filter(|d| *d != value::EMPTY_DATE)
                .map(rfc3339)
        };
        let data_version = match val("DataVersion") {
            Some(Val::Version(counter)) => value::data_version(*counter),
            _ => String::new(),
        };
        Self {
            ref_key: val("Ref_Key").and_then(Val::as_guid),
            number: text("Number"),
            status_1c: text("ВидОбращения"),
            end: time("Конец"),
            closed_without_consultation: flag("ЗакрытоБезКонсультации"),
            deletion_mark: flag("DeletionMark"),
            manager_key: val("Менеджер_Key")
                .and_then(Val::as_guid)
                .filter(|g| !g.is_nil()),
            consultation_date: time("ДатаКонсультации"),
            date_changed: time("ДатаИзменения"),
            data_version,
            marker: text(MARKER_FIELD),
        }
    }
}

impl OnecState {
    /// After a write to `row` of `set`: the `consultation.updated` event, when it is a
    /// consultation and a webhook is configured. Called under the store's write lock, so
    /// events are numbered in the order of the writes.
    pub(crate) fn consultation_updated(
        &self,
        store: &Store,
        set: usize,
        row: u64,
        ctx: WriteContext,
    ) {
        if set != schema::CONSULTATIONS_SET || !self.webhooks.is_on() {
            return;
        }
        let Some(entity) = store.tables[set].rows.get(&row) else {
            return;
        };
        let data = Data::of(&entity.vals);
        let subject = data.ref_key.map(|k| k.to_string()).unwrap_or_default();
        let event = Event {
            event_id: Uuid::new_v4().to_string(),
            event: CONSULTATION_UPDATED,
            occurred_at: ctx.now_utc.to_rfc3339_opts(SecondsFormat::Secs, true),
            data,
        };
        // Plain strings and numbers: serialising cannot fail.
        let Ok(body) = serde_json::to_vec(&event) else {
            return;
        };
        self.webhooks
            .emit(CONSULTATION_UPDATED, subject, Bytes::from(body));
    }
}
