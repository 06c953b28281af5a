//! The cluster registry: the list of shards, replicated by a small Raft
//! group of its own (the *meta group*, [`META_GROUP`]) on the sequencer
//! nodes.
//!
//! A [`ShardRecord`] says what a shard is (name, log public key, policy,
//! object-store prefix), where it runs (the node ids of its replicas) and
//! where it is in its life (`active` → `frozen` → `retired`). Nodes host
//! the shards whose records name them, frontends serve and collectors
//! cosign every shard of the registry, and all of them follow changes
//! without a restart. Records change only through [`RegistryChange`]s,
//! proposed by an operator (`cairn cluster shard create|freeze|retire|move`)
//! through the meta group's leader.
//!
//! The registry *records* lifecycle; it does not enforce it on the shard's
//! tree: a freeze is a command of the shard's own Raft group (decision
//! 0008), and the registry's `frozen` follows it. What the registry decides
//! is placement: a node starts a shard's replica when a record names it and
//! removes its state once the record is retired or stops naming it.
//!
//! The meta group uses the shard machinery (the same log store, state
//! machine and transport): its entries are [`Command::Registry`] and its
//! tree stays empty. [`apply`] is pure and deterministic, as every state
//! machine step must be.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use openraft::Raft;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::network::{GrpcNetworkFactory, RaftTransportService};
use crate::raft::{not_leader, propose, start_raft};
use crate::shard::ShardError;
use crate::state_machine::{AppliedState, StateMachine};
use crate::types::{Command, CommandResponse, NodeId, TypeConfig};

/// The meta group's name on the Raft transport and in Admin calls. Not a
/// valid shard name (`@`), so it never collides with one.
pub const META_GROUP: &str = "@meta";

/// Most shards the registry holds, retired ones included (names are never
/// reused: a retired shard's tiles stay under its prefix).
pub const MAX_SHARDS: usize = 1024;

/// Largest policy text a record carries.
pub const MAX_POLICY_BYTES: usize = 16 * 1024;

/// Most replicas of a shard (the Admin service's voter limit).
pub const MAX_REPLICAS: usize = crate::admin::MAX_VOTERS;

/// The registry: shard name → record.
pub type Registry = BTreeMap<String, ShardRecord>;

/// Where a shard is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lifecycle {
    /// Accepts add-leaf.
    Active,
    /// Its log is frozen (a command of its own group): reads, proofs and
    /// the final head's cosigning go on.
    Frozen,
    /// No node hosts it any more; its tiles stay readable in object
    /// storage and frontends serve it from there alone.
    Retired,
}

impl Lifecycle {
    /// `active`, `frozen` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Frozen => "frozen",
            Lifecycle::Retired => "retired",
        }
    }

    /// Parses [`Lifecycle::as_str`].
    pub fn parse(s: &str) -> Option<Lifecycle> {
        match s {
            "active" => Some(Lifecycle::Active),
            "frozen" => Some(Lifecycle::Frozen),
            "retired" => Some(Lifecycle::Retired),
            _ => None,
        }
    }
}

/// One shard of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The shard's name: Raft group, URL prefix `/<name>/`, gRPC `shard`.
    pub name: String,
    /// The log's Ed25519 public key. Each replica node holds the private
    /// key in its keys directory; nobody else needs it.
    pub log_key: [u8; 32],
    /// The shard's Sigsum policy (text): its witnesses and quorum.
    pub policy: String,
    /// The shard's prefix in the cluster's object store.
    pub prefix: String,
    /// Node ids of the replicas (the group's voters once created).
    pub replicas: Vec<NodeId>,
    /// Lifecycle state.
    pub state: Lifecycle,
    /// The shard named to take new submissions once this one is frozen;
    /// empty if none.
    pub successor: String,
    /// Temporal rotation: when the log freezes itself (POSIX seconds).
    pub freeze_at: Option<u64>,
}

/// A change of the registry, the payload of [`Command::Registry`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryChange {
    /// Adds a shard. Refused if the name was ever used.
    Create(ShardRecord),
    /// Moves a shard forward in its life (active → frozen → retired;
    /// retiring needs frozen first). Repeating the current state is a
    /// no-op; going back is refused.
    SetState {
        /// The shard.
        name: String,
        /// The new state.
        state: Lifecycle,
        /// The successor to record (kept if empty).
        successor: String,
    },
    /// Replaces a shard's replica list (moving a replica: the new node is
    /// added before the group grows, the old one removed after it shrank).
    SetReplicas {
        /// The shard.
        name: String,
        /// The new replicas.
        replicas: Vec<NodeId>,
    },
}

/// Whether `name` can be a shard name: one URL path segment and one
/// object-store prefix segment of 1 to 64 characters `[A-Za-z0-9._-]`, not
/// `.` or `..`.
pub fn valid_shard_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_replicas(replicas: &[NodeId]) -> Result<(), String> {
    if replicas.is_empty() || replicas.len() > MAX_REPLICAS {
        return Err(format!(
            "a shard has 1 to {MAX_REPLICAS} replicas, got {}",
            replicas.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for id in replicas {
        if *id == 0 || !seen.insert(*id) {
            return Err(format!("replica list {replicas:?} has node 0 or a repeat"));
        }
    }
    Ok(())
}

/// Checks a record's own fields (not its relation to the registry).
pub fn check_record(r: &ShardRecord) -> Result<(), String> {
    if !valid_shard_name(&r.name) {
        return Err(format!(
            "shard name {:?} must be one path segment of 1 to 64 characters [A-Za-z0-9._-], \
             not . or ..",
            r.name
        ));
    }
    if !valid_shard_name(&r.prefix) {
        return Err(format!(
            "object-store prefix {:?} must be one path segment [A-Za-z0-9._-]",
            r.prefix
        ));
    }
    if !r.successor.is_empty() && (!valid_shard_name(&r.successor) || r.successor == r.name) {
        return Err(format!(
            "successor {:?} must be another shard's name",
            r.successor
        ));
    }
    if r.policy.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "the policy has {} bytes, more than {MAX_POLICY_BYTES}",
            r.policy.len()
        ));
    }
    check_replicas(&r.replicas)
}

/// Applies `change` to `registry`, or says why not (leaving it unchanged).
/// Deterministic: every replica of the meta group gets the same answer.
pub fn apply(registry: &mut Registry, change: RegistryChange) -> Result<(), String> {
    match change {
        RegistryChange::Create(record) => {
            check_record(&record)?;
            if record.state != Lifecycle::Active {
                return Err("a shard is created active".into());
            }
            if registry.contains_key(&record.name) {
                return Err(format!(
                    "shard {:?} exists (names are never reused, retired ones included)",
                    record.name
                ));
            }
            if let Some(other) = registry.values().find(|r| r.prefix == record.prefix) {
                return Err(format!(
                    "shard {:?} already uses object-store prefix {:?}",
                    other.name, record.prefix
                ));
            }
            if let Some(other) = registry.values().find(|r| r.log_key == record.log_key) {
                return Err(format!(
                    "shard {:?} already uses this log key: every log has its own key",
                    other.name
                ));
            }
            if registry.len() >= MAX_SHARDS {
                return Err(format!("the registry holds {MAX_SHARDS} shards already"));
            }
            registry.insert(record.name.clone(), record);
            Ok(())
        }
        RegistryChange::SetState {
            name,
            state,
            successor,
        } => {
            let record = registry
                .get_mut(&name)
                .ok_or_else(|| format!("no shard {name:?} in the registry"))?;
            if state < record.state {
                return Err(format!(
                    "shard {name:?} is {}; it cannot become {} again",
                    record.state.as_str(),
                    state.as_str()
                ));
            }
            if state == Lifecycle::Retired && record.state == Lifecycle::Active {
                return Err(format!(
                    "shard {name:?} is active: freeze it before retiring it"
                ));
            }
            if !successor.is_empty() {
                if !valid_shard_name(&successor) || successor == name {
                    return Err(format!(
                        "successor {successor:?} must be another shard's name"
                    ));
                }
                record.successor = successor;
            }
            record.state = state;
            Ok(())
        }
        RegistryChange::SetReplicas { name, replicas } => {
            check_replicas(&replicas)?;
            let record = registry
                .get_mut(&name)
                .ok_or_else(|| format!("no shard {name:?} in the registry"))?;
            if record.state == Lifecycle::Retired {
                return Err(format!("shard {name:?} is retired: it has no replicas"));
            }
            record.replicas = replicas;
            Ok(())
        }
    }
}

/// How a node decides whether it can host a shard of the registry
/// (asked before a shard naming it is created, or moved to it).
pub trait HostCheck: Send + Sync + std::fmt::Debug {
    /// `Ok` if this node can host `record` — it holds the private key of
    /// `record.log_key` — else a human-readable reason naming what is
    /// missing. Reads local files only; no retries needed.
    fn check(&self, record: &ShardRecord) -> Result<(), String>;
}

/// This node's replica of the meta group. Share it behind an `Arc`.
pub struct MetaGroup {
    node_id: NodeId,
    raft: Raft<TypeConfig>,
    state_machine: StateMachine,
    transport: Option<RaftTransportService>,
}

impl std::fmt::Debug for MetaGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaGroup")
            .field("node_id", &self.node_id)
            .field("shards", &self.registry().len())
            .finish_non_exhaustive()
    }
}

impl MetaGroup {
    /// Opens the meta group's database in `dir` and starts its Raft node,
    /// registered with `transport` (when given) so peers reach it. A fresh
    /// node waits, uninitialized, until `cairn cluster registry init` names
    /// it (or it is added to the group).
    pub async fn start(
        node_id: NodeId,
        dir: &Path,
        raft_config: openraft::Config,
        network: Option<&GrpcNetworkFactory>,
        transport: Option<RaftTransportService>,
    ) -> Result<MetaGroup, ShardError> {
        let start_err = |reason: String| ShardError::Start {
            shard: META_GROUP.to_owned(),
            reason,
        };
        let db = crate::shard::open_db(dir)
            .await
            .map_err(|e| start_err(format!("opening {}: {e}", dir.display())))?;
        let network = match network {
            Some(n) => n.for_shard(META_GROUP),
            None => GrpcNetworkFactory::new(node_id, META_GROUP),
        };
        let (raft, state_machine) = start_raft(node_id, META_GROUP, db, raft_config, network)
            .await
            .map_err(|e| start_err(e.to_string()))?;
        if let Some(t) = &transport {
            t.register(META_GROUP, raft.clone());
        }
        Ok(MetaGroup {
            node_id,
            raft,
            state_machine,
            transport,
        })
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The group's Raft handle.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The registry as this node applied it (possibly behind the leader's).
    pub fn registry(&self) -> Arc<Registry> {
        self.state_machine.state().registry.clone()
    }

    /// The applied state (for its Raft position), updated after every apply.
    pub fn state(&self) -> AppliedState {
        self.state_machine.state()
    }

    /// A receiver of the applied state; its `registry` is the registry.
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.state_machine.subscribe()
    }

    /// Whether this node holds no state of the meta group at all.
    pub async fn is_empty(&self) -> Result<bool, ShardError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ShardError::Raft(e.to_string()))?;
        let metrics = self.raft.metrics().borrow().clone();
        Ok(!initialized
            && metrics.vote.leader_id().term == 0
            && metrics.last_log_index.is_none()
            && self.state().last_applied.is_none())
    }

    /// Creates the meta group with `voters` (node id → gRPC URL), which
    /// must include this node; refused if this node holds any meta state.
    pub async fn init_group(&self, voters: BTreeMap<NodeId, String>) -> Result<(), ShardError> {
        if !voters.contains_key(&self.node_id) {
            return Err(ShardError::Refused(format!(
                "node {} is not among the voters {:?}; send the call to one of them",
                self.node_id,
                voters.keys().collect::<Vec<_>>()
            )));
        }
        if !self.is_empty().await? {
            return Err(ShardError::Refused(format!(
                "node {} already holds registry state: the registry is created once",
                self.node_id
            )));
        }
        let members = voters
            .into_iter()
            .map(|(id, addr)| (id, openraft::BasicNode { addr }))
            .collect::<BTreeMap<_, _>>();
        self.raft.initialize(members).await.map_err(|e| match e {
            openraft::error::RaftError::APIError(e) => ShardError::Refused(e.to_string()),
            e => ShardError::Raft(e.to_string()),
        })?;
        tracing::info!(node_id = self.node_id, "created the registry's Raft group");
        Ok(())
    }

    /// The gRPC addresses of the meta group's members, as this node's
    /// membership config has them; empty before the group is initialised.
    pub fn member_addrs(&self) -> Vec<String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(_, n)| n.addr.clone())
            .collect()
    }

    /// Whether this node believes it leads the meta group.
    pub fn is_leader(&self) -> bool {
        not_leader(&self.raft, self.node_id).is_none()
    }

    /// Commits `change` (on the leader only): `Ok` once applied,
    /// [`ShardError::Rejected`] with the reason if the registry refused it,
    /// [`ShardError::NotLeader`] on a follower.
    pub async fn change(&self, change: RegistryChange) -> Result<Arc<Registry>, ShardError> {
        if let Some(hint) = not_leader(&self.raft, self.node_id) {
            return Err(ShardError::NotLeader(hint));
        }
        match propose(&self.raft, Command::Registry(change)).await? {
            CommandResponse::Applied => Ok(self.registry()),
            CommandResponse::Rejected { reason } => Err(ShardError::Rejected(reason)),
            other => Err(ShardError::Rejected(format!(
                "{other:?} for a registry change"
            ))),
        }
    }

    /// Resolves with the reason once openraft's core has stopped by itself.
    pub async fn raft_core_stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the Raft core is gone".into();
            }
        }
    }

    /// Unregisters from the transport and shuts Raft down. Idempotent.
    pub async fn shutdown(&self) {
        if let Some(t) = &self.transport {
            t.unregister(META_GROUP);
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::error!(error = %e, "meta group raft shutdown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, key: u8) -> ShardRecord {
        ShardRecord {
            name: name.into(),
            log_key: [key; 32],
            policy: String::new(),
            prefix: name.into(),
            replicas: vec![1, 2, 3],
            state: Lifecycle::Active,
            successor: String::new(),
            freeze_at: None,
        }
    }

    #[test]
    fn a_name_prefix_or_key_is_used_once_even_after_retirement() {
        let mut r = Registry::new();
        apply(&mut r, RegistryChange::Create(record("a", 1))).unwrap();
        let err = apply(&mut r, RegistryChange::Create(record("a", 2))).unwrap_err();
        assert!(err.contains("exists"), "{err}");
        let err = apply(&mut r, RegistryChange::Create(record("b", 1))).unwrap_err();
        assert!(err.contains("log key"), "{err}");
        let mut same_prefix = record("c", 3);
        same_prefix.prefix = "a".into();
        let err = apply(&mut r, RegistryChange::Create(same_prefix)).unwrap_err();
        assert!(err.contains("prefix"), "{err}");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn lifecycle_only_moves_forward_and_retiring_needs_a_freeze() {
        let mut r = Registry::new();
        apply(&mut r, RegistryChange::Create(record("a", 1))).unwrap();
        let set = |state, successor: &str| RegistryChange::SetState {
            name: "a".into(),
            state,
            successor: successor.into(),
        };
        let err = apply(&mut r, set(Lifecycle::Retired, "")).unwrap_err();
        assert!(err.contains("freeze it"), "{err}");
        apply(&mut r, set(Lifecycle::Frozen, "b")).unwrap();
        apply(&mut r, set(Lifecycle::Frozen, "")).unwrap();
        assert_eq!(r["a"].successor, "b");
        let err = apply(&mut r, set(Lifecycle::Active, "")).unwrap_err();
        assert!(err.contains("cannot become active"), "{err}");
        apply(&mut r, set(Lifecycle::Retired, "")).unwrap();
        let err = apply(
            &mut r,
            RegistryChange::SetReplicas {
                name: "a".into(),
                replicas: vec![1],
            },
        )
        .unwrap_err();
        assert!(err.contains("retired"), "{err}");
        assert_eq!(r["a"].state, Lifecycle::Retired);
    }

    #[test]
    fn bad_records_are_refused_with_the_reason() {
        let mut r = Registry::new();
        for (bad, expect) in [
            (
                ShardRecord {
                    name: "a/b".into(),
                    ..record("x", 1)
                },
                "one path segment",
            ),
            (
                ShardRecord {
                    replicas: vec![],
                    ..record("x", 1)
                },
                "replicas",
            ),
            (
                ShardRecord {
                    replicas: vec![1, 1],
                    ..record("x", 1)
                },
                "repeat",
            ),
            (
                ShardRecord {
                    successor: "x".into(),
                    ..record("x", 1)
                },
                "another shard",
            ),
            (
                ShardRecord {
                    policy: "x".repeat(MAX_POLICY_BYTES + 1),
                    ..record("x", 1)
                },
                "policy",
            ),
            (
                ShardRecord {
                    state: Lifecycle::Frozen,
                    ..record("x", 1)
                },
                "created active",
            ),
        ] {
            let err = apply(&mut r, RegistryChange::Create(bad)).unwrap_err();
            assert!(err.contains(expect), "{expect:?} not in {err}");
        }
        assert!(r.is_empty());
        assert!(!valid_shard_name(META_GROUP));
    }

    #[test]
    fn unknown_shards_cannot_change() {
        let mut r = Registry::new();
        let err = apply(
            &mut r,
            RegistryChange::SetReplicas {
                name: "nope".into(),
                replicas: vec![1],
            },
        )
        .unwrap_err();
        assert!(err.contains("no shard"), "{err}");
    }
}
