//! The Sigsum v1 log API handlers (`sigsum-protocol.md` §6).
//!
//! Reads are bounded by the *published* (cosigned) tree size: a client may
//! only ask about trees it can have seen in `get-tree-head`. Proofs and
//! leaves are computed from the tiles of the published head, whose tiles
//! are always fully written (the integrator writes them before the head is
//! signed), and the tile store verifies every tile and bundle it uses
//! against that head's root (its log signature checked here first). A
//! stored object that does not verify makes the request a 500 naming it,
//! never a wrong 200.
//!
//! Belt and braces, every proof is also checked against the published root
//! before it is returned: an inclusion proof against the root of its size,
//! a consistency proof against the root of its new size, where a root below
//! the published size is itself checked by a consistency proof to the
//! published root. This costs a few hashes over tiles the proof has just
//! verified and cached, and turns any remaining inconsistency into a 500.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::SequencerPool;
use cairn_proto::v1::GetTreeHeadsRequest;
use cairn_sigsum::Hash;
use cairn_sigsum::api::{
    AddLeafRequest, ConsistencyProof, ConsistencyProofRequest, InclusionProof,
    InclusionProofRequest, Leaves, LeavesRequest, RequestError,
};
use cairn_sigsum::leaf::{Leaf, LeafError};
use cairn_sigsum::token::{HEADER_NAME, SubmitHeader};
use cairn_sigsum::tree_head::CosignedTreeHead;
use cairn_storage::TrustedHead;
use cairn_tlog::proof::{verify_consistency, verify_inclusion};
use futures::StreamExt as _;
use tokio::time::Instant;

use crate::batcher::Outcome;
use crate::convert;
use crate::error::{ApiError, TEXT_PLAIN, from_storage};
use crate::fresh::Fetch;
use crate::shard::Shard;

/// The tree head a read is answered against.
#[derive(Debug)]
pub(crate) struct Heads {
    /// The newest published cosigned tree head this frontend knows, its
    /// log signature verified; `None` before the first publication.
    pub(crate) published: Option<CosignedTreeHead>,
}

impl Heads {
    /// Size of the published tree; 0 before the first publication, so that
    /// every read is refused until then.
    fn published_size(&self) -> u64 {
        self.published.as_ref().map_or(0, |h| h.tree_head().size)
    }

    /// The head the tile store verifies reads against: the published one,
    /// [`TrustedHead::EMPTY`] before the first publication.
    pub(crate) fn trusted(&self) -> TrustedHead {
        self.published.as_ref().map_or(TrustedHead::EMPTY, |head| {
            TrustedHead::new(head.tree_head().size, head.tree_head().root_hash)
        })
    }
}

/// Whether `fetched` should replace `newest` as the head served: it is
/// larger, or the same head re-published with more cosignatures, or with
/// as many and a newer one (the collector re-cosigns idle heads). A
/// smaller head comes from a follower that lags and is never served once
/// a larger one was; an older re-publication likewise.
fn supersedes(fetched: &CosignedTreeHead, newest: &CosignedTreeHead) -> bool {
    let (f, n) = (fetched.tree_head(), newest.tree_head());
    let freshness = |h: &CosignedTreeHead| {
        (
            h.cosignatures().len(),
            h.cosignatures().iter().map(|c| c.timestamp).max(),
        )
    };
    f.size > n.size || (fetched.signed == newest.signed && freshness(fetched) > freshness(newest))
}

/// A successful `text/plain` response.
fn text_ok(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    response
}

fn bad_arguments(e: RequestError) -> ApiError {
    ApiError::BadRequest(format!("invalid arguments: {e}"))
}

impl Shard {
    /// The shard's heads, fresh: from a `GetTreeHeads` call that started
    /// after this request arrived (calls are shared by the requests that
    /// arrive meanwhile, see `fresh.rs`); a follower may answer and lag,
    /// so the answer is the newest published head seen so far, and what
    /// this frontend serves never goes back. A fetched head newer than
    /// that one must verify with the log key (500 otherwise: a head this
    /// frontend cannot vouch for must neither be served nor anchor reads);
    /// the signature is checked once per new head.
    pub(crate) async fn heads(&self) -> Result<Heads, ApiError> {
        if self.retired.is_some() {
            // A retired log's checkpoint is final: read it once.
            let known = self
                .newest_head
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if known.is_some() {
                return Ok(Heads { published: known });
            }
        }
        let fetched = self.fresh_heads.get().await?;
        let published = self.newest_published(fetched)?;
        if let Some(head) = &published {
            self.published.observe(head.tree_head().size);
        }
        Ok(Heads { published })
    }

    /// Heads for a read of the tree of `size` leaves: the newest head
    /// this frontend verified, with no call at all, if it covers `size`
    /// (a proof or leaf of a tree of that size is the same whatever head
    /// anchors it); else fresh ones, which may or may not cover it.
    pub(crate) async fn heads_covering(&self, size: u64) -> Result<Heads, ApiError> {
        let known = self
            .newest_head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match known {
            Some(head) if head.tree_head().size >= size => Ok(Heads {
                published: Some(head),
            }),
            _ => self.heads().await,
        }
    }

    /// The head to serve given a `fetched` one: the newest verified head
    /// (see [`Shard::heads`]).
    fn newest_published(
        &self,
        fetched: Option<CosignedTreeHead>,
    ) -> Result<Option<CosignedTreeHead>, ApiError> {
        let mut newest = self
            .newest_head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (fetched, &*newest) {
            (Some(fetched), Some(known)) if !supersedes(&fetched, known) => Ok(Some(known.clone())),
            (Some(fetched), _) => {
                if !fetched.signed.verify(&self.log_key) {
                    return Err(ApiError::Internal(format!(
                        "the published tree head of size {} does not verify with the log key",
                        fetched.tree_head().size
                    )));
                }
                *newest = Some(fetched.clone());
                Ok(Some(fetched))
            }
            (None, known) => Ok(known.clone()),
        }
    }

    /// The root of the tree of `size` leaves (at most `trusted.size`),
    /// checked against the trusted root: the root itself at the trusted
    /// size, else the root computed from tiles, accepted only if a
    /// consistency proof to the trusted root verifies with it.
    async fn checked_root(&self, size: u64, trusted: TrustedHead) -> Result<Hash, ApiError> {
        if size == trusted.size {
            return Ok(trusted.root);
        }
        let (root, proof) = futures::try_join!(
            self.tiles.root(size, trusted),
            self.tiles.consistency_proof(size, trusted.size, trusted)
        )
        .map_err(from_storage)?;
        verify_consistency(size, trusted.size, &proof, &root, &trusted.root).map_err(|e| {
            ApiError::Internal(format!(
                "the root of tree size {size} computed from tiles is not consistent with the \
                 published tree head of size {}: {e}",
                trusted.size
            ))
        })?;
        Ok(root)
    }

    /// The index of the leaf with `leaf_hash`, if the sequencer has it
    /// (looked up in a batch with concurrent requests' leaves).
    async fn leaf_index(&self, leaf_hash: &Hash) -> Result<Option<u64>, ApiError> {
        self.lookups.index(*leaf_hash).await
    }
}

/// The `GetTreeHeads` call behind [`Shard::heads`]: the published head the
/// sequencer reports, parsed, its signature not yet checked. Bounded by
/// `timeout`, as [`Fresh`] requires.
pub(crate) fn tree_heads_call(
    shard: String,
    sequencer: SequencerPool,
    timeout: Duration,
) -> Fetch<Option<CosignedTreeHead>, ApiError> {
    Arc::new(move || {
        let (shard, sequencer) = (shard.clone(), sequencer.clone());
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let heads = sequencer
                .call("GetTreeHeads", deadline, |mut client| {
                    let request = GetTreeHeadsRequest {
                        shard: shard.clone(),
                    };
                    async move { client.get_tree_heads(request).await }
                })
                .await
                .map_err(|s| ApiError::from_status("GetTreeHeads", &s))?;
            heads
                .cosigned
                .as_ref()
                .map(convert::cosigned_tree_head)
                .transpose()
                .map_err(|e| {
                    ApiError::Internal(format!("GetTreeHeads returned a malformed tree head: {e}"))
                })
        })
    })
}

/// The fetch behind [`Shard::heads`] for a retired shard: its final
/// `checkpoint` object read back as a cosigned tree head (log signature
/// and the policy witnesses' valid cosignatures, see
/// [`CosignedTreeHead::from_checkpoint_note`]); `None` if the store has no
/// checkpoint.
pub(crate) fn archived_head_call(
    shard: String,
    tiles: cairn_storage::TileStore,
    log_key: cairn_sigsum::PublicKey,
    witnesses: Vec<cairn_sigsum::PublicKey>,
) -> Fetch<Option<CosignedTreeHead>, ApiError> {
    let witnesses = Arc::new(witnesses);
    Arc::new(move || {
        let (shard, tiles, witnesses) = (shard.clone(), tiles.clone(), witnesses.clone());
        Box::pin(async move {
            let Some(note) = tiles.checkpoint().await.map_err(from_storage)? else {
                return Ok(None);
            };
            CosignedTreeHead::from_checkpoint_note(&note, &log_key, &witnesses)
                .map(Some)
                .map_err(|e| {
                    ApiError::Internal(format!(
                        "the stored checkpoint of retired log {shard:?} is not its tree head: {e}"
                    ))
                })
        })
    })
}

/// The 410 body of add-leaf on a retired log.
fn retired_message(shard: &str, retired: &crate::shard::Retired) -> String {
    let mut message = format!(
        "log {shard:?} is retired and accepts no new leaves; its final tree head, \
         consistency proofs, leaves and tiles stay served"
    );
    if retired.successor.is_empty() {
        message.push_str(". Submit to another log of your policy");
    } else {
        message.push_str(&format!(
            ". Submit to its successor, shard {:?} (base URL ../{}/ relative to this log's)",
            retired.successor, retired.successor
        ));
    }
    message
}

/// 400 unless `size` is within the published tree.
fn within_published(what: &str, size: u64, heads: &Heads) -> Result<(), ApiError> {
    let published = heads.published_size();
    if size > published {
        return Err(ApiError::BadRequest(format!(
            "{what} {size} is beyond the published tree size {published}"
        )));
    }
    Ok(())
}

/// `GET get-tree-head`: the newest published cosigned tree head, its log
/// signature checked with the shard's key by [`Shard::heads`] (a head that
/// does not verify means a misconfigured shard and is never served).
pub(crate) async fn get_tree_head(shard: &Shard) -> Result<Response, ApiError> {
    let heads = shard.heads().await?;
    let head = heads
        .published
        .ok_or_else(|| ApiError::Unavailable("no cosigned tree head yet".to_owned()))?;
    Ok(text_ok(head.to_ascii()))
}

/// `GET get-inclusion-proof/<size>/<leaf hash>`.
pub(crate) async fn get_inclusion_proof(shard: &Shard, args: &str) -> Result<Response, ApiError> {
    let request = InclusionProofRequest::parse_args(args).map_err(bad_arguments)?;
    if shard.retired.is_some() {
        return Err(ApiError::Gone(format!(
            "log {:?} is retired: its leaf-hash index is gone, so inclusion proofs are no \
             longer served. A proof of logging made before stays valid; the leaves are in \
             get-leaves and the tiles",
            shard.name
        )));
    }
    let heads = shard.heads_covering(request.size).await?;
    within_published("tree size", request.size, &heads)?;
    let not_in_tree = || {
        ApiError::NotFound(format!(
            "leaf {} is not in the tree of size {}",
            hex::encode(request.leaf_hash),
            request.size
        ))
    };
    let index = shard
        .leaf_index(&request.leaf_hash)
        .await?
        .ok_or_else(not_in_tree)?;
    if index >= request.size {
        return Err(not_in_tree());
    }
    let trusted = heads.trusted();
    let path = shard
        .tiles
        .inclusion_proof(index, request.size, trusted)
        .await
        .map_err(from_storage)?;
    let root = shard.checked_root(request.size, trusted).await?;
    verify_inclusion(&request.leaf_hash, index, request.size, &path, &root).map_err(|e| {
        ApiError::Internal(format!(
            "the inclusion proof of leaf {index} in tree size {} computed from tiles does not \
             verify against the published tree head: {e}",
            request.size
        ))
    })?;
    let proof = InclusionProof {
        leaf_index: index,
        path,
    };
    Ok(text_ok(proof.to_ascii()))
}

/// `GET get-consistency-proof/<old>/<new>`.
pub(crate) async fn get_consistency_proof(shard: &Shard, args: &str) -> Result<Response, ApiError> {
    let request = ConsistencyProofRequest::parse_args(args).map_err(bad_arguments)?;
    let heads = shard.heads_covering(request.new_size).await?;
    within_published("new size", request.new_size, &heads)?;
    let trusted = heads.trusted();
    let (old, new) = (request.old_size, request.new_size);
    let (path, old_root) = futures::try_join!(
        shard.tiles.consistency_proof(old, new, trusted),
        shard.tiles.root(old, trusted)
    )
    .map_err(from_storage)?;
    // The old root need not be checked by itself: a path that leads to the
    // checked new root is the right path, and then it also leads to the
    // right old root, which the verification compares.
    let new_root = shard.checked_root(new, trusted).await?;
    verify_consistency(old, new, &path, &old_root, &new_root).map_err(|e| {
        ApiError::Internal(format!(
            "the consistency proof from tree size {old} to {new} computed from tiles does not \
             verify against the published tree head: {e}"
        ))
    })?;
    Ok(text_ok(ConsistencyProof { path }.to_ascii()))
}

/// `GET get-leaves/<start>/<end>`: at most `max_get_leaves` leaves from
/// `start`, possibly fewer (as many as the tile store returns in one
/// call); never zero.
pub(crate) async fn get_leaves(shard: &Shard, args: &str) -> Result<Response, ApiError> {
    let request = LeavesRequest::parse_args(args).map_err(bad_arguments)?;
    let heads = shard.heads_covering(request.end).await?;
    let published = heads.published_size();
    if request.start >= published {
        return Err(ApiError::BadRequest(format!(
            "start {} is not below the published tree size {published}",
            request.start
        )));
    }
    within_published("end", request.end, &heads)?;
    let end = request
        .end
        .min(request.start.saturating_add(shard.limits.max_get_leaves));
    let trusted = heads.trusted();
    let raw = shard
        .tiles
        .leaves(request.start, end, trusted)
        .await
        .map_err(from_storage)?;
    if raw.is_empty() {
        return Err(ApiError::Internal(format!(
            "the tile store returned no leaves for [{}, {end})",
            request.start
        )));
    }
    let wanted = usize::try_from(end - request.start).unwrap_or(usize::MAX);
    let leaves = raw
        .iter()
        .take(wanted)
        .map(|bytes| Leaf::from_bytes(bytes.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(format!("a stored leaf is malformed: {e}")))?;
    Ok(text_ok(Leaves { leaves }.to_ascii()))
}

/// Reads the body, refusing more than `limit` bytes (413) before reading
/// them when the client declares its length, or as soon as they arrive. A
/// body the client sends too slowly (see `cairn_http::BodyTimeoutLayer`)
/// is a 408; other read failures are a 400.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match cairn_http::find_body_timeout(&e) {
            Some(timeout) => ApiError::RequestTimeout(timeout.to_string()),
            None => ApiError::BadRequest(format!("reading the request body failed: {e}")),
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The optional `sigsum-token` header: absent, or exactly one well-formed
/// value (400 otherwise).
fn submit_token(headers: &HeaderMap) -> Result<Option<SubmitHeader>, ApiError> {
    let mut values = headers.get_all(HEADER_NAME).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!(
            "more than one {HEADER_NAME} header"
        )));
    }
    let value = value.to_str().map_err(|_| {
        ApiError::BadRequest(format!("{HEADER_NAME} header is not printable ASCII"))
    })?;
    SubmitHeader::parse(value)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("invalid {HEADER_NAME} header: {e}")))
}

/// `POST add-leaf`, in log-go's check order: body (413/400), token header
/// (400), its DNS verification if configured (400, or 503 without a DNS
/// answer), leaf signature (403), then the batcher.
///
/// 200 means what stock Sigsum clients rely on: `get-tree-head` now serves
/// a cosigned head that includes the leaf, so its inclusion proof can be
/// fetched at once (sigsum-submit treats a head that cannot prove the leaf
/// after a 200 as fatal). A leaf not both committed and published within
/// `submit_wait` of the request's arrival gets 202, and the client
/// re-posts; a re-post of a leaf already published answers 200 at once.
pub(crate) async fn add_leaf(
    shard: &Shard,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(retired) = &shard.retired {
        return Err(ApiError::Gone(retired_message(&shard.name, retired)));
    }
    let deadline = tokio::time::Instant::now() + shard.limits.submit_wait;
    let body = read_body(headers, body, shard.limits.max_add_leaf_body).await?;
    let request = AddLeafRequest::parse(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid add-leaf request: {e}")))?;
    // Per-domain rate limits (429) come with a later issue; they would
    // go between the token check and the leaf signature.
    if let Some(token) = submit_token(headers)? {
        match &shard.token_check {
            Some(check) => check.check(&shard.log_key, &token).await?,
            None => {
                tracing::debug!(domain = %token.domain, "add-leaf with a submit token (not verified)");
            }
        }
    }
    let leaf = shard
        .submitter_keys
        .get(&request.public_key)
        .map_err(LeafError::WeakKey)
        .and_then(|key| request.to_leaf_with(&key))
        .map_err(|e| match e {
        // 403 like a bad signature, not 400: the request is well-formed,
        // but a weak key's signature authenticates no one (anyone can make
        // one), which is what 403 says of a signature. It also keeps
        // log-go's check order (token 400 first) and the answer a client
        // already handles as "this key and signature are not accepted".
        LeafError::WeakKey(_) => ApiError::Forbidden(format!(
            "{e}; sign with a key from a standard Ed25519 key generator (stricter than sigsum-go, see docs/compatibility.md)"
        )),
        _ => ApiError::Forbidden(format!("invalid leaf signature: {e}")),
    })?;
    let bytes = leaf.to_bytes();
    let status = match shard.batcher.submit(bytes).await? {
        Outcome::Committed { index } => {
            // Its inclusion proof is what the submitter asks for next.
            shard.lookups.remember(cairn_tlog::leaf_hash(&bytes), index);
            if shard.published.wait_includes(index, deadline).await {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            }
        }
        Outcome::Pending => StatusCode::ACCEPTED,
    };
    Ok(status.into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cairn_http::BodyTimeout;

    use super::*;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    fn body_failing_with(error: BoxError) -> Body {
        Body::from_stream(futures::stream::iter([
            Ok(Bytes::from_static(b"old")),
            Err(error),
        ]))
    }

    fn head(size: u64, witnesses: &[u8]) -> CosignedTreeHead {
        head_at(size, witnesses, 1)
    }

    fn head_at(size: u64, witnesses: &[u8], timestamp: u64) -> CosignedTreeHead {
        let log = cairn_sigsum::SigningKey::from_seed(&[1; 32]);
        let tree_head = cairn_sigsum::tree_head::TreeHead {
            size,
            root_hash: [size as u8; 32],
        };
        let cosignatures = witnesses
            .iter()
            .map(|&w| {
                let witness = cairn_sigsum::SigningKey::from_seed(&[w; 32]);
                let log_key_hash = log.public_key().key_hash();
                cairn_sigsum::tree_head::Cosignature::sign(
                    &witness,
                    &tree_head,
                    &log_key_hash,
                    timestamp,
                )
                .unwrap()
            })
            .collect();
        CosignedTreeHead::new(tree_head.sign(&log), cosignatures).unwrap()
    }

    #[test]
    fn a_lagging_head_never_replaces_a_newer_one() {
        assert!(supersedes(&head(5, &[2]), &head(4, &[2, 3])));
        assert!(!supersedes(&head(4, &[2, 3]), &head(5, &[2])));
        assert!(!supersedes(&head(5, &[2]), &head(5, &[2])));
        // A re-publication of the same head with more cosignatures.
        assert!(supersedes(&head(5, &[2, 3]), &head(5, &[2])));
        assert!(!supersedes(&head(5, &[2]), &head(5, &[2, 3])));
        // Re-cosigned later by the same witnesses, and an older copy.
        assert!(supersedes(&head_at(5, &[2], 9), &head_at(5, &[2], 1)));
        assert!(!supersedes(&head_at(5, &[2], 1), &head_at(5, &[2], 9)));
    }

    #[tokio::test]
    async fn a_body_sent_too_slowly_is_a_408_and_other_read_failures_a_400() {
        let stalled = Box::new(BodyTimeout::Stalled {
            stall: Duration::from_secs(5),
        });
        let e = read_body(&HeaderMap::new(), body_failing_with(stalled), 1024)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(e.to_string().contains("stalled"), "{e}");

        let reset = "connection reset".into();
        let e = read_body(&HeaderMap::new(), body_failing_with(reset), 1024)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
