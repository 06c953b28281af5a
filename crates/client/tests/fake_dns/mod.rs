//! An in-test authoritative DNS server over real UDP on 127.0.0.1
//! (ephemeral port), serving a fixed zone of TXT records. Messages are
//! parsed and built with hickory-proto (re-exported by hickory-resolver).
//!
//! Names not in the zone get NXDOMAIN; names in the zone get their TXT
//! records for TXT queries and an empty NOERROR answer otherwise; names
//! marked [`Entry::ServFail`] get SERVFAIL. Every query name is recorded,
//! so tests can tell which labels a client asked for.
//!
//! Shared by `cairn-client`'s and `cairn-cli`'s integration tests (the CLI
//! includes this file by path). The server thread stops when the `FakeDns`
//! is dropped.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::TXT;
use hickory_resolver::proto::rr::{RData, Record, RecordType};

/// How often the server thread checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Largest query read; real queries are well under 512 bytes.
const MAX_QUERY_BYTES: usize = 4096;

/// What the zone holds for one name.
#[derive(Clone, Debug)]
pub enum Entry {
    /// TXT records, each given as its character strings (a record's value
    /// is their concatenation).
    Txt(Vec<Vec<String>>),
    /// The name exists but the server fails (SERVFAIL) for it.
    ServFail,
}

impl Entry {
    /// One single-string TXT record per value.
    pub fn txt<S: AsRef<str>>(values: &[S]) -> Entry {
        Entry::Txt(values.iter().map(|v| vec![v.as_ref().to_owned()]).collect())
    }
}

/// A running DNS server.
pub struct FakeDns {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    /// Serves `zone`, whose keys are names without the trailing dot
    /// (compared case-insensitively).
    pub fn start(zone: HashMap<String, Entry>) -> FakeDns {
        let zone: HashMap<String, Entry> = zone
            .into_iter()
            .map(|(k, v)| (k.trim_end_matches('.').to_ascii_lowercase(), v))
            .collect();
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS socket");
        socket
            .set_read_timeout(Some(POLL_INTERVAL))
            .expect("set read timeout");
        let addr = socket.local_addr().expect("DNS socket address");
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (queries, stop) = (queries.clone(), stop.clone());
            std::thread::spawn(move || serve(&socket, &zone, &queries, &stop))
        };
        FakeDns {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The names queried so far, lowercase, without the trailing dot.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    socket: &UdpSocket,
    zone: &HashMap<String, Entry>,
    queries: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; MAX_QUERY_BYTES];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(request) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let response = answer(&request, zone, queries);
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

fn answer(
    request: &Message,
    zone: &HashMap<String, Entry>,
    queries: &Mutex<Vec<String>>,
) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    let key = query
        .name
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    queries.lock().unwrap().push(key.clone());
    match zone.get(&key) {
        None => response.metadata.response_code = ResponseCode::NXDomain,
        Some(Entry::ServFail) => response.metadata.response_code = ResponseCode::ServFail,
        Some(Entry::Txt(records)) if query.query_type == RecordType::TXT => {
            for strings in records {
                let rdata = RData::TXT(TXT::new(strings.clone()));
                response.add_answer(Record::from_rdata(query.name.clone(), 60, rdata));
            }
        }
        Some(Entry::Txt(_)) => {}
    }
    response
}
