//! Bounded retries with exponential backoff and a per-attempt time limit.

use std::future::Future;
use std::time::Duration;

use crate::StorageError;

/// Attempts per object store operation, the first included. Only
/// [retryable](StorageError::is_retryable) failures are retried; remote stores
/// (S3) additionally retry inside `object_store` itself.
pub const RETRY_ATTEMPTS: u32 = 3;

/// Wait before the second attempt; doubled before each later one (100 ms,
/// 200 ms): long enough to ride out a blip, short enough that a request
/// still fails within about a second when the store is down.
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(100);

/// Limit on one attempt of one object store operation. Tiles are at most a
/// few tens of KiB, so an attempt slower than this means a stuck connection
/// or disk, and a fresh attempt is the better bet.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds, fails with a non-retryable error, or has
/// run [`RETRY_ATTEMPTS`] times; each run is cut off after
/// [`ATTEMPT_TIMEOUT`] ([`StorageError::Timeout`]). `op` and `key` label the
/// timeout error and the log lines.
pub(crate) async fn retry<T, F, Fut>(
    op: &'static str,
    key: &str,
    attempt: F,
) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    retry_with_limit(op, key, Some(ATTEMPT_TIMEOUT), attempt).await
}

/// [`retry`] without the per-attempt time limit: each attempt runs to
/// completion before the next one starts. For a write made under the local
/// checkpoint lock: an attempt cut off by a timeout is not necessarily
/// stopped (`LocalFileSystem` writes on a blocking thread that carries on),
/// and such an orphaned write could land after the lock is released — a
/// late write the lock exists to rule out. The caller bounds the wait
/// instead, without cancelling the attempts.
pub(crate) async fn retry_to_completion<T, F, Fut>(
    op: &'static str,
    key: &str,
    attempt: F,
) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    retry_with_limit(op, key, None, attempt).await
}

async fn retry_with_limit<T, F, Fut>(
    op: &'static str,
    key: &str,
    limit: Option<Duration>,
    mut attempt: F,
) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut delay = RETRY_BASE_DELAY;
    let mut tries = 1;
    loop {
        let result = match limit {
            None => attempt().await,
            Some(limit) => match tokio::time::timeout(limit, attempt()).await {
                Ok(result) => result,
                Err(_elapsed) => Err(StorageError::Timeout {
                    op,
                    path: key.to_owned(),
                    after: limit,
                }),
            },
        };
        match result {
            Err(e) if e.is_retryable() && tries < RETRY_ATTEMPTS => {
                tracing::warn!(op, key, attempt = tries, error = %e, "object store operation failed; retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn unavailable() -> StorageError {
        StorageError::Unavailable {
            op: "get",
            path: "tile/0/000".into(),
            source: object_store::Error::Generic {
                store: "test",
                source: "connection reset".into(),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let calls = Cell::new(0);
        let result = retry("get", "k", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < RETRY_ATTEMPTS {
                    Err(unavailable())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), RETRY_ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_the_attempt_limit_with_a_retryable_error() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry("get", "k", || {
            calls.set(calls.get() + 1);
            async { Err(unavailable()) }
        })
        .await;
        assert!(result.unwrap_err().is_retryable());
        assert_eq!(calls.get(), RETRY_ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_and_fatal_errors_are_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry("put", "k", || {
            calls.set(calls.get() + 1);
            async {
                Err(StorageError::Fork {
                    path: "tile/0/000".into(),
                })
            }
        })
        .await;
        assert!(result.unwrap_err().is_fatal());
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_attempt_times_out_and_is_retried() {
        let calls = Cell::new(0);
        let result = retry("get", "k", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n == 1 {
                    // Never completes; paused time jumps to the timeout.
                    std::future::pending::<()>().await;
                }
                Ok(n)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
    }
}
