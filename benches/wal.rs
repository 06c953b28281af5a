//! `cairn-wal`: what one WAL per node would save over one per shard
//! (issue 15: "one RocksDB per node … one WAL so fsyncs are shared across
//! shards — measure the alternative"). N writer threads, one per shard,
//! each committing synced write batches (a Raft append: `--bytes` per
//! batch) as fast as it can for `--seconds`, either
//!
//! * `separate`: each shard its own RocksDB, so its own WAL and fsyncs
//!   (Cairn's layout today), or
//! * `shared`: one RocksDB with a column family per shard, so one WAL that
//!   RocksDB's write groups sync once for all the writers waiting.
//!
//! Prints synced commits per second for both, on this machine's disk, and
//! the CPU time this process spent per commit (RocksDB's and the kernel's
//! share of the sync path).
//! `benches/scenarios/shards.sh --wal` runs it for several shard counts.
//! Run it on the disk a cluster will use: the answer depends on whether
//! the device serves concurrent syncs in parallel.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};

#[derive(Parser)]
#[command(about = "Synced commits per second: one WAL per shard vs one per node")]
struct Args {
    /// Writers (shards).
    #[arg(long, default_value_t = 8)]
    shards: usize,
    /// Seconds per layout.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Bytes per committed batch (128 per leaf).
    #[arg(long, default_value_t = 4096)]
    bytes: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Summary {
    shards: usize,
    bytes: usize,
    separate_commits_per_sec: f64,
    shared_commits_per_sec: f64,
    shared_vs_separate: f64,
    separate_cpu_us_per_commit: f64,
    shared_cpu_us_per_commit: f64,
}

/// Commits per second and CPU µs per commit of one layout's run.
struct Rate {
    per_sec: f64,
    cpu_us: f64,
}

fn measure(targets: Vec<(Arc<DB>, Option<String>)>, args: &Args) -> anyhow::Result<Rate> {
    let pid = std::process::id();
    let cpu_before = cairn_cli::hammer::process_cpu(pid)?;
    let started = Instant::now();
    let n = drive(targets, args.bytes, args.seconds);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cairn_cli::hammer::process_cpu(pid)? - cpu_before;
    Ok(Rate {
        per_sec: n as f64 / elapsed,
        cpu_us: 1e6 * cpu / n.max(1) as f64,
    })
}

fn options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts
}

/// Runs one writer per target until `seconds` pass; total commits.
fn drive(targets: Vec<(Arc<DB>, Option<String>)>, bytes: usize, seconds: u64) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = targets
        .into_iter()
        .enumerate()
        .map(|(i, (db, cf))| {
            let (stop, commits) = (stop.clone(), commits.clone());
            std::thread::spawn(move || {
                let mut sync = WriteOptions::default();
                sync.set_sync(true);
                let value = vec![i as u8; bytes];
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut batch = WriteBatch::default();
                    let key = n.to_be_bytes();
                    match &cf {
                        Some(name) => {
                            let handle = db.cf_handle(name).expect("column family");
                            batch.put_cf(&handle, key, &value);
                        }
                        None => batch.put(key, &value),
                    }
                    db.write_opt(batch, &sync).expect("synced write");
                    n += 1;
                    commits.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    commits.load(Ordering::Relaxed)
}

fn separate(dir: &Path, args: &Args) -> anyhow::Result<Rate> {
    let mut targets = Vec::new();
    for i in 0..args.shards {
        let db = DB::open(&options(), dir.join(format!("shard{i}")))?;
        targets.push((Arc::new(db), None));
    }
    measure(targets, args)
}

fn shared(dir: &Path, args: &Args) -> anyhow::Result<Rate> {
    let names: Vec<String> = (0..args.shards).map(|i| format!("shard{i}")).collect();
    let cfs = names
        .iter()
        .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    let db = Arc::new(DB::open_cf_descriptors(&options(), dir.join("node"), cfs)?);
    let targets = names.into_iter().map(|n| (db.clone(), Some(n))).collect();
    measure(targets, args)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=256).contains(&args.shards),
        "--shards must be 1 to 256"
    );
    let dir = tempfile::tempdir()?;
    let separate = separate(dir.path(), &args)?;
    let shared = shared(dir.path(), &args)?;
    let summary = Summary {
        shards: args.shards,
        bytes: args.bytes,
        separate_commits_per_sec: separate.per_sec,
        shared_commits_per_sec: shared.per_sec,
        shared_vs_separate: shared.per_sec / separate.per_sec,
        separate_cpu_us_per_commit: separate.cpu_us,
        shared_cpu_us_per_commit: shared.cpu_us,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} shards, {} B per commit: one WAL per shard {:.0} synced commits/s ({:.0} µs CPU each), \
             one WAL per node {:.0}/s ({:.0} µs CPU each): {:.2}×",
            summary.shards,
            summary.bytes,
            summary.separate_commits_per_sec,
            summary.separate_cpu_us_per_commit,
            summary.shared_commits_per_sec,
            summary.shared_cpu_us_per_commit,
            summary.shared_vs_separate
        );
    }
    Ok(())
}
