//! `cairnd dev --nodes N [--shards M]`: a whole cluster on this machine,
//! each role its own process — N sequencer nodes (one Raft group per shard:
//! `dev`, and with `--shards M` also `dev2` … `devM`), a frontend, the
//! collector and a witness — sharing one local object store.
//!
//! The launcher writes every role's configuration file under the data
//! directory (so the same files can be started by hand, and are by the
//! failover tests), starts the processes as children, creates the shard's
//! group on the first start, prints the base URL and the policy as `cairnd
//! dev` does, and stops the children on Ctrl-C or SIGTERM. It does not
//! restart a child that dies: killing nodes is what the cluster is for.
//!
//! Layout of DIR: `cluster.toml` (ports and shards; written once, reused),
//! the log and witness keys and `policy` (as `cairnd dev`; the keys of
//! shards other than `dev` in `keys/<shard>.key`), `tiles/` (the shared
//! object store), `node<i>/sequencer.toml` and its state, `witness/witness.toml`,
//! `collector.toml`, `frontend.toml`, and `logs/<process>.log`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::{InitShardRequest, Member, StatusRequest};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use cairn_sequencer::registry::META_GROUP;

use crate::dev::{DevDir, SHARD, WITNESS_NAME};
use crate::files::write_atomic;
use crate::shutdown::wait_for_signal;

/// Most sequencer nodes `--nodes` starts.
pub const MAX_NODES: u8 = 7;

/// Most shards `--shards` creates.
pub const MAX_SHARDS: u8 = 64;

/// Keys made for shards created later through the registry
/// (`keys/spare<i>.key`), known to the witness from the start.
pub const SPARE_KEYS: usize = 4;

/// How often the frontend and collector poll the registry (ms): a local
/// cluster should pick up a new shard quickly.
const FOLLOW_POLL_MS: u64 = 500;

/// The layout file: which ports each process of the cluster uses.
pub const LAYOUT: &str = "cluster.toml";

/// How long the launcher waits for every node to answer before creating
/// the group, and for the group to elect a leader.
const START_WAIT: Duration = Duration::from_secs(60);

/// How long children get to stop after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// `DIR/cluster.toml`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// The frontend's HTTP address (the log's base URL is under it).
    pub frontend: SocketAddr,
    /// The witness's HTTP address.
    pub witness: SocketAddr,
    /// The collector's operator listener.
    pub collector_ops: SocketAddr,
    /// The sequencer nodes.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeLayout>,
    /// The shards, each hosted by every node. Default `["dev"]`.
    #[serde(default = "default_shards")]
    pub shards: Vec<String>,
}

fn default_shards() -> Vec<String> {
    vec![SHARD.to_owned()]
}

/// The names of `n` shards: `dev`, `dev2`, … `dev<n>`.
pub fn shard_names(n: u8) -> Vec<String> {
    (1..=n)
        .map(|i| {
            if i == 1 {
                SHARD.to_owned()
            } else {
                format!("{SHARD}{i}")
            }
        })
        .collect()
}

/// The private key file of `shard` in the cluster directory `root`.
pub fn shard_key_path(root: &Path, shard: &str) -> PathBuf {
    if shard == SHARD {
        root.join("log.key")
    } else {
        root.join("keys").join(format!("{shard}.key"))
    }
}

/// `<key file>.pub`.
fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// One sequencer node in [`Layout`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLayout {
    /// Raft node id.
    pub id: u64,
    /// gRPC listener.
    pub grpc: SocketAddr,
    /// Operator listener.
    pub ops: SocketAddr,
}

impl Layout {
    /// The nodes' gRPC URLs.
    pub fn sequencer_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("http://{}", n.grpc))
            .collect()
    }
}

/// A free loopback port (bound and released: another process may take it
/// before the child binds it, which then fails to start loudly).
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn toml_str(s: &Path) -> String {
    toml::Value::String(s.display().to_string()).to_string()
}

fn toml_list(items: &[String]) -> String {
    toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect()).to_string()
}

/// Writes (or reuses) the layout and every configuration file; returns the
/// layout. `listen` is the frontend's address.
pub fn configure(root: &Path, listen: SocketAddr, nodes: u8, shards: u8) -> anyhow::Result<Layout> {
    if nodes == 0 || nodes > MAX_NODES {
        bail!("--nodes takes 1 to {MAX_NODES}");
    }
    if shards == 0 || shards > MAX_SHARDS {
        bail!("--shards takes 1 to {MAX_SHARDS}");
    }
    let root = std::path::absolute(root).context("data directory")?;
    if root.join("raft").exists() {
        bail!(
            "{} holds a single-node `cairnd dev` log (raft/): use another directory for a \
             cluster",
            root.display()
        );
    }
    let dir = DevDir::prepare(&root)?;
    let layout_path = root.join(LAYOUT);
    let layout = if layout_path.exists() {
        let text = std::fs::read_to_string(&layout_path)
            .with_context(|| format!("reading {}", layout_path.display()))?;
        let layout: Layout =
            toml::from_str(&text).with_context(|| format!("in {}", layout_path.display()))?;
        if layout.nodes.len() != usize::from(nodes)
            || layout.frontend != listen
            || layout.shards.len() != usize::from(shards)
        {
            bail!(
                "{} was made for {} nodes and {} shards with the frontend on {}; start with \
                 those (--nodes {} --shards {} --listen {}) or use another directory",
                root.display(),
                layout.nodes.len(),
                layout.shards.len(),
                layout.frontend,
                layout.nodes.len(),
                layout.shards.len(),
                layout.frontend
            );
        }
        layout
    } else {
        let layout = Layout {
            frontend: listen,
            witness: free_port()?,
            collector_ops: free_port()?,
            nodes: (1..=u64::from(nodes))
                .map(|id| {
                    Ok(NodeLayout {
                        id,
                        grpc: free_port()?,
                        ops: free_port()?,
                    })
                })
                .collect::<anyhow::Result<_>>()?,
            shards: shard_names(shards),
        };
        write_atomic(&layout_path, toml::to_string(&layout)?.as_bytes(), 0o644)?;
        layout
    };

    // Every shard's key (`dev`'s is the DevDir's log key).
    let mut log_lines = String::new();
    for shard in &layout.shards {
        let key = if shard == SHARD {
            dir.log_public_key()
        } else {
            std::fs::create_dir_all(root.join("keys"))?;
            crate::files::load_or_generate_key(&shard_key_path(&root, shard))?.public_key()
        };
        log_lines.push_str(&format!("log {} http://{listen}/{shard}\n", key.to_hex()));
    }
    let policy = format!(
        "# Sigsum policy for the local Cairn cluster (written by cairnd at every start).\n\
         {log_lines}\
         witness cairn-dev-witness {} http://{}\n\
         quorum cairn-dev-witness\n",
        dir.witness_public_key().to_hex(),
        layout.witness,
    );
    write_atomic(&root.join("policy"), policy.as_bytes(), 0o644)?;
    let tiles = root.join("tiles");
    let policy_path = root.join("policy");
    std::fs::create_dir_all(root.join("logs"))?;
    // The `[[shard]]` tables of a role: `log_key` is the private key for
    // sequencers and the public one for the others; `extra` is the rest.
    let shard_tables = |private: bool, extra: &dyn Fn(&str) -> String| {
        let mut out = String::new();
        for shard in &layout.shards {
            let key = shard_key_path(&root, shard);
            let key = if private { key } else { public_key_path(&key) };
            out.push_str(&format!(
                "\n[[shard]]\nname = \"{shard}\"\nlog_key = {}\n{}",
                toml_str(&key),
                extra(shard)
            ));
        }
        out
    };
    let with_policy_and_tiles = |_: &str| {
        format!(
            "policy = {}\ntiles = {}\n",
            toml_str(&policy_path),
            toml_str(&tiles)
        )
    };

    // Keys for shards created later through the registry (`cairn cluster
    // shard create --key keys/spareN.key.pub`): the witness knows them
    // already, as a real witness is told of a log before it goes live.
    std::fs::create_dir_all(root.join("keys"))?;
    let spares: Vec<PathBuf> = (1..=SPARE_KEYS)
        .map(|i| root.join("keys").join(format!("spare{i}.key")))
        .collect();
    for spare in &spares {
        crate::files::load_or_generate_key(spare)?;
    }
    let registry_table = |extra: &str| {
        format!(
            "\n# Shards of the cluster registry (`cairn cluster shard create`).\n\
             [registry]\ntiles = {}\n{extra}",
            toml_str(&tiles)
        )
    };
    for n in &layout.nodes {
        let node_dir = root.join(format!("node{}", n.id));
        std::fs::create_dir_all(&node_dir)?;
        let text = format!(
            "# Sequencer node {id} of the local cluster (written by cairnd dev --nodes).\n\
             node_id = {id}\nlisten = \"{grpc}\"\nops_listen = \"{ops}\"\ndata_dir = \"data\"\n{shards}{registry}",
            id = n.id,
            grpc = n.grpc,
            ops = n.ops,
            shards = shard_tables(true, &with_policy_and_tiles),
            registry = registry_table(&format!("keys_dir = {}\n", toml_str(&root.join("keys")))),
        );
        write_atomic(&node_dir.join("sequencer.toml"), text.as_bytes(), 0o644)?;
    }
    let sequencers = toml_list(&layout.sequencer_urls());
    std::fs::create_dir_all(root.join("witness"))?;
    let witnessed: String = layout
        .shards
        .iter()
        .map(|shard| shard_key_path(&root, shard))
        .chain(spares.iter().cloned())
        .map(|key| {
            format!(
                "\n[[log]]\npublic_key_file = {}\n",
                toml_str(&public_key_path(&key))
            )
        })
        .collect();
    let witness = format!(
        "# The local cluster's witness (written by cairnd dev --nodes).\n\
         listen = \"{}\"\nkey_name = \"{WITNESS_NAME}\"\nkey_file = {}\nstate_dir = \"state\"\n{witnessed}",
        layout.witness,
        toml_str(&root.join("witness.key")),
    );
    write_atomic(
        &root.join("witness").join("witness.toml"),
        witness.as_bytes(),
        0o644,
    )?;
    let collector = format!(
        "# The local cluster's collector (written by cairnd dev --nodes).\n\
         listen = \"{}\"\nsequencers = {sequencers}\n{}{}",
        layout.collector_ops,
        shard_tables(false, &with_policy_and_tiles),
        registry_table(&format!("poll_interval_ms = {FOLLOW_POLL_MS}\n")),
    );
    write_atomic(&root.join("collector.toml"), collector.as_bytes(), 0o644)?;
    let frontend = format!(
        "# The local cluster's frontend (written by cairnd dev --nodes).\n\
         listen = \"{listen}\"\nsequencers = {sequencers}\n\n\
         # As for cairnd dev: load tools on this machine open a connection\n\
         # per request in flight.\n\
         [http]\nmax_connections_per_ip = {}\n{}{}",
        crate::dev::DEV_MAX_CONNECTIONS_PER_IP,
        shard_tables(false, &|_| format!("tiles = {}\n", toml_str(&tiles))),
        registry_table(&format!("poll_interval_ms = {FOLLOW_POLL_MS}\n")),
    );
    write_atomic(&root.join("frontend.toml"), frontend.as_bytes(), 0o644)?;
    Ok(layout)
}

/// The `cairnd` arguments of each process of the cluster, by name.
pub fn processes(root: &Path, layout: &Layout) -> Vec<(String, Vec<PathBuf>)> {
    let mut out = Vec::new();
    for n in &layout.nodes {
        out.push((
            format!("node{}", n.id),
            vec![
                "sequencer".into(),
                "--config".into(),
                root.join(format!("node{}", n.id)).join("sequencer.toml"),
            ],
        ));
    }
    out.push((
        "witness".into(),
        vec![
            "witness".into(),
            "--config".into(),
            root.join("witness").join("witness.toml"),
        ],
    ));
    out.push((
        "collector".into(),
        vec![
            "collector".into(),
            "--config".into(),
            root.join("collector.toml"),
        ],
    ));
    out.push((
        "frontend".into(),
        vec![
            "frontend".into(),
            "--config".into(),
            root.join("frontend.toml"),
        ],
    ));
    out
}

/// Creates each shard's group on every node of `layout` unless it exists:
/// waits until each node answers, then (if none holds the group) asks one
/// to create it — the first voter of shard `i` is node `i mod N`, so that
/// the first elections spread the leaders — and waits for a leader.
/// Returns each shard's leader, in layout order.
pub async fn ensure_groups(layout: &Layout) -> anyhow::Result<Vec<(String, u64)>> {
    let deadline = Instant::now() + START_WAIT;
    let urls = layout.sequencer_urls();
    // The registry's group first, then every configured shard's.
    let groups: Vec<String> = std::iter::once(META_GROUP.to_owned())
        .chain(layout.shards.iter().cloned())
        .collect();
    for (i, shard) in groups.iter().enumerate() {
        let mut initialized = false;
        for url in &urls {
            let status = loop {
                match status(url, shard).await {
                    Ok(s) => break s,
                    Err(e) if Instant::now() >= deadline => {
                        bail!("sequencer {url} did not answer for shard {shard}: {e}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            initialized |= status.initialized;
        }
        if !initialized {
            let mut voters: Vec<Member> = layout
                .nodes
                .iter()
                .map(|n| Member {
                    id: n.id,
                    addr: format!("http://{}", n.grpc),
                })
                .collect();
            // The registry (0) and the first shard (1) both start on node 1.
            let first = i.saturating_sub(1) % voters.len();
            voters.rotate_left(first);
            let channel =
                tonic::transport::Endpoint::from_shared(voters[0].addr.clone())?.connect_lazy();
            AdminClient::new(channel)
                .init_shard(InitShardRequest {
                    shard: shard.clone(),
                    voters,
                })
                .await
                .map_err(|s| anyhow::anyhow!("creating shard {shard}'s group: {}", s.message()))?;
        }
    }
    let mut leaders = Vec::new();
    for shard in &groups {
        'wait: loop {
            for url in &urls {
                if let Ok(s) = status(url, shard).await
                    && let Some(leader) = s.leader_id
                {
                    if shard != META_GROUP {
                        leaders.push((shard.clone(), leader));
                    }
                    break 'wait;
                }
            }
            if Instant::now() >= deadline {
                bail!("shard {shard}'s group elected no leader within {START_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(leaders)
}

async fn status(url: &str, shard: &str) -> anyhow::Result<cairn_proto::v1::StatusResponse> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let mut request = tonic::Request::new(StatusRequest {
        shard: shard.to_owned(),
    });
    request.set_timeout(Duration::from_secs(2));
    Ok(AdminClient::new(channel)
        .status(request)
        .await?
        .into_inner())
}

/// Stops `children`: SIGTERM, then a kill after [`STOP_GRACE`].
fn stop_all(children: &mut [(String, Child)]) {
    for (_, child) in children.iter() {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    for (name, child) in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if std::time::Instant::now() >= deadline => {
                    eprintln!("cairnd dev: {name} did not stop in time; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Runs the cluster until Ctrl-C or SIGTERM (or only writes its files, with
/// `configure_only`).
pub async fn run(
    root: PathBuf,
    listen: SocketAddr,
    nodes: u8,
    shards: u8,
    configure_only: bool,
    log_format: crate::telemetry::LogFormat,
) -> anyhow::Result<()> {
    let layout = configure(&root, listen, nodes, shards)?;
    let root = std::path::absolute(&root)?;
    if configure_only {
        println!(
            "cairnd dev: wrote the configuration of a {nodes}-node cluster to {}",
            root.display()
        );
        for (name, args) in processes(&root, &layout) {
            let args: Vec<String> = args.iter().map(|a| a.display().to_string()).collect();
            println!("  {name}: cairnd {}", args.join(" "));
        }
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding the cairnd binary")?;
    let mut children: Vec<(String, Child)> = Vec::new();
    for (name, args) in processes(&root, &layout) {
        let log = std::fs::File::create(root.join("logs").join(format!("{name}.log")))?;
        let mut command = Command::new(&exe);
        if log_format == crate::telemetry::LogFormat::Json {
            command.args(["--log-format", "json"]);
        }
        let spawned = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn();
        match spawned {
            Ok(child) => children.push((name, child)),
            Err(e) => {
                stop_all(&mut children);
                return Err(e).with_context(|| format!("starting {name}"));
            }
        }
    }
    let leaders = match ensure_groups(&layout).await {
        Ok(l) => l,
        Err(e) => {
            stop_all(&mut children);
            return Err(e.context(format!("see the logs in {}", root.join("logs").display())));
        }
    };
    println!("cairnd dev: a {nodes}-node Cairn cluster with a witness, on this machine");
    println!("  data directory: {}", root.display());
    for (shard, leader) in &leaders {
        println!("  log base URL:   http://{listen}/{shard}/  (node {leader} leads)");
    }
    println!("  index of logs:  http://{listen}/");
    println!("  policy file:    {}", root.join("policy").display());
    for n in &layout.nodes {
        println!(
            "  node {}:         grpc http://{}  ops http://{}",
            n.id, n.grpc, n.ops,
        );
    }
    println!("  logs:           {}", root.join("logs").display());
    println!();
    print!(
        "{}",
        std::fs::read_to_string(root.join("policy")).unwrap_or_default()
    );
    println!();
    let result = tokio::select! {
        () = wait_for_signal() => Ok(()),
        r = watch_children(&mut children) => r,
    };
    tokio::task::block_in_place(|| stop_all(&mut children));
    result
}

/// Reports children that exit; returns only if every child has exited.
async fn watch_children(children: &mut [(String, Child)]) -> anyhow::Result<()> {
    let mut reported = vec![false; children.len()];
    loop {
        for (i, (name, child)) in children.iter_mut().enumerate() {
            if !reported[i]
                && let Ok(Some(status)) = child.try_wait()
            {
                eprintln!("cairnd dev: {name} exited ({status}); not restarting it");
                reported[i] = true;
            }
        }
        if reported.iter().all(|r| *r) {
            bail!("every process of the cluster has exited");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
