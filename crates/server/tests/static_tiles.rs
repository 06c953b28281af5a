//! The tiles of a dev log, served by a plain static web server
//! (`python3 -m http.server`, none of Cairn's code), are a complete read
//! path: the checkpoint, every inclusion and consistency proof, and a Cairn
//! frontend that reads its tiles from that URL instead of a directory.
//! Superseded partial tiles are garbage-collected meanwhile, and nothing a
//! reader needs goes with them.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_client::{LogClient, SubmitConfig, Submitter};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::{Hash, SigningKey};
use cairn_storage::{HttpConfig, TileStore, TileStoreOptions, TrustedHead};
use cairn_testvectors::logs::StaticServer;
use cairn_tlog::checkpoint::SignedCheckpoint;
use cairn_tlog::proof::{verify_consistency, verify_inclusion};
use cairn_tlog::tile::partial_bundle_for_size;
use support::tiles::wait_for_collection;
use support::{Cairnd, free_port, start_role};

/// Every wait in this test ends by then.
const DEADLINE: Duration = Duration::from_secs(60);

/// The submission rounds: each ends with a publication at a new size, so
/// the log writes partial tiles of many widths, most of them outgrown.
const ROUNDS: [usize; 5] = [1, 3, 60, 200, 56];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_server_in_front_of_the_tiles_is_a_complete_read_path_after_gc() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let listen = free_port();
    let grpc = free_port();
    let mut cairnd = Cairnd::start_with(
        &dir,
        listen,
        &[
            "--partial-tile-grace".as_ref(),
            "1".as_ref(),
            "--grpc-listen".as_ref(),
            grpc.to_string().as_ref(),
        ],
        "warn",
        Stdio::inherit(),
    );
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    let submitter_key = SigningKey::from_seed(&[0x42; 32]);
    let submitter = Submitter::new(
        policy.clone(),
        submitter_key.clone(),
        SubmitConfig::default(),
    )
    .expect("submitter");

    // Each round ends only when all its leaves are in a published head.
    let mut messages: Vec<Hash> = Vec::new();
    let mut proofs = Vec::new();
    for n in ROUNDS {
        let round: Vec<Hash> = (messages.len()..messages.len() + n)
            .map(|i| cairn_sigsum::crypto::hash(format!("static artifact {i}\n").as_bytes()))
            .collect();
        let results = tokio::time::timeout(DEADLINE, submitter.submit_and_prove(&round))
            .await
            .expect("proofs within the deadline");
        for (m, result) in round.iter().zip(results) {
            let proof = result.expect("a proof");
            proof
                .verify(m, &[submitter_key.public_key()], &policy)
                .expect("proof verifies");
            proofs.push(proof);
        }
        messages.extend(round);
    }
    let total = messages.len() as u64;

    // The collection: every partial the published tree outgrew goes (grace
    // 1 s), exactly its right edge stays.
    let shard_dir = dir.join("tiles").join("dev");
    let waited = wait_for_collection(&shard_dir, total, DEADLINE).await;
    println!("only the published edge left {waited:?} after the last round");
    // The partials of every earlier round's size were written and are gone.
    let mut size = 0u64;
    for n in &ROUNDS[..ROUNDS.len() - 1] {
        size += *n as u64;
        if let Some(bundle) = partial_bundle_for_size(size) {
            assert!(
                !shard_dir.join(bundle.path()).exists(),
                "{bundle} of the old size {size} is still there"
            );
        }
    }

    // Read everything back from the static server.
    let server = StaticServer::start(&dir.join("tiles"));
    let http = HttpConfig::new(server.url());
    let reader = TileStore::http(&http, "dev", TileStoreOptions::default()).expect("http store");
    let note = reader
        .checkpoint()
        .await
        .expect("GET checkpoint")
        .expect("a checkpoint");
    let checkpoint = SignedCheckpoint::parse(&note).expect("checkpoint parses");
    let (size, root) = (checkpoint.checkpoint().size, checkpoint.checkpoint().root);
    assert_eq!(size, total);
    let head = TrustedHead::new(size, root);
    for (m, proof) in messages.iter().zip(&proofs) {
        let leaf = Leaf {
            checksum: cairn_sigsum::crypto::hash(m),
            signature: proof.leaf_signature,
            key_hash: proof.submitter_key_hash,
        };
        let index = proof.inclusion.leaf_index;
        let path = reader
            .inclusion_proof(index, size, head)
            .await
            .expect("inclusion proof from static tiles");
        verify_inclusion(&leaf.leaf_hash(), index, size, &path, &root)
            .unwrap_or_else(|e| panic!("leaf {index} in the static tiles: {e}"));
        // The head each proof was cosigned in (policy-verified above) is a
        // prefix of the static tree: no split view between the two paths.
        let old = proof.tree_head.tree_head();
        if old.size == size {
            assert_eq!(old.root_hash, root);
            continue;
        }
        let consistency = reader
            .consistency_proof(old.size, size, head)
            .await
            .expect("consistency proof from static tiles");
        verify_consistency(old.size, size, &consistency, &old.root_hash, &root)
            .unwrap_or_else(|e| panic!("{} -> {size}: {e}", old.size));
    }

    // A frontend reading its tiles from the static server's URL.
    let conf = tmp.path().join("frontend");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("tiles.toml"),
        format!("[http]\nurl = \"{}\"\n", server.url()),
    )
    .unwrap();
    let frontend_listen = free_port();
    std::fs::write(
        conf.join("frontend.toml"),
        format!(
            "listen = \"{frontend_listen}\"\nsequencers = [\"http://{grpc}\"]\n\n\
             [[shard]]\nname = \"dev\"\nlog_key = \"{}\"\nobject_store = \"tiles.toml\"\n",
            dir.join("log.key.pub").display()
        ),
    )
    .unwrap();
    let mut frontend = start_role(
        "frontend",
        "frontend",
        &conf.join("frontend.toml"),
        "warn",
        Stdio::null(),
    );
    let base = format!("http://{frontend_listen}/dev/");
    let client = LogClient::new(&base).expect("client");
    let started = Instant::now();
    let served = loop {
        frontend.assert_running();
        if let Ok(head) = client.get_tree_head().await {
            break head;
        }
        assert!(started.elapsed() < DEADLINE, "the frontend did not serve");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(served.tree_head().size, total);
    for (m, proof) in messages.iter().zip(&proofs).step_by(7) {
        let leaf = Leaf {
            checksum: cairn_sigsum::crypto::hash(m),
            signature: proof.leaf_signature,
            key_hash: proof.submitter_key_hash,
        };
        let inclusion = client
            .get_inclusion_proof(total, &leaf.leaf_hash())
            .await
            .expect("get-inclusion-proof through the frontend");
        inclusion
            .verify(&leaf.leaf_hash(), served.tree_head())
            .expect("inclusion proof verifies");
    }
    // The frontend serves tiles it read over HTTP with its own headers.
    let response = reqwest::get(format!("{base}tile/0/000"))
        .await
        .expect("GET a full tile");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        cairn_storage::FULL_TILE_CACHE_CONTROL
    );
    drop(frontend);
    cairnd.stop();
}
