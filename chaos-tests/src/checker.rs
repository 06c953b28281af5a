//! The invariants, checked from what clients saw ([`History`]) and what any
//! client may ask the log afterwards (inclusion and consistency proofs,
//! [`FinalLog`]). Written against the Sigsum and tlog specifications:
//! RFC 6962 proofs, verified here; nothing of Cairn's internals is read.

use std::collections::{BTreeMap, BTreeSet};

use cairn_tlog::Hash;
use cairn_tlog::proof::{verify_consistency, verify_inclusion};

use crate::history::{History, Source};

/// What the checker asks the log once the run is over, as any client can.
pub trait FinalLog {
    /// The inclusion proof (leaf index, path) of `leaf_hash` in the tree of
    /// `size` leaves; `None` if the log says the leaf is not in it (404).
    fn inclusion(
        &self,
        size: u64,
        leaf_hash: &Hash,
    ) -> impl Future<Output = anyhow::Result<Option<(u64, Vec<Hash>)>>>;
    /// The consistency proof from `old` to `new` leaves (`0 < old < new`).
    fn consistency(&self, old: u64, new: u64) -> impl Future<Output = anyhow::Result<Vec<Hash>>>;
}

/// A tree head: size and root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// The outcome of one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every broken invariant, one line each. Must be empty.
    pub violations: Vec<String>,
    /// Distinct leaves acknowledged with 200.
    pub acked: usize,
    /// Distinct (size, root) heads seen.
    pub heads: usize,
    /// The final tree's size.
    pub final_size: u64,
    /// Heads sent to witnesses beyond the final tree (not checkable).
    pub unpublished: usize,
    /// Fraction of the run's whole seconds with at least one 200.
    pub availability: f64,
    /// Per fault: seconds from its start to the next 200 (None: no 200
    /// came after it).
    pub recoveries: Vec<Option<f64>>,
}

/// The checks that need nothing but the history: no source's published
/// size goes backwards, no size has two roots, no bad answer. Requests to
/// witnesses are not published heads: a log may ask again for an older
/// one, so only their roots are checked here.
pub fn check_heads(history: &History) -> Vec<String> {
    let mut violations: Vec<String> = history.bad.clone();
    let mut last: BTreeMap<&Source, u64> = BTreeMap::new();
    let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
    let mut heads: Vec<&crate::history::Head> = history.heads.iter().collect();
    // Witness requests are added after the run; keep time order.
    heads.sort_by(|a, b| a.at.total_cmp(&b.at));
    for head in heads {
        if !matches!(head.source, Source::Witness(_)) {
            let previous = last.entry(&head.source).or_insert(head.size);
            if head.size < *previous {
                violations.push(format!(
                    "{} went back from size {} to {} at {:.1}s",
                    head.source, previous, head.size, head.at
                ));
            }
            *previous = head.size.max(*previous);
        }
        let root = roots.entry(head.size).or_insert(head.root);
        if *root != head.root {
            violations.push(format!(
                "two roots for size {}: {} and {} ({} at {:.1}s)",
                head.size,
                hex(root),
                hex(&head.root),
                head.source,
                head.at
            ));
        }
    }
    violations
}

/// Fraction of the run's whole seconds in which some add-leaf got a 200.
pub fn availability(history: &History) -> f64 {
    let seconds = history.duration.floor() as u64;
    if seconds == 0 {
        return 0.0;
    }
    let with_ack: BTreeSet<u64> = history
        .acks
        .iter()
        .map(|a| a.at.floor() as u64)
        .filter(|s| *s < seconds)
        .collect();
    with_ack.len() as f64 / seconds as f64
}

/// Per fault: the time from its start to the first 200 after it.
pub fn recoveries(history: &History) -> Vec<Option<f64>> {
    history
        .faults
        .iter()
        .map(|f| {
            history
                .acks
                .iter()
                .map(|a| a.at)
                .filter(|at| *at >= f.at)
                .fold(None, |min: Option<f64>, at| {
                    Some(min.map_or(at, |m| m.min(at)))
                })
                .map(|at| at - f.at)
        })
        .collect()
}

/// Every check: [`check_heads`], then that every acknowledged leaf is in
/// the `last` tree (verified inclusion proofs), and that every head seen
/// is consistent with the next larger one and so with `last` (verified
/// consistency proofs).
pub async fn check(history: &History, last: TreeHead, log: &impl FinalLog) -> Report {
    let mut violations = check_heads(history);

    let acked: BTreeSet<Hash> = history.acks.iter().map(|a| a.leaf_hash).collect();
    for leaf_hash in &acked {
        match included(log, last, leaf_hash).await {
            Ok(()) => {}
            Err(why) => violations.push(format!(
                "acknowledged leaf {} not in the final tree of size {}: {why}",
                hex(leaf_hash),
                last.size
            )),
        }
    }

    let mut chain: BTreeMap<u64, Hash> = history
        .heads
        .iter()
        .filter(|h| h.size <= last.size)
        .map(|h| (h.size, h.root))
        .collect();
    // A head the log sent to witnesses but never published (publication
    // stopped: no quorum, a witness ahead) cannot be proven consistent with
    // a smaller final tree; it is counted, not judged.
    let unpublished = history
        .heads
        .iter()
        .filter(|h| h.size > last.size && matches!(h.source, Source::Witness(_)))
        .count();
    for h in history
        .heads
        .iter()
        .filter(|h| h.size > last.size && !matches!(h.source, Source::Witness(_)))
    {
        violations.push(format!(
            "{} published size {} at {:.1}s, beyond the final size {}",
            h.source, h.size, h.at, last.size
        ));
    }
    if let Some(root) = chain.insert(last.size, last.root)
        && root != last.root
    {
        violations.push(format!(
            "two roots for the final size {}: {} seen, {} final",
            last.size,
            hex(&root),
            hex(&last.root)
        ));
    }
    let heads: Vec<TreeHead> = chain
        .into_iter()
        .map(|(size, root)| TreeHead { size, root })
        .collect();
    for pair in heads.windows(2) {
        let (old, new) = (pair[0], pair[1]);
        if old.size == 0 {
            if old.root != cairn_tlog::EMPTY_ROOT {
                violations.push(format!("size 0 with root {}", hex(&old.root)));
            }
            continue;
        }
        let verified = match log.consistency(old.size, new.size).await {
            Ok(path) => verify_consistency(old.size, new.size, &path, &old.root, &new.root)
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("no proof: {e:#}")),
        };
        if let Err(why) = verified {
            violations.push(format!(
                "head {} (size {}) is not consistent with head {} (size {}): {why}",
                hex(&old.root),
                old.size,
                hex(&new.root),
                new.size
            ));
        }
    }

    Report {
        violations,
        acked: acked.len(),
        heads: heads.len(),
        final_size: last.size,
        unpublished,
        availability: availability(history),
        recoveries: recoveries(history),
    }
}

/// The root of the tree whose leaf hashes are the level-0 `tiles` in
/// order (C2SP tlog-tiles: 256 hashes per full tile, the last partial).
pub fn root_from_tiles(tiles: &[Vec<Hash>]) -> Hash {
    let mut range = cairn_tlog::compact::CompactRange::new();
    for hash in tiles.iter().flatten() {
        range
            .append(*hash)
            .expect("a tree of fewer than 2^64 leaves");
    }
    range.root()
}

/// Whether `leaf_hash` is in `last`, by a verified proof.
async fn included(log: &impl FinalLog, last: TreeHead, leaf_hash: &Hash) -> Result<(), String> {
    if last.size == 0 {
        return Err("the tree is empty".into());
    }
    if last.size == 1 {
        // No log serves proofs for one leaf: the leaf hash is the root.
        return if *leaf_hash == last.root {
            Ok(())
        } else {
            Err("the one leaf is another".into())
        };
    }
    match log.inclusion(last.size, leaf_hash).await {
        Ok(Some((index, path))) => verify_inclusion(leaf_hash, index, last.size, &path, &last.root)
            .map_err(|e| format!("bad inclusion proof: {e}")),
        Ok(None) => Err("the log says it is not there (404)".into()),
        Err(e) => Err(format!("no proof: {e:#}")),
    }
}

/// Lower-case hex of a hash's first 8 bytes, for messages.
pub fn hex(hash: &Hash) -> String {
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Ack, Fault, Head};
    use cairn_tlog::proof::{NodeId, consistency_proof, inclusion_proof, tree_root};

    /// A log held in memory: leaves appended, proofs computed, and a leaf
    /// that can be dropped (as a log that lost it would).
    struct MemoryLog {
        leaves: Vec<Hash>,
    }

    impl MemoryLog {
        fn new(n: u64) -> Self {
            MemoryLog {
                leaves: (0..n).map(leaf).collect(),
            }
        }

        fn node(&self, id: NodeId) -> Hash {
            if id.level == 0 {
                return self.leaves[id.index as usize];
            }
            let left = NodeId {
                level: id.level - 1,
                index: id.index * 2,
            };
            let right = NodeId {
                level: id.level - 1,
                index: id.index * 2 + 1,
            };
            cairn_tlog::node_hash(&self.node(left), &self.node(right))
        }

        fn head(&self, size: u64) -> TreeHead {
            TreeHead {
                size,
                root: tree_root(size, |id| Ok::<_, ()>(self.node(id))).expect("root"),
            }
        }
    }

    impl FinalLog for MemoryLog {
        async fn inclusion(
            &self,
            size: u64,
            leaf_hash: &Hash,
        ) -> anyhow::Result<Option<(u64, Vec<Hash>)>> {
            let Some(index) = self.leaves[..size as usize]
                .iter()
                .position(|l| l == leaf_hash)
            else {
                return Ok(None);
            };
            let path = inclusion_proof(index as u64, size, |id| Ok::<_, ()>(self.node(id)))
                .map_err(|_| anyhow::anyhow!("proof"))?;
            Ok(Some((index as u64, path)))
        }

        async fn consistency(&self, old: u64, new: u64) -> anyhow::Result<Vec<Hash>> {
            consistency_proof(old, new, |id| Ok::<_, ()>(self.node(id)))
                .map_err(|_| anyhow::anyhow!("proof"))
        }
    }

    fn leaf(i: u64) -> Hash {
        cairn_tlog::leaf_hash(&i.to_be_bytes())
    }

    fn head(at: f64, source: Source, h: TreeHead) -> Head {
        Head {
            at,
            source,
            size: h.size,
            root: h.root,
        }
    }

    fn ack(at: f64, i: u64) -> Ack {
        Ack {
            at,
            frontend: 0,
            leaf_hash: leaf(i),
        }
    }

    fn history(log: &MemoryLog) -> History {
        History {
            acks: (0..10).map(|i| ack(i as f64 * 0.5, i)).collect(),
            heads: vec![
                head(0.0, Source::Frontend(0), log.head(0)),
                head(1.0, Source::Frontend(0), log.head(3)),
                head(2.0, Source::Frontend(1), log.head(5)),
                head(3.0, Source::Store, log.head(8)),
            ],
            duration: 5.0,
            ..History::default()
        }
    }

    #[tokio::test]
    async fn a_clean_run_has_no_violations() {
        let log = MemoryLog::new(12);
        let report = check(&history(&log), log.head(12), &log).await;
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!(report.acked, 10);
        assert_eq!(report.heads, 5);
        assert_eq!(report.availability, 1.0);
    }

    #[tokio::test]
    async fn a_lost_acknowledged_leaf_is_reported() {
        let mut log = MemoryLog::new(12);
        let h = history(&log);
        // The log "forgot" leaf 7 and took another in its place.
        log.leaves[7] = leaf(100);
        let report = check(&h, log.head(12), &log).await;
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.contains("acknowledged leaf") && v.contains(&hex(&leaf(7)))),
            "{:?}",
            report.violations
        );
    }

    #[tokio::test]
    async fn a_head_of_a_forked_tree_is_reported_inconsistent() {
        let log = MemoryLog::new(12);
        let mut fork = MemoryLog::new(12);
        fork.leaves[2] = leaf(200);
        let mut h = history(&log);
        h.heads.push(head(4.0, Source::Frontend(1), fork.head(9)));
        let report = check(&h, log.head(12), &log).await;
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.contains("is not consistent") && v.contains("(size 9)")),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn a_size_going_back_or_two_roots_for_a_size_are_reported() {
        let log = MemoryLog::new(12);
        let mut fork = MemoryLog::new(12);
        fork.leaves[0] = leaf(300);
        let mut h = history(&log);
        h.heads.push(head(4.0, Source::Frontend(0), log.head(2)));
        h.heads.push(head(4.5, Source::Store, fork.head(8)));
        let violations = check_heads(&h);
        assert!(
            violations
                .iter()
                .any(|v| v.contains("went back from size 3 to 2")),
            "{violations:?}"
        );
        assert!(
            violations
                .iter()
                .any(|v| v.contains("two roots for size 8")),
            "{violations:?}"
        );
    }

    #[tokio::test]
    async fn a_forked_head_sent_to_a_witness_is_reported_but_an_older_one_is_not() {
        let log = MemoryLog::new(12);
        let mut fork = MemoryLog::new(12);
        fork.leaves[4] = leaf(400);
        let mut h = history(&log);
        // Asking a witness again for an older head is no violation.
        h.heads.push(head(4.0, Source::Witness(1), log.head(8)));
        h.heads.push(head(4.1, Source::Witness(1), log.head(5)));
        assert!(check_heads(&h).is_empty(), "{:?}", check_heads(&h));
        // A head of another tree, even one never served, is.
        h.heads.push(head(4.2, Source::Witness(2), fork.head(10)));
        h.heads.push(head(4.3, Source::Witness(3), fork.head(5)));
        let report = check(&h, log.head(12), &log).await;
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.contains("two roots for size 5") && v.contains("witness 3")),
            "{:?}",
            report.violations
        );
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.contains("is not consistent") && v.contains("(size 10)")),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn tiles_rebuild_the_root_of_their_leaves() {
        let log = MemoryLog::new(600);
        let tiles: Vec<Vec<Hash>> = log.leaves.chunks(256).map(<[Hash]>::to_vec).collect();
        assert_eq!(root_from_tiles(&tiles), log.head(600).root);
        let mut lost = tiles.clone();
        lost[1][7] = leaf(9999);
        assert_ne!(root_from_tiles(&lost), log.head(600).root);
        assert_eq!(root_from_tiles(&[]), cairn_tlog::EMPTY_ROOT);
    }

    #[test]
    fn availability_and_recovery_come_from_the_acknowledgements() {
        let h = History {
            acks: vec![ack(0.2, 0), ack(1.5, 1), ack(4.8, 2)],
            faults: vec![Fault {
                row: "r".into(),
                what: "w".into(),
                at: 2.0,
                healed: Some(3.0),
            }],
            duration: 6.2,
            ..History::default()
        };
        assert_eq!(availability(&h), 3.0 / 6.0);
        let r = recoveries(&h);
        assert!((r[0].expect("recovered") - 2.8).abs() < 1e-9);
    }
}
