//! `cairnd`: Cairn's server. Each subcommand runs one role; `cairnd dev` runs
//! every role in one process (see docs/decisions/0002-dev-slice.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod balancer;
mod bastion;
mod collector;
mod config_check;
mod dev;
mod files;
mod frontend;
mod local_cluster;
mod ops;
mod registry_follow;
mod registry_host;
mod sequencer;
mod shutdown;
mod telemetry;
mod witness;

#[derive(Debug, Parser)]
#[command(name = "cairnd", version, about = "Cairn transparency log server")]
struct Cli {
    /// How to write logs to standard error: `text` for people, `json`
    /// (one object per line, with the shard, node, term and request id of
    /// the event's context) for log collectors. `RUST_LOG` sets the levels.
    #[arg(long, global = true, value_enum, default_value_t = telemetry::LogFormat::Text)]
    log_format: telemetry::LogFormat,
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
        /// Witnesses to collect cosignatures from instead of only the
        /// embedded one: a file of Sigsum policy lines (`witness NAME KEY
        /// URL`, `group ...`, exactly one `quorum ...`) without `log` lines.
        /// It may name the embedded witness as `cairn-dev-witness` (its
        /// `witness` line is then added). The log's policy file DIR/policy
        /// is rewritten from it at every start.
        #[arg(long, value_name = "FILE")]
        witnesses: Option<PathBuf>,
        /// Address of the sequencer's gRPC listener (default: an ephemeral
        /// loopback port). Set it to run `cairnd collector` against this log.
        #[arg(long, value_name = "HOST:PORT")]
        grpc_listen: Option<SocketAddr>,
        /// Do not run the embedded collector: tree heads are published only
        /// by a `cairnd collector` pointed at --grpc-listen.
        #[arg(long, requires = "grpc_listen")]
        external_collector: bool,
        /// Verify `sigsum-token` headers on add-leaf against the
        /// submitter domain's `_sigsum_v1` TXT records (system resolver):
        /// an unverifiable token is refused with 400, a DNS failure with
        /// 503. Without it a well-formed token is accepted unchecked.
        #[arg(long)]
        verify_tokens: bool,
        /// Like --verify-tokens, asking this DNS server (HOST:PORT) instead
        /// of the system resolver.
        #[arg(long, value_name = "HOST:PORT")]
        token_dns_server: Option<SocketAddr>,
        /// Keep the tiles where FILE says instead of in DIR/tiles: TOML with
        /// either a `[local]` table (`dir`) or an `[s3]` table (`bucket`,
        /// optional `endpoint`, `region` (us-east-1), `prefix`, `allow_http`
        /// (false), `virtual_hosted_style` (false), `access_key_id_file` and
        /// `secret_access_key_file`; without the files, credentials come
        /// from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; `roots`, a PEM file
        /// of extra CA roots for HTTPS). Relative paths are
        /// relative to FILE's directory. Keep using the same store with the
        /// same DIR: another log's tiles there are refused as a fork.
        #[arg(long, value_name = "FILE")]
        object_store: Option<PathBuf>,
        /// Delete partial tiles and bundles SECONDS after the published
        /// tree has outgrown them (a client holding an older checkpoint then
        /// cuts its hashes from the full tile); 0 deletes them at the next
        /// collection. Default 600.
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 600,
            conflicts_with = "keep_partial_tiles"
        )]
        partial_tile_grace: u64,
        /// Never delete superseded partial tiles and bundles.
        #[arg(long)]
        keep_partial_tiles: bool,
        /// Run a local cluster instead: N sequencer nodes (one Raft group
        /// per shard), a frontend on --listen, the collector and a
        /// witness, each its own process, sharing DIR/tiles. The configuration of every
        /// process is written under DIR (DIR/cluster.toml lists the ports),
        /// so each can be stopped and started by hand; logs go to
        /// DIR/logs/. Ctrl-C stops them all.
        #[arg(
            long,
            value_name = "N",
            value_parser = clap::value_parser!(u8).range(1..=i64::from(local_cluster::MAX_NODES)),
            conflicts_with_all = ["witnesses", "grpc_listen", "external_collector", "verify_tokens", "token_dns_server", "object_store", "partial_tile_grace", "keep_partial_tiles"]
        )]
        nodes: Option<u8>,
        /// With --nodes: only write the configuration files (and keys,
        /// policy, DIR/cluster.toml), print the command of each process,
        /// and exit.
        #[arg(long, requires = "nodes")]
        configure_only: bool,
        /// With --nodes: run N shards (logs) on the cluster instead of one:
        /// `dev`, `dev2`, … `devN`, each with its own key (DIR/keys/) and
        /// Raft group on every node, all listed in DIR/policy and served
        /// by the one frontend under /<shard>/.
        #[arg(
            long,
            value_name = "N",
            default_value_t = 1,
            requires = "nodes",
            value_parser = clap::value_parser!(u8).range(1..=i64::from(local_cluster::MAX_SHARDS))
        )]
        shards: u8,
    },
    /// Run the cosignature collector for one or more shards: send each new
    /// signed tree head to the witnesses of the shard's policy and publish
    /// it once the policy quorum has cosigned it.
    ///
    /// FILE is TOML: `sequencer = "http://HOST:PORT"`, optional `listen`
    /// (operator endpoints, default 127.0.0.1:6967), and one `[[shard]]`
    /// table per shard with `name`, `log_key` (OpenSSH public key file),
    /// `policy` (Sigsum policy file), `tiles` (local object store root),
    /// and optional `poll_interval_ms` (250), `witness_timeout_ms` (5000),
    /// `extra_wait_ms` (0), `fail_open` (false), `witness_roots` (PEM file
    /// of extra root certificates for https witnesses and bastions).
    /// Unknown keys are errors.
    Collector {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a standalone witness (C2SP tlog-witness) for the logs listed in
    /// its configuration file: `POST /add-checkpoint` at the root of
    /// `listen`, plus /metrics, /livez and /readyz.
    ///
    /// FILE is TOML: `listen`, `key_name`, `key_file`, `state_dir`, optional
    /// `max_in_flight` (256) and `request_timeout_seconds` (30), and one
    /// `[[log]]` table per log with `public_key` (hex), `public_key_file`
    /// (OpenSSH) or `vkey` (+ optional `origin`), and an optional
    /// `[bastion]` table (`address`, optional `server_name` and `roots`) to
    /// serve through a C2SP https-bastion as well. Relative paths are
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
    /// Check configuration files without starting anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a frontend: the Sigsum v1 HTTP API and tile reads of a
    /// cluster's shards, following each shard's Raft leader among the
    /// listed sequencer nodes. Stateless; run as many as needed.
    ///
    /// FILE is TOML: `sequencers` (list of gRPC URLs), optional `listen`
    /// (127.0.0.1:6965), `public_base_url`, `verify_tokens` (false),
    /// `token_dns_server`, an `[http]` table of connection limits, and one
    /// `[[shard]]` table per shard with `name`, `log_key` (OpenSSH public
    /// key file) and `tiles` (local object store root) or `object_store`
    /// (a file with a `[local]`, `[s3]` or read-only `[http]` table, the
    /// last with the `url` the tiles are served at). Relative paths are
    /// relative to FILE's directory; unknown keys are errors.
    Frontend {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run one sequencer node of a cluster: a replica of each shard its
    /// file lists (RocksDB, Raft, tiles, signing), serving the Sequencer,
    /// Admin and Raft gRPC services on `listen`, and /metrics, /livez,
    /// /readyz on `ops_listen`.
    ///
    /// A fresh node never creates a shard's group by itself: `cairn
    /// cluster init` creates it on named nodes, `cairn cluster add-node`
    /// adds this node to an existing one.
    ///
    /// FILE is TOML: `node_id`, `data_dir`, optional `listen`
    /// (127.0.0.1:6970), `advertise` (http://LISTEN), `ops_listen`
    /// (127.0.0.1:6971), a `[raft]` table (`heartbeat_ms` 100,
    /// `election_timeout_min_ms` 500, `election_timeout_max_ms` 1000,
    /// `install_snapshot_timeout_ms` 30000, `snapshot_logs` 10000),
    /// `partial_tile_grace_s` (600: superseded partial tiles are deleted
    /// that long after the published tree outgrew them),
    /// `keep_partial_tiles` (false), and one
    /// `[[shard]]` table per shard with `name`, `log_key` (private key
    /// file), `policy` (Sigsum policy file) and `tiles` (local object
    /// store root) or `object_store` (a file with a `[local]` or `[s3]`
    /// table). Relative paths are relative to FILE's directory;
    /// unknown keys are errors.
    Sequencer {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a C2SP https-bastion: witnesses dial out to it and logs reach
    /// each at `https://<bastion>/<hex SHA-256 of the witness key>`.
    ///
    /// FILE is TOML: `listen`, `certificate` (PEM chain, leaf first),
    /// `private_key` (PEM), optional `allowed_backends` (witness key
    /// hashes; default any) and `[limits]`. Relative paths are relative to
    /// FILE's directory; unknown keys are errors.
    Bastion {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a role's configuration file: its fields, and the key and
    /// policy files it names. Writes nothing. Exit status 0 if valid; the
    /// error names the bad field otherwise.
    Check {
        /// The configuration file.
        file: PathBuf,
        /// The role the file is for (default: recognised from its keys).
        #[arg(long, value_enum)]
        role: Option<config_check::Role>,
    },
}

impl Command {
    /// The role's name, for traces (`cairnd-<role>`).
    fn role(&self) -> &'static str {
        match self {
            Command::Dev { .. } => "dev",
            Command::Collector { .. } => "collector",
            Command::Witness { .. } => "witness",
            Command::Bastion { .. } => "bastion",
            Command::Sequencer { .. } => "sequencer",
            Command::Frontend { .. } => "frontend",
            Command::Config(_) => "config",
        }
    }
}

/// glibc's malloc arenas cairnd runs with unless its environment sets
/// `MALLOC_ARENA_MAX` (see [`limit_malloc_arenas`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: &str = "2";

/// glibc's malloc gives busy threads arenas of their own (up to 8 per core)
/// and returns little of what they free: in the growth scenario a dev log
/// held 233 MiB at 3·10^6 leaves with the default and 146 MiB with two
/// arenas, for a few per cent less ingest (docs/performance.md, "Growth";
/// heaptrack saw a live heap of under 100 MB). glibc reads the limit when
/// malloc starts, so cairnd executes itself again with `MALLOC_ARENA_MAX`
/// set, unless it is set already: an operator's value wins. Must run first,
/// before any thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", MALLOC_ARENAS)
        .exec();
    // `exec` returns only when it failed: go on with glibc's default.
    eprintln!("cairnd: running with glibc's default malloc arenas: {error}");
}

fn main() -> anyhow::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    limit_malloc_arenas();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let telemetry = {
        // The trace exporter's channel lives on the runtime.
        let _entered = runtime.enter();
        telemetry::init(cli.log_format, cli.command.role())?
    };
    // Every listener caps its connections below the descriptor limit; the
    // soft limit is often 1024 while the hard one is far higher.
    match cairn_http::raise_nofile_limit() {
        Ok(l) if l.before < l.soft => {
            tracing::info!(from = l.before, to = l.soft, "raised the open-file limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let result = match cli.command {
        Command::Dev {
            data_dir,
            listen,
            nodes: Some(nodes),
            configure_only,
            shards,
            ..
        } => runtime.block_on(local_cluster::run(
            data_dir,
            listen,
            nodes,
            shards,
            configure_only,
            cli.log_format,
        )),
        Command::Dev {
            data_dir,
            listen,
            witnesses,
            grpc_listen,
            external_collector,
            verify_tokens,
            token_dns_server,
            object_store,
            partial_tile_grace,
            keep_partial_tiles,
            nodes: None,
            configure_only: _,
            shards: _,
        } => runtime.block_on(dev::run(dev::DevOptions {
            object_store,
            partial_tile_grace: (!keep_partial_tiles)
                .then(|| std::time::Duration::from_secs(partial_tile_grace)),
            root: data_dir,
            listen,
            witnesses,
            grpc_listen,
            external_collector,
            tokens: match (token_dns_server, verify_tokens) {
                (Some(addr), _) => dev::TokenChecks::NameServer(addr),
                (None, true) => dev::TokenChecks::SystemResolver,
                (None, false) => dev::TokenChecks::Off,
            },
        })),
        Command::Collector { config } => runtime.block_on(collector::run(config)),
        Command::Witness {
            config,
            generate_key,
        } => runtime.block_on(witness::run(config, generate_key)),
        Command::Bastion { config } => runtime.block_on(bastion::run(config)),
        Command::Sequencer { config } => runtime.block_on(sequencer::run(config)),
        Command::Frontend { config } => runtime.block_on(frontend::run(config)),
        Command::Config(ConfigCommand::Check { file, role }) => config_check::run(&file, role),
    };
    telemetry.shutdown();
    result
}
