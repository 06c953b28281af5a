//! Cairn's frontend: the Sigsum v1 log HTTP API and the C2SP tlog-tiles
//! read paths, for any number of shards, as one axum [`Router`].
//!
//! Each shard (one Sigsum log) is mounted at `/<name>/`, so its Sigsum base
//! URL is `http://HOST:PORT/<name>/`:
//!
//! | path | what | from |
//! |---|---|---|
//! | `GET /`, `GET /shards.json` | index of the shards: base URL, policy line, vkey, state (active/frozen/retired, successor), published size, age of the newest cosignature | config, `GetTreeHeads` |
//! | `GET /<name>/` | info page (key, key hash, origin, policy line) | config |
//! | `POST add-leaf` | parse (400/413), token header (400; DNS check 400/503 if configured), leaf signature (403), batch → 200 once a published head includes the leaf / 202 if not within `submit_wait`; 410 naming the successor if the log is frozen and the leaf not in it | sequencer `AddLeaves`, `WatchTreeHeads` |
//! | `GET get-tree-head` | latest published cosigned tree head | sequencer `GetTreeHeads` |
//! | `GET get-inclusion-proof/<size>/<leaf hash>` | leaf index, proof | `GetLeafIndex` + tiles |
//! | `GET get-consistency-proof/<old>/<new>` | proof | tiles |
//! | `GET get-leaves/<start>/<end>` | ≤ `max_get_leaves` leaves | entry bundles |
//! | `GET checkpoint`, `tile/...`, `tile/entries/...` | the stored objects, verbatim (tiles verified against the published head) | tile store |
//!
//! Statuses follow `sigsum-protocol.md` §6: 400 for malformed requests and
//! sizes beyond the published tree, 404 for unknown endpoints, leaves and
//! tiles, 405 for a wrong method, 503 (with `Retry-After`) when the
//! sequencer or tile store is unavailable or overloaded, 500 for
//! inconsistencies; an HTTP/1.1 request without exactly one well-formed
//! `Host` header is 400 (RFC 9112 §3.2). Every error body is human-readable
//! `text/plain`.
//!
//! A retired shard ([`Shards::retire`]) is served from object storage
//! alone: get-tree-head is its final `checkpoint` read back (log signature
//! and the policy witnesses' cosignatures), get-consistency-proof,
//! get-leaves and the tiles work as before, and add-leaf and
//! get-inclusion-proof answer 410 (the leaf-hash index was the sequencers').
//!
//! Object storage is not trusted: every tile and entry bundle behind a
//! proof, a leaf or a served tile is verified against the published tree
//! head (whose log signature is checked) before use, and proofs are checked
//! against its root before they are returned. A stored object that fails is
//! never served: the request is a 500 whose body names it, and the tile
//! store's `corrupt_reads` counter (exported by `cairnd` as
//! `cairn_storage_corrupt_objects_total{shard}`) counts it.
//!
//! The frontend holds no log state: it can be replicated freely. Requests
//! are bounded in body size (per shard), in time (the whole request,
//! [`FrontendConfig::request_timeout`], answered 504) and in number
//! ([`FrontendConfig::max_concurrent_requests`], beyond which requests get
//! 503 at once rather than queueing). Served by `cairn_http::Server`, an
//! add-leaf body that stalls or trickles is answered 408 (its body
//! deadlines come well before the request timeout with the defaults).
//!
//! Submit tokens: with [`FrontendConfig::token_verifier`] set, add-leaf's
//! `sigsum-token` header is verified against the submitter's
//! `_sigsum_v1.<domain>` TXT records before the leaf signature (400 if DNS
//! says the token is not valid, 503 with `Retry-After` if DNS gives no
//! answer within [`FrontendConfig::token_timeout`]); verified tokens are
//! cached for [`TOKEN_CACHE_TTL`]. Without it the header is only parsed
//! (and its domain checked, as in both modes).
//!
//! Sequencer: each shard talks to its Raft group through a
//! [`cairn_proto::SequencerPool`], which follows the leader (redirects,
//! elections, down or hanging nodes) within each request's sequencer
//! deadline; a request that finds no leader in time is a 503 with
//! `Retry-After`. Reads may be answered by a lagging follower, so the
//! frontend keeps the newest published head it has verified and never
//! serves (or anchors reads on) a smaller one.
//!
//! Not yet done (later issues): per-domain rate limits (429), a
//! short-lived cache of the sequencer's tree heads.

mod api;
mod batcher;
mod config;
mod convert;
mod error;
mod fresh;
mod index;
mod info;
mod keys;
mod lookups;
mod metrics;
mod published;
mod shard;
mod tiles;
mod token;

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Instrument as _;

pub use config::{
    ConfigError, DEFAULT_BATCH_MAX_DELAY, DEFAULT_BATCH_MAX_LEAVES, DEFAULT_MAX_ADD_LEAF_BODY,
    DEFAULT_MAX_BATCHES_IN_FLIGHT, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_GET_LEAVES,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_SEQUENCER_TIMEOUT, DEFAULT_SUBMIT_QUEUE, DEFAULT_SUBMIT_WAIT,
    DEFAULT_TOKEN_TIMEOUT, FrontendConfig, ShardLimits,
};
pub use metrics::FrontendMetrics;
pub use shard::{Retired, ShardFrontend};
pub use tiles::{
    CHECKPOINT_CACHE_CONTROL, FULL_TILE_CACHE_CONTROL, PARTIAL_TILE_CACHE_CONTROL,
    TILE_CONTENT_TYPE,
};
pub use token::{TOKEN_CACHE_ENTRIES, TOKEN_CACHE_TTL};

use error::ApiError;
use metrics::Refusal;
use shard::Shard;

/// A readiness answer and when it was made.
type ReadyAnswer = (tokio::time::Instant, Vec<String>);

/// How long a readiness answer is reused (see [`Shards::unready`]).
pub const READY_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long `/readyz` waits for the sequencers' health answers.
pub const READY_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Path of the JSON index of shards (the HTML one is `/`).
pub const INDEX_JSON: &str = "/shards.json";

/// The HTTP router serving every shard in `shards` under `/<name>/`, and
/// the index of them at `/` (HTML) and [`INDEX_JSON`].
///
/// Starts one submission batcher task and one published-head watcher per
/// shard, so it must be called inside a Tokio runtime; the tasks stop when
/// the router (and every clone of it) is dropped. Paths outside every shard answer 404.
///
/// Errors: [`ConfigError`] for an invalid or duplicate shard name, an
/// invalid limit, a request timeout not above a shard's submit wait
/// (add-leaf could then never answer 202), or, with a token verifier, not
/// above the token timeout plus the submit wait. Nothing is started on
/// error.
pub fn router(shards: Vec<ShardFrontend>, config: FrontendConfig) -> Result<Router, ConfigError> {
    router_with_handle(shards, config).map(|(router, _)| router)
}

/// [`router`], and a handle that adds shards to it and removes them while
/// it serves (a frontend following the cluster registry).
pub fn router_with_handle(
    shards: Vec<ShardFrontend>,
    config: FrontendConfig,
) -> Result<(Router, Shards), ConfigError> {
    config.validate()?;
    let mut names = HashSet::new();
    for shard in &shards {
        check_shard(shard, &config)?;
        if !names.insert(shard.name.clone()) {
            return Err(ConfigError::DuplicateShard(shard.name.clone()));
        }
    }
    let config = Arc::new(config);
    let set = Arc::new(ShardSet::default());
    let handle = Shards {
        set: Arc::clone(&set),
        config: Arc::clone(&config),
        metrics: FrontendMetrics::default(),
        ready: Arc::default(),
    };
    for frontend in shards {
        handle.add(frontend)?;
    }
    let index = Arc::new(index::Index {
        shards: Arc::clone(&set),
    });
    let app = Router::new()
        .route("/", axum::routing::get(index::html))
        .route(INDEX_JSON, axum::routing::get(index::json))
        .with_state(index)
        .merge(
            Router::new()
                .fallback(route_to_shard)
                .with_state(Arc::clone(&set)),
        );

    let slots = Arc::new(Semaphore::new(config.max_concurrent_requests));
    let app = app
        // Innermost first: the timeout bounds the handler, the concurrency
        // limit counts requests being handled (a request refused for its
        // Host takes no slot), the body filler makes even layer-made errors
        // readable, and tracing sees the final answer.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            config.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(slots, limit_concurrency))
        .layer(middleware::from_fn(require_host))
        .layer(middleware::map_response(error::ensure_error_body))
        // Failures are logged once, by `ApiError` with their reason; the
        // layer's own report stays at debug.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(middleware::from_fn_with_state(
            config.request_spans,
            request_id,
        ))
        // Outermost: the time and status the client sees.
        .layer(middleware::from_fn_with_state(
            Arc::new(Measured {
                set: Arc::clone(&set),
                metrics: handle.metrics.clone(),
            }),
            measure,
        ));
    Ok((app, handle))
}

/// Checks one shard against the router's configuration.
fn check_shard(shard: &ShardFrontend, config: &FrontendConfig) -> Result<(), ConfigError> {
    config::validate_shard_name(&shard.name)?;
    shard.limits.validate()?;
    if config.request_timeout <= shard.limits.submit_wait {
        return Err(ConfigError::BadSetting {
            field: "request_timeout",
            reason: format!(
                "must exceed shard {:?}'s submit_wait of {:?}",
                shard.name, shard.limits.submit_wait
            ),
        });
    }
    if config.token_verifier.is_some()
        && config.token_timeout + shard.limits.submit_wait >= config.request_timeout
    {
        return Err(ConfigError::BadSetting {
            field: "token_timeout",
            reason: format!(
                "plus shard {:?}'s submit_wait of {:?} must stay below request_timeout",
                shard.name, shard.limits.submit_wait
            ),
        });
    }
    Ok(())
}

/// The shards a router serves, by name; shared with its [`Shards`] handle.
#[derive(Debug, Default)]
pub(crate) struct ShardSet {
    map: std::sync::RwLock<std::collections::BTreeMap<String, Arc<Shard>>>,
}

impl ShardSet {
    fn get(&self, name: &str) -> Option<Arc<Shard>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).cloned()
    }

    /// Every shard, by name.
    pub(crate) fn all(&self) -> Vec<Arc<Shard>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }
}

/// Adds shards to a running router and removes them ([`router_with_handle`]).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shards {
    set: Arc<ShardSet>,
    config: Arc<FrontendConfig>,
    metrics: FrontendMetrics,
    /// The last readiness answer and when it was made: one check at a
    /// time, reused for [`READY_CACHE`], so probes cannot flood sequencers.
    ready: Arc<tokio::sync::Mutex<Option<ReadyAnswer>>>,
}

impl Shards {
    /// Serves `frontend` from now on (starting its tasks). Errors as for
    /// [`router`]; [`ConfigError::DuplicateShard`] if the name is served.
    pub fn add(&self, frontend: ShardFrontend) -> Result<(), ConfigError> {
        self.insert(frontend, None, false)
    }

    /// Serves `frontend` as a retired shard from now on, in place of its
    /// active form if that is served: from object storage alone, asking
    /// nothing of sequencers (see [`Retired`]). Errors as for
    /// [`Shards::add`], except that replacing the active form is allowed.
    pub fn retire(&self, frontend: ShardFrontend, retired: Retired) -> Result<(), ConfigError> {
        self.insert(frontend, Some(retired), true)
    }

    fn insert(
        &self,
        frontend: ShardFrontend,
        retired: Option<Retired>,
        replace: bool,
    ) -> Result<(), ConfigError> {
        check_shard(&frontend, &self.config)?;
        let mut map = self.set.map.write().unwrap_or_else(|e| e.into_inner());
        if !replace && map.contains_key(&frontend.name) {
            return Err(ConfigError::DuplicateShard(frontend.name));
        }
        let shard = Arc::new(Shard::start(frontend, &self.config, retired));
        map.insert(shard.name.clone(), shard);
        Ok(())
    }

    /// Stops serving `name` (its paths answer 404 from now on; requests in
    /// flight finish). Whether it was served.
    pub fn remove(&self, name: &str) -> bool {
        let mut map = self.set.map.write().unwrap_or_else(|e| e.into_inner());
        map.remove(name).is_some()
    }

    /// The names served, sorted.
    pub fn names(&self) -> Vec<String> {
        let map = self.set.map.read().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }

    /// The router's request metrics, to register with a server's
    /// `/metrics`.
    pub fn metrics(&self) -> &FrontendMetrics {
        &self.metrics
    }

    /// Why this frontend cannot serve every active shard now (`/readyz`):
    /// one line per shard whose sequencers report no leader that takes
    /// leaves within [`READY_CHECK_TIMEOUT`]. Retired shards need no
    /// sequencer and are not checked. One check runs at a time and its
    /// answer is reused for [`READY_CACHE`].
    pub async fn unready(&self) -> Vec<String> {
        let mut last = self.ready.lock().await;
        if let Some((at, problems)) = &*last
            && at.elapsed() < READY_CACHE
        {
            return problems.clone();
        }
        let problems = self.check_ready().await;
        *last = Some((tokio::time::Instant::now(), problems.clone()));
        problems
    }

    async fn check_ready(&self) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + READY_CHECK_TIMEOUT;
        let shards = self.set.all();
        let checks = shards
            .iter()
            .filter(|s| s.retired.is_none())
            .map(|s| s.unready(deadline));
        futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Whether `name` is served, and if so whether as a retired shard.
    pub fn is_retired(&self, name: &str) -> Option<bool> {
        self.set.get(name).map(|s| s.retired.is_some())
    }
}

/// Every path that is not the index: `/<name>` redirects to `/<name>/`,
/// paths below it go to the shard, anything else is 404.
async fn route_to_shard(State(set): State<Arc<ShardSet>>, request: Request) -> Response {
    let path = request.uri().path();
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (name, below) = match rest.split_once('/') {
        Some((name, _)) => (name, true),
        None => (rest, false),
    };
    let Some(shard) = set.get(name) else {
        return unknown_path().await;
    };
    if below {
        shard::dispatch(State(shard), request).await
    } else {
        Redirect::permanent(&shard.prefix).into_response()
    }
}

/// The request id header: the client's, if it sent a short one of safe
/// characters, or one made up here; echoed in the response and logged
/// with every event of the request.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client request id kept.
const MAX_REQUEST_ID: usize = 64;

/// Echoes the client's request id (see [`REQUEST_ID`]); with `spans`,
/// also makes one up when the client sent none and runs the request in a
/// span carrying it.
async fn request_id(State(spans): State<bool>, mut request: Request, next: Next) -> Response {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let given = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| {
            v.len() <= MAX_REQUEST_ID
                && !v.is_empty()
                && v.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        })
        .cloned();
    if !spans {
        let mut response = next.run(request).await;
        if let Some(id) = given {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        return response;
    }
    let id = given.unwrap_or_else(|| {
        // A per-process prefix keeps ids of several frontends apart.
        let prefix = PREFIX.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() ^ std::process::id())
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        header::HeaderValue::from_maybe_shared(format!("{prefix:08x}-{n}"))
            .unwrap_or_else(|_| header::HeaderValue::from_static("-"))
    });
    // Every event of the request carries its id (JSON logs), and the span
    // is the root of its trace.
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        request_id = %String::from_utf8_lossy(id.as_bytes()),
    );
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// What [`measure`] needs: the shards (to label a request with a shard
/// only if it is one) and where to record.
struct Measured {
    set: Arc<ShardSet>,
    metrics: FrontendMetrics,
}

/// Records every request's latency by shard, endpoint and status, and
/// counts overload refusals by reason.
async fn measure(State(m): State<Arc<Measured>>, request: Request, next: Next) -> Response {
    let (shard, endpoint) = request_labels(&m.set, request.uri().path());
    let started = tokio::time::Instant::now();
    let response = next.run(request).await;
    m.metrics.observe(
        &shard,
        endpoint,
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Some(why) = response.extensions().get::<Refusal>() {
        m.metrics.refused(&shard, *why);
    }
    response
}

/// The `shard` and `endpoint` labels of a request for `path`: a shard this
/// router serves or `-`, and a name from a fixed set.
fn request_labels(set: &ShardSet, path: &str) -> (String, &'static str) {
    if path == "/" || path == INDEX_JSON {
        return ("-".to_owned(), "index");
    }
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (name, below) = rest.split_once('/').unwrap_or((rest, ""));
    if set.get(name).is_none() {
        return ("-".to_owned(), "unknown");
    }
    (name.to_owned(), shard::endpoint_label(below))
}

/// Refuses a request at once (503) when every slot is taken, instead of
/// queueing it: queued requests would only time out later, holding memory.
async fn limit_concurrency(
    State(slots): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_slot) = slots.try_acquire_owned() else {
        return ApiError::Overloaded {
            why: Refusal::ConcurrentRequests,
            message: "too many concurrent requests, retry later".to_owned(),
        }
        .into_response();
    };
    next.run(request).await
}

/// Refuses an HTTP/1.1 request without exactly one well-formed `Host`
/// header with 400, as RFC 9112 §3.2 requires and Go's net/http (which
/// sigsum-go's log server runs on) does. HTTP/1.0 needs no `Host`, and
/// HTTP/2 carries the authority in a pseudo-header instead.
async fn require_host(request: Request, next: Next) -> Response {
    if request.version() == Version::HTTP_11 {
        let mut hosts = request.headers().get_all(header::HOST).iter();
        let problem = match (hosts.next(), hosts.next()) {
            (None, _) => Some("an HTTP/1.1 request needs a Host header"),
            (Some(_), Some(_)) => Some("more than one Host header"),
            (Some(host), None) if !is_host(host.as_bytes()) => Some("malformed Host header"),
            (Some(_), None) => None,
        };
        if let Some(problem) = problem {
            return ApiError::BadRequest(problem.to_owned()).into_response();
        }
    }
    next.run(request).await
}

/// Whether `host` is made of the characters of a URI authority's host and
/// port (RFC 3986 reg-name, IP literal, `:`), as Go's net/http checks.
fn is_host(host: &[u8]) -> bool {
    host.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b))
}

async fn unknown_path() -> Response {
    ApiError::NotFound("no such log or endpoint".to_owned()).into_response()
}
