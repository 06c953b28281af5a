//! Leaf-index lookups, batched: every get-inclusion-proof needs its leaf's
//! index, which only the sequencer knows. One task takes the lookups
//! queued while its calls were busy and asks for all of them in one
//! `GetLeafIndices` call, so under load the sequencer sees a call per
//! batch rather than per request; a lone lookup goes out at once, alone
//! (nothing waits to fill a batch).
//!
//! Found indices are kept (LRU), and so are the indices of the leaves this
//! frontend itself got committed: a submitter asks for the inclusion proof
//! of its leaf right after add-leaf's 200, usually of the same frontend,
//! and a leaf's index never changes once committed (the sequencer logs a
//! leaf once), so those proofs need no call at all. A leaf not found is
//! not kept: it may be logged a moment later.
//!
//! A sequencer from before `GetLeafIndices` answers UNIMPLEMENTED; then
//! each lookup of the batch is its own `GetLeafIndex` call, as before.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::SequencerPool;
use cairn_proto::v1::{GetLeafIndexRequest, GetLeafIndicesRequest};
use cairn_sigsum::Hash;
use cairn_storage::LruMap;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tonic::Code;

use crate::error::ApiError;

/// Most hashes in one call (the sequencer accepts up to 1024).
const MAX_BATCH: usize = 256;
/// Calls in flight at once; lookups arriving meanwhile wait and batch.
const IN_FLIGHT: usize = 4;
/// Lookups queued before senders wait (the HTTP concurrency limit bounds
/// them first in practice).
const QUEUE: usize = 4096;

/// Leaf indices kept (about 80 bytes each, 2.5 MiB in all): several
/// seconds of add-leaf at full speed, so that a submitter's proof request
/// after its 200 finds its leaf.
const INDICES_KEPT: NonZeroUsize = NonZeroUsize::new(32 * 1024).expect("non-zero");

/// One lookup and where its answer goes.
#[derive(Debug)]
struct Lookup {
    hash: Hash,
    reply: oneshot::Sender<Result<Option<u64>, ApiError>>,
}

/// Handle to one shard's lookup task, which ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Lookups {
    queue: mpsc::Sender<Lookup>,
    known: Arc<Known>,
}

/// Indices known to be committed, by leaf hash.
type Known = LruMap<Hash, u64>;

impl Lookups {
    /// Starts the task (on the current Tokio runtime); each call is bounded
    /// by `timeout`.
    pub(crate) fn spawn(shard: &str, sequencer: SequencerPool, timeout: Duration) -> Lookups {
        let (queue, queued) = mpsc::channel(QUEUE);
        let known = Arc::new(Known::new(INDICES_KEPT));
        tokio::spawn(run(
            shard.to_owned(),
            sequencer,
            timeout,
            queued,
            Arc::clone(&known),
        ));
        Lookups { queue, known }
    }

    /// Records that the leaf with `hash` is committed at `index` (the
    /// sequencer said so in answer to this frontend's add-leaf).
    pub(crate) fn remember(&self, hash: Hash, index: u64) {
        self.known.insert(hash, index);
    }

    /// The index of the leaf with `hash`, if the sequencer has it.
    pub(crate) async fn index(&self, hash: Hash) -> Result<Option<u64>, ApiError> {
        if let Some(index) = self.known.get(&hash) {
            return Ok(Some(index));
        }
        let (reply, answer) = oneshot::channel();
        let gone = || ApiError::Internal("the leaf lookup task has stopped".to_owned());
        self.queue
            .send(Lookup { hash, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run(
    shard: String,
    sequencer: SequencerPool,
    timeout: Duration,
    mut queued: mpsc::Receiver<Lookup>,
    known: Arc<Known>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = queued.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queued.try_recv()
        {
            batch.push(next);
        }
        let (shard, sequencer, known) = (shard.clone(), sequencer.clone(), Arc::clone(&known));
        tokio::spawn(async move {
            answer(&shard, &sequencer, Instant::now() + timeout, batch, &known).await;
            drop(slot);
        });
    }
}

/// Looks `batch` up and answers each lookup.
async fn answer(
    shard: &str,
    sequencer: &SequencerPool,
    deadline: Instant,
    batch: Vec<Lookup>,
    known: &Known,
) {
    let request = GetLeafIndicesRequest {
        shard: shard.to_owned(),
        leaf_hashes: batch.iter().map(|l| l.hash.to_vec()).collect(),
    };
    let answered = sequencer
        .call("GetLeafIndices", deadline, |mut client| {
            let request = request.clone();
            async move { client.get_leaf_indices(request).await }
        })
        .await;
    match answered {
        Ok(response) if response.results.len() == batch.len() => {
            for (lookup, result) in batch.into_iter().zip(response.results) {
                if result.found {
                    known.insert(lookup.hash, result.index);
                }
                let _ = lookup.reply.send(Ok(result.found.then_some(result.index)));
            }
        }
        Ok(response) => {
            let error = ApiError::Internal(format!(
                "GetLeafIndices answered {} lookups with {} results",
                batch.len(),
                response.results.len()
            ));
            for lookup in batch {
                let _ = lookup.reply.send(Err(error.clone()));
            }
        }
        Err(status) if status.code() == Code::Unimplemented => {
            let one_by_one = batch.into_iter().map(|lookup| async move {
                let found = one(shard, sequencer, deadline, lookup.hash).await;
                let _ = lookup.reply.send(found);
            });
            futures::future::join_all(one_by_one).await;
        }
        Err(status) => {
            let error = ApiError::from_status("GetLeafIndices", &status);
            for lookup in batch {
                let _ = lookup.reply.send(Err(error.clone()));
            }
        }
    }
}

/// One `GetLeafIndex` call.
async fn one(
    shard: &str,
    sequencer: &SequencerPool,
    deadline: Instant,
    hash: Hash,
) -> Result<Option<u64>, ApiError> {
    let answer = sequencer
        .call("GetLeafIndex", deadline, |mut client| {
            let request = GetLeafIndexRequest {
                shard: shard.to_owned(),
                leaf_hash: hash.to_vec(),
            };
            async move { client.get_leaf_index(request).await }
        })
        .await
        .map_err(|s| ApiError::from_status("GetLeafIndex", &s))?;
    Ok(answer.found.then_some(answer.index))
}
