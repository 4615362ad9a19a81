//! The HTTP face of the Chatwoot simulator: the application-API routes the middleware uses,
//! token and account checks, and Chatwoot's error bodies (`errors.json`). Anything else
//! answers 404 and is counted, so tests notice a client calling what is not simulated.

use super::Shared;
use super::state::{
    Assigned, AssignmentParams, CONTACT_CONVERSATIONS_LIMIT, ContactInboxParams, ContactParams,
    ConversationParams, CustomAttributesParams, FILTER_PAGE_SIZE, FilterParams, LabelsParams,
    MESSAGES_AFTER, MESSAGES_LATEST, MessageParams, Refusal, SimMessage, ToggleParams,
};
use super::wire;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Everything the simulator answers with an error.
#[derive(Debug)]
pub(super) enum ApiError {
    /// No token: devise's "sign in" answer.
    MissingToken,
    InvalidToken,
    /// A valid token used on another account id.
    NotInAccount,
    Refused(Refusal),
    /// The body is not JSON (Rails answers 400 before any controller runs).
    BadJson(String),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken | Self::NotInAccount => {
                StatusCode::UNAUTHORIZED
            }
            Self::Refused(Refusal::NotFound) => StatusCode::NOT_FOUND,
            Self::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadJson(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            Self::MissingToken => {
                serde_json::json!({"errors": ["You need to sign in or sign up before continuing."]})
            }
            Self::InvalidToken => serde_json::json!({"error": "Invalid Access Token"}),
            Self::NotInAccount => {
                serde_json::json!({"error": "You are not authorized to access this account"})
            }
            Self::Refused(Refusal::NotFound) => {
                serde_json::json!({"error": "Resource could not be found"})
            }
            Self::Refused(Refusal::Invalid {
                messages,
                attributes,
            }) => {
                serde_json::json!({"message": messages.join(", "), "attributes": attributes})
            }
            Self::Refused(Refusal::Unprocessable(error)) | Self::BadJson(error) => {
                serde_json::json!({"error": error})
            }
        };
        HttpResponse::build(self.status_code())
            .content_type("application/json; charset=utf-8")
            .body(body.to_string())
    }
}

type Answer = Result<HttpResponse, ApiError>;

fn ok(body: Vec<u8>) -> Answer {
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body))
}

fn shared(req: &HttpRequest) -> Option<&Shared> {
    req.app_data::<web::Data<Shared>>().map(|data| &***data)
}

/// The token check (either spelling of the header, as Rack maps both to one key), then
/// the account in the path.
fn authorize(req: &HttpRequest) -> Result<&Shared, ApiError> {
    let sim = shared(req).ok_or(ApiError::Refused(Refusal::NotFound))?;
    let headers = req.headers();
    let token = headers
        .get("api_access_token")
        .or_else(|| headers.get("api-access-token"))
        .map(|v| v.as_bytes())
        .filter(|v| !v.is_empty());
    match token {
        None => return Err(ApiError::MissingToken),
        Some(token) if token != sim.api_token.as_bytes() => return Err(ApiError::InvalidToken),
        Some(_) => {}
    }
    match req.match_info().get("account_id").map(str::parse::<u64>) {
        Some(Ok(id)) if id == sim.account_id => Ok(sim),
        Some(Ok(_)) => Err(ApiError::NotInAccount),
        _ => Err(ApiError::Refused(Refusal::NotFound)),
    }
}

fn path_id(req: &HttpRequest, name: &str) -> Result<u64, ApiError> {
    req.match_info()
        .get(name)
        .and_then(|raw| raw.parse().ok())
        .ok_or(ApiError::Refused(Refusal::NotFound))
}

/// A JSON body; an empty one is an empty parameter set, as for Rails.
fn params<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadJson(format!("Invalid request body: {e}")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PageQuery {
    page: Option<usize>,
    after: Option<u64>,
    before: Option<u64>,
}

fn query(req: &HttpRequest) -> PageQuery {
    web::Query::<PageQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

async fn create_contact(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let params: ContactParams = params(&body)?;
    let mut account = sim.lock();
    let (id, source_id) = account.create_contact(params)?;
    let contact = account.contact(id).ok_or(Refusal::NotFound)?;
    ok(wire::contact_created(
        &account,
        contact,
        source_id.as_deref(),
    ))
}

async fn show_contact(req: HttpRequest) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let account = sim.lock();
    let contact = account.contact(id).ok_or(Refusal::NotFound)?;
    ok(wire::contact_shown(&account, contact))
}

async fn filter_contacts(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let params: FilterParams = params(&body)?;
    let page = query(&req).page.unwrap_or(1).max(1);
    let account = sim.lock();
    let ids = account.filter_contacts(&params.payload)?;
    ok(wire::contacts_filtered(
        &account,
        &ids,
        page,
        FILTER_PAGE_SIZE,
    ))
}

async fn create_contact_inbox(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let params: ContactInboxParams = params(&body)?;
    let mut account = sim.lock();
    let source_id = account.create_contact_inbox(id, params)?;
    ok(wire::contact_inbox_created(&account, &source_id))
}

async fn contact_conversations(req: HttpRequest) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let account = sim.lock();
    let contact = account.contact(id).ok_or(Refusal::NotFound)?;
    ok(wire::contact_conversations(
        &account,
        contact,
        CONTACT_CONVERSATIONS_LIMIT,
    ))
}

async fn create_conversation(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let params: ConversationParams = params(&body)?;
    let mut account = sim.lock();
    let id = account.create_conversation(params)?;
    let conversation = account.conversation(id).ok_or(Refusal::NotFound)?;
    ok(wire::conversation(&account, conversation))
}

async fn show_conversation(req: HttpRequest) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let account = sim.lock();
    let conversation = account.conversation(id).ok_or(Refusal::NotFound)?;
    ok(wire::conversation(&account, conversation))
}

/// `MessageFinder`: the latest 20; `after` → up to 100 newer; `before` → up to 20 older;
/// both → the range (up to 1000). Always in ascending order.
fn message_page<'a>(messages: &'a [SimMessage], query: &PageQuery) -> &'a [SimMessage] {
    let from = |after: u64| messages.partition_point(|m| m.id <= after);
    let to = |before: u64| messages.partition_point(|m| m.id < before);
    let (start, end) = match (query.after, query.before) {
        (Some(after), Some(before)) => {
            let start = messages.partition_point(|m| m.id < after);
            let end = to(before).max(start);
            (start, end.min(start + 1000))
        }
        (None, Some(before)) => {
            let end = to(before);
            (end.saturating_sub(MESSAGES_LATEST), end)
        }
        (Some(after), None) => {
            let start = from(after);
            (start, (start + MESSAGES_AFTER).min(messages.len()))
        }
        (None, None) => (
            messages.len().saturating_sub(MESSAGES_LATEST),
            messages.len(),
        ),
    };
    messages.get(start..end).unwrap_or_default()
}

async fn list_messages(req: HttpRequest) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let query = query(&req);
    let account = sim.lock();
    let conversation = account.conversation(id).ok_or(Refusal::NotFound)?;
    ok(wire::messages(
        &account,
        conversation,
        message_page(&conversation.messages, &query),
    ))
}

async fn create_message(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let params: MessageParams = params(&body)?;
    let mut account = sim.lock();
    let message_id = account.create_message(id, params)?;
    let message = account.message(message_id).ok_or(Refusal::NotFound)?;
    ok(wire::message(&account, message))
}

async fn custom_attributes(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let params: CustomAttributesParams = params(&body)?;
    let mut account = sim.lock();
    account.replace_custom_attributes(id, params)?;
    let conversation = account.conversation(id).ok_or(Refusal::NotFound)?;
    ok(wire::custom_attributes(conversation))
}

async fn show_labels(req: HttpRequest) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let account = sim.lock();
    let conversation = account.conversation(id).ok_or(Refusal::NotFound)?;
    ok(wire::labels(conversation))
}

async fn replace_labels(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let params: LabelsParams = params(&body)?;
    let mut account = sim.lock();
    account.replace_labels(id, params)?;
    let conversation = account.conversation(id).ok_or(Refusal::NotFound)?;
    ok(wire::labels(conversation))
}

async fn assign(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let params: AssignmentParams = params(&body)?;
    let mut account = sim.lock();
    match account.assign(id, params)? {
        Assigned::Agent(agent_id) => ok(wire::assigned_agent(&account, agent_id)),
        Assigned::Team(team_id) => ok(wire::assigned_team(&account, team_id)),
        Assigned::Nothing => ok(b"null".to_vec()),
    }
}

async fn toggle_status(req: HttpRequest, body: Bytes) -> Answer {
    let sim = authorize(&req)?;
    let id = path_id(&req, "id")?;
    let params: ToggleParams = params(&body)?;
    let mut account = sim.lock();
    let status = account.toggle_status(id, params)?;
    let conversation = account.conversation(id).ok_or(Refusal::NotFound)?;
    ok(wire::toggled(conversation, status))
}

async fn teams(req: HttpRequest) -> Answer {
    let sim = authorize(&req)?;
    let account = sim.lock();
    ok(wire::teams(&account))
}

/// Every route or method the simulator does not implement.
async fn unimplemented(req: HttpRequest) -> HttpResponse {
    if let Some(sim) = shared(&req) {
        sim.unimplemented.fetch_add(1, Ordering::Relaxed);
    }
    tracing::warn!(method = %req.method(), path = req.path(), "chatwoot simulator: endpoint not implemented");
    let body = serde_json::json!({
        "error": "Resource could not be found",
        "simulator": format!("not implemented: {} {}", req.method(), req.path()),
    });
    HttpResponse::NotFound()
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// A resource whose other methods count as not implemented (instead of actix's 405).
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(unimplemented))
}

/// Mounts the simulator on an app (called once per actix worker).
pub(super) fn configure(cfg: &mut web::ServiceConfig, sim: Arc<Shared>) {
    cfg.app_data(web::Data::from(sim))
        .service(
            web::scope("/api/v1/accounts/{account_id:\\d+}")
                .service(resource("/contacts").route(web::post().to(create_contact)))
                // Ids are digits only, so `contacts/search` and friends stay unimplemented
                // instead of being taken for an id.
                .service(resource("/contacts/filter").route(web::post().to(filter_contacts)))
                .service(resource("/contacts/{id:\\d+}").route(web::get().to(show_contact)))
                .service(
                    resource("/contacts/{id:\\d+}/conversations")
                        .route(web::get().to(contact_conversations)),
                )
                .service(
                    resource("/contacts/{id:\\d+}/contact_inboxes")
                        .route(web::post().to(create_contact_inbox)),
                )
                .service(resource("/conversations").route(web::post().to(create_conversation)))
                .service(
                    resource("/conversations/{id:\\d+}").route(web::get().to(show_conversation)),
                )
                .service(
                    resource("/conversations/{id:\\d+}/messages")
                        .route(web::get().to(list_messages))
                        .route(web::post().to(create_message)),
                )
                .service(
                    resource("/conversations/{id:\\d+}/custom_attributes")
                        .route(web::post().to(custom_attributes)),
                )
                .service(
                    resource("/conversations/{id:\\d+}/labels")
                        .route(web::get().to(show_labels))
                        .route(web::post().to(replace_labels)),
                )
                .service(
                    resource("/conversations/{id:\\d+}/assignments").route(web::post().to(assign)),
                )
                .service(
                    resource("/conversations/{id:\\d+}/toggle_status")
                        .route(web::post().to(toggle_status)),
                )
                .service(resource("/teams").route(web::get().to(teams)))
                .default_service(web::to(unimplemented)),
        )
        .default_service(web::to(unimplemented));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatwoot::state::{SimMessageType, SimSender};

    fn messages(n: u64) -> Vec<SimMessage> {
        (1..=n)
            .map(|id| SimMessage {
                id,
                conversation_id: 1,
                content: None,
                message_type: SimMessageType::Incoming,
                content_type: "text".to_owned(),
                content_attributes: serde_json::Map::new(),
                private: false,
                source_id: None,
                status: "sent",
                created_at: 0,
                sender: SimSender::Contact(1),
            })
            .collect()
    }

    fn ids(page: &[SimMessage]) -> Vec<u64> {
        page.iter().map(|m| m.id).collect()
    }

    #[test]
    fn message_pages_follow_message_finder() {
        let all = messages(130);
        let q = |after, before| PageQuery {
            page: None,
            after,
            before,
        };
        assert_eq!(
            ids(message_page(&all, &q(None, None))),
            (111..=130).collect::<Vec<_>>()
        );
        assert_eq!(
            ids(message_page(&all, &q(Some(5), None))),
            (6..=105).collect::<Vec<_>>()
        );
        assert_eq!(
            ids(message_page(&all, &q(None, Some(30)))),
            (10..=29).collect::<Vec<_>>()
        );
        assert_eq!(ids(message_page(&all, &q(Some(5), Some(8)))), vec![5, 6, 7]);
        assert!(message_page(&all, &q(Some(500), None)).is_empty());
    }
}
