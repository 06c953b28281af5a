//! End-to-end tests of `cairnd dev` as a user runs it: the real binary in its
//! own process, on loopback, with its data directory in a tempdir, driven by
//! Cairn's Sigsum client over HTTP.
//!
//! `the_dev_log_sequences_proves_and_survives_a_restart` is one linear story
//! (each phase depends on the last): start, submit 1000 leaves concurrently
//! and get verified proofs for all of them, check every inclusion proof and
//! the consistency of every published tree head seen, stop with SIGTERM,
//! restart, and check the tree continued unchanged.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_client::{LogClient, SubmitConfig, Submitter};
use cairn_sigsum::tree_head::CosignedTreeHead;
use cairn_sigsum::{Hash, SigningKey};
use cairn_tlog::leaf_hash;
use futures::StreamExt as _;
use support::{Cairnd, free_port};

const LEAVES: usize = 1000;

fn message(i: usize) -> Hash {
    cairn_sigsum::crypto::hash(format!("cairn dev test artifact {i}\n").as_bytes())
}

/// Polls get-tree-head until the cosigned size reaches `size`, recording
/// every distinct head seen (by size) for the consistency checks.
async fn wait_for_size(
    client: &LogClient,
    size: u64,
    seen: &mut BTreeMap<u64, CosignedTreeHead>,
) -> CosignedTreeHead {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let head = client.get_tree_head().await.expect("get-tree-head");
        seen.insert(head.tree_head().size, head.clone());
        if head.tree_head().size >= size {
            return head;
        }
        assert!(Instant::now() < deadline, "tree did not reach {size}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cairnd_runs_with_two_malloc_arenas_unless_its_environment_says_otherwise() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cairnd = Cairnd::start(&tmp.path().join("data"), free_port());
    cairnd.wait_ready().await;
    let environ = std::fs::read(format!("/proc/{}/environ", cairnd.pid())).expect("environ");
    let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    let expected = match std::env::var("MALLOC_ARENA_MAX") {
        Ok(value) => format!("MALLOC_ARENA_MAX={value}"),
        Err(_) => "MALLOC_ARENA_MAX=2".to_owned(),
    };
    assert!(
        vars.contains(&expected.as_bytes()),
        "{expected} not in cairnd's environment"
    );
}

/// The collector reaches the embedded witness through a listener of its
/// own, so clients holding every connection the public listener allows
/// their address (a load test on the same machine does) cannot stop
/// publication. Before, the log then answered every add-leaf 202 for as
/// long as they held on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_holding_every_public_connection_do_not_cut_the_log_off_from_its_witness() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let listen = free_port();
    let mut cairnd = Cairnd::start(&tmp.path().join("data"), listen);
    cairnd.wait_ready().await;
    // Past the header-read timeout (10 s), the server has closed every
    // kept-alive connection, the collector's (if it used this listener)
    // among them.
    tokio::time::sleep(Duration::from_secs(11)).await;
    // More than the dev listener's per-address cap (256), all from
    // 127.0.0.1, held idle: the server refuses the excess at once and
    // keeps the rest until the header-read timeout.
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(
            tokio::net::TcpStream::connect(listen)
                .await
                .expect("connect"),
        );
    }
    let holding_since = Instant::now();
    // A submitter from another address, well within the holders' 10 s.
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let body =
        cairn_sigsum::api::AddLeafRequest::sign(&SigningKey::from_seed(&[42; 32]), &message(0))
            .to_ascii();
    let mut statuses = Vec::new();
    while holding_since.elapsed() < Duration::from_secs(7) {
        let status = http
            .post(format!("{}add-leaf", cairnd.base_url()))
            .body(body.clone())
            .send()
            .await
            .expect("add-leaf")
            .status();
        statuses.push(status);
        if status == reqwest::StatusCode::OK {
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&reqwest::StatusCode::OK),
        "add-leaf answers while the public listener was full: {statuses:?}"
    );
    drop(held);
    cairnd.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dev_log_sequences_proves_and_survives_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let listen = free_port();

    // Phase 1: first start creates the directory, keys and policy.
    let mut cairnd = Cairnd::start(&dir, listen);
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    let log_key = cairnd.log_key();
    let client = LogClient::new(&cairnd.base_url()).expect("client");
    let mut seen = BTreeMap::new();
    wait_for_size(&client, 0, &mut seen).await;

    // Phase 2: 1000 leaves, 64 in flight, each with a proof that Cairn's
    // offline verifier accepts under the log's policy (log signature, witness
    // quorum, inclusion).
    let submitter_key = SigningKey::from_seed(&[0x53; 32]);
    let submitter = Submitter::new(
        policy.clone(),
        submitter_key.clone(),
        SubmitConfig {
            concurrency: 64,
            ..SubmitConfig::default()
        },
    )
    .expect("submitter");
    let messages: Vec<Hash> = (0..LEAVES).map(message).collect();
    let mut proofs = Vec::new();
    let mut stream = submitter.submit_and_prove_stream(&messages);
    while let Some((i, result)) = stream.next().await {
        let proof = result.unwrap_or_else(|e| panic!("message {i}: {e}"));
        proof
            .verify(&messages[i], &[submitter_key.public_key()], &policy)
            .expect("proof verifies");
        proofs.push((i, proof));
    }
    drop(stream);
    assert_eq!(proofs.len(), LEAVES);

    // Phase 3: every leaf is in the published tree exactly once, and every
    // inclusion proof against the latest head verifies.
    let head = wait_for_size(&client, LEAVES as u64, &mut seen).await;
    let size = head.tree_head().size;
    assert_eq!(size, LEAVES as u64, "no leaf was sequenced twice");
    assert!(head.signed.verify(&log_key), "log signature");
    let mut indices = std::collections::HashSet::new();
    for (i, proof) in &proofs {
        let leaf = proof.leaf(&messages[*i]);
        let proof = client
            .get_inclusion_proof(size, &leaf.leaf_hash())
            .await
            .unwrap_or_else(|e| panic!("inclusion proof for message {i}: {e}"));
        proof
            .verify(&leaf.leaf_hash(), head.tree_head())
            .expect("inclusion verifies");
        assert!(
            indices.insert(proof.leaf_index),
            "index {} twice",
            proof.leaf_index
        );
    }
    // get-leaves returns the same leaves the proofs name.
    let first = client.get_leaves(0, 10).await.expect("get-leaves");
    assert!(!first.is_empty());
    for (index, leaf) in first.iter().enumerate() {
        let proof = client
            .get_inclusion_proof(size, &leaf.leaf_hash())
            .await
            .expect("proof");
        assert_eq!(proof.leaf_index, index as u64);
    }

    // Phase 4: every pair of published heads seen is consistent.
    let sizes: Vec<u64> = seen.keys().copied().filter(|s| *s > 0).collect();
    for pair in sizes.windows(2) {
        let (old, new) = (&seen[&pair[0]], &seen[&pair[1]]);
        let proof = client
            .get_consistency_proof(pair[0], pair[1])
            .await
            .expect("consistency proof");
        proof
            .verify(old.tree_head(), new.tree_head())
            .expect("consistent heads");
    }

    // Phase 5: SIGTERM, restart on the same directory: same tree, same keys,
    // new leaves continue after the old ones.
    cairnd.stop();
    let mut cairnd = Cairnd::start(&dir, listen);
    cairnd.wait_ready().await;
    assert_eq!(cairnd.log_key(), log_key, "the restart kept the log key");
    let client = LogClient::new(&cairnd.base_url()).expect("client");
    let after = wait_for_size(&client, size, &mut seen).await;
    assert_eq!(after.tree_head().size, size);
    assert_eq!(after.tree_head().root_hash, head.tree_head().root_hash);

    let more: Vec<Hash> = (LEAVES..LEAVES + 10).map(message).collect();
    for (i, result) in submitter
        .submit_and_prove(&more)
        .await
        .into_iter()
        .enumerate()
    {
        let proof = result.unwrap_or_else(|e| panic!("message {}: {e}", LEAVES + i));
        assert!(proof.tree_head.tree_head().size > size);
    }
    let grown = wait_for_size(&client, size + 10, &mut seen).await;
    let proof = client
        .get_consistency_proof(size, grown.tree_head().size)
        .await
        .expect("consistency across the restart");
    proof
        .verify(head.tree_head(), grown.tree_head())
        .expect("the tree continued unchanged");
    let leaf = leaf_hash(&cairn_sigsum::leaf::Leaf::sign(&submitter_key, &more[0]).to_bytes());
    let proof = client
        .get_inclusion_proof(grown.tree_head().size, &leaf)
        .await
        .expect("new leaf proof");
    assert!(
        proof.leaf_index >= size,
        "new leaves come after the old tree"
    );
    cairnd.stop();
}

/// The targets of the log lines in `text` (tracing's plain format:
/// `<time> <LEVEL> [<span>{<fields>}:...] <target>: <message>`): the first
/// word after the level that is a bare path ending in `:`.
fn log_targets(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_ascii_whitespace();
            let _time = words.next()?;
            let level = words.next()?;
            if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level) {
                return None;
            }
            words
                .find_map(|w| {
                    let path = w.strip_suffix(':')?;
                    let bare = !path.is_empty()
                        && path
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
                    bare.then_some(path)
                })
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn by_default_the_log_shows_cairns_own_events_and_no_library_chatter() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let log = tmp.path().join("cairnd.log");
    let listen = free_port();
    let stderr = std::fs::File::create(&log).expect("log file");
    let mut cairnd = Cairnd::start_with(&dir, listen, &[], "", std::process::Stdio::from(stderr));
    cairnd.wait_ready().await;
    let submitter = Submitter::new(
        cairnd.policy(),
        SigningKey::from_seed(&[0x44; 32]),
        SubmitConfig::default(),
    )
    .expect("submitter");
    for r in submitter.submit_and_prove(&[message(1), message(2)]).await {
        r.expect("proof");
    }
    cairnd.stop();
    let text = std::fs::read_to_string(&log).expect("log");
    let targets = log_targets(&text);
    assert!(
        targets.iter().any(|t| t.starts_with("cairn")),
        "no event of Cairn's own at info:\n{text}"
    );
    let foreign: Vec<&String> = targets.iter().filter(|t| !t.starts_with("cairn")).collect();
    assert!(
        foreign.is_empty(),
        "library events at the default level: {foreign:?}\n{text}"
    );
}
