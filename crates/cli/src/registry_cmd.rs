//! `cairn cluster registry …` and the registry's shard operations
//! (`cairn cluster shard create|retire|move`): changes of the cluster
//! registry (a Raft group of its own on the sequencer nodes, named
//! `@meta`), and the group operations that go with them.
//!
//! Each operation is a sequence of idempotent steps, so running it again
//! after an interruption finishes it: `create` records the shard, waits
//! until every replica node hosts it and creates the group unless it
//! exists; `move` records the new replica, adds it to the group, removes
//! the old one and records that; `retire` checks that the log is frozen and
//! its final head published before recording it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_proto::v1::change_registry_request::Change;
use cairn_proto::v1::sequencer_client::SequencerClient;
use cairn_proto::v1::{
    AddNodeRequest, ChangeRegistryRequest, GetRegistryRequest, Member, RemoveNodeRequest,
    SetShardReplicas, SetShardState, ShardRecord,
};
use clap::Args;
use tokio::time::Instant;

use crate::cluster::{init, on_leader, status_of};
use crate::files::{Input, read_small};
use crate::key_files::read_public_key;

/// The meta group's name in Admin calls.
pub const META_GROUP: &str = "@meta";

/// How long `create` and `move` wait for nodes to start hosting a shard.
const HOST_WAIT: Duration = Duration::from_secs(60);

/// Deadline of one registry change.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The new shard's name (its URL prefix and Raft group). Never reused.
    pub shard: String,
    /// The log's public key (OpenSSH or hex). Each replica node must hold
    /// the private key in its `[registry] keys_dir`.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The shard's Sigsum policy file: the witnesses whose cosignatures
    /// its published heads need.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// A replica node as ID=URL (repeat, 1 to 7); the first is asked to
    /// create the group.
    #[arg(long = "replica", value_name = "ID=URL", required = true, value_parser = crate::cluster::parse_member_arg)]
    pub replicas: Vec<Member>,
    /// The shard's prefix in the object store. Default: its name.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Temporal rotation: when the log freezes itself (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub freeze_at: Option<String>,
    /// The shard that takes new submissions once this one is frozen.
    #[arg(long)]
    pub successor: Option<String>,
    /// gRPC URL of a registry node (repeatable).
    #[arg(long, value_name = "URL", required = true)]
    pub via: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RetireArgs {
    /// The shard to retire: frozen, with its final head published.
    pub shard: String,
    /// gRPC URL of a registry node (repeatable).
    #[arg(long, value_name = "URL", required = true)]
    pub via: Vec<String>,
}

#[derive(Args, Debug)]
pub struct MoveArgs {
    /// The shard.
    pub shard: String,
    /// The replica node to move away from.
    #[arg(long)]
    pub from: u64,
    /// The node to move to, as ID=URL.
    #[arg(long, value_name = "ID=URL", value_parser = crate::cluster::parse_member_arg)]
    pub to: Member,
    /// gRPC URL of a registry node (repeatable).
    #[arg(long, value_name = "URL", required = true)]
    pub via: Vec<String>,
    /// Seconds to wait for the new replica to catch up.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct RegistryInitArgs {
    /// A voter as ID=URL (every sequencer node with `[registry]`, 1 to 7).
    #[arg(long = "node", value_name = "ID=URL", required = true, value_parser = crate::cluster::parse_member_arg)]
    pub nodes: Vec<Member>,
}

#[derive(Args, Debug)]
pub struct RegistryShowArgs {
    /// gRPC URL of a registry node (repeatable; the first that answers).
    #[arg(long, value_name = "URL", required = true)]
    pub via: Vec<String>,
}

/// `cairn cluster registry init`: creates the registry's Raft group.
pub async fn registry_init(args: &RegistryInitArgs) -> anyhow::Result<()> {
    init(META_GROUP, &args.nodes).await
}

/// The registry from the first of `via` that answers.
pub async fn fetch_registry(via: &[String]) -> anyhow::Result<cairn_proto::v1::Registry> {
    let mut failures = Vec::new();
    for url in via {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .with_context(|| format!("{url:?} is not a URL"))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        match SequencerClient::new(channel)
            .get_registry(GetRegistryRequest {})
            .await
        {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) => failures.push(format!("{url}: {}: {}", s.code(), s.message())),
        }
    }
    bail!(
        "no node answered with the registry: {}",
        failures.join("; ")
    )
}

/// `cairn cluster registry show`.
pub async fn registry_show(args: &RegistryShowArgs) -> anyhow::Result<()> {
    let registry = fetch_registry(&args.via).await?;
    if !registry.initialized {
        bail!("the registry's group is not created yet (`cairn cluster registry init`)");
    }
    println!(
        "{:<20} {:<8} {:<16} {:<20} successor",
        "shard", "state", "replicas", "key hash"
    );
    for r in &registry.shards {
        let key_hash = <[u8; 32]>::try_from(r.log_key.as_slice())
            .map(|k| cairn_sigsum::PublicKey(k).key_hash().to_hex())
            .unwrap_or_default();
        println!(
            "{:<20} {:<8} {:<16} {:<20} {}",
            r.name,
            r.state,
            r.replicas
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
            &key_hash[..key_hash.len().min(16)],
            r.successor
        );
    }
    Ok(())
}

async fn change(via: &[String], change: Change) -> anyhow::Result<cairn_proto::v1::Registry> {
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    on_leader(via, deadline, |mut c, remaining| {
        let mut request = tonic::Request::new(ChangeRegistryRequest {
            change: Some(change.clone()),
        });
        request.set_timeout(remaining);
        async move { c.change_registry(request).await }
    })
    .await
}

/// The registry group's members (id → URL), from the nodes of `via`.
async fn registry_members(via: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut failures = Vec::new();
    for url in via {
        match status_of(url, META_GROUP).await {
            Ok(s) => {
                return Ok(s
                    .voters
                    .iter()
                    .chain(&s.learners)
                    .map(|m| (m.id, m.addr.clone()))
                    .collect());
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    bail!("no registry node answered: {}", failures.join("; "))
}

/// Waits until every node of `nodes` hosts `shard` (answers its Status).
async fn wait_hosting(shard: &str, nodes: &[Member]) -> anyhow::Result<()> {
    let deadline = Instant::now() + HOST_WAIT;
    for n in nodes {
        loop {
            match status_of(&n.addr, shard).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).with_context(|| {
                        format!(
                            "node {} does not host shard {shard:?} within {HOST_WAIT:?} (see its log)",
                            n.id
                        )
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(())
}

/// `cairn cluster shard create`.
pub async fn create(args: &CreateArgs) -> anyhow::Result<()> {
    let key = read_public_key(&Input::from_arg(&args.key))?;
    let policy_text = String::from_utf8(read_small(&Input::from_arg(&args.policy))?)
        .context("the policy is not UTF-8")?;
    cairn_sigsum::policy::Policy::parse(policy_text.as_bytes())
        .with_context(|| format!("policy {}", args.policy.display()))?;
    let freeze_at = args
        .freeze_at
        .as_deref()
        .map(|t| {
            humantime::parse_rfc3339_weak(t)
                .with_context(|| format!("--freeze-at {t:?} is not an RFC 3339 time"))
                .map(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                })
        })
        .transpose()?;
    if args.successor.is_some() && freeze_at.is_none() {
        bail!("--successor goes with --freeze-at (`cairn cluster shard freeze` names its own)");
    }
    let record = ShardRecord {
        name: args.shard.clone(),
        log_key: key.0.to_vec(),
        policy: policy_text,
        prefix: args.prefix.clone().unwrap_or_else(|| args.shard.clone()),
        replicas: args.replicas.iter().map(|m| m.id).collect(),
        state: "active".into(),
        successor: args.successor.clone().unwrap_or_default(),
        freeze_at,
    };
    let members = registry_members(&args.via).await?;
    for m in &args.replicas {
        match members.get(&m.id) {
            Some(addr) if *addr == m.addr => {}
            Some(addr) => bail!(
                "node {} is at {addr} in the registry's group, not {}",
                m.id,
                m.addr
            ),
            None => bail!(
                "node {} is not a member of the registry's group: add it with `cairn cluster \
                 add-node --shard {META_GROUP}` first",
                m.id
            ),
        }
    }
    let existing = fetch_registry(&args.via).await?;
    match existing.shards.iter().find(|r| r.name == record.name) {
        Some(r) if *r == record => {
            println!("shard {}: already in the registry; finishing", record.name)
        }
        Some(_) => bail!(
            "shard {:?} is already in the registry with other settings (names are never reused)",
            record.name
        ),
        None => {
            change(&args.via, Change::Create(record.clone())).await?;
            println!("shard {}: recorded in the registry", record.name);
        }
    }
    wait_hosting(&record.name, &args.replicas).await?;
    let first = &args.replicas[0];
    let status = status_of(&first.addr, &record.name).await?;
    if status.initialized {
        println!("shard {}: its group exists", record.name);
        return Ok(());
    }
    init(&record.name, &args.replicas).await
}

/// `cairn cluster shard retire`.
pub async fn retire(args: &RetireArgs) -> anyhow::Result<()> {
    let registry = fetch_registry(&args.via).await?;
    let record = registry
        .shards
        .iter()
        .find(|r| r.name == args.shard)
        .with_context(|| format!("no shard {:?} in the registry", args.shard))?;
    if record.state == "retired" {
        println!("shard {}: already retired", args.shard);
        return Ok(());
    }
    // The final head must be out before the group goes: afterwards the
    // log is served from object storage alone.
    let view = crate::cluster::cluster_view(&args.via).await?;
    let shard = view
        .get(&args.shard)
        .with_context(|| format!("no node hosts shard {:?}", args.shard))?;
    let leader = shard
        .leader()
        .with_context(|| format!("shard {:?} has no leader now; retry", args.shard))?;
    let Some(frozen) = &leader.frozen else {
        bail!(
            "shard {:?} is not frozen: freeze it first (`cairn cluster shard freeze`)",
            args.shard
        );
    };
    if leader.published_size < frozen.size || leader.published_size == 0 && frozen.size > 0 {
        bail!(
            "shard {:?} froze at size {} but has published only size {}: wait until its final \
             head is cosigned and published",
            args.shard,
            frozen.size,
            leader.published_size
        );
    }
    if record.state == "active" {
        change(
            &args.via,
            Change::SetState(SetShardState {
                shard: args.shard.clone(),
                state: "frozen".into(),
                successor: frozen.successor.clone(),
            }),
        )
        .await?;
    }
    change(
        &args.via,
        Change::SetState(SetShardState {
            shard: args.shard.clone(),
            state: "retired".into(),
            successor: String::new(),
        }),
    )
    .await?;
    println!(
        "shard {}: retired at size {}; its nodes drop their replicas, its tiles stay",
        args.shard, frozen.size
    );
    Ok(())
}

/// Records a frozen shard in the registry (after `cluster shard freeze`),
/// if the registry holds it.
pub async fn record_frozen(via: &[String], shard: &str, successor: &str) -> anyhow::Result<bool> {
    let Ok(registry) = fetch_registry(via).await else {
        return Ok(false);
    };
    match registry.shards.iter().find(|r| r.name == shard) {
        Some(r) if r.state == "active" => {
            change(
                via,
                Change::SetState(SetShardState {
                    shard: shard.to_owned(),
                    state: "frozen".into(),
                    successor: successor.to_owned(),
                }),
            )
            .await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Records `replicas` as the shard's placement in the registry.
async fn set_replicas(via: &[String], shard: &str, replicas: &[u64]) -> anyhow::Result<()> {
    change(
        via,
        Change::SetReplicas(SetShardReplicas {
            shard: shard.to_owned(),
            replicas: replicas.to_vec(),
        }),
    )
    .await
    .map(drop)
}

/// `cairn cluster shard move`.
pub async fn move_replica(args: &MoveArgs) -> anyhow::Result<()> {
    let registry = fetch_registry(&args.via).await?;
    let record = registry
        .shards
        .iter()
        .find(|r| r.name == args.shard)
        .with_context(|| format!("no shard {:?} in the registry", args.shard))?;
    if args.from == args.to.id {
        bail!("--from and --to name the same node");
    }
    let mut replicas = record.replicas.clone();
    if !replicas.contains(&args.from) && !replicas.contains(&args.to.id) {
        bail!(
            "node {} is not a replica of shard {:?} (replicas {:?})",
            args.from,
            args.shard,
            replicas
        );
    }
    // 1. Record the new replica: the node starts hosting the shard.
    if !replicas.contains(&args.to.id) {
        replicas.push(args.to.id);
        set_replicas(&args.via, &args.shard, &replicas).await?;
    }
    wait_hosting(&args.shard, std::slice::from_ref(&args.to)).await?;
    // 2. Grow the group (learner, caught up, voter), then shrink it.
    let group_via: Vec<String> = registry_members(&args.via)
        .await?
        .into_iter()
        .filter(|(id, _)| replicas.contains(id))
        .map(|(_, url)| url)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    on_leader(&group_via, deadline, |mut c, remaining| {
        let mut request = tonic::Request::new(AddNodeRequest {
            shard: args.shard.clone(),
            node: Some(args.to.clone()),
        });
        request.set_timeout(remaining);
        async move { c.add_node(request).await }
    })
    .await
    .context("adding the new replica to the group")?;
    println!("shard {}: node {} is a voter", args.shard, args.to.id);
    on_leader(&group_via, deadline, |mut c, remaining| {
        let mut request = tonic::Request::new(RemoveNodeRequest {
            shard: args.shard.clone(),
            id: args.from,
        });
        request.set_timeout(remaining);
        async move { c.remove_node(request).await }
    })
    .await
    .context("removing the old replica from the group")?;
    println!("shard {}: node {} left the group", args.shard, args.from);
    // 3. Record it: the old node stops and deletes its replica.
    replicas.retain(|id| *id != args.from);
    set_replicas(&args.via, &args.shard, &replicas).await?;
    println!(
        "shard {}: moved from node {} to node {} (replicas {:?})",
        args.shard, args.from, args.to.id, replicas
    );
    Ok(())
}
