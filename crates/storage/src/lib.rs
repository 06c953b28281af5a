//! One shard's C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>) in object
//! storage: the [`TileStore`].
//!
//! A shard's objects live under a key prefix (e.g. `dev/`) with exactly the
//! tlog-tiles names, so the prefix can be served by any static HTTP server or
//! CDN:
//!
//! | key | what | mutability |
//! |---|---|---|
//! | `checkpoint` | the latest published signed checkpoint note | overwritten, never with a smaller tree |
//! | `tile/<L>/<N>` | full hash tile | create-only, immutable |
//! | `tile/<L>/<N>.p/<W>` | partial hash tile of width `W` | create-only; old widths may be garbage-collected |
//! | `tile/entries/<N>[.p/<W>]` | entry bundles of 128-byte Sigsum leaves | as hash tiles |
//!
//! **Backends**: any `object_store` store with conditional writes
//! ([`TileStore::new`]); a local directory ([`TileStore::local`], the
//! checkpoint fenced by an OS file lock); an S3 bucket or S3-compatible
//! server ([`TileStore::s3`], [`S3Config`]: tiles created with
//! `If-None-Match: *`, the checkpoint updated with `If-Match` on the ETag
//! read); a log's tile URL, read-only, over plain HTTP(S)
//! ([`TileStore::http`], [`HttpConfig`]: any static web server or CDN in
//! front of the objects). [`ObjectStoreConfig`] is the serde configuration
//! of any of them, per shard, which roles embed; [`TileStore::open`] opens
//! it.
//!
//! **Headers**: objects are written with the `Content-Type` and
//! `Cache-Control` a CDN needs ([`ObjectHeaders`]) on stores that keep them
//! (S3); full tiles immutable for a year, partial ones seconds, the
//! checkpoint `no-cache`.
//!
//! **Garbage collection** of superseded partial tiles and bundles:
//! [`TileStore::collect_partials`], never one the published checkpoint can
//! still name (see `gc`).
//!
//! **Write side** (the integrator and publisher on the shard's Raft leader,
//! see `docs/decisions/0002-dev-slice.md`):
//! [`TileStore::write_integration`] writes the bundles and tiles that
//! `cairn_tlog::tile::{BundleBuilder, TileBuilder}` return, create-only: the
//! same bytes again is success (a new leader re-running integration),
//! different bytes is a fatal [`StorageError::Fork`].
//! [`TileStore::resume`] rebuilds the builders after a restart;
//! [`TileStore::put_checkpoint`] publishes a checkpoint that never shrinks,
//! with a fenced write (a compare-and-swap, or an OS file lock for a local
//! directory), so a deposed leader writing late cannot move it back.
//!
//! **Read side** (frontend, collector): [`TileStore::leaves`],
//! [`TileStore::leaf_hash`], [`TileStore::inclusion_proof`],
//! [`TileStore::consistency_proof`] and [`TileStore::root`] compute Merkle
//! data from the tiles of a [`TrustedHead`] (a size whose tiles are written
//! and its root, which the caller trusts), using the plans of
//! `cairn_tlog::proof`. Every tile and bundle is **verified** against that
//! head before use — hash tiles against their parents up to the root, entry
//! bundles against their level-0 tiles — so a corrupt object is reported as
//! [`StorageError::Corrupt`] naming it (or [`StorageError::TreeMismatch`]),
//! never used; [`TileStore::corrupt_reads`] counts such failures.
//! [`TileStore::get_verified`] serves tiles checked the same way;
//! [`TileStore::get`] serves objects verbatim, only checked to decode.
//! Verified full tiles and bundles are cached in memory (so each is verified
//! once); partial ones never are, but the verified right edge of the last
//! few heads is kept.
//!
//! **Errors** are [`StorageError`]s, classified as fatal (halt the shard),
//! retryable (the store was unavailable after [`RETRY_ATTEMPTS`] attempts) or
//! per-request. Every object store call is retried with backoff and limited
//! in time ([`ATTEMPT_TIMEOUT`]); every read is limited in size.
//!
//! **Metrics**: every object store call is timed and its failures counted
//! in the [`StoreMetrics`] of [`TileStoreOptions::metrics`].

mod cache;
mod config;
mod error;
mod gc;
mod headers;
mod key;
mod lock;
mod metrics;
mod read;
mod retry;
mod store;
mod verify;
mod write;

pub use cache::{DEFAULT_CACHE_BYTES, LruMap};
pub use config::{
    DEFAULT_LOCAL_DIR, DEFAULT_S3_REGION, HttpConfig, ObjectStoreConfig, S3_MAX_RETRIES,
    S3_REQUEST_TIMEOUT, S3_RETRY_TIMEOUT, S3Config, client_options,
};
pub use error::{Corruption, StorageError};
pub use gc::{GcReport, MAX_GC_CANDIDATES};
pub use headers::{
    CHECKPOINT_CACHE_CONTROL, CHECKPOINT_CONTENT_TYPE, FULL_TILE_CACHE_CONTROL, ObjectHeaders,
    PARTIAL_TILE_CACHE_CONTROL, TILE_CONTENT_TYPE,
};
pub use key::MAX_KEY_LEN;
pub use metrics::StoreMetrics;
pub use read::{LEAF_SIZE, MAX_LEAVES_PER_CALL};
pub use retry::{ATTEMPT_TIMEOUT, RETRY_ATTEMPTS, RETRY_BASE_DELAY};
pub use store::{
    CHECKPOINT_KEY, CHECKPOINT_LOCK_WAIT, CHECKPOINT_ROUNDS, MAX_BUNDLE_BYTES,
    MAX_CHECKPOINT_BYTES, MAX_IN_FLIGHT, TileStore, TileStoreOptions,
};
pub use verify::{TileObject, TrustedHead};
