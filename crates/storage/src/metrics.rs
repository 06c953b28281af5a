//! Latency and error metrics of every object store call a [`TileStore`]
//! makes: [`StoreMetrics`], recorded by a wrapper around the store
//! ([`Instrumented`]) so that no call site can forget them.
//!
//! [`TileStore`]: crate::TileStore

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Histogram buckets in seconds: 1 ms doubling to about 33 s, past the
/// 30 s [`ATTEMPT_TIMEOUT`](crate::ATTEMPT_TIMEOUT) that cuts a call off.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    shard: String,
    op: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    shard: String,
    op: &'static str,
    kind: &'static str,
}

#[derive(Debug)]
struct Families {
    duration: Family<CallLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
}

/// Object store metrics: a latency histogram and an error counter for every
/// call a [`TileStore`](crate::TileStore) makes to its object store, by
/// shard and operation.
///
/// The contract:
///
/// * A handle names its `shard` label ([`for_shard`](Self::for_shard)) and
///   shares its metric families with every handle made from it: a process
///   makes one with [`new`](Self::new), gives each store
///   `metrics.for_shard(name)` through
///   [`TileStoreOptions::metrics`](crate::TileStoreOptions::metrics), and
///   [registers](Self::register) the families once. Nothing is global; the
///   default handle records into families no registry sees.
/// * Every call to the object store is recorded once when it ends — for a
///   GET, when its body has been read, for a listing when the listing ends —
///   in `object_store_operation_duration_seconds{shard,op,outcome}`. `op` is
///   `get`, `head`, `get_ranges`, `put` (overwrite), `put_create`
///   (create-only), `put_update` (conditional on a version), `put_multipart`,
///   `delete`, `list`, `list_with_delimiter`, `copy` or `rename`. `outcome`
///   is `ok`, `not_found` (a read of a missing object), `conflict` (a
///   conditional write whose condition failed: expected with create-only
///   tiles and the checkpoint compare-and-swap), `error`, or `cancelled`
///   (the caller stopped waiting, e.g. [`ATTEMPT_TIMEOUT`](crate::ATTEMPT_TIMEOUT)).
///   One call may be several HTTP requests: `object_store` retries some
///   failures itself; a listing or a batch delete is one call.
/// * Calls with outcome `error` or `cancelled` also count in
///   `object_store_errors_total{shard,op,kind}`, `kind` naming the cause:
///   `connect`, `timeout`, `request` or `interrupted` (the connection failed
///   mid-request), `decode`, `http` (another transport failure), `status`
///   (an HTTP error status such as 500 or 503), `permission_denied`,
///   `unauthenticated`, `not_supported`, `invalid_path`, `io` (a local
///   store's filesystem), `cancelled`, `other`.
#[derive(Clone)]
pub struct StoreMetrics {
    families: Arc<Families>,
    shard: Arc<str>,
}

impl StoreMetrics {
    /// New, empty metric families, labelled with an empty `shard` until
    /// [`for_shard`](Self::for_shard).
    pub fn new() -> Self {
        Self {
            families: Arc::new(Families {
                duration: Family::new_with_constructor(latency_buckets),
                errors: Family::default(),
            }),
            shard: Arc::from(""),
        }
    }

    /// A handle recording into the same families under `shard`.
    pub fn for_shard(&self, shard: &str) -> Self {
        Self {
            families: Arc::clone(&self.families),
            shard: Arc::from(shard),
        }
    }

    /// Adds the families to `registry` (whose prefix, e.g. `cairn`, they
    /// take). Register them once per registry, not once per shard.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "object_store_operation_duration",
            "Object store calls by operation and outcome, and how long each took",
            Unit::Seconds,
            self.families.duration.clone(),
        );
        registry.register(
            "object_store_errors",
            "Object store calls that failed or were cut off, by operation and cause",
            self.families.errors.clone(),
        );
    }

    fn record(&self, op: &'static str, started: Instant, outcome: Outcome) {
        let (outcome, kind) = match outcome {
            Outcome::Ok => ("ok", None),
            Outcome::NotFound => ("not_found", None),
            Outcome::Conflict => ("conflict", None),
            Outcome::Error(kind) => ("error", Some(kind)),
            Outcome::Cancelled => ("cancelled", Some("cancelled")),
        };
        self.families
            .duration
            .get_or_create(&CallLabels {
                shard: self.shard.to_string(),
                op,
                outcome,
            })
            .observe(started.elapsed().as_secs_f64());
        if let Some(kind) = kind {
            self.families
                .errors
                .get_or_create(&ErrorLabels {
                    shard: self.shard.to_string(),
                    op,
                    kind,
                })
                .inc();
        }
    }
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreMetrics")
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

/// Equal when they record into the same families under the same shard.
impl PartialEq for StoreMetrics {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.families, &other.families) && self.shard == other.shard
    }
}

impl Eq for StoreMetrics {}

#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    NotFound,
    Conflict,
    Error(&'static str),
    Cancelled,
}

impl Outcome {
    fn of<T>(result: &object_store::Result<T>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e) => Self::of_error(e),
        }
    }

    fn of_error(e: &object_store::Error) -> Self {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => Self::NotFound,
            E::AlreadyExists { .. } | E::Precondition { .. } => Self::Conflict,
            e => Self::Error(error_kind(e)),
        }
    }
}

/// The `kind` label of a failed call (see [`StoreMetrics`]).
fn error_kind(e: &object_store::Error) -> &'static str {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. } => "permission_denied",
        E::Unauthenticated { .. } => "unauthenticated",
        E::NotSupported { .. } | E::NotImplemented { .. } => "not_supported",
        E::InvalidPath { .. } => "invalid_path",
        E::Generic { source, .. } => generic_kind(source.as_ref()),
        _ => "other",
    }
}

/// Walks the source chain of a `Generic` error for the transport failure
/// `object_store`'s HTTP client reports, or a local filesystem error.
fn generic_kind(source: &(dyn std::error::Error + 'static)) -> &'static str {
    use object_store::client::HttpErrorKind as K;
    let mut next = Some(source);
    let mut saw_status = false;
    while let Some(e) = next {
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            return match http.kind() {
                K::Connect => "connect",
                K::Timeout => "timeout",
                K::Request => "request",
                K::Interrupted => "interrupted",
                K::Decode => "decode",
                _ => "http",
            };
        }
        if e.downcast_ref::<std::io::Error>().is_some() {
            return "io";
        }
        // `object_store`'s error for a non-2xx answer is not public; its
        // message is the one stable trace of it.
        saw_status |= e.to_string().contains("status code");
        next = e.source();
    }
    if saw_status { "status" } else { "other" }
}

/// Records one call when dropped unfinished (as `cancelled`) or when
/// [`finish`](Self::finish)ed.
struct Call {
    metrics: StoreMetrics,
    op: &'static str,
    started: Instant,
    done: bool,
}

impl Call {
    fn start(metrics: &StoreMetrics, op: &'static str) -> Self {
        Self {
            metrics: metrics.clone(),
            op,
            started: Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if !self.done {
            self.done = true;
            self.metrics.record(self.op, self.started, outcome);
        }
    }

    fn finish_with<T>(mut self, result: object_store::Result<T>) -> object_store::Result<T> {
        self.finish(Outcome::of(&result));
        result
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

/// A stream that records its [`Call`] when it ends: at the first error, or
/// when exhausted; dropped before either, the call counts as cancelled.
struct Recorded<T> {
    inner: BoxStream<'static, object_store::Result<T>>,
    call: Call,
}

impl<T> Stream for Recorded<T> {
    type Item = object_store::Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(None) => self.call.finish(Outcome::Ok),
            Poll::Ready(Some(Err(e))) => {
                let outcome = Outcome::of_error(e);
                self.call.finish(outcome);
            }
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        item
    }
}

fn recorded<T: Send + 'static>(
    inner: BoxStream<'static, object_store::Result<T>>,
    call: Call,
) -> BoxStream<'static, object_store::Result<T>> {
    Box::pin(Recorded { inner, call })
}

/// An object store that records every call in [`StoreMetrics`] and
/// otherwise passes it to `inner` unchanged. Displays as `inner`.
pub(crate) struct Instrumented {
    inner: Arc<dyn ObjectStore>,
    metrics: StoreMetrics,
}

impl Instrumented {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }

    fn call(&self, op: &'static str) -> Call {
        Call::start(&self.metrics, op)
    }
}

impl fmt::Display for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

#[async_trait]
impl ObjectStore for Instrumented {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let op = match opts.mode {
            PutMode::Overwrite => "put",
            PutMode::Create => "put_create",
            PutMode::Update(_) => "put_update",
        };
        let call = self.call(op);
        call.finish_with(self.inner.put_opts(location, payload, opts).await)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // Only the start of the upload is timed; its parts are not.
        let call = self.call("put_multipart");
        call.finish_with(self.inner.put_multipart_opts(location, opts).await)
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let mut call = self.call(if options.head { "head" } else { "get" });
        let mut result = match self.inner.get_opts(location, options).await {
            Ok(result) => result,
            Err(e) => return call.finish_with(Err(e)),
        };
        // The call ends when the body has been read.
        result.payload = match result.payload {
            GetResultPayload::Stream(stream) => GetResultPayload::Stream(recorded(stream, call)),
            file @ GetResultPayload::File(..) => {
                call.finish(Outcome::Ok);
                file
            }
        };
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let call = self.call("get_ranges");
        call.finish_with(self.inner.get_ranges(location, ranges).await)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        recorded(self.inner.delete_stream(locations), self.call("delete"))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        recorded(self.inner.list(prefix), self.call("list"))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        recorded(
            self.inner.list_with_offset(prefix, offset),
            self.call("list"),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let call = self.call("list_with_delimiter");
        call.finish_with(self.inner.list_with_delimiter(prefix).await)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let call = self.call("copy");
        call.finish_with(self.inner.copy_opts(from, to, options).await)
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let call = self.call("rename");
        call.finish_with(self.inner.rename_opts(from, to, options).await)
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutMode};
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn scrape(metrics: &StoreMetrics) -> String {
        let mut registry = Registry::with_prefix("cairn");
        metrics.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    fn count(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn every_call_is_timed_by_operation_and_outcome_under_its_shard() {
        let metrics = StoreMetrics::new();
        let store = Instrumented::new(Arc::new(InMemory::new()), metrics.for_shard("dev"));
        let path = Path::from("dev/tile/0/000");
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        store
            .put_opts(&path, Bytes::from_static(b"a").into(), create())
            .await
            .unwrap();
        let again = store
            .put_opts(&path, Bytes::from_static(b"a").into(), create())
            .await;
        assert!(again.is_err());
        assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), "a");
        assert!(store.get(&Path::from("dev/checkpoint")).await.is_err());

        let text = scrape(&metrics);
        let series = |op, outcome| {
            format!(
                "cairn_object_store_operation_duration_seconds_count{{shard=\"dev\",op=\"{op}\",outcome=\"{outcome}\"}}"
            )
        };
        assert_eq!(count(&text, &series("put_create", "ok")), 1, "{text}");
        assert_eq!(count(&text, &series("put_create", "conflict")), 1, "{text}");
        assert_eq!(count(&text, &series("get", "ok")), 1, "{text}");
        assert_eq!(count(&text, &series("get", "not_found")), 1, "{text}");
        // Conflicts and missing objects are expected answers, not errors.
        assert!(!text.contains("cairn_object_store_errors_total{"), "{text}");
    }

    #[tokio::test]
    async fn a_call_dropped_before_it_ends_counts_as_cancelled() {
        let metrics = StoreMetrics::new();
        let store = Instrumented::new(Arc::new(InMemory::new()), metrics.for_shard("dev"));
        let path = Path::from("k");
        store
            .put(&path, Bytes::from_static(b"x").into())
            .await
            .unwrap();
        // The body is never read: the GET has not ended when it is dropped.
        drop(store.get(&path).await.unwrap());
        let text = scrape(&metrics);
        assert_eq!(
            count(
                &text,
                "cairn_object_store_errors_total{shard=\"dev\",op=\"get\",kind=\"cancelled\"}"
            ),
            1,
            "{text}"
        );
    }
}
