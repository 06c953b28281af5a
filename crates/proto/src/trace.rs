//! Trace context across Cairn's gRPC calls (W3C `traceparent`), so that a
//! submission is one trace from the frontend's HTTP request to the Raft
//! commit, and a publication one trace from the collector's round to the
//! checkpoint write.
//!
//! * Clients: every [`SequencerPool`](crate::SequencerPool) call carries the
//!   context of the caller's current `tracing` span, injected by
//!   [`TraceContext`] with the process's global propagator.
//! * Servers: [`server_span`] (for tonic's `Server::trace_fn`) opens a span
//!   for each request that carries a context, as its child; requests
//!   without one (Raft's own traffic, health checks, background reads)
//!   get no span, so a node exports only continuations of traced work.
//!
//! Without a configured exporter the global propagator is OpenTelemetry's
//! no-op one: nothing is injected or extracted and this costs nothing.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use tonic::codegen::http;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// A channel whose calls carry the caller's trace context.
pub type TracedChannel = InterceptedService<Channel, TraceContext>;

/// Injects the current span's trace context into each request's metadata.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContext;

impl Interceptor for TraceContext {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject(request.metadata_mut());
        Ok(request)
    }
}

/// `make()`'s span if this runs inside a span (a traced request), else
/// none: background work and untraced calls start no traces of their own.
pub fn traced(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if tracing::Span::current().is_none() {
        tracing::Span::none()
    } else {
        make()
    }
}

/// Writes the current span's context into `metadata`.
pub fn inject(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span of a received gRPC request: a child of the caller's span if
/// the request carries a valid trace context, otherwise none (see the
/// module docs). Named after the method, e.g. `cairn.v1.Sequencer/AddLeaves`.
pub fn server_span(request: &http::Request<()>) -> tracing::Span {
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(request.headers()))
    });
    if !parent.span().span_context().is_valid() {
        return tracing::Span::none();
    }
    let method = request.uri().path().trim_start_matches('/');
    let span = tracing::info_span!(
        "grpc",
        otel.name = %method,
        otel.kind = "server",
        rpc.system = "grpc",
    );
    // Fails only if the span is disabled (filtered out); then there is
    // nothing to attach the parent to.
    let _ = span.set_parent(parent);
    span
}
