//! Operator endpoints: `/livez`, `/readyz` and Prometheus `/metrics`.
//!
//! Metrics are read from the shards' applied state at scrape time, so they
//! can never disagree with what the log serves. Names use the `cairn_` prefix
//! and a `shard` label (architecture.md §7). Besides the sequencer's and the
//! collector's, `cairn_storage_corrupt_objects_total{shard}` counts reads
//! (frontend, collector) that found a stored tile or bundle corrupt, and
//! `cairn_object_store_operation_duration_seconds{shard,op,outcome}` and
//! `cairn_object_store_errors_total{shard,op,kind}` time every object store
//! call and count its failures (see `cairn_storage::StoreMetrics`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_collector::Collector;
use cairn_sequencer::metrics::Step;
use cairn_sequencer::shard::Shard;
use cairn_storage::{StoreMetrics, TileStore};
use prometheus_client::collector::Collector as MetricsCollector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabel {
    shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabel {
    shard: String,
    witness: String,
}

/// What this process runs: the sequencers of some shards and the
/// collectors of some (in `cairnd dev` both, for the one dev shard).
#[derive(Clone, Debug, Default)]
pub struct Ops {
    /// The frontend this process serves, if any: its request metrics and
    /// the shards whose sequencers `/readyz` checks.
    pub frontend: Option<cairn_frontend::Shards>,
    /// The directory of this process's durable state (Raft logs, state
    /// machines): its file system's free and total space are exported.
    pub data_dir: Option<std::path::PathBuf>,
    /// Shards whose sequencer runs here, fixed at start.
    pub shards: Vec<Arc<Shard>>,
    /// A sequencer node's service: the shards it hosts *now* (registry
    /// shards come and go while it runs), read at each request in addition
    /// to `shards`.
    pub sequencer: Option<cairn_sequencer::service::SequencerService>,
    /// Shards whose cosignature collector runs here.
    pub collectors: Vec<Arc<Collector>>,
    /// The listener's connection counters (`cairn_http_*`), if this process
    /// serves through a `cairn_http::Server`.
    pub http: Option<cairn_http::Stats>,
    /// The tile stores this process reads, by shard name (a store shared
    /// by several readers listed once): their corrupt-object counters.
    pub tile_stores: Vec<(String, TileStore)>,
    /// The object store metrics the tile stores record into
    /// (`cairn_object_store_*`), registered once for all of them.
    pub store_metrics: StoreMetrics,
}

impl Ops {
    /// Every shard whose sequencer runs here now, each once, by name.
    fn sequencer_shards(&self) -> Vec<Arc<Shard>> {
        let mut all: std::collections::BTreeMap<String, Arc<Shard>> = self
            .shards
            .iter()
            .map(|s| (s.name().to_owned(), s.clone()))
            .collect();
        if let Some(service) = &self.sequencer {
            for s in service.all() {
                all.insert(s.name().to_owned(), s);
            }
        }
        all.into_values().collect()
    }
}

/// The routes, for what this process runs.
pub fn router(ops: Ops) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::new(ops))
}

/// 405 for the operator endpoints, with a readable body (axum's own is
/// empty); axum adds the `Allow` header.
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: the operator endpoints take GET or HEAD\n",
    )
        .into_response()
}

/// Ready when this process can do its job now: every sequencer shard here
/// is ready ([`Shard::unready`]: a known leader, caught up, not halted,
/// something published), no collector has halted publishing, and the
/// frontend reaches a ready leader for each active shard it serves.
async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    let mut problems = Vec::new();
    for collector in &ops.collectors {
        if collector.halted() {
            problems.push(format!(
                "shard {}: collector halted: a witness cosigned a larger tree than the log signed",
                collector.shard()
            ));
        }
    }
    for shard in &ops.sequencer_shards() {
        if let Some(problem) = shard.unready() {
            problems.push(format!("shard {}: {problem}", shard.name()));
        }
    }
    if let Some(frontend) = &ops.frontend {
        problems.extend(frontend.unready().await);
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n").into_response()
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    let mut registry = Registry::with_prefix("cairn");
    if let Some(stats) = &ops.http {
        stats.register(&mut registry);
    }
    if let Some(frontend) = &ops.frontend {
        frontend.metrics().register(&mut registry);
    }
    // Each role exports its own families only (docs/metrics.md, by role).
    if ops.sequencer.is_some() || !ops.shards.is_empty() {
        register_sequencer_shards(&mut registry, &ops.sequencer_shards());
    }
    if let Some(dir) = &ops.data_dir {
        register_disk(&mut registry, dir);
    }
    if !ops.collectors.is_empty() {
        register_collectors(&mut registry, &ops.collectors);
    }
    register_tile_stores(&mut registry, &ops.tile_stores);
    ops.store_metrics.register(&mut registry);
    openmetrics(&registry)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowerLabel {
    shard: String,
    follower: String,
}

/// One metric family whose series (one per label set) are metrics that
/// live elsewhere, e.g. each shard's own histogram: encoded under one
/// `# HELP`/`# TYPE` header, as the exposition formats require (a
/// sub-registry per shard would repeat the header for every shard, which
/// Prometheus refuses).
#[derive(Debug)]
struct Labelled<L, M> {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    metric_type: MetricType,
    series: Vec<(L, M)>,
}

impl<L> Labelled<L, Histogram> {
    /// A histogram family in seconds.
    fn seconds(name: &'static str, help: &'static str) -> Self {
        Labelled {
            name,
            help,
            unit: Some(Unit::Seconds),
            metric_type: MetricType::Histogram,
            series: Vec::new(),
        }
    }
}

impl<L, M> MetricsCollector for Labelled<L, M>
where
    L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // The header even without series, like a registered `Family`:
        // the family exists before its first shard or witness does.
        let mut family = encoder.encode_descriptor(
            self.name,
            self.help,
            self.unit.as_ref(),
            self.metric_type,
        )?;
        for (labels, metric) in &self.series {
            metric.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// A family labelled by shard, registered in `registry`.
fn shard_family<M>(registry: &mut Registry, name: &str, help: &str) -> Family<ShardLabel, M>
where
    M: prometheus_client::registry::Metric + Default + Clone,
    Family<ShardLabel, M>: prometheus_client::registry::Metric,
{
    let f = Family::<ShardLabel, M>::default();
    registry.register(name, help, f.clone());
    f
}

/// The sequencer's per-shard series, read at scrape time from each
/// shard's applied state, Raft metrics and pipeline measurements.
fn register_sequencer_shards(registry: &mut Registry, shards: &[Arc<Shard>]) {
    let family = shard_family::<Gauge>;
    let counter = shard_family::<Counter>;
    let tree_size = family(registry, "tree_size", "Leaves committed and applied");
    let integrated = family(
        registry,
        "integrated_size",
        "Largest tree size whose tiles are all in object storage (the signable size)",
    );
    let signed = family(
        registry,
        "signed_size",
        "Largest tree size this node signed a tree head for",
    );
    let cosigned = family(
        registry,
        "cosigned_size",
        "Size of the latest published cosigned tree head",
    );
    let cosignatures = family(
        registry,
        "cosignatures",
        "Cosignatures on the latest published tree head",
    );
    let leader = family(
        registry,
        "is_leader",
        "1 if this node leads the shard's Raft group",
    );
    let halted = family(
        registry,
        "halted",
        "1 if the shard's pipeline halted on a fatal error",
    );
    let unpublished_age = Family::<ShardLabel, Gauge<f64, AtomicU64>>::default();
    registry.register_with_unit(
        "unpublished_leaf_age",
        "Age of the oldest leaf committed on this node that no published tree head covers (0 if none): the merge delay so far",
        Unit::Seconds,
        unpublished_age.clone(),
    );
    let term = family(
        registry,
        "raft_term",
        "Current Raft term of the shard's group on this node",
    );
    let apply_lag = family(
        registry,
        "raft_apply_lag",
        "Raft log entries on this node not yet applied to its state machine",
    );
    let replication_lag = Family::<FollowerLabel, Gauge>::default();
    registry.register(
        "raft_replication_lag",
        "On the leader: Raft log entries each follower has not yet acknowledged",
        replication_lag.clone(),
    );
    let leader_changes = counter(
        registry,
        "raft_leader_changes",
        "Times this node saw a new leader of the shard's group (a leader other than the last one it knew)",
    );
    let builds = counter(
        registry,
        "raft_snapshots_built",
        "State machine snapshots this node built (to purge its Raft log)",
    );
    let installs = counter(
        registry,
        "raft_snapshots_installed",
        "State machine snapshots this node installed from its leader",
    );
    let mut sequence = Labelled::seconds(
        "sequencer_sequence",
        "Time an AddLeaves call took on the leader until all its leaves were committed (calls answered with every leaf committed)",
    );
    let mut integrate = Labelled::seconds(
        "sequencer_integrate",
        "Time from a batch of leaves being applied on this node until its tiles were in object storage",
    );
    let mut sign = Labelled::seconds(
        "sequencer_sign",
        "Time from a batch of leaves being applied on this node until this node signed a tree head covering it",
    );
    let mut publish = Labelled::seconds(
        "sequencer_publish",
        "Time from a batch of leaves being applied on this node until a published cosigned tree head covered it",
    );
    let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for shard in shards {
        let label = ShardLabel {
            shard: shard.name().to_owned(),
        };
        let state = shard.state();
        let set = |f: &Family<ShardLabel, Gauge>, v: u64| {
            f.get_or_create(&label).set(gauge(v));
        };
        let m = shard.metrics();
        set(&tree_size, state.tree_size);
        set(&integrated, state.integrated_size);
        set(&signed, m.signed_size());
        set(&cosigned, state.cosigned.as_ref().map_or(0, |h| h.size));
        set(
            &cosignatures,
            state
                .cosigned
                .as_ref()
                .map_or(0, |h| h.cosignatures.len() as u64),
        );
        set(&leader, u64::from(shard.is_leader()));
        set(&halted, u64::from(shard.halted().is_some()));
        unpublished_age
            .get_or_create(&label)
            .set(m.unpublished_age().as_secs_f64());
        {
            let raft = shard.raft().metrics().borrow().clone();
            set(&term, raft.current_term);
            let last_log = raft.last_log_index.unwrap_or(0);
            let applied = raft.last_applied.map_or(0, |l| l.index);
            set(&apply_lag, last_log.saturating_sub(applied));
            if let Some(replication) = &raft.replication {
                for (follower, matched) in replication.iter() {
                    if *follower == raft.id {
                        continue;
                    }
                    let matched = matched.map_or(0, |l| l.index);
                    replication_lag
                        .get_or_create(&FollowerLabel {
                            shard: label.shard.clone(),
                            follower: follower.to_string(),
                        })
                        .set(gauge(last_log.saturating_sub(matched)));
                }
            }
        }
        leader_changes
            .get_or_create(&label)
            .inc_by(m.leader_changes().get());
        let (built, installed) = shard.snapshot_counts();
        builds.get_or_create(&label).inc_by(built);
        installs.get_or_create(&label).inc_by(installed);
        sequence
            .series
            .push((label.clone(), m.sequence_latency().clone()));
        integrate
            .series
            .push((label.clone(), m.step_latency(Step::Integrated).clone()));
        sign.series
            .push((label.clone(), m.step_latency(Step::Signed).clone()));
        publish
            .series
            .push((label, m.step_latency(Step::Published).clone()));
    }
    for histograms in [sequence, integrate, sign, publish] {
        registry.register_collector(Box::new(histograms));
    }
}

/// A `/metrics` response: `registry` in the OpenMetrics text format.
pub fn openmetrics(registry: &Registry) -> Response {
    let mut body = String::new();
    if let Err(e) = encode(&mut body, registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The tile stores' counts of reads that found a corrupt object (read at
/// scrape time).
fn register_tile_stores(registry: &mut Registry, stores: &[(String, TileStore)]) {
    let corrupt = Family::<ShardLabel, Counter>::default();
    registry.register(
        "storage_corrupt_objects",
        "Reads that found a stored tile or bundle corrupt or not matching the trusted tree head (it is never served)",
        corrupt.clone(),
    );
    for (shard, store) in stores {
        corrupt
            .get_or_create(&ShardLabel {
                shard: shard.clone(),
            })
            .inc_by(store.corrupt_reads());
    }
}

/// The free and total space of the file system holding `dir` (a failed
/// reading exports nothing, and is logged).
// `fsblkcnt_t` and friends are `u64` here but narrower on some platforms.
#[allow(clippy::useless_conversion)]
fn register_disk(registry: &mut Registry, dir: &std::path::Path) {
    let stat = match nix::sys::statvfs::statvfs(dir) {
        Ok(stat) => stat,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the data directory's disk space");
            return;
        }
    };
    let fragment = u64::from(stat.fragment_size());
    let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(fragment)).unwrap_or(i64::MAX);
    let available = Gauge::<i64>::default();
    available.set(bytes(u64::from(stat.blocks_available())));
    registry.register_with_unit(
        "disk_available",
        "Bytes an unprivileged process can still write on the file system of the data directory",
        Unit::Bytes,
        available,
    );
    let size = Gauge::<i64>::default();
    size.set(bytes(u64::from(stat.blocks())));
    registry.register_with_unit(
        "disk_size",
        "Size in bytes of the file system of the data directory",
        Unit::Bytes,
        size,
    );
}

/// The collectors' counters (read at scrape time) and latency histograms.
fn register_collectors(registry: &mut Registry, collectors: &[Arc<Collector>]) {
    let counter = shard_family::<Counter>;
    let rounds = counter(
        registry,
        "collector_rounds",
        "Signed tree heads sent to the witnesses",
    );
    let published = counter(
        registry,
        "collector_published",
        "Cosigned tree heads published with the policy quorum",
    );
    let fail_open = counter(
        registry,
        "collector_published_without_quorum",
        "Tree heads published without the policy quorum (fail-open only)",
    );
    let quorum_failed = counter(
        registry,
        "collector_quorum_failed",
        "Rounds that ended without the policy quorum",
    );
    let publish_errors = counter(
        registry,
        "collector_publish_errors",
        "Failed PublishCosigned calls",
    );
    let sequencer_errors = counter(
        registry,
        "collector_sequencer_errors",
        "Failed or unusable GetTreeHeads calls",
    );
    let halted = Family::<ShardLabel, Gauge>::default();
    registry.register(
        "collector_halted",
        "1 if publishing halted because a witness is ahead of the log",
        halted.clone(),
    );
    let witness_errors = Family::<WitnessLabel, Counter>::default();
    registry.register(
        "collector_witness_errors",
        "Witness requests that gave no valid cosignature",
        witness_errors.clone(),
    );
    let mut cosign = Labelled::seconds(
        "collector_cosign",
        "Time from a new signed tree head until the policy quorum held",
    );
    let mut publish = Labelled::seconds(
        "collector_publish",
        "Time from a new signed tree head until its cosigned head was published",
    );
    let mut witness_latency = Labelled::seconds(
        "collector_witness_request",
        "Time a witness took to answer an add-checkpoint request, by witness (answers of any kind; failures are also counted in collector_witness_errors)",
    );
    for collector in collectors {
        let label = ShardLabel {
            shard: collector.shard().to_owned(),
        };
        halted
            .get_or_create(&label)
            .set(i64::from(collector.halted()));
        let metrics = collector.metrics();
        let m = metrics.snapshot();
        rounds.get_or_create(&label).inc_by(m.rounds);
        published
            .get_or_create(&label)
            .inc_by(m.published.saturating_sub(m.published_without_quorum));
        fail_open
            .get_or_create(&label)
            .inc_by(m.published_without_quorum);
        quorum_failed.get_or_create(&label).inc_by(m.quorum_failed);
        publish_errors
            .get_or_create(&label)
            .inc_by(m.publish_errors);
        sequencer_errors
            .get_or_create(&label)
            .inc_by(m.sequencer_errors);
        for (witness, n) in m.witness_errors {
            witness_errors
                .get_or_create(&WitnessLabel {
                    shard: label.shard.clone(),
                    witness,
                })
                .inc_by(n);
        }
        cosign
            .series
            .push((label.clone(), metrics.cosign_latency().clone()));
        publish
            .series
            .push((label.clone(), metrics.publish_latency().clone()));
        for (witness, histogram) in metrics.witness_latencies() {
            witness_latency.series.push((
                WitnessLabel {
                    shard: label.shard.clone(),
                    witness,
                },
                histogram,
            ));
        }
    }
    registry.register_collector(Box::new(cosign));
    registry.register_collector(Box::new(publish));
    registry.register_collector(Box::new(witness_latency));
}
