//! The sequencing pipeline end to end on one node, with real components:
//! RocksDB and a LocalFileSystem tile store in temporary directories, and the
//! gRPC service on a real 127.0.0.1 socket, driven through the generated
//! client.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::LEADER_METADATA_KEY;
use cairn_proto::v1::sequencer_client::SequencerClient;
use cairn_proto::v1::{
    AddLeavesRequest, Cosignature as PbCosignature, CosignedTreeHead, GetLeafIndexRequest,
    GetLeafIndicesRequest, GetTreeHeadsRequest, PublishCosignedRequest,
    SignedTreeHead as PbSignedTreeHead, TreeHeads,
};
use cairn_sequencer::batcher::BatcherConfig;
use cairn_sequencer::network::RaftTransportService;
use cairn_sequencer::service::{SequencerService, grpc_router};
use cairn_sequencer::shard::{Shard, ShardConfig};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::tree_head::{self, SignedTreeHead, TreeHead};
use cairn_sigsum::{KeyHash, Signature, SigningKey};
use cairn_storage::{TileStore, TrustedHead};
use cairn_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use cairn_tlog::cosignature::Cosigner;
use cairn_tlog::note::Ed25519NoteVerifier;
use cairn_tlog::proof::verify_inclusion;
use cairn_tlog::{Hash, leaf_hash};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Code, Status};

const SHARD: &str = "dev";
const WITNESS_NAME: &str = "witness.test/w1";
/// Generous bound for anything that waits on the pipeline (leader election,
/// integration); polling stops as soon as the condition holds.
const PATIENCE: Duration = Duration::from_secs(60);

fn log_key() -> SigningKey {
    SigningKey::from_seed(&[0x4c; 32])
}

fn witness() -> Cosigner {
    Cosigner::new(WITNESS_NAME, &[0x57; 32]).expect("valid witness name")
}

fn submitter() -> SigningKey {
    SigningKey::from_seed(&[0x53; 32])
}

/// Leaf `i` of the test: a Sigsum leaf over message SHA-256(i), signed by
/// the test submitter.
fn leaf(i: u64) -> [u8; 128] {
    let message = cairn_sigsum::crypto::hash(&i.to_be_bytes());
    Leaf::sign(&submitter(), &message).to_bytes()
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `f` until it yields a value, failing the test after [`PATIENCE`].
async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The directories of one node; they outlive node restarts.
struct Dirs {
    _root: tempfile::TempDir,
    raft: PathBuf,
    tiles: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let root = tempfile::tempdir().expect("tempdir");
        Dirs {
            raft: root.path().join("raft").join(SHARD),
            tiles: root.path().join("tiles"),
            _root: root,
        }
    }
}

/// A running node: the shard and its gRPC server.
struct Node {
    shard: Arc<Shard>,
    addr: SocketAddr,
    store: TileStore,
    stop_server: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Node {
    async fn start(dirs: &Dirs, configure: impl FnOnce(&mut ShardConfig)) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let store = tile_store(&dirs.tiles);
        let transport = RaftTransportService::new();
        let mut config = ShardConfig::new(
            SHARD,
            1,
            &dirs.raft,
            log_key(),
            store.clone(),
            format!("http://{addr}"),
        );
        config.witnesses = vec![cairn_sigsum::PublicKey(witness().public_key())];
        config.transport = Some(transport.clone());
        configure(&mut config);
        let shard = Arc::new(Shard::start(config).await.expect("shard starts"));
        let service = SequencerService::new([shard.clone()]);
        let (stop_server, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            // No health watchers here (the dropped sender would end one at once).
            grpc_router(service, transport, tokio::sync::watch::channel(false).1)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        Node {
            shard,
            addr,
            store,
            stop_server,
            server,
        }
    }

    async fn client(&self) -> SequencerClient<Channel> {
        SequencerClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    async fn wait_for_leadership(&self) {
        let shard = self.shard.clone();
        poll("leadership", || {
            let shard = shard.clone();
            async move { shard.is_leader().then_some(()) }
        })
        .await;
    }

    async fn stop(self) {
        let _ = self.stop_server.send(());
        self.server.await.expect("server task").expect("server ran");
        self.shard.shutdown().await;
    }
}

fn tile_store(dir: &Path) -> TileStore {
    TileStore::local(dir, SHARD).expect("local tile store")
}

async fn add(
    client: &mut SequencerClient<Channel>,
    leaves: Vec<Vec<u8>>,
    wait_ms: u32,
) -> Result<Vec<(bool, u64)>, Status> {
    let resp = client
        .add_leaves(AddLeavesRequest {
            shard: SHARD.into(),
            leaves,
            wait_ms,
        })
        .await?;
    Ok(resp
        .into_inner()
        .results
        .into_iter()
        .map(|r| (r.committed, r.index))
        .collect())
}

async fn tree_heads(client: &mut SequencerClient<Channel>) -> TreeHeads {
    client
        .get_tree_heads(GetTreeHeadsRequest {
            shard: SHARD.into(),
        })
        .await
        .expect("GetTreeHeads")
        .into_inner()
}

/// Polls GetTreeHeads until the signed size is `size`.
async fn wait_for_signed_size(client: &SequencerClient<Channel>, size: u64) -> TreeHeads {
    poll(&format!("signed size {size}"), || {
        let mut client = client.clone();
        async move {
            let heads = tree_heads(&mut client).await;
            let signed = heads.signed.as_ref()?.size;
            (signed == size).then_some(heads)
        }
    })
    .await
}

/// The signed tree head of a GetTreeHeads response, as cairn_sigsum's type.
fn signed_head(pb: &PbSignedTreeHead) -> SignedTreeHead {
    SignedTreeHead {
        tree_head: TreeHead {
            size: pb.size,
            root_hash: pb.root_hash.as_slice().try_into().expect("32-byte root"),
        },
        signature: Signature(
            pb.signature
                .as_slice()
                .try_into()
                .expect("64-byte signature"),
        ),
    }
}

/// A cosigned head for `signed`, cosigned by the test witness at `timestamp`.
fn cosign(signed: &PbSignedTreeHead, timestamp: u64) -> CosignedTreeHead {
    let origin = tree_head::origin_for_key(&log_key().public_key());
    let root: Hash = signed
        .root_hash
        .as_slice()
        .try_into()
        .expect("32-byte root");
    let w = witness();
    let c = w
        .cosign(&Checkpoint::new(origin, signed.size, root), timestamp)
        .expect("cosign");
    CosignedTreeHead {
        signed: Some(signed.clone()),
        cosignatures: vec![PbCosignature {
            key_hash: cairn_sigsum::PublicKey(w.public_key())
                .key_hash()
                .0
                .to_vec(),
            timestamp: c.timestamp,
            signature: c.signature.to_vec(),
            note_name: WITNESS_NAME.into(),
        }],
    }
}

async fn publish(
    client: &mut SequencerClient<Channel>,
    head: CosignedTreeHead,
) -> Result<(), Status> {
    client
        .publish_cosigned(PublishCosignedRequest {
            shard: SHARD.into(),
            head: Some(head),
        })
        .await
        .map(|_| ())
}

/// Checks the tiles in `store` against the signed head: same root, every
/// leaf as submitted, and every inclusion proof verifies.
async fn check_tiles(store: &TileStore, head: &SignedTreeHead, leaves: &[[u8; 128]]) {
    let size = head.tree_head.size;
    let root = head.tree_head.root_hash;
    // Every read verifies the tiles it uses against the signed root: the
    // tiles of `size` hash to it.
    let trusted = TrustedHead::new(size, root);
    assert_eq!(
        store
            .leaf_hash(size - 1, trusted)
            .await
            .expect("tiles verify against the signed head"),
        leaf_hash(&leaves[size as usize - 1])
    );
    let mut stored = Vec::new();
    while (stored.len() as u64) < size {
        let start = stored.len() as u64;
        stored.extend(store.leaves(start, size, trusted).await.expect("leaves"));
    }
    assert_eq!(stored.as_slice(), &leaves[..size as usize]);
    for (index, leaf) in leaves.iter().take(size as usize).enumerate() {
        let index = index as u64;
        let path = store
            .inclusion_proof(index, size, trusted)
            .await
            .expect("inclusion proof");
        verify_inclusion(&leaf_hash(leaf), index, size, &path, &root)
            .unwrap_or_else(|e| panic!("inclusion proof of leaf {index} fails: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_are_sequenced_integrated_signed_published_and_survive_a_restart() {
    init_tracing();
    let dirs = Dirs::new();
    let node = Node::start(&dirs, |_| {}).await;
    node.wait_for_leadership().await;
    let client = node.client().await;
    let log_pub = log_key().public_key();

    tracing::info!("1000 leaves in 100 concurrent calls of 10 are all committed, indices 0..999");
    let leaves: Vec<[u8; 128]> = (0..1000).map(leaf).collect();
    let mut calls = JoinSet::new();
    for chunk in 0..100u64 {
        let mut client = client.clone();
        let batch: Vec<Vec<u8>> = (chunk * 10..chunk * 10 + 10)
            .map(|i| leaves[i as usize].to_vec())
            .collect();
        calls.spawn(async move { (chunk, add(&mut client, batch, 10_000).await) });
    }
    let mut index_of = vec![None; 1000];
    while let Some(joined) = calls.join_next().await {
        let (chunk, results) = joined.expect("call task");
        let results = results.expect("AddLeaves succeeds");
        assert_eq!(results.len(), 10);
        for (k, (committed, index)) in results.into_iter().enumerate() {
            assert!(committed, "leaf {} not committed", chunk * 10 + k as u64);
            index_of[(chunk * 10) as usize + k] = Some(index);
        }
    }
    let mut indices: Vec<u64> = index_of.iter().map(|i| i.expect("index")).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..1000).collect::<Vec<u64>>());
    // Batches, not leaves, are Raft entries: even counting the Integrated
    // entries and the initial membership, the log is far shorter than one
    // entry per leaf.
    let last_log = node.shard.raft().metrics().borrow().last_log_index;
    assert!(
        last_log.is_some_and(|i| i < 1000),
        "{last_log:?} log entries for 1000 leaves"
    );
    // Leaves in index order, for checking tiles.
    let mut by_index = vec![[0u8; 128]; 1000];
    for (i, index) in index_of.iter().enumerate() {
        by_index[index.expect("index") as usize] = leaves[i];
    }

    tracing::info!("duplicates answer with their existing index, also within one call");
    let mut c = client.clone();
    let again: Vec<Vec<u8>> = (0..50).map(|i| leaves[i].to_vec()).collect();
    let results = add(&mut c, again, 1000).await.expect("resubmission");
    for (i, (committed, index)) in results.into_iter().enumerate() {
        assert!(committed);
        assert_eq!(Some(index), index_of[i]);
    }
    let twice = vec![leaves[7].to_vec(), leaves[7].to_vec()];
    let results = add(&mut c, twice, 1000).await.expect("duplicate pair");
    assert_eq!(results, vec![(true, index_of[7].expect("index")); 2]);

    tracing::info!("GetLeafIndex finds sequenced leaves by leaf hash");
    let found = c
        .get_leaf_index(GetLeafIndexRequest {
            shard: SHARD.into(),
            leaf_hash: leaf_hash(&leaves[123]).to_vec(),
        })
        .await
        .expect("GetLeafIndex")
        .into_inner();
    assert!(found.found);
    assert_eq!(Some(found.index), index_of[123]);
    let missing = c
        .get_leaf_index(GetLeafIndexRequest {
            shard: SHARD.into(),
            leaf_hash: leaf_hash(&leaf(5000)).to_vec(),
        })
        .await
        .expect("GetLeafIndex")
        .into_inner();
    assert!(!missing.found);

    tracing::info!("GetLeafIndices answers many lookups in request order");
    let asked = [leaf(5000), leaves[0], leaves[999], leaves[123], leaf(5001)];
    let found = c
        .get_leaf_indices(GetLeafIndicesRequest {
            shard: SHARD.into(),
            leaf_hashes: asked.iter().map(|l| leaf_hash(l).to_vec()).collect(),
        })
        .await
        .expect("GetLeafIndices")
        .into_inner()
        .results;
    let found: Vec<Option<u64>> = found.iter().map(|r| r.found.then_some(r.index)).collect();
    assert_eq!(
        found,
        vec![None, index_of[0], index_of[999], index_of[123], None]
    );
    let too_many = c
        .get_leaf_indices(GetLeafIndicesRequest {
            shard: SHARD.into(),
            leaf_hashes: vec![leaf_hash(&leaves[0]).to_vec(); 1025],
        })
        .await
        .expect_err("over the limit");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);

    tracing::info!("integration catches up; the signed head verifies and matches the tiles");
    let heads = wait_for_signed_size(&client, 1000).await;
    assert_eq!(heads.tree_size, 1000);
    assert!(heads.cosigned.is_none());
    let pb_signed = heads.signed.clone().expect("signed head");
    let signed = signed_head(&pb_signed);
    assert!(
        signed.verify(&log_pub),
        "signed tree head verifies with the log key"
    );
    check_tiles(&node.store, &signed, &by_index).await;

    tracing::info!("a cosigned head with a valid witness cosignature is published");
    publish(&mut c, cosign(&pb_signed, 1_700_000_000))
        .await
        .expect("PublishCosigned accepted");
    let heads = tree_heads(&mut c).await;
    let cosigned = heads.cosigned.clone().expect("cosigned head published");
    assert_eq!(cosigned.signed.as_ref(), Some(&pb_signed));
    assert_eq!(cosigned.cosignatures.len(), 1);
    let cs = &cosigned.cosignatures[0];
    let sigsum_cosig = tree_head::Cosignature {
        key_hash: KeyHash(cs.key_hash.as_slice().try_into().expect("32 bytes")),
        timestamp: cs.timestamp,
        signature: Signature(cs.signature.as_slice().try_into().expect("64 bytes")),
    };
    assert!(sigsum_cosig.verify(
        &cairn_sigsum::PublicKey(witness().public_key()),
        &signed.tree_head,
        &log_pub.key_hash()
    ));

    tracing::info!("the checkpoint object parses and verifies: log line and cosignature line");
    let checkpoint = node
        .store
        .checkpoint()
        .await
        .expect("read checkpoint")
        .expect("checkpoint written");
    let parsed = SignedCheckpoint::parse(&checkpoint).expect("checkpoint parses");
    assert_eq!(parsed.checkpoint().size, 1000);
    assert_eq!(parsed.checkpoint().root, signed.tree_head.root_hash);
    assert_eq!(parsed.signatures().len(), 2);
    let origin = tree_head::origin_for_key(&log_pub);
    let log_verifier = Ed25519NoteVerifier::new(&origin, &log_pub.0).expect("log verifier");
    let witness_verifier = witness().verifier();
    let verified = parsed
        .verify(&[&log_verifier, &witness_verifier])
        .expect("checkpoint verifies");
    assert_eq!(
        verified.len(),
        2,
        "both the log and the witness line verify"
    );

    tracing::info!("a smaller size is refused");
    let at_1000 = TrustedHead::new(1000, signed.tree_head.root_hash);
    let small_root = node.store.root(500, at_1000).await.expect("root at 500");
    let small = TreeHead {
        size: 500,
        root_hash: small_root,
    }
    .sign(&log_key());
    let small_pb = PbSignedTreeHead {
        size: 500,
        root_hash: small_root.to_vec(),
        signature: small.signature.0.to_vec(),
    };
    let err = publish(&mut c, cosign(&small_pb, 1_700_000_001))
        .await
        .expect_err("smaller size refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.metadata().get(LEADER_METADATA_KEY).is_none());

    tracing::info!("a forged log signature is refused");
    let forged = TreeHead {
        size: 1000,
        root_hash: signed.tree_head.root_hash,
    }
    .sign(&SigningKey::from_seed(&[0x66; 32]));
    let mut forged_pb = pb_signed.clone();
    forged_pb.signature = forged.signature.0.to_vec();
    let err = publish(&mut c, cosign(&forged_pb, 1_700_000_002))
        .await
        .expect_err("forged log signature refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    tracing::info!("a forged cosignature is refused");
    let mut bad_cosig = cosign(&pb_signed, 1_700_000_003);
    bad_cosig.cosignatures[0].timestamp += 1;
    let err = publish(&mut c, bad_cosig)
        .await
        .expect_err("forged cosignature refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        tree_heads(&mut c).await.cosigned,
        Some(cosigned.clone()),
        "refused publications change nothing"
    );
    assert_eq!(
        node.store.checkpoint().await.expect("read").as_ref(),
        Some(&checkpoint)
    );

    tracing::info!("restart from the same directories, with the checkpoint object lost");
    let before = tree_heads(&mut c).await;
    drop(c);
    drop(client);
    node.stop().await;
    // Recovery needs only the Raft log and state machine: the new leader
    // re-writes the checkpoint object from the applied cosigned head.
    std::fs::remove_file(dirs.tiles.join(SHARD).join("checkpoint")).expect("remove checkpoint");
    let node = Node::start(&dirs, |_| {}).await;
    node.wait_for_leadership().await;
    let client = node.client().await;
    let c = client.clone();
    let after = wait_for_signed_size(&client, 1000).await;
    assert_eq!(after, before, "tree heads unchanged by the restart");
    let state = node.shard.state();
    assert_eq!((state.tree_size, state.integrated_size), (1000, 1000));
    let rewritten = poll("the checkpoint object to be re-written", || {
        let store = node.store.clone();
        async move { store.checkpoint().await.expect("read checkpoint") }
    })
    .await;
    assert_eq!(rewritten, checkpoint, "checkpoint unchanged by the restart");

    tracing::info!("new leaves continue at index 1000 and are integrated");
    let new: Vec<[u8; 128]> = (1000..1005).map(leaf).collect();
    let results = poll("AddLeaves on the restarted leader", || {
        let mut c = c.clone();
        let batch: Vec<Vec<u8>> = new.iter().map(|l| l.to_vec()).collect();
        async move { add(&mut c, batch, 10_000).await.ok() }
    })
    .await;
    assert_eq!(results, (1000..1005).map(|i| (true, i)).collect::<Vec<_>>());
    let heads = wait_for_signed_size(&client, 1005).await;
    let signed = signed_head(heads.signed.as_ref().expect("signed"));
    assert!(signed.verify(&log_pub));
    by_index.extend(new);
    check_tiles(&node.store, &signed, &by_index).await;
    assert_eq!(
        heads.cosigned,
        Some(cosigned),
        "the published head stays until the next publication"
    );
    drop(c);
    drop(client);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_invalid_argument_and_unknown_shards_not_found() {
    init_tracing();
    let dirs = Dirs::new();
    let node = Node::start(&dirs, |_| {}).await;
    node.wait_for_leadership().await;
    let mut c = node.client().await;

    let err = add(&mut c, vec![vec![0; 127]], 100)
        .await
        .expect_err("127-byte leaf");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = add(&mut c, vec![vec![0; 129]], 100)
        .await
        .expect_err("129-byte leaf");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let too_many: Vec<Vec<u8>> = (0..4097).map(|i| leaf(i).to_vec()).collect();
    let err = add(&mut c, too_many, 100).await.expect_err("4097 leaves");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(node.shard.state().tree_size, 0, "nothing was sequenced");

    let err = c
        .add_leaves(AddLeavesRequest {
            shard: "nope".into(),
            leaves: vec![leaf(1).to_vec()],
            wait_ms: 100,
        })
        .await
        .expect_err("unknown shard");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = c
        .get_tree_heads(GetTreeHeadsRequest {
            shard: "nope".into(),
        })
        .await
        .expect_err("unknown shard");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    let err = c
        .get_leaf_index(GetLeafIndexRequest {
            shard: SHARD.into(),
            leaf_hash: vec![0; 31],
        })
        .await
        .expect_err("31-byte leaf hash");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let err = c
        .publish_cosigned(PublishCosignedRequest {
            shard: SHARD.into(),
            head: None,
        })
        .await
        .expect_err("missing head");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // The empty tree is signed at size 0 with the empty root.
    let heads = tree_heads(&mut c).await;
    let signed = signed_head(heads.signed.as_ref().expect("signed"));
    assert_eq!(signed.tree_head, TreeHead::empty());
    assert!(signed.verify(&log_key().public_key()));
    drop(c);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_pushes_back_with_resource_exhausted() {
    init_tracing();
    let dirs = Dirs::new();
    let node = Node::start(&dirs, |config| {
        config.batcher = BatcherConfig {
            max_pending: 4,
            ..BatcherConfig::default()
        };
    })
    .await;
    node.wait_for_leadership().await;
    let mut c = node.client().await;

    let five: Vec<Vec<u8>> = (0..5).map(|i| leaf(i).to_vec()).collect();
    let err = add(&mut c, five, 1000)
        .await
        .expect_err("more leaves than the pool holds");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(node.shard.state().tree_size, 0, "nothing was queued");

    // Within the limit, the same pool accepts and commits.
    let four: Vec<Vec<u8>> = (0..4).map(|i| leaf(i).to_vec()).collect();
    let results = add(&mut c, four, 10_000).await.expect("within the limit");
    assert!(results.iter().all(|(committed, _)| *committed));
    drop(c);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_not_committed_by_the_deadline_is_pending_and_still_gets_sequenced() {
    init_tracing();
    let dirs = Dirs::new();
    // A batch stays open far longer than the caller waits.
    let node = Node::start(&dirs, |config| {
        config.batcher = BatcherConfig {
            max_delay: Duration::from_millis(500),
            ..BatcherConfig::default()
        };
    })
    .await;
    node.wait_for_leadership().await;
    let mut c = node.client().await;

    let results = add(&mut c, vec![leaf(42).to_vec()], 0)
        .await
        .expect("AddLeaves");
    assert_eq!(results, vec![(false, 0)], "not committed within 0 ms");

    // The proposal continues without the caller; the leaf gets index 0.
    let index = poll("the leaf to be sequenced", || {
        let mut c = c.clone();
        async move {
            let r = c
                .get_leaf_index(GetLeafIndexRequest {
                    shard: SHARD.into(),
                    leaf_hash: leaf_hash(&leaf(42)).to_vec(),
                })
                .await
                .ok()?
                .into_inner();
            r.found.then_some(r.index)
        }
    })
    .await;
    assert_eq!(index, 0);
    let results = add(&mut c, vec![leaf(42).to_vec()], 0)
        .await
        .expect("resubmission");
    assert_eq!(results, vec![(true, 0)], "a resubmission finds the leaf");
    drop(c);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_leader_refuses_writes_with_failed_precondition() {
    init_tracing();
    let dirs = Dirs::new();
    // Never initialized: no membership, so this node never leads.
    let node = Node::start(&dirs, |config| config.bootstrap = false).await;
    let mut c = node.client().await;

    let err = add(&mut c, vec![leaf(1).to_vec()], 100)
        .await
        .expect_err("not leader");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.metadata().get(LEADER_METADATA_KEY).is_none(),
        "no leader is known, so none is named"
    );
    let signed = PbSignedTreeHead {
        size: 0,
        root_hash: cairn_tlog::EMPTY_ROOT.to_vec(),
        signature: TreeHead::empty().sign(&log_key()).signature.0.to_vec(),
    };
    let err = publish(&mut c, cosign(&signed, 1))
        .await
        .expect_err("not leader");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // Reads still work from the local state.
    let heads = tree_heads(&mut c).await;
    assert_eq!(heads.tree_size, 0);
    drop(c);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_larger_than_a_batch_is_split_over_several_batches() {
    init_tracing();
    let dirs = Dirs::new();
    let node = Node::start(&dirs, |config| {
        config.batcher = BatcherConfig {
            max_leaves: 4,
            max_pending: 10,
            ..BatcherConfig::default()
        };
    })
    .await;
    node.wait_for_leadership().await;
    let mut c = node.client().await;

    // 10 leaves take exactly the whole pending limit, in batches of 4, 4, 2.
    let ten: Vec<Vec<u8>> = (0..10).map(|i| leaf(i).to_vec()).collect();
    let results = add(&mut c, ten, 10_000).await.expect("AddLeaves");
    assert!(results.iter().all(|(committed, _)| *committed));
    let mut indices: Vec<u64> = results.iter().map(|(_, i)| *i).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..10).collect::<Vec<u64>>());
    // Batch boundaries are the only integrable sizes; integration reaches 10.
    let heads = wait_for_signed_size(&c, 10).await;
    assert!(signed_head(heads.signed.as_ref().expect("signed")).verify(&log_key().public_key()));
    // The whole limit is free again once the batches are committed.
    let more: Vec<Vec<u8>> = (10..20).map(|i| leaf(i).to_vec()).collect();
    let results = add(&mut c, more, 10_000).await.expect("AddLeaves");
    assert!(results.iter().all(|(committed, _)| *committed));
    drop(c);
    node.stop().await;
}

/// Adds `leaves` in calls of 100, each waiting for the commit, and returns
/// them in index order.
async fn add_all(client: &SequencerClient<Channel>, leaves: &[[u8; 128]]) -> Vec<[u8; 128]> {
    let mut by_index = std::collections::BTreeMap::new();
    for chunk in leaves.chunks(100) {
        let mut c = client.clone();
        let batch = chunk.iter().map(|l| l.to_vec()).collect();
        let results = add(&mut c, batch, 10_000).await.expect("AddLeaves");
        for ((committed, index), leaf) in results.into_iter().zip(chunk) {
            assert!(committed);
            by_index.insert(index, *leaf);
        }
    }
    by_index.into_values().collect()
}

/// Polls until the tiles in `store` serve the signed head of `heads`, then
/// checks them completely.
async fn wait_for_tiles(store: &TileStore, heads: &TreeHeads, leaves: &[[u8; 128]]) {
    let signed = signed_head(heads.signed.as_ref().expect("signed head"));
    let trusted = TrustedHead::new(signed.tree_head.size, signed.tree_head.root_hash);
    poll("the tiles of the signed head", || {
        let store = store.clone();
        async move {
            store
                .leaf_hash(trusted.size - 1, trusted)
                .await
                .ok()
                .map(drop)
        }
    })
    .await;
    check_tiles(store, &signed, leaves).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_lost_below_the_integrated_size_are_rebuilt_from_full_bundles_and_the_state_machine()
{
    init_tracing();
    let dirs = Dirs::new();
    let tile_dir = dirs.tiles.join(SHARD).join("tile");
    let node = Node::start(&dirs, |_| {}).await;
    node.wait_for_leadership().await;
    let client = node.client().await;
    let leaves: Vec<[u8; 128]> = (0..300).map(leaf).collect();
    let mut by_index = add_all(&client, &leaves).await;
    wait_for_signed_size(&client, 300).await;
    // Integrated at 300: the leaves of the full bundle 000 are pruned from
    // the state machine; leaves 256..300 are still in it.
    assert_eq!(node.shard.state().integrated_size, 300);
    drop(client);
    node.stop().await;

    tracing::info!("every tile and bundle lost but the full bundle 000");
    let bundle = std::fs::read(tile_dir.join("entries").join("000")).expect("full bundle 000");
    std::fs::remove_dir_all(&tile_dir).expect("remove tiles");
    std::fs::create_dir_all(tile_dir.join("entries")).expect("entries dir");
    std::fs::write(tile_dir.join("entries").join("000"), &bundle).expect("put 000 back");
    let node = Node::start(&dirs, |_| {}).await;
    node.wait_for_leadership().await;
    let client = node.client().await;
    let heads = wait_for_signed_size(&client, 300).await;
    wait_for_tiles(&node.store, &heads, &by_index).await;
    assert_eq!(node.shard.halted(), None);

    tracing::info!("integration continues above the rebuilt tiles");
    let more: Vec<[u8; 128]> = (300..305).map(leaf).collect();
    by_index.extend(add_all(&client, &more).await);
    let heads = wait_for_signed_size(&client, 305).await;
    wait_for_tiles(&node.store, &heads, &by_index).await;
    drop(client);
    node.stop().await;

    tracing::info!("with bundle 000 lost too, the pruned leaves are nowhere: the shard halts");
    std::fs::remove_dir_all(&tile_dir).expect("remove tiles");
    let node = Node::start(&dirs, |_| {}).await;
    let reason = poll("the shard to halt", || {
        let shard = node.shard.clone();
        async move { shard.halted() }
    })
    .await;
    assert!(
        reason.contains("neither in the state machine nor in the object store"),
        "{reason}"
    );
    assert!(reason.contains("tile/entries/000"), "{reason}");
    node.stop().await;

    tracing::info!("a bundle 000 of other leaves is not taken for the pruned ones");
    let forged: Vec<[u8; 128]> = (10_000..10_256).map(leaf).collect();
    let forged = cairn_tlog::tile::encode_bundle(&forged).expect("bundle");
    std::fs::create_dir_all(tile_dir.join("entries")).expect("entries dir");
    std::fs::write(tile_dir.join("entries").join("000"), forged).expect("forged 000");
    let node = Node::start(&dirs, |_| {}).await;
    let reason = poll("the shard to halt", || {
        let shard = node.shard.clone();
        async move { shard.halted() }
    })
    .await;
    assert!(reason.contains("did not sequence there"), "{reason}");
    assert!(
        !tile_dir.join("0").exists(),
        "no tile was written from the forged bundle"
    );
    node.stop().await;
}

async fn add_raw(
    client: &mut SequencerClient<Channel>,
    leaves: &[[u8; 128]],
    wait_ms: u32,
) -> cairn_proto::v1::AddLeavesResponse {
    client
        .add_leaves(AddLeavesRequest {
            shard: SHARD.into(),
            leaves: leaves.iter().map(|l| l.to_vec()).collect(),
            wait_ms,
        })
        .await
        .expect("AddLeaves")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_log_keeps_its_accepted_leaves_refuses_new_ones_and_signs_its_final_size() {
    use cairn_proto::v1::admin_client::AdminClient;
    use cairn_proto::v1::{FreezeShardRequest, Frozen};

    init_tracing();
    let dirs = Dirs::new();
    // Batches stay open a while, so a leaf is still queued when the freeze
    // is asked for.
    let node = Node::start(&dirs, |config| {
        config.batcher = BatcherConfig {
            max_delay: Duration::from_millis(300),
            ..BatcherConfig::default()
        };
    })
    .await;
    node.wait_for_leadership().await;
    let mut c = node.client().await;
    let before: Vec<[u8; 128]> = (0..3).map(leaf).collect();
    add_all(&c, &before).await;

    let queued = add_raw(&mut c, &[leaf(10)], 0).await;
    assert!(!queued.results[0].committed && !queued.results[0].frozen);
    let mut admin = AdminClient::connect(format!("http://{}", node.addr))
        .await
        .unwrap();
    let frozen = admin
        .freeze_shard(FreezeShardRequest {
            shard: SHARD.into(),
            successor: "next".into(),
        })
        .await
        .expect("FreezeShard")
        .into_inner()
        .frozen
        .expect("the freeze");
    let expected = Frozen {
        size: 4,
        successor: "next".into(),
    };
    assert_eq!(frozen, expected, "the queued leaf is in the frozen tree");

    // A sequenced leaf keeps its index; a new one is refused, and told why.
    let answer = add_raw(&mut c, &[leaf(10), leaf(11)], 1000).await;
    assert_eq!(
        answer
            .results
            .iter()
            .map(|r| (r.committed, r.index, r.frozen))
            .collect::<Vec<_>>(),
        vec![(true, 3, false), (false, 0, true)]
    );
    assert_eq!(answer.frozen, Some(expected.clone()));

    // Asking again answers the freeze already made.
    let again = admin
        .freeze_shard(FreezeShardRequest {
            shard: SHARD.into(),
            successor: "other".into(),
        })
        .await
        .expect("a second FreezeShard")
        .into_inner();
    assert_eq!(again.frozen, Some(expected.clone()));

    // The final size is integrated, signed and can be published.
    let heads = wait_for_signed_size(&c, 4).await;
    assert_eq!(heads.frozen, Some(expected.clone()));
    let signed = heads.signed.expect("signed head");
    publish(&mut c, cosign(&signed, 1_700_000_000))
        .await
        .expect("the final head publishes");
    let mut all = before.clone();
    all.push(leaf(10));
    check_tiles(&node.store, &signed_head(&signed), &all).await;

    // The freeze survives a restart.
    drop((c, admin));
    node.stop().await;
    let node = Node::start(&dirs, |_| {}).await;
    node.wait_for_leadership().await;
    let mut c = node.client().await;
    // Until the new leader has checked its state, it refuses retryably.
    let answer = poll("an answer after the restart", || {
        let mut c = c.clone();
        async move {
            c.add_leaves(AddLeavesRequest {
                shard: SHARD.into(),
                leaves: vec![leaf(12).to_vec()],
                wait_ms: 1000,
            })
            .await
            .ok()
            .map(|r| r.into_inner())
        }
    })
    .await;
    assert!(answer.results[0].frozen);
    assert_eq!(tree_heads(&mut c).await.frozen, Some(expected));
    drop(c);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_with_a_freeze_time_freezes_itself_when_the_clock_passes_it() {
    init_tracing();
    let dirs = Dirs::new();
    let at = std::time::SystemTime::now() + Duration::from_secs(2);
    let node = Node::start(&dirs, |config| {
        config.freeze_at = Some(at);
        config.successor = "2027h2".into();
    })
    .await;
    node.wait_for_leadership().await;
    let mut c = node.client().await;
    let before: Vec<[u8; 128]> = (0..5).map(leaf).collect();
    add_all(&c, &before).await;
    assert_eq!(tree_heads(&mut c).await.frozen, None, "not before its time");

    let frozen = poll("the scheduled freeze", || {
        let mut c = c.clone();
        async move { tree_heads(&mut c).await.frozen }
    })
    .await;
    assert!(std::time::SystemTime::now() >= at);
    assert_eq!((frozen.size, frozen.successor.as_str()), (5, "2027h2"));
    let answer = add_raw(&mut c, &[leaf(0), leaf(99)], 1000).await;
    assert_eq!(
        answer
            .results
            .iter()
            .map(|r| (r.committed, r.frozen))
            .collect::<Vec<_>>(),
        vec![(true, false), (false, true)]
    );
    wait_for_signed_size(&c, 5).await;
    drop(c);
    node.stop().await;
}
