//! `cairnd dev --token-dns-server ADDR`: add-leaf verifies `sigsum-token`
//! headers against the submitter domain's `_sigsum_v1` TXT records, served
//! here by a real DNS server on loopback.

mod support;

#[path = "../../client/tests/fake_dns/mod.rs"]
mod fake_dns;

use std::collections::HashMap;
use std::sync::Arc;

use cairn_client::{SubmitConfig, Submitter, TokenConfig};
use cairn_sigsum::SigningKey;
use cairn_sigsum::api::AddLeafRequest;
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::token::{self, HEADER_NAME, SubmitHeader};
use fake_dns::{Entry, FakeDns};
use support::{Cairnd, free_port};

const DOMAIN: &str = "example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_log_accepts_tokens_its_dns_vouches_for_and_refuses_others() {
    let rate_key = SigningKey::from_seed(&[0x72; 32]);
    let dns = FakeDns::start(HashMap::from([(
        token::dns_txt_name(DOMAIN).trim_end_matches('.').to_owned(),
        Entry::txt(&[token::dns_txt_value(&rate_key.public_key())]),
    )]));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dns_addr = dns.addr().to_string();
    let mut log = Cairnd::start_with(
        &tmp.path().join("data"),
        free_port(),
        &["--token-dns-server".as_ref(), dns_addr.as_ref()],
        "warn",
        std::process::Stdio::inherit(),
    );
    log.wait_ready().await;
    let policy = log.policy();
    let log_key = log.log_key();

    // A submitter with a token the domain vouches for gets its proof.
    let submitter_key = SigningKey::from_seed(&[0x73; 32]);
    let submitter = Submitter::new(
        policy.clone(),
        submitter_key.clone(),
        SubmitConfig {
            token: Some(TokenConfig {
                domain: DOMAIN.to_owned(),
                key: Arc::new(rate_key),
            }),
            ..SubmitConfig::default()
        },
    )
    .expect("submitter");
    let message = cairn_sigsum::crypto::hash(b"tokened release\n");
    let proof = submitter
        .submit_and_prove(&[message])
        .await
        .pop()
        .expect("one result")
        .expect("proof with a valid token");
    proof
        .verify(&message, &[submitter_key.public_key()], &policy)
        .expect("verifies");
    assert!(
        dns.queries()
            .iter()
            .any(|q| q.contains("_sigsum_v1.example.org")),
        "the token was looked up: {:?}",
        dns.queries()
    );

    // A token signed by a key the domain does not publish: 400, naming the
    // domain, and the leaf is not logged.
    let other = SigningKey::from_seed(&[0x74; 32]);
    let header = SubmitHeader {
        domain: DOMAIN.to_owned(),
        token: token::sign(&other, &log_key),
    };
    let message = cairn_sigsum::crypto::hash(b"untokened release\n");
    let leaf = Leaf::sign(&submitter_key, &message);
    let request = AddLeafRequest {
        message,
        signature: leaf.signature,
        public_key: submitter_key.public_key(),
    };
    let response = reqwest::Client::new()
        .post(format!("{}add-leaf", log.base_url()))
        .header(HEADER_NAME, header.to_header_value())
        .body(request.to_ascii())
        .send()
        .await
        .expect("add-leaf");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let body = response.text().await.expect("body");
    assert!(body.contains(DOMAIN), "{body}");
    log.stop();
}
