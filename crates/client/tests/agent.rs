//! Signing through a real OpenSSH ssh-agent: known answers, a key the
//! agent lacks, and a whole submission (leaves and token) signed there.

mod fake_log;
mod ssh_agent;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::Signer as _;
use cairn_client::agent::{self, DEFAULT_TIMEOUT};
use cairn_client::{AgentError, AgentSigner, SubmitConfig, Submitter, TokenConfig};
use cairn_sigsum::key::write_openssh_private_key;
use cairn_sigsum::leaf;
use cairn_sigsum::policy::Policy;
use cairn_sigsum::proof::message_from_data;
use cairn_sigsum::{SigningKey, token};
use fake_log::FakeLog;
use ssh_agent::SshAgent;

/// The derived vectors' submitter key (seed 53…).
fn submitter_key() -> SigningKey {
    SigningKey::from_seed(&[0x53; 32])
}

/// Writes `key` as `cairn key generate` does (mode 0600, which ssh-add
/// insists on).
fn write_private_key(dir: &Path, name: &str, key: &SigningKey) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, write_openssh_private_key(key, 0x0102_0304)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn agent_with(keys: &[&SigningKey]) -> (SshAgent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let agent = SshAgent::start();
    for (i, k) in keys.iter().enumerate() {
        agent.add(&write_private_key(dir.path(), &format!("k{i}"), k));
    }
    (agent, dir)
}

#[test]
fn agent_signs_the_leaf_of_the_derived_vectors_byte_exact() {
    let (agent, _dir) = agent_with(&[&submitter_key()]);
    let signer = AgentSigner::connect(
        agent.socket().to_owned(),
        submitter_key().public_key(),
        DEFAULT_TIMEOUT,
    )
    .unwrap();
    let v = cairn_testvectors::json("derived/sigsum-v1-deterministic.json");
    let leaf0 = &v["leaves"][0];
    let checksum = cairn_testvectors::unhex32(leaf0["checksum_hex"].as_str().unwrap());
    let signed = leaf::signed_bytes(&checksum);
    assert_eq!(
        hex::encode(&signed),
        leaf0["signed_bytes_hex"].as_str().unwrap()
    );
    let sig = signer.sign(&signed).unwrap();
    assert_eq!(sig.to_hex(), leaf0["signature_hex"].as_str().unwrap());
}

#[test]
fn a_key_the_agent_does_not_hold_is_named_in_the_error() {
    let (agent, _dir) = agent_with(&[&SigningKey::from_seed(&[1; 32])]);
    let missing = submitter_key().public_key();
    let listed = agent::list_keys(agent.socket(), DEFAULT_TIMEOUT).unwrap();
    assert_eq!(listed, vec![SigningKey::from_seed(&[1; 32]).public_key()]);
    let e = AgentSigner::connect(agent.socket().to_owned(), missing, DEFAULT_TIMEOUT).unwrap_err();
    assert!(matches!(e, AgentError::KeyNotInAgent { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&agent::fingerprint(&missing)), "{msg}");
    assert!(msg.contains("ssh-add"), "{msg}");
}

#[test]
fn a_dead_agent_socket_is_a_connect_error() {
    let agent = SshAgent::start();
    let socket = agent.socket().to_owned();
    drop(agent);
    let e =
        AgentSigner::connect(socket, submitter_key().public_key(), DEFAULT_TIMEOUT).unwrap_err();
    assert!(matches!(e, AgentError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn submitter_signs_leaves_and_tokens_through_the_agent() {
    let log_key = SigningKey::from_seed(&[0x4c; 32]);
    let witness = SigningKey::from_seed(&[0x57; 32]);
    let rate_limit = SigningKey::from_seed(&[0x52; 32]);
    let log = FakeLog::start(log_key, vec![witness.clone()]).await;
    let policy = Policy::parse(
        format!(
            "log {} {}\nwitness W {}\nquorum W\n",
            log.public_key(),
            log.url(),
            witness.public_key()
        )
        .as_bytes(),
    )
    .unwrap();
    let (agent, _dir) = agent_with(&[&submitter_key(), &rate_limit]);
    let socket = agent.socket().to_owned();
    let leaf_signer = AgentSigner::connect(
        socket.clone(),
        submitter_key().public_key(),
        DEFAULT_TIMEOUT,
    )
    .unwrap();
    let token_signer =
        AgentSigner::connect(socket, rate_limit.public_key(), DEFAULT_TIMEOUT).unwrap();
    let config = SubmitConfig {
        poll_interval: Duration::from_millis(50),
        token: Some(TokenConfig {
            domain: "example.org".into(),
            key: Arc::new(token_signer),
        }),
        ..SubmitConfig::default()
    };
    let submitter = Submitter::new(policy.clone(), leaf_signer, config).unwrap();
    let messages: Vec<_> = (0..3)
        .map(|i| message_from_data(format!("agent artifact {i}\n").as_bytes()))
        .collect();
    let results = submitter.submit_and_prove(&messages).await;
    for (m, r) in messages.iter().zip(results) {
        let proof = r.unwrap_or_else(|e| panic!("submission failed: {e}"));
        proof
            .verify(m, &[submitter_key().public_key()], &policy)
            .unwrap();
    }
    let tokens = log.tokens();
    assert!(!tokens.is_empty());
    for t in tokens {
        assert!(token::verify(
            &rate_limit.public_key(),
            &log.public_key(),
            &t.token
        ));
    }
}
