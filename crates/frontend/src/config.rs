//! What one frontend process and each of its shards may use: sizes, counts
//! and times, each with its default and the reason for it.

use std::sync::Arc;
use std::time::Duration;

use cairn_client::token::TokenVerifier;

/// Largest add-leaf body accepted by default. A well-formed body is 286
/// bytes (three hex lines); 4 KiB leaves room for whitespace mistakes to be
/// reported as 400 rather than 413, and nothing more.
pub const DEFAULT_MAX_ADD_LEAF_BODY: usize = 4096;

/// How long add-leaf waits for a leaf to be committed and then included in
/// a published (cosigned) tree head before it answers 202 (Sigsum clients
/// re-POST until they get 200). With local witnesses publication takes
/// milliseconds; remote witnesses may need a good part of this.
pub const DEFAULT_SUBMIT_WAIT: Duration = Duration::from_secs(3);

/// Most leaves the batcher puts into one `AddLeaves` call.
pub const DEFAULT_BATCH_MAX_LEAVES: usize = 256;

/// Longest the batcher holds a submission while it waits for more to join
/// its batch: the latency a lone submitter pays for batching.
pub const DEFAULT_BATCH_MAX_DELAY: Duration = Duration::from_millis(5);

/// Submissions waiting for a batch slot; beyond this add-leaf answers 503.
pub const DEFAULT_SUBMIT_QUEUE: usize = 4096;

/// `AddLeaves` calls one shard may have outstanding at once. Each waits up
/// to the submit wait, so this bounds both sequencer load and frontend
/// memory: at most `batches × batch size` leaves are in flight.
pub const DEFAULT_MAX_BATCHES_IN_FLIGHT: usize = 16;

/// Most leaves one get-leaves response carries (log-go's default
/// `max-range`); clients ask again from where the response ended.
pub const DEFAULT_MAX_GET_LEAVES: u64 = 512;

/// Time limit for the sequencer's read calls (`GetTreeHeads`,
/// `GetLeafIndex`), which answer from memory and RocksDB: the deadline
/// within which the sequencer pool tries node after node (each attempt is
/// bounded by the pool's own attempt limit).
pub const DEFAULT_SEQUENCER_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time limit for a whole HTTP request, body upload included.
/// Must exceed the submit wait, or add-leaf could never answer 202.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time limit for checking one submit token against DNS: both
/// lookups (`_sigsum_v1`, then `_sigsum_v0` after NXDOMAIN) with all the
/// resolver's attempts. A name server that does not answer in time gets
/// add-leaf a 503 with `Retry-After`, well before the request timeout
/// would answer 504; a healthy resolver answers in milliseconds, or in
/// about a second when it must ask the domain's servers first.
pub const DEFAULT_TOKEN_TIMEOUT: Duration = Duration::from_millis(2500);

/// Default number of requests served at once; more are refused with 503
/// rather than queued, so that overload is visible to clients at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;

/// Upper bounds on configuration values: each keeps a mistyped setting
/// from disabling a limit (a batch must fit in one gRPC message, a wait in
/// the `u32` milliseconds of `AddLeavesRequest.wait_ms`).
const MAX_BATCH_LEAVES: usize = 4096;
const MAX_SUBMIT_WAIT: Duration = Duration::from_secs(60);
const MAX_BATCH_DELAY: Duration = Duration::from_secs(1);
const MAX_GET_LEAVES: u64 = 65_536;

/// Limits of one shard's endpoints. [`Default`] gives the documented
/// defaults; [`crate::router`] rejects zero or out-of-range values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardLimits {
    /// Largest add-leaf body in bytes; larger bodies get 413.
    pub max_add_leaf_body: usize,
    /// How long add-leaf waits for commitment and publication before
    /// answering 202, from the request's arrival; what is left of it when a
    /// batch leaves is the `wait_ms` sent to the sequencer. At most 60 s.
    pub submit_wait: Duration,
    /// Most leaves per `AddLeaves` call, 1..=4096.
    pub batch_max_leaves: usize,
    /// Longest a submission waits for others to join its batch, ≤ 1 s.
    pub batch_max_delay: Duration,
    /// Submissions queued for the batcher; a full queue answers 503.
    pub submit_queue: usize,
    /// Concurrent `AddLeaves` calls.
    pub max_batches_in_flight: usize,
    /// Most leaves per get-leaves response, 1..=65536.
    pub max_get_leaves: u64,
    /// Time limit of the sequencer's read calls, retries on other nodes
    /// included.
    pub sequencer_timeout: Duration,
}

impl Default for ShardLimits {
    fn default() -> Self {
        ShardLimits {
            max_add_leaf_body: DEFAULT_MAX_ADD_LEAF_BODY,
            submit_wait: DEFAULT_SUBMIT_WAIT,
            batch_max_leaves: DEFAULT_BATCH_MAX_LEAVES,
            batch_max_delay: DEFAULT_BATCH_MAX_DELAY,
            submit_queue: DEFAULT_SUBMIT_QUEUE,
            max_batches_in_flight: DEFAULT_MAX_BATCHES_IN_FLIGHT,
            max_get_leaves: DEFAULT_MAX_GET_LEAVES,
            sequencer_timeout: DEFAULT_SEQUENCER_TIMEOUT,
        }
    }
}

impl ShardLimits {
    /// Checks every value is usable: non-zero and within its upper bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: &str| {
            Err(ConfigError::BadSetting {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.max_add_leaf_body == 0 {
            return bad("max_add_leaf_body", "must be positive");
        }
        if self.submit_wait.is_zero() || self.submit_wait > MAX_SUBMIT_WAIT {
            return bad("submit_wait", "must be between 1 ms and 60 s");
        }
        if self.batch_max_leaves == 0 || self.batch_max_leaves > MAX_BATCH_LEAVES {
            return bad("batch_max_leaves", "must be between 1 and 4096");
        }
        if self.batch_max_delay > MAX_BATCH_DELAY {
            return bad("batch_max_delay", "must be at most 1 s");
        }
        if self.submit_queue == 0 {
            return bad("submit_queue", "must be positive");
        }
        if self.max_batches_in_flight == 0 {
            return bad("max_batches_in_flight", "must be positive");
        }
        if self.max_get_leaves == 0 || self.max_get_leaves > MAX_GET_LEAVES {
            return bad("max_get_leaves", "must be between 1 and 65536");
        }
        if self.sequencer_timeout.is_zero() {
            return bad("sequencer_timeout", "must be positive");
        }
        Ok(())
    }
}

/// Settings shared by every shard of one frontend.
#[derive(Clone, Debug)]
pub struct FrontendConfig {
    /// Time limit of one HTTP request, body upload included (tower-http
    /// timeout; answered with 504 and a text body). Must exceed every
    /// shard's `submit_wait`.
    pub request_timeout: Duration,
    /// Requests served at once across all shards; more get 503 at once.
    pub max_concurrent_requests: usize,
    /// The externally visible URL the shards are mounted under, without a
    /// trailing slash (e.g. `https://log.example.org`), shown on the info
    /// pages. `None`: `http://` and the request's `Host` header.
    pub public_base_url: Option<String>,
    /// Checks add-leaf's `sigsum-token` header against the submitter's
    /// DNS, before the leaf signature (log-go's order). A token that DNS
    /// says is not valid for the shard's log key is refused with 400; a
    /// lookup that gets no answer (timeout, SERVFAIL) with 503, since the
    /// token may well be valid. Successes are cached per shard for
    /// [`crate::TOKEN_CACHE_TTL`], at most [`crate::TOKEN_CACHE_ENTRIES`]
    /// of them. `None` (the default): the header is only parsed, and a
    /// well-formed token is accepted unchecked.
    pub token_verifier: Option<Arc<TokenVerifier>>,
    /// Time limit of one token check (all its DNS lookups); past it
    /// add-leaf answers 503 with `Retry-After`. With a token verifier set,
    /// it plus any shard's `submit_wait` must stay below
    /// `request_timeout`, so that a slow DNS answer followed by a full
    /// submit wait still gets its 202 rather than a 504. Default
    /// [`DEFAULT_TOKEN_TIMEOUT`].
    pub token_timeout: Duration,
    /// Whether every request gets a `tracing` span with its request id
    /// (made up if the client sent none, and echoed): the root of its
    /// trace and the `request_id` of its log events. It costs about a
    /// tenth of the cheapest reads' throughput, so a server turns it on
    /// when something consumes it (JSON logs, trace export). Without it a
    /// client's `x-request-id` is still echoed. Default false.
    pub request_spans: bool,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            public_base_url: None,
            token_verifier: None,
            token_timeout: DEFAULT_TOKEN_TIMEOUT,
            request_spans: false,
        }
    }
}

impl FrontendConfig {
    /// Checks the values are usable: non-zero limits, an http(s) base URL.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.request_timeout.is_zero() {
            return Err(ConfigError::BadSetting {
                field: "request_timeout",
                reason: "must be positive".to_owned(),
            });
        }
        // Its relation to the request timeout is checked by the router, and
        // only with a verifier: without one it is never used.
        if self.token_timeout.is_zero() {
            return Err(ConfigError::BadSetting {
                field: "token_timeout",
                reason: "must be positive".to_owned(),
            });
        }
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::BadSetting {
                field: "max_concurrent_requests",
                reason: "must be positive".to_owned(),
            });
        }
        if let Some(url) = &self.public_base_url {
            // Printed on the info pages: one plain http(s) URL, nothing else.
            let scheme = url.starts_with("http://") || url.starts_with("https://");
            let printable = url.len() <= 1024 && url.bytes().all(|b| b.is_ascii_graphic());
            if !scheme || !printable {
                return Err(ConfigError::BadSetting {
                    field: "public_base_url",
                    reason: "must be an http:// or https:// URL without spaces".to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// Why [`crate::router`] refused its configuration. Always a deployment
/// mistake: nothing is retried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A shard name is not one URL path segment of `[A-Za-z0-9._-]`, at
    /// most 64 characters, other than `.` and `..`.
    #[error("invalid shard name {0:?}: use 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadShardName(String),
    /// Two shards share a name (and so a URL prefix).
    #[error("shard name {0:?} is used twice")]
    DuplicateShard(String),
    /// A setting is zero, out of range or malformed.
    #[error("{field}: {reason}")]
    BadSetting {
        /// The field's name in [`ShardLimits`] or [`FrontendConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Checks a shard name: it becomes a URL path segment and a gRPC field.
pub(crate) fn validate_shard_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        // `/shards.json` is the index.
        && name != "shards.json"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadShardName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ShardLimits::default().validate(), Ok(()));
        assert_eq!(FrontendConfig::default().validate(), Ok(()));
    }

    #[test]
    fn zero_or_oversized_limits_are_rejected_by_name() {
        let limits = ShardLimits {
            batch_max_leaves: 5000,
            ..ShardLimits::default()
        };
        assert!(matches!(
            limits.validate(),
            Err(ConfigError::BadSetting {
                field: "batch_max_leaves",
                ..
            })
        ));
        let limits = ShardLimits {
            submit_wait: Duration::ZERO,
            ..ShardLimits::default()
        };
        assert!(limits.validate().is_err());
        let config = FrontendConfig {
            max_concurrent_requests: 0,
            ..FrontendConfig::default()
        };
        assert!(config.validate().is_err());
        for url in ["log.example.org", "https://a b", "ftp://x"] {
            let config = FrontendConfig {
                public_base_url: Some(url.to_owned()),
                ..FrontendConfig::default()
            };
            assert!(config.validate().is_err(), "{url}");
        }
    }

    #[test]
    fn shard_names_must_be_one_safe_path_segment() {
        for good in ["dev", "log-2025.h1", "A_b"] {
            assert_eq!(validate_shard_name(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(validate_shard_name(bad).is_err(), "{bad:?}");
        }
    }
}
