//! [`Server`]: the accept loop, the per-connection driver and graceful
//! shutdown.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Layer as _, Service as _};

use crate::body::{BodyTimeoutLayer, BodyTimeoutService};
use crate::config::{ConfigError, HttpConfig, effective_max_connections};
use crate::conn::{ConnActivity, ErrorBodyIo, GuardedBody, RequestGuard};
use crate::limits::{ConnPermit, ConnTable};
use crate::nofile::soft_nofile_limit;
use crate::response::fill_empty_error_body;
use crate::stats::Stats;

/// Pause after an accept error that is not the client's (out of
/// descriptors, out of memory): the pending connection stays queued, so
/// retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Least time between two warnings about refused connections: a flood
/// must not flood the log too.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Time beyond the shutdown grace that shutdown waits for connection tasks
/// to notice they are past it, before aborting them.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);

/// An HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) server for an axum
/// [`Router`], with the limits of an [`HttpConfig`].
///
/// Serving: [`Server::serve`]. Counters: [`Server::stats`], to be
/// registered before serving.
#[derive(Debug)]
pub struct Server {
    config: HttpConfig,
    max_connections: usize,
    stats: Stats,
}

impl Server {
    /// Checks `config` and fits its connection cap to the process's current
    /// descriptor limit (call [`crate::raise_nofile_limit`] first). Errors:
    /// a setting out of range, or a descriptor limit that leaves nothing
    /// after `reserved_descriptors`.
    pub fn new(config: HttpConfig) -> Result<Server, ConfigError> {
        config.validate()?;
        let limit = soft_nofile_limit();
        let max_connections =
            effective_max_connections(config.max_connections, config.reserved_descriptors, limit)?;
        if max_connections < config.max_connections {
            tracing::warn!(
                max_connections = config.max_connections,
                descriptor_limit = limit,
                reserved_descriptors = config.reserved_descriptors,
                effective = max_connections,
                "max_connections lowered to fit the open-file limit"
            );
        }
        Ok(Server {
            config,
            max_connections,
            stats: Stats::default(),
        })
    }

    /// The server's counters (shared: clone it to keep reading them).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The total connection cap in force: `max_connections`, lowered to fit
    /// the descriptor limit.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Serves `router` on `listener` until `shutdown` resolves, then stops
    /// accepting (the listening socket is closed), asks every connection to
    /// finish (HTTP/1.1 connections close after their current response,
    /// HTTP/2 ones get a GOAWAY) and waits at most `shutdown_grace_ms` for
    /// in-flight requests, closing what is left. Returns when every
    /// connection is closed. Accept errors never end it: they are counted,
    /// logged and retried.
    pub async fn serve(
        self,
        listener: TcpListener,
        router: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let context = Arc::new(ConnContext {
            builder: builder(&self.config),
            app: BodyTimeoutLayer::with_counter(
                self.config.body_limits(),
                self.stats.body_timeouts.clone(),
            )
            .layer(router),
            config: self.config.clone(),
            stats: self.stats.clone(),
        });
        let table = Arc::new(ConnTable::new(
            self.max_connections,
            self.config.max_connections_per_ip.min(self.max_connections),
            self.stats.open.clone(),
        ));
        let (stop, stopping) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        let mut last_refusal_warning: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(ended) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(e) = ended
                        && e.is_panic()
                    {
                        tracing::error!(error = %e, "an HTTP connection task panicked");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => match table.admit(peer.ip()) {
                        Ok(permit) => {
                            self.stats.accepted.inc();
                            connections.spawn(serve_connection(
                                tcp,
                                peer,
                                permit,
                                Arc::clone(&context),
                                stopping.clone(),
                            ));
                        }
                        Err(why) => {
                            // Closed before any read: a refused client costs
                            // one accept and one close.
                            self.stats.refuse(why);
                            drop(tcp);
                            if last_refusal_warning
                                .is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_INTERVAL)
                            {
                                last_refusal_warning = Some(Instant::now());
                                tracing::warn!(
                                    %peer,
                                    cap = ?why,
                                    refused_total_cap = self.stats.refused_total_cap(),
                                    refused_per_ip_cap = self.stats.refused_per_ip_cap(),
                                    "connection cap reached: refusing connections \
                                     (warned at most once a minute; see the refusal counters)"
                                );
                            }
                        }
                    },
                    Err(e) if is_client_error(&e) => {
                        tracing::debug!(error = %e, "accept: connection failed before it was accepted");
                    }
                    Err(e) => {
                        self.stats.accept_errors.inc();
                        tracing::warn!(error = %e, "accept failed; pausing");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        drop(listener);
        stop.send_replace(true);
        let open = connections.len();
        if open > 0 {
            tracing::info!(
                connections = open,
                "HTTP shutdown: finishing in-flight requests"
            );
        }
        let drained = tokio::time::timeout(self.config.shutdown_grace() + SHUTDOWN_MARGIN, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                connections = connections.len(),
                "HTTP shutdown: closing connections still open after the grace period"
            );
            connections.shutdown().await;
        }
    }
}

/// Errors of `accept` that concern one incoming connection only.
fn is_client_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The hyper connection settings of `config`.
fn builder(config: &HttpConfig) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout())
        // hyper-util does not expose hyper's max_header_size; a head must
        // fit in the read buffer, so its size is the header limit (hyper
        // answers 431 beyond it).
        .max_buf_size(config.max_header_bytes);
    let keep_alive = (config.http2_keep_alive_interval_ms > 0)
        .then(|| Duration::from_millis(config.http2_keep_alive_interval_ms));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(keep_alive)
        .keep_alive_timeout(Duration::from_millis(config.http2_keep_alive_timeout_ms));
    builder
}

/// What every connection task shares.
#[derive(Debug)]
struct ConnContext {
    builder: Builder<TokioExecutor>,
    app: BodyTimeoutService<Router>,
    config: HttpConfig,
    stats: Stats,
}

/// Why a connection is being closed by the server.
#[derive(Debug)]
enum Closing {
    Idle,
    Shutdown,
}

/// Serves one connection until the client closes it, it stays idle too
/// long, or the server shuts down.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    permit: ConnPermit,
    context: Arc<ConnContext>,
    mut stopping: watch::Receiver<bool>,
) {
    let _permit = permit;
    // Small request/response pairs: Nagle plus delayed ACKs would add
    // ~40 ms to each.
    let _ = tcp.set_nodelay(true);
    let activity = Arc::new(ConnActivity::new());
    let io = ErrorBodyIo::new(
        tcp,
        Arc::clone(&activity),
        context.config.max_header_bytes,
        context.stats.unparsable.clone(),
    );
    let service = hyper::service::service_fn({
        let app = context.app.clone();
        let activity = Arc::clone(&activity);
        move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let guard = RequestGuard::new(Arc::clone(&activity));
            let mut app = app.clone();
            async move {
                poll_fn(|cx| tower::Service::<http::Request<Incoming>>::poll_ready(&mut app, cx))
                    .await?;
                let response = fill_empty_error_body(app.call(request).await?);
                Ok::<_, Infallible>(response.map(|inner| GuardedBody {
                    inner,
                    _guard: guard,
                }))
            }
        }
    });
    let mut conn = pin!(context.builder.serve_connection(TokioIo::new(io), service));
    let first_request = context.config.header_read_timeout();
    let idle = context.config.idle_timeout();
    let closing = loop {
        let changed = activity.changed.notified();
        let deadline = activity.idle_deadline(first_request, idle);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = changed => {}
            () = sleep_until(deadline) => {
                if activity
                    .idle_deadline(first_request, idle)
                    .is_some_and(|d| d <= Instant::now())
                {
                    break Closing::Idle;
                }
            }
            stop = stopping.wait_for(|stop| *stop) => {
                drop(stop);
                break Closing::Shutdown;
            }
        }
    };
    if let Closing::Idle = closing {
        context.stats.idle_closed.inc();
        tracing::debug!(%peer, "closing an idle HTTP connection");
    }
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout(context.config.shutdown_grace(), conn)
        .await
        .is_err()
    {
        tracing::debug!(%peer, ?closing, "HTTP connection did not finish in time; closed");
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
