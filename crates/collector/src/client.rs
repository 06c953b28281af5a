//! A C2SP tlog-witness client: `POST <submission prefix>/add-checkpoint`.

use std::time::Duration;

use cairn_roots::Roots;
use cairn_tlog::Hash;
use cairn_witness::AddCheckpointRequest;
use reqwest::{StatusCode, Url};

/// Largest response body read from a witness, in bytes. A cosignature line
/// is about 130 bytes; even many post-quantum lines fit.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Longest error body kept in a [`WitnessError::Status`], in bytes.
const MAX_ERROR_TEXT: usize = 512;

/// Content type of a 409 body carrying the witness's size.
const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Why an `add-checkpoint` call gave no cosignature response.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The witness URL is not an absolute `http`/`https` URL.
    #[error("invalid witness URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// 409 with `text/x.tlog.size`: the witness last cosigned `size`.
    #[error("witness has cosigned size {size}, not the old size sent")]
    Conflict {
        /// The witness's latest cosigned size.
        size: u64,
    },
    /// Any other non-200 status, with the start of the body (lossy UTF-8).
    #[error("witness answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The (truncated) response text.
        body: String,
    },
    /// The response body exceeded [`MAX_RESPONSE_BYTES`].
    #[error("witness response is larger than {MAX_RESPONSE_BYTES} bytes")]
    ResponseTooLarge,
    /// Connecting, sending or receiving failed, or took longer than the
    /// request timeout.
    #[error("witness request failed: {0}")]
    Transport(#[from] reqwest::Error),
}

impl WitnessError {
    /// Whether the same request may succeed later without any change (the
    /// witness or network was unavailable). A 409 is not retryable as such:
    /// the request must change to the reported size.
    pub fn is_retryable(&self) -> bool {
        match self {
            WitnessError::Transport(_) | WitnessError::ResponseTooLarge => true,
            WitnessError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            WitnessError::InvalidUrl { .. } | WitnessError::Conflict { .. } => false,
        }
    }

    /// A short fixed name of the error kind, for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            WitnessError::InvalidUrl { .. } => "invalid_url",
            WitnessError::Conflict { .. } => "conflict",
            WitnessError::Status { .. } => "status",
            WitnessError::ResponseTooLarge => "response_too_large",
            WitnessError::Transport(e) if e.is_timeout() => "timeout",
            WitnessError::Transport(_) => "transport",
        }
    }
}

/// The `add-checkpoint` URL for a witness submission prefix: the prefix with
/// exactly one `/` before `add-checkpoint`, whether or not it ends in `/`.
pub fn add_checkpoint_url(prefix: &str) -> Result<Url, WitnessError> {
    let invalid = |reason: String| WitnessError::InvalidUrl {
        url: prefix.to_owned(),
        reason,
    };
    let base = Url::parse(prefix).map_err(|e| invalid(e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            base.scheme()
        )));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid(
            "a submission prefix has no query or fragment".into(),
        ));
    }
    let joined = format!("{}/add-checkpoint", prefix.trim_end_matches('/'));
    Url::parse(&joined).map_err(|e| invalid(e.to_string()))
}

/// An HTTP(S) client for witnesses. Cheap to clone (connections are pooled
/// and shared); safe to use from many tasks at once. Makes exactly one
/// attempt per call: the collector decides what to retry.
#[derive(Clone, Debug)]
pub struct WitnessClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl WitnessClient {
    /// A client whose every request is limited to `timeout`, from connecting
    /// to the end of the response body, trusting the bundled web PKI roots
    /// for `https` witnesses.
    pub fn new(timeout: Duration) -> Result<Self, WitnessError> {
        Self::with_roots(timeout, &Roots::bundled())
    }

    /// Like [`WitnessClient::new`], but trusting `roots` (e.g. the bundled
    /// ones plus a private CA's, for witnesses and bastions run with one).
    pub fn with_roots(timeout: Duration, roots: &Roots) -> Result<Self, WitnessError> {
        let http = roots
            .reqwest_builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("cairn-collector/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WitnessClient { http, timeout })
    }

    /// The per-request time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `add-checkpoint` to `url` (see [`add_checkpoint_url`]) with the
    /// old size, the consistency proof from it, and the signed checkpoint
    /// note. Returns the 200 response body (cosignature lines, unverified).
    ///
    /// 409 with `Content-Type: text/x.tlog.size` and a decimal body becomes
    /// [`WitnessError::Conflict`]; every other non-200 answer becomes
    /// [`WitnessError::Status`] with the body text.
    pub async fn add_checkpoint(
        &self,
        url: &Url,
        old_size: u64,
        proof: &[Hash],
        note: &[u8],
    ) -> Result<Vec<u8>, WitnessError> {
        let body = AddCheckpointRequest {
            old_size,
            proof: proof.to_vec(),
            note,
        }
        .encode();
        let mut resp = self.http.post(url.clone()).body(body).send().await?;
        let status = resp.status();
        let is_size = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case(TLOG_SIZE_CONTENT_TYPE))
            });
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(WitnessError::ResponseTooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        if status == StatusCode::OK {
            return Ok(bytes);
        }
        if status == StatusCode::CONFLICT && is_size {
            let size = bytes
                .strip_suffix(b"\n")
                .and_then(|n| cairn_sigsum::ascii::parse_int(n).ok());
            if let Some(size) = size {
                return Err(WitnessError::Conflict { size });
            }
        }
        let text = bytes.get(..MAX_ERROR_TEXT).unwrap_or(&bytes);
        Err(WitnessError::Status {
            status,
            body: String::from_utf8_lossy(text).trim_end().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_checkpoint_is_appended_with_one_slash() {
        for prefix in [
            "http://w.example/witness",
            "http://w.example/witness/",
            "http://w.example/witness//",
        ] {
            assert_eq!(
                add_checkpoint_url(prefix).expect("valid").as_str(),
                "http://w.example/witness/add-checkpoint",
                "{prefix}"
            );
        }
        assert_eq!(
            add_checkpoint_url("https://w.example")
                .expect("valid")
                .as_str(),
            "https://w.example/add-checkpoint"
        );
    }

    #[test]
    fn non_http_or_relative_urls_are_refused() {
        for bad in [
            "ftp://w.example/",
            "w.example/witness",
            "",
            "http://w/x?y=1",
        ] {
            assert!(
                matches!(
                    add_checkpoint_url(bad),
                    Err(WitnessError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
    }
}
