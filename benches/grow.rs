//! `cairn-grow`: grows a log to millions of leaves through the bulk path and
//! reports, at each milestone size, what growth costs the log process:
//! resident memory (now and its high-water mark), disk bytes per leaf (the
//! shard database with its Raft log, snapshot files, tiles) and the latency
//! of inclusion proofs served by the frontend (issue 14, "Memory and
//! growth"; `benches/scenarios/growth.sh` runs it against `cairnd dev`).
//!
//! The bulk path is the sequencer's own `AddLeaves` gRPC call, the one the
//! frontend makes for batches of verified submissions: the HTTP add-leaf
//! path costs an Ed25519 verification per leaf in the log and would take
//! hours to reach 10^7 leaves on a small machine. The leaves are real signed
//! Sigsum leaves (a thread signs them ahead of the submitter), so the grown
//! log passes `cairn fsck` like any other.
//!
//! Milestones are exact: the tool submits up to each one, waits until every
//! leaf is committed and a published (cosigned) tree head covers it, then
//! measures with no load running.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_cli::hammer::process_cpu;
use cairn_client::LogClient;
use cairn_proto::v1::AddLeavesRequest;
use cairn_proto::v1::sequencer_client::SequencerClient;
use cairn_sigsum::crypto::hash;
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::{Hash, SigningKey};
use clap::Parser;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::Code;
use tonic::transport::Channel;

/// Leaves sampled for proof latency: one in this many.
const SAMPLE_STRIDE: u64 = 997;
/// Longest wait for a published head to cover a milestone.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Parser, Debug)]
#[command(
    name = "cairn-grow",
    about = "Grow a Cairn log through the bulk path and report memory, disk and proof latency at milestones"
)]
struct Args {
    /// The sequencer's gRPC URL (`cairnd dev` prints it; `--grpc-listen`
    /// fixes it).
    #[arg(long)]
    sequencer: String,
    /// The log's base URL, for tree heads and inclusion proofs.
    #[arg(long)]
    log: String,
    /// The shard to grow.
    #[arg(long, default_value = "dev")]
    shard: String,
    /// The log process, for memory and CPU.
    #[arg(long)]
    pid: u32,
    /// The log's data directory (`cairnd dev --data-dir`), for disk usage.
    #[arg(long)]
    data_dir: PathBuf,
    /// Tree sizes to report at, comma separated, increasing.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    report_at: Vec<u64>,
    /// Leaves per `AddLeaves` call (one Raft entry at the sequencer's
    /// default batch size).
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// `AddLeaves` calls in flight at once.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Submitter keys the leaves are signed with.
    #[arg(long, default_value_t = 64)]
    keys: u32,
    /// Seed of the checksums and keys (a new seed gives new leaves).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Inclusion proofs timed at each milestone, one at a time.
    #[arg(long, default_value_t = 300)]
    proofs: usize,
    /// Print one JSON object per milestone instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one milestone measured.
#[derive(Serialize, Debug)]
struct Milestone {
    leaves: u64,
    /// Leaves per second committed since the previous milestone.
    ingest_per_sec: f64,
    /// Log CPU microseconds per leaf since the previous milestone.
    cpu_us_per_leaf: f64,
    rss_mib: f64,
    rss_high_water_mib: f64,
    /// The shard database (Raft log and state machine).
    db_bytes: u64,
    snapshot_bytes: u64,
    tile_bytes: u64,
    disk_bytes_per_leaf: f64,
    proof_p50_us: u64,
    proof_p99_us: u64,
}

/// One chunk of signed leaves and the sampled leaf hashes in it.
struct Chunk {
    leaves: Vec<Vec<u8>>,
    samples: Vec<Hash>,
}

/// Signs leaves `from..to` (checksum of seed and index, keys in turn) and
/// sends them in chunks of `batch`.
fn sign_range(
    keys: &[SigningKey],
    seed: u64,
    from: u64,
    to: u64,
    batch: usize,
    out: &mpsc::Sender<Chunk>,
) -> bool {
    let mut i = from;
    while i < to {
        let end = (i + batch as u64).min(to);
        let mut chunk = Chunk {
            leaves: Vec::with_capacity((end - i) as usize),
            samples: Vec::new(),
        };
        for n in i..end {
            let mut message = [0u8; 16];
            message[..8].copy_from_slice(&seed.to_be_bytes());
            message[8..].copy_from_slice(&n.to_be_bytes());
            let leaf = Leaf::sign(&keys[(n % keys.len() as u64) as usize], &hash(&message));
            if n % SAMPLE_STRIDE == 0 {
                chunk.samples.push(leaf.leaf_hash());
            }
            chunk.leaves.push(leaf.to_bytes().to_vec());
        }
        if out.blocking_send(chunk).is_err() {
            return false;
        }
        i = end;
    }
    true
}

/// Submits one chunk until every leaf is committed: leaves the sequencer
/// reports pending are resubmitted (idempotent), push-back and transient
/// errors are retried after a pause.
async fn submit(
    mut client: SequencerClient<Channel>,
    shard: String,
    mut leaves: Vec<Vec<u8>>,
) -> anyhow::Result<u64> {
    let committed = leaves.len() as u64;
    let mut attempts = 0u32;
    while !leaves.is_empty() {
        attempts += 1;
        if attempts > 1000 {
            bail!(
                "{} leaves still not committed after 1000 attempts",
                leaves.len()
            );
        }
        let request = AddLeavesRequest {
            shard: shard.clone(),
            leaves: leaves.clone(),
            wait_ms: 10_000,
        };
        match client.add_leaves(request).await {
            Ok(answer) => {
                let results = answer.into_inner().results;
                if results.len() != leaves.len() {
                    bail!("{} results for {} leaves", results.len(), leaves.len());
                }
                let mut kept = results.iter().map(|r| !r.committed);
                leaves.retain(|_| kept.next().unwrap_or(true));
            }
            Err(s)
                if matches!(
                    s.code(),
                    Code::ResourceExhausted | Code::Unavailable | Code::DeadlineExceeded
                ) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => bail!("AddLeaves: {s}"),
        }
    }
    Ok(committed)
}

/// Bytes of every file under `dir` (0 if it does not exist).
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Waits until the log publishes a head of at least `size` leaves and
/// returns its size.
async fn published(log: &LogClient, size: u64) -> anyhow::Result<u64> {
    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    loop {
        if let Ok(head) = log.get_tree_head().await
            && head.signed.tree_head.size >= size
        {
            return Ok(head.signed.tree_head.size);
        }
        if Instant::now() > deadline {
            bail!("no published head of {size} leaves within {PUBLISH_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Times `n` inclusion proofs of sampled leaves, one at a time; returns
/// p50 and p99 in microseconds.
async fn proof_latency(
    log: &LogClient,
    size: u64,
    samples: &[Hash],
    n: usize,
) -> anyhow::Result<(u64, u64)> {
    if samples.is_empty() || n == 0 || size < 2 {
        return Ok((0, 0));
    }
    let mut took = Vec::with_capacity(n);
    // A fixed stride through the samples reaches old and new leaves alike.
    let step = (samples.len() / n).max(1);
    for k in 0..n {
        let leaf = &samples[(k * step + k) % samples.len()];
        let started = Instant::now();
        log.get_inclusion_proof(size, leaf)
            .await
            .context("get-inclusion-proof")?;
        took.push(started.elapsed().as_micros() as u64);
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.report_at.is_empty() || args.report_at.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--report-at needs increasing sizes");
    }
    if args.batch == 0 || args.batch > 4096 || args.keys == 0 {
        bail!("--batch must be 1..=4096 and --keys at least 1");
    }
    let log = LogClient::new(&args.log).context("--log")?;
    let start_size = log
        .get_tree_head()
        .await
        .context("the log's tree head")?
        .signed
        .tree_head
        .size;
    if start_size >= args.report_at[0] {
        bail!("the log already holds {start_size} leaves; grow a fresh one");
    }
    let channel = tonic::transport::Endpoint::from_shared(args.sequencer.clone())
        .context("--sequencer")?
        .connect()
        .await
        .context("connecting to the sequencer")?;
    let client = SequencerClient::new(channel);
    let keys: Vec<SigningKey> = (0..args.keys)
        .map(|k| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&args.seed.to_be_bytes());
            seed[8..12].copy_from_slice(&k.to_be_bytes());
            SigningKey::from_seed(&seed)
        })
        .collect();

    let (tx, mut rx) = mpsc::channel::<Chunk>(2 * args.in_flight);
    let (seed, batch, last) = (args.seed, args.batch, *args.report_at.last().unwrap_or(&0));
    let first = start_size;
    let signer = std::thread::spawn(move || sign_range(&keys, seed, first, last, batch, &tx));

    let mut samples = Vec::new();
    let mut submitted = start_size;
    let mut since = (Instant::now(), process_cpu(args.pid)?, start_size);
    for &milestone in &args.report_at {
        let mut calls = JoinSet::new();
        let mut queue = VecDeque::new();
        while submitted < milestone || !calls.is_empty() {
            while submitted < milestone && calls.len() < args.in_flight {
                let Some(chunk) = rx.recv().await else {
                    bail!("the signing thread stopped");
                };
                submitted += chunk.leaves.len() as u64;
                queue.extend(chunk.samples);
                calls.spawn(submit(client.clone(), args.shard.clone(), chunk.leaves));
            }
            if let Some(done) = calls.join_next().await {
                done.context("submit task")??;
            }
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprint!("\r{submitted} leaves submitted");
            }
        }
        samples.extend(queue.drain(..));
        let size = published(&log, milestone).await?;
        let (now, cpu) = (Instant::now(), process_cpu(args.pid)?);
        let grown = (milestone - since.2) as f64;
        let (rss, hwm) = cairn_benches::memory(args.pid)?;
        let shard_dir = args.data_dir.join("raft").join(&args.shard);
        let db = du(&shard_dir);
        let snapshots = du(&args
            .data_dir
            .join("raft")
            .join(format!("{}.snapshots", args.shard)));
        let tiles = du(&args.data_dir.join("tiles"));
        let (p50, p99) = proof_latency(&log, size, &samples, args.proofs).await?;
        let m = Milestone {
            leaves: milestone,
            ingest_per_sec: grown / now.duration_since(since.0).as_secs_f64(),
            cpu_us_per_leaf: (cpu - since.1) * 1e6 / grown,
            rss_mib: rss,
            rss_high_water_mib: hwm,
            db_bytes: db,
            snapshot_bytes: snapshots,
            tile_bytes: tiles,
            disk_bytes_per_leaf: (db + snapshots + tiles) as f64 / size as f64,
            proof_p50_us: p50,
            proof_p99_us: p99,
        };
        if args.json {
            println!("{}", serde_json::to_string(&m)?);
        } else {
            eprintln!(
                "\r{:>10} leaves: {:>7.0}/s, {:.0} µs CPU/leaf, RSS {:.0} MiB (high-water {:.0}), \
                 disk {:.0} B/leaf (db {} MiB, snapshots {} MiB, tiles {} MiB), proof p50 {} µs p99 {} µs",
                m.leaves,
                m.ingest_per_sec,
                m.cpu_us_per_leaf,
                m.rss_mib,
                m.rss_high_water_mib,
                m.disk_bytes_per_leaf,
                m.db_bytes >> 20,
                m.snapshot_bytes >> 20,
                m.tile_bytes >> 20,
                m.proof_p50_us,
                m.proof_p99_us
            );
        }
        since = (Instant::now(), process_cpu(args.pid)?, milestone);
    }
    drop(rx);
    let _ = signer.join();
    Ok(())
}
