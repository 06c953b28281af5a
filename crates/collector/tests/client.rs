//! `WitnessClient` against small HTTP servers on loopback that answer with
//! fixed statuses, headers and bodies.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use cairn_collector::{WitnessClient, WitnessError, add_checkpoint_url};
use tokio::net::TcpListener;

/// Serves `POST /w/add-checkpoint` with `answer` and returns the prefix URL.
async fn serve(answer: axum::response::Response) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answer = std::sync::Arc::new(std::sync::Mutex::new(Some(answer)));
    let app = axum::Router::new().route(
        "/w/add-checkpoint",
        axum::routing::post(move |body: String| {
            let answer = std::sync::Arc::clone(&answer);
            async move {
                // The request is the tlog-witness framing of what was sent.
                assert!(body.starts_with("old 3\nAQEB"), "{body:?}");
                assert!(body.ends_with("\n\nnote\n"), "{body:?}");
                answer
                    .lock()
                    .expect("lock")
                    .take()
                    .unwrap_or_else(|| StatusCode::GONE.into_response())
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}/w/"), task)
}

async fn call(answer: axum::response::Response) -> Result<Vec<u8>, WitnessError> {
    let (prefix, task) = serve(answer).await;
    let client = WitnessClient::new(Duration::from_secs(5)).expect("client");
    let url = add_checkpoint_url(&prefix).expect("url");
    let r = client.add_checkpoint(&url, 3, &[[1; 32]], b"note\n").await;
    task.abort();
    r
}

#[tokio::test]
async fn ok_returns_the_body() {
    let r = call((StatusCode::OK, "\u{2014} w abc\n").into_response()).await;
    assert_eq!(r.expect("200"), "\u{2014} w abc\n".as_bytes());
}

#[tokio::test]
async fn conflict_with_tlog_size_content_type_is_the_witness_size() {
    let r = call(
        (
            StatusCode::CONFLICT,
            [("content-type", "text/x.tlog.size")],
            "7\n",
        )
            .into_response(),
    )
    .await;
    assert!(
        matches!(r, Err(WitnessError::Conflict { size: 7 })),
        "{r:?}"
    );
}

#[tokio::test]
async fn conflict_without_the_size_content_type_or_number_is_a_status_error() {
    let r = call((StatusCode::CONFLICT, "7\n").into_response()).await;
    assert!(
        matches!(&r, Err(WitnessError::Status { status, .. }) if *status == StatusCode::CONFLICT),
        "{r:?}"
    );
    let r = call(
        (
            StatusCode::CONFLICT,
            [("content-type", "text/x.tlog.size")],
            "07\n",
        )
            .into_response(),
    )
    .await;
    assert!(matches!(r, Err(WitnessError::Status { .. })), "{r:?}");
}

#[tokio::test]
async fn other_statuses_carry_the_body_text() {
    let r = call(
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "consistency proof does not verify\n",
        )
            .into_response(),
    )
    .await;
    let e = r.expect_err("422");
    assert!(!e.is_retryable());
    match e {
        WitnessError::Status { status, body } => {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(body, "consistency proof does not verify");
        }
        other => panic!("{other:?}"),
    }
    let r = call((StatusCode::SERVICE_UNAVAILABLE, "busy").into_response()).await;
    assert!(r.expect_err("503").is_retryable());
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let huge = "x".repeat(cairn_collector::client::MAX_RESPONSE_BYTES + 1);
    let r = call((StatusCode::OK, huge).into_response()).await;
    assert!(matches!(r, Err(WitnessError::ResponseTooLarge)), "{r:?}");
}

#[tokio::test]
async fn an_unreachable_witness_is_a_retryable_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = WitnessClient::new(Duration::from_secs(5)).expect("client");
    let url = add_checkpoint_url(&format!("http://{addr}")).expect("url");
    let e = client
        .add_checkpoint(&url, 0, &[], b"note\n")
        .await
        .expect_err("refused");
    assert!(matches!(e, WitnessError::Transport(_)), "{e:?}");
    assert!(e.is_retryable());
}
