//! The HTTP face of a [`Witness`]: `POST /add-checkpoint` as an axum router
//! that can be nested under any submission prefix.
//!
//! Every error is `text/plain` with a one-line reason, except 409, whose body
//! is exactly `<size>\n` with `Content-Type: text/x.tlog.size` as the spec
//! requires. That includes what axum answers by itself: unknown paths get
//! a 404 naming the one endpoint, and any error response a layer or
//! extractor leaves empty gets a sentence for its status. Limits: bodies over [`MAX_BODY_BYTES`] get 413 before being
//! buffered; at most [`HttpLimits::max_in_flight`] requests are served at
//! once (more get 503 at once, rather than queueing); a request taking longer
//! than [`HttpLimits::request_timeout`] gets 503. A body that stalls or
//! trickles below the minimum rate of [`cairn_http::BodyTimeoutLayer`]
//! (which `cairn_http::Server` applies) gets 408. Abandoning a request never
//! corrupts state (see [`Witness::add_checkpoint`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Bytes, HttpBody as _};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::Semaphore;

use crate::request::MAX_BODY_BYTES;
use crate::witness::{AddCheckpointError, Witness};

/// Default for [`HttpLimits::max_in_flight`].
pub const MAX_IN_FLIGHT: usize = 256;

/// Default for [`HttpLimits::request_timeout`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-router request limits. The body size limit is not here: it is part
/// of the protocol's bounds ([`MAX_BODY_BYTES`]), not a deployment choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most requests served concurrently; more are answered 503 at once.
    /// Default [`MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// Longest time one request may take, body upload included; a slower
    /// one is answered 503. Default [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_in_flight: MAX_IN_FLIGHT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Content type of the 409 body (C2SP tlog-witness).
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// The witness's routes: `POST /add-checkpoint`, with the default
/// [`HttpLimits`]. Mount it under a prefix with [`Router::nest`], e.g.
/// `/witness` → `/witness/add-checkpoint`.
pub fn router(witness: Arc<Witness>) -> Router {
    router_with_limits(witness, HttpLimits::default())
}

/// [`router`] with the given limits.
pub fn router_with_limits(witness: Arc<Witness>, limits: HttpLimits) -> Router {
    let limiter = Limiter {
        permits: Arc::new(Semaphore::new(limits.max_in_flight)),
        timeout: limits.request_timeout,
    };
    Router::new()
        .route(
            "/add-checkpoint",
            post(add_checkpoint).fallback(method_not_allowed),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(limiter, enforce_limits))
        .layer(middleware::map_response(ensure_error_body))
        .with_state(witness)
}

async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        // The client sent the body too slowly: 408, not the extractor's 400.
        Err(rejection) if cairn_http::find_body_timeout(&rejection).is_some() => {
            let timeout = cairn_http::find_body_timeout(&rejection)
                .map(|t| t.to_string())
                .unwrap_or_default();
            return text(
                StatusCode::REQUEST_TIMEOUT,
                &format!("add-checkpoint: {timeout}"),
            );
        }
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large();
        }
        Err(rejection) => return text(rejection.status(), &rejection.body_text()),
    };
    match witness.add_checkpoint(&body).await {
        Ok(lines) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT_PLAIN)], lines).into_response(),
        Err(AddCheckpointError::Conflict { stored }) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, TLOG_SIZE_CONTENT_TYPE)],
            format!("{stored}\n"),
        )
            .into_response(),
        Err(e) if e.status().is_server_error() => {
            // Details (paths, OS errors) go to the operator, not the client.
            tracing::error!(error = %e, "add-checkpoint failed");
            text(
                e.status(),
                "internal error: the witness cannot cosign right now",
            )
        }
        Err(e) => text(e.status(), &e.to_string()),
    }
}

async fn method_not_allowed() -> Response {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "add-checkpoint takes POST");
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    r
}

fn too_large() -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "no such endpoint: this witness serves POST add-checkpoint",
    )
}

/// Gives an error response without a body (one made by a layer or by axum
/// itself) a sentence for its status, keeping its headers.
async fn ensure_error_body(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || response.body().size_hint().exact() != Some(0) {
        return response;
    }
    let reason = status.canonical_reason().unwrap_or("request failed");
    let (mut parts, _) = response.into_parts();
    let (filled, body) = text(status, &format!("{reason} ({})", status.as_u16())).into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(filled.headers);
    Response::from_parts(parts, body)
}

/// The state of [`enforce_limits`]: one per router, shared by its requests.
#[derive(Clone)]
struct Limiter {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

async fn enforce_limits(State(limiter): State<Limiter>, req: Request, next: Next) -> Response {
    // A declared length over the limit is refused before reading a byte:
    // the body extractor would only stop once that much had arrived, and a
    // client that declares and never sends would hold a slot until the
    // request timeout.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let Ok(_permit) = limiter.permits.try_acquire() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "witness busy: too many requests in flight, retry later",
        );
    };
    match tokio::time::timeout(limiter.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "request timed out"),
    }
}

fn text(status: StatusCode, reason: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, TEXT_PLAIN)],
        format!("{reason}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn empty_error_responses_get_a_sentence_and_keep_their_headers() {
        let mut empty = StatusCode::METHOD_NOT_ALLOWED.into_response();
        empty
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        let filled = ensure_error_body(empty).await;
        assert_eq!(filled.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(filled.headers()[header::ALLOW], "POST");
        assert_eq!(filled.headers()[header::CONTENT_TYPE], TEXT_PLAIN);
        let body = axum::body::to_bytes(filled.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"Method Not Allowed (405)\n");

        // Successes and errors that already say something are untouched.
        let ok = ensure_error_body(StatusCode::NO_CONTENT.into_response()).await;
        assert_eq!(ok.body().size_hint().exact(), Some(0));
        let said = ensure_error_body(text(StatusCode::CONFLICT, "x")).await;
        let body = axum::body::to_bytes(said.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"x\n");
    }
}
