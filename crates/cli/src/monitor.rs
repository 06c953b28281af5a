//! `cairn monitor`: watch a policy's logs for misbehaviour and for leaves
//! signed by given keys (as `sigsum-monitor`, plus the witness, freshness
//! and availability checks it lacks). The checks are
//! `cairn_client::monitor`'s.
//!
//! Standard output has sigsum-monitor's lines (sigsum-go
//! `cmd/sigsum-monitor`), so that what reads its output reads ours:
//!
//! ```text
//! New <log key hash> tree, size <n>
//! New <log key hash> leaves, count <c>, total processed <p>
//!   index <i> keyhash <submitter key hash> checksum <checksum>
//! ```
//!
//! A `tree` line when a log's tree grew (under a quorum-cosigned head
//! consistent with what was verified before), then per `get-leaves` batch a
//! `leaves` line with the number of reported leaves in it and the log's
//! next leaf index, followed by one indented line per reported leaf (all
//! hex lowercase). Which log a leaf is in is the key hash of the `leaves`
//! line above it, never left to guess when the policy has several logs;
//! a bare `<index> <keyhash> <checksum>` line could not say. Without `-k`
//! every leaf is reported, unverified, as sigsum-monitor does.
//!
//! Each alert and warning is one line on standard error,
//! `ALERT <log URL> <what>` or `WARNING <log URL> <what>`; progress is
//! logged with `-v`.
//!
//! Exit status: 0 no alert (warnings too with `--fail-on-warning`); 1 an
//! alert was raised; 2 usage, state or output errors. With `--once` one
//! pass over every log is made. Otherwise passes repeat every `--interval`
//! and the first pass that raises an alert ends the process with status 1
//! after visiting every log: a monitor must not silently carry on past
//! evidence of misbehaviour (run it under a supervisor that reports
//! failures). `--keep-going` keeps it running instead; alerts whose cause
//! persists (forks, shrinks) are then repeated every pass, as the verified
//! checkpoint is never advanced past them. Killing the process at any time
//! is safe: state files are replaced atomically.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cairn_client::monitor::{
    DEFAULT_BATCH_SIZE, Event, LeafMatch, MAX_BATCH_SIZE, Monitor, MonitorConfig, PassSummary,
    Progress, Watchlist, unix_now,
};
use cairn_sigsum::{KeyHash, PublicKey};
use clap::Args;

use crate::files::Input;
use crate::key_files::read_public_key_file;
use crate::policy::PolicyArgs;
use crate::submit::parse_duration;

/// Exit status of passes without alerts.
const EXIT_CLEAN: u8 = 0;
/// Exit status after an alert (or a warning with --fail-on-warning).
const EXIT_ALERT: u8 = 1;
/// Exit status of usage, state and output errors.
const EXIT_USAGE: u8 = 2;

/// `cairn monitor` arguments.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Watched submitter public keys: OpenSSH public key files (one or more
    /// keys each); repeat for more files. Their leaves are reported after
    /// their signatures verify. Without -k every leaf is reported.
    #[arg(short = 'k', long = "key", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// Directory for the per-log state (`<log key hash>.cairn-monitor`),
    /// created if missing. Keep it: it is what lets a restarted monitor
    /// detect a fork against what it verified before.
    #[arg(long = "state-dir", value_name = "DIR", required = true)]
    state_dir: PathBuf,
    /// Time between passes, e.g. 600, 90s, 10m.
    #[arg(long = "interval", value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    interval: Duration,
    /// Leaves asked for per get-leaves request (logs may return fewer).
    #[arg(long = "batch-size", value_name = "N", default_value_t = DEFAULT_BATCH_SIZE,
          value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH_SIZE))]
    batch_size: u64,
    /// Warn when the newest quorum of cosignatures, or the last time a log
    /// was reached, is older than this.
    #[arg(long = "max-age", value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    max_age: Duration,
    /// One pass over every log, then exit.
    #[arg(long = "once")]
    once: bool,
    /// Keep looping after a pass with alerts (they are still printed).
    #[arg(long = "keep-going", conflicts_with = "once")]
    keep_going: bool,
    /// Treat warnings like alerts for the exit status (and for stopping).
    #[arg(long = "fail-on-warning")]
    fail_on_warning: bool,
}

/// Runs `cairn monitor` and returns its exit status.
pub fn run(args: &MonitorArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime");
    let status = match runtime.and_then(|rt| rt.block_on(monitor(args))) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("cairn monitor: error: {e:#}");
            EXIT_USAGE
        }
    };
    ExitCode::from(status)
}

async fn monitor(args: &MonitorArgs) -> anyhow::Result<u8> {
    let (keys, policy_name) = read_watched_keys(&args.keys)?;
    let policy = args.policy.select(policy_name.as_deref())?;
    let config = MonitorConfig {
        batch_size: args.batch_size,
        max_age: args.max_age,
        ..MonitorConfig::default()
    };
    let mut monitor = Monitor::new(
        policy,
        Watchlist::new(keys),
        &args.state_dir,
        config,
        unix_now(),
    )?;
    for key_hash in monitor.unmonitored() {
        eprintln!("WARNING log {key_hash} has no URL in the policy and is not monitored");
    }
    loop {
        let summary = one_pass(&mut monitor).await?;
        let failing = summary.alerts > 0 || (args.fail_on_warning && summary.warnings > 0);
        if args.once || (failing && !args.keep_going) {
            if failing && !args.once {
                eprintln!(
                    "cairn monitor: stopping after {} alert(s) and {} warning(s) (--keep-going continues)",
                    summary.alerts, summary.warnings
                );
            }
            return Ok(if failing { EXIT_ALERT } else { EXIT_CLEAN });
        }
        tokio::time::sleep(args.interval).await;
    }
}

/// One pass, printing events as they come. Fails if a state file or
/// standard output cannot be written (a lost leaf report is a failure).
async fn one_pass(monitor: &mut Monitor) -> anyhow::Result<PassSummary> {
    let mut report = Report::new(io::stdout());
    let summary = monitor
        .pass(unix_now(), |log, event| {
            match event {
                Event::Alert(a) => eprintln!("ALERT {} {a}", log.url),
                Event::Warning(w) => eprintln!("WARNING {} {w}", log.url),
                Event::Progress(p) => tracing::info!(log = log.url, "{p}"),
                Event::Leaf(_) => {}
            }
            report.event(&log.key_hash, event);
        })
        .await?;
    report
        .finish()
        .context("writing leaves to standard output")?;
    Ok(summary)
}

/// The standard output of `cairn monitor`: sigsum-monitor's lines (see the
/// module documentation). Leaves are held until the `Progress::Leaves`
/// event that ends their batch, which supplies the header's count and
/// "total processed"; the library emits one after every batch.
struct Report<W: Write> {
    out: W,
    batch: Vec<LeafMatch>,
    error: Option<io::Error>,
}

impl<W: Write> Report<W> {
    fn new(out: W) -> Self {
        Report {
            out,
            batch: Vec::new(),
            error: None,
        }
    }

    fn event(&mut self, log: &KeyHash, event: &Event) {
        let text = match event {
            Event::Leaf(leaf) => {
                self.batch.push(*leaf);
                return;
            }
            Event::Progress(Progress::Grew { to, .. }) => format!("New {log} tree, size {to}\n"),
            Event::Progress(Progress::Leaves { next, .. }) => {
                let mut text = format!(
                    "New {log} leaves, count {}, total processed {next}\n",
                    self.batch.len()
                );
                for leaf in self.batch.drain(..) {
                    text.push_str(&format!(
                        "  index {} keyhash {} checksum {}\n",
                        leaf.index,
                        leaf.key_hash,
                        hex::encode(leaf.checksum)
                    ));
                }
                text
            }
            _ => return,
        };
        // Flushed per line group, so that a reader sees leaves as soon as
        // their batch is done, not when a pipe buffer fills.
        if self.error.is_none()
            && let Err(e) = self
                .out
                .write_all(text.as_bytes())
                .and_then(|()| self.out.flush())
        {
            self.error = Some(e);
        }
    }

    /// The first write error, if any. Leaves without a closing batch event
    /// cannot occur; were they left, that is an error too rather than a
    /// silent loss.
    fn finish(self) -> io::Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.batch.is_empty() {
            return Err(io::Error::other(format!(
                "{} leaf report(s) without the end of their batch",
                self.batch.len()
            )));
        }
        Ok(())
    }
}

/// The keys of every `-k` file, and the policy name their
/// `sigsum-policy` options give (all files must agree).
fn read_watched_keys(paths: &[PathBuf]) -> anyhow::Result<(Vec<PublicKey>, Option<String>)> {
    let mut keys = Vec::new();
    let mut name: Option<String> = None;
    for path in paths {
        let file = read_public_key_file(&Input::Path(path.clone()))?;
        if let Some(n) = file.policy_name()? {
            match &name {
                Some(first) if first != n => anyhow::bail!(
                    "key files name different policies ({first:?} and {n:?}); give -p or -P"
                ),
                _ => name = Some(n.to_owned()),
            }
        }
        keys.extend(file.keys().copied());
    }
    Ok((keys, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(index: u64) -> Event {
        Event::Leaf(LeafMatch {
            index,
            key_hash: KeyHash([0xab; 32]),
            checksum: [0xcd; 32],
            signature_verified: true,
        })
    }

    fn leaves_done(next: u64) -> Event {
        Event::Progress(Progress::Leaves { next, target: 9 })
    }

    #[test]
    fn leaves_are_printed_under_their_logs_key_hash_as_sigsum_monitor_prints_them() {
        let (a, b) = (KeyHash([1; 32]), KeyHash([2; 32]));
        let mut report = Report::new(Vec::new());
        report.event(&a, &Event::Progress(Progress::Grew { from: 0, to: 9 }));
        report.event(&a, &leaf(3));
        report.event(&a, &leaf(5));
        report.event(&a, &leaves_done(6));
        report.event(&a, &leaves_done(9));
        report.event(&b, &leaf(0));
        report.event(&b, &leaves_done(1));
        let out = String::from_utf8(report.out.clone()).unwrap();
        assert!(report.finish().is_ok());
        let (ah, bh) = ("01".repeat(32), "02".repeat(32));
        let line = |i| {
            format!(
                "  index {i} keyhash {} checksum {}\n",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        };
        assert_eq!(
            out,
            format!("New {ah} tree, size 9\n")
                + &format!("New {ah} leaves, count 2, total processed 6\n")
                + &line(3)
                + &line(5)
                + &format!("New {ah} leaves, count 0, total processed 9\n")
                + &format!("New {bh} leaves, count 1, total processed 1\n")
                + &line(0)
        );
    }

    #[test]
    fn other_events_print_nothing_and_unfinished_batches_are_an_error() {
        let mut report = Report::new(Vec::new());
        let log = KeyHash([1; 32]);
        report.event(&log, &Event::Progress(Progress::Verified { size: 9 }));
        report.event(&log, &leaf(1));
        assert!(report.out.is_empty());
        assert!(report.finish().is_err());
    }
}
