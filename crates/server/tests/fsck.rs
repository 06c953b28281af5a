//! `cairn fsck` against Cairn's own log: a real `cairnd dev` with full and
//! partial tiles, some partials already garbage-collected, checked from its
//! tiles directory, from a plain static web server, and from the log's own
//! frontend; then tampered copies of it, each of which must fail naming the
//! object at fault.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cairn_cli::fsck::{self, EXIT_INCONSISTENT, EXIT_OK, FsckArgs, Outcome};
use cairn_client::{SubmitConfig, Submitter};
use cairn_sigsum::key::{format_public_key_file, log_origin, parse_private_key_file};
use cairn_sigsum::tree_head::TreeHead;
use cairn_sigsum::{Hash, SigningKey};
use cairn_testvectors::logs::{self, StaticServer};
use cairn_tlog::note::Ed25519NoteSigner;
use support::tiles::wait_for_collection;
use support::{Cairnd, free_port};

/// Every wait in this test ends by then.
const DEADLINE: Duration = Duration::from_secs(60);

/// Submission rounds, each ending in a cosigned head: the first leaves a
/// checkpoint whose partial tiles the later ones outgrow (and GC deletes),
/// the second completes the first full tile and bundle.
const ROUNDS: [usize; 3] = [60, 200, 60];

async fn run_fsck(args: &[&str]) -> Outcome {
    let args = FsckArgs::parse_from(args).expect("fsck arguments");
    fsck::check(&args, false).await
}

/// `outcome` failed the log, naming `path` first.
fn assert_inconsistent(what: &str, outcome: &Outcome, path: &str) {
    assert_eq!(
        outcome.code, EXIT_INCONSISTENT,
        "{what}: exit {} ({})",
        outcome.code, outcome.message
    );
    assert_eq!(
        outcome.summary["error"]["path"], path,
        "{what}: {}",
        outcome.message
    );
    assert!(
        outcome.message.starts_with(&format!("{path}: ")),
        "{what}: {}",
        outcome.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsck_passes_cairns_own_log_from_disk_a_static_server_and_its_frontend_and_fails_each_tampered_copy()
 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let listen = free_port();
    let mut cairnd = Cairnd::start_with(
        &dir,
        listen,
        &["--partial-tile-grace".as_ref(), "1".as_ref()],
        "warn",
        Stdio::inherit(),
    );
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    let submitter_key = SigningKey::from_seed(&[0x17; 32]);
    let submitter_file = tmp.path().join("submitter.pub");
    std::fs::write(
        &submitter_file,
        format_public_key_file(&submitter_key.public_key()),
    )
    .unwrap();
    let submitter = Submitter::new(policy, submitter_key, SubmitConfig::default()).unwrap();

    let shard_dir = dir.join("tiles").join("dev");
    let mut total = 0usize;
    let mut first_checkpoint = Vec::new();
    for n in ROUNDS {
        let round: Vec<Hash> = (total..total + n)
            .map(|i| cairn_sigsum::crypto::hash(format!("fsck artifact {i}\n").as_bytes()))
            .collect();
        let results = tokio::time::timeout(DEADLINE, submitter.submit_and_prove(&round))
            .await
            .expect("proofs within the deadline");
        assert!(results.iter().all(Result::is_ok), "every leaf proven");
        total += n;
        if first_checkpoint.is_empty() {
            // The checkpoint object is written right after the publication
            // commits, so it may trail the 200s by a moment.
            let deadline = std::time::Instant::now() + DEADLINE;
            loop {
                let bytes = std::fs::read(shard_dir.join("checkpoint")).unwrap();
                let size = String::from_utf8_lossy(&bytes)
                    .lines()
                    .nth(1)
                    .and_then(|l| l.parse::<usize>().ok());
                if size == Some(total) {
                    first_checkpoint = bytes;
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "checkpoint at {size:?}, want {total}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    let total = total as u64;
    wait_for_collection(&shard_dir, total, DEADLINE).await;
    assert!(!shard_dir.join("tile/0/000.p/60").exists(), "collected");

    let shard = shard_dir.to_str().unwrap();
    let policy_file = dir.join("policy");
    let policy = policy_file.to_str().unwrap();
    let log_key_file = dir.join("log.key.pub");
    let log_key = log_key_file.to_str().unwrap();
    let submitter = submitter_file.to_str().unwrap();

    // The directory, under the policy (log key and witness quorum), every
    // leaf's signature checked.
    let clean = run_fsck(&[shard, "--key", policy, "--submitter-key", submitter]).await;
    assert_eq!(clean.code, EXIT_OK, "{}", clean.message);
    assert_eq!(clean.summary["size"], total);
    assert_eq!(clean.summary["entries_checked"], total);
    assert_eq!(clean.summary["leaf_signatures_verified"], total);
    assert_eq!(clean.summary["bundles_checked"], 2);
    // Levels 0 (a full tile and a partial) and 1 (a partial).
    assert_eq!(clean.summary["tiles_checked"], 3);
    assert!(
        clean.summary["signers"].as_array().unwrap().len() >= 2,
        "log and witness: {}",
        clean.summary
    );

    // The first, older checkpoint: its partials were collected, and fsck
    // reads them as prefixes of the full tile and bundle.
    let first_file = tmp.path().join("checkpoint.60");
    std::fs::write(&first_file, &first_checkpoint).unwrap();
    let older = run_fsck(&[
        shard,
        "--key",
        policy,
        "--checkpoint",
        first_file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(older.code, EXIT_OK, "{}", older.message);
    assert_eq!(older.summary["size"], 60);
    assert_eq!(older.summary["entries_checked"], 60);
    assert_eq!(older.summary["partials_read_from_full"], 2);

    // A plain static web server in front of the tiles, and the log's own
    // frontend: the same log over HTTP.
    let server = StaticServer::start(&dir.join("tiles"));
    for url in [format!("{}dev/", server.url()), cairnd.base_url()] {
        let over_http = run_fsck(&[&url, "--key", policy, "--submitter-key", submitter]).await;
        assert_eq!(over_http.code, EXIT_OK, "{url}: {}", over_http.message);
        assert_eq!(over_http.summary["size"], total, "{url}");
        assert_eq!(
            over_http.summary["leaf_signatures_verified"], total,
            "{url}"
        );
    }

    // Tampered copies, each failing on the object at fault.
    let log_signing_key =
        parse_private_key_file(&std::fs::read(dir.join("log.key")).unwrap()).expect("log.key");
    let origin = log_origin(&log_signing_key.public_key());
    let copy = |name: &str| -> PathBuf {
        let to = tmp.path().join(name);
        logs::copy_dir(&shard_dir, &to);
        to
    };
    let checkpoint_text = String::from_utf8(std::fs::read(shard_dir.join("checkpoint")).unwrap())
        .expect("checkpoint is text");
    let (body, signatures) = checkpoint_text.split_once("\n\n").unwrap();

    let full_tile = copy("full-tile");
    logs::flip_byte(&full_tile.join("tile/0/000"), 100);
    let out = run_fsck(&[full_tile.to_str().unwrap(), "--key", policy]).await;
    assert_inconsistent("flipped full tile", &out, "tile/0/000");

    let edge_tile = copy("edge-tile");
    logs::flip_byte(&edge_tile.join("tile/0/001.p/64"), 7);
    let out = run_fsck(&[edge_tile.to_str().unwrap(), "--key", policy]).await;
    assert_inconsistent("flipped edge tile", &out, "tile/0/001.p/64");

    let bundle = copy("bundle");
    logs::flip_byte(&bundle.join("tile/entries/000"), 1000);
    let out = run_fsck(&[bundle.to_str().unwrap(), "--key", policy]).await;
    assert_inconsistent("flipped bundle", &out, "tile/entries/000");

    let missing = copy("missing");
    std::fs::remove_file(missing.join("tile/1/000.p/1")).unwrap();
    let out = run_fsck(&[missing.to_str().unwrap(), "--key", policy]).await;
    assert_inconsistent("missing tile", &out, "tile/1/000.p/1");

    // Signed by the log's own key, but of another tree of the same size.
    let other_tree = copy("other-tree");
    let head = TreeHead {
        size: total,
        root_hash: cairn_sigsum::crypto::hash(b"another tree"),
    };
    let forged = Ed25519NoteSigner::new(&origin, &log_signing_key.seed())
        .unwrap()
        .sign_note(&head.checkpoint_body(&log_signing_key.public_key().key_hash()))
        .unwrap()
        .to_bytes();
    std::fs::write(other_tree.join("checkpoint"), forged).unwrap();
    let out = run_fsck(&[other_tree.to_str().unwrap(), "--key", log_key]).await;
    assert_inconsistent("checkpoint of another tree", &out, "checkpoint");
    assert!(
        out.message.contains("does not match the root"),
        "{}",
        out.message
    );
    // The witnesses never cosigned it: under the policy it fails earlier.
    let out = run_fsck(&[other_tree.to_str().unwrap(), "--key", policy]).await;
    assert_inconsistent("uncosigned checkpoint", &out, "checkpoint");

    // The real signatures under an altered size line.
    let bad_signature = copy("bad-signature");
    let mut lines: Vec<&str> = body.lines().collect();
    let smaller = (total - 1).to_string();
    lines[1] = &smaller;
    std::fs::write(
        bad_signature.join("checkpoint"),
        format!("{}\n\n{signatures}", lines.join("\n")),
    )
    .unwrap();
    let out = run_fsck(&[bad_signature.to_str().unwrap(), "--key", log_key]).await;
    assert_inconsistent("bad signature", &out, "checkpoint");

    // The log's signature alone: enough for its key, not for its policy.
    let uncosigned = copy("uncosigned");
    let log_line = signatures.lines().next().unwrap();
    std::fs::write(
        uncosigned.join("checkpoint"),
        format!("{body}\n\n{log_line}\n"),
    )
    .unwrap();
    let out = run_fsck(&[uncosigned.to_str().unwrap(), "--key", log_key]).await;
    assert_eq!(out.code, EXIT_OK, "{}", out.message);
    let out = run_fsck(&[uncosigned.to_str().unwrap(), "--key", policy]).await;
    assert_inconsistent("no cosignatures under the policy", &out, "checkpoint");

    drop(server);
    cairnd.stop();
}
