//! `Submitter` against a fake Sigsum log over real HTTP on 127.0.0.1.

mod fake_log;

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{FailureReason, Stage, SubmitConfig, Submitter, TokenConfig};
use cairn_sigsum::policy::Policy;
use cairn_sigsum::proof::{SigsumProof, message_from_data};
use cairn_sigsum::token;
use cairn_sigsum::{Hash, SigningKey};
use fake_log::FakeLog;

fn log_key() -> SigningKey {
    SigningKey::from_seed(&[0x4c; 32])
}
fn witness_key() -> SigningKey {
    SigningKey::from_seed(&[0x57; 32])
}
fn other_witness_key() -> SigningKey {
    SigningKey::from_seed(&[0x58; 32])
}
fn submitter_key() -> SigningKey {
    SigningKey::from_seed(&[0x53; 32])
}

/// A policy with one log (with URL) and one witness that is the quorum.
fn policy(log: &FakeLog, witness: &SigningKey) -> Policy {
    let text = format!(
        "log {} {}\nwitness W {}\nquorum W\n",
        log.public_key(),
        log.url(),
        witness.public_key()
    );
    Policy::parse(text.as_bytes()).expect("test policy")
}

/// Fast polling; generous deadlines that only a broken log reaches.
fn config() -> SubmitConfig {
    SubmitConfig {
        poll_interval: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        per_log_timeout: Duration::from_secs(20),
        timeout: Duration::from_secs(30),
        ..SubmitConfig::default()
    }
}

fn messages(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| message_from_data(format!("artifact {i}\n").as_bytes()))
        .collect()
}

fn expect_proofs(results: Vec<Result<SigsumProof, cairn_client::SubmitError>>) -> Vec<SigsumProof> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("submission failed: {e}")))
        .collect()
}

#[tokio::test]
async fn first_leaf_of_a_log_gets_a_size_1_proof_that_verifies() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let pol = policy(&log, &witness_key());
    let submitter = Submitter::new(pol.clone(), submitter_key(), config()).unwrap();
    let m = messages(1);
    let proofs = expect_proofs(submitter.submit_and_prove(&m).await);
    let proof = &proofs[0];
    assert_eq!(proof.tree_head.tree_head().size, 1);
    assert!(proof.inclusion.path.is_empty());
    assert_eq!(
        proof.verify(&m[0], &[submitter_key().public_key()], &pol),
        Ok(())
    );
    // The proof file round-trips and still verifies.
    let reparsed = SigsumProof::parse(proof.to_ascii().as_bytes()).unwrap();
    assert_eq!(
        reparsed.verify(&m[0], &[submitter_key().public_key()], &pol),
        Ok(())
    );
    // The log answered 202 first, so the submitter had to resend.
    let c = log.counters();
    assert_eq!((c.accepted, c.committed, c.rejected), (1, 1, 0));
}

#[tokio::test]
async fn many_messages_each_get_a_verifying_inclusion_proof() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let pol = policy(&log, &witness_key());
    let submitter = Submitter::new(pol.clone(), submitter_key(), config()).unwrap();
    let m = messages(12);
    let proofs = expect_proofs(submitter.submit_and_prove(&m).await);
    assert_eq!(proofs.len(), 12);
    let mut indices: Vec<u64> = proofs.iter().map(|p| p.inclusion.leaf_index).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 12, "each message has its own leaf");
    for (message, proof) in m.iter().zip(&proofs) {
        assert_eq!(
            proof.verify(message, &[submitter_key().public_key()], &pol),
            Ok(())
        );
        // And not for any other message.
        assert!(
            proof
                .verify(&[0; 32], &[submitter_key().public_key()], &pol)
                .is_err()
        );
    }
    assert_eq!(log.size(), 12);
}

#[tokio::test]
async fn resubmitting_a_logged_message_returns_a_proof_without_a_new_leaf() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let pol = policy(&log, &witness_key());
    let submitter = Submitter::new(pol, submitter_key(), config()).unwrap();
    let m = messages(2);
    expect_proofs(submitter.submit_and_prove(&m).await);
    let again = expect_proofs(submitter.submit_and_prove(&m[..1]).await);
    assert_eq!(log.size(), 2);
    assert_eq!(again[0].tree_head.tree_head().size, 2);
}

#[tokio::test]
async fn head_without_the_policy_quorum_makes_submit_time_out_with_a_clear_error() {
    // The log's heads are cosigned by a witness the policy does not count.
    let log = FakeLog::start(log_key(), vec![other_witness_key()]).await;
    let pol = policy(&log, &witness_key());
    let cfg = SubmitConfig {
        per_log_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        ..config()
    };
    let submitter = Submitter::new(pol, submitter_key(), cfg).unwrap();
    let results = submitter.submit_and_prove(&messages(1)).await;
    let err = results.into_iter().next().unwrap().unwrap_err();
    assert_eq!(err.failures.len(), 1);
    let f = &err.failures[0];
    assert_eq!(f.log_url, log.url());
    match &f.reason {
        FailureReason::Timeout { stage, last, .. } => {
            assert_eq!(*stage, Stage::Quorum);
            let last = last.as_deref().unwrap_or_default();
            assert!(last.contains("quorum not satisfied"), "{last}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("waiting for a tree head that satisfies the policy quorum"),
        "{msg}"
    );
    // The leaf itself was logged; only the cosignatures were missing.
    assert_eq!(log.size(), 1);
}

#[tokio::test]
async fn log_whose_signature_does_not_match_the_policy_key_is_skipped_for_the_next() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    // Listed first: the same URL under another key, so its heads never
    // verify; then the real entry.
    let wrong = SigningKey::from_seed(&[0x99; 32]).public_key();
    let text = format!(
        "log {wrong} {url}\nlog {} {url}\nwitness W {}\nquorum W\n",
        log.public_key(),
        witness_key().public_key(),
        url = log.url()
    );
    let pol = Policy::parse(text.as_bytes()).unwrap();
    let submitter = Submitter::new(pol.clone(), submitter_key(), config()).unwrap();
    let m = messages(1);
    let proofs = expect_proofs(submitter.submit_and_prove(&m).await);
    assert_eq!(proofs[0].log_key_hash, log.public_key().key_hash());
    assert_eq!(
        proofs[0].verify(&m[0], &[submitter_key().public_key()], &pol),
        Ok(())
    );
}

#[tokio::test]
async fn only_log_with_a_wrong_key_fails_with_a_bad_log_signature() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let wrong = SigningKey::from_seed(&[0x99; 32]).public_key();
    let text = format!("log {wrong} {}\nquorum none\n", log.url());
    let pol = Policy::parse(text.as_bytes()).unwrap();
    let submitter = Submitter::new(pol, submitter_key(), config()).unwrap();
    let err = submitter
        .submit_and_prove(&messages(1))
        .await
        .into_iter()
        .next()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err.failures.as_slice(),
            [f] if matches!(f.reason, FailureReason::BadLogSignature { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_log_times_out_and_the_error_names_the_transport_failure() {
    // A port that was just free: connections are refused.
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let text = format!(
        "log {} http://{addr}/\nquorum none\n",
        log_key().public_key()
    );
    let pol = Policy::parse(text.as_bytes()).unwrap();
    let cfg = SubmitConfig {
        per_log_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        ..config()
    };
    let submitter = Submitter::new(pol, submitter_key(), cfg).unwrap();
    let err = submitter
        .submit_and_prove(&messages(1))
        .await
        .into_iter()
        .next()
        .unwrap()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("waiting for add-leaf"), "{msg}");
    assert!(msg.contains("add-leaf: error sending request"), "{msg}");
}

#[tokio::test]
async fn submit_token_header_is_sent_and_signs_the_logs_key() {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    let pol = policy(&log, &witness_key());
    let rate_limit = SigningKey::from_seed(&[0x52; 32]);
    let cfg = SubmitConfig {
        token: Some(TokenConfig {
            domain: "example.org".into(),
            key: Arc::new(rate_limit.clone()),
        }),
        ..config()
    };
    let submitter = Submitter::new(pol, submitter_key(), cfg).unwrap();
    expect_proofs(submitter.submit_and_prove(&messages(1)).await);
    let tokens = log.tokens();
    assert!(!tokens.is_empty());
    for t in tokens {
        assert_eq!(t.domain, "example.org");
        assert!(token::verify(
            &rate_limit.public_key(),
            &log.public_key(),
            &t.token
        ));
    }
}
