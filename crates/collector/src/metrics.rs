//! Counters the server exports as metrics (prefix `cairn_collector_`, label
//! `shard`; witness errors also labelled `witness`), and the latency
//! histograms of cosigning and publishing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Histogram buckets in seconds: 1 ms doubling to about 33 s, fine enough
/// to tell a loopback witness (milliseconds) from a slow one (seconds).
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 16)
}

/// Live counters of one shard's collector. All monotone except
/// `published_size`, which never decreases either. Cheap to update from
/// any task; read them with [`CollectorMetrics::snapshot`] and the
/// histograms with [`CollectorMetrics::cosign_latency`] and
/// [`CollectorMetrics::publish_latency`].
#[derive(Debug)]
pub struct CollectorMetrics {
    rounds: AtomicU64,
    published: AtomicU64,
    published_without_quorum: AtomicU64,
    published_size: AtomicU64,
    quorum_failed: AtomicU64,
    publish_errors: AtomicU64,
    sequencer_errors: AtomicU64,
    /// Keyed by the witness's policy name; bounded by the policy's witness
    /// count (at most a few dozen).
    witness_errors: Mutex<BTreeMap<String, u64>>,
    /// Same keys: each witness's answer times.
    witness_latency: Mutex<BTreeMap<String, Histogram>>,
    cosign_latency: Histogram,
    publish_latency: Histogram,
}

impl Default for CollectorMetrics {
    fn default() -> Self {
        CollectorMetrics {
            rounds: AtomicU64::default(),
            published: AtomicU64::default(),
            published_without_quorum: AtomicU64::default(),
            published_size: AtomicU64::default(),
            quorum_failed: AtomicU64::default(),
            publish_errors: AtomicU64::default(),
            sequencer_errors: AtomicU64::default(),
            witness_errors: Mutex::default(),
            witness_latency: Mutex::default(),
            cosign_latency: Histogram::new(latency_buckets()),
            publish_latency: Histogram::new(latency_buckets()),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Rounds run: a signed head newer than the published one was sent to
    /// the witnesses.
    pub rounds: u64,
    /// Cosigned heads published (`PublishCosigned` succeeded), with or
    /// without quorum.
    pub published: u64,
    /// Of those, heads published without the policy quorum (fail-open
    /// only; always 0 when fail-closed).
    pub published_without_quorum: u64,
    /// Size of the latest head this collector published.
    pub published_size: u64,
    /// Rounds that ended without quorum (nothing published unless fail-open).
    pub quorum_failed: u64,
    /// `PublishCosigned` calls that failed.
    pub publish_errors: u64,
    /// `GetTreeHeads` calls that failed or returned unusable data.
    pub sequencer_errors: u64,
    /// Failed witness requests (no valid cosignature) by witness policy name.
    pub witness_errors: BTreeMap<String, u64>,
}

impl CollectorMetrics {
    /// The current values.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            rounds: self.rounds.load(Ordering::Relaxed),
            // Read before `published`, which is counted first: a scrape
            // between the two increments cannot see more heads published
            // without quorum than in all.
            published_without_quorum: self.published_without_quorum.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            published_size: self.published_size.load(Ordering::Relaxed),
            quorum_failed: self.quorum_failed.load(Ordering::Relaxed),
            publish_errors: self.publish_errors.load(Ordering::Relaxed),
            sequencer_errors: self.sequencer_errors.load(Ordering::Relaxed),
            witness_errors: self
                .witness_errors
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }

    /// Seconds from the start of a round (a new signed head) until the
    /// policy quorum held; rounds without quorum are not observed.
    pub fn cosign_latency(&self) -> &Histogram {
        &self.cosign_latency
    }

    /// Seconds from the start of a round until `PublishCosigned` succeeded:
    /// what cosigning adds to publication, including any `extra_wait`.
    pub fn publish_latency(&self) -> &Histogram {
        &self.publish_latency
    }

    /// Each witness's histogram of seconds from sending it a checkpoint
    /// until it answered (a cosignature, a refusal, or the per-witness
    /// timeout), by policy name. A request still open when the round ended
    /// (quorum reached, `extra_wait` over) is not observed.
    pub fn witness_latencies(&self) -> Vec<(String, Histogram)> {
        self.witness_latency
            .lock()
            .map(|m| m.iter().map(|(k, h)| (k.clone(), h.clone())).collect())
            .unwrap_or_default()
    }

    pub(crate) fn witness_answered(&self, witness: &str, after: Duration) {
        if let Ok(mut m) = self.witness_latency.lock() {
            m.entry(witness.to_owned())
                .or_insert_with(|| Histogram::new(latency_buckets()))
                .observe(after.as_secs_f64());
        }
    }

    pub(crate) fn quorum_reached(&self, after: Duration) {
        self.cosign_latency.observe(after.as_secs_f64());
    }

    pub(crate) fn round(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn published(&self, size: u64, with_quorum: bool, after: Duration) {
        self.published.fetch_add(1, Ordering::Relaxed);
        if !with_quorum {
            self.published_without_quorum
                .fetch_add(1, Ordering::Relaxed);
        }
        self.publish_latency.observe(after.as_secs_f64());
        self.published_size.fetch_max(size, Ordering::Relaxed);
    }

    pub(crate) fn quorum_failed(&self) {
        self.quorum_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn publish_error(&self) {
        self.publish_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sequencer_error(&self) {
        self.sequencer_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn witness_error(&self, witness: &str) {
        if let Ok(mut m) = self.witness_errors.lock() {
            *m.entry(witness.to_owned()).or_default() += 1;
        }
    }
}
