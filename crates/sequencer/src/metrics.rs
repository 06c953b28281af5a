//! What one shard's pipeline measures about itself: how long leaves take
//! from submission to commit, and from commit to each later step
//! (integrated, signed, published), and how old the oldest committed leaf
//! is that no published head covers yet (the merge delay an operator pages
//! on). The server exports these as `cairn_sequencer_*` (docs/metrics.md).
//!
//! The per-step latencies come from [`Lag`]: a mark (tree size, time) is
//! kept for every applied size that grew the tree, and each step observes
//! the age of the marks it newly covers. Marks are kept per applied batch,
//! not per leaf, and at most [`MAX_MARKS`] of them; past that the second
//! oldest is merged away, so the oldest (which the merge delay reads) is
//! never lost and later latencies are at worst rounded down.
//!
//! A node measures from when *it* applied a size, so a follower's figures
//! start at replication, and after a restart the leaves not yet published
//! count from the restart.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::time::Instant;

/// Most marks kept (see the module docs). At one mark per applied batch
/// and a few hundred batches a second, this spans tens of seconds of
/// unpublished leaves before merging starts.
pub const MAX_MARKS: usize = 16_384;

/// Buckets in seconds: 1 ms doubling to about 65 s, fine enough to tell a
/// healthy pipeline (tens of milliseconds) from a stuck one (seconds).
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 17)
}

/// A step of the pipeline after commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The tiles are in object storage (the integrated size).
    Integrated,
    /// A tree head of that size was signed on this node.
    Signed,
    /// A cosigned tree head of that size was published.
    Published,
}

const STEPS: [Step; 3] = [Step::Integrated, Step::Signed, Step::Published];

impl Step {
    fn index(self) -> usize {
        match self {
            Step::Integrated => 0,
            Step::Signed => 1,
            Step::Published => 2,
        }
    }
}

/// Commit times of applied sizes and how far each step has come (pure:
/// the caller passes the time).
#[derive(Debug, Default)]
pub struct Lag {
    /// (tree size, when it was applied), sizes increasing.
    marks: VecDeque<(u64, Instant)>,
    /// The size each [`Step`] has reached.
    reached: [u64; 3],
    /// The largest size marked, so a repeated or smaller size adds nothing.
    committed: u64,
}

impl Lag {
    /// The tree grew to `size` at `now`.
    pub fn committed(&mut self, size: u64, now: Instant) {
        if size <= self.committed {
            return;
        }
        self.committed = size;
        self.marks.push_back((size, now));
        if self.marks.len() > MAX_MARKS {
            // Keep the oldest: the merge delay reads it.
            self.marks.remove(1);
        }
        self.drop_done();
    }

    /// `step` reached `size` at `now`: the time since commit of each mark
    /// it newly covers, oldest first.
    pub fn reached(&mut self, step: Step, size: u64, now: Instant) -> Vec<Duration> {
        let before = self.reached[step.index()];
        if size <= before {
            return Vec::new();
        }
        self.reached[step.index()] = size;
        if step == Step::Published {
            // A published head was signed, if not here then by the leader:
            // a node that signs nothing must not keep its marks forever.
            let signed = &mut self.reached[Step::Signed.index()];
            *signed = (*signed).max(size);
        }
        // Marks are sorted by size: find the covered range by bisection,
        // not a scan (this runs for every head a node sees).
        let first = self.marks.partition_point(|(s, _)| *s <= before);
        let end = self.marks.partition_point(|(s, _)| *s <= size);
        let ages = self
            .marks
            .range(first..end)
            .map(|(_, t)| now.saturating_duration_since(*t))
            .collect();
        self.drop_done();
        ages
    }

    /// How long ago the oldest leaf not covered by `step` was applied, or
    /// zero if `step` covers every applied leaf.
    pub fn oldest_behind(&self, step: Step, now: Instant) -> Duration {
        let reached = self.reached[step.index()];
        let first = self.marks.partition_point(|(s, _)| *s <= reached);
        self.marks
            .get(first)
            .map_or(Duration::ZERO, |(_, t)| now.saturating_duration_since(*t))
    }

    /// Forgets marks every step has covered.
    fn drop_done(&mut self) {
        let done = STEPS
            .iter()
            .map(|s| self.reached[s.index()])
            .min()
            .unwrap_or(0);
        while self.marks.front().is_some_and(|(s, _)| *s <= done) {
            self.marks.pop_front();
        }
    }

    /// Marks kept (for tests and debugging).
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// Whether no mark is kept.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }
}

/// One shard's pipeline measurements on this node. Cheap to update from
/// any task; the histograms and counters are `prometheus_client` types a
/// server registers as they are (clones share the values).
#[derive(Debug)]
pub struct ShardMetrics {
    sequence: Histogram,
    steps: [Histogram; 3],
    lag: Mutex<Lag>,
    signed_size: AtomicU64,
    leader_changes: Counter,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            sequence: Histogram::new(latency_buckets()),
            steps: [
                Histogram::new(latency_buckets()),
                Histogram::new(latency_buckets()),
                Histogram::new(latency_buckets()),
            ],
            lag: Mutex::default(),
            signed_size: AtomicU64::new(0),
            leader_changes: Counter::default(),
        }
    }
}

impl ShardMetrics {
    /// Seconds from a submission reaching this leader's batcher until its
    /// new leaves were committed and applied (one observation per call that
    /// sequenced new leaves).
    pub fn sequence_latency(&self) -> &Histogram {
        &self.sequence
    }

    /// Seconds from a size being applied on this node until `step` covered
    /// it (one observation per applied batch).
    pub fn step_latency(&self, step: Step) -> &Histogram {
        &self.steps[step.index()]
    }

    /// Times this node saw a new leader of the shard's Raft group (a
    /// leader other than the last one it knew; losing the leader without
    /// a successor is not counted).
    pub fn leader_changes(&self) -> &Counter {
        &self.leader_changes
    }

    /// The largest tree size this node signed a head for.
    pub fn signed_size(&self) -> u64 {
        self.signed_size.load(Ordering::Relaxed)
    }

    /// Age of the oldest applied leaf that no published head covers: the
    /// merge delay so far (zero when everything applied is published).
    pub fn unpublished_age(&self) -> Duration {
        self.lag
            .lock()
            .map(|l| l.oldest_behind(Step::Published, Instant::now()))
            .unwrap_or_default()
    }

    pub(crate) fn sequenced(&self, after: Duration) {
        self.sequence.observe(after.as_secs_f64());
    }

    pub(crate) fn committed(&self, size: u64) {
        if let Ok(mut lag) = self.lag.lock() {
            lag.committed(size, Instant::now());
        }
    }

    pub(crate) fn reached(&self, step: Step, size: u64) {
        if step == Step::Signed {
            self.signed_size.fetch_max(size, Ordering::Relaxed);
        }
        let ages = match self.lag.lock() {
            Ok(mut lag) => lag.reached(step, size, Instant::now()),
            Err(_) => return,
        };
        let histogram = self.step_latency(step);
        for age in ages {
            histogram.observe(age.as_secs_f64());
        }
    }

    pub(crate) fn leader_changed(&self) {
        self.leader_changes.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn each_step_observes_the_age_of_the_batches_it_newly_covers() {
        let t = Instant::now();
        let mut lag = Lag::default();
        lag.committed(10, at(t, 0));
        lag.committed(25, at(t, 100));
        assert_eq!(
            lag.reached(Step::Integrated, 10, at(t, 40)),
            vec![Duration::from_millis(40)]
        );
        // A step that jumps past several marks observes each one.
        assert_eq!(
            lag.reached(Step::Published, 25, at(t, 300)),
            vec![Duration::from_millis(300), Duration::from_millis(200)]
        );
        // Reaching the same size again observes nothing.
        assert!(lag.reached(Step::Published, 25, at(t, 400)).is_empty());
        assert_eq!(
            lag.reached(Step::Integrated, 25, at(t, 500)),
            vec![Duration::from_millis(400)]
        );
    }

    #[test]
    fn the_merge_delay_is_the_age_of_the_oldest_unpublished_batch() {
        let t = Instant::now();
        let mut lag = Lag::default();
        assert_eq!(lag.oldest_behind(Step::Published, t), Duration::ZERO);
        lag.committed(5, at(t, 0));
        lag.committed(9, at(t, 50));
        assert_eq!(
            lag.oldest_behind(Step::Published, at(t, 70)),
            Duration::from_millis(70)
        );
        lag.reached(Step::Published, 5, at(t, 80));
        assert_eq!(
            lag.oldest_behind(Step::Published, at(t, 100)),
            Duration::from_millis(50)
        );
        lag.reached(Step::Published, 9, at(t, 120));
        assert_eq!(
            lag.oldest_behind(Step::Published, at(t, 130)),
            Duration::ZERO
        );
    }

    #[test]
    fn marks_are_forgotten_once_every_step_covered_them() {
        let t = Instant::now();
        let mut lag = Lag::default();
        lag.committed(3, t);
        lag.committed(6, t);
        for step in STEPS {
            lag.reached(step, 3, t);
        }
        assert_eq!(lag.len(), 1);
        for step in STEPS {
            lag.reached(step, 6, t);
        }
        assert!(lag.is_empty());
    }

    #[test]
    fn past_the_bound_the_oldest_mark_survives_and_the_count_stays_bounded() {
        let t = Instant::now();
        let mut lag = Lag::default();
        for i in 1..=(MAX_MARKS as u64 + 100) {
            lag.committed(i, at(t, i));
        }
        assert_eq!(lag.len(), MAX_MARKS);
        let end = at(t, MAX_MARKS as u64 + 1000);
        assert_eq!(
            lag.oldest_behind(Step::Published, end),
            end - at(t, 1),
            "the first mark is what the merge delay reads"
        );
    }

    #[test]
    fn publication_covers_the_signing_step_on_a_node_that_signs_nothing() {
        let t = Instant::now();
        let mut lag = Lag::default();
        lag.committed(5, t);
        lag.reached(Step::Integrated, 5, t);
        lag.reached(Step::Published, 5, t);
        assert!(lag.is_empty(), "marks dropped without a local signature");
        assert!(lag.reached(Step::Signed, 5, t).is_empty());
    }

    #[test]
    fn a_size_that_does_not_grow_the_tree_adds_no_mark() {
        let t = Instant::now();
        let mut lag = Lag::default();
        lag.committed(4, t);
        lag.committed(4, t);
        lag.committed(2, t);
        assert_eq!(lag.len(), 1);
    }
}
