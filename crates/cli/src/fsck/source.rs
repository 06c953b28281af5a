//! Where `cairn fsck` reads a log from: a directory or an http(s) URL,
//! both behind `object_store`'s read interface, every read bounded in size
//! and time.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use cairn_roots::Roots;
use futures::StreamExt;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};

/// Retries of one HTTP request inside `object_store` (5xx, resets); a
/// missing object (404) is never retried.
const HTTP_RETRIES: usize = 3;

/// What a read found.
#[derive(Debug)]
pub enum Fetched {
    /// The object's bytes.
    Found(Bytes),
    /// No such object.
    Missing,
    /// The object is larger than the limit of the read.
    TooLarge,
}

/// A log's objects, read relative to its root.
#[derive(Debug, Clone)]
pub struct Source {
    store: Arc<dyn ObjectStore>,
    timeout: Duration,
}

impl Source {
    /// The log at `target`: an `http://` or `https://` URL of the
    /// directory holding `checkpoint` and `tile/`, or a local directory.
    /// Each read (retries included) must finish within `timeout`.
    pub fn open(target: &str, timeout: Duration) -> anyhow::Result<Self> {
        let store: Arc<dyn ObjectStore> =
            if target.starts_with("http://") || target.starts_with("https://") {
                // object_store appends the object's path segments to the
                // URL's; a trailing slash would leave an empty segment.
                let url = target.trim_end_matches('/');
                let options = cairn_storage::client_options(&Roots::bundled())
                    .with_allow_http(true)
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout);
                let retry = RetryConfig {
                    max_retries: HTTP_RETRIES,
                    retry_timeout: timeout,
                    ..RetryConfig::default()
                };
                Arc::new(
                    HttpBuilder::new()
                        .with_url(url)
                        .with_client_options(options)
                        .with_retry(retry)
                        .build()
                        .with_context(|| format!("log URL {target}"))?,
                )
            } else if target.contains("://") {
                bail!("{target}: only http://, https:// and local directories are supported");
            } else {
                if !std::path::Path::new(target).is_dir() {
                    bail!("{target} is not a directory");
                }
                Arc::new(
                    LocalFileSystem::new_with_prefix(target)
                        .with_context(|| format!("log directory {target}"))?,
                )
            };
        Ok(Source { store, timeout })
    }

    /// Reads `path` (relative to the log's root), at most `limit` bytes.
    /// Errors are failures to read (IO, timeouts, server errors), not
    /// statements about the log.
    pub async fn get(&self, path: &str, limit: u64) -> anyhow::Result<Fetched> {
        tokio::time::timeout(self.timeout, self.get_unbounded(path, limit))
            .await
            .with_context(|| format!("{path}: no answer within {:?}", self.timeout))?
    }

    async fn get_unbounded(&self, path: &str, limit: u64) -> anyhow::Result<Fetched> {
        let result = match self.store.get(&ObjectPath::from(path)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::Missing),
            Err(e) => return Err(e).with_context(|| format!("reading {path}")),
        };
        if result.meta.size > limit {
            return Ok(Fetched::TooLarge);
        }
        let mut body = BytesMut::new();
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading {path}"))?;
            if u64::try_from(body.len() + chunk.len()).map_or(true, |n| n > limit) {
                return Ok(Fetched::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Found(body.freeze()))
    }
}
