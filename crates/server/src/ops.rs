//! Operator endpoints: `/livez`, `/readyz` and Prometheus `/metrics`.
//!
//! Metrics are read from the shards' applied state at scrape time, so they
//! can never disagree with what the log serves. Names use the `cairn_` prefix
//! and a `shard` label (architecture.md §7).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_sequencer::shard::Shard;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabel {
    shard: String,
}

/// The routes, for the given shards.
pub fn router(shards: Vec<Arc<Shard>>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(shards))
}

/// Ready when every shard has a Raft leader (in dev: this node), is not
/// halted, and has published a cosigned tree head.
async fn readyz(State(shards): State<Arc<Vec<Arc<Shard>>>>) -> Response {
    let mut problems = Vec::new();
    for shard in shards.iter() {
        if let Some(reason) = shard.halted() {
            problems.push(format!("shard {}: halted: {reason}", shard.name()));
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

async fn metrics(State(shards): State<Arc<Vec<Arc<Shard>>>>) -> Response {
    let mut registry = Registry::with_prefix("cairn");
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
    for shard in shards.iter() {
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
