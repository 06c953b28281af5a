//! `cairnd witness --config FILE`: a standalone C2SP tlog-witness.
//!
//! Serves, on the configured `listen` address:
//!
//! * `POST /add-checkpoint` — the witness (C2SP tlog-witness, at the root:
//!   the submission prefix logs are configured with is `http://<listen>`);
//! * `/metrics` — `cairn_witness_requests_total{status}` (add-checkpoint
//!   answers by HTTP status, including 503s for limits),
//!   `cairn_witness_cosignatures_total` (cosignatures issued: one per 200)
//!   and `cairn_witness_logs` (logs configured);
//! * `/livez` — the process is serving;
//! * `/readyz` — the state directory is still there.
//!
//! With a `[bastion]` table it also dials out to that C2SP https-bastion
//! and serves the same routes through it, so logs can reach a witness that
//! accepts no inbound connections at `https://<bastion>/<key hash>`.
//!
//! At start it prints its vkey and the Sigsum policy line a log operator
//! adds for it. The configuration file is described by
//! [`cairn_witness::WitnessFileConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_bastion::{Backend, BackendConfig};
use cairn_sigsum::SigningKey;
use cairn_witness::file_config::BastionTable;
use cairn_witness::{Witness, WitnessSettings, WitnessState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::files::{generate_key, public_key_path, read_private_key};
use crate::ops::openmetrics;
use crate::shutdown::{stopped, wait_for_signal};

/// How long shutdown waits for in-flight requests. A request abandoned at
/// that point never leaves state half-written (the witness's writes finish
/// on the blocking pool), so this only bounds how long a stop takes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the witness configured in `config` until Ctrl-C or SIGTERM. With
/// `generate_key`, first creates its key file, which must not exist.
pub async fn run(config: PathBuf, generate: bool) -> anyhow::Result<()> {
    let settings = WitnessSettings::load(&config)
        .with_context(|| format!("configuration file {}", config.display()))?;
    // Read before a key is generated, so a bad roots file stops the start
    // before it leaves anything behind.
    let bastion = settings.bastion.as_ref().map(bastion_config).transpose()?;
    let key = witness_key(&settings.key_file, generate)?;
    if let Some(log) = settings.logs.iter().find(|l| l.key == key.public_key().0) {
        bail!(
            "key_file {}: the witness key is also the key of log {:?}; a witness needs its own key",
            settings.key_file.display(),
            log.origin
        );
    }
    let backend = bastion
        .map(|config| Backend::new(config, &key).context("[bastion]"))
        .transpose()?;
    let state = WitnessState::open(&settings.state_dir)
        .with_context(|| format!("state_dir {}", settings.state_dir.display()))?;
    let witness = Arc::new(Witness::with_system_clock(
        settings.witness_config(key),
        state,
    )?);

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listen {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let http = cairn_http::Server::new(settings.http.clone()).context("[http]")?;

    let metrics = Metrics::new(settings.logs.len(), http.stats());
    let app = cairn_witness::router_with_limits(Arc::clone(&witness), settings.limits)
        .layer(middleware::from_fn_with_state(metrics.clone(), count))
        .merge(ops_router(metrics, settings.state_dir.clone()));

    print!("{}", banner(&witness, &settings, addr));

    let (stop_tx, stop_rx) = watch::channel(false);
    // The bastion connection serves the very same routes, so requests that
    // arrive through it are limited and counted like direct ones.
    let backend_task = backend.map(|backend| {
        let app = app.clone().layer(cairn_http::BodyTimeoutLayer::new(
            settings.http.body_limits(),
        ));
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { backend.serve(app, stop).await })
    });
    let serve_task = tokio::spawn(http.serve(listener, app, stopped(stop_rx)));
    wait_for_signal().await;
    tracing::info!("shutting down: no new requests; every cosigned state is already on disk");
    stop_tx.send_replace(true);
    // Bounded by the listener's shutdown grace.
    serve_task.await.context("HTTP server task")?;
    if let Some(task) = backend_task
        && tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err()
    {
        tracing::warn!("requests through the bastion still running after {SHUTDOWN_GRACE:?}");
    }
    Ok(())
}

/// How to reach the bastion of `[bastion]`, with its extra roots read.
fn bastion_config(table: &BastionTable) -> anyhow::Result<BackendConfig> {
    let mut config = BackendConfig::new(table.address.clone());
    config.server_name = table.server_name.clone();
    if let Some(roots) = &table.roots {
        config.root_certificates =
            cairn_bastion::load_certificates(roots).context("bastion.roots")?;
    }
    Ok(config)
}

/// Reads the witness key, or with `generate` creates it.
fn witness_key(path: &Path, generate: bool) -> anyhow::Result<SigningKey> {
    if generate {
        let key = generate_key(path)
            .with_context(|| format!("key_file: --generate-key for {}", path.display()))?;
        tracing::info!(
            key_file = %path.display(),
            public_key_file = %public_key_path(path).display(),
            "generated a new witness key"
        );
        return Ok(key);
    }
    if !path.exists() {
        bail!(
            "key_file {} does not exist; start once with --generate-key to create it \
             (or point key_file at an existing OpenSSH private key)",
            path.display()
        );
    }
    read_private_key(path).with_context(|| format!("key_file {}", path.display()))
}

/// What an operator needs at start: the identity, the URL, and the line a
/// log operator puts in their Sigsum policy.
fn banner(witness: &Witness, settings: &WitnessSettings, addr: SocketAddr) -> String {
    let mut out = format!(
        "cairnd witness: a C2SP tlog-witness for {} log(s)\n\
         \x20 key name:       {}\n\
         \x20 vkey:           {}\n\
         \x20 public key:     {}\n\
         \x20 add-checkpoint: http://{addr}/add-checkpoint\n\
         \x20 state:          {}\n",
        settings.logs.len(),
        witness.name(),
        witness.vkey(),
        witness.public_key().to_hex(),
        settings.state_dir.display(),
    );
    for log in &settings.logs {
        out.push_str(&format!("  log:            {}\n", log.origin));
    }
    // Through a bastion, the bastion URL is the one logs can reach.
    let url = match &settings.bastion {
        Some(table) => {
            let url = table.witness_url(&witness.public_key().key_hash());
            out.push_str(&format!(
                "  bastion:        {} (dialled at {})\n",
                url, table.address
            ));
            url
        }
        None => format!("http://{addr}"),
    };
    out.push_str(&format!(
        "\nSigsum policy line for logs this witness cosigns (use the URL logs reach it at):\n\
         witness {} {} {url}\n",
        witness.name(),
        witness.public_key().to_hex(),
    ));
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

/// The witness's counters. Cloning shares them.
#[derive(Clone, Debug)]
struct Metrics {
    registry: Arc<Registry>,
    requests: Family<StatusLabel, Counter>,
    cosignatures: Counter,
}

impl Metrics {
    fn new(logs: usize, http: &cairn_http::Stats) -> Metrics {
        let mut registry = Registry::with_prefix("cairn_witness");
        http.register(&mut registry);
        let requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "requests",
            "add-checkpoint requests answered, by HTTP status",
            requests.clone(),
        );
        let cosignatures = Counter::default();
        registry.register(
            "cosignatures",
            "Cosignatures issued (add-checkpoint requests answered 200)",
            cosignatures.clone(),
        );
        let configured = Gauge::<i64>::default();
        configured.set(i64::try_from(logs).unwrap_or(i64::MAX));
        registry.register("logs", "Logs this witness cosigns for", configured);
        Metrics {
            registry: Arc::new(registry),
            requests,
            cosignatures,
        }
    }
}

/// Counts every answer of the witness router, including its own 503s.
async fn count(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    metrics
        .requests
        .get_or_create(&StatusLabel {
            status: status.as_u16(),
        })
        .inc();
    if status == StatusCode::OK {
        metrics.cosignatures.inc();
    }
    response
}

fn ops_router(metrics: Metrics, state_dir: PathBuf) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(move || readyz(state_dir.clone())))
        .route("/metrics", get(render_metrics))
        .with_state(metrics)
}

/// Not ready if the state directory has gone (an unmounted volume, say):
/// every add-checkpoint would then fail with 500.
async fn readyz(state_dir: PathBuf) -> Response {
    match tokio::fs::metadata(&state_dir).await {
        Ok(m) if m.is_dir() => (StatusCode::OK, "ready\n").into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state directory {} is not available\n", state_dir.display()),
        )
            .into_response(),
    }
}

async fn render_metrics(State(metrics): State<Metrics>) -> Response {
    openmetrics(&metrics.registry)
}
