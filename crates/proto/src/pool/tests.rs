//! The pool against in-process fake sequencers on 127.0.0.1.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tonic::metadata::MetadataValue;
use tonic::{Request, Response};

use super::*;
use crate::v1 as pb;
use crate::v1::sequencer_server::{Sequencer, SequencerServer};

/// How a fake node answers `GetTreeHeads`.
#[derive(Clone, Debug)]
enum Answer {
    /// Success, with this tree size (to tell nodes apart).
    Serve(u64),
    /// Not the leader; the leader is at this URL.
    Redirect(String),
    /// Not the leader, leader unknown.
    NoLeader,
    /// `UNAVAILABLE` (halted, shutting down).
    Unavailable,
    /// A real `FAILED_PRECONDITION` rejection, without leader metadata.
    Reject,
    /// `INVALID_ARGUMENT`.
    Invalid,
}

#[derive(Clone, Debug)]
struct Fake {
    answer: Arc<Mutex<Answer>>,
    calls: Arc<AtomicUsize>,
}

impl Fake {
    fn new(answer: Answer) -> Fake {
        Fake {
            answer: Arc::new(Mutex::new(answer)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn not_leader(leader: Option<&str>) -> Status {
    let mut status = Status::failed_precondition("not the leader");
    status
        .metadata_mut()
        .insert(NOT_LEADER_METADATA_KEY, MetadataValue::from_static("1"));
    if let Some(leader) = leader {
        status
            .metadata_mut()
            .insert(LEADER_METADATA_KEY, leader.parse().unwrap());
    }
    status
}

#[tonic::async_trait]
impl Sequencer for Fake {
    async fn add_leaves(
        &self,
        _: Request<pb::AddLeavesRequest>,
    ) -> Result<Response<pb::AddLeavesResponse>, Status> {
        Err(Status::unimplemented("test"))
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
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.lock().unwrap().clone();
        match answer {
            Answer::Serve(tree_size) => Ok(Response::new(pb::TreeHeads {
                tree_size,
                ..pb::TreeHeads::default()
            })),
            Answer::Redirect(leader) => Err(not_leader(Some(&leader))),
            Answer::NoLeader => Err(not_leader(None)),
            Answer::Unavailable => Err(Status::unavailable("shutting down")),
            Answer::Reject => Err(Status::failed_precondition(
                "cosigned size 3 is below the published size 5",
            )),
            Answer::Invalid => Err(Status::invalid_argument("bad request")),
        }
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
        Err(Status::unimplemented("test"))
    }

    async fn get_registry(
        &self,
        _: tonic::Request<pb::GetRegistryRequest>,
    ) -> Result<tonic::Response<pb::Registry>, tonic::Status> {
        Err(tonic::Status::not_found("no registry"))
    }
}

/// Serves `fake` on a fresh port; returns its URL.
async fn serve(fake: &Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SequencerServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

/// The URL of a port nothing listens on (connection refused).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A port whose connections the kernel accepts but no one ever reads, as
/// with a stopped (SIGSTOP) process: keep the listener alive while in use.
fn hanging_port() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn options() -> PoolOptions {
    PoolOptions {
        attempt_timeout: Duration::from_millis(300),
        ..PoolOptions::default()
    }
}

/// Far enough for every test to finish; a call that needs it has failed.
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// One `GetTreeHeads` through the pool; the served tree size.
async fn tree_size(pool: &SequencerPool, deadline: Instant) -> Result<u64, Status> {
    // A bound on the test itself, above every deadline used.
    tokio::time::timeout(
        Duration::from_secs(60),
        pool.call("GetTreeHeads", deadline, |mut client| async move {
            client
                .get_tree_heads(pb::GetTreeHeadsRequest {
                    shard: "dev".to_owned(),
                })
                .await
        }),
    )
    .await
    .expect("the call ended by its deadline")
    .map(|heads| heads.tree_size)
}

#[tokio::test]
async fn a_refusal_naming_the_leader_is_followed_and_remembered() {
    let leader = Fake::new(Answer::Serve(7));
    let leader_url = serve(&leader).await;
    let follower = Fake::new(Answer::Redirect(leader_url.clone()));
    let follower_url = serve(&follower).await;
    // The leader is not configured: the pool learns it from the hint.
    let pool = SequencerPool::new([follower_url.clone()], options()).unwrap();
    assert_eq!(tree_size(&pool, deadline()).await.unwrap(), 7);
    assert_eq!(pool.current().0, leader_url);
    assert_eq!(pool.addrs(), [follower_url, leader_url]);
    // The next call goes straight to the leader.
    assert_eq!(tree_size(&pool, deadline()).await.unwrap(), 7);
    assert_eq!(follower.calls(), 1);
    assert_eq!(leader.calls(), 2);
}

#[tokio::test]
async fn a_node_whose_port_is_closed_is_passed_over() {
    let node = Fake::new(Answer::Serve(3));
    let url = serve(&node).await;
    let pool = SequencerPool::new([closed_port(), url.clone()], options()).unwrap();
    assert_eq!(tree_size(&pool, deadline()).await.unwrap(), 3);
    assert_eq!(pool.current().0, url);
}

#[tokio::test]
async fn a_node_that_never_answers_costs_one_attempt() {
    let (_hung, hung_url) = hanging_port();
    let node = Fake::new(Answer::Serve(4));
    let url = serve(&node).await;
    // No keep-alive: only the attempt limit can end the first attempt.
    let options = PoolOptions {
        keep_alive: None,
        ..options()
    };
    let pool = SequencerPool::new([hung_url, url.clone()], options).unwrap();
    // Were the first attempt given the whole deadline, the call would fail.
    let deadline = Instant::now() + Duration::from_secs(5);
    assert_eq!(tree_size(&pool, deadline).await.unwrap(), 4);
    assert_eq!(pool.current().0, url);
}

#[tokio::test]
async fn keep_alive_ends_a_long_attempt_on_a_node_that_stopped_answering() {
    let (_hung, hung_url) = hanging_port();
    let node = Fake::new(Answer::Serve(5));
    let url = serve(&node).await;
    let options = PoolOptions {
        keep_alive: Some(Duration::from_millis(200)),
        ..options()
    };
    let pool = SequencerPool::new([hung_url, url], options).unwrap();
    // The attempt may take as long as the whole call: only keep-alive can
    // move it on to the second node in time.
    let limit = Duration::from_secs(10);
    let size = pool
        .call_with(
            "GetTreeHeads",
            Instant::now() + limit,
            limit,
            |mut c| async move { c.get_tree_heads(pb::GetTreeHeadsRequest::default()).await },
        )
        .await
        .unwrap()
        .tree_size;
    assert_eq!(size, 5);
}

#[tokio::test]
async fn a_follower_that_knows_no_leader_and_an_unavailable_node_are_passed_over() {
    let electing = Fake::new(Answer::NoLeader);
    let halted = Fake::new(Answer::Unavailable);
    let node = Fake::new(Answer::Serve(9));
    let urls = [
        serve(&electing).await,
        serve(&halted).await,
        serve(&node).await,
    ];
    let pool = SequencerPool::new(urls, options()).unwrap();
    assert_eq!(tree_size(&pool, deadline()).await.unwrap(), 9);
    assert_eq!((electing.calls(), halted.calls()), (1, 1));
}

#[tokio::test]
async fn real_rejections_are_returned_as_they_are() {
    let rejecting = Fake::new(Answer::Reject);
    let other = Fake::new(Answer::Serve(1));
    let urls = [serve(&rejecting).await, serve(&other).await];
    let pool = SequencerPool::new(urls, options()).unwrap();
    let status = tree_size(&pool, deadline()).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("below the published size"),
        "{status:?}"
    );
    rejecting.set(Answer::Invalid);
    let status = tree_size(&pool, deadline()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        other.calls(),
        0,
        "a rejection must not be retried elsewhere"
    );
    assert_eq!(rejecting.calls(), 2);
}

#[tokio::test]
async fn a_call_no_node_can_serve_ends_at_its_deadline_naming_the_nodes() {
    let electing = Fake::new(Answer::NoLeader);
    let halted = Fake::new(Answer::Unavailable);
    let urls = [serve(&electing).await, serve(&halted).await];
    let pool = SequencerPool::new(urls.clone(), options()).unwrap();
    let status = tree_size(&pool, Instant::now() + Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    for url in &urls {
        assert!(status.message().contains(url.as_str()), "{status:?}");
    }
    assert!(status.message().contains("GetTreeHeads"), "{status:?}");
    assert!(electing.calls() > 1 && halted.calls() > 1, "no retries");
}

#[tokio::test]
async fn a_call_to_hanging_nodes_ends_at_its_deadline_as_exceeded() {
    let (_hung, hung_url) = hanging_port();
    let options = PoolOptions {
        keep_alive: None,
        ..options()
    };
    let pool = SequencerPool::new([hung_url.clone()], options).unwrap();
    let status = tree_size(&pool, Instant::now() + Duration::from_millis(800))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains(&hung_url), "{status:?}");
    let status = tree_size(&pool, Instant::now()).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn two_followers_naming_each_other_do_not_make_a_call_spin() {
    let a = Fake::new(Answer::NoLeader);
    let b = Fake::new(Answer::NoLeader);
    let (url_a, url_b) = (serve(&a).await, serve(&b).await);
    a.set(Answer::Redirect(url_b.clone()));
    b.set(Answer::Redirect(url_a.clone()));
    let pool = SequencerPool::new([url_a, url_b], options()).unwrap();
    let status = tree_size(&pool, Instant::now() + Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // Backoff after a few hops: about 20 calls in 500 ms, not thousands.
    let calls = a.calls() + b.calls();
    assert!(calls < 200, "{calls} calls");
}

#[tokio::test]
async fn a_node_naming_itself_is_asked_again_until_it_leads() {
    let node = Fake::new(Answer::NoLeader);
    let url = serve(&node).await;
    node.set(Answer::Redirect(url.clone()));
    let pool = SequencerPool::new([url], options()).unwrap();
    let call = tokio::spawn({
        let pool = pool.clone();
        async move { tree_size(&pool, deadline()).await }
    });
    let until = Instant::now() + Duration::from_secs(10);
    while node.calls() < 2 {
        assert!(Instant::now() < until, "not asked again");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.set(Answer::Serve(2));
    assert_eq!(call.await.unwrap().unwrap(), 2);
}

#[tokio::test]
async fn a_suspected_stream_moves_the_guess_once_and_wakes_followers() {
    let a = Fake::new(Answer::Serve(1));
    let b = Fake::new(Answer::Serve(2));
    let (url_a, url_b) = (serve(&a).await, serve(&b).await);
    let pool = SequencerPool::new([format!("{url_a}/"), url_b.clone()], options()).unwrap();
    assert_eq!(pool.current().0, url_a);
    let moved = tokio::spawn({
        let pool = pool.clone();
        let url_a = url_a.clone();
        async move { pool.moved_from(&url_a).await }
    });
    pool.suspect(&url_a);
    tokio::time::timeout(Duration::from_secs(10), moved)
        .await
        .expect("the follower was woken")
        .unwrap();
    assert_eq!(pool.current().0, url_b);
    // A late report about a node that is no longer the guess changes nothing.
    pool.suspect(&url_a);
    assert_eq!(pool.current().0, url_b);
    pool.moved_from(&url_a).await;
    pool.suspect(&url_b);
    assert_eq!(pool.current().0, url_a);
}

#[tokio::test]
async fn unusable_url_lists_are_refused_naming_the_url() {
    let none: [&str; 0] = [];
    assert_eq!(
        SequencerPool::new(none, PoolOptions::default()).unwrap_err(),
        PoolError::Empty
    );
    for bad in [
        "127.0.0.1:6970",
        "https://127.0.0.1:6970",
        "http://",
        "http://h:1/path",
        "not a url",
    ] {
        let e = SequencerPool::new([bad], PoolOptions::default()).unwrap_err();
        assert!(
            matches!(&e, PoolError::InvalidUrl { url, .. } if url == bad),
            "{bad}: {e}"
        );
        assert!(e.to_string().contains(bad), "{e}");
        assert!(SequencerPool::check_url(bad).is_err(), "{bad}");
    }
    let e = SequencerPool::new(["http://h:1", "http://h:1/"], PoolOptions::default()).unwrap_err();
    assert_eq!(e, PoolError::Duplicate("http://h:1".to_owned()));
    let too_many = (0..=MAX_NODES).map(|i| format!("http://h:{}", i + 1));
    assert_eq!(
        SequencerPool::new(too_many, PoolOptions::default()).unwrap_err(),
        PoolError::TooMany(MAX_NODES + 1)
    );
    let zero = PoolOptions {
        attempt_timeout: Duration::ZERO,
        ..PoolOptions::default()
    };
    assert!(matches!(
        SequencerPool::new(["http://h:1"], zero),
        Err(PoolError::ZeroDuration("attempt_timeout"))
    ));
    SequencerPool::check_url("http://sequencer-1.internal:6970/").unwrap();
}

#[tokio::test]
async fn asking_every_node_yields_each_answer_and_bounds_a_hanging_one() {
    let a = Fake::new(Answer::Serve(1));
    let b = Fake::new(Answer::Serve(2));
    let (_hung, hung_url) = hanging_port();
    let closed = closed_port();
    let urls = [
        serve(&a).await,
        closed.clone(),
        hung_url.clone(),
        serve(&b).await,
    ];
    let options = PoolOptions {
        keep_alive: None,
        ..options()
    };
    let pool = SequencerPool::new(urls.clone(), options).unwrap();
    let answers: Vec<(String, Result<pb::TreeHeads, Status>)> = tokio::time::timeout(
        Duration::from_secs(60),
        futures::StreamExt::collect(pool.call_each(deadline(), |mut c| async move {
            c.get_tree_heads(pb::GetTreeHeadsRequest::default()).await
        })),
    )
    .await
    .expect("every node yields by the attempt limit");
    let mut by_node: std::collections::HashMap<_, _> = answers.into_iter().collect();
    assert_eq!(by_node.len(), 4);
    assert_eq!(by_node.remove(&urls[0]).unwrap().unwrap().tree_size, 1);
    assert_eq!(by_node.remove(&urls[3]).unwrap().unwrap().tree_size, 2);
    let refused = by_node.remove(&closed).unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let hung = by_node.remove(&hung_url).unwrap().unwrap_err();
    assert_eq!(hung.code(), Code::DeadlineExceeded, "{hung:?}");
    // Asking everyone is no evidence about the leader.
    assert_eq!(pool.current().0, urls[0]);
}

#[tokio::test]
async fn followers_naming_a_leader_that_stopped_answering_are_not_followed_back_to_it() {
    // A frozen leader (never answers), a follower that still names it, and
    // the node that took over.
    let (_hung, hung_url) = hanging_port();
    let follower = Fake::new(Answer::Redirect(hung_url.clone()));
    let follower_url = serve(&follower).await;
    let successor = Fake::new(Answer::Serve(9));
    let successor_url = serve(&successor).await;
    let options = PoolOptions {
        keep_alive: None,
        ..options()
    };
    let pool = SequencerPool::new(
        [hung_url.clone(), follower_url, successor_url.clone()],
        options,
    )
    .unwrap();
    // Following the stale hint back to the frozen node would bounce
    // between it and the follower until the deadline.
    let deadline = Instant::now() + Duration::from_secs(2);
    assert_eq!(tree_size(&pool, deadline).await.unwrap(), 9);
    assert_eq!(pool.current().0, successor_url);
    assert_eq!(follower.calls(), 1);
}

#[tokio::test]
async fn a_silent_node_is_followed_again_once_it_answers_or_its_time_is_up() {
    let (hung, hung_url) = hanging_port();
    let follower = Fake::new(Answer::Redirect(hung_url.clone()));
    let follower_url = serve(&follower).await;
    let options = PoolOptions {
        keep_alive: None,
        silent_for: Duration::from_millis(400),
        ..options()
    };
    let pool = SequencerPool::new([hung_url.clone(), follower_url], options).unwrap();
    // Only the silent node and a follower naming it: nothing can serve.
    let short = Instant::now() + Duration::from_millis(900);
    assert!(tree_size(&pool, short).await.is_err());
    // The frozen node comes back (a live server on its address would do;
    // here the hint is followed again once the quarantine is over).
    drop(hung);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pool.is_silent(&hung_url));
}
