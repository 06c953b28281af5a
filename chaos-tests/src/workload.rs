//! Clients: submitters through every frontend, and readers of the tree
//! head from every frontend and of the `checkpoint` object from the
//! object store. Each records what it saw in the [`Recorder`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_client::{AddLeafStatus, LogClient};
use cairn_sigsum::api::AddLeafRequest;
use cairn_sigsum::key::log_origin;
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::policy::Policy;
use cairn_sigsum::{PublicKey, SigningKey};
use cairn_tlog::Hash;
use cairn_tlog::checkpoint::SignedCheckpoint;
use cairn_tlog::note::Ed25519NoteVerifier;
use tokio::task::JoinHandle;

use crate::history::{Recorder, Source};

/// How often each reader polls.
const READ_EVERY: Duration = Duration::from_millis(200);
/// Limit on one client request.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// Running clients; [`Workload::stop`] ends them.
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the clients talk to.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub frontends: Vec<LogClient>,
    /// The URL the log's `checkpoint` and tiles are under (its bucket).
    pub store_url: Option<String>,
    pub log_key: PublicKey,
    /// The log's policy: every cosignature a frontend serves must verify,
    /// and every head it serves must satisfy the quorum.
    pub policy: Option<Arc<Policy>>,
}

impl Workload {
    /// Starts `submitters` submitters (spread over the frontends) and the
    /// readers.
    pub fn start(endpoints: &Endpoints, submitters: usize, recorder: &Recorder) -> Self {
        let mut work = Self::submitters(endpoints, submitters, recorder);
        work.tasks
            .extend(Self::readers(endpoints, recorder, &work.stop));
        work
    }

    /// Only submitters (a burst): `n` of them, no readers.
    pub fn submitters(endpoints: &Endpoints, n: usize, recorder: &Recorder) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|i| {
                tokio::spawn(submitter(
                    i,
                    endpoints.frontends.clone(),
                    recorder.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Workload { stop, tasks }
    }

    fn readers(
        endpoints: &Endpoints,
        recorder: &Recorder,
        stop: &Arc<AtomicBool>,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks: Vec<JoinHandle<()>> = endpoints
            .frontends
            .iter()
            .enumerate()
            .map(|(i, client)| {
                tokio::spawn(head_reader(
                    i,
                    client.clone(),
                    endpoints.clone(),
                    recorder.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        if let Some(url) = &endpoints.store_url {
            tasks.push(tokio::spawn(checkpoint_reader(
                format!("{url}/checkpoint"),
                endpoints.log_key,
                recorder.clone(),
                stop.clone(),
            )));
        }
        tasks
    }

    /// Stops every client and waits for them (a request in flight may
    /// still finish and be recorded).
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(REQUEST_LIMIT * 2, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("operating system randomness");
    b
}

/// Submits fresh leaves one at a time, as sigsum-submit does: the same
/// request again after a 202 or an error until a 200, which is recorded.
/// Errors move it to the next frontend (one may be down).
async fn submitter(
    index: usize,
    frontends: Vec<LogClient>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let key = SigningKey::from_seed(&random_bytes::<32>());
    let mut frontend = index % frontends.len();
    while !stop.load(Ordering::Relaxed) {
        let message: Hash = random_bytes();
        let request = AddLeafRequest::sign(&key, &message);
        let leaf_hash = Leaf::sign(&key, &message).leaf_hash();
        while !stop.load(Ordering::Relaxed) {
            let answer =
                tokio::time::timeout(REQUEST_LIMIT, frontends[frontend].add_leaf(&request, None))
                    .await;
            match answer {
                Ok(Ok(AddLeafStatus::Committed)) => {
                    recorder.ack(frontend, leaf_hash);
                    break;
                }
                Ok(Ok(AddLeafStatus::Accepted)) => {
                    recorder.accepted();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(Err(_)) | Err(_) => {
                    recorder.refused();
                    frontend = (frontend + 1) % frontends.len();
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

/// Reads one frontend's tree head over and over; records those whose log
/// signature verifies, and any that does not as a bad answer, as are
/// cosignatures that do not verify and heads short of the quorum.
async fn head_reader(
    index: usize,
    client: LogClient,
    endpoints: Endpoints,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let log_key = endpoints.log_key;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(Ok(head)) = tokio::time::timeout(REQUEST_LIMIT, client.get_tree_head()).await {
            let th = head.tree_head();
            if head.signed.verify(&log_key) {
                recorder.head(Source::Frontend(index), th.size, th.root_hash);
                if let Some(policy) = &endpoints.policy {
                    let review = policy.review_cosignatures(&head, &log_key.key_hash());
                    for w in &review.invalid {
                        recorder.bad(format!(
                            "frontend {} served a cosignature by {} on size {} that does not verify",
                            index + 1,
                            String::from_utf8_lossy(w.name().as_bytes()),
                            th.size
                        ));
                    }
                    if !review.quorum_satisfied() {
                        recorder.bad(format!(
                            "frontend {} served size {} with {} valid cosignatures, short of the quorum",
                            index + 1,
                            th.size,
                            review.valid.len()
                        ));
                    }
                }
            } else {
                recorder.bad(format!(
                    "frontend {} served a tree head of size {} whose signature does not verify",
                    index + 1,
                    th.size
                ));
            }
        }
        tokio::time::sleep(READ_EVERY).await;
    }
}

/// Reads the `checkpoint` object straight from the object store.
async fn checkpoint_reader(
    url: String,
    log_key: PublicKey,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let http = cairn_roots::Roots::bundled()
        .reqwest_builder()
        .timeout(REQUEST_LIMIT)
        .build()
        .expect("HTTP client");
    while !stop.load(Ordering::Relaxed) {
        if let Ok(r) = http.get(&url).send().await {
            let status = r.status();
            if status.is_success()
                && let Ok(body) = r.bytes().await
            {
                match parse_checkpoint(&body, &log_key) {
                    Ok((size, root)) => recorder.head(Source::Store, size, root),
                    Err(why) => recorder.bad(format!("the checkpoint object: {why}")),
                }
            } else if status.is_client_error() && status != reqwest::StatusCode::NOT_FOUND {
                // Not the log's fault, but the check would be hollow.
                recorder.bad(format!("the checkpoint object cannot be read: {status}"));
            }
        }
        tokio::time::sleep(READ_EVERY).await;
    }
}

/// The size and root of the checkpoint `text`, whose signature by the
/// Sigsum log `log_key` must verify (C2SP signed-note).
pub fn parse_checkpoint(text: &[u8], log_key: &PublicKey) -> Result<(u64, Hash), String> {
    let signed = SignedCheckpoint::parse(text).map_err(|e| e.to_string())?;
    let verifier =
        Ed25519NoteVerifier::new(&log_origin(log_key), &log_key.0).map_err(|e| e.to_string())?;
    let c = signed.checkpoint();
    signed
        .verify(&[&verifier])
        .map_err(|e| format!("size {}: {e}", c.size))?;
    Ok((c.size, c.root))
}
