//! Test harness: a fake in-memory sequencer behind real tonic gRPC, a real
//! `LocalFileSystem` tile store in a tempdir, and the frontend served over
//! real HTTP on 127.0.0.1.
//!
//! The fake sequences leaves in arrival order, writes their tiles with the
//! same builders and `write_integration` the integrator uses, signs each new
//! size with the log key, and publishes (cosigns with its witnesses and
//! writes the checkpoint) on request or automatically.

#![allow(dead_code)] // Not every test uses every helper.

pub mod raw_http;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::serve::ListenerExt as _;
use cairn_frontend::{FrontendConfig, ShardFrontend, ShardLimits, router};
use cairn_proto::v1 as pb;
use cairn_proto::v1::sequencer_server::{Sequencer, SequencerServer};
use cairn_proto::{PoolOptions, SequencerPool};
use cairn_sigsum::api::AddLeafRequest;
use cairn_sigsum::crypto::hash;
use cairn_sigsum::leaf::{LEAF_SIZE, Leaf};
use cairn_sigsum::tree_head::{Cosignature, CosignedTreeHead, SignedTreeHead, TreeHead, origin};
use cairn_sigsum::{Hash, SigningKey};
use cairn_storage::TileStore;
use cairn_tlog::note::Ed25519NoteSigner;
use cairn_tlog::tile::{BundleBuilder, TileBuilder};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};

/// The shard name (URL prefix and gRPC shard).
pub const SHARD: &str = "dev";

/// The log key used unless a test picks another (the vectors' log seed).
pub const LOG_SEED: [u8; 32] = [0x4c; 32];
/// The default witness (the vectors' witness1 seed).
pub const WITNESS_SEED: [u8; 32] = [0x57; 32];
/// The default cosignature timestamp.
pub const COSIGN_TIME: u64 = 1_700_000_000;

/// How the fake answers `AddLeaves`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddMode {
    /// Sequence, integrate and sign at once; report committed.
    Commit,
    /// Report every leaf as not committed (and keep none).
    Pending,
    /// Fail the call with this status code.
    Fail(Code),
    /// Refuse as a follower that knows no leader (an election is on).
    NotLeader,
    /// A frozen log: leaves it holds are committed, others refused as
    /// frozen; the heads carry the freeze.
    Frozen { size: u64, successor: &'static str },
}

/// The refusal of a sequencer node that is not the leader, naming the
/// leader's URL if given (as the real sequencer's is).
pub fn not_leader(leader: Option<&str>) -> Status {
    let mut status = Status::failed_precondition("not the leader");
    let metadata = status.metadata_mut();
    metadata.insert(cairn_proto::NOT_LEADER_METADATA_KEY, "1".parse().unwrap());
    if let Some(leader) = leader {
        metadata.insert(cairn_proto::LEADER_METADATA_KEY, leader.parse().unwrap());
    }
    status
}

#[derive(Debug)]
struct State {
    leaves: Vec<[u8; LEAF_SIZE]>,
    index: HashMap<Hash, u64>,
    tile_builder: TileBuilder,
    bundle_builder: BundleBuilder,
    signed: Option<SignedTreeHead>,
    cosigned: Option<CosignedTreeHead>,
    checkpoint: Option<Vec<u8>>,
    mode: AddMode,
    auto_publish: bool,
    batches: Vec<usize>,
}

/// The fake sequencer's log.
#[derive(Debug)]
pub struct FakeLog {
    pub log_key: SigningKey,
    pub witnesses: Vec<SigningKey>,
    pub cosign_time: u64,
    pub tiles: TileStore,
    state: Mutex<State>,
    /// When set, each `AddLeaves` call takes one permit before answering.
    add_gate: Option<Arc<Semaphore>>,
    /// When set, `GetTreeHeads` never answers.
    hang_reads: bool,
    /// When set, `GetLeafIndices` is UNIMPLEMENTED (a sequencer from
    /// before that call).
    no_batched_lookups: bool,
    /// When set, `GetTreeHeads` fails `UNAVAILABLE` (see
    /// [`FakeLog::set_reads_unavailable`]).
    reads_unavailable: std::sync::atomic::AtomicBool,
    /// `AddLeaves` calls received (counted before any gate).
    pub add_calls: AtomicUsize,
    /// `GetLeafIndex` and `GetLeafIndices` calls received.
    pub lookup_calls: AtomicUsize,
    /// Bumped whenever the heads change, for `WatchTreeHeads` streams.
    changes: tokio::sync::watch::Sender<u64>,
}

impl FakeLog {
    /// Sequences `leaves` (duplicates keep their first index), writes the
    /// new tiles, signs the new size and, if auto-publishing, publishes it.
    /// Returns each leaf's index.
    pub async fn append(&self, leaves: &[[u8; LEAF_SIZE]]) -> Vec<u64> {
        let mut state = self.state.lock().await;
        let mut indices = Vec::with_capacity(leaves.len());
        let mut fresh = Vec::new();
        for leaf in leaves {
            let leaf_hash = cairn_tlog::leaf_hash(leaf);
            let next = state.leaves.len() as u64;
            let index = *state.index.entry(leaf_hash).or_insert(next);
            if index == next {
                state.leaves.push(*leaf);
                fresh.push(*leaf);
            }
            indices.push(index);
        }
        if !fresh.is_empty() {
            let hashes: Vec<Hash> = fresh.iter().map(|l| cairn_tlog::leaf_hash(l)).collect();
            let tiles = state.tile_builder.append(&hashes).unwrap();
            let bundles = state.bundle_builder.append(&fresh).unwrap();
            self.tiles
                .write_integration(&bundles, &tiles)
                .await
                .unwrap();
            let head = TreeHead {
                size: state.leaves.len() as u64,
                root_hash: state.tile_builder.root(),
            };
            state.signed = Some(head.sign(&self.log_key));
            self.changes.send_modify(|n| *n += 1);
            if state.auto_publish {
                self.publish_locked(&mut state).await;
            }
        }
        indices
    }

    /// Publishes the latest signed head: cosigns it with every witness and
    /// writes the checkpoint object.
    pub async fn publish(&self) {
        let mut state = self.state.lock().await;
        self.publish_locked(&mut state).await;
    }

    async fn publish_locked(&self, state: &mut State) {
        let signed = state.signed.expect("nothing signed yet");
        let log_key_hash = self.log_key.public_key().key_hash();
        let cosignatures = self
            .witnesses
            .iter()
            .map(|w| {
                Cosignature::sign(w, &signed.tree_head, &log_key_hash, self.cosign_time).unwrap()
            })
            .collect();
        state.cosigned = Some(CosignedTreeHead::new(signed, cosignatures).unwrap());
        self.changes.send_modify(|n| *n += 1);
        let signer = Ed25519NoteSigner::new(&origin(&log_key_hash), &self.log_key.seed()).unwrap();
        let body = signed.tree_head.checkpoint_body(&log_key_hash);
        let note = signer.sign_note(&body).unwrap().to_bytes();
        self.tiles
            .put_checkpoint(signed.tree_head.size, note.clone())
            .await
            .unwrap();
        state.checkpoint = Some(note);
    }

    pub async fn set_mode(&self, mode: AddMode) {
        self.state.lock().await.mode = mode;
        self.changes.send_modify(|n| *n += 1);
    }

    /// Makes `GetTreeHeads` fail `UNAVAILABLE` (as a halted or stopping
    /// node does) while `on`.
    pub fn set_reads_unavailable(&self, on: bool) {
        self.reads_unavailable.store(on, Ordering::SeqCst);
    }

    pub async fn set_auto_publish(&self, on: bool) {
        self.state.lock().await.auto_publish = on;
    }

    pub async fn leaves(&self) -> Vec<[u8; LEAF_SIZE]> {
        self.state.lock().await.leaves.clone()
    }

    pub async fn batches(&self) -> Vec<usize> {
        self.state.lock().await.batches.clone()
    }

    pub async fn checkpoint(&self) -> Option<Vec<u8>> {
        self.state.lock().await.checkpoint.clone()
    }

    pub async fn cosigned(&self) -> Option<CosignedTreeHead> {
        self.state.lock().await.cosigned.clone()
    }

    /// Lets `n` more gated `AddLeaves` calls answer.
    pub fn open_gate(&self, n: usize) {
        self.add_gate.as_ref().expect("no gate").add_permits(n);
    }
}

/// The fake's answer to a lookup of `leaf_hash`.
fn lookup(state: &State, leaf_hash: &[u8]) -> Result<pb::GetLeafIndexResponse, Status> {
    let leaf_hash: Hash = leaf_hash
        .try_into()
        .map_err(|_| Status::invalid_argument("leaf hash is not 32 bytes"))?;
    let found = state.index.get(&leaf_hash).copied();
    Ok(pb::GetLeafIndexResponse {
        found: found.is_some(),
        index: found.unwrap_or(0),
    })
}

fn check_shard(shard: &str) -> Result<(), Status> {
    if shard == SHARD {
        Ok(())
    } else {
        Err(Status::not_found(format!("no shard {shard}")))
    }
}

fn signed_pb(s: &SignedTreeHead) -> pb::SignedTreeHead {
    pb::SignedTreeHead {
        size: s.tree_head.size,
        root_hash: s.tree_head.root_hash.to_vec(),
        signature: s.signature.0.to_vec(),
    }
}

/// The heads as the sequencer reports them.
fn heads_message(state: &State) -> pb::TreeHeads {
    let cosigned = state.cosigned.as_ref().map(|c| pb::CosignedTreeHead {
        signed: Some(signed_pb(&c.signed)),
        cosignatures: c
            .cosignatures()
            .iter()
            .map(|cs| pb::Cosignature {
                key_hash: cs.key_hash.0.to_vec(),
                timestamp: cs.timestamp,
                signature: cs.signature.0.to_vec(),
                note_name: "example.org/witness".into(),
            })
            .collect(),
    });
    pb::TreeHeads {
        tree_size: state.leaves.len() as u64,
        signed: state.signed.as_ref().map(signed_pb),
        cosigned,
        frozen: frozen_of(state.mode),
    }
}

fn frozen_of(mode: AddMode) -> Option<pb::Frozen> {
    match mode {
        AddMode::Frozen { size, successor } => Some(pb::Frozen {
            size,
            successor: successor.to_owned(),
        }),
        _ => None,
    }
}

/// The current heads, then the heads after every change, until the log is
/// dropped.
fn async_stream_heads(
    log: Arc<FakeLog>,
    changes: tokio::sync::watch::Receiver<u64>,
) -> impl futures::Stream<Item = Result<pb::TreeHeads, Status>> + Send {
    futures::stream::unfold(
        (log, changes, true),
        |(log, mut changes, first)| async move {
            if !first && changes.changed().await.is_err() {
                return None;
            }
            changes.borrow_and_update();
            let message = heads_message(&*log.state.lock().await);
            Some((Ok(message), (log, changes, false)))
        },
    )
}

/// The gRPC face of a [`FakeLog`].
#[derive(Debug, Clone)]
pub struct FakeSequencer(pub Arc<FakeLog>);

#[tonic::async_trait]
impl Sequencer for FakeSequencer {
    async fn add_leaves(
        &self,
        request: Request<pb::AddLeavesRequest>,
    ) -> Result<Response<pb::AddLeavesResponse>, Status> {
        check_shard(&request.get_ref().shard)?;
        self.0.add_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.0.add_gate {
            gate.acquire().await.unwrap().forget();
        }
        let request = request.into_inner();
        let mut leaves = Vec::with_capacity(request.leaves.len());
        for leaf in &request.leaves {
            let leaf: [u8; LEAF_SIZE] = leaf
                .as_slice()
                .try_into()
                .map_err(|_| Status::invalid_argument("a leaf is not 128 bytes"))?;
            leaves.push(leaf);
        }
        let mode = {
            let mut state = self.0.state.lock().await;
            state.batches.push(leaves.len());
            state.mode
        };
        let results = match mode {
            AddMode::Fail(code) => return Err(Status::new(code, "fake sequencer failure")),
            AddMode::NotLeader => return Err(not_leader(None)),
            AddMode::Pending => leaves
                .iter()
                .map(|_| pb::LeafResult {
                    committed: false,
                    index: 0,
                    frozen: false,
                })
                .collect(),
            AddMode::Commit => self
                .0
                .append(&leaves)
                .await
                .into_iter()
                .map(|index| pb::LeafResult {
                    committed: true,
                    index,
                    frozen: false,
                })
                .collect(),
            AddMode::Frozen { .. } => {
                let state = self.0.state.lock().await;
                leaves
                    .iter()
                    .map(|leaf| {
                        let known = state.index.get(&cairn_tlog::leaf_hash(leaf)).copied();
                        pb::LeafResult {
                            committed: known.is_some(),
                            index: known.unwrap_or(0),
                            frozen: known.is_none(),
                        }
                    })
                    .collect()
            }
        };
        Ok(Response::new(pb::AddLeavesResponse {
            results,
            frozen: frozen_of(mode),
        }))
    }

    async fn get_leaf_index(
        &self,
        request: Request<pb::GetLeafIndexRequest>,
    ) -> Result<Response<pb::GetLeafIndexResponse>, Status> {
        check_shard(&request.get_ref().shard)?;
        self.0.lookup_calls.fetch_add(1, Ordering::SeqCst);
        let state = self.0.state.lock().await;
        lookup(&state, &request.get_ref().leaf_hash).map(Response::new)
    }

    async fn get_leaf_indices(
        &self,
        request: Request<pb::GetLeafIndicesRequest>,
    ) -> Result<Response<pb::GetLeafIndicesResponse>, Status> {
        check_shard(&request.get_ref().shard)?;
        self.0.lookup_calls.fetch_add(1, Ordering::SeqCst);
        if self.0.no_batched_lookups {
            return Err(Status::unimplemented("GetLeafIndices"));
        }
        let state = self.0.state.lock().await;
        let results = request
            .get_ref()
            .leaf_hashes
            .iter()
            .map(|h| lookup(&state, h))
            .collect::<Result<_, Status>>()?;
        Ok(Response::new(pb::GetLeafIndicesResponse { results }))
    }

    async fn get_tree_heads(
        &self,
        request: Request<pb::GetTreeHeadsRequest>,
    ) -> Result<Response<pb::TreeHeads>, Status> {
        check_shard(&request.get_ref().shard)?;
        if self.0.hang_reads {
            std::future::pending::<()>().await;
        }
        if self.0.reads_unavailable.load(Ordering::SeqCst) {
            return Err(Status::unavailable("fake sequencer: reads are off"));
        }
        let state = self.0.state.lock().await;
        Ok(Response::new(heads_message(&state)))
    }

    type WatchTreeHeadsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::TreeHeads, Status>> + Send>>;

    async fn watch_tree_heads(
        &self,
        request: Request<pb::GetTreeHeadsRequest>,
    ) -> Result<Response<Self::WatchTreeHeadsStream>, Status> {
        check_shard(&request.get_ref().shard)?;
        if self.0.hang_reads {
            std::future::pending::<()>().await;
        }
        let log = Arc::clone(&self.0);
        let changes = log.changes.subscribe();
        Ok(Response::new(Box::pin(async_stream_heads(log, changes))))
    }

    async fn publish_cosigned(
        &self,
        _request: Request<pb::PublishCosignedRequest>,
    ) -> Result<Response<pb::PublishCosignedResponse>, Status> {
        Err(Status::unimplemented("the frontend never publishes"))
    }

    async fn report_witness_ahead(
        &self,
        _: Request<pb::ReportWitnessAheadRequest>,
    ) -> Result<Response<pb::ReportWitnessAheadResponse>, Status> {
        Ok(Response::new(pb::ReportWitnessAheadResponse {
            halted: false,
        }))
    }

    async fn get_registry(
        &self,
        _: tonic::Request<cairn_proto::v1::GetRegistryRequest>,
    ) -> Result<tonic::Response<cairn_proto::v1::Registry>, tonic::Status> {
        Err(tonic::Status::not_found("no registry"))
    }
}

/// How to start a [`Harness`].
#[derive(Debug, Clone)]
pub struct Options {
    pub log_seed: [u8; 32],
    pub witness_seeds: Vec<[u8; 32]>,
    pub cosign_time: u64,
    pub limits: ShardLimits,
    pub config: FrontendConfig,
    /// Gate `AddLeaves` calls (see [`FakeLog::open_gate`]).
    pub gate_adds: bool,
    /// `GetTreeHeads` never answers.
    pub hang_reads: bool,
    /// `GetLeafIndices` is UNIMPLEMENTED, as on a sequencer from before it.
    pub no_batched_lookups: bool,
    /// Point the frontend at a port nobody listens on.
    pub sequencer_down: bool,
    /// Sequencer URLs the frontend's pool lists before the fake log's (so
    /// its first guess), e.g. fake followers.
    pub sequencers_before: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_seed: LOG_SEED,
            witness_seeds: vec![WITNESS_SEED],
            cosign_time: COSIGN_TIME,
            limits: ShardLimits::default(),
            config: FrontendConfig::default(),
            gate_adds: false,
            hang_reads: false,
            no_batched_lookups: false,
            sequencer_down: false,
            sequencers_before: Vec::new(),
        }
    }
}

/// A running frontend with its fake sequencer and tile store. Servers run
/// on the test's runtime and stop with it.
#[derive(Debug)]
pub struct Harness {
    /// `http://127.0.0.1:PORT`.
    pub root: String,
    /// The shard's Sigsum base URL, `http://127.0.0.1:PORT/dev/`.
    pub base: String,
    pub http: reqwest::Client,
    pub log: Arc<FakeLog>,
    /// The tile store the (latest) frontend reads: at first the one the
    /// fake sequencer writes with (they share a cache), after
    /// [`Harness::restart_frontend`] a fresh one on the same directory.
    pub frontend_tiles: TileStore,
    grpc_addr: SocketAddr,
    options: Options,
    dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let tiles = TileStore::local(&dir.path().join("tiles"), SHARD).unwrap();
        let log = Arc::new(FakeLog {
            log_key: SigningKey::from_seed(&options.log_seed),
            witnesses: options
                .witness_seeds
                .iter()
                .map(SigningKey::from_seed)
                .collect(),
            cosign_time: options.cosign_time,
            tiles: tiles.clone(),
            changes: tokio::sync::watch::channel(0).0,
            state: Mutex::new(State {
                leaves: Vec::new(),
                index: HashMap::new(),
                tile_builder: TileBuilder::new(),
                bundle_builder: BundleBuilder::new(),
                signed: None,
                cosigned: None,
                checkpoint: None,
                mode: AddMode::Commit,
                auto_publish: true,
                batches: Vec::new(),
            }),
            add_gate: options.gate_adds.then(|| Arc::new(Semaphore::new(0))),
            hang_reads: options.hang_reads,
            no_batched_lookups: options.no_batched_lookups,
            reads_unavailable: std::sync::atomic::AtomicBool::new(false),
            add_calls: AtomicUsize::new(0),
            lookup_calls: AtomicUsize::new(0),
        });

        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr: SocketAddr = grpc.local_addr().unwrap();
        if options.sequencer_down {
            // Nobody will listen on this port once the listener is gone.
            drop(grpc);
        } else {
            let service = SequencerServer::new(FakeSequencer(Arc::clone(&log)));
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(TcpListenerStream::new(grpc).map(|stream| {
                        // Without it, Nagle's algorithm and delayed ACKs
                        // add 40 ms to many small responses.
                        stream.and_then(|s| s.set_nodelay(true).map(|()| s))
                    })),
            );
        }

        let root = serve_frontend(&log, tiles.clone(), grpc_addr, &options).await;
        Harness {
            base: format!("{root}/{SHARD}/"),
            root,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            log,
            frontend_tiles: tiles,
            grpc_addr,
            options,
            dir,
        }
    }

    /// The fake sequencer's gRPC URL, `http://127.0.0.1:PORT`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Starts a new frontend process, as after a restart: a fresh tile
    /// store (empty cache) on the same directory, the same sequencer, a new
    /// port. The old one keeps running but is no longer used.
    pub async fn restart_frontend(&mut self) {
        let tiles = TileStore::local(&self.dir.path().join("tiles"), SHARD).unwrap();
        self.root = serve_frontend(&self.log, tiles.clone(), self.grpc_addr, &self.options).await;
        self.base = format!("{}/{SHARD}/", self.root);
        self.frontend_tiles = tiles;
    }

    /// Flips the lowest bit of byte `at` of the stored object `key` (e.g.
    /// `tile/0/001`), behind the tile store's back: bit rot.
    pub async fn flip_byte(&self, key: &str, at: usize) {
        use object_store::ObjectStoreExt as _;
        let path = object_store::path::Path::from(format!("{SHARD}/{key}"));
        let store = self.log.tiles.object_store();
        let mut bytes = store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bytes[at] ^= 1;
        store.put(&path, bytes.into()).await.unwrap();
    }

    /// GET `base + path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// POST `body` to `base + add-leaf`.
    pub async fn add_leaf(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(format!("{}add-leaf", self.base))
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// Serves a frontend for the fake log's shard reading `tiles`, talking to
/// the sequencer at `grpc_addr`; returns its `http://127.0.0.1:PORT`.
async fn serve_frontend(
    log: &FakeLog,
    tiles: TileStore,
    grpc_addr: SocketAddr,
    options: &Options,
) -> String {
    let mut urls = options.sequencers_before.clone();
    urls.push(format!("http://{grpc_addr}"));
    let shard = ShardFrontend {
        name: SHARD.to_owned(),
        log_key: log.log_key.public_key(),
        sequencer: SequencerPool::new(urls, PoolOptions::default()).unwrap(),
        tiles,
        limits: options.limits.clone(),
    };
    let app = router(vec![shard], options.config.clone()).unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let http = http.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(http, app).await });
    format!("http://{http_addr}")
}

/// The submitter key of the tests (the vectors' submitter seed).
pub fn submitter() -> SigningKey {
    SigningKey::from_seed(&[0x53; 32])
}

/// The add-leaf request and leaf for test message number `i`.
pub fn request(i: u64) -> (AddLeafRequest, Leaf) {
    let message = hash(&i.to_be_bytes());
    let request = AddLeafRequest::sign(&submitter(), &message);
    (request, request.to_leaf().unwrap())
}

/// The leaves of messages `0..n`, as stored.
pub fn leaves(n: u64) -> Vec<[u8; LEAF_SIZE]> {
    (0..n).map(|i| request(i).1.to_bytes()).collect()
}

/// Roots of every prefix of `leaves`, computed independently of the tiles.
pub fn roots(leaves: &[[u8; LEAF_SIZE]]) -> BTreeMap<u64, Hash> {
    let mut range = cairn_tlog::compact::CompactRange::new();
    let mut roots = BTreeMap::new();
    roots.insert(0, range.root());
    for leaf in leaves {
        range.append(cairn_tlog::leaf_hash(leaf)).unwrap();
        roots.insert(range.size(), range.root());
    }
    roots
}

/// Polls `condition` every 10 ms until it holds; panics after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
