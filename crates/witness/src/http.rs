//! The HTTP face of a [`Witness`]: `POST /add-checkpoint` as an axum router
//! that can be nested under any submission prefix.
//!
//! Every error is `text/plain` with a one-line reason, except 409, whose body
//! is exactly `<size>\n` with `Content-Type: text/x.tlog.size` as the spec
//! requires. Limits: bodies over [`MAX_BODY_BYTES`] get 413 before being
//! buffered; at most [`HttpLimits::max_in_flight`] requests are served at
//! once (more get 503 at once, rather than queueing); a request taking longer
//! than [`HttpLimits::request_timeout`] gets 503. A body that stalls or
//! trickles below the minimum rate of [`cairn_http::BodyTimeoutLayer`]
//! (which `cairn_http::Server` applies) gets 408. Abandoning a request never
//! corrupts state (see [`Witness::add_checkpoint`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
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
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(limiter, enforce_limits))
        .with_state(witness)
}

async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        // The client sent the body too slowly: 408, not the extractor's 400.
        Err(rejection) => {
            return match cairn_http::find_body_timeout(&rejection) {
                Some(timeout) => text(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("add-checkpoint: {timeout}"),
                ),
                None => rejection.into_response(),
            };
        }
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

/// The state of [`enforce_limits`]: one per router, shared by its requests.
#[derive(Clone)]
struct Limiter {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

async fn enforce_limits(State(limiter): State<Limiter>, req: Request, next: Next) -> Response {
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
