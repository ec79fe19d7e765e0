//! The operations HTTP endpoints: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::health::Health;
use crate::metrics::Metrics;

/// What the endpoints read.
#[derive(Clone)]
pub struct Ops {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, ops: Ops) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ops);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "operations endpoints stopped");
    }
}

/// Liveness: the pollers are running (or not started yet, or the process
/// is draining). It fails only when every poller that ran has died, which a
/// restart fixes.
async fn healthz(State(w): State<Ops>) -> impl IntoResponse {
    let alive = w.health.pollers_alive();
    if !w.health.pollers_started() && !w.health.is_shutting_down() {
        (StatusCode::OK, "ok: starting\n".to_string())
    } else if alive > 0 || w.health.is_shutting_down() {
        (StatusCode::OK, format!("ok: {alive} pollers\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no poller is running\n".to_string(),
        )
    }
}

/// Readiness: the queue, table and topic answered recently and the process
/// is not shutting down. The body says which dependency is missing.
async fn readyz(State(w): State<Ops>) -> impl IntoResponse {
    let (ready, detail) = w.health.readiness();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        detail.to_string(),
    )
}

async fn metrics(State(w): State<Ops>) -> impl IntoResponse {
    let (ready, _) = w.health.readiness();
    w.metrics.ready.set(i64::from(ready));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        w.metrics.render(),
    )
}
