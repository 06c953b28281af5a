//! Request failures and their HTTP form: a status and a human-readable
//! `text/plain` body, as log-go's `http.Error` gives (`sigsum-protocol.md`
//! §2, "Errors").

use axum::body::HttpBody as _;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::Code;

use crate::metrics::Refusal;

/// `Content-Type` of every text response, errors included.
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// Why a request failed. Each variant is one HTTP status; the message is
/// the response body. Cloneable so that one sequencer failure can be
/// delivered to every submission of a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: the request is malformed or asks beyond the published tree.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the leaf signature does not verify.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown endpoint, tile, leaf or checkpoint.
    #[error("{0}")]
    NotFound(String),
    /// 405: the endpoint exists but not for this method.
    #[error("method {} is not allowed here; use {allow}", shown_method(method))]
    MethodNotAllowed {
        /// The method used.
        method: Method,
        /// The `Allow` header value.
        allow: &'static str,
    },
    /// 410: the log is frozen and adds no new leaf; the message names the
    /// successor. sigsum-submit then tries the next log of its policy.
    #[error("{0}")]
    Gone(String),
    /// 408: the client sent the request body too slowly (it stalled, or
    /// arrived below the minimum rate of `cairn_http::BodyTimeoutLayer`).
    #[error("{0}")]
    RequestTimeout(String),
    /// 413: the body exceeds the configured limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 503 with `Retry-After`: a transient condition (sequencer down or
    /// overloaded, queue full); the client should retry.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After`, like `Unavailable`, for overload: the
    /// response carries the [`Refusal`] for the metrics layer to count.
    #[error("{message}")]
    Overloaded {
        /// What was full.
        why: Refusal,
        /// The response body.
        message: String,
    },
    /// 500: a bug or corrupt data; retrying will not help.
    #[error("{0}")]
    Internal(String),
}

/// Longest method name echoed in a 405 body: a method is any token, of any
/// length, and error bodies must not grow with the request.
const MAX_SHOWN_METHOD: usize = 32;

fn shown_method(method: &Method) -> String {
    let name = method.as_str();
    match name.get(..MAX_SHOWN_METHOD) {
        Some(cut) if cut.len() < name.len() => format!("{cut}…"),
        _ => name.to_owned(),
    }
}

impl ApiError {
    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error for a failed sequencer call `call` (as the sequencer pool
    /// returns it, after following the leader until the call's deadline).
    /// No reachable node or leader (`UNAVAILABLE`, `DEADLINE_EXCEEDED`),
    /// a refusal (`FAILED_PRECONDITION`), overload (`RESOURCE_EXHAUSTED`)
    /// and cancellation are transient (503); anything else means the
    /// frontend and sequencer disagree (500).
    pub(crate) fn from_status(call: &str, status: &tonic::Status) -> ApiError {
        let detail = format!("{call}: {}: {}", status.code(), status.message());
        match status.code() {
            // The sequencer's pending pool is full: back-pressure, not a
            // per-submitter rate limit, so 503 rather than Sigsum's 429.
            Code::ResourceExhausted => ApiError::Overloaded {
                why: Refusal::SequencerOverloaded,
                message: format!("the log is overloaded, retry later ({detail})"),
            },
            // The pool has followed every leader hint and passed over
            // every unavailable node until the deadline: during an
            // election a submitter must be told to come back (503), never
            // that the log failed (500). A FAILED_PRECONDITION that reaches
            // here is a follower of a sequencer that does not mark its
            // refusals, or a state-machine refusal: both pass. NOT_FOUND
            // means the sequencer does not host the shard (yet), e.g.
            // while it starts or moves.
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::Cancelled
            | Code::NotFound => {
                ApiError::Unavailable(format!("the log's sequencer is unavailable ({detail})"))
            }
            _ => ApiError::Internal(format!("sequencer call failed ({detail})")),
        }
    }
}

/// The error for a failed tile-store read. Reads are checked against the
/// published size before they reach the store, so no client request can
/// make it fail: only transient store failures are 503, everything else
/// (missing tiles below the published size, or tiles and bundles that do
/// not verify against the published head, whose message names the object)
/// is 500.
pub(crate) fn from_storage(e: cairn_storage::StorageError) -> ApiError {
    if e.is_retryable() {
        ApiError::Unavailable(format!("tile storage is unavailable: {e}"))
    } else {
        ApiError::Internal(format!("reading tile storage failed: {e}"))
    }
}

/// A `text/plain` response with `status` and `message` (a newline is
/// appended). Errors are never cached: a missing tile or an overload is a
/// moment's state.
pub(crate) fn text_response(status: StatusCode, message: &str) -> Response {
    let mut body = String::with_capacity(message.len() + 1);
    body.push_str(message);
    body.push('\n');
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    if status.is_client_error() || status.is_server_error() {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(m) => tracing::error!(status = status.as_u16(), "{m}"),
            ApiError::Unavailable(m) | ApiError::Overloaded { message: m, .. } => {
                tracing::warn!(status = status.as_u16(), "{m}");
            }
            _ => tracing::debug!(status = status.as_u16(), "{self}"),
        }
        let mut response = text_response(status, &self.to_string());
        let headers = response.headers_mut();
        match &self {
            ApiError::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        if let ApiError::Overloaded { why, .. } = self {
            response.extensions_mut().insert(why);
        }
        response
    }
}

/// Response middleware: gives every error response that has no body (those
/// made by layers, such as the tower-http timeout) a human-readable text
/// body, so that no non-2xx answer is ever empty.
pub(crate) async fn ensure_error_body(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || response.body().size_hint().exact() != Some(0) {
        return response;
    }
    let message = match status {
        StatusCode::GATEWAY_TIMEOUT => "the request did not complete within the time limit",
        _ => status.canonical_reason().unwrap_or("request failed"),
    };
    let (mut parts, _) = response.into_parts();
    let filled = text_response(status, message);
    // Keep the layer's own headers (e.g. `Allow`), replace the body and
    // its description.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .extend(filled.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
    let (_, body) = filled.into_parts();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequencer_overload_and_outage_are_transient() {
        for code in [
            Code::ResourceExhausted,
            Code::Unavailable,
            Code::FailedPrecondition,
            Code::DeadlineExceeded,
        ] {
            let e = ApiError::from_status("AddLeaves", &tonic::Status::new(code, "x"));
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE, "{code:?}");
        }
        let e = ApiError::from_status("AddLeaves", &tonic::Status::invalid_argument("bad"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.to_string().contains("bad"));
    }

    #[test]
    fn a_long_method_is_echoed_cut_short() {
        let method = Method::from_bytes("X".repeat(2000).as_bytes()).unwrap();
        let e = ApiError::MethodNotAllowed {
            method,
            allow: "POST",
        };
        let message = e.to_string();
        assert!(message.len() < 100, "{message}");
        assert!(message.contains("XXX…"), "{message}");
        let short = ApiError::MethodNotAllowed {
            method: Method::PUT,
            allow: "POST",
        };
        assert_eq!(
            short.to_string(),
            "method PUT is not allowed here; use POST"
        );
    }

    #[tokio::test]
    async fn empty_error_responses_get_a_text_body() {
        let empty = StatusCode::GATEWAY_TIMEOUT.into_response();
        let filled = ensure_error_body(empty).await;
        assert_eq!(filled.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(filled.headers()[header::CONTENT_TYPE], TEXT_PLAIN);
        let body = axum::body::to_bytes(filled.into_body(), 1024)
            .await
            .unwrap();
        assert!(body.starts_with(b"the request did not complete"));
        let ok = ensure_error_body(StatusCode::OK.into_response()).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }
}
