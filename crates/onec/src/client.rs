//! The client: one pooled `reqwest::Client` with HTTP Basic (UTF-8) and JSON negotiated
//! both ways (`$format=json` and `Accept`), one HTTP call per write, every answer
//! classified into an [`OnecError`] or decoded into the typed records.

use crate::error::{self, OnecError};
use crate::model::{
    Collection, Consultation, ConsultationPatch, Counterparty, MARKER_FIELD, NewConsultation,
    NewCounterparty, RawConsultation, RawCounterparty, consultation_marker,
};
use crate::wire::{self, QueryString};
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;

const CONSULTATIONS: &str = "Document_ТелефонныйЗвонок";
const COUNTERPARTIES: &str = "Catalog_Контрагенты";

/// Where the 1C base is, who we are there, and its clock.
#[derive(Clone)]
pub struct OnecConfig {
    /// The publication's OData root, ending in `/odata/standard.odata/`, e.g.
    /// `http://odata-server:8888/int/rbd_sl_copy/odata/standard.odata/`.
    pub base_url: String,
    /// An infobase user (may be Cyrillic: sent as UTF-8).
    pub user: String,
    pub password: String,
    /// The whole call, from connecting to the last byte of the answer. The default of 60 s
    /// covers a publication that takes 30 s to wake after idling (onec.md §1).
    pub timeout: Duration,
    /// The base's zone: 1C stores local wall-clock times without offset; we hold UTC and
    /// convert at the boundary.
    pub time_zone: Tz,
}

impl OnecConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Asia::Tashkent;

    /// A configuration with the default timeout and zone.
    pub fn new(
        base_url: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        OnecConfig {
            base_url: base_url.into(),
            user: user.into(),
            password: password.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            time_zone: Self::DEFAULT_TIME_ZONE,
        }
    }
}

impl std::fmt::Debug for OnecConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnecConfig")
            .field("base_url", &self.base_url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("time_zone", &self.time_zone)
            .finish()
    }
}

/// Longest wait for a TCP (and TLS) connection: an unreachable web server should fail
/// fast and unambiguously (`Connect`), well inside the call timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle pooled connections are dropped before IIS's default 120 s connection timeout
/// closes them on the other side.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// Page size when reading every document changed in one second; 1C has no server-side
/// paging (onec.md §4) and the original used 1000.
const PAGE: usize = 1000;
/// How many documents a marker or counterparty lookup reads: one is expected, a few more
/// reveal duplicates worth a warning.
const LOOKUP_TOP: usize = 10;

/// A typed client of 1C:ЦЛ's standard OData interface. Cheap to clone (the connection pool
/// is shared).
#[derive(Clone)]
pub struct OnecClient {
    http: reqwest::Client,
    /// The base URL with its trailing `/`.
    base: String,
    zone: Tz,
}

impl std::fmt::Debug for OnecClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnecClient")
            .field("base", &self.base)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// `true` for `localhost` and loopback addresses: calls there skip any proxy (tests, the
/// simulator).
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        None => false,
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
    }
}

impl OnecClient {
    /// Builds the client and its connection pool. Fails only on a bad base URL or
    /// credentials Basic auth cannot carry.
    pub fn new(config: OnecConfig) -> Result<Self, OnecError> {
        let mut base = config.base_url.trim().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let url = reqwest::Url::parse(&base)
            .map_err(|e| OnecError::Config(format!("base_url is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OnecError::Config(
                "base_url must be http or https".to_owned(),
            ));
        }
        if !base.ends_with("/odata/standard.odata/") {
            return Err(OnecError::Config(
                "base_url must end in /odata/standard.odata/".to_owned(),
            ));
        }
        if config.user.contains(':') {
            return Err(OnecError::Config(
                "a Basic-auth user name cannot contain ':'".to_owned(),
            ));
        }
        // Built from UTF-8 bytes: a Cyrillic login in another encoding gets IIS's 401.5
        // (onec.md §1).
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", config.user, config.password));
        let mut authorization = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| OnecError::Config("credentials cannot be sent as a header".to_owned()))?;
        // Marked sensitive: reqwest and hyper then never print it.
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!(
                "consultation-middleware/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(CONNECT_TIMEOUT.min(config.timeout))
            .timeout(config.timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_keepalive(TCP_KEEPALIVE)
            // What IIS and the 1C web extension speak; a stalled call holds only its own
            // connection.
            .http1_only()
            // A redirect would turn a POST into a GET and carry the credentials elsewhere;
            // a misconfigured base URL must fail loudly instead.
            .redirect(reqwest::redirect::Policy::none())
            // Exactly one attempt per method: retrying is the relay's decision, made with
            // the ambiguity of the outcome in mind.
            .retry(reqwest::retry::never());
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| OnecError::Config(format!("HTTP client: {}", transport_detail(&e))))?;
        Ok(OnecClient {
            http,
            base,
            zone: config.time_zone,
        })
    }

    /// The base's zone dates are converted with.
    pub fn time_zone(&self) -> Tz {
        self.zone
    }

    /// The counterparty with this subscriber code and INN in `folder` (`Parent_Key`),
    /// without deletion mark (onec.md §8). Counterparties in other folders are not ours
    /// (domain.md §1.5). If several match, the one with the lowest `Code` wins (logged).
    pub async fn find_counterparty(
        &self,
        folder: Uuid,
        code_abonent: &str,
        inn: &str,
    ) -> Result<Option<Counterparty>, OnecError> {
        let code = subscriber_code(code_abonent)?;
        let filter = format!(
            "КодАбонентаClobus eq {code} and ИНН eq {} and Parent_Key eq {} and DeletionMark eq false",
            wire::string_literal(inn),
            wire::guid_literal(folder)
        );
        let query = QueryString::json()
            .option("$select", "Ref_Key,DataVersion,DeletionMark,Parent_Key,Code,Description,ИНН,КодАбонентаClobus")
            .option("$filter", &filter)
            .option("$orderby", "Code asc")
            .option("$top", &LOOKUP_TOP.to_string());
        let found: Collection<RawCounterparty> = self
            .call(Method::GET, COUNTERPARTIES, "", &query, None)
            .await?;
        if found.value.len() > 1 {
            tracing::warn!(
                count = found.value.len(),
                "several 1C counterparties share one subscriber code and INN"
            );
        }
        Ok(found.value.into_iter().next().map(Counterparty::from))
    }

    /// `POST Catalog_Контрагенты`. Not idempotent: after an ambiguous failure, call
    /// [`find_counterparty`](Self::find_counterparty) before creating again.
    pub async fn create_counterparty(
        &self,
        counterparty: &NewCounterparty,
    ) -> Result<Counterparty, OnecError> {
        let code = subscriber_code(&counterparty.code_abonent)?;
        let body = counterparty.body(code);
        let created: RawCounterparty = self
            .call(
                Method::POST,
                COUNTERPARTIES,
                "",
                &QueryString::json(),
                Some(&body),
            )
            .await?;
        Ok(created.into())
    }

    /// The consultation whose [`MARKER_FIELD`] is exactly `marker` (see
    /// [`consultation_marker`]), deleted-marked ones included: after an ambiguous create
    /// this finds what 1C committed instead of creating a duplicate. If several carry it,
    /// one without deletion mark and with the lowest number wins (logged).
    pub async fn find_consultation_by_marker(
        &self,
        marker: &str,
    ) -> Result<Option<Consultation>, OnecError> {
        if marker.is_empty() {
            return Err(OnecError::InvalidArgument("empty marker".to_owned()));
        }
        let filter = format!("{MARKER_FIELD} eq {}", wire::string_literal(marker));
        let mut found = self.list(&filter, None, LOOKUP_TOP, 0).await?;
        if found.len() > 1 {
            tracing::warn!(
                count = found.len(),
                marker,
                "several 1C consultations carry one marker"
            );
        }
        found.sort_by(|a, b| (a.deletion_mark, &a.number).cmp(&(b.deletion_mark, &b.number)));
        Ok(found.into_iter().next())
    }

    /// [`find_consultation_by_marker`](Self::find_consultation_by_marker) for our ticket.
    pub async fn find_consultation_by_ticket(
        &self,
        ticket_id: Uuid,
    ) -> Result<Option<Consultation>, OnecError> {
        self.find_consultation_by_marker(&consultation_marker(ticket_id))
            .await
    }

    /// `POST Document_ТелефонныйЗвонок` with the field set of domain.md §1.4 and our
    /// marker. Not idempotent: after an ambiguous failure
    /// ([`OnecError::is_ambiguous`]) look it up with
    /// [`find_consultation_by_ticket`](Self::find_consultation_by_ticket) first. A
    /// [business refusal](OnecError::is_business_refusal) is, as far as we know, the daily
    /// limit.
    pub async fn create_consultation(
        &self,
        consultation: &NewConsultation,
    ) -> Result<Consultation, OnecError> {
        let body = consultation.body(self.zone);
        let created = self
            .call_consultation(Method::POST, "", Some(&body))
            .await?;
        if created.ticket_id() != Some(consultation.ticket_id) {
            // 1C truncated or rewrote the marker: retries could no longer find this
            // document, so say so loudly (the document itself was created).
            tracing::error!(
                ref_key = %created.ref_key,
                ticket_id = %consultation.ticket_id,
                field = MARKER_FIELD,
                "1C did not store the consultation marker as sent; duplicate protection is off for this base"
            );
        }
        Ok(created)
    }

    /// `GET Document_ТелефонныйЗвонок(guid'…')`; `None` when 1C has no such document (it
    /// was deleted physically, onec.md §8).
    pub async fn get_consultation(&self, ref_key: Uuid) -> Result<Option<Consultation>, OnecError> {
        match self
            .call_consultation(Method::GET, &key(ref_key), None)
            .await
        {
            Ok(consultation) => Ok(Some(consultation)),
            Err(OnecError::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// `PATCH Document_ТелефонныйЗвонок(guid'…')` with only the patch's fields; returns the
    /// whole document as 1C answers it. [`OnecError::NotFound`] when it does not exist.
    /// Changing `ДатаКонсультации` or unmarking can hit the daily limit.
    pub async fn patch_consultation(
        &self,
        ref_key: Uuid,
        patch: &ConsultationPatch,
    ) -> Result<Consultation, OnecError> {
        let body = patch.body(self.zone);
        self.call_consultation(Method::PATCH, &key(ref_key), Some(&body))
            .await
    }

    /// Up to `top` consultations changed after `watermark` = (`ДатаИзменения`, `Ref_Key`),
    /// in that order; the next call passes the last one's
    /// [`watermark`](Consultation::watermark). Start with `(t, Uuid::nil())` to include
    /// everything changed at `t` or later.
    ///
    /// 1C refuses `gt`/`lt` on references, and orders references by their stored bytes,
    /// not by the text our `Uuid` order follows, so the page cannot be cut by
    /// `Ref_Key gt guid'…'`. Instead: the documents of the watermark's own second are read
    /// whole (`ДатаИзменения eq`, usually a handful) and those after the watermark's key
    /// kept; then `ДатаИзменения gt` ordered by date, and a page that comes back full
    /// drops its last second (which may continue beyond the page) unless that second is
    /// all there is, in which case that second is read whole. So every document is
    /// returned once per pass even when many share one `ДатаИзменения` (it has one-second
    /// resolution), as long as nothing changes meanwhile; a document changed meanwhile
    /// shows up again later, so de-duplicate by (`Ref_Key`, `DataVersion`).
    ///
    /// `ДатаИзменения` can lie in the future for scheduled consultations (onec.md §8):
    /// never move the stored watermark past "now".
    pub async fn consultations_changed_since(
        &self,
        watermark: (DateTime<Utc>, Uuid),
        top: u32,
    ) -> Result<Vec<Consultation>, OnecError> {
        let top = usize::try_from(top).unwrap_or(usize::MAX);
        if top == 0 {
            return Ok(Vec::new());
        }
        let (since, after) = watermark;
        let local = wire::to_local(self.zone, since);
        let mut out: Vec<Consultation> = self
            .changed_at(local)
            .await?
            .into_iter()
            .filter(|c| c.ref_key > after)
            .collect();
        if out.len() >= top {
            out.truncate(top);
            return Ok(out);
        }
        let want = top - out.len();
        let filter = format!("ДатаИзменения gt {}", wire::datetime_literal(local));
        let mut page = self
            .list(&filter, Some("ДатаИзменения asc,Ref_Key asc"), want, 0)
            .await?;
        if page.len() >= want {
            let last = page.last().and_then(|c| c.date_changed);
            if page.iter().all(|c| c.date_changed == last) {
                if let Some(last) = last {
                    page = self.changed_at(wire::to_local(self.zone, last)).await?;
                    page.truncate(want);
                }
            } else {
                page.retain(|c| c.date_changed != last);
            }
        }
        page.sort_by_key(|c| (c.date_changed, c.ref_key));
        out.extend(page);
        Ok(out)
    }

    /// Every consultation whose `ДатаИзменения` is exactly this local second, in `Ref_Key`
    /// order (ours, by `Uuid`).
    async fn changed_at(&self, local: NaiveDateTime) -> Result<Vec<Consultation>, OnecError> {
        let filter = format!("ДатаИзменения eq {}", wire::datetime_literal(local));
        let mut all = Vec::new();
        loop {
            let page = self
                .list(&filter, Some("Ref_Key asc"), PAGE, all.len())
                .await?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                break;
            }
        }
        all.sort_by_key(|c| c.ref_key);
        all.dedup_by_key(|c| c.ref_key);
        Ok(all)
    }

    async fn list(
        &self,
        filter: &str,
        order_by: Option<&str>,
        top: usize,
        skip: usize,
    ) -> Result<Vec<Consultation>, OnecError> {
        let mut query = QueryString::json().option("$filter", filter);
        if let Some(order_by) = order_by {
            query = query.option("$orderby", order_by);
        }
        query = query.option("$top", &top.to_string());
        if skip > 0 {
            query = query.option("$skip", &skip.to_string());
        }
        let found: Collection<RawConsultation> = self
            .call(Method::GET, CONSULTATIONS, "", &query, None)
            .await?;
        found
            .value
            .into_iter()
            .map(|raw| raw.into_consultation(self.zone).map_err(OnecError::Decode))
            .collect()
    }

    async fn call_consultation(
        &self,
        method: Method,
        tail: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Consultation, OnecError> {
        let raw: RawConsultation = self
            .call(method, CONSULTATIONS, tail, &QueryString::json(), body)
            .await?;
        raw.into_consultation(self.zone).map_err(OnecError::Decode)
    }

    /// One call, timed and logged without URL or body (they carry personal data).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        set: &'static str,
        tail: &str,
        query: &QueryString,
        body: Option<&serde_json::Value>,
    ) -> Result<T, OnecError> {
        let started = Instant::now();
        let outcome = self.exchange(method.clone(), set, tail, query, body).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok((status, _)) => {
                tracing::debug!(method = %method, set, status = status.as_u16(), elapsed_ms, "1c call");
            }
            Err(error) => tracing::debug!(
                method = %method,
                set,
                status = error.http_status(),
                error = error.kind(),
                elapsed_ms,
                "1c call failed"
            ),
        }
        outcome.map(|(_, value)| value)
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        method: Method,
        set: &'static str,
        tail: &str,
        query: &QueryString,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, T), OnecError> {
        let url = format!(
            "{}{}{tail}?{}",
            self.base,
            wire::path_name(set),
            query.as_str()
        );
        let url = reqwest::Url::parse(&url)
            .map_err(|e| OnecError::InvalidArgument(format!("URL: {e}")))?;
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| OnecError::InvalidArgument(format!("body: {e}")))?;
            request = request
                .header(CONTENT_TYPE, "application/json;charset=utf-8")
                .body(bytes);
        }
        let response = request.send().await.map_err(|e| from_transport(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(|e| from_transport(&e))?;
        if !status.is_success() {
            return Err(error::from_status(
                status.as_u16(),
                retry_after.as_deref(),
                &bytes,
            ));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            // the category and position only: serde's message can quote a value
            OnecError::Decode(format!(
                "{:?} error at line {} column {} of a {set} answer",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        Ok((status, value))
    }
}

/// `(guid'…')`: the canonical key of an object (onec.md §2).
fn key(ref_key: Uuid) -> String {
    format!("({})", wire::guid_literal(ref_key))
}

/// `КодАбонентаClobus` is a number: only digits may go into the filter bare.
fn subscriber_code(raw: &str) -> Result<u64, OnecError> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OnecError::InvalidArgument(
            "the subscriber code must be digits".to_owned(),
        ));
    }
    raw.parse::<u64>()
        .ok()
        .filter(|code| i64::try_from(*code).is_ok())
        .ok_or_else(|| OnecError::InvalidArgument("the subscriber code is out of range".to_owned()))
}

/// The error chain of a transport failure, without the URL (it carries personal data).
fn transport_detail(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    error::truncate(parts.join(": "), error::EXCERPT_MAX_CHARS)
}

/// Classifies a failure below HTTP: no connection (nothing sent), timeout (maybe
/// processed), or a connection lost mid-call (maybe processed).
fn from_transport(error: &reqwest::Error) -> OnecError {
    if error.is_builder() {
        OnecError::InvalidArgument(transport_detail(error))
    } else if error.is_connect() {
        // includes the connect timeout: no connection, so nothing was sent
        OnecError::Connect(transport_detail(error))
    } else if error.is_timeout() {
        OnecError::Timeout
    } else {
        OnecError::Disconnected(transport_detail(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_password() {
        let config = OnecConfig::new("http://h/p/odata/standard.odata/", "Иван", "s3cr3t");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t"));
        assert!(shown.contains("Asia/Tashkent"));
        assert_eq!(config.timeout, Duration::from_secs(60));
    }

    #[test]
    fn base_urls_are_checked() {
        let client = |url: &str| OnecClient::new(OnecConfig::new(url, "u", "p"));
        assert!(client("http://odata-server:8888/int/rbd_sl_copy/odata/standard.odata/").is_ok());
        assert!(client("http://odata-server:8888/int/rbd_sl_copy/odata/standard.odata").is_ok());
        assert!(matches!(
            client("http://odata-server:8888/int/rbd_sl_copy/"),
            Err(OnecError::Config(_))
        ));
        assert!(matches!(
            client("ftp://h/odata/standard.odata/"),
            Err(OnecError::Config(_))
        ));
        assert!(matches!(client("not a url"), Err(OnecError::Config(_))));
        assert!(matches!(
            OnecClient::new(OnecConfig::new(
                "http://h/odata/standard.odata/",
                "a:b",
                "p"
            )),
            Err(OnecError::Config(_))
        ));
    }

    #[test]
    fn subscriber_codes_are_digits() {
        assert_eq!(subscriber_code(" 10240 ").unwrap(), 10240);
        assert!(subscriber_code("10240 or true").is_err());
        assert!(subscriber_code("").is_err());
        assert!(subscriber_code("-1").is_err());
        assert!(subscriber_code("99999999999999999999").is_err());
        assert_eq!(
            key(Uuid::nil()),
            "(guid'00000000-0000-0000-0000-000000000000')"
        );
    }
}
