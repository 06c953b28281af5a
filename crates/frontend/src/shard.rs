//! One shard's state and request dispatch: which endpoint a path names,
//! whether the method fits, and which handler serves it.
//!
//! Paths are routed by hand rather than by one axum route per endpoint so
//! that the Sigsum rules hold exactly: an unknown endpoint is 404, a known
//! one with the wrong method 405, and an argument-taking endpoint called
//! without arguments (`get-leaves/`) 400, as sigsum-go's server does.
//! Arguments are taken from the raw, undecoded path: percent-escapes are
//! not valid in any argument and fail their parser.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use cairn_proto::SequencerPool;
use cairn_sigsum::PublicKey;
use cairn_sigsum::api::Endpoint;
use cairn_sigsum::tree_head::CosignedTreeHead;
use cairn_storage::TileStore;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::batcher::Batcher;
use crate::config::{FrontendConfig, ShardLimits};
use crate::error::ApiError;
use crate::fresh::Fresh;
use crate::keys::{KEYS_KEPT, KeyCache};
use crate::lookups::Lookups;
use crate::published::Published;
use crate::token::TokenCheck;
use crate::{api, info, tiles};

/// One Sigsum log served by this frontend.
///
/// The frontend is stateless: the sequencer holds the tree and its heads,
/// the tile store the published objects. `name` is both the URL prefix
/// segment (`/<name>/`) and the shard name sent to the sequencer, which must
/// host a shard of that name signed by `log_key`.
#[derive(Debug)]
pub struct ShardFrontend {
    /// URL prefix segment and sequencer shard name, e.g. `dev`.
    pub name: String,
    /// The log's public key: tree heads that do not verify with it are
    /// never served.
    pub log_key: PublicKey,
    /// The shard's sequencer nodes (its Raft group). Calls follow the
    /// leader, and reads may be answered by a lagging follower: the
    /// frontend never serves a published head smaller than one it served.
    pub sequencer: SequencerPool,
    /// The shard's objects (tiles, bundles, checkpoint). Every tile and
    /// bundle a read uses is verified against the published head; corrupt
    /// ones are counted by its `corrupt_reads`, which the server exports as
    /// `cairn_storage_corrupt_objects_total{shard}`.
    pub tiles: TileStore,
    /// Size, count and time limits of this shard's endpoints.
    pub limits: ShardLimits,
}

/// A shard that no sequencer hosts any more (retired in the cluster
/// registry): served from object storage alone. Its final checkpoint is
/// its get-tree-head, and its tiles answer get-leaves and consistency
/// proofs; add-leaf is refused (410) and so is get-inclusion-proof, whose
/// leaf-hash index went with the sequencers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retired {
    /// The shard that took over its submissions; empty if none was named.
    pub successor: String,
    /// The witness keys of its policy: get-tree-head carries the
    /// checkpoint's cosignatures by these keys (and only valid ones).
    pub witnesses: Vec<PublicKey>,
}

/// A shard's state as the handlers see it.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) name: String,
    /// `/<name>/`: what the router strips from request paths.
    pub(crate) prefix: String,
    pub(crate) log_key: PublicKey,
    pub(crate) tiles: TileStore,
    pub(crate) limits: ShardLimits,
    pub(crate) batcher: Batcher,
    /// The published size, for add-leaf's wait.
    pub(crate) published: Published,
    pub(crate) public_base_url: Option<String>,
    /// Verifies submit tokens; `None`: they are only parsed.
    pub(crate) token_check: Option<TokenCheck>,
    /// Prepared keys of recent submitters.
    pub(crate) submitter_keys: KeyCache,
    /// The newest published head this frontend has seen, its log
    /// signature verified: served (and trusted for reads) whenever the
    /// sequencer node asked is behind it (see `Shard::heads`).
    pub(crate) newest_head: std::sync::Mutex<Option<CosignedTreeHead>>,
    /// Fresh `GetTreeHeads` answers, one call shared by the requests that
    /// arrive while it is in flight.
    pub(crate) fresh_heads: Arc<Fresh<Option<CosignedTreeHead>, ApiError>>,
    /// Leaf-index lookups, batched across requests.
    pub(crate) lookups: Lookups,
    /// `Some` once the shard is retired: nothing is asked of sequencers.
    pub(crate) retired: Option<Retired>,
    /// The shard's sequencer nodes, for `/readyz`'s health checks.
    pub(crate) sequencer: SequencerPool,
}

impl Shard {
    /// The state for `frontend`; starts its batcher and published-head
    /// watcher tasks (so it must run inside a Tokio runtime).
    pub(crate) fn start(
        frontend: ShardFrontend,
        config: &FrontendConfig,
        retired: Option<Retired>,
    ) -> Shard {
        let batcher = Batcher::spawn(&frontend.name, frontend.sequencer.clone(), &frontend.limits);
        let (published, fresh_heads) = match &retired {
            None => (
                Published::spawn(&frontend.name, frontend.sequencer.clone()),
                Fresh::new(api::tree_heads_call(
                    frontend.name.clone(),
                    frontend.sequencer.clone(),
                    frontend.limits.sequencer_timeout,
                )),
            ),
            Some(r) => (
                Published::idle(),
                Fresh::new(api::archived_head_call(
                    frontend.name.clone(),
                    frontend.tiles.clone(),
                    frontend.log_key,
                    r.witnesses.clone(),
                )),
            ),
        };
        let lookups = Lookups::spawn(
            &frontend.name,
            frontend.sequencer.clone(),
            frontend.limits.sequencer_timeout,
        );
        Shard {
            prefix: format!("/{}/", frontend.name),
            name: frontend.name,
            log_key: frontend.log_key,
            tiles: frontend.tiles,
            limits: frontend.limits,
            batcher,
            published,
            public_base_url: config.public_base_url.clone(),
            token_check: config
                .token_verifier
                .clone()
                .map(|verifier| TokenCheck::new(verifier, config.token_timeout)),
            submitter_keys: KeyCache::new(KEYS_KEPT),
            newest_head: std::sync::Mutex::new(None),
            fresh_heads,
            lookups,
            retired,
            sequencer: frontend.sequencer,
        }
    }

    /// Why this shard cannot take submissions through this frontend now,
    /// if it cannot: no sequencer node answers that it leads the shard and
    /// takes leaves (the gRPC health service, within `deadline`).
    pub(crate) async fn unready(&self, deadline: tokio::time::Instant) -> Option<String> {
        let service = cairn_proto::shard_leader_health_service(&self.name);
        let checks = self
            .sequencer
            .channels()
            .into_iter()
            .map(|(addr, channel)| {
                let service = service.clone();
                async move {
                    let mut client = HealthClient::new(channel);
                    let answer = tokio::time::timeout_at(
                        deadline,
                        client.check(HealthCheckRequest { service }),
                    )
                    .await;
                    match answer {
                        Ok(Ok(r)) if r.get_ref().status() == ServingStatus::Serving => Ok(()),
                        Ok(Ok(r)) => Err(format!("{addr}: {:?}", r.get_ref().status())),
                        Ok(Err(status)) => Err(format!("{addr}: {}", status.code())),
                        Err(_) => Err(format!("{addr}: no answer in time")),
                    }
                }
            });
        // The first node that leads settles it: no waiting for the others.
        let mut pending: futures::stream::FuturesUnordered<_> = checks.collect();
        let mut seen = Vec::new();
        while let Some(answer) = futures::StreamExt::next(&mut pending).await {
            match answer {
                Ok(()) => return None,
                Err(e) => seen.push(e),
            }
        }
        Some(format!(
            "shard {}: no sequencer leads it and takes leaves ({})",
            self.name,
            seen.join("; ")
        ))
    }
}

/// What a path below the shard prefix names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target<'a> {
    /// `""`: the info page.
    Info,
    /// `checkpoint`.
    Checkpoint,
    /// `tile/...` (the whole path, for `parse_path`).
    Tile(&'a str),
    /// A Sigsum API endpoint and what follows its name and `/`, if a `/`
    /// follows.
    Api(Endpoint, Option<&'a str>),
}

const GET_ALLOW: &str = "GET, HEAD";
const POST_ALLOW: &str = "POST";

/// The metrics label of the endpoint `rest` (the path after `/<name>/`)
/// names: a Sigsum endpoint's name, `info`, `checkpoint`, `tile`,
/// `entries` (entry bundles), or `unknown`.
pub(crate) fn endpoint_label(rest: &str) -> &'static str {
    match Target::parse(rest) {
        Ok(Target::Info) => "info",
        Ok(Target::Checkpoint) => "checkpoint",
        Ok(Target::Tile(path)) if path.starts_with("tile/entries/") => "entries",
        Ok(Target::Tile(_)) => "tile",
        Ok(Target::Api(endpoint, _)) => endpoint.name(),
        Err(_) => "unknown",
    }
}

impl<'a> Target<'a> {
    /// Classifies `rest`, the path after `/<name>/`; 404 if it names
    /// nothing.
    fn parse(rest: &'a str) -> Result<Self, ApiError> {
        if rest.is_empty() {
            return Ok(Target::Info);
        }
        if rest == "checkpoint" {
            return Ok(Target::Checkpoint);
        }
        if rest.starts_with("tile/") {
            return Ok(Target::Tile(rest));
        }
        let (name, args) = match rest.split_once('/') {
            Some((name, args)) => (name, Some(args)),
            None => (rest, None),
        };
        let endpoint = Endpoint::from_name(name).ok_or_else(|| not_found(rest))?;
        if args.is_some() && !endpoint.takes_arguments() {
            return Err(not_found(rest));
        }
        Ok(Target::Api(endpoint, args))
    }

    /// Whether this is add-leaf, the one POST endpoint; everything else is
    /// read with GET (or HEAD, as static servers and CDNs allow).
    fn is_post(self) -> bool {
        matches!(self, Target::Api(e, _) if e.is_post())
    }

    /// The methods this target accepts, as an `Allow` header value.
    fn allow(self) -> &'static str {
        if self.is_post() {
            POST_ALLOW
        } else {
            GET_ALLOW
        }
    }

    fn accepts(self, method: &Method) -> bool {
        if self.is_post() {
            method == Method::POST
        } else {
            method == Method::GET || method == Method::HEAD
        }
    }
}

fn not_found(rest: &str) -> ApiError {
    // Echo a bounded part of the path only: error bodies must not grow with
    // the request.
    let shown: String = rest.chars().take(64).collect();
    ApiError::NotFound(format!("no such endpoint: {shown:?}"))
}

/// The usage line of an argument-taking endpoint, for its 400 answer.
fn usage(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::GetInclusionProof => "get-inclusion-proof/<tree size>/<hex leaf hash>",
        Endpoint::GetConsistencyProof => "get-consistency-proof/<old size>/<new size>",
        Endpoint::GetLeaves => "get-leaves/<start index>/<end index>",
        Endpoint::GetTreeHead | Endpoint::AddLeaf => "",
    }
}

/// Axum handler for every path at or below `/<name>/`.
pub(crate) async fn dispatch(State(shard): State<Arc<Shard>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let rest = path.strip_prefix(shard.prefix.as_str()).unwrap_or_default();
    let result = serve(
        &shard,
        &parts.method,
        &parts.headers,
        &parts.uri,
        rest,
        body,
    )
    .await;
    match result {
        Ok(response) => response,
        Err(error) => axum::response::IntoResponse::into_response(error),
    }
}

async fn serve(
    shard: &Shard,
    method: &Method,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
    rest: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let target = Target::parse(rest)?;
    if !target.accepts(method) {
        return Err(ApiError::MethodNotAllowed {
            method: method.clone(),
            allow: target.allow(),
        });
    }
    match target {
        Target::Info => Ok(info::page(shard, headers, uri)),
        Target::Checkpoint => tiles::checkpoint(shard).await,
        Target::Tile(path) => tiles::tile(shard, path).await,
        Target::Api(Endpoint::AddLeaf, _) => api::add_leaf(shard, headers, body).await,
        Target::Api(Endpoint::GetTreeHead, _) => api::get_tree_head(shard).await,
        Target::Api(endpoint, args) => {
            let args = args.filter(|a| !a.is_empty()).ok_or_else(|| {
                ApiError::BadRequest(format!("missing arguments, expected {}", usage(endpoint)))
            })?;
            match endpoint {
                Endpoint::GetInclusionProof => api::get_inclusion_proof(shard, args).await,
                Endpoint::GetConsistencyProof => api::get_consistency_proof(shard, args).await,
                _ => api::get_leaves(shard, args).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_name_each_endpoint_and_lump_every_unknown_path_together() {
        assert_eq!(endpoint_label(""), "info");
        assert_eq!(endpoint_label("checkpoint"), "checkpoint");
        assert_eq!(endpoint_label("tile/0/000"), "tile");
        assert_eq!(endpoint_label("tile/entries/000"), "entries");
        assert_eq!(endpoint_label("add-leaf"), "add-leaf");
        assert_eq!(
            endpoint_label("get-inclusion-proof/1/ab"),
            "get-inclusion-proof"
        );
        // Arbitrary paths cannot create new series.
        assert_eq!(endpoint_label("x/y/z"), "unknown");
        assert_eq!(endpoint_label("get-tree-head/extra"), "unknown");
    }

    #[test]
    fn paths_name_the_info_page_objects_and_endpoints() {
        assert_eq!(Target::parse(""), Ok(Target::Info));
        assert_eq!(Target::parse("checkpoint"), Ok(Target::Checkpoint));
        assert_eq!(Target::parse("tile/0/000"), Ok(Target::Tile("tile/0/000")));
        assert_eq!(
            Target::parse("get-tree-head"),
            Ok(Target::Api(Endpoint::GetTreeHead, None))
        );
        assert_eq!(
            Target::parse("get-leaves/"),
            Ok(Target::Api(Endpoint::GetLeaves, Some("")))
        );
        assert_eq!(
            Target::parse("get-leaves/1/2"),
            Ok(Target::Api(Endpoint::GetLeaves, Some("1/2")))
        );
    }

    #[test]
    fn unknown_endpoints_and_arguments_to_plain_endpoints_are_not_found() {
        for path in [
            "get-nothing",
            "checkpoint/",
            "tile",
            "get-tree-head/",
            "add-leaf/x",
        ] {
            assert!(
                matches!(Target::parse(path), Err(ApiError::NotFound(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn add_leaf_takes_post_and_everything_else_get_or_head() {
        let add = Target::Api(Endpoint::AddLeaf, None);
        assert!(add.accepts(&Method::POST));
        assert!(!add.accepts(&Method::GET));
        let leaves = Target::Api(Endpoint::GetLeaves, None);
        assert!(leaves.accepts(&Method::GET) && leaves.accepts(&Method::HEAD));
        assert!(!leaves.accepts(&Method::POST));
        assert!(!Target::Checkpoint.accepts(&Method::PUT));
    }

    #[test]
    fn long_unknown_paths_are_echoed_truncated() {
        let long = "x".repeat(1000);
        let ApiError::NotFound(message) = not_found(&long) else {
            panic!("not a 404")
        };
        assert!(message.len() < 100);
    }
}
