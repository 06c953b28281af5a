//! [`Stats`]: what the server refused and cut off, for the operator.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Which connection cap refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// [`crate::HttpConfig::max_connections`].
    Total,
    /// [`crate::HttpConfig::max_connections_per_ip`].
    PerIp,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

impl Refusal {
    fn label(self) -> LimitLabel {
        LimitLabel {
            limit: match self {
                Refusal::Total => "total",
                Refusal::PerIp => "per_ip",
            },
        }
    }
}

/// Counters of one [`crate::Server`]. Cloning shares them. Register them
/// with [`Stats::register`] to export them; the getters serve tests and
/// logs.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub(crate) accepted: Counter,
    refused: Family<LimitLabel, Counter>,
    pub(crate) open: Gauge,
    pub(crate) idle_closed: Counter,
    pub(crate) body_timeouts: Counter,
    pub(crate) accept_errors: Counter,
    pub(crate) unparsable: Counter,
}

impl Stats {
    /// Registers every metric in `registry` (names below are before the
    /// registry's prefix; counters get `_total`):
    /// `http_connections_accepted`, `http_connections_refused{limit="total"|"per_ip"}`,
    /// `http_connections_open`, `http_connections_closed_idle`,
    /// `http_request_body_timeouts`, `http_accept_errors`,
    /// `http_unparsable_requests`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_connections_accepted",
            "HTTP connections accepted and served",
            self.accepted.clone(),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections closed at once because a connection cap was full, by cap",
            self.refused.clone(),
        );
        registry.register(
            "http_connections_open",
            "HTTP connections open now",
            self.open.clone(),
        );
        registry.register(
            "http_connections_closed_idle",
            "HTTP connections closed for sending no request within the header or idle timeout",
            self.idle_closed.clone(),
        );
        registry.register(
            "http_request_body_timeouts",
            "Requests answered 408 because their body stalled or arrived below the minimum rate",
            self.body_timeouts.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Errors accepting connections other than the client's own (e.g. out of descriptors)",
            self.accept_errors.clone(),
        );
        registry.register(
            "http_unparsable_requests",
            "HTTP/1 request heads that could not be parsed (answered 400, 414 or 431)",
            self.unparsable.clone(),
        );
    }

    pub(crate) fn refuse(&self, why: Refusal) {
        self.refused.get_or_create(&why.label()).inc();
    }

    /// Connections accepted and served so far.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.get()
    }

    /// Connections closed at once because `max_connections` was reached.
    pub fn refused_total_cap(&self) -> u64 {
        self.refused.get_or_create(&Refusal::Total.label()).get()
    }

    /// Connections closed at once because their client's
    /// `max_connections_per_ip` was reached.
    pub fn refused_per_ip_cap(&self) -> u64 {
        self.refused.get_or_create(&Refusal::PerIp.label()).get()
    }

    /// Connections open now.
    pub fn connections_open(&self) -> i64 {
        self.open.get()
    }

    /// Connections closed for sending no request in time.
    pub fn closed_idle(&self) -> u64 {
        self.idle_closed.get()
    }

    /// Request bodies that stalled or trickled (answered 408).
    pub fn body_timeouts(&self) -> u64 {
        self.body_timeouts.get()
    }

    /// Failed accepts other than per-connection errors.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.get()
    }

    /// HTTP/1 request heads hyper could not parse.
    pub fn unparsable_requests(&self) -> u64 {
        self.unparsable.get()
    }
}
