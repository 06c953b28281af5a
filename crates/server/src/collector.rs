//! `cairnd collector --config FILE`: the cosignature collector as a service
//! of its own (architecture.md §1). For each configured shard it polls the
//! sequencer over gRPC, sends every new signed tree head to the witnesses of
//! the shard's policy, and publishes the head once the policy quorum holds
//! (fail-closed unless the shard says `fail_open = true`).
//!
//! The collector keeps no state: witness sizes are relearned from 409
//! answers after a restart, and the sequencer never publishes a head smaller
//! than the last one.
//!
//! The sequencer may be a Raft group: list its nodes in `sequencers`, and
//! the collector follows the leader (see `cairn_proto::SequencerPool`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_collector::{
    Collector, CollectorConfig, DEFAULT_POLL_INTERVAL, DEFAULT_RECOSIGN_INTERVAL,
    DEFAULT_WITNESS_TIMEOUT,
};
use cairn_proto::{PoolOptions, SequencerPool};
use cairn_sigsum::PublicKey;
use cairn_sigsum::policy::Policy;
use cairn_storage::TileStore;
use serde::Deserialize;
use tokio::sync::watch;

use crate::files::read_limited;
use crate::ops;
use crate::shutdown::{stopped, wait_for_signal};

/// Most shards one collector process serves.
const MAX_SHARDS: usize = 1024;

/// Most sequencer nodes one collector is configured with (a Raft group has
/// 3 to 5).
const MAX_SEQUENCERS: usize = 16;

/// The collector's configuration file (TOML). Unknown keys are errors.
/// Relative paths are relative to the directory of the configuration file.
///
/// ```toml
/// listen = "127.0.0.1:6967"
/// sequencers = ["http://10.0.0.1:6970", "http://10.0.0.2:6970", "http://10.0.0.3:6970"]
///
/// [[shard]]
/// name = "dev"
/// log_key = "/var/lib/cairn/log.key.pub"
/// policy = "/var/lib/cairn/policy"
/// tiles = "/var/lib/cairn/tiles"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorFile {
    /// Address of the operator listener: `/metrics`, `/livez`, `/readyz`.
    /// Default `127.0.0.1:6967`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// gRPC URLs of the sequencer nodes serving the shards (the nodes of
    /// its Raft group), `http://HOST:PORT` each, e.g.
    /// `["http://10.0.0.1:6970", "http://10.0.0.2:6970"]`: at least one, at
    /// most 16, no duplicates. Calls follow the group's leader; the order
    /// only says which node is asked first. Give this or `sequencer`.
    #[serde(default)]
    pub sequencers: Vec<String>,
    /// The one sequencer's gRPC URL, e.g. `http://127.0.0.1:6970`: the same
    /// as `sequencers = [URL]` (the older form). Give this or `sequencers`,
    /// not both.
    pub sequencer: Option<String>,
    /// The shards to collect for by configuration (at most 1024; at least
    /// one unless `[registry]` is given).
    #[serde(rename = "shard", default)]
    pub shards: Vec<ShardFile>,
    /// Collect for every shard of the cluster registry too (its policy
    /// from its record, the defaults of [`ShardFile`] otherwise), picked up
    /// without a restart; retired shards are dropped. See
    /// [`FollowFile`](crate::registry_follow::FollowFile).
    pub registry: Option<crate::registry_follow::FollowFile>,
}

/// One shard in [`CollectorFile`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardFile {
    /// The shard's name in sequencer calls (its URL prefix), e.g. `dev`.
    pub name: String,
    /// The log's public key: an OpenSSH public key file (`log.key.pub`).
    pub log_key: PathBuf,
    /// The shard's Sigsum policy file: its `witness` lines with URLs are
    /// the witnesses asked, its `quorum` decides when to publish.
    pub policy: PathBuf,
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
    /// Milliseconds between polls of the sequencer. Default 250.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Limit on one witness request in milliseconds. Default 5000.
    #[serde(default = "default_witness_timeout_ms")]
    pub witness_timeout_ms: u64,
    /// Milliseconds to keep collecting after the quorum holds, so heads
    /// carry more than the minimum of cosignatures. Default 0.
    #[serde(default)]
    pub extra_wait_ms: u64,
    /// Seconds after which the published head, if no larger one is signed
    /// (an idle or frozen log), is cosigned again and re-published with the
    /// witnesses' fresh cosignatures. Default 300.
    #[serde(default = "default_recosign_interval_s")]
    pub recosign_interval_s: u64,
    /// Publish heads without the policy quorum (counted in
    /// `cairn_collector_published_without_quorum_total`). Default false:
    /// no quorum, no publication.
    #[serde(default)]
    pub fail_open: bool,
    /// A PEM file of root certificates trusted for the policy's `https`
    /// witnesses and bastions in addition to the system's roots (a private
    /// CA, a self-signed bastion). Optional.
    pub witness_roots: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6967))
}

fn default_poll_interval_ms() -> u64 {
    u64::try_from(DEFAULT_POLL_INTERVAL.as_millis()).unwrap_or(u64::MAX)
}

fn default_recosign_interval_s() -> u64 {
    DEFAULT_RECOSIGN_INTERVAL.as_secs()
}

fn default_witness_timeout_ms() -> u64 {
    u64::try_from(DEFAULT_WITNESS_TIMEOUT.as_millis()).unwrap_or(u64::MAX)
}

/// A shard ready to run: its files read and checked.
struct Prepared {
    config: CollectorConfig,
    policy: Policy,
    log_key: PublicKey,
    tiles: TileStore,
}

impl CollectorFile {
    /// Parses and checks a configuration file's text.
    pub fn parse(text: &str) -> anyhow::Result<CollectorFile> {
        let mut file: CollectorFile = toml::from_str(text)?;
        match (file.sequencer.take(), file.sequencers.is_empty()) {
            (Some(_), false) => {
                bail!("both `sequencer` and `sequencers` are set; give the list `sequencers` only")
            }
            (None, true) => {
                bail!("no sequencer: set `sequencers = [\"http://HOST:PORT\", ...]`")
            }
            (Some(one), true) => file.sequencers = vec![one],
            (None, false) => {}
        }
        if file.sequencers.len() > MAX_SEQUENCERS {
            bail!(
                "{} sequencers; the limit is {MAX_SEQUENCERS}",
                file.sequencers.len()
            );
        }
        let mut urls = std::collections::HashSet::new();
        for url in &file.sequencers {
            SequencerPool::check_url(url).context("sequencers")?;
            if !urls.insert(url.trim_end_matches('/')) {
                bail!("sequencer URL {url:?} is listed twice");
            }
        }
        if file.shards.is_empty() && file.registry.is_none() {
            bail!("no [[shard]]: a collector needs at least one shard, or [registry]");
        }
        if let Some(r) = &file.registry {
            r.check()?;
        }
        if file.shards.len() > MAX_SHARDS {
            bail!("{} shards; the limit is {MAX_SHARDS}", file.shards.len());
        }
        let mut names = std::collections::HashSet::new();
        for s in &file.shards {
            if !names.insert(s.name.as_str()) {
                bail!("shard {:?} is configured twice", s.name);
            }
            crate::files::check_store_choice(
                &s.name,
                s.tiles.as_deref(),
                s.object_store.as_deref(),
            )?;
            for (field, v) in [
                ("poll_interval_ms", s.poll_interval_ms),
                ("witness_timeout_ms", s.witness_timeout_ms),
                ("recosign_interval_s", s.recosign_interval_s),
            ] {
                if v == 0 {
                    bail!("shard {:?}: {field} must be positive", s.name);
                }
            }
        }
        Ok(file)
    }

    /// Reads every shard's key, policy and tile store.
    fn prepare(
        self,
        base: &Path,
        store_metrics: &cairn_storage::StoreMetrics,
    ) -> anyhow::Result<(SocketAddr, Vec<String>, Vec<Prepared>)> {
        let mut shards = Vec::with_capacity(self.shards.len());
        for s in self.shards {
            let context = || format!("shard {:?}", s.name);
            let key_text = read_limited(&base.join(&s.log_key)).with_context(context)?;
            let keys = cairn_sigsum::key::parse_public_key_file(&key_text)
                .with_context(|| format!("log_key {}", s.log_key.display()))
                .with_context(context)?;
            let [(log_key, _)] = keys.as_slice() else {
                bail!(
                    "shard {:?}: log_key {} must hold exactly one key",
                    s.name,
                    s.log_key.display()
                );
            };
            let policy_text = read_limited(&base.join(&s.policy)).with_context(context)?;
            let policy = Policy::parse(&policy_text)
                .with_context(|| format!("policy {}", s.policy.display()))
                .with_context(context)?;
            let tiles = crate::files::shard_tile_store(
                base,
                &s.name,
                s.tiles.as_deref(),
                s.object_store.as_deref(),
                crate::files::Access::Reads,
                store_metrics,
            )
            .with_context(context)?;
            let mut config = CollectorConfig::new(s.name.clone());
            config.poll_interval = Duration::from_millis(s.poll_interval_ms);
            config.witness_timeout = Duration::from_millis(s.witness_timeout_ms);
            config.extra_wait = Duration::from_millis(s.extra_wait_ms);
            config.recosign_interval = Duration::from_secs(s.recosign_interval_s);
            config.fail_open = s.fail_open;
            if let Some(roots) = &s.witness_roots {
                config.witness_roots = read_limited(&base.join(roots))
                    .with_context(|| format!("witness_roots {}", roots.display()))
                    .with_context(context)?;
                config
                    .witness_trust()
                    .with_context(|| format!("witness_roots {}", roots.display()))
                    .with_context(context)?;
            }
            shards.push(Prepared {
                config,
                policy,
                log_key: *log_key,
                tiles,
            });
        }
        Ok((self.listen, self.sequencers, shards))
    }
}

/// Runs the collectors configured in `config_path` until Ctrl-C or SIGTERM.
pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let text = read_limited(&config_path)?;
    let text = String::from_utf8(text)
        .with_context(|| format!("{} is not UTF-8", config_path.display()))?;
    let file = CollectorFile::parse(&text)
        .with_context(|| format!("collector configuration {}", config_path.display()))?;
    let base = config_path.parent().unwrap_or(Path::new("."));
    let store_metrics = cairn_storage::StoreMetrics::new();
    let follow = file.registry.clone();
    let (listen, sequencer_urls, shards) = file
        .prepare(base, &store_metrics)
        .with_context(|| format!("collector configuration {}", config_path.display()))?;

    let http = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let sequencer =
        SequencerPool::new(sequencer_urls.clone(), PoolOptions::default()).context("sequencers")?;
    let mut collectors = Vec::with_capacity(shards.len());
    let mut tile_stores = Vec::with_capacity(shards.len());
    for p in shards {
        let shard = p.config.shard.clone();
        tile_stores.push((shard.clone(), p.tiles.clone()));
        let c = Collector::new(p.config, p.policy, p.log_key, sequencer.clone(), p.tiles)
            .with_context(|| format!("shard {shard:?}"))?;
        collectors.push(Arc::new(c));
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = collectors
        .iter()
        .map(|c| {
            let c = Arc::clone(c);
            let stop = stopped(stop_rx.clone());
            tokio::spawn(async move { c.run(stop).await })
        })
        .collect();
    if let Some(follow) = follow {
        let mut follower = RegistryCollectors {
            base: base.to_path_buf(),
            follow: follow.clone(),
            sequencer: sequencer.clone(),
            configured: collectors.iter().map(|c| c.shard().to_owned()).collect(),
            running: Default::default(),
            stop: stop_rx.clone(),
            store_metrics: cairn_storage::StoreMetrics::new(),
        };
        tokio::spawn(crate::registry_follow::follow(
            sequencer_urls.clone(),
            Duration::from_millis(follow.poll_interval_ms),
            stop_rx.clone(),
            move |records| follower.apply(records),
        ));
    }
    let http_server =
        cairn_http::Server::new(cairn_http::HttpConfig::default()).context("HTTP limits")?;
    let app = ops::router(ops::Ops {
        frontend: None,
        data_dir: None,
        shards: Vec::new(),
        sequencer: None,
        collectors: collectors.clone(),
        http: Some(http_server.stats().clone()),
        tile_stores,
        store_metrics,
    });
    let serve_task = tokio::spawn(http_server.serve(http, app, stopped(stop_rx.clone())));
    tracing::info!(
        %listen,
        sequencers = %sequencer_urls.join(","),
        shards = collectors.len(),
        "cairnd collector running"
    );

    wait_for_signal().await;
    tracing::info!("shutting down");
    stop_tx.send_replace(true);
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "collector task failed");
        }
    }
    // Bounded by the listener's shutdown grace.
    serve_task.await.context("operator listener task")?;
    Ok(())
}

/// Collects for the registry's shards in a running collector.
struct RegistryCollectors {
    base: PathBuf,
    follow: crate::registry_follow::FollowFile,
    sequencer: SequencerPool,
    /// Shards of the configuration file: never touched.
    configured: std::collections::HashSet<String>,
    /// Per registry shard: the stop flag of its collector task.
    running: std::collections::HashMap<String, watch::Sender<bool>>,
    stop: watch::Receiver<bool>,
    store_metrics: cairn_storage::StoreMetrics,
}

impl RegistryCollectors {
    fn apply(
        &mut self,
        records: &std::collections::BTreeMap<String, cairn_proto::v1::ShardRecord>,
    ) {
        for (name, record) in records {
            if self.configured.contains(name) {
                continue;
            }
            let retired = record.state == "retired";
            if retired {
                if let Some(stop) = self.running.remove(name) {
                    stop.send_replace(true);
                    tracing::info!(shard = %name, "the shard is retired: no longer collecting");
                }
            } else if !self.running.contains_key(name) {
                match self.collector(record) {
                    Ok(c) => {
                        let (tx, rx) = watch::channel(false);
                        let all = self.stop.clone();
                        tokio::spawn(async move {
                            c.run(async move {
                                tokio::select! {
                                    () = stopped(all) => {}
                                    () = stopped(rx) => {}
                                }
                            })
                            .await
                        });
                        self.running.insert(name.clone(), tx);
                        tracing::info!(shard = %name, "collecting for a new shard of the registry");
                    }
                    Err(e) => {
                        tracing::error!(shard = %name, error = format!("{e:#}"), "cannot collect for the registry's shard")
                    }
                }
            }
        }
    }

    fn collector(&self, record: &cairn_proto::v1::ShardRecord) -> anyhow::Result<Collector> {
        let policy = Policy::parse(record.policy.as_bytes()).context("the record's policy")?;
        let tiles = crate::files::shard_tile_store(
            &self.base,
            &record.prefix,
            self.follow.tiles.as_deref(),
            self.follow.object_store.as_deref(),
            crate::files::Access::Reads,
            &self.store_metrics,
        )?;
        let log_key = crate::registry_follow::log_key(record)?;
        Ok(Collector::new(
            CollectorConfig::new(record.name.clone()),
            policy,
            log_key,
            self.sequencer.clone(),
            tiles,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
sequencer = "http://127.0.0.1:1"
[[shard]]
name = "dev"
log_key = "log.key.pub"
policy = "policy"
tiles = "tiles"
"#;

    #[test]
    fn minimal_config_takes_the_documented_defaults() {
        let f = CollectorFile::parse(MINIMAL).unwrap();
        assert_eq!(f.listen, default_listen());
        let s = &f.shards[0];
        assert_eq!(s.poll_interval_ms, 250);
        assert_eq!(s.witness_timeout_ms, 5000);
        assert_eq!(s.extra_wait_ms, 0);
        assert!(!s.fail_open);
        assert_eq!(s.witness_roots, None);
    }

    #[test]
    fn unknown_keys_duplicates_and_zero_intervals_are_refused() {
        let unknown = MINIMAL.replace("tiles = \"tiles\"", "tiles = \"t\"\nfail_closed = true");
        let e = CollectorFile::parse(&unknown).unwrap_err().to_string();
        assert!(e.contains("fail_closed"), "{e}");
        let twice = format!(
            "{MINIMAL}{}",
            &MINIMAL[MINIMAL.find("[[shard]]").unwrap()..]
        );
        let e = CollectorFile::parse(&twice).unwrap_err().to_string();
        assert!(e.contains("configured twice"), "{e}");
        let zero = format!("{MINIMAL}witness_timeout_ms = 0\n");
        let e = CollectorFile::parse(&zero).unwrap_err().to_string();
        assert!(e.contains("witness_timeout_ms must be positive"), "{e}");
        let none = "sequencer = \"http://x\"\nshard = []\n";
        let e = CollectorFile::parse(none).unwrap_err().to_string();
        assert!(e.contains("at least one shard"), "{e}");
    }

    #[test]
    fn one_sequencer_or_a_list_of_them_is_accepted() {
        let f = CollectorFile::parse(MINIMAL).unwrap();
        assert_eq!(f.sequencers, ["http://127.0.0.1:1"]);
        let list = MINIMAL.replace(
            "sequencer = \"http://127.0.0.1:1\"",
            "sequencers = [\"http://10.0.0.1:6970\", \"http://10.0.0.2:6970/\"]",
        );
        let f = CollectorFile::parse(&list).unwrap();
        assert_eq!(
            f.sequencers,
            ["http://10.0.0.1:6970", "http://10.0.0.2:6970/"]
        );
    }

    #[test]
    fn sequencer_lists_that_are_missing_doubled_too_long_or_malformed_are_refused() {
        let shard = &MINIMAL[MINIMAL.find("[[shard]]").unwrap()..];
        let with = |head: &str| format!("{head}\n{shard}");
        let cases = [
            (with(""), "no sequencer"),
            (with("sequencers = []"), "no sequencer"),
            (
                with("sequencer = \"http://a:1\"\nsequencers = [\"http://b:1\"]"),
                "both",
            ),
            (
                with("sequencers = [\"http://a:1\", \"http://a:1/\"]"),
                "listed twice",
            ),
            (with("sequencers = [\"a:1\"]"), "\"a:1\""),
            (with("sequencer = \"https://a:1\""), "https://a:1"),
        ];
        for (text, expected) in cases {
            let e = format!("{:#}", CollectorFile::parse(&text).unwrap_err());
            assert!(e.contains(expected), "{text}: {e}");
        }
        let many: Vec<String> = (1..=17).map(|i| format!("\"http://a:{i}\"")).collect();
        let text = with(&format!("sequencers = [{}]", many.join(", ")));
        let e = CollectorFile::parse(&text).unwrap_err().to_string();
        assert!(e.contains("17 sequencers"), "{e}");
    }

    #[test]
    fn missing_files_name_the_shard_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = CollectorFile::parse(MINIMAL).unwrap();
        let e = format!(
            "{:#}",
            f.prepare(dir.path(), &cairn_storage::StoreMetrics::default())
                .err()
                .unwrap()
        );
        assert!(e.contains("shard \"dev\""), "{e}");
        assert!(e.contains("log.key.pub"), "{e}");
    }

    #[test]
    fn witness_roots_that_are_no_certificates_are_refused_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let key = cairn_sigsum::SigningKey::from_seed(&[1; 32]).public_key();
        std::fs::write(
            dir.path().join("log.key.pub"),
            cairn_sigsum::key::format_public_key_file(&key),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("policy"),
            format!("log {} http://127.0.0.1:1/dev\nquorum none\n", key.to_hex()),
        )
        .unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let text = format!("{MINIMAL}witness_roots = \"ca.pem\"\n");
        let f = CollectorFile::parse(&text).unwrap();
        assert_eq!(f.shards[0].witness_roots, Some(PathBuf::from("ca.pem")));
        let e = format!(
            "{:#}",
            f.prepare(dir.path(), &cairn_storage::StoreMetrics::default())
                .err()
                .unwrap()
        );
        assert!(e.contains("shard \"dev\""), "{e}");
        assert!(e.contains("witness_roots ca.pem"), "{e}");
        assert!(e.contains("no CERTIFICATE"), "{e}");
    }
}
