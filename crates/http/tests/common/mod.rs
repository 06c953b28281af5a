//! Test harness: a [`Server`] on 127.0.0.1 and raw HTTP/1.1 clients bound
//! to chosen loopback source addresses (127.0.0.2, ... act as other
//! clients), every wait bounded.

#![allow(dead_code)] // Each test binary uses part of it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_http::{HttpConfig, Server, Stats, find_body_timeout};
use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generous bound of any single wait in these tests.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The legitimate client's address.
pub const LEGIT: [u8; 4] = [127, 0, 0, 1];

/// Awaits `f`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {DEADLINE:?}"))
}

/// Polls `check` every 20 ms until it holds, failing after [`DEADLINE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Short timeouts so attacks are cut off within a second or two.
pub fn fast_config() -> HttpConfig {
    HttpConfig {
        header_read_timeout_ms: 1500,
        idle_timeout_ms: 1500,
        body_stall_timeout_ms: 800,
        body_min_rate_grace_ms: 800,
        body_min_bytes_per_second: 100,
        shutdown_grace_ms: 1000,
        ..HttpConfig::default()
    }
}

/// A handler that reads the body itself and tells a body timeout apart.
async fn read_whole_body(body: Body) -> Response {
    match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => format!("{}\n", bytes.len()).into_response(),
        Err(e) => match find_body_timeout(&e) {
            Some(t) => (StatusCode::REQUEST_TIMEOUT, format!("handler saw: {t}\n")).into_response(),
            None => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        },
    }
}

/// `GET /ok`; `POST /bytes` (axum's `Bytes` extractor, which knows nothing
/// of body timeouts); `POST /read` (a handler that maps them itself);
/// `GET /slow` (answers after 300 ms); `GET /hang` (never answers);
/// `GET /peer` (the client's address).
pub fn test_router() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok\n" }))
        .route(
            "/bytes",
            post(|body: Bytes| async move { format!("{}\n", body.len()) }),
        )
        .route("/read", post(read_whole_body))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done\n"
            }),
        )
        .route("/hang", get(std::future::pending::<&'static str>))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                format!("{}\n", peer.ip())
            }),
        )
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub stats: Stats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn start(config: HttpConfig, router: Router) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = Server::new(config).expect("server config");
        let stats = server.stats().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, router, async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            stats,
            stop: Some(stop),
            task,
        }
    }

    /// Starts shutdown and waits (bounded) until `serve` returns.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within("server shutdown", self.task)
            .await
            .expect("serve task");
    }

    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn finished(self) {
        within("server shutdown", self.task)
            .await
            .expect("serve task");
    }
}

/// A TCP connection to `addr` from `from` (any port).
pub async fn connect_from(from: [u8; 4], addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// An HTTP/1.1 answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The head, lower-cased.
    pub head: String,
    pub body: String,
}

/// Reads one answer (head, then `Content-Length` bytes of body).
pub async fn read_reply(stream: &mut TcpStream) -> io::Result<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line: {head}")))?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Reply {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Sends `raw` on a new connection from `from` and reads the answer.
pub async fn exchange(from: [u8; 4], addr: SocketAddr, raw: &[u8]) -> io::Result<Reply> {
    let mut stream = connect_from(from, addr).await?;
    stream.write_all(raw).await?;
    read_reply(&mut stream).await
}

/// A `GET` with `Connection: close`.
pub fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").into_bytes()
}

/// `count` requests for `GET /ok`, each on a new connection from the
/// legitimate client's address; every one must be answered 200.
pub async fn assert_legit_client_served(addr: SocketAddr, count: usize) {
    for i in 0..count {
        let reply = within(
            "legitimate request",
            exchange(LEGIT, addr, &get_request("/ok")),
        )
        .await
        .unwrap_or_else(|e| panic!("legitimate request {i} failed: {e}"));
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "ok\n"),
            "request {i}"
        );
    }
}

/// Waits until the server closes `stream`, returning what it sent first.
pub async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}
