//! The no-op peer of the relay benchmark: answers every request with 204 at once. It
//! counts what it receives and, while recording, keeps each body with the moment it
//! arrived, from which the benchmark computes commit-to-delivery latency. Unlike the
//! Chatwoot and 1C simulators it keeps no log and takes no faults, so that it costs as
//! little CPU as a peer can.

use crate::server::{SimServer, Wiring, serve};
use actix_web::HttpResponse;
use actix_web::web::{self, Bytes};
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
    pub server: SimServer,
    received: Arc<Received>,
}

impl NoopSink {
    /// Serves 127.0.0.1 on a free port with `workers` actix workers, on the current tokio
    /// runtime.
    pub fn start(workers: usize) -> std::io::Result<NoopSink> {
        let received = Arc::new(Received::default());
        let shared = web::Data::from(received.clone());
        let server = serve(
            "127.0.0.1:0",
            workers,
            Arc::new(Wiring::bare()),
            move |config| {
                config
                    .app_data(shared.clone())
                    .default_service(web::to(receive));
            },
        )?;
        Ok(NoopSink { server, received })
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
