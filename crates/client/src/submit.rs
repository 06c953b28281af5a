//! Submit messages and collect verified Sigsum proofs, as `sigsum-submit`
//! does (sigsum-go `pkg/submit`), with one difference: a tree head that
//! lacks the policy's quorum is waited out (cosignatures may still be on
//! their way) until the deadline, rather than failing at once.
//!
//! Per message, for each log of the policy that has a URL, in policy order,
//! until one succeeds:
//!
//! 1. POST `add-leaf` until 200. 202 → wait the poll interval and resend
//!    (resubmission is idempotent); retryable errors → exponential backoff;
//!    other errors → this log failed.
//! 2. Poll `get-tree-head`. The head must carry the log's valid signature
//!    (else this log failed: wrong key or misbehaving), must not contradict
//!    an earlier head of the same size (a fork: this log failed), and its
//!    valid cosignatures from policy witnesses must satisfy the quorum (else
//!    wait). An empty tree, or a tree that does not yet hold the leaf (size 1
//!    with another root, or 404 from `get-inclusion-proof`), means wait.
//! 3. Verify the inclusion proof against the head, assemble the
//!    [`SigsumProof`] and verify it offline with the policy and the
//!    submitter's key, exactly as `cairn verify` / `sigsum-verify` will.
//!
//! Every wait is bounded by the per-log timeout and by the overall deadline
//! of the call; a timeout names the stage it interrupted and the last thing
//! the log said.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cairn_sigsum::api::{AddLeafRequest, InclusionProof};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::policy::Policy;
use cairn_sigsum::proof::{SigsumProof, VerifyError};
use cairn_sigsum::token::{self, SubmitHeader};
use cairn_sigsum::tree_head::TreeHead;
use cairn_sigsum::{Hash, KeyHash, PublicKey};
use cairn_tlog::proof::ProofError;
use futures::stream::{self, Stream, StreamExt};
use tokio::time::{Instant, sleep, timeout_at};
use tracing::{debug, info, warn};

use crate::client::{AddLeafStatus, ClientConfig, LogClient};
use crate::error::ClientError;
use crate::signer::{SignError, Signer, sign_leaf};

/// Default wait between polls (202 answers, tree heads, inclusion proofs).
/// Cairn answers 200 within a batch interval and publishes a cosigned head
/// within seconds; sigsum-go waits 2 s against log-go's slower cadence.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default ceiling of the exponential backoff after retryable errors.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Default time one log gets before the next log of the policy is tried.
pub const DEFAULT_PER_LOG_TIMEOUT: Duration = Duration::from_secs(120);
/// Default deadline for a whole call (all messages, all logs).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of messages in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Upper bound on [`SubmitConfig::concurrency`]: each message in flight
/// holds a connection to the log, and a log rate-limits per submitter.
const MAX_CONCURRENCY: usize = 256;

/// A domain and rate-limit key for the `sigsum-token` header
/// (`sigsum-protocol.md` §7). The token is computed per log (it signs the
/// log's public key), once, when the [`Submitter`] is built.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// The domain whose `_sigsum_v1` TXT record holds the key.
    pub domain: String,
    /// The rate-limit key (should not be the leaf signing key): a
    /// `SigningKey`, or a key in ssh-agent.
    pub key: Arc<dyn Signer>,
}

/// How [`Submitter`] retries and waits. [`Default`] gives the documented
/// defaults.
#[derive(Clone, Debug)]
pub struct SubmitConfig {
    /// Wait between polls. Default [`DEFAULT_POLL_INTERVAL`].
    pub poll_interval: Duration,
    /// Ceiling of the backoff after retryable errors, which starts at the
    /// poll interval and doubles. Default [`DEFAULT_MAX_BACKOFF`].
    pub max_backoff: Duration,
    /// Time one log gets per message. Default [`DEFAULT_PER_LOG_TIMEOUT`].
    pub per_log_timeout: Duration,
    /// Deadline of one `submit_and_prove` call, from its start. Default
    /// [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// Messages processed at once, 1 to 256. Default
    /// [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    /// HTTP client settings for every log.
    pub client: ClientConfig,
    /// The `sigsum-token` header to send, if any.
    pub token: Option<TokenConfig>,
}

impl Default for SubmitConfig {
    fn default() -> Self {
        SubmitConfig {
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_backoff: DEFAULT_MAX_BACKOFF,
            per_log_timeout: DEFAULT_PER_LOG_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            client: ClientConfig::default(),
            token: None,
        }
    }
}

/// Why a [`Submitter`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Submitters only use logs with a URL, and the policy has none.
    #[error("the policy lists no log with a URL to submit to")]
    NoLogWithUrl,
    /// A log URL in the policy is not UTF-8.
    #[error("the URL of log {0} in the policy is not valid UTF-8")]
    NonUtf8Url(KeyHash),
    /// A log URL in the policy is unusable, or the HTTP client failed.
    #[error("log {key_hash}: {error}")]
    Client {
        /// The log's key hash.
        key_hash: KeyHash,
        /// What went wrong.
        error: ClientError,
    },
    /// A [`SubmitConfig`] value out of range.
    #[error("invalid submit configuration: {0}")]
    Config(String),
    /// The rate-limit key could not sign a token.
    #[error("signing the submit token for log {key_hash}: {error}")]
    Token {
        /// The log's key hash.
        key_hash: KeyHash,
        /// Why the signer failed.
        error: SignError,
    },
}

/// What the submitter was waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `add-leaf` to answer 200.
    AddLeaf,
    /// A tree head with a valid log signature that satisfies the policy's
    /// witness quorum.
    Quorum,
    /// Such a tree head that includes the leaf.
    Inclusion,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::AddLeaf => "waiting for add-leaf to answer 200 (committed)",
            Stage::Quorum => "waiting for a tree head that satisfies the policy quorum",
            Stage::Inclusion => "waiting for the leaf to be included in a cosigned tree head",
        })
    }
}

/// Why submitting one message to one log failed.
#[derive(Debug, thiserror::Error)]
pub enum FailureReason {
    /// `add-leaf` got an answer that retrying will not change (400 bad
    /// request or token, 403 bad leaf signature, …).
    #[error("add-leaf rejected: {0}")]
    Rejected(ClientError),
    /// Another request got an answer that retrying will not change.
    #[error("{0}")]
    Request(ClientError),
    /// The tree head's signature does not verify with the policy's key for
    /// this log.
    #[error(
        "get-tree-head: the log signature on the tree head of size {size} does not verify with the policy's key for this log"
    )]
    BadLogSignature {
        /// Size of the offending tree head.
        size: u64,
    },
    /// Two validly signed tree heads of one size with different roots: the
    /// log presented a split view.
    #[error("get-tree-head: two different roots signed for tree size {size}: the log forked")]
    Fork {
        /// The size with two roots.
        size: u64,
    },
    /// The log's inclusion proof does not verify against its own head.
    #[error("get-inclusion-proof: invalid proof: {0}")]
    InvalidInclusionProof(ProofError),
    /// The assembled proof fails offline verification (which would make
    /// it useless to verifiers).
    #[error("the assembled proof does not verify: {0}")]
    ProofDoesNotVerify(VerifyError),
    /// The per-log timeout or the overall deadline passed.
    #[error("timed out after {waited:.1?} {stage}{}", last.as_deref().map(|l| format!("; last: {l}")).unwrap_or_default())]
    Timeout {
        /// What was awaited.
        stage: Stage,
        /// Time spent on this log.
        waited: Duration,
        /// The last answer or condition observed, if any.
        last: Option<String>,
    },
}

/// One log's failure for one message.
#[derive(Debug)]
pub struct LogFailure {
    /// The log's base URL as in the policy.
    pub log_url: String,
    /// What went wrong there.
    pub reason: FailureReason,
}

/// Why a message could not be logged: it could not be signed, or every
/// log tried failed. The failures are in the order tried; fewer than the
/// policy's logs if the overall deadline passed first, none if signing
/// failed.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_failures(failures, signing.as_ref()))]
pub struct SubmitError {
    /// One entry per log tried.
    pub failures: Vec<LogFailure>,
    /// Why the leaf could not be signed, if that is what failed.
    pub signing: Option<SignError>,
}

impl SubmitError {
    fn logs_failed(failures: Vec<LogFailure>) -> Self {
        SubmitError {
            failures,
            signing: None,
        }
    }
}

fn render_failures(failures: &[LogFailure], signing: Option<&SignError>) -> String {
    if let Some(e) = signing {
        return format!("signing the leaf: {e}");
    }
    match failures {
        [] => "the deadline passed before any log was tried".to_owned(),
        [one] => format!("log {}: {}", one.log_url, one.reason),
        many => {
            let parts: Vec<String> = many
                .iter()
                .map(|f| format!("log {}: {}", f.log_url, f.reason))
                .collect();
            format!("all {} logs failed: {}", many.len(), parts.join("; "))
        }
    }
}

/// A policy log the submitter can reach.
#[derive(Debug)]
struct Target {
    url: String,
    key: PublicKey,
    key_hash: KeyHash,
    client: LogClient,
    token: Option<SubmitHeader>,
}

/// Submits messages signed by one key to the logs of one policy and
/// returns verified proofs. Safe to share between tasks; holds one HTTP
/// connection pool per log.
#[derive(Debug)]
pub struct Submitter {
    policy: Policy,
    signer: Arc<dyn Signer>,
    public_key: PublicKey,
    config: SubmitConfig,
    targets: Vec<Target>,
}

impl Submitter {
    /// A submitter for `policy`'s logs that have a URL (in policy order),
    /// signing leaves with `signer` (a `SigningKey`, an
    /// [`AgentSigner`](crate::AgentSigner), or either boxed). Fails if there
    /// is no such log, a URL is unusable, `config` is out of range, or the
    /// token key cannot sign. Blocks while a token is signed through an
    /// agent.
    pub fn new<S: Signer + 'static>(
        policy: Policy,
        signer: S,
        config: SubmitConfig,
    ) -> Result<Self, SetupError> {
        if config.concurrency == 0 || config.concurrency > MAX_CONCURRENCY {
            return Err(SetupError::Config(format!(
                "concurrency must be 1 to {MAX_CONCURRENCY}, not {}",
                config.concurrency
            )));
        }
        for (name, value) in [
            ("poll interval", config.poll_interval),
            ("per-log timeout", config.per_log_timeout),
            ("timeout", config.timeout),
        ] {
            if value.is_zero() {
                return Err(SetupError::Config(format!("the {name} must not be zero")));
            }
        }
        let mut targets = Vec::new();
        for log in policy.logs() {
            let Some(url) = log.url() else { continue };
            let url = url
                .as_str()
                .ok_or(SetupError::NonUtf8Url(*log.key_hash()))?;
            let client = LogClient::with_config(url, &config.client).map_err(|error| {
                SetupError::Client {
                    key_hash: *log.key_hash(),
                    error,
                }
            })?;
            let token = match &config.token {
                None => None,
                Some(t) => Some(SubmitHeader {
                    domain: t.domain.clone(),
                    token: t
                        .key
                        .sign(&token::signed_bytes(log.key()))
                        .map_err(|error| SetupError::Token {
                            key_hash: *log.key_hash(),
                            error,
                        })?,
                }),
            };
            targets.push(Target {
                url: url.to_owned(),
                key: *log.key(),
                key_hash: *log.key_hash(),
                client,
                token,
            });
        }
        if targets.is_empty() {
            return Err(SetupError::NoLogWithUrl);
        }
        let public_key = signer.public_key();
        Ok(Submitter {
            policy,
            signer: Arc::new(signer),
            public_key,
            config,
            targets,
        })
    }

    /// The base URLs of the logs that will be tried, in order.
    pub fn log_urls(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.url.as_str())
    }

    /// Submits every message and returns their proofs (or why none could be
    /// had) in input order. Up to `concurrency` messages are in flight; all
    /// share the deadline `timeout` from now. Every returned proof has
    /// passed [`SigsumProof::verify`] with this policy and key.
    pub async fn submit_and_prove(
        &self,
        messages: &[Hash],
    ) -> Vec<Result<SigsumProof, SubmitError>> {
        let mut results: Vec<Option<Result<SigsumProof, SubmitError>>> =
            messages.iter().map(|_| None).collect();
        let mut done = self.submit_and_prove_stream(messages);
        while let Some((i, r)) = done.next().await {
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SubmitError::logs_failed(vec![]))))
            .collect()
    }

    /// Like [`Submitter::submit_and_prove`], yielding `(index in messages,
    /// result)` as each message finishes, so that callers can store proofs
    /// as they come (and lose none if interrupted). The deadline starts
    /// now.
    pub fn submit_and_prove_stream<'a>(
        &'a self,
        messages: &'a [Hash],
    ) -> impl Stream<Item = (usize, Result<SigsumProof, SubmitError>)> + 'a {
        let deadline = Instant::now() + self.config.timeout;
        stream::iter(messages.iter().enumerate())
            .map(move |(i, m)| async move { (i, self.submit_one(m, deadline).await) })
            .buffer_unordered(self.config.concurrency)
    }

    /// One message, trying the logs in turn until `deadline`.
    async fn submit_one(
        &self,
        message: &Hash,
        deadline: Instant,
    ) -> Result<SigsumProof, SubmitError> {
        let (leaf, request) = self.sign(message).await.map_err(|e| SubmitError {
            failures: vec![],
            signing: Some(e),
        })?;
        let mut failures = Vec::new();
        for target in &self.targets {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let log_deadline = deadline.min(now + self.config.per_log_timeout);
            match self
                .submit_to_log(target, message, &request, &leaf, log_deadline)
                .await
            {
                Ok(proof) => {
                    info!(log = %target.url, size = proof.tree_head.tree_head().size,
                        index = proof.inclusion.leaf_index, "leaf logged, proof verified");
                    return Ok(proof);
                }
                Err(reason) => {
                    warn!(log = %target.url, %reason, "submitting to this log failed");
                    failures.push(LogFailure {
                        log_url: target.url.clone(),
                        reason,
                    });
                }
            }
        }
        Err(SubmitError::logs_failed(failures))
    }

    /// The leaf and add-leaf request for `message`. The signer may block
    /// (ssh-agent, an HSM), so it runs on tokio's blocking pool.
    async fn sign(&self, message: &Hash) -> Result<(Leaf, AddLeafRequest), SignError> {
        let signer = Arc::clone(&self.signer);
        let message = *message;
        match tokio::task::spawn_blocking(move || sign_leaf(&*signer, &message)).await {
            Ok(signed) => signed,
            // Signers do not panic (their contract); if one does anyway,
            // the panic goes on where it would have without the thread.
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(SignError::Cancelled),
        }
    }

    /// One message on one log, bounded by `deadline`.
    async fn submit_to_log(
        &self,
        target: &Target,
        message: &Hash,
        request: &AddLeafRequest,
        leaf: &Leaf,
        deadline: Instant,
    ) -> Result<SigsumProof, FailureReason> {
        let start = Instant::now();
        let mut progress = Progress {
            stage: Stage::AddLeaf,
            last: None,
        };
        let outcome = timeout_at(
            deadline,
            self.drive(target, message, request, leaf, &mut progress),
        )
        .await;
        match outcome {
            Ok(result) => result,
            Err(_elapsed) => Err(FailureReason::Timeout {
                stage: progress.stage,
                waited: start.elapsed(),
                last: progress.last,
            }),
        }
    }

    /// Steps 1–3 of the module documentation, without a deadline of its own
    /// (the caller drops it at the deadline; `progress` says where it was).
    async fn drive(
        &self,
        target: &Target,
        message: &Hash,
        request: &AddLeafRequest,
        leaf: &Leaf,
        progress: &mut Progress,
    ) -> Result<SigsumProof, FailureReason> {
        let mut backoff = Backoff::new(self.config.poll_interval, self.config.max_backoff);

        // 1. add-leaf until committed.
        loop {
            match target.client.add_leaf(request, target.token.as_ref()).await {
                Ok(AddLeafStatus::Committed) => break,
                Ok(AddLeafStatus::Accepted) => {
                    debug!(log = %target.url, "add-leaf: 202 accepted, not yet committed");
                    progress.note("add-leaf answered 202 (accepted, not yet committed)");
                    backoff.reset();
                    sleep(self.config.poll_interval).await;
                }
                Err(e) if e.is_retryable() => {
                    debug!(log = %target.url, error = %e, "add-leaf: retrying");
                    progress.note(e.to_string());
                    sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(FailureReason::Rejected(e)),
            }
        }
        info!(log = %target.url, "leaf committed, waiting for a cosigned tree head");
        progress.stage = Stage::Quorum;
        backoff.reset();

        // 2. and 3.: poll tree heads until one holds the leaf.
        let leaf_hash = leaf.leaf_hash();
        let mut seen: Option<TreeHead> = None;
        loop {
            let cth = match target.client.get_tree_head().await {
                Ok(cth) => cth,
                Err(e) if e.is_retryable() => {
                    progress.note(e.to_string());
                    sleep(backoff.next_delay()).await;
                    continue;
                }
                Err(e) => return Err(FailureReason::Request(e)),
            };
            backoff.reset();
            let head = *cth.tree_head();
            if !cth.signed.verify(&target.key) {
                return Err(FailureReason::BadLogSignature { size: head.size });
            }
            if let Some(prev) = seen
                && prev.size == head.size
                && prev.root_hash != head.root_hash
            {
                return Err(FailureReason::Fork { size: head.size });
            }
            seen = Some(head);

            let review = self.policy.review_cosignatures(&cth, &target.key_hash);
            if !review.quorum_satisfied() {
                progress.stage = Stage::Quorum;
                progress.note(format!(
                    "tree head of size {} has {} cosignature(s), {} valid and {} invalid from policy witnesses: quorum not satisfied",
                    head.size,
                    cth.cosignatures().len(),
                    review.valid.len(),
                    review.invalid.len()
                ));
                sleep(self.config.poll_interval).await;
                continue;
            }
            progress.stage = Stage::Inclusion;

            let inclusion = match head.size {
                0 => None,
                1 if head.root_hash == leaf_hash => Some(InclusionProof {
                    leaf_index: 0,
                    path: Vec::new(),
                }),
                1 => None,
                size => match target.client.get_inclusion_proof(size, &leaf_hash).await {
                    Ok(p) => Some(p),
                    Err(e) if e.status() == Some(404) => None,
                    Err(e) if e.is_retryable() => {
                        progress.note(e.to_string());
                        sleep(backoff.next_delay()).await;
                        continue;
                    }
                    Err(e) => return Err(FailureReason::Request(e)),
                },
            };
            let Some(inclusion) = inclusion else {
                progress.note(format!(
                    "the cosigned tree head of size {} does not include the leaf yet",
                    head.size
                ));
                sleep(self.config.poll_interval).await;
                continue;
            };
            inclusion
                .verify(&leaf_hash, &head)
                .map_err(FailureReason::InvalidInclusionProof)?;

            let proof = SigsumProof {
                log_key_hash: target.key_hash,
                submitter_key_hash: leaf.key_hash,
                leaf_signature: leaf.signature,
                short_checksum: None,
                tree_head: cth,
                inclusion,
            };
            proof
                .verify(message, &[self.public_key], &self.policy)
                .map_err(FailureReason::ProofDoesNotVerify)?;
            return Ok(proof);
        }
    }
}

/// Where a submission to one log stands, for the timeout message.
struct Progress {
    stage: Stage,
    last: Option<String>,
}

impl Progress {
    fn note(&mut self, what: impl Into<String>) {
        self.last = Some(what.into());
    }
}

/// Exponential backoff: `initial`, doubling, capped at `max`.
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::SigningKey;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn policy_without_log_urls_cannot_submit() {
        let policy =
            Policy::parse(format!("log {}\nquorum none\n", "ab".repeat(32)).as_bytes()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        assert!(matches!(
            Submitter::new(policy, key, SubmitConfig::default()),
            Err(SetupError::NoLogWithUrl)
        ));
    }

    #[test]
    fn zero_durations_and_out_of_range_concurrency_are_configuration_errors() {
        let policy = Policy::parse(
            format!("log {} http://127.0.0.1:9/\nquorum none\n", "ab".repeat(32)).as_bytes(),
        )
        .unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let d = SubmitConfig::default;
        let zero = Duration::ZERO;
        let bad = [
            SubmitConfig {
                concurrency: 0,
                ..d()
            },
            SubmitConfig {
                concurrency: MAX_CONCURRENCY + 1,
                ..d()
            },
            SubmitConfig {
                poll_interval: zero,
                ..d()
            },
            SubmitConfig {
                per_log_timeout: zero,
                ..d()
            },
            SubmitConfig {
                timeout: zero,
                ..d()
            },
        ];
        for config in bad {
            assert!(matches!(
                Submitter::new(policy.clone(), key.clone(), config),
                Err(SetupError::Config(_))
            ));
        }
    }

    #[test]
    fn submit_error_lists_every_log_tried() {
        let e = SubmitError {
            signing: None,
            failures: vec![
                LogFailure {
                    log_url: "http://a/".into(),
                    reason: FailureReason::Fork { size: 3 },
                },
                LogFailure {
                    log_url: "http://b/".into(),
                    reason: FailureReason::Timeout {
                        stage: Stage::Quorum,
                        waited: Duration::from_secs(2),
                        last: Some("nothing".into()),
                    },
                },
            ],
        };
        let s = e.to_string();
        assert!(s.starts_with("all 2 logs failed: log http://a/: "), "{s}");
        assert!(s.contains("log http://b/: timed out after 2.0s waiting for a tree head that satisfies the policy quorum; last: nothing"), "{s}");
    }
}
