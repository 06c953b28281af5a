//! `cairn-idle-shards`: what hosting idle shards costs a node. Starts
//! `--shards` shards in this one process the way a sequencer node hosts
//! them today (each its own RocksDB and Raft group, single-member here, so
//! no heartbeats cross the network), waits until every one leads its group
//! and has signed its empty tree, then measures RSS and CPU while they
//! idle. `benches/scenarios/idle-shards.sh` runs it for several counts,
//! each in a fresh process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cairn_sequencer::shard::{Shard, ShardConfig};
use cairn_sigsum::SigningKey;
use cairn_storage::TileStore;
use clap::Parser;

#[derive(Parser)]
#[command(about = "The RSS and idle CPU of a node hosting N shards")]
struct Args {
    /// Shards to host (at most 1000).
    #[arg(long, default_value_t = 10)]
    shards: usize,
    /// Seconds to idle while CPU is measured.
    #[arg(long, default_value_t = 20)]
    idle: u64,
    /// Directory for the shards' state: it must not exist yet (default: a
    /// temporary directory, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Longest wait for every shard to lead its group.
const READY_WITHIN: Duration = Duration::from_secs(120);

#[derive(serde::Serialize)]
struct Summary {
    shards: usize,
    start_s: f64,
    rss_before_mib: f64,
    rss_idle_mib: f64,
    rss_per_shard_mib: f64,
    idle_cpu_percent: f64,
    idle_cpu_per_shard_percent: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=1000).contains(&args.shards),
        "--shards must be 1 to 1000"
    );
    let tmp;
    let root = match &args.dir {
        Some(dir) => {
            anyhow::ensure!(!dir.exists(), "{} exists already", dir.display());
            dir.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("a temporary directory")?;
            tmp.path().to_owned()
        }
    };
    let pid = std::process::id();
    let (rss_before, _) = cairn_benches::memory(pid)?;
    let started = Instant::now();
    let mut shards = Vec::with_capacity(args.shards);
    for i in 0..args.shards {
        let name = format!("s{i}");
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let tiles = TileStore::local(&root.join("tiles"), &name)
            .with_context(|| format!("the tile store of {name}"))?;
        let config = ShardConfig::new(
            name.clone(),
            1,
            root.join("raft").join(&name),
            SigningKey::from_seed(&seed),
            tiles,
            // Single-member groups: no peer ever dials this address.
            "http://127.0.0.1:9",
        );
        shards.push(
            Shard::start(config)
                .await
                .with_context(|| format!("starting {name}"))?,
        );
    }
    let deadline = Instant::now() + READY_WITHIN;
    while !shards
        .iter()
        .all(|s| s.is_leader() && s.tree_heads().is_ok())
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "not every shard led its group within {READY_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start_s = started.elapsed().as_secs_f64();

    let cpu_before = cairn_cli::hammer::process_cpu(pid)?;
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle)).await;
    let cpu = cairn_cli::hammer::process_cpu(pid)? - cpu_before;
    let idle_cpu_percent = 100.0 * cpu / idle_started.elapsed().as_secs_f64();
    let (rss_idle, _) = cairn_benches::memory(pid)?;
    let n = args.shards as f64;
    let summary = Summary {
        shards: args.shards,
        start_s,
        rss_before_mib: rss_before,
        rss_idle_mib: rss_idle,
        rss_per_shard_mib: (rss_idle - rss_before) / n,
        idle_cpu_percent,
        idle_cpu_per_shard_percent: idle_cpu_percent / n,
    };
    for shard in &shards {
        shard.shutdown().await;
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} shards: ready in {:.1} s; RSS {:.1} MiB ({:.2} MiB per shard over the {:.1} MiB \
             before); idle CPU {:.2}% ({:.3}% per shard)",
            summary.shards,
            summary.start_s,
            summary.rss_idle_mib,
            summary.rss_per_shard_mib,
            summary.rss_before_mib,
            summary.idle_cpu_percent,
            summary.idle_cpu_per_shard_percent
        );
    }
    Ok(())
}
