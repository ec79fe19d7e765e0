//! Logs and traces.
//!
//! Logs are `tracing` events, JSON in production and readable locally.
//! Traces are the same spans exported by OTLP (gRPC or HTTP/protobuf) when
//! `telemetry.otlp_endpoint` is set, and not at all otherwise. W3C trace
//! context (`traceparent`, `tracestate`) is read from the SQS message
//! attributes of each message (the producer's span becomes the parent of the
//! message's span) and written into the SNS completion events and the `http`
//! processor's request headers, so a trace runs end to end.
//!
//! Propagation does not depend on export: the OpenTelemetry layer is always
//! installed. With export it records this daemon's spans (downstream spans
//! become their children); without, its tracer is OpenTelemetry's no-op
//! tracer, whose spans carry their parent's context, so the producer's
//! context goes out unchanged (downstream spans become children of the
//! producer's span, and nothing dangles) and a message that came without
//! one gets none. Nor does it depend on the log level: `log.level` filters
//! what is logged, while the daemon's own spans always reach the trace
//! layer (those of single AWS calls only when they are exported: they
//! carry no context onward).

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat, OtlpProtocol};

mod fields;

/// Flushes exported spans when the daemon stops.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: flushing traces failed: {e}");
        }
    }
}

/// Starts logging (and trace export if configured). Must run inside the
/// tokio runtime when an OTLP endpoint is configured.
pub fn init(cfg: &Config) -> anyhow::Result<Telemetry> {
    use std::io::IsTerminal;
    let log_filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level))
    };
    let json = match cfg.log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(fields::SpanJson)
            .boxed()
    } else {
        fmt.compact().boxed()
    };
    let provider = match cfg
        .telemetry
        .otlp_endpoint
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(endpoint) => Some(provider(cfg, endpoint)?),
    };
    // Context activation (making each span's context OpenTelemetry's
    // current one on every poll of its future) is off: this daemon reads a
    // span's context through the tracing span itself, and nothing else in
    // the process uses OpenTelemetry's current context.
    let otel = match &provider {
        Some(p) => tracing_opentelemetry::layer()
            .with_tracer(p.tracer("triggered-cache"))
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .boxed(),
        // Without export a span's attributes go nowhere: only its context
        // is used, so the layer records no code location or thread per span.
        None => tracing_opentelemetry::layer()
            .with_tracer(opentelemetry::trace::noop::NoopTracer::new())
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_location(false)
            .with_threads(false)
            .boxed(),
    };
    // The log level filters what is logged, not the spans that carry the
    // trace context: this daemon's spans stay on for the trace layer, so a
    // quiet log.level neither breaks propagation nor empties the export.
    let own_spans = tracing_subscriber::filter::filter_fn(|m| {
        m.is_span() && m.target().starts_with("triggered_cache") && *m.level() <= Level::INFO
    });
    // The spans of single AWS calls are a trace's client spans and hold no
    // log events (a batched call runs in its batcher's task), so the log
    // layer never formats them; nor does the trace layer keep data for them
    // when nothing is exported, since they carry no context onward. Two of
    // them open per message (its read and its event).
    let exporting = provider.is_some();
    let logged = tracing_subscriber::filter::filter_fn(|m| !is_call_span(m));
    let traced = tracing_subscriber::filter::filter_fn(move |m| exporting || !is_call_span(m));
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(log_filter().and(logged)))
        .with(otel.with_filter(log_filter().or(own_spans).and(traced)))
        .try_init();
    Ok(Telemetry { provider })
}

/// A span around one AWS call: this daemon's spans under `aws`.
fn is_call_span(m: &tracing::Metadata<'_>) -> bool {
    m.is_span() && m.target().starts_with("triggered_cache::aws")
}

fn provider(cfg: &Config, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = match cfg.telemetry.otlp_protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?,
        OtlpProtocol::Http => {
            let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url)
                .build()?
        }
    };
    // The batch processor that runs on tokio: the OTLP exporters need its
    // reactor (the default one exports from a plain thread).
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(cfg.telemetry.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

struct AttrExtractor<'a>(&'a HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>);

impl Extractor for AttrExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.string_value.as_deref())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Makes the producer's trace (from the message's `traceparent` attribute)
/// the parent of `span`.
pub fn adopt_parent(
    span: &tracing::Span,
    attributes: &HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>,
) {
    if !attributes.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&AttrExtractor(attributes));
    let _ = span.set_parent(cx);
}

/// Like [`adopt_parent`], from an envelope's attributes (an SNS
/// notification's `MessageAttributes`).
pub fn adopt_parent_from(span: &tracing::Span, attributes: &[(String, String)]) {
    struct Pairs<'a>(&'a [(String, String)]);
    impl Extractor for Pairs<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| k.as_str()).collect()
        }
    }
    if attributes.iter().any(|(k, _)| k == "traceparent") {
        let _ = span.set_parent(TraceContextPropagator::new().extract(&Pairs(attributes)));
    }
}

struct MapInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` is valid W3C but not a valid SNS attribute.
        if !value.is_empty() {
            self.0.push((key.to_owned(), value));
        }
    }
}

/// The W3C trace context of the current span, as header/attribute pairs:
/// this daemon's span when traces are exported, else the producer's context
/// as received; empty when the message carried none and nothing is exported.
pub fn current_context() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut MapInjector(&mut out));
    out
}
