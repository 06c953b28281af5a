//! The collector against real components on loopback: cairn-witness
//! servers (honest, slow, down, garbage, ahead of the log), a fake in-memory
//! sequencer over real gRPC, and tiles in a LocalFileSystem TileStore.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_collector::{Collector, CollectorConfig, MetricsSnapshot};
use cairn_proto::v1 as pb;
use cairn_proto::v1::sequencer_server::{Sequencer, SequencerServer};
use cairn_proto::{PoolOptions, SequencerPool};
use cairn_sigsum::policy::Policy;
use cairn_sigsum::tree_head::{Cosignature, TreeHead};
use cairn_sigsum::{KeyHash, PublicKey, Signature, SigningKey};
use cairn_storage::TileStore;
use cairn_tlog::tile::{BundleBuilder, TileBuilder};
use cairn_witness::{Witness, WitnessConfig, WitnessState};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

const SHARD: &str = "dev";
const LOG_SEED: [u8; 32] = [0x4c; 32];

// --- fake sequencer ---------------------------------------------------------

#[derive(Debug, Default)]
struct SeqState {
    signed: Option<pb::SignedTreeHead>,
    cosigned: Option<pb::CosignedTreeHead>,
    published: Vec<pb::CosignedTreeHead>,
}

/// Serves a signed tree head set by the test and records publications;
/// `WatchTreeHeads` sends the heads again after each `set_signed`. As a
/// follower (`leader` set) it refuses publications and reports naming the
/// leader, as the real sequencer does.
#[derive(Clone, Debug)]
struct FakeSequencer {
    state: Arc<Mutex<SeqState>>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    leader: Arc<Mutex<Option<String>>>,
    /// How long `GetTreeHeads` takes.
    read_delay: Arc<Mutex<Duration>>,
    /// Publications refused as a follower.
    refused: Arc<Mutex<u64>>,
}

impl Default for FakeSequencer {
    fn default() -> Self {
        FakeSequencer {
            state: Arc::default(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            leader: Arc::default(),
            read_delay: Arc::default(),
            refused: Arc::default(),
        }
    }
}

/// A follower's refusal of a leader-only call, naming the leader.
fn not_leader(leader: &str) -> Status {
    let mut status = Status::failed_precondition("not the leader");
    let metadata = status.metadata_mut();
    metadata.insert(
        cairn_proto::NOT_LEADER_METADATA_KEY,
        "1".parse().expect("value"),
    );
    metadata.insert(
        cairn_proto::LEADER_METADATA_KEY,
        leader.parse().expect("value"),
    );
    status
}

impl FakeSequencer {
    /// Makes this node a follower of the node at `leader`.
    fn follow(&self, leader: &str) {
        *self.leader.lock().expect("lock") = Some(leader.to_owned());
    }
    fn leader(&self) -> Option<String> {
        self.leader.lock().expect("lock").clone()
    }
    fn set_read_delay(&self, delay: Duration) {
        *self.read_delay.lock().expect("lock") = delay;
    }
    fn refused(&self) -> u64 {
        *self.refused.lock().expect("lock")
    }
    /// Sets the published head this node serves (a follower's stale one).
    fn set_cosigned(&self, head: pb::CosignedTreeHead) {
        self.state.lock().expect("lock").cosigned = Some(head);
    }
    fn set_signed(&self, s: pb::SignedTreeHead) {
        self.state.lock().expect("lock").signed = Some(s);
        self.changes.send_modify(|n| *n += 1);
    }
    fn heads(&self) -> pb::TreeHeads {
        let s = self.state.lock().expect("lock");
        pb::TreeHeads {
            tree_size: s.signed.as_ref().map_or(0, |h| h.size),
            signed: s.signed.clone(),
            cosigned: s.cosigned.clone(),
            frozen: None,
        }
    }
    fn published(&self) -> Vec<pb::CosignedTreeHead> {
        self.state.lock().expect("lock").published.clone()
    }
}

#[tonic::async_trait]
impl Sequencer for FakeSequencer {
    async fn add_leaves(
        &self,
        _: Request<pb::AddLeavesRequest>,
    ) -> Result<Response<pb::AddLeavesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_leaf_index(
        &self,
        _: Request<pb::GetLeafIndexRequest>,
    ) -> Result<Response<pb::GetLeafIndexResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_leaf_indices(
        &self,
        _: Request<pb::GetLeafIndicesRequest>,
    ) -> Result<Response<pb::GetLeafIndicesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn get_tree_heads(
        &self,
        req: Request<pb::GetTreeHeadsRequest>,
    ) -> Result<Response<pb::TreeHeads>, Status> {
        if req.get_ref().shard != SHARD {
            return Err(Status::not_found("unknown shard"));
        }
        let delay = *self.read_delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        Ok(Response::new(self.heads()))
    }

    type WatchTreeHeadsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::TreeHeads, Status>> + Send>>;

    async fn watch_tree_heads(
        &self,
        req: Request<pb::GetTreeHeadsRequest>,
    ) -> Result<Response<Self::WatchTreeHeadsStream>, Status> {
        if req.get_ref().shard != SHARD {
            return Err(Status::not_found("unknown shard"));
        }
        let fake = self.clone();
        let changes = self.changes.subscribe();
        let stream = futures::stream::unfold(
            (fake, changes, true),
            |(fake, mut changes, first)| async move {
                if !first && changes.changed().await.is_err() {
                    return None;
                }
                changes.borrow_and_update();
                Some((Ok(fake.heads()), (fake, changes, false)))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn publish_cosigned(
        &self,
        req: Request<pb::PublishCosignedRequest>,
    ) -> Result<Response<pb::PublishCosignedResponse>, Status> {
        if let Some(leader) = self.leader() {
            *self.refused.lock().expect("lock") += 1;
            return Err(not_leader(&leader));
        }
        let req = req.into_inner();
        let head = req
            .head
            .ok_or_else(|| Status::invalid_argument("no head"))?;
        let mut s = self.state.lock().expect("lock");
        let size = head.signed.as_ref().map_or(0, |h| h.size);
        let current = s
            .cosigned
            .as_ref()
            .and_then(|c| c.signed.as_ref())
            .map(|h| h.size);
        if current.is_some_and(|c| size < c) {
            return Err(Status::failed_precondition("smaller than published"));
        }
        s.cosigned = Some(head.clone());
        s.published.push(head);
        Ok(Response::new(pb::PublishCosignedResponse {}))
    }

    async fn report_witness_ahead(
        &self,
        _: Request<pb::ReportWitnessAheadRequest>,
    ) -> Result<Response<pb::ReportWitnessAheadResponse>, Status> {
        if let Some(leader) = self.leader() {
            return Err(not_leader(&leader));
        }
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

/// Serves `fake` on a fresh port; returns its URL and server task.
async fn start_sequencer(fake: FakeSequencer) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(SequencerServer::new(fake))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .expect("grpc serve");
    });
    (format!("http://{addr}"), task)
}

// --- the log's tree, written as tiles ----------------------------------------

struct TestLog {
    key: SigningKey,
    tiles: TileStore,
    hashes: TileBuilder,
    bundles: BundleBuilder,
}

impl TestLog {
    fn new(dir: &std::path::Path) -> TestLog {
        TestLog {
            key: SigningKey::from_seed(&LOG_SEED),
            tiles: TileStore::local(dir, SHARD).expect("tile store"),
            hashes: TileBuilder::new(),
            bundles: BundleBuilder::new(),
        }
    }

    fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// Appends leaves up to `size`, writes their tiles, and signs the head.
    async fn grow_to(&mut self, size: u64) -> pb::SignedTreeHead {
        let leaves: Vec<[u8; 128]> = (self.hashes.size()..size)
            .map(|i| {
                let mut l = [0u8; 128];
                l[..8].copy_from_slice(&i.to_be_bytes());
                l
            })
            .collect();
        let leaf_hashes: Vec<_> = leaves.iter().map(|l| cairn_tlog::leaf_hash(l)).collect();
        let bundles = self.bundles.append(&leaves).expect("bundles");
        let tiles = self.hashes.append(&leaf_hashes).expect("tiles");
        self.tiles
            .write_integration(&bundles, &tiles)
            .await
            .expect("write tiles");
        let sth = TreeHead {
            size,
            root_hash: self.hashes.root(),
        }
        .sign(&self.key);
        pb::SignedTreeHead {
            size,
            root_hash: sth.tree_head.root_hash.to_vec(),
            signature: sth.signature.0.to_vec(),
        }
    }
}

// --- witnesses -----------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Honest,
    /// Honest, but every answer takes this long.
    Slow(Duration),
    /// Nothing listens on its port.
    Down,
    /// Answers 200 with a body that is no cosignature.
    Garbage,
    /// Answers 409 with this size, whatever it is sent.
    Ahead(u64),
    /// Honest, but its clock runs a day ahead.
    FutureClock,
}

struct TestWitness {
    name: String,
    key: PublicKey,
    /// Submission prefix (the policy URL).
    url: String,
    /// "old N" and proof line count of every request it received.
    requests: Arc<Mutex<Vec<(u64, usize)>>>,
    task: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestWitness {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

async fn start_witness(i: u8, kind: Kind, log_key: &PublicKey) -> TestWitness {
    let name = format!("example.org/w{i}");
    let seed = [0x50 + i; 32];
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(Mutex::new(Vec::new()));
    // Alternate trailing slashes: the collector must handle both.
    let slash = if i.is_multiple_of(2) { "/" } else { "" };
    let url = format!("http://{addr}/w{slash}");
    let key = SigningKey::from_seed(&seed).public_key();
    if matches!(kind, Kind::Down) {
        drop(listener);
        return TestWitness {
            name,
            key,
            url,
            requests,
            task: None,
            _dir: dir,
        };
    }
    let inner = match kind {
        Kind::Honest | Kind::Slow(_) => {
            let config = WitnessConfig::for_sigsum_logs(
                name.as_str(),
                SigningKey::from_seed(&seed),
                [log_key],
            );
            let state = WitnessState::open(dir.path()).expect("state");
            let w = Witness::with_system_clock(config, state).expect("witness");
            cairn_witness::router(Arc::new(w))
        }
        Kind::FutureClock => {
            let config = WitnessConfig::for_sigsum_logs(
                name.as_str(),
                SigningKey::from_seed(&seed),
                [log_key],
            );
            let state = WitnessState::open(dir.path()).expect("state");
            let tomorrow = || cairn_witness::Clock::now(&cairn_witness::SystemClock) + 86_400;
            let w = Witness::new(config, state, tomorrow).expect("witness");
            cairn_witness::router(Arc::new(w))
        }
        Kind::Garbage => axum::Router::new().route(
            "/add-checkpoint",
            axum::routing::post(|| async { "this is not a cosignature\n" }),
        ),
        Kind::Ahead(size) => axum::Router::new().route(
            "/add-checkpoint",
            axum::routing::post(move || async move {
                (
                    axum::http::StatusCode::CONFLICT,
                    [("content-type", "text/x.tlog.size")],
                    format!("{size}\n"),
                )
            }),
        ),
        Kind::Down => unreachable!("handled above"),
    };
    let recorder = Arc::clone(&requests);
    let delay = match kind {
        Kind::Slow(d) => d,
        _ => Duration::ZERO,
    };
    let app = axum::Router::new()
        .nest("/w", inner)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let recorder = Arc::clone(&recorder);
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
                    let text = String::from_utf8_lossy(&bytes);
                    let old = text
                        .lines()
                        .next()
                        .and_then(|l| l.strip_prefix("old "))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(u64::MAX);
                    let proof_lines = text.lines().skip(1).take_while(|l| !l.is_empty()).count();
                    recorder.lock().expect("lock").push((old, proof_lines));
                    tokio::time::sleep(delay).await;
                    next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                        .await
                }
            },
        ));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    TestWitness {
        name,
        key,
        url,
        requests,
        task: Some(task),
        _dir: dir,
    }
}

fn policy(log: &PublicKey, witnesses: &[&TestWitness], group: &str) -> Policy {
    let mut text = format!("log {}\n", log.to_hex());
    for (i, w) in witnesses.iter().enumerate() {
        text.push_str(&format!(
            "witness W{} {} {}\n",
            i + 1,
            w.key.to_hex(),
            w.url
        ));
    }
    text.push_str(&format!("group G {group} W1 W2 W3\nquorum G\n"));
    Policy::parse(text.as_bytes()).expect("policy")
}

// --- harness -----------------------------------------------------------------

struct Harness {
    fake: FakeSequencer,
    collector: Arc<Collector>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _seq: Vec<JoinHandle<()>>,
}

impl Harness {
    /// A collector of `fake` alone.
    async fn start(
        fake: &FakeSequencer,
        config: CollectorConfig,
        policy: Policy,
        log: &TestLog,
    ) -> Harness {
        let (url, seq) = start_sequencer(fake.clone()).await;
        Harness::with_nodes(fake, &[url], vec![seq], config, policy, log)
    }

    /// A collector of the sequencer nodes at `urls` (served by `tasks`),
    /// one of which is `fake`, the leader, whose publications the harness
    /// watches.
    fn with_nodes(
        fake: &FakeSequencer,
        urls: &[String],
        tasks: Vec<JoinHandle<()>>,
        config: CollectorConfig,
        policy: Policy,
        log: &TestLog,
    ) -> Harness {
        let pool = SequencerPool::new(urls.to_vec(), PoolOptions::default()).expect("pool");
        let collector = Arc::new(
            Collector::new(config, policy, log.public_key(), pool, log.tiles.clone())
                .expect("collector"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let c = Arc::clone(&collector);
        let task = tokio::spawn(async move {
            c.run(async {
                let _ = stopped.await;
            })
            .await;
        });
        Harness {
            fake: fake.clone(),
            collector,
            stop: Some(stop),
            task: Some(task),
            _seq: tasks,
        }
    }

    fn metrics(&self) -> MetricsSnapshot {
        self.collector.metrics().snapshot()
    }

    /// Polls `f` every 20 ms until it holds; panics after 20 s.
    async fn wait_for(&self, what: &str, mut f: impl FnMut(&Harness) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !f(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; metrics {:?}",
                self.metrics()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_published(&self, size: u64) -> pb::CosignedTreeHead {
        self.wait_for(&format!("a publication of size {size}"), |h| {
            h.fake
                .published()
                .iter()
                .any(|p| p.signed.as_ref().is_some_and(|s| s.size == size))
        })
        .await;
        self.fake
            .published()
            .into_iter()
            .find(|p| p.signed.as_ref().is_some_and(|s| s.size == size))
            .expect("published")
    }

    async fn shut_down(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("collector task");
        }
        for t in &self._seq {
            t.abort();
        }
    }
}

fn config(extra_wait: Duration, fail_open: bool) -> CollectorConfig {
    CollectorConfig {
        poll_interval: Duration::from_millis(50),
        witness_timeout: Duration::from_secs(2),
        extra_wait,
        fail_open,
        ..CollectorConfig::new(SHARD)
    }
}

/// Checks every cosignature of `head` against the named witnesses' keys.
fn assert_valid_cosignatures(head: &pb::CosignedTreeHead, log: &PublicKey, by: &[&TestWitness]) {
    let signed = head.signed.as_ref().expect("signed");
    let tree_head = TreeHead {
        size: signed.size,
        root_hash: signed.root_hash.as_slice().try_into().expect("root"),
    };
    let mut names: Vec<&str> = head
        .cosignatures
        .iter()
        .map(|c| c.note_name.as_str())
        .collect();
    names.sort_unstable();
    let mut want: Vec<&str> = by.iter().map(|w| w.name.as_str()).collect();
    want.sort_unstable();
    assert_eq!(names, want, "cosigning witnesses");
    let keys: HashMap<&str, &PublicKey> = by.iter().map(|w| (w.name.as_str(), &w.key)).collect();
    for c in &head.cosignatures {
        let key = keys[c.note_name.as_str()];
        let cosig = Cosignature {
            key_hash: KeyHash(c.key_hash.as_slice().try_into().expect("key hash")),
            timestamp: c.timestamp,
            signature: Signature(c.signature.as_slice().try_into().expect("signature")),
        };
        assert!(
            cosig.verify(key, &tree_head, &log.key_hash()),
            "cosignature by {} verifies",
            c.note_name
        );
    }
}

// --- tests --------------------------------------------------------------------

async fn two_of_three_publish_with_a_bad_third(third: Kind) {
    let tiles = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(tiles.path());
    let key = log.public_key();
    let w1 = start_witness(1, Kind::Honest, &key).await;
    let w2 = start_witness(2, Kind::Honest, &key).await;
    let w3 = start_witness(3, third, &key).await;
    let fake = FakeSequencer::default();
    fake.set_signed(log.grow_to(5).await);
    let h = Harness::start(
        &fake,
        config(Duration::ZERO, false),
        policy(&key, &[&w1, &w2, &w3], "2"),
        &log,
    )
    .await;
    let head = h.wait_published(5).await;
    assert_valid_cosignatures(&head, &key, &[&w1, &w2]);
    assert_eq!(h.metrics().published, 1);
    assert_eq!(h.metrics().published_without_quorum, 0);
    assert_eq!(h.metrics().published_size, 5);
    let metrics = h.collector.metrics();
    assert_eq!(histogram_count(metrics.cosign_latency()), 1);
    assert_eq!(histogram_count(metrics.publish_latency()), 1);
    h.shut_down().await;
}

#[tokio::test]
async fn publishes_once_two_of_three_cosign_while_the_third_is_slow() {
    // The slow witness would answer only after the test's whole deadline:
    // publication proves the collector stopped waiting at quorum.
    two_of_three_publish_with_a_bad_third(Kind::Slow(Duration::from_secs(120))).await;
}

#[tokio::test]
async fn an_idle_logs_head_is_cosigned_and_published_again_once_its_cosignatures_age() {
    let tiles = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(tiles.path());
    let key = log.public_key();
    let w1 = start_witness(1, Kind::Honest, &key).await;
    let w2 = start_witness(2, Kind::Down, &key).await;
    let w3 = start_witness(3, Kind::Down, &key).await;
    let fake = FakeSequencer::default();
    fake.set_signed(log.grow_to(3).await);
    let config = CollectorConfig {
        recosign_interval: Duration::from_secs(2),
        ..config(Duration::ZERO, false)
    };
    let h = Harness::start(&fake, config, policy(&key, &[&w1, &w2, &w3], "1"), &log).await;
    let first = h.wait_published(3).await;
    h.wait_for("the same head published again", |h| {
        h.fake.published().len() >= 2
    })
    .await;
    let published = h.fake.published();
    let again = &published[1];
    assert_eq!(again.signed, first.signed, "the same signed head");
    assert_valid_cosignatures(again, &key, &[&w1]);
    assert!(
        again.cosignatures[0].timestamp >= first.cosignatures[0].timestamp + 2,
        "fresh cosignatures: {} then {}",
        first.cosignatures[0].timestamp,
        again.cosignatures[0].timestamp
    );
    // The witness was asked to cosign the size it had: old 3, no proof.
    assert!(w1.requests.lock().expect("lock").contains(&(3, 0)));
    // Not on every poll (50 ms): the next is due a whole interval after
    // the fresh cosignatures, which are at most a second old now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.fake.published().len(), 2);
    h.shut_down().await;
}

#[tokio::test]
async fn a_newly_signed_head_is_published_without_waiting_for_a_poll() {
    let tiles = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(tiles.path());
    let key = log.public_key();
    let w1 = start_witness(1, Kind::Honest, &key).await;
    let w2 = start_witness(2, Kind::Down, &key).await;
    let w3 = start_witness(3, Kind::Down, &key).await;
    let fake = FakeSequencer::default();
    fake.set_signed(log.grow_to(3).await);
    // Polls are an hour apart (the first happens at once): only the
    // WatchTreeHeads stream can start the round for size 7.
    let config = CollectorConfig {
        poll_interval: Duration::from_secs(3600),
        ..config(Duration::ZERO, false)
    };
    let h = Harness::start(&fake, config, policy(&key, &[&w1, &w2, &w3], "1"), &log).await;
    h.wait_published(3).await;
    fake.set_signed(log.grow_to(7).await);
    let head = h.wait_published(7).await;
    assert_valid_cosignatures(&head, &key, &[&w1]);
    h.shut_down().await;
}

#[tokio::test]
async fn publishes_once_two_of_three_cosign_while_the_third_is_down() {
    two_of_three_publish_with_a_bad_third(Kind::Down).await;
}

#[tokio::test]
async fn publishes_once_two_of_three_cosign_while_the_third_returns_garbage() {
    two_of_three_publish_with_a_bad_third(Kind::Garbage).await;
}

async fn one_of_three(
    fail_open: bool,
) -> (Harness, Vec<TestWitness>, PublicKey, tempfile::TempDir) {
    let tiles = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(tiles.path());
    let key = log.public_key();
    let w1 = start_witness(1, Kind::Honest, &key).await;
    let w2 = start_witness(2, Kind::Down, &key).await;
    let w3 = start_witness(3, Kind::Garbage, &key).await;
    let fake = FakeSequencer::default();
    fake.set_signed(log.grow_to(5).await);
    let h = Harness::start(
        &fake,
        config(Duration::ZERO, fail_open),
        policy(&key, &[&w1, &w2, &w3], "2"),
        &log,
    )
    .await;
    (h, vec![w1, w2, w3], key, tiles)
}

#[tokio::test]
async fn fail_closed_without_quorum_publishes_nothing_and_counts_it() {
    let (h, _witnesses, _key, _tiles) = one_of_three(false).await;
    h.wait_for("two failed rounds", |h| h.metrics().quorum_failed >= 2)
        .await;
    assert!(h.fake.published().is_empty());
    let m = h.metrics();
    assert_eq!(m.published, 0);
    assert!(m.witness_errors.get("W2").is_some_and(|&n| n >= 2), "{m:?}");
    assert!(m.witness_errors.get("W3").is_some_and(|&n| n >= 2), "{m:?}");
    assert_eq!(m.witness_errors.get("W1"), None, "{m:?}");
    h.shut_down().await;
}

#[tokio::test]
async fn fail_open_publishes_without_quorum() {
    let (h, witnesses, key, _tiles) = one_of_three(true).await;
    let head = h.wait_published(5).await;
    assert_valid_cosignatures(&head, &key, &[&witnesses[0]]);
    let m = h.metrics();
    assert!(m.quorum_failed >= 1);
    assert_eq!(m.published_without_quorum, m.published, "{m:?}");
    // No round reached quorum, so no cosigning latency was observed.
    assert_eq!(histogram_count(h.collector.metrics().cosign_latency()), 0);
    h.shut_down().await;
}

#[tokio::test]
async fn a_witness_ahead_of_the_log_halts_publishing() {
    let tiles = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(tiles.path());
    let key = log.public_key();
    let w1 = start_witness(1, Kind::Honest, &key).await;
    let w2 = start_witness(2, Kind::Honest, &key).await;
    let w3 = start_witness(3, Kind::Ahead(1000), &key).await;
    let fake = FakeSequencer::default();
    fake.set_signed(log.grow_to(5).await);
    // A long extra wait: the round hears from every witness before deciding,
    // so the alarm is seen even though W1 and W2 make a quorum.
    let h = Harness::start(
        &fake,
        config(Duration::from_secs(60), false),
        policy(&key, &[&w1, &w2, &w3], "2"),
        &log,
    )
    .await;
    let mut halted = h.collector.watch_halted();
    tokio::time::timeout(Duration::from_secs(20), halted.wait_for(|&h| h))
        .await
        .expect("halted within 20 s")
        .expect("watch");
    assert!(h.collector.halted());
    assert!(h.fake.published().is_empty());
    let m = h.metrics();
    assert_eq!(m.published, 0);
    assert!(m.witness_errors.get("W3").is_some_and(|&n| n >= 1), "{m:?}");
    h.shut_down().await;
}

#[tokio::test]
async fn the_next_round_after_growth_sends_a_consistency_proof_and_a_restart_relearns_sizes() {
    let tiles = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(tiles.path());
    let key = log.public_key();
    let ws = [
        start_witness(1, Kind::Honest, &key).await,
        start_witness(2, Kind::Honest, &key).await,
        start_witness(3, Kind::Honest, &key).await,
    ];
    let refs: Vec<&TestWitness> = ws.iter().collect();
    let fake = FakeSequencer::default();
    fake.set_signed(log.grow_to(5).await);
    // A long extra wait makes every round hear from all three witnesses.
    let cfg = config(Duration::from_secs(60), false);
    let h = Harness::start(&fake, cfg.clone(), policy(&key, &refs, "2"), &log).await;
    let head = h.wait_published(5).await;
    assert_valid_cosignatures(&head, &key, &refs);

    // Across a tile boundary: the proof comes from several tiles.
    fake.set_signed(log.grow_to(300).await);
    let head = h.wait_published(300).await;
    assert_valid_cosignatures(&head, &key, &refs);
    for w in &ws {
        let reqs = w.requests.lock().expect("lock").clone();
        // 0 → 5 without a proof, then 5 → 300 with one, nothing else.
        assert_eq!(reqs.len(), 2, "{}: {reqs:?}", w.name);
        assert_eq!(reqs[0], (0, 0));
        assert_eq!(reqs[1].0, 5);
        assert!(reqs[1].1 > 0, "{}: consistency proof sent", w.name);
    }
    assert!(h.metrics().witness_errors.is_empty());
    h.shut_down().await;

    // A new collector knows no sizes: each witness's 409 teaches it.
    fake.set_signed(log.grow_to(301).await);
    let h = Harness::start(&fake, cfg, policy(&key, &refs, "2"), &log).await;
    let head = h.wait_published(301).await;
    assert_valid_cosignatures(&head, &key, &refs);
    for w in &ws {
        let reqs = w.requests.lock().expect("lock").clone();
        assert_eq!(reqs.len(), 4, "{}: {reqs:?}", w.name);
        assert_eq!(reqs[2], (0, 0), "{}: first try from 0 gets 409", w.name);
        assert_eq!(reqs[3].0, 300, "{}: retry from the adopted size", w.name);
        assert!(reqs[3].1 > 0);
    }
    h.shut_down().await;
}

#[tokio::test]
async fn a_cosignature_dated_far_in_the_future_does_not_count() {
    let tiles = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(tiles.path());
    let key = log.public_key();
    let w1 = start_witness(1, Kind::Honest, &key).await;
    let w2 = start_witness(2, Kind::FutureClock, &key).await;
    let w3 = start_witness(3, Kind::Down, &key).await;
    let fake = FakeSequencer::default();
    fake.set_signed(log.grow_to(5).await);
    let h = Harness::start(
        &fake,
        config(Duration::ZERO, false),
        policy(&key, &[&w1, &w2, &w3], "2"),
        &log,
    )
    .await;
    h.wait_for("two failed rounds", |h| h.metrics().quorum_failed >= 2)
        .await;
    let m = h.metrics();
    assert!(m.witness_errors.get("W2").is_some_and(|&n| n >= 2), "{m:?}");
    assert!(h.fake.published().is_empty());
    // The witness did cosign (its state moved to 5): only the collector's
    // timestamp check kept the cosignature out.
    assert!(
        w2.requests
            .lock()
            .expect("lock")
            .iter()
            .any(|&(old, _)| old == 5)
    );
    h.shut_down().await;
}

/// Observations in a histogram, read through its OpenMetrics encoding
/// (the crate exposes no getter).
fn histogram_count(h: &prometheus_client::metrics::histogram::Histogram) -> u64 {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register("h", "test", h.clone());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    text.lines()
        .find_map(|l| l.strip_prefix("h_count "))
        .expect("h_count line")
        .trim()
        .parse()
        .expect("count")
}

#[tokio::test]
async fn a_lagging_follower_neither_stalls_publication_nor_passes_for_a_log_behind_a_witness() {
    let tiles = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(tiles.path());
    let key = log.public_key();
    let ws = [
        start_witness(1, Kind::Honest, &key).await,
        start_witness(2, Kind::Honest, &key).await,
        start_witness(3, Kind::Honest, &key).await,
    ];
    let refs: Vec<&TestWitness> = ws.iter().collect();
    let leader = FakeSequencer::default();
    let follower = FakeSequencer::default();
    let (leader_url, leader_task) = start_sequencer(leader.clone()).await;
    let (follower_url, follower_task) = start_sequencer(follower.clone()).await;
    follower.follow(&leader_url);
    let head = log.grow_to(3).await;
    leader.set_signed(head.clone());
    follower.set_signed(head);
    // The follower is the pool's first guess.
    let urls = [follower_url, leader_url];
    let cfg = config(Duration::from_secs(60), false);
    let h = Harness::with_nodes(
        &leader,
        &urls,
        Vec::new(),
        cfg.clone(),
        policy(&key, &refs, "2"),
        &log,
    );
    // Published through the follower's redirect.
    let published = h.wait_published(3).await;
    assert!(follower.refused() >= 1);
    assert!(follower.published().is_empty());
    // The follower falls behind: the leader's head is the one cosigned.
    leader.set_signed(log.grow_to(5).await);
    h.wait_published(5).await;
    h.shut_down().await;

    // A new collector, which probes the witnesses (it knows none of their
    // sizes), while the leader is slow to answer reads: its rounds read
    // the follower's head (published and signed 3), and the witnesses,
    // at 5, are ahead of it. The leader has signed 5, so that is a lagging
    // node, not a log behind its witnesses: no halt.
    follower.set_cosigned(published);
    leader.set_read_delay(Duration::from_millis(500));
    let h = Harness::with_nodes(
        &leader,
        &urls,
        vec![leader_task, follower_task],
        cfg,
        policy(&key, &refs, "2"),
        &log,
    );
    h.wait_for(
        "two rounds that met a witness ahead of the head read",
        |h| h.metrics().witness_errors.values().sum::<u64>() >= 2,
    )
    .await;
    assert!(!h.collector.halted());
    // The leader answers in time again and signs 7: the collector reads
    // it although its guess may still be the follower, and publishes.
    leader.set_read_delay(Duration::ZERO);
    leader.set_signed(log.grow_to(7).await);
    h.wait_published(7).await;
    assert!(!h.collector.halted());
    h.shut_down().await;
}
