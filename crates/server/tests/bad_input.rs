//! The bad-input catalogue (issue 11): hundreds of malformed, oversized,
//! misframed or wrongly signed requests sent to one real `cairnd dev` over
//! raw TCP, each with the answer it must get.
//!
//! The catalogue is data: [`catalogue`] lists every [`Case`] (a name, the
//! request, what is expected), grouped by what is wrong. For every case the
//! answer must be one of the expected statuses (never a 5xx) and, unless the
//! case says otherwise, carry a non-empty, printable `text/plain` body of
//! bounded size; 405s must name the allowed methods. Cases sent as raw bytes
//! (framing, slow clients) must be answered, or the connection closed, within
//! their deadline. All cases run, every mismatch is collected, and the test
//! fails once at the end listing them all, so one run shows every gap.
//!
//! Before the cases a few good leaves are logged and the published head is
//! recorded; afterwards `/readyz` must be 200, `get-tree-head` must serve the
//! same signed head (no bad input changed the tree), and a new good leaf must
//! still get a proof that is consistent with the recorded head.
//!
//! Deliberate answers are marked where they occur: an HTTP/1.0 request
//! without `Host` is valid (200); the witness's 409 carries the spec's
//! `text/x.tlog.size` body; input that is unusual but valid (upper-case hex,
//! a fully qualified token domain) passes parsing and gets the 403 of the
//! wrong leaf signature every add-leaf case carries.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cairn_client::{LogClient, SubmitConfig, Submitter};
use cairn_sigsum::crypto::{NAMESPACE_TREE_LEAF, hash, namespaced};
use cairn_sigsum::leaf::checksum;
use cairn_sigsum::tree_head::CosignedTreeHead;
use cairn_sigsum::{Hash, PublicKey, Signature, SigningKey};
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::note::Ed25519NoteSigner;
use cairn_witness::AddCheckpointRequest;
use futures::StreamExt as _;
use support::{Cairnd, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Good leaves logged before the catalogue runs.
const GOOD_LEAVES: usize = 3;

/// Cases in flight at once: enough to finish quickly, far below the
/// frontend's and the witness's concurrency limits.
const PARALLEL: usize = 32;

/// How long an ordinary case may take: every answer is computed from memory.
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// How long a stalled or idle client may hold a connection before the server
/// must have answered it (408) or dropped it.
const STALL_DEADLINE: Duration = Duration::from_secs(15);

/// Longest acceptable error body: errors echo at most a short excerpt of
/// the request, so their size must not grow with it.
const MAX_ERROR_BODY: usize = 1024;

/// Most bytes the harness reads of one answer.
const MAX_ANSWER: usize = 256 * 1024;

// ---------------------------------------------------------------------------
// The harness: requests, expectations, one exchange per case.

/// What the client does once its bytes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Keeps its side open (and silent) until answered or out of time.
    Wait,
    /// Shuts down its write side: the server sees end of input.
    HalfClose,
}

/// How a case's request reaches the server.
#[derive(Clone, Debug)]
enum Request {
    /// A well-framed HTTP/1.1 request. The harness adds `Host`,
    /// `Connection: close` and, for methods other than GET, `Content-Length`.
    Http {
        method: String,
        target: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
    /// Bytes written verbatim, for framing the server must reject itself.
    Raw { bytes: Vec<u8>, then: Then },
}

impl Request {
    fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Request {
        if let Request::Http { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.into()));
        }
        self
    }

    fn bytes(&self, addr: SocketAddr) -> (Vec<u8>, Then) {
        match self {
            Request::Raw { bytes, then } => (bytes.clone(), *then),
            Request::Http {
                method,
                target,
                headers,
                body,
            } => {
                let mut out =
                    format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
                for (name, value) in headers {
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                    out.extend_from_slice(b"\r\n");
                }
                if method != "GET" {
                    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
                }
                out.extend_from_slice(b"Connection: close\r\n\r\n");
                out.extend_from_slice(body);
                (out, Then::Wait)
            }
        }
    }
}

fn method(method: &str, target: &str) -> Request {
    Request::Http {
        method: method.to_owned(),
        target: target.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn get(target: &str) -> Request {
    method("GET", target)
}

fn post(target: &str, body: impl Into<Vec<u8>>) -> Request {
    Request::Http {
        method: "POST".to_owned(),
        target: target.to_owned(),
        headers: Vec::new(),
        body: body.into(),
    }
}

fn raw(bytes: impl Into<Vec<u8>>) -> Request {
    Request::Raw {
        bytes: bytes.into(),
        then: Then::Wait,
    }
}

fn raw_then_eof(bytes: impl Into<Vec<u8>>) -> Request {
    Request::Raw {
        bytes: bytes.into(),
        then: Then::HalfClose,
    }
}

/// What the body of an answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyRule {
    /// A printable `text/plain` sentence (at most [`MAX_ERROR_BODY`] bytes
    /// for errors).
    Text,
    /// C2SP tlog-witness 409: `<size>\n` as `text/x.tlog.size`.
    TlogSize(u64),
}

/// The answer a case must get.
#[derive(Clone, Debug)]
struct Expect {
    statuses: Vec<u16>,
    allow: Option<&'static str>,
    body: BodyRule,
    /// Closing the connection without an answer is also acceptable (for
    /// framing so broken that no request can be read from it).
    may_close: bool,
    within: Duration,
}

impl Expect {
    fn allow(mut self, methods: &'static str) -> Expect {
        self.allow = Some(methods);
        self
    }

    fn or_close(mut self) -> Expect {
        self.may_close = true;
        self
    }

    fn within(mut self, deadline: Duration) -> Expect {
        self.within = deadline;
        self
    }

    fn tlog_size(mut self, size: u64) -> Expect {
        self.body = BodyRule::TlogSize(size);
        self
    }
}

fn one_of(statuses: &[u16]) -> Expect {
    Expect {
        statuses: statuses.to_vec(),
        allow: None,
        body: BodyRule::Text,
        may_close: false,
        within: ANSWER_DEADLINE,
    }
}

fn status(status: u16) -> Expect {
    one_of(&[status])
}

/// One entry of the catalogue.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    request: Request,
    expect: Expect,
}

fn case(name: impl Into<String>, request: Request, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request,
        expect,
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What came back on the connection.
#[derive(Debug)]
enum Outcome {
    Answer(Answer),
    /// Closed (or reset) before a complete response.
    Closed(String),
    /// Nothing complete before the deadline.
    NoAnswer(Duration),
    /// Bytes that are not an HTTP/1.1 response.
    Garbled(String),
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a complete chunked body at the start of `b`, if it is complete.
fn dechunk(mut b: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(b, b"\r\n")?;
        let line = String::from_utf8_lossy(b.get(..line_end)?).into_owned();
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Some(Err(format!("bad chunk size {line:?}")));
        };
        b = b.get(line_end + 2..)?;
        if size == 0 {
            return Some(Ok(body));
        }
        body.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Parses the first final response in `buf` (skipping 1xx ones); `None`
/// while it is incomplete. At `eof`, a body without a length ends there.
fn parse_response(buf: &[u8], eof: bool) -> Option<Result<Answer, String>> {
    let head_end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(buf.get(..head_end)?).into_owned();
    let rest = buf.get(head_end + 4..)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>().as_slice() {
        [version, code, ..] if version.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    };
    let Some(status) = status else {
        return Some(Err(format!("status line {status_line:?}")));
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    if (100..200).contains(&status) {
        return parse_response(rest, eof);
    }
    let answer = |body: Vec<u8>| Answer {
        status,
        headers: headers.clone(),
        body,
    };
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return match dechunk(rest) {
            Some(Ok(body)) => Some(Ok(answer(body))),
            Some(Err(e)) => Some(Err(e)),
            None if eof => Some(Err("chunked body cut short".to_owned())),
            None => None,
        };
    }
    if let Some(len) = value("content-length") {
        let Ok(len) = len.parse::<usize>() else {
            return Some(Err(format!("content-length {len:?}")));
        };
        return match rest.get(..len) {
            Some(body) => Some(Ok(answer(body.to_vec()))),
            None if eof => Some(Err(format!(
                "body cut short: {} of {len} bytes",
                rest.len()
            ))),
            None => None,
        };
    }
    eof.then(|| Ok(answer(rest.to_vec())))
}

/// Sends `bytes` on a fresh connection and reads one answer, writing and
/// reading at once (a server may answer before it has read everything).
async fn exchange(addr: SocketAddr, bytes: Vec<u8>, then: Then, within: Duration) -> Outcome {
    let stream = match tokio::time::timeout(ANSWER_DEADLINE, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Outcome::Closed(format!("connect failed: {e}")),
        Err(_) => return Outcome::Closed("connect timed out".to_owned()),
    };
    let (mut reader, mut writer) = stream.into_split();
    // The write half lives in the task (and its result) until the read
    // is over: dropping it would send FIN.
    let write = tokio::spawn(async move {
        let result = writer.write_all(&bytes).await;
        if then == Then::HalfClose && result.is_ok() {
            let _ = writer.shutdown().await;
        }
        (writer, result)
    });
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let eof = match reader.read(&mut chunk).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    if buf.len() > MAX_ANSWER {
                        return Outcome::Garbled(format!("answer over {MAX_ANSWER} bytes"));
                    }
                    match parse_response(&buf, false) {
                        Some(Ok(a)) => return Outcome::Answer(a),
                        Some(Err(e)) => return Outcome::Garbled(e),
                        None => continue,
                    }
                }
                Err(e) => Some(e),
            };
            return match parse_response(&buf, true) {
                Some(Ok(a)) => Outcome::Answer(a),
                Some(Err(e)) => Outcome::Garbled(e),
                None => Outcome::Closed(match eof {
                    None => format!("closed after {} bytes", buf.len()),
                    Some(e) => format!("{e} after {} bytes", buf.len()),
                }),
            };
        }
    };
    let outcome = tokio::time::timeout(within, read)
        .await
        .unwrap_or(Outcome::NoAnswer(within));
    write.abort();
    outcome
}

/// Why `text` is not a readable sentence, if it is not.
fn unreadable(body: &[u8]) -> Option<String> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Some("body is not UTF-8".to_owned());
    };
    if text.trim().is_empty() {
        return Some("empty body".to_owned());
    }
    if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\n') {
        return Some(format!("body holds control character {c:?}"));
    }
    if !text.chars().any(char::is_alphabetic) {
        return Some("body has no words".to_owned());
    }
    None
}

/// The mismatches between `outcome` and `expect`, if any.
fn check(expect: &Expect, outcome: &Outcome) -> Result<(), String> {
    let answer = match outcome {
        Outcome::Answer(a) => a,
        Outcome::Closed(_) if expect.may_close => return Ok(()),
        Outcome::Closed(how) => return Err(format!("no answer: {how}")),
        Outcome::NoAnswer(d) => return Err(format!("no answer within {d:?}")),
        Outcome::Garbled(e) => return Err(format!("not an HTTP/1.1 answer: {e}")),
    };
    let mut problems = Vec::new();
    if answer.status >= 500 {
        problems.push("a 5xx for bad input".to_owned());
    }
    if !expect.statuses.contains(&answer.status) {
        problems.push(format!("expected status {:?}", expect.statuses));
    }
    if let Some(allow) = expect.allow
        && answer.header("allow") != Some(allow)
    {
        problems.push(format!(
            "Allow {:?}, expected {allow:?}",
            answer.header("allow")
        ));
    }
    let content_type = answer.header("content-type").unwrap_or_default();
    match expect.body {
        BodyRule::Text => {
            if !content_type.starts_with("text/plain") {
                problems.push(format!(
                    "Content-Type {content_type:?}, expected text/plain"
                ));
            }
            if let Some(why) = unreadable(&answer.body) {
                problems.push(why);
            }
            if answer.status >= 400 && answer.body.len() > MAX_ERROR_BODY {
                problems.push(format!(
                    "error body of {} bytes (limit {MAX_ERROR_BODY})",
                    answer.body.len()
                ));
            }
        }
        BodyRule::TlogSize(size) => {
            if content_type != "text/x.tlog.size" {
                problems.push(format!(
                    "Content-Type {content_type:?}, expected text/x.tlog.size"
                ));
            }
            if answer.body != format!("{size}\n").as_bytes() {
                problems.push(format!("body is not \"{size}\\n\""));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// How an answer is shown in the failure report.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answer(a) => {
            let body = String::from_utf8_lossy(&a.body);
            let shown: String = body.chars().take(160).collect();
            format!(
                "got {} ({:?}) body {shown:?}",
                a.status,
                a.header("content-type").unwrap_or_default()
            )
        }
        other => format!("got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The catalogue.

/// What the cases are built from: the running log and its published tree.
struct Fixture {
    addr: SocketAddr,
    /// The published tree size (also the size the witness last cosigned).
    size: u64,
    root: Hash,
    /// Hashes of the leaves in the tree, by index.
    leaf_hashes: Vec<Hash>,
    /// Signs checkpoints as the log does (the dev log's own key).
    log_signer: Ed25519NoteSigner,
    origin: String,
    /// A message, a submitter key, its public key in hex and a signature by
    /// it of *another* message: add-leaf bodies built from these parse but
    /// are refused (403), so no bad case can add a leaf by accident.
    message: Hash,
    submitter: SigningKey,
    signature_of_another_message: Signature,
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn leaf_body(message: &str, signature: &str, public_key: &str) -> String {
    format!("message={message}\nsignature={signature}\npublic_key={public_key}\n")
}

/// The signature `R || S` with `S` replaced by `S + ℓ` (the group order):
/// the same signature with a non-canonical scalar.
fn with_non_canonical_s(signature: &Signature) -> Signature {
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = signature.0;
    let mut carry = 0u16;
    for (byte, ell) in out.iter_mut().skip(32).zip(ELL) {
        let sum = u16::from(*byte) + u16::from(ell) + carry;
        *byte = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    Signature(out)
}

/// The encodings of the points of small order (the eight torsion points)
/// and a non-canonical encoding of the identity (y = p + 1).
const SMALL_ORDER_KEYS: [(&str, &str); 6] = [
    (
        "the identity point",
        "0100000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "the all-zero key (order 4)",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "a point of order 2",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ),
    (
        "a point of order 8",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    ),
    (
        "another point of order 8",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    ),
    (
        "a non-canonical encoding of the identity",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ),
];

/// The eight torsion points, as candidate `R` values of forged signatures.
const TORSION: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
];

/// A message and a signature `R || 0` that verify under the small-order
/// `key` by Go's (cofactorless) rules, which sigsum-go applies: found by
/// trying torsion points as `R` over a few messages. Such a "signature" is
/// no evidence that anyone signed anything, so the log must refuse it.
fn forge_for_small_order_key(key: &PublicKey) -> (Hash, Signature) {
    for i in 0..256u32 {
        let message = hash(format!("small-order forgery {i}\n").as_bytes());
        let signed = namespaced(NAMESPACE_TREE_LEAF, &checksum(&message));
        for r in TORSION {
            let mut sig = [0u8; 64];
            hex::decode_to_slice(r, &mut sig[..32]).expect("torsion hex");
            let sig = Signature(sig);
            if key.verify(&signed, &sig) {
                return (message, sig);
            }
        }
    }
    panic!("no cofactorless forgery found for small-order key {key}: the case premise is wrong");
}

impl Fixture {
    fn m(&self) -> String {
        hex(&self.message)
    }

    fn s(&self) -> String {
        hex(&self.signature_of_another_message.0)
    }

    fn p(&self) -> String {
        hex(&self.submitter.public_key().0)
    }

    /// A body that parses and is refused for its signature (403).
    fn refused_body(&self) -> String {
        leaf_body(&self.m(), &self.s(), &self.p())
    }

    fn checkpoint_text(&self, size: u64, root: &Hash) -> String {
        Checkpoint::new(self.origin.as_str(), size, *root).to_body()
    }

    /// `text` signed by the log's key, as a note.
    fn log_note(&self, text: &str) -> Vec<u8> {
        let line = self.log_signer.sign(text).to_line();
        format!("{text}\n{line}\n").into_bytes()
    }

    fn witness_body(&self, old: u64, proof: &[Hash], note: &[u8]) -> Vec<u8> {
        AddCheckpointRequest {
            old_size: old,
            proof: proof.to_vec(),
            note,
        }
        .encode()
    }
}

/// The catalogue in phases, run one after the other (the cases of a phase
/// in parallel). Leaf signatures come last: one wrongly accepted grows the
/// tree, which would change the answers of every case that depends on its
/// size (paths, the witness's old size) and hide one gap behind many.
fn catalogue(f: &Fixture) -> Vec<Vec<Case>> {
    let first = [
        add_leaf_bodies(f),
        token_headers(f),
        paths(f),
        tiles(),
        methods(f),
        framing(f),
        witness(f),
    ]
    .concat();
    vec![first, add_leaf_signatures(f)]
}

/// add-leaf bodies that do not parse: 400 (413 when over the 4 KiB limit).
fn add_leaf_bodies(f: &Fixture) -> Vec<Case> {
    let (m, s, p) = (f.m(), f.s(), f.p());
    let good = f.refused_body();
    let body = |name: &str, body: Vec<u8>, expect: Expect| {
        case(
            format!("add-leaf body: {name}"),
            post("/dev/add-leaf", body),
            expect,
        )
    };
    let text = |name: &str, text: String| body(name, text.into_bytes(), status(400));
    let mut cases = vec![
        body("empty", Vec::new(), status(400)),
        text("only whitespace", " \t \n  \n".to_owned()),
        text("a single newline", "\n".to_owned()),
        text(
            "missing message line",
            format!("signature={s}\npublic_key={p}\n"),
        ),
        text(
            "missing signature line",
            format!("message={m}\npublic_key={p}\n"),
        ),
        text(
            "missing public_key line",
            format!("message={m}\nsignature={s}\n"),
        ),
        text("extra key at the end", format!("{good}extra=1\n")),
        text("extra key at the start", format!("extra=1\n{good}")),
        text(
            "extra key in the middle",
            format!("message={m}\nextra=1\nsignature={s}\npublic_key={p}\n"),
        ),
        text("duplicated message line", format!("message={m}\n{good}")),
        text(
            "duplicated public_key line",
            format!("{good}public_key={p}\n"),
        ),
        text("the body twice", format!("{good}{good}")),
        text(
            "signature before message",
            format!("signature={s}\nmessage={m}\npublic_key={p}\n"),
        ),
        text(
            "public_key before signature",
            format!("message={m}\npublic_key={p}\nsignature={s}\n"),
        ),
        text(
            "keys in reverse order",
            format!("public_key={p}\nsignature={s}\nmessage={m}\n"),
        ),
        text(
            "upper-case key",
            leaf_body(&m, &s, &p).replace("message=", "MESSAGE="),
        ),
        text(
            "space before '='",
            leaf_body(&m, &s, &p).replace("message=", "message ="),
        ),
        text(
            "space after '='",
            leaf_body(&m, &s, &p).replace("message=", "message= "),
        ),
        text(
            "trailing space after a value",
            leaf_body(&format!("{m} "), &s, &p),
        ),
        text(
            "two values on one line",
            leaf_body(&format!("{m} {m}"), &s, &p),
        ),
        text(
            "':' instead of '='",
            leaf_body(&m, &s, &p).replace("message=", "message:"),
        ),
        text("a line without '='", format!("message\n{good}")),
        text("odd-length message hex", leaf_body(&m[..63], &s, &p)),
        text("31-byte message", leaf_body(&m[..62], &s, &p)),
        text("33-byte message", leaf_body(&format!("{m}00"), &s, &p)),
        text("empty message", leaf_body("", &s, &p)),
        text(
            "non-hex message",
            leaf_body(&format!("g{}", &m[1..]), &s, &p),
        ),
        text(
            "0x-prefixed message",
            leaf_body(&format!("0x{}", &m[2..]), &s, &p),
        ),
        text(
            "base64 message",
            leaf_body(&BASE64.encode(f.message), &s, &p),
        ),
        text("odd-length signature hex", leaf_body(&m, &s[..127], &p)),
        text("63-byte signature", leaf_body(&m, &s[..126], &p)),
        text("65-byte signature", leaf_body(&m, &format!("{s}00"), &p)),
        text("empty signature", leaf_body(&m, "", &p)),
        text(
            "non-hex signature",
            leaf_body(&m, &format!("{}zz", &s[2..]), &p),
        ),
        text("31-byte public key", leaf_body(&m, &s, &p[..62])),
        text("33-byte public key", leaf_body(&m, &s, &format!("{p}00"))),
        text("odd-length public key hex", leaf_body(&m, &s, &p[..63])),
        text("empty public key", leaf_body(&m, &s, "")),
        text(
            "non-hex public key",
            leaf_body(&m, &s, &format!("{}-1", &p[2..])),
        ),
        text("CRLF line endings", good.replace('\n', "\r\n")),
        text(
            "CR before the last newline",
            format!("{}\r\n", good.trim_end()),
        ),
        text("no final newline", good.trim_end().to_owned()),
        text("trailing garbage", format!("{good}garbage")),
        text("trailing empty line", format!("{good}\n")),
        text("leading empty line", format!("\n{good}")),
        text(
            "empty line between lines",
            format!("message={m}\n\nsignature={s}\npublic_key={p}\n"),
        ),
        text("leading space on a line", format!(" {good}")),
        text("tab instead of newline", good.replacen('\n', "\t", 1)),
        text("a very long line", leaf_body(&"ab".repeat(1500), &s, &p)),
        text(
            "JSON",
            format!("{{\"message\":\"{m}\",\"signature\":\"{s}\",\"public_key\":\"{p}\"}}"),
        ),
        text(
            "form-encoded",
            format!("message={m}&signature={s}&public_key={p}"),
        ),
        text("UTF-8 byte-order mark", format!("\u{feff}{good}")),
        text(
            "non-ASCII letter in a value",
            leaf_body(&format!("é{}", &m[2..]), &s, &p),
        ),
    ];
    let mut nul_in_value = good.clone().into_bytes();
    nul_in_value[10] = 0;
    cases.push(body("NUL byte in a value", nul_in_value, status(400)));
    let mut nul_at_end = good.clone().into_bytes();
    nul_at_end.push(0);
    cases.push(body("NUL byte after the body", nul_at_end, status(400)));
    let mut nul_in_key = good.clone().into_bytes();
    nul_in_key[2] = 0;
    cases.push(body("NUL byte in a key", nul_in_key, status(400)));
    let mut latin1 = good.clone().into_bytes();
    latin1[9] = 0xe9;
    cases.push(body("non-UTF-8 byte in a value", latin1, status(400)));
    let mut bad_key = good.clone().into_bytes();
    bad_key[0] = 0xff;
    cases.push(body("non-UTF-8 byte in a key", bad_key, status(400)));
    cases.push(body(
        "4096 bytes of padding (at the limit)",
        vec![b'\n'; 4096],
        status(400),
    ));
    cases.push(body(
        "4097 bytes (one over the limit)",
        vec![b'\n'; 4097],
        status(413),
    ));
    cases.push(body(
        "a good body padded past 4 KiB",
        format!("{good}{}", "\n".repeat(4000)).into_bytes(),
        status(413),
    ));
    cases.push(body(
        "one MiB",
        vec![b'a'; 1024 * 1024],
        status(413).or_close(),
    ));
    cases
}

/// add-leaf bodies that parse but carry no valid signature: 403.
fn add_leaf_signatures(f: &Fixture) -> Vec<Case> {
    let (m, s, p) = (f.m(), f.s(), f.p());
    let signed = namespaced(NAMESPACE_TREE_LEAF, &checksum(&f.message));
    let good_signature = f.submitter.sign(&signed);
    let other = SigningKey::from_seed(&[0x6f; 32]);
    let by_other = other.sign(&signed);
    let leaf = |name: &str, body: String| {
        case(
            format!("add-leaf signature: {name}"),
            post("/dev/add-leaf", body),
            status(403),
        )
    };
    let mut cases = vec![
        leaf("signature of another message", f.refused_body()),
        leaf(
            "signature by another key",
            leaf_body(&m, &hex(&by_other.0), &p),
        ),
        leaf(
            "valid signature sent with another key",
            leaf_body(&m, &hex(&good_signature.0), &hex(&other.public_key().0)),
        ),
        leaf("all-zero signature", leaf_body(&m, &"00".repeat(64), &p)),
        leaf("all-ones signature", leaf_body(&m, &"ff".repeat(64), &p)),
        leaf(
            "non-canonical S (S + group order)",
            leaf_body(&m, &hex(&with_non_canonical_s(&good_signature).0), &p),
        ),
        leaf(
            "signature over the message instead of its checksum",
            leaf_body(
                &m,
                &hex(&f
                    .submitter
                    .sign(&namespaced(NAMESPACE_TREE_LEAF, &f.message))
                    .0),
                &p,
            ),
        ),
        leaf(
            "signature without the namespace",
            leaf_body(&m, &hex(&f.submitter.sign(&checksum(&f.message)).0), &p),
        ),
        leaf(
            "public key that is not a curve point",
            leaf_body(&m, &hex(&good_signature.0), &"ff".repeat(32)),
        ),
        // Hex is case-insensitive (as in sigsum-go): these parse, and the
        // wrong signature is what is refused.
        leaf(
            "upper-case hex",
            leaf_body(&m, &s, &p)
                .to_uppercase()
                .replace("MESSAGE=", "message=")
                .replace("SIGNATURE=", "signature=")
                .replace("PUBLIC_KEY=", "public_key="),
        ),
        leaf("mixed-case hex", leaf_body(&m.to_uppercase(), &s, &p)),
    ];
    for (what, key_hex) in SMALL_ORDER_KEYS {
        let mut key = [0u8; 32];
        hex::decode_to_slice(key_hex, &mut key).expect("key hex");
        let (message, signature) = forge_for_small_order_key(&PublicKey(key));
        cases.push(leaf(
            &format!("small-order key: {what}, with a signature valid by Go's rules"),
            leaf_body(&hex(&message), &hex(&signature.0), key_hex),
        ));
    }
    cases
}

/// `sigsum-token` headers on an add-leaf whose body parses but whose
/// signature is refused: the header is checked first, so a bad one is a
/// 400; one that passes leaves the 403 of the signature.
fn token_headers(f: &Fixture) -> Vec<Case> {
    let token = "ab".repeat(64);
    let with = |name: &str, values: &[Vec<u8>], expect: Expect| {
        let mut request = post("/dev/add-leaf", f.refused_body());
        for v in values {
            request = request.header("sigsum-token", v.clone());
        }
        case(format!("sigsum-token: {name}"), request, expect)
    };
    let one = |name: &str, value: String, expect: Expect| with(name, &[value.into_bytes()], expect);
    let domain =
        |name: &str, domain: &str, expect: Expect| one(name, format!("{domain} {token}"), expect);
    vec![
        one("only a domain", "example.org".to_owned(), status(400)),
        one("only a token", token.clone(), status(400)),
        one("empty value", String::new(), status(400)),
        one(
            "domain and token without a space",
            format!("example.org{token}"),
            status(400),
        ),
        one(
            "three parts",
            format!("example.org {token} extra"),
            status(400),
        ),
        one("two spaces", format!("example.org  {token}"), status(400)),
        one(
            "tab separator",
            format!("example.org\t{token}"),
            status(400),
        ),
        one(
            "127 hex characters",
            format!("example.org {}", &token[..127]),
            status(400),
        ),
        one(
            "126 hex characters",
            format!("example.org {}", &token[..126]),
            status(400),
        ),
        one(
            "130 hex characters",
            format!("example.org {token}00"),
            status(400),
        ),
        one(
            "non-hex token",
            format!("example.org {}zz", &token[2..]),
            status(400),
        ),
        one(
            "base64 token",
            format!("example.org {}", BASE64.encode([0xab; 64])),
            status(400),
        ),
        with(
            "two headers",
            &[
                format!("example.org {token}").into_bytes(),
                format!("example.com {token}").into_bytes(),
            ],
            status(400),
        ),
        with(
            "the same header twice",
            &[
                format!("example.org {token}").into_bytes(),
                format!("example.org {token}").into_bytes(),
            ],
            status(400),
        ),
        with(
            "non-ASCII (Latin-1) byte",
            &[format!("ex\u{e4}mple.org {token}").into_bytes()],
            status(400),
        ),
        with(
            "obs-text byte in the domain",
            &[[b"ex\xe4mple.org ".as_slice(), token.as_bytes()].concat()],
            status(400),
        ),
        domain("domain with an empty label (a..org)", "a..org", status(400)),
        domain("domain starting with a dot", ".example.org", status(400)),
        domain("domain ending in two dots", "example.org..", status(400)),
        domain("domain that is a single dot", ".", status(400)),
        domain(
            "domain with a 300-character label",
            &format!("{}.org", "a".repeat(300)),
            status(400),
        ),
        domain(
            "domain of 247 characters",
            &format!("{}.org", vec!["b".repeat(60); 4].join(".")),
            status(400),
        ),
        domain("domain with a leading hyphen", "-example.org", status(400)),
        domain("domain with a trailing hyphen", "example-.org", status(400)),
        domain("domain that is an IP address", "192.0.2.1", status(400)),
        domain("domain with a slash", "example.org/x", status(400)),
        domain(
            "domain with a colon and port",
            "example.org:53",
            status(400),
        ),
        domain("domain with an '@'", "user@example.org", status(400)),
        // Accepted domains: the header passes and the leaf signature is
        // what is refused.
        domain(
            "fully qualified domain (one trailing dot is allowed)",
            "example.org.",
            status(403),
        ),
        domain("domain with an underscore", "_sub.example.org", status(403)),
        domain("punycode domain", "xn--exmple-cua.org", status(403)),
        one(
            "upper-case token hex is accepted",
            format!("example.org {}", token.to_uppercase()),
            status(403),
        ),
    ]
}

/// GET paths: unknown endpoints and shards (404), malformed arguments or
/// sizes beyond the published tree (400), leaves not in the tree (404).
/// In targets, `{n}` is the published size, `{n+1}` one more, `{h}` the
/// hash of leaf 0, `{last}` that of the last leaf and `{unknown}` a hash
/// of no leaf.
#[rustfmt::skip]
const PATHS: &[(&str, &str, u16)] = &[
    // `/` is the index of shards, `/shards.json` its JSON form.
    ("a page beside the index", "/index.html", 404),
    ("the JSON index with a trailing slash", "/shards.json/", 404),
    ("unknown endpoint", "/dev/get-nothing", 404),
    ("endpoint name in upper case", "/dev/GET-TREE-HEAD", 404),
    ("get-tree-head with a trailing slash", "/dev/get-tree-head/", 404),
    ("get-tree-head with an argument", "/dev/get-tree-head/1", 404),
    ("double slash before the endpoint", "/dev//get-tree-head", 404),
    ("'.' segment", "/dev/./get-tree-head", 404),
    ("'..' segment", "/dev/../dev/get-tree-head", 404),
    // Paths are not percent-decoded: an escape never names an endpoint.
    ("percent-escaped endpoint name", "/dev/get-tree-h%65ad", 404),
    ("percent-escaped slash", "/dev%2Fget-tree-head", 404),
    ("unknown shard", "/nope/get-tree-head", 404),
    ("shard name in upper case", "/DEV/get-tree-head", 404),
    ("shard name with a suffix", "/dev2/get-tree-head", 404),
    ("endpoint without a shard", "/get-tree-head", 404),
    ("checkpoint with a trailing slash", "/dev/checkpoint/", 404),
    ("checkpoint without a shard", "/checkpoint", 404),
    ("tile without a path", "/dev/tile", 404),
    ("tile/ alone", "/dev/tile/", 404),
    ("witness without an endpoint", "/witness/", 404),
    ("unknown witness endpoint", "/witness/get-size", 404),
    ("add-checkpoint with a suffix", "/witness/add-checkpoint/x", 404),
    ("readyz with a suffix", "/readyz/x", 404),
    ("get-inclusion-proof without arguments", "/dev/get-inclusion-proof", 400),
    ("get-inclusion-proof/", "/dev/get-inclusion-proof/", 400),
    ("get-inclusion-proof with only a size", "/dev/get-inclusion-proof/{n}", 400),
    ("get-inclusion-proof with an empty hash", "/dev/get-inclusion-proof/{n}/", 400),
    ("get-inclusion-proof with an empty size", "/dev/get-inclusion-proof//{h}", 400),
    ("get-inclusion-proof with a trailing slash", "/dev/get-inclusion-proof/{n}/{h}/", 400),
    ("get-inclusion-proof with a third argument", "/dev/get-inclusion-proof/{n}/{h}/1", 400),
    ("get-inclusion-proof of size 0", "/dev/get-inclusion-proof/0/{h}", 400),
    ("get-inclusion-proof of size 1", "/dev/get-inclusion-proof/1/{h}", 400),
    ("get-inclusion-proof beyond the published size", "/dev/get-inclusion-proof/{n+1}/{h}", 400),
    ("get-inclusion-proof of size 2^63-1", "/dev/get-inclusion-proof/9223372036854775807/{h}", 400),
    ("get-inclusion-proof of size 2^63", "/dev/get-inclusion-proof/9223372036854775808/{h}", 400),
    ("get-inclusion-proof of size 2^64", "/dev/get-inclusion-proof/18446744073709551616/{h}", 400),
    ("get-inclusion-proof of a 30-digit size", "/dev/get-inclusion-proof/999999999999999999999999999999/{h}", 400),
    ("get-inclusion-proof of a negative size", "/dev/get-inclusion-proof/-{n}/{h}", 400),
    ("get-inclusion-proof with a '+' size", "/dev/get-inclusion-proof/+{n}/{h}", 400),
    ("get-inclusion-proof with a leading zero", "/dev/get-inclusion-proof/0{n}/{h}", 400),
    ("get-inclusion-proof with a hex size", "/dev/get-inclusion-proof/0x{n}/{h}", 400),
    ("get-inclusion-proof with a decimal point", "/dev/get-inclusion-proof/{n}.0/{h}", 400),
    ("get-inclusion-proof with a percent-escaped size", "/dev/get-inclusion-proof/%3{n}/{h}", 400),
    ("get-inclusion-proof with a 63-digit hash", "/dev/get-inclusion-proof/{n}/{h:63}", 400),
    ("get-inclusion-proof with a 66-digit hash", "/dev/get-inclusion-proof/{n}/{h}00", 400),
    ("get-inclusion-proof with a non-hex hash", "/dev/get-inclusion-proof/{n}/xy{h:62}", 400),
    ("get-inclusion-proof with a percent-escaped hash", "/dev/get-inclusion-proof/{n}/%61{h:62}", 400),
    ("get-inclusion-proof with a base64url hash", "/dev/get-inclusion-proof/{n}/Kt6Vk7xgQ8wGzCgoMtYs_n2n9wHlfAVxU2p1vzeVr1c=", 400),
    ("get-inclusion-proof with '..' arguments", "/dev/get-inclusion-proof/../../get-tree-head", 400),
    ("get-inclusion-proof of a leaf not in the log", "/dev/get-inclusion-proof/{n}/{unknown}", 404),
    ("get-inclusion-proof of a leaf beyond the size asked", "/dev/get-inclusion-proof/2/{last}", 404),
    ("get-consistency-proof without arguments", "/dev/get-consistency-proof", 400),
    ("get-consistency-proof/", "/dev/get-consistency-proof/", 400),
    ("get-consistency-proof with one size", "/dev/get-consistency-proof/1", 400),
    ("get-consistency-proof with an empty new size", "/dev/get-consistency-proof/1/", 400),
    ("get-consistency-proof with a trailing slash", "/dev/get-consistency-proof/1/{n}/", 400),
    ("get-consistency-proof with three sizes", "/dev/get-consistency-proof/1/2/{n}", 400),
    ("get-consistency-proof from 0", "/dev/get-consistency-proof/0/{n}", 400),
    ("get-consistency-proof of equal sizes", "/dev/get-consistency-proof/{n}/{n}", 400),
    ("get-consistency-proof old > new", "/dev/get-consistency-proof/{n}/1", 400),
    ("get-consistency-proof beyond the published size", "/dev/get-consistency-proof/1/{n+1}", 400),
    ("get-consistency-proof to 2^63", "/dev/get-consistency-proof/1/9223372036854775808", 400),
    ("get-consistency-proof to 2^64", "/dev/get-consistency-proof/1/18446744073709551616", 400),
    ("get-consistency-proof from a negative size", "/dev/get-consistency-proof/-1/{n}", 400),
    ("get-consistency-proof with a leading zero", "/dev/get-consistency-proof/01/{n}", 400),
    ("get-consistency-proof with a hex size", "/dev/get-consistency-proof/1/0x{n}", 400),
    ("get-consistency-proof with a percent-escaped size", "/dev/get-consistency-proof/%31/{n}", 400),
    ("get-consistency-proof with a percent-escaped slash", "/dev/get-consistency-proof/1%2F{n}", 400),
    ("get-consistency-proof with '..'", "/dev/get-consistency-proof/1/../{n}", 400),
    ("get-consistency-proof with an escaped space", "/dev/get-consistency-proof/1/%20{n}", 400),
    ("get-leaves without arguments", "/dev/get-leaves", 400),
    ("get-leaves/", "/dev/get-leaves/", 400),
    ("get-leaves with only a start", "/dev/get-leaves/0", 400),
    ("get-leaves with an empty end", "/dev/get-leaves/0/", 400),
    ("get-leaves with three arguments", "/dev/get-leaves/0/1/2", 400),
    ("get-leaves start = end", "/dev/get-leaves/1/1", 400),
    ("get-leaves start > end", "/dev/get-leaves/2/1", 400),
    ("get-leaves start at the published size", "/dev/get-leaves/{n}/{n+1}", 400),
    ("get-leaves end beyond the published size", "/dev/get-leaves/0/{n+1}", 400),
    ("get-leaves to 2^63", "/dev/get-leaves/0/9223372036854775808", 400),
    ("get-leaves to 2^64", "/dev/get-leaves/0/18446744073709551616", 400),
    ("get-leaves from 2^63-1", "/dev/get-leaves/9223372036854775806/9223372036854775807", 400),
    ("get-leaves from a negative start", "/dev/get-leaves/-1/1", 400),
    ("get-leaves with a leading zero", "/dev/get-leaves/00/1", 400),
    ("get-leaves with a decimal point", "/dev/get-leaves/0/1.5", 400),
    ("get-leaves with a percent-escaped start", "/dev/get-leaves/%30/1", 400),
    ("get-leaves with words", "/dev/get-leaves/zero/one", 400),
];

fn paths(f: &Fixture) -> Vec<Case> {
    let h = hex(&f.leaf_hashes[0]);
    let last = hex(&f.leaf_hashes[f.leaf_hashes.len() - 1]);
    let unknown = hex(&hash(b"a leaf hash that is not in the tree"));
    let mut cases: Vec<Case> = PATHS
        .iter()
        .map(|&(name, target, code)| {
            let target = target
                .replace("{n+1}", &(f.size + 1).to_string())
                .replace("{n}", &f.size.to_string())
                .replace("{h:63}", &h[..63])
                .replace("{h:62}", &h[..62])
                .replace("{h}", &h)
                .replace("{last}", &last)
                .replace("{unknown}", &unknown);
            case(format!("GET {name}"), get(&target), status(code))
        })
        .collect();
    cases.push(case(
        "GET an 8 KiB path",
        get(&format!("/dev/{}", "a".repeat(8 * 1024))),
        status(404),
    ));
    cases
}

/// Tile paths that are not canonical, or name tiles that do not exist: 404.
fn tiles() -> Vec<Case> {
    [
        ("non-final index group without x", "0/001/000"),
        ("x on the final group", "0/x001"),
        ("level above 7", "9/000"),
        ("level 64", "64/000"),
        ("negative level", "-1/000"),
        ("level with a leading zero", "00/000"),
        ("non-numeric level", "x/000"),
        ("index of four digits", "0/0000"),
        ("index of two digits", "0/00"),
        ("leading all-zero group", "0/x000/001"),
        ("index beyond 2^64", "0/x999/x999/x999/x999/x999/x999/999"),
        ("width 0", "0/000.p/0"),
        ("entries width 0", "entries/000.p/0"),
        ("width 256", "0/000.p/256"),
        ("entries width 256", "entries/000.p/256"),
        ("width with a leading zero", "0/000.p/003"),
        ("empty width", "0/000.p/"),
        ("upper-case .P", "0/000.P/3"),
        ("segment after the width", "0/000.p/3/x"),
        ("trailing slash", "0/000/"),
        ("entries without an index", "entries/"),
        ("percent-escaped index", "0/%30%30%30.p/3"),
        ("a full tile not yet written", "0/000"),
        ("a full entry bundle not yet written", "entries/000"),
        ("a partial tile wider than the tree", "0/000.p/200"),
        ("a tile far beyond the tree", "0/x001/000"),
    ]
    .into_iter()
    .map(|(name, path)| {
        case(
            format!("GET tile: {name}"),
            get(&format!("/dev/tile/{path}")),
            status(404),
        )
    })
    .collect()
}

/// Methods an endpoint does not take: 405 with `Allow`.
fn methods(f: &Fixture) -> Vec<Case> {
    let n = f.size;
    let h = hex(&f.leaf_hashes[0]);
    let reads = [
        "/dev/".to_owned(),
        "/dev/get-tree-head".to_owned(),
        format!("/dev/get-inclusion-proof/{n}/{h}"),
        format!("/dev/get-consistency-proof/1/{n}"),
        "/dev/get-leaves/0/1".to_owned(),
        "/dev/checkpoint".to_owned(),
        format!("/dev/tile/0/000.p/{n}"),
    ];
    let posts = [
        ("/dev/add-leaf", "POST"),
        ("/witness/add-checkpoint", "POST"),
    ];
    let mut cases = Vec::new();
    for target in &reads {
        for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            cases.push(case(
                format!("{m} {target}"),
                method(m, target),
                status(405).allow("GET, HEAD"),
            ));
        }
    }
    for (target, allow) in posts {
        for m in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            cases.push(case(
                format!("{m} {target}"),
                method(m, target),
                status(405).allow(allow),
            ));
        }
    }
    cases.extend([
        case(
            "extension method BREW on get-tree-head",
            method("BREW", "/dev/get-tree-head"),
            status(405).allow("GET, HEAD"),
        ),
        case(
            "lower-case 'post' on add-leaf (methods are case-sensitive)",
            method("post", "/dev/add-leaf"),
            status(405).allow("POST"),
        ),
        case(
            "a 2000-character method on add-leaf",
            method(&"X".repeat(2000), "/dev/add-leaf"),
            one_of(&[400, 405]),
        ),
        case(
            "POST /readyz",
            method("POST", "/readyz"),
            status(405).allow("GET,HEAD"),
        ),
        case(
            "DELETE /metrics",
            method("DELETE", "/metrics"),
            status(405).allow("GET,HEAD"),
        ),
    ]);
    cases
}

/// Broken framing and HTTP, written as raw bytes.
fn framing(f: &Fixture) -> Vec<Case> {
    let host = f.addr;
    let good = f.refused_body();
    let len = good.len();
    let crlf = good.replace('\n', "\r\n");
    let post_head = |extra: &str| {
        format!("POST /dev/add-leaf HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n")
    };
    let r = |name: &str, bytes: Vec<u8>, expect: Expect| {
        case(format!("framing: {name}"), raw(bytes), expect)
    };
    let eof = |name: &str, bytes: Vec<u8>, expect: Expect| {
        case(format!("framing: {name}"), raw_then_eof(bytes), expect)
    };
    let chunked = |chunks: &str| {
        format!("{}{chunks}", post_head("Transfer-Encoding: chunked\r\n")).into_bytes()
    };
    let get_head = |extra: &str| {
        format!(
            "GET /dev/get-tree-head HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n"
        )
        .into_bytes()
    };
    let many_headers: String = (0..200).map(|i| format!("X-Header-{i}: {i}\r\n")).collect();
    vec![
        r(
            "Content-Length shorter than the body",
            format!("{}{good}", post_head("Content-Length: 10\r\n")).into_bytes(),
            status(400),
        ),
        eof(
            "Content-Length longer than the body, then end of input",
            format!(
                "{}{good}",
                post_head(&format!("Content-Length: {}\r\n", len + 50))
            )
            .into_bytes(),
            status(400).or_close(),
        ),
        r(
            "Content-Length longer than the body, then silence",
            format!(
                "{}{good}",
                post_head(&format!("Content-Length: {}\r\n", len + 50))
            )
            .into_bytes(),
            status(408).or_close().within(STALL_DEADLINE),
        ),
        r(
            "Content-Length: 0 on add-leaf",
            post_head("Content-Length: 0\r\n").into_bytes(),
            status(400),
        ),
        r(
            "two different Content-Length headers",
            format!(
                "{}{good}",
                post_head(&format!("Content-Length: {len}\r\nContent-Length: 5\r\n"))
            )
            .into_bytes(),
            status(400).or_close(),
        ),
        r(
            "non-numeric Content-Length",
            format!("{}{good}", post_head("Content-Length: abc\r\n")).into_bytes(),
            status(400).or_close(),
        ),
        r(
            "negative Content-Length",
            format!("{}{good}", post_head("Content-Length: -1\r\n")).into_bytes(),
            status(400).or_close(),
        ),
        r(
            "Content-Length with a sign",
            format!(
                "{}{good}",
                post_head(&format!("Content-Length: +{len}\r\n"))
            )
            .into_bytes(),
            status(400).or_close(),
        ),
        r(
            "Content-Length beyond 2^64",
            format!(
                "{}{good}",
                post_head("Content-Length: 99999999999999999999999\r\n")
            )
            .into_bytes(),
            one_of(&[400, 413]).or_close(),
        ),
        r(
            "Content-Length of 5000 declared, small body sent",
            format!("{}{good}", post_head("Content-Length: 5000\r\n")).into_bytes(),
            status(413),
        ),
        r(
            "Expect: 100-continue with a Content-Length over the limit",
            post_head("Content-Length: 1000000\r\nExpect: 100-continue\r\n").into_bytes(),
            status(413),
        ),
        r(
            "Expect: 100-continue with a malformed body",
            format!(
                "{}{crlf}",
                post_head(&format!(
                    "Content-Length: {}\r\nExpect: 100-continue\r\n",
                    crlf.len()
                ))
            )
            .into_bytes(),
            status(400),
        ),
        r(
            "chunked body with a non-hex chunk size",
            chunked("zz\r\nabc\r\n0\r\n\r\n"),
            status(400).or_close(),
        ),
        r(
            "chunked body with a chunk size beyond 2^64",
            chunked("fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
            one_of(&[400, 413]).or_close(),
        ),
        r(
            "chunked body with a negative chunk size",
            chunked("-5\r\nabc\r\n0\r\n\r\n"),
            status(400).or_close(),
        ),
        eof(
            "chunk larger than the data, then end of input",
            chunked("100\r\nabc"),
            status(400).or_close(),
        ),
        r(
            "chunk without its CRLF",
            chunked("3\r\nabcdef\r\n0\r\n\r\n"),
            status(400).or_close(),
        ),
        eof(
            "chunked body without the last chunk, then end of input",
            chunked(&format!("{len:x}\r\n{good}\r\n")),
            status(400).or_close(),
        ),
        r(
            "chunked body over the 4 KiB limit",
            chunked(&(format!("400\r\n{}\r\n", "a".repeat(1024)).repeat(5) + "0\r\n\r\n")),
            status(413).or_close(),
        ),
        r(
            "chunked body with an extension and a malformed body",
            chunked("5;name=value\r\nhello\r\n0\r\n\r\n"),
            status(400),
        ),
        r(
            "chunked and Content-Length together",
            format!(
                "{}{len:x}\r\n{good}\r\n0\r\n\r\n",
                post_head(&format!(
                    "Transfer-Encoding: chunked\r\nContent-Length: {len}\r\n"
                ))
            )
            .into_bytes(),
            one_of(&[400, 403]).or_close(),
        ),
        r(
            "Transfer-Encoding gzip",
            format!("{}{good}", post_head("Transfer-Encoding: gzip\r\n")).into_bytes(),
            status(400).or_close(),
        ),
        // Lenient but harmless: hyper reads "chunked, chunked" as one
        // chunked coding, and the body then gets the usual checks.
        r(
            "Transfer-Encoding chunked twice",
            format!(
                "{}{len:x}\r\n{good}\r\n0\r\n\r\n",
                post_head("Transfer-Encoding: chunked, chunked\r\n")
            )
            .into_bytes(),
            one_of(&[400, 403]).or_close(),
        ),
        // Valid HTTP/1.0 needs no Host: answered, deliberately, with 200.
        r(
            "HTTP/1.0 without Host (valid: 200)",
            b"GET /dev/get-tree-head HTTP/1.0\r\n\r\n".to_vec(),
            status(200),
        ),
        r(
            "HTTP/1.0 add-leaf with a malformed body",
            b"POST /dev/add-leaf HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            status(400),
        ),
        r(
            "HTTP/1.1 without Host",
            b"GET /dev/get-tree-head HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            status(400),
        ),
        r(
            "two Host headers",
            get_head(&format!("Host: {host}\r\n")),
            status(400),
        ),
        r(
            "Host with a space",
            b"GET /dev/get-tree-head HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n".to_vec(),
            status(400),
        ),
        r(
            "a 600 KB header value",
            get_head(&format!("X-Long: {}\r\n", "a".repeat(600 * 1024))),
            status(431).or_close(),
        ),
        r(
            "200 headers",
            get_head(&many_headers),
            status(431).or_close(),
        ),
        r(
            "header line without a colon",
            get_head("NoColonHere\r\n"),
            status(400).or_close(),
        ),
        r(
            "space before a header's colon",
            get_head("X-Space : 1\r\n"),
            status(400).or_close(),
        ),
        r(
            "obsolete line folding",
            get_head("X-Folded: a\r\n b\r\n"),
            status(400).or_close(),
        ),
        r(
            "NUL in a header value",
            get_head("X-Nul: a\0b\r\n"),
            status(400).or_close(),
        ),
        r(
            "DEL in a header name",
            get_head("X-B\x7fad: 1\r\n"),
            status(400).or_close(),
        ),
        r(
            "garbage request line",
            b"HELLO\r\n\r\n".to_vec(),
            status(400).or_close(),
        ),
        r(
            "only empty lines, then silence",
            b"\r\n\r\n\r\n".to_vec(),
            one_of(&[400, 408]).or_close().within(STALL_DEADLINE),
        ),
        r(
            "HTTP version 1.2",
            format!("GET /dev/get-tree-head HTTP/1.2\r\nHost: {host}\r\n\r\n").into_bytes(),
            one_of(&[400, 505]).or_close(),
        ),
        r(
            "HTTP version 3.0",
            format!("GET /dev/get-tree-head HTTP/3.0\r\nHost: {host}\r\n\r\n").into_bytes(),
            one_of(&[400, 505]).or_close(),
        ),
        r(
            "lower-case protocol name",
            format!("GET /dev/get-tree-head http/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
            status(400).or_close(),
        ),
        r(
            "space in the request target",
            format!("GET /dev/get-tree head HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
            status(400).or_close(),
        ),
        r(
            "raw non-ASCII byte in the request target",
            [
                b"GET /dev/get-tree-h\xe9ad HTTP/1.1\r\nHost: ".as_slice(),
                host.to_string().as_bytes(),
                b"\r\nConnection: close\r\n\r\n",
            ]
            .concat(),
            status(400).or_close(),
        ),
        r(
            "request target without a leading slash",
            format!("GET dev/get-tree-head HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            one_of(&[400, 404]).or_close(),
        ),
        r(
            "asterisk-form target",
            format!("OPTIONS * HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes(),
            one_of(&[400, 404, 405]).or_close(),
        ),
        r(
            "a 100 KiB request target",
            format!(
                "GET /dev/{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
                "a".repeat(100 * 1024)
            )
            .into_bytes(),
            one_of(&[400, 404, 414, 431]).or_close(),
        ),
        r(
            "binary garbage",
            (0..=255u8).cycle().take(2048).collect(),
            status(400).or_close(),
        ),
        r(
            "a TLS ClientHello",
            [
                0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03,
            ]
            .into_iter()
            .chain([0u8; 40])
            .collect(),
            status(400).or_close(),
        ),
        r(
            "nothing at all (idle connection)",
            Vec::new(),
            status(408).or_close().within(STALL_DEADLINE),
        ),
        r(
            "half a request head, then silence",
            format!("GET /dev/get-tree-head HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").into_bytes(),
            status(408).or_close().within(STALL_DEADLINE),
        ),
    ]
}

/// Bad add-checkpoint requests to the embedded witness (C2SP
/// tlog-witness): 400 malformed, 403 not signed by the log, 404 unknown
/// log, 409 wrong old size, 413 too large, 422 inconsistent.
fn witness(f: &Fixture) -> Vec<Case> {
    let n = f.size;
    let current = f.checkpoint_text(n, &f.root);
    let note = f.log_note(&current);
    let other_root = hash(b"another root");
    let w = |name: &str, body: Vec<u8>, expect: Expect| {
        case(
            format!("add-checkpoint: {name}"),
            post("/witness/add-checkpoint", body),
            expect,
        )
    };
    let framed = |head: &str| [head.as_bytes(), &note].concat();
    let other_key = Ed25519NoteSigner::new(&f.origin, &[0x0f; 32]).expect("signer");
    let foreign = Ed25519NoteSigner::new("example.org/log", &[0x0e; 32]).expect("signer");
    let foreign_sigsum_key = SigningKey::from_seed(&[0x0d; 32]).public_key();
    let foreign_origin = cairn_sigsum::key::log_origin(&foreign_sigsum_key);
    let foreign_sigsum = Ed25519NoteSigner::new(&foreign_origin, &[0x0d; 32]).expect("signer");
    let signed_by = |signer: &Ed25519NoteSigner, text: &str| {
        format!("{text}\n{}\n", signer.sign(text).to_line()).into_bytes()
    };
    let mut corrupted = f.log_signer.sign(&current);
    let mut blob = corrupted.blob().to_vec();
    blob[0] ^= 1;
    corrupted = cairn_tlog::note::NoteSignature::new(corrupted.name(), corrupted.key_id(), blob)
        .expect("signature line");
    let proof_line = BASE64.encode([7u8; 32]);
    vec![
        // Framing (400).
        w("empty body", Vec::new(), status(400)),
        w(
            "only the old line",
            format!("old {n}\n").into_bytes(),
            status(400),
        ),
        w(
            "old line without a newline",
            format!("old {n}").into_bytes(),
            status(400),
        ),
        w("old line without a size", framed("old\n\n"), status(400)),
        w(
            "old size with a leading zero",
            framed(&format!("old 0{n}\n\n")),
            status(400),
        ),
        w("negative old size", framed("old -1\n\n"), status(400)),
        w(
            "old size of 2^63",
            framed("old 9223372036854775808\n\n"),
            status(400),
        ),
        w(
            "old size with two numbers",
            framed(&format!("old {n} 1\n\n")),
            status(400),
        ),
        w(
            "upper-case OLD",
            framed(&format!("OLD {n}\n\n")),
            status(400),
        ),
        w(
            "two spaces after old",
            framed(&format!("old  {n}\n\n")),
            status(400),
        ),
        w(
            "CRLF after the old line",
            framed(&format!("old {n}\r\n\n")),
            status(400),
        ),
        w(
            "no empty line before the checkpoint",
            framed(&format!("old {n}\n")),
            status(400),
        ),
        w(
            "nothing after the empty line",
            format!("old {n}\n\n").into_bytes(),
            status(400),
        ),
        w(
            "proof line that is not base64",
            framed(&format!("old {n}\n!!!!\n\n")),
            status(400),
        ),
        w(
            "proof line of 31 bytes",
            framed(&format!("old {n}\n{}\n\n", BASE64.encode([1u8; 31]))),
            status(400),
        ),
        w(
            "proof line of 33 bytes",
            framed(&format!("old {n}\n{}\n\n", BASE64.encode([1u8; 33]))),
            status(400),
        ),
        w(
            "proof line with non-zero padding bits",
            framed(&format!(
                "old {n}\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n\n"
            )),
            status(400),
        ),
        w(
            "proof line without padding",
            framed(&format!(
                "old {n}\n{}\n\n",
                proof_line.trim_end_matches('=')
            )),
            status(400),
        ),
        w(
            "proof line in URL-safe base64",
            framed(&format!(
                "old {n}\n{}\n\n",
                base64::engine::general_purpose::URL_SAFE.encode([0xfb; 32])
            )),
            status(400),
        ),
        w(
            "64 proof lines",
            framed(&format!(
                "old {n}\n{}\n",
                format!("{proof_line}\n").repeat(64)
            )),
            status(400),
        ),
        // The note and the checkpoint in it (400).
        w(
            "a note that is not a note",
            format!("old {n}\n\nnot a note").into_bytes(),
            status(400),
        ),
        w(
            "unsigned checkpoint",
            format!("old {n}\n\n{current}\n").into_bytes(),
            status(400),
        ),
        w(
            "checkpoint without the empty line before its signature",
            format!(
                "old {n}\n\n{current}{}\n",
                f.log_signer.sign(&current).to_line()
            )
            .into_bytes(),
            status(400),
        ),
        w(
            "non-UTF-8 note",
            [
                format!("old {n}\n\n").as_bytes(),
                b"\xff\xfe\n1\nx\n\n\xe2\x80\x94 a b\n",
            ]
            .concat(),
            status(400),
        ),
        w(
            "control character in the checkpoint",
            f.witness_body(n, &[], &f.log_note(&current.replacen('\n', "\x01\n", 1))),
            status(400),
        ),
        w(
            "checkpoint of two lines",
            f.witness_body(n, &[], &f.log_note(&format!("{}\n{n}\n", f.origin))),
            status(400),
        ),
        w(
            "checkpoint size with a leading zero",
            f.witness_body(
                n,
                &[],
                &f.log_note(&current.replacen(&format!("\n{n}\n"), &format!("\n0{n}\n"), 1)),
            ),
            status(400),
        ),
        w(
            "checkpoint size of 2^63",
            f.witness_body(
                n,
                &[],
                &f.log_note(&current.replacen(&format!("\n{n}\n"), "\n9223372036854775808\n", 1)),
            ),
            status(400),
        ),
        w(
            "checkpoint root that is not base64",
            f.witness_body(n, &[], &f.log_note(&format!("{}\n{n}\n!!!!\n", f.origin))),
            status(400),
        ),
        w(
            "checkpoint root of 31 bytes",
            f.witness_body(
                n,
                &[],
                &f.log_note(&format!(
                    "{}\n{n}\n{}\n",
                    f.origin,
                    BASE64.encode([1u8; 31])
                )),
            ),
            status(400),
        ),
        w(
            "checkpoint with an extension line (Sigsum has none)",
            f.witness_body(n, &[], &f.log_note(&format!("{current}extension\n"))),
            status(400),
        ),
        w(
            "101 signature lines",
            f.witness_body(
                n,
                &[],
                format!(
                    "{current}\n{}",
                    format!("{}\n", f.log_signer.sign(&current).to_line()).repeat(101)
                )
                .as_bytes(),
            ),
            status(400),
        ),
        w(
            "old size above the checkpoint size",
            f.witness_body(n + 1, &[], &note),
            status(400),
        ),
        w(
            "size smaller than the witness's, old = the witness's",
            f.witness_body(n, &[], &f.log_note(&f.checkpoint_text(n - 1, &other_root))),
            status(400),
        ),
        // Origin (404).
        w(
            "checkpoint of an unknown log",
            f.witness_body(
                n,
                &[],
                &signed_by(
                    &foreign,
                    &Checkpoint::new("example.org/log", n, f.root).to_body(),
                ),
            ),
            status(404),
        ),
        w(
            "checkpoint of another Sigsum log",
            f.witness_body(
                n,
                &[],
                &signed_by(
                    &foreign_sigsum,
                    &Checkpoint::new(foreign_origin.as_str(), n, f.root).to_body(),
                ),
            ),
            status(404),
        ),
        // Signatures (403).
        w(
            "checkpoint signed by another key under the log's name",
            f.witness_body(n, &[], &signed_by(&other_key, &current)),
            status(403),
        ),
        w(
            "checkpoint signed only by an unknown key",
            f.witness_body(n, &[], &signed_by(&foreign, &current)),
            status(403),
        ),
        w(
            "corrupted log signature",
            f.witness_body(
                n,
                &[],
                format!("{current}\n{}\n", corrupted.to_line()).as_bytes(),
            ),
            status(403),
        ),
        w(
            "two signatures by the log key",
            f.witness_body(
                n,
                &[],
                format!(
                    "{current}\n{}\n{}\n",
                    f.log_signer.sign(&current).to_line(),
                    f.log_signer.sign(&current).to_line()
                )
                .as_bytes(),
            ),
            status(403),
        ),
        w(
            "signature line that is not base64",
            f.witness_body(
                n,
                &[],
                format!("{current}\n\u{2014} {} !!!!\n", f.origin).as_bytes(),
            ),
            status(403),
        ),
        w(
            "signature line without the em dash",
            f.witness_body(
                n,
                &[],
                format!("{current}\n- {} AAAAAAAA\n", f.origin).as_bytes(),
            ),
            status(403),
        ),
        w(
            "checkpoint signed for another size",
            f.witness_body(
                n,
                &[],
                format!(
                    "{current}\n{}\n",
                    f.log_signer
                        .sign(&f.checkpoint_text(n + 1, &f.root))
                        .to_line()
                )
                .as_bytes(),
            ),
            status(403),
        ),
        // Old size (409, with the witness's size as text/x.tlog.size).
        w(
            "old size 0 for a tree the witness knows",
            f.witness_body(0, &[], &note),
            status(409).tlog_size(n),
        ),
        w(
            "size smaller than the witness's, old = that size",
            f.witness_body(
                n - 1,
                &[],
                &f.log_note(&f.checkpoint_text(n - 1, &other_root)),
            ),
            status(409).tlog_size(n),
        ),
        // Consistency (422).
        w(
            "proof lines where none belong",
            f.witness_body(n, &[[7; 32]], &note),
            status(422),
        ),
        w(
            "same size, another root",
            f.witness_body(n, &[], &f.log_note(&f.checkpoint_text(n, &other_root))),
            status(422),
        ),
        w(
            "a larger tree without a proof",
            f.witness_body(n, &[], &f.log_note(&f.checkpoint_text(n + 5, &other_root))),
            status(422),
        ),
        w(
            "a larger tree with a wrong proof",
            f.witness_body(
                n,
                &[[7; 32], [8; 32], [9; 32]],
                &f.log_note(&f.checkpoint_text(n + 5, &other_root)),
            ),
            status(422),
        ),
        // Size (413).
        w(
            "body over 64 KiB",
            [f.witness_body(n, &[], &note), vec![b'a'; 64 * 1024]].concat(),
            status(413),
        ),
    ]
}

// ---------------------------------------------------------------------------
// The test.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_readable_4xx_and_leaves_the_tree_intact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let addr = free_port();
    let mut cairnd = Cairnd::start(&dir, addr);
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    let client = LogClient::new(&cairnd.base_url()).expect("client");

    // A few good leaves, and the head that publishes them.
    let submitter = SigningKey::from_seed(&[0x47; 32]);
    let good = Submitter::new(policy.clone(), submitter.clone(), SubmitConfig::default())
        .expect("submitter");
    let messages: Vec<Hash> = (0..GOOD_LEAVES)
        .map(|i| hash(format!("catalogue good leaf {i}\n").as_bytes()))
        .collect();
    for result in good.submit_and_prove(&messages).await {
        result.expect("good leaf proved");
    }
    let before: CosignedTreeHead = client.get_tree_head().await.expect("get-tree-head");
    assert_eq!(before.tree_head().size, GOOD_LEAVES as u64);
    let leaf_hashes = client
        .get_leaves(0, before.tree_head().size)
        .await
        .expect("get-leaves")
        .iter()
        .map(cairn_sigsum::leaf::Leaf::leaf_hash)
        .collect();
    let log_key = cairn_sigsum::key::parse_private_key_file(
        &std::fs::read(dir.join("log.key")).expect("log.key"),
    )
    .expect("log key");
    let origin = cairn_sigsum::key::log_origin(&log_key.public_key());
    let fixture = Fixture {
        addr,
        size: before.tree_head().size,
        root: before.tree_head().root_hash,
        leaf_hashes,
        log_signer: Ed25519NoteSigner::new(&origin, &log_key.seed()).expect("log signer"),
        origin,
        message: hash(b"a message for the bad-input catalogue\n"),
        submitter: submitter.clone(),
        signature_of_another_message: submitter.sign(&namespaced(
            NAMESPACE_TREE_LEAF,
            &checksum(&hash(b"another message\n")),
        )),
    };

    let phases = catalogue(&fixture);
    let count: usize = phases.iter().map(Vec::len).sum();
    assert!(count >= 150, "only {count} cases");
    let mut names = std::collections::HashSet::new();
    for c in phases.iter().flatten() {
        assert!(names.insert(c.name.clone()), "two cases named {:?}", c.name);
    }
    let mut outcomes: Vec<(Case, Outcome)> = Vec::new();
    for phase in phases {
        let done: Vec<(Case, Outcome)> = futures::stream::iter(phase)
            .map(|c| async move {
                let (bytes, then) = c.request.bytes(addr);
                let outcome = exchange(addr, bytes, then, c.expect.within).await;
                (c, outcome)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        outcomes.extend(done);
    }
    let total = outcomes.len();
    let mut failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(c, outcome)| {
            check(&c.expect, outcome)
                .err()
                .map(|why| format!("{}: {why}; {}", c.name, describe(outcome)))
        })
        .collect();
    failures.sort();

    // Afterwards the log is up, its tree untouched, and it still works.
    let mut after_checks = Vec::new();
    match reqwest::get(format!("http://{addr}/readyz")).await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => {}
        Ok(r) => after_checks.push(format!("/readyz answered {}", r.status())),
        Err(e) => after_checks.push(format!("/readyz failed: {e}")),
    }
    match client.get_tree_head().await {
        Ok(after) if after.signed == before.signed => {}
        Ok(after) => after_checks.push(format!(
            "the published head changed: size {} -> {}",
            before.tree_head().size,
            after.tree_head().size
        )),
        Err(e) => after_checks.push(format!("get-tree-head after the catalogue: {e}")),
    }
    let fresh = hash(b"a good leaf after the catalogue\n");
    match good.submit_and_prove(&[fresh]).await.pop() {
        Some(Ok(proof)) => {
            if let Err(e) = proof.verify(&fresh, &[submitter.public_key()], &policy) {
                after_checks.push(format!("the new leaf's proof does not verify: {e}"));
            }
            let grown = proof.tree_head.tree_head();
            match client
                .get_consistency_proof(before.tree_head().size, grown.size)
                .await
            {
                Ok(c) => {
                    if let Err(e) = c.verify(before.tree_head(), grown) {
                        after_checks.push(format!(
                            "the recorded head is not consistent with the new one: {e}"
                        ));
                    }
                }
                Err(e) => after_checks.push(format!("consistency proof: {e}")),
            }
        }
        Some(Err(e)) => after_checks.push(format!("a good leaf after the catalogue: {e}")),
        None => after_checks.push("no result for the good leaf".to_owned()),
    }
    cairnd.stop();

    let after = if after_checks.is_empty() {
        "the tree is intact and the log still works".to_owned()
    } else {
        after_checks.join("\n  ")
    };
    assert!(
        failures.is_empty() && after_checks.is_empty(),
        "{} of {total} bad-input cases got the wrong answer:\n  {}\nafter the catalogue:\n  {after}",
        failures.len(),
        failures.join("\n  "),
    );
}
