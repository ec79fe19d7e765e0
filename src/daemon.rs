//! Wiring: AWS clients from the configuration, logging, and the daemon's
//! top-level `run` (pool + operations HTTP + signals).

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use tracing::info;

use crate::aws::Clients;
use crate::config::{Config, Validated};
use crate::item::Attrs;
use crate::metrics::Metrics;
use crate::worker::Worker;

/// Loads the AWS configuration: the standard credential chain and region,
/// with the configured region, endpoint override and call timeout on top.
pub async fn aws_config(cfg: &Config) -> SdkConfig {
    aws_loader(cfg).load().await
}

/// The loader [`aws_config`] loads (a test adds its own credentials).
///
/// Every call attempt is bounded by `aws.call_timeout` (the SDK sets no
/// such bound by default). Within that bound the SDK's stalled-stream
/// protection adds nothing for this daemon's small bodies but a timer per
/// request, so it is off.
pub fn aws_loader(cfg: &Config) -> aws_config::ConfigLoader {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(cfg.aws.call_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        );
    if let Some(region) = &cfg.aws.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = cfg.aws.endpoint_url.as_deref().filter(|e| !e.is_empty()) {
        loader = loader.endpoint_url(endpoint);
    }
    loader
}

/// Builds a worker with the AWS clients of `sdk`.
pub fn worker(cfg: Validated, sdk: &SdkConfig) -> anyhow::Result<Worker> {
    let (cfg, rules) = cfg.into_parts();
    let cfg = Arc::new(cfg);
    let metrics = Metrics::new(&cfg);
    let clients = Clients::counting(sdk, metrics.aws_requests.clone());
    let table = clients.table(
        &cfg.dynamodb.table,
        Attrs {
            prefix: cfg.dynamodb.attribute_prefix.clone(),
        },
    );
    let queue = clients.queue(&cfg.sqs.queue_url, &cfg.sqs.dlq_url);
    let events = clients.publisher(&cfg);
    let deps = cfg
        .dependencies
        .table
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| clients.dependencies(t));
    let bucket =
        (!cfg.s3.bucket.is_empty()).then(|| clients.bucket(&cfg.s3.bucket, &cfg.s3.prefix));
    let table = table.compressing(
        cfg.sets
            .keys()
            .filter(|s| cfg.compresses(s))
            .cloned()
            .collect(),
    );
    let worker =
        Worker::new(cfg, rules, table, queue, events, metrics)?.with_answering(clients.answering());
    let worker = match bucket {
        Some(b) => worker.with_bucket(b),
        None => worker,
    };
    Ok(match deps {
        Some(d) => worker.with_dependencies(d),
        None => worker,
    })
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once.
pub async fn signals(health: Arc<crate::health::Health>) {
    wait_signal().await;
    health.shut_down();
    info!("signal received; draining (a second signal exits at once)");
    tokio::spawn(async {
        wait_signal().await;
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Runs the daemon until SIGTERM/SIGINT: the operations HTTP endpoints and
/// their readiness prober (when `http.listen` is set) and the worker pool.
pub async fn run(worker: Arc<Worker>) -> anyhow::Result<()> {
    worker.check()?;
    let http = if worker.config().http.listen.is_empty() {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(&worker.config().http.listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {} (http.listen): {e}",
                    worker.config().http.listen
                )
            })?;
        info!(addr = %listener.local_addr()?, "operations endpoints: /healthz /readyz /metrics");
        let ops = crate::ops::Ops {
            health: worker.health().clone(),
            metrics: worker.metrics().clone(),
        };
        Some(tokio::spawn(crate::ops::serve(listener, ops)))
    };
    // Readiness is read only through the endpoints: without them, no probe
    // (its API calls every 10s would serve nobody), only the start-time
    // redrive-policy check.
    let prober = crate::health::Prober {
        queue: worker.queue().clone(),
        table: worker.table().clone(),
        topic: worker.events().clone(),
        metrics: worker.metrics().clone(),
        health: worker.health().clone(),
        most_attempts: worker
            .config()
            .sets
            .iter()
            .max_by_key(|(_, s)| s.max_attempts)
            .map(|(name, s)| (name.clone(), s.max_attempts)),
    };
    let prober = if http.is_some() {
        tokio::spawn(crate::health::probe(prober))
    } else {
        tokio::spawn(crate::health::check_redrive_policy(prober))
    };
    crate::pool::serve(Arc::new(worker.pool()), signals(worker.health().clone())).await?;
    prober.abort();
    if let Some(h) = http {
        h.abort();
    }
    Ok(())
}
