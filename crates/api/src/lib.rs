//! The HTTP API of the consultation middleware (`cons-api`): client login, tickets,
//! webhooks, health, metrics and the OpenAPI document. It writes tickets and their outbox
//! entries and never calls Chatwoot or 1C: the relay does that, from the outbox.

pub mod access;
pub mod auth;
pub mod batching;
mod body;
pub mod config;
pub mod errors;
mod handlers;
pub mod metrics;
pub mod signature;
pub mod state;
pub mod wake;

use crate::config::ApiConfig;
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
pub use handlers::webhooks::WebhookAuth;
use std::net::TcpListener;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Consultation Middleware API", description = "Tickets from the website and the Telegram Mini App, delivered to Chatwoot and 1C:ЦЛ through a transactional outbox."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The one route table, used by `cons-api` and by the in-process tests alike.
fn routes(config: &mut ServiceConfig<'_>) {
    config
        .service(handlers::auth::login)
        .service(handlers::tickets::create_ticket)
        .service(handlers::tickets::list_client_tickets)
        .service(handlers::tickets::ticket_history)
        .service(handlers::tickets::get_ticket)
        .service(handlers::webhooks::chatwoot)
        .service(handlers::webhooks::onec)
        .service(handlers::health::health)
        .service(handlers::health::health_db)
        .service(handlers::health::metrics);
}

/// The OpenAPI document of every route, as registered.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, document) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    with_openapi_route(document)
}

fn with_openapi_route(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::response::ResponseBuilder;
    let operation = OperationBuilder::new()
        .tag("health")
        .summary(Some("This OpenAPI document"))
        .response(
            "200",
            ResponseBuilder::new()
                .description("OpenAPI 3.1 JSON")
                .build(),
        )
        .build();
    document.paths.paths.insert(
        "/api/openapi.json".into(),
        PathItem::new(HttpMethod::Get, operation),
    );
    document
}

/// The application: routes, the OpenAPI document and Swagger UI, error envelopes for
/// unmatched routes and bad path or query parameters, metrics and request tracing.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    cons_telemetry::prometheus();
    let (app, document) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(web::Data::new(state))
        .app_data(
            web::PathConfig::default().error_handler(|_, _| ApiError::NotFound("resource").into()),
        )
        .app_data(
            web::QueryConfig::default().error_handler(|_, _| {
                ApiError::invalid("query", "is not a valid query string").into()
            }),
        )
        .configure(routes)
        .split_for_parts();
    let document = with_openapi_route(document);
    app.service(web::redirect("/docs", "/docs/"))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/api/openapi.json", document))
        .default_service(web::to(|| async {
            HttpResponse::from_error(ApiError::NotFound("route"))
        }))
        .wrap(from_fn(access::cors::cors))
        .wrap(from_fn(metrics::track))
        .wrap(tracing_actix_web::TracingLogger::<RequestSpan>::new())
}

/// The request span: tracing-actix-web's default fields, plus the authenticated caller
/// (a service name; never a token), filled in by the `Caller` extractor.
struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        tracing_actix_web::root_span!(request, caller = tracing::field::Empty)
    }

    fn on_request_end<B: MessageBody>(
        span: tracing::Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// A started server and the port it listens on (useful when bound to port 0).
pub struct Application {
    pub server: Server,
    pub port: u16,
}

/// Checks migrations, builds the pool and binds the listener. The server runs when
/// `server` is awaited; SIGINT and SIGTERM stop it gracefully.
pub async fn build(config: &ApiConfig) -> anyhow::Result<Application> {
    cons_store::migrate::ensure_current(&config.database.url)
        .await
        .context("cannot start")?;
    let pool = cons_store::pool::build(&config.database.url, &config.database.pool)?;
    if config.webhooks.chatwoot.is_empty() && !config.webhooks.chatwoot_allow_unsigned {
        tracing::warn!("CHATWOOT_WEBHOOK_SECRET is empty: /webhook/chatwoot will answer 401");
    }
    if config.service_tokens.is_empty() {
        tracing::warn!("SERVICE_TOKENS is empty: every ticket route will answer 401");
    }
    let access = access::Access::new(&config.access, access::JWKS_REFRESH_INTERVAL)?;
    if let Some(oidc) = &access.oidc {
        // Fetched once at start, so the first login finds the keys; a failure is logged
        // and retried on the first login (the API serves service tokens meanwhile).
        oidc.keys().refresh().await;
    }
    let state = AppState::start(
        pool,
        config.service_tokens.clone(),
        config.intake,
        config.webhooks.clone(),
        access,
    );
    let listener = TcpListener::bind(config.bind)
        .with_context(|| format!("could not bind {}", config.bind))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || app(state.clone()))
        .workers(config.workers)
        .listen(listener)?
        .run();
    tracing::info!(address = %config.bind, port, "cons-api listening");
    Ok(Application { server, port })
}
