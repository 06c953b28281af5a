//! End to end: `cairn key generate`, `cairn submit` against a fake Sigsum
//! log over real HTTP on 127.0.0.1, then `cairn verify` on the proofs it
//! wrote. The fake log is `cairn-client`'s test log, included by path.

#[path = "../../client/tests/fake_log/mod.rs"]
mod fake_log;
#[path = "../../client/tests/ssh_agent/mod.rs"]
mod ssh_agent;

use std::path::Path;
use std::process::Output;

use cairn_sigsum::SigningKey;
use cairn_sigsum::proof::{SigsumProof, message_from_data};
use fake_log::FakeLog;
use ssh_agent::SshAgent;
use tokio::process::Command;

fn log_key() -> SigningKey {
    SigningKey::from_seed(&[0x4c; 32])
}
fn witness_key() -> SigningKey {
    SigningKey::from_seed(&[0x57; 32])
}

/// Runs `cairn` in `dir` while the test's runtime keeps serving the log.
async fn cairn(dir: &Path, args: &[&str]) -> Output {
    cairn_with_agent(dir, args, None).await
}

/// [`cairn`] with `SSH_AUTH_SOCK` pointing at `agent`, or removed so that
/// no test reaches a developer's own agent.
async fn cairn_with_agent(dir: &Path, args: &[&str], agent: Option<&SshAgent>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args)
        .current_dir(dir)
        .env("SIGSUM_POLICY_DIR", dir.join("no-policies"))
        .env_remove("RUST_LOG")
        .env_remove("SSH_AUTH_SOCK");
    if let Some(a) = agent {
        cmd.env("SSH_AUTH_SOCK", a.socket());
    }
    cmd.output().await.expect("run cairn")
}

/// Without a terminal (tests capture stderr) there must be no progress
/// bar: no carriage returns, no terminal escapes, no bar text.
fn assert_no_progress_bar(err: &str) {
    assert!(!err.contains('\r'), "progress redraw in {err:?}");
    assert!(!err.contains('\u{1b}'), "terminal escape in {err:?}");
    assert!(!err.contains("proofs"), "progress bar text in {err:?}");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
    let gen_out = cairn(dir, &["key", "generate", "-o", "submit.key"]).await;
    assert!(gen_out.status.success(), "{}", stderr(&gen_out));
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
    let out = cairn(dir, &submit).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
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
        let v = cairn(dir, &["verify", "-p", "policy", "-k", "submit.key.pub", f]).await;
        assert_eq!(v.status.code(), Some(0), "{f}: {}", stderr(&v));
    }

    // Re-running submits nothing: the proofs exist and verify.
    let before = log.counters();
    let again = cairn(dir, &submit).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("0 proof(s) written, 2 skipped, 0 failed"),
        "{}",
        stderr(&again)
    );
    assert_eq!(log.counters(), before);

    // A changed file no longer matches its proof, for verify and submit.
    std::fs::write(dir.join("a.txt"), "tampered\n").unwrap();
    let v = cairn(
        dir,
        &["verify", "-p", "policy", "-k", "submit.key.pub", "a.txt"],
    )
    .await;
    assert_eq!(v.status.code(), Some(1));
    assert!(stderr(&v).contains("leaf signature"), "{}", stderr(&v));
    let resubmit = cairn(dir, &submit).await;
    assert_eq!(resubmit.status.code(), Some(1));
    assert!(
        stderr(&resubmit).contains("remove it to resubmit"),
        "{}",
        stderr(&resubmit)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_hash_submission_verifies_in_raw_hash_mode() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_policy(dir, "policy", &log, &witness_key());
    assert!(
        cairn(dir, &["key", "generate", "-o", "k"])
            .await
            .status
            .success()
    );
    let message = message_from_data(b"some release tarball");
    std::fs::write(dir.join("digest"), format!("{}\n", hex::encode(message))).unwrap();
    let out = cairn(
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
    assert!(out.status.success(), "{}", stderr(&out));
    let ok = cairn(
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
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // The same proof, checked against the data the digest came from.
    std::fs::write(dir.join("tarball"), b"some release tarball").unwrap();
    let data = cairn(
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
    assert_eq!(data.status.code(), Some(0), "{}", stderr(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_fails_with_exit_1_when_the_quorum_is_never_met() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The policy's quorum witness never cosigns this log.
    write_policy(dir, "policy", &log, &SigningKey::from_seed(&[0x58; 32]));
    assert!(
        cairn(dir, &["key", "generate", "-o", "k"])
            .await
            .status
            .success()
    );
    std::fs::write(dir.join("f"), "data\n").unwrap();
    let out = cairn(
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
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
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
    let out = cairn(dir, &["submit", "-p", "policy", "-k", "not-a-key", "f"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("private key file not-a-key"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.join("no-url"),
        format!("log {}\nquorum none\n", log.public_key()),
    )
    .unwrap();
    assert!(
        cairn(dir, &["key", "generate", "-o", "k"])
            .await
            .status
            .success()
    );
    let out = cairn(dir, &["submit", "-p", "no-url", "-k", "k", "f"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no log with a URL"),
        "{}",
        stderr(&out)
    );
    assert_eq!(log.counters(), fake_log::Counters::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_signs_through_ssh_agent_when_given_a_public_key() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let agent = SshAgent::start();
    let generated = cairn(dir, &["key", "generate", "-o", "submit.key"]).await;
    assert!(generated.status.success(), "{}", stderr(&generated));
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
    std::fs::create_dir(dir.join("no-policies")).unwrap();
    write_policy(
        &dir.join("no-policies"),
        "agent-test.sigsum-policy",
        &log,
        &witness_key(),
    );
    std::fs::write(dir.join("a.txt"), "signed in the agent\n").unwrap();

    let submit = [
        "submit",
        "-k",
        "submit.key.pub",
        "--poll-interval",
        "50ms",
        "a.txt",
    ];
    let out = cairn_with_agent(dir, &submit, Some(&agent)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_progress_bar(&stderr(&out));
    let v = cairn(
        dir,
        &[
            "verify",
            "-P",
            "agent-test",
            "-k",
            "submit.key.pub",
            "a.txt",
        ],
    )
    .await;
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));

    // Without the agent the key cannot sign: a setup error, nothing sent.
    std::fs::write(dir.join("b.txt"), "never signed\n").unwrap();
    let before = log.size();
    let mut no_agent = submit;
    no_agent[5] = "b.txt";
    let out = cairn(dir, &no_agent).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ssh-agent"), "{}", stderr(&out));
    assert_eq!(log.size(), before);
}
