//! add-leaf's `sigsum-token` check against a real UDP DNS server on
//! 127.0.0.1 (the client's fake, included by path): valid tokens pass,
//! DNS answers against the token are 400 naming the domain, failures to
//! get an answer are 503, the check comes before the leaf signature, and
//! verified tokens are not looked up again.

#[path = "../../client/tests/fake_dns/mod.rs"]
mod fake_dns;
mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_client::token::TokenVerifier;
use cairn_frontend::{
    ConfigError, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TOKEN_TIMEOUT, FrontendConfig, ShardFrontend,
    ShardLimits, router,
};
use cairn_sigsum::SigningKey;
use cairn_sigsum::token::{SubmitHeader, sign};
use fake_dns::{Entry, FakeDns};
use reqwest::StatusCode;
use support::{Harness, LOG_SEED, Options, request};

const DOMAIN: &str = "example.org";
const TXT_NAME: &str = "_sigsum_v1.example.org";

fn rate_limit_key() -> SigningKey {
    SigningKey::from_seed(&[0x52; 32])
}

/// The header a submitter owning `rate_limit_key()` sends to the harness log.
fn valid_header() -> String {
    SubmitHeader {
        domain: DOMAIN.to_owned(),
        token: sign(
            &rate_limit_key(),
            &SigningKey::from_seed(&LOG_SEED).public_key(),
        ),
    }
    .to_header_value()
}

/// A DNS server serving `zone` and a frontend verifying tokens with it.
async fn start(zone: Vec<(&str, Entry)>) -> (FakeDns, Harness) {
    let dns = FakeDns::start(
        zone.into_iter()
            .map(|(n, e)| (n.to_owned(), e))
            .collect::<HashMap<_, _>>(),
    );
    let h = checking_with(dns.addr()).await;
    (dns, h)
}

/// A frontend verifying tokens with the name server at `addr`, with the
/// default time limits.
async fn checking_with(addr: SocketAddr) -> Harness {
    let verifier = TokenVerifier::with_name_server(addr).unwrap();
    Harness::start(Options {
        config: FrontendConfig {
            token_verifier: Some(Arc::new(verifier)),
            ..FrontendConfig::default()
        },
        ..Options::default()
    })
    .await
}

fn publishing_the_submitter_key() -> Vec<(&'static str, Entry)> {
    vec![(
        TXT_NAME,
        Entry::txt(&[rate_limit_key().public_key().to_hex()]),
    )]
}

async fn post(h: &Harness, token: &str, body: String) -> reqwest::Response {
    h.http
        .post(format!("{}add-leaf", h.base))
        .header("sigsum-token", token)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn body_of(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_vouched_for_by_the_domain_is_accepted() {
    let (dns, h) = start(publishing_the_submitter_key()).await;
    let response = post(&h, &valid_header(), request(1).0.to_ascii()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(dns.queries(), vec![TXT_NAME.to_owned()]);
    assert_eq!(h.log.add_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_a_domain_publishing_another_key_is_400_naming_the_domain() {
    let other = SigningKey::from_seed(&[0x99; 32]).public_key().to_hex();
    let (_dns, h) = start(vec![(TXT_NAME, Entry::txt(&[other]))]).await;
    let body = body_of(
        post(&h, &valid_header(), request(1).0.to_ascii()).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(body.contains(DOMAIN), "{body}");
    assert!(body.contains("verifies the token"), "{body}");
    assert_eq!(h.log.add_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_without_records_is_400_naming_the_lookup() {
    let (_dns, h) = start(vec![]).await;
    let body = body_of(
        post(&h, &valid_header(), request(1).0.to_ascii()).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        body.contains("no TXT record at _sigsum_v1.example.org"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_checked_before_the_leaf_signature() {
    let (_dns, h) = start(vec![(TXT_NAME, Entry::txt(&["not a key"]))]).await;
    let (mut bad_leaf, _) = request(1);
    bad_leaf.message[0] ^= 1;
    // Both wrong: the token's 400 wins over the signature's 403.
    body_of(
        post(&h, &valid_header(), bad_leaf.to_ascii()).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let (_dns, h) = start(publishing_the_submitter_key()).await;
    body_of(
        post(&h, &valid_header(), bad_leaf.to_ascii()).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_name_server_is_503_so_the_client_retries() {
    let (_dns, h) = start(vec![(TXT_NAME, Entry::ServFail)]).await;
    let response = post(&h, &valid_header(), request(1).0.to_ascii()).await;
    assert!(response.headers().contains_key("retry-after"));
    let body = body_of(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body.contains(DOMAIN), "{body}");
    assert_eq!(h.log.add_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_name_server_is_503_with_retry_after_before_the_request_timeout() {
    // Bound but never read: queries vanish without an answer or an ICMP
    // error, as with a name server that has died behind a firewall.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let h = checking_with(silent.local_addr().unwrap()).await;
    // The token timeout is what must answer, not the request timeout
    // (504) nor the verifier's own, longer limit.
    assert!(DEFAULT_TOKEN_TIMEOUT < DEFAULT_REQUEST_TIMEOUT);
    let response = post(&h, &valid_header(), request(1).0.to_ascii()).await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = body_of(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body.contains(DOMAIN), "{body}");
    assert!(body.contains("timed out"), "{body}");
    assert!(body.contains("retry later"), "{body}");
    assert_eq!(h.log.add_calls.load(Ordering::SeqCst), 0);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_timeout_that_leaves_no_room_for_the_submit_wait_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shard = || ShardFrontend {
        name: "dev".to_owned(),
        log_key: SigningKey::from_seed(&LOG_SEED).public_key(),
        sequencer: cairn_proto::SequencerPool::new(["http://127.0.0.1:1"], Default::default())
            .unwrap(),
        tiles: cairn_storage::TileStore::local(dir.path(), "dev").unwrap(),
        limits: ShardLimits::default(),
    };
    let verifier =
        Arc::new(TokenVerifier::with_name_server("127.0.0.1:53".parse().unwrap()).unwrap());
    // 3 s submit wait + 2.5 s token check does not fit in 5 s.
    let tight = FrontendConfig {
        request_timeout: Duration::from_secs(5),
        token_verifier: Some(Arc::clone(&verifier)),
        ..FrontendConfig::default()
    };
    assert!(matches!(
        router(vec![shard()], tight.clone()),
        Err(ConfigError::BadSetting {
            field: "token_timeout",
            ..
        })
    ));
    // Without a verifier the token timeout is never used.
    let unchecked = FrontendConfig {
        token_verifier: None,
        ..tight.clone()
    };
    assert!(router(vec![shard()], unchecked).is_ok());
    let shorter = FrontendConfig {
        token_timeout: Duration::from_secs(1),
        ..tight
    };
    assert!(router(vec![shard()], shorter).is_ok());
    let zero = FrontendConfig {
        token_timeout: Duration::ZERO,
        ..FrontendConfig::default()
    };
    assert!(router(vec![shard()], zero).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_header_is_400_without_a_lookup() {
    let (dns, h) = start(publishing_the_submitter_key()).await;
    let body = body_of(
        post(&h, "example.org nothex", request(1).0.to_ascii()).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(body.contains("sigsum-token"), "{body}");
    // A domain no DNS name can have: the same 400 as without checking.
    let token = valid_header().split_once(' ').unwrap().1.to_owned();
    let body = body_of(
        post(&h, &format!("a..org {token}"), request(2).0.to_ascii()).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(body.contains("label 2 is empty"), "{body}");
    assert!(dns.queries().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_token_is_not_looked_up_again_but_another_token_is_checked() {
    let (dns, h) = start(publishing_the_submitter_key()).await;
    let first = post(&h, &valid_header(), request(1).0.to_ascii()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(dns.queries().len(), 1);
    // With the name server gone, only a cache can vouch for the token.
    // (The resolver caches the TXT answer too; the frontend's own cache is
    // what the unit tests in `token.rs` pin down.)
    drop(dns);
    let second = post(&h, &valid_header(), request(2).0.to_ascii()).await;
    assert_eq!(second.status(), StatusCode::OK);

    // Same domain, a token signed by another key: not taken from the
    // cache of the first token.
    let forged = SubmitHeader {
        domain: DOMAIN.to_owned(),
        token: sign(
            &SigningKey::from_seed(&[0x99; 32]),
            &SigningKey::from_seed(&LOG_SEED).public_key(),
        ),
    }
    .to_header_value();
    let body = body_of(
        post(&h, &forged, request(3).0.to_ascii()).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(body.contains(DOMAIN), "{body}");
}
