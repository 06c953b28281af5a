//! The publish loop of one shard: learn of the sequencer's latest signed
//! tree head (its `WatchTreeHeads` stream starts a round as soon as a head
//! is signed; a poll every `poll_interval` covers a broken stream), get it
//! cosigned by the policy's witnesses, and publish it once the policy
//! quorum holds (docs/architecture.md, write path steps 5 and 6). add-leaf
//! answers 200 only once a leaf is published, so this loop's latency is
//! part of every submission's.
//!
//! One round, for a signed size above the published one:
//!
//! 1. Build the signed checkpoint note: the Sigsum checkpoint body plus the
//!    log's signature line (the sequencer's Ed25519 signature is exactly the
//!    note signature over that body).
//! 2. Send `add-checkpoint` to every policy witness that has a URL, all in
//!    parallel, each from the size that witness last cosigned (remembered in
//!    memory, 0 after a restart) with a consistency proof read from the
//!    tiles. On 409 adopt the witness's size and retry once.
//! 3. Verify each returned cosignature against the witness's policy key and
//!    check its timestamp is plausible.
//! 4. Once the quorum holds (and `extra_wait` is over), call
//!    `PublishCosigned`. Without quorum publish nothing, unless fail-open.
//!
//! A witness that reports (409) a size larger than the log's signed size has
//! cosigned a tree this log never showed us: a possible fork or split view.
//! The collector then halts the shard's publishing until restart and logs
//! an error; [`Collector::halted`] exposes it.
//!
//! The sequencer is a Raft group, reached through a [`SequencerPool`]:
//! `PublishCosigned` and `ReportWitnessAhead` follow its leader. Tree heads
//! are read from every node at once and the freshest answer is used: any
//! replica answers from its own applied state, and one that lags (or is cut
//! off from the leader and never catches up) must neither stall publication
//! nor pass for a log that is behind a witness. For the same reason a
//! witness ahead of the head a round read halts publishing only once it is
//! also ahead of every node that answers, a majority at least.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_proto::SequencerPool;
use cairn_proto::v1 as pb;
use cairn_sigsum::policy::Policy;
use cairn_sigsum::tree_head::{SignedTreeHead, TreeHead};
use cairn_sigsum::{KeyHash, PublicKey, Signature};
use cairn_storage::{StorageError, TileStore, TrustedHead};
use cairn_tlog::checkpoint::{Checkpoint, SignedCheckpoint, SignedCheckpointError};
use cairn_tlog::cosignature::{
    Cosignature, WitnessResponseError, cosignature_from_witness_response,
};
use cairn_tlog::note::{NoteSignature, SIG_TYPE_COSIGNATURE_V1, key_id};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use reqwest::Url;
use tokio::sync::{Notify, OnceCell, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument as _;

use crate::client::{WitnessClient, WitnessError, add_checkpoint_url};
use crate::config::{CollectorConfig, InvalidRoots};
use crate::metrics::CollectorMetrics;

/// Limit on each sequencer call (`GetTreeHeads`, `PublishCosigned`,
/// `ReportWitnessAhead`), retries on other nodes included.
pub const SEQUENCER_TIMEOUT: Duration = Duration::from_secs(10);

/// Limit on one `PublishCosigned` attempt on one node: it commits through
/// Raft and writes the checkpoint object, which may take longer than the
/// pool's default attempt limit allows a read. (A node that stopped
/// answering is still left early, by the pool's keep-alive.)
const PUBLISH_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a tree-head read waits for the other nodes once one has
/// answered: a node that hangs must not hold every round up, and one that
/// answers this much later than another is no fresher than it by much.
const READ_SETTLE: Duration = Duration::from_millis(100);

/// First delay before re-opening a broken `WatchTreeHeads` stream; doubled
/// per failure up to [`WATCH_RECONNECT_MAX`] (polling goes on meanwhile).
const WATCH_RECONNECT_MIN: Duration = Duration::from_millis(50);
const WATCH_RECONNECT_MAX: Duration = Duration::from_secs(2);

/// How often a witness-ahead report is sent before giving up (about 30 s
/// with the back-off above); publishing stays halted either way.
const REPORT_ATTEMPTS: u32 = 20;

/// Latest acceptable cosignature timestamp, relative to local time: a
/// witness clock further ahead than this is broken (or lying).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(600);

/// Why a [`Collector`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// A witness URL in the policy is unusable.
    #[error("policy witness {name}: {source}")]
    WitnessUrl {
        /// The witness's policy name.
        name: String,
        /// What is wrong with its URL.
        source: WitnessError,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("witness HTTP client: {0}")]
    Client(#[source] WitnessError),
    /// [`CollectorConfig::witness_roots`] holds no usable certificate.
    #[error(transparent)]
    WitnessRoots(#[from] InvalidRoots),
    /// A configured duration is zero.
    #[error("collector config: {0} must be greater than zero")]
    Config(&'static str),
}

/// Why one witness gave no usable cosignature in a round.
#[derive(Debug, thiserror::Error)]
enum CosignError {
    #[error("{0}")]
    Witness(#[from] WitnessError),
    #[error("consistency proof from the tiles: {0}")]
    Proof(#[from] StorageError),
    #[error("invalid cosignature: {0}")]
    Response(#[from] WitnessResponseError),
    #[error("cosignature timestamp {timestamp} is implausible (local time {now})")]
    Timestamp { timestamp: u64, now: u64 },
    #[error("witness has cosigned size {witness_size}, above the log's signed size {signed_size}")]
    Ahead { witness_size: u64, signed_size: u64 },
    #[error("witness did not answer within the round's limit")]
    Deadline,
}

/// One policy witness the collector can reach.
#[derive(Debug)]
struct Target {
    /// Policy name, for logs and metric labels.
    name: String,
    key: PublicKey,
    key_hash: KeyHash,
    url: Url,
    /// The size this witness last cosigned, as far as this process knows.
    size: AtomicU64,
    /// Whether `size` was learned from the witness (an answer to this
    /// process); until then the witness is probed with the published head
    /// before it is sent anything new.
    known: AtomicBool,
}

/// The collector of one shard. Build with [`Collector::new`], drive with
/// [`Collector::run`]; share it (`Arc`) to read [`Collector::metrics`] and
/// [`Collector::halted`] meanwhile. Rounds run one at a time.
#[derive(Debug)]
pub struct Collector {
    config: CollectorConfig,
    policy: Policy,
    log_key: PublicKey,
    sequencer: SequencerPool,
    tiles: TileStore,
    client: WitnessClient,
    witnesses: Vec<Target>,
    metrics: Arc<CollectorMetrics>,
    halted: watch::Sender<bool>,
    /// Largest size this process published (0: none); guards against a
    /// sequencer view that lags behind our own publication.
    published: AtomicU64,
    /// When the published head was last sent out again for fresh
    /// cosignatures.
    recosign_tried: std::sync::Mutex<Option<Instant>>,
}

impl Collector {
    /// A collector for `config.shard`, whose log has key `log_key`, cosigned
    /// per `policy` by its witnesses that have URLs, reading tree heads from
    /// and publishing to the sequencer nodes of `sequencer` (following their
    /// leader), and reading consistency proofs from `tiles`. Performs no IO.
    pub fn new(
        config: CollectorConfig,
        policy: Policy,
        log_key: PublicKey,
        sequencer: SequencerPool,
        tiles: TileStore,
    ) -> Result<Self, CollectorError> {
        if config.poll_interval.is_zero() {
            return Err(CollectorError::Config("poll_interval"));
        }
        if config.witness_timeout.is_zero() {
            return Err(CollectorError::Config("witness_timeout"));
        }
        if config.recosign_interval.is_zero() {
            return Err(CollectorError::Config("recosign_interval"));
        }
        let mut witnesses = Vec::new();
        for w in policy.witnesses() {
            let name = w.name().to_string();
            let Some(url) = w.url() else {
                continue;
            };
            let url = url
                .as_str()
                .ok_or_else(|| WitnessError::InvalidUrl {
                    url: url.to_string(),
                    reason: "not UTF-8".into(),
                })
                .and_then(add_checkpoint_url)
                .map_err(|source| CollectorError::WitnessUrl {
                    name: name.clone(),
                    source,
                })?;
            witnesses.push(Target {
                name,
                key: *w.key(),
                key_hash: *w.key_hash(),
                url,
                size: AtomicU64::new(0),
                known: AtomicBool::new(false),
            });
        }
        if policy.log_by_key_hash(&log_key.key_hash()).is_none() {
            tracing::warn!(
                shard = %config.shard,
                "the shard's log key is not in its policy: verifiers using this policy will reject its heads"
            );
        }
        let client = WitnessClient::with_roots(config.witness_timeout, &config.witness_trust()?)
            .map_err(CollectorError::Client)?;
        Ok(Collector {
            config,
            policy,
            log_key,
            sequencer,
            tiles,
            client,
            witnesses,
            metrics: Arc::new(CollectorMetrics::default()),
            halted: watch::Sender::new(false),
            published: AtomicU64::new(0),
            recosign_tried: std::sync::Mutex::new(None),
        })
    }

    /// The shard this collector publishes for.
    pub fn shard(&self) -> &str {
        &self.config.shard
    }

    /// The counters, shared with the running collector.
    pub fn metrics(&self) -> Arc<CollectorMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Whether publishing is halted because a witness is ahead of the log.
    /// Only a restart clears it.
    pub fn halted(&self) -> bool {
        *self.halted.borrow()
    }

    /// A receiver that sees the halted flag change (to `true`, once).
    pub fn watch_halted(&self) -> watch::Receiver<bool> {
        self.halted.subscribe()
    }

    /// Runs a round whenever the sequencer signs a new head (and at least
    /// every `poll_interval`) until `shutdown` completes (a round in
    /// progress is abandoned; witnesses and the sequencer tolerate that).
    /// Errors are logged and counted, never returned: the next round
    /// retries. Once halted, no more rounds run.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let signed = Notify::new();
        tokio::select! {
            () = shutdown => {}
            () = self.follow_heads(&signed) => {}
            () = self.rounds(&signed) => {}
        }
    }

    async fn rounds(&self, signed: &Notify) {
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let woken = tokio::select! {
                _ = tick.tick() => false,
                () = signed.notified() => true,
            };
            if self.halted() {
                // Publishing stays stopped until an operator restarts us.
                return std::future::pending().await;
            }
            if woken {
                // A new signed head: one trace from reading (signing) it,
                // through every witness, to its publication. Polls that
                // find nothing new are not traced.
                self.round()
                    .instrument(tracing::info_span!("publication", shard = %self.config.shard))
                    .await;
            } else {
                self.round().await;
            }
        }
    }

    /// Wakes `signed` each time the `WatchTreeHeads` stream reports a
    /// signed size above the published one. The stream runs on the pool's
    /// leader guess and moves with it; a stream that fails or ends reports
    /// its node to the pool and is reopened with backoff. Never returns.
    async fn follow_heads(&self, signed: &Notify) {
        let mut backoff = WATCH_RECONNECT_MIN;
        loop {
            let (node, client) = self.sequencer.current();
            tokio::select! {
                () = self.follow_stream(&node, client, signed, &mut backoff) => {}
                // Calls found another leader: follow it instead, at once.
                () = self.sequencer.moved_from(&node) => continue,
            }
            self.sequencer.suspect(&node);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(WATCH_RECONNECT_MAX);
        }
    }

    /// Follows one `WatchTreeHeads` stream on `node` until it fails or ends.
    async fn follow_stream(
        &self,
        node: &str,
        mut client: cairn_proto::Client,
        signed: &Notify,
        backoff: &mut Duration,
    ) {
        let request = pb::GetTreeHeadsRequest {
            shard: self.config.shard.clone(),
        };
        let mut stream = match client.watch_tree_heads(request).await {
            Ok(stream) => stream.into_inner(),
            Err(status) => {
                tracing::debug!(shard = %self.config.shard, node, %status, "WatchTreeHeads failed");
                return;
            }
        };
        while let Some(Ok(heads)) = stream.next().await {
            *backoff = WATCH_RECONNECT_MIN;
            let published = heads.cosigned.and_then(|c| c.signed).map(|s| s.size);
            if heads
                .signed
                .is_some_and(|s| published.is_none_or(|p| s.size > p))
            {
                // A permit is stored if a round is running: the next one
                // starts right after it.
                signed.notify_one();
            }
        }
    }

    /// One poll: if the signed head is newer than the published one, collect
    /// cosignatures and publish.
    async fn round(&self) {
        let shard = self.config.shard.as_str();
        let heads = match self.tree_heads().await {
            Ok(h) => h,
            Err(e) => {
                self.metrics.sequencer_error();
                tracing::warn!(shard, error = %e, "GetTreeHeads failed");
                return;
            }
        };
        let Some(signed_pb) = heads.signed else {
            return;
        };
        let published = heads
            .cosigned
            .as_ref()
            .and_then(|c| c.signed.as_ref())
            .map(|s| s.size)
            .max(match self.published.load(Ordering::Relaxed) {
                0 => None,
                n => Some(n),
            });
        // First, before anything new is shown to a witness: witnesses not
        // heard from since this process started are asked for their size.
        if let Some(published_pb) = heads.cosigned.as_ref().and_then(|c| c.signed.as_ref())
            && self
                .witnesses
                .iter()
                .any(|t| !t.known.load(Ordering::Relaxed))
            && self.probe(published_pb, signed_pb.size).await
        {
            return;
        }
        if published.is_some_and(|p| signed_pb.size <= p)
            && !self.due_for_recosigning(&signed_pb, heads.cosigned.as_ref())
        {
            return;
        }
        let Some(sth) = self.check_signed(&signed_pb) else {
            self.metrics.sequencer_error();
            return;
        };
        self.metrics.round();
        let started = Instant::now();
        let checkpoint = sth.tree_head.checkpoint(&self.log_key.key_hash());
        let note = match self.note(&checkpoint, &sth.signature) {
            Ok(n) => n,
            Err(e) => {
                self.metrics.sequencer_error();
                tracing::error!(shard, error = %e, "cannot build the checkpoint note");
                return;
            }
        };
        let Some(collected) = self.collect(&checkpoint, &note, started).await else {
            return;
        };
        self.publish(signed_pb, collected, started).await;
    }

    /// Whether the published head is the signed one and its newest
    /// cosignature is [`CollectorConfig::recosign_interval`] old: then the
    /// same head is cosigned and published again.
    fn due_for_recosigning(
        &self,
        signed: &pb::SignedTreeHead,
        cosigned: Option<&pb::CosignedTreeHead>,
    ) -> bool {
        let Some(cosigned) = cosigned else {
            return false;
        };
        if cosigned.signed.as_ref().map(|s| s.size) != Some(signed.size) {
            return false;
        }
        // A head published without cosignatures (fail-open, or a policy
        // with no reachable witness) has nothing to renew.
        let Some(newest) = cosigned.cosignatures.iter().map(|c| c.timestamp).max() else {
            return false;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now.saturating_sub(newest) < self.config.recosign_interval.as_secs() {
            return false;
        }
        // While witnesses do not answer, try again only every quarter
        // interval, not on every poll.
        let mut tried = self
            .recosign_tried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tried.is_some_and(|at| at.elapsed() < self.config.recosign_interval / 4) {
            return false;
        }
        *tried = Some(Instant::now());
        true
    }

    /// The freshest heads of the sequencer nodes (largest signed size,
    /// then largest published size): every node is asked at once, and
    /// answers are taken until all have come or [`READ_SETTLE`] after the
    /// first. Fails only if no node answers.
    async fn tree_heads(&self) -> Result<pb::TreeHeads, tonic::Status> {
        let deadline = Instant::now() + SEQUENCER_TIMEOUT;
        let mut answers = std::pin::pin!(self.each_tree_heads(deadline));
        let mut freshest: Option<pb::TreeHeads> = None;
        let mut failures = Vec::new();
        let mut settle_at = deadline;
        while let Ok(Some((node, answer))) =
            tokio::time::timeout_at(settle_at, answers.next()).await
        {
            match answer {
                Ok(heads) => {
                    if freshest
                        .as_ref()
                        .is_none_or(|f| freshness(&heads) > freshness(f))
                    {
                        freshest = Some(heads);
                    }
                    settle_at = settle_at.min(Instant::now() + READ_SETTLE);
                }
                Err(status) => failures.push(format!("{node}: {status}")),
            }
        }
        freshest.ok_or_else(|| {
            tonic::Status::unavailable(format!(
                "GetTreeHeads: no sequencer node answered: {}",
                failures.join("; ")
            ))
        })
    }

    /// Every node's `GetTreeHeads` answer, as it arrives.
    fn each_tree_heads(
        &self,
        deadline: Instant,
    ) -> impl futures::Stream<Item = (String, Result<pb::TreeHeads, tonic::Status>)> + use<> {
        let shard = self.config.shard.clone();
        self.sequencer.call_each(deadline, move |mut client| {
            let request = pb::GetTreeHeadsRequest {
                shard: shard.clone(),
            };
            async move { client.get_tree_heads(request).await }
        })
    }

    /// Whether the log really is behind a witness that has cosigned
    /// `witness_size`: every sequencer node that answers (a majority of
    /// them at least) has signed a smaller tree. A node read earlier may
    /// just have lagged; a log restored from an old backup is behind on
    /// every node.
    async fn behind_witness(&self, witness_size: u64) -> bool {
        let nodes = self.sequencer.addrs().len();
        let answers: Vec<_> = self
            .each_tree_heads(Instant::now() + SEQUENCER_TIMEOUT)
            .collect()
            .await;
        let sizes: Vec<u64> = answers
            .iter()
            .filter_map(|(_, a)| a.as_ref().ok())
            .map(|h| h.signed.as_ref().map_or(0, |s| s.size))
            .collect();
        sizes.len() * 2 > nodes && sizes.iter().all(|&s| s < witness_size)
    }

    /// The signed tree head, if well-formed and signed by the log's key:
    /// witnesses must never be sent anything else.
    fn check_signed(&self, s: &pb::SignedTreeHead) -> Option<SignedTreeHead> {
        let shard = self.config.shard.as_str();
        let (Ok(root_hash), Ok(signature)) = (
            <[u8; 32]>::try_from(s.root_hash.as_slice()),
            <[u8; 64]>::try_from(s.signature.as_slice()),
        ) else {
            tracing::error!(
                shard,
                size = s.size,
                "signed tree head has a malformed root or signature"
            );
            return None;
        };
        let sth = SignedTreeHead {
            tree_head: TreeHead {
                size: s.size,
                root_hash,
            },
            signature: Signature(signature),
        };
        if !sth.verify(&self.log_key) {
            tracing::error!(
                shard,
                size = s.size,
                "signed tree head does not verify under the log key"
            );
            return None;
        }
        Some(sth)
    }

    /// The signed note a witness receives: checkpoint body and the log's
    /// Ed25519 note signature line (key name = origin).
    fn note(
        &self,
        checkpoint: &Checkpoint,
        signature: &Signature,
    ) -> Result<Vec<u8>, SignedCheckpointError> {
        let signed =
            SignedCheckpoint::assemble(checkpoint.clone(), &self.log_key.0, &signature.0, &[])?;
        Ok(signed.note().to_bytes())
    }

    /// Asks every witness in parallel; returns the valid cosignatures once
    /// the quorum holds (plus whatever arrives within `extra_wait`), or
    /// `None` if nothing may be published.
    async fn collect(
        &self,
        checkpoint: &Checkpoint,
        note: &[u8],
        started: Instant,
    ) -> Option<Collected> {
        let shard = self.config.shard.as_str();
        let size = checkpoint.size;
        // Two requests plus reading a proof: a generous bound on one witness.
        let limit = self.client.timeout().saturating_mul(3);
        let proofs = ProofCache::default();
        let proofs = &proofs;
        let mut pending: FuturesUnordered<_> = self
            .witnesses
            .iter()
            .map(|t| {
                let span = cairn_proto::trace::traced(
                    || tracing::info_span!("witness", witness = %t.name, size),
                );
                async move {
                    let asked = Instant::now();
                    let r = tokio::time::timeout(limit, self.cosign(t, checkpoint, note, proofs))
                        .await
                        .unwrap_or(Err(CosignError::Deadline));
                    self.metrics.witness_answered(&t.name, asked.elapsed());
                    (t, r)
                }
                .instrument(span)
            })
            .collect();
        let mut satisfied = HashSet::new();
        let mut cosignatures = Vec::new();
        let mut stop_at = self.quorum_reached(&satisfied);
        while let Some(next) = next_until(&mut pending, stop_at).await {
            let (t, result) = next;
            match result {
                Ok(c) => {
                    satisfied.insert(t.key_hash);
                    cosignatures.push(c);
                }
                Err(CosignError::Ahead {
                    witness_size,
                    signed_size,
                }) => {
                    self.metrics.witness_error(&t.name);
                    if !self.behind_witness(witness_size).await {
                        tracing::warn!(
                            shard, witness = %t.name, witness_size, signed_size,
                            "witness has cosigned a larger tree than the head this round read, \
                             but not larger than every sequencer node's: a lagging node; \
                             abandoning the round"
                        );
                        return None;
                    }
                    tracing::error!(
                        shard, witness = %t.name, witness_size, signed_size,
                        "ALARM: witness has cosigned a larger tree than this log has signed \
                         (fork or split view?); publishing halted until restart"
                    );
                    self.halt_for(t, witness_size).await;
                    return None;
                }
                Err(e) => {
                    self.metrics.witness_error(&t.name);
                    tracing::warn!(shard, witness = %t.name, size, error = %e, "no cosignature");
                }
            }
            if stop_at.is_none() {
                stop_at = self.quorum_reached(&satisfied);
                if stop_at.is_some() {
                    self.metrics.quorum_reached(started.elapsed());
                }
            }
        }
        drop(pending);
        let with_quorum = self.policy.quorum_satisfied(&satisfied);
        if !with_quorum {
            self.metrics.quorum_failed();
            if !self.config.fail_open {
                tracing::warn!(
                    shard,
                    size,
                    cosignatures = cosignatures.len(),
                    "policy quorum not reached; not publishing (fail-closed)"
                );
                return None;
            }
            tracing::warn!(
                shard,
                size,
                cosignatures = cosignatures.len(),
                "policy quorum not reached; publishing anyway (fail-open)"
            );
        }
        cosignatures.sort_by(|a, b| a.key_hash.cmp(&b.key_hash));
        Some(Collected {
            cosignatures,
            with_quorum,
        })
    }

    /// Learns the size of every witness not heard from yet by sending it
    /// the already *published* head (from size 0, so a witness further on
    /// answers 409 with its size and cosigns nothing). A new head is then
    /// never shown to a witness that has cosigned a larger tree than this
    /// log has signed — the sign that this log's state is older than what
    /// it published (a restored backup): that halts publication at once,
    /// before anything contradicting the witness is signed for it.
    /// Returns whether the round must stop: it halted, or a witness is
    /// ahead of the head read but not of every node (a node lagged).
    async fn probe(&self, published: &pb::SignedTreeHead, signed_size: u64) -> bool {
        let shard = self.config.shard.as_str();
        let Some(sth) = self.check_signed(published) else {
            return false;
        };
        let checkpoint = sth.tree_head.checkpoint(&self.log_key.key_hash());
        let Ok(note) = self.note(&checkpoint, &sth.signature) else {
            return false;
        };
        let limit = self.client.timeout();
        let probes: FuturesUnordered<_> = self
            .witnesses
            .iter()
            .filter(|t| !t.known.load(Ordering::Relaxed))
            .map(|t| {
                let note = &note;
                async move {
                    let answer = tokio::time::timeout(
                        limit,
                        self.client.add_checkpoint(&t.url, 0, &[], note),
                    )
                    .await;
                    (t, answer)
                }
            })
            .collect();
        let answers: Vec<_> = probes.collect().await;
        for (t, answer) in answers {
            let size = match answer {
                Ok(Ok(_)) => sth.tree_head.size,
                Ok(Err(WitnessError::Conflict { size })) => size,
                // Unreachable now: the round will try it, from size 0.
                _ => continue,
            };
            t.known.store(true, Ordering::Relaxed);
            t.size.store(size, Ordering::Relaxed);
            if size > signed_size {
                self.metrics.witness_error(&t.name);
                if !self.behind_witness(size).await {
                    tracing::warn!(
                        shard, witness = %t.name, witness_size = size, signed_size,
                        "witness has cosigned a larger tree than the head this round read, \
                         but not larger than every sequencer node's: a lagging node; \
                         abandoning the round"
                    );
                    return true;
                }
                tracing::error!(
                    shard, witness = %t.name, witness_size = size, signed_size,
                    "ALARM: witness has cosigned a larger tree than this log has signed \
                     (the log's state is older than what it published, or a split view); \
                     publishing halted until restart"
                );
                self.halt_for(t, size).await;
                return true;
            }
        }
        false
    }

    /// Halts publishing here and tells the sequencer, so that it stops
    /// accepting and serving too (best effort: the sequencer may be down;
    /// publishing stays halted either way).
    async fn halt_for(&self, t: &Target, witness_size: u64) {
        self.halted.send_replace(true);
        // The sequencer acts only once its leader has applied its whole log
        // (just after a start it may not have); ask again for a while.
        let mut backoff = WATCH_RECONNECT_MIN;
        for _ in 0..REPORT_ATTEMPTS {
            let req = pb::ReportWitnessAheadRequest {
                shard: self.config.shard.clone(),
                witness: t.name.clone(),
                witness_size,
            };
            let answer = self
                .sequencer
                .call(
                    "ReportWitnessAhead",
                    Instant::now() + SEQUENCER_TIMEOUT,
                    |mut client| {
                        let req = req.clone();
                        async move { client.report_witness_ahead(req).await }
                    },
                )
                .await;
            match answer {
                Ok(r) if r.halted => return,
                Ok(_) => {}
                Err(status) => {
                    tracing::warn!(shard = %self.config.shard, %status, "ReportWitnessAhead failed");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(WATCH_RECONNECT_MAX);
        }
        tracing::error!(shard = %self.config.shard, "the sequencer did not halt on a witness ahead of it; publishing stays halted here");
    }

    /// When to stop collecting if the quorum holds now: `None` if it does not.
    fn quorum_reached(&self, satisfied: &HashSet<KeyHash>) -> Option<Instant> {
        self.policy
            .quorum_satisfied(satisfied)
            .then(|| Instant::now() + self.config.extra_wait)
    }

    /// One witness: add-checkpoint from its remembered size, one retry on 409.
    async fn cosign(
        &self,
        t: &Target,
        checkpoint: &Checkpoint,
        note: &[u8],
        proofs: &ProofCache,
    ) -> Result<pb::Cosignature, CosignError> {
        let new = checkpoint.size;
        let mut old = t.size.load(Ordering::Relaxed);
        if old > new {
            // We saw it cosign a larger head than the one signed now: ask
            // afresh and let its 409 tell (an Ahead alarm if it is so).
            old = 0;
        }
        let mut retried = false;
        let body = loop {
            let proof = if old == 0 || old == new {
                Arc::default()
            } else {
                let head = TrustedHead::new(new, checkpoint.root);
                proofs.get(&self.tiles, old, head).await?
            };
            match self.client.add_checkpoint(&t.url, old, &proof, note).await {
                Ok(body) => break body,
                Err(WitnessError::Conflict { size }) if size > new => {
                    return Err(CosignError::Ahead {
                        witness_size: size,
                        signed_size: new,
                    });
                }
                Err(WitnessError::Conflict { size }) if !retried && size != old => {
                    tracing::debug!(witness = %t.name, old, size, "adopting the witness's size");
                    t.size.store(size, Ordering::Relaxed);
                    old = size;
                    retried = true;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let cosig = cosignature_from_witness_response(&t.key.0, checkpoint, &body)?;
        let now = unix_now();
        if cosig.timestamp == 0 || cosig.timestamp > now.saturating_add(MAX_CLOCK_SKEW.as_secs()) {
            return Err(CosignError::Timestamp {
                timestamp: cosig.timestamp,
                now,
            });
        }
        t.size.store(new, Ordering::Relaxed);
        t.known.store(true, Ordering::Relaxed);
        Ok(pb::Cosignature {
            key_hash: t.key_hash.0.to_vec(),
            timestamp: cosig.timestamp,
            signature: cosig.signature.to_vec(),
            note_name: note_name(&t.key, &cosig, &body).unwrap_or_default(),
        })
    }

    async fn publish(&self, signed: pb::SignedTreeHead, collected: Collected, started: Instant) {
        let shard = self.config.shard.as_str();
        let size = signed.size;
        let Collected {
            cosignatures,
            with_quorum,
        } = collected;
        let count = cosignatures.len();
        let req = pb::PublishCosignedRequest {
            shard: self.config.shard.clone(),
            head: Some(pb::CosignedTreeHead {
                signed: Some(signed),
                cosignatures,
            }),
        };
        let r = self
            .sequencer
            .call_with(
                "PublishCosigned",
                Instant::now() + SEQUENCER_TIMEOUT,
                PUBLISH_ATTEMPT_TIMEOUT,
                |mut client| {
                    let req = req.clone();
                    async move { client.publish_cosigned(req).await }
                },
            )
            .await;
        match r {
            Ok(_) => {
                let after = started.elapsed();
                self.published.fetch_max(size, Ordering::Relaxed);
                self.metrics.published(size, with_quorum, after);
                tracing::info!(
                    shard,
                    size,
                    cosignatures = count,
                    with_quorum,
                    // Parsed by the e2e test's latency report; keep the name.
                    publish_ms = after.as_secs_f64() * 1000.0,
                    "published cosigned tree head"
                );
            }
            Err(e) => {
                self.metrics.publish_error();
                tracing::warn!(shard, size, error = %e, "PublishCosigned failed");
            }
        }
    }
}

/// The consistency proofs of one round, by old size: witnesses that last
/// cosigned the same size (the usual case) share one proof, read once.
#[derive(Default)]
struct ProofCache(std::sync::Mutex<HashMap<u64, Arc<OnceCell<Proof>>>>);

/// A consistency proof, shared between the witnesses of a round.
type Proof = Arc<Vec<cairn_tlog::Hash>>;

impl ProofCache {
    /// The proof from `old` to `new` (the signed head, whose log signature
    /// was checked, so its tiles are verified against it); a failed read is
    /// not cached, so the next witness with that old size tries again.
    async fn get(
        &self,
        tiles: &TileStore,
        old: u64,
        new: TrustedHead,
    ) -> Result<Proof, StorageError> {
        let cell = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(map.entry(old).or_default())
        };
        cell.get_or_try_init(|| async {
            tiles
                .consistency_proof(old, new.size, new)
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
    }
}

/// What a round collected for publication.
struct Collected {
    /// Valid cosignatures, sorted by witness key hash.
    cosignatures: Vec<pb::Cosignature>,
    /// Whether they satisfy the policy quorum (false only when fail-open).
    with_quorum: bool,
}

/// How fresh a node's heads are: its signed size, then its published size.
fn freshness(heads: &pb::TreeHeads) -> (u64, u64) {
    (
        heads.signed.as_ref().map_or(0, |s| s.size),
        heads
            .cosigned
            .as_ref()
            .and_then(|c| c.signed.as_ref())
            .map_or(0, |s| s.size),
    )
}

/// The next finished witness, or `None` when all are done or `stop_at` has
/// passed.
async fn next_until<S: futures::Stream + Unpin>(
    pending: &mut S,
    stop_at: Option<Instant>,
) -> Option<S::Item> {
    match stop_at {
        None => pending.next().await,
        Some(t) => tokio::time::timeout_at(t, pending.next())
            .await
            .ok()
            .flatten(),
    }
}

/// The key name on the response line that carries `cosig`: the name the
/// witness chose, which the published checkpoint's line must repeat.
fn note_name(key: &PublicKey, cosig: &Cosignature, body: &[u8]) -> Option<String> {
    let blob = cosig.to_blob();
    std::str::from_utf8(body)
        .ok()?
        .lines()
        .filter_map(|l| NoteSignature::parse_line(l).ok())
        .find(|s| {
            s.blob() == blob && s.key_id() == key_id(s.name(), SIG_TYPE_COSIGNATURE_V1, &key.0)
        })
        .map(|s| s.name().to_owned())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
