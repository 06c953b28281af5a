//! `cairn-chaos proxy`: an HTTP/1.1 proxy the harness puts between the
//! cluster and one upstream (the S3 server, a witness). The harness
//! switches its fault at run time through a control port, and reads back
//! the witness requests it forwarded, for the checker: every checkpoint the
//! log asked a witness to cosign.
//!
//! It runs in a container on the compose network (the harness binary
//! mounted into the Cairn image), so that the roles reach it by name.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Largest request or response body passed on (tiles are tens of KiB).
const MAX_BODY: usize = 16 << 20;
/// Longest the upstream may take with one request.
const UPSTREAM_LIMIT: Duration = Duration::from_secs(30);
/// Recorded requests kept (the oldest are dropped first).
const MAX_RECORDED: usize = 100_000;

/// What the proxy does to each request. The default passes everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// Wait this long (milliseconds) before forwarding each request.
    pub delay_ms: u64,
    /// Fraction of requests answered 503 without being forwarded.
    pub error_rate: f64,
    /// Fraction of requests forwarded whose answer is then lost: the
    /// connection closes without a response, after the upstream acted.
    pub lose_rate: f64,
    /// Corrupt one character of the last line of every 200 body (for a
    /// witness: its cosignature).
    pub garbage: bool,
    /// Answer every `add-checkpoint` with 409 and this size, without
    /// forwarding: a witness that has cosigned a larger tree of this log.
    pub ahead: Option<u64>,
}

/// A request the proxy forwarded while recording, and its answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recorded {
    /// Milliseconds since the Unix epoch, when it arrived.
    pub at_ms: u64,
    pub path: String,
    /// The request body (UTF-8, lossy).
    pub body: String,
    /// The status the client got (0 when it got none).
    pub status: u16,
}

#[derive(Debug)]
struct State {
    upstream: String,
    client: reqwest::Client,
    record: bool,
    fault: Mutex<Fault>,
    recorded: Mutex<VecDeque<Recorded>>,
}

/// Serves the proxy on `listen` and its control API on `control` until
/// killed. Control: `PUT /fault` with a JSON [`Fault`] (an empty object
/// passes everything), `GET /fault`, `GET /recorded` (JSON list of
/// [`Recorded`]; only with `record`, which records every `POST`) and
/// `DELETE /recorded`.
pub async fn serve(
    listen: SocketAddr,
    upstream: String,
    control: SocketAddr,
    record: bool,
) -> anyhow::Result<()> {
    let proxy = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let control = TcpListener::bind(control)
        .await
        .with_context(|| format!("binding {control}"))?;
    eprintln!("cairn-chaos proxy: {listen} -> {upstream}");
    serve_on(proxy, control, upstream, record).await
}

/// [`serve`] on listeners already bound.
async fn serve_on(
    proxy: TcpListener,
    control: TcpListener,
    upstream: String,
    record: bool,
) -> anyhow::Result<()> {
    let client = cairn_roots::Roots::bundled()
        .reqwest_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(UPSTREAM_LIMIT)
        .build()?;
    let state = Arc::new(State {
        upstream: upstream.trim_end_matches('/').to_owned(),
        client,
        record,
        fault: Mutex::new(Fault::default()),
        recorded: Mutex::new(VecDeque::new()),
    });
    let c = tokio::spawn(accept(control, state.clone(), true));
    let p = tokio::spawn(accept(proxy, state, false));
    tokio::select! {
        r = c => r?,
        r = p => r?,
    }
}

async fn accept(listener: TcpListener, state: Arc<State>, control: bool) -> anyhow::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: the next accept may succeed.
                eprintln!("cairn-chaos proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move {
                    if control {
                        Ok::<_, Lost>(control_api(&state, req).await)
                    } else {
                        forward(&state, req).await
                    }
                }
            });
            // A lost answer ends the connection with an error; nothing to
            // report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// The service's error: hyper closes the connection without answering.
#[derive(Debug)]
struct Lost;

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer dropped by the fault")
    }
}

impl std::error::Error for Lost {}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn chance(p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("operating system randomness");
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX) < p
}

async fn control_api(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    match (parts.method.as_str(), parts.uri.path()) {
        ("PUT", "/fault") => {
            let bytes = match Limited::new(body, 64 << 10).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
            };
            match serde_json::from_slice::<Fault>(&bytes) {
                Ok(f) => {
                    *state.fault.lock().expect("fault lock") = f;
                    text(StatusCode::OK, "ok\n")
                }
                Err(e) => text(StatusCode::BAD_REQUEST, format!("not a fault: {e}\n")),
            }
        }
        ("GET", "/fault") => {
            let f = state.fault.lock().expect("fault lock").clone();
            text(StatusCode::OK, serde_json::to_vec(&f).unwrap_or_default())
        }
        ("DELETE", "/recorded") => {
            state.recorded.lock().expect("recorded lock").clear();
            text(StatusCode::OK, "ok\n")
        }
        ("GET", "/recorded") => {
            let r: Vec<Recorded> = state
                .recorded
                .lock()
                .expect("recorded lock")
                .iter()
                .cloned()
                .collect();
            text(StatusCode::OK, serde_json::to_vec(&r).unwrap_or_default())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "PUT /fault, GET /fault, GET /recorded\n",
        ),
    }
}

/// Hop-by-hop headers and those the client library sets itself.
fn passes(name: &http::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "te" | "upgrade"
    )
}

async fn forward(state: &State, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Lost> {
    let fault = state.fault.lock().expect("fault lock").clone();
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if fault.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("proxy: reading the request body: {e}\n"),
            ));
        }
    };
    let recording = state.record && parts.method == http::Method::POST;
    let record = |status: u16| {
        if recording {
            let mut r = state.recorded.lock().expect("recorded lock");
            if r.len() == MAX_RECORDED {
                r.pop_front();
            }
            r.push_back(Recorded {
                at_ms,
                path: path.clone(),
                body: String::from_utf8_lossy(&body).into_owned(),
                status,
            });
        }
    };
    if chance(fault.error_rate) {
        record(503);
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "proxy: injected error\n",
        ));
    }
    if let Some(size) = fault.ahead
        && path.ends_with("/add-checkpoint")
    {
        record(409);
        let mut r = text(StatusCode::CONFLICT, format!("{size}\n"));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/x.tlog.size"),
        );
        return Ok(r);
    }
    let mut up = state
        .client
        .request(parts.method.clone(), format!("{}{path}", state.upstream))
        .body(body.clone());
    for (name, value) in &parts.headers {
        if passes(name) {
            up = up.header(name, value);
        }
    }
    let answer = async {
        let r = up.send().await?;
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    }
    .await;
    let (status, headers, mut bytes) = match answer {
        Ok(a) => a,
        Err(e) => {
            record(502);
            return Ok(text(
                StatusCode::BAD_GATEWAY,
                format!("proxy: upstream: {e}\n"),
            ));
        }
    };
    if chance(fault.lose_rate) {
        record(0);
        return Err(Lost);
    }
    if fault.garbage && status == StatusCode::OK {
        bytes = corrupt(&bytes);
    }
    record(status.as_u16());
    let mut r = text(status, bytes);
    for (name, value) in &headers {
        if passes(name) {
            r.headers_mut().append(name, value.clone());
        }
    }
    Ok(r)
}

/// `body` with one base64 character of its last line changed, well inside
/// the line (for a cosignature line: in the signature).
fn corrupt(body: &[u8]) -> Bytes {
    let mut out = body.to_vec();
    let end = out.iter().rposition(|b| *b != b'\n').map_or(0, |i| i + 1);
    if end >= 10 {
        let i = end - 10;
        out[i] = if out[i] == b'A' { b'B' } else { b'A' };
    }
    Bytes::from(out)
}

/// The harness's handle on one proxy's control port.
#[derive(Clone, Debug)]
pub struct Control {
    pub url: String,
    client: reqwest::Client,
}

impl Control {
    pub fn new(url: String) -> Self {
        Control {
            url,
            client: cairn_roots::Roots::bundled()
                .reqwest_builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client"),
        }
    }

    /// Switches the proxy's fault.
    pub async fn set(&self, fault: &Fault) -> anyhow::Result<()> {
        let r = self
            .client
            .put(format!("{}/fault", self.url))
            .body(serde_json::to_vec(fault)?)
            .send()
            .await
            .with_context(|| format!("{}: setting the fault", self.url))?;
        anyhow::ensure!(
            r.status().is_success(),
            "{}: setting the fault: {}",
            self.url,
            r.status()
        );
        Ok(())
    }

    /// Forgets what the proxy recorded.
    pub async fn clear(&self) -> anyhow::Result<()> {
        let r = self
            .client
            .delete(format!("{}/recorded", self.url))
            .send()
            .await
            .with_context(|| format!("{}: clearing the record", self.url))?;
        r.error_for_status()?;
        Ok(())
    }

    /// What the proxy recorded so far.
    pub async fn recorded(&self) -> anyhow::Result<Vec<Recorded>> {
        let r = self
            .client
            .get(format!("{}/recorded", self.url))
            .send()
            .await
            .with_context(|| format!("{}: reading the record", self.url))?;
        let bytes = r.error_for_status()?.bytes().await?;
        serde_json::from_slice(&bytes).with_context(|| format!("{}: the record", self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream that counts requests and answers 200 with a fixed
    /// cosignature-like line; and a proxy in front of it, recording.
    async fn proxied() -> (String, Control, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_addr = upstream.local_addr().unwrap();
        let counted = hits.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = upstream.accept().await.unwrap();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, Lost>(text(
                                StatusCode::OK,
                                "\u{2014} w1 AAAAbbbbccccddddeeeeffffgggg\n",
                            ))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", proxy.local_addr().unwrap());
        let control_url = format!("http://{}", control.local_addr().unwrap());
        tokio::spawn(serve_on(proxy, control, format!("http://{up_addr}"), true));
        (url, Control::new(control_url), hits)
    }

    async fn post(url: &str) -> Result<(u16, String), reqwest::Error> {
        let r = cairn_roots::Roots::bundled()
            .reqwest_builder()
            .build()
            .unwrap()
            .post(format!("{url}/add-checkpoint"))
            .body("old 0\n\ncheckpoint")
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    }

    #[tokio::test]
    async fn requests_pass_and_are_recorded_until_cleared() {
        let (url, control, hits) = proxied().await;
        let (status, body) = post(&url).await.unwrap();
        assert_eq!(status, 200);
        assert!(body.ends_with("gggg\n"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let recorded = control.recorded().await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].body, "old 0\n\ncheckpoint");
        assert_eq!(recorded[0].status, 200);
        control.clear().await.unwrap();
        assert!(control.recorded().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_lost_answer_reaches_the_upstream_but_not_the_client() {
        let (url, control, hits) = proxied().await;
        control
            .set(&Fault {
                lose_rate: 1.0,
                ..Fault::default()
            })
            .await
            .unwrap();
        assert!(post(&url).await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(control.recorded().await.unwrap()[0].status, 0);
    }

    #[tokio::test]
    async fn errors_and_a_witness_ahead_are_answered_without_forwarding() {
        let (url, control, hits) = proxied().await;
        control
            .set(&Fault {
                error_rate: 1.0,
                ..Fault::default()
            })
            .await
            .unwrap();
        assert_eq!(post(&url).await.unwrap().0, 503);
        control
            .set(&Fault {
                ahead: Some(42),
                ..Fault::default()
            })
            .await
            .unwrap();
        assert_eq!(post(&url).await.unwrap(), (409, "42\n".to_owned()));
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn garbage_changes_the_answer_and_healing_restores_it() {
        let (url, control, _) = proxied().await;
        let clean = post(&url).await.unwrap().1;
        control
            .set(&Fault {
                garbage: true,
                ..Fault::default()
            })
            .await
            .unwrap();
        let garbled = post(&url).await.unwrap().1;
        assert_ne!(garbled, clean);
        assert_eq!(garbled.len(), clean.len());
        control.set(&Fault::default()).await.unwrap();
        assert_eq!(post(&url).await.unwrap().1, clean);
    }

    #[test]
    fn corruption_changes_one_character_of_the_last_line() {
        let body = b"\xe2\x80\x94 w1 AAAAbbbbccccddddeeeeffffgggg\n";
        let out = corrupt(body);
        assert_eq!(out.len(), body.len());
        let diff: Vec<usize> = (0..body.len()).filter(|i| body[*i] != out[*i]).collect();
        assert_eq!(diff.len(), 1);
        assert!(diff[0] > body.len() - 12);
    }

    #[test]
    fn an_empty_fault_object_passes_everything_and_unknown_fields_are_refused() {
        assert_eq!(
            serde_json::from_str::<Fault>("{}").unwrap(),
            Fault::default()
        );
        assert!(serde_json::from_str::<Fault>(r#"{"dealy_ms": 5}"#).is_err());
    }
}
