//! Hostile clients over real loopback sockets: slow heads, silent
//! connections, stalled and trickled bodies (against a plain router and the
//! real witness), unparsable heads, HTTP/2 stalls and idling, and graceful
//! shutdown. In each, a legitimate client from 127.0.0.1 is served while
//! the attack goes on; attackers use 127.0.0.2 and up.

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use cairn_http::HttpConfig;
use cairn_sigsum::SigningKey;
use cairn_tlog::EMPTY_ROOT;
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::note::Ed25519NoteSigner;
use cairn_witness::http::HttpLimits;
use cairn_witness::{KnownLog, Witness, WitnessConfig, WitnessState};
use common::*;
use http_body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

const ATTACKER: [u8; 4] = [127, 0, 0, 2];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_disconnected_while_others_are_served() {
    let config = HttpConfig {
        max_connections_per_ip: 200,
        ..fast_config()
    };
    let server = Running::start(config, test_router()).await;
    let addr = server.addr;
    let mut attackers = Vec::new();
    for _ in 0..100 {
        let mut stream = within("attacker connect", connect_from(ATTACKER, addr))
            .await
            .expect("connect");
        stream
            .write_all(b"GET /ok HTTP/1.1\r\nHost: test\r\n")
            .await
            .expect("write");
        attackers.push(tokio::spawn(async move {
            let (mut read, mut write) = stream.into_split();
            // A header line every 200 ms for up to 30 s: steady progress,
            // never a complete head.
            let trickle = async {
                for _ in 0..150 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if write.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        return Vec::new();
                    }
                }
                panic!("a slow-header client was never disconnected");
            };
            let closed = async {
                let mut got = Vec::new();
                let _ = read.read_to_end(&mut got).await;
                got
            };
            tokio::select! {
                got = closed => got,
                got = trickle => got,
            }
        }));
    }
    assert_legit_client_served(addr, 20).await;
    for attacker in attackers {
        let answer = within("slow-header client disconnected", attacker)
            .await
            .expect("attacker task");
        assert!(answer.is_empty(), "unexpected answer: {answer:?}");
    }
    assert_legit_client_served(addr, 5).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_capped_per_address_and_closed_after_the_header_timeout() {
    let config = HttpConfig {
        max_connections: 500,
        max_connections_per_ip: 20,
        header_read_timeout_ms: 3000,
        ..fast_config()
    };
    let server = Running::start(config, test_router()).await;
    let (addr, stats) = (server.addr, server.stats.clone());
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(
            within("connect", connect_from(ATTACKER, addr))
                .await
                .expect("connect"),
        );
    }
    eventually("flood accepted or refused", || {
        stats.connections_accepted() + stats.refused_per_ip_cap() == 100
    })
    .await;
    assert_eq!(stats.connections_accepted(), 20);
    assert_eq!(stats.refused_per_ip_cap(), 80);
    // The cap is per address: another client still gets its own 20.
    for _ in 0..20 {
        held.push(
            within("connect", connect_from([127, 0, 0, 3], addr))
                .await
                .expect("connect"),
        );
    }
    eventually("second address accepted", || {
        stats.connections_accepted() == 40
    })
    .await;
    assert_eq!(stats.refused_per_ip_cap(), 80);
    assert_eq!(stats.refused_total_cap(), 0);
    assert_legit_client_served(addr, 20).await;

    // Refused connections were closed at once, the others after the
    // header timeout; none was answered.
    for mut stream in held {
        let answer = within("silent connection closed", until_closed(&mut stream)).await;
        assert!(answer.is_empty(), "unexpected answer: {answer:?}");
    }
    eventually("admitted silent connections closed as idle", || {
        stats.closed_idle() == 40
    })
    .await;
    eventually("no connection left open", || stats.connections_open() == 0).await;
    assert_legit_client_served(addr, 5).await;
    server.stop().await;
}

/// Sends a head announcing 100 bytes and 10 of them, then waits.
async fn stalled_post(addr: std::net::SocketAddr, path: &str) -> Reply {
    let raw =
        format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789");
    within(
        "stalled body answered",
        exchange(ATTACKER, addr, raw.as_bytes()),
    )
    .await
    .expect("answer to a stalled body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_with_a_text_body() {
    let server = Running::start(fast_config(), test_router()).await;
    let addr = server.addr;
    let (extractor, handler, ()) = tokio::join!(
        stalled_post(addr, "/bytes"),
        stalled_post(addr, "/read"),
        assert_legit_client_served(addr, 10),
    );
    // axum's Bytes extractor would say 400; the layer makes it 408.
    assert_eq!(extractor.status, 408, "{extractor:?}");
    assert!(
        extractor.head.contains("content-type: text/plain"),
        "{extractor:?}"
    );
    assert!(
        extractor.body.starts_with("the request body stalled"),
        "{extractor:?}"
    );
    // A handler that reads the body finds the timeout in its error.
    assert_eq!(handler.status, 408, "{handler:?}");
    assert!(
        handler
            .body
            .starts_with("handler saw: the request body stalled"),
        "{handler:?}"
    );
    assert_eq!(server.stats.body_timeouts(), 2);
    server.stop().await;
}

/// The real witness, cosigning for one log, and a valid `add-checkpoint`
/// body for it (the empty tree, which it cosigns every time).
fn witness(dir: &std::path::Path, max_in_flight: usize) -> (Router, Vec<u8>) {
    let log = Ed25519NoteSigner::new("example.org/log", &[7; 32]).expect("log key");
    let config = WitnessConfig {
        name: "example.org/witness".to_owned(),
        key: SigningKey::from_seed(&[9; 32]),
        logs: vec![KnownLog::new("example.org/log", log.public_key())],
    };
    let state = WitnessState::open(dir).expect("state");
    let witness = Witness::new(config, state, || 1_700_000_000).expect("witness");
    let note = log
        .sign_note(&Checkpoint::new("example.org/log", 0, EMPTY_ROOT).to_body())
        .expect("note");
    let body = [b"old 0\n\n".as_slice(), &note.to_bytes()].concat();
    let limits = HttpLimits {
        max_in_flight,
        request_timeout: Duration::from_secs(30),
    };
    (
        cairn_witness::router_with_limits(Arc::new(witness), limits),
        body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_get_408_and_do_not_starve_the_witness() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (router, valid) = witness(dir.path(), 32);
    let config = HttpConfig {
        max_connections_per_ip: 16,
        ..fast_config()
    };
    let server = Running::start(config, router).await;
    let (addr, stats) = (server.addr, server.stats.clone());

    // 200 clients from one address, each POSTing a 1000-byte body at
    // 20 bytes/s (the minimum is 100) and starting again when answered.
    let stop = Arc::new(AtomicBool::new(false));
    let timeouts = Arc::new(AtomicUsize::new(0));
    let (others, mut other_rx) = mpsc::unbounded_channel::<String>();
    let mut attackers = Vec::new();
    for _ in 0..200 {
        let (stop, timeouts, others) = (stop.clone(), timeouts.clone(), others.clone());
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(stream) = connect_from(ATTACKER, addr).await else {
                    continue;
                };
                let (mut read, mut write) = stream.into_split();
                let trickle = async {
                    let head = "POST /add-checkpoint HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n";
                    if write.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    for _ in 0..1000 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if write.write_all(b"x").await.is_err() {
                            return;
                        }
                    }
                };
                let answer = async {
                    let mut raw = Vec::new();
                    let _ = read.read_to_end(&mut raw).await;
                    String::from_utf8_lossy(&raw).into_owned()
                };
                let (_, raw) = tokio::join!(trickle, answer);
                if raw.starts_with("HTTP/1.1 408") {
                    // The witness's own answer, not the layer's fallback.
                    assert!(
                        raw.contains("add-checkpoint: the request body arrived too slowly"),
                        "{raw}"
                    );
                    timeouts.fetch_add(1, Ordering::Relaxed);
                } else if !raw.is_empty() {
                    let _ = others.send(raw);
                } else {
                    // Refused by the per-address cap: try again shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    eventually("first trickled bodies cut off", || {
        timeouts.load(Ordering::Relaxed) >= 16
    })
    .await;
    assert!(stats.refused_per_ip_cap() > 0);

    // Meanwhile the log's collector gets its cosignatures.
    for i in 0..10 {
        let head = format!(
            "POST /add-checkpoint HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            valid.len()
        );
        let request = [head.as_bytes(), &valid].concat();
        let reply = within("cosigning", exchange(LEGIT, addr, &request))
            .await
            .expect("cosign request");
        assert_eq!(reply.status, 200, "request {i}: {reply:?}");
        assert!(
            reply.body.starts_with("— example.org/witness "),
            "{reply:?}"
        );
    }

    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        within("attacker stops", attacker)
            .await
            .expect("attacker task");
    }
    drop(others);
    if let Some(raw) = other_rx.recv().await {
        panic!("an attacker got an answer other than 408: {raw}");
    }
    assert!(stats.body_timeouts() >= 16);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_made_before_routing_have_readable_bodies_and_handlers_see_the_client() {
    let server = Running::start(fast_config(), test_router()).await;
    let addr = server.addr;

    let garbage = exchange(ATTACKER, addr, b"\x01\x02 / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("answer to garbage");
    assert_eq!(garbage.status, 400, "{garbage:?}");
    assert!(
        garbage.head.contains("content-type: text/plain"),
        "{garbage:?}"
    );
    assert!(garbage.body.contains("could not be parsed"), "{garbage:?}");

    let big = format!(
        "GET /ok HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let big = exchange(ATTACKER, addr, big.as_bytes())
        .await
        .expect("answer to a huge head");
    assert_eq!(big.status, 431, "{big:?}");
    assert!(big.body.contains("at most 16384 bytes"), "{big:?}");
    assert_eq!(server.stats.unparsable_requests(), 2);

    let peer = exchange(ATTACKER, addr, &get_request("/peer"))
        .await
        .expect("peer");
    assert_eq!((peer.status, peer.body.as_str()), (200, "127.0.0.2\n"));
    let missing = exchange(ATTACKER, addr, &get_request("/nope"))
        .await
        .expect("404");
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "404 Not Found\n")
    );
    let wrong = exchange(ATTACKER, addr, &get_request("/bytes"))
        .await
        .expect("405");
    assert_eq!(wrong.status, 405);
    assert!(wrong.head.contains("allow: post"), "{wrong:?}");
    assert_eq!(wrong.body, "405 Method Not Allowed\n");

    assert_legit_client_served(addr, 5).await;
    server.stop().await;
}

/// A request body for the HTTP/2 client: none, or ten bytes and then
/// nothing, ever.
enum TestBody {
    Empty,
    Stalling { sent: bool },
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut *self {
            TestBody::Empty => Poll::Ready(None),
            TestBody::Stalling { sent: true } => Poll::Pending,
            TestBody::Stalling { sent } => {
                *sent = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"0123456789")))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, TestBody::Empty)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_stalled_streams_get_408_and_idle_connections_are_closed() {
    let server = Running::start(fast_config(), test_router()).await;
    let (addr, stats) = (server.addr, server.stats.clone());
    let tcp = connect_from(LEGIT, addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("HTTP/2 handshake");
    let conn = tokio::spawn(conn);

    let ok = http::Request::get("http://127.0.0.1/ok")
        .body(TestBody::Empty)
        .expect("request");
    let ok = within("HTTP/2 GET", send.send_request(ok))
        .await
        .expect("GET");
    assert_eq!(ok.status(), 200);

    let stalled = http::Request::post("http://127.0.0.1/bytes")
        .header("content-length", "100")
        .body(TestBody::Stalling { sent: false })
        .expect("request");
    let (legit, stalled) = tokio::join!(
        assert_legit_client_served(addr, 10),
        within("HTTP/2 stalled upload answered", send.send_request(stalled)),
    );
    let () = legit;
    let stalled = stalled.expect("answer to the stalled stream");
    assert_eq!(stalled.status(), 408);
    let body = http_body_util::BodyExt::collect(stalled.into_body())
        .await
        .expect("408 body")
        .to_bytes();
    assert!(body.starts_with(b"the request body stalled"), "{body:?}");

    // Nothing more on it: the server closes it after the idle timeout.
    within("idle HTTP/2 connection closed", conn)
        .await
        .expect("connection task")
        .ok();
    assert!(stats.closed_idle() >= 1);
    drop(send);
    server.stop().await;
}

/// `GET /slow` answers 300 ms after it starts; `GET /hang` never does.
/// Both report on `started` once running.
fn signalling_router(started: mpsc::UnboundedSender<()>) -> Router {
    let hang_started = started.clone();
    Router::new()
        .route(
            "/slow",
            get(move || {
                let _ = started.send(());
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done\n"
                }
            }),
        )
        .route(
            "/hang",
            get(move || {
                let _ = hang_started.send(());
                std::future::pending::<&'static str>()
            }),
        )
        .route("/ok", get(|| async { "ok\n" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let (tx, mut started) = mpsc::unbounded_channel();
    let mut server = Running::start(fast_config(), signalling_router(tx)).await;
    let addr = server.addr;
    assert_legit_client_served(addr, 3).await;
    let mut slow = connect_from(LEGIT, addr).await.expect("connect");
    slow.write_all(&get_request("/slow")).await.expect("write");
    within("request started", started.recv()).await;
    server.begin_shutdown();
    let reply = within("in-flight answer", read_reply(&mut slow))
        .await
        .expect("in-flight request finished");
    assert_eq!((reply.status, reply.body.as_str()), (200, "done\n"));
    server.finished().await;
    assert!(
        exchange(LEGIT, addr, &get_request("/ok")).await.is_err(),
        "a connection after shutdown was served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_requests_that_outlast_the_grace() {
    let (tx, mut started) = mpsc::unbounded_channel();
    let config = HttpConfig {
        shutdown_grace_ms: 300,
        ..fast_config()
    };
    let mut server = Running::start(config, signalling_router(tx)).await;
    let mut hung = connect_from(LEGIT, server.addr).await.expect("connect");
    hung.write_all(&get_request("/hang")).await.expect("write");
    within("request started", started.recv()).await;
    server.begin_shutdown();
    server.finished().await;
    let answer = within("hung connection closed", until_closed(&mut hung)).await;
    assert!(answer.is_empty(), "unexpected answer: {answer:?}");
}
