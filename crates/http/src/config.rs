//! [`HttpConfig`]: every limit of the server, as a binary reads it from
//! TOML (typically an `[http]` table).

use std::time::Duration;

use serde::Deserialize;

use crate::body::BodyLimits;

/// Default of [`HttpConfig::header_read_timeout_ms`]: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default of [`HttpConfig::idle_timeout_ms`]: 60 s.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default of [`HttpConfig::http2_keep_alive_interval_ms`]: 20 s.
pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL_MS: u64 = 20_000;
/// Default of [`HttpConfig::http2_keep_alive_timeout_ms`]: 10 s.
pub const DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT_MS: u64 = 10_000;
/// Default of [`HttpConfig::http2_max_concurrent_streams`].
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 4;
/// Default of [`HttpConfig::max_header_bytes`]: 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default of [`HttpConfig::body_stall_timeout_ms`]: 5 s.
pub const DEFAULT_BODY_STALL_TIMEOUT_MS: u64 = 5_000;
/// Default of [`HttpConfig::body_min_rate_grace_ms`]: 5 s.
pub const DEFAULT_BODY_MIN_RATE_GRACE_MS: u64 = 5_000;
/// Default of [`HttpConfig::body_min_bytes_per_second`].
pub const DEFAULT_BODY_MIN_BYTES_PER_SECOND: u64 = 256;
/// Default of [`HttpConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of [`HttpConfig::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 32;
/// Default of [`HttpConfig::reserved_descriptors`].
pub const DEFAULT_RESERVED_DESCRIPTORS: usize = 256;
/// Default of [`HttpConfig::shutdown_grace_ms`]: 10 s.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;

/// Longest accepted time setting: one day, in milliseconds. Longer values
/// are certainly mistakes, and bounding them keeps deadline arithmetic far
/// from overflow.
pub const MAX_TIME_MS: u64 = 24 * 60 * 60 * 1000;
/// Smallest accepted [`HttpConfig::max_header_bytes`]: hyper's smallest
/// HTTP/1 read buffer.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;
/// Largest accepted [`HttpConfig::max_header_bytes`]: 1 MiB.
pub const MAX_HEADER_BYTES_LIMIT: usize = 1024 * 1024;

/// The limits of one HTTP listener. Every field has a default (see
/// [`Default`]), so an empty TOML table is a valid configuration; unknown
/// fields are errors, so a misspelt option never silently takes its
/// default. Times are in milliseconds (at most [`MAX_TIME_MS`]).
///
/// How the limits work together against hostile clients:
///
/// * a client that sends its request head slowly, or opens connections and
///   sends nothing, is disconnected after `header_read_timeout_ms`;
/// * a client that sends its body slowly is answered 408 (see
///   [`body_stall_timeout_ms`](Self::body_stall_timeout_ms));
/// * a client (an IP address; an IPv6 /64) holds at most
///   `max_connections_per_ip` connections, and so at most
///   `max_connections_per_ip × http2_max_concurrent_streams` requests at
///   once (HTTP/1.1 carries one request at a time). Keep that product
///   below the request slots of the served router so that no one client
///   can take them all: the defaults give 128, an eighth of the frontend's
///   1024 slots and half of the witness's 256. A load generator or a
///   submitter with more parallel connections than the per-IP cap from one
///   address sees the excess connections closed: raise the cap for it;
/// * all clients together hold at most `max_connections` connections,
///   which [`crate::Server::new`] lowers to fit the descriptor limit, so
///   the process never runs out of descriptors because of clients.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Longest time a client may take to send a complete request head
    /// (request line and headers), counted from when the server starts
    /// waiting for it: from the accept for a connection's first request,
    /// from the end of the previous response for the next ones. A slower
    /// client is disconnected without an answer. On HTTP/1.1 this is also
    /// the longest idle time between two requests of a kept-alive
    /// connection (hyper starts this timer when it starts waiting). Default
    /// 10 000 (10 s).
    pub header_read_timeout_ms: u64,
    /// Longest time a connection with no request in flight stays open
    /// after its first request; it is then closed gracefully (HTTP/2 gets a
    /// GOAWAY). Matters for HTTP/2, whose clients answer keep-alive pings
    /// while idle; on HTTP/1.1 `header_read_timeout_ms` closes idle
    /// connections first when it is shorter. Default 60 000 (60 s).
    pub idle_timeout_ms: u64,
    /// Interval of the HTTP/2 keep-alive pings the server sends, to find
    /// peers that vanished without closing; 0 sends none. Default 20 000
    /// (20 s).
    pub http2_keep_alive_interval_ms: u64,
    /// Time a peer has to acknowledge a keep-alive ping before the
    /// connection is closed. Default 10 000 (10 s).
    pub http2_keep_alive_timeout_ms: u64,
    /// Most requests (streams) one HTTP/2 connection may have open at
    /// once; clients queue the rest. See the product with
    /// `max_connections_per_ip` above. Default 4, at least 1.
    pub http2_max_concurrent_streams: u32,
    /// Largest request head in bytes: on HTTP/1.1 the request line and
    /// headers (more is answered 431), on HTTP/2 the decoded header list.
    /// Default 16 384 (16 KiB), from 8 192 to 1 048 576.
    pub max_header_bytes: usize,
    /// Longest wait for the next bytes of a request body once the handler
    /// reads it; a body that stalls longer is answered 408 (Request
    /// Timeout) with a text body. Default 5 000 (5 s), at least 1.
    pub body_stall_timeout_ms: u64,
    /// Time a request body may take before the minimum rate applies,
    /// counted from when the handler starts reading it. Default 5 000
    /// (5 s).
    pub body_min_rate_grace_ms: u64,
    /// Slowest accepted body upload, in bytes per second on average: each
    /// byte received extends the body's deadline (grace period from the
    /// first read) by `1 / body_min_bytes_per_second` s, so a body that
    /// trickles is answered 408 soon after the grace period. 0 disables
    /// the rate rule (the stall rule stays). Default 256.
    pub body_min_bytes_per_second: u64,
    /// Most connections open at once from all clients together; excess
    /// connections are closed at once, before any read, and counted.
    /// Lowered at start to the descriptor limit less
    /// `reserved_descriptors`. Default 4096, at least 1.
    pub max_connections: usize,
    /// Most connections open at once from one client: one IPv4 address or
    /// one IPv6 /64 (an IPv6 client usually holds a whole /64). Excess
    /// connections are closed at once, before any read, and counted.
    /// Default 32, from 1 to `max_connections`.
    pub max_connections_per_ip: usize,
    /// Descriptors left to the rest of the process (storage, outgoing
    /// connections, logs) when `max_connections` is fitted to the
    /// descriptor limit. Default 256.
    pub reserved_descriptors: usize,
    /// After shutdown starts (no more connections accepted), the longest
    /// time in-flight requests get to finish; connections still open then
    /// are closed. Default 10 000 (10 s).
    pub shutdown_grace_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            http2_keep_alive_interval_ms: DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL_MS,
            http2_keep_alive_timeout_ms: DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT_MS,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            body_stall_timeout_ms: DEFAULT_BODY_STALL_TIMEOUT_MS,
            body_min_rate_grace_ms: DEFAULT_BODY_MIN_RATE_GRACE_MS,
            body_min_bytes_per_second: DEFAULT_BODY_MIN_BYTES_PER_SECOND,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            reserved_descriptors: DEFAULT_RESERVED_DESCRIPTORS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
        }
    }
}

/// A setting of [`HttpConfig`] that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The named field is out of range.
    #[error("{field} {reason}")]
    BadSetting {
        /// The field, as spelt in TOML.
        field: &'static str,
        /// What is wrong, e.g. "must be at least 1".
        reason: String,
    },
    /// The descriptor limit leaves no room for client connections.
    #[error(
        "the open-file limit of {limit} descriptors leaves none for connections after \
         reserved_descriptors = {reserved}; raise the limit (ulimit -n) or lower reserved_descriptors"
    )]
    NoDescriptors {
        /// The soft RLIMIT_NOFILE.
        limit: u64,
        /// [`HttpConfig::reserved_descriptors`].
        reserved: usize,
    },
}

fn bad(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::BadSetting {
        field,
        reason: reason.into(),
    }
}

impl HttpConfig {
    /// Checks every field against its documented range; the error names
    /// the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let times = [
            ("header_read_timeout_ms", self.header_read_timeout_ms, 1),
            ("idle_timeout_ms", self.idle_timeout_ms, 1),
            (
                "http2_keep_alive_interval_ms",
                self.http2_keep_alive_interval_ms,
                0,
            ),
            (
                "http2_keep_alive_timeout_ms",
                self.http2_keep_alive_timeout_ms,
                1,
            ),
            ("body_stall_timeout_ms", self.body_stall_timeout_ms, 1),
            ("body_min_rate_grace_ms", self.body_min_rate_grace_ms, 0),
            ("shutdown_grace_ms", self.shutdown_grace_ms, 0),
        ];
        for (field, value, min) in times {
            if value < min {
                return Err(bad(field, format!("must be at least {min}")));
            }
            if value > MAX_TIME_MS {
                return Err(bad(field, format!("must be at most {MAX_TIME_MS} (a day)")));
            }
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(bad("http2_max_concurrent_streams", "must be at least 1"));
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES_LIMIT).contains(&self.max_header_bytes) {
            return Err(bad(
                "max_header_bytes",
                format!("must be from {MIN_HEADER_BYTES} to {MAX_HEADER_BYTES_LIMIT}"),
            ));
        }
        if self.max_connections == 0 {
            return Err(bad("max_connections", "must be at least 1"));
        }
        if self.max_connections_per_ip == 0 || self.max_connections_per_ip > self.max_connections {
            return Err(bad(
                "max_connections_per_ip",
                format!(
                    "must be from 1 to max_connections ({})",
                    self.max_connections
                ),
            ));
        }
        Ok(())
    }

    /// [`Self::header_read_timeout_ms`] as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// [`Self::idle_timeout_ms`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// [`Self::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The request-body rules, for [`crate::BodyTimeoutLayer`].
    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            stall_timeout: Duration::from_millis(self.body_stall_timeout_ms),
            min_rate_grace: Duration::from_millis(self.body_min_rate_grace_ms),
            min_bytes_per_second: self.body_min_bytes_per_second,
        }
    }
}

/// The connection cap actually enforced: `max_connections`, lowered so
/// that connections plus `reserved` descriptors fit in the soft descriptor
/// limit `soft_limit` (`None` when there is no limit).
pub(crate) fn effective_max_connections(
    max_connections: usize,
    reserved: usize,
    soft_limit: Option<u64>,
) -> Result<usize, ConfigError> {
    let Some(limit) = soft_limit else {
        return Ok(max_connections);
    };
    let room = limit.saturating_sub(reserved as u64);
    if room == 0 {
        return Err(ConfigError::NoDescriptors { limit, reserved });
    }
    Ok(usize::try_from(room).map_or(max_connections, |room| room.min(max_connections)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_takes_the_documented_defaults() {
        let c: HttpConfig = toml::from_str("").unwrap();
        assert_eq!(c, HttpConfig::default());
        c.validate().unwrap();
        assert_eq!(c.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(c.body_limits().min_bytes_per_second, 256);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let e = toml::from_str::<HttpConfig>("max_conections = 5\n").unwrap_err();
        assert!(e.to_string().contains("max_conections"), "{e}");
    }

    #[test]
    fn out_of_range_settings_name_their_field() {
        let cases = [
            ("header_read_timeout_ms = 0", "header_read_timeout_ms"),
            ("idle_timeout_ms = 86400001", "idle_timeout_ms"),
            (
                "http2_max_concurrent_streams = 0",
                "http2_max_concurrent_streams",
            ),
            ("max_header_bytes = 100", "max_header_bytes"),
            ("max_connections = 0", "max_connections"),
            (
                "max_connections = 10\nmax_connections_per_ip = 11",
                "max_connections_per_ip",
            ),
            ("body_stall_timeout_ms = 0", "body_stall_timeout_ms"),
        ];
        for (text, field) in cases {
            let c: HttpConfig = toml::from_str(text).unwrap();
            let e = c.validate().unwrap_err();
            assert!(
                matches!(&e, ConfigError::BadSetting { field: f, .. } if *f == field),
                "{text}: {e}"
            );
        }
        let c: HttpConfig = toml::from_str("body_min_bytes_per_second = 0").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn the_connection_cap_is_fitted_to_the_descriptor_limit() {
        assert_eq!(effective_max_connections(4096, 256, None), Ok(4096));
        assert_eq!(effective_max_connections(4096, 256, Some(1024)), Ok(768));
        assert_eq!(effective_max_connections(100, 256, Some(1 << 20)), Ok(100));
        assert_eq!(
            effective_max_connections(100, 256, Some(200)),
            Err(ConfigError::NoDescriptors {
                limit: 200,
                reserved: 256
            })
        );
    }
}
