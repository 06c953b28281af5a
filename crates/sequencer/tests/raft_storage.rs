//! The shard's Raft storage on real RocksDB in temp dirs: openraft's storage
//! conformance suite, and the state machine's command semantics, restart and
//! snapshot behaviour.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cairn_sequencer::log_store::{RaftLogStore, StoreError, open_shard_db};
use cairn_sequencer::state_machine::{
    MAX_APPEND_LEAVES, MAX_READ_LEAVES, SnapshotOptions, StateMachine,
};
use cairn_sequencer::types::{
    Command, CommandResponse, CosignedHead, Frozen, LEAF_SIZE, NodeId, ShardState,
    StoredCosignature, TypeConfig,
};
use cairn_testvectors::JsonExt;
use cairn_tlog::{EMPTY_ROOT, Hash};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    AnyError, BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader,
    RaftSnapshotBuilder, StorageError, StorageIOError, Vote,
};
use tempfile::TempDir;

/// A fresh shard database in its own temp dir per suite case.
struct RocksBuilder;

impl StoreBuilder<TypeConfig, RaftLogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, RaftLogStore, StateMachine), StorageError<NodeId>> {
        let io = |e: &dyn std::fmt::Display| -> StorageError<NodeId> {
            StorageIOError::<NodeId>::write(AnyError::error(e.to_string())).into()
        };
        let dir = tempfile::tempdir().map_err(|e| io(&e))?;
        // A subdirectory, so the snapshot directory beside it is in `dir`.
        let db = open_shard_db(&dir.path().join("db")).map_err(|e| io(&e))?;
        let log = RaftLogStore::new(db.clone()).map_err(|e| io(&e))?;
        let sm = StateMachine::new(db).map_err(|e| io(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn storage_passes_openraft_conformance_suite() {
    Suite::test_all(RocksBuilder).expect("openraft storage suite");
}

// ---- helpers ----------------------------------------------------------------

/// A distinct, deterministic 128-byte leaf per `n` (the state machine treats
/// leaves as opaque bytes).
fn leaf(n: u32) -> [u8; LEAF_SIZE] {
    let mut l = [0u8; LEAF_SIZE];
    l[..4].copy_from_slice(&n.to_be_bytes());
    l[LEAF_SIZE - 1] = 0xAA;
    l
}

fn batch(ns: &[u32]) -> Vec<u8> {
    ns.iter().flat_map(|&n| leaf(n)).collect()
}

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

/// A shard database in a temp dir, with a state machine applying entries at
/// consecutive log indices.
struct Shard {
    dir: TempDir,
    sm: StateMachine,
    next_index: u64,
}

/// The state machine of the database in `dir/db`, with its snapshots in
/// `dir/db.snapshots`, and `options` applied to the defaults.
fn open_sm(dir: &Path, options: impl FnOnce(&mut SnapshotOptions)) -> StateMachine {
    let path = dir.join("db");
    let mut opts = SnapshotOptions::beside(&path);
    assert_eq!(opts.dir, dir.join("db.snapshots"));
    options(&mut opts);
    StateMachine::with_options(open_shard_db(&path).unwrap(), opts).unwrap()
}

impl Shard {
    fn new() -> Self {
        Self::with_options(|_| {})
    }

    fn with_options(options: impl FnOnce(&mut SnapshotOptions)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sm = open_sm(dir.path(), options);
        Shard {
            dir,
            sm,
            next_index: 1,
        }
    }

    async fn apply_all(&mut self, commands: Vec<Command>) -> Vec<CommandResponse> {
        let entries: Vec<Entry<TypeConfig>> = commands
            .into_iter()
            .map(|c| {
                let e = Entry {
                    log_id: log_id(self.next_index),
                    payload: EntryPayload::Normal(c),
                };
                self.next_index += 1;
                e
            })
            .collect();
        self.sm.apply(entries).await.unwrap()
    }

    async fn apply(&mut self, command: Command) -> CommandResponse {
        self.apply_all(vec![command]).await.pop().unwrap()
    }

    async fn append(&mut self, ns: &[u32]) -> Vec<u64> {
        match self.apply(Command::Append { leaves: batch(ns) }).await {
            CommandResponse::Appended { indices } => indices,
            other => panic!("append not applied: {other:?}"),
        }
    }

    /// Drops the state machine and database and opens them again.
    fn reopen(self) -> Self {
        let Shard {
            dir,
            sm,
            next_index,
        } = self;
        drop(sm);
        let sm = open_sm(dir.path(), |_| {});
        Shard {
            dir,
            sm,
            next_index,
        }
    }
}

/// An unnamed temp file holding `bytes`, as openraft hands snapshot data
/// to `install_snapshot`.
async fn file_with(bytes: &[u8]) -> tokio::fs::File {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let mut file = tokio::fs::File::from_std(tempfile::tempfile().unwrap());
    file.write_all(bytes).await.unwrap();
    file.flush().await.unwrap();
    file.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    file
}

fn root(sm: &StateMachine, size: u64) -> Hash {
    sm.root_at(size).unwrap().expect("a batch boundary")
}

fn head(size: u64, root: Hash) -> CosignedHead {
    CosignedHead {
        size,
        root,
        signature: vec![7; 64],
        cosignatures: vec![StoredCosignature {
            key_hash: [9; 32],
            timestamp: 1_700_000_000,
            signature: vec![8; 64],
            note_name: "witness.example".into(),
        }],
    }
}

fn assert_rejected(response: CommandResponse, what: &str) {
    assert!(
        matches!(response, CommandResponse::Rejected { .. }),
        "{what}: expected Rejected, got {response:?}"
    );
}

// ---- command semantics -------------------------------------------------------

#[tokio::test]
async fn append_assigns_consecutive_indices_and_dedups_across_batches() {
    let mut s = Shard::new();
    assert_eq!(s.append(&[10, 11, 12]).await, vec![0, 1, 2]);
    // 11 is known: it keeps its index; 13 and 14 are new.
    assert_eq!(s.append(&[13, 11, 14]).await, vec![3, 1, 4]);
    // A batch of only known leaves adds nothing.
    assert_eq!(s.append(&[12, 10]).await, vec![2, 0]);

    let state = s.sm.state();
    assert_eq!(state.tree_size, 5);
    assert_eq!(state.last_applied, Some(log_id(3)));
    let hash = cairn_tlog::leaf_hash(&leaf(13));
    assert_eq!(s.sm.leaf_index(&hash).unwrap(), Some(3));
    assert_eq!(
        s.sm.leaf_index(&cairn_tlog::leaf_hash(&leaf(99))).unwrap(),
        None
    );
    assert_eq!(
        s.sm.leaves(0, 5).unwrap(),
        vec![leaf(10), leaf(11), leaf(12), leaf(13), leaf(14)]
    );
}

#[tokio::test]
async fn duplicates_within_a_batch_and_within_an_apply_call_get_the_first_index() {
    let mut s = Shard::new();
    assert_eq!(s.append(&[1, 2, 1, 3, 2]).await, vec![0, 1, 0, 2, 1]);
    // Two entries in one apply call (one WriteBatch): the second sees the
    // first's leaves although they are not yet written.
    let responses = s
        .apply_all(vec![
            Command::Append {
                leaves: batch(&[4, 5]),
            },
            Command::Append {
                leaves: batch(&[5, 6, 4]),
            },
        ])
        .await;
    assert_eq!(
        responses,
        vec![
            CommandResponse::Appended {
                indices: vec![3, 4]
            },
            CommandResponse::Appended {
                indices: vec![4, 5, 3]
            },
        ]
    );
    assert_eq!(s.sm.state().tree_size, 6);
    assert_eq!(s.sm.leaves(3, 6).unwrap(), vec![leaf(4), leaf(5), leaf(6)]);
}

#[tokio::test]
async fn roots_at_batch_boundaries_match_the_sigsum_known_answers() {
    let v = cairn_testvectors::json("derived/sigsum-v1-deterministic.json");
    let leaves: Vec<Vec<u8>> = v
        .arr_at("leaves")
        .iter()
        .map(|l| cairn_testvectors::unhex(l.str_at("leaf_bytes_hex")))
        .collect();
    assert_eq!(leaves.len(), 7);
    let want =
        |size: u64| cairn_testvectors::unhex32(v["roots_by_size_hex"].str_at(&size.to_string()));

    let mut s = Shard::new();
    assert_eq!(s.sm.state().tree_root, EMPTY_ROOT);
    assert_eq!(s.sm.root_at(0).unwrap(), Some(want(0)));
    let first: Vec<u8> = leaves[..4].concat();
    let rest: Vec<u8> = leaves[4..].concat();
    assert_eq!(
        s.apply(Command::Append { leaves: first }).await,
        CommandResponse::Appended {
            indices: vec![0, 1, 2, 3]
        }
    );
    assert_eq!(
        s.apply(Command::Append { leaves: rest }).await,
        CommandResponse::Appended {
            indices: vec![4, 5, 6]
        }
    );
    assert_eq!(root(&s.sm, 4), want(4));
    assert_eq!(root(&s.sm, 7), want(7));
    assert_eq!(s.sm.state().tree_root, want(7));
    // Sizes inside a batch are not boundaries.
    assert_eq!(s.sm.root_at(5).unwrap(), None);
    let hash = cairn_testvectors::unhex32(v.arr_at("leaves")[6].str_at("leaf_hash_hex"));
    assert_eq!(s.sm.leaf_index(&hash).unwrap(), Some(6));
}

#[tokio::test]
async fn malformed_appends_are_rejected_without_effect() {
    let mut s = Shard::new();
    s.append(&[1]).await;
    let before = s.sm.state();

    let mut ragged = batch(&[2]);
    ragged.push(0);
    assert_rejected(
        s.apply(Command::Append { leaves: ragged }).await,
        "ragged append",
    );
    let too_many = vec![0u8; (MAX_APPEND_LEAVES + 1) * LEAF_SIZE];
    assert_rejected(
        s.apply(Command::Append { leaves: too_many }).await,
        "oversized append",
    );

    let after = s.sm.state();
    assert_eq!(after.tree_size, before.tree_size);
    assert_eq!(after.tree_root, before.tree_root);
    assert_eq!(
        s.sm.leaf_index(&cairn_tlog::leaf_hash(&leaf(2))).unwrap(),
        None
    );
    // Rejected commands still advance last_applied (they were applied as no-ops).
    assert_eq!(after.last_applied, Some(log_id(3)));
}

#[tokio::test]
async fn integrated_applies_only_at_a_batch_boundary_with_the_sequenced_root() {
    let mut s = Shard::new();
    s.append(&[1, 2]).await;
    s.append(&[3, 4, 5]).await;
    let (r2, r5) = (root(&s.sm, 2), root(&s.sm, 5));

    assert_eq!(
        s.apply(Command::Integrated {
            size: 0,
            root: EMPTY_ROOT
        })
        .await,
        CommandResponse::Applied
    );
    assert_rejected(
        s.apply(Command::Integrated { size: 3, root: r2 }).await,
        "size inside a batch",
    );
    assert_rejected(
        s.apply(Command::Integrated { size: 2, root: r5 }).await,
        "wrong root",
    );
    assert_rejected(
        s.apply(Command::Integrated { size: 6, root: r5 }).await,
        "beyond the tree",
    );
    assert_eq!(s.sm.state().integrated_size, 0);

    assert_eq!(
        s.apply(Command::Integrated { size: 5, root: r5 }).await,
        CommandResponse::Applied
    );
    let state = s.sm.state();
    assert_eq!((state.integrated_size, state.integrated_root), (5, r5));
    assert_rejected(
        s.apply(Command::Integrated { size: 2, root: r2 }).await,
        "below integrated",
    );
    // Re-stating the current integrated size is harmless.
    assert_eq!(
        s.apply(Command::Integrated { size: 5, root: r5 }).await,
        CommandResponse::Applied
    );

    // A boundary created earlier in the same apply call is recognised.
    let responses = s
        .apply_all(vec![
            Command::Append {
                leaves: batch(&[6]),
            },
            Command::Integrated {
                size: 6,
                root: {
                    let mut t = cairn_tlog::compact::CompactRange::new();
                    for n in 1..=6 {
                        t.append(cairn_tlog::leaf_hash(&leaf(n))).unwrap();
                    }
                    t.root()
                },
            },
        ])
        .await;
    assert_eq!(responses[1], CommandResponse::Applied);
    assert_eq!(s.sm.state().integrated_size, 6);
}

#[tokio::test]
async fn cosigned_applies_only_for_an_integrated_size_with_its_root() {
    let mut s = Shard::new();
    s.append(&[1, 2]).await;
    s.append(&[3]).await;
    s.append(&[4, 5]).await;
    let (r2, r3, r5) = (root(&s.sm, 2), root(&s.sm, 3), root(&s.sm, 5));
    assert_eq!(
        s.apply(Command::Integrated { size: 3, root: r3 }).await,
        CommandResponse::Applied
    );

    assert_rejected(
        s.apply(Command::Cosigned { head: head(5, r5) }).await,
        "not integrated",
    );
    assert_rejected(
        s.apply(Command::Cosigned { head: head(3, r2) }).await,
        "wrong root",
    );
    assert_eq!(s.sm.state().cosigned, None);

    assert_eq!(
        s.apply(Command::Cosigned { head: head(2, r2) }).await,
        CommandResponse::Applied
    );
    assert_eq!(
        s.apply(Command::Cosigned { head: head(3, r3) }).await,
        CommandResponse::Applied
    );
    assert_eq!(s.sm.state().cosigned, Some(head(3, r3)));
    assert_rejected(
        s.apply(Command::Cosigned { head: head(2, r2) }).await,
        "below published",
    );
    // The empty tree is integrated from the start.
    let mut fresh = Shard::new();
    assert_eq!(
        fresh
            .apply(Command::Cosigned {
                head: head(0, EMPTY_ROOT)
            })
            .await,
        CommandResponse::Applied
    );
}

#[tokio::test]
async fn leaves_refuses_reversed_oversized_and_unsequenced_ranges() {
    let mut s = Shard::new();
    s.append(&[1, 2, 3]).await;
    for (start, end) in [(2, 1), (0, 4), (0, MAX_READ_LEAVES + 1)] {
        match s.sm.leaves(start, end) {
            Err(e @ StoreError::InvalidArgument(_)) => assert!(!e.is_fatal()),
            other => panic!("leaves({start}, {end}): expected InvalidArgument, got {other:?}"),
        }
    }
    assert_eq!(s.sm.leaves(1, 1).unwrap(), Vec::<[u8; LEAF_SIZE]>::new());
}

#[tokio::test]
async fn subscribers_see_every_applied_state() {
    let mut s = Shard::new();
    let mut rx = s.sm.subscribe();
    assert_eq!(rx.borrow_and_update().tree_size, 0);
    s.append(&[1, 2]).await;
    assert!(rx.has_changed().unwrap());
    let state = rx.borrow_and_update().clone();
    assert_eq!(state.tree_size, 2);
    assert_eq!(state, s.sm.state());
}

// ---- restart and snapshots ---------------------------------------------------

#[tokio::test]
async fn applied_state_survives_reopen() {
    let mut s = Shard::new();
    s.append(&[1, 2, 3]).await;
    s.append(&[4]).await;
    let r4 = root(&s.sm, 4);
    s.apply(Command::Integrated { size: 4, root: r4 }).await;
    s.apply(Command::Cosigned { head: head(4, r4) }).await;
    let before = s.sm.state();

    let mut s = s.reopen();
    assert_eq!(s.sm.state(), before);
    assert_eq!(s.sm.subscribe().borrow().clone(), before);
    assert_eq!(
        s.sm.leaves(0, 4).unwrap(),
        vec![leaf(1), leaf(2), leaf(3), leaf(4)]
    );
    assert_eq!(s.sm.root_at(4).unwrap(), Some(r4));
    // Dedup and index assignment continue where they were.
    assert_eq!(s.append(&[2, 5]).await, vec![1, 4]);
}

#[tokio::test]
async fn a_frozen_log_adds_no_leaf_but_integrates_and_publishes_its_final_size() {
    let mut s = Shard::new();
    s.append(&[1, 2, 3]).await;
    let frozen = Frozen {
        size: 3,
        successor: "next".into(),
    };
    let responses = s
        .apply_all(vec![
            Command::Freeze {
                successor: "next".into(),
            },
            // Proposed before the freeze was known: refused in the same apply.
            Command::Append {
                leaves: batch(&[4]),
            },
            // A second freeze changes nothing.
            Command::Freeze {
                successor: "other".into(),
            },
        ])
        .await;
    assert_eq!(
        responses,
        vec![
            CommandResponse::Applied,
            CommandResponse::Frozen(frozen.clone()),
            CommandResponse::Applied,
        ]
    );
    // Leaves already in the tree are refused alike: the batcher looks them
    // up before it proposes anything.
    assert_eq!(
        s.apply(Command::Append {
            leaves: batch(&[1])
        })
        .await,
        CommandResponse::Frozen(frozen.clone())
    );
    let state = s.sm.state();
    assert_eq!(
        (state.tree_size, state.frozen.clone()),
        (3, Some(frozen.clone()))
    );
    assert_eq!(
        s.sm.leaf_index(&cairn_tlog::leaf_hash(&leaf(4))).unwrap(),
        None
    );

    // The final size still integrates and publishes.
    let r3 = root(&s.sm, 3);
    assert_eq!(
        s.apply(Command::Integrated { size: 3, root: r3 }).await,
        CommandResponse::Applied
    );
    assert_eq!(
        s.apply(Command::Cosigned { head: head(3, r3) }).await,
        CommandResponse::Applied
    );

    // The freeze is durable, and travels in snapshots.
    let mut s = s.reopen();
    assert_eq!(s.sm.state().frozen, Some(frozen.clone()));
    let snapshot =
        s.sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    let mut follower = Shard::new();
    follower
        .sm
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(follower.sm.state(), s.sm.state());
    follower.next_index = s.next_index;
    assert_eq!(
        follower
            .apply(Command::Append {
                leaves: batch(&[5])
            })
            .await,
        CommandResponse::Frozen(frozen)
    );
}

/// Everything observable through the read API, for comparing two replicas.
fn observe(
    sm: &StateMachine,
    leaves: &[u32],
    sizes: &[u64],
) -> (ShardState, Vec<Option<u64>>, Vec<Option<Hash>>) {
    let state = sm.state().into_inner();
    let indices = leaves
        .iter()
        .map(|&n| sm.leaf_index(&cairn_tlog::leaf_hash(&leaf(n))).unwrap())
        .collect();
    let roots = sizes.iter().map(|&n| sm.root_at(n).unwrap()).collect();
    (state, indices, roots)
}

#[tokio::test]
async fn a_snapshot_installed_on_a_fresh_database_reproduces_the_state() {
    let mut leader = Shard::new();
    let membership = Entry::<TypeConfig> {
        log_id: log_id(leader.next_index),
        payload: EntryPayload::Membership(Membership::new(
            vec![[1u64].into()],
            BTreeMap::from([(1u64, BasicNode::new("http://127.0.0.1:1"))]),
        )),
    };
    leader.next_index += 1;
    leader.sm.apply([membership]).await.unwrap();
    leader.append(&[1, 2, 3]).await;
    leader.append(&[4, 5]).await;
    let r5 = root(&leader.sm, 5);
    leader
        .apply(Command::Integrated { size: 5, root: r5 })
        .await;
    leader.apply(Command::Cosigned { head: head(5, r5) }).await;

    let snapshot = leader
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, leader.sm.state().last_applied);

    let mut follower = Shard::new();
    let rx = follower.sm.subscribe();
    follower
        .sm
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert!(rx.has_changed().unwrap(), "install publishes the new state");

    let probe_leaves = [1, 2, 3, 4, 5, 6];
    let probe_sizes = [0, 3, 4, 5];
    assert_eq!(
        observe(&follower.sm, &probe_leaves, &probe_sizes),
        observe(&leader.sm, &probe_leaves, &probe_sizes)
    );
    assert_eq!(
        follower.sm.leaves(0, 5).unwrap(),
        leader.sm.leaves(0, 5).unwrap()
    );
    let (applied, stored_membership) = follower.sm.applied_state().await.unwrap();
    assert_eq!(applied, leader.sm.state().last_applied);
    assert_eq!(stored_membership.log_id(), &Some(log_id(1)));

    // The installed state survives a restart and keeps sequencing identically.
    follower.next_index = leader.next_index;
    let mut follower = follower.reopen();
    assert_eq!(follower.append(&[3, 6]).await, leader.append(&[3, 6]).await);
    assert_eq!(follower.sm.state().tree_root, leader.sm.state().tree_root);
}

#[tokio::test]
async fn a_snapshot_whose_metadata_disagrees_with_its_content_is_refused() {
    let mut leader = Shard::new();
    leader.append(&[1]).await;
    let mut snapshot = leader
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    snapshot.meta.last_log_id = Some(log_id(99));

    let mut follower = Shard::new();
    follower.append(&[7]).await;
    let before = follower.sm.state();
    assert!(
        follower
            .sm
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .is_err()
    );
    assert_eq!(follower.sm.state(), before);
    assert_eq!(follower.sm.leaves(0, 1).unwrap(), vec![leaf(7)]);

    let garbage = Box::new(file_with(&[0xff; 10]).await);
    assert!(
        follower
            .sm
            .install_snapshot(&snapshot.meta, garbage)
            .await
            .is_err()
    );
    assert_eq!(follower.sm.state(), before);
}

// ---- pruning -------------------------------------------------------------------

/// Appends leaves `ns` in batches of at most `per_batch` and returns the
/// tree size.
async fn append_range(s: &mut Shard, ns: std::ops::Range<u32>, per_batch: usize) -> u64 {
    let all: Vec<u32> = ns.collect();
    for chunk in all.chunks(per_batch) {
        s.append(chunk).await;
    }
    s.sm.state().tree_size
}

async fn integrate(s: &mut Shard, size: u64) {
    let root = root(&s.sm, size);
    assert_eq!(
        s.apply(Command::Integrated { size, root }).await,
        CommandResponse::Applied
    );
}

fn assert_pruned(sm: &StateMachine, start: u64, end: u64, pruned_below: u64) {
    match sm.leaves(start, end) {
        Err(
            e @ StoreError::Pruned {
                pruned_below: p, ..
            },
        ) => {
            assert_eq!(p, pruned_below, "leaves({start}, {end})");
            assert!(!e.is_fatal());
        }
        other => panic!("leaves({start}, {end}): expected Pruned, got {other:?}"),
    }
}

#[tokio::test]
async fn integrated_prunes_the_leaves_of_full_bundles_while_dedup_and_roots_stay() {
    let mut s = Shard::new();
    assert_eq!(append_range(&mut s, 0..300, 100).await, 300);
    assert_eq!(append_range(&mut s, 300..600, 100).await, 600);

    integrate(&mut s, 300).await;
    assert_eq!(s.sm.pruned_below(), 256);
    assert_pruned(&s.sm, 0, 10, 256);
    assert_pruned(&s.sm, 255, 260, 256);
    // The partial bundle's leaves stay: tiles of the integrated size can be
    // rebuilt from full bundles plus the state machine.
    assert_eq!(
        s.sm.leaves(256, 300).unwrap(),
        (256..300).map(leaf).collect::<Vec<_>>()
    );

    integrate(&mut s, 600).await;
    assert_eq!(s.sm.pruned_below(), 512);
    assert_pruned(&s.sm, 300, 400, 512);
    assert_eq!(
        s.sm.leaves(512, 600).unwrap(),
        (512..600).map(leaf).collect::<Vec<_>>()
    );
    assert_eq!(s.sm.leaves(10, 10).unwrap(), Vec::<[u8; LEAF_SIZE]>::new());

    // The dedup index and the roots are untouched: a pruned leaf submitted
    // again keeps its index and adds nothing.
    for n in [0u32, 3, 255, 256, 511] {
        assert_eq!(
            s.sm.leaf_index(&cairn_tlog::leaf_hash(&leaf(n))).unwrap(),
            Some(u64::from(n))
        );
    }
    assert!(s.sm.root_at(300).unwrap().is_some());
    let root_before = s.sm.state().tree_root;
    assert_eq!(s.append(&[3, 255]).await, vec![3, 255]);
    assert_eq!(s.sm.state().tree_size, 600);
    assert_eq!(s.sm.state().tree_root, root_before);
    assert_eq!(s.append(&[3, 600]).await, vec![3, 600]);

    // All of it survives a restart.
    let s = s.reopen();
    assert_eq!(s.sm.pruned_below(), 512);
    assert_pruned(&s.sm, 0, 1, 512);
    assert_eq!(s.sm.leaves(512, 601).unwrap()[88], leaf(600));
    assert_eq!(
        s.sm.leaf_index(&cairn_tlog::leaf_hash(&leaf(3))).unwrap(),
        Some(3)
    );
}

#[tokio::test]
async fn a_snapshot_of_a_pruned_state_installs_pruned_and_keeps_deduplicating() {
    let mut leader = Shard::new();
    append_range(&mut leader, 0..700, 350).await;
    integrate(&mut leader, 700).await;
    let snapshot = leader
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let mut follower = Shard::new();
    follower
        .sm
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    let stats = follower.sm.last_install_stats().expect("install stats");
    assert_eq!(stats.skipped_leaves, 0, "the leader's snapshot is pruned");
    // State record, 2 roots, 700 index entries, leaves 512..700.
    assert_eq!(stats.records, 1 + 2 + 700 + 188);
    assert_eq!(follower.sm.state(), leader.sm.state());
    assert_pruned(&follower.sm, 0, 512, 512);
    assert_eq!(
        follower.sm.leaves(512, 700).unwrap(),
        leader.sm.leaves(512, 700).unwrap()
    );
    follower.next_index = leader.next_index;
    assert_eq!(follower.append(&[5, 700]).await, vec![5, 700]);
    assert_eq!(leader.append(&[5, 700]).await, vec![5, 700]);
    assert_eq!(follower.sm.state().tree_root, leader.sm.state().tree_root);
}

// ---- streamed snapshots -----------------------------------------------------------

/// The names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_snapshot_of_many_leaves_is_written_in_bounded_chunks_and_installed_in_bounded_batches() {
    const CHUNK: usize = 16 * 1024;
    const BATCH: usize = 64 * 1024;
    let mut leader = Shard::with_options(|o| o.write_chunk_bytes = CHUNK);
    // Not integrated: every leaf is in the snapshot.
    assert_eq!(append_range(&mut leader, 0..5000, 1000).await, 5000);
    let snapshot = leader
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let stats = leader.sm.last_build_stats().expect("build stats");
    let file_len = snapshot.snapshot.metadata().await.unwrap().len();
    assert_eq!(stats.bytes, file_len);
    // 5000 leaves and 5000 index entries: far more than one chunk, written
    // as many chunks none of which exceeds the bound.
    assert!(file_len > 40 * CHUNK as u64, "{file_len} bytes");
    assert!(stats.largest_chunk <= CHUNK, "{stats:?}");
    assert!(stats.chunks >= file_len / CHUNK as u64, "{stats:?}");
    assert_eq!(stats.records, 1 + 5 + 5000 + 5000);
    assert_eq!(
        files_in(leader.sm.snapshot_dir()),
        vec!["current.meta", "current.snap"]
    );

    let mut follower = Shard::with_options(|o| o.install_batch_bytes = BATCH);
    follower.append(&[99_999]).await;
    follower
        .sm
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    let stats = follower.sm.last_install_stats().expect("install stats");
    assert_eq!(stats.records, 1 + 5 + 5000 + 5000);
    // About 900 KB of records in batches of at most 64 KiB.
    assert!(stats.batches >= 10, "{stats:?}");
    assert!(stats.largest_batch <= BATCH, "{stats:?}");
    assert_eq!(follower.sm.state(), leader.sm.state());
    assert_eq!(
        follower.sm.leaves(0, 5000).unwrap(),
        leader.sm.leaves(0, 5000).unwrap()
    );
    assert_eq!(
        follower
            .sm
            .leaf_index(&cairn_tlog::leaf_hash(&leaf(99_999)))
            .unwrap(),
        None,
        "the previous state is gone"
    );
    // The installed file is the follower's current snapshot; nothing else
    // is left behind.
    assert_eq!(
        files_in(follower.sm.snapshot_dir()),
        vec!["current.meta", "current.snap"]
    );
    let current = follower.sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, leader.sm.state().last_applied);

    // A newer build replaces the older file.
    leader.append(&[5000]).await;
    let newer = leader
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(
        files_in(leader.sm.snapshot_dir()),
        vec!["current.meta", "current.snap"]
    );
    let current = leader.sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, newer.meta);
}

#[tokio::test]
async fn a_truncated_or_corrupt_snapshot_is_refused_and_the_previous_state_stays() {
    let mut leader = Shard::new();
    append_range(&mut leader, 0..600, 300).await;
    integrate(&mut leader, 300).await;
    let snapshot = leader
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let bytes = std::fs::read(leader.sm.snapshot_dir().join("current.snap")).unwrap();

    let mut follower = Shard::new();
    follower.append(&[7, 8]).await;
    let before = follower.sm.state();
    let mut damaged: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("cut in half", bytes[..bytes.len() / 2].to_vec()),
        ("cut by one byte", bytes[..bytes.len() - 1].to_vec()),
        ("trailing bytes", [bytes.as_slice(), &[0]].concat()),
    ];
    for at in [20, bytes.len() / 3, bytes.len() - 40] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        damaged.push(("a flipped byte", flipped));
    }
    for (what, data) in damaged {
        let refused = follower
            .sm
            .install_snapshot(&snapshot.meta, Box::new(file_with(&data).await))
            .await;
        assert!(refused.is_err(), "{what}: installed");
        assert_eq!(follower.sm.state(), before, "{what}");
        assert_eq!(
            follower.sm.leaves(0, 2).unwrap(),
            vec![leaf(7), leaf(8)],
            "{what}"
        );
    }
    // Nothing half-installed is left, across a restart either.
    assert_eq!(files_in(follower.sm.snapshot_dir()), Vec::<String>::new());
    let mut follower = follower.reopen();
    assert_eq!(follower.sm.state(), before);
    assert_eq!(follower.sm.leaves(0, 2).unwrap(), vec![leaf(7), leaf(8)]);
    // The intact file still installs.
    follower
        .sm
        .install_snapshot(&snapshot.meta, Box::new(file_with(&bytes).await))
        .await
        .unwrap();
    assert_eq!(follower.sm.state(), leader.sm.state());
}

#[tokio::test]
async fn a_received_snapshot_streamed_in_chunks_installs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut leader = Shard::new();
    append_range(&mut leader, 0..1000, 500).await;
    integrate(&mut leader, 1000).await;
    let mut snapshot = leader
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    // As openraft's chunked transport does: write chunks into the file
    // `begin_receiving_snapshot` returns, shut it down, install it.
    let mut follower = Shard::new();
    let mut receiving = follower.sm.begin_receiving_snapshot().await.unwrap();
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = snapshot.snapshot.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        receiving.write_all(&chunk[..n]).await.unwrap();
    }
    receiving.shutdown().await.unwrap();
    assert_eq!(
        files_in(follower.sm.snapshot_dir()).len(),
        1,
        "one file being received"
    );
    follower
        .sm
        .install_snapshot(&snapshot.meta, receiving)
        .await
        .unwrap();
    assert_eq!(follower.sm.state(), leader.sm.state());
    assert_eq!(
        files_in(follower.sm.snapshot_dir()),
        vec!["current.meta", "current.snap"]
    );
    assert_eq!(
        follower.sm.leaves(768, 1000).unwrap(),
        leader.sm.leaves(768, 1000).unwrap()
    );
}

// ---- log store ----------------------------------------------------------------

#[tokio::test]
async fn log_entries_and_vote_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<Entry<TypeConfig>> = (1..=3)
        .map(|i| Entry {
            log_id: log_id(i),
            payload: EntryPayload::Normal(Command::Append {
                leaves: batch(&[i as u32]),
            }),
        })
        .collect();
    {
        let db = open_shard_db(dir.path()).unwrap();
        let mut log = RaftLogStore::new(db).unwrap();
        log.save_vote(&Vote::new(1, 0)).await.unwrap();
        // `blocking_append` waits for the flush callback, as openraft does.
        log.blocking_append(entries.clone()).await.unwrap();
    }
    let db: Arc<_> = open_shard_db(dir.path()).unwrap();
    let mut log = RaftLogStore::new(db).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 0)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(3)));
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(log.try_get_log_entries(1..=3).await.unwrap(), entries);

    log.purge(log_id(1)).await.unwrap();
    log.truncate(log_id(3)).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1)));
    assert_eq!(state.last_log_id, Some(log_id(2)));
    assert_eq!(
        log.try_get_log_entries(..).await.unwrap(),
        entries[1..2].to_vec()
    );
}
