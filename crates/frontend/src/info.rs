//! `GET /<name>/`: a plain-text page naming the log, like log-go's info
//! page: what a person needs to add the log to a policy or point a tool at
//! it. Plain text, so that nothing taken from the request (the `Host`
//! header) can ever be interpreted as markup.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cairn_sigsum::tree_head::origin_for_key;

use crate::error::TEXT_PLAIN;
use crate::shard::Shard;

/// Longest `Host` header echoed on the page (a DNS name is at most 253).
const MAX_HOST_LEN: usize = 255;

/// The shard's base URL: the configured public base, or `http://` and the
/// request's `Host` (only if it is a plausible host name), or `None`.
pub(crate) fn base_url(shard: &Shard, headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(base) = &shard.public_base_url {
        return Some(format!("{}/{}/", base.trim_end_matches('/'), shard.name));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let plausible = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    plausible.then(|| format!("http://{host}/{}/", shard.name))
}

/// The info page.
pub(crate) fn page(shard: &Shard, headers: &HeaderMap, uri: &Uri) -> Response {
    let key = shard.log_key;
    let base = base_url(shard, headers, uri);
    let base_line = base
        .as_deref()
        .unwrap_or("(unknown: no usable Host header)");
    let policy_url = base.as_deref().map(|b| format!(" {b}")).unwrap_or_default();
    let text = format!(
        "Cairn: a Sigsum v1 transparency log\n\
         \n\
         shard:             {name}\n\
         base URL:          {base_line}\n\
         log public key:    {key_hex}\n\
         log key hash:      {key_hash}\n\
         checkpoint origin: {origin}\n\
         \n\
         Policy line:\n\
         log {key_hex}{policy_url}\n\
         \n\
         Sigsum v1 API (relative to the base URL):\n\
         GET  get-tree-head\n\
         GET  get-inclusion-proof/<tree size>/<hex leaf hash>\n\
         GET  get-consistency-proof/<old size>/<new size>\n\
         GET  get-leaves/<start index>/<end index>\n\
         POST add-leaf\n\
         \n\
         C2SP tlog-tiles (relative to the base URL):\n\
         GET  checkpoint\n\
         GET  tile/<level>/<index>[.p/<width>]\n\
         GET  tile/entries/<index>[.p/<width>]\n",
        name = shard.name,
        key_hex = key.to_hex(),
        key_hash = key.key_hash(),
        origin = origin_for_key(&key),
    );
    let mut response = (StatusCode::OK, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    response
}
