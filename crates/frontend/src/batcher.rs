//! The per-shard submission batcher: concurrent add-leaf requests share
//! one `AddLeaves` call, so the sequencer proposes one Raft entry for many
//! leaves (`docs/decisions/0002-dev-slice.md`, "The write path", step 1).
//!
//! Lifecycle: [`Batcher::spawn`] starts one task that owns the receiving
//! end of a bounded queue. The task closes a batch after
//! `batch_max_delay` or `batch_max_leaves`, whichever comes first, and sends
//! it on a task of its own, at most `max_batches_in_flight` at once. It ends
//! when every [`Batcher`] handle is dropped (the router is dropped); calls
//! already in flight finish within their own time limit.
//!
//! Back-pressure: while all batch slots are busy the queue fills, and a
//! full queue makes [`Batcher::submit`] fail at once with 503 instead of
//! letting requests pile up.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::SequencerPool;
use cairn_proto::v1::AddLeavesRequest;
use cairn_sigsum::leaf::LEAF_SIZE;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::config::ShardLimits;
use crate::error::ApiError;
use crate::metrics::Refusal;

/// Extra time an `AddLeaves` call gets beyond the `wait_ms` it asks for:
/// the sequencer answers at `wait_ms` at the latest, plus one round trip.
/// Also the room left for finding the leader: an attempt on another node
/// asks for what is left of the wait minus this.
const CALL_GRACE: Duration = Duration::from_secs(2);

/// What became of a submitted leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Raft-committed and applied at `index`: it will be in the next
    /// signed tree head (add-leaf answers 200 once a published head
    /// includes it).
    Committed {
        /// The leaf's index in the tree.
        index: u64,
    },
    /// Handed to the sequencer but not committed within the wait
    /// (add-leaf answers 202; the client resubmits, which is idempotent).
    Pending,
}

/// One leaf waiting for a batch.
#[derive(Debug)]
struct Submission {
    leaf: [u8; LEAF_SIZE],
    queued: Instant,
    /// The submitter's span (its add-leaf request): the batch's call is a
    /// child of the first one's and follows from the others.
    span: tracing::Span,
    reply: oneshot::Sender<Result<Outcome, ApiError>>,
}

/// Handle to a shard's batcher task. Cheap to share behind an `Arc`;
/// [`submit`](Self::submit) may be called concurrently.
#[derive(Debug)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<Submission>,
    /// Longest a submitter waits for its batch's answer, queueing included.
    reply_timeout: Duration,
}

/// The limits the batcher task uses.
#[derive(Clone, Debug)]
struct BatchConfig {
    shard: String,
    max_leaves: usize,
    max_delay: Duration,
    wait: Duration,
    max_in_flight: usize,
}

impl Batcher {
    /// Starts the batcher task for `shard` on the current Tokio runtime.
    /// Must be called from within a runtime.
    pub(crate) fn spawn(shard: &str, client: SequencerPool, limits: &ShardLimits) -> Batcher {
        let (queue, rx) = mpsc::channel(limits.submit_queue);
        let config = BatchConfig {
            shard: shard.to_owned(),
            max_leaves: limits.batch_max_leaves,
            max_delay: limits.batch_max_delay,
            wait: limits.submit_wait,
            max_in_flight: limits.max_batches_in_flight,
        };
        tokio::spawn(run(rx, client, config));
        Batcher {
            queue,
            // A submission may wait for a batch slot behind calls that each
            // take up to wait + grace; beyond twice that, something is stuck.
            reply_timeout: 2 * (limits.submit_wait + CALL_GRACE),
        }
    }

    /// Queues a verified 128-byte leaf and waits for its batch's answer.
    ///
    /// Errors: [`ApiError::Overloaded`] if the queue is full or the
    /// sequencer overloaded, [`ApiError::Unavailable`] if it is
    /// unreachable or too slow; the caller answers
    /// 503 and the client retries (resubmission is idempotent).
    /// [`ApiError::Internal`] if the sequencer's answer is inconsistent.
    pub(crate) async fn submit(&self, leaf: [u8; LEAF_SIZE]) -> Result<Outcome, ApiError> {
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            leaf,
            queued: Instant::now(),
            span: tracing::Span::current(),
            reply,
        };
        self.queue.try_send(submission).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::Overloaded {
                why: Refusal::SubmitQueue,
                message: "the submission queue is full, retry later".to_owned(),
            },
            mpsc::error::TrySendError::Closed(_) => {
                ApiError::Unavailable("the submission batcher has stopped".to_owned())
            }
        })?;
        match tokio::time::timeout(self.reply_timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ApiError::Internal(
                "the submission batcher dropped a leaf without an answer".to_owned(),
            )),
            Err(_) => Err(ApiError::Unavailable(
                "timed out waiting for the sequencer".to_owned(),
            )),
        }
    }
}

/// The batcher task: collects batches and sends each on its own task.
async fn run(mut rx: mpsc::Receiver<Submission>, client: SequencerPool, config: BatchConfig) {
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    let mut batch = Vec::with_capacity(config.max_leaves);
    while rx.recv_many(&mut batch, config.max_leaves).await > 0 {
        let close_at = Instant::now() + config.max_delay;
        while batch.len() < config.max_leaves {
            let room = config.max_leaves - batch.len();
            match tokio::time::timeout_at(close_at, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // Waiting here (all slots busy) lets the queue fill, which is what
        // turns sustained overload into 503s at the door.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let full = std::mem::replace(&mut batch, Vec::with_capacity(config.max_leaves));
        let client = client.clone();
        let config = config.clone();
        tokio::spawn(async move {
            send(client, &config, full).await;
            drop(slot);
        });
    }
    tracing::debug!(shard = %config.shard, "submission batcher stopped");
}

/// Sends one batch (to the shard's leader, wherever the pool finds it)
/// and delivers each leaf's outcome to its submitter.
async fn send(pool: SequencerPool, config: &BatchConfig, batch: Vec<Submission>) {
    // Submitters' deadlines run from when they queued: ask the sequencer
    // to wait only for what is left of the oldest one's.
    let oldest = batch
        .iter()
        .map(|s| s.queued)
        .min()
        .unwrap_or_else(Instant::now);
    let wait = config.wait.saturating_sub(oldest.elapsed());
    let deadline = Instant::now() + wait + CALL_GRACE;
    let leaves: Vec<Vec<u8>> = batch.iter().map(|s| s.leaf.to_vec()).collect();
    let span = match batch.first() {
        Some(first) => {
            tracing::info_span!(parent: &first.span, "add_leaves_batch", shard = %config.shard, leaves = batch.len())
        }
        None => tracing::Span::none(),
    };
    for other in batch.iter().skip(1) {
        span.follows_from(&other.span);
    }
    // An attempt may wait as long as the whole call: the leader holds it
    // until the leaves commit. A node that stopped answering is still left
    // early, by the pool's keep-alive.
    let answer = pool
        .call_with("AddLeaves", deadline, wait + CALL_GRACE, |mut client| {
            // A retry (on the leader a follower named) waits for what is
            // left; with nothing left it still hands the leaves over.
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.saturating_sub(CALL_GRACE);
            let mut request = tonic::Request::new(AddLeavesRequest {
                shard: config.shard.clone(),
                leaves: leaves.clone(),
                wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
            });
            request.set_timeout(left);
            async move { client.add_leaves(request).await }
        })
        .instrument(span)
        .await;
    let mut frozen = None;
    let results = match answer {
        Err(status) => Err(ApiError::from_status("AddLeaves", &status)),
        Ok(response) => {
            let results = response.results;
            frozen = response.frozen;
            if results.len() == batch.len() {
                Ok(results)
            } else {
                Err(ApiError::Internal(format!(
                    "AddLeaves: {} results for {} leaves",
                    results.len(),
                    batch.len()
                )))
            }
        }
    };
    match results {
        Ok(results) => {
            let committed = results.iter().filter(|r| r.committed).count();
            tracing::debug!(
                shard = %config.shard,
                leaves = batch.len(),
                committed,
                "AddLeaves answered"
            );
            for (submission, result) in batch.into_iter().zip(results) {
                let outcome = if result.committed {
                    Ok(Outcome::Committed {
                        index: result.index,
                    })
                } else if result.frozen {
                    Err(ApiError::Gone(frozen_message(
                        &config.shard,
                        frozen.as_ref(),
                    )))
                } else {
                    Ok(Outcome::Pending)
                };
                // A submitter that gave up has dropped its receiver; its
                // leaf was still sequenced, so nothing is lost.
                let _ = submission.reply.send(outcome);
            }
        }
        Err(error) => {
            tracing::warn!(shard = %config.shard, leaves = batch.len(), "{error}");
            for submission in batch {
                let _ = submission.reply.send(Err(error.clone()));
            }
        }
    }
}

/// The 410 body for a leaf that a frozen log refused: what happened, and
/// where to submit instead (the successor's base URL on this frontend is
/// the sibling path, as every shard is mounted at `/<name>/`).
pub(crate) fn frozen_message(shard: &str, frozen: Option<&cairn_proto::v1::Frozen>) -> String {
    let mut message = format!("log {shard:?} is frozen");
    if let Some(f) = frozen {
        message.push_str(&format!(" at tree size {}", f.size));
    }
    message.push_str(
        " and accepts no new leaves; its published tree heads, proofs and leaves stay served",
    );
    match frozen.map(|f| f.successor.as_str()) {
        Some(successor) if !successor.is_empty() => message.push_str(&format!(
            ". Submit to its successor, shard {successor:?} (base URL ../{successor}/ relative to this log's)"
        )),
        _ => message.push_str(". Submit to another log of your policy"),
    }
    message
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use cairn_proto::v1 as pb;
    use cairn_proto::v1::sequencer_server::{Sequencer, SequencerServer};
    use tonic::{Request, Response, Status};

    use super::*;

    /// A sequencer whose `AddLeaves` records the batch size, then waits for
    /// a permit of `gate` before reporting every leaf committed.
    #[derive(Debug)]
    struct Gated {
        gate: Semaphore,
        calls: Mutex<Vec<usize>>,
    }

    #[derive(Debug, Clone)]
    struct Service(Arc<Gated>);

    #[tonic::async_trait]
    impl Sequencer for Service {
        async fn add_leaves(
            &self,
            request: Request<pb::AddLeavesRequest>,
        ) -> Result<Response<pb::AddLeavesResponse>, Status> {
            let n = request.get_ref().leaves.len();
            self.0.calls.lock().unwrap().push(n);
            self.0.gate.acquire().await.unwrap().forget();
            let results = (0..n)
                .map(|i| pb::LeafResult {
                    committed: true,
                    index: i as u64,
                    frozen: false,
                })
                .collect();
            Ok(Response::new(pb::AddLeavesResponse {
                results,
                frozen: None,
            }))
        }
        async fn get_leaf_index(
            &self,
            _: Request<pb::GetLeafIndexRequest>,
        ) -> Result<Response<pb::GetLeafIndexResponse>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn get_leaf_indices(
            &self,
            _: Request<pb::GetLeafIndicesRequest>,
        ) -> Result<Response<pb::GetLeafIndicesResponse>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn get_tree_heads(
            &self,
            _: Request<pb::GetTreeHeadsRequest>,
        ) -> Result<Response<pb::TreeHeads>, Status> {
            Err(Status::unimplemented("test"))
        }
        type WatchTreeHeadsStream = tokio_stream::Empty<Result<pb::TreeHeads, Status>>;
        async fn watch_tree_heads(
            &self,
            _: Request<pb::GetTreeHeadsRequest>,
        ) -> Result<Response<Self::WatchTreeHeadsStream>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn publish_cosigned(
            &self,
            _: Request<pb::PublishCosignedRequest>,
        ) -> Result<Response<pb::PublishCosignedResponse>, Status> {
            Err(Status::unimplemented("test"))
        }

        async fn report_witness_ahead(
            &self,
            _: Request<pb::ReportWitnessAheadRequest>,
        ) -> Result<Response<pb::ReportWitnessAheadResponse>, Status> {
            Ok(Response::new(pb::ReportWitnessAheadResponse {
                halted: false,
            }))
        }

        async fn get_registry(
            &self,
            _: tonic::Request<cairn_proto::v1::GetRegistryRequest>,
        ) -> Result<tonic::Response<cairn_proto::v1::Registry>, tonic::Status> {
            Err(tonic::Status::not_found("no registry"))
        }
    }

    async fn start() -> (Arc<Gated>, SequencerPool) {
        let gated = Arc::new(Gated {
            gate: Semaphore::new(0),
            calls: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(SequencerServer::new(Service(Arc::clone(&gated))))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let pool = SequencerPool::new([format!("http://{addr}")], Default::default()).unwrap();
        (gated, pool)
    }

    type Answer = oneshot::Receiver<Result<Outcome, ApiError>>;

    fn submission(i: u8) -> (Submission, Answer) {
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            leaf: [i; LEAF_SIZE],
            queued: Instant::now(),
            span: tracing::Span::none(),
            reply,
        };
        (submission, answer)
    }

    async fn wait_for_calls(gated: &Gated, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while gated.calls.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "no AddLeaves call arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn submissions_queued_behind_a_busy_call_share_the_next_calls() {
        let (gated, client) = start().await;
        let limits = ShardLimits {
            max_batches_in_flight: 1,
            ..ShardLimits::default()
        };
        let batcher = Batcher::spawn("dev", client, &limits);
        let mut answers = Vec::new();
        let (first, answer) = submission(0);
        batcher.queue.send(first).await.unwrap();
        answers.push(answer);
        wait_for_calls(&gated, 1).await;
        // The only call slot is busy: these 20 can at most form one batch
        // that waits for the slot, and one batch of everything left.
        for i in 1..=20 {
            let (s, answer) = submission(i);
            batcher.queue.send(s).await.unwrap();
            answers.push(answer);
        }
        gated.gate.add_permits(100);
        for answer in answers {
            assert!(matches!(
                answer.await.unwrap(),
                Ok(Outcome::Committed { .. })
            ));
        }
        let calls = gated.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 21, "{calls:?}");
        assert_eq!(calls[0], 1);
        assert!(calls.len() <= 3, "{calls:?}");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_submissions_at_once() {
        let (gated, client) = start().await;
        let limits = ShardLimits {
            max_batches_in_flight: 1,
            batch_max_leaves: 2,
            submit_queue: 1,
            ..ShardLimits::default()
        };
        let batcher = Batcher::spawn("dev", client, &limits);
        let mut answers = Vec::new();
        let (first, answer) = submission(0);
        batcher.queue.send(first).await.unwrap();
        answers.push(answer);
        wait_for_calls(&gated, 1).await;
        // At most one batch of 2 waits for the slot and one submission
        // fits the queue: the fourth try is refused at the latest.
        let mut refused = false;
        for i in 1..=4 {
            let (s, answer) = submission(i);
            if batcher.queue.try_send(s).is_err() {
                refused = true;
                break;
            }
            answers.push(answer);
        }
        assert!(refused, "the queue never filled");
        match batcher.submit([9; LEAF_SIZE]).await {
            Err(ApiError::Overloaded {
                why: Refusal::SubmitQueue,
                message,
            }) => assert!(message.contains("queue is full"), "{message}"),
            other => panic!("expected 503, got {other:?}"),
        }
        gated.gate.add_permits(100);
        for answer in answers {
            assert!(matches!(
                answer.await.unwrap(),
                Ok(Outcome::Committed { .. })
            ));
        }
    }
}
