//! Request bodies that must keep arriving: [`BodyTimeoutLayer`] wraps every
//! request body so that a read fails with [`BodyTimeout`] when the client
//! stalls or trickles, and answers such requests 408.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::response::text_response;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The rules a request body must keep to. The clock starts when the handler
/// first reads the body, so time a request spends queued before its handler
/// reads does not count against the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Longest wait for the next bytes.
    pub stall_timeout: Duration,
    /// Time before the minimum rate applies.
    pub min_rate_grace: Duration,
    /// Slowest accepted average rate, in bytes per second; 0 disables the
    /// rate rule. A body must have arrived by `min_rate_grace` plus one
    /// second per `min_bytes_per_second` bytes received, after the first
    /// read.
    pub min_bytes_per_second: u64,
}

/// Why a request body read failed on the server's side: the client sent it
/// too slowly. Handlers that read bodies should answer 408 (Request
/// Timeout) when [`find_body_timeout`] finds one of these in the error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    /// No bytes arrived for `stall` while the handler was reading.
    #[error("the request body stalled: no bytes arrived for {} ms", .stall.as_millis())]
    Stalled {
        /// The stall timeout that expired.
        stall: Duration,
    },
    /// The body arrived at less than the minimum rate.
    #[error(
        "the request body arrived too slowly: {received} bytes in {} ms, \
         below the minimum of {min_bytes_per_second} bytes per second",
        .elapsed.as_millis()
    )]
    TooSlow {
        /// Bytes received when the deadline passed.
        received: u64,
        /// Time since the handler started reading.
        elapsed: Duration,
        /// The minimum rate.
        min_bytes_per_second: u64,
    },
}

/// The [`BodyTimeout`] in `err` or in its chain of sources, if any. Works
/// on the errors handlers see: `axum::Error` from reading a
/// [`Body`], and axum's extractor rejections such as `BytesRejection`.
pub fn find_body_timeout<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a BodyTimeout> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(timeout) = e.downcast_ref::<BodyTimeout>() {
            return Some(timeout);
        }
        next = e.source();
    }
    None
}

/// The 408 answer to a request whose body timed out.
pub fn body_timeout_response(timeout: &BodyTimeout) -> Response {
    text_response(StatusCode::REQUEST_TIMEOUT, &timeout.to_string())
}

/// Read progress of a body, from the handler's first read.
#[derive(Clone, Copy, Debug)]
struct Progress {
    start: Instant,
    last_progress: Instant,
    received: u64,
}

/// A request body that fails with [`BodyTimeout`] when it breaks the
/// [`BodyLimits`], recording the failure in `tripped` for the service that
/// made it.
struct TimedBody {
    inner: Body,
    limits: BodyLimits,
    progress: Option<Progress>,
    sleep: Option<Pin<Box<Sleep>>>,
    failed: Option<BodyTimeout>,
    tripped: Arc<OnceLock<BodyTimeout>>,
    timeouts: Counter,
}

impl TimedBody {
    /// When the body next breaks a rule if nothing arrives, and which rule.
    fn deadline(&self, p: &Progress) -> (Instant, BodyTimeout) {
        let stall = (
            p.last_progress + self.limits.stall_timeout,
            BodyTimeout::Stalled {
                stall: self.limits.stall_timeout,
            },
        );
        let rate = self.limits.min_bytes_per_second;
        if rate == 0 {
            return stall;
        }
        let credit = Duration::from_millis(p.received.saturating_mul(1000) / rate);
        let Some(by_rate) = p
            .start
            .checked_add(self.limits.min_rate_grace)
            .and_then(|t| t.checked_add(credit))
        else {
            return stall;
        };
        if stall.0 <= by_rate {
            stall
        } else {
            (
                by_rate,
                BodyTimeout::TooSlow {
                    received: p.received,
                    elapsed: by_rate - p.start,
                    min_bytes_per_second: rate,
                },
            )
        }
    }

    fn fail(&mut self, timeout: BodyTimeout) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        tracing::debug!(%timeout, "request body timed out");
        if self.tripped.set(timeout.clone()).is_ok() {
            self.timeouts.inc();
        }
        self.failed = Some(timeout.clone());
        Poll::Ready(Some(Err(Box::new(timeout))))
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(timeout) = &this.failed {
            // Readers stop at the first error; repeating it keeps a
            // confused reader from taking the body as complete.
            return Poll::Ready(Some(Err(Box::new(timeout.clone()))));
        }
        let now = Instant::now();
        let progress = this.progress.get_or_insert(Progress {
            start: now,
            last_progress: now,
            received: 0,
        });
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && !data.is_empty()
                {
                    progress.received = progress.received.saturating_add(data.len() as u64);
                    progress.last_progress = now;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        let progress = *progress;
        let (deadline, timeout) = this.deadline(&progress);
        if now >= deadline {
            return this.fail(timeout);
        }
        let sleep = match &mut this.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => this
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        ready!(sleep.as_mut().poll(cx));
        this.fail(timeout)
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A [`tower::Layer`] that makes request bodies keep to [`BodyLimits`].
///
/// Every request body is wrapped so that a handler reading it gets an error
/// holding a [`BodyTimeout`] (see [`find_body_timeout`]) when the client
/// stalls or trickles. Handlers should answer such errors 408; as a safety
/// net for those that do not (axum's `Bytes` extractor answers 400, a
/// handler may answer 500), any 4xx or 5xx answer to a request whose body
/// timed out is replaced by a 408 with a text body. Timeouts are counted
/// in [`BodyTimeoutLayer::timeouts`].
#[derive(Clone, Debug)]
pub struct BodyTimeoutLayer {
    limits: BodyLimits,
    timeouts: Counter,
}

impl BodyTimeoutLayer {
    /// A layer enforcing `limits`, with a counter of its own.
    pub fn new(limits: BodyLimits) -> Self {
        Self::with_counter(limits, Counter::default())
    }

    /// A layer enforcing `limits` that counts timeouts in `timeouts`.
    pub fn with_counter(limits: BodyLimits, timeouts: Counter) -> Self {
        BodyTimeoutLayer { limits, timeouts }
    }

    /// Request bodies that timed out so far (shared by clones).
    pub fn timeouts(&self) -> Counter {
        self.timeouts.clone()
    }
}

impl<S> Layer<S> for BodyTimeoutLayer {
    type Service = BodyTimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyTimeoutService {
            inner,
            limits: self.limits,
            timeouts: self.timeouts.clone(),
        }
    }
}

/// The service made by [`BodyTimeoutLayer`].
#[derive(Clone, Debug)]
pub struct BodyTimeoutService<S> {
    inner: S,
    limits: BodyLimits,
    timeouts: Counter,
}

impl<S, B> Service<Request<B>> for BodyTimeoutService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let tripped = Arc::new(OnceLock::new());
        let request = request.map(|body| {
            Body::new(TimedBody {
                inner: Body::new(body),
                limits: self.limits,
                progress: None,
                sleep: None,
                failed: None,
                tripped: Arc::clone(&tripped),
                timeouts: self.timeouts.clone(),
            })
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let status = response.status();
            Ok(match tripped.get() {
                Some(timeout)
                    if (status.is_client_error() || status.is_server_error())
                        && status != StatusCode::REQUEST_TIMEOUT =>
                {
                    body_timeout_response(timeout)
                }
                _ => response,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_found_through_axum_errors_and_rejections() {
        let timeout = BodyTimeout::Stalled {
            stall: Duration::from_secs(5),
        };
        let wrapped = axum::Error::new(timeout.clone());
        assert_eq!(find_body_timeout(&wrapped), Some(&timeout));
        let other = axum::Error::new(std::io::Error::other("reset"));
        assert_eq!(find_body_timeout(&other), None);
    }

    /// A request body that never sends anything.
    struct Silent;

    impl HttpBody for Silent {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_router_layered_with_it_answers_a_silent_body_408() {
        let layer = BodyTimeoutLayer::new(BodyLimits {
            stall_timeout: Duration::from_millis(50),
            min_rate_grace: Duration::ZERO,
            min_bytes_per_second: 0,
        });
        let mut router = axum::Router::new()
            .route(
                "/",
                axum::routing::post(|body: Bytes| async move { body.len().to_string() }),
            )
            .layer(layer.clone());
        let request = Request::post("/").body(Body::new(Silent)).unwrap();
        std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut router, cx))
            .await
            .unwrap();
        let response = router.call(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(layer.timeouts().get(), 1);
    }

    #[test]
    fn a_trickle_fails_at_the_rate_deadline_and_a_stall_at_the_stall_deadline() {
        let limits = BodyLimits {
            stall_timeout: Duration::from_secs(5),
            min_rate_grace: Duration::from_secs(2),
            min_bytes_per_second: 100,
        };
        let body = |p: Progress| TimedBody {
            inner: Body::empty(),
            limits,
            progress: Some(p),
            sleep: None,
            failed: None,
            tripped: Arc::default(),
            timeouts: Counter::default(),
        };
        let start = Instant::now();
        // 50 bytes after 1 s: the rate deadline (2 s + 0.5 s) comes first.
        let p = Progress {
            start,
            last_progress: start + Duration::from_secs(1),
            received: 50,
        };
        let (at, why) = body(p).deadline(&p);
        assert_eq!(at, start + Duration::from_millis(2500));
        assert!(matches!(why, BodyTimeout::TooSlow { received: 50, .. }));
        // 10 000 bytes quickly, then silence: the stall deadline.
        let p = Progress {
            start,
            last_progress: start + Duration::from_secs(1),
            received: 10_000,
        };
        let (at, why) = body(p).deadline(&p);
        assert_eq!(at, start + Duration::from_secs(6));
        assert!(matches!(why, BodyTimeout::Stalled { .. }));
    }
}
