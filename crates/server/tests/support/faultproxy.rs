//! A fault-injecting HTTP/1.1 proxy for an S3 server in tests: put it
//! between a client (object_store's S3 client, plain HTTP) and moto, and
//! switch its [`Fault`] at run time.
//!
//! It parses just enough HTTP/1.1 to know where a request ends (the head up
//! to the blank line, then a `Content-Length` body; chunked requests are
//! refused). Each forwarded request goes to the upstream on a fresh
//! connection with `Connection: close`, and the response is read to its end
//! (EOF), then passed on with `Connection: close` and the client connection
//! closed: the proxy never needs to parse response framing, and "lost
//! response" can drop a response that is complete upstream. So each client
//! connection carries one request, and faults apply per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request head or body the proxy reads; tiles are tens of KiB.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Largest response read from the upstream.
const MAX_RESPONSE_BYTES: usize = 8 << 20;

/// Longest the proxy waits on its upstream for one request.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// What the proxy does to each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward it.
    Pass,
    /// Close every connection at once with a TCP reset, answering nothing.
    Down,
    /// Wait this long, then forward it.
    Slow(Duration),
    /// Answer with this status (an S3 XML error body) without forwarding.
    Status(u16),
    /// Read the request head, then reset the connection mid-request.
    Reset,
    /// Forward every other `PUT` (so the write happens upstream) and reset
    /// the connection instead of returning its response; other requests
    /// pass. Checkpoint `PUT`s are counted apart from the rest, so that
    /// some of them lose their response whatever the number of tile writes
    /// between two checkpoints. The client sees an error after a successful write, and its
    /// retry meets the object it wrote.
    LoseWriteResponses,
}

/// Counts of what the proxy did, for the test's report and assertions.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub forwarded: AtomicU64,
    pub refused: AtomicU64,
    pub failed_with_status: AtomicU64,
    pub reset: AtomicU64,
    pub lost_responses: AtomicU64,
}

/// The proxy: listens on a loopback port until dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    stats: Arc<ProxyStats>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` in [`Fault::Pass`].
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let stats = Arc::new(ProxyStats::default());
        let shared = Shared {
            upstream,
            fault: Arc::clone(&fault),
            stats: Arc::clone(&stats),
            puts: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    // Errors just end the connection, as for a real server.
                    let _ = shared.serve(client).await;
                });
            }
        });
        FaultProxy {
            addr,
            fault,
            stats,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    upstream: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    stats: Arc<ProxyStats>,
    /// PUTs seen in [`Fault::LoseWriteResponses`], to lose every other one:
    /// `[others, checkpoints]`.
    puts: Arc<[AtomicU64; 2]>,
}

type IoResult<T> = std::io::Result<T>;

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Ends `stream` with a TCP reset rather than an orderly close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }

    /// Serves the one request of the connection `client`.
    async fn serve(&self, mut client: TcpStream) -> IoResult<()> {
        if self.fault() == Fault::Down {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            reset(client);
            return Ok(());
        }
        let mut buffered = Vec::new();
        let Some(head_len) = read_head(&mut client, &mut buffered).await? else {
            return Ok(()); // The client closed without a request.
        };
        let head = std::str::from_utf8(&buffered[..head_len])
            .map_err(|_| invalid("request head is not UTF-8"))?
            .to_owned();
        let fault = self.fault();
        if matches!(fault, Fault::Down | Fault::Reset) {
            let counter = if fault == Fault::Down {
                &self.stats.refused
            } else {
                &self.stats.reset
            };
            counter.fetch_add(1, Ordering::Relaxed);
            reset(client);
            return Ok(());
        }
        let total = head_len + content_length(&head)?;
        if total > MAX_REQUEST_BYTES {
            return Err(invalid("request too large"));
        }
        while buffered.len() < total {
            let mut chunk = [0u8; 16 * 1024];
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                return Err(invalid("client closed mid-body"));
            }
            buffered.extend_from_slice(&chunk[..n]);
        }
        let body = &buffered[head_len..total];
        match fault {
            Fault::Status(status) => {
                self.stats
                    .failed_with_status
                    .fetch_add(1, Ordering::Relaxed);
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError\
                     </Code><Message>injected {status}</Message></Error>"
                );
                let response = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                return client.write_all(response.as_bytes()).await;
            }
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            _ => {}
        }
        let response = self.forward(&head, body).await?;
        let checkpoint = head
            .split_ascii_whitespace()
            .nth(1)
            .is_some_and(|path| path.ends_with("/checkpoint"));
        if fault == Fault::LoseWriteResponses
            && head.starts_with("PUT ")
            && self.puts[usize::from(checkpoint)]
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(2)
        {
            self.stats.lost_responses.fetch_add(1, Ordering::Relaxed);
            reset(client);
            return Ok(());
        }
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        client.write_all(&closing(&response)).await
    }

    /// Sends the request (`head` rewritten to close the connection, then
    /// `body`) to the upstream and reads its whole response.
    async fn forward(&self, head: &str, body: &[u8]) -> IoResult<Vec<u8>> {
        let exchange = async {
            let mut upstream = TcpStream::connect(self.upstream).await?;
            let mut rewritten = String::with_capacity(head.len() + 20);
            for line in head.trim_end_matches("\r\n").split("\r\n") {
                if !line.to_ascii_lowercase().starts_with("connection:") {
                    rewritten.push_str(line);
                    rewritten.push_str("\r\n");
                }
            }
            rewritten.push_str("Connection: close\r\n\r\n");
            upstream.write_all(rewritten.as_bytes()).await?;
            upstream.write_all(body).await?;
            let mut response = Vec::new();
            (&mut upstream)
                .take(MAX_RESPONSE_BYTES as u64 + 1)
                .read_to_end(&mut response)
                .await?;
            if response.len() > MAX_RESPONSE_BYTES {
                return Err(invalid("response too large"));
            }
            Ok(response)
        };
        tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
            .await
            .map_err(|_| invalid("upstream timed out"))?
    }
}

/// Reads into `buffered` until it holds a whole request head; its length
/// (through the blank line), or `None` if the client closed first.
async fn read_head(client: &mut TcpStream, buffered: &mut Vec<u8>) -> IoResult<Option<usize>> {
    loop {
        if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(end + 4));
        }
        if buffered.len() > MAX_REQUEST_BYTES {
            return Err(invalid("request head too large"));
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return if buffered.is_empty() {
                Ok(None)
            } else {
                Err(invalid("client closed mid-head"))
            };
        }
        buffered.extend_from_slice(&chunk[..n]);
    }
}

/// The request body length; chunked bodies are refused (object_store sends
/// its payloads with a length).
fn content_length(head: &str) -> IoResult<usize> {
    let mut length = 0;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name == "transfer-encoding" {
            return Err(invalid("chunked requests are not supported"));
        }
        if name == "content-length" {
            length = value
                .trim()
                .parse()
                .map_err(|_| invalid("bad Content-Length"))?;
        }
    }
    Ok(length)
}

/// `response` with its `Connection` header replaced by `Connection:
/// close`: the proxy closes the client connection after each response, so
/// a response framed by the end of the connection (which the upstream may
/// send, as it was asked to close) stays correctly framed.
fn closing(response: &[u8]) -> Vec<u8> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return response.to_vec();
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let mut out = Vec::with_capacity(response.len() + 20);
    for line in head.split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&response[end + 4..]);
    out
}
