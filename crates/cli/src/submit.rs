//! `cairn submit`: sign, submit, and store a verified proof per file, as
//! `sigsum-submit -p POLICY -k KEY FILE...` does.
//!
//! Re-runnable: a file whose `FILE.proof` exists and verifies (for this
//! data, key and policy) is skipped; one whose proof does not verify is a
//! failure and the proof is left alone (remove it to resubmit). Proofs are
//! written atomically as soon as each is ready, so an interrupted run keeps
//! what it got. Progress goes to standard error: a line per file, and a
//! progress bar while proofs are awaited if standard error is a terminal
//! and `-v` is not given (its redraws would garble logs and captured
//! output).
//!
//! As in sigsum-go, `-k` (and `-a`) may name an OpenSSH public key file, in
//! which case signing goes through ssh-agent, and that file's
//! `sigsum-policy="NAME"` option selects the policy when `-p`/`-P` is not
//! given.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_client::{Signer as _, SubmitConfig, Submitter, TokenConfig};
use cairn_sigsum::policy::Policy;
use cairn_sigsum::proof::SigsumProof;
use cairn_sigsum::{Hash, PublicKey};
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::files::{self, Input, Overwrite};
use crate::key_files::read_signer;
use crate::policy::PolicyArgs;

/// Exit status when every file has a valid proof.
const EXIT_OK: u8 = 0;
/// Exit status when at least one file has none.
const EXIT_FAILED: u8 = 1;
/// Exit status when nothing could be attempted (bad key, policy, options).
const EXIT_USAGE: u8 = 2;

/// Most files per run; each costs a little memory until its proof is
/// written. Split larger jobs across runs.
const MAX_FILES: usize = 100_000;

/// `cairn submit` arguments.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Private key to sign the messages: unencrypted OpenSSH (as written by
    /// `cairn key generate` or `sigsum-key generate`), or a raw hex seed; or
    /// an OpenSSH public key whose private key is in ssh-agent
    /// ($SSH_AUTH_SOCK).
    #[arg(
        short = 'k',
        long = "signing-key",
        value_name = "FILE",
        required = true
    )]
    key: PathBuf,
    /// Each FILE holds the 32-byte message itself (raw, or as 64 hex
    /// characters) instead of data whose SHA-256 is the message.
    #[arg(long = "raw-hash")]
    raw_hash: bool,
    /// Deadline for submitting all files and collecting their proofs, e.g.
    /// 300, 90s, 5m, 1m30s.
    #[arg(short = 't', long = "timeout", value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    timeout: Duration,
    /// Time one log gets before the next log of the policy is tried.
    #[arg(long = "per-log-timeout", value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    per_log_timeout: Duration,
    /// Wait between polls of the log.
    #[arg(long = "poll-interval", value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    poll_interval: Duration,
    /// Domain for rate limiting: its `_sigsum_v1` TXT record holds the
    /// public key of --token-signing-key. Requires --token-signing-key.
    #[arg(
        short = 'd',
        long = "token-domain",
        value_name = "DOMAIN",
        requires = "token_key"
    )]
    token_domain: Option<String>,
    /// Private key that signs the rate-limit token, in the same forms as
    /// --signing-key (ssh-agent included). Requires --token-domain.
    #[arg(
        short = 'a',
        long = "token-signing-key",
        value_name = "FILE",
        requires = "token_domain"
    )]
    token_key: Option<PathBuf>,
    /// Files to submit; each proof is written to FILE.proof.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

/// A file to submit.
struct Pending {
    file: PathBuf,
    proof_path: PathBuf,
}

/// Runs `cairn submit` and returns its exit status. `verbose` is the
/// count of `-v` flags.
pub fn run(args: &SubmitArgs, verbose: u8) -> ExitCode {
    let setup = match setup(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cairn submit: error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn submit: error: starting the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let progress = Progress::new(show_progress_bar(std::io::stderr().is_terminal(), verbose));
    let failed = runtime.block_on(submit_all(args, setup, &progress));
    ExitCode::from(if failed == 0 { EXIT_OK } else { EXIT_FAILED })
}

struct Setup {
    submitter: Submitter,
    policy: Policy,
    public_key: PublicKey,
}

fn setup(args: &SubmitArgs) -> anyhow::Result<Setup> {
    if args.files.len() > MAX_FILES {
        bail!(
            "{} files given, at most {MAX_FILES} per run",
            args.files.len()
        );
    }
    let key = read_signer(&args.key)?;
    let policy = args.policy.select(key.policy_name.as_deref())?;
    let token = match (&args.token_domain, &args.token_key) {
        (Some(domain), Some(path)) => Some(TokenConfig {
            domain: domain.clone(),
            key: read_signer(path)?.signer,
        }),
        _ => None,
    };
    let config = SubmitConfig {
        timeout: args.timeout,
        per_log_timeout: args.per_log_timeout,
        poll_interval: args.poll_interval,
        token,
        ..SubmitConfig::default()
    };
    let public_key = key.signer.public_key();
    let submitter = Submitter::new(policy.clone(), key.signer, config)?;
    Ok(Setup {
        submitter,
        policy,
        public_key,
    })
}

/// Whether to draw a progress bar: only for a person watching a terminal,
/// and not with `-v`, whose log lines the redraws would tear.
fn show_progress_bar(stderr_is_terminal: bool, verbose: u8) -> bool {
    stderr_is_terminal && verbose == 0
}

/// Per-file lines on standard error, and the optional progress bar they
/// are printed above.
struct Progress {
    bar: Option<ProgressBar>,
}

/// How often the bar redraws while nothing finishes, so the elapsed time
/// moves.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

impl Progress {
    fn new(with_bar: bool) -> Self {
        Progress {
            bar: with_bar.then(ProgressBar::hidden),
        }
    }

    /// Shows the bar for `total` files to be proved.
    fn start(&self, total: usize) {
        let Some(bar) = &self.bar else { return };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_length(u64::try_from(total).unwrap_or(u64::MAX));
        // The template is a constant; a bad one would be a bug caught by
        // any run on a terminal, and the bar then keeps its default look.
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} proofs",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(PROGRESS_TICK);
    }

    /// Prints a line to standard error (above the bar, if any).
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    /// One more file finished.
    fn advance(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Submits every file that needs it; returns the number of failures.
async fn submit_all(args: &SubmitArgs, setup: Setup, progress: &Progress) -> usize {
    let mut failed = 0usize;
    let mut skipped = 0usize;
    let mut pending: Vec<Pending> = Vec::new();
    let mut messages: Vec<Hash> = Vec::new();

    for file in &args.files {
        let shown = file.display();
        let message = match files::read_message(&Input::Path(file.clone()), args.raw_hash) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{shown}: error: {e:#}");
                failed += 1;
                continue;
            }
        };
        let proof_path = files::with_suffix(file, ".proof");
        if files::exists(&proof_path) {
            match existing_proof_verifies(&proof_path, &message, &setup) {
                Ok(()) => {
                    eprintln!(
                        "{shown}: {} exists and verifies, skipped",
                        proof_path.display()
                    );
                    skipped += 1;
                }
                Err(e) => {
                    eprintln!(
                        "{shown}: error: existing {} is not a valid proof for this file: {e:#}; remove it to resubmit",
                        proof_path.display()
                    );
                    failed += 1;
                }
            }
            continue;
        }
        pending.push(Pending {
            file: file.clone(),
            proof_path,
        });
        messages.push(message);
    }

    if !pending.is_empty() {
        let logs: Vec<&str> = setup.submitter.log_urls().collect();
        eprintln!(
            "submitting {} file(s) to {} (in this order until one succeeds)",
            pending.len(),
            logs.join(", ")
        );
    }
    let mut written = 0usize;
    progress.start(pending.len());
    let mut results = setup.submitter.submit_and_prove_stream(&messages);
    while let Some((i, result)) = results.next().await {
        progress.advance();
        let Some(p) = pending.get(i) else { continue };
        let shown = p.file.display();
        match result.map_err(anyhow::Error::new).and_then(|proof| {
            files::write_atomic(
                &p.proof_path,
                proof.to_ascii().as_bytes(),
                0o644,
                Overwrite::Replace,
            )?;
            Ok(proof)
        }) {
            Ok(proof) => {
                written += 1;
                progress.line(&format!(
                    "{shown}: logged at index {} of tree size {}; proof written to {}",
                    proof.inclusion.leaf_index,
                    proof.tree_head.tree_head().size,
                    p.proof_path.display()
                ));
            }
            Err(e) => {
                failed += 1;
                progress.line(&format!("{shown}: error: {e:#}"));
            }
        }
    }
    progress.finish();
    eprintln!("{written} proof(s) written, {skipped} skipped, {failed} failed");
    failed
}

fn existing_proof_verifies(
    path: &std::path::Path,
    message: &Hash,
    setup: &Setup,
) -> anyhow::Result<()> {
    let text = files::read_small(&Input::Path(path.to_owned()))?;
    let proof = SigsumProof::parse(&text).context("parse")?;
    proof.verify(message, &[setup.public_key], &setup.policy)?;
    Ok(())
}

/// Parses a duration: a bare number of seconds (`300`), or one or more
/// number-unit pairs with units `ms`, `s`, `m`, `h` (`90s`, `1m30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 300, 90s, 5m or 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = s;
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        total = s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| bad())?;
        rest = "";
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = tail;
    }
    if total.is_zero() {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_bar_only_on_a_terminal_without_verbose() {
        assert!(show_progress_bar(true, 0));
        assert!(!show_progress_bar(true, 1));
        assert!(!show_progress_bar(false, 0));
    }

    #[test]
    fn durations_parse_like_the_examples_in_the_help() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "0", "0s", "s", "5x", "-5s", "1.5s", "5m 3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
