//! The HTTP headers a log's objects are served with, wherever they are
//! served from: Cairn's frontend sets them on its responses, and objects
//! written to a store that keeps per-object headers (S3) carry them, so a
//! CDN or browser in front of the bucket caches them the same way.
//!
//! Full tiles and bundles never change once written (create-only), so they
//! are cacheable for a year and `immutable`; partial ones are superseded by
//! wider ones as the tree grows (and garbage-collected later), so they live
//! seconds; the `checkpoint` changes with every publication and must be
//! revalidated on every use (architecture.md §3).

use cairn_tlog::tile::parse_path;

use crate::CHECKPOINT_KEY;

/// `Cache-Control` of full tiles and full entry bundles.
pub const FULL_TILE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of partial tiles and bundles: short, since a wider
/// partial or the full tile replaces them as the tree grows.
pub const PARTIAL_TILE_CACHE_CONTROL: &str = "public, max-age=5";

/// `Cache-Control` of the checkpoint: revalidate on every use.
pub const CHECKPOINT_CACHE_CONTROL: &str = "no-cache";

/// `Content-Type` of hash tiles and entry bundles.
pub const TILE_CONTENT_TYPE: &str = "application/octet-stream";

/// `Content-Type` of the checkpoint, a signed note (UTF-8 text).
pub const CHECKPOINT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The `Content-Type` and `Cache-Control` of one object of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectHeaders {
    /// The `Content-Type` value.
    pub content_type: &'static str,
    /// The `Cache-Control` value.
    pub cache_control: &'static str,
}

impl ObjectHeaders {
    /// The headers of the object at `key` (relative to the shard prefix:
    /// `checkpoint`, `tile/0/001.p/7`, ...); `None` for a key that is not
    /// part of a tlog-tiles log.
    pub fn for_key(key: &str) -> Option<Self> {
        if key == CHECKPOINT_KEY {
            return Some(Self {
                content_type: CHECKPOINT_CONTENT_TYPE,
                cache_control: CHECKPOINT_CACHE_CONTROL,
            });
        }
        let path = parse_path(key).ok()?;
        Some(Self {
            content_type: TILE_CONTENT_TYPE,
            cache_control: if path.is_full() {
                FULL_TILE_CACHE_CONTROL
            } else {
                PARTIAL_TILE_CACHE_CONTROL
            },
        })
    }

    /// The same, as `object_store` attributes stored with the object.
    pub(crate) fn attributes(self) -> object_store::Attributes {
        let mut attributes = object_store::Attributes::new();
        attributes.insert(
            object_store::Attribute::ContentType,
            self.content_type.into(),
        );
        attributes.insert(
            object_store::Attribute::CacheControl,
            self.cache_control.into(),
        );
        attributes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_object_gets_its_own_lifetime() {
        let headers = |key| ObjectHeaders::for_key(key).map(|h| h.cache_control);
        assert_eq!(headers("checkpoint"), Some(CHECKPOINT_CACHE_CONTROL));
        assert_eq!(headers("tile/0/000"), Some(FULL_TILE_CACHE_CONTROL));
        assert_eq!(
            headers("tile/entries/x001/234"),
            Some(FULL_TILE_CACHE_CONTROL)
        );
        assert_eq!(headers("tile/1/000.p/3"), Some(PARTIAL_TILE_CACHE_CONTROL));
        assert_eq!(
            headers("tile/entries/000.p/255"),
            Some(PARTIAL_TILE_CACHE_CONTROL)
        );
        assert_eq!(headers("tile/0/0"), None, "not a canonical tile path");
        assert_eq!(headers("index.html"), None);
        let checkpoint = ObjectHeaders::for_key("checkpoint").unwrap();
        assert_eq!(checkpoint.content_type, "text/plain; charset=utf-8");
        let tile = ObjectHeaders::for_key("tile/0/000").unwrap();
        assert_eq!(tile.content_type, "application/octet-stream");
    }
}
