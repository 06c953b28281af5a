//! add-leaf's 200 against the real `cairnd dev`: every 200 is provable from
//! the `get-tree-head` that follows it (what stock sigsum-submit relies on),
//! one submitter at a time and 64 at once. The latencies and throughput are
//! printed next to this machine's Ed25519 verification rate measured in the
//! same run (a measurement, never asserted).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::LogClient;
use cairn_sigsum::api::AddLeafRequest;
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::{Hash, SigningKey};
use futures::StreamExt as _;
use support::{Cairnd, free_port};

const SEQUENTIAL: usize = 100;
const CHECKED: usize = 500;
const CONCURRENT: usize = 2000;
const IN_FLIGHT: usize = 64;

fn message(tag: &str, i: usize) -> Hash {
    cairn_sigsum::crypto::hash(format!("cairn add-leaf {tag} {i}\n").as_bytes())
}

/// Posts the leaf until it answers 200; returns the time to the 200.
async fn add_until_200(http: &reqwest::Client, base: &str, body: &str) -> Duration {
    let started = Instant::now();
    loop {
        let r = http
            .post(format!("{base}add-leaf"))
            .body(body.to_owned())
            .send()
            .await
            .expect("add-leaf");
        match r.status() {
            reqwest::StatusCode::OK => return started.elapsed(),
            reqwest::StatusCode::ACCEPTED => {}
            s => panic!("add-leaf answered {s}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no 200 in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts the head served now includes `leaf` and proves it.
async fn assert_provable(client: &LogClient, leaf: &Leaf) {
    let head = client.get_tree_head().await.expect("get-tree-head");
    let size = head.tree_head().size;
    if size == 1 {
        // sigsum-submit's shortcut: no proof, the root is the leaf hash.
        assert_eq!(head.tree_head().root_hash, leaf.leaf_hash());
        return;
    }
    let proof = client
        .get_inclusion_proof(size, &leaf.leaf_hash())
        .await
        .unwrap_or_else(|e| panic!("a 200'd leaf has no proof in the head of size {size}: {e}"));
    proof
        .verify(&leaf.leaf_hash(), head.tree_head())
        .expect("inclusion proof verifies");
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_200_is_provable_from_the_next_tree_head() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let listen = free_port();
    let mut cairnd = Cairnd::start(&tmp.path().join("data"), listen);
    cairnd.wait_ready().await;
    let base = cairnd.base_url();
    let client = LogClient::new(&base).expect("client");
    let http = reqwest::Client::new();
    let key = SigningKey::from_seed(&[0x61; 32]);

    // One at a time, no pause: the first leaf makes a head of size 1.
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let m = message("one", i);
        let body = AddLeafRequest::sign(&key, &m).to_ascii();
        latencies.push(add_until_200(&http, &base, &body).await);
        assert_provable(&client, &Leaf::sign(&key, &m)).await;
    }
    latencies.sort();

    // 64 in flight, each checked right after its 200.
    let shared = Arc::new((
        http.clone(),
        base.clone(),
        LogClient::new(&base).expect("client"),
    ));
    futures::stream::iter(0..CHECKED)
        .map(|i| {
            let shared = Arc::clone(&shared);
            let key = key.clone();
            async move {
                let (http, base, client) = &*shared;
                let m = message("checked", i);
                let body = AddLeafRequest::sign(&key, &m).to_ascii();
                add_until_200(http, base, &body).await;
                assert_provable(client, &Leaf::sign(&key, &m)).await;
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;

    // 64 in flight, add-leaf alone: the throughput figure.
    let started = Instant::now();
    let mut concurrent: Vec<Duration> = futures::stream::iter(0..CONCURRENT)
        .map(|i| {
            let shared = Arc::clone(&shared);
            let key = key.clone();
            async move {
                let (http, base, _) = &*shared;
                let body = AddLeafRequest::sign(&key, &message("many", i)).to_ascii();
                add_until_200(http, base, &body).await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();
    concurrent.sort();
    let rate = support::verify_rate();
    let throughput = CONCURRENT as f64 / elapsed.as_secs_f64();
    eprintln!(
        "add-leaf → 200 (published), one at a time: p50 {:?} p99 {:?} max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    eprintln!(
        "add-leaf → 200 (published), {IN_FLIGHT} in flight: p50 {:?} p99 {:?}; \
         {throughput:.0} leaves/s = {:.3} × this machine's \
         Ed25519 verify rate ({rate:.0}/s)",
        percentile(&concurrent, 0.5),
        percentile(&concurrent, 0.99),
        throughput / rate
    );
    cairnd.stop();
}
