//! End to end: `cairn monitor` as a child process against the fake Sigsum
//! log over real HTTP on 127.0.0.1 (the client's test log, included by
//! path), behaving and then misbehaving.

mod common;
#[path = "../../client/tests/fake_log/mod.rs"]
mod fake_log;

use cairn_sigsum::SigningKey;
use cairn_sigsum::key::format_public_key_file;
use cairn_sigsum::leaf::Leaf;
use common::cairn_async;
use fake_log::FakeLog;

fn log_key() -> SigningKey {
    SigningKey::from_seed(&[0x4c; 32])
}
fn witness_key() -> SigningKey {
    SigningKey::from_seed(&[0x57; 32])
}
fn watched_key() -> SigningKey {
    SigningKey::from_seed(&[0x77; 32])
}
fn other_key() -> SigningKey {
    SigningKey::from_seed(&[0x0e; 32])
}

/// The fake log cosigned by `cosigner`, and a directory holding a policy for
/// it with quorum W (W = `witness_key`) and the watched key's public key
/// file.
async fn start(cosigner: SigningKey) -> (FakeLog, tempfile::TempDir) {
    let log = FakeLog::start(log_key(), vec![cosigner]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let policy = format!(
        "log {} {}\nwitness W {}\nquorum W\n",
        log.public_key(),
        log.url(),
        witness_key().public_key()
    );
    std::fs::write(dir.join("policy"), policy).unwrap();
    std::fs::write(
        dir.join("watched.pub"),
        format_public_key_file(&watched_key().public_key()),
    )
    .unwrap();
    (log, tmp)
}

const ONCE: &[&str] = &[
    "monitor",
    "--once",
    "-p",
    "policy",
    "-k",
    "watched.pub",
    "--state-dir",
    "state",
];

/// sigsum-monitor's line for a reported leaf.
fn leaf_line(index: u64, leaf: &Leaf) -> String {
    format!(
        "  index {index} keyhash {} checksum {}\n",
        leaf.key_hash,
        hex::encode(leaf.checksum)
    )
}

/// sigsum-monitor's line for a log's grown tree.
fn tree_line(log: &FakeLog, size: u64) -> String {
    format!("New {} tree, size {size}\n", log.public_key().key_hash())
}

/// sigsum-monitor's line before the leaves reported from one batch.
fn leaves_line(log: &FakeLog, count: usize, processed: u64) -> String {
    format!(
        "New {} leaves, count {count}, total processed {processed}\n",
        log.public_key().key_hash()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_prints_watched_leaves_and_continues_from_its_state() {
    let (log, tmp) = start(witness_key()).await;
    let dir = tmp.path();
    let mine: Vec<Leaf> = (0..3)
        .map(|i| Leaf::sign(&watched_key(), &[i; 32]))
        .collect();
    let theirs = Leaf::sign(&other_key(), &[9; 32]);
    log.append_direct(&[mine[0], theirs, mine[1]]);

    let out = cairn_async(dir, ONCE).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        tree_line(&log, 3)
            + &leaves_line(&log, 2, 3)
            + &leaf_line(0, &mine[0])
            + &leaf_line(2, &mine[1])
    );
    assert_eq!(out.stderr, "");
    let state = dir
        .join("state")
        .join(format!("{}.cairn-monitor", log.public_key().key_hash()));
    assert!(state.exists());

    log.append_direct(&[theirs, mine[2]]);
    let out = cairn_async(dir, ONCE).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        tree_line(&log, 5) + &leaves_line(&log, 1, 5) + &leaf_line(4, &mine[2])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_of_several_logs_are_told_apart_by_their_logs_key_hash() {
    let (first, tmp) = start(witness_key()).await;
    let second = FakeLog::start(SigningKey::from_seed(&[0x4d; 32]), vec![witness_key()]).await;
    let dir = tmp.path();
    let policy = format!(
        "log {} {}\nlog {} {}\nwitness W {}\nquorum W\n",
        first.public_key(),
        first.url(),
        second.public_key(),
        second.url(),
        witness_key().public_key()
    );
    std::fs::write(dir.join("policy"), policy).unwrap();
    // The same leaf, at index 0 of one log and index 1 of the other.
    let mine = Leaf::sign(&watched_key(), &[5; 32]);
    first.append_direct(&[mine]);
    second.append_direct(&[Leaf::sign(&other_key(), &[6; 32]), mine]);

    let out = cairn_async(dir, ONCE).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        tree_line(&first, 1)
            + &leaves_line(&first, 1, 1)
            + &leaf_line(0, &mine)
            + &tree_line(&second, 2)
            + &leaves_line(&second, 1, 2)
            + &leaf_line(1, &mine)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_is_an_alert_with_exit_status_one_in_every_later_run() {
    let (log, tmp) = start(witness_key()).await;
    let dir = tmp.path();
    let history: Vec<Leaf> = (0..4).map(|i| Leaf::sign(&other_key(), &[i; 32])).collect();
    log.append_direct(&history);
    let out = cairn_async(dir, ONCE).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    let mut fork = history.clone();
    fork[1] = Leaf::sign(&other_key(), &[0xf0; 32]);
    log.rewrite_history(&fork);
    for _ in 0..2 {
        let out = cairn_async(dir, ONCE).await;
        assert_eq!(out.code, 1, "{}", out.stderr);
        let err = out.stderr;
        assert!(
            err.starts_with(&format!("ALERT {} fork: ", log.url())),
            "{err}"
        );
    }

    // Looping, the first pass with an alert ends the process.
    let looping = [
        "monitor",
        "-p",
        "policy",
        "--state-dir",
        "state",
        "--interval",
        "1h",
    ];
    let out = cairn_async(dir, &looping).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("stopping after 1 alert(s)"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_head_is_a_warning_that_fails_only_with_fail_on_warning() {
    let (log, tmp) = start(witness_key()).await;
    let dir = tmp.path();
    log.append_direct(&[Leaf::sign(&watched_key(), &[1; 32])]);
    log.set_cosignature_age(3 * 3600);

    let out = cairn_async(dir, ONCE).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let err = out.stderr;
    assert!(
        err.starts_with(&format!(
            "WARNING {} newest quorum of cosignatures is ",
            log.url()
        )),
        "{err}"
    );
    assert_eq!(out.stdout.matches("  index ").count(), 1, "{}", out.stdout);

    let mut strict = ONCE.to_vec();
    strict.extend(["--fail-on-warning", "--max-age", "2h"]);
    let out = cairn_async(dir, &strict).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("(limit 7200 s)"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_without_quorum_is_a_warning() {
    let (log, tmp) = start(other_key()).await;
    let dir = tmp.path();
    let out = cairn_async(dir, ONCE).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let err = out.stderr;
    assert!(
        err.starts_with(&format!("WARNING {} tree head (size 0 ", log.url()))
            && err.contains("does not satisfy the policy quorum (cosigned by: none;"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_options_and_policies_exit_two() {
    let (log, tmp) = start(witness_key()).await;
    let dir = tmp.path();
    let no_state = cairn_async(dir, &["monitor", "--once", "-p", "policy"]).await;
    assert_eq!(no_state.code, 2);
    let mut zero_batch = ONCE.to_vec();
    zero_batch.extend(["--batch-size", "0"]);
    assert_eq!(cairn_async(dir, &zero_batch).await.code, 2);

    let no_url = format!("log {}\nquorum none\n", log.public_key());
    std::fs::write(dir.join("policy"), no_url).unwrap();
    let out = cairn_async(dir, ONCE).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no log with a URL"), "{}", out.stderr);
}
