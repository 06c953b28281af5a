//! The C2SP tlog-tiles read paths: `checkpoint`, `tile/<L>/<N>[.p/<W>]`
//! and `tile/entries/<N>[.p/<W>]`, served verbatim from the tile store so
//! that a CDN in front of the frontend, or any static HTTP server in front
//! of the object store, answers the same bytes.
//!
//! Tiles and bundles of the published tree are verified against the
//! published head before they are served (a corrupt one is a 500 naming
//! it); the checkpoint is a signed note that clients verify themselves.
//!
//! Caching follows architecture.md §3: full tiles never change (they are
//! written create-only) and are immutable for a year; partial tiles are
//! replaced by wider ones and live seconds; the checkpoint is `no-cache`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cairn_storage::TileObject;
use cairn_tlog::tile::{TilePath, parse_path};

use crate::error::{ApiError, from_storage};
use crate::shard::Shard;

pub use cairn_storage::{
    CHECKPOINT_CACHE_CONTROL, FULL_TILE_CACHE_CONTROL, PARTIAL_TILE_CACHE_CONTROL,
    TILE_CONTENT_TYPE,
};

fn object_response(bytes: Bytes, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// `GET checkpoint`: the stored signed note, verbatim; 404 before the
/// first publication.
pub(crate) async fn checkpoint(shard: &Shard) -> Result<Response, ApiError> {
    let bytes = shard
        .tiles
        .checkpoint()
        .await
        .map_err(from_storage)?
        .ok_or_else(|| ApiError::NotFound("no checkpoint has been published yet".to_owned()))?;
    Ok(object_response(
        bytes,
        cairn_storage::CHECKPOINT_CONTENT_TYPE,
        CHECKPOINT_CACHE_CONTROL,
    ))
}

/// `GET tile/...`: a hash tile or entry bundle, verbatim. Paths that are
/// not canonical tile paths and tiles not (yet) written are 404; a tile of
/// the published tree that does not verify against the published head is
/// 500 naming it.
///
/// Tiles beyond the published head (a wider partial, a tile of a later
/// size) are served if they decode at their width, unverified, with the
/// short partial-tile lifetime even when full. The frontend cannot verify
/// them: no head it trusts covers them yet. But a client may hold a newer
/// checkpoint than the head the sequencer reported to this frontend (the
/// `checkpoint` object and the sequencer's state are updated separately),
/// and refusing its tiles would break it for that moment; tlog-tiles
/// clients verify every tile against their checkpoint anyway, and the short
/// lifetime keeps any cache from holding unverified bytes for long. Once
/// the published head covers them, they are verified like the rest.
pub(crate) async fn tile(shard: &Shard, path: &str) -> Result<Response, ApiError> {
    let parsed =
        parse_path(path).map_err(|e| ApiError::NotFound(format!("not a tile path: {e}")))?;
    let full = match parsed {
        TilePath::Hash(id) => id.is_full(),
        TilePath::Entries(id) => id.is_full(),
    };
    // Hot full tiles were verified when cached and stay correct for every
    // later head: no need to ask the sequencer for one.
    if full && let Some(bytes) = shard.tiles.cached(parsed) {
        return Ok(object_response(
            bytes,
            TILE_CONTENT_TYPE,
            FULL_TILE_CACHE_CONTROL,
        ));
    }
    let needed = match parsed {
        TilePath::Hash(id) => id.min_tree_size(),
        TilePath::Entries(id) => id.min_tree_size(),
    };
    let heads = shard.heads_covering(needed).await?;
    let trusted = heads.trusted();
    let object = shard
        .tiles
        .get_verified(parsed, trusted)
        .await
        .map_err(from_storage)?
        .ok_or_else(|| ApiError::NotFound(format!("tile {parsed} does not exist")))?;
    let (bytes, cache) = match object {
        TileObject::Verified(bytes) if full => (bytes, FULL_TILE_CACHE_CONTROL),
        TileObject::Verified(bytes) | TileObject::BeyondHead(bytes) => {
            (bytes, PARTIAL_TILE_CACHE_CONTROL)
        }
    };
    Ok(object_response(bytes, TILE_CONTENT_TYPE, cache))
}
