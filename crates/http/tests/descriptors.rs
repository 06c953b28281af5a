//! A connection flood from many loopback addresses (the attack that used
//! to exhaust the 1024-descriptor limit): the server holds no more than its
//! total cap, refuses and counts the rest, keeps serving a client it
//! already has, and serves new clients once the flood ends. One test in its
//! own binary, so that counting the process's descriptors sees only it.

#![cfg(target_os = "linux")]

mod common;

use cairn_http::HttpConfig;
use common::*;
use tokio::io::AsyncWriteExt as _;

/// Descriptors the process has open.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Descriptors the runtime may open on its own meanwhile (none expected).
const SLACK: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_addresses_stays_under_the_total_cap() {
    const CAP: usize = 150;
    const ADDRESSES: u8 = 8;
    const PER_ADDRESS: usize = 60;
    let flood_size = usize::from(ADDRESSES) * PER_ADDRESS;
    let config = HttpConfig {
        max_connections: CAP,
        max_connections_per_ip: 40,
        // Long enough that the flood is still there while it is measured.
        header_read_timeout_ms: 20_000,
        idle_timeout_ms: 20_000,
        ..fast_config()
    };
    let server = Running::start(config, test_router()).await;
    let (addr, stats) = (server.addr, server.stats.clone());
    let before = open_descriptors();

    // A client with a kept-alive connection from before the flood.
    let mut legit = connect_from(LEGIT, addr).await.expect("connect");
    let keep_alive = b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n";
    legit.write_all(keep_alive).await.expect("write");
    let reply = within("first request", read_reply(&mut legit))
        .await
        .expect("reply");
    assert_eq!(reply.status, 200);

    let mut flood = Vec::with_capacity(flood_size);
    for a in 2..2 + ADDRESSES {
        for _ in 0..PER_ADDRESS {
            flood.push(
                within("connect", connect_from([127, 0, 0, a], addr))
                    .await
                    .expect("connect"),
            );
        }
    }
    let seen =
        || stats.connections_accepted() + stats.refused_per_ip_cap() + stats.refused_total_cap();
    eventually("flood accepted or refused", || {
        seen() == 1 + flood_size as u64
    })
    .await;
    assert_eq!(stats.connections_accepted(), CAP as u64);
    assert_eq!(stats.connections_open(), CAP as i64);
    assert!(stats.refused_total_cap() > 0);
    assert_eq!(
        stats.refused_total_cap() + stats.refused_per_ip_cap(),
        (flood_size + 1 - CAP) as u64
    );
    // The flood's own sockets and the legitimate one are ours; the rest is
    // what the server holds.
    let server_side = open_descriptors() - before - flood_size - 1;
    assert!(
        server_side <= CAP + SLACK,
        "the server holds {server_side} descriptors for {CAP} connections"
    );

    // The connection the client already has is served throughout.
    for i in 0..10 {
        legit.write_all(keep_alive).await.expect("write");
        let reply = within("kept-alive request", read_reply(&mut legit))
            .await
            .expect("reply");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "ok\n"),
            "request {i}"
        );
    }

    // The flood ends: its connections close and new clients are served.
    drop(flood);
    eventually("flood connections closed", || stats.connections_open() == 1).await;
    assert_legit_client_served(addr, 5).await;
    drop(legit);
    server.stop().await;
}
