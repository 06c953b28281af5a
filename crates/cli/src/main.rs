//! `cairn`: the Sigsum client tools of Cairn.
//!
//! * `cairn key` — generate key pairs, convert public keys, sign and
//!   verify (`sigsum-key`);
//! * `cairn submit` — log files' checksums and store proofs
//!   (`sigsum-submit`), with a progress bar when standard error is a
//!   terminal and `-v` is not given;
//! * `cairn verify` — check a proof offline (`sigsum-verify`);
//! * `cairn token` — create, publish and verify submit tokens for
//!   per-domain rate limiting (`sigsum-token`), verification looking up the
//!   domain's keys in DNS;
//! * `cairn policy` — check, explain, list and show trust policies.
//! * `cairn monitor` — follow the policy's logs, alert on misbehaviour
//!   (bad signatures, forks, shrinks, leaves that do not hash to the signed
//!   root), warn about missing quorum, stale cosignatures and unreachable
//!   logs, and print the leaves of watched keys in `sigsum-monitor`'s
//!   format, which names each leaf's log by its key hash.
//! * `cairn cluster` — create a shard's Raft group on sequencer nodes,
//!   add and remove nodes, show each node's view, move leadership.
//! * `cairn fsck` — check any C2SP tlog-tiles log (Cairn's or another's)
//!   end to end, from a directory or a URL: checkpoint signature, every
//!   hash tile, every entry bundle.
//!
//! Keys, policies and proof files are those of sigsum-go's tools, so the two
//! tool sets can be mixed freely. As in sigsum-go, a signing key given as
//! an OpenSSH *public* key file means the private key is in ssh-agent
//! (`SSH_AUTH_SOCK`). Diagnostics go to standard error; `-v` adds the
//! client's progress, `-vv` its retries. Commands whose sigsum-go
//! counterpart is silent or terse stay so unless `-v` is given
//! (`docs/compatibility.md` lists the comparisons).

mod keys;
mod monitor;
mod policy;
mod policy_cmd;
mod submit;
mod token;
mod verify;

use std::process::ExitCode;

use cairn_cli::{cluster, files, fsck, hammer, key_files};
use clap::{ArgAction, Parser, Subcommand};

/// Sigsum transparency-log client: keys, submission, offline verification.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, propagate_version = true)]
struct Cli {
    /// More output: client progress (-v) and retries (-vv) on standard
    /// error; details for some commands (see their help).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate and convert keys, sign and verify (as sigsum-key).
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Log files' checksums and write a verified proof to FILE.proof for each
    /// (as sigsum-submit).
    ///
    /// Signs SHA-256 of each file, submits it to the policy's logs in turn
    /// until one commits it, waits for a tree head that satisfies the
    /// policy's quorum, and verifies the proof before writing it. Files
    /// whose FILE.proof already verifies are skipped. Exit status 0 if every
    /// file has a valid proof, 1 otherwise, 2 if nothing could be attempted.
    Submit(submit::SubmitArgs),
    /// Verify a proof offline (as sigsum-verify).
    ///
    /// Exit status 0 if the proof is valid, 1 if it is invalid (the message
    /// names the failed step), 2 on usage or input errors.
    Verify(verify::VerifyArgs),
    /// Create, publish and verify submit tokens (as sigsum-token).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Check, explain, list and show trust policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Monitor the policy's logs (as sigsum-monitor, plus quorum and freshness checks)
    ///
    /// Alerts on log misbehaviour; warns about missing quorum, stale
    /// cosignatures and unreachable logs. Leaves of the watched keys (-k;
    /// all leaves without it) are printed on stdout in sigsum-monitor's
    /// format, grouped under the key hash of their log:
    ///
    ///   New <log key hash> tree, size <n>
    ///   New <log key hash> leaves, count <c>, total processed <p>
    ///     index <i> keyhash <submitter key hash> checksum <checksum>
    ///
    /// A `tree` line when a log's tree grew, then per get-leaves batch a
    /// `leaves` line (reported leaves in the batch, next leaf index) and one
    /// indented line per reported leaf. Alerts and warnings are
    /// `ALERT <log URL> ...` / `WARNING <log URL> ...` lines on stderr.
    /// Exit status 1 after a pass with an alert (also in the loop, unless
    /// --keep-going), 0 after a clean --once pass, 2 on usage or state
    /// errors. Warnings count as alerts only with --fail-on-warning.
    #[command(verbatim_doc_comment)]
    Monitor(monitor::MonitorArgs),
    /// Operate a Cairn cluster: create shards' Raft groups, change their
    /// membership, show every node's view.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Check a C2SP tlog-tiles log end to end (Cairn's or any other).
    ///
    /// Reads the log from a directory or an http(s) URL; verifies the
    /// checkpoint's signature (or a Sigsum policy's log key and witness
    /// quorum), that every hash tile hashes to the level above and the
    /// right edge to the checkpoint's root, and that every entry bundle
    /// hashes to its level-0 tile. Stops at the first problem and names the
    /// object. Exit status 0 if the log is consistent, 1 if it is not, 2 if
    /// it could not be checked (usage, keys, IO, timeouts).
    Fsck(fsck::FsckArgs),
    /// Put load on a Sigsum log (Cairn or any other) and measure it:
    /// add-leaf throughput and latencies, reads, the log's CPU.
    ///
    /// Leaves are signed before the run by --keys submitter keys. Closed
    /// loop (--concurrency) or open loop (--rate); 202, 503, 429 and
    /// transport errors are retried like sigsum-go's submit. Exit status 0
    /// after a run, 2 on usage errors or if the log never answered 200.
    Hammer(hammer::HammerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Key(cmd) => match keys::run(cmd, cli.verbose) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cairn key: error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Submit(args) => submit::run(&args, cli.verbose),
        Command::Verify(args) => verify::run(&args),
        Command::Token(cmd) => token::run(cmd, cli.verbose),
        Command::Policy(cmd) => policy_cmd::run(cmd, cli.verbose),
        Command::Monitor(args) => monitor::run(&args),
        Command::Fsck(args) => fsck::run(&args, cli.verbose),
        Command::Hammer(args) => run_hammer(args),
        Command::Cluster(cmd) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cairn cluster: error: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(cluster::run(cmd)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cairn cluster: error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `cairn hammer` on a multi-threaded runtime (the load needs both cores).
fn run_hammer(args: hammer::HammerArgs) -> ExitCode {
    let json = args.json;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(hammer::run(args)));
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("cairn hammer: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = hammer::print(&summary, json) {
        eprintln!("cairn hammer: error: {e:#}");
        return ExitCode::from(2);
    }
    if summary.committed == 0 && summary.statuses.values().sum::<u64>() > 0 {
        eprintln!("cairn hammer: the log never answered add-leaf with 200");
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// Logs to standard error. `RUST_LOG` overrides the level chosen by `-v`.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand, at any depth, with its path from `cairn`.
    fn all_commands() -> Vec<(String, clap::Command)> {
        let mut out = Vec::new();
        let mut stack = vec![("cairn".to_owned(), Cli::command())];
        while let Some((path, cmd)) = stack.pop() {
            for sub in cmd.get_subcommands() {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
            out.push((path, cmd));
        }
        out
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_every_option_has_help_text() {
        let commands = all_commands();
        // The walk must reach the leaves, or the checks below prove nothing.
        for expected in ["cairn key sign", "cairn token verify", "cairn monitor"] {
            assert!(
                commands.iter().any(|(path, _)| path == expected),
                "{expected} not found"
            );
        }
        for (path, cmd) in &commands {
            let about = cmd.get_about().map(ToString::to_string);
            assert!(
                about.is_some_and(|a| !a.trim().is_empty()),
                "{path} has no help text"
            );
            for arg in cmd.get_arguments() {
                // clap's own --help and --version describe themselves.
                if matches!(arg.get_id().as_str(), "help" | "version") {
                    continue;
                }
                assert!(
                    arg.get_help()
                        .is_some_and(|h| !h.to_string().trim().is_empty()),
                    "{path}: argument {} has no help text",
                    arg.get_id()
                );
            }
        }
    }
}
