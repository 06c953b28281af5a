//! `cairn hammer`: load for any Sigsum log (Cairn, log-go), measured from
//! the outside.
//!
//! Leaves are signed before the clock starts (by `--keys` submitter keys
//! derived from `--seed`), so the hammer's own signing does not compete
//! with the log for the CPU during the run. Submission is closed-loop
//! (`--concurrency` submitters, each posting its next leaf when the last
//! one got 200) or open-loop (`--rate` leaves per second, whatever the log
//! answers, at most `--max-in-flight` outstanding). Like sigsum-go's
//! submit, a 202 (or a 503/429, or a transport error) is retried with the
//! same request after `--retry-interval-ms`, until 200 or the drain limit.
//!
//! Readers (`--readers`) meanwhile cycle through `--read-mix`: get-tree-head,
//! get-inclusion-proof of a leaf this run logged, get-consistency-proof,
//! get-leaves, and a level-0 tile.
//!
//! Reported: add-leaf 200s per second over the run, status counts, latency
//! percentiles of the first response, of submission → 200, and of 200 → a
//! tree head from get-tree-head that proves the leaf (every `--sample`th
//! leaf), read rates and latencies, and the CPU the log's process used if
//! `--pid` names it (local logs). A progress line on a terminal; `--json`
//! prints the summary as one JSON object (`add_leaf_per_sec` among its
//! fields).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_client::{AddLeafStatus, ClientConfig, ClientError, LogClient};
use cairn_sigsum::api::AddLeafRequest;
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::token::SubmitHeader;
use cairn_sigsum::{Hash, SigningKey};
use serde::Serialize;

/// Most leaves one run signs up front (128 MiB of requests at ~200 B each).
const MAX_LEAVES: usize = 1_000_000;
/// Closed-loop leaves signed per second of `--duration` by default: above
/// what one log on this class of machine sustains, so that the run ends by
/// time, not by running out.
const CLOSED_LOOP_LEAVES_PER_SEC: usize = 20_000;

/// How long leaves still outstanding at the end of `--duration` may take
/// to reach 200 before the run ends anyway.
const DRAIN: Duration = Duration::from_secs(10);

/// Longest wait for a sampled leaf to show in a tree head.
const COSIGN_WAIT: Duration = Duration::from_secs(30);

/// Arguments of `cairn hammer`.
#[derive(clap::Args, Debug, Clone)]
pub struct HammerArgs {
    /// The log's base URL, e.g. http://127.0.0.1:6965/dev/. Repeat it to
    /// load several logs (shards) at once: leaves and readers are spread
    /// over them in turn, and the figures are their sum.
    #[arg(long, value_name = "URL", required = true)]
    pub log: Vec<String>,
    /// Seconds of load.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Closed loop: this many submitters, each posting its next leaf when
    /// the last one got 200.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub concurrency: u64,
    /// Open loop instead: this many new leaves per second, whatever the
    /// log answers.
    #[arg(long, value_name = "PER_SEC", conflicts_with = "concurrency")]
    pub rate: Option<u32>,
    /// Open loop: most submissions outstanding at once; beyond it new
    /// leaves are skipped and counted as "dropped".
    #[arg(long, default_value_t = 10_000)]
    pub max_in_flight: usize,
    /// Leaves signed before the run (the run stops submitting when they
    /// run out). Default: enough for 20000/s (closed loop) or the rate,
    /// over the duration, at most 1000000.
    #[arg(long)]
    pub leaves: Option<usize>,
    /// Number of submitter keys the leaves are spread over.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub keys: u32,
    /// Seed of the submitter keys and messages (a new seed gives new
    /// leaves; the same seed re-sends leaves a log already has).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Wait before re-sending a leaf that got 202, 503, 429 or no answer.
    #[arg(long, default_value_t = 1000)]
    pub retry_interval_ms: u64,
    /// A `sigsum-token` header value to send with every add-leaf:
    /// "DOMAIN HEX-TOKEN" (see `cairn token create`).
    #[arg(long, value_name = "HEADER")]
    pub token: Option<String>,
    /// Readers running alongside the submitters.
    #[arg(long, default_value_t = 0)]
    pub readers: usize,
    /// What the readers request, in turn: a comma-separated list of
    /// tree-head, inclusion, consistency, leaves, tile.
    #[arg(long, default_value = "tree-head,inclusion,consistency,leaves,tile")]
    pub read_mix: String,
    /// Measure 200 → a tree head proving the leaf for every Nth leaf (0:
    /// never).
    #[arg(long, default_value_t = 50)]
    pub sample: u64,
    /// The log's process id, if it runs on this machine: its CPU time over
    /// the run is reported. Repeat it for a log made of several processes
    /// (the sum is reported).
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

/// One kind of read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Read {
    TreeHead,
    Inclusion,
    Consistency,
    Leaves,
    Tile,
}

impl Read {
    fn name(self) -> &'static str {
        match self {
            Read::TreeHead => "tree-head",
            Read::Inclusion => "inclusion",
            Read::Consistency => "consistency",
            Read::Leaves => "leaves",
            Read::Tile => "tile",
        }
    }

    fn parse_mix(text: &str) -> anyhow::Result<Vec<Read>> {
        let all = [
            Read::TreeHead,
            Read::Inclusion,
            Read::Consistency,
            Read::Leaves,
            Read::Tile,
        ];
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                all.into_iter().find(|r| r.name() == s).with_context(|| {
                    format!("unknown read {s:?} (tree-head, inclusion, consistency, leaves, tile)")
                })
            })
            .collect()
    }
}

/// Latencies in microseconds, summarised at the end.
#[derive(Default)]
struct Latencies(std::sync::Mutex<Vec<u64>>);

impl Latencies {
    fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(micros);
    }

    fn summary(&self) -> Percentiles {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        v.sort_unstable();
        let at = |q: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            // Nearest rank.
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1] as f64 / 1000.0
        };
        Percentiles {
            count: v.len() as u64,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Everything measured, shared by the tasks.
#[derive(Default)]
struct Stats {
    committed: AtomicU64,
    /// 200s that came within `--duration` (what the rate counts).
    committed_in_time: AtomicU64,
    /// Microseconds from the start to the latest of those 200s: when the
    /// leaves run out early, the rate is over this span.
    last_in_time_us: AtomicU64,
    dropped: AtomicU64,
    statuses: std::sync::Mutex<BTreeMap<String, u64>>,
    first_response: Latencies,
    to_200: Latencies,
    to_head: Latencies,
    /// Leaf hashes of logged leaves, for inclusion reads.
    logged: std::sync::Mutex<Vec<Hash>>,
    reads: std::sync::Mutex<BTreeMap<Read, (u64, u64)>>,
    read_latency: BTreeMap<Read, Latencies>,
    /// The largest tree size a reader or sampler saw, and how many of the
    /// `logged` leaves had their 200 before that head was asked for (for
    /// Cairn, whose 200 means published, those are in it).
    head: std::sync::Mutex<(u64, usize)>,
}

impl Stats {
    /// Records a tree head of `size` asked for when `logged_before` leaves
    /// were logged.
    fn saw_head(&self, size: u64, logged_before: usize) {
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        if size > head.0 {
            *head = (size, logged_before);
        }
    }

    fn head(&self) -> (u64, usize) {
        *self.head.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn logged_count(&self) -> usize {
        self.logged.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn count_status(&self, status: &str) {
        *self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status.to_owned())
            .or_default() += 1;
    }

    fn count_read(&self, read: Read, ok: bool, took: Duration) {
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        let entry = reads.entry(read).or_default();
        if ok {
            entry.0 += 1;
            if let Some(l) = self.read_latency.get(&read) {
                l.record(took);
            }
        } else {
            entry.1 += 1;
        }
    }
}

/// The label of an add-leaf error: its HTTP status, or "transport".
fn status_label(e: &ClientError) -> String {
    e.status()
        .map_or_else(|| "transport".to_owned(), |s| s.to_string())
}

/// Reads of one kind in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ReadSummary {
    /// Successful reads per second over the run.
    pub per_sec: f64,
    /// Successful reads.
    pub ok: u64,
    /// Failed reads (any non-200, or no answer).
    pub failed: u64,
    /// Latency of the successful ones.
    pub latency: Percentiles,
}

/// The result of a run (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The log's base URL (the URLs, space-separated, for several logs).
    pub log: String,
    /// "closed" or "open".
    pub mode: &'static str,
    /// Seconds of load.
    pub duration_s: f64,
    /// add-leaf 200s within the duration, per second (per second of the
    /// span until the last of them if the leaves ran out first).
    pub add_leaf_per_sec: f64,
    /// Closed loop: every pre-signed leaf was logged before the end.
    pub leaves_ran_out: bool,
    /// All 200s, drain included.
    pub committed: u64,
    /// Open loop: leaves not sent because `--max-in-flight` were outstanding.
    pub dropped: u64,
    /// Responses by status ("200", "202", "503", "transport", ...), retries
    /// included.
    pub statuses: BTreeMap<String, u64>,
    /// First response to each leaf's first post.
    pub first_response: Percentiles,
    /// First post → 200.
    pub submit_to_200: Percentiles,
    /// 200 → a get-tree-head whose tree proves the leaf (sampled).
    pub committed_to_head: Percentiles,
    /// Per kind of read.
    pub reads: BTreeMap<String, ReadSummary>,
    /// The largest tree size seen.
    pub tree_size: u64,
    /// CPU seconds the log's processes used during the run (`--pid`, summed).
    pub log_cpu_s: Option<f64>,
    /// This machine's one-thread Ed25519 verifications per second of
    /// Sigsum leaves, measured just before the run: the yardstick, since a
    /// log verifies every leaf's signature once.
    pub verify_per_sec: f64,
    /// `add_leaf_per_sec / verify_per_sec`: throughput as a share of the
    /// machine's limit, comparable across machines and runs.
    pub add_leaf_vs_verify: f64,
}

/// One-thread Ed25519 verifications of a Sigsum leaf signature per second
/// on this machine (a few thousand, timed), with the key checked and
/// decompressed once, as a log keeps its submitters' keys: the signature
/// check alone, the least a log must do for each leaf.
pub fn verify_rate() -> f64 {
    let key = SigningKey::from_seed(&[7; 32]);
    let message = cairn_sigsum::crypto::hash(b"cairn verify-rate baseline\n");
    let leaf = Leaf::sign(&key, &message);
    let Ok(public) = cairn_sigsum::StrongKey::new(key.public_key()) else {
        return 0.0;
    };
    let n = 5000;
    let started = Instant::now();
    for _ in 0..n {
        if leaf.verify_with(&public).is_err() {
            return 0.0;
        }
    }
    f64::from(n) / started.elapsed().as_secs_f64()
}

/// Runs the hammer and returns the summary (printed by the caller).
pub async fn run(args: HammerArgs) -> anyhow::Result<Summary> {
    let mix = Read::parse_mix(&args.read_mix)?;
    if args.readers > 0 && mix.is_empty() {
        bail!("--readers needs at least one kind of read in --read-mix");
    }
    if args.rate == Some(0) {
        bail!("--rate must be at least 1");
    }
    if args.rate.is_none() && args.concurrency == 0 && args.readers == 0 {
        bail!("nothing to do: --concurrency 0 and no --readers");
    }
    let token = args
        .token
        .as_deref()
        .map(SubmitHeader::parse)
        .transpose()
        .context("--token")?;
    let config = ClientConfig::default();
    // One connection pool for all the logs: with a pool per log, idle
    // connections of one log's pool are not reused by another's, and the
    // total passes a server's per-address connection cap.
    let mut clients: Vec<LogClient> = Vec::with_capacity(args.log.len());
    for url in &args.log {
        let client = match clients.first() {
            None => LogClient::with_config(url, &config),
            Some(first) => first.at(url),
        };
        clients.push(client.with_context(|| format!("--log {url}"))?);
    }
    let clients: Arc<[LogClient]> = clients.into();
    let duration = Duration::from_secs(args.duration);
    let wanted = args.leaves.unwrap_or_else(|| {
        let per_sec = args.rate.map_or(CLOSED_LOOP_LEAVES_PER_SEC, |r| r as usize);
        per_sec
            .saturating_mul(args.duration as usize)
            .min(MAX_LEAVES)
    });
    if wanted > MAX_LEAVES {
        bail!(
            "{wanted} leaves is more than the {MAX_LEAVES} one run signs; lower --leaves, --rate or --duration"
        );
    }
    let leaves = Arc::new(sign_leaves(args.seed, args.keys, wanted).await?);
    let verify_per_sec = tokio::task::spawn_blocking(verify_rate)
        .await
        .context("measuring the verify rate")?;

    let mut stats = Stats::default();
    for r in &mix {
        stats.read_latency.entry(*r).or_default();
    }
    let stats = Arc::new(stats);
    let cpu_of = |pids: &[u32]| -> anyhow::Result<Option<f64>> {
        if pids.is_empty() {
            return Ok(None);
        }
        let mut sum = 0.0;
        for &pid in pids {
            sum += process_cpu(pid)?;
        }
        Ok(Some(sum))
    };
    let cpu_before = cpu_of(&args.pid)?;
    let start = Instant::now();
    let end = start + duration;
    let submit = Submit {
        clients: clients.clone(),
        token: token.map(Arc::new),
        retry: Duration::from_millis(args.retry_interval_ms),
        sample: args.sample,
        stats: stats.clone(),
        start,
        end,
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    match args.rate {
        None => {
            for _ in 0..args.concurrency {
                let (submit, leaves, next) = (submit.clone(), leaves.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < end {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(leaf) = leaves.get(i) else { break };
                        submit.one(i as u64, leaf).await;
                    }
                }));
            }
        }
        Some(rate) => {
            let (submit, leaves) = (submit.clone(), leaves.clone());
            let max_in_flight = args.max_in_flight.max(1);
            tasks.push(tokio::spawn(async move {
                let in_flight = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
                let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut sent = Vec::new();
                for (i, leaf) in leaves.iter().enumerate() {
                    tick.tick().await;
                    if Instant::now() >= end {
                        break;
                    }
                    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                        submit.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let (submit, leaf) = (submit.clone(), *leaf);
                    sent.push(tokio::spawn(async move {
                        submit.one(i as u64, &leaf).await;
                        drop(permit);
                    }));
                }
                for t in sent {
                    let _ = t.await;
                }
            }));
        }
    }
    for r in 0..args.readers {
        let client = clients[r % clients.len()].clone();
        let (stats, mix) = (stats.clone(), mix.clone());
        let base = client.base_url().to_owned();
        let http = config
            .roots
            .reqwest_builder()
            .timeout(config.request_timeout)
            .build()
            .context("HTTP client")?;
        tasks.push(tokio::spawn(async move {
            let mut turn = r;
            while Instant::now() < end {
                let read = mix[turn % mix.len()];
                turn += 1;
                let began = Instant::now();
                let ok = read_once(&client, &http, &base, read, &stats, turn as u64).await;
                stats.count_read(read, ok, began.elapsed());
                if !ok {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let progress = tokio::spawn(progress_line(stats.clone(), start, end, args.json));
    let all = futures::future::join_all(tasks);
    if tokio::time::timeout(duration + DRAIN, all).await.is_err() {
        eprintln!("cairn hammer: leaves still outstanding {DRAIN:?} after the run; not counted");
    }
    progress.abort();
    let elapsed = duration.as_secs_f64();
    let log_cpu_s = match (cpu_of(&args.pid)?, cpu_before) {
        (Some(after), Some(before)) => Some(after - before),
        _ => None,
    };
    let reads = stats
        .reads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(read, &(ok, failed))| {
            let latency = stats
                .read_latency
                .get(read)
                .map(Latencies::summary)
                .unwrap_or_default();
            let summary = ReadSummary {
                per_sec: ok as f64 / elapsed,
                ok,
                failed,
                latency,
            };
            (read.name().to_owned(), summary)
        })
        .collect();
    // A closed loop that ran out of leaves before the end measured the log
    // only until its last 200: the rest of the duration was idle.
    let in_time = stats.committed_in_time.load(Ordering::Relaxed);
    let leaves_ran_out = args.rate.is_none() && in_time as usize == leaves.len();
    let rate_span = if leaves_ran_out {
        (stats.last_in_time_us.load(Ordering::Relaxed) as f64 / 1e6).max(1e-3)
    } else {
        elapsed
    };
    if leaves_ran_out {
        eprintln!(
            "cairn hammer: all {in_time} leaves were logged after {rate_span:.1} s of the \
             {elapsed:.0} s; the rate is over that span (raise --leaves to load the whole run)"
        );
    }
    let add_leaf_per_sec = in_time as f64 / rate_span;
    Ok(Summary {
        log: clients
            .iter()
            .map(|c| c.base_url().to_owned())
            .collect::<Vec<_>>()
            .join(" "),
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        duration_s: elapsed,
        add_leaf_per_sec,
        leaves_ran_out,
        committed: stats.committed.load(Ordering::Relaxed),
        dropped: stats.dropped.load(Ordering::Relaxed),
        statuses: stats
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        first_response: stats.first_response.summary(),
        submit_to_200: stats.to_200.summary(),
        committed_to_head: stats.to_head.summary(),
        reads,
        tree_size: stats.head().0,
        log_cpu_s,
        verify_per_sec,
        add_leaf_vs_verify: if verify_per_sec > 0.0 {
            add_leaf_per_sec / verify_per_sec
        } else {
            0.0
        },
    })
}

/// Signs `n` leaves, message `i` = SHA-256(seed ‖ i) by key `i mod keys`,
/// on every core (this happens before the clock starts).
async fn sign_leaves(seed: u64, keys: u32, n: usize) -> anyhow::Result<Vec<AddLeafRequest>> {
    let keys: Arc<Vec<SigningKey>> = Arc::new(
        (0..keys)
            .map(|k| {
                let mut material = Vec::with_capacity(24);
                material.extend_from_slice(b"cairn-hammer-key");
                material.extend_from_slice(&seed.to_be_bytes());
                material.extend_from_slice(&k.to_be_bytes());
                SigningKey::from_seed(&cairn_sigsum::crypto::hash(&material))
            })
            .collect(),
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = n.div_ceil(threads).max(1);
    let mut handles = Vec::new();
    for start in (0..n).step_by(chunk) {
        let keys = keys.clone();
        let end = (start + chunk).min(n);
        handles.push(tokio::task::spawn_blocking(move || {
            (start..end)
                .map(|i| {
                    let mut material = Vec::with_capacity(16);
                    material.extend_from_slice(&seed.to_be_bytes());
                    material.extend_from_slice(&(i as u64).to_be_bytes());
                    let message = cairn_sigsum::crypto::hash(&material);
                    AddLeafRequest::sign(&keys[i % keys.len()], &message)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.extend(h.await.context("signing leaves")?);
    }
    Ok(out)
}

/// What every submission shares.
#[derive(Clone)]
struct Submit {
    /// Leaf `i` goes to log `i mod len`.
    clients: Arc<[LogClient]>,
    token: Option<Arc<SubmitHeader>>,
    retry: Duration,
    sample: u64,
    stats: Arc<Stats>,
    start: Instant,
    end: Instant,
}

impl Submit {
    /// Posts leaf number `i` until 200 (retrying 202, 503, 429 and
    /// transport errors like sigsum-go), a refusal, or the drain limit.
    async fn one(&self, i: u64, request: &AddLeafRequest) {
        let client = &self.clients[(i % self.clients.len() as u64) as usize];
        let posted = Instant::now();
        let give_up = self.end + DRAIN;
        let mut first = true;
        loop {
            let result = client.add_leaf(request, self.token.as_deref()).await;
            if first {
                self.stats.first_response.record(posted.elapsed());
                first = false;
            }
            match result {
                Ok(AddLeafStatus::Committed) => {
                    self.stats.count_status("200");
                    let now = Instant::now();
                    self.stats.to_200.record(now - posted);
                    self.stats.committed.fetch_add(1, Ordering::Relaxed);
                    if now <= self.end {
                        self.stats.committed_in_time.fetch_add(1, Ordering::Relaxed);
                        let since =
                            u64::try_from((now - self.start).as_micros()).unwrap_or(u64::MAX);
                        self.stats
                            .last_in_time_us
                            .fetch_max(since, Ordering::Relaxed);
                    }
                    let hash = Leaf {
                        checksum: cairn_sigsum::crypto::hash(&request.message),
                        signature: request.signature,
                        key_hash: request.public_key.key_hash(),
                    }
                    .leaf_hash();
                    self.stats
                        .logged
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(hash);
                    if self.sample > 0 && i.is_multiple_of(self.sample) {
                        self.until_in_head(client, hash, now).await;
                    }
                    return;
                }
                Ok(AddLeafStatus::Accepted) => self.stats.count_status("202"),
                Err(e) => {
                    self.stats.count_status(&status_label(&e));
                    if !e.is_retryable() {
                        return;
                    }
                }
            }
            if Instant::now() + self.retry > give_up {
                return;
            }
            tokio::time::sleep(self.retry).await;
        }
    }

    /// Polls get-tree-head (and the leaf's inclusion proof in it) until the
    /// head proves the leaf; records the time since `committed`.
    async fn until_in_head(&self, client: &LogClient, hash: Hash, committed: Instant) {
        while committed.elapsed() < COSIGN_WAIT {
            let logged_before = self.stats.logged_count();
            if let Ok(head) = client.get_tree_head().await {
                let size = head.tree_head().size;
                self.stats.saw_head(size, logged_before);
                let proven = match size {
                    0 => false,
                    // A one-leaf tree's root is the leaf hash.
                    1 => head.tree_head().root_hash == hash,
                    _ => client.get_inclusion_proof(size, &hash).await.is_ok(),
                };
                if proven {
                    self.stats.to_head.record(committed.elapsed());
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One read of kind `read`; whether it succeeded.
async fn read_once(
    client: &LogClient,
    http: &reqwest::Client,
    base: &str,
    read: Read,
    stats: &Stats,
    turn: u64,
) -> bool {
    let (size, proven) = stats.head();
    let tree_head = || async {
        let logged_before = stats.logged_count();
        match client.get_tree_head().await {
            Ok(head) => {
                stats.saw_head(head.tree_head().size, logged_before);
                true
            }
            Err(_) => false,
        }
    };
    match read {
        Read::TreeHead => tree_head().await,
        Read::Inclusion => {
            let hash = (proven > 0 && size >= 2).then(|| {
                let logged = stats.logged.lock().unwrap_or_else(|e| e.into_inner());
                logged[(turn as usize) % proven]
            });
            match hash {
                Some(h) => client.get_inclusion_proof(size, &h).await.is_ok(),
                None => tree_head().await,
            }
        }
        Read::Consistency if size >= 2 => {
            let old = 1 + turn % (size - 1);
            client.get_consistency_proof(old, size).await.is_ok()
        }
        Read::Leaves if size >= 1 => {
            let start = turn % size;
            client
                .get_leaves(start, (start + 64).min(size))
                .await
                .is_ok()
        }
        Read::Tile if size >= 256 => {
            let index = turn % (size / 256);
            let path = cairn_tlog::tile::TileId::full(0, index)
                .map(|t| t.path())
                .unwrap_or_default();
            match http.get(format!("{base}{path}")).send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
        // Too small a tree for this read yet: read the head instead.
        Read::Consistency | Read::Leaves | Read::Tile => tree_head().await,
    }
}

/// Once a second on a terminal: elapsed time, 200s per second, statuses.
async fn progress_line(stats: Arc<Stats>, start: Instant, end: Instant, quiet: bool) {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let committed = stats.committed.load(Ordering::Relaxed);
        let statuses = stats.statuses.lock().map(|s| s.clone()).unwrap_or_default();
        let others: u64 = statuses
            .iter()
            .filter(|(k, _)| k.as_str() != "200")
            .map(|(_, v)| v)
            .sum();
        bar.set_message(format!(
            "{:>4}s  add-leaf {}/s  200: {committed}  other: {others}  tree size {}{}",
            start.elapsed().as_secs(),
            committed - last,
            stats.head().0,
            if Instant::now() > end {
                "  (draining)"
            } else {
                ""
            },
        ));
        bar.tick();
        last = committed;
    }
}

/// CPU seconds (user + system) process `pid` has used, from
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s (Linux's USER_HZ).
pub fn process_cpu(pid: u32) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("--pid {pid}: reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields count from after it.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13
    // after the name.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc stat")?
            .parse::<u64>()
            .context("/proc stat field")? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Prints `summary` for people (standard error) or as JSON (standard out).
pub fn print(summary: &Summary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
        return Ok(());
    }
    let p = |l: &Percentiles| {
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
        )
    };
    println!(
        "{} ({} loop, {:.0} s): add-leaf {:.1}/s ({:.3} of {:.0} verifications/s), {} committed, tree size {}",
        summary.log,
        summary.mode,
        summary.duration_s,
        summary.add_leaf_per_sec,
        summary.add_leaf_vs_verify,
        summary.verify_per_sec,
        summary.committed,
        summary.tree_size
    );
    println!("  statuses: {:?}", summary.statuses);
    if summary.dropped > 0 {
        println!("  dropped (max in flight): {}", summary.dropped);
    }
    println!("  first response: {}", p(&summary.first_response));
    println!("  submit → 200:   {}", p(&summary.submit_to_200));
    println!("  200 → head:     {}", p(&summary.committed_to_head));
    for (name, r) in &summary.reads {
        println!(
            "  read {name}: {:.1}/s ({} failed), {}",
            r.per_sec,
            r.failed,
            p(&r.latency)
        );
    }
    if let Some(cpu) = summary.log_cpu_s {
        println!(
            "  log CPU: {cpu:.2} s ({:.0}% of one core)",
            100.0 * cpu / summary.duration_s
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latencies::default();
        for ms in 1..=100u64 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(
            (s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Latencies::default().summary(), Percentiles::default());
    }

    #[test]
    fn the_read_mix_names_known_reads_only() {
        assert_eq!(
            Read::parse_mix("tree-head, tile").unwrap(),
            vec![Read::TreeHead, Read::Tile]
        );
        assert!(Read::parse_mix("tree-head,proofs").is_err());
    }

    #[tokio::test]
    async fn the_same_seed_signs_the_same_leaves_and_another_seed_others() {
        let a = sign_leaves(7, 3, 10).await.unwrap();
        let b = sign_leaves(7, 3, 10).await.unwrap();
        let c = sign_leaves(8, 3, 10).await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a[0].message, c[0].message);
        let keys: std::collections::BTreeSet<_> = a.iter().map(|r| r.public_key).collect();
        assert_eq!(keys.len(), 3);
        for r in &a {
            let leaf = Leaf {
                checksum: cairn_sigsum::crypto::hash(&r.message),
                signature: r.signature,
                key_hash: r.public_key.key_hash(),
            };
            leaf.verify(&r.public_key).expect("a leaf the log accepts");
        }
    }

    #[test]
    fn the_cpu_time_of_this_process_reads_from_proc() {
        let cpu = process_cpu(std::process::id()).unwrap();
        assert!(cpu >= 0.0);
    }
}
