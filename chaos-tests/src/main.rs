//! `cairn-chaos`: runs a workload against a Cairn cluster while a nemesis
//! injects faults, one matrix row at a time, and checks after each row
//! what clients saw against the log's invariants (chaos-tests/README.md).

mod checker;
mod history;
mod nemesis;
mod proxy;
mod target;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_client::LogClient;
use cairn_tlog::Hash;
use clap::{Parser, Subcommand};

use crate::checker::{FinalLog, Report, TreeHead};
use crate::history::{History, Recorder, Source};
use crate::nemesis::Row;
use crate::target::{Compose, Ports};
use crate::workload::{Endpoints, Workload};

#[derive(Parser, Debug)]
#[command(name = "cairn-chaos", version)]
struct Cli {
    /// The compose cluster's directory (deploy/compose of the repository).
    #[arg(long, global = true, default_value = "deploy/compose")]
    compose_dir: PathBuf,
    /// The harness's compose file, merged over the cluster's (proxies,
    /// clocks).
    #[arg(long, global = true, default_value = "chaos-tests/compose.yml")]
    chaos_compose: PathBuf,
    /// Host ports: the frontends on PORT and PORT+1, the S3 server on
    /// PORT-65, the fault proxies' controls on PORT-55 to PORT-52 (all on
    /// 127.0.0.1). Change it (and --project) to run two harnesses at once.
    #[arg(long, global = true, default_value_t = 17965)]
    port_base: u16,
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
    /// Against a deployed cluster, given only its URLs and keys: cycles of
    /// workload, your fault command, your heal command, and the checks,
    /// until MINUTES have passed. Without --inject it checks the log under
    /// load (and whatever else happens to it meanwhile).
    Remote {
        /// A frontend's log URL, as in a policy (repeatable: submitters
        /// and readers use every one), e.g. https://log.example.org/dev.
        #[arg(long = "log-url", required = true)]
        log_urls: Vec<String>,
        /// The log's public key file (OpenSSH format).
        #[arg(long)]
        log_key: PathBuf,
        /// The Sigsum policy: served cosignatures must verify under it and
        /// served heads satisfy its quorum.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The URL the log's `checkpoint` and `tile/…` objects are read at
        /// (the bucket or CDN), to check that the tiles rebuild the
        /// checkpoint.
        #[arg(long)]
        tiles_url: Option<String>,
        #[arg(long)]
        minutes: u64,
        /// A shell command that injects a fault (run by `sh -c` once per
        /// cycle), e.g. `kubectl delete pod cairn-sequencer-0
        /// --grace-period=0 --force`.
        #[arg(long)]
        inject: Option<String>,
        /// A shell command that heals it, `--hold` seconds later.
        #[arg(long)]
        heal: Option<String>,
    },
    /// The fault proxy (run by the harness in a container of the cluster).
    Proxy {
        /// Where clients connect.
        #[arg(long)]
        listen: SocketAddr,
        /// The base URL requests are forwarded to.
        #[arg(long)]
        upstream: String,
        /// Where the harness switches faults and reads the record.
        #[arg(long)]
        control: SocketAddr,
        /// Record every POST (witness requests) for the checker.
        #[arg(long)]
        record: bool,
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
    if let Command::Proxy {
        listen,
        upstream,
        control,
        record,
    } = &cli.command
    {
        return match proxy::serve(*listen, upstream.clone(), *control, *record).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cairn-chaos proxy: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let ran = match &cli.command {
        Command::Remote { .. } => remote(&cli).await,
        _ => run(cli).await,
    };
    match ran {
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
    let absolute =
        |p: &PathBuf| std::fs::canonicalize(p).with_context(|| format!("no {}", p.display()));
    let cluster = Compose {
        dir: absolute(&cli.compose_dir)?,
        extra: absolute(&cli.chaos_compose)?,
        project: cli.project.clone(),
        ports: Ports::from_base(cli.port_base)?,
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
        match cluster.prepare().await {
            Ok(()) => cluster.cluster(&["up"]).await,
            Err(e) => Err(e),
        }
    };
    let result = match started {
        Ok(_) => compose_rows(&cli, &cluster).await,
        Err(e) => Err(e),
    };
    if !cli.no_up && !cli.keep_up {
        cluster.cluster(&["down"]).await.ok();
    }
    let totals = result?;
    print_table(&totals);
    Ok(totals.iter().all(|(_, t)| t.violations.is_empty()))
}

/// `remote`: cycles against a deployed cluster until the time is up.
async fn remote(cli: &Cli) -> anyhow::Result<bool> {
    let Command::Remote {
        log_urls,
        log_key,
        policy,
        tiles_url,
        minutes,
        inject,
        heal,
    } = &cli.command
    else {
        unreachable!("remote only")
    };
    let text = std::fs::read(log_key).with_context(|| format!("reading {}", log_key.display()))?;
    let key = cairn_sigsum::key::parse_public_key_file(&text)
        .with_context(|| format!("parsing {}", log_key.display()))?
        .into_iter()
        .next()
        .map(|(k, _)| k)
        .with_context(|| format!("no key in {}", log_key.display()))?;
    let policy = match policy {
        Some(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let p = cairn_sigsum::policy::Policy::parse(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            Some(std::sync::Arc::new(p))
        }
        None => None,
    };
    let endpoints = Endpoints {
        frontends: log_urls
            .iter()
            .map(|u| LogClient::new(u))
            .collect::<Result<Vec<_>, _>>()?,
        store_url: tiles_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned()),
        log_key: key,
        policy,
    };
    let nemesis = Nemesis::Commands {
        inject: inject.as_deref(),
        heal: heal.as_deref(),
    };
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let totals = run_rows(cli, &[nemesis], &endpoints, Some(deadline)).await?;
    print_table(&totals);
    Ok(totals.iter().all(|(_, t)| t.violations.is_empty()))
}

/// The matrix or the soak against the compose cluster.
async fn compose_rows(cli: &Cli, cluster: &Compose) -> anyhow::Result<Vec<(String, RowTotal)>> {
    let frontends = cluster
        .frontend_urls()
        .iter()
        .map(|u| LogClient::new(u))
        .collect::<Result<Vec<_>, _>>()?;
    let endpoints = Endpoints {
        frontends,
        store_url: Some(cluster.store_url()),
        log_key: cluster.log_key()?,
        policy: Some(std::sync::Arc::new(cluster.policy()?)),
    };
    let (rows, deadline) = match &cli.command {
        Command::Matrix { rows } => (pick(rows), None),
        Command::Soak { minutes, rows } => (
            pick(rows),
            Some(Instant::now() + Duration::from_secs(minutes * 60)),
        ),
        Command::Remote { .. } | Command::Proxy { .. } => unreachable!("not a compose run"),
    };
    let nemeses: Vec<Nemesis> = rows
        .into_iter()
        .map(|row| Nemesis::Row { row, cluster })
        .collect();
    run_rows(cli, &nemeses, &endpoints, deadline).await
}

/// What a row's fault is: one of the matrix's against the compose
/// cluster, or an operator's own commands against a deployed cluster.
enum Nemesis<'a> {
    Row {
        row: Row,
        cluster: &'a Compose,
    },
    Commands {
        inject: Option<&'a str>,
        heal: Option<&'a str>,
    },
}

impl Nemesis<'_> {
    fn name(&self) -> String {
        match self {
            Nemesis::Row { row, .. } => row.name(),
            Nemesis::Commands { .. } => "remote".to_owned(),
        }
    }
}

/// Each nemesis in turn, once, or round after round until `deadline`.
async fn run_rows(
    cli: &Cli,
    nemeses: &[Nemesis<'_>],
    endpoints: &Endpoints,
    deadline: Option<Instant>,
) -> anyhow::Result<Vec<(String, RowTotal)>> {
    let mut totals: Vec<(String, RowTotal)> = nemeses
        .iter()
        .map(|n| (n.name(), RowTotal::default()))
        .collect();
    'rounds: loop {
        for (nemesis, (name, total)) in nemeses.iter().zip(&mut totals) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break 'rounds;
            }
            let (report, history) = run_row(nemesis, cli, endpoints).await?;
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
                "cairn-chaos: {}: {} acked ({:?} by frontend), {} heads, final size {}, {} sent to witnesses beyond it, availability {:.2}, {} violations",
                name,
                report.acked,
                by_frontend,
                report.heads,
                report.final_size,
                report.unpublished,
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

/// One run of a row: workload, fault, heal, settle, check.
async fn run_row(
    nemesis: &Nemesis<'_>,
    cli: &Cli,
    endpoints: &Endpoints,
) -> anyhow::Result<(Report, History)> {
    let recorder = Recorder::new();
    if let Nemesis::Row { cluster, .. } = nemesis {
        for w in 1..=3 {
            cluster.proxy(w).clear().await?;
        }
    }
    let hold = Duration::from_secs(cli.hold);
    let work = Workload::start(endpoints, cli.submitters, &recorder);
    tokio::time::sleep(WARMUP).await;
    let injected = match nemesis {
        Nemesis::Row { row, cluster } => row
            .inject(cluster, endpoints, cli.submitters, hold, &recorder)
            .await
            .map(|(heal, fault)| (Some(heal), fault)),
        Nemesis::Commands { inject, .. } => {
            let what = match inject {
                Some(command) => shell(command).await.map(|()| command.to_string()),
                None => Ok("no fault".to_owned()),
            };
            what.map(|what| (None, recorder.fault("remote", what)))
        }
    }
    .with_context(|| format!("injecting {}", nemesis.name()));
    let (heal, fault) = match injected {
        Ok(x) => x,
        Err(e) => {
            work.stop().await;
            return Err(e);
        }
    };
    tokio::time::sleep(hold).await;
    let healed = match (nemesis, heal) {
        (Nemesis::Row { cluster, .. }, Some(heal)) => heal.heal(cluster).await,
        (
            Nemesis::Commands {
                heal: Some(command),
                ..
            },
            _,
        ) => shell(command).await,
        _ => Ok(()),
    };
    healed.with_context(|| format!("healing {}", nemesis.name()))?;
    recorder.healed(fault);
    tokio::time::sleep(COOLDOWN).await;
    work.stop().await;
    recorder.end();
    let last = settle(endpoints).await?;
    if let Nemesis::Row { cluster, .. } = nemesis {
        witness_requests(cluster, endpoints, &recorder).await?;
    }
    if let Some(store) = &endpoints.store_url
        && let Err(why) = tiles_rebuild(store, endpoints).await
    {
        recorder.bad(why);
    }
    let history = recorder.snapshot();
    let log = Frontends(endpoints.frontends.clone());
    let report = checker::check(&history, last, &log).await;
    Ok((report, history))
}

/// `sh -c command`, which must succeed within three minutes.
async fn shell(command: &str) -> anyhow::Result<()> {
    let status = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("sh")
            .args(["-c", command])
            .kill_on_drop(true)
            .status(),
    )
    .await
    .with_context(|| format!("`{command}` did not finish within 180 s"))?
    .with_context(|| format!("running `{command}`"))?;
    anyhow::ensure!(status.success(), "`{command}`: {status}");
    Ok(())
}

/// Adds to the history every checkpoint the log asked a witness to cosign
/// during the row, as the proxies in front of the witnesses recorded it.
/// Each must carry the log's signature.
async fn witness_requests(
    cluster: &Compose,
    endpoints: &Endpoints,
    recorder: &Recorder,
) -> anyhow::Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as f64;
    for w in 1..=3 {
        for r in cluster.proxy(w).recorded().await? {
            if !r.path.ends_with("/add-checkpoint") {
                continue;
            }
            let at = recorder.now() - (now_ms - r.at_ms as f64) / 1000.0;
            // `old N`, proof lines, a blank line, then the checkpoint.
            let Some((_, checkpoint)) = r.body.split_once("\n\n") else {
                recorder.bad(format!("a request to witness {w} without a checkpoint"));
                continue;
            };
            match workload::parse_checkpoint(checkpoint.as_bytes(), &endpoints.log_key) {
                Ok((size, root)) => recorder.head_at(at, Source::Witness(w), size, root),
                Err(why) => recorder.bad(format!("a checkpoint sent to witness {w}: {why}")),
            }
        }
    }
    Ok(())
}

/// Reads the `checkpoint` object and the level-0 tiles of its tree from
/// `store` (the URL the log's objects are under), as a tile client does,
/// and checks that their leaf hashes rebuild its root.
async fn tiles_rebuild(store: &str, endpoints: &Endpoints) -> Result<(), String> {
    let http = cairn_roots::Roots::bundled()
        .reqwest_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = r.status();
            let body = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            Ok::<_, String>((status, body))
        }
    };
    let (status, body) = get(format!("{store}/checkpoint")).await?;
    if !status.is_success() {
        return Err(format!("the checkpoint object: {status}"));
    }
    let (size, root) = workload::parse_checkpoint(&body, &endpoints.log_key)
        .map_err(|e| format!("the checkpoint object: {e}"))?;
    let mut tiles = Vec::new();
    for index in 0..size.div_ceil(256) {
        let width = (size - index * 256).min(256) as u16;
        let tile = cairn_tlog::tile::TileId::new(0, index, width).map_err(|e| e.to_string())?;
        let (mut status, mut bytes) = get(format!("{store}/{}", tile.path())).await?;
        let mut hashes = None;
        if status == reqwest::StatusCode::NOT_FOUND && width < 256 {
            // A partial tile may be gone once the full one exists.
            let full = cairn_tlog::tile::TileId::full(0, index).map_err(|e| e.to_string())?;
            (status, bytes) = get(format!("{store}/{}", full.path())).await?;
            hashes = full
                .decode(&bytes)
                .ok()
                .map(|h| h[..usize::from(width)].to_vec());
        }
        if !status.is_success() {
            return Err(format!(
                "tile {} of the checkpoint of size {size}: {status}",
                tile.path()
            ));
        }
        let hashes = match hashes {
            Some(h) => h,
            None => tile
                .decode(&bytes)
                .map_err(|e| format!("tile {}: {e}", tile.path()))?,
        };
        tiles.push(hashes);
    }
    let rebuilt = checker::root_from_tiles(&tiles);
    if rebuilt != root {
        return Err(format!(
            "the tiles of the checkpoint of size {size} rebuild root {}, not its root {}",
            checker::hex(&rebuilt),
            checker::hex(&root)
        ));
    }
    Ok(())
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

fn print_table(totals: &[(String, RowTotal)]) {
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
            row,
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
