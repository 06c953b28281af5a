//! `cairnd dev --object-store FILE` with its tiles in S3: the real binary
//! against a real S3-compatible server (moto's, `python3 -m moto.server`,
//! installed by `scripts/bootstrap.sh`). Fails, rather than skips, without
//! python3 and moto.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_client::{LogClient, SubmitConfig, Submitter};
use cairn_sigsum::{Hash, SigningKey};
use support::moto::{DEADLINE, Moto, http};
use support::{Cairnd, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dev_log_keeps_its_tiles_in_s3_and_serves_verified_proofs_from_them() {
    let moto = Moto::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let store_file = Moto::store_file(tmp.path(), &moto.endpoint());

    let listen = free_port();
    let mut cairnd = Cairnd::start_with(
        &dir,
        listen,
        &["--object-store".as_ref(), store_file.as_os_str()],
        "warn",
        Stdio::inherit(),
    );
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    let submitter_key = SigningKey::from_seed(&[0x55; 32]);
    let submitter = Submitter::new(
        policy.clone(),
        submitter_key.clone(),
        SubmitConfig::default(),
    )
    .expect("submitter");
    let messages: Vec<Hash> = (0..300)
        .map(|i| cairn_sigsum::crypto::hash(format!("s3 artifact {i}\n").as_bytes()))
        .collect();
    let results = tokio::time::timeout(DEADLINE, submitter.submit_and_prove(&messages))
        .await
        .expect("proofs within the deadline");
    for (i, result) in results.into_iter().enumerate() {
        let proof = result.unwrap_or_else(|e| panic!("message {i}: {e}"));
        proof
            .verify(&messages[i], &[submitter_key.public_key()], &policy)
            .expect("proof verifies");
    }

    // The tiles are in the bucket under `<prefix>/<shard>`, none on disk,
    // and the checkpoint the log serves is the bucket's object.
    assert!(!dir.join("tiles").exists(), "tiles written to DIR/tiles");
    let client = LogClient::new(&cairnd.base_url()).expect("client");
    let head = client.get_tree_head().await.expect("get-tree-head");
    assert!(head.tree_head().size >= 300);
    let bucket = moto.tiles(tmp.path());
    // Retried (bounded) in case the collector publishes in between.
    let started = Instant::now();
    loop {
        let served = http()
            .get(format!("http://{listen}/dev/checkpoint"))
            .send()
            .await
            .expect("GET checkpoint")
            .bytes()
            .await
            .expect("body");
        let stored = bucket
            .checkpoint()
            .await
            .expect("read the bucket")
            .expect("a checkpoint object in the bucket");
        if served == stored {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the served checkpoint is not the bucket's"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        bucket
            .get("tile/entries/000")
            .await
            .expect("read the bucket")
            .is_some(),
        "the first full entry bundle is in the bucket"
    );
    cairnd.stop();
}
