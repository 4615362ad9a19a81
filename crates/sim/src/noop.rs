//! The no-op peer of the relay benchmark: answers every request with 204 at once. It
//! counts what it receives and, while recording, keeps each body with the moment it
//! arrived, from which the benchmark computes commit-to-delivery latency. Unlike the
//! Chatwoot and 1C simulators it keeps no log and takes no faults, so that it costs as
//! little CPU as a peer can.

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

#[derive(Debug, Default)]
struct Received {
    count: AtomicU64,
    recording: AtomicBool,
    recorded: Mutex<Vec<(Instant, Bytes)>>,
}

/// A running sink; dropping it stops the server.
#[derive(Debug)]
pub struct NoopSink {
    pub base_url: String,
    pub port: u16,
    received: Arc<Received>,
    handle: ServerHandle,
}

impl NoopSink {
    /// Serves 127.0.0.1 on a free port with `workers` actix workers, on the current tokio
    /// runtime.
    pub fn start(workers: usize) -> std::io::Result<NoopSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Received::default());
        let shared = web::Data::from(received.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(NoopSink {
            base_url: format!("http://127.0.0.1:{port}"),
            port,
            received,
            handle,
        })
    }

    /// Requests answered so far.
    pub fn received(&self) -> u64 {
        self.received.count.load(Ordering::Relaxed)
    }

    /// Starts or stops keeping the bodies and arrival times of requests.
    pub fn record(&self, on: bool) {
        self.received.recording.store(on, Ordering::Relaxed);
    }

    /// The requests kept while recording, in arrival order; the record is emptied.
    pub fn take_recorded(&self) -> Vec<(Instant, Bytes)> {
        std::mem::take(
            &mut *self
                .received
                .recorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl Drop for NoopSink {
    fn drop(&mut self) {
        // Not awaited: the server winds down on its own runtime.
        drop(self.handle.stop(false));
    }
}

async fn receive(received: web::Data<Received>, body: Bytes) -> HttpResponse {
    let now = Instant::now();
    received.count.fetch_add(1, Ordering::Relaxed);
    if received.recording.load(Ordering::Relaxed) {
        received
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((now, body));
    }
    HttpResponse::NoContent().finish()
}
