//! `cairn-chaos`: runs a workload against a Cairn cluster while a nemesis
//! injects faults, one matrix row at a time, and checks after each row
//! what clients saw against the log's invariants (chaos-tests/README.md).

mod checker;
mod history;
mod nemesis;
mod target;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_client::LogClient;
use cairn_tlog::Hash;
use clap::{Parser, Subcommand};

use crate::checker::{FinalLog, Report, TreeHead};
use crate::history::{History, Recorder};
use crate::nemesis::Row;
use crate::target::{Compose, Ports};
use crate::workload::{Endpoints, Workload};

#[derive(Parser, Debug)]
#[command(name = "cairn-chaos", version)]
struct Cli {
    /// The compose cluster's directory (deploy/compose of the repository).
    #[arg(long, global = true, default_value = "deploy/compose")]
    compose_dir: PathBuf,
    /// Compose project name: the harness's containers, network and volumes.
    #[arg(long, global = true, default_value = "cairnchaos")]
    project: String,
    /// Use a cluster this project already runs instead of starting one (it
    /// is left running).
    #[arg(long, global = true)]
    no_up: bool,
    /// Leave the cluster running at the end.
    #[arg(long, global = true)]
    keep_up: bool,
    /// Concurrent submitters (spread over the frontends).
    #[arg(long, global = true, default_value_t = 4)]
    submitters: usize,
    /// Seconds each fault lasts (leader faults: past the election timeout).
    #[arg(long, global = true, default_value_t = 8)]
    hold: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Each row once (all rows unless --row is given).
    Matrix {
        /// A row to run (repeatable).
        #[arg(long = "row", value_enum)]
        rows: Vec<Row>,
    },
    /// Rows in turn until MINUTES have passed, then one summary table.
    Soak {
        #[arg(long)]
        minutes: u64,
        #[arg(long = "row", value_enum)]
        rows: Vec<Row>,
    },
}

/// Workload before the fault, and after healing it.
const WARMUP: Duration = Duration::from_secs(4);
const COOLDOWN: Duration = Duration::from_secs(8);
/// Longest wait for the log to publish what it acknowledged once the
/// workload stops.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("cairn-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Accumulated results of one row over its runs.
#[derive(Debug, Default)]
struct RowTotal {
    runs: usize,
    violations: Vec<String>,
    availability: Vec<f64>,
    recoveries: Vec<f64>,
    unrecovered: usize,
    acked: usize,
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let cluster = Compose {
        dir: cli.compose_dir.clone(),
        project: cli.project.clone(),
        ports: Ports::default(),
    };
    if !cli.no_up {
        eprintln!(
            "cairn-chaos: starting the compose cluster ({})",
            cli.project
        );
        cluster.cluster(&["down"]).await.ok();
    }
    // Torn down below whatever happens, a failed start included.
    let started = if cli.no_up {
        Ok(String::new())
    } else {
        cluster.cluster(&["up"]).await
    };
    let result = match started {
        Ok(_) => run_rows(&cli, &cluster).await,
        Err(e) => Err(e),
    };
    if !cli.no_up && !cli.keep_up {
        cluster.cluster(&["down"]).await.ok();
    }
    let totals = result?;
    print_table(&totals);
    Ok(totals.iter().all(|(_, t)| t.violations.is_empty()))
}

async fn run_rows(cli: &Cli, cluster: &Compose) -> anyhow::Result<Vec<(Row, RowTotal)>> {
    let frontends = cluster
        .frontend_urls()
        .iter()
        .map(|u| LogClient::new(u))
        .collect::<Result<Vec<_>, _>>()?;
    let endpoints = Endpoints {
        frontends,
        checkpoint_url: Some(cluster.checkpoint_url()),
        log_key: cluster.log_key()?,
    };
    let (rows, deadline) = match &cli.command {
        Command::Matrix { rows } => (pick(rows), None),
        Command::Soak { minutes, rows } => (
            pick(rows),
            Some(Instant::now() + Duration::from_secs(minutes * 60)),
        ),
    };
    let mut totals: Vec<(Row, RowTotal)> = rows.iter().map(|r| (*r, RowTotal::default())).collect();
    'rounds: loop {
        for (row, total) in &mut totals {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break 'rounds;
            }
            let (report, history) = run_row(*row, cli, cluster, &endpoints).await?;
            for f in &history.faults {
                eprintln!(
                    "cairn-chaos: {}: {} at {:.1}s, healed at {}",
                    f.row,
                    f.what,
                    f.at,
                    f.healed.map_or("never".to_owned(), |h| format!("{h:.1}s"))
                );
            }
            let mut by_frontend = vec![0usize; endpoints.frontends.len()];
            for a in &history.acks {
                by_frontend[a.frontend] += 1;
            }
            eprintln!(
                "cairn-chaos: {}: {} acked ({:?} by frontend), {} heads, final size {}, availability {:.2}, {} violations",
                row.name(),
                report.acked,
                by_frontend,
                report.heads,
                report.final_size,
                report.availability,
                report.violations.len()
            );
            for v in &report.violations {
                eprintln!("  VIOLATION: {v}");
            }
            total.runs += 1;
            total.acked += report.acked;
            total.availability.push(report.availability);
            for r in &report.recoveries {
                match r {
                    Some(s) => total.recoveries.push(*s),
                    None => total.unrecovered += 1,
                }
            }
            total.violations.extend(report.violations);
        }
        if deadline.is_none() {
            break;
        }
    }
    Ok(totals)
}

fn pick(rows: &[Row]) -> Vec<Row> {
    if rows.is_empty() {
        Row::all().to_vec()
    } else {
        rows.to_vec()
    }
}

/// One run of `row`: workload, fault, heal, settle, check.
async fn run_row(
    row: Row,
    cli: &Cli,
    cluster: &Compose,
    endpoints: &Endpoints,
) -> anyhow::Result<(Report, History)> {
    let recorder = Recorder::new();
    let work = Workload::start(endpoints, cli.submitters, &recorder);
    tokio::time::sleep(WARMUP).await;
    let injected = row
        .inject(cluster, endpoints, cli.submitters, &recorder)
        .await
        .with_context(|| format!("injecting {}", row.name()));
    let (heal, fault) = match injected {
        Ok(x) => x,
        Err(e) => {
            work.stop().await;
            return Err(e);
        }
    };
    tokio::time::sleep(Duration::from_secs(cli.hold)).await;
    heal.heal(cluster)
        .await
        .with_context(|| format!("healing {}", row.name()))?;
    recorder.healed(fault);
    tokio::time::sleep(COOLDOWN).await;
    work.stop().await;
    let history = recorder.snapshot();
    let last = settle(endpoints).await?;
    let log = Frontends(endpoints.frontends.clone());
    let report = checker::check(&history, last, &log).await;
    Ok((report, history))
}

/// The log's tree head once it has stopped growing (the workload is
/// stopped, so it publishes what it committed and then stays): the largest
/// verified head any frontend serves, unchanged for 3 s.
async fn settle(endpoints: &Endpoints) -> anyhow::Result<TreeHead> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut last: Option<TreeHead> = None;
    let mut since = Instant::now();
    loop {
        let mut best: Option<TreeHead> = None;
        for f in &endpoints.frontends {
            if let Ok(Ok(h)) = tokio::time::timeout(Duration::from_secs(5), f.get_tree_head()).await
                && h.signed.verify(&endpoints.log_key)
                && best.is_none_or(|b| h.tree_head().size > b.size)
            {
                best = Some(TreeHead {
                    size: h.tree_head().size,
                    root: h.tree_head().root_hash,
                });
            }
        }
        if best != last {
            last = best;
            since = Instant::now();
        } else if let Some(head) = last
            && since.elapsed() >= Duration::from_secs(3)
        {
            return Ok(head);
        }
        if Instant::now() >= deadline {
            return last.context("no frontend served a tree head");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Final reads through whichever frontend answers.
#[derive(Debug)]
struct Frontends(Vec<LogClient>);

impl FinalLog for Frontends {
    async fn inclusion(
        &self,
        size: u64,
        leaf_hash: &Hash,
    ) -> anyhow::Result<Option<(u64, Vec<Hash>)>> {
        let mut last = None;
        for _ in 0..3 {
            for f in &self.0 {
                match f.get_inclusion_proof(size, leaf_hash).await {
                    Ok(p) => return Ok(Some((p.leaf_index, p.path))),
                    Err(e) if e.status() == Some(404) => return Ok(None),
                    Err(e) => last = Some(e),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(last.map_or_else(|| anyhow::anyhow!("no frontend"), Into::into))
    }

    async fn consistency(&self, old: u64, new: u64) -> anyhow::Result<Vec<Hash>> {
        let mut last = None;
        for _ in 0..3 {
            for f in &self.0 {
                match f.get_consistency_proof(old, new).await {
                    Ok(p) => return Ok(p.path),
                    Err(e) => last = Some(e),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(last.map_or_else(|| anyhow::anyhow!("no frontend"), Into::into))
    }
}

/// The p-th percentile (0..=100) of `values`, nearest rank.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

fn print_table(totals: &[(Row, RowTotal)]) {
    println!(
        "{:<16} {:>6} {:>10} {:>12} {:>10} {:>10} {:>8}",
        "row", "faults", "violations", "availability", "recov p50", "recov p99", "acked"
    );
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.1}s"));
    for (row, t) in totals {
        if t.runs == 0 {
            continue;
        }
        let availability = t.availability.iter().sum::<f64>() / t.availability.len() as f64;
        let p99 = if t.unrecovered > 0 {
            "never".to_owned()
        } else {
            secs(percentile(&t.recoveries, 99.0))
        };
        println!(
            "{:<16} {:>6} {:>10} {:>12.3} {:>10} {:>10} {:>8}",
            row.name(),
            t.runs,
            t.violations.len(),
            availability,
            secs(percentile(&t.recoveries, 50.0)),
            p99,
            t.acked
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [3.0, 1.0, 2.0, 10.0];
        assert_eq!(percentile(&v, 50.0), Some(2.0));
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
