//! The collector's client reaches a witness served directly over HTTPS
//! (no bastion) when it trusts the witness's private CA, and refuses it
//! when it does not.

mod common;

use std::sync::Arc;

use cairn_collector::{WitnessClient, WitnessError};
use common::{Pki, Scenario, add_checkpoint, server_tls};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves `app` over TLS (h2 or HTTP/1.1) on 127.0.0.1 until aborted.
async fn serve_https(pki: &Pki, app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(Arc::new(server_tls(pki, &[b"h2", b"http/1.1"])));
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                // A client that rejects our certificate fails here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    (format!("https://{addr}/witness"), task)
}

#[tokio::test]
async fn the_collector_client_reaches_an_https_witness_with_a_private_ca() {
    let pki = Pki::new();
    let scenario = Scenario::load();
    let key = scenario.witness_key();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = axum::Router::new().nest(
        "/witness",
        cairn_witness::router(scenario.witness(dir.path())),
    );
    let (prefix, task) = serve_https(&pki, app).await;

    add_checkpoint(
        &pki.witness_client(),
        &prefix,
        &key.public_key(),
        &scenario.request(0),
    )
    .await
    .expect("cosigned over HTTPS");

    // Without the CA the same witness is not trusted.
    let untrusting = WitnessClient::new(std::time::Duration::from_secs(10)).expect("client");
    let r = add_checkpoint(
        &untrusting,
        &prefix,
        &key.public_key(),
        &scenario.request(1),
    )
    .await;
    assert!(matches!(r, Err(WitnessError::Transport(_))), "{r:?}");
    task.abort();
}
