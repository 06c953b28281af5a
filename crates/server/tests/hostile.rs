//! Hostile clients against the real `cairnd dev`: slow headers, stalled
//! add-leaf bodies and idle connections from several addresses, while a
//! legitimate submitter on 127.0.0.1 keeps getting proofs. Bounded in
//! connections (a few hundred) and time (the stall timeouts of
//! `cairn_http`'s defaults, ~5 s, plus margins).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use cairn_client::{SubmitConfig, Submitter};
use cairn_sigsum::{Hash, SigningKey};
use support::{Cairnd, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// Attacker addresses (loopback, so bindable without setup).
const ATTACKERS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
    Ipv4Addr::new(127, 0, 0, 4),
    Ipv4Addr::new(127, 0, 0, 5),
];

async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .ok()?
        .ok()
}

/// Reads what the server sends until it closes or `limit` passes; the
/// status line if there was one.
async fn status_line(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.lines().next().map(str::to_owned)
}

fn message(i: usize) -> Hash {
    cairn_sigsum::crypto::hash(format!("cairn hostile {i}\n").as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_idle_clients_do_not_stop_a_legitimate_submitter() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let listen = free_port();
    let mut cairnd = Cairnd::start(&tmp.path().join("data"), listen);
    cairnd.wait_ready().await;
    let policy = cairnd.policy();

    // Stalled add-leaf bodies: headers promise 286 bytes, 10 arrive.
    let mut stalled = Vec::new();
    for (n, source) in ATTACKERS.iter().cycle().take(200).enumerate() {
        let Some(mut s) = connect_from(*source, listen).await else {
            continue;
        };
        let head = format!(
            "POST /dev/add-leaf HTTP/1.1\r\nhost: x\r\ncontent-length: 286\r\n\r\nmessage={n:02}"
        );
        if s.write_all(head.as_bytes()).await.is_ok() {
            stalled.push(s);
        }
    }
    // Slow headers and silent connections.
    let mut silent = Vec::new();
    for (n, source) in ATTACKERS.iter().cycle().take(400).enumerate() {
        if let Some(mut s) = connect_from(*source, listen).await {
            if n % 2 == 0 {
                let _ = s
                    .write_all(b"GET /dev/get-tree-head HTTP/1.1\r\nx-slow: ")
                    .await;
            }
            silent.push(s);
        }
    }
    assert!(
        !stalled.is_empty() && !silent.is_empty(),
        "no attack connection opened"
    );

    // Meanwhile, a legitimate submitter is served.
    let submitter = Submitter::new(
        policy,
        SigningKey::from_seed(&[0x48; 32]),
        SubmitConfig {
            concurrency: 8,
            ..SubmitConfig::default()
        },
    )
    .expect("submitter");
    let messages: Vec<Hash> = (0..20).map(message).collect();
    for (i, r) in submitter
        .submit_and_prove(&messages)
        .await
        .into_iter()
        .enumerate()
    {
        r.unwrap_or_else(|e| panic!("legitimate leaf {i} during the attack: {e}"));
    }

    // The stalled bodies are answered 408 (not 504 after the request
    // timeout, not left hanging).
    let mut answered = 0;
    for mut s in stalled {
        if let Some(line) = status_line(&mut s, Duration::from_secs(15)).await {
            assert!(line.contains(" 408 "), "a stalled body got {line:?}");
            answered += 1;
        }
    }
    assert!(answered > 0, "no stalled body was answered 408");
    // Slow and silent connections are closed by the server.
    let mut closed = 0;
    for mut s in silent {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(70), s.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            Ok(Ok(_)) => closed += 1, // an error answer, then a close
            Err(_) => panic!("an idle or slow connection was held open"),
        }
    }
    assert!(closed > 0);
    cairnd.stop();
}
