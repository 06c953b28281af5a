//! [`SequencerPool`]: a client of one shard's sequencer Raft group that
//! follows its leader.
//!
//! The pool holds one lazily connecting tonic channel per sequencer node
//! (the configured ones, plus leaders learned from refusals) and a shared
//! guess of which node leads. [`SequencerPool::call`] sends a call to the
//! guess and, when that node cannot serve it, moves on by itself:
//!
//! | answer | what the pool does |
//! |---|---|
//! | success | returns it |
//! | `FAILED_PRECONDITION` with [`LEADER_METADATA_KEY`] | switches the guess to the named leader (adding a channel if it is new) and retries at once; after [`MAX_HOPS`] redirects in a row it waits a backoff between them |
//! | `FAILED_PRECONDITION` with [`NOT_LEADER_METADATA_KEY`] only (election in progress) | rotates to the next node, backoff, retry |
//! | `UNAVAILABLE`, a local transport failure (connection refused, reset, keep-alive timeout), or no answer within the attempt's time | rotates to the next node, backoff, retry |
//! | anything else, including a `FAILED_PRECONDITION` without either key (a real rejection) | returned as is |
//!
//! Backoff runs from [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]; nothing
//! waits past the call's deadline. At the deadline the call fails with
//! `DEADLINE_EXCEEDED` (if the last attempt got no answer in time) or
//! `UNAVAILABLE`, with a message naming every node tried and how it failed.
//!
//! A node that hangs (stopped process, dead peer) costs one attempt: each
//! attempt is bounded by [`PoolOptions::attempt_timeout`] (or the caller's
//! own bound for calls that wait on purpose, [`SequencerPool::call_with`]),
//! and HTTP/2 keep-alive pings ([`PoolOptions::keep_alive`]) break a
//! connection whose peer stopped answering, so even a long call or a
//! stream notices within two keep-alive periods.
//!
//! Streams (`WatchTreeHeads`) are opened by the caller on
//! [`SequencerPool::current`]; [`SequencerPool::suspect`] reports a failed
//! one (the guess moves on) and [`SequencerPool::moved_from`] tells when
//! calls have found another leader. [`SequencerPool::call_each`] asks every
//! node at once, for a caller that wants the freshest replica's answer.
//!
//! Every call the pool makes must be safe to repeat: a call whose answer
//! was lost may have taken effect. The sequencer's calls are (resubmitted
//! leaves are found again, a head is published once, a report repeats).

use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::trace::{TraceContext, TracedChannel};
use crate::v1::sequencer_client::SequencerClient;

/// A sequencer client of the pool: its calls carry the caller's trace
/// context ([`crate::trace`]).
pub type Client = SequencerClient<TracedChannel>;
use crate::{LEADER_METADATA_KEY, NOT_LEADER_METADATA_KEY};

/// Most nodes a pool holds, configured and learned together: a bound on
/// the channels that leader hints can make it open.
pub const MAX_NODES: usize = 64;

/// Redirects followed at once, in a row, before the pool waits a backoff
/// between them: two nodes that name each other (a stale hint during an
/// election) must not make a call spin.
pub const MAX_HOPS: u32 = 3;

/// First wait after a failed attempt; doubled per failure up to
/// [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(25);

/// Longest wait between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Longest part of one node's failure kept for the final error message, in
/// bytes: error bodies must stay small whatever a node answers.
const MAX_REASON: usize = 200;

/// Default [`PoolOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Default [`PoolOptions::attempt_timeout`].
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default [`PoolOptions::keep_alive`].
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Default [`PoolOptions::silent_for`].
pub const DEFAULT_SILENT_FOR: Duration = Duration::from_secs(2);

/// How a [`SequencerPool`] connects and how long it gives one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// Limit on opening a TCP connection to one node. Default 1 s.
    pub connect_timeout: Duration,
    /// Limit on one attempt of [`SequencerPool::call`] (capped by what is
    /// left until the call's deadline): how long a node that does not
    /// answer holds a call up before the next node is tried. Default 2 s.
    pub attempt_timeout: Duration,
    /// HTTP/2 keep-alive: while calls or streams are open on a connection,
    /// a ping is sent every this often, and the connection is dropped (its
    /// calls fail `UNAVAILABLE`) when a ping is not answered within this
    /// long. `None` sends no pings. Default 1 s.
    pub keep_alive: Option<Duration>,
    /// How long a node that did not answer at all (an attempt ran out of
    /// time, or its connection could not be made or broke) is not taken
    /// for the leader on other nodes' word: followers keep naming a frozen
    /// or dead leader until they have elected another, and following their
    /// hint back to it would cost an attempt each time. During this time
    /// such a hint counts as "no leader known". Any answer from the node
    /// ends it early. Default 2 s (longer than a Raft election with
    /// `cairnd sequencer`'s default timing).
    pub silent_for: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            silent_for: DEFAULT_SILENT_FOR,
        }
    }
}

/// Why a [`SequencerPool`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// No URL was given.
    #[error("no sequencer URL given")]
    Empty,
    /// More than [`MAX_NODES`] URLs.
    #[error("{0} sequencer URLs; at most {MAX_NODES}")]
    TooMany(usize),
    /// A URL is not `http://host[:port]`.
    #[error("sequencer URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL is listed twice (after removing a trailing `/`).
    #[error("sequencer URL {0:?} is listed twice")]
    Duplicate(String),
    /// A duration in [`PoolOptions`] is zero.
    #[error("pool option {0} must be greater than zero")]
    ZeroDuration(&'static str),
}

/// One sequencer node: its URL and a client on its channel.
#[derive(Clone, Debug)]
struct Node {
    addr: Arc<str>,
    channel: Channel,
    client: Client,
}

#[derive(Debug)]
struct Inner {
    options: PoolOptions,
    /// Append-only: an index, once valid, names the same node for good.
    nodes: RwLock<Vec<Node>>,
    /// Index into `nodes` of the leader guess; a watch so that stream
    /// followers learn when it moves.
    current: watch::Sender<usize>,
    /// Nodes that gave no answer at all, by index, until when their hints
    /// are not followed (see [`PoolOptions::silent_for`]).
    silent: std::sync::Mutex<std::collections::HashMap<usize, Instant>>,
}

/// A client of one sequencer Raft group that follows its leader (see the
/// module documentation). Cheap to clone; clones share the channels and
/// the leader guess.
#[derive(Clone, Debug)]
pub struct SequencerPool {
    inner: Arc<Inner>,
}

/// Why one attempt did not succeed, when it is worth another.
#[derive(Debug)]
enum Retry {
    /// A follower named the leader.
    Redirect(String),
    /// A follower that knows no leader.
    NoLeader,
    /// The node answered that it is unavailable.
    Down,
    /// The node could not be reached, or its connection broke.
    Unreachable,
    /// No answer within the attempt's time.
    Timeout,
}

/// The URL form the pool compares and stores: no trailing `/`.
fn normalize(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The endpoint for `url`, which must be `http://host[:port]` (the
/// sequencer serves plaintext gRPC).
fn endpoint(url: &str) -> Result<Endpoint, PoolError> {
    let invalid = |reason: String| PoolError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| invalid(e.to_string()))?;
    let uri = endpoint.uri();
    if uri.scheme_str() != Some("http") {
        return Err(invalid("must start with http://".to_owned()));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("has no host".to_owned()));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "must be http://host[:port] without a path".to_owned(),
        ));
    }
    Ok(endpoint)
}

impl SequencerPool {
    /// Checks that `url` is a usable sequencer URL (`http://host[:port]`)
    /// without building anything: for configuration parsers, which may run
    /// outside a Tokio runtime.
    pub fn check_url(url: &str) -> Result<(), PoolError> {
        endpoint(url).map(drop)
    }

    /// A pool over the sequencer nodes at `addrs` (gRPC URLs,
    /// `http://host[:port]`), the first one the initial leader guess.
    /// Connects lazily: performs no IO, but must be called inside a Tokio
    /// runtime (each channel starts a task).
    ///
    /// Errors: [`PoolError`] for an empty list, more than [`MAX_NODES`]
    /// URLs, an invalid or duplicate URL (named in the error), or a zero
    /// duration in `options`.
    pub fn new(
        addrs: impl IntoIterator<Item = impl Into<String>>,
        options: PoolOptions,
    ) -> Result<Self, PoolError> {
        if options.connect_timeout.is_zero() {
            return Err(PoolError::ZeroDuration("connect_timeout"));
        }
        if options.attempt_timeout.is_zero() {
            return Err(PoolError::ZeroDuration("attempt_timeout"));
        }
        if options.keep_alive.is_some_and(|k| k.is_zero()) {
            return Err(PoolError::ZeroDuration("keep_alive"));
        }
        if options.silent_for.is_zero() {
            return Err(PoolError::ZeroDuration("silent_for"));
        }
        let addrs: Vec<String> = addrs.into_iter().map(Into::into).collect();
        if addrs.is_empty() {
            return Err(PoolError::Empty);
        }
        if addrs.len() > MAX_NODES {
            return Err(PoolError::TooMany(addrs.len()));
        }
        let mut nodes: Vec<Node> = Vec::with_capacity(addrs.len());
        for addr in &addrs {
            let node = Node::new(addr, &options)?;
            if nodes.iter().any(|n| n.addr == node.addr) {
                return Err(PoolError::Duplicate(node.addr.to_string()));
            }
            nodes.push(node);
        }
        Ok(SequencerPool {
            inner: Arc::new(Inner {
                options,
                nodes: RwLock::new(nodes),
                current: watch::Sender::new(0),
                silent: std::sync::Mutex::default(),
            }),
        })
    }

    /// The URLs of the nodes the pool knows, configured ones first, then
    /// leaders learned from hints.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes().iter().map(|n| n.addr.to_string()).collect()
    }

    /// Every node's URL and channel, for other services on the same
    /// listeners (the gRPC health service).
    pub fn channels(&self) -> Vec<(String, Channel)> {
        self.nodes()
            .iter()
            .map(|n| (n.addr.to_string(), n.channel.clone()))
            .collect()
    }

    /// The leader guess: its URL and a client on its channel. For streams
    /// (`WatchTreeHeads`), which [`call`](Self::call) does not serve: when
    /// one fails, report it with [`suspect`](Self::suspect).
    pub fn current(&self) -> (String, Client) {
        // Never hold the watch's lock while taking the nodes' lock.
        let index = *self.inner.current.borrow();
        let node = self.node(index);
        (node.addr.to_string(), node.client)
    }

    /// Reports that `addr` failed (a broken stream): if it is still the
    /// leader guess, the guess moves to the next node. A no-op otherwise,
    /// so that a late report cannot undo a newer guess.
    pub fn suspect(&self, addr: &str) {
        if let Some(i) = self.index_of(addr) {
            self.rotate_from(i);
        }
    }

    /// Resolves once the leader guess is a node other than `addr` (at once
    /// if it already is): a stream follower waits on this to move to the
    /// leader that calls have found.
    pub async fn moved_from(&self, addr: &str) {
        let Some(index) = self.index_of(addr) else {
            return;
        };
        let mut current = self.inner.current.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = current.wait_for(|&i| i != index).await;
    }

    /// Sends a call built by `f` (given a client of the node to try) to the
    /// leader guess, following redirects and moving past unavailable,
    /// unreachable and hanging nodes until `deadline` (see the module
    /// table). Each attempt gets at most [`PoolOptions::attempt_timeout`].
    /// `what` names the call in the final error.
    ///
    /// Errors: a status no other node could change, as the node sent it;
    /// at `deadline`, `DEADLINE_EXCEEDED` or `UNAVAILABLE` naming the nodes
    /// tried.
    pub async fn call<T, F, Fut>(
        &self,
        what: &'static str,
        deadline: Instant,
        f: F,
    ) -> Result<T, Status>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let attempt_timeout = self.inner.options.attempt_timeout;
        self.call_with(what, deadline, attempt_timeout, f).await
    }

    /// [`call`](Self::call) with a per-attempt limit of `attempt_timeout`
    /// instead of the pool's: for calls that wait on purpose (`AddLeaves`
    /// with its `wait_ms`). A node that stopped answering still fails such
    /// an attempt early when keep-alive pings are on.
    pub async fn call_with<T, F, Fut>(
        &self,
        what: &'static str,
        deadline: Instant,
        attempt_timeout: Duration,
        mut f: F,
    ) -> Result<T, Status>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        let mut index = *self.inner.current.borrow();
        let mut backoff = BACKOFF_MIN;
        let mut hops = 0;
        // Each node's latest failure, in the order first tried.
        let mut tried: Vec<(Arc<str>, String)> = Vec::new();
        let mut last = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(give_up(what, started, &tried, last.as_ref()));
            }
            let node = self.node(index);
            let budget = attempt_timeout.min(deadline - now);
            let retry = match tokio::time::timeout(budget, f(node.client.clone())).await {
                Ok(Ok(response)) => {
                    self.heard_from(index);
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) => match retry_for(&status) {
                    Some(retry) => {
                        note(&mut tried, &node.addr, describe(&status));
                        if matches!(retry, Retry::Unreachable) {
                            self.mark_silent(index);
                        } else {
                            self.heard_from(index);
                        }
                        retry
                    }
                    None => {
                        self.heard_from(index);
                        return Err(status);
                    }
                },
                Err(_) => {
                    self.mark_silent(index);
                    note(
                        &mut tried,
                        &node.addr,
                        format!("no answer within {budget:?}"),
                    );
                    Retry::Timeout
                }
            };
            tracing::debug!(call = what, node = %node.addr, ?retry, "sequencer call failed; retrying");
            let wait = match &retry {
                // Followers still name the leader that stopped answering:
                // as good as "no leader known" until they elect another.
                Retry::Redirect(leader) if self.is_silent(leader) => {
                    hops = 0;
                    index = self.rotate_from(index);
                    true
                }
                Retry::Redirect(leader) => match self.learn(leader) {
                    Some(next) if next != index => {
                        index = next;
                        hops += 1;
                        hops > MAX_HOPS
                    }
                    // The node names itself: it is about to lead, or has
                    // just stopped. Ask it again after a pause.
                    Some(_) => true,
                    None => {
                        index = self.rotate_from(index);
                        true
                    }
                },
                Retry::NoLeader | Retry::Down | Retry::Unreachable | Retry::Timeout => {
                    hops = 0;
                    index = self.rotate_from(index);
                    true
                }
            };
            last = Some(retry);
            if wait {
                tokio::time::sleep_until((Instant::now() + backoff).min(deadline)).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// Sends the call built by `f` to every node the pool knows at once,
    /// without retries or redirects, and yields each node's URL and outcome
    /// as it arrives; a node that does not answer within
    /// [`PoolOptions::attempt_timeout`] (or by `deadline`) yields
    /// `DEADLINE_EXCEEDED`. For reads that want the freshest state any
    /// replica has, or every replica's view; leaves the leader guess alone.
    pub fn call_each<T, F, Fut>(
        &self,
        deadline: Instant,
        mut f: F,
    ) -> impl futures::Stream<Item = (String, Result<T, Status>)> + use<T, F, Fut>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let until = (Instant::now() + self.inner.options.attempt_timeout).min(deadline);
        let nodes = self.nodes().clone();
        nodes
            .into_iter()
            .map(|node| {
                let call = f(node.client);
                let addr = node.addr.to_string();
                async move {
                    let outcome = match tokio::time::timeout_at(until, call).await {
                        Ok(answer) => answer.map(tonic::Response::into_inner),
                        Err(_) => Err(Status::deadline_exceeded(format!(
                            "no answer from {addr} in time"
                        ))),
                    };
                    (addr, outcome)
                }
            })
            .collect::<futures::stream::FuturesUnordered<_>>()
    }

    fn nodes(&self) -> std::sync::RwLockReadGuard<'_, Vec<Node>> {
        // Nodes are only ever appended, whole: a panic elsewhere cannot
        // leave the list half-changed.
        self.inner
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn node(&self, index: usize) -> Node {
        self.nodes()[index].clone()
    }

    fn silent(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<usize, Instant>> {
        self.inner
            .silent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Node `index` gave no answer: its hints are not followed for a while.
    fn mark_silent(&self, index: usize) {
        let until = Instant::now() + self.inner.options.silent_for;
        self.silent().insert(index, until);
    }

    /// Node `index` answered.
    fn heard_from(&self, index: usize) {
        self.silent().remove(&index);
    }

    /// Whether the node at `addr` is known and gave no answer lately.
    fn is_silent(&self, addr: &str) -> bool {
        let Some(index) = self.index_of(addr) else {
            return false;
        };
        let mut silent = self.silent();
        match silent.get(&index) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                silent.remove(&index);
                false
            }
            None => false,
        }
    }

    fn index_of(&self, addr: &str) -> Option<usize> {
        let addr = normalize(addr);
        self.nodes().iter().position(|n| &*n.addr == addr)
    }

    /// Moves the guess off node `from` to the next one, unless another call
    /// has moved it already (then that newer guess stands); returns the
    /// guess.
    fn rotate_from(&self, from: usize) -> usize {
        // Never hold the nodes' lock while taking the watch's (a waiter in
        // `moved_from` holds the latter).
        let len = self.nodes().len();
        self.inner.current.send_if_modified(|current| {
            if *current == from {
                *current = (from + 1) % len;
                true
            } else {
                false
            }
        });
        *self.inner.current.borrow()
    }

    /// Makes the leader a hint names the guess, adding a channel for it if
    /// the pool does not know it; returns its index. `None` if the hint is
    /// not a usable URL or the pool is full.
    fn learn(&self, leader: &str) -> Option<usize> {
        let leader = normalize(leader);
        let index = match self.index_of(leader) {
            Some(i) => i,
            None => {
                let node = match Node::new(leader, &self.inner.options) {
                    Ok(node) => node,
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a sequencer leader hint");
                        return None;
                    }
                };
                let mut nodes = self
                    .inner
                    .nodes
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // Another call may have added it meanwhile.
                match nodes.iter().position(|n| &*n.addr == leader) {
                    Some(i) => i,
                    None if nodes.len() >= MAX_NODES => {
                        tracing::warn!(
                            leader,
                            "ignoring a sequencer leader hint: the pool holds {MAX_NODES} nodes"
                        );
                        return None;
                    }
                    None => {
                        nodes.push(node);
                        nodes.len() - 1
                    }
                }
            }
        };
        let moved = self.inner.current.send_if_modified(|current| {
            let moved = *current != index;
            *current = index;
            moved
        });
        if moved {
            tracing::info!(leader, "following the sequencer leader");
        }
        Some(index)
    }
}

impl Node {
    /// The node at `url`, stored without a trailing `/`.
    fn new(url: &str, options: &PoolOptions) -> Result<Node, PoolError> {
        // Checked as given, so that an error names what was configured.
        endpoint(url)?;
        let addr = normalize(url);
        let mut endpoint = endpoint(addr)?
            .connect_timeout(options.connect_timeout)
            // Small request/response pairs: Nagle plus delayed ACKs would
            // add ~40 ms to every call.
            .tcp_nodelay(true);
        if let Some(keep_alive) = options.keep_alive {
            endpoint = endpoint
                .http2_keep_alive_interval(keep_alive)
                .keep_alive_timeout(keep_alive);
        }
        let channel = endpoint.connect_lazy();
        Ok(Node {
            addr: addr.into(),
            client: SequencerClient::with_interceptor(channel.clone(), TraceContext),
            channel,
        })
    }
}

/// Whether another attempt may succeed where `status` failed, and how.
fn retry_for(status: &Status) -> Option<Retry> {
    match status.code() {
        Code::FailedPrecondition => {
            let metadata = status.metadata();
            if let Some(leader) = metadata
                .get(LEADER_METADATA_KEY)
                .and_then(|v| v.to_str().ok())
            {
                Some(Retry::Redirect(leader.to_owned()))
            } else if metadata.contains_key(NOT_LEADER_METADATA_KEY) {
                Some(Retry::NoLeader)
            } else {
                // A real refusal ("cosigned size below the published
                // one"): every node would say the same.
                None
            }
        }
        // A status made on this side from a transport error (no
        // connection, or it broke mid-call) carries that error as its
        // source; a status the node sent never does.
        _ if std::error::Error::source(status).is_some() => Some(Retry::Unreachable),
        Code::Unavailable => Some(Retry::Down),
        // A node that does not host the shard (a replica moved away, or not
        // started yet): the shard's other nodes may.
        Code::NotFound => Some(Retry::NoLeader),
        _ => None,
    }
}

/// A short description of a node's failure for the final error.
fn describe(status: &Status) -> String {
    let mut reason = format!("{:?}: {}", status.code(), status.message());
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

/// Records `reason` as `addr`'s latest failure.
fn note(tried: &mut Vec<(Arc<str>, String)>, addr: &Arc<str>, reason: String) {
    match tried.iter_mut().find(|(a, _)| a == addr) {
        Some((_, r)) => *r = reason,
        None => tried.push((Arc::clone(addr), reason)),
    }
}

/// The error of a call that ran out of time.
fn give_up(
    what: &str,
    started: Instant,
    tried: &[(Arc<str>, String)],
    last: Option<&Retry>,
) -> Status {
    if tried.is_empty() {
        return Status::deadline_exceeded(format!(
            "{what}: the deadline passed before any sequencer was tried"
        ));
    }
    let mut message = format!(
        "{what}: no sequencer served the call within {:?}; tried",
        started.elapsed()
    );
    for (i, (addr, reason)) in tried.iter().enumerate() {
        let sep = if i == 0 { " " } else { "; " };
        let _ = write!(message, "{sep}{addr} ({reason})");
    }
    match last {
        Some(Retry::Timeout) => Status::deadline_exceeded(message),
        _ => Status::unavailable(message),
    }
}

#[cfg(test)]
mod tests;
