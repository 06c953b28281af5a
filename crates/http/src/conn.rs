//! One connection's bookkeeping: which requests are in flight (for the idle
//! timeout), the response body that keeps a request counted until it is
//! sent, and the socket wrapper that gives hyper's own error answers a
//! body.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::response::hyper_error_replacement;

/// Requests of one connection: how many are in flight, how many were ever
/// dispatched, and when the last one ended. Shared by the connection's
/// service (which counts requests) and its driver (which closes the
/// connection when it stays idle).
#[derive(Debug)]
pub(crate) struct ConnActivity {
    in_flight: AtomicUsize,
    dispatched: AtomicU64,
    /// Accept time, then the end of the latest request.
    idle_since: Mutex<Instant>,
    /// Woken whenever a request starts or ends.
    pub(crate) changed: Notify,
}

impl ConnActivity {
    pub(crate) fn new() -> Self {
        ConnActivity {
            in_flight: AtomicUsize::new(0),
            dispatched: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        }
    }

    /// Requests handed to the service on this connection so far.
    pub(crate) fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Acquire)
    }

    /// When the connection is to be closed for idleness if nothing happens
    /// before: `None` while a request is in flight. Before the first
    /// request the client gets `first_request` (it has not even sent a
    /// head), after it `idle`.
    pub(crate) fn idle_deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = *self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            since
                + if self.dispatched() == 0 {
                    first_request
                } else {
                    idle
                },
        )
    }
}

/// Counts one request as in flight from the service call until the
/// response body is sent or dropped.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    activity: Arc<ConnActivity>,
}

impl RequestGuard {
    pub(crate) fn new(activity: Arc<ConnActivity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.dispatched.fetch_add(1, Ordering::AcqRel);
        activity.changed.notify_one();
        RequestGuard { activity }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        *self
            .activity
            .idle_since
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.activity.changed.notify_one();
    }
}

/// A response body that keeps its request counted as in flight.
#[derive(Debug)]
pub(crate) struct GuardedBody {
    pub(crate) inner: Body,
    pub(crate) _guard: RequestGuard,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Most bytes of hyper's own answer head kept while replacing it; hyper's
/// heads are under 100 bytes.
const MAX_CAPTURED_HEAD: usize = 1024;

/// What [`ErrorBodyIo`] does with what hyper writes.
#[derive(Debug)]
enum WriteState {
    /// Nothing written yet.
    Undecided,
    /// Everything goes to the socket unchanged.
    Passthrough,
    /// Collecting hyper's own answer head, which goes nowhere.
    Capturing(Vec<u8>),
    /// Sending our answer instead; whatever hyper writes goes nowhere.
    Replacing { out: Vec<u8>, sent: usize },
}

/// The socket as hyper sees it. Hyper answers an HTTP/1 request head it
/// cannot parse (400, 414, 431) by itself, with an empty body, before any
/// service is called, and then closes the connection; there is no hook for
/// that answer. This wrapper recognises it exactly: on a connection where
/// no request has been dispatched, the only bytes hyper can write in
/// HTTP/1 are that answer (an answer to a request needs the request
/// dispatched first; HTTP/2 starts with a SETTINGS frame, never with
/// `HTTP/1.`). It swallows that head and sends the same status with a text
/// body instead. Everything else passes through untouched, so only a
/// connection's first request gets the readable answer: on a kept-alive
/// connection hyper's later error answers stay empty.
#[derive(Debug)]
pub(crate) struct ErrorBodyIo<T> {
    inner: T,
    activity: Arc<ConnActivity>,
    state: WriteState,
    max_header_bytes: usize,
    replaced: Counter,
}

impl<T> ErrorBodyIo<T> {
    pub(crate) fn new(
        inner: T,
        activity: Arc<ConnActivity>,
        max_header_bytes: usize,
        replaced: Counter,
    ) -> Self {
        ErrorBodyIo {
            inner,
            activity,
            state: WriteState::Undecided,
            max_header_bytes,
            replaced,
        }
    }

    /// Turns the captured head into our answer.
    fn replace(&mut self, head: &[u8]) {
        // "HTTP/1.1 431 ..."; anything unexpected still gets a well-formed
        // answer with hyper's status when it can be read, 400 otherwise.
        let version = match head.get(..8) {
            Some(v @ (b"HTTP/1.0" | b"HTTP/1.1")) => v,
            _ => b"HTTP/1.1",
        };
        let status = head
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (400..600).contains(s))
            .unwrap_or(400);
        tracing::debug!(
            status,
            "unparsable request head: answering with a text body"
        );
        self.replaced.inc();
        self.state = WriteState::Replacing {
            out: hyper_error_replacement(version, status, self.max_header_bytes),
            sent: 0,
        };
    }
}

impl<T: AsyncWrite + Unpin> ErrorBodyIo<T> {
    /// Sends what is left of our answer, if any.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let WriteState::Capturing(head) = &mut self.state {
            let head = std::mem::take(head);
            self.replace(&head);
        }
        if let WriteState::Replacing { out, sent } = &mut self.state {
            while *sent < out.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &out[*sent..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *sent += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ErrorBodyIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ErrorBodyIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if let WriteState::Undecided = this.state {
            this.state = if this.activity.dispatched() == 0 && buf.starts_with(b"HTTP/1.") {
                WriteState::Capturing(Vec::new())
            } else {
                WriteState::Passthrough
            };
        }
        match &mut this.state {
            WriteState::Undecided | WriteState::Passthrough => {
                Pin::new(&mut this.inner).poll_write(cx, buf)
            }
            WriteState::Capturing(head) => {
                head.extend_from_slice(buf);
                if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > MAX_CAPTURED_HEAD {
                    let head = std::mem::take(head);
                    this.replace(&head);
                }
                Poll::Ready(Ok(buf.len()))
            }
            // Hyper's answer has an empty body; nothing else can follow.
            WriteState::Replacing { .. } => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let WriteState::Passthrough = this.state {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        // Until decided, one slice at a time (a partial write is allowed).
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        Pin::new(this).poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn written_through(dispatched: bool, writes: &[&[u8]]) -> Vec<u8> {
        let (near, mut far) = tokio::io::duplex(4096);
        let activity = Arc::new(ConnActivity::new());
        let _guard = dispatched.then(|| RequestGuard::new(Arc::clone(&activity)));
        let mut io = ErrorBodyIo::new(near, activity, 16384, Counter::default());
        for w in writes {
            io.write_all(w).await.unwrap();
        }
        io.shutdown().await.unwrap();
        drop(io);
        let mut out = Vec::new();
        far.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn hyper_answers_before_any_request_get_a_text_body() {
        let out = written_through(
            false,
            &[
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
                b"\r\n",
            ],
        )
        .await;
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.ends_with("could not be parsed\n"), "{text}");
    }

    #[tokio::test]
    async fn answers_to_dispatched_requests_and_http2_frames_pass_unchanged() {
        let answer: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(written_through(true, &[answer]).await, answer);
        let settings: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
        assert_eq!(
            written_through(false, &[settings, answer]).await,
            [settings, answer].concat()
        );
    }
}
