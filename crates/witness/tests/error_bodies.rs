//! Every error the witness router makes, its handler's and axum's own
//! (unknown paths, wrong methods, oversized or stalled bodies), is a
//! readable `text/plain` sentence, over a raw socket on loopback, both as
//! the standalone witness mounts it (at the root, beside other routes) and
//! as `cairnd dev` does (nested under `/witness`, merged with a router that
//! has its own fallback).

#[path = "../../frontend/tests/support/raw_http.rs"]
mod raw_http;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use cairn_sigsum::SigningKey;
use cairn_witness::{HttpLimits, Witness, WitnessConfig, WitnessState};
use raw_http::{RawResponse, exchange, request};
use tokio::net::TcpListener;

fn witness(dir: &std::path::Path) -> Arc<Witness> {
    let log = SigningKey::from_seed(&[0x4c; 32]).public_key();
    let config =
        WitnessConfig::for_sigsum_logs("example.org/w", SigningKey::from_seed(&[0x57; 32]), [&log]);
    Arc::new(Witness::new(config, WitnessState::open(dir).expect("state"), || 1u64).expect("setup"))
}

/// Serves `app` on 127.0.0.1 and returns its `host:port`; the server runs
/// until the test's runtime ends.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn expect(addr: &str, what: &str, bytes: Vec<u8>, status: u16) -> RawResponse {
    let response = exchange(addr, &bytes).await;
    assert_eq!(response.status, status, "{what}: {}", response.text());
    response.assert_readable(what);
    response
}

fn chunked(total: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(8192);
        body.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'a', n));
        body.extend_from_slice(b"\r\n");
        left -= n;
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_of_the_standalone_witness_has_a_readable_text_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = HttpLimits {
        request_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    // As `cairnd witness`: the witness at the root, operator routes beside.
    let app = cairn_witness::router_with_limits(witness(dir.path()), limits)
        .merge(Router::new().route("/livez", get(|| async { "ok\n" })));
    let addr = serve(app).await;

    for (what, target) in [
        ("unknown path", "/nothing"),
        ("root", "/"),
        ("trailing slash", "/add-checkpoint/"),
        ("percent-encoded endpoint", "/add%2Dcheckpoint"),
        ("non-UTF-8 percent-encoding", "/%ff%fe"),
        ("absolute-form target", "http://cairn.test/nothing"),
    ] {
        let r = expect(&addr, what, request("POST", target, &[], b"old 0\n\n"), 404).await;
        assert!(r.text().contains("add-checkpoint"), "{what}: {}", r.text());
    }
    expect(
        &addr,
        "CONNECT",
        request("CONNECT", "cairn.test:443", &[], b""),
        404,
    )
    .await;
    for method in ["GET", "BREW", "OPTIONS", "DELETE"] {
        let r = expect(
            &addr,
            method,
            request(method, "/add-checkpoint", &[], b""),
            405,
        )
        .await;
        assert_eq!(r.header("allow"), Some("POST"), "{method}");
    }
    let r = expect(
        &addr,
        "declared body over the limit",
        request("POST", "/add-checkpoint", &["Content-Length: 1000000"], b""),
        413,
    )
    .await;
    assert!(r.text().contains("65536"), "{}", r.text());
    expect(
        &addr,
        "chunked body over the limit",
        request(
            "POST",
            "/add-checkpoint",
            &["Transfer-Encoding: chunked"],
            &chunked(70_000),
        ),
        413,
    )
    .await;
    expect(
        &addr,
        "JSON body",
        request(
            "POST",
            "/add-checkpoint",
            &["Content-Type: application/json"],
            br#"{"old":0}"#,
        ),
        400,
    )
    .await;
    expect(
        &addr,
        "non-UTF-8 body",
        request("POST", "/add-checkpoint", &[], b"old 0\n\n\xff\xfe\n\n"),
        400,
    )
    .await;
    // Half the declared body, then silence: the request timeout answers.
    expect(
        &addr,
        "stalled body",
        request(
            "POST",
            "/add-checkpoint",
            &["Content-Length: 100"],
            b"old 0\n",
        ),
        503,
    )
    .await;
    // The routes beside the witness still answer.
    let livez = exchange(&addr, &request("GET", "/livez", &[], b"")).await;
    assert_eq!((livez.status, livez.text().as_str()), (200, "ok\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_under_a_prefix_the_witness_answers_its_own_paths_and_leaves_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    // As `cairnd dev`: nested, then merged with a router with a fallback
    // (the frontend's).
    let other = Router::new()
        .route("/dev/", get(|| async { "log\n" }))
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                "no such log or endpoint\n",
            )
        });
    let app = Router::new()
        .nest("/witness", cairn_witness::router(witness(dir.path())))
        .merge(other);
    let addr = serve(app).await;

    let r = expect(
        &addr,
        "unknown path under the witness",
        request("POST", "/witness/nothing", &[], b""),
        404,
    )
    .await;
    assert!(r.text().contains("add-checkpoint"), "{}", r.text());
    let r = expect(
        &addr,
        "wrong method",
        request("GET", "/witness/add-checkpoint", &[], b""),
        405,
    )
    .await;
    assert!(r.text().contains("POST"), "{}", r.text());
    expect(
        &addr,
        "malformed request",
        request("POST", "/witness/add-checkpoint", &[], b"old x\n\n"),
        400,
    )
    .await;
    // Outside the prefix the other router's fallback answers.
    let r = exchange(&addr, &request("GET", "/elsewhere", &[], b"")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "no such log or endpoint\n");
    let r = exchange(&addr, &request("GET", "/dev/", &[], b"")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "log\n"));
}
