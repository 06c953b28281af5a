//! `cairnd dev`: a whole Sigsum log in one process, on local disk.
//!
//! The real architecture at size one (docs/decisions/0002-dev-slice.md): a
//! single-voter openraft group on RocksDB, tiles in a `LocalFileSystem` object
//! store (or, with `--object-store FILE`, wherever that file says, e.g. an S3
//! bucket), the frontend and the collector talking to the sequencer over real
//! gRPC on loopback, and an embedded witness that the collector reaches over
//! HTTP like any other witness (on a loopback listener of its own, out of
//! reach of the public listener's connection caps).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_client::token::TokenVerifier;
use cairn_collector::{Collector, CollectorConfig};
use cairn_frontend::{FrontendConfig, ShardFrontend, ShardLimits};
use cairn_proto::{PoolOptions, SequencerPool};
use cairn_sequencer::RaftTransportService;
use cairn_sequencer::service::{SequencerService, grpc_router};
use cairn_sequencer::shard::{Shard, ShardConfig};
use cairn_sigsum::SigningKey;
use cairn_sigsum::policy::Policy;
use cairn_storage::{ObjectStoreConfig, StoreMetrics, TileStore, TileStoreOptions};
use cairn_witness::{Witness, WitnessConfig, WitnessState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::files::{load_or_generate_key, read_private_key, write_atomic};
use crate::ops;
use crate::shutdown::{stopped, wait_for_signal};

/// The dev shard's name: its URL prefix, Raft group and object prefix.
pub const SHARD: &str = "dev";

/// Version of the DIR layout this binary reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

/// The embedded witness's signed-note key name and policy name.
pub const WITNESS_NAME: &str = "cairn.dev/witness";
const WITNESS_POLICY_NAME: &str = "cairn-dev-witness";

const MARKER: &str = "cairn-dev.toml";
const LOG_KEY: &str = "log.key";
const WITNESS_KEY: &str = "witness.key";
const POLICY: &str = "policy";

/// Connections one client address may hold open on the dev listener: the
/// log's own tools (`cairn submit`, load tests) run on the same machine and
/// open one HTTP/1.1 connection per request in flight. The other limits are
/// `cairn_http`'s defaults (slow headers and bodies cut off, 408).
pub(crate) const DEV_MAX_CONNECTIONS_PER_IP: usize = 256;

/// `DIR/cairn-dev.toml`: what this directory holds, so a start against the
/// wrong directory or an incompatible layout fails before touching anything.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Marker {
    /// Layout version ([`LAYOUT_VERSION`] when written by this binary).
    layout_version: u32,
    /// Shard name ([`SHARD`]).
    shard: String,
    /// Hex key hash of the log key this directory's tree is signed with.
    log_key_hash: String,
    /// Hex key hash of the embedded witness's key.
    witness_key_hash: String,
}

/// A prepared data directory.
#[derive(Debug)]
pub struct DevDir {
    log_key: SigningKey,
    witness_key: SigningKey,
}

impl DevDir {
    /// Opens `root`, creating it with fresh keys on first use. Refuses a
    /// directory holding another log's state or another layout version.
    pub fn prepare(root: &Path) -> anyhow::Result<DevDir> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating data directory {}", root.display()))?;
        let marker_path = root.join(MARKER);
        if marker_path.exists() {
            return Self::open_existing(root, &marker_path);
        }
        for stale in ["raft", "tiles", "witness"] {
            if root.join(stale).exists() {
                bail!(
                    "{} holds Cairn state ({stale}/) but no {MARKER}: refusing to guess which \
                     log it belongs to; use an empty directory",
                    root.display()
                );
            }
        }
        let log_key = load_or_generate_key(&root.join(LOG_KEY))?;
        let witness_key = load_or_generate_key(&root.join(WITNESS_KEY))?;
        if log_key.public_key() == witness_key.public_key() {
            bail!("the log and the witness must not share a key");
        }
        let marker = Marker {
            layout_version: LAYOUT_VERSION,
            shard: SHARD.to_owned(),
            log_key_hash: log_key.public_key().key_hash().to_hex(),
            witness_key_hash: witness_key.public_key().key_hash().to_hex(),
        };
        // Written last: a directory with a marker is complete.
        write_atomic(&marker_path, toml::to_string(&marker)?.as_bytes(), 0o644)?;
        Ok(DevDir {
            log_key,
            witness_key,
        })
    }

    fn open_existing(root: &Path, marker_path: &Path) -> anyhow::Result<DevDir> {
        let text = std::fs::read_to_string(marker_path)
            .with_context(|| format!("reading {}", marker_path.display()))?;
        let marker: Marker = toml::from_str(&text)
            .with_context(|| format!("{} is not a Cairn dev marker", marker_path.display()))?;
        if marker.layout_version != LAYOUT_VERSION {
            bail!(
                "{} holds layout version {}, this cairnd reads version {LAYOUT_VERSION}",
                root.display(),
                marker.layout_version
            );
        }
        if marker.shard != SHARD {
            bail!(
                "{} holds shard {:?}, not {SHARD:?}",
                root.display(),
                marker.shard
            );
        }
        let log_key = read_private_key(&root.join(LOG_KEY))?;
        let witness_key = read_private_key(&root.join(WITNESS_KEY))?;
        let found = log_key.public_key().key_hash().to_hex();
        if found != marker.log_key_hash {
            bail!(
                "{} belongs to the log with key hash {}, but {LOG_KEY} has key hash {found}: \
                 refusing to sign another log's tree",
                root.display(),
                marker.log_key_hash
            );
        }
        let found = witness_key.public_key().key_hash().to_hex();
        if found != marker.witness_key_hash {
            bail!(
                "{}: {WITNESS_KEY} has key hash {found}, the directory was made with {}",
                root.display(),
                marker.witness_key_hash
            );
        }
        Ok(DevDir {
            log_key,
            witness_key,
        })
    }

    /// The log's public key.
    pub fn log_public_key(&self) -> cairn_sigsum::PublicKey {
        self.log_key.public_key()
    }

    /// The embedded (or, in a local cluster, the standalone) witness's
    /// public key.
    pub fn witness_public_key(&self) -> cairn_sigsum::PublicKey {
        self.witness_key.public_key()
    }

    /// The policy file for a log served at `listen`: the log with its base
    /// URL, then either the embedded witness and a quorum of it or, with
    /// `witnesses`, the operator's witness, group and quorum lines (see
    /// [`read_witness_lines`]), plus the embedded witness's line if they
    /// name it.
    pub fn policy_text(&self, listen: SocketAddr, witnesses: Option<&str>) -> String {
        self.policy_text_with_witness_at(listen, listen, witnesses)
    }

    /// [`policy_text`](Self::policy_text) with the embedded witness served
    /// at `witness_at` rather than beside the log.
    fn policy_text_with_witness_at(
        &self,
        listen: SocketAddr,
        witness_at: SocketAddr,
        witnesses: Option<&str>,
    ) -> String {
        let log = format!(
            "# Sigsum policy for the cairnd dev log (written by cairnd at every start).\n\
             log {} {}\n",
            self.log_key.public_key().to_hex(),
            base_url(listen).trim_end_matches('/'),
        );
        let embedded = format!(
            "witness {WITNESS_POLICY_NAME} {} http://{witness_at}/witness\n",
            self.witness_key.public_key().to_hex(),
        );
        match witnesses {
            None => format!("{log}{embedded}quorum {WITNESS_POLICY_NAME}\n"),
            Some(lines) => {
                let names_embedded = lines
                    .split_ascii_whitespace()
                    .any(|word| word == WITNESS_POLICY_NAME);
                let embedded = if names_embedded {
                    embedded.as_str()
                } else {
                    ""
                };
                format!("{log}{embedded}# From the --witnesses file:\n{lines}")
            }
        }
    }
}

/// Reads the `--witnesses` file: Sigsum policy lines naming witnesses (with
/// their URLs), groups and exactly one quorum. `log` lines are refused (the
/// dev log is the only log), as is a file that does not make a valid policy
/// together with the dev log's own lines. Returns the text, ending in a
/// newline.
pub fn read_witness_lines(path: &Path) -> anyhow::Result<String> {
    const MAX_BYTES: u64 = 64 * 1024;
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading witnesses file {}", path.display()))?
        .len();
    if len > MAX_BYTES {
        bail!(
            "witnesses file {} is {len} bytes; the limit is {MAX_BYTES}",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading witnesses file {}", path.display()))?;
    let mut quorum_lines = 0;
    for (n, line) in text.lines().enumerate() {
        match line.split_ascii_whitespace().next() {
            Some("log") => bail!(
                "{}:{}: a witnesses file has no log lines (the dev log adds its own)",
                path.display(),
                n + 1
            ),
            Some("quorum") => quorum_lines += 1,
            _ => {}
        }
    }
    if quorum_lines != 1 {
        bail!(
            "{}: needs exactly one quorum line (found {quorum_lines}); it may name \
             {WITNESS_POLICY_NAME}, the embedded witness",
            path.display()
        );
    }
    let mut text = text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The dev shard's Sigsum base URL.
pub fn base_url(listen: SocketAddr) -> String {
    format!("http://{listen}/{SHARD}/")
}

/// How `cairnd dev` was started (see its `--help`).
#[derive(Debug)]
pub struct DevOptions {
    /// The data directory.
    pub root: PathBuf,
    /// The HTTP listener.
    pub listen: SocketAddr,
    /// The `--witnesses` file, if any.
    pub witnesses: Option<PathBuf>,
    /// The sequencer's gRPC listener; `None`: an ephemeral loopback port.
    pub grpc_listen: Option<SocketAddr>,
    /// Leave publishing to a `cairnd collector`.
    pub external_collector: bool,
    /// Whether and how submit tokens are verified.
    pub tokens: TokenChecks,
    /// The `--object-store` file (TOML of a
    /// [`cairn_storage::ObjectStoreConfig`]); `None`: tiles in `DIR/tiles`.
    pub object_store: Option<PathBuf>,
    /// How long superseded partial tiles are kept; `None`: forever.
    pub partial_tile_grace: Option<Duration>,
}

/// Reads the `--object-store` file: TOML of a
/// [`cairn_storage::ObjectStoreConfig`] (`[local]` or `[s3]`, unknown keys
/// are errors), with relative paths in it (a local `dir`, credential and
/// roots files)
/// taken relative to the file's directory, as in the roles' config files.
pub fn read_object_store(path: &Path) -> anyhow::Result<ObjectStoreConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the object store file {}", path.display()))?;
    let config: ObjectStoreConfig = toml::from_str(&text)
        .with_context(|| format!("the object store file {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    Ok(match config {
        ObjectStoreConfig::Local { mut dir } => {
            resolve(&mut dir);
            ObjectStoreConfig::Local { dir }
        }
        ObjectStoreConfig::S3(mut s3) => {
            for file in [
                &mut s3.access_key_id_file,
                &mut s3.secret_access_key_file,
                &mut s3.roots,
            ]
            .into_iter()
            .flatten()
            {
                resolve(file);
            }
            ObjectStoreConfig::S3(s3)
        }
        ObjectStoreConfig::Http(mut http) => {
            if let Some(roots) = &mut http.roots {
                resolve(roots);
            }
            ObjectStoreConfig::Http(http)
        }
    })
}

/// Refuses a read-only store (`[http]`) for a role that writes the shard's
/// tiles and checkpoint, naming the file and what to use instead.
pub fn require_writable(config: &ObjectStoreConfig, file: &Path) -> anyhow::Result<()> {
    if matches!(config, ObjectStoreConfig::Http(_)) {
        anyhow::bail!(
            "{}: an [http] tile URL is read-only, but this role writes the tiles; use [local] or [s3]",
            file.display()
        );
    }
    Ok(())
}

/// How the frontend treats `sigsum-token` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenChecks {
    /// Parsed only: a well-formed token is accepted unchecked.
    Off,
    /// Verified against DNS through the system resolver.
    SystemResolver,
    /// Verified against DNS through this name server.
    NameServer(SocketAddr),
}

/// Runs the dev log until Ctrl-C or SIGTERM.
pub async fn run(options: DevOptions) -> anyhow::Result<()> {
    let DevOptions {
        root,
        listen,
        witnesses,
        grpc_listen,
        external_collector,
        tokens,
        object_store,
        partial_tile_grace,
    } = options;
    let object_store = match object_store {
        None => None,
        Some(file) => {
            let config = read_object_store(&file)?;
            require_writable(&config, &file)?;
            Some(config)
        }
    };
    let token_verifier = match tokens {
        TokenChecks::Off => None,
        TokenChecks::SystemResolver => Some(TokenVerifier::from_system_config()),
        TokenChecks::NameServer(addr) => Some(TokenVerifier::with_name_server(addr)),
    }
    .transpose()
    .context("setting up submit-token verification")?
    .map(Arc::new);
    let witness_lines = witnesses.as_deref().map(read_witness_lines).transpose()?;
    let dir = DevDir::prepare(&root)?;
    let policy_text = dir.policy_text(listen, witness_lines.as_deref());
    let policy = Policy::parse(policy_text.as_bytes()).with_context(|| match &witnesses {
        Some(p) => format!("the policy made with the witnesses file {}", p.display()),
        None => "the generated policy".to_owned(),
    })?;
    write_atomic(&root.join(POLICY), policy_text.as_bytes(), 0o644)?;

    // Bind first: a busy port should fail before any state is opened.
    let http = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let grpc_listen = grpc_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let grpc = tokio::net::TcpListener::bind(grpc_listen)
        .await
        .with_context(|| format!("listening on {grpc_listen} (gRPC)"))?;
    let grpc_addr = grpc.local_addr()?;
    // The collector reaches the embedded witness through a loopback
    // listener of its own. Through the public one, clients holding all of
    // its connections (a load test on this machine does) would cut the log
    // off from its witness, and nothing would be published until they let go.
    let witness_http = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("listening on loopback for the collector's witness requests")?;
    let witness_addr = witness_http.local_addr()?;
    let collector_policy = Policy::parse(
        dir.policy_text_with_witness_at(listen, witness_addr, witness_lines.as_deref())
            .as_bytes(),
    )
    .context("the collector's policy")?;
    let witness_server =
        cairn_http::Server::new(cairn_http::HttpConfig::default()).context("HTTP limits")?;
    let http_server = cairn_http::Server::new(cairn_http::HttpConfig {
        max_connections_per_ip: DEV_MAX_CONNECTIONS_PER_IP,
        ..cairn_http::HttpConfig::default()
    })
    .context("HTTP limits")?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let store_metrics = StoreMetrics::new();
    let options = TileStoreOptions {
        metrics: store_metrics.for_shard(SHARD),
        ..TileStoreOptions::default()
    };
    let tiles = match &object_store {
        None => TileStore::local_with_options(&root.join("tiles"), SHARD, options),
        Some(config) => TileStore::open(config, SHARD, options),
    }
    .context("opening the tile store")?;
    let transport = RaftTransportService::new();
    let mut config = ShardConfig::new(
        SHARD,
        1,
        root.join("raft").join(SHARD),
        dir.log_key.clone(),
        tiles.clone(),
        format!("http://{grpc_addr}"),
    );
    // Every witness of the policy: the signer writes their cosignatures
    // into the published checkpoint note.
    config.witnesses = policy.witnesses().iter().map(|w| *w.key()).collect();
    config.transport = Some(transport.clone());
    // Beside, not inside, the Raft directory: restoring an old copy of
    // `raft/` must not bring an old record back with it.
    config.signed_record = root.join(format!("{SHARD}.signed-head"));
    config.integrator.partial_tile_grace = partial_tile_grace;
    let shard = Arc::new(
        Shard::start(config)
            .await
            .context("starting the sequencer")?,
    );

    let grpc_server = crate::sequencer::spawn_grpc(
        grpc_router(
            SequencerService::new([shard.clone()]),
            transport,
            stop_rx.clone(),
        ),
        grpc,
        stop_rx.clone(),
    );
    // One node: the pool has no other to move to, but keeps the same
    // retry-until-deadline behaviour as a Raft group's clients.
    let sequencer = SequencerPool::new([format!("http://{grpc_addr}")], PoolOptions::default())
        .context("the sequencer client")?;

    let witness = Arc::new(Witness::with_system_clock(
        WitnessConfig::for_sigsum_logs(
            WITNESS_NAME,
            dir.witness_key.clone(),
            [&dir.log_key.public_key()],
        ),
        WitnessState::open(root.join("witness")).context("opening the witness state")?,
    )?);

    let (frontend, frontend_handle) = cairn_frontend::router_with_handle(
        vec![ShardFrontend {
            name: SHARD.to_owned(),
            log_key: dir.log_key.public_key(),
            sequencer: sequencer.clone(),
            tiles: tiles.clone(),
            limits: ShardLimits::default(),
        }],
        FrontendConfig {
            public_base_url: Some(format!("http://{listen}")),
            token_verifier,
            request_spans: crate::telemetry::request_spans(),
            ..FrontendConfig::default()
        },
    )?;
    let collector = if external_collector {
        None
    } else {
        Some(Arc::new(
            Collector::new(
                CollectorConfig::new(SHARD),
                collector_policy,
                dir.log_key.public_key(),
                sequencer,
                tiles.clone(),
            )
            .context("starting the collector")?,
        ))
    };
    let app = axum::Router::new()
        .nest("/witness", cairn_witness::router(Arc::clone(&witness)))
        .merge(ops::router(ops::Ops {
            frontend: Some(frontend_handle),
            data_dir: Some(root.clone()),
            shards: vec![shard.clone()],
            sequencer: None,
            collectors: collector.iter().cloned().collect(),
            http: Some(http_server.stats().clone()),
            // One store, shared by the frontend and the collector.
            tile_stores: vec![(SHARD.to_owned(), tiles)],
            store_metrics,
        }))
        .merge(frontend);

    let collector_task = collector.map(|collector| {
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { collector.run(stop).await })
    });

    println!("cairnd dev: a Sigsum log with an embedded witness");
    println!("  data directory: {}", root.display());
    println!("  log base URL:   {}", base_url(listen));
    println!("  log key hash:   {}", dir.log_key.public_key().key_hash());
    println!("  policy file:    {}", root.join(POLICY).display());
    println!("  sequencer gRPC: http://{grpc_addr}");
    if external_collector {
        println!("  publishing:     by an external `cairnd collector`");
    }
    println!();
    print!("{policy_text}");
    println!();

    let serve_task = tokio::spawn(http_server.serve(http, app, stopped(stop_rx.clone())));
    let witness_task = tokio::spawn(witness_server.serve(
        witness_http,
        axum::Router::new().nest("/witness", cairn_witness::router(witness)),
        stopped(stop_rx.clone()),
    ));

    let fatal = tokio::select! {
        () = wait_for_signal() => None,
        reason = shard.raft_core_stopped() => Some(reason),
    };
    if let Some(reason) = &fatal {
        tracing::error!("stopping: the Raft core stopped ({reason}); fix the cause and restart");
    }
    tracing::info!("shutting down: no new requests; acknowledged leaves are in the Raft log");
    stop_tx.send_replace(true);
    // Bounded by the listener's shutdown grace.
    serve_task.await.context("HTTP server task")?;
    witness_task.await.context("witness HTTP server task")?;
    if let Some(task) = collector_task
        && let Err(e) = task.await
    {
        tracing::error!(error = %e, "collector task failed");
    }
    shard.shutdown().await;
    grpc_server.await?.context("gRPC server")?;
    match fatal {
        // Non-zero, so that a supervisor restarts the node.
        Some(reason) => bail!("the Raft core stopped: {reason}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_directory_gets_keys_marker_and_a_parseable_policy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DevDir::prepare(tmp.path()).unwrap();
        for f in [
            MARKER,
            LOG_KEY,
            "log.key.pub",
            WITNESS_KEY,
            "witness.key.pub",
        ] {
            assert!(tmp.path().join(f).exists(), "{f} missing");
        }
        let text = dir.policy_text("127.0.0.1:6965".parse().unwrap(), None);
        let policy = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(policy.logs().len(), 1);
        assert!(text.contains("http://127.0.0.1:6965/dev\n"));
        assert!(text.contains("http://127.0.0.1:6965/witness\n"));
    }

    #[test]
    fn reopening_reuses_the_same_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let a = DevDir::prepare(tmp.path()).unwrap();
        let b = DevDir::prepare(tmp.path()).unwrap();
        assert_eq!(a.log_key.public_key(), b.log_key.public_key());
        assert_eq!(a.witness_key.public_key(), b.witness_key.public_key());
    }

    #[test]
    fn a_directory_of_another_log_key_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        DevDir::prepare(tmp.path()).unwrap();
        std::fs::remove_file(tmp.path().join(LOG_KEY)).unwrap();
        load_or_generate_key(&tmp.path().join(LOG_KEY)).unwrap();
        let err = DevDir::prepare(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("refusing to sign another log's tree"), "{err}");
    }

    #[test]
    fn another_layout_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        DevDir::prepare(tmp.path()).unwrap();
        let marker = tmp.path().join(MARKER);
        let text = std::fs::read_to_string(&marker)
            .unwrap()
            .replace("layout_version = 1", "layout_version = 99");
        std::fs::write(&marker, text).unwrap();
        let err = DevDir::prepare(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("layout version 99"), "{err}");
    }

    #[test]
    fn state_without_a_marker_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("raft")).unwrap();
        let err = DevDir::prepare(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("no cairn-dev.toml"), "{err}");
    }

    #[test]
    fn witnesses_file_lines_replace_the_default_quorum() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DevDir::prepare(&tmp.path().join("d")).unwrap();
        let file = tmp.path().join("witnesses");
        let (a, b) = ("aa".repeat(32), "bb".repeat(32));
        std::fs::write(
            &file,
            format!(
                "witness w1 {a} http://127.0.0.1:1/\nwitness w2 {b} https://example.org/w\n\
                 group two 2 w1 w2 {WITNESS_POLICY_NAME}\nquorum two"
            ),
        )
        .unwrap();
        let lines = read_witness_lines(&file).unwrap();
        let text = dir.policy_text("127.0.0.1:6965".parse().unwrap(), Some(&lines));
        let policy = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(policy.witnesses().len(), 3);
        assert_eq!(text.matches("quorum").count(), 1);
        assert!(text.ends_with("quorum two\n"), "{text}");

        // Without a mention, the embedded witness is not in the policy.
        let lines = lines
            .replace(&format!(" {WITNESS_POLICY_NAME}"), "")
            .replace(" 2 ", " 1 ");
        let text = dir.policy_text("127.0.0.1:6965".parse().unwrap(), Some(&lines));
        let policy = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(policy.witnesses().len(), 2, "{text}");
    }

    #[test]
    fn witnesses_files_with_log_lines_or_without_one_quorum_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("witnesses");
        let key = "aa".repeat(32);
        for (body, expect) in [
            (format!("log {key}\nquorum none\n"), "no log lines"),
            (format!("witness w {key} http://x/\n"), "exactly one quorum"),
            (
                "quorum none\nquorum none\n".to_owned(),
                "exactly one quorum",
            ),
        ] {
            std::fs::write(&file, body).unwrap();
            let err = format!("{:#}", read_witness_lines(&file).unwrap_err());
            assert!(err.contains(expect), "{err}");
        }
        let missing = format!(
            "{:#}",
            read_witness_lines(&tmp.path().join("nope")).unwrap_err()
        );
        assert!(missing.contains("reading witnesses file"), "{missing}");
    }
}
