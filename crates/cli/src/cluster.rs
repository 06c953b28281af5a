//! `cairn cluster`: create a shard's Raft group on sequencer nodes, change
//! its membership and show each node's view, over the nodes' Admin gRPC
//! service (`proto/cairn/v1/admin.proto`).
//!
//! Membership changes go to the shard's leader: the command asks the nodes
//! given with `--via` in turn and follows a follower's `cairn-leader` hint.

use std::time::Duration;

use anyhow::{Context, bail};
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::{
    AddNodeRequest, FreezeShardRequest, InitShardRequest, ListShardsRequest, Member,
    MembershipResponse, RemoveNodeRequest, StatusRequest, StatusResponse, TransferLeaderRequest,
};
use cairn_proto::{LEADER_METADATA_KEY, NOT_LEADER_METADATA_KEY};
use clap::{Args, Subcommand};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// How long one node may take to answer a Status call.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `init` waits for the new group to elect a leader.
const ELECTION_WAIT: Duration = Duration::from_secs(20);

/// Most leader hints followed before giving up on a call.
const MAX_HOPS: usize = 8;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create a shard's Raft group with the given nodes as voters.
    ///
    /// Every node must run `cairnd sequencer` with the shard in its
    /// configuration and hold no state for it, and the object store must
    /// hold no checkpoint for it; otherwise nothing is created. Waits until
    /// the group has elected a leader.
    Init(InitArgs),
    /// Add a node to a shard's group: as a learner first, caught up by log
    /// or snapshot, then as a voter.
    AddNode(AddNodeArgs),
    /// Remove a node (voter or learner) from a shard's group.
    RemoveNode(RemoveNodeArgs),
    /// Show every node's view of a shard: role, term, leader, sizes, lag.
    Status(StatusArgs),
    /// Hand a shard's leadership to another voter (maintenance). Best
    /// effort under heavy load; prints the leader afterwards.
    TransferLeader(TransferArgs),
    /// Shard lifecycle operations.
    #[command(subcommand)]
    Shard(ShardCommand),
    /// Spread the shards' leaders over the nodes: while one node leads at
    /// least two shards more than another voter of one of them that is
    /// caught up, hand that shard's leadership over (TransferLeader). Run
    /// it after a node comes back: failovers leave the survivors leading.
    /// Transfers are best effort under load: it looks and plans again, up
    /// to three rounds, and fails only if leaders are still not spread.
    Balance(BalanceArgs),
    /// The cluster registry: the replicated list of shards.
    #[command(subcommand)]
    Registry(RegistryCommand),
}

#[derive(Args, Debug)]
pub struct BalanceArgs {
    /// gRPC URL of a node (repeatable); the members of every shard it
    /// hosts are asked too.
    #[arg(long, value_name = "URL", required = true)]
    via: Vec<String>,
    /// Only print the moves.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub enum ShardCommand {
    /// Freeze a shard's log at its current size: add-leaf is refused from
    /// then on (HTTP 410, naming the successor), while the final tree head
    /// is integrated, signed, cosigned and served, and kept cosigned.
    /// Create the successor shard first (`cairn cluster init`) and list it
    /// in submitters' policies. Idempotent; a freeze cannot be undone.
    Freeze(FreezeArgs),
    /// Every shard the nodes host: its leader, term, sizes and state.
    List(ListArgs),
    /// Add a shard to the cluster registry: its replica nodes start
    /// hosting it (each must hold its private key in its `[registry]
    /// keys_dir`), its group is created, and frontends and collectors
    /// that follow the registry serve and cosign it, all without a
    /// restart. Rerun to finish an interrupted create.
    Create(crate::registry_cmd::CreateArgs),
    /// Retire a frozen shard whose final head is published: its nodes stop
    /// its group and delete their replicas; frontends serve it from object
    /// storage alone (its tiles and final checkpoint stay).
    Retire(crate::registry_cmd::RetireArgs),
    /// Move a registry shard's replica to another node: the new node
    /// starts hosting it and joins the group (caught up by log or
    /// snapshot), then the old node leaves the group and deletes its
    /// replica.
    Move(crate::registry_cmd::MoveArgs),
}

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Create the registry's Raft group (named `@meta`) on these nodes,
    /// once per cluster. Every node must run with `[registry]` and hold
    /// no registry state.
    Init(crate::registry_cmd::RegistryInitArgs),
    /// Print the registry: every shard's state, replicas and key hash.
    Show(crate::registry_cmd::RegistryShowArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// gRPC URL of a node (repeatable); the members of every shard it
    /// hosts are asked too.
    #[arg(long, value_name = "URL", required = true)]
    via: Vec<String>,
}

#[derive(Args, Debug)]
pub struct FreezeArgs {
    /// The shard to freeze.
    pub shard: String,
    /// The shard that takes new submissions instead (named to refused
    /// submitters).
    #[arg(long)]
    pub successor: Option<String>,
    /// gRPC URL of any member of the shard's group (repeatable).
    #[arg(long, value_name = "URL", required = true)]
    pub via: Vec<String>,
    /// Seconds to wait for the freeze to commit (queued leaves are
    /// proposed first, for up to 30 s).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The shard's name.
    #[arg(long)]
    shard: String,
    /// A voter as ID=URL (its node_id and gRPC URL), e.g.
    /// 1=http://10.0.0.1:6970; repeat for each voter.
    #[arg(long = "node", value_name = "ID=URL", required = true, value_parser = parse_member_arg)]
    nodes: Vec<Member>,
}

#[derive(Args, Debug)]
pub struct AddNodeArgs {
    /// The shard's name.
    #[arg(long)]
    shard: String,
    /// gRPC URL of any current member (repeatable); the leader is found
    /// from there.
    #[arg(long, value_name = "URL", required = true)]
    via: Vec<String>,
    /// The node to add, as ID=URL.
    #[arg(long, value_name = "ID=URL", value_parser = parse_member_arg)]
    node: Member,
    /// Seconds to wait for the node to catch up and become a voter.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(Args, Debug)]
pub struct RemoveNodeArgs {
    /// The shard's name.
    #[arg(long)]
    shard: String,
    /// gRPC URL of any current member (repeatable).
    #[arg(long, value_name = "URL", required = true)]
    via: Vec<String>,
    /// The node id to remove.
    #[arg(long)]
    id: u64,
    /// Seconds to wait for the change to commit.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The shard's name.
    #[arg(long)]
    shard: String,
    /// gRPC URL of a node (repeatable); the members they report are asked
    /// too.
    #[arg(long, value_name = "URL", required = true)]
    via: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// The shard's name.
    #[arg(long)]
    shard: String,
    /// gRPC URL of any current member (repeatable).
    #[arg(long, value_name = "URL", required = true)]
    via: Vec<String>,
    /// The voter to hand leadership to.
    #[arg(long)]
    to: u64,
}

/// Parses `ID=URL`.
pub fn parse_member_arg(s: &str) -> Result<Member, String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ID=URL"))?;
    let id: u64 = id
        .parse()
        .map_err(|_| format!("node id {id:?} is not a number"))?;
    if id == 0 {
        return Err("node id 0 is not allowed".into());
    }
    if !(addr.starts_with("http://") || addr.starts_with("https://")) {
        return Err(format!("{addr:?} is not an http(s):// URL"));
    }
    Ok(Member {
        id,
        addr: addr.to_owned(),
    })
}

pub fn client(url: &str) -> anyhow::Result<AdminClient<Channel>> {
    let channel = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url:?} is not a URL"))?
        .connect_timeout(Duration::from_secs(3))
        .connect_lazy();
    Ok(AdminClient::new(channel))
}

/// One node's Status, bounded by [`STATUS_TIMEOUT`].
pub async fn status_of(url: &str, shard: &str) -> anyhow::Result<StatusResponse> {
    let mut request = tonic::Request::new(StatusRequest {
        shard: shard.to_owned(),
    });
    request.set_timeout(STATUS_TIMEOUT);
    let answer = tokio::time::timeout(STATUS_TIMEOUT, client(url)?.status(request))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {STATUS_TIMEOUT:?}"))?
        .map_err(|s| anyhow::anyhow!("{url}: {}: {}", s.code(), s.message()))?;
    Ok(answer.into_inner())
}

/// Calls `f` on the shard's leader: tries each of `via` in turn and follows
/// `cairn-leader` hints, until `deadline`.
pub async fn on_leader<T, F, Fut>(via: &[String], deadline: Instant, mut f: F) -> anyhow::Result<T>
where
    F: FnMut(AdminClient<Channel>, Duration) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut last = None;
    let mut queue: Vec<String> = via.to_vec();
    let mut hops = 0;
    while let Some(url) = queue.first().cloned() {
        queue.remove(0);
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match tokio::time::timeout(remaining, f(client(&url)?, remaining)).await {
            Ok(Ok(answer)) => return Ok(answer.into_inner()),
            Ok(Err(status)) => {
                let hint = status
                    .metadata()
                    .get(LEADER_METADATA_KEY)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let not_leader = status.metadata().get(NOT_LEADER_METADATA_KEY).is_some();
                match (status.code(), hint) {
                    (tonic::Code::FailedPrecondition, Some(leader)) if hops < MAX_HOPS => {
                        hops += 1;
                        queue.insert(0, leader);
                    }
                    // A follower that knows no leader, a node that is down,
                    // or one that does not host the shard: ask the next. A
                    // refusal by the leader itself is the answer.
                    (tonic::Code::FailedPrecondition, _) if not_leader => {}
                    (tonic::Code::Unavailable | tonic::Code::NotFound, _) => {}
                    _ => bail!("{url}: {}: {}", status.code(), status.message()),
                }
                last = Some(format!("{url}: {}: {}", status.code(), status.message()));
            }
            Err(_) => last = Some(format!("{url}: no answer in time")),
        }
    }
    bail!(
        "no leader accepted the call ({})",
        last.unwrap_or_else(|| "out of time".into())
    )
}

fn print_membership(m: &MembershipResponse) {
    let list = |v: &[Member]| {
        v.iter()
            .map(|m| format!("{}={}", m.id, m.addr))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("voters:   {}", list(&m.voters));
    println!("learners: {}", list(&m.learners));
}

/// Runs a `cairn cluster` command.
pub async fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Init(args) => init(&args.shard, &args.nodes).await,
        ClusterCommand::AddNode(args) => {
            let deadline = Instant::now() + Duration::from_secs(args.timeout);
            let node = args.node.clone();
            let m = on_leader(&args.via, deadline, |mut c, remaining| {
                let mut request = tonic::Request::new(AddNodeRequest {
                    shard: args.shard.clone(),
                    node: Some(node.clone()),
                });
                request.set_timeout(remaining);
                async move { c.add_node(request).await }
            })
            .await?;
            println!("node {} is a voter of shard {}", args.node.id, args.shard);
            print_membership(&m);
            Ok(())
        }
        ClusterCommand::RemoveNode(args) => {
            let deadline = Instant::now() + Duration::from_secs(args.timeout);
            let m = on_leader(&args.via, deadline, |mut c, remaining| {
                let mut request = tonic::Request::new(RemoveNodeRequest {
                    shard: args.shard.clone(),
                    id: args.id,
                });
                request.set_timeout(remaining);
                async move { c.remove_node(request).await }
            })
            .await?;
            println!("node {} removed from shard {}", args.id, args.shard);
            print_membership(&m);
            Ok(())
        }
        ClusterCommand::Status(args) => status(&args.shard, &args.via).await,
        ClusterCommand::TransferLeader(args) => {
            let deadline = Instant::now() + Duration::from_secs(20);
            let answer = on_leader(&args.via, deadline, |mut c, remaining| {
                let mut request = tonic::Request::new(TransferLeaderRequest {
                    shard: args.shard.clone(),
                    to: args.to,
                });
                request.set_timeout(remaining.min(Duration::from_secs(15)));
                async move { c.transfer_leader(request).await }
            })
            .await?;
            println!("shard {}: node {} leads", args.shard, answer.leader_id);
            if answer.leader_id != args.to {
                bail!("leadership did not move to node {}", args.to);
            }
            Ok(())
        }
        ClusterCommand::Shard(ShardCommand::Freeze(args)) => freeze(&args).await,
        ClusterCommand::Shard(ShardCommand::List(args)) => list(&args.via).await,
        ClusterCommand::Shard(ShardCommand::Create(args)) => {
            crate::registry_cmd::create(&args).await
        }
        ClusterCommand::Shard(ShardCommand::Retire(args)) => {
            crate::registry_cmd::retire(&args).await
        }
        ClusterCommand::Shard(ShardCommand::Move(args)) => {
            crate::registry_cmd::move_replica(&args).await
        }
        ClusterCommand::Registry(RegistryCommand::Init(args)) => {
            crate::registry_cmd::registry_init(&args).await
        }
        ClusterCommand::Registry(RegistryCommand::Show(args)) => {
            crate::registry_cmd::registry_show(&args).await
        }
        ClusterCommand::Balance(args) => balance(&args.via, args.dry_run).await,
    }
}

/// Most nodes a cluster view asks.
const MAX_VIEW_NODES: usize = 64;

/// One shard as the nodes see it.
#[derive(Debug, Default)]
pub struct ShardView {
    /// Each answering node's status, by URL.
    pub statuses: std::collections::BTreeMap<String, StatusResponse>,
}

impl ShardView {
    /// The leader's own status (highest term among those saying leader).
    pub fn leader(&self) -> Option<&StatusResponse> {
        self.statuses
            .values()
            .filter(|s| s.role == "leader")
            .max_by_key(|s| s.term)
    }
}

/// Every shard hosted by the nodes reachable from `via` (and the members
/// they report), as each node sees it.
pub async fn cluster_view(
    via: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, ShardView>> {
    let (view, failures) = cluster_view_quiet(via).await?;
    for f in failures {
        eprintln!("warning: {f}");
    }
    Ok(view)
}

/// [`cluster_view`], returning the nodes that did not answer instead of
/// printing them.
pub async fn cluster_view_quiet(
    via: &[String],
) -> anyhow::Result<(std::collections::BTreeMap<String, ShardView>, Vec<String>)> {
    let mut urls: Vec<String> = via.to_vec();
    let mut view: std::collections::BTreeMap<String, ShardView> = Default::default();
    let mut failures = Vec::new();
    let mut i = 0;
    while i < urls.len() && i < MAX_VIEW_NODES {
        let url = urls[i].clone();
        i += 1;
        let mut request = tonic::Request::new(ListShardsRequest {});
        request.set_timeout(STATUS_TIMEOUT);
        let shards =
            match tokio::time::timeout(STATUS_TIMEOUT, client(&url)?.list_shards(request)).await {
                Ok(Ok(answer)) => answer.into_inner().shards,
                Ok(Err(s)) => {
                    failures.push(format!("{url}: {}: {}", s.code(), s.message()));
                    continue;
                }
                Err(_) => {
                    failures.push(format!("{url}: no answer within {STATUS_TIMEOUT:?}"));
                    continue;
                }
            };
        for shard in shards {
            let Ok(status) = status_of(&url, &shard).await else {
                continue;
            };
            for m in status.voters.iter().chain(&status.learners) {
                if !urls.contains(&m.addr) {
                    urls.push(m.addr.clone());
                }
            }
            view.entry(shard)
                .or_default()
                .statuses
                .insert(url.clone(), status);
        }
    }
    if view.is_empty() {
        bail!("no node answered: {}", failures.join("; "));
    }
    Ok((view, failures))
}

/// `cairn cluster shard list`.
async fn list(via: &[String]) -> anyhow::Result<()> {
    let view = cluster_view(via).await?;
    println!(
        "{:<20} {:>6} {:>5} {:>10} {:>10} {:>10} {:>5}  state",
        "shard", "leader", "term", "tree", "signed", "published", "nodes"
    );
    for (name, shard) in &view {
        let newest = shard
            .leader()
            .or_else(|| shard.statuses.values().max_by_key(|s| s.applied_index));
        let Some(s) = newest else { continue };
        let state = match &s.frozen {
            Some(f) if f.successor.is_empty() => format!("frozen at {}", f.size),
            Some(f) => format!("frozen at {}, successor {}", f.size, f.successor),
            None => "active".to_owned(),
        };
        println!(
            "{:<20} {:>6} {:>5} {:>10} {:>10} {:>10} {:>5}  {}",
            name,
            shard
                .leader()
                .map_or("-".to_owned(), |l| l.node_id.to_string()),
            s.term,
            s.tree_size,
            s.integrated_size,
            s.published_size,
            shard.statuses.len(),
            state
        );
    }
    Ok(())
}

/// A leadership move [`plan_balance`] proposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// The shard.
    pub shard: String,
    /// Its leader now.
    pub from: u64,
    /// The voter to lead it.
    pub to: u64,
}

/// Moves that spread leaders: `shards` maps each shard to its leader and
/// the voters caught up enough to take over. While some node leads at least
/// two shards more than a caught-up voter of one of them, that shard moves
/// to the voter leading fewest. Deterministic (shards and nodes in order).
pub fn plan_balance(shards: &std::collections::BTreeMap<String, (u64, Vec<u64>)>) -> Vec<Move> {
    let mut count = std::collections::BTreeMap::<u64, usize>::new();
    for (leader, ready) in shards.values() {
        *count.entry(*leader).or_default() += 1;
        for v in ready {
            count.entry(*v).or_default();
        }
    }
    let mut leaders: std::collections::BTreeMap<&String, u64> =
        shards.iter().map(|(name, (l, _))| (name, *l)).collect();
    let mut moves = Vec::new();
    for _ in 0..shards.len() {
        let mut best: Option<(usize, &String, u64, u64)> = None;
        for (name, (_, ready)) in shards {
            let from = leaders[name];
            let from_count = count[&from];
            for &to in ready {
                if to == from {
                    continue;
                }
                let gap = from_count.saturating_sub(count[&to]);
                if gap >= 2 && best.is_none_or(|(g, ..)| gap > g) {
                    best = Some((gap, name, from, to));
                }
            }
        }
        let Some((_, name, from, to)) = best else {
            break;
        };
        *count.entry(from).or_default() -= 1;
        *count.entry(to).or_default() += 1;
        leaders.insert(name, to);
        moves.push(Move {
            shard: name.clone(),
            from,
            to,
        });
    }
    moves
}

/// Most log entries a voter may lag and still be handed a shard.
const BALANCE_MAX_LAG: u64 = 64;

/// `cairn cluster balance`.
pub async fn balance(via: &[String], dry_run: bool) -> anyhow::Result<()> {
    // A transfer under heavy load may time out or elect another node
    // (TransferLeader is best effort): look again and plan again, a few
    // rounds, before calling it a failure.
    let mut failed = Vec::new();
    for round in 0..BALANCE_ROUNDS {
        let (moves, addrs) = balance_plan(via, false).await?;
        if moves.is_empty() {
            if round == 0 {
                println!("leaders are spread: nothing to move");
            }
            return Ok(());
        }
        failed.clear();
        for m in &moves {
            println!("shard {}: node {} -> node {}", m.shard, m.from, m.to);
            if dry_run {
                continue;
            }
            let Some(addr) = addrs.get(&m.from) else {
                continue;
            };
            match transfer(addr, m).await {
                Ok(leader) if leader == m.to => {}
                Ok(leader) => {
                    failed.push(format!("shard {}: node {leader} leads instead", m.shard))
                }
                Err(e) => failed.push(format!("shard {}: {e:#}", m.shard)),
            }
        }
        if dry_run {
            return Ok(());
        }
        for f in &failed {
            eprintln!("{f}");
        }
    }
    let (moves, _) = balance_plan(via, false).await?;
    if moves.is_empty() {
        return Ok(());
    }
    bail!(
        "leaders are still not spread after {BALANCE_ROUNDS} rounds ({} moves left; last \
         failures: {})",
        moves.len(),
        failed.join("; ")
    )
}

/// Rounds of `cairn cluster balance` before it gives up.
const BALANCE_ROUNDS: usize = 3;

/// The moves that would spread the leaders now, and every voter's address.
/// Hands `m.shard`'s leadership from `m.from` (at `addr`) to `m.to`;
/// returns the leader afterwards (best effort under load).
pub async fn transfer(addr: &str, m: &Move) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = on_leader(&[addr.to_owned()], deadline, |mut c, remaining| {
        let mut request = tonic::Request::new(TransferLeaderRequest {
            shard: m.shard.clone(),
            to: m.to,
        });
        request.set_timeout(remaining.min(Duration::from_secs(15)));
        async move { c.transfer_leader(request).await }
    })
    .await?;
    Ok(answer.leader_id)
}

/// The moves [`plan_balance`] proposes for the shards reachable from
/// `via`, and the nodes' addresses; `quiet` leaves out the warnings about
/// nodes that did not answer and shards without a leader.
pub async fn balance_plan(
    via: &[String],
    quiet: bool,
) -> anyhow::Result<(Vec<Move>, std::collections::BTreeMap<u64, String>)> {
    let view = if quiet {
        cluster_view_quiet(via).await?.0
    } else {
        cluster_view(via).await?
    };
    let mut shards = std::collections::BTreeMap::new();
    let mut addrs = std::collections::BTreeMap::new();
    for (name, shard) in &view {
        let Some(leader) = shard.leader() else {
            if !quiet {
                eprintln!("shard {name}: no leader now; left alone");
            }
            continue;
        };
        for m in &leader.voters {
            addrs.insert(m.id, m.addr.clone());
        }
        let voters: std::collections::BTreeSet<u64> = leader.voters.iter().map(|m| m.id).collect();
        let ready: Vec<u64> = leader
            .replication
            .iter()
            .filter(|r| voters.contains(&r.id))
            .filter(|r| {
                r.matched
                    .is_some_and(|m| leader.last_log_index.saturating_sub(m) <= BALANCE_MAX_LAG)
            })
            .map(|r| r.id)
            .collect();
        shards.insert(name.clone(), (leader.node_id, ready));
    }
    Ok((plan_balance(&shards), addrs))
}

/// `cairn cluster shard freeze`.
async fn freeze(args: &FreezeArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let successor = args.successor.clone().unwrap_or_default();
    let answer = on_leader(&args.via, deadline, |mut c, remaining| {
        let mut request = tonic::Request::new(FreezeShardRequest {
            shard: args.shard.clone(),
            successor: successor.clone(),
        });
        request.set_timeout(remaining);
        async move { c.freeze_shard(request).await }
    })
    .await?;
    let frozen = answer
        .frozen
        .context("the leader answered the freeze without its size")?;
    println!(
        "shard {}: frozen at tree size {}{}",
        args.shard,
        frozen.size,
        if frozen.successor.is_empty() {
            String::new()
        } else {
            format!(", successor {}", frozen.successor)
        }
    );
    if frozen.successor != successor {
        eprintln!(
            "note: the shard was already frozen, naming successor {:?}",
            frozen.successor
        );
    }
    if crate::registry_cmd::record_frozen(&args.via, &args.shard, &frozen.successor).await? {
        println!("shard {}: recorded as frozen in the registry", args.shard);
    }
    Ok(())
}

/// `cairn cluster init`: checks every named node, then creates the group on
/// the first and waits for a leader.
pub async fn init(shard: &str, nodes: &[Member]) -> anyhow::Result<()> {
    let mut ids = std::collections::BTreeSet::new();
    for n in nodes {
        if !ids.insert(n.id) {
            bail!("node id {} is named twice", n.id);
        }
    }
    let mut key_hash: Option<(u64, Vec<u8>)> = None;
    for n in nodes {
        let s = status_of(&n.addr, shard)
            .await
            .with_context(|| format!("checking node {} before creating the group", n.id))?;
        match &key_hash {
            Some((first, hash)) if *hash != s.log_key_hash => bail!(
                "node {} holds another log key for shard {shard:?} than node {first} (key hashes \
                 {} and {}): every replica must hold the shard's key",
                n.id,
                hex::encode(&s.log_key_hash),
                hex::encode(hash)
            ),
            Some(_) => {}
            None => key_hash = Some((n.id, s.log_key_hash.clone())),
        }
        if s.node_id != n.id {
            bail!(
                "{} is node {}, not node {}: check the node ids",
                n.addr,
                s.node_id,
                n.id
            );
        }
        if s.initialized || !s.empty {
            bail!(
                "node {} ({}) already holds state for shard {shard:?} (role {}, term {}, tree \
                 size {}): a group is created once; use add-node to grow an existing group",
                n.id,
                n.addr,
                s.role,
                s.term,
                s.tree_size
            );
        }
    }
    let first = &nodes[0];
    let mut c = client(&first.addr)?;
    c.init_shard(InitShardRequest {
        shard: shard.to_owned(),
        voters: nodes.to_vec(),
    })
    .await
    .map_err(|s| anyhow::anyhow!("{}: {}: {}", first.addr, s.code(), s.message()))?;
    let deadline = Instant::now() + ELECTION_WAIT;
    loop {
        if let Ok(s) = status_of(&first.addr, shard).await
            && let Some(leader) = s.leader_id
        {
            println!(
                "shard {shard}: group created with {} voters; node {leader} leads (term {})",
                nodes.len(),
                s.term
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the group was created but elected no leader within {ELECTION_WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `cairn cluster status`: one line per node.
async fn status(shard: &str, via: &[String]) -> anyhow::Result<()> {
    let mut urls: Vec<String> = via.to_vec();
    let mut seen = std::collections::BTreeMap::new();
    let mut i = 0;
    while i < urls.len() {
        let url = urls[i].clone();
        i += 1;
        let s = status_of(&url, shard).await;
        if let Ok(s) = &s {
            for m in s.voters.iter().chain(&s.learners) {
                if !urls.contains(&m.addr) {
                    urls.push(m.addr.clone());
                }
            }
        }
        seen.insert(url, s);
    }
    println!(
        "{:<28} {:>4} {:<9} {:>5} {:>6} {:>10} {:>10} {:>10} {:>10}  notes",
        "node", "id", "role", "term", "leader", "applied", "tree", "signed", "published"
    );
    let mut failed = false;
    for (url, s) in &seen {
        match s {
            Ok(s) => {
                let mut notes = Vec::new();
                if !s.initialized {
                    notes.push("no group".to_owned());
                }
                if !s.halted.is_empty() {
                    notes.push(format!("HALTED: {}", s.halted));
                }
                if !s.degraded.is_empty() {
                    notes.push(format!("degraded: {}", s.degraded));
                }
                if let Some(f) = &s.frozen {
                    notes.push(if f.successor.is_empty() {
                        format!("frozen at {}", f.size)
                    } else {
                        format!("frozen at {}, successor {}", f.size, f.successor)
                    });
                }
                for r in &s.replication {
                    if r.id != s.node_id {
                        let lag = r.matched.map_or("unknown".to_owned(), |m| {
                            s.last_log_index.saturating_sub(m).to_string()
                        });
                        notes.push(format!("node {} lag {lag}", r.id));
                    }
                }
                println!(
                    "{:<28} {:>4} {:<9} {:>5} {:>6} {:>10} {:>10} {:>10} {:>10}  {}",
                    url,
                    s.node_id,
                    s.role,
                    s.term,
                    s.leader_id.map_or("-".to_owned(), |l| l.to_string()),
                    s.applied_index,
                    s.tree_size,
                    s.integrated_size,
                    s.published_size,
                    notes.join("; ")
                );
            }
            Err(e) => {
                failed = true;
                println!("{url:<28} unreachable: {e:#}");
            }
        }
    }
    if failed {
        bail!("some nodes did not answer");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(list: &[(&str, u64, &[u64])]) -> std::collections::BTreeMap<String, (u64, Vec<u64>)> {
        list.iter()
            .map(|(name, leader, ready)| (name.to_string(), (*leader, ready.to_vec())))
            .collect()
    }

    #[test]
    fn balance_moves_leaders_off_a_node_that_leads_everything() {
        // Node 3 came back after a failover: 1 and 2 lead all six.
        let all = [1, 2, 3];
        let before = shards(&[
            ("a", 1, &all),
            ("b", 1, &all),
            ("c", 1, &all),
            ("d", 2, &all),
            ("e", 2, &all),
            ("f", 2, &all),
        ]);
        let moves = plan_balance(&before);
        assert_eq!(moves.len(), 2, "{moves:?}");
        let mut count = std::collections::BTreeMap::<u64, usize>::new();
        let mut leaders: std::collections::BTreeMap<String, u64> =
            before.iter().map(|(n, (l, _))| (n.clone(), *l)).collect();
        for m in &moves {
            assert_eq!(leaders[&m.shard], m.from);
            leaders.insert(m.shard.clone(), m.to);
        }
        for l in leaders.values() {
            *count.entry(*l).or_default() += 1;
        }
        assert_eq!(count.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn balance_leaves_spread_leaders_and_lagging_voters_alone() {
        let all = [1, 2, 3];
        assert!(
            plan_balance(&shards(&[
                ("a", 1, &all),
                ("b", 2, &all),
                ("c", 3, &all),
                ("d", 1, &all)
            ]))
            .is_empty()
        );
        // Node 3 is not caught up on any shard: nothing can move to it.
        let behind = [1, 2];
        assert!(
            plan_balance(&shards(&[
                ("a", 1, &behind),
                ("b", 1, &behind),
                ("c", 2, &behind)
            ]))
            .is_empty()
        );
    }

    #[test]
    fn members_parse_as_id_equals_url() {
        let m = parse_member_arg("3=http://10.0.0.3:6970").unwrap();
        assert_eq!((m.id, m.addr.as_str()), (3, "http://10.0.0.3:6970"));
        for bad in ["3", "0=http://x:1", "x=http://x:1", "3=10.0.0.3:6970"] {
            assert!(parse_member_arg(bad).is_err(), "{bad}");
        }
    }
}
