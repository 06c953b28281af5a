//! Text answers: every error the server makes, and every error a router
//! left without a body, is a human-readable `text/plain` body.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body::Body as _;

/// `Content-Type` of every text answer.
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A `text/plain` answer with `status` and `message` plus a newline, not to
/// be cached: errors are a moment's state.
pub(crate) fn text_response(status: StatusCode, message: &str) -> Response {
    let mut response = (status, format!("{message}\n")).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Gives an error answer with an empty body (axum's default 404 and 405,
/// layers that answer with a bare status) a text body naming the status,
/// keeping its other headers (`Allow`, `Retry-After`).
pub(crate) fn fill_empty_error_body(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || response.body().size_hint().exact() != Some(0) {
        return response;
    }
    let reason = status.canonical_reason().unwrap_or("request failed");
    let (mut parts, _) = response.into_parts();
    let body = format!("{} {reason}\n", status.as_u16());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    Response::from_parts(parts, Body::from(body))
}

/// The text answer that replaces an answer hyper writes by itself, with an
/// empty body, to an HTTP/1 request head it cannot parse (see
/// [`crate::conn::ErrorBodyIo`]): the status line as hyper wrote it, a
/// reason a person can act on, and `Connection: close` because hyper closes
/// the connection after it.
pub(crate) fn hyper_error_replacement(
    version: &[u8],
    status: u16,
    max_header_bytes: usize,
) -> Vec<u8> {
    let message = match status {
        400 => "malformed HTTP request: the request line or a header field could not be parsed"
            .to_owned(),
        414 => "the request URI is too long".to_owned(),
        431 => format!(
            "request header fields too large: the request line and headers may take at most \
             {max_header_bytes} bytes"
        ),
        _ => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("request failed")
            .to_owned(),
    };
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("{message}\n");
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(version);
    out.extend_from_slice(
        format!(
            " {status} {reason}\r\ncontent-type: {TEXT_PLAIN}\r\ncache-control: no-store\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn empty_error_answers_get_a_text_body_and_keep_their_headers() {
        let mut empty = StatusCode::METHOD_NOT_ALLOWED.into_response();
        empty
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        let filled = fill_empty_error_body(empty);
        assert_eq!(filled.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(filled.headers()[header::ALLOW], "GET");
        assert_eq!(filled.headers()[header::CONTENT_TYPE], TEXT_PLAIN);
        let body = axum::body::to_bytes(filled.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"405 Method Not Allowed\n");

        let ok = fill_empty_error_body(StatusCode::NO_CONTENT.into_response());
        assert_eq!(ok.body().size_hint().exact(), Some(0));
        let said = fill_empty_error_body(text_response(StatusCode::CONFLICT, "4"));
        let body = axum::body::to_bytes(said.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"4\n");
    }

    #[test]
    fn hyper_replacements_are_complete_http_messages() {
        let raw = hyper_error_replacement(b"HTTP/1.1", 431, 16384);
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(body.contains("16384 bytes"));
    }
}
