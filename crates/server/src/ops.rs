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

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_collector::Collector;
use cairn_sequencer::shard::Shard;
use cairn_storage::{StoreMetrics, TileStore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

/// Ready when every shard has a Raft leader (in dev: this node), is not
/// halted, and has published a cosigned tree head, and no collector has
/// halted publishing.
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
        if let Some(reason) = shard.halted() {
            problems.push(format!("shard {}: halted: {reason}", shard.name()));
        } else if let Some(reason) = shard.degraded() {
            problems.push(format!(
                "shard {}: integration failing: {reason}",
                shard.name()
            ));
        } else if shard.raft().metrics().borrow().current_leader.is_none() {
            problems.push(format!("shard {}: no Raft leader", shard.name()));
        } else if shard.state().cosigned.is_none() {
            problems.push(format!("shard {}: no cosigned tree head yet", shard.name()));
        }
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
    let family = |registry: &mut Registry, name: &str, help: &str| {
        let f = Family::<ShardLabel, Gauge>::default();
        registry.register(name, help, f.clone());
        f
    };
    let tree_size = family(&mut registry, "tree_size", "Leaves committed and applied");
    let integrated = family(
        &mut registry,
        "integrated_size",
        "Largest tree size whose tiles are all in object storage (the signed size)",
    );
    let cosigned = family(
        &mut registry,
        "cosigned_size",
        "Size of the latest published cosigned tree head",
    );
    let cosignatures = family(
        &mut registry,
        "cosignatures",
        "Cosignatures on the latest published tree head",
    );
    let leader = family(
        &mut registry,
        "is_leader",
        "1 if this node leads the shard's Raft group",
    );
    let halted = family(
        &mut registry,
        "halted",
        "1 if the shard's pipeline halted on a fatal error",
    );
    for shard in &ops.sequencer_shards() {
        let label = ShardLabel {
            shard: shard.name().to_owned(),
        };
        let state = shard.state();
        let set = |f: &Family<ShardLabel, Gauge>, v: u64| {
            f.get_or_create(&label)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&tree_size, state.tree_size);
        set(&integrated, state.integrated_size);
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
    }
    register_collectors(&mut registry, &ops.collectors);
    register_tile_stores(&mut registry, &ops.tile_stores);
    ops.store_metrics.register(&mut registry);
    openmetrics(&registry)
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

/// The collectors' counters (read at scrape time) and latency histograms.
fn register_collectors(registry: &mut Registry, collectors: &[Arc<Collector>]) {
    let counter = |registry: &mut Registry, name: &str, help: &str| {
        let f = Family::<ShardLabel, Counter>::default();
        registry.register(name, help, f.clone());
        f
    };
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
            .inc_by(m.published - m.published_without_quorum);
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
        let sub = registry.sub_registry_with_label(("shard".into(), label.shard.into()));
        sub.register_with_unit(
            "collector_cosign",
            "Time from a new signed tree head until the policy quorum held",
            Unit::Seconds,
            metrics.cosign_latency().clone(),
        );
        sub.register_with_unit(
            "collector_publish",
            "Time from a new signed tree head until its cosigned head was published",
            Unit::Seconds,
            metrics.publish_latency().clone(),
        );
    }
}
