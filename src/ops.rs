//! The operations HTTP endpoints: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::daemon::Latch;
use crate::worker::Worker;

#[derive(Clone)]
struct Ops {
    worker: Arc<Worker>,
    latch: Latch,
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, worker: Arc<Worker>, latch: Latch) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ops { worker, latch });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "operations endpoints stopped");
    }
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.latch.is_tripped() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.worker.metrics.render(),
    )
}
