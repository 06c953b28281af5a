//! An in-test Sigsum v1 log over real HTTP on 127.0.0.1 (ephemeral port):
//! an in-memory tree built with `cairn_tlog::compact`, proofs from
//! `cairn_tlog::proof`, every message in `cairn_sigsum` formats. It signs
//! each tree head with its log key and cosigns it with each of its witness
//! keys (timestamp: now).
//!
//! `add-leaf` answers 202 to the first request for a leaf (seen, not
//! committed) and 200 to later ones, appending the leaf and publishing the
//! new cosigned head on the first 200, so clients exercise both answers.
//!
//! Misbehaviour on demand, for monitor tests: [`FakeLog::rewrite_history`]
//! (forks and shrinks), [`FakeLog::tamper_served_leaf`] (get-leaves serves
//! a leaf that is not in the tree), [`FakeLog::set_witnesses`] (heads
//! without quorum) and [`FakeLog::set_cosignature_age`] (stale heads).
//!
//! Shared by `cairn-client`'s and `cairn-cli`'s integration tests (the CLI
//! includes this file by path). The server stops when the `FakeLog` is
//! dropped.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_sigsum::api::{
    AddLeafRequest, ConsistencyProof, ConsistencyProofRequest, InclusionProof,
    InclusionProofRequest, Leaves, LeavesRequest,
};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::token::{HEADER_NAME, SubmitHeader};
use cairn_sigsum::tree_head::{Cosignature, CosignedTreeHead, TreeHead};
use cairn_sigsum::{Hash, PublicKey, SigningKey};
use cairn_tlog::compact::CompactRange;
use cairn_tlog::proof::{NodeId, consistency_proof, inclusion_proof};
use tokio::sync::oneshot;

/// The path prefix the log is served under, so that base URLs with a path
/// are exercised.
pub const PREFIX: &str = "/fake";
/// Most leaves one get-leaves answer carries (log-go's default).
const MAX_LEAVES_PER_RESPONSE: u64 = 512;

/// A running fake log.
pub struct FakeLog {
    addr: SocketAddr,
    log_key: PublicKey,
    state: Arc<Mutex<Inner>>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// What the log has answered so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// add-leaf requests answered 202.
    pub accepted: u64,
    /// add-leaf requests answered 200.
    pub committed: u64,
    /// add-leaf requests rejected (400/403).
    pub rejected: u64,
}

struct Inner {
    log_key: SigningKey,
    witnesses: Vec<SigningKey>,
    /// Leaf hashes answered 202 once.
    seen: HashSet<Hash>,
    /// Leaf hash → index, for leaves in the tree.
    index: HashMap<Hash, u64>,
    leaves: Vec<Leaf>,
    /// Every complete subtree's hash, as the compact range reports them.
    nodes: HashMap<NodeId, Hash>,
    range: CompactRange,
    published: CosignedTreeHead,
    counters: Counters,
    tokens: Vec<SubmitHeader>,
    /// Seconds subtracted from now in cosignature timestamps.
    cosignature_age: u64,
    /// Leaves get-leaves serves instead of the tree's, by index.
    served_instead: HashMap<u64, Leaf>,
}

impl Inner {
    fn publish(&mut self) {
        let head = TreeHead {
            size: self.range.size(),
            root_hash: self.range.root(),
        };
        let log_hash = self.log_key.public_key().key_hash();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(self.cosignature_age);
        let cosignatures = self
            .witnesses
            .iter()
            .map(|w| Cosignature::sign(w, &head, &log_hash, now).expect("timestamp in range"))
            .collect();
        self.published = CosignedTreeHead::new(head.sign(&self.log_key), cosignatures)
            .expect("distinct witness keys");
    }

    fn append(&mut self, leaf: Leaf) {
        let hash = leaf.leaf_hash();
        let index = self.range.size();
        for (node, h) in self.range.append(hash).expect("tree not full") {
            self.nodes.insert(node, h);
        }
        self.leaves.push(leaf);
        self.index.insert(hash, index);
    }

    fn lookup(&self) -> impl FnMut(NodeId) -> Result<Hash, NodeId> + '_ {
        |n| self.nodes.get(&n).copied().ok_or(n)
    }
}

impl FakeLog {
    /// Starts a log signing with `log_key` and cosigning every head with
    /// each of `witnesses`.
    pub async fn start(log_key: SigningKey, witnesses: Vec<SigningKey>) -> FakeLog {
        let public = log_key.public_key();
        let mut inner = Inner {
            log_key,
            witnesses,
            seen: HashSet::new(),
            index: HashMap::new(),
            leaves: Vec::new(),
            nodes: HashMap::new(),
            range: CompactRange::new(),
            published: CosignedTreeHead::new(
                TreeHead::empty().sign(&SigningKey::from_seed(&[0; 32])),
                vec![],
            )
            .expect("no cosignatures"),
            counters: Counters::default(),
            tokens: Vec::new(),
            cosignature_age: 0,
            served_instead: HashMap::new(),
        };
        inner.publish();
        let state = Arc::new(Mutex::new(inner));
        let api = Router::new()
            .route("/add-leaf", post(add_leaf))
            .route("/get-tree-head", get(get_tree_head))
            .route("/get-inclusion-proof/{*args}", get(get_inclusion_proof))
            .route("/get-consistency-proof/{*args}", get(get_consistency_proof))
            .route("/get-leaves/{*args}", get(get_leaves))
            .with_state(state.clone());
        let app = Router::new().nest(PREFIX, api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("fake log server");
        });
        FakeLog {
            addr,
            log_key: public,
            state,
            shutdown: Some(tx),
        }
    }

    /// The base URL, `http://127.0.0.1:<port>/fake/`.
    pub fn url(&self) -> String {
        format!("http://{}{PREFIX}/", self.addr)
    }

    /// The log's public key.
    pub fn public_key(&self) -> PublicKey {
        self.log_key
    }

    /// The add-leaf answers so far.
    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// The published tree size.
    pub fn size(&self) -> u64 {
        self.lock().published.tree_head().size
    }

    /// Every `sigsum-token` header received, in order.
    pub fn tokens(&self) -> Vec<SubmitHeader> {
        self.lock().tokens.clone()
    }

    /// Appends leaves directly (as if submitted and committed) and
    /// publishes the new head: for tests that need a tree of some size.
    pub fn append_direct(&self, leaves: &[Leaf]) {
        let mut inner = self.lock();
        for l in leaves {
            inner.append(*l);
        }
        inner.publish();
    }

    /// Replaces the whole history with `leaves` and publishes the new head,
    /// signed with the same key: a fork (or, with fewer leaves, a shrink)
    /// from the point where `leaves` differ from the old history.
    pub fn rewrite_history(&self, leaves: &[Leaf]) {
        let mut inner = self.lock();
        inner.index.clear();
        inner.leaves.clear();
        inner.nodes.clear();
        inner.range = CompactRange::new();
        for l in leaves {
            inner.append(*l);
        }
        inner.publish();
    }

    /// Makes get-leaves serve `leaf` at `index` while the tree (and every
    /// proof) keeps the real one.
    pub fn tamper_served_leaf(&self, index: u64, leaf: Leaf) {
        self.lock().served_instead.insert(index, leaf);
    }

    /// Cosigns with `witnesses` from now on and republishes the current head.
    pub fn set_witnesses(&self, witnesses: Vec<SigningKey>) {
        let mut inner = self.lock();
        inner.witnesses = witnesses;
        inner.publish();
    }

    /// Dates cosignatures `seconds` in the past from now on and republishes
    /// the current head.
    pub fn set_cosignature_age(&self, seconds: u64) {
        let mut inner = self.lock();
        inner.cosignature_age = seconds;
        inner.publish();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().expect("fake log state")
    }
}

impl Drop for FakeLog {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

fn locked(state: &Arc<Mutex<Inner>>) -> MutexGuard<'_, Inner> {
    state.lock().expect("fake log state")
}

async fn add_leaf(State(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = locked(&state);
    let request = match AddLeafRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            inner.counters.rejected += 1;
            return text(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if let Some(value) = headers.get(HEADER_NAME) {
        match value.to_str().ok().map(SubmitHeader::parse) {
            Some(Ok(h)) => inner.tokens.push(h),
            _ => {
                inner.counters.rejected += 1;
                return text(StatusCode::BAD_REQUEST, "bad sigsum-token header");
            }
        }
    }
    let leaf = match request.to_leaf() {
        Ok(l) => l,
        Err(e) => {
            inner.counters.rejected += 1;
            return text(StatusCode::FORBIDDEN, e.to_string());
        }
    };
    let hash = leaf.leaf_hash();
    if inner.index.contains_key(&hash) {
        inner.counters.committed += 1;
        return text(StatusCode::OK, "");
    }
    if inner.seen.insert(hash) {
        inner.counters.accepted += 1;
        return text(StatusCode::ACCEPTED, "");
    }
    inner.append(leaf);
    inner.publish();
    inner.counters.committed += 1;
    text(StatusCode::OK, "")
}

async fn get_tree_head(State(state): Shared) -> Response {
    text(StatusCode::OK, locked(&state).published.to_ascii())
}

async fn get_inclusion_proof(State(state): Shared, Path(args): Path<String>) -> Response {
    let req = match InclusionProofRequest::parse_args(&args) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let inner = locked(&state);
    if req.size > inner.published.tree_head().size {
        return text(
            StatusCode::BAD_REQUEST,
            "size beyond the published tree head",
        );
    }
    let Some(&index) = inner.index.get(&req.leaf_hash).filter(|&&i| i < req.size) else {
        return text(StatusCode::NOT_FOUND, "leaf not in the tree of that size");
    };
    match inclusion_proof(index, req.size, inner.lookup()) {
        Ok(path) => text(
            StatusCode::OK,
            InclusionProof {
                leaf_index: index,
                path,
            }
            .to_ascii(),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_consistency_proof(State(state): Shared, Path(args): Path<String>) -> Response {
    let req = match ConsistencyProofRequest::parse_args(&args) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let inner = locked(&state);
    if req.new_size > inner.published.tree_head().size {
        return text(
            StatusCode::BAD_REQUEST,
            "size beyond the published tree head",
        );
    }
    match consistency_proof(req.old_size, req.new_size, inner.lookup()) {
        Ok(path) => text(StatusCode::OK, ConsistencyProof { path }.to_ascii()),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_leaves(State(state): Shared, Path(args): Path<String>) -> Response {
    let req = match LeavesRequest::parse_args(&args) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let inner = locked(&state);
    let size = inner.published.tree_head().size;
    if req.start >= size || req.end > size {
        return text(
            StatusCode::BAD_REQUEST,
            "range beyond the published tree head",
        );
    }
    let end = req.end.min(req.start + MAX_LEAVES_PER_RESPONSE);
    let leaves = (req.start..end)
        .filter_map(|i| {
            inner.served_instead.get(&i).copied().or_else(|| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| inner.leaves.get(i))
                    .copied()
            })
        })
        .collect();
    text(StatusCode::OK, Leaves { leaves }.to_ascii())
}
