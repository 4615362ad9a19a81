//! Ticket routes: create (ticket + outbox in one statement, idempotent by key), read one,
//! list a client's tickets, and a ticket's change history.

use crate::auth::Caller;
use crate::batching::CreateJob;
use crate::body::JsonBody;
use crate::errors::{ApiError, ErrorEnvelope};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use cons_domain::{
    ClientRef, CodeAbonent, Comment, CompanyName, ConsultationType, Email, FieldErrors,
    HistorySource, Importance, Inn, IntakeLimits, Lang, NewClient, NewTicket, PersonName,
    PhoneNumber, Source, SyncState, TicketDraft, TicketStatus, Topic,
};
use cons_store::StoreError;
use cons_store::tickets::{self, CreateOutcome, CreatedTicket, IdempotencyKey, TicketView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

// ---- request ------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicketRequest {
    /// Whom the ticket is for. Required with a service token; implied by a client session.
    client: Option<ClientBlock>,
    ticket: TicketBlock,
    #[schema(value_type = Source)]
    source: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBlock {
    /// An existing client. Without it the client is found by phone, then e-mail, then
    /// INN, or created (then `name` and `phone_number` are required).
    #[schema(value_type = Option<Uuid>)]
    client_id: Option<String>,
    #[schema(example = "Dilnoza Karimova")]
    name: Option<String>,
    /// E.164.
    #[schema(example = "+998901234567")]
    phone_number: Option<String>,
    #[schema(example = "d.karimova@example.uz")]
    email: Option<String>,
    /// 9 digits (organisation) or 14 digits (person).
    #[schema(example = "301234567")]
    org_inn: Option<String>,
    #[schema(example = "10240")]
    code_abonent: Option<String>,
    company_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketBlock {
    #[schema(value_type = ConsultationType)]
    consultation_type: String,
    /// At most 4000 characters.
    comment: Option<String>,
    /// At most 255 characters.
    topic: Option<String>,
    /// Default `ru`.
    #[schema(value_type = Option<Lang>)]
    lang: Option<String>,
    /// RFC 3339 with offset; not in the past, at most 30 days ahead (configurable).
    #[schema(value_type = Option<DateTime<Utc>>)]
    scheduled_at: Option<String>,
    /// 1 (low) to 3 (high).
    #[schema(minimum = 1, maximum = 3)]
    importance: Option<i64>,
}

impl CreateTicketRequest {
    /// Applies every intake rule, collecting all field errors at once.
    fn into_command(
        self,
        caller: &Caller,
        now: DateTime<Utc>,
        limits: &IntakeLimits,
    ) -> Result<NewTicket, ApiError> {
        let mut errors = FieldErrors::new();
        let client = match (caller, self.client) {
            (Caller::Client { client_id }, block) => {
                let named = block.as_ref().and_then(|b| b.client_id.as_deref());
                if named.is_some_and(|named| Uuid::parse_str(named).ok() != Some(*client_id)) {
                    return Err(ApiError::Forbidden);
                }
                Some(ClientRef::Existing(*client_id))
            }
            (Caller::Service { .. }, Some(block)) => block.validate(&mut errors),
            (Caller::Service { .. }, None) => {
                errors.add("client", "is required");
                None
            }
        };
        let ticket = self.ticket.validate(&self.source, now, limits, &mut errors);
        errors
            .into_result(|| {
                Some(NewTicket {
                    client: client?,
                    ticket: ticket?,
                })
            })
            .map_err(ApiError::Validation)
    }
}

impl ClientBlock {
    fn validate(self, errors: &mut FieldErrors) -> Option<ClientRef> {
        let client_id = self.client_id.as_deref().and_then(|raw| {
            errors.check("client.client_id", raw, |raw| {
                Uuid::parse_str(raw).map_err(|_| cons_domain::InvalidValue("must be a UUID"))
            })
        });
        let name = errors.check_present("client.name", self.name.as_deref(), PersonName::parse);
        let phone_number = errors.check_present(
            "client.phone_number",
            self.phone_number.as_deref(),
            PhoneNumber::parse,
        );
        let email = errors.check_present("client.email", self.email.as_deref(), Email::parse);
        let org_inn = errors.check_present("client.org_inn", self.org_inn.as_deref(), Inn::parse);
        let code_abonent = errors.check_present(
            "client.code_abonent",
            self.code_abonent.as_deref(),
            CodeAbonent::parse,
        );
        let company_name = errors.check_present(
            "client.company_name",
            self.company_name.as_deref(),
            CompanyName::parse,
        );
        if let Some(id) = client_id {
            return Some(ClientRef::Existing(id));
        }
        if self.client_id.is_some() {
            return None; // an invalid client_id, already recorded
        }
        // A client we may have to create needs a name, and a phone for Chatwoot and 1C.
        if name.is_none() && !errors.fields().contains_key("client.name") {
            errors.add("client.name", "is required unless client_id is given");
        }
        if phone_number.is_none() && !errors.fields().contains_key("client.phone_number") {
            errors.add(
                "client.phone_number",
                "is required unless client_id is given",
            );
        }
        Some(ClientRef::Match(NewClient {
            name: name?,
            phone_number: phone_number?,
            email,
            org_inn,
            code_abonent,
            company_name,
        }))
    }
}

impl TicketBlock {
    fn validate(
        self,
        source: &str,
        now: DateTime<Utc>,
        limits: &IntakeLimits,
        errors: &mut FieldErrors,
    ) -> Option<TicketDraft> {
        let consultation_type = errors.check(
            "ticket.consultation_type",
            &self.consultation_type,
            ConsultationType::parse,
        );
        let source = errors.check("source", source, Source::parse);
        let lang = match &self.lang {
            Some(raw) => errors.check("ticket.lang", raw, Lang::parse),
            None => Some(Lang::Ru),
        };
        let comment =
            errors.check_present("ticket.comment", self.comment.as_deref(), Comment::parse);
        let topic = errors.check_present("ticket.topic", self.topic.as_deref(), Topic::parse);
        let importance = self
            .importance
            .and_then(|raw| errors.check("ticket.importance", "", |_| Importance::new(raw)));
        let scheduled_at = self.scheduled_at.and_then(|raw| {
            errors.check("ticket.scheduled_at", &raw, |raw| {
                let at = DateTime::parse_from_rfc3339(raw).map_err(|_| {
                    cons_domain::InvalidValue("must be an RFC 3339 time with an offset")
                })?;
                limits.check_scheduled_at(at.to_utc(), now)
            })
        });
        Some(TicketDraft {
            consultation_type: consultation_type?,
            comment,
            topic,
            lang: lang?,
            scheduled_at,
            importance,
            source: source?,
        })
    }
}

/// `Idempotency-Key`: 1 to 255 printable ASCII characters. A structured-field string
/// (`"…"`, as the IETF draft writes it) is accepted too and means its content.
fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or("\u{0}");
    let key = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(raw);
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

// ---- responses ----------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatwootIds {
    pub conversation_id: Option<i64>,
    pub contact_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnecIds {
    /// `Ref_Key` of the 1C document.
    pub ref_key: Option<Uuid>,
    /// 1C document number.
    pub number: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStates {
    #[schema(value_type = SyncState)]
    pub chatwoot: String,
    #[schema(value_type = SyncState)]
    pub onec: String,
}

/// The answer to a create: the ticket as accepted, before any peer has seen it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTicketResponse {
    pub cons_id: Uuid,
    pub client_id: Uuid,
    pub status: TicketStatus,
    pub consultation_type: ConsultationType,
    pub source: Source,
    pub created_at: DateTime<Utc>,
    pub chatwoot: ChatwootIds,
    pub onec: OnecIds,
    pub sync: SyncStates,
}

impl From<&CreatedTicket> for CreatedTicketResponse {
    fn from(created: &CreatedTicket) -> Self {
        let sync = |target| {
            created
                .consultation_type
                .initial_sync(target)
                .as_str()
                .to_owned()
        };
        CreatedTicketResponse {
            cons_id: created.cons_id,
            client_id: created.client_id,
            status: TicketStatus::New,
            consultation_type: created.consultation_type,
            source: created.source,
            created_at: created.created_at,
            chatwoot: ChatwootIds {
                conversation_id: None,
                contact_id: None,
            },
            onec: OnecIds {
                ref_key: None,
                number: None,
            },
            sync: SyncStates {
                chatwoot: sync(cons_domain::Target::Chatwoot),
                onec: sync(cons_domain::Target::Onec),
            },
        }
    }
}

/// A ticket as it is now, with external ids and delivery state filled in as delivery
/// progresses.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketResponse {
    pub cons_id: Uuid,
    pub client_id: Uuid,
    #[schema(value_type = TicketStatus)]
    pub status: String,
    #[schema(value_type = ConsultationType)]
    pub consultation_type: String,
    #[schema(value_type = Source)]
    pub source: String,
    #[schema(value_type = Lang)]
    pub lang: String,
    pub topic: Option<String>,
    pub comment: Option<String>,
    pub importance: Option<i16>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub chatwoot: ChatwootIds,
    pub onec: OnecIds,
    pub sync: SyncStates,
}

impl From<TicketView> for TicketResponse {
    fn from(view: TicketView) -> Self {
        let t = view.ticket;
        TicketResponse {
            cons_id: t.cons_id,
            client_id: t.client_id,
            status: t.status,
            consultation_type: t.consultation_type,
            source: t.source,
            lang: t.lang,
            topic: t.topic,
            comment: t.comment,
            importance: t.importance,
            scheduled_at: t.scheduled_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
            chatwoot: ChatwootIds {
                conversation_id: t.chatwoot_conversation_id,
                contact_id: view.chatwoot_contact_id,
            },
            onec: OnecIds {
                ref_key: t.onec_ref_key,
                number: t.onec_number,
            },
            sync: SyncStates {
                chatwoot: t.sync_chatwoot,
                onec: t.sync_onec,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketPage {
    pub items: Vec<TicketResponse>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    #[schema(value_type = HistorySource)]
    pub source: String,
}

// ---- handlers -----------------------------------------------------------------------

/// Create a ticket. The ticket and one outbox entry per destination are committed
/// together before the answer; Chatwoot and 1C are never called inside the request.
#[utoipa::path(
    tag = "tickets",
    request_body = CreateTicketRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII; the same key and body replay the first answer")),
    responses(
        (status = 201, description = "Accepted (or replayed, with `Idempotent-Replayed: true`)", body = CreatedTicketResponse),
        (status = 400, description = "Malformed JSON", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, description = "A request with this key is still in progress", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope),
        (status = 422, description = "Invalid fields, or the key was used with another body", body = ErrorEnvelope),
        (status = 429, description = "Too many tickets from this client session (`Retry-After`)", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/api/tickets/create")]
pub async fn create_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: JsonBody<CreateTicketRequest>,
) -> Result<HttpResponse, ApiError> {
    if let Caller::Client { client_id } = &caller {
        state
            .access
            .ticket_limit
            .check(*client_id, std::time::Instant::now())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    }
    let key = idempotency_key(&request)?;
    let command = body
        .value
        .into_command(&caller, Utc::now(), &state.intake)?;
    let job = CreateJob {
        command,
        principal: caller.principal(),
        idempotency: key.map(|key| IdempotencyKey {
            key,
            request_sha256: body.sha256,
        }),
    };
    let has_key = job.idempotency.is_some();
    let outcome = match state.creates.create(job).await {
        Ok(outcome) => outcome,
        // Only a request with a key ever waits on a lock: behind the same key in flight.
        Err(StoreError::LockTimeout) if has_key => {
            metrics::counter!("idempotency_conflict_total").increment(1);
            return Err(ApiError::IdempotencyKeyInFlight);
        }
        Err(error) => return Err(error.into()),
    };
    let (created, replayed) = match outcome {
        CreateOutcome::Created(created) => (created, false),
        CreateOutcome::Replayed(created) => {
            metrics::counter!("idempotency_replay_total").increment(1);
            (created, true)
        }
        CreateOutcome::KeyReused => return Err(ApiError::IdempotencyKeyReused),
        CreateOutcome::UnknownClient => {
            return Err(ApiError::invalid(
                "client.client_id",
                "no client has this id",
            ));
        }
    };
    let mut response = HttpResponse::Created();
    response.insert_header(("Location", format!("/api/tickets/{}", created.cons_id)));
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(CreatedTicketResponse::from(&created)))
}

/// A ticket by id. Another client's ticket is 404, as an unknown one is.
#[utoipa::path(
    tag = "tickets",
    params(("cons_id" = Uuid, Path)),
    responses((status = 200, body = TicketResponse), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/api/tickets/{cons_id}")]
pub async fn get_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    cons_id: web::Path<String>,
) -> Result<web::Json<TicketResponse>, ApiError> {
    let view = visible_ticket(&state, &caller, &cons_id).await?;
    Ok(web::Json(view.into()))
}

async fn visible_ticket(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<TicketView, ApiError> {
    let cons_id = Uuid::parse_str(raw_id).map_err(|_| ApiError::NotFound("ticket"))?;
    let mut connection = state.pool.get().await.map_err(StoreError::from)?;
    tickets::get(&mut connection, cons_id)
        .await?
        .filter(|view| caller.may_act_for(view.ticket.client_id))
        .ok_or(ApiError::NotFound("ticket"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100, default 50.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;

/// A client's tickets, newest first, in pages.
#[utoipa::path(
    tag = "tickets",
    params(("client_id" = Uuid, Path), PageQuery),
    responses((status = 200, body = TicketPage), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/api/tickets/clients/{client_id}/tickets")]
pub async fn list_client_tickets(
    state: web::Data<AppState>,
    caller: Caller,
    client_id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<TicketPage>, ApiError> {
    let client_id = Uuid::parse_str(&client_id)
        .ok()
        .filter(|id| caller.may_act_for(*id))
        .ok_or(ApiError::NotFound("client"))?;
    let mut errors = FieldErrors::new();
    let limit = match query.limit.as_deref() {
        None => Some(DEFAULT_PAGE),
        Some(raw) => errors.check("limit", raw, |raw| {
            raw.parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or(cons_domain::InvalidValue("must be a number from 1 to 100"))
        }),
    };
    let before = query
        .cursor
        .as_deref()
        .and_then(|raw| errors.check("cursor", raw, decode_cursor));
    let limit = errors.into_result(|| limit).map_err(ApiError::Validation)?;

    let mut connection = state.pool.get().await.map_err(StoreError::from)?;
    let mut items = tickets::list_for_client(&mut connection, client_id, before, limit + 1).await?;
    if items.is_empty()
        && before.is_none()
        && !tickets::client_exists(&mut connection, client_id).await?
    {
        return Err(ApiError::NotFound("client"));
    }
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|last| URL_SAFE_NO_PAD.encode(last.ticket.cons_id.as_bytes()))
    } else {
        None
    };
    Ok(web::Json(TicketPage {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

fn decode_cursor(raw: &str) -> Result<Uuid, cons_domain::InvalidValue> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or(cons_domain::InvalidValue("is not a cursor this API issued"))
}

/// Every recorded change of a ticket, oldest first.
#[utoipa::path(
    tag = "tickets",
    params(("cons_id" = Uuid, Path)),
    responses((status = 200, body = Vec<HistoryEntry>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/api/tickets/{cons_id}/history")]
pub async fn ticket_history(
    state: web::Data<AppState>,
    caller: Caller,
    cons_id: web::Path<String>,
) -> Result<web::Json<Vec<HistoryEntry>>, ApiError> {
    let view = visible_ticket(&state, &caller, &cons_id).await?;
    let mut connection = state.pool.get().await.map_err(StoreError::from)?;
    let entries = tickets::history(&mut connection, view.ticket.cons_id).await?;
    Ok(web::Json(
        entries
            .into_iter()
            .map(|e| HistoryEntry {
                at: e.at,
                field: e.field,
                old: e.old_value,
                new: e.new_value,
                source: e.source,
            })
            .collect(),
    ))
}
