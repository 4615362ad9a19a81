//! `POST /api/auth/login`: exchanges an OpenID Connect ID token or Telegram Mini App
//! initData for a short-lived session token of the client the identity is bound to
//! (created on its first login). Anything not verified is a plain 401; why is logged.

use crate::access::oidc::IdClaims;
use crate::access::rate_limit::client_ip;
use crate::access::telegram::TelegramUser;
use crate::access::{Access, Refusal};
use crate::body::JsonBody;
use crate::errors::{ApiError, ErrorEnvelope};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, post, web};
use cons_domain::{Email, PersonName, PhoneNumber};
use cons_store::StoreError;
use cons_store::identities::{self, Identity, Profile};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use utoipa::ToSchema;
use uuid::Uuid;

/// The issuer under which Telegram users are bound to clients.
const TELEGRAM_ISSUER: &str = "telegram";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// `oidc` (with `id_token`) or `telegram` (with `init_data`).
    #[schema(example = "telegram")]
    provider: String,
    /// The ID token the website got from the identity provider.
    id_token: Option<String>,
    /// `Telegram.WebApp.initData`, exactly as the Mini App received it.
    init_data: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <access_token>` to the ticket routes.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the session expires; then log in again.
    pub expires_in: u64,
    /// The client this session acts for.
    pub client_id: Uuid,
}

/// What a login request asks to verify.
enum Credential {
    Oidc(String),
    Telegram(String),
}

impl LoginRequest {
    fn credential(self) -> Result<Credential, ApiError> {
        let (field, value, credential): (_, _, fn(String) -> Credential) =
            match self.provider.as_str() {
                "oidc" => ("id_token", self.id_token, Credential::Oidc),
                "telegram" => ("init_data", self.init_data, Credential::Telegram),
                _ => {
                    return Err(ApiError::invalid("provider", "must be oidc or telegram"));
                }
            };
        value
            .filter(|value| !value.is_empty())
            .map(credential)
            .ok_or_else(|| ApiError::invalid(field, "is required with this provider"))
    }
}

/// Log in as a client.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A session token for the client this identity is bound to", body = LoginResponse),
        (status = 400, description = "Malformed JSON", body = ErrorEnvelope),
        (status = 401, description = "Not verified: bad signature, wrong issuer or audience, expired, another bot, or the provider is not configured", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope),
        (status = 422, description = "Unknown provider, or its credential missing", body = ErrorEnvelope),
        (status = 429, description = "Too many logins from this address (`Retry-After`)", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    )
)]
#[post("/api/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = &state.access;
    if let Some(ip) = client_ip(&request, &access.trusted_proxies) {
        access
            .login_limit
            .check(ip, Instant::now())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    }
    let credential = body.value.credential()?;
    let provider = match credential {
        Credential::Oidc(_) => "oidc",
        Credential::Telegram(_) => "telegram",
    };
    let now = chrono::Utc::now().timestamp();
    let (identity, profile) = match verify(access, credential, now).await {
        Ok(verified) => verified,
        Err(Refusal(reason)) => {
            tracing::info!(
                login.provider = provider,
                login.refusal = reason,
                "login refused"
            );
            metrics::counter!("logins_total", "provider" => provider, "result" => "refused")
                .increment(1);
            return Err(ApiError::Unauthorized);
        }
    };
    let sessions = access.sessions.as_ref().ok_or_else(|| {
        // The configuration requires SESSION_SECRET with any provider.
        ApiError::Internal(anyhow::anyhow!("a login provider without SESSION_SECRET"))
    })?;
    let mut connection = state.pool.get().await.map_err(StoreError::from)?;
    let logged_in = identities::log_in(&mut connection, &identity, &profile).await?;
    let session = sessions
        .issue(logged_in.client_id, now)
        .map_err(|error| ApiError::Internal(error.into()))?;
    tracing::info!(
        login.provider = provider,
        client_id = %logged_in.client_id,
        login.new_client = logged_in.new_client,
        "client logged in"
    );
    metrics::counter!("logins_total", "provider" => provider, "result" => "ok").increment(1);
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(LoginResponse {
            access_token: session.token,
            token_type: "Bearer",
            expires_in: session.expires_in.as_secs(),
            client_id: logged_in.client_id,
        }))
}

async fn verify(
    access: &Access,
    credential: Credential,
    now: i64,
) -> Result<(Identity, Profile), Refusal> {
    match credential {
        Credential::Oidc(id_token) => {
            let oidc = access
                .oidc
                .as_ref()
                .ok_or(Refusal("OIDC login is not configured"))?;
            let claims = oidc.verify(&id_token, now).await?;
            let profile = oidc_profile(&claims)?;
            let identity = Identity {
                issuer: oidc.issuer().to_owned(),
                subject: claims.sub,
            };
            Ok((identity, profile))
        }
        Credential::Telegram(init_data) => {
            let telegram = access
                .telegram
                .as_ref()
                .ok_or(Refusal("Telegram login is not configured"))?;
            let user = telegram.verify(&init_data, now)?;
            let profile = telegram_profile(&user)?;
            let identity = Identity {
                issuer: TELEGRAM_ISSUER.into(),
                subject: user.id.to_string(),
            };
            Ok((identity, profile))
        }
    }
}

/// A new client's profile from verified claims only: an e-mail or phone the provider has
/// not verified could name somebody else.
fn oidc_profile(claims: &IdClaims) -> Result<Profile, Refusal> {
    let full_name = match (&claims.given_name, &claims.family_name) {
        (Some(given), Some(family)) => Some(format!("{given} {family}")),
        (given, family) => given.clone().or_else(|| family.clone()),
    };
    Ok(Profile {
        name: person_name(
            [&claims.name, &full_name, &claims.preferred_username],
            "OIDC user",
        )?,
        email: claims
            .email
            .as_deref()
            .filter(|_| claims.email_verified)
            .and_then(|email| Email::parse(email).ok()),
        phone_number: claims
            .phone_number
            .as_deref()
            .filter(|_| claims.phone_number_verified)
            .and_then(|phone| PhoneNumber::parse(phone).ok()),
    })
}

fn telegram_profile(user: &TelegramUser) -> Result<Profile, Refusal> {
    let full_name = match (&user.first_name, &user.last_name) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (first, _) => first.clone(),
    };
    Ok(Profile {
        name: person_name([&full_name, &user.username, &None], "Telegram user")?,
        // Telegram's initData carries neither.
        email: None,
        phone_number: None,
    })
}

/// The first candidate that is a valid name, else `fallback`.
fn person_name(candidates: [&Option<String>; 3], fallback: &str) -> Result<PersonName, Refusal> {
    candidates
        .into_iter()
        .flatten()
        .find_map(|name| PersonName::parse(name).ok())
        .map_or_else(|| PersonName::parse(fallback), Ok)
        .map_err(|_| Refusal("no usable name"))
}
