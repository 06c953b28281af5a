//! The bastion side: one TLS listener for both backends (ALPN `bastion/0`,
//! Ed25519 client certificate, then the bastion speaks HTTP/2 *to* them) and
//! clients (`h2` or `http/1.1`), routing `/<key hash>/<path>` to `/<path>` on
//! that backend's connection.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use cairn_sigsum::KeyHash;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls::server::Acceptor;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::tls::{AllowList, BASTION_ALPN, BackendKeyVerifier, TlsError, ed25519_key, provider};

/// Default [`Limits::max_request_body`]: a tlog-witness `add-checkpoint`
/// body is an old size, at most 63 proof hashes and a checkpoint note, a
/// few KiB even with many signatures.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 64 * 1024;
/// Default [`Limits::max_response_body`]: cosignature lines are ~130 bytes.
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Default [`Limits::request_timeout`]: longer than a log waits for a
/// witness, so the log's own timeout decides.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Limits::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default [`Limits::keepalive`]: litebastion pings backends every 15 s.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// A replaced backend connection keeps serving its in-flight requests for
/// at most this long before it is closed.
const REPLACED_GRACE: Duration = Duration::from_secs(60);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Bounds on what one client or connection may cost the bastion.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest client request body forwarded, in bytes; larger is 413.
    pub max_request_body: usize,
    /// Largest backend response body relayed, in bytes; larger is 502.
    pub max_response_body: usize,
    /// Limit on one proxied request, from reading the client's body to the
    /// end of the backend's response; exceeded is 504.
    pub request_timeout: Duration,
    /// Limit on a TLS handshake (clients and backends), and on a client's
    /// HTTP/1.1 request headers.
    pub handshake_timeout: Duration,
    /// Open TCP connections (clients and backends together); further
    /// connections wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Interval between HTTP/2 pings to each backend (and to HTTP/2
    /// clients), and how long a ping may go unanswered before the peer is
    /// considered gone.
    pub keepalive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            keepalive: DEFAULT_KEEPALIVE,
        }
    }
}

/// What a [`Bastion`] needs.
#[derive(Debug)]
pub struct BastionConfig {
    /// The bastion's TLS certificate chain, leaf first (seen by clients and
    /// backends alike).
    pub certificate_chain: Vec<CertificateDer<'static>>,
    /// The private key of the leaf certificate.
    pub private_key: PrivateKeyDer<'static>,
    /// Key hashes of the backends allowed to connect. `None` admits every
    /// Ed25519 key; the bastion then cannot tell an unknown key from a
    /// disconnected backend and answers 502 for both, as the spec requires.
    /// With a list, an unknown key is 421 and a known, disconnected one 503.
    pub allowed_backends: Option<HashSet<KeyHash>>,
    /// Size, time and connection limits.
    pub limits: Limits,
}

/// Why a [`Bastion`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BastionError {
    /// The certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A running backend connection, as clients' requests see it.
struct BackendSlot {
    /// Distinguishes this connection from a newer one for the same key, so
    /// that the older one's exit does not remove its replacement.
    id: u64,
    sender: SendRequest<Full<Bytes>>,
    /// Tells the connection's task that a newer connection took over.
    replaced: Arc<Notify>,
}

struct Inner {
    client_tls: Arc<ServerConfig>,
    backend_tls: Arc<ServerConfig>,
    allowed: AllowList,
    backends: Mutex<HashMap<KeyHash, BackendSlot>>,
    next_id: AtomicU64,
    limits: Limits,
}

/// A C2SP https-bastion. Cheap to clone; clones share the backends.
#[derive(Clone)]
pub struct Bastion {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bastion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bastion")
            .field("backends", &self.connected_backends())
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl Bastion {
    /// Builds the TLS configurations; nothing listens yet.
    pub fn new(config: BastionConfig) -> Result<Self, BastionError> {
        let allowed: AllowList = Arc::new(RwLock::new(config.allowed_backends));
        let mut client_tls = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::from)?
            .with_no_client_auth()
            .with_single_cert(
                config.certificate_chain.clone(),
                config.private_key.clone_key(),
            )
            .map_err(TlsError::from)?;
        client_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let verifier = BackendKeyVerifier {
            allowed: Arc::clone(&allowed),
            provider: provider(),
        };
        let mut backend_tls = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::from)?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(config.certificate_chain, config.private_key)
            .map_err(TlsError::from)?;
        backend_tls.alpn_protocols = vec![BASTION_ALPN.to_vec()];
        Ok(Bastion {
            inner: Arc::new(Inner {
                client_tls: Arc::new(client_tls),
                backend_tls: Arc::new(backend_tls),
                allowed,
                backends: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                limits: config.limits,
            }),
        })
    }

    /// Accepts clients and backends on `listener` until `shutdown`
    /// resolves, then closes every connection it accepted (backends see
    /// the bastion go away and reconnect to its successor).
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let permits = Arc::new(Semaphore::new(self.inner.limits.max_connections));
        // Owns every connection task: dropping it at return aborts them.
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = async {
                    let permit = Arc::clone(&permits).acquire_owned().await;
                    (permit, listener.accept().await)
                } => accepted,
            };
            match accepted {
                (Ok(permit), Ok((tcp, peer))) => {
                    let inner = Arc::clone(&self.inner);
                    connections.spawn(async move {
                        inner.connection(tcp, peer).await;
                        drop(permit);
                    });
                }
                (_, Err(e)) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                (Err(_), _) => unreachable!("the semaphore is never closed"),
            }
        }
        connections.shutdown().await;
        self.inner
            .backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Replaces the allow-list (e.g. after the operator edited it) and
    /// closes the connections of backends that are no longer allowed.
    pub fn set_allowed_backends(&self, allowed: Option<HashSet<KeyHash>>) {
        let mut backends = self
            .inner
            .backends
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(set) = &allowed {
            backends.retain(|hash, slot| {
                let keep = set.contains(hash);
                if !keep {
                    slot.replaced.notify_one();
                }
                keep
            });
        }
        *self
            .inner
            .allowed
            .write()
            .unwrap_or_else(|e| e.into_inner()) = allowed;
    }

    /// Key hashes of the backends connected now.
    pub fn connected_backends(&self) -> Vec<KeyHash> {
        let backends = self
            .inner
            .backends
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<_> = backends.keys().copied().collect();
        keys.sort();
        keys
    }
}

impl Inner {
    /// Handshakes one TCP connection and serves it as a backend or a client
    /// depending on the ALPN protocols it offers.
    async fn connection(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let handshake = async {
            let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
            let is_backend = start
                .client_hello()
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == BASTION_ALPN));
            let config = if is_backend {
                &self.backend_tls
            } else {
                &self.client_tls
            };
            let tls = start.into_stream(Arc::clone(config)).await?;
            Ok::<_, std::io::Error>((is_backend, tls))
        };
        match tokio::time::timeout(self.limits.handshake_timeout, handshake).await {
            Ok(Ok((true, tls))) => self.backend(tls, peer).await,
            Ok(Ok((false, tls))) => self.clients(tls, peer).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    /// Turns an authenticated backend connection into an HTTP/2 client
    /// connection, registers it (replacing an older one for the same key)
    /// and keeps it until it closes or is replaced.
    async fn backend(self: Arc<Self>, tls: TlsStream<TcpStream>, peer: SocketAddr) {
        let Some(key) = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(ed25519_key)
        else {
            // The verifier admits only Ed25519 certificates.
            return;
        };
        let hash = key.key_hash();
        let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(self.limits.keepalive)
            .keep_alive_timeout(self.limits.keepalive)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tls))
            .await;
        let (sender, conn) = match handshake {
            Ok(parts) => parts,
            Err(e) => {
                tracing::info!(backend = %hash, %peer, error = %e, "backend HTTP/2 handshake failed");
                return;
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let replaced = Arc::new(Notify::new());
        let slot = BackendSlot {
            id,
            sender,
            replaced: Arc::clone(&replaced),
        };
        if let Some(old) = self.lock_backends().insert(hash, slot) {
            old.replaced.notify_one();
        }
        tracing::info!(backend = %hash, %peer, "backend connected");
        let mut conn = pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::info!(backend = %hash, %peer, error = %e, "backend connection failed");
                }
            }
            () = replaced.notified() => {
                // The slot no longer holds our sender; once in-flight
                // requests drop theirs, hyper closes the connection.
                let _ = tokio::time::timeout(REPLACED_GRACE, conn).await;
            }
        }
        let mut backends = self.lock_backends();
        if backends.get(&hash).is_some_and(|slot| slot.id == id) {
            backends.remove(&hash);
        }
        tracing::info!(backend = %hash, %peer, "backend disconnected");
    }

    /// Serves client requests (HTTP/1.1 or HTTP/2) on one connection.
    async fn clients(self: Arc<Self>, tls: TlsStream<TcpStream>, peer: SocketAddr) {
        let limits = self.limits.clone();
        let service = hyper::service::service_fn(move |req| {
            let inner = Arc::clone(&self);
            async move { Ok::<_, Infallible>(inner.route(req, peer.ip()).await) }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // A client that stalls (slow headers, a dead peer behind NAT) must
        // not hold one of the `max_connections` permits for ever.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.handshake_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.keepalive)
            .keep_alive_timeout(limits.keepalive);
        let result = builder.serve_connection(TokioIo::new(tls), service).await;
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "client connection ended with an error");
        }
    }

    fn lock_backends(&self) -> std::sync::MutexGuard<'_, HashMap<KeyHash, BackendSlot>> {
        self.backends.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one client request: the spec's status for an unroutable key
    /// hash, else the backend's response.
    async fn route(&self, req: Request<Incoming>, client: IpAddr) -> Response<Full<Bytes>> {
        let Some((hash, rest)) = split_path(req.uri().path()) else {
            return plain(
                StatusCode::NOT_FOUND,
                "requests must start with /<key hash>/",
            );
        };
        let sender = self.lock_backends().get(&hash).map(|s| s.sender.clone());
        let Some(sender) = sender else {
            let allowed = self.allowed.read().unwrap_or_else(|e| e.into_inner());
            return match &*allowed {
                Some(set) if set.contains(&hash) => {
                    plain(StatusCode::SERVICE_UNAVAILABLE, "backend is not connected")
                }
                Some(_) => plain(StatusCode::MISDIRECTED_REQUEST, "unknown backend key hash"),
                None => plain(StatusCode::BAD_GATEWAY, "backend unknown or not connected"),
            };
        };
        let forwarded = self.forward(sender, req, hash, rest, client);
        match tokio::time::timeout(self.limits.request_timeout, forwarded).await {
            Ok(response) => response,
            Err(_) => plain(
                StatusCode::GATEWAY_TIMEOUT,
                "backend did not answer in time",
            ),
        }
    }

    /// Sends the request to the backend as `/<rest>` with a single
    /// `X-Forwarded-For` (the spec's only change) and relays the answer.
    async fn forward(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        req: Request<Incoming>,
        hash: KeyHash,
        rest: String,
        client: IpAddr,
    ) -> Response<Full<Bytes>> {
        let (mut parts, body) = req.into_parts();
        let body = match Limited::new(body, self.limits.max_request_body)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large");
            }
            Err(_) => return plain(StatusCode::BAD_REQUEST, "cannot read the request body"),
        };
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest,
        };
        // HTTP/2 needs :scheme and :authority; the key hash is the
        // authority litebastion sends too.
        let Ok(uri) = Uri::builder()
            .scheme("https")
            .authority(hash.to_hex())
            .path_and_query(path_and_query)
            .build()
        else {
            return plain(StatusCode::BAD_REQUEST, "cannot forward this path");
        };
        parts.uri = uri;
        parts.version = http::Version::HTTP_2;
        parts.headers.remove(header::HOST);
        // hyper strips the remaining connection-specific headers for h2.
        parts.headers.remove("x-forwarded-for");
        parts.headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(&client.to_string()).expect("an IP address is a header value"),
        );
        let response = match sender.ready().await {
            Ok(()) => {
                sender
                    .send_request(Request::from_parts(parts, Full::new(body)))
                    .await
            }
            Err(e) => Err(e),
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(backend = %hash, error = %e, "forwarding failed");
                return plain(StatusCode::BAD_GATEWAY, "backend connection failed");
            }
        };
        let (parts, body) = response.into_parts();
        match Limited::new(body, self.limits.max_response_body)
            .collect()
            .await
        {
            Ok(body) => Response::from_parts(parts, Full::new(body.to_bytes())),
            Err(e) => {
                tracing::debug!(backend = %hash, error = %e, "backend response failed");
                plain(
                    StatusCode::BAD_GATEWAY,
                    "backend response failed or was too large",
                )
            }
        }
    }
}

/// Splits `/<key hash>/<rest>` into the hash and `/<rest>`. The hash must
/// be 64 lowercase hex digits (spec); `/<key hash>` alone maps to `/`.
fn split_path(path: &str) -> Option<(KeyHash, String)> {
    let path = path.strip_prefix('/')?;
    let (hex, rest) = match path.find('/') {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, "/"),
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let hash = cairn_sigsum::key::parse_key_hash_hex(hex).ok()?;
    Some((hash, rest.to_owned()))
}

/// A short plain-text answer from the bastion itself.
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "5c0ef8e4bc97e3b5f3cb4e0bd7e3a25ef1c4b1e3b1f3fb7e0c9a1d3e2f4a5b6c";

    #[test]
    fn the_key_hash_is_trimmed_from_the_path() {
        let (hash, rest) = split_path(&format!("/{HASH}/add-checkpoint")).expect("routable");
        assert_eq!(hash.to_hex(), HASH);
        assert_eq!(rest, "/add-checkpoint");
        assert_eq!(split_path(&format!("/{HASH}")).expect("routable").1, "/");
        assert_eq!(split_path(&format!("/{HASH}/")).expect("routable").1, "/");
    }

    #[test]
    fn only_lowercase_64_digit_key_hashes_route() {
        for bad in [
            "/".to_owned(),
            "/add-checkpoint".to_owned(),
            format!("/{}/x", HASH.to_uppercase()),
            format!("/{}/x", &HASH[1..]),
            format!("/{HASH}0/x"),
            format!("{HASH}/x"),
        ] {
            assert!(split_path(&bad).is_none(), "{bad}");
        }
    }
}
