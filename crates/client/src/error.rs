//! What can go wrong with one request to a log.
//!
//! Messages are self-contained (they include the text of the underlying
//! cause), so callers print them with `{}` and lose nothing; no variant
//! exposes a `source()`, which keeps `anyhow`'s `{:#}` free of repetition.

use std::error::Error as _;
use std::fmt;

use cairn_sigsum::api::Endpoint;
use cairn_sigsum::ascii;

/// Why a response body, received in full with a success status, is not
/// what the endpoint must return.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MalformedResponse {
    /// The body does not parse as the endpoint's ASCII message.
    #[error("{0}")]
    Parse(ascii::Error),
    /// `get-leaves` returned more leaves than the range asked for.
    #[error("asked for {requested} leaves, got {received}")]
    TooManyLeaves {
        /// Leaves in the requested range.
        requested: u64,
        /// Leaves in the response.
        received: usize,
    },
}

/// Why one request to a log failed.
///
/// [`is_retryable`](ClientError::is_retryable) is the fatal-vs-retryable
/// split the submitter acts on: transport failures and server-side or
/// throttling statuses may go away; everything else is an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The log base URL is unusable.
    #[error("invalid log URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("building the HTTP client failed: {}", chain(.0))]
    Build(reqwest::Error),
    /// The caller asked for something no log serves (e.g. an inclusion
    /// proof in a tree of one leaf); nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The log (or a proxy in front of it) answered with a status the
    /// endpoint does not succeed with. `body` is the start of the response
    /// text, made printable.
    #[error("{}: HTTP {status}: {body}", endpoint.name())]
    Status {
        /// The endpoint called.
        endpoint: Endpoint,
        /// The HTTP status code.
        status: u16,
        /// At most [`MAX_ERROR_BODY_BYTES`](crate::MAX_ERROR_BODY_BYTES) of
        /// the body, control characters escaped, whitespace trimmed.
        body: String,
    },
    /// No complete response: connection refused or reset, TLS failure,
    /// timeout, broken body stream.
    #[error("{}: {}", endpoint.name(), chain(error))]
    Transport {
        /// The endpoint called.
        endpoint: Endpoint,
        /// The HTTP library's error.
        error: reqwest::Error,
    },
    /// The response body is larger than the endpoint's limit; reading
    /// stopped there.
    #[error("{}: response body exceeds {limit} bytes", endpoint.name())]
    ResponseTooLarge {
        /// The endpoint called.
        endpoint: Endpoint,
        /// The limit in bytes.
        limit: usize,
    },
    /// A success status with a body that is not a valid response.
    #[error("{}: malformed response: {error}", endpoint.name())]
    Malformed {
        /// The endpoint called.
        endpoint: Endpoint,
        /// What is wrong with the body.
        error: MalformedResponse,
    },
}

impl ClientError {
    /// Whether sending the same request again may succeed: transport
    /// failures (other than a bad request or redirect loop), 408, 425, 429
    /// and any 5xx. A 4xx answer, a malformed or oversized response and a
    /// caller mistake will not change by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { error, .. } => !error.is_builder() && !error.is_redirect(),
            ClientError::Status { status, .. } => {
                matches!(status, 408 | 425 | 429) || (500..=599).contains(status)
            }
            ClientError::InvalidUrl { .. }
            | ClientError::Build(_)
            | ClientError::InvalidRequest(_)
            | ClientError::ResponseTooLarge { .. }
            | ClientError::Malformed { .. } => false,
        }
    }

    /// The HTTP status, for [`ClientError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The endpoint the failed request was for, if one was sent.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            ClientError::Status { endpoint, .. }
            | ClientError::Transport { endpoint, .. }
            | ClientError::ResponseTooLarge { endpoint, .. }
            | ClientError::Malformed { endpoint, .. } => Some(*endpoint),
            ClientError::InvalidUrl { .. }
            | ClientError::Build(_)
            | ClientError::InvalidRequest(_) => None,
        }
    }
}

/// An error and its causes, `": "`-separated: reqwest's own message says
/// only "error sending request"; the cause (connection refused, timed out,
/// certificate) is further down the chain.
fn chain(e: &reqwest::Error) -> ChainDisplay<'_> {
    ChainDisplay(e)
}

struct ChainDisplay<'a>(&'a reqwest::Error);

impl fmt::Display for ChainDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        // Bounded: a cyclic chain would be a bug elsewhere, not a reason to
        // hang while printing an error.
        for _ in 0..8 {
            let Some(c) = cause else { break };
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> ClientError {
        ClientError::Status {
            endpoint: Endpoint::AddLeaf,
            status: code,
            body: "no".into(),
        }
    }

    #[test]
    fn server_errors_and_throttling_are_retryable_client_errors_are_not() {
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [400, 403, 404, 405, 409] {
            assert!(!status(code).is_retryable(), "{code}");
        }
        let malformed = ClientError::Malformed {
            endpoint: Endpoint::GetTreeHead,
            error: MalformedResponse::TooManyLeaves {
                requested: 1,
                received: 2,
            },
        };
        assert!(!malformed.is_retryable());
    }

    #[test]
    fn status_error_names_endpoint_status_and_body() {
        let e = status(403);
        assert_eq!(e.to_string(), "add-leaf: HTTP 403: no");
        assert_eq!(e.status(), Some(403));
        assert_eq!(e.endpoint(), Some(Endpoint::AddLeaf));
    }
}
