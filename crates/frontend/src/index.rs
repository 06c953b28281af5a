//! `GET /` and `GET /shards.json`: the index of the logs (shards) this
//! frontend serves, for people (a small HTML page) and for tools (JSON).
//!
//! Per shard: its base URL and the policy `log` line a submitter adds,
//! the public key, key hash, checkpoint origin and note verifier key
//! (vkey), whether it accepts leaves (`active`) or is `frozen` (final
//! size and successor), its published size and the age of the newest
//! cosignature on that head — what an operator looks at first and what a
//! submitter needs to pick a log. Each shard's heads come from the same
//! shared `GetTreeHeads` call as `get-tree-head` (so a page view costs at
//! most one call per shard, whatever the number of viewers); a shard
//! whose sequencer does not answer is listed with the error instead.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cairn_sigsum::tree_head::origin_for_key;
use cairn_tlog::note::Ed25519NoteVerifier;
use serde::Serialize;

use crate::shard::Shard;

/// Every shard of the router (listed by name).
#[derive(Debug)]
pub(crate) struct Index {
    pub(crate) shards: Arc<crate::ShardSet>,
}

/// One shard's line of the index.
#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    /// Absolute base URL when known (configured, or from a plausible
    /// `Host`), else the path `/<name>/`.
    url: String,
    policy_line: String,
    public_key: String,
    key_hash: String,
    origin: String,
    vkey: String,
    /// `active`, `frozen` or `retired`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    frozen_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    successor: Option<String>,
    /// Published (cosigned) size; absent before the first publication or
    /// when the sequencer did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    /// Seconds since the newest cosignature of the published head.
    #[serde(skip_serializing_if = "Option::is_none")]
    cosigned_age_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn entry(shard: &Shard, headers: &HeaderMap, uri: &Uri) -> Entry {
    let key = shard.log_key;
    let origin = origin_for_key(&key);
    let vkey = Ed25519NoteVerifier::new(&origin, &key.0)
        .map(|v| v.vkey().to_string())
        .unwrap_or_default();
    let url = crate::info::base_url(shard, headers, uri).unwrap_or_else(|| shard.prefix.clone());
    let (size, age, error) = match shard.heads().await {
        Ok(heads) => match heads.published {
            Some(head) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let newest = head.cosignatures().iter().map(|c| c.timestamp).max();
                (
                    Some(head.tree_head().size),
                    newest.map(|t| now.saturating_sub(t)),
                    None,
                )
            }
            None => (None, None, None),
        },
        Err(e) => (None, None, Some(e.to_string())),
    };
    let (state, frozen_size, successor) = match (&shard.retired, shard.published.frozen()) {
        // Retired after a freeze: the final head is the frozen tree.
        (Some(retired), _) => ("retired", size, Some(retired.successor.clone())),
        (None, Some(frozen)) => ("frozen", Some(frozen.size), Some(frozen.successor)),
        (None, None) => ("active", None, None),
    };
    Entry {
        name: shard.name.clone(),
        policy_line: format!("log {} {url}", key.to_hex()),
        url,
        public_key: key.to_hex(),
        key_hash: key.key_hash().to_string(),
        origin,
        vkey,
        state,
        frozen_size,
        successor: successor.filter(|s| !s.is_empty()),
        size,
        cosigned_age_seconds: age,
        error,
    }
}

async fn entries(index: &Index, headers: &HeaderMap, uri: &Uri) -> Vec<Entry> {
    let shards = index.shards.all();
    futures::future::join_all(shards.iter().map(|s| entry(s, headers, uri))).await
}

/// `GET /shards.json`.
pub(crate) async fn json(
    State(index): State<Arc<Index>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let list = entries(&index, &headers, &uri).await;
    let body = serde_json::json!({ "shards": list }).to_string();
    fresh_ok(body, "application/json")
}

/// A 200 that caches must revalidate: sizes and ages change every second.
fn fresh_ok(body: String, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`.
pub(crate) async fn html(
    State(index): State<Arc<Index>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let list = entries(&index, &headers, &uri).await;
    let mut rows = String::new();
    for e in &list {
        let state = match (&e.frozen_size, &e.successor) {
            (Some(size), Some(successor)) => {
                format!("{} at {size}, successor {}", e.state, escape(successor))
            }
            (Some(size), None) => format!("{} at {size}", e.state),
            _ => e.state.to_owned(),
        };
        let size = match (&e.size, &e.error) {
            (Some(size), _) => size.to_string(),
            (None, Some(error)) => format!("unavailable: {}", escape(error)),
            (None, None) => "none published yet".to_owned(),
        };
        let age = e
            .cosigned_age_seconds
            .map_or_else(|| "–".to_owned(), |a| format!("{a} s"));
        rows.push_str(&format!(
            "<tr><td><a href=\"{url}\">{name}</a></td><td>{state}</td><td>{size}</td><td>{age}</td>\
             <td><code>{line}</code><br><code>{vkey}</code></td></tr>\n",
            url = escape(&e.url),
            name = escape(&e.name),
            line = escape(&e.policy_line),
            vkey = escape(&e.vkey),
        ));
    }
    let page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Cairn logs</title>\
         <style>body{{font-family:sans-serif}}td,th{{padding:4px 8px;text-align:left;vertical-align:top}}</style>\
         </head><body>\n<h1>Sigsum logs served here</h1>\n\
         <p>Each log is a Sigsum v1 log at its base URL; add its policy line to a \
         Sigsum policy to submit to it. The same list as JSON: <a href=\"shards.json\">shards.json</a>.</p>\n\
         <table><tr><th>log</th><th>state</th><th>published size</th><th>newest cosignature</th>\
         <th>policy line and vkey</th></tr>\n{rows}</table></body></html>\n"
    );
    fresh_ok(page, "text/html; charset=utf-8")
}

/// HTML-escapes text (names and URLs are restricted already; a `Host`
/// header only passes a plausibility check, so escape everything).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_any_field_is_shown_as_text() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
