//! What the relay shows operators: `GET /metrics` (Prometheus) and `GET /health` on
//! `RELAY_METRICS_BIND`, and gauges of the outbox refreshed from the database.

use actix_web::{App, HttpResponse, HttpServer, web};
use cons_store::Pool;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// Serves `/metrics` and `/health` until the returned server is stopped.
pub fn serve(bind: SocketAddr) -> std::io::Result<actix_web::dev::Server> {
    cons_telemetry::prometheus();
    Ok(HttpServer::new(|| {
        App::new()
            .route(
                "/metrics",
                web::get().to(|| async {
                    let body = cons_telemetry::prometheus()
                        .map(|h| h.render())
                        .unwrap_or_default();
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body(body)
                }),
            )
            .route(
                "/health",
                web::get()
                    .to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(bind)?
    .run())
}

/// Refreshes `outbox_entries{target,status}` and `outbox_oldest_age_seconds{target,status}`
/// every `every` until shutdown, and `relay_database_up` (1 when that read succeeded, else
/// 0): the one signal of an unreachable database that exists whether or not requests
/// arrive, so the "database unavailable" alert does not depend on traffic.
pub async fn refresh_gauges(pool: Pool, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        let mut database_up = false;
        match pool.get().await {
            Ok(mut connection) => match cons_store::outbox::live_counts(&mut connection).await {
                Ok(counts) => {
                    database_up = true;
                    // Zero first, so a status that emptied does not keep its old value.
                    for target in cons_domain::Target::ALL {
                        for status in ["pending", "in_flight", "dead"] {
                            let labels = [
                                ("target", target.as_str().to_owned()),
                                ("status", status.to_owned()),
                            ];
                            metrics::gauge!("outbox_entries", &labels).set(0.0);
                            metrics::gauge!("outbox_oldest_age_seconds", &labels).set(0.0);
                        }
                    }
                    for count in counts {
                        let labels = [
                            ("target", count.target.clone()),
                            ("status", count.status.clone()),
                        ];
                        metrics::gauge!("outbox_entries", &labels).set(count.count as f64);
                        metrics::gauge!("outbox_oldest_age_seconds", &labels)
                            .set(count.oldest_age_seconds);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not read outbox counts"),
            },
            Err(error) => tracing::warn!(%error, "could not read outbox counts"),
        }
        metrics::gauge!("relay_database_up").set(if database_up { 1.0 } else { 0.0 });
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
