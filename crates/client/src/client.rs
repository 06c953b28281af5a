//! [`LogClient`]: the Sigsum v1 log API over HTTP(S).

use std::time::Duration;

use cairn_roots::Roots;
use cairn_sigsum::Hash;
use cairn_sigsum::api::{
    AddLeafRequest, ConsistencyProof, ConsistencyProofRequest, Endpoint, InclusionProof,
    InclusionProofRequest, Leaves, LeavesRequest,
};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::token::{HEADER_NAME, SubmitHeader};
use cairn_sigsum::tree_head::CosignedTreeHead;
use reqwest::{StatusCode, Url};

use crate::error::{ClientError, MalformedResponse};

/// Default limit on one whole request, connect to last body byte. Log
/// responses are a few KiB; a request that takes longer is stuck.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit on establishing a connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `User-Agent` sent unless configured otherwise.
pub const DEFAULT_USER_AGENT: &str = concat!("cairn-client/", env!("CARGO_PKG_VERSION"));

/// Largest `get-tree-head` body accepted. A cosignature line is about 230
/// bytes, so this holds over a thousand: far more than any policy (at most
/// 256 witnesses) can use.
pub const MAX_TREE_HEAD_BYTES: usize = 256 * 1024;
/// Largest proof body accepted: 63 node hashes of 75 bytes each fit ten
/// times over.
pub const MAX_PROOF_BYTES: usize = 64 * 1024;
/// Largest `get-leaves` body accepted (about 3900 leaf lines; log-go serves
/// at most 512 per request).
pub const MAX_LEAVES_BYTES: usize = 1024 * 1024;
/// How much of an error response body is kept for the error message.
pub const MAX_ERROR_BODY_BYTES: usize = 4 * 1024;

/// Redirects followed per request. Logs do not redirect, but a base URL
/// behind a proxy may (http → https, a trailing slash).
const MAX_REDIRECTS: usize = 5;

/// How the HTTP client behaves. [`Default`] gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Limit on one whole request. Default [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Limit on connecting. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// The `User-Agent` header. Default [`DEFAULT_USER_AGENT`].
    pub user_agent: String,
    /// The roots trusted for `https` logs. Default: the web PKI roots
    /// bundled with Cairn ([`Roots::bundled`]); the host's store is never
    /// read, so a tool behaves the same in a minimal container.
    pub roots: Roots,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            roots: Roots::bundled(),
        }
    }
}

/// What the log said to an `add-leaf` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddLeafStatus {
    /// 200: the leaf is committed and will be in the log's next signed tree
    /// head (for Cairn: replicated by Raft; for log-go: already in the
    /// signed tree head).
    Committed,
    /// 202: the log has the leaf but has not committed it; send the same
    /// request again later.
    Accepted,
}

/// A client for one Sigsum log, identified by its base URL.
///
/// Cheap to clone; clones share one connection pool. Safe to use from many
/// tasks at once. Methods send exactly one request and never retry: retry
/// policy belongs to the caller (see [`ClientError::is_retryable`]), which
/// knows its deadline. Responses are parsed, never verified.
#[derive(Clone, Debug)]
pub struct LogClient {
    http: reqwest::Client,
    base: Url,
}

impl LogClient {
    /// A client for the log at `base_url` with the default configuration.
    /// See [`LogClient::with_config`].
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_config(base_url, &ClientConfig::default())
    }

    /// A client for the log at `base_url` (`http` or `https`, may carry a
    /// path prefix; a missing trailing `/` is added, as endpoint names are
    /// appended to it). Fails on an unusable URL or if the TLS backend
    /// cannot be initialised.
    pub fn with_config(base_url: &str, config: &ClientConfig) -> Result<Self, ClientError> {
        let base = parse_base_url(base_url)?;
        let http = config
            .roots
            .reqwest_builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .build()
            .map_err(ClientError::Build)?;
        Ok(LogClient { http, base })
    }

    /// A client for another log at `base_url` that shares this one's
    /// configuration and connection pool: a tool talking to several logs
    /// of one server keeps one set of connections, not one per log.
    pub fn at(&self, base_url: &str) -> Result<Self, ClientError> {
        Ok(LogClient {
            http: self.http.clone(),
            base: parse_base_url(base_url)?,
        })
    }

    /// The normalised base URL (ends with `/`).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `POST add-leaf`, with the `sigsum-token` header if `token` is given.
    /// 200 is [`AddLeafStatus::Committed`], 202 [`AddLeafStatus::Accepted`];
    /// any other status is [`ClientError::Status`] (400 bad request or
    /// token, 403 bad leaf signature, 429 rate limited, …).
    pub async fn add_leaf(
        &self,
        request: &AddLeafRequest,
        token: Option<&SubmitHeader>,
    ) -> Result<AddLeafStatus, ClientError> {
        let endpoint = Endpoint::AddLeaf;
        let mut builder = self
            .http
            .post(self.url(endpoint, endpoint.name())?)
            .body(request.to_ascii());
        if let Some(t) = token {
            builder = builder.header(HEADER_NAME, t.to_header_value());
        }
        let response = builder
            .send()
            .await
            .map_err(|error| ClientError::Transport { endpoint, error })?;
        match response.status() {
            StatusCode::OK => Ok(AddLeafStatus::Committed),
            StatusCode::ACCEPTED => Ok(AddLeafStatus::Accepted),
            _ => Err(status_error(endpoint, response).await),
        }
    }

    /// `GET get-tree-head`: the log's current (cosigned) tree head, parsed
    /// but not verified. Duplicate witness key hashes are a malformed
    /// response, as in sigsum-go.
    pub async fn get_tree_head(&self) -> Result<CosignedTreeHead, ClientError> {
        let endpoint = Endpoint::GetTreeHead;
        let body = self
            .get(endpoint, endpoint.name(), MAX_TREE_HEAD_BYTES)
            .await?;
        CosignedTreeHead::parse(&body).map_err(|e| malformed(endpoint, e))
    }

    /// `GET get-inclusion-proof/<size>/<leaf hash>`: the proof for the leaf
    /// with `leaf_hash` in the tree of `size` leaves, parsed but not
    /// verified. `size` must be at least 2 (for one leaf, the leaf hash is
    /// the root and no log serves a proof): smaller sizes are
    /// [`ClientError::InvalidRequest`]. A 404 means the leaf is not in that
    /// tree (yet).
    pub async fn get_inclusion_proof(
        &self,
        size: u64,
        leaf_hash: &Hash,
    ) -> Result<InclusionProof, ClientError> {
        if size < 2 {
            return Err(ClientError::InvalidRequest(format!(
                "inclusion proofs exist for tree sizes of at least 2, not {size}"
            )));
        }
        let endpoint = Endpoint::GetInclusionProof;
        let path = InclusionProofRequest {
            size,
            leaf_hash: *leaf_hash,
        }
        .to_path();
        let body = self.get(endpoint, &path, MAX_PROOF_BYTES).await?;
        InclusionProof::parse(&body).map_err(|e| malformed(endpoint, e))
    }

    /// `GET get-consistency-proof/<old>/<new>`, parsed but not verified.
    /// Needs `0 < old < new` (other proofs are trivial and not served):
    /// otherwise [`ClientError::InvalidRequest`].
    pub async fn get_consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, ClientError> {
        if old_size == 0 || new_size <= old_size {
            return Err(ClientError::InvalidRequest(format!(
                "consistency proofs need 0 < old < new, got {old_size} and {new_size}"
            )));
        }
        let endpoint = Endpoint::GetConsistencyProof;
        let path = ConsistencyProofRequest { old_size, new_size }.to_path();
        let body = self.get(endpoint, &path, MAX_PROOF_BYTES).await?;
        ConsistencyProof::parse(&body).map_err(|e| malformed(endpoint, e))
    }

    /// `GET get-leaves/<start>/<end>`: leaves from index `start`, at least
    /// one and at most `end - start` (logs may return fewer than asked;
    /// more is a malformed response). Needs `start < end`.
    pub async fn get_leaves(&self, start: u64, end: u64) -> Result<Vec<Leaf>, ClientError> {
        if end <= start {
            return Err(ClientError::InvalidRequest(format!(
                "leaf range needs start < end, got {start}..{end}"
            )));
        }
        let endpoint = Endpoint::GetLeaves;
        let path = LeavesRequest { start, end }.to_path();
        let body = self.get(endpoint, &path, MAX_LEAVES_BYTES).await?;
        let leaves = Leaves::parse(&body)
            .map_err(|e| malformed(endpoint, e))?
            .leaves;
        let requested = end - start;
        if u64::try_from(leaves.len()).map_or(true, |n| n > requested) {
            return Err(ClientError::Malformed {
                endpoint,
                error: MalformedResponse::TooManyLeaves {
                    requested,
                    received: leaves.len(),
                },
            });
        }
        Ok(leaves)
    }

    fn url(&self, endpoint: Endpoint, path: &str) -> Result<Url, ClientError> {
        // The paths are built from endpoint names, decimal integers and hex,
        // so joining cannot fail for a valid base; report rather than panic.
        self.base
            .join(path)
            .map_err(|e| ClientError::InvalidRequest(format!("{}: {e}", endpoint.name())))
    }

    /// GETs `path` and returns the body of a 200 response, at most `limit`
    /// bytes.
    async fn get(
        &self,
        endpoint: Endpoint,
        path: &str,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let response = self
            .http
            .get(self.url(endpoint, path)?)
            .send()
            .await
            .map_err(|error| ClientError::Transport { endpoint, error })?;
        if response.status() != StatusCode::OK {
            return Err(status_error(endpoint, response).await);
        }
        read_limited(endpoint, response, limit).await
    }
}

/// Checks and normalises a base URL.
fn parse_base_url(base_url: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: base_url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn malformed(endpoint: Endpoint, e: cairn_sigsum::ascii::Error) -> ClientError {
    ClientError::Malformed {
        endpoint,
        error: MalformedResponse::Parse(e),
    }
}

/// Reads the whole body, failing as soon as it exceeds `limit` bytes (a
/// hostile or broken server cannot make us buffer more).
async fn read_limited(
    endpoint: Endpoint,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ClientError> {
    let too_large = ClientError::ResponseTooLarge { endpoint, limit };
    if response
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit))
    {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| ClientError::Transport { endpoint, error })?
    {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A [`ClientError::Status`] with the start of the body, best effort: an
/// unreadable body still yields the status.
async fn status_error(endpoint: Endpoint, mut response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let mut raw = Vec::new();
    while raw.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => raw.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    raw.truncate(MAX_ERROR_BODY_BYTES);
    ClientError::Status {
        endpoint,
        status,
        body: printable(&raw),
    }
}

/// Lossy UTF-8 with control characters (other than space) escaped and
/// surrounding whitespace trimmed, so a hostile body cannot rewrite the
/// user's terminal.
fn printable(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .trim()
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_gets_a_trailing_slash_and_keeps_its_prefix() {
        let c = LogClient::new("http://127.0.0.1:6965/dev").unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:6965/dev/");
        let u = c.url(Endpoint::GetTreeHead, "get-tree-head").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:6965/dev/get-tree-head");
        let c = LogClient::new("https://log.example/").unwrap();
        assert_eq!(c.base_url(), "https://log.example/");
    }

    #[test]
    fn unusable_base_urls_are_rejected() {
        for bad in [
            "log.example",
            "ftp://log.example/",
            "http://log.example/?a=b",
            "http://log.example/#x",
            "mailto:x@y",
        ] {
            assert!(
                matches!(LogClient::new(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_client_for_another_log_of_the_server_takes_that_base_url() {
        let dev = LogClient::new("http://127.0.0.1:6965/dev").unwrap();
        let dev2 = dev.at("http://127.0.0.1:6965/dev2").unwrap();
        assert_eq!(dev2.base_url(), "http://127.0.0.1:6965/dev2/");
        assert_eq!(dev.base_url(), "http://127.0.0.1:6965/dev/");
        assert!(matches!(
            dev.at("ftp://log.example/"),
            Err(ClientError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn error_bodies_are_made_printable() {
        assert_eq!(printable(b"  bad\x1b[2Jthing\n"), "bad\\u{1b}[2Jthing");
        assert_eq!(printable(b"\xffok"), "\u{fffd}ok");
    }

    #[tokio::test]
    async fn requests_no_log_serves_fail_before_sending() {
        // Port 9 (discard) on loopback: nothing is sent, so nothing listens.
        let c = LogClient::new("http://127.0.0.1:9/").unwrap();
        assert!(matches!(
            c.get_inclusion_proof(1, &[0; 32]).await,
            Err(ClientError::InvalidRequest(_))
        ));
        assert!(matches!(
            c.get_consistency_proof(0, 5).await,
            Err(ClientError::InvalidRequest(_))
        ));
        assert!(matches!(
            c.get_consistency_proof(5, 5).await,
            Err(ClientError::InvalidRequest(_))
        ));
        assert!(matches!(
            c.get_leaves(3, 3).await,
            Err(ClientError::InvalidRequest(_))
        ));
    }
}
