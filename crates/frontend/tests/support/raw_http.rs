//! HTTP/1.1 over a raw TCP connection, for requests an HTTP client will
//! not send: malformed percent-encodings, unknown methods, `CONNECT`, a
//! `Content-Length` that lies. The request bytes go out as given; the
//! response is read until the server closes the connection (requests built
//! with [`request`] ask for that with `Connection: close`).
//!
//! Shared by the frontend's and the witness's tests (the witness includes
//! this file by path).

#![allow(dead_code)] // Not every test uses every helper.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a test waits for a whole response.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(15);

/// A parsed response.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was sent chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a `text/plain` body of at least one printable sentence,
    /// ending in a newline, and returns it.
    pub fn assert_readable(&self, what: &str) -> String {
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/plain"),
            "{what}: status {}, content-type {content_type:?}, body {:?}",
            self.status,
            self.text()
        );
        let text = std::str::from_utf8(&self.body)
            .unwrap_or_else(|_| panic!("{what}: body is not UTF-8: {:?}", self.body));
        let line = text.trim_end_matches('\n');
        assert!(
            line.chars().filter(|c| c.is_alphabetic()).count() >= 8
                && !line.chars().any(char::is_control)
                && text.ends_with('\n'),
            "{what}: status {}, body {text:?} is not a readable sentence",
            self.status
        );
        text.to_owned()
    }
}

/// The bytes of `METHOD target HTTP/1.1` to `addr`, with `Host`,
/// `Connection: close`, the given extra header lines and `body` (with its
/// `Content-Length` unless a header line sets the length or chunking).
pub fn request(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: cairn.test\r\nConnection: close\r\n");
    let framed = headers.iter().any(|h| {
        let h = h.to_ascii_lowercase();
        h.starts_with("content-length:") || h.starts_with("transfer-encoding:")
    });
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if !framed && (!body.is_empty() || method == "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` to `addr` (`host:port`) and reads the response until the
/// server closes the connection.
pub async fn exchange(addr: &str, request: &[u8]) -> RawResponse {
    let read = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // The server may answer (and close) before reading everything, as
        // with a body over its limit.
        let _ = stream.write_all(request).await;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A reset after the response (unread request bytes) is fine.
                Err(e) if !buf.is_empty() => {
                    let _ = e;
                    break;
                }
                Err(e) => panic!("reading the response: {e}"),
            }
        }
        buf
    };
    let bytes = tokio::time::timeout(RESPONSE_DEADLINE, read)
        .await
        .expect("the server answers and closes the connection");
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> RawResponse {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw = &bytes[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(raw)
    } else {
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(raw.len());
        raw[..len.min(raw.len())].to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size_text = std::str::from_utf8(&raw[..end]).expect("chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        if size == 0 {
            return body;
        }
        let start = end + 2;
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}
