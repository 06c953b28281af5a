//! Serves an axum [`Router`](axum::Router) over TCP so that hostile clients
//! cannot take the server from others: [`Server`] with the limits of an
//! [`HttpConfig`] (read from TOML).
//!
//! | attack | defence | answer |
//! |---|---|---|
//! | slow request head, or a connection that sends nothing | [`HttpConfig::header_read_timeout_ms`] | connection closed |
//! | idle kept-alive connections | header timeout (HTTP/1.1), [`HttpConfig::idle_timeout_ms`] (HTTP/2) | closed (HTTP/2: GOAWAY) |
//! | vanished HTTP/2 peer | keep-alive pings ([`HttpConfig::http2_keep_alive_interval_ms`]) | connection closed |
//! | stalled or trickled request body | [`BodyTimeoutLayer`]: stall timeout and minimum rate | **408** with a text body |
//! | many connections from one client | [`HttpConfig::max_connections_per_ip`] (IPv4 address, IPv6 /64) | closed at once, before any read; counted |
//! | many connections from many clients | [`HttpConfig::max_connections`], fitted to the descriptor limit | closed at once, before any read; counted |
//! | many requests on one HTTP/2 connection | [`HttpConfig::http2_max_concurrent_streams`] | clients queue |
//! | huge request head | [`HttpConfig::max_header_bytes`] | 431 |
//!
//! Also: TCP_NODELAY on every connection; [`raise_nofile_limit`] for the
//! binaries to call at start; graceful shutdown bounded by
//! [`HttpConfig::shutdown_grace_ms`]; [`Stats`] counts refusals and
//! timeouts for `/metrics`; every request carries the client's address as
//! an `axum::extract::ConnectInfo<SocketAddr>` extension.
//!
//! # Error answers made before routing
//!
//! Every error answer is meant to carry a human-readable `text/plain`
//! body. The server's own (408) do; answers a router leaves empty (axum's
//! default 404 and 405, bare-status layers) get one naming the status. Hyper
//! answers some HTTP/1 requests by itself, before any service sees them,
//! with an empty body and no hook: 400 (unparsable request line or header,
//! unsupported version, conflicting `Content-Length`/`Transfer-Encoding`),
//! 414 (URI too long) and 431 (head over [`HttpConfig::max_header_bytes`]).
//! For a connection's first request the socket wrapper recognises that
//! answer exactly (nothing else can be written before a request is
//! dispatched) and sends the same status with a text body instead. What
//! stays without a body, and why:
//!
//! * the same hyper errors on a later request of a kept-alive connection:
//!   there the wrapper cannot tell hyper's answer from the previous
//!   response's last bytes without parsing HTTP itself; clients that reuse
//!   connections are HTTP libraries, which send parseable heads;
//! * HTTP/2 protocol errors, including an over-large header list (the `h2`
//!   crate answers 431 or resets the stream): they are frames, with no
//!   HTTP/1-style text to rewrite, and every HTTP/2 client is a library;
//! * a request head not complete within the header timeout: hyper closes
//!   the connection without an answer (the client is not sending; a 408
//!   would need to bypass hyper's ownership of the socket);
//! * connections refused by a cap: closed before reading, on purpose, so
//!   that refusing costs nothing.

mod body;
mod config;
mod conn;
mod limits;
mod nofile;
mod response;
mod server;
mod stats;

pub use body::{
    BodyLimits, BodyTimeout, BodyTimeoutLayer, BodyTimeoutService, body_timeout_response,
    find_body_timeout,
};
pub use config::{
    ConfigError, DEFAULT_BODY_MIN_BYTES_PER_SECOND, DEFAULT_BODY_MIN_RATE_GRACE_MS,
    DEFAULT_BODY_STALL_TIMEOUT_MS, DEFAULT_HEADER_READ_TIMEOUT_MS,
    DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL_MS, DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT_MS,
    DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_HEADER_BYTES, DEFAULT_RESERVED_DESCRIPTORS,
    DEFAULT_SHUTDOWN_GRACE_MS, HttpConfig, MAX_HEADER_BYTES_LIMIT, MAX_TIME_MS, MIN_HEADER_BYTES,
};
pub use nofile::{NofileLimit, raise_nofile_limit};
pub use server::Server;
pub use stats::Stats;
