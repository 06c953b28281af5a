//! The leader's garbage collection of superseded partial tiles.
//!
//! `cairn_storage` deletes only partials that a given tree size has
//! outgrown, and never beyond the stored checkpoint; this module picks that
//! size: the published size as it stood a grace period ago. A client that
//! read a checkpoint within the grace period therefore still finds every
//! partial of its size, and one that holds an older checkpoint finds the
//! full tile (or a wider partial) to cut its hashes from, as tlog-tiles
//! clients do.
//!
//! Only the leader collects (it alone writes tiles). It learns publication
//! times by watching the applied state, so each size counts as published
//! from when this node first saw it — never earlier than it really was; the
//! size published when the term began counts from the term's start.

use std::collections::VecDeque;
use std::time::Duration;

use cairn_storage::TileStore;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::state_machine::AppliedState;

/// Shortest and longest time between collections.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// Time between collections for a grace period: a quarter of it, within
/// 100 ms..=60 s, so partials go within about 1.25 grace periods.
pub fn interval_for(grace: Duration) -> Duration {
    (grace / 4).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// Published sizes with the time this node first saw each, oldest first;
/// answers "what was published a grace period ago".
#[derive(Debug)]
pub struct PublishedHistory {
    grace: Duration,
    /// Increasing in both time and size. The front entry is the newest one
    /// known to be older than the grace period (once one is).
    seen: VecDeque<(Instant, u64)>,
}

impl PublishedHistory {
    /// A history that starts with `size` seen at `now`.
    pub fn new(grace: Duration, size: u64, now: Instant) -> Self {
        Self {
            grace,
            seen: VecDeque::from([(now, size)]),
        }
    }

    /// Records the published size `size` at `now`; smaller or equal sizes
    /// than the last one change nothing.
    pub fn observe(&mut self, size: u64, now: Instant) {
        if self.seen.back().is_none_or(|&(_, last)| size > last) {
            self.seen.push_back((now, size));
        }
    }

    /// The largest size seen at least a grace period before `now`, if any;
    /// forgets entries that a later one has replaced as the answer.
    pub fn safe_size(&mut self, now: Instant) -> Option<u64> {
        let old_enough = |t: Instant| now.saturating_duration_since(t) >= self.grace;
        while self.seen.len() > 1 && old_enough(self.seen[1].0) {
            self.seen.pop_front();
        }
        self.seen
            .front()
            .filter(|&&(t, _)| old_enough(t))
            .map(|&(_, size)| size)
    }
}

/// Collects superseded partials of `store` every [`interval_for`]`(grace)`
/// until `stop`: first a listing of what earlier writers left behind, then
/// deletion of everything the size published a grace period ago has
/// outgrown. Failures are logged and retried on the next round; they never
/// affect the log.
pub async fn run(
    store: TileStore,
    grace: Duration,
    mut states: watch::Receiver<AppliedState>,
    mut stop: watch::Receiver<bool>,
) {
    let published = |s: &AppliedState| s.cosigned.as_ref().map_or(0, |c| c.size);
    let mut history = PublishedHistory::new(grace, published(&states.borrow()), Instant::now());
    match store.scan_partials().await {
        Ok(found) => tracing::info!(found, "partial tiles listed for garbage collection"),
        Err(e) => {
            tracing::warn!(error = %e, "listing partial tiles failed; collecting only new ones")
        }
    }
    let mut tick = tokio::time::interval(interval_for(grace));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = states.changed() => {
                if changed.is_err() {
                    return;
                }
                history.observe(published(&states.borrow_and_update()), Instant::now());
                continue;
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        history.observe(published(&states.borrow()), Instant::now());
        let Some(size) = history.safe_size(Instant::now()) else {
            continue;
        };
        match store.collect_partials(size).await {
            Ok(report) if report.deleted > 0 || report.failed > 0 => tracing::info!(
                size = report.size,
                deleted = report.deleted,
                failed = report.failed,
                pending = report.pending,
                "superseded partial tiles collected"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "partial tile collection failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_safe_until_a_grace_period_has_passed() {
        let start = Instant::now();
        let grace = Duration::from_secs(10);
        let mut h = PublishedHistory::new(grace, 100, start);
        assert_eq!(h.safe_size(start + Duration::from_secs(9)), None);
        assert_eq!(h.safe_size(start + grace), Some(100));
    }

    #[test]
    fn the_safe_size_is_the_one_published_a_grace_period_ago() {
        let start = Instant::now();
        let s = Duration::from_secs;
        let mut h = PublishedHistory::new(s(10), 100, start);
        h.observe(200, start + s(5));
        h.observe(150, start + s(6)); // never backwards
        h.observe(300, start + s(12));
        assert_eq!(h.safe_size(start + s(12)), Some(100));
        assert_eq!(h.safe_size(start + s(15)), Some(200));
        assert_eq!(h.safe_size(start + s(21)), Some(200));
        assert_eq!(h.safe_size(start + s(22)), Some(300));
        // Answers never go back as time passes.
        assert_eq!(h.safe_size(start + s(100)), Some(300));
    }

    #[test]
    fn collections_run_a_few_times_per_grace_period_within_bounds() {
        assert_eq!(interval_for(Duration::from_secs(600)), MAX_INTERVAL);
        assert_eq!(
            interval_for(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(interval_for(Duration::ZERO), MIN_INTERVAL);
    }
}
