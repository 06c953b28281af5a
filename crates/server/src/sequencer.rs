//! `cairnd sequencer --config FILE`: one sequencer node of a cluster.
//!
//! The node hosts a replica of every shard its file lists (RocksDB, Raft,
//! the pipeline) and serves the Sequencer, Admin and RaftTransport gRPC
//! services on one address, plus `/metrics`, `/livez` and `/readyz` on the
//! operator listener. A node never creates a shard's group by itself: a
//! fresh node waits, serving Status, until `cairn cluster init` names it
//! (or `cairn cluster add-node` adds it to an existing group);
//! architecture.md §8.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_sequencer::RaftTransportService;
use cairn_sequencer::registry::MetaGroup;
use cairn_sequencer::service::{SequencerService, grpc_router};
use cairn_sequencer::shard::{Shard, ShardConfig};
use cairn_sigsum::policy::Policy;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;

use crate::files::{read_limited, read_private_key, write_atomic};
use crate::ops;
use crate::registry_host::{Host, KeysDir};
use crate::shutdown::{stopped, wait_for_signal};

/// Most shards one node hosts (each is a RocksDB and a Raft group today).
const MAX_SHARDS: usize = 64;

/// A sequencer node's configuration file (TOML). Unknown keys are errors;
/// relative paths are relative to the file's directory.
///
/// ```toml
/// node_id = 1
/// listen = "127.0.0.1:7001"
/// ops_listen = "127.0.0.1:7101"
/// data_dir = "node1"
///
/// [[shard]]
/// name = "dev"
/// log_key = "log.key"
/// policy = "policy"
/// tiles = "tiles"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequencerFile {
    /// This node's Raft id, > 0, unique in the cluster and never reused for
    /// another machine or data directory (Raft identifies voters by it).
    pub node_id: u64,
    /// gRPC listener: the Sequencer, Admin and RaftTransport services.
    /// Keep it on a private network: the Admin service changes membership.
    /// Default `127.0.0.1:6970`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL other nodes, frontends and collectors reach `listen` at,
    /// recorded in the Raft membership. Default `http://<listen>`.
    pub advertise: Option<String>,
    /// Operator listener: `/metrics`, `/livez`, `/readyz`. Default
    /// `127.0.0.1:6971`.
    #[serde(default = "default_ops_listen")]
    pub ops_listen: SocketAddr,
    /// The node's state: `raft/<shard>/` (RocksDB) and, beside it,
    /// `<shard>.signed-head` (the record of the largest head signed) and
    /// `<shard>.log-key` (the key hash the shard's state belongs to).
    pub data_dir: PathBuf,
    /// Raft timing; see [`RaftFile`].
    #[serde(default)]
    pub raft: RaftFile,
    /// Seconds a partial tile or bundle is kept after the published tree
    /// has outgrown it; the leader then deletes it (a client holding an
    /// older checkpoint cuts its hashes from the full tile). Default 600.
    #[serde(default = "default_partial_tile_grace_s")]
    pub partial_tile_grace_s: u64,
    /// Never delete superseded partial tiles and bundles (for an archive
    /// that must keep every object ever served). Default `false`.
    #[serde(default)]
    pub keep_partial_tiles: bool,
    /// The shards this node hosts by configuration (at least one, unless
    /// `[registry]` is given).
    #[serde(rename = "shard", default)]
    pub shards: Vec<SequencerShardFile>,
    /// The cluster registry: with this table the node keeps a replica of
    /// the registry's Raft group (`cairn cluster registry init`) and hosts
    /// the shards whose records name it, started and stopped without a
    /// restart; see [`RegistryFile`].
    pub registry: Option<RegistryFile>,
}

/// `[registry]` of [`SequencerFile`]: where a node finds what registry
/// shards need besides their record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// Directory of the private keys of the shards this node may host (any
    /// file names; `.pub` files are skipped): the node picks the key whose
    /// public key the shard's record names, and refuses to host a shard
    /// whose key it lacks. Read at every lookup, so a key added later is
    /// found without a restart.
    pub keys_dir: PathBuf,
    /// Root of the cluster's local object store (each shard under its
    /// prefix). Either this or `object_store`.
    pub tiles: Option<PathBuf>,
    /// A file describing the cluster's object store (`[local]` or `[s3]`),
    /// each shard under its prefix. Either this or `tiles`.
    pub object_store: Option<PathBuf>,
    /// Seconds between looks at leader placement: the registry's leader
    /// hands one shard's leadership to another node when one node leads at
    /// least two shards more than a caught-up voter of it (as `cairn
    /// cluster balance` does). 0 turns it off. Default 60.
    #[serde(default = "default_balance_interval_s")]
    pub balance_interval_s: u64,
}

fn default_balance_interval_s() -> u64 {
    60
}

/// Raft timing of every shard on the node. The defaults are for a LAN or
/// one region (round trips and fsyncs of a few milliseconds): followers
/// refuse to elect anyone for `election_timeout_max_ms` after the last
/// heartbeat (the leader lease), then the first to time out wins within a
/// round trip, so the log accepts leaves again 1–2 s after its leader
/// died. Raise all three together for slow disks or long distances. Use
/// the same values on every node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftFile {
    /// Milliseconds between leader heartbeats. openraft 0.9 also bounds
    /// every AppendEntries call by it, *including the follower's fsync*,
    /// so it must exceed the disk's worst fsync plus a network round trip
    /// (a timed-out call is retried, slowing commits). Default 100.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Smallest election timeout in milliseconds: how long a follower waits
    /// without hearing from a leader before it runs for election. At least
    /// 3× `heartbeat_ms`. Default 500.
    #[serde(default = "default_election_min_ms")]
    pub election_timeout_min_ms: u64,
    /// Largest election timeout in milliseconds (each wait is random in
    /// between, so elections rarely collide); also the followers' leader
    /// lease, during which they refuse to vote for anyone else. Default
    /// 1000.
    #[serde(default = "default_election_max_ms")]
    pub election_timeout_max_ms: u64,
    /// Milliseconds allowed for sending one snapshot chunk to a follower.
    /// Default 30000.
    #[serde(default = "default_snapshot_timeout_ms")]
    pub install_snapshot_timeout_ms: u64,
    /// Applied entries between snapshots. Default 10000.
    #[serde(default = "default_snapshot_logs")]
    pub snapshot_logs: u64,
}

impl Default for RaftFile {
    fn default() -> Self {
        RaftFile {
            heartbeat_ms: default_heartbeat_ms(),
            election_timeout_min_ms: default_election_min_ms(),
            election_timeout_max_ms: default_election_max_ms(),
            install_snapshot_timeout_ms: default_snapshot_timeout_ms(),
            snapshot_logs: default_snapshot_logs(),
        }
    }
}

impl RaftFile {
    /// The openraft configuration, validated.
    pub fn openraft(&self) -> anyhow::Result<openraft::Config> {
        if self.election_timeout_min_ms < 3 * self.heartbeat_ms {
            bail!(
                "raft.election_timeout_min_ms ({}) must be at least 3 × raft.heartbeat_ms ({})",
                self.election_timeout_min_ms,
                self.heartbeat_ms
            );
        }
        let config = openraft::Config {
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.install_snapshot_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs),
            ..cairn_sequencer::raft::default_raft_config()
        };
        config.validate().context("raft settings")
    }
}

/// One shard of [`SequencerFile`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequencerShardFile {
    /// The shard's name: its Raft group, gRPC `shard` field, URL prefix and
    /// object-store prefix.
    pub name: String,
    /// The log's private key (OpenSSH, as `sigsum-key generate` writes it);
    /// every replica of the shard holds the same key.
    pub log_key: PathBuf,
    /// The shard's Sigsum policy file: its witnesses' keys are the ones
    /// whose cosignatures the published checkpoint may carry.
    pub policy: PathBuf,
    /// Root of a local directory holding the shard's objects (the shard
    /// name is the prefix inside it), shared by every process of the
    /// shard. Either this or `object_store`.
    pub tiles: Option<PathBuf>,
    /// A file describing the shard's object store (`[local]` or `[s3]`
    /// table of `cairn_storage::ObjectStoreConfig`; relative paths in it
    /// relative to that file), e.g. an S3 bucket; not `[http]`, which is
    /// read-only. Either this or `tiles`.
    pub object_store: Option<PathBuf>,
    /// Temporal rotation: when the log freezes itself, as an RFC 3339 time
    /// (e.g. `"2027-01-01T00:00:00Z"`). From then on add-leaf is refused
    /// (410, naming `successor`) while reads, proofs and the final head's
    /// cosigning go on. Create the successor's group ahead of time and list
    /// both logs in submitters' policies. Optional: without it only `cairn
    /// cluster freeze` freezes the log. Use the same value on every node.
    pub freeze_at: Option<String>,
    /// The shard that takes new submissions once this one is frozen by
    /// `freeze_at`, named in the refusal. Optional.
    pub successor: Option<String>,
}

impl SequencerShardFile {
    /// `freeze_at` as a time.
    pub fn freeze_time(&self) -> anyhow::Result<Option<std::time::SystemTime>> {
        self.freeze_at
            .as_deref()
            .map(|t| {
                humantime::parse_rfc3339_weak(t).with_context(|| {
                    format!(
                        "shard {:?}: freeze_at {t:?} is not an RFC 3339 time like 2027-01-01T00:00:00Z",
                        self.name
                    )
                })
            })
            .transpose()
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6970))
}
fn default_partial_tile_grace_s() -> u64 {
    cairn_sequencer::integrator::DEFAULT_PARTIAL_TILE_GRACE.as_secs()
}
fn default_ops_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6971))
}
fn default_heartbeat_ms() -> u64 {
    100
}
fn default_election_min_ms() -> u64 {
    500
}
fn default_election_max_ms() -> u64 {
    1000
}
fn default_snapshot_timeout_ms() -> u64 {
    30_000
}
fn default_snapshot_logs() -> u64 {
    cairn_sequencer::raft::DEFAULT_SNAPSHOT_LOGS
}

/// A shard's configuration with its files read.
struct PreparedShard {
    config: ShardConfig,
}

impl SequencerFile {
    /// Parses and checks the file's contents (no file IO).
    pub fn parse(text: &str) -> anyhow::Result<SequencerFile> {
        let file: SequencerFile = toml::from_str(text)?;
        if file.node_id == 0 {
            bail!("node_id must be > 0");
        }
        if (file.shards.is_empty() && file.registry.is_none()) || file.shards.len() > MAX_SHARDS {
            bail!(
                "a node hosts 1 to {MAX_SHARDS} shards ([[shard]] tables), found {}; or give \
                 [registry] to host the shards of the cluster registry",
                file.shards.len()
            );
        }
        if let Some(r) = &file.registry {
            crate::files::check_store_choice(
                "[registry]",
                r.tiles.as_deref(),
                r.object_store.as_deref(),
            )?;
        }
        let mut names = std::collections::HashSet::new();
        for s in &file.shards {
            if !valid_shard_name(&s.name) {
                bail!(
                    "shard name {:?} must be one path segment of 1 to 64 characters \
                     [A-Za-z0-9._-], not . or ..",
                    s.name
                );
            }
            if !names.insert(&s.name) {
                bail!("shard {:?} is listed twice", s.name);
            }
            s.freeze_time()?;
            if let Some(successor) = &s.successor {
                if !valid_shard_name(successor) || *successor == s.name {
                    bail!(
                        "shard {:?}: successor {successor:?} must be another shard's name",
                        s.name
                    );
                }
                if s.freeze_at.is_none() {
                    bail!(
                        "shard {:?}: successor is only used with freeze_at (`cairn cluster \
                         freeze` names its own)",
                        s.name
                    );
                }
            }
            crate::files::check_store_choice(
                &s.name,
                s.tiles.as_deref(),
                s.object_store.as_deref(),
            )?;
        }
        file.raft.openraft()?;
        if let Some(url) = &file.advertise
            && (!(url.starts_with("http://") || url.starts_with("https://"))
                || url.parse::<tonic::transport::Uri>().is_err())
        {
            bail!("advertise {url:?} is not an http(s)://host:port URL");
        }
        Ok(file)
    }

    /// How long superseded partial tiles are kept; `None`: forever.
    pub fn partial_tile_grace(&self) -> Option<Duration> {
        (!self.keep_partial_tiles).then(|| Duration::from_secs(self.partial_tile_grace_s))
    }

    /// The URL this node is reached at.
    pub fn advertised(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Reads every shard's key and policy file (and writes nothing), in
    /// the order of the file.
    pub fn check_files(
        &self,
        base: &Path,
    ) -> anyhow::Result<Vec<(cairn_sigsum::SigningKey, Policy)>> {
        if let Some(r) = &self.registry {
            let dir = base.join(&r.keys_dir);
            std::fs::read_dir(&dir)
                .with_context(|| format!("[registry] keys_dir {}", dir.display()))?;
            crate::files::read_shard_store(
                base,
                r.object_store.as_deref(),
                crate::files::Access::Writes,
            )
            .context("[registry]")?;
        }
        self.shards
            .iter()
            .map(|s| {
                let context = || format!("shard {:?}", s.name);
                let key = read_private_key(&base.join(&s.log_key)).with_context(context)?;
                let policy_text = read_limited(&base.join(&s.policy)).with_context(context)?;
                let policy = Policy::parse(&policy_text).with_context(|| {
                    format!("shard {:?}: policy {}", s.name, s.policy.display())
                })?;
                crate::files::read_shard_store(
                    base,
                    s.object_store.as_deref(),
                    crate::files::Access::Writes,
                )
                .with_context(context)?;
                Ok((key, policy))
            })
            .collect()
    }

    /// Reads the key and policy files and builds each shard's
    /// configuration.
    fn prepare(
        &self,
        base: &Path,
        transport: &RaftTransportService,
        store_metrics: &cairn_storage::StoreMetrics,
    ) -> anyhow::Result<Vec<PreparedShard>> {
        let files = self.check_files(base)?;
        let data_dir = base.join(&self.data_dir);
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating data_dir {}", data_dir.display()))?;
        let raft_config = self.raft.openraft()?;
        let mut out = Vec::new();
        for (s, (key, policy)) in self.shards.iter().zip(files) {
            let context = || format!("shard {:?}", s.name);
            bind_key(&data_dir, &s.name, &key)?;
            let tiles = crate::files::shard_tile_store(
                base,
                &s.name,
                s.tiles.as_deref(),
                s.object_store.as_deref(),
                crate::files::Access::Writes,
                store_metrics,
            )
            .with_context(context)?;
            let mut config = ShardConfig::new(
                s.name.as_str(),
                self.node_id,
                data_dir.join("raft").join(&s.name),
                key,
                tiles,
                self.advertised(),
            );
            config.bootstrap = false;
            config.raft_config = raft_config.clone();
            config.witnesses = policy.witnesses().iter().map(|w| *w.key()).collect();
            config.transport = Some(transport.clone());
            config.signed_record = data_dir.join(format!("{}.signed-head", s.name));
            config.integrator.partial_tile_grace = self.partial_tile_grace();
            config.freeze_at = s.freeze_time()?;
            config.successor = s.successor.clone().unwrap_or_default();
            out.push(PreparedShard { config });
        }
        Ok(out)
    }
}

/// Whether `name` can be a shard name: one URL path segment and one
/// object-store prefix segment.
fn valid_shard_name(name: &str) -> bool {
    cairn_sequencer::registry::valid_shard_name(name)
}

/// Records which log key a shard's state on this node belongs to, and
/// refuses another one: a replica must never sign one log's tree with
/// another log's key (or continue another log's tree).
pub(crate) fn bind_key(
    data_dir: &Path,
    shard: &str,
    key: &cairn_sigsum::SigningKey,
) -> anyhow::Result<()> {
    let path = data_dir.join(format!("{shard}.log-key"));
    let hash = key.public_key().key_hash().to_hex();
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == hash => Ok(()),
        Ok(found) => bail!(
            "shard {shard:?}: {} says this node's state belongs to the log with key hash {}, \
             but the configured key has key hash {hash}: refusing to start",
            path.display(),
            found.trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomic(&path, format!("{hash}\n").as_bytes(), 0o644)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Runs the node until Ctrl-C or SIGTERM, or until a shard's Raft core
/// stops by itself (then it exits non-zero so a supervisor restarts it).
pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let text = String::from_utf8(read_limited(&config_path)?)
        .with_context(|| format!("{} is not UTF-8", config_path.display()))?;
    let file =
        SequencerFile::parse(&text).with_context(|| format!("in {}", config_path.display()))?;
    let base = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();

    // Bind first: a busy port fails before any state is opened.
    let grpc = tokio::net::TcpListener::bind(file.listen)
        .await
        .with_context(|| format!("listening on {} (gRPC)", file.listen))?;
    let ops_listener = tokio::net::TcpListener::bind(file.ops_listen)
        .await
        .with_context(|| format!("listening on {} (operator endpoints)", file.ops_listen))?;

    let transport = RaftTransportService::new();
    let store_metrics = cairn_storage::StoreMetrics::new();
    let prepared = file.prepare(&base, &transport, &store_metrics)?;
    let mut shards = Vec::new();
    for p in prepared {
        let name = p.config.name.clone();
        let store = p.config.tile_store.clone();
        match Shard::start(p.config).await {
            Ok(shard) => shards.push((Arc::new(shard), store)),
            Err(e) => {
                for (s, _) in &shards {
                    let s: &Arc<Shard> = s;
                    s.shutdown().await;
                }
                return Err(e).with_context(|| format!("starting shard {name:?}"));
            }
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut service = SequencerService::new(shards.iter().map(|(s, _)| s.clone()));
    let mut registry_tasks = None;
    if let Some(r) = &file.registry {
        let data_dir = base.join(&file.data_dir);
        let meta = match MetaGroup::start(
            file.node_id,
            &data_dir.join("registry"),
            file.raft.openraft()?,
            None,
            Some(transport.clone()),
        )
        .await
        {
            Ok(meta) => Arc::new(meta),
            Err(e) => {
                for (s, _) in &shards {
                    s.shutdown().await;
                }
                return Err(e).context("starting the registry's Raft group");
            }
        };
        let keys = Arc::new(KeysDir::new(base.join(&r.keys_dir)));
        service = service.with_registry(meta.clone(), keys.clone());
        let host = Host {
            node_id: file.node_id,
            advertise: file.advertised(),
            data_dir,
            base: base.clone(),
            keys,
            tiles: r.tiles.clone(),
            object_store: r.object_store.clone(),
            raft_config: file.raft.openraft()?,
            transport: transport.clone(),
            store_metrics: store_metrics.clone(),
            partial_tile_grace: file.partial_tile_grace(),
            service: service.clone(),
            configured: file.shards.iter().map(|s| s.name.clone()).collect(),
            started: Default::default(),
        };
        if r.balance_interval_s > 0 {
            tokio::spawn(crate::balancer::run(
                meta.clone(),
                Duration::from_secs(r.balance_interval_s),
                stop_rx.clone(),
            ));
        }
        let task = tokio::spawn(host.run(meta.clone(), stop_rx.clone()));
        registry_tasks = Some((meta, task));
    }
    let ops_service = service.clone();
    let grpc_server = spawn_grpc(
        grpc_router(service, transport, stop_rx.clone()),
        grpc,
        stop_rx.clone(),
    );
    let ops_app = ops::router(ops::Ops {
        frontend: None,
        data_dir: Some(base.join(&file.data_dir)),
        shards: Vec::new(),
        sequencer: Some(ops_service),
        collectors: Vec::new(),
        http: None,
        tile_stores: shards
            .iter()
            .map(|(s, store)| (s.name().to_owned(), store.clone()))
            .collect(),
        store_metrics,
    });
    let ops_task = tokio::spawn({
        let stop = stopped(stop_rx.clone());
        async move {
            axum::serve(ops_listener, ops_app)
                .with_graceful_shutdown(stop)
                .await
        }
    });
    println!(
        "cairnd sequencer: node {} at {} (operator endpoints on http://{})",
        file.node_id,
        file.advertised(),
        file.ops_listen
    );
    for (s, _) in &shards {
        let initialized = s.raft().is_initialized().await.unwrap_or(false);
        println!(
            "  shard {}: {}",
            s.name(),
            if initialized {
                "member of its group"
            } else {
                "no group yet (waiting for `cairn cluster init` or `add-node`)"
            }
        );
    }

    let fatal = {
        let cores = futures_any(shards.iter().map(|(s, _)| s.clone()).collect());
        let meta_core = async {
            match &registry_tasks {
                Some((meta, _)) => format!(
                    "the registry's Raft core stopped: {}",
                    meta.raft_core_stopped().await
                ),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait_for_signal() => None,
            reason = cores => Some(reason),
            reason = meta_core => Some(reason),
        }
    };
    if let Some(reason) = &fatal {
        tracing::error!("stopping: {reason}; fix the cause and restart");
    }
    stop_tx.send_replace(true);
    for (s, _) in &shards {
        s.shutdown().await;
    }
    if let Some((meta, task)) = registry_tasks {
        let _ = task.await;
        meta.shutdown().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), ops_task).await;
    grpc_server.await?.context("gRPC server")?;
    match fatal {
        Some(reason) => bail!("{reason}"),
        None => Ok(()),
    }
}

/// Serves a node's gRPC router on `listener` until `stop` turns true.
pub fn spawn_grpc(
    router: tonic::transport::server::Router,
    listener: tokio::net::TcpListener,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(
                // Small request/response pairs: Nagle plus delayed ACKs
                // would add ~40 ms to every call.
                TcpListenerStream::new(listener).map(|conn| {
                    if let Ok(c) = &conn {
                        let _ = c.set_nodelay(true);
                    }
                    conn
                }),
                stopped(stop),
            )
            .await
    })
}

/// Resolves once any shard's Raft core has stopped by itself; never for
/// no shards (a node hosting only registry shards).
async fn futures_any(shards: Vec<Arc<Shard>>) -> String {
    if shards.is_empty() {
        return std::future::pending().await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    for s in shards {
        let tx = tx.clone();
        tokio::spawn(async move {
            let reason = s.raft_core_stopped().await;
            let _ = tx
                .send(format!(
                    "shard {}: the Raft core stopped: {reason}",
                    s.name()
                ))
                .await;
        });
    }
    drop(tx);
    rx.recv()
        .await
        .unwrap_or_else(|| "every shard's Raft core is gone".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
node_id = 3
data_dir = "n3"
[[shard]]
name = "dev"
log_key = "log.key"
policy = "policy"
tiles = "tiles"
"#;

    #[test]
    fn a_minimal_file_takes_the_documented_defaults() {
        let f = SequencerFile::parse(MINIMAL).unwrap();
        assert_eq!(f.listen, default_listen());
        assert_eq!(f.ops_listen, default_ops_listen());
        assert_eq!(f.advertised(), "http://127.0.0.1:6970");
        let raft = f.raft.openraft().unwrap();
        assert_eq!(raft.heartbeat_interval, 100);
        assert_eq!(raft.election_timeout_min, 500);
        assert_eq!(raft.election_timeout_max, 1000);
    }

    #[test]
    fn bad_fields_are_named() {
        for (text, expect) in [
            (MINIMAL.replace("node_id = 3", "node_id = 0"), "node_id"),
            (
                MINIMAL.replace(
                    "tiles = \"tiles\"",
                    "tiles = \"t\"\nobject_store = \"s3.toml\"",
                ),
                "not both",
            ),
            (MINIMAL.replace("tiles = \"tiles\"", ""), "missing tiles"),
            (MINIMAL.replace("data_dir", "datadir"), "datadir"),
            (
                format!("{MINIMAL}\n[raft]\nheartbeat_ms = 200\n"),
                "3 × raft.heartbeat_ms",
            ),
            (format!("{MINIMAL}\n[raft]\nbeat = 5\n"), "beat"),
            (
                format!("advertise = \"127.0.0.1:1\"\n{MINIMAL}"),
                "advertise",
            ),
            (
                MINIMAL.replace("name = \"dev\"", "name = \"a/b\""),
                "one path segment",
            ),
            (
                format!(
                    "{MINIMAL}[[shard]]\nname = \"dev\"\nlog_key = \"k\"\npolicy = \"p\"\ntiles = \"t\"\n"
                ),
                "listed twice",
            ),
        ] {
            let err = format!("{:#}", SequencerFile::parse(&text).unwrap_err());
            assert!(err.contains(expect), "{expect:?} not in {err}");
        }
    }

    #[test]
    fn a_registry_node_needs_no_configured_shard_but_one_store() {
        let registry = "node_id = 1\ndata_dir = \"d\"\n[registry]\nkeys_dir = \"keys\"\n";
        let f = SequencerFile::parse(&format!("{registry}tiles = \"tiles\"\n")).unwrap();
        assert!(f.shards.is_empty());
        assert!(f.registry.is_some());
        let err = format!("{:#}", SequencerFile::parse(registry).unwrap_err());
        assert!(err.contains("missing tiles"), "{err}");
        let err = format!(
            "{:#}",
            SequencerFile::parse("node_id = 1\ndata_dir = \"d\"\n").unwrap_err()
        );
        assert!(err.contains("[registry]"), "{err}");
    }

    #[test]
    fn a_data_dir_bound_to_one_log_key_refuses_another() {
        let tmp = tempfile::tempdir().unwrap();
        let a = cairn_sigsum::SigningKey::from_seed(&[1; 32]);
        let b = cairn_sigsum::SigningKey::from_seed(&[2; 32]);
        bind_key(tmp.path(), "dev", &a).unwrap();
        bind_key(tmp.path(), "dev", &a).unwrap();
        let err = bind_key(tmp.path(), "dev", &b).unwrap_err().to_string();
        assert!(err.contains("refusing to start"), "{err}");
        bind_key(tmp.path(), "other", &b).unwrap();
    }
}
