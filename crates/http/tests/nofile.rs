//! The descriptor limit: raised to the hard limit, and the connection cap
//! fitted to it. One test in its own binary, since it changes the limit of
//! the whole process.

#![cfg(target_os = "linux")]

use cairn_http::{HttpConfig, Server, raise_nofile_limit};
use rlimit::Resource;

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_limit_and_caps_fit_it() {
    let (_, hard) = Resource::NOFILE.get().expect("getrlimit");
    let lowered = hard.min(512);
    Resource::NOFILE
        .set(lowered, hard)
        .expect("lower the soft limit");

    // 4096 connections do not fit in 512 descriptors with 256 reserved.
    let server = Server::new(HttpConfig::default()).expect("server");
    assert_eq!(
        server.max_connections() as u64,
        lowered.saturating_sub(256).min(4096)
    );

    let limit = raise_nofile_limit().expect("raise");
    assert_eq!(
        (limit.before, limit.soft, limit.hard),
        (lowered, hard, hard)
    );
    assert_eq!(Resource::NOFILE.get().expect("getrlimit"), (hard, hard));
    let server = Server::new(HttpConfig::default()).expect("server");
    assert_eq!(
        server.max_connections() as u64,
        hard.saturating_sub(256).min(4096)
    );
}
