//! `cairnd frontend --config FILE`: the stateless Sigsum v1 HTTP API of a
//! cluster's shards (architecture.md §1).
//!
//! The frontend holds no state: it verifies submissions and batches them to
//! the shard's Raft leader, follows the leader across elections (a list of
//! sequencer nodes, the `cairn-leader` hint), serves tree heads from the
//! sequencers and proofs and leaves from the shared object store. Run as
//! many as the load needs, behind any HTTP load balancer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_client::token::TokenVerifier;
use cairn_frontend::{FrontendConfig, ShardFrontend, ShardLimits};
use cairn_proto::{PoolOptions, SequencerPool};
use serde::Deserialize;
use tokio::sync::watch;

use crate::files::read_limited;
use crate::ops;
use crate::shutdown::{stopped, wait_for_signal};

/// Most sequencer URLs one frontend follows.
const MAX_SEQUENCERS: usize = 16;

/// Most shards one frontend serves.
const MAX_SHARDS: usize = 1024;

/// The frontend's configuration file (TOML). Unknown keys are errors;
/// relative paths are relative to the file's directory.
///
/// ```toml
/// listen = "0.0.0.0:6965"
/// sequencers = ["http://10.0.0.1:6970", "http://10.0.0.2:6970", "http://10.0.0.3:6970"]
/// public_base_url = "https://log.example.org"
///
/// [[shard]]
/// name = "dev"
/// log_key = "log.key.pub"
/// tiles = "/var/lib/cairn/tiles"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendFile {
    /// HTTP listener: the Sigsum API under `/<shard>/`, tile reads, and
    /// `/metrics`, `/livez`, `/readyz`. Default `127.0.0.1:6965`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// gRPC URLs of the sequencer nodes hosting the shards (1 to 16); the
    /// frontend finds each shard's leader among them and follows it.
    pub sequencers: Vec<String>,
    /// The externally visible URL the shards are mounted under, without a
    /// trailing slash, shown on the info pages. Default: `http://` and the
    /// request's `Host`.
    pub public_base_url: Option<String>,
    /// Verify `sigsum-token` headers against the submitter domain's
    /// `_sigsum_v1` TXT records (system resolver unless
    /// `token_dns_server`). Default false: tokens are only parsed.
    #[serde(default)]
    pub verify_tokens: bool,
    /// A DNS server (`HOST:PORT`) to ask instead of the system resolver;
    /// implies `verify_tokens`.
    pub token_dns_server: Option<SocketAddr>,
    /// Connection and timeout limits of the listener (see `cairn_http`'s
    /// `HttpConfig`; every key optional).
    #[serde(default)]
    pub http: cairn_http::HttpConfig,
    /// The shards served by configuration (at least one, unless
    /// `[registry]` is given).
    #[serde(rename = "shard", default)]
    pub shards: Vec<FrontendShardFile>,
    /// Serve every shard of the cluster registry too, picked up from the
    /// sequencers without a restart (polled every `poll_interval_ms`);
    /// retired shards stop being served. See
    /// [`FollowFile`](crate::registry_follow::FollowFile).
    pub registry: Option<crate::registry_follow::FollowFile>,
}

/// One shard of [`FrontendFile`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendShardFile {
    /// The shard's name: URL prefix `/<name>/` and the sequencers' shard.
    pub name: String,
    /// The log's public key (OpenSSH public key file): heads that do not
    /// verify with it are never served.
    pub log_key: PathBuf,
    /// Root of a local directory holding the shard's objects (the shard
    /// name is the prefix inside it), shared by every process of the
    /// shard. Either this or `object_store`.
    pub tiles: Option<PathBuf>,
    /// A file describing the shard's object store (`[local]`, `[s3]` or
    /// `[http]` table of `cairn_storage::ObjectStoreConfig`; relative paths
    /// in it relative to that file): e.g. an S3 bucket, or the log's tile
    /// URL (`[http] url = ...`, read-only: a static web server or CDN in
    /// front of the tiles). Either this or `tiles`.
    pub object_store: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6965))
}

impl FrontendFile {
    /// Parses and checks the file's contents (no file IO).
    pub fn parse(text: &str) -> anyhow::Result<FrontendFile> {
        let file: FrontendFile = toml::from_str(text)?;
        if file.sequencers.is_empty() || file.sequencers.len() > MAX_SEQUENCERS {
            bail!(
                "sequencers lists 1 to {MAX_SEQUENCERS} URLs, found {}",
                file.sequencers.len()
            );
        }
        for url in &file.sequencers {
            SequencerPool::check_url(url).context("sequencers")?;
        }
        if (file.shards.is_empty() && file.registry.is_none()) || file.shards.len() > MAX_SHARDS {
            bail!(
                "a frontend serves 1 to {MAX_SHARDS} shards ([[shard]] tables), found {}; or \
                 give [registry] to serve the shards of the cluster registry",
                file.shards.len()
            );
        }
        if let Some(r) = &file.registry {
            r.check()?;
        }
        for s in &file.shards {
            crate::files::check_store_choice(
                &s.name,
                s.tiles.as_deref(),
                s.object_store.as_deref(),
            )?;
        }
        Ok(file)
    }
}

impl FrontendFile {
    /// Reads every shard's log key file (and writes nothing), in the order
    /// of the file.
    pub fn check_files(&self, base: &Path) -> anyhow::Result<Vec<cairn_sigsum::PublicKey>> {
        self.shards
            .iter()
            .map(|s| {
                crate::files::read_shard_store(
                    base,
                    s.object_store.as_deref(),
                    crate::files::Access::Reads,
                )
                .with_context(|| format!("shard {:?}", s.name))?;
                let context = || format!("shard {:?}: log_key {}", s.name, s.log_key.display());
                let key_text = read_limited(&base.join(&s.log_key)).with_context(context)?;
                let keys = cairn_sigsum::key::parse_public_key_file(&key_text)
                    .map_err(anyhow::Error::from)
                    .with_context(context)?;
                match keys.first() {
                    Some(k) => Ok(k.0),
                    None => Err(anyhow::anyhow!("no key in the file")).with_context(context),
                }
            })
            .collect()
    }
}

/// Runs the frontend until Ctrl-C or SIGTERM.
pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let text = String::from_utf8(read_limited(&config_path)?)
        .with_context(|| format!("{} is not UTF-8", config_path.display()))?;
    let file =
        FrontendFile::parse(&text).with_context(|| format!("in {}", config_path.display()))?;
    let base = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let token_verifier = match (file.token_dns_server, file.verify_tokens) {
        (Some(addr), _) => Some(TokenVerifier::with_name_server(addr)),
        (None, true) => Some(TokenVerifier::from_system_config()),
        (None, false) => None,
    }
    .transpose()
    .context("setting up submit-token verification")?
    .map(Arc::new);
    let pool = SequencerPool::new(file.sequencers.clone(), PoolOptions::default())?;
    let mut shards = Vec::new();
    let mut stores = Vec::new();
    let store_metrics = cairn_storage::StoreMetrics::new();
    for (s, log_key) in file.shards.iter().zip(file.check_files(&base)?) {
        let context = || format!("shard {:?}", s.name);
        let tiles = crate::files::shard_tile_store(
            &base,
            &s.name,
            s.tiles.as_deref(),
            s.object_store.as_deref(),
            crate::files::Access::Reads,
            &store_metrics,
        )
        .with_context(context)?;
        stores.push((s.name.clone(), tiles.clone()));
        shards.push(ShardFrontend {
            name: s.name.clone(),
            log_key,
            sequencer: pool.clone(),
            tiles,
            limits: ShardLimits::default(),
        });
    }
    let listener = tokio::net::TcpListener::bind(file.listen)
        .await
        .with_context(|| format!("listening on {}", file.listen))?;
    let http_server = cairn_http::Server::new(file.http.clone()).context("[http]")?;
    let configured: std::collections::HashSet<String> =
        shards.iter().map(|s| s.name.clone()).collect();
    let (frontend, handle) = cairn_frontend::router_with_handle(
        shards,
        FrontendConfig {
            public_base_url: file.public_base_url.clone(),
            token_verifier,
            request_spans: crate::telemetry::request_spans(),
            ..FrontendConfig::default()
        },
    )?;
    let app = axum::Router::new()
        .merge(ops::router(ops::Ops {
            frontend: Some(handle.clone()),
            data_dir: None,
            shards: Vec::new(),
            sequencer: None,
            collectors: Vec::new(),
            http: Some(http_server.stats().clone()),
            tile_stores: stores,
            store_metrics,
        }))
        .merge(frontend);
    println!(
        "cairnd frontend: serving {} shard(s) on http://{} from sequencers {}",
        file.shards.len(),
        file.listen,
        file.sequencers.join(", ")
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(r) = file.registry.clone() {
        let follower = RegistryShards {
            base: base.clone(),
            follow: r.clone(),
            pool: pool.clone(),
            handle,
            configured,
            store_metrics: cairn_storage::StoreMetrics::new(),
        };
        tokio::spawn(crate::registry_follow::follow(
            file.sequencers.clone(),
            Duration::from_millis(r.poll_interval_ms),
            stop_rx.clone(),
            move |records| follower.apply(records),
        ));
    }
    let serve = tokio::spawn(http_server.serve(listener, app, stopped(stop_rx)));
    wait_for_signal().await;
    stop_tx.send_replace(true);
    serve.await.context("HTTP server task")?;
    Ok(())
}

/// Serves the registry's shards on a running frontend.
struct RegistryShards {
    base: PathBuf,
    follow: crate::registry_follow::FollowFile,
    pool: SequencerPool,
    handle: cairn_frontend::Shards,
    /// Shards of the configuration file: never touched.
    configured: std::collections::HashSet<String>,
    store_metrics: cairn_storage::StoreMetrics,
}

impl RegistryShards {
    fn apply(&self, records: &std::collections::BTreeMap<String, cairn_proto::v1::ShardRecord>) {
        for (name, record) in records {
            if self.configured.contains(name) {
                continue;
            }
            let retired = record.state == "retired";
            let served = self.handle.is_retired(name);
            if retired && served != Some(true) {
                // From now on its objects in storage are all there is.
                match self.retired(record) {
                    Ok((shard, how)) => match self.handle.retire(shard, how) {
                        Ok(()) => {
                            tracing::info!(shard = %name, "the shard is retired: served from object storage")
                        }
                        Err(e) => {
                            tracing::error!(shard = %name, error = %e, "cannot serve the retired shard")
                        }
                    },
                    Err(e) => {
                        tracing::error!(shard = %name, error = format!("{e:#}"), "cannot serve the retired shard");
                        self.handle.remove(name);
                    }
                }
            } else if !retired && served.is_none() {
                match self.shard(record) {
                    Ok(shard) => match self.handle.add(shard) {
                        Ok(()) => {
                            tracing::info!(shard = %name, "serving a new shard of the registry")
                        }
                        Err(e) => {
                            tracing::error!(shard = %name, error = %e, "cannot serve the registry's shard")
                        }
                    },
                    Err(e) => {
                        tracing::error!(shard = %name, error = format!("{e:#}"), "cannot serve the registry's shard")
                    }
                }
            }
        }
    }

    /// A retired record's shard, and the witnesses whose cosignatures its
    /// final checkpoint carries.
    fn retired(
        &self,
        record: &cairn_proto::v1::ShardRecord,
    ) -> anyhow::Result<(ShardFrontend, cairn_frontend::Retired)> {
        let policy = cairn_sigsum::policy::Policy::parse(record.policy.as_bytes())
            .context("the record's policy")?;
        let retired = cairn_frontend::Retired {
            successor: record.successor.clone(),
            witnesses: policy.witnesses().iter().map(|w| *w.key()).collect(),
        };
        Ok((self.shard(record)?, retired))
    }

    fn shard(&self, record: &cairn_proto::v1::ShardRecord) -> anyhow::Result<ShardFrontend> {
        let tiles = crate::files::shard_tile_store(
            &self.base,
            &record.prefix,
            self.follow.tiles.as_deref(),
            self.follow.object_store.as_deref(),
            crate::files::Access::Reads,
            &self.store_metrics,
        )?;
        Ok(ShardFrontend {
            name: record.name.clone(),
            log_key: crate::registry_follow::log_key(record)?,
            sequencer: self.pool.clone(),
            tiles,
            limits: ShardLimits::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
sequencers = ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]
[[shard]]
name = "dev"
log_key = "log.key.pub"
tiles = "tiles"
"#;

    #[test]
    fn a_minimal_file_takes_the_documented_defaults() {
        let f = FrontendFile::parse(MINIMAL).unwrap();
        assert_eq!(f.listen, default_listen());
        assert!(!f.verify_tokens);
        assert_eq!(f.sequencers.len(), 2);
    }

    #[test]
    fn bad_fields_are_named() {
        for (text, expect) in [
            (MINIMAL.replace("sequencers", "sequencer"), "sequencer"),
            (
                MINIMAL.replace(
                    r#"["http://127.0.0.1:7001", "http://127.0.0.1:7002"]"#,
                    "[]",
                ),
                "1 to 16",
            ),
            (MINIMAL.replace("tiles = ", "tile = "), "tile"),
            (format!("bogus = 1\n{MINIMAL}"), "bogus"),
        ] {
            let err = format!("{:#}", FrontendFile::parse(&text).unwrap_err());
            assert!(err.contains(expect), "{expect:?} not in {err}");
        }
    }
}
