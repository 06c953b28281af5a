//! End to end: `cairn key generate`, `cairn submit` against a fake Sigsum
//! log over real HTTP on 127.0.0.1, then `cairn verify` on the proofs it
//! wrote. The fake log is `cairn-client`'s test log, included by path.

mod common;
#[path = "../../client/tests/fake_log/mod.rs"]
mod fake_log;
#[path = "../../client/tests/ssh_agent/mod.rs"]
mod ssh_agent;

use std::path::Path;

use cairn_sigsum::SigningKey;
use cairn_sigsum::proof::{SigsumProof, message_from_data};
use common::{Cairn, cairn_async};
use fake_log::FakeLog;
use ssh_agent::SshAgent;

fn log_key() -> SigningKey {
    SigningKey::from_seed(&[0x4c; 32])
}
fn witness_key() -> SigningKey {
    SigningKey::from_seed(&[0x57; 32])
}

/// Without a terminal (tests capture stderr) there must be no progress
/// bar: no carriage returns, no terminal escapes, no bar text.
fn assert_no_progress_bar(err: &str) {
    assert!(!err.contains('\r'), "progress redraw in {err:?}");
    assert!(!err.contains('\u{1b}'), "terminal escape in {err:?}");
    assert!(!err.contains("proofs"), "progress bar text in {err:?}");
}

fn write_policy(dir: &Path, name: &str, log: &FakeLog, quorum_witness: &SigningKey) {
    let text = format!(
        "log {} {}\nwitness W {}\nquorum W\n",
        log.public_key(),
        log.url(),
        quorum_witness.public_key()
    );
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_writes_proofs_that_verify_and_reruns_skip_them() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_policy(dir, "policy", &log, &witness_key());
    let gen_out = cairn_async(dir, &["key", "generate", "-o", "submit.key"]).await;
    assert_eq!(gen_out.code, 0, "{}", gen_out.stderr);
    std::fs::write(dir.join("a.txt"), "first artifact\n").unwrap();
    std::fs::write(dir.join("b.bin"), [0u8, 1, 2, 3]).unwrap();

    let submit = [
        "submit",
        "-p",
        "policy",
        "-k",
        "submit.key",
        "--poll-interval",
        "50ms",
        "a.txt",
        "b.bin",
    ];
    let out = cairn_async(dir, &submit).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let err = out.stderr;
    assert!(err.contains("a.txt: logged at index"), "{err}");
    assert!(
        err.contains("2 proof(s) written, 0 skipped, 0 failed"),
        "{err}"
    );
    assert_no_progress_bar(&err);
    assert_eq!(log.size(), 2);

    for f in ["a.txt", "b.bin"] {
        let proof = std::fs::read(dir.join(format!("{f}.proof"))).unwrap();
        let parsed = SigsumProof::parse(&proof).expect("proof parses");
        assert_eq!(parsed.log_key_hash, log.public_key().key_hash());
        let v = cairn_async(dir, &["verify", "-p", "policy", "-k", "submit.key.pub", f]).await;
        assert_eq!(v.code, 0, "{f}: {}", v.stderr);
    }

    // Re-running submits nothing: the proofs exist and verify.
    let before = log.counters();
    let again = cairn_async(dir, &submit).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("0 proof(s) written, 2 skipped, 0 failed"),
        "{}",
        again.stderr
    );
    assert_eq!(log.counters(), before);

    // A changed file no longer matches its proof, for verify and submit.
    std::fs::write(dir.join("a.txt"), "tampered\n").unwrap();
    let v = cairn_async(
        dir,
        &["verify", "-p", "policy", "-k", "submit.key.pub", "a.txt"],
    )
    .await;
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("leaf signature"), "{}", v.stderr);
    let resubmit = cairn_async(dir, &submit).await;
    assert_eq!(resubmit.code, 1);
    assert!(
        resubmit.stderr.contains("remove it to resubmit"),
        "{}",
        resubmit.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_hash_submission_verifies_in_raw_hash_mode() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_policy(dir, "policy", &log, &witness_key());
    assert!(cairn_async(dir, &["key", "generate", "-o", "k"]).await.code == 0);
    let message = message_from_data(b"some release tarball");
    std::fs::write(dir.join("digest"), format!("{}\n", hex::encode(message))).unwrap();
    let out = cairn_async(
        dir,
        &[
            "submit",
            "-p",
            "policy",
            "-k",
            "k",
            "--raw-hash",
            "--poll-interval",
            "50ms",
            "digest",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ok = cairn_async(
        dir,
        &[
            "verify",
            "-p",
            "policy",
            "-k",
            "k.pub",
            "--raw-hash",
            "digest",
        ],
    )
    .await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // The same proof, checked against the data the digest came from.
    std::fs::write(dir.join("tarball"), b"some release tarball").unwrap();
    let data = cairn_async(
        dir,
        &[
            "verify",
            "-p",
            "policy",
            "-k",
            "k.pub",
            "tarball",
            "--proof",
            "digest.proof",
        ],
    )
    .await;
    assert_eq!(data.code, 0, "{}", data.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_fails_with_exit_1_when_the_quorum_is_never_met() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The policy's quorum witness never cosigns this log.
    write_policy(dir, "policy", &log, &SigningKey::from_seed(&[0x58; 32]));
    assert!(cairn_async(dir, &["key", "generate", "-o", "k"]).await.code == 0);
    std::fs::write(dir.join("f"), "data\n").unwrap();
    let out = cairn_async(
        dir,
        &[
            "submit",
            "-p",
            "policy",
            "-k",
            "k",
            "--poll-interval",
            "50ms",
            "--timeout",
            "2s",
            "f",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let err = out.stderr;
    assert!(err.contains("f: error: log http://"), "{err}");
    assert!(
        err.contains("waiting for a tree head that satisfies the policy quorum"),
        "{err}"
    );
    assert!(!dir.join("f.proof").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_setup_errors_exit_2_before_contacting_a_log() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_policy(dir, "policy", &log, &witness_key());
    std::fs::write(dir.join("not-a-key"), "hello\n").unwrap();
    std::fs::write(dir.join("f"), "data\n").unwrap();
    let out = cairn_async(dir, &["submit", "-p", "policy", "-k", "not-a-key", "f"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("private key file not-a-key"),
        "{}",
        out.stderr
    );
    std::fs::write(
        dir.join("no-url"),
        format!("log {}\nquorum none\n", log.public_key()),
    )
    .unwrap();
    assert!(cairn_async(dir, &["key", "generate", "-o", "k"]).await.code == 0);
    let out = cairn_async(dir, &["submit", "-p", "no-url", "-k", "k", "f"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no log with a URL"), "{}", out.stderr);
    assert_eq!(log.counters(), fake_log::Counters::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_signs_through_ssh_agent_when_given_a_public_key() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let agent = SshAgent::start();
    let generated = cairn_async(dir, &["key", "generate", "-o", "submit.key"]).await;
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    agent.add(&dir.join("submit.key"));
    std::fs::remove_file(dir.join("submit.key")).unwrap();
    // The public key's sigsum-policy option names the policy, as sigsum-go
    // allows when -p and -P are absent.
    let public = std::fs::read_to_string(dir.join("submit.key.pub")).unwrap();
    std::fs::write(
        dir.join("submit.key.pub"),
        format!("sigsum-policy=\"agent-test\" {public}"),
    )
    .unwrap();
    let policies = dir.join("policies");
    std::fs::create_dir(&policies).unwrap();
    write_policy(&policies, "agent-test.sigsum-policy", &log, &witness_key());
    let cairn = || Cairn::new(dir).policy_dir(&policies);
    std::fs::write(dir.join("a.txt"), "signed in the agent\n").unwrap();

    let submit = [
        "submit",
        "-k",
        "submit.key.pub",
        "--poll-interval",
        "50ms",
        "a.txt",
    ];
    let out = cairn().agent(Some(agent.socket())).run_async(&submit).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_progress_bar(&out.stderr);
    let v = cairn()
        .run_async(&[
            "verify",
            "-P",
            "agent-test",
            "-k",
            "submit.key.pub",
            "a.txt",
        ])
        .await;
    assert_eq!(v.code, 0, "{}", v.stderr);

    // Without the agent the key cannot sign: a setup error, nothing sent.
    std::fs::write(dir.join("b.txt"), "never signed\n").unwrap();
    let before = log.size();
    let mut no_agent = submit;
    no_agent[5] = "b.txt";
    let out = cairn().run_async(&no_agent).await;
    out.assert_exit(2, "ssh-agent");
    assert_eq!(log.size(), before);
}
