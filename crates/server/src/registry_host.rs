//! A sequencer node's side of the cluster registry: it hosts the shards
//! whose records name it, without a restart.
//!
//! The node watches its replica of the meta group. For each record naming
//! it and not retired, it starts the shard (the private key from its keys
//! directory, the policy from the record, tiles in the cluster's object
//! store under the record's prefix) and serves it; the group itself is
//! created by `cairn cluster shard create`, as for configured shards. It
//! stops a shard, and deletes its local state, once the record is retired
//! or no longer names the node *and* the shard's own group no longer counts
//! the node as a member: a voter's state is never deleted because of the
//! registry alone. Shards of the configuration file (`[[shard]]`) are left
//! alone. The node looks again every [`RETRY_INTERVAL`]: a shard that
//! failed to start is retried, and a shard that froze itself (a scheduled
//! freeze) is recorded as frozen by the meta group's leader.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cairn_sequencer::RaftTransportService;
use cairn_sequencer::registry::{
    HostCheck, Lifecycle, MetaGroup, Registry, RegistryChange, ShardRecord,
};
use cairn_sequencer::service::SequencerService;
use cairn_sequencer::shard::{Shard, ShardConfig};
use cairn_sigsum::SigningKey;
use cairn_sigsum::policy::Policy;
use tokio::sync::watch;

use crate::files::read_private_key;

/// How often a shard that failed to start is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Most files the keys directory is searched through.
const MAX_KEY_FILES: usize = 4096;

/// The private keys a node holds for registry shards: every file of one
/// directory that parses as a private key (public `.pub` files and others
/// are skipped), found by public key.
#[derive(Debug)]
pub struct KeysDir {
    dir: PathBuf,
}

impl KeysDir {
    /// The keys in `dir` (read at each lookup, so a key added later is
    /// found without a restart).
    pub fn new(dir: PathBuf) -> Self {
        KeysDir { dir }
    }

    /// The private key whose public key is `public`.
    pub fn find(&self, public: &[u8; 32]) -> Result<SigningKey, String> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("reading the keys directory {}: {e}", self.dir.display()))?;
        let mut looked = 0;
        for entry in entries.take(MAX_KEY_FILES) {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            if !path.is_file() || path.extension().is_some_and(|e| e == "pub") {
                continue;
            }
            looked += 1;
            if let Ok(key) = read_private_key(&path)
                && key.public_key().0 == *public
            {
                return Ok(key);
            }
        }
        Err(format!(
            "none of the {looked} private key files in {} is the log key with key hash {}: \
             put the shard's private key there",
            self.dir.display(),
            cairn_sigsum::PublicKey(*public).key_hash().to_hex()
        ))
    }
}

impl HostCheck for KeysDir {
    fn check(&self, record: &ShardRecord) -> Result<(), String> {
        Policy::parse(record.policy.as_bytes())
            .map_err(|e| format!("the shard's policy does not parse: {e}"))?;
        self.find(&record.log_key).map(|_| ())
    }
}

/// What a node needs to start registry shards.
pub struct Host {
    /// This node's Raft id.
    pub node_id: u64,
    /// The URL the node is reached at.
    pub advertise: String,
    /// Directory of the node's state (`raft/<shard>/`, records beside it).
    pub data_dir: PathBuf,
    /// Directory of the configuration file (relative paths).
    pub base: PathBuf,
    /// The shards' private keys.
    pub keys: Arc<KeysDir>,
    /// The cluster's object store: `tiles` directory or `object_store` file.
    pub tiles: Option<PathBuf>,
    /// See `tiles`.
    pub object_store: Option<PathBuf>,
    /// Raft timing of every shard.
    pub raft_config: openraft::Config,
    /// The node's Raft transport.
    pub transport: RaftTransportService,
    /// The object-store metrics.
    pub store_metrics: cairn_storage::StoreMetrics,
    /// Partial tile grace, as for configured shards.
    pub partial_tile_grace: Option<Duration>,
    /// The service the node serves shards through.
    pub service: SequencerService,
    /// Names of shards from the configuration file: never touched.
    pub configured: HashSet<String>,
    /// Shards started from the registry, by name (shared with ops).
    pub started: Arc<Mutex<BTreeMap<String, Arc<Shard>>>>,
}

impl Host {
    fn config_for(&self, record: &ShardRecord) -> anyhow::Result<ShardConfig> {
        let key = self
            .keys
            .find(&record.log_key)
            .map_err(|e| anyhow::anyhow!(e))?;
        let policy = Policy::parse(record.policy.as_bytes()).context("the record's policy")?;
        crate::sequencer::bind_key(&self.data_dir, &record.name, &key)?;
        let tiles = crate::files::shard_tile_store(
            &self.base,
            &record.prefix,
            self.tiles.as_deref(),
            self.object_store.as_deref(),
            crate::files::Access::Writes,
            &self.store_metrics,
        )?;
        let mut config = ShardConfig::new(
            record.name.as_str(),
            self.node_id,
            self.data_dir.join("raft").join(&record.name),
            key,
            tiles,
            self.advertise.clone(),
        );
        config.bootstrap = false;
        config.raft_config = self.raft_config.clone();
        config.witnesses = policy.witnesses().iter().map(|w| *w.key()).collect();
        config.transport = Some(self.transport.clone());
        config.signed_record = self.data_dir.join(format!("{}.signed-head", record.name));
        config.integrator.partial_tile_grace = self.partial_tile_grace;
        config.freeze_at = record
            .freeze_at
            .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s));
        config.successor = record.successor.clone();
        Ok(config)
    }

    /// Whether this node may still be a member of `shard`'s group: its own
    /// view says so, and no leader among the other members says otherwise.
    /// (A removed node may never learn of its removal: the leader stops
    /// replicating to it once the change commits.)
    async fn is_member(shard: &Shard) -> bool {
        let membership = shard
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let me = shard.node_id();
        if membership.get_node(&me).is_none() {
            return false;
        }
        for (id, node) in membership.nodes() {
            if *id == me {
                continue;
            }
            let Ok(channel) = tonic::transport::Endpoint::from_shared(node.addr.clone()) else {
                continue;
            };
            let channel = channel
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(3))
                .connect_lazy();
            let answer = cairn_proto::v1::admin_client::AdminClient::new(channel)
                .status(cairn_proto::v1::StatusRequest {
                    shard: shard.name().to_owned(),
                })
                .await;
            if let Ok(status) = answer.map(tonic::Response::into_inner)
                && status.role == "leader"
                && !status
                    .voters
                    .iter()
                    .chain(&status.learners)
                    .any(|m| m.id == me)
            {
                return false;
            }
        }
        true
    }

    /// Brings the hosted shards in line with `registry` (one pass).
    async fn reconcile(&self, meta: &MetaGroup, registry: &Registry) {
        for record in registry.values() {
            if self.configured.contains(&record.name) {
                continue;
            }
            let wanted =
                record.state != Lifecycle::Retired && record.replicas.contains(&self.node_id);
            let hosted = self
                .started
                .lock()
                .ok()
                .and_then(|s| s.get(&record.name).cloned());
            match (wanted, hosted) {
                (true, None) => match self.start(record).await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::error!(shard = %record.name, error = format!("{e:#}"), "cannot host the registry's shard; retrying");
                    }
                },
                (false, Some(shard)) => {
                    if record.state != Lifecycle::Retired && Self::is_member(&shard).await {
                        // Moved away in the registry, but the group still
                        // counts this node: keep serving until it is
                        // removed from the group (`cairn cluster shard
                        // move` does both).
                        continue;
                    }
                    self.stop_and_delete(&record.name, shard).await;
                }
                (true, Some(shard)) => {
                    // A scheduled freeze happens in the shard's own group:
                    // its leader records it in the registry.
                    if record.state == Lifecycle::Active
                        && shard.is_leader()
                        && let Some(frozen) = shard.frozen()
                    {
                        let change = RegistryChange::SetState {
                            name: record.name.clone(),
                            state: Lifecycle::Frozen,
                            successor: frozen.successor,
                        };
                        if let Err(e) = record_change(meta, change).await {
                            tracing::warn!(shard = %record.name, error = format!("{e:#}"), "cannot record the freeze in the registry; retrying");
                        }
                    }
                }
                // Retired while this node was down: its state is left.
                (false, None)
                    if record.state == Lifecycle::Retired
                        && self.data_dir.join("raft").join(&record.name).exists() =>
                {
                    self.delete_state(&record.name);
                }
                _ => {}
            }
        }
    }

    async fn start(&self, record: &ShardRecord) -> anyhow::Result<()> {
        let config = self.config_for(record)?;
        let shard = Arc::new(Shard::start(config).await?);
        tracing::info!(shard = %record.name, "hosting a shard of the registry");
        if let Ok(mut started) = self.started.lock() {
            started.insert(record.name.clone(), shard.clone());
        }
        self.service.insert(shard);
        Ok(())
    }

    async fn stop_and_delete(&self, name: &str, shard: Arc<Shard>) {
        self.service.remove(name);
        if let Ok(mut started) = self.started.lock() {
            started.remove(name);
        }
        shard.shutdown().await;
        drop(shard);
        // The database closes when openraft's workers let go of it, shortly
        // after shutdown; deleting the files of an open RocksDB is safe on
        // POSIX (nothing reads them again) but wait a little first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.delete_state(name);
    }

    fn delete_state(&self, name: &str) {
        let raft_dir = self.data_dir.join("raft");
        let mut snapshots = std::ffi::OsString::from(name);
        snapshots.push(".snapshots");
        for dir in [raft_dir.join(name), raft_dir.join(snapshots)] {
            remove_dir_if_present(&dir);
        }
        for file in [format!("{name}.signed-head"), format!("{name}.log-key")] {
            let path = self.data_dir.join(file);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not delete");
            }
        }
        tracing::info!(
            shard = name,
            "stopped hosting the shard and deleted its local state"
        );
    }

    /// Follows the registry until `stop` turns true, then stops the shards
    /// it started.
    pub async fn run(self, meta: Arc<MetaGroup>, mut stop: watch::Receiver<bool>) {
        let mut states = meta.subscribe();
        loop {
            let registry = states.borrow_and_update().registry.clone();
            // Also every interval: failed starts are retried, and freezes
            // (which the registry does not announce) are recorded.
            self.reconcile(&meta, &registry).await;
            tokio::select! {
                changed = states.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(RETRY_INTERVAL) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let started: Vec<_> = self
            .started
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        for shard in started {
            shard.shutdown().await;
        }
    }
}

/// Longest a registry change made by the node itself may take.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Commits `change` through the meta group's leader: this node's replica
/// if it leads, else the leader's Admin service. Bounded by
/// [`CHANGE_TIMEOUT`] (the registry may have lost its quorum).
async fn record_change(meta: &MetaGroup, change: RegistryChange) -> anyhow::Result<()> {
    let work = async {
        if meta.is_leader() {
            meta.change(change).await?;
            return Ok(());
        }
        let metrics = meta.raft().metrics().borrow().clone();
        let leader = metrics
            .current_leader
            .and_then(|id| {
                metrics
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .cloned()
            })
            .context("the registry has no leader now")?;
        let (name, state, successor) = match change {
            RegistryChange::SetState {
                name,
                state,
                successor,
            } => (name, state, successor),
            other => anyhow::bail!("not sent to the leader: {other:?}"),
        };
        let channel = tonic::transport::Endpoint::from_shared(leader.addr.clone())?
            .connect_timeout(CHANGE_TIMEOUT)
            .connect_lazy();
        cairn_proto::v1::admin_client::AdminClient::new(channel)
            .change_registry(cairn_proto::v1::ChangeRegistryRequest {
                change: Some(cairn_proto::v1::change_registry_request::Change::SetState(
                    cairn_proto::v1::SetShardState {
                        shard: name,
                        state: state.as_str().to_owned(),
                        successor,
                    },
                )),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}: {}: {}", leader.addr, s.code(), s.message()))?;
        Ok(())
    };
    tokio::time::timeout(CHANGE_TIMEOUT, work)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {CHANGE_TIMEOUT:?}"))?
}

fn remove_dir_if_present(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "could not delete");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_public_key_and_a_missing_one_is_named_by_key_hash() {
        let dir = tempfile::tempdir().unwrap();
        let a = crate::files::generate_key(&dir.path().join("a.key")).unwrap();
        let keys = KeysDir::new(dir.path().to_path_buf());
        let found = keys.find(&a.public_key().0).unwrap();
        assert_eq!(found.public_key(), a.public_key());
        let other = SigningKey::from_seed(&[9; 32]).public_key();
        let err = keys.find(&other.0).unwrap_err();
        assert!(err.contains(&other.key_hash().to_hex()), "{err}");
        assert!(err.contains("1 private key files"), "{err}");
    }
}
