//! A bastion and witness backends on loopback: the collector's client
//! reaches a real `cairn_witness` router through `https://<bastion>/<key
//! hash>/`, the spec's statuses for unroutable hashes, reconnects, backend
//! replacement, and refusal of keys not on the allow-list.

mod common;

use std::collections::HashSet;
use std::future::pending;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use cairn_bastion::{
    Backend, BackendConfig, BackendError, Bastion, BastionConfig, ConnectionEnd, Limits,
    serve_backend,
};
use cairn_collector::WitnessError;
use cairn_sigsum::{KeyHash, PublicKey, SigningKey};
use common::{Pki, Scenario, add_checkpoint};
use reqwest::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on waiting for a backend to (re)connect; only reached on failure.
const CONNECT_DEADLINE: Duration = Duration::from_secs(20);

struct RunningBastion {
    addr: SocketAddr,
    bastion: Bastion,
    /// Taken by [`RunningBastion::stop`].
    stop: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl RunningBastion {
    /// Starts a bastion on `addr` (port 0 for any) with `pki`'s certificate.
    async fn start(
        pki: &Pki,
        allowed: Option<HashSet<KeyHash>>,
        limits: Limits,
        addr: &str,
    ) -> RunningBastion {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bastion = Bastion::new(BastionConfig {
            certificate_chain: pki.chain.clone(),
            private_key: pki.key.clone_key(),
            allowed_backends: allowed,
            limits,
        })
        .expect("bastion");
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = bastion.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        RunningBastion {
            addr,
            bastion,
            stop: Some((stop, task)),
        }
    }

    /// The submission prefix of the backend with `hash`.
    fn prefix(&self, hash: &KeyHash) -> String {
        format!("https://{}/{}", self.addr, hash.to_hex())
    }

    /// Waits until the backend with `hash` is connected.
    async fn wait_for(&self, hash: &KeyHash) {
        let start = Instant::now();
        while !self.bastion.connected_backends().contains(hash) {
            assert!(
                start.elapsed() < CONNECT_DEADLINE,
                "backend {hash} never connected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some((stop, task)) = self.stop.take() {
            let _ = stop.send(());
            task.await.expect("bastion task");
        }
    }
}

fn backend_config(pki: &Pki, bastion: SocketAddr) -> BackendConfig {
    BackendConfig {
        root_certificates: vec![pki.ca.clone()],
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..BackendConfig::new(bastion.to_string())
    }
}

/// The witness router plus probes: `/forwarded-for` echoes every
/// `X-Forwarded-For` value received, one per line; `/length` answers the
/// request body's length; `/never` never answers.
fn witness_app(scenario: &Scenario, dir: &std::path::Path) -> axum::Router {
    cairn_witness::router(scenario.witness(dir))
        .route(
            "/forwarded-for",
            axum::routing::get(|headers: HeaderMap| async move {
                headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .map(|v| format!("{}\n", v.to_str().unwrap_or("?")))
                    .collect::<String>()
            }),
        )
        .route(
            "/length",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .route("/never", axum::routing::get(pending::<String>))
}

/// One bastion with `pki`'s certificate, the scenario's witness as the
/// (not yet started) backend, and the collector's client.
struct Fixture {
    pki: Pki,
    scenario: Scenario,
    key: SigningKey,
    client: cairn_collector::WitnessClient,
    bastion: RunningBastion,
    dir: tempfile::TempDir,
    /// The running `serve_backend` task and its stop signal.
    backend: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// Which backends the fixture's bastion admits.
enum Admit {
    Witness,
    Anyone,
}

impl Fixture {
    async fn new(admit: Admit) -> Fixture {
        Self::with_limits(admit, Limits::default()).await
    }

    async fn with_limits(admit: Admit, limits: Limits) -> Fixture {
        let pki = Pki::new();
        let scenario = Scenario::load();
        let key = scenario.witness_key();
        let allowed = match admit {
            Admit::Witness => Some(HashSet::from([key.public_key().key_hash()])),
            Admit::Anyone => None,
        };
        let bastion = RunningBastion::start(&pki, allowed, limits, "127.0.0.1:0").await;
        Fixture {
            client: pki.witness_client(),
            pki,
            scenario,
            key,
            bastion,
            dir: tempfile::tempdir().expect("tempdir"),
            backend: None,
        }
    }

    fn hash(&self) -> KeyHash {
        self.key.public_key().key_hash()
    }

    /// Runs [`serve_backend`] with the witness until [`Fixture::finish`],
    /// and waits until the bastion has it.
    async fn start_backend(&mut self) {
        let config = backend_config(&self.pki, self.bastion.addr);
        let key = self.key.clone();
        let app = witness_app(&self.scenario, self.dir.path());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_backend(config, &key, app, async {
                let _ = stopped.await;
            })
            .await
            .expect("backend configuration");
        });
        self.backend = Some((stop, task));
        self.bastion.wait_for(&self.hash()).await;
    }

    /// Sends scenario request `i` through the bastion to the backend of
    /// `witness` and checks a 200's cosignature.
    async fn send_to(&self, witness: &PublicKey, i: usize) -> Result<(), WitnessError> {
        let prefix = self.bastion.prefix(&witness.key_hash());
        add_checkpoint(&self.client, &prefix, witness, &self.scenario.request(i)).await
    }

    /// [`Fixture::send_to`] the scenario's witness.
    async fn send(&self, i: usize) -> Result<(), WitnessError> {
        self.send_to(&self.key.public_key(), i).await
    }

    /// A plain HTTPS client trusting the fixture's CA.
    fn https_client(&self) -> reqwest::Client {
        ca_client(&self.pki)
    }

    /// `path` on the witness's backend, through the bastion.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bastion.prefix(&self.hash()))
    }

    async fn finish(mut self) {
        if let Some((stop, task)) = self.backend {
            let _ = stop.send(());
            task.await.expect("backend task");
        }
        self.bastion.stop().await;
    }
}

fn ca_client(pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(&pki.ca).expect("CA")])
        .build()
        .expect("client")
}

fn stranger() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

fn status_of(r: Result<(), WitnessError>) -> StatusCode {
    match r {
        Err(WitnessError::Status { status, .. }) => status,
        other => panic!("expected an HTTP status error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_witness_behind_the_bastion_cosigns_for_the_collector_client() {
    let mut f = Fixture::new(Admit::Witness).await;
    f.start_backend().await;
    for i in [0, 1] {
        f.send(i)
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
    }
    // The witness's own 409 passes through the bastion unchanged.
    let stale = f.send(0).await;
    assert!(
        matches!(stale, Err(WitnessError::Conflict { size: 7 })),
        "{stale:?}"
    );
    f.finish().await;
}

#[tokio::test]
async fn the_backend_sees_only_the_clients_address_as_x_forwarded_for() {
    let mut f = Fixture::new(Admit::Witness).await;
    f.start_backend().await;
    let ca = reqwest::Certificate::from_der(&f.pki.ca).expect("CA");
    let http1 = reqwest::Client::builder()
        .tls_certs_only([ca])
        .http1_only()
        .build()
        .expect("client");
    for client in [f.https_client(), http1] {
        let response = client
            .get(f.url("/forwarded-for?x=1"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.expect("body"), "127.0.0.1\n");
    }
    f.finish().await;
}

#[tokio::test]
async fn an_unknown_key_hash_is_misdirected_when_the_bastion_has_an_allow_list() {
    let f = Fixture::new(Admit::Witness).await;
    let r = f.send_to(&stranger().public_key(), 0).await;
    assert_eq!(status_of(r), StatusCode::MISDIRECTED_REQUEST);
    f.finish().await;
}

#[tokio::test]
async fn an_allowed_backend_that_is_not_connected_is_unavailable() {
    let f = Fixture::new(Admit::Witness).await;
    assert_eq!(status_of(f.send(0).await), StatusCode::SERVICE_UNAVAILABLE);
    f.finish().await;
}

#[tokio::test]
async fn without_an_allow_list_any_backend_is_served_and_other_hashes_are_a_bad_gateway() {
    let mut f = Fixture::new(Admit::Anyone).await;
    let r = f.send(0).await;
    assert_eq!(status_of(r), StatusCode::BAD_GATEWAY, "not connected yet");
    f.start_backend().await;
    f.send(0).await.expect("cosigned through an open bastion");
    let r = f.send_to(&stranger().public_key(), 0).await;
    assert_eq!(status_of(r), StatusCode::BAD_GATEWAY);
    f.finish().await;
}

#[tokio::test]
async fn the_backend_reconnects_after_the_bastion_restarts() {
    let mut f = Fixture::new(Admit::Witness).await;
    f.start_backend().await;
    f.send(0).await.expect("cosigned via the first bastion");

    // A new bastion process on the same address; the backend finds it.
    let addr = f.bastion.addr.to_string();
    let allowed = Some(HashSet::from([f.hash()]));
    f.bastion.stop().await;
    f.bastion = RunningBastion::start(&f.pki, allowed, Limits::default(), &addr).await;
    f.bastion.wait_for(&f.hash()).await;
    f.send(1).await.expect("cosigned via the restarted bastion");
    f.finish().await;
}

#[tokio::test]
async fn a_backend_whose_key_is_not_on_the_allow_list_is_refused() {
    let f = Fixture::new(Admit::Witness).await;
    let intruder = stranger();
    let backend = Backend::new(backend_config(&f.pki, f.bastion.addr), &intruder).expect("backend");

    // TLS 1.3 checks the client certificate after the client finished its
    // side of the handshake, so the refusal may come at either step.
    let attempt = async {
        match backend.connect().await {
            Err(e) => e,
            Ok(conn) => conn
                .serve(witness_app(&f.scenario, f.dir.path()), pending())
                .await
                .expect_err("the bastion must not keep this connection"),
        }
    };
    let refused = tokio::time::timeout(CONNECT_DEADLINE, attempt)
        .await
        .expect("the bastion must not serve this backend");
    assert!(matches!(refused, BackendError::Refused(_)), "{refused:?}");
    assert!(f.bastion.bastion.connected_backends().is_empty());
    let r = f.send_to(&intruder.public_key(), 0).await;
    assert_eq!(status_of(r), StatusCode::MISDIRECTED_REQUEST);
    f.finish().await;
}
#[tokio::test]
async fn a_newer_backend_connection_replaces_the_older_one() {
    let pki = Pki::new();
    let key = SigningKey::from_seed(&[5; 32]);
    let hash = key.public_key().key_hash();
    let mut bastion = RunningBastion::start(
        &pki,
        Some(HashSet::from([hash])),
        Limits::default(),
        "127.0.0.1:0",
    )
    .await;
    let backend = Backend::new(backend_config(&pki, bastion.addr), &key).expect("backend");
    let app = |name: &'static str| {
        axum::Router::new().route("/who", axum::routing::get(move || async move { name }))
    };

    let older = backend.connect().await.expect("first connection");
    let older = tokio::spawn(older.serve(app("older"), pending()));
    bastion.wait_for(&hash).await;
    let newer = backend.connect().await.expect("second connection");
    let newer = tokio::spawn(newer.serve(app("newer"), pending()));

    // The bastion closes the older connection once the newer one is in.
    let ended = tokio::time::timeout(CONNECT_DEADLINE, older)
        .await
        .expect("the older connection was closed")
        .expect("task");
    assert_eq!(ended.expect("a clean close"), ConnectionEnd::Closed);
    let who = ca_client(&pki)
        .get(format!("{}/who", bastion.prefix(&hash)))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert_eq!(who, "newer");

    newer.abort();
    bastion.stop().await;
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_refused_before_reaching_the_backend() {
    let limits = Limits {
        max_request_body: 1000,
        ..Limits::default()
    };
    let mut f = Fixture::with_limits(Admit::Witness, limits).await;
    f.start_backend().await;
    let client = f.https_client();
    let at_limit = client
        .post(f.url("/length"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .expect("request");
    assert_eq!(at_limit.status(), StatusCode::OK);
    assert_eq!(at_limit.text().await.expect("body"), "1000");
    let over = client
        .post(f.url("/length"))
        .body(vec![b'x'; 1001])
        .send()
        .await
        .expect("request");
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    f.finish().await;
}

#[tokio::test]
async fn a_backend_that_does_not_answer_in_time_is_a_gateway_timeout() {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let mut f = Fixture::with_limits(Admit::Witness, limits).await;
    f.start_backend().await;
    let response = f
        .https_client()
        .get(f.url("/never"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    // The connection still serves the next request.
    f.send(0).await.expect("cosigned after a timed-out request");
    f.finish().await;
}

#[tokio::test]
async fn a_backend_removed_from_the_allow_list_is_disconnected() {
    let mut f = Fixture::new(Admit::Witness).await;
    f.start_backend().await;
    f.bastion.bastion.set_allowed_backends(Some(HashSet::new()));
    assert!(f.bastion.bastion.connected_backends().is_empty());
    assert_eq!(status_of(f.send(0).await), StatusCode::MISDIRECTED_REQUEST);
    f.finish().await;
}
