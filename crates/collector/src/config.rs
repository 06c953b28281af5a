//! Collector settings for one shard.

use std::time::Duration;

/// Default time between `GetTreeHeads` polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Default limit on one witness request (connect, send, response body).
pub const DEFAULT_WITNESS_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time to keep collecting once the quorum holds: none.
pub const DEFAULT_EXTRA_WAIT: Duration = Duration::ZERO;

/// How the collector of one shard behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    /// The shard (Sigsum log) name used in sequencer calls, e.g. `dev`.
    pub shard: String,
    /// Time between polls of the sequencer's tree heads. Default 250 ms.
    pub poll_interval: Duration,
    /// Limit on each witness request, from connecting to the end of the
    /// response body; a round makes at most two requests per witness (the
    /// second after a 409). Default 5 s.
    pub witness_timeout: Duration,
    /// How long to keep collecting cosignatures after the quorum holds, so
    /// that the published head carries more than the minimum. Zero (the
    /// default) publishes as soon as the quorum holds.
    pub extra_wait: Duration,
    /// Publish a signed head even if the quorum does not hold (with whatever
    /// cosignatures arrived). Default false: no quorum, no publication —
    /// Sigsum verifiers would reject such a head anyway.
    pub fail_open: bool,
}

impl CollectorConfig {
    /// The defaults for `shard`.
    pub fn new(shard: impl Into<String>) -> Self {
        CollectorConfig {
            shard: shard.into(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            witness_timeout: DEFAULT_WITNESS_TIMEOUT,
            extra_wait: DEFAULT_EXTRA_WAIT,
            fail_open: false,
        }
    }
}
