//! A three-node cluster of real processes (3 `cairnd sequencer`, a
//! frontend, the collector, a witness) under continuous submissions while
//! leaders are killed and frozen. Afterwards, checked only from what
//! clients see (the HTTP API and the `checkpoint` object):
//!
//! * every leaf that got 200 has an inclusion proof in the latest head;
//! * no tree size was ever served with two roots, and every pair of heads
//!   seen is consistent (consecutive consistency proofs verify);
//! * the published size never went backwards, from the frontend or in the
//!   `checkpoint` object, and a frozen old leader published nothing after
//!   it woke up;
//! * every replica's state machine ends at the same size and root, and the
//!   leaves served rebuild to the latest head's root;
//! * `cairn fsck` of the log through the frontend passes: every tile and
//!   bundle published, across all the leaders, leads to the checkpoint.
//!
//! Failover times (kill → next 200, kill → next published head) are
//! printed, never asserted. `CAIRN_FAILOVER_ROUNDS` sets the number of
//! leader kills (default 3).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_client::LogClient;
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::{Hash, SigningKey};
use parking::Mutex;
use support::cluster::LocalCluster;
use support::free_port;

mod parking {
    /// A std mutex that shrugs off poisoning (a failed task already failed
    /// the test).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

const SUBMITTERS: usize = 4;

/// Everything clients observed.
#[derive(Debug, Default)]
struct Seen {
    /// Leaves that got 200: when first posted, when answered 200.
    acked: Mutex<Vec<(Instant, Instant, Leaf)>>,
    /// Every head served by get-tree-head: (when, size, root).
    heads: Mutex<Vec<(Instant, u64, Hash)>>,
    /// Every distinct `checkpoint` object: (when, size, root).
    checkpoints: Mutex<Vec<(Instant, u64, Hash)>>,
    /// Anything a client must never see.
    violations: Mutex<Vec<String>>,
    /// Set once the shard is being frozen: a 410 is then the expected
    /// answer to a new leaf, and ends that submitter.
    expect_gone: AtomicBool,
    /// 410 answers received.
    gone: std::sync::atomic::AtomicUsize,
}

impl Seen {
    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.lock().push(what);
    }
    /// When the first leaf first posted after `t0` got its 200.
    fn first_ack_posted_after(&self, t0: Instant) -> Option<Instant> {
        self.acked
            .lock()
            .iter()
            .filter(|(posted, _, _)| *posted > t0)
            .map(|(_, acked, _)| *acked)
            .min()
    }
    fn largest_head(&self) -> u64 {
        self.heads.lock().iter().map(|h| h.1).max().unwrap_or(0)
    }
}

fn message(task: usize, i: usize) -> Hash {
    cairn_sigsum::crypto::hash(format!("cairn cluster test {task} {i}\n").as_bytes())
}

/// Submits leaves one after another until `stop`, each until it gets 200.
async fn submitter(task: usize, base: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let key = SigningKey::from_seed(&[task as u8 + 1; 32]);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let leaf = Leaf::sign(&key, &message(task, i));
        let body = cairn_sigsum::api::AddLeafRequest::sign(&key, &message(task, i)).to_ascii();
        let posted = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match http
                .post(format!("{base}add-leaf"))
                .body(body.clone())
                .send()
                .await
            {
                Ok(r) if r.status() == reqwest::StatusCode::OK => {
                    seen.acked.lock().push((posted, Instant::now(), leaf));
                    break;
                }
                Ok(r)
                    if r.status() == reqwest::StatusCode::ACCEPTED
                        || r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE =>
                {
                    if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                        && r.headers().get("retry-after").is_none()
                    {
                        seen.violation("a 503 without Retry-After".into());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(r)
                    if r.status() == reqwest::StatusCode::GONE
                        && seen.expect_gone.load(Ordering::SeqCst) =>
                {
                    seen.gone.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    seen.violation(format!("add-leaf answered {status}: {text}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    seen.violation(format!("add-leaf failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        i += 1;
    }
}

/// Where the cluster's `checkpoint` object is read from, bypassing the
/// cluster.
#[derive(Clone)]
enum CheckpointObject {
    /// The shared local tiles directory's file.
    File(std::path::PathBuf),
    /// The S3 bucket, read directly from the server.
    Bucket(cairn_storage::TileStore),
}

impl CheckpointObject {
    fn local(cluster: &LocalCluster) -> Self {
        Self::local_of(cluster, "dev")
    }

    fn local_of(cluster: &LocalCluster, shard: &str) -> Self {
        Self::File(cluster.root.join("tiles").join(shard).join("checkpoint"))
    }

    async fn read(&self) -> Option<Vec<u8>> {
        match self {
            Self::File(path) => std::fs::read(path).ok(),
            Self::Bucket(store) => store.checkpoint().await.ok()?.map(|b| b.to_vec()),
        }
    }
}

/// Polls get-tree-head and the `checkpoint` object until `stop`.
async fn watcher(
    client: LogClient,
    checkpoint: CheckpointObject,
    log_key: cairn_sigsum::PublicKey,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    let mut last_object = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(head) = client.get_tree_head().await {
            let th = *head.tree_head();
            if !head.signed.verify(&log_key) {
                seen.violation(format!("a head of size {} does not verify", th.size));
            }
            let largest = seen.largest_head();
            if th.size < largest {
                seen.violation(format!(
                    "get-tree-head went back from {largest} to {}",
                    th.size
                ));
            }
            seen.heads
                .lock()
                .push((Instant::now(), th.size, th.root_hash));
        }
        if let Some(bytes) = checkpoint.read().await
            && bytes != last_object
        {
            match cairn_tlog::checkpoint::SignedCheckpoint::parse(&bytes) {
                Ok(c) => {
                    let c = c.checkpoint();
                    let prev = seen.checkpoints.lock().last().map(|p| (p.1, p.2));
                    if let Some((size, root)) = prev
                        && (c.size < size || (c.size == size && c.root != root))
                    {
                        seen.violation(format!(
                            "the checkpoint object moved from size {size} to {}",
                            c.size
                        ));
                    }
                    seen.checkpoints
                        .lock()
                        .push((Instant::now(), c.size, c.root));
                }
                Err(e) => seen.violation(format!("unparsable checkpoint object: {e}")),
            }
            last_object = bytes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a new leader has confirmed itself and a leaf first posted
/// after `t0` got its 200 (which means a published, cosigned head holds
/// it); returns both delays from `t0`.
async fn wait_recovered(
    cluster: &mut LocalCluster,
    seen: &Seen,
    t0: Instant,
    old_leader: u64,
) -> (Duration, Duration) {
    wait_recovered_of(cluster, "dev", seen, t0, old_leader).await
}

/// [`wait_recovered`] for `shard`.
async fn wait_recovered_of(
    cluster: &mut LocalCluster,
    shard: &str,
    seen: &Seen,
    t0: Instant,
    old_leader: u64,
) -> (Duration, Duration) {
    let deadline = t0 + Duration::from_secs(60);
    let mut leader = None;
    let mut ack = None;
    while leader.is_none() || ack.is_none() {
        if leader.is_none()
            && cluster
                .statuses_of(shard)
                .await
                .iter()
                .any(|s| s.role == "leader" && s.cleared && s.node_id != old_leader)
        {
            leader = Some(t0.elapsed());
        }
        if ack.is_none()
            && let Some(t) = seen.first_ack_posted_after(t0)
        {
            ack = Some(t - t0);
        }
        assert!(
            Instant::now() < deadline,
            "shard {shard} did not recover within 60 s of losing its leader\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (leader.unwrap(), ack.unwrap())
}

/// Waits until every node has applied the same log of `shard` and reports
/// the same sizes; returns the agreed tree size.
async fn wait_replicas_agree_of(cluster: &mut LocalCluster, shard: &str) -> u64 {
    let replicas = cluster.nodes.len();
    wait_replicas_agree(cluster, shard, replicas).await
}

/// [`wait_replicas_agree_of`] for a shard on `replicas` of the nodes.
async fn wait_replicas_agree(cluster: &mut LocalCluster, shard: &str, replicas: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = cluster.statuses_of(shard).await;
        if s.len() == replicas
            && s.windows(2).all(|w| {
                w[0].applied_index == w[1].applied_index
                    && w[0].tree_size == w[1].tree_size
                    && w[0].tree_root == w[1].tree_root
                    && w[0].integrated_size == w[1].integrated_size
                    && w[0].published_size == w[1].published_size
            })
        {
            return s[0].tree_size;
        }
        assert!(
            Instant::now() < deadline,
            "replicas of shard {shard} never agreed: {s:#?}\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The client side of a test: submitters and a watcher, until `finish`.
struct Workload {
    shard: String,
    /// How many nodes host the shard (all, unless placed by the registry).
    replicas: usize,
    /// Fewest 200s `finish` accepts as a real workload.
    min_acked: usize,
    checkpoint: CheckpointObject,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: LogClient,
}

impl Workload {
    fn start(cluster: &LocalCluster, checkpoint: CheckpointObject) -> Workload {
        Self::start_on(cluster, "dev", checkpoint, SUBMITTERS, 20)
    }

    /// `submitters` submitters and a watcher on `shard`; `finish` wants
    /// more than `min_acked` leaves answered 200.
    fn start_on(
        cluster: &LocalCluster,
        shard: &str,
        checkpoint: CheckpointObject,
        submitters: usize,
        min_acked: usize,
    ) -> Workload {
        let base = cluster.base_url_of(shard);
        let client = LogClient::new(&base).unwrap();
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for task in 0..submitters {
            tasks.push(tokio::spawn(submitter(
                task,
                base.clone(),
                seen.clone(),
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(watcher(
            client.clone(),
            checkpoint.clone(),
            cluster.log_key_of(shard),
            seen.clone(),
            stop.clone(),
        )));
        Workload {
            shard: shard.to_owned(),
            replicas: cluster.nodes.len(),
            min_acked,
            checkpoint,
            seen,
            stop,
            tasks,
            client,
        }
    }

    /// Stops the clients and checks everything they saw (module docs).
    async fn finish(self, cluster: &mut LocalCluster) -> (usize, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        cluster.assert_all_running();
        let (client, seen) = (self.client, self.seen);

        // Nothing acknowledged is lost: the latest head proves every 200.
        let shard = self.shard.as_str();
        let final_size = wait_replicas_agree(cluster, shard, self.replicas).await;
        let head = client.get_tree_head().await.expect("final head");
        let th = *head.tree_head();
        let acked: Vec<Leaf> = seen.acked.lock().iter().map(|(_, _, l)| *l).collect();
        assert!(
            acked.len() > self.min_acked,
            "shard {shard}: too few leaves acknowledged: {}",
            acked.len()
        );
        for leaf in &acked {
            let proof = client
                .get_inclusion_proof(th.size, &leaf.leaf_hash())
                .await
                .unwrap_or_else(|e| {
                    panic!("a 200'd leaf is not in the head of size {}: {e}", th.size)
                });
            proof
                .verify(&leaf.leaf_hash(), &th)
                .expect("inclusion proof");
        }

        // One history: one root per size, consecutive heads consistent.
        let mut by_size = std::collections::BTreeMap::new();
        for (_, size, root) in seen.heads.lock().iter() {
            if let Some(other) = by_size.insert(*size, *root)
                && other != *root
            {
                panic!("tree size {size} was served with two roots");
            }
        }
        for (_, size, root) in seen.checkpoints.lock().iter() {
            if let Some(other) = by_size.get(size) {
                assert_eq!(other, root, "checkpoint and API disagree at size {size}");
            }
        }
        let sizes: Vec<(u64, Hash)> = by_size.into_iter().collect();
        for pair in sizes.windows(2) {
            let (old, new) = (pair[0], pair[1]);
            if old.0 == 0 {
                continue;
            }
            let proof = client
                .get_consistency_proof(old.0, new.0)
                .await
                .expect("consistency proof");
            let old_th = cairn_sigsum::tree_head::TreeHead {
                size: old.0,
                root_hash: old.1,
            };
            let new_th = cairn_sigsum::tree_head::TreeHead {
                size: new.0,
                root_hash: new.1,
            };
            proof
                .verify(&old_th, &new_th)
                .unwrap_or_else(|e| panic!("heads {} and {} are inconsistent: {e}", old.0, new.0));
        }

        // The leaves served rebuild to the latest head's root.
        let mut range = cairn_tlog::compact::CompactRange::new();
        let mut start = 0;
        while start < th.size {
            let end = (start + 512).min(th.size);
            let leaves = client.get_leaves(start, end).await.expect("get-leaves");
            assert!(!leaves.is_empty());
            for l in &leaves {
                range.append(l.leaf_hash()).unwrap();
            }
            start += leaves.len() as u64;
        }
        assert_eq!(
            range.root(),
            th.root_hash,
            "the leaves do not rebuild the root"
        );
        assert!(final_size >= th.size);
        // The `checkpoint` object is that head (or, if a publication raced
        // the read, a later one).
        let object = self.checkpoint.read().await.expect("checkpoint object");
        let object = cairn_tlog::checkpoint::SignedCheckpoint::parse(&object).expect("parses");
        let c = object.checkpoint();
        assert!(c.size >= th.size, "the checkpoint object is behind the API");
        if c.size == th.size {
            assert_eq!(c.root, th.root_hash, "checkpoint object and API disagree");
        }

        // Everything published checks end to end from outside, through the
        // frontend, under the policy (log signature and witness quorum).
        assert!(fsck_through_frontend(cluster, shard).await >= th.size);

        let violations = seen.violations.lock().clone();
        assert!(
            violations.is_empty(),
            "clients of shard {shard} saw: {violations:#?}"
        );
        (acked.len(), th.size)
    }
}

/// A directory for a cluster, kept when the test fails (for the processes'
/// logs) and removed by [`remove_on_success`].
fn cluster_dir() -> std::path::PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("cairn-cluster-")
        .tempdir()
        .unwrap()
        .keep();
    eprintln!("cluster directory: {}", dir.display());
    dir
}

fn remove_on_success(cluster: LocalCluster, dir: &std::path::Path) {
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kills_and_freezes_lose_nothing_and_show_one_history() {
    let tmp = cluster_dir();
    let mut cluster = LocalCluster::configure(&tmp, free_port(), 3);
    cluster.start_all().await;
    let work = Workload::start(&cluster, CheckpointObject::local(&cluster));
    let seen = work.seen.clone();
    let rounds: usize = std::env::var("CAIRN_FAILOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    // Warm up: the log takes leaves before anything is killed.
    cluster.wait_published(20).await;
    let mut to_ack = Vec::new();
    let mut to_leader = Vec::new();
    for round in 0..rounds {
        let leader = cluster.leader().await;
        // Kill at varying points of the pipeline.
        tokio::time::sleep(Duration::from_millis(150 + 97 * (round as u64 % 7))).await;
        let t0 = Instant::now();
        cluster.kill(&format!("node{leader}"));
        let (elected, ack) = wait_recovered(&mut cluster, &seen, t0, leader).await;
        eprintln!(
            "round {round}: killed leader node {leader}: new leader after {elected:?}, next 200 after {ack:?}"
        );
        to_leader.push(elected);
        to_ack.push(ack);
        cluster.start(&format!("node{leader}"));
        wait_replicas_agree_under_load(&mut cluster, leader).await;
    }

    // Freeze the leader past the election timeout, then let it resume: it
    // must step down and publish nothing of its own.
    let leader = cluster.leader().await;
    let frozen = format!("node{leader}");
    cluster.freeze(&frozen);
    let t0 = Instant::now();
    let (elected, ack) = wait_recovered(&mut cluster, &seen, t0, leader).await;
    eprintln!("froze leader node {leader}: new leader after {elected:?}, next 200 after {ack:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.thaw(&frozen);
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader, "the frozen leader still leads");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (acked, size) = work.finish(&mut cluster).await;
    if !to_ack.is_empty() {
        eprintln!(
            "FAILOVER over {} leader kills: kill → new leader confirmed median {:?} max {:?}; kill → 200 for a leaf posted after the kill (so in a published cosigned head) median {:?} max {:?}; {acked} leaves acknowledged, final size {size}",
            to_ack.len(),
            median(&mut to_leader),
            to_leader.iter().max().unwrap(),
            median(&mut to_ack),
            to_ack.iter().max().unwrap(),
        );
    }
    remove_on_success(cluster, &tmp);
}

/// Waits (under load) until node `id` is back as a follower that applied
/// what the leader has.
async fn wait_replicas_agree_under_load(cluster: &mut LocalCluster, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = cluster.statuses().await;
        let leader = s.iter().find(|s| s.role == "leader");
        let node = s.iter().find(|s| s.node_id == id);
        if let (Some(l), Some(n)) = (leader, node)
            && (n.role == "follower" || n.node_id == l.node_id)
            && n.applied_index + 50 >= l.applied_index
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} did not catch up: {s:#?}\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether this machine lets the test build network namespaces (root,
/// `ip` and `iptables`): CI does. Elsewhere the test says why it cannot run
/// and fails, rather than passing without having tested anything.
fn can_build_namespaces() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
        && std::process::Command::new("iptables")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_leader_is_replaced_and_removed_wiped_and_restarted_nodes_rejoin_under_load() {
    assert!(
        can_build_namespaces(),
        "this test needs root, ip and iptables (network namespaces); run it as root"
    );
    let tmp = cluster_dir();
    let net = support::cluster::Netns::setup(3);
    let mut cluster = LocalCluster::configure(&tmp, free_port(), 3);
    cluster.place_in(&net);
    cluster.start_all().await;
    let work = Workload::start(&cluster, CheckpointObject::local(&cluster));
    let seen = work.seen.clone();
    cluster.wait_published(20).await;

    // A group is created once: a second InitShard on a live shard is
    // refused, naming why, and changes nothing.
    let voters = cluster.members();
    let refused = support::cluster::admin(&cluster.nodes[1].grpc)
        .init_shard(cairn_proto::v1::InitShardRequest {
            shard: "dev".into(),
            voters,
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("already holds Raft state"),
        "{refused:?}"
    );

    // Cut the leader off while it keeps running: the others elect a new
    // one; the old one can commit nothing, so it publishes nothing.
    let leader = cluster.leader().await;
    let t0 = Instant::now();
    net.cut(leader);
    let (elected, ack) = wait_recovered(&mut cluster, &seen, t0, leader).await;
    eprintln!("cut off leader node {leader}: new leader after {elected:?}, next 200 after {ack:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    net.heal(leader);
    wait_replicas_agree_under_load(&mut cluster, leader).await;

    // Remove a follower, wipe its disk, and add it back: it rejoins from
    // nothing (learner, caught up, voter) while submissions go on.
    let leader = cluster.leader().await;
    let follower = cluster
        .nodes
        .iter()
        .find(|n| n.id != leader)
        .cloned()
        .unwrap();
    let removed = cluster
        .leader_admin()
        .await
        .remove_node(cairn_proto::v1::RemoveNodeRequest {
            shard: "dev".into(),
            id: follower.id,
        })
        .await
        .expect("RemoveNode")
        .into_inner();
    assert!(removed.voters.iter().all(|m| m.id != follower.id));
    assert_eq!(removed.voters.len(), 2);
    let name = format!("node{}", follower.id);
    cluster.kill(&name);
    std::fs::remove_dir_all(tmp.join(&name).join("data")).unwrap();
    let add_request = || {
        let mut request = tonic::Request::new(cairn_proto::v1::AddNodeRequest {
            shard: "dev".into(),
            node: Some(cairn_proto::v1::Member {
                id: follower.id,
                addr: follower.grpc.clone(),
            }),
        });
        request.set_timeout(Duration::from_secs(60));
        request
    };

    // Restarted by mistake with another log key for the shard: the leader
    // refuses to add it, and changes nothing.
    let config = tmp.join(&name).join("sequencer.toml");
    let right = std::fs::read_to_string(&config).unwrap();
    let stranger = tmp.join("stranger.key");
    support::write_private_key(&stranger, &SigningKey::from_seed(&[0x77; 32]));
    let log_key_line = format!("log_key = {:?}", tmp.join("log.key").display().to_string());
    assert!(right.contains(&log_key_line), "{right}");
    std::fs::write(
        &config,
        right.replace(
            &log_key_line,
            &format!("log_key = {:?}", stranger.display().to_string()),
        ),
    )
    .unwrap();
    cluster.start(&name);
    let refused = loop {
        match cluster.leader_admin().await.add_node(add_request()).await {
            // Not up yet.
            Err(e) if e.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => break other.expect_err("a node with another key is refused"),
        }
    };
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("another log key"),
        "{}",
        refused.message()
    );
    let statuses = cluster.statuses().await;
    assert!(
        statuses
            .iter()
            .filter(|s| s.role == "leader")
            .all(|s| s.voters.len() == 2 && s.learners.is_empty()),
        "{statuses:?}"
    );
    cluster.kill(&name);
    std::fs::remove_dir_all(tmp.join(&name).join("data")).unwrap();
    std::fs::write(&config, right).unwrap();

    cluster.start(&name);
    let added = loop {
        match cluster.leader_admin().await.add_node(add_request()).await {
            // Not listening yet: the leader asks it first.
            Err(e) if e.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => break other.expect("AddNode").into_inner(),
        }
    };
    assert_eq!(added.voters.len(), 3, "{added:?}");
    wait_replicas_agree_under_load(&mut cluster, follower.id).await;

    // A follower crashes and restarts: it replays its own log and rejoins.
    let leader = cluster.leader().await;
    let other = cluster
        .nodes
        .iter()
        .find(|n| n.id != leader && n.id != follower.id)
        .map(|n| n.id)
        .unwrap();
    cluster.kill(&format!("node{other}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start(&format!("node{other}"));
    wait_replicas_agree_under_load(&mut cluster, other).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    work.finish(&mut cluster).await;
    remove_on_success(cluster, &tmp);
    drop(net);
}

/// Issue 15: eight shards (logs) on three nodes, each its own Raft group,
/// with submitters and a watcher on every shard. The node that leads the
/// most shards is killed: each shard it led elects a new leader and takes
/// leaves again on its own, the others never notice. One shard is frozen
/// under load meanwhile: its submitters get 410 from then on, and its final
/// head holds every leaf it answered 200. Every shard's invariants are
/// checked at the end (`Workload::finish`: nothing acknowledged lost, one
/// history, tiles that rebuild the root, fsck under the policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_shards_on_three_nodes_fail_over_each_on_its_own_and_one_freezes_under_load() {
    let tmp = cluster_dir();
    let mut cluster = LocalCluster::configure_shards(&tmp, free_port(), 3, 8);
    cluster.start_all().await;
    let shards = cluster.shards.clone();
    assert_eq!(shards.len(), 8);
    for shard in &shards {
        cluster.wait_published_of(shard, 1).await;
    }
    let mut work = Vec::new();
    for shard in &shards {
        let checkpoint = CheckpointObject::local_of(&cluster, shard);
        work.push(Workload::start_on(&cluster, shard, checkpoint, 2, 3));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The first elections spread the leaders; kill the busiest node.
    let mut leaders = std::collections::BTreeMap::new();
    for shard in &shards {
        leaders.insert(shard.clone(), cluster.leader_of(shard).await);
    }
    let mut per_node = std::collections::BTreeMap::<u64, usize>::new();
    for id in leaders.values() {
        *per_node.entry(*id).or_default() += 1;
    }
    eprintln!("leaders per node: {per_node:?}");
    assert!(
        per_node.len() > 1,
        "every shard is led by one node: {leaders:?}"
    );
    let victim = *per_node.iter().max_by_key(|(_, n)| **n).unwrap().0;
    let led: Vec<usize> = (0..shards.len())
        .filter(|&i| leaders[&shards[i]] == victim)
        .collect();
    let t0 = Instant::now();
    cluster.kill(&format!("node{victim}"));
    for &i in &led {
        let (elected, ack) =
            wait_recovered_of(&mut cluster, &shards[i], &work[i].seen, t0, victim).await;
        eprintln!(
            "shard {}: new leader after {elected:?}, next 200 after {ack:?}",
            shards[i]
        );
    }
    // Shards the victim did not lead kept their leaders.
    for (i, shard) in shards.iter().enumerate() {
        if !led.contains(&i) {
            assert_eq!(cluster.leader_of(shard).await, leaders[shard], "{shard}");
        }
    }

    // Freeze one shard under load: from then on its new leaves get 410.
    let frozen_shard = 1;
    let shard = shards[frozen_shard].clone();
    work[frozen_shard]
        .seen
        .expect_gone
        .store(true, Ordering::SeqCst);
    let leader = cluster.leader_of(&shard).await;
    let node = cluster
        .nodes
        .iter()
        .find(|n| n.id == leader)
        .unwrap()
        .clone();
    let frozen = support::cluster::admin(&node.grpc)
        .freeze_shard(cairn_proto::v1::FreezeShardRequest {
            shard: shard.clone(),
            successor: shards[2].clone(),
        })
        .await
        .expect("FreezeShard")
        .into_inner()
        .frozen
        .expect("the freeze");
    eprintln!("shard {shard}: frozen at {}", frozen.size);
    let deadline = Instant::now() + Duration::from_secs(30);
    while work[frozen_shard].seen.gone.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "the frozen shard's submitters never got 410"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The killed node comes back and catches up on every shard; `cairn
    // cluster balance` then hands it leaders again, under load.
    cluster.start(&format!("node{victim}"));
    for shard in &shards {
        wait_replicas_agree_of(&mut cluster, shard).await;
    }
    let via: Vec<String> = cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
    cairn_cli::cluster::balance(&via, false)
        .await
        .expect("cairn cluster balance");
    let mut per_node = std::collections::BTreeMap::<u64, usize>::new();
    for shard in &shards {
        *per_node.entry(cluster.leader_of(shard).await).or_default() += 1;
    }
    eprintln!("leaders per node after balancing: {per_node:?}");
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(
        per_node.values().max().unwrap() - per_node.values().min().unwrap() <= 1,
        "{per_node:?}"
    );
    let mut total = 0;
    for w in work {
        let shard = w.shard.clone();
        let (acked, size) = w.finish(&mut cluster).await;
        eprintln!("shard {shard}: {acked} leaves answered 200, final size {size}");
        total += acked;
        if shard == shards[frozen_shard] {
            assert_eq!(
                size, frozen.size,
                "the frozen shard grew past its final size"
            );
        }
    }
    eprintln!("{total} leaves answered 200 over 8 shards");
    remove_on_success(cluster, &tmp);
}

/// Leaves per second that get 200 with `in_flight` submitters posting one
/// leaf after another to `base` for `window` (after a second's warm-up).
async fn throughput(base: &str, tag: &str, in_flight: usize, window: Duration) -> f64 {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let counting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..in_flight {
        let (http, base, tag) = (http.clone(), base.to_owned(), tag.to_owned());
        let (counting, done, stop) = (counting.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let key = SigningKey::from_seed(&[(task % 250) as u8 + 3; 32]);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let m = cairn_sigsum::crypto::hash(format!("{tag} {task} {i}").as_bytes());
                let body = cairn_sigsum::api::AddLeafRequest::sign(&key, &m).to_ascii();
                loop {
                    let r = http
                        .post(format!("{base}add-leaf"))
                        .body(body.clone())
                        .send()
                        .await;
                    match r.map(|r| r.status()) {
                        Ok(reqwest::StatusCode::OK) => break,
                        _ if stop.load(Ordering::Relaxed) => return,
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(window).await;
    let n = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    n as f64 / window.as_secs_f64()
}

/// A measurement, never asserted beyond "the log works": add-leaf → 200
/// throughput of a three-node shard next to `cairnd dev` in the same run,
/// each as a ratio to this machine's Ed25519 verification rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_node_throughput_next_to_cairnd_dev() {
    const IN_FLIGHT: usize = 64;
    let window = Duration::from_secs(4);
    let verify = support::verify_rate();

    let dev_dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let mut dev = support::Cairnd::start(dev_dir.path(), listen);
    dev.wait_ready().await;
    let one = throughput(&format!("http://{listen}/dev/"), "dev", IN_FLIGHT, window).await;
    dev.stop();

    let tmp = cluster_dir();
    let mut cluster = LocalCluster::configure(&tmp, free_port(), 3);
    cluster.start_all().await;
    let three = throughput(&cluster.base_url(), "cluster", IN_FLIGHT, window).await;
    assert!(
        one > 0.0 && three > 0.0,
        "no 200s: dev {one}/s, cluster {three}/s"
    );
    eprintln!(
        "THROUGHPUT with {IN_FLIGHT} in flight: cairnd dev {one:.0}/s ({:.3} of {verify:.0} verifications/s), \
         3-node cluster {three:.0}/s ({:.3}); cluster/dev = {:.2}",
        one / verify,
        three / verify,
        three / one
    );
    remove_on_success(cluster, &tmp);
}

/// The same cluster with its tiles in S3 (moto) instead of a shared
/// directory: one leader kill under load, then the checks of
/// [`Workload::finish`] (`cairn fsck` of the log among them), the
/// `checkpoint` object read from moto directly. Every process runs as on a
/// host without a root store (as in a minimal container image): the HTTP
/// clients for S3 and witnesses trust Cairn's bundled roots and must not
/// need the host's, which an HTTP client's default verifier loads, and
/// fails without, when the client is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_on_s3_loses_nothing_when_its_leader_is_killed() {
    let moto = support::moto::Moto::start().await;
    let tmp = cluster_dir();
    let store_file = support::moto::Moto::store_file(&tmp, &moto.endpoint());
    let mut cluster = LocalCluster::configure(&tmp, free_port(), 3);
    let no_roots = tmp.join("no-root-store");
    std::fs::create_dir_all(&no_roots).expect("empty directory");
    cluster.set_env(
        "SSL_CERT_FILE",
        &no_roots.join("none.pem").display().to_string(),
    );
    cluster.set_env("SSL_CERT_DIR", &no_roots.display().to_string());
    cluster.use_object_store(&store_file);
    cluster.start_all().await;
    let bucket = moto.tiles(&tmp);
    let work = Workload::start(&cluster, CheckpointObject::Bucket(bucket.clone()));
    let seen = work.seen.clone();

    cluster.wait_published(20).await;
    let leader = cluster.leader().await;
    let t0 = Instant::now();
    cluster.kill(&format!("node{leader}"));
    let (elected, ack) = wait_recovered(&mut cluster, &seen, t0, leader).await;
    cluster.start(&format!("node{leader}"));
    wait_replicas_agree_under_load(&mut cluster, leader).await;

    let (acked, size) = work.finish(&mut cluster).await;
    assert!(
        !tmp.join("tiles").join("dev").exists(),
        "tiles written to the local directory"
    );
    // The roles that call the object store report it: the frontend (tile
    // reads) and the leader (writes; followers make no calls).
    let series = "cairn_object_store_operation_duration_seconds_count{shard=\"dev\"";
    let frontend = support::scrape_metrics(&format!("http://{}", cluster.frontend)).await;
    assert!(frontend.contains(series), "frontend:\n{frontend}");
    let leader_now = cluster.leader().await;
    let node = cluster
        .nodes
        .iter()
        .find(|n| n.id == leader_now)
        .expect("the leader")
        .ops
        .clone();
    let text = support::scrape_metrics(&node).await;
    assert!(text.contains(series), "leader node {leader_now}:\n{text}");
    eprintln!(
        "S3 cluster: killed leader node {leader}: new leader after {elected:?}, next 200 after \
         {ack:?}; {acked} leaves acknowledged, final size {size}"
    );
    remove_on_success(cluster, &tmp);
}

/// Sets `shard`'s policy line in the cluster's policy file (read by the
/// checks of [`Workload::finish`]) and writes the shard's own policy (its
/// log line and the cluster's witnesses) to `DIR/<shard>.policy`.
fn add_to_policy(cluster: &LocalCluster, shard: &str) -> std::path::PathBuf {
    let line = format!(
        "log {} {}\n",
        cluster.log_key_of(shard).to_hex(),
        cluster.base_url_of(shard)
    );
    let path = cluster.root.join("policy");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{line}{text}")).unwrap();
    let witnesses: String = text
        .lines()
        .filter(|l| !l.starts_with("log "))
        .map(|l| format!("{l}\n"))
        .collect();
    let own = cluster.root.join(format!("{shard}.policy"));
    std::fs::write(&own, format!("{line}{witnesses}")).unwrap();
    own
}

fn member(cluster: &LocalCluster, id: u64) -> cairn_proto::v1::Member {
    cluster
        .members()
        .into_iter()
        .find(|m| m.id == id)
        .expect("a node of the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_shard_is_created_failed_over_moved_frozen_and_retired_under_load() {
    let tmp = cluster_dir();
    let mut cluster = LocalCluster::configure(&tmp, free_port(), 4);
    cluster.start_all().await;
    let via: Vec<String> = cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
    // Load on the configured shard the whole time.
    let dev = Workload::start(&cluster, CheckpointObject::local(&cluster));

    // Create a shard on nodes 1-3 through the registry, under that load.
    // No process restarts: the nodes start it, the frontend serves it and
    // the collector cosigns it from the registry.
    let shard = "spare1";
    let policy = add_to_policy(&cluster, shard);
    let t0 = Instant::now();
    cairn_cli::registry_cmd::create(&cairn_cli::registry_cmd::CreateArgs {
        shard: shard.into(),
        key: cluster.root.join("keys").join(format!("{shard}.key.pub")),
        policy,
        replicas: (1..=3).map(|id| member(&cluster, id)).collect(),
        prefix: None,
        freeze_at: None,
        successor: None,
        via: via.clone(),
    })
    .await
    .expect("cairn cluster shard create");
    cluster.wait_published_of(shard, 1).await;
    eprintln!(
        "shard {shard}: created and published after {:?}",
        t0.elapsed()
    );
    assert!(
        cluster
            .statuses_of(shard)
            .await
            .iter()
            .all(|s| s.node_id != 4),
        "node 4 hosts a shard that does not name it"
    );
    let mut work = Workload::start_on(
        &cluster,
        shard,
        CheckpointObject::local_of(&cluster, shard),
        2,
        3,
    );
    work.replicas = 3;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Its replicas report it on /metrics like a configured shard.
    for node in cluster.nodes.iter().filter(|n| n.id <= 3) {
        let text = support::scrape_metrics(&node.ops).await;
        assert!(
            text.contains(&format!("cairn_tree_size{{shard=\"{shard}\"}}")),
            "node {}:\n{text}",
            node.id
        );
    }

    // Its leader dies: it fails over on its own.
    let leader = cluster.leader_of(shard).await;
    let t0 = Instant::now();
    cluster.kill(&format!("node{leader}"));
    let (elected, ack) = wait_recovered_of(&mut cluster, shard, &work.seen, t0, leader).await;
    eprintln!("shard {shard}: new leader after {elected:?}, next 200 after {ack:?}");
    cluster.start(&format!("node{leader}"));
    wait_replicas_agree(&mut cluster, shard, 3).await;

    // Move the replica of node `leader` to node 4, under load.
    cairn_cli::registry_cmd::move_replica(&cairn_cli::registry_cmd::MoveArgs {
        shard: shard.into(),
        from: leader,
        to: member(&cluster, 4),
        via: via.clone(),
        timeout: 120,
    })
    .await
    .expect("cairn cluster shard move");
    let deadline = Instant::now() + Duration::from_secs(30);
    let old_state = cluster
        .root
        .join(format!("node{leader}"))
        .join("data")
        .join("raft")
        .join(shard);
    while old_state.exists() {
        assert!(
            Instant::now() < deadline,
            "node {leader} kept its replica of {shard} after the move\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hosts: Vec<u64> = cluster
        .statuses_of(shard)
        .await
        .iter()
        .map(|s| s.node_id)
        .collect();
    assert!(hosts.contains(&4) && !hosts.contains(&leader), "{hosts:?}");

    // Freeze it under load (410 for new leaves), check everything its
    // clients saw, then retire it.
    work.seen.expect_gone.store(true, Ordering::SeqCst);
    let freeze = cairn_cli::cluster::ClusterCommand::Shard(
        cairn_cli::cluster::ShardCommand::Freeze(cairn_cli::cluster::FreezeArgs {
            shard: shard.into(),
            successor: Some("dev".into()),
            via: via.clone(),
            timeout: 60,
        }),
    );
    cairn_cli::cluster::run(freeze)
        .await
        .expect("cairn cluster shard freeze");
    let (acked, size) = work.finish(&mut cluster).await;
    eprintln!("shard {shard}: {acked} leaves answered 200, final size {size}");
    let final_size = cluster.statuses_of(shard).await[0]
        .frozen
        .as_ref()
        .expect("frozen")
        .size;
    assert!(final_size >= size);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let retired = cairn_cli::registry_cmd::retire(&cairn_cli::registry_cmd::RetireArgs {
            shard: shard.into(),
            via: via.clone(),
        })
        .await;
        match retired {
            Ok(()) => break,
            // The final head may still be waiting for its cosignatures.
            Err(e) if Instant::now() < deadline => {
                eprintln!("retire: {e:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("cairn cluster shard retire: {e:#}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.statuses_of(shard).await.is_empty()
        || cluster.nodes.iter().any(|n| {
            cluster
                .root
                .join(format!("node{}", n.id))
                .join("data/raft")
                .join(shard)
                .exists()
        })
    {
        assert!(
            Instant::now() < deadline,
            "nodes still hold the retired shard\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its tiles and final checkpoint stay in object storage.
    let object = CheckpointObject::local_of(&cluster, shard)
        .read()
        .await
        .expect("the retired shard's checkpoint");
    let checkpoint = cairn_tlog::checkpoint::SignedCheckpoint::parse(&object).unwrap();
    assert_eq!(checkpoint.checkpoint().size, final_size);
    retired_shard_is_served_from_object_storage(&cluster, shard, final_size).await;

    let (acked, size) = dev.finish(&mut cluster).await;
    eprintln!("shard dev: {acked} leaves answered 200, final size {size}");
    remove_on_success(cluster, &tmp);
}

/// `cairn fsck` of `shard` through the frontend, under the cluster's
/// policy (log signature and witness quorum), which must pass; the size
/// it checked.
async fn fsck_through_frontend(cluster: &LocalCluster, shard: &str) -> u64 {
    let policy = cluster.root.join("policy");
    let base = cluster.base_url_of(shard);
    let args = cairn_cli::fsck::FsckArgs::parse_from([
        base.as_str(),
        "--key",
        policy.to_str().expect("UTF-8 path"),
    ])
    .expect("fsck arguments");
    let fsck = cairn_cli::fsck::check(&args, false).await;
    assert_eq!(
        fsck.code,
        cairn_cli::fsck::EXIT_OK,
        "fsck of shard {shard}: {}",
        fsck.message
    );
    fsck.summary["size"].as_u64().expect("size")
}

/// The frontend keeps serving a retired shard from object storage: the
/// index says so, `cairn fsck` through the frontend under the policy
/// passes at the final size (get-tree-head from the stored checkpoint with
/// its witness quorum, every tile and leaf), and add-leaf and inclusion
/// proofs answer 410 with a readable reason.
async fn retired_shard_is_served_from_object_storage(
    cluster: &LocalCluster,
    shard: &str,
    final_size: u64,
) {
    let http = reqwest::Client::new();
    let index = format!("http://{}/shards.json", cluster.frontend);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = http
            .get(&index)
            .send()
            .await
            .expect("index")
            .text()
            .await
            .expect("index body");
        let list: serde_json::Value = serde_json::from_str(&text).expect("index JSON");
        let entry = list["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .find(|e| e["name"] == shard)
            .cloned();
        if entry.as_ref().is_some_and(|e| e["state"] == "retired") {
            let entry = entry.expect("entry");
            assert_eq!(entry["size"], final_size, "{entry}");
            assert_eq!(entry["successor"], "dev", "{entry}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the frontend does not list {shard} as retired: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let base = cluster.base_url_of(shard);
    assert_eq!(fsck_through_frontend(cluster, shard).await, final_size);
    let add = http
        .post(format!("{base}add-leaf"))
        .body("message=00\nsignature=00\npublic_key=00\n")
        .send()
        .await
        .expect("add-leaf");
    assert_eq!(add.status(), reqwest::StatusCode::GONE);
    let body = add.text().await.expect("body");
    assert!(
        body.contains("retired") && body.contains("\"dev\""),
        "{body}"
    );
    let proof = http
        .get(format!(
            "{base}get-inclusion-proof/{final_size}/{}",
            "00".repeat(32)
        ))
        .send()
        .await
        .expect("get-inclusion-proof");
    assert_eq!(proof.status(), reqwest::StatusCode::GONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_temporal_rotation_in_accelerated_time_moves_submitters_on_and_leaders_spread_by_themselves()
 {
    let tmp = cluster_dir();
    let mut cluster = LocalCluster::configure(&tmp, free_port(), 3);
    cluster.balance_every(2);
    cluster.start_all().await;
    let via: Vec<String> = cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
    // A "half year" of twenty seconds: spare3 is created ahead of time as
    // the successor, then spare2 with its end already set.
    let mut end = std::time::SystemTime::now();
    for shard in ["spare3", "spare2"] {
        let (freeze_at, successor) = if shard == "spare2" {
            end = std::time::SystemTime::now() + Duration::from_secs(20);
            (
                Some(humantime::format_rfc3339_seconds(end).to_string()),
                Some("spare3".to_owned()),
            )
        } else {
            (None, None)
        };
        let policy = add_to_policy(&cluster, shard);
        cairn_cli::registry_cmd::create(&cairn_cli::registry_cmd::CreateArgs {
            shard: shard.into(),
            key: cluster.root.join("keys").join(format!("{shard}.key.pub")),
            policy,
            replicas: cluster.members(),
            prefix: None,
            freeze_at,
            successor,
            via: via.clone(),
        })
        .await
        .expect("cairn cluster shard create");
        cluster.wait_published_of(shard, 1).await;
    }
    // Submitters post to spare2 until it answers 410, as sigsum-submit
    // moves to the next log of its policy then; spare3 takes load too.
    let old = Workload::start_on(
        &cluster,
        "spare2",
        CheckpointObject::local_of(&cluster, "spare2"),
        2,
        3,
    );
    old.seen.expect_gone.store(true, Ordering::SeqCst);
    let new = Workload::start_on(
        &cluster,
        "spare3",
        CheckpointObject::local_of(&cluster, "spare3"),
        2,
        3,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while old.seen.gone.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "spare2 never froze itself\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let froze_after = std::time::SystemTime::now()
        .duration_since(end)
        .unwrap_or_default();
    eprintln!("spare2 froze itself {froze_after:?} after its end");
    // The registry records the scheduled freeze.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let registry = cairn_cli::registry_cmd::fetch_registry(&via).await.unwrap();
        let state = registry
            .shards
            .iter()
            .find(|r| r.name == "spare2")
            .map(|r| r.state.clone());
        if state.as_deref() == Some("frozen") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the registry still says {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (acked, size) = old.finish(&mut cluster).await;
    eprintln!("spare2: {acked} leaves answered 200, final size {size}");
    let frozen = cluster.statuses_of("spare2").await[0]
        .frozen
        .clone()
        .expect("frozen");
    assert_eq!(frozen.size, size, "spare2 grew past its final size");
    assert_eq!(frozen.successor, "spare3");
    // Every group was created on node 1 first; the registry's leader has
    // spread their leaders meanwhile, without an operator.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut leaders = std::collections::BTreeSet::new();
        for shard in ["dev", "spare2", "spare3"] {
            leaders.insert(cluster.leader_of(shard).await);
        }
        if leaders.len() > 1 {
            eprintln!("leaders spread over nodes {leaders:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {leaders:?} still leads every shard\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (acked, size) = new.finish(&mut cluster).await;
    eprintln!("spare3: {acked} leaves answered 200, size {size}");
    remove_on_success(cluster, &tmp);
}
