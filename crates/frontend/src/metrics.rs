//! What the frontend measures: every request's latency by shard, endpoint
//! and status (its count is the request count, so add-leaf outcomes are
//! `endpoint="add-leaf"` by `status`), and the requests refused for
//! overload by reason. A server registers them with
//! [`FrontendMetrics::register`] (docs/metrics.md lists the series).
//!
//! Labels are bounded: `shard` is a shard this frontend serves (or `-`),
//! `endpoint` one of a fixed set, `status` an HTTP status code, so no
//! request can grow the series.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Why a request was refused with 503 before it was served: the response
/// carries it as an extension, which the metrics layer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// Every request slot was taken (`max_concurrent_requests`).
    ConcurrentRequests,
    /// The shard's submission queue was full (`submit_queue`).
    SubmitQueue,
    /// The sequencer refused for its pending pool (`RESOURCE_EXHAUSTED`).
    SequencerOverloaded,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::ConcurrentRequests => "concurrent_requests",
            Refusal::SubmitQueue => "submit_queue",
            Refusal::SequencerOverloaded => "sequencer_overloaded",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    shard: String,
    endpoint: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    shard: String,
    reason: &'static str,
}

/// Buckets in seconds: 1 ms doubling to about 33 s, past the default
/// request timeout, so a healthy add-leaf (a publication round, tens to
/// hundreds of milliseconds) and one that waited out `submit_wait` fall in
/// different buckets.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The frontend's request metrics. Cloning shares them.
#[derive(Clone, Debug)]
pub struct FrontendMetrics {
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    refusals: Family<RefusalLabels, Counter>,
}

impl Default for FrontendMetrics {
    fn default() -> Self {
        FrontendMetrics {
            requests: Family::new_with_constructor(request_histogram),
            refusals: Family::default(),
        }
    }
}

impl FrontendMetrics {
    /// Registers `frontend_request_seconds{shard,endpoint,status}` and
    /// `frontend_refusals_total{shard,reason}` (names before the
    /// registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "frontend_request",
            "Time from a request's arrival until its response head, by shard, endpoint and HTTP status (the count is the number of requests)",
            Unit::Seconds,
            self.requests.clone(),
        );
        registry.register(
            "frontend_refusals",
            "Requests refused with 503 for overload before being served, by reason: concurrent_requests, submit_queue, sequencer_overloaded",
            self.refusals.clone(),
        );
    }

    pub(crate) fn observe(&self, shard: &str, endpoint: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                shard: shard.to_owned(),
                endpoint,
                status,
            })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn refused(&self, shard: &str, why: Refusal) {
        self.refusals
            .get_or_create(&RefusalLabels {
                shard: shard.to_owned(),
                reason: why.label(),
            })
            .inc();
    }
}
