//! Fresh reads, coalesced: many concurrent requests for "the current
//! value" share one call, without any of them being answered from a call
//! that started before it arrived.
//!
//! `get-tree-head` must not answer from a cache: after one frontend
//! answers add-leaf with 200, the client may ask any frontend for the tree
//! head and needs one that includes its leaf (see `published.rs`). A call
//! that *starts* after the request arrived sees at least what the sequencer
//! had committed when the request arrived, so it is as fresh as a call of
//! the request's own. Requests that arrive while a call is in flight wait
//! for the next call, which starts as soon as the current one ends; under
//! load the sequencer sees one call per round trip instead of one per
//! request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The call that reads the current value. It must end (succeed or fail)
/// on its own, within its own deadline: every waiter waits for it.
pub(crate) type Fetch<T, E> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, E>> + Send>> + Send + Sync>;

/// Coalesces fresh reads of one value.
pub(crate) struct Fresh<T, E> {
    fetch: Fetch<T, E>,
    calls: Mutex<Calls>,
    /// The generation of the last finished call and its result.
    done: watch::Sender<(u64, Option<Result<T, E>>)>,
}

impl<T, E> std::fmt::Debug for Fresh<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fresh")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

/// Calls are numbered from 1 in the order they start.
#[derive(Debug, Default)]
struct Calls {
    /// The number of the newest call started.
    started: u64,
    /// The newest call number a waiter needs.
    wanted: u64,
    /// Whether a call is in flight.
    running: bool,
}

impl<T, E> Fresh<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Fresh reads through `fetch`.
    pub(crate) fn new(fetch: Fetch<T, E>) -> Arc<Self> {
        Arc::new(Fresh {
            fetch,
            calls: Mutex::new(Calls::default()),
            done: watch::channel((0, None)).0,
        })
    }

    /// The result of a call that started after this one was made. Needs a
    /// Tokio runtime: the calls run in a task of their own, so a waiter
    /// that gives up (a client that went away) stops no one else's call.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<T, E> {
        let mut done = self.done.subscribe();
        let want = {
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            let want = calls.started + 1;
            calls.wanted = calls.wanted.max(want);
            if !calls.running {
                calls.running = true;
                calls.started = want;
                tokio::spawn(Arc::clone(self).drive());
            }
            want
        };
        loop {
            {
                let current = done.borrow_and_update();
                if current.0 >= want
                    && let Some(result) = &current.1
                {
                    return result.clone();
                }
            }
            if done.changed().await.is_err() {
                unreachable!("the sender lives in self");
            }
        }
    }

    /// Runs calls back to back while someone waits for a newer one.
    async fn drive(self: Arc<Self>) {
        let mut number = {
            let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            calls.started
        };
        loop {
            let result = (self.fetch)().await;
            self.done.send_replace((number, Some(result)));
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            if calls.wanted > number {
                calls.started = number + 1;
                number = calls.started;
            } else {
                calls.running = false;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    /// A fetch that counts its calls and returns the count, each call held
    /// until `release` is notified.
    fn counting(release: Arc<Notify>) -> (Arc<Fresh<u64, String>>, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&calls);
        let fresh = Fresh::new(Arc::new(move || {
            let counter = Arc::clone(&counter);
            let release = Arc::clone(&release);
            Box::pin(async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                release.notified().await;
                Ok(n)
            })
        }));
        (fresh, calls)
    }

    #[tokio::test]
    async fn a_request_arriving_during_a_call_is_answered_by_the_next_call() {
        let release = Arc::new(Notify::new());
        let (fresh, calls) = counting(Arc::clone(&release));
        let first = tokio::spawn({
            let fresh = Arc::clone(&fresh);
            async move { fresh.get().await }
        });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Call 1 is in flight: these arrived after it started.
        let later: Vec<_> = (0..10)
            .map(|_| {
                let fresh = Arc::clone(&fresh);
                tokio::spawn(async move { fresh.get().await })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        assert_eq!(first.await.unwrap(), Ok(1));
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        for request in later {
            assert_eq!(request.await.unwrap(), Ok(2), "not answered by call 1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "ten requests, one call");
    }

    #[tokio::test]
    async fn each_quiet_request_makes_its_own_call() {
        let release = Arc::new(Notify::new());
        let (fresh, calls) = counting(Arc::clone(&release));
        for expected in 1..=3 {
            // Stores a permit: the call goes through when it awaits.
            release.notify_one();
            assert_eq!(fresh.get().await, Ok(expected));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_stop_the_call_for_the_others() {
        let release = Arc::new(Notify::new());
        let (fresh, _calls) = counting(Arc::clone(&release));
        let impatient = tokio::time::timeout(Duration::from_millis(10), fresh.get()).await;
        assert!(impatient.is_err());
        let patient = tokio::spawn({
            let fresh = Arc::clone(&fresh);
            async move { fresh.get().await }
        });
        tokio::task::yield_now().await;
        release.notify_one();
        release.notify_one();
        // Call 1 (the impatient one's) still ends; the patient request,
        // which arrived during it, gets call 2.
        assert_eq!(patient.await.unwrap(), Ok(2));
    }
}
