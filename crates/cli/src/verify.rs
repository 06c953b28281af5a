//! `cairn verify`: offline verification of a Sigsum proof, with
//! `sigsum-verify`'s semantics (sigsum-go is the reference, see
//! `cairn_sigsum::proof`).
//!
//! Exit status: 0 the proof is valid; 1 the proof is invalid (the message
//! names the failed step: parse, checksum, leaf, tree head, cosignatures,
//! inclusion); 2 the inputs could not be used (usage, unreadable files,
//! malformed keys or policy).

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_sigsum::proof::SigsumProof;
use clap::Args;

use crate::files::{self, Input};
use crate::key_files::read_public_key_file;
use crate::policy::PolicyArgs;

/// Exit status of a valid proof.
pub const EXIT_VALID: u8 = 0;
/// Exit status of an invalid proof.
pub const EXIT_INVALID: u8 = 1;
/// Exit status of unusable inputs (as clap's usage errors).
pub const EXIT_USAGE: u8 = 2;

/// `cairn verify` arguments.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Trusted submitter public keys, one OpenSSH public key per line. A
    /// `sigsum-policy="NAME"` option on the keys names the policy when
    /// neither -p nor -P is given.
    #[arg(short = 'k', long = "key", value_name = "FILE", required = true)]
    key: PathBuf,
    /// FILE holds the 32-byte message itself (raw, or as 64 hex
    /// characters) instead of data whose SHA-256 is the message.
    #[arg(long = "raw-hash")]
    raw_hash: bool,
    /// The signed data; `-` reads standard input (then --proof is
    /// required).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The proof file (default: FILE.proof). Version 1 and 2 are read.
    #[arg(long = "proof", value_name = "PROOF")]
    proof: Option<PathBuf>,
}

/// Why verification did not say "valid".
enum Outcome {
    Invalid(String),
    Unusable(anyhow::Error),
}

/// Runs `cairn verify` and returns its exit status.
pub fn run(args: &VerifyArgs) -> ExitCode {
    match verify(args) {
        Ok(()) => ExitCode::from(EXIT_VALID),
        Err(Outcome::Invalid(msg)) => {
            eprintln!("cairn verify: {msg}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(Outcome::Unusable(e)) => {
            eprintln!("cairn verify: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn verify(args: &VerifyArgs) -> Result<(), Outcome> {
    let data = Input::from_arg(&args.file);
    let proof_path = match (&args.proof, &data) {
        (Some(p), _) => p.clone(),
        (None, Input::Path(p)) => files::with_suffix(p, ".proof"),
        (None, Input::Stdin) => {
            return Err(Outcome::Unusable(anyhow::anyhow!(
                "--proof is required when the data is read from standard input"
            )));
        }
    };
    let (submitters, policy) = (|| {
        let keys = read_public_key_file(&Input::Path(args.key.clone()))?;
        let policy = args.policy.select(keys.policy_name()?)?;
        anyhow::Ok((keys.keys().copied().collect::<Vec<_>>(), policy))
    })()
    .map_err(Outcome::Unusable)?;
    let proof_text =
        files::read_small(&Input::Path(proof_path.clone())).map_err(Outcome::Unusable)?;
    let message = files::read_message(&data, args.raw_hash).map_err(Outcome::Unusable)?;

    let shown = proof_path.display();
    let proof = SigsumProof::parse(&proof_text)
        .map_err(|e| Outcome::Invalid(format!("{shown}: invalid proof: parse: {e}")))?;
    proof
        .verify(&message, &submitters, &policy)
        .map_err(|e| Outcome::Invalid(format!("{shown}: invalid proof: {e}")))
}
