//! Serving a simulator: an actix-web app on a loopback port, wrapped so that every request
//! is recorded and scripted faults apply before (or, for `ActThenStall`, after) the
//! simulator's own handler.

use crate::faults::{Fault, Faults};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    /// The raw query string, as sent.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How many requests the log keeps; later ones are counted but not kept, so a benchmark
/// driving millions of calls does not grow the simulator without bound.
const LOG_LIMIT: usize = 50_000;

/// What the wrapper shares with the handlers: the fault script and the request log.
#[derive(Debug, Default)]
pub struct Wiring {
    pub faults: Faults,
    log: Mutex<Vec<Recorded>>,
    unlogged: std::sync::atomic::AtomicU64,
    /// Neither record nor fault: a peer that must cost as little as possible.
    bare: bool,
}

impl Wiring {
    /// A wiring that passes every request straight to the handlers.
    pub fn bare() -> Wiring {
        Wiring {
            bare: true,
            ..Wiring::default()
        }
    }

    /// Requests received but not kept because the log was full.
    pub fn unlogged(&self) -> u64 {
        self.unlogged.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn clear_requests(&self) {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn record(&self, request: Recorded) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() < LOG_LIMIT {
            log.push(request);
        } else {
            self.unlogged
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimServer {
    pub base_url: String,
    pub port: u16,
    pub wiring: Arc<Wiring>,
    handle: ServerHandle,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SimServer {
    pub fn faults(&self) -> &Faults {
        &self.wiring.faults
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.wiring.requests()
    }

    /// Stops accepting and drops open connections (stalled calls end for their clients).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        // Not awaited: the server winds down on its own runtime.
        drop(self.handle.stop(false));
    }
}

/// How long a stalled call hangs before the simulator gives up on it; far beyond any
/// client timeout used in tests.
const STALL: Duration = Duration::from_secs(600);

/// Serves `configure` on `bind` (use `127.0.0.1:0` for a free port) with recording and
/// faults, on the current tokio runtime. `workers` actix workers serve it.
pub fn serve<F>(
    bind: &str,
    workers: usize,
    wiring: Arc<Wiring>,
    configure: F,
) -> std::io::Result<SimServer>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = TcpListener::bind(bind)?;
    let port = listener.local_addr()?.port();
    let shared = wiring.clone();
    let server: Server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::from(shared.clone()))
            .configure(configure.clone())
            .wrap(from_fn(record_and_fault))
    })
    .workers(workers.max(1))
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(SimServer {
        base_url: format!("http://127.0.0.1:{port}"),
        port,
        wiring,
        handle,
    })
}

/// A server that records every request and answers 200 (scripted faults apply): the
/// receiving end for tests of the simulators' webhooks.
pub fn serve_recorder(bind: &str) -> std::io::Result<SimServer> {
    serve(bind, 1, Arc::new(Wiring::default()), |cfg| {
        cfg.default_service(web::to(|| async { HttpResponse::Ok().finish() }));
    })
}

async fn record_and_fault(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(wiring) = request.app_data::<web::Data<Wiring>>().cloned() else {
        return Ok(request.into_response(HttpResponse::InternalServerError().finish()));
    };
    if wiring.bare {
        return Ok(next.call(request).await?.map_into_boxed_body());
    }
    let body = request.extract::<Bytes>().await.unwrap_or_default();
    let method = request.method().to_string();
    let path = percent_decode(request.path());
    wiring.record(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: request.query_string().to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
    });
    request.set_payload(actix_web::dev::Payload::from(body));

    let latency = wiring.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let stall_after = match wiring.faults.take(&method, &path) {
        None => false,
        Some(Fault::Status { status, body }) => {
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            let response = HttpResponse::build(status)
                .content_type("application/json; charset=utf-8")
                .body(body);
            return Ok(request.into_response(response));
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            let response = HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", retry_after_secs.to_string()))
                .content_type("text/plain; charset=utf-8")
                .body("Retry later\n");
            return Ok(request.into_response(response));
        }
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            false
        }
        Some(Fault::Stall) => {
            tokio::time::sleep(STALL).await;
            return Ok(request.into_response(HttpResponse::GatewayTimeout().finish()));
        }
        Some(Fault::ActThenStall) => true,
    };
    let response = next.call(request).await?.map_into_boxed_body();
    if stall_after {
        tokio::time::sleep(STALL).await;
    }
    Ok(response)
}

/// Decodes `%XX` escapes as UTF-8 (1C's entity names are Cyrillic); `+` stays `+`.
pub fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_plus_and_decodes_cyrillic() {
        assert_eq!(
            percent_decode("/Document_%D0%A2%D0%B5%D0%BB"),
            "/Document_Тел"
        );
        assert_eq!(percent_decode("a+b%2"), "a+b%2");
    }
}
