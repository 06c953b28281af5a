//! `TokenVerifier` against a real UDP DNS server on 127.0.0.1: which
//! records vouch for a token, the `_sigsum_v0` fallback on NXDOMAIN only,
//! the ten-record limit, and how failures are classified.

mod fake_dns;

use std::collections::HashMap;
use std::time::Duration;

use cairn_client::token::{TokenError, TokenVerifier};
use cairn_sigsum::token::{SubmitHeader, sign};
use cairn_sigsum::{PublicKey, SigningKey};
use fake_dns::{Entry, FakeDns};

fn rate_limit_key() -> SigningKey {
    SigningKey::from_seed(&[0x52; 32])
}
fn log_key() -> PublicKey {
    SigningKey::from_seed(&[0x4c; 32]).public_key()
}
fn other_key_hex() -> String {
    SigningKey::from_seed(&[0x99; 32]).public_key().to_hex()
}
fn good_hex() -> String {
    rate_limit_key().public_key().to_hex()
}

fn header(domain: &str) -> SubmitHeader {
    SubmitHeader {
        domain: domain.to_owned(),
        token: sign(&rate_limit_key(), &log_key()),
    }
}

fn dns(entries: Vec<(&str, Entry)>) -> (FakeDns, TokenVerifier) {
    let zone: HashMap<String, Entry> = entries
        .into_iter()
        .map(|(n, e)| (n.to_owned(), e))
        .collect();
    let server = FakeDns::start(zone);
    let verifier = TokenVerifier::with_name_server(server.addr()).unwrap();
    (server, verifier)
}

#[tokio::test]
async fn a_key_published_at_sigsum_v1_verifies_the_token() {
    let (server, v) = dns(vec![(
        "_sigsum_v1.example.org",
        Entry::txt(&[other_key_hex(), good_hex().to_uppercase()]),
    )]);
    let ok = v.verify(&log_key(), &header("example.org")).await.unwrap();
    assert_eq!(ok.name, "_sigsum_v1.example.org.");
    assert_eq!(server.queries(), ["_sigsum_v1.example.org"]);
}

#[tokio::test]
async fn a_token_for_another_log_is_refused() {
    let (_server, v) = dns(vec![("_sigsum_v1.example.org", Entry::txt(&[good_hex()]))]);
    let other_log = SigningKey::from_seed(&[0x11; 32]).public_key();
    let e = v
        .verify(&other_log, &header("example.org"))
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::SignatureMismatch { .. }), "{e}");
    assert!(e.is_rejection() && !e.is_retryable());
}

#[tokio::test]
async fn a_domain_publishing_another_key_is_a_signature_mismatch() {
    let (_server, v) = dns(vec![(
        "_sigsum_v1.wrong.example",
        Entry::txt(&[other_key_hex()]),
    )]);
    let e = v
        .verify(&log_key(), &header("wrong.example"))
        .await
        .unwrap_err();
    let TokenError::SignatureMismatch { name, rejected } = &e else {
        panic!("{e}");
    };
    assert_eq!(name, "_sigsum_v1.wrong.example.");
    assert_eq!((rejected.tried, rejected.malformed), (1, 0));
    assert!(e.to_string().contains("1 key(s) tried"), "{e}");
}

#[tokio::test]
async fn sigsum_v0_is_consulted_when_sigsum_v1_does_not_exist() {
    let (server, v) = dns(vec![("_sigsum_v0.old.example", Entry::txt(&[good_hex()]))]);
    let ok = v.verify(&log_key(), &header("old.example")).await.unwrap();
    assert_eq!(ok.name, "_sigsum_v0.old.example.");
    assert_eq!(
        server.queries(),
        ["_sigsum_v1.old.example", "_sigsum_v0.old.example"]
    );
}

#[tokio::test]
async fn sigsum_v0_is_ignored_when_sigsum_v1_exists_without_records() {
    let (server, v) = dns(vec![
        ("_sigsum_v1.both.example", Entry::Txt(vec![])),
        ("_sigsum_v0.both.example", Entry::txt(&[good_hex()])),
    ]);
    let e = v
        .verify(&log_key(), &header("both.example"))
        .await
        .unwrap_err();
    let TokenError::NoRecord { names } = &e else {
        panic!("{e}");
    };
    assert_eq!(names, &["_sigsum_v1.both.example."]);
    assert_eq!(server.queries(), ["_sigsum_v1.both.example"]);
}

#[tokio::test]
async fn a_domain_without_either_record_has_no_record() {
    let (_server, v) = dns(vec![]);
    let e = v
        .verify(&log_key(), &header("nothing.example"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("_sigsum_v1.nothing.example. or _sigsum_v0.nothing.example."),
        "{e}"
    );
    assert!(e.is_rejection());
}

#[tokio::test]
async fn only_the_first_ten_records_are_tried() {
    let mut records: Vec<String> = (0..12).map(|_| other_key_hex()).collect();
    records[10] = good_hex();
    let (_server, v) = dns(vec![
        ("_sigsum_v1.many.example", Entry::txt(&records)),
        ("_sigsum_v1.tenth.example", {
            records.swap(9, 10);
            Entry::txt(&records)
        }),
    ]);
    let e = v
        .verify(&log_key(), &header("many.example"))
        .await
        .unwrap_err();
    let TokenError::SignatureMismatch { rejected, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!((rejected.tried, rejected.ignored), (10, 2));
    assert!(
        e.to_string().contains("2 record(s) beyond the first 10"),
        "{e}"
    );
    v.verify(&log_key(), &header("tenth.example"))
        .await
        .unwrap();
}

#[tokio::test]
async fn records_that_are_not_keys_are_malformed() {
    let (_server, v) = dns(vec![(
        "_sigsum_v1.junk.example",
        Entry::txt(&["v=spf1 -all", &good_hex()[..63], "zz"]),
    )]);
    let e = v
        .verify(&log_key(), &header("junk.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::MalformedRecords {
                tried: 3,
                ignored: 0,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_key_split_over_character_strings_is_joined() {
    let hex = good_hex();
    let (first, second) = hex.split_at(20);
    let (_server, v) = dns(vec![(
        "_sigsum_v1.split.example",
        Entry::Txt(vec![vec![first.to_owned(), second.to_owned()]]),
    )]);
    v.verify(&log_key(), &header("split.example"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_name_server_is_a_retryable_dns_error() {
    let (_server, v) = dns(vec![("_sigsum_v1.broken.example", Entry::ServFail)]);
    let e = v
        .verify(&log_key(), &header("broken.example"))
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Dns { .. }), "{e}");
    assert!(e.is_retryable() && !e.is_rejection(), "{e}");
}

#[tokio::test]
async fn a_silent_name_server_times_out() {
    // Bound but never read: queries go unanswered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let v = TokenVerifier::with_name_server(silent.local_addr().unwrap())
        .unwrap()
        .with_verify_timeout(Duration::from_millis(300));
    let e = v
        .verify(&log_key(), &header("example.org"))
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Timeout { .. }), "{e}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn an_invalid_domain_is_refused_before_any_lookup() {
    let (server, v) = dns(vec![]);
    let e = v.verify(&log_key(), &header("a..b")).await.unwrap_err();
    assert!(matches!(e, TokenError::InvalidDomain { .. }), "{e}");
    assert!(server.queries().is_empty());
}
