//! Logs (and, when configured, traces) of `cairnd`: one `tracing`
//! subscriber for the whole process, set up before anything runs.
//!
//! Logs go to standard error, as text for people or as JSON lines for
//! log collectors (`--log-format json`): one object per event with
//! `timestamp`, `level`, `target`, the event's fields flattened at the top
//! level, and `spans`, the fields of every span the event happened in.
//! Those carry the context an operator filters on: `shard` and `node` on
//! every event of a sequencer shard's pipeline, `term` on a leader's
//! events for the term it leads, and `request_id` on every event of a
//! frontend request (the `x-request-id` the client sent, or one made up,
//! echoed in the response).
//!
//! Traces are exported over OTLP/gRPC when the standard environment asks
//! for it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, with the exporter's other
//! `OTEL_EXPORTER_OTLP_*` variables, the batch processor's `OTEL_BSP_*`,
//! `OTEL_TRACES_SAMPLER`/`_ARG` (default: parent-based, always on),
//! `OTEL_SERVICE_NAME` (default `cairnd-<role>`) and
//! `OTEL_RESOURCE_ATTRIBUTES`. `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn it off. Trace context crosses the gRPC
//! calls between roles as W3C `traceparent` (`cairn_proto::trace`).

use anyhow::Context as _;
use clap::ValueEnum;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log events are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colour on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The log filter without `RUST_LOG`: Cairn's own events at `info`, every
/// library's at `warn` (openraft dumps its engine state at `info`, hyper and
/// h2 narrate connections). `RUST_LOG` replaces it whole, e.g.
/// `RUST_LOG=info,openraft=debug`.
const DEFAULT_LOG_FILTER: &str = "warn,cairnd=info,cairn_server=info,cairn_sequencer=info,cairn_proto=info,\
    cairn_frontend=info,cairn_collector=info,cairn_witness=info,cairn_storage=info,\
    cairn_bastion=info,cairn_client=info";

/// The trace exporter, if one runs: call [`Telemetry::shutdown`] before
/// exiting so that the last spans are sent.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter (bounded by the exporter's
    /// timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("cairnd: flushing traces: {e}");
        }
    }
}

/// Whether the environment asks for OTLP trace export.
fn otlp_requested() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| {
        std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// The OTLP exporter and its tracer provider. Must run inside a Tokio
/// runtime: the gRPC channel lives on it.
fn otlp_provider(role: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .context("building the OTLP span exporter")?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(format!("cairnd-{role}"));
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Set by [`init`]: whether per-request spans have a consumer.
static SPANS_CONSUMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether anything consumes per-request spans (JSON logs carry their
/// request id, trace export their timing): the frontend makes them only
/// then ([`cairn_frontend::FrontendConfig::request_spans`]).
pub fn request_spans() -> bool {
    SPANS_CONSUMED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the process's subscriber: logs in `format`, and OTLP trace
/// export if the environment asks for it (see the module docs). `role`
/// names the service in traces. Call inside a Tokio runtime.
pub fn init(format: LogFormat, role: &str) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let provider = if otlp_requested() {
        let provider = otlp_provider(role)?;
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Some(provider)
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(format!("cairnd-{role}")))
            // Its own filter, not the log filter: `RUST_LOG=warn` must not
            // turn tracing off. Cairn's spans at info and above, except
            // `shard` and `term`, which are log context that lives as long
            // as the shard or the term, not work to trace.
            .with_filter(filter_fn(|meta| {
                meta.target().starts_with("cairn")
                    && *meta.level() <= tracing::Level::INFO
                    && !(meta.is_span() && matches!(meta.name(), "shard" | "term"))
            }))
    });
    SPANS_CONSUMED.store(
        provider.is_some() || format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let registry = tracing_subscriber::registry().with(otel);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colour codes only for people: files and collectors
                    // get plain text.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .init(),
    }
    Ok(Telemetry { provider })
}
