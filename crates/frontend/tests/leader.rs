//! The frontend against a sequencer Raft group: it follows the leader a
//! follower names, keeps serving the newest head it has seen when a
//! lagging follower answers its reads, and tells submitters to come back
//! (503 with `Retry-After`) while no leader is known.

mod support;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_frontend::ShardLimits;
use cairn_proto::v1 as pb;
use cairn_proto::v1::sequencer_client::SequencerClient;
use cairn_proto::v1::sequencer_server::{Sequencer, SequencerServer};
use cairn_sigsum::api::InclusionProof;
use cairn_sigsum::tree_head::CosignedTreeHead;
use reqwest::StatusCode;
use support::{AddMode, Harness, Options, leaves, not_leader, request, roots};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// A follower that lags: it serves the heads it was given (`stale`),
/// refuses submissions naming `leader` (or no one), and cannot look leaves
/// up yet.
#[derive(Clone, Debug, Default)]
struct Follower {
    leader: Arc<Mutex<Option<String>>>,
    stale: Arc<Mutex<Option<pb::TreeHeads>>>,
    adds: Arc<AtomicUsize>,
}

type HeadStream = Pin<Box<dyn futures::Stream<Item = Result<pb::TreeHeads, Status>> + Send>>;

impl Follower {
    /// Serves the follower on a fresh port; returns its URL.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(SequencerServer::new(self.clone()))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    }

    /// Takes the leader's current heads as this follower's (from then on
    /// stale) state.
    async fn catch_up(&self, leader: &str) {
        let mut client = SequencerClient::connect(leader.to_owned()).await.unwrap();
        let heads = client
            .get_tree_heads(pb::GetTreeHeadsRequest {
                shard: support::SHARD.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        *self.stale.lock().unwrap() = Some(heads);
    }

    /// Its heads: the stale ones, or none at all (nothing published).
    fn heads(&self) -> Result<pb::TreeHeads, Status> {
        Ok(self.stale.lock().unwrap().clone().unwrap_or_default())
    }
}

#[tonic::async_trait]
impl Sequencer for Follower {
    async fn add_leaves(
        &self,
        _: Request<pb::AddLeavesRequest>,
    ) -> Result<Response<pb::AddLeavesResponse>, Status> {
        self.adds.fetch_add(1, Ordering::SeqCst);
        Err(not_leader(self.leader.lock().unwrap().as_deref()))
    }
    async fn get_leaf_index(
        &self,
        _: Request<pb::GetLeafIndexRequest>,
    ) -> Result<Response<pb::GetLeafIndexResponse>, Status> {
        Err(Status::unavailable("follower: catching up"))
    }
    async fn get_leaf_indices(
        &self,
        _: Request<pb::GetLeafIndicesRequest>,
    ) -> Result<Response<pb::GetLeafIndicesResponse>, Status> {
        Err(Status::unavailable("follower: catching up"))
    }
    async fn get_tree_heads(
        &self,
        _: Request<pb::GetTreeHeadsRequest>,
    ) -> Result<Response<pb::TreeHeads>, Status> {
        self.heads().map(Response::new)
    }
    type WatchTreeHeadsStream = HeadStream;
    async fn watch_tree_heads(
        &self,
        _: Request<pb::GetTreeHeadsRequest>,
    ) -> Result<Response<HeadStream>, Status> {
        // Its one state, then nothing: it never catches up.
        let first = futures::stream::iter([self.heads()]);
        let stream: HeadStream =
            Box::pin(futures::StreamExt::chain(first, futures::stream::pending()));
        Ok(Response::new(stream))
    }
    async fn publish_cosigned(
        &self,
        _: Request<pb::PublishCosignedRequest>,
    ) -> Result<Response<pb::PublishCosignedResponse>, Status> {
        Err(not_leader(self.leader.lock().unwrap().as_deref()))
    }
    async fn report_witness_ahead(
        &self,
        _: Request<pb::ReportWitnessAheadRequest>,
    ) -> Result<Response<pb::ReportWitnessAheadResponse>, Status> {
        Err(not_leader(self.leader.lock().unwrap().as_deref()))
    }

    async fn get_registry(
        &self,
        _: tonic::Request<cairn_proto::v1::GetRegistryRequest>,
    ) -> Result<tonic::Response<cairn_proto::v1::Registry>, tonic::Status> {
        Err(tonic::Status::not_found("no registry"))
    }
}

/// The size of the head `get-tree-head` serves.
async fn served_size(h: &Harness) -> u64 {
    let response = h.get("get-tree-head").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    CosignedTreeHead::parse(body.as_bytes())
        .unwrap()
        .tree_head()
        .size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frontend_follows_the_leader_and_never_serves_an_older_head() {
    let follower = Follower::default();
    let follower_url = follower.serve().await;
    let h = Harness::start(Options {
        sequencers_before: vec![follower_url],
        ..Options::default()
    })
    .await;
    *follower.leader.lock().unwrap() = Some(h.grpc_url());
    let all = leaves(5);
    h.log.append(&all[..2]).await;
    follower.catch_up(&h.grpc_url()).await;
    h.log.append(&all[2..]).await;

    // The pool's first guess is the follower, which lags at size 2.
    assert_eq!(served_size(&h).await, 2);

    // It refuses the submission naming the leader: the frontend follows,
    // and answers 200 once the leader's published head includes the leaf
    // (which it hears of only from a stream on the leader).
    let (req, leaf) = request(5);
    let response = h.add_leaf(req.to_ascii()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(follower.adds.load(Ordering::SeqCst), 1);
    assert_eq!(h.log.add_calls.load(Ordering::SeqCst), 1);
    assert_eq!(served_size(&h).await, 6);

    // The leader stops answering reads: they fall back to the follower,
    // still at size 2, yet the frontend keeps serving size 6 and proves
    // inclusion in it.
    h.log.set_reads_unavailable(true);
    assert_eq!(served_size(&h).await, 6);
    let leaf_hash = cairn_tlog::leaf_hash(&leaf.to_bytes());
    let path = format!("get-inclusion-proof/6/{}", hex::encode(leaf_hash));
    let response = h.get(&path).await;
    assert_eq!(response.status(), StatusCode::OK);
    let proof = InclusionProof::parse(response.text().await.unwrap().as_bytes()).unwrap();
    assert_eq!(proof.leaf_index, 5);
    let mut with_new = all.clone();
    with_new.push(leaf.to_bytes());
    let head = cairn_sigsum::tree_head::TreeHead {
        size: 6,
        root_hash: roots(&with_new)[&6],
    };
    proof.verify(&leaf_hash, &head).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_no_leader_is_known_a_submitter_is_told_to_come_back() {
    let follower = Follower::default();
    let follower_url = follower.serve().await;
    let h = Harness::start(Options {
        sequencers_before: vec![follower_url],
        limits: ShardLimits {
            submit_wait: Duration::from_millis(500),
            ..ShardLimits::default()
        },
        ..Options::default()
    })
    .await;
    // An election: neither node leads, neither knows who will.
    h.log.set_mode(AddMode::NotLeader).await;
    let response = h.add_leaf(request(1).0.to_ascii()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = response.text().await.unwrap();
    assert!(body.contains("AddLeaves"), "{body}");
    assert!(
        follower.adds.load(Ordering::SeqCst) > 1 && h.log.add_calls.load(Ordering::SeqCst) > 1,
        "both nodes were asked again: {body}"
    );

    // The fake log wins the election; the client's retry gets through.
    h.log.set_mode(AddMode::Commit).await;
    let response = h.add_leaf(request(1).0.to_ascii()).await;
    assert!(
        [StatusCode::OK, StatusCode::ACCEPTED].contains(&response.status()),
        "{}",
        response.status()
    );
    assert_eq!(h.log.leaves().await.len(), 1);
}
