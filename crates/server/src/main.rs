//! `cairnd`: Cairn's server. Each subcommand runs one role; `cairnd dev` runs
//! every role in one process (see docs/decisions/0002-dev-slice.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod dev;
mod files;
mod ops;
mod shutdown;
mod witness;

#[derive(Debug, Parser)]
#[command(name = "cairnd", version, about = "Cairn transparency log server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a complete Sigsum log on this machine: sequencer (single-node
    /// Raft on RocksDB), tiles on the local disk, frontend, an embedded
    /// witness and the cosignature collector, all in one process.
    ///
    /// The first start creates DIR with the log's and the witness's keys and
    /// a policy file; later starts continue the same log.
    Dev {
        /// Where the log keeps its keys, Raft state, tiles and witness state.
        #[arg(long, default_value = "./cairn-data")]
        data_dir: PathBuf,
        /// HTTP address for the Sigsum API, tiles and the embedded witness.
        #[arg(long, default_value = "127.0.0.1:6965")]
        listen: SocketAddr,
    },
    /// Run a standalone witness (C2SP tlog-witness) for the logs listed in
    /// its configuration file: `POST /add-checkpoint` at the root of
    /// `listen`, plus /metrics, /livez and /readyz.
    ///
    /// FILE is TOML: `listen`, `key_name`, `key_file`, `state_dir`, optional
    /// `max_in_flight` (256) and `request_timeout_seconds` (30), and one
    /// `[[log]]` table per log with `public_key` (hex), `public_key_file`
    /// (OpenSSH) or `vkey` (+ optional `origin`). Relative paths are
    /// relative to FILE's directory; unknown keys are errors. Prints the
    /// witness's vkey and its Sigsum policy line at start.
    Witness {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Create `key_file` (mode 0600, and `key_file.pub`) before starting.
        /// Refuses if it exists; without it a missing key is an error.
        #[arg(long)]
        generate_key: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Dev { data_dir, listen } => runtime.block_on(dev::run(data_dir, listen)),
        Command::Witness {
            config,
            generate_key,
        } => runtime.block_on(witness::run(config, generate_key)),
    }
}
