//! `LogClient` against real HTTP servers on 127.0.0.1: the fake log for
//! well-formed answers, and tiny misbehaving servers for the error paths.

mod fake_log;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use cairn_client::{AddLeafStatus, ClientError, LogClient, MAX_TREE_HEAD_BYTES, MalformedResponse};
use cairn_sigsum::api::AddLeafRequest;
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::{Signature, SigningKey};
use fake_log::FakeLog;

fn log_key() -> SigningKey {
    SigningKey::from_seed(&[0x4c; 32])
}

fn leaves(n: u8) -> Vec<Leaf> {
    let k = SigningKey::from_seed(&[0x53; 32]);
    (0..n).map(|i| Leaf::sign(&k, &[i; 32])).collect()
}

/// Serves `app` on an ephemeral loopback port until the runtime ends.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

#[tokio::test]
async fn add_leaf_reports_accepted_then_committed() {
    let log = FakeLog::start(log_key(), vec![]).await;
    let client = LogClient::new(&log.url()).unwrap();
    let req = AddLeafRequest::sign(&SigningKey::from_seed(&[1; 32]), &[7; 32]);
    assert_eq!(
        client.add_leaf(&req, None).await.unwrap(),
        AddLeafStatus::Accepted
    );
    assert_eq!(
        client.add_leaf(&req, None).await.unwrap(),
        AddLeafStatus::Committed
    );
    assert_eq!(
        client.add_leaf(&req, None).await.unwrap(),
        AddLeafStatus::Committed
    );
    assert_eq!(log.size(), 1);
}

#[tokio::test]
async fn add_leaf_with_a_bad_signature_is_a_403_with_the_logs_message() {
    let log = FakeLog::start(log_key(), vec![]).await;
    let client = LogClient::new(&log.url()).unwrap();
    let mut req = AddLeafRequest::sign(&SigningKey::from_seed(&[1; 32]), &[7; 32]);
    req.signature = Signature([0; 64]);
    let e = client.add_leaf(&req, None).await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert!(!e.is_retryable());
    assert!(e.to_string().starts_with("add-leaf: HTTP 403: "), "{e}");
    assert!(e.to_string().contains("signature"), "{e}");
}

#[tokio::test]
async fn tree_head_and_proofs_parse_and_verify_against_each_other() {
    let log = FakeLog::start(log_key(), vec![SigningKey::from_seed(&[0x57; 32])]).await;
    let all = leaves(7);
    log.append_direct(&all[..4]);
    let client = LogClient::new(&log.url()).unwrap();
    let old = client.get_tree_head().await.unwrap();
    assert_eq!(old.tree_head().size, 4);
    assert!(old.signed.verify(&log.public_key()));
    assert_eq!(old.cosignatures().len(), 1);

    log.append_direct(&all[4..]);
    let new = client.get_tree_head().await.unwrap();
    assert_eq!(new.tree_head().size, 7);

    for (i, leaf) in all.iter().enumerate() {
        let p = client
            .get_inclusion_proof(7, &leaf.leaf_hash())
            .await
            .unwrap();
        assert_eq!(p.leaf_index, i as u64);
        assert_eq!(p.verify(&leaf.leaf_hash(), new.tree_head()), Ok(()));
    }
    let c = client.get_consistency_proof(4, 7).await.unwrap();
    assert_eq!(c.verify(old.tree_head(), new.tree_head()), Ok(()));

    let got = client.get_leaves(2, 6).await.unwrap();
    assert_eq!(got, all[2..6].to_vec());
}

#[tokio::test]
async fn inclusion_proof_of_an_unknown_leaf_is_a_404() {
    let log = FakeLog::start(log_key(), vec![]).await;
    log.append_direct(&leaves(3));
    let client = LogClient::new(&log.url()).unwrap();
    let e = client
        .get_inclusion_proof(3, &[0xee; 32])
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn malformed_tree_head_is_reported_with_the_parse_error() {
    let url = serve(Router::new().route(
        "/get-tree-head",
        get(|| async { "size=01\nroot_hash=00\n" }),
    ))
    .await;
    let e = LogClient::new(&url)
        .unwrap()
        .get_tree_head()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            ClientError::Malformed {
                error: MalformedResponse::Parse(_),
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("leading zero"), "{e}");
}

#[tokio::test]
async fn oversized_response_stops_at_the_limit() {
    let url = serve(Router::new().route(
        "/get-tree-head",
        get(|| async { "x".repeat(MAX_TREE_HEAD_BYTES + 1) }),
    ))
    .await;
    let e = LogClient::new(&url)
        .unwrap()
        .get_tree_head()
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::ResponseTooLarge { .. }), "{e}");
}

#[tokio::test]
async fn server_errors_are_retryable_and_carry_the_body() {
    let url = serve(Router::new().route(
        "/add-leaf",
        post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "try later\n") }),
    ))
    .await;
    let req = AddLeafRequest::sign(&SigningKey::from_seed(&[1; 32]), &[7; 32]);
    let e = LogClient::new(&url)
        .unwrap()
        .add_leaf(&req, None)
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.to_string(), "add-leaf: HTTP 503: try later");
}

#[tokio::test]
async fn more_leaves_than_requested_is_malformed() {
    let line = leaves(1)[0].to_line();
    let two = format!("{line}{line}");
    let url = serve(Router::new().route(
        "/get-leaves/{*args}",
        get(move || {
            let body = two.clone();
            async move { body }
        }),
    ))
    .await;
    let e = LogClient::new(&url)
        .unwrap()
        .get_leaves(0, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Malformed {
                error: MalformedResponse::TooManyLeaves {
                    requested: 1,
                    received: 2
                },
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn refused_connection_is_a_retryable_transport_error() {
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let e = LogClient::new(&format!("http://{addr}/"))
        .unwrap()
        .get_tree_head()
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Transport { .. }), "{e}");
    assert!(e.is_retryable());
}
