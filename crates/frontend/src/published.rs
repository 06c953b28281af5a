//! What this frontend knows of a shard's published (cosigned) tree size,
//! kept current from the sequencer's `WatchTreeHeads` stream.
//!
//! add-leaf answers 200 only once `get-tree-head` serves a head that
//! includes the leaf (docs/architecture.md, write path step 2): stock
//! sigsum-submit asks for an inclusion proof in the head it fetches right
//! after a 200, and treats a head that cannot prove the leaf as a failure
//! (for a head of size 1 it compares the root with the leaf hash itself).
//! The published size only moves forward once the sequencer has committed
//! the cosigned head through Raft, and every frontend's `get-tree-head`
//! reads that committed state, so a size seen here is one every frontend
//! serves from then on.
//!
//! The size is monotone: a smaller size from a lagging source is ignored.
//! The stream is opened on the sequencer pool's leader guess (any replica
//! serves it, from its own applied state) and moved to the new guess as
//! soon as calls find another leader, so that add-leaf hears of a
//! publication from the node that made it. A stream that fails or ends
//! reports its node to the pool (the guess moves on) and is reopened with
//! backoff (add-leaf meanwhile answers 202 after its wait, and the client
//! comes back). The watcher task ends when the [`Published`] handle is
//! dropped.

use std::time::Duration;

use cairn_proto::SequencerPool;
use cairn_proto::v1::{Frozen, GetTreeHeadsRequest};
use futures::StreamExt as _;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// First delay before reconnecting a broken stream; doubled per failure.
const RECONNECT_MIN: Duration = Duration::from_millis(50);
/// Longest delay between reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Handle to one shard's published size. Dropping it stops the watcher.
#[derive(Debug)]
pub(crate) struct Published {
    size: watch::Sender<u64>,
    /// The log's freeze, once a head message has carried one (a freeze
    /// is never undone).
    frozen: watch::Sender<Option<Frozen>>,
    /// Dropped with the handle: the watcher task sees its receiver close.
    _stop: oneshot::Sender<()>,
}

impl Published {
    /// Starts watching `shard`'s heads through `sequencer` (on the current
    /// Tokio runtime).
    pub(crate) fn spawn(shard: &str, sequencer: SequencerPool) -> Published {
        let (size, _) = watch::channel(0);
        let (frozen, _) = watch::channel(None);
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(watch_stream(
            shard.to_owned(),
            sequencer,
            Seen {
                size: size.clone(),
                frozen: frozen.clone(),
            },
            stopped,
        ));
        Published {
            size,
            frozen,
            _stop: stop,
        }
    }

    /// A handle with no watcher, for a shard no sequencer hosts any more
    /// (retired): its size only moves by [`Published::observe`].
    pub(crate) fn idle() -> Published {
        let (stop, _) = oneshot::channel();
        Published {
            size: watch::channel(0).0,
            frozen: watch::channel(None).0,
            _stop: stop,
        }
    }

    /// The log's freeze, if this frontend has heard of it.
    pub(crate) fn frozen(&self) -> Option<Frozen> {
        self.frozen.borrow().clone()
    }

    /// Records a published size learned elsewhere (a `GetTreeHeads` answer).
    pub(crate) fn observe(&self, published: u64) {
        raise(&self.size, published);
    }

    /// Waits until the published tree includes the leaf at `index` (its size
    /// exceeds `index`) or `deadline` passes; returns whether it does.
    pub(crate) async fn wait_includes(&self, index: u64, deadline: Instant) -> bool {
        let mut rx = self.size.subscribe();
        tokio::time::timeout_at(deadline, rx.wait_for(|&size| size > index))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Moves `size` up to `published`, never down.
fn raise(size: &watch::Sender<u64>, published: u64) {
    size.send_if_modified(|current| {
        if published > *current {
            *current = published;
            true
        } else {
            false
        }
    });
}

/// Where the watcher records what it sees.
struct Seen {
    size: watch::Sender<u64>,
    frozen: watch::Sender<Option<Frozen>>,
}

/// The watcher task: follows the stream on the pool's leader guess,
/// moving with the guess and reconnecting with backoff, until `stopped`
/// resolves (the handle was dropped).
async fn watch_stream(
    shard: String,
    sequencer: SequencerPool,
    seen: Seen,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut backoff = RECONNECT_MIN;
    loop {
        let (node, client) = sequencer.current();
        let followed = tokio::select! {
            _ = &mut stopped => return,
            r = follow(&shard, client, &seen) => r,
            // Calls found another leader: follow it instead, at once.
            () = sequencer.moved_from(&node) => continue,
        };
        match followed {
            // Messages arrived, so the connection was good: retry soon.
            Ok(true) => backoff = RECONNECT_MIN,
            Ok(false) => {}
            Err(status) => {
                tracing::debug!(shard, node, %status, "WatchTreeHeads failed; reconnecting");
            }
        }
        sequencer.suspect(&node);
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

/// Follows one stream until it ends; `Ok(true)` if it delivered anything.
async fn follow(
    shard: &str,
    mut sequencer: cairn_proto::Client,
    seen: &Seen,
) -> Result<bool, tonic::Status> {
    let mut stream = sequencer
        .watch_tree_heads(GetTreeHeadsRequest {
            shard: shard.to_owned(),
        })
        .await?
        .into_inner();
    let mut delivered = false;
    while let Some(heads) = stream.next().await {
        let heads = heads?;
        delivered = true;
        if let Some(published) = heads.cosigned.and_then(|c| c.signed) {
            raise(&seen.size, published.size);
        }
        if let Some(frozen) = heads.frozen {
            seen.frozen.send_if_modified(|known| {
                let new = known.is_none();
                known.get_or_insert(frozen);
                new
            });
        }
    }
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_size_never_goes_down() {
        let (size, _) = watch::channel(0);
        raise(&size, 5);
        raise(&size, 3);
        assert_eq!(*size.borrow(), 5);
        raise(&size, 9);
        assert_eq!(*size.borrow(), 9);
    }

    #[tokio::test]
    async fn a_waiter_is_woken_once_its_leaf_is_published() {
        let (stop, _stopped) = oneshot::channel();
        let published = Published {
            size: watch::channel(0).0,
            frozen: watch::channel(None).0,
            _stop: stop,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let waiter = published.wait_includes(2, deadline);
        tokio::pin!(waiter);
        // Size 2 holds indices 0 and 1 only.
        published.observe(2);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiter)
                .await
                .is_err(),
            "woken before the leaf was published"
        );
        published.observe(3);
        assert!(waiter.await);
    }

    #[tokio::test]
    async fn a_waiter_gives_up_at_its_deadline() {
        let (stop, _stopped) = oneshot::channel();
        let published = Published {
            size: watch::channel(0).0,
            frozen: watch::channel(None).0,
            _stop: stop,
        };
        published.observe(1);
        assert!(!published.wait_includes(1, Instant::now()).await);
        assert!(published.wait_includes(0, Instant::now()).await);
    }
}
