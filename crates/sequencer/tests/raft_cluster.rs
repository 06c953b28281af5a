//! Shard Raft groups over real tonic on loopback, on real RocksDB: a single
//! node that commits, restarts and continues; a three-node group that
//! converges and survives the loss of its leader.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cairn_sequencer::log_store::{StoreError, open_shard_db};
use cairn_sequencer::network::{GrpcNetworkFactory, RaftTransportService};
use cairn_sequencer::raft::{initialize_single_node, start_raft};
use cairn_sequencer::state_machine::StateMachine;
use cairn_sequencer::types::{Command, CommandResponse, LEAF_SIZE, NodeId, TypeConfig};
use openraft::{BasicNode, Raft, ServerState};
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

const SHARD: &str = "test";
/// Upper bound for any single wait; generous for a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(20);

fn config() -> openraft::Config {
    openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    }
}

fn leaf(n: u32) -> [u8; LEAF_SIZE] {
    let mut l = [0u8; LEAF_SIZE];
    l[..4].copy_from_slice(&n.to_be_bytes());
    l[LEAF_SIZE - 1] = 0x55;
    l
}

fn append(ns: &[u32]) -> Command {
    Command::Append {
        leaves: ns.iter().flat_map(|&n| leaf(n)).collect(),
    }
}

/// One replica: its Raft, state machine and gRPC server on 127.0.0.1:0.
struct Node {
    id: NodeId,
    addr: String,
    raft: Raft<TypeConfig>,
    sm: StateMachine,
    service: RaftTransportService,
    server: JoinHandle<()>,
    /// The database, to wait until every handle is gone after a stop.
    db: Weak<rocksdb::DB>,
}

impl Node {
    async fn start(id: NodeId, dir: &Path) -> Node {
        Self::start_with(id, dir, config()).await
    }

    async fn start_with(id: NodeId, dir: &Path, config: openraft::Config) -> Node {
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = format!("http://{}", incoming.local_addr().unwrap());
        // A subdirectory, so the snapshot directory beside it is in `dir`.
        let db = open_shard_db(&dir.join("raft")).unwrap();
        let weak = Arc::downgrade(&db);
        let (raft, sm) = start_raft(id, SHARD, db, config, GrpcNetworkFactory::new(id, SHARD))
            .await
            .unwrap();
        let service = RaftTransportService::new();
        assert!(service.register(SHARD, raft.clone()).is_none());
        let router = Server::builder().add_service(service.clone().into_server());
        let server = tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                eprintln!("raft server stopped: {e}");
            }
        });
        Node {
            id,
            addr,
            raft,
            sm,
            service,
            server,
            db: weak,
        }
    }

    /// Stops Raft and the server and waits until the database is closed, so
    /// the directory can be opened again.
    async fn stop(self) {
        self.service.unregister(SHARD);
        self.raft.shutdown().await.unwrap();
        self.server.abort();
        let Node {
            raft,
            sm,
            service,
            db,
            ..
        } = self;
        drop((raft, sm, service));
        let closed = tokio::time::timeout(DEADLINE, async {
            while db.upgrade().is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "database still open {DEADLINE:?} after shutdown"
        );
    }

    async fn write(&self, command: Command) -> CommandResponse {
        self.raft
            .client_write(command)
            .await
            .expect("client_write")
            .data
    }

    async fn append(&self, ns: &[u32]) -> Vec<u64> {
        match self.write(append(ns)).await {
            CommandResponse::Appended { indices } => indices,
            other => panic!("append not applied: {other:?}"),
        }
    }

    async fn wait_leader(&self, msg: &str) {
        self.raft
            .wait(Some(DEADLINE))
            .state(ServerState::Leader, msg)
            .await
            .unwrap_or_else(|e| panic!("node {} never became leader: {e}", self.id));
    }

    /// Waits until this replica has applied a tree of `size` leaves.
    async fn wait_tree_size(&self, size: u64) {
        let mut rx = self.sm.subscribe();
        let reached = tokio::time::timeout(DEADLINE, rx.wait_for(|s| s.tree_size >= size)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "node {} did not reach tree size {size}: {:?}",
            self.id,
            self.sm.state()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_commits_batches_and_continues_after_restart() {
    let dir = tempfile::tempdir().unwrap();

    let node = Node::start(1, dir.path()).await;
    assert!(
        initialize_single_node(&node.raft, 1, node.addr.clone())
            .await
            .unwrap()
    );
    node.wait_leader("fresh single node elects itself").await;
    assert_eq!(node.append(&[1, 2, 3]).await, vec![0, 1, 2]);
    assert_eq!(node.append(&[4, 2, 5]).await, vec![3, 1, 4]);
    assert_eq!(node.append(&[6]).await, vec![5]);
    let before = node.sm.state();
    assert_eq!(before.tree_size, 6);
    let membership_before = node.raft.metrics().borrow().membership_config.clone();
    let last_log_before = node.raft.metrics().borrow().last_log_index;
    node.stop().await;

    let node = Node::start(1, dir.path()).await;
    // The applied state is back from disk before Raft does anything.
    assert_eq!(node.sm.state().tree_size, before.tree_size);
    assert_eq!(node.sm.state().tree_root, before.tree_root);
    assert!(
        !initialize_single_node(&node.raft, 1, node.addr.clone())
            .await
            .unwrap(),
        "a restarted node must not be initialized again"
    );
    node.wait_leader("restarted single node elects itself")
        .await;
    assert_eq!(
        node.raft.metrics().borrow().membership_config,
        membership_before
    );
    assert_eq!(node.append(&[3, 7]).await, vec![2, 6]);
    assert!(node.raft.metrics().borrow().last_log_index > last_log_before);
    let after = node.sm.state();
    assert_eq!(after.tree_size, 7);
    assert_eq!(
        node.sm.leaves(0, 7).unwrap(),
        [1, 2, 3, 4, 5, 6, 7].map(leaf).to_vec()
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_and_elect_a_new_leader_when_the_leader_stops() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(Node::start(i as NodeId + 1, dir.path()).await);
    }
    let members: BTreeMap<NodeId, BasicNode> = nodes
        .iter()
        .map(|n| (n.id, BasicNode::new(&n.addr)))
        .collect();
    nodes[0].raft.initialize(members).await.unwrap();

    let leader_id = nodes[0]
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.current_leader.is_some(), "a leader is elected")
        .await
        .unwrap()
        .current_leader
        .unwrap();
    let leader = nodes.iter().find(|n| n.id == leader_id).unwrap();
    leader
        .wait_leader("elected leader is in leader state")
        .await;

    assert_eq!(leader.append(&[1, 2]).await, vec![0, 1]);
    assert_eq!(leader.append(&[3, 1, 4]).await, vec![2, 0, 3]);
    assert_eq!(leader.append(&[5]).await, vec![4]);
    for n in &nodes {
        n.wait_tree_size(5).await;
    }
    let want = leader.sm.state();
    for n in &nodes {
        let got = n.sm.state();
        assert_eq!(
            (got.tree_size, got.tree_root),
            (want.tree_size, want.tree_root),
            "node {}",
            n.id
        );
        assert_eq!(
            n.sm.leaves(0, 5).unwrap(),
            [1, 2, 3, 4, 5].map(leaf).to_vec(),
            "node {}",
            n.id
        );
    }

    // Stop the leader: its Raft and its server.
    let pos = nodes.iter().position(|n| n.id == leader_id).unwrap();
    nodes.remove(pos).stop().await;

    let new_leader_id = nodes[0]
        .raft
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != leader_id),
            "a new leader is elected",
        )
        .await
        .unwrap()
        .current_leader
        .unwrap();
    let new_leader = nodes.iter().find(|n| n.id == new_leader_id).unwrap();
    new_leader
        .wait_leader("new leader is in leader state")
        .await;

    assert_eq!(new_leader.append(&[6, 2, 7]).await, vec![5, 1, 6]);
    for n in &nodes {
        n.wait_tree_size(7).await;
    }
    let want = new_leader.sm.state();
    for n in &nodes {
        let got = n.sm.state();
        assert_eq!(
            (got.tree_size, got.tree_root),
            (want.tree_size, want.tree_root),
            "node {}",
            n.id
        );
        assert_eq!(
            n.sm.leaves(0, 7).unwrap(),
            [1, 2, 3, 4, 5, 6, 7].map(leaf).to_vec(),
            "node {}",
            n.id
        );
    }
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_routes_by_shard_and_maps_failures() {
    use cairn_proto::v1::RaftMessage;
    use cairn_proto::v1::raft_transport_client::RaftTransportClient;
    use openraft::error::RPCError;
    use openraft::network::RPCOption;
    use openraft::raft::VoteRequest;
    use openraft::{RaftNetwork, RaftNetworkFactory, Vote};

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path()).await;
    assert!(
        initialize_single_node(&node.raft, 1, node.addr.clone())
            .await
            .unwrap()
    );
    node.wait_leader("single node elects itself").await;

    // Raw gRPC: an unknown shard is NOT_FOUND, a garbled payload INVALID_ARGUMENT.
    let mut raw = RaftTransportClient::connect(node.addr.clone())
        .await
        .unwrap();
    let status = raw
        .vote(RaftMessage {
            shard: "other".into(),
            payload: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = raw
        .vote(RaftMessage {
            shard: SHARD.into(),
            payload: vec![0xff; 3],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Through openraft's network API: a stale vote round-trips and is refused
    // by the live node's Raft (its vote is newer).
    let option = RPCOption::new(Duration::from_secs(5));
    let mut factory = GrpcNetworkFactory::new(9, SHARD);
    let mut client = factory.new_client(1, &BasicNode::new(&node.addr)).await;
    let reply = client
        .vote(VoteRequest::new(Vote::new(0, 9), None), option.clone())
        .await
        .unwrap();
    assert!(!reply.vote_granted);

    // A peer that is not listening is unreachable (openraft backs off).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut client = factory.new_client(2, &BasicNode::new(&closed_addr)).await;
    match client
        .vote(VoteRequest::new(Vote::new(1, 9), None), option.clone())
        .await
    {
        Err(RPCError::Unreachable(_)) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // So is a peer whose address is not a URI.
    let mut client = factory.new_client(3, &BasicNode::new("not a uri")).await;
    match client
        .vote(VoteRequest::new(Vote::new(1, 9), None), option)
        .await
    {
        Err(RPCError::Unreachable(_)) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_learner_catches_up_from_a_snapshot_sent_over_grpc() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let leader = Node::start(1, dirs[0].path()).await;
    assert!(
        initialize_single_node(&leader.raft, 1, leader.addr.clone())
            .await
            .unwrap()
    );
    leader.wait_leader("single node elects itself").await;
    leader.append(&[1, 2, 3]).await;
    leader.append(&[4, 5]).await;
    let root5 = leader.sm.root_at(5).unwrap().unwrap();
    assert_eq!(
        leader
            .write(Command::Integrated {
                size: 5,
                root: root5
            })
            .await,
        CommandResponse::Applied
    );

    // Snapshot, then purge every log entry: the learner can only be brought up
    // to date by InstallSnapshot.
    let last = leader.raft.metrics().borrow().last_log_index.unwrap();
    leader.raft.trigger().snapshot().await.unwrap();
    leader
        .raft
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await
        .unwrap();
    leader.raft.trigger().purge_log(last).await.unwrap();
    leader
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last), "log purged")
        .await
        .unwrap();

    let learner = Node::start(2, dirs[1].path()).await;
    leader
        .raft
        .add_learner(2, BasicNode::new(&learner.addr), true)
        .await
        .unwrap();
    learner.wait_tree_size(5).await;
    learner
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.snapshot.is_some(), "learner installed a snapshot")
        .await
        .unwrap();
    let (want, got) = (leader.sm.state(), learner.sm.state());
    assert_eq!(
        (
            got.tree_size,
            got.tree_root,
            got.integrated_size,
            got.integrated_root
        ),
        (
            want.tree_size,
            want.tree_root,
            want.integrated_size,
            want.integrated_root
        )
    );
    assert_eq!(
        learner.sm.leaves(0, 5).unwrap(),
        [1, 2, 3, 4, 5].map(leaf).to_vec()
    );

    // Log replication continues after the snapshot.
    assert_eq!(leader.append(&[6, 1]).await, vec![5, 0]);
    learner.wait_tree_size(6).await;
    assert_eq!(learner.sm.state().tree_root, leader.sm.state().tree_root);
    learner.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_from_a_pruned_snapshot_sent_in_many_chunks() {
    const CHUNK: u64 = 16 * 1024;
    let small_chunks = || openraft::Config {
        snapshot_max_chunk_size: CHUNK,
        ..config()
    };
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let leader = Node::start_with(1, dirs[0].path(), small_chunks()).await;
    assert!(
        initialize_single_node(&leader.raft, 1, leader.addr.clone())
            .await
            .unwrap()
    );
    leader.wait_leader("single node elects itself").await;
    for batch in 0..6u32 {
        let ns: Vec<u32> = (batch * 500..batch * 500 + 500).collect();
        leader.append(&ns).await;
    }
    let root = leader.sm.root_at(3000).unwrap().unwrap();
    assert_eq!(
        leader.write(Command::Integrated { size: 3000, root }).await,
        CommandResponse::Applied
    );
    // Integrated: the leaves of the 11 full entry bundles are pruned.
    assert_eq!(leader.sm.pruned_below(), 2816);
    assert!(matches!(
        leader.sm.leaves(0, 1),
        Err(StoreError::Pruned { .. })
    ));

    let last = leader.raft.metrics().borrow().last_log_index.unwrap();
    leader.raft.trigger().snapshot().await.unwrap();
    leader
        .raft
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await
        .unwrap();
    leader.raft.trigger().purge_log(last).await.unwrap();
    leader
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last), "log purged")
        .await
        .unwrap();
    let built = leader.sm.last_build_stats().expect("a snapshot was built");
    assert!(
        built.bytes > 8 * CHUNK,
        "{} bytes fit in a few chunks",
        built.bytes
    );

    let learner = Node::start_with(2, dirs[1].path(), small_chunks()).await;
    leader
        .raft
        .add_learner(2, BasicNode::new(&learner.addr), true)
        .await
        .unwrap();
    learner.wait_tree_size(3000).await;
    learner
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.snapshot.is_some(), "learner installed a snapshot")
        .await
        .unwrap();
    let installed = learner.sm.last_install_stats().expect("installed");
    // State record, 6 roots, 3000 index entries, leaves 2816..3000.
    assert_eq!(installed.records, 1 + 6 + 3000 + 184);
    let (want, got) = (leader.sm.state(), learner.sm.state());
    assert_eq!(
        (
            got.tree_size,
            got.tree_root,
            got.integrated_size,
            got.integrated_root
        ),
        (
            want.tree_size,
            want.tree_root,
            want.integrated_size,
            want.integrated_root
        )
    );
    assert!(matches!(
        learner.sm.leaves(0, 10),
        Err(StoreError::Pruned {
            pruned_below: 2816,
            ..
        })
    ));
    assert_eq!(
        learner.sm.leaves(2816, 3000).unwrap(),
        (2816..3000).map(leaf).collect::<Vec<_>>()
    );
    let hash = cairn_tlog::leaf_hash(&leaf(5));
    assert_eq!(learner.sm.leaf_index(&hash).unwrap(), Some(5));

    // A pruned leaf submitted again is still deduplicated, on both.
    assert_eq!(leader.append(&[5, 3000]).await, vec![5, 3000]);
    learner.wait_tree_size(3001).await;
    assert_eq!(learner.sm.state().tree_root, leader.sm.state().tree_root);
    learner.stop().await;
    leader.stop().await;
}
