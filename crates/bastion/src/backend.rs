//! The backend side: dial out to a bastion and serve an axum app over HTTP/2
//! on that connection, for as long as the process runs.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_roots::Roots;
use cairn_sigsum::{KeyHash, SigningKey};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::tls::{BASTION_ALPN, TlsError, backend_certificate, provider};

/// Default limit on TCP connect plus TLS handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first wait before reconnecting.
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Default cap on the wait between reconnects: a witness behind a bastion
/// that was down is reachable again at most this long after it returns.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How often the backend pings an idle bastion, and how long it waits for
/// the answer: a bastion that vanished without closing TCP (a NAT timeout,
/// a crash behind a load balancer) is noticed within twice this.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Parallel requests the backend serves on one connection; the bastion's
/// request limits apply per request, this bounds them together.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// After shutdown is signalled, in-flight requests get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where and how a backend reaches its bastion.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// The bastion's backend endpoint, `host:port` (`[v6]:port` for IPv6).
    pub bastion: String,
    /// The name the bastion's certificate must carry; `None` means the
    /// host part of [`BackendConfig::bastion`].
    pub server_name: Option<String>,
    /// Root certificates trusted in addition to the web PKI roots bundled
    /// with Cairn ([`Roots::bundled`]; for bastions with a private CA). The
    /// host's root store is never used.
    pub root_certificates: Vec<CertificateDer<'static>>,
    /// Limit on TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// First wait before reconnecting; doubles per failure.
    pub min_backoff: Duration,
    /// Cap on the wait between reconnects.
    pub max_backoff: Duration,
}

impl BackendConfig {
    /// A configuration for the bastion at `host:port` with the defaults.
    pub fn new(bastion: impl Into<String>) -> Self {
        BackendConfig {
            bastion: bastion.into(),
            server_name: None,
            root_certificates: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            min_backoff: DEFAULT_MIN_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

/// Why a backend could not be set up, or one connection to the bastion
/// failed. [`Backend::serve`] retries every connection failure; only
/// [`BackendError::InvalidAddress`] and [`BackendError::Tls`] are permanent.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The bastion address or server name cannot be used.
    #[error("invalid bastion address {address:?}: {reason}")]
    InvalidAddress {
        /// The address or name as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate or TLS configuration could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Connecting or the TLS handshake failed.
    #[error("cannot connect to the bastion: {0}")]
    Connect(std::io::Error),
    /// Connecting and the handshake took longer than the connect timeout.
    #[error("connecting to the bastion timed out")]
    ConnectTimeout,
    /// The server completed TLS without selecting ALPN `bastion/0`: it is
    /// not a bastion (or not this one's backend endpoint).
    #[error("the server did not negotiate ALPN bastion/0")]
    NotABastion,
    /// The bastion ended the connection with a TLS alert, which is how it
    /// refuses a backend key that is not on its allow-list.
    #[error("the bastion refused the connection (TLS alert {0:?}); is this key on its allow-list?")]
    Refused(rustls::AlertDescription),
    /// The HTTP/2 connection failed after it was set up.
    #[error("HTTP/2 connection to the bastion failed: {0}")]
    Http(#[source] hyper::Error),
}

/// How a served connection ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The bastion closed the connection (e.g. it restarted, or a newer
    /// connection for the same key replaced this one).
    Closed,
    /// The caller's shutdown signal fired.
    Shutdown,
}

/// A backend identity and its bastion: makes connections on demand. Cheap
/// to clone.
#[derive(Clone)]
pub struct Backend {
    config: BackendConfig,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    key_hash: KeyHash,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("bastion", &self.config.bastion)
            .field("server_name", &self.server_name)
            .field("key_hash", &self.key_hash)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Prepares TLS for `config` with a self-signed certificate for `key`,
    /// which the bastion will know as `SHA-256(public key)`. Nothing is
    /// dialled yet.
    pub fn new(config: BackendConfig, key: &SigningKey) -> Result<Self, BackendError> {
        let name = match &config.server_name {
            Some(name) => name.clone(),
            None => bastion_host(&config.bastion)?.to_owned(),
        };
        let server_name =
            ServerName::try_from(name.clone()).map_err(|e| BackendError::InvalidAddress {
                address: name,
                reason: e.to_string(),
            })?;
        let mut roots = Roots::bundled().rustls_store();
        for cert in &config.root_certificates {
            roots.add(cert.clone()).map_err(TlsError::from)?;
        }
        let (cert, private_key) = backend_certificate(key)?;
        // TLS 1.3 only (spec): earlier versions send the client
        // certificate, and so the backend's identity, in the clear.
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::from)?
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert], private_key)
            .map_err(TlsError::from)?;
        tls.alpn_protocols = vec![BASTION_ALPN.to_vec()];
        Ok(Backend {
            config,
            connector: TlsConnector::from(Arc::new(tls)),
            server_name,
            key_hash: key.public_key().key_hash(),
        })
    }

    /// The key hash clients put first in the path: `https://<bastion>/<this>/...`.
    pub fn key_hash(&self) -> KeyHash {
        self.key_hash
    }

    /// Dials the bastion once: TCP, TLS 1.3 with the client certificate,
    /// ALPN `bastion/0`, all within the connect timeout. A bastion that
    /// refuses the key usually does so only after this returns (TLS 1.3
    /// checks the client certificate after the client finishes), so the
    /// refusal surfaces from [`BastionConnection::serve`].
    pub async fn connect(&self) -> Result<BastionConnection, BackendError> {
        let dial = async {
            let tcp = TcpStream::connect(&self.config.bastion)
                .await
                .map_err(BackendError::Connect)?;
            let _ = tcp.set_nodelay(true);
            self.connector
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| classify_io(e, BackendError::Connect))
        };
        let stream = tokio::time::timeout(self.config.connect_timeout, dial)
            .await
            .map_err(|_| BackendError::ConnectTimeout)??;
        if stream.get_ref().1.alpn_protocol() != Some(BASTION_ALPN) {
            return Err(BackendError::NotABastion);
        }
        Ok(BastionConnection { stream })
    }

    /// Keeps `app` reachable through the bastion until `shutdown` resolves:
    /// connects, serves, and on any failure or close reconnects after a
    /// backoff that doubles from `min_backoff` up to `max_backoff` (and
    /// starts over once a connection stayed up for `max_backoff`). Failures
    /// are logged, never returned.
    pub async fn serve(&self, app: axum::Router, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut backoff = self.config.min_backoff;
        loop {
            let connected = tokio::select! {
                () = &mut shutdown => return,
                r = self.connect() => r,
            };
            match connected {
                Ok(conn) => {
                    tracing::info!(bastion = %self.config.bastion, key_hash = %self.key_hash, "connected to the bastion");
                    let since = Instant::now();
                    match conn.serve(app.clone(), &mut shutdown).await {
                        Ok(ConnectionEnd::Shutdown) => return,
                        Ok(ConnectionEnd::Closed) => {
                            tracing::info!(bastion = %self.config.bastion, "the bastion closed the connection");
                        }
                        Err(e) => {
                            tracing::warn!(bastion = %self.config.bastion, error = %e, "bastion connection failed");
                        }
                    }
                    if since.elapsed() >= self.config.max_backoff {
                        backoff = self.config.min_backoff;
                    }
                }
                Err(e) => {
                    tracing::warn!(bastion = %self.config.bastion, error = %e, retry_in = ?backoff, "cannot reach the bastion");
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = backoff.saturating_mul(2).min(self.config.max_backoff);
        }
    }
}

/// One established connection to the bastion, not yet serving.
#[derive(Debug)]
pub struct BastionConnection {
    stream: TlsStream<TcpStream>,
}

impl BastionConnection {
    /// Serves `app` over HTTP/2 on this connection (the bastion is the
    /// HTTP/2 client) until the bastion closes it or `shutdown` resolves;
    /// on shutdown, in-flight requests get a short grace period.
    pub async fn serve(
        self,
        app: axum::Router,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ConnectionEnd, BackendError> {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        let conn =
            builder.serve_connection(TokioIo::new(self.stream), TowerToHyperService::new(app));
        let mut conn = pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r.map(|()| ConnectionEnd::Closed).map_err(classify_http),
            () = shutdown => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
                Ok(ConnectionEnd::Shutdown)
            }
        }
    }
}

/// Connects to the bastion in `config` as `key` and serves `app` through it
/// until `shutdown` resolves, reconnecting as [`Backend::serve`] does.
/// Fails only if the configuration cannot work at all.
pub async fn serve_backend(
    config: BackendConfig,
    key: &SigningKey,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BackendError> {
    Backend::new(config, key)?.serve(app, shutdown).await;
    Ok(())
}

/// The host part of `host:port` or `[v6]:port`.
fn bastion_host(address: &str) -> Result<&str, BackendError> {
    let invalid = |reason: &str| BackendError::InvalidAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected host:port"))?;
    port.parse::<u16>()
        .map_err(|_| invalid("the port is not a number from 0 to 65535"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(invalid("the host is empty"));
    }
    Ok(host)
}

/// A TLS alert from the bastion inside an IO error, as rustls reports it.
fn received_alert(e: &std::io::Error) -> Option<rustls::AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

fn classify_io(e: std::io::Error, other: fn(std::io::Error) -> BackendError) -> BackendError {
    match received_alert(&e) {
        Some(alert) => BackendError::Refused(alert),
        None => other(e),
    }
}

fn classify_http(e: hyper::Error) -> BackendError {
    // `io::Error::source` skips the wrapped error, so look at each IO error
    // in the chain directly.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(c) = cause {
        if let Some(alert) = c.downcast_ref::<std::io::Error>().and_then(received_alert) {
            return BackendError::Refused(alert);
        }
        cause = c.source();
    }
    BackendError::Http(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_defaults_to_the_host_of_the_address() {
        assert_eq!(
            bastion_host("bastion.example:443").ok(),
            Some("bastion.example")
        );
        assert_eq!(bastion_host("[2001:db8::1]:8443").ok(), Some("2001:db8::1"));
        for bad in [
            "bastion.example",
            ":443",
            "bastion.example:https",
            "h:70000",
        ] {
            assert!(
                matches!(bastion_host(bad), Err(BackendError::InvalidAddress { .. })),
                "{bad}"
            );
        }
    }
}
