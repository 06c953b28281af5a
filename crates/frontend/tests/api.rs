//! The frontend over real HTTP, against a fake sequencer over real gRPC and
//! a real local tile store: every Sigsum v1 endpoint, its statuses
//! (`sigsum-protocol.md` §6), the tile read paths, and the deterministic
//! vectors byte for byte.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_frontend::{
    CHECKPOINT_CACHE_CONTROL, FULL_TILE_CACHE_CONTROL, FrontendConfig, PARTIAL_TILE_CACHE_CONTROL,
    ShardLimits, TILE_CONTENT_TYPE,
};
use cairn_sigsum::SigningKey;
use cairn_sigsum::api::{ConsistencyProof, InclusionProof, Leaves};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::tree_head::{CosignedTreeHead, TreeHead};
use cairn_testvectors as vectors;
use futures::StreamExt as _;
use reqwest::StatusCode;
use support::{AddMode, Harness, Options, eventually, leaves, request, roots};
use tonic::Code;

const TEXT: &str = "text/plain; charset=utf-8";

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Asserts `response` has `status` and a non-empty text/plain body, and
/// returns the body.
async fn expect_error(response: reqwest::Response, status: StatusCode, what: &str) -> String {
    assert_eq!(response.status(), status, "{what}");
    assert_eq!(header(&response, "content-type"), TEXT, "{what}");
    let body = response.text().await.unwrap();
    assert!(
        body.trim().len() > 3,
        "{what}: body {body:?} is not readable"
    );
    body
}

async fn text(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), TEXT);
    response.text().await.unwrap()
}

/// A harness whose log already holds `n` published leaves.
async fn with_leaves(n: u64, options: Options) -> Harness {
    let h = Harness::start(options).await;
    h.log.append(&leaves(n)).await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_leaf_answers_200_once_the_sequencer_commits_it() {
    let h = Harness::start(Options::default()).await;
    let (req, leaf) = request(1);
    let response = h.add_leaf(req.to_ascii()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "");
    assert_eq!(h.log.leaves().await, vec![leaf.to_bytes()]);
    // Resubmission is idempotent: 200 again, no second copy.
    let again = h.add_leaf(req.to_ascii()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(h.log.leaves().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_leaf_answers_200_only_once_a_published_head_includes_the_leaf() {
    let h = Harness::start(Options::default()).await;
    h.log.append(&leaves(1)).await;
    h.log.set_auto_publish(false).await;
    let (req, leaf) = request(1);
    let submit = tokio::spawn({
        let base = h.base.clone();
        let body = req.to_ascii();
        async move {
            reqwest::Client::new()
                .post(format!("{base}add-leaf"))
                .body(body)
                .send()
                .await
                .unwrap()
        }
    });
    support::eventually("the leaf is sequenced", || async {
        h.log.leaves().await.contains(&leaf.to_bytes())
    })
    .await;
    // Committed and signed, but get-tree-head still serves size 1: a 200
    // now would send sigsum-submit to a head that cannot prove the leaf.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!submit.is_finished(), "answered before publication");
    h.log.publish().await;
    let response = submit.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let head = text(h.get("get-tree-head").await).await;
    assert!(head.contains("size=2\n"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_leaf_answers_202_when_publication_takes_longer_than_the_submit_wait() {
    let h = Harness::start(Options {
        limits: ShardLimits {
            submit_wait: Duration::from_millis(200),
            ..ShardLimits::default()
        },
        ..Options::default()
    })
    .await;
    h.log.set_auto_publish(false).await;
    let (req, _) = request(1);
    let response = h.add_leaf(req.to_ascii()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // The client comes back after publication: 200 at once.
    h.log.publish().await;
    assert_eq!(h.add_leaf(req.to_ascii()).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_leaf_answers_202_when_the_sequencer_has_not_committed_it() {
    let h = Harness::start(Options::default()).await;
    h.log.set_mode(AddMode::Pending).await;
    let response = h.add_leaf(request(1).0.to_ascii()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(h.log.batches().await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_log_answers_410_naming_its_successor_but_200_for_a_leaf_it_holds() {
    let h = Harness::start(Options::default()).await;
    let (held, _) = request(1);
    assert_eq!(h.add_leaf(held.to_ascii()).await.status(), StatusCode::OK);
    h.log
        .set_mode(AddMode::Frozen {
            size: 1,
            successor: "2027h1",
        })
        .await;
    let body = expect_error(
        h.add_leaf(request(2).0.to_ascii()).await,
        StatusCode::GONE,
        "a new leaf on a frozen log",
    )
    .await;
    assert!(body.contains("frozen at tree size 1"), "{body}");
    assert!(body.contains("\"2027h1\""), "{body}");
    // sigsum-submit polling for the proof of a leaf the log holds.
    assert_eq!(h.add_leaf(held.to_ascii()).await.status(), StatusCode::OK);
    // Reads go on.
    let head = text(h.get("get-tree-head").await).await;
    assert!(head.contains("size=1\n"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_lists_each_shard_with_its_policy_line_vkey_state_and_size() {
    let h = with_leaves(3, Options::default()).await;
    let root = h.base.trim_end_matches("dev/").to_owned();
    let json = |body: String| -> serde_json::Value { serde_json::from_str(&body).unwrap() };
    let response = reqwest::get(format!("{root}shards.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    let index = json(response.text().await.unwrap());
    let shard = &index["shards"][0];
    let key = SigningKey::from_seed(&support::LOG_SEED).public_key();
    assert_eq!(shard["name"], "dev");
    assert_eq!(shard["state"], "active");
    assert_eq!(shard["size"], 3);
    assert_eq!(shard["public_key"], key.to_hex());
    assert_eq!(shard["url"], h.base);
    assert_eq!(
        shard["policy_line"],
        format!("log {} {}", key.to_hex(), h.base)
    );
    let origin = cairn_sigsum::tree_head::origin_for_key(&key);
    let vkey = shard["vkey"].as_str().unwrap();
    let verifier = cairn_tlog::note::Ed25519NoteVerifier::from_vkey(&vkey.parse().unwrap())
        .expect("a usable vkey");
    assert_eq!(verifier.public_key(), key.0);
    assert!(vkey.starts_with(&format!("{origin}+")), "{vkey}");
    assert!(shard["cosigned_age_seconds"].as_u64().is_some(), "{shard}");

    h.log
        .set_mode(AddMode::Frozen {
            size: 3,
            successor: "next",
        })
        .await;
    support::eventually("the index shows the freeze", || async {
        let body = reqwest::get(format!("{root}shards.json"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let shard = &json(body)["shards"][0];
        shard["state"] == "frozen" && shard["frozen_size"] == 3 && shard["successor"] == "next"
    })
    .await;
    let page = reqwest::get(&root).await.unwrap();
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let page = page.text().await.unwrap();
    assert!(page.contains("frozen at 3, successor next"), "{page}");
    assert!(page.contains(&format!("log {}", key.to_hex())), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_leaf_with_a_signature_that_does_not_verify_is_403() {
    let h = Harness::start(Options::default()).await;
    let (mut req, _) = request(1);
    req.message[0] ^= 1;
    expect_error(
        h.add_leaf(req.to_ascii()).await,
        StatusCode::FORBIDDEN,
        "tampered message",
    )
    .await;
    // Signed by another key than the one named.
    let (mut req, _) = request(2);
    req.public_key = SigningKey::from_seed(&[9; 32]).public_key();
    expect_error(
        h.add_leaf(req.to_ascii()).await,
        StatusCode::FORBIDDEN,
        "other key",
    )
    .await;
    assert_eq!(h.log.add_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_leaf_with_a_small_order_or_non_canonical_key_is_403_naming_the_key() {
    use cairn_sigsum::api::AddLeafRequest;
    use cairn_sigsum::{PublicKey, Signature};
    let h = Harness::start(Options::default()).await;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    // R = identity, S = 0: with the identity as key, Go's rules accept it
    // for any message.
    let mut forged = [0u8; 64];
    forged[0] = 1;
    // The identity with its sign bit set: a non-canonical small-order key.
    let mut signed_identity = identity;
    signed_identity[31] = 0x80;
    // An order-8 point.
    let order_8 = cairn_testvectors::unhex32(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    );
    for (what, key) in [
        ("identity", identity),
        ("identity, sign bit set", signed_identity),
        ("order 8", order_8),
    ] {
        for message in [[1u8; 32], [2; 32]] {
            let req = AddLeafRequest {
                message,
                signature: Signature(forged),
                public_key: PublicKey(key),
            };
            let body = expect_error(
                h.add_leaf(req.to_ascii()).await,
                StatusCode::FORBIDDEN,
                what,
            )
            .await;
            assert!(body.contains("small-order"), "{what}: {body}");
        }
    }
    // y = p + 3 names the point with y = 3 (on the curve, of large
    // order), but not in its canonical form.
    let mut non_canonical = [0xff; 32];
    non_canonical[0] = 0xed + 3;
    non_canonical[31] = 0x7f;
    let req = AddLeafRequest {
        message: [1; 32],
        signature: Signature(forged),
        public_key: PublicKey(non_canonical),
    };
    let body = expect_error(
        h.add_leaf(req.to_ascii()).await,
        StatusCode::FORBIDDEN,
        "non-canonical",
    )
    .await;
    assert!(body.contains("non-canonical"), "{body}");
    assert_eq!(h.log.add_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_add_leaf_bodies_are_400_and_never_reach_the_sequencer() {
    let h = Harness::start(Options::default()).await;
    let good = request(1).0.to_ascii();
    let cases = [
        ("CRLF line endings", good.replace('\n', "\r\n")),
        ("bad hex", format!("message=zz{}", &good[10..])),
        ("wrong key", good.replacen("message=", "msg=", 1)),
        ("keys out of order", {
            let lines: Vec<&str> = good.lines().collect();
            format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2])
        }),
        (
            "missing line",
            good.lines().take(2).map(|l| format!("{l}\n")).collect(),
        ),
        ("no final newline", good.trim_end().to_owned()),
        ("31-byte message", format!("message={}", &good[10..])),
        ("extra line", format!("{good}extra=1\n")),
        ("empty body", String::new()),
    ];
    for (what, body) in cases {
        let body = expect_error(h.add_leaf(body).await, StatusCode::BAD_REQUEST, what).await;
        assert!(body.contains("add-leaf"), "{what}: {body}");
    }
    assert_eq!(h.log.add_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_leaf_bodies_over_the_limit_are_413_declared_or_streamed() {
    let h = Harness::start(Options::default()).await;
    let big = "x".repeat(5000);
    expect_error(
        h.add_leaf(big.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "declared",
    )
    .await;
    // A chunked upload declares no length: it is cut off while reading.
    let status_line = chunked_post(&h, "/dev/add-leaf", 5, 1000).await;
    assert!(status_line.starts_with("HTTP/1.1 413 "), "{status_line}");
}

/// POSTs `chunks` chunks of `size` bytes with chunked transfer encoding
/// over a raw connection (so no length is declared) and returns the
/// response's status line.
async fn chunked_post(h: &Harness, path: &str, chunks: usize, size: usize) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let addr = h.root.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut request = head.into_bytes();
    for _ in 0..chunks {
        request.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        request.extend(std::iter::repeat_n(b'x', size));
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything.
    let _ = stream.write_all(&request).await;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await.unwrap();
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigsum_token_header_must_be_well_formed_when_present() {
    let h = Harness::start(Options::default()).await;
    let post = |header: &str, i: u64| {
        h.http
            .post(format!("{}add-leaf", h.base))
            .header("sigsum-token", header.to_owned())
            .body(request(i).0.to_ascii())
            .send()
    };
    for (i, bad) in [
        "example.org",
        "example.org  abcd",
        "example.org nothex",
        &format!(" {}", "ab".repeat(64)),
    ]
    .iter()
    .enumerate()
    {
        let response = post(bad, i as u64).await.unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, bad).await;
    }
    // Domains no DNS name can have are refused even though tokens are not
    // looked up, with the problem named.
    let token = "ab".repeat(64);
    for (i, (domain, problem)) in [
        ("a..org", "label 2 is empty"),
        (&format!("{}.org", "x".repeat(300)), "300 characters"),
        ("-a.org", "starts or ends with '-'"),
        (
            &format!("{}org", "x.".repeat(125)),
            "domain is 253 characters",
        ),
    ]
    .iter()
    .enumerate()
    {
        let response = post(&format!("{domain} {token}"), 20 + i as u64)
            .await
            .unwrap();
        let body = expect_error(response, StatusCode::BAD_REQUEST, domain).await;
        assert!(body.contains(problem), "{domain}: {body}");
    }
    // Without a token verifier configured, a well-formed token is
    // accepted unchecked.
    let token = format!("example.org {}", "ab".repeat(64));
    assert_eq!(post(&token, 10).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequencer_outage_and_overload_are_503_with_a_readable_body() {
    let down = Harness::start(Options {
        sequencer_down: true,
        ..Options::default()
    })
    .await;
    let response = down.add_leaf(request(1).0.to_ascii()).await;
    assert_eq!(header(&response, "retry-after"), "1");
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "add-leaf, sequencer down",
    )
    .await;
    let response = down.get("get-tree-head").await;
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "get-tree-head, down",
    )
    .await;

    let h = Harness::start(Options::default()).await;
    h.log.set_mode(AddMode::Fail(Code::ResourceExhausted)).await;
    let response = h.add_leaf(request(1).0.to_ascii()).await;
    let body = expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    assert!(body.contains("overloaded"), "{body}");
    h.log.set_mode(AddMode::Fail(Code::Internal)).await;
    let response = h.add_leaf(request(1).0.to_ascii()).await;
    expect_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tree_head_serves_the_cosigned_head_and_it_verifies() {
    let h = with_leaves(5, Options::default()).await;
    let body = text(h.get("get-tree-head").await).await;
    let cth = CosignedTreeHead::parse(body.as_bytes()).unwrap();
    let log_key = h.log.log_key.public_key();
    assert!(cth.signed.verify(&log_key));
    let expected_root = roots(&leaves(5))[&5];
    assert_eq!(
        *cth.tree_head(),
        TreeHead {
            size: 5,
            root_hash: expected_root
        }
    );
    let witness = SigningKey::from_seed(&support::WITNESS_SEED).public_key();
    let cosignature = cth.cosignature_by(&witness.key_hash()).unwrap();
    assert!(cosignature.verify(&witness, cth.tree_head(), &log_key.key_hash()));
    assert_eq!(cth.cosignatures().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tree_head_is_503_until_a_head_is_cosigned() {
    let h = Harness::start(Options::default()).await;
    let body = expect_error(
        h.get("get-tree-head").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "",
    )
    .await;
    assert!(body.contains("no cosigned tree head yet"), "{body}");
    // Signed but not yet published is still not served.
    h.log.set_auto_publish(false).await;
    h.log.append(&leaves(3)).await;
    expect_error(
        h.get("get-tree-head").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "signed",
    )
    .await;
    h.log.publish().await;
    assert_eq!(h.get("get-tree-head").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_inclusion_proof_of_a_300_leaf_tree_verifies() {
    let all = leaves(300);
    let roots = roots(&all);
    let h = with_leaves(300, Options::default()).await;
    for (index, leaf) in all.iter().enumerate() {
        let leaf_hash = cairn_tlog::leaf_hash(leaf);
        // The full tree, and the smallest tree holding the leaf.
        for size in [300, (index as u64 + 1).max(2)] {
            let path = format!("get-inclusion-proof/{size}/{}", hex::encode(leaf_hash));
            let proof = InclusionProof::parse(text(h.get(&path).await).await.as_bytes()).unwrap();
            assert_eq!(proof.leaf_index, index as u64);
            let head = TreeHead {
                size,
                root_hash: roots[&size],
            };
            proof.verify(&leaf_hash, &head).unwrap_or_else(|e| {
                panic!("inclusion of {index} in {size}: {e}");
            });
        }
    }
    // A leaf beyond the requested size is 404, as is an unknown one.
    let last = hex::encode(cairn_tlog::leaf_hash(&all[299]));
    let response = h.get(&format!("get-inclusion-proof/299/{last}")).await;
    expect_error(response, StatusCode::NOT_FOUND, "leaf beyond size").await;
    let unknown = hex::encode([7u8; 32]);
    let response = h.get(&format!("get-inclusion-proof/300/{unknown}")).await;
    expect_error(response, StatusCode::NOT_FOUND, "unknown leaf").await;
}

/// Concurrent inclusion-proof requests, their leaf lookups batched into
/// `GetLeafIndices` calls (or, against a sequencer without that call, one
/// `GetLeafIndex` each): every answer is the proof of its own leaf.
async fn concurrent_inclusion_proofs_each_prove_their_own_leaf(options: Options) {
    let all = leaves(300);
    let roots = roots(&all);
    let h = Arc::new(with_leaves(300, options).await);
    let head = TreeHead {
        size: 300,
        root_hash: roots[&300],
    };
    let requests = all.iter().enumerate().map(|(index, leaf)| {
        let h = Arc::clone(&h);
        let leaf_hash = cairn_tlog::leaf_hash(leaf);
        async move {
            let path = format!("get-inclusion-proof/300/{}", hex::encode(leaf_hash));
            let proof = InclusionProof::parse(text(h.get(&path).await).await.as_bytes()).unwrap();
            assert_eq!(proof.leaf_index, index as u64);
            proof
                .verify(&leaf_hash, &head)
                .unwrap_or_else(|e| panic!("inclusion of {index}: {e}"));
        }
    });
    futures::stream::iter(requests)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let unknown = hex::encode([7u8; 32]);
    let response = h.get(&format!("get-inclusion-proof/300/{unknown}")).await;
    expect_error(response, StatusCode::NOT_FOUND, "unknown leaf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inclusion_proofs_with_batched_lookups_each_prove_their_own_leaf() {
    concurrent_inclusion_proofs_each_prove_their_own_leaf(Options::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inclusion_proofs_work_against_a_sequencer_without_batched_lookups() {
    concurrent_inclusion_proofs_each_prove_their_own_leaf(Options {
        no_batched_lookups: true,
        ..Options::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_added_here_or_looked_up_once_is_proved_without_asking_the_sequencer() {
    let h = with_leaves(10, Options::default()).await;
    let calls = || h.log.lookup_calls.load(Ordering::SeqCst);
    // Added through this frontend: its 200 taught it the index.
    let (req, leaf) = request(10);
    assert_eq!(h.add_leaf(req.to_ascii()).await.status(), StatusCode::OK);
    let leaf_hash = cairn_tlog::leaf_hash(&leaf.to_bytes());
    let path = format!("get-inclusion-proof/11/{}", hex::encode(leaf_hash));
    let proof = InclusionProof::parse(text(h.get(&path).await).await.as_bytes()).unwrap();
    assert_eq!(proof.leaf_index, 10);
    assert_eq!(calls(), 0);
    // Logged by someone else: one lookup, then none.
    let other = cairn_tlog::leaf_hash(&leaves(10)[3]);
    for _ in 0..3 {
        let path = format!("get-inclusion-proof/11/{}", hex::encode(other));
        let proof = InclusionProof::parse(text(h.get(&path).await).await.as_bytes()).unwrap();
        assert_eq!(proof.leaf_index, 3);
    }
    assert_eq!(calls(), 1);
    // Not found is asked again each time: the leaf may be logged later.
    let unknown = hex::encode([7u8; 32]);
    for _ in 0..2 {
        let response = h.get(&format!("get-inclusion-proof/11/{unknown}")).await;
        expect_error(response, StatusCode::NOT_FOUND, "unknown leaf").await;
    }
    assert_eq!(calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_proofs_verify_between_sizes() {
    let all = leaves(300);
    let roots = roots(&all);
    let h = with_leaves(300, Options::default()).await;
    let sizes = [1u64, 2, 3, 7, 8, 100, 255, 256, 257, 299, 300];
    for &old in &sizes {
        for &new in sizes.iter().filter(|&&n| n > old) {
            let body = text(h.get(&format!("get-consistency-proof/{old}/{new}")).await).await;
            let proof = ConsistencyProof::parse(body.as_bytes()).unwrap();
            let old_head = TreeHead {
                size: old,
                root_hash: roots[&old],
            };
            let new_head = TreeHead {
                size: new,
                root_hash: roots[&new],
            };
            proof
                .verify(&old_head, &new_head)
                .unwrap_or_else(|e| panic!("consistency {old} -> {new}: {e}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_leaves_returns_stored_leaves_clamped_to_the_limit() {
    let all = leaves(300);
    let h = with_leaves(
        300,
        Options {
            limits: ShardLimits {
                max_get_leaves: 100,
                ..ShardLimits::default()
            },
            ..Options::default()
        },
    )
    .await;
    let fetch = |start: u64, end: u64| {
        let h = &h;
        async move {
            let body = text(h.get(&format!("get-leaves/{start}/{end}")).await).await;
            Leaves::parse(body.as_bytes()).unwrap().leaves
        }
    };
    let expected = |start: u64, n: usize| -> Vec<Leaf> {
        all[start as usize..start as usize + n]
            .iter()
            .map(|b| Leaf::from_bytes(b).unwrap())
            .collect()
    };
    // Clamped to the configured maximum.
    let got = fetch(0, 300).await;
    assert!(!got.is_empty() && got.len() <= 100, "{}", got.len());
    assert_eq!(got, expected(0, got.len()));
    // A short range is answered in full.
    assert_eq!(fetch(10, 13).await, expected(10, 3));
    // Paging from where each answer ended reads the whole tree exactly.
    let mut next = 0u64;
    let mut pages = 0;
    while next < 300 {
        let got = fetch(next, 300).await;
        assert_eq!(got, expected(next, got.len()), "page from {next}");
        next += got.len() as u64;
        pages += 1;
        assert!(pages <= 300, "no progress");
    }
    assert_eq!(next, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_bounded_by_the_published_not_the_signed_size() {
    let all = leaves(310);
    let h = with_leaves(300, Options::default()).await;
    h.log.set_auto_publish(false).await;
    h.log.append(&all[300..]).await; // signed 310, published 300
    let unpublished = hex::encode(cairn_tlog::leaf_hash(&all[305]));
    let published = hex::encode(cairn_tlog::leaf_hash(&all[5]));
    for (path, status) in [
        (
            format!("get-inclusion-proof/301/{published}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("get-inclusion-proof/300/{unpublished}"),
            StatusCode::NOT_FOUND,
        ),
        (
            "get-consistency-proof/10/301".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        ("get-leaves/300/301".to_owned(), StatusCode::BAD_REQUEST),
        ("get-leaves/299/301".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        expect_error(h.get(&path).await, status, &path).await;
    }
    // Within the published tree everything is served.
    assert_eq!(
        h.get(&format!("get-inclusion-proof/300/{published}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(h.get("get-leaves/299/300").await.status(), StatusCode::OK);
    assert_eq!(
        h.get("get-consistency-proof/10/300").await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_unknown_paths_and_wrong_methods_get_400_404_405() {
    let h = with_leaves(10, Options::default()).await;
    let leaf_hash = hex::encode(cairn_tlog::leaf_hash(&leaves(1)[0]));
    let bad_requests = [
        format!("get-inclusion-proof/1/{leaf_hash}"),
        format!("get-inclusion-proof/010/{leaf_hash}"),
        format!("get-inclusion-proof/+5/{leaf_hash}"),
        format!("get-inclusion-proof/5/{}", &leaf_hash[..62]),
        format!("get-inclusion-proof/5/{leaf_hash}/1"),
        "get-inclusion-proof/5/zz".to_owned(),
        "get-inclusion-proof/5".to_owned(),
        "get-inclusion-proof/".to_owned(),
        "get-inclusion-proof".to_owned(),
        "get-consistency-proof/0/5".to_owned(),
        "get-consistency-proof/5/5".to_owned(),
        "get-consistency-proof/6/5".to_owned(),
        "get-consistency-proof/a/b".to_owned(),
        "get-consistency-proof/".to_owned(),
        "get-leaves/5/5".to_owned(),
        "get-leaves/6/5".to_owned(),
        "get-leaves/-1/3".to_owned(),
        "get-leaves/1/99999999999999999999".to_owned(),
        "get-leaves/".to_owned(),
        "get-leaves".to_owned(),
    ];
    for path in &bad_requests {
        expect_error(h.get(path).await, StatusCode::BAD_REQUEST, path).await;
    }
    for path in [
        "get-nothing",
        "get-tree-head/",
        "add-leaf/1",
        "tile",
        "checkpoint/x",
    ] {
        expect_error(h.get(path).await, StatusCode::NOT_FOUND, path).await;
    }
    // `/` is the index of shards; paths beside the shards are unknown.
    for url in [
        format!("{}/other/get-tree-head", h.root),
        format!("{}/index.html", h.root),
    ] {
        let response = h.http.get(&url).send().await.unwrap();
        expect_error(response, StatusCode::NOT_FOUND, &url).await;
    }
    let wrong_methods = [
        (reqwest::Method::POST, "get-tree-head", "GET, HEAD"),
        (reqwest::Method::POST, "get-leaves/1/2", "GET, HEAD"),
        (reqwest::Method::GET, "add-leaf", "POST"),
        (reqwest::Method::PUT, "add-leaf", "POST"),
        (reqwest::Method::DELETE, "checkpoint", "GET, HEAD"),
        (reqwest::Method::POST, "tile/0/000.p/10", "GET, HEAD"),
        (reqwest::Method::POST, "", "GET, HEAD"),
    ];
    for (method, path, allow) in wrong_methods {
        let url = format!("{}{path}", h.base);
        let response = h.http.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(header(&response, "allow"), allow, "{method} {path}");
        expect_error(response, StatusCode::METHOD_NOT_ALLOWED, path).await;
    }
}

/// Requests no HTTP client sends, over a raw socket: every error answer
/// the router makes (the handlers' and axum's own) is a readable
/// `text/plain` sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_the_router_makes_has_a_readable_text_body() {
    use support::raw_http::{self, exchange};
    let h = with_leaves(3, Options::default()).await;
    let addr = h.root.trim_start_matches("http://");
    let add_leaf = request(1).0.to_ascii();
    let chunked_big = {
        let mut body = Vec::new();
        for _ in 0..5 {
            body.extend_from_slice(b"3e8\r\n");
            body.extend(std::iter::repeat_n(b'x', 1000));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        body
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "invalid percent-encoding in an argument",
            raw_http::request("GET", "/dev/get-leaves/%ZZ/1", &[], b""),
            400,
        ),
        (
            "percent-encoded argument",
            raw_http::request("GET", "/dev/get-leaves/%30/1", &[], b""),
            400,
        ),
        (
            "non-UTF-8 percent-encoding",
            raw_http::request("GET", "/%ff%fe/get-tree-head", &[], b""),
            404,
        ),
        (
            "encoded dot segments",
            raw_http::request("GET", "/dev/%2e%2e/checkpoint", &[], b""),
            404,
        ),
        (
            "encoded slash in the shard name",
            raw_http::request("GET", "/d%2Fev/get-tree-head", &[], b""),
            404,
        ),
        (
            "absolute-form target",
            raw_http::request("GET", "http://cairn.test/dev/nothing", &[], b""),
            404,
        ),
        (
            "CONNECT",
            raw_http::request("CONNECT", "cairn.test:443", &[], b""),
            404,
        ),
        (
            "unknown method",
            raw_http::request("BREW", "/dev/add-leaf", &[], b""),
            405,
        ),
        (
            "OPTIONS",
            raw_http::request("OPTIONS", "/dev/get-tree-head", &[], b""),
            405,
        ),
        (
            "DELETE of a tile",
            raw_http::request("DELETE", "/dev/tile/0/000.p/3", &[], b""),
            405,
        ),
        (
            "add-leaf as JSON",
            raw_http::request(
                "POST",
                "/dev/add-leaf",
                &["Content-Type: application/json"],
                br#"{"message":"00"}"#,
            ),
            400,
        ),
        (
            "add-leaf as a form, well-formed body",
            raw_http::request(
                "POST",
                "/dev/add-leaf",
                &["Content-Type: application/x-www-form-urlencoded"],
                add_leaf.as_bytes(),
            ),
            200,
        ),
        (
            "declared body over the limit, never sent",
            raw_http::request(
                "POST",
                "/dev/add-leaf",
                &["Content-Length: 1000000"],
                b"",
            ),
            413,
        ),
        (
            "chunked body over the limit",
            raw_http::request(
                "POST",
                "/dev/add-leaf",
                &["Transfer-Encoding: chunked"],
                &chunked_big,
            ),
            413,
        ),
        (
            "sigsum-token header with non-ASCII bytes",
            [
                b"POST /dev/add-leaf HTTP/1.1\r\nHost: x\r\nConnection: close\r\nsigsum-token: r\xc3\xa4ksm\xc3\xb6rg\xc3\xa5s.se ab\r\n"
                    .as_slice(),
                format!("Content-Length: {}\r\n\r\n{add_leaf}", add_leaf.len()).as_bytes(),
            ]
            .concat(),
            400,
        ),
    ];
    for (what, bytes, status) in cases {
        let response = exchange(addr, &bytes).await;
        assert_eq!(response.status, status, "{what}: {}", response.text());
        if status >= 400 {
            response.assert_readable(what);
        }
    }
}

/// Sends `head` (a whole request without body) on a fresh connection and
/// returns the status line and the rest of the answer.
async fn raw_exchange(h: &Harness, head: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = h.root.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered and closed in time")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (status, rest) = answer.split_once("\r\n").unwrap_or_default();
    (status.to_owned(), rest.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_1_requests_need_exactly_one_well_formed_host() {
    let h = with_leaves(2, Options::default()).await;
    let host = h.root.trim_start_matches("http://").to_owned();
    let path = "/dev/get-tree-head";
    for (what, headers, reason) in [
        ("no Host", String::new(), "needs a Host header"),
        (
            "two Hosts",
            format!("Host: {host}\r\nHost: {host}\r\n"),
            "more than one Host",
        ),
        (
            "a Host with a space",
            "Host: a b\r\n".to_owned(),
            "malformed Host",
        ),
    ] {
        let (status, rest) = raw_exchange(
            &h,
            &format!("GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{what}");
        assert!(
            rest.contains(TEXT) && rest.contains(reason),
            "{what}: {rest}"
        );
    }
    let (status, _) = raw_exchange(
        &h,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (status, _) = raw_exchange(&h, &format!("GET {path} HTTP/1.0\r\n\r\n")).await;
    assert_eq!(status, "HTTP/1.0 200 OK", "HTTP/1.0 needs no Host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_and_checkpoint_are_served_verbatim_with_their_cache_headers() {
    let h = Harness::start(Options::default()).await;
    let response = h.get("checkpoint").await;
    expect_error(response, StatusCode::NOT_FOUND, "no checkpoint yet").await;
    h.log.append(&leaves(300)).await;

    let response = h.get("checkpoint").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), TEXT);
    assert_eq!(header(&response, "cache-control"), CHECKPOINT_CACHE_CONTROL);
    let expected = h.log.checkpoint().await.unwrap();
    assert_eq!(response.bytes().await.unwrap().to_vec(), expected);

    let all = leaves(300);
    let leaf_hashes: Vec<u8> = all.iter().flat_map(|l| cairn_tlog::leaf_hash(l)).collect();
    let tiles = [
        (
            "tile/0/000",
            FULL_TILE_CACHE_CONTROL,
            Some(leaf_hashes[..256 * 32].to_vec()),
        ),
        (
            "tile/0/001.p/44",
            PARTIAL_TILE_CACHE_CONTROL,
            Some(leaf_hashes[256 * 32..].to_vec()),
        ),
        ("tile/1/000.p/1", PARTIAL_TILE_CACHE_CONTROL, None),
        ("tile/entries/000", FULL_TILE_CACHE_CONTROL, None),
        ("tile/entries/001.p/44", PARTIAL_TILE_CACHE_CONTROL, None),
    ];
    for (path, cache, bytes) in tiles {
        let response = h.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            TILE_CONTENT_TYPE,
            "{path}"
        );
        assert_eq!(header(&response, "cache-control"), cache, "{path}");
        let body = response.bytes().await.unwrap();
        if let Some(bytes) = bytes {
            assert_eq!(body.to_vec(), bytes, "{path}");
        }
        if path.starts_with("tile/entries/") {
            let entries = cairn_tlog::tile::decode_bundle(&body).unwrap();
            assert!(entries.iter().all(|e| e.len() == 128), "{path}");
        }
    }
    // A narrower partial of the published tree that is not stored (never
    // written here; in a real log, garbage-collected after the tree grew)
    // is served as what it held: the first hashes of the published one.
    let response = h.get("tile/0/001.p/43").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "cache-control"),
        PARTIAL_TILE_CACHE_CONTROL
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(
        body.to_vec(),
        leaf_hashes[256 * 32..(256 + 43) * 32].to_vec()
    );
    // Non-canonical paths and tiles the tree does not have are 404.
    for path in [
        "tile/0/0",
        "tile/0/000.p/0",
        "tile/0/002",
        "tile/0/001",
        "tile/entries/001.p/045",
        "tile/9/000",
        "tile/x/000",
    ] {
        let response = h.get(path).await;
        expect_error(response, StatusCode::NOT_FOUND, path).await;
    }
    // HEAD works like GET, without a body.
    let response = h
        .http
        .head(format!("{}tile/0/000", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "cache-control"), FULL_TILE_CACHE_CONTROL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_page_names_the_log_key_and_base_url() {
    let h = Harness::start(Options::default()).await;
    let body = text(h.get("").await).await;
    let key = h.log.log_key.public_key();
    assert!(body.contains(&key.to_hex()), "{body}");
    assert!(body.contains(&key.key_hash().to_hex()), "{body}");
    assert!(
        body.contains(&format!("log {} {}", key.to_hex(), h.base)),
        "{body}"
    );
    // Without the trailing slash: a permanent redirect to the page.
    let response = h.http.get(format!("{}/dev", h.root)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&response, "location"), "/dev/");

    let configured = Harness::start(Options {
        config: FrontendConfig {
            public_base_url: Some("https://log.example.org".into()),
            ..FrontendConfig::default()
        },
        ..Options::default()
    })
    .await;
    let body = text(configured.get("").await).await;
    assert!(body.contains("https://log.example.org/dev/"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_limit_are_refused_with_503() {
    let h = Harness::start(Options {
        gate_adds: true,
        config: FrontendConfig {
            max_concurrent_requests: 1,
            ..FrontendConfig::default()
        },
        ..Options::default()
    })
    .await;
    let first = {
        let http = h.http.clone();
        let url = format!("{}add-leaf", h.base);
        tokio::spawn(async move { http.post(url).body(request(1).0.to_ascii()).send().await })
    };
    eventually("the first add-leaf reaches the sequencer", || async {
        h.log.add_calls.load(Ordering::SeqCst) == 1
    })
    .await;
    let body = expect_error(
        h.get("get-tree-head").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "",
    )
    .await;
    assert!(body.contains("too many concurrent requests"), "{body}");
    h.log.open_gate(1);
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    // The slot is free again.
    assert_eq!(h.get("get-tree-head").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_gets_504_with_a_text_body() {
    let h = Harness::start(Options {
        hang_reads: true,
        limits: ShardLimits {
            submit_wait: Duration::from_millis(100),
            ..ShardLimits::default()
        },
        config: FrontendConfig {
            request_timeout: Duration::from_millis(300),
            ..FrontendConfig::default()
        },
        ..Options::default()
    })
    .await;
    let body = expect_error(
        h.get("get-tree-head").await,
        StatusCode::GATEWAY_TIMEOUT,
        "",
    )
    .await;
    assert!(body.contains("time limit"), "{body}");
}

#[test]
fn invalid_configurations_are_refused() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let shard = |name: &str| cairn_frontend::ShardFrontend {
        name: name.to_owned(),
        log_key: SigningKey::from_seed(&[1; 32]).public_key(),
        sequencer: cairn_proto::SequencerPool::new(["http://127.0.0.1:1"], Default::default())
            .unwrap(),
        tiles: cairn_storage::TileStore::new(std::sync::Arc::new(object_store_memory()), "x")
            .unwrap(),
        limits: ShardLimits::default(),
    };
    use cairn_frontend::{ConfigError, router};
    assert!(matches!(
        router(vec![shard("a/b")], FrontendConfig::default()),
        Err(ConfigError::BadShardName(_))
    ));
    assert!(matches!(
        router(vec![shard("a"), shard("a")], FrontendConfig::default()),
        Err(ConfigError::DuplicateShard(_))
    ));
    let short = FrontendConfig {
        request_timeout: Duration::from_secs(1),
        ..FrontendConfig::default()
    };
    assert!(matches!(
        router(vec![shard("a")], short),
        Err(ConfigError::BadSetting {
            field: "request_timeout",
            ..
        })
    ));
    assert!(router(vec![shard("a"), shard("b")], FrontendConfig::default()).is_ok());
}

fn object_store_memory() -> impl object_store::ObjectStore {
    object_store::memory::InMemory::new()
}

/// The vectors of `derived/sigsum-v1-deterministic.json`: the 7 leaves are
/// submitted through add-leaf, the tree is published with both witnesses'
/// cosignatures, and every response must equal the vector byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_vectors_are_reproduced_byte_for_byte() {
    let v = vectors::json("derived/sigsum-v1-deterministic.json");
    let seed = |who: &str| vectors::unhex32(v["keys"][who]["seed_hex"].as_str().unwrap());
    let head = &v["tree_heads"][1];
    assert_eq!(head["size"], 7);
    let h = Harness::start(Options {
        log_seed: seed("log"),
        witness_seeds: vec![seed("witness1"), seed("witness2")],
        cosign_time: head["cosignatures"][0]["timestamp"].as_u64().unwrap(),
        limits: ShardLimits {
            submit_wait: Duration::from_millis(100),
            ..ShardLimits::default()
        },
        ..Options::default()
    })
    .await;
    // Sequenced but not published: 202, until one publication of size 7.
    h.log.set_auto_publish(false).await;
    let leaves = v["leaves"].as_array().unwrap();
    let bodies: Vec<String> = leaves
        .iter()
        .map(|l| l["add_leaf_request_body"].as_str().unwrap().to_owned())
        .collect();
    for body in &bodies {
        assert_eq!(
            h.add_leaf(body.clone()).await.status(),
            StatusCode::ACCEPTED
        );
    }
    h.log.publish().await;
    for body in &bodies {
        assert_eq!(h.add_leaf(body.clone()).await.status(), StatusCode::OK);
    }

    let expected_head = head["get_tree_head_response"].as_str().unwrap();
    assert_eq!(text(h.get("get-tree-head").await).await, expected_head);

    for case in v["inclusion_proofs_size7"].as_array().unwrap() {
        let leaf_hash = case["leaf_hash_hex"].as_str().unwrap();
        let body = text(h.get(&format!("get-inclusion-proof/7/{leaf_hash}")).await).await;
        assert_eq!(body, case["response"].as_str().unwrap(), "leaf {leaf_hash}");
        // Leaf hashes are accepted in upper case too.
        let upper = leaf_hash.to_uppercase();
        let body = text(h.get(&format!("get-inclusion-proof/7/{upper}")).await).await;
        assert_eq!(body, case["response"].as_str().unwrap());
    }
    let consistency = v["consistency_proofs"].as_array().unwrap();
    assert_eq!(consistency.len(), 21);
    for case in consistency {
        let (old, new) = (&case["old_size"], &case["new_size"]);
        let body = text(h.get(&format!("get-consistency-proof/{old}/{new}")).await).await;
        assert_eq!(body, case["response"].as_str().unwrap(), "{old} -> {new}");
    }
    let line = |i: usize| leaves[i]["get_leaves_line"].as_str().unwrap().to_owned();
    let all: String = (0..7).map(line).collect();
    assert_eq!(text(h.get("get-leaves/0/7").await).await, all);
    assert_eq!(text(h.get("get-leaves/3/4").await).await, line(3));
    let tail: String = (2..7).map(line).collect();
    assert_eq!(text(h.get("get-leaves/2/7").await).await, tail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_added_and_removed_while_serving_are_routed_at_once() {
    let shard = |name: &str| cairn_frontend::ShardFrontend {
        name: name.to_owned(),
        log_key: SigningKey::from_seed(&[2; 32]).public_key(),
        sequencer: cairn_proto::SequencerPool::new(["http://127.0.0.1:1"], Default::default())
            .unwrap(),
        tiles: cairn_storage::TileStore::new(std::sync::Arc::new(object_store_memory()), "x")
            .unwrap(),
        limits: ShardLimits::default(),
    };
    let (app, shards) =
        cairn_frontend::router_with_handle(vec![shard("first")], FrontendConfig::default())
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{base}{path}")).send();

    assert_eq!(get("/late/").await.unwrap().status(), StatusCode::NOT_FOUND);
    shards.add(shard("late")).unwrap();
    let info = get("/late/").await.unwrap();
    assert_eq!(info.status(), StatusCode::OK);
    assert!(info.text().await.unwrap().contains("late"));
    assert_eq!(
        get("/late").await.unwrap().status(),
        StatusCode::PERMANENT_REDIRECT
    );
    assert!(matches!(
        shards.add(shard("late")),
        Err(cairn_frontend::ConfigError::DuplicateShard(_))
    ));
    assert_eq!(shards.names(), ["first", "late"]);
    let index = get("/shards.json").await.unwrap().text().await.unwrap();
    assert!(
        index.contains("\"late\"") && index.contains("\"first\""),
        "{index}"
    );

    assert!(shards.remove("late"));
    assert_eq!(get("/late/").await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(get("/first/").await.unwrap().status(), StatusCode::OK);
    assert!(!shards.remove("late"));
}
