//! A local cluster of real `cairnd` processes for failover tests: the files
//! `cairnd dev --nodes N --configure-only` writes, each role started as its
//! own process, and the means to kill, freeze, resume and restart them.

#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::{StatusRequest, StatusResponse};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Generous: first starts create RocksDB and elect.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// One node of `DIR/cluster.toml`.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: u64,
    pub grpc: String,
    pub ops: String,
}

/// The processes of a local cluster, killed on drop.
pub struct LocalCluster {
    pub root: PathBuf,
    pub frontend: String,
    pub nodes: Vec<Node>,
    /// The shards every node hosts (`dev` first).
    pub shards: Vec<String>,
    procs: BTreeMap<String, Child>,
    /// Process name → the network namespace it runs in.
    netns: BTreeMap<String, String>,
    /// Environment every process started from now on gets (after
    /// `RUST_LOG`, so it may replace that).
    env: Vec<(String, String)>,
    /// `cairnd` options every process gets before its role.
    global_args: Vec<String>,
}

impl LocalCluster {
    /// Writes the configuration of an `n`-node cluster under `root` (with
    /// the frontend on `listen`) and starts nothing.
    pub fn configure(root: &Path, listen: std::net::SocketAddr, n: u8) -> LocalCluster {
        Self::configure_shards(root, listen, n, 1)
    }

    /// As [`LocalCluster::configure`], with `shards` shards (`dev`, `dev2`,
    /// …) on every node.
    pub fn configure_shards(
        root: &Path,
        listen: std::net::SocketAddr,
        n: u8,
        shards: u8,
    ) -> LocalCluster {
        let out = Command::new(env!("CARGO_BIN_EXE_cairnd"))
            .args(["dev", "--configure-only", "--nodes", &n.to_string()])
            .args(["--shards", &shards.to_string()])
            .arg("--data-dir")
            .arg(root)
            .args(["--listen", &listen.to_string()])
            .output()
            .expect("cairnd dev --configure-only");
        assert!(
            out.status.success(),
            "configure failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(root.join("cluster.toml")).expect("cluster.toml");
        let layout: toml::Table = text.parse().expect("cluster.toml parses");
        let nodes: Vec<Node> = layout["node"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| Node {
                id: n["id"].as_integer().expect("id") as u64,
                grpc: format!("http://{}", n["grpc"].as_str().expect("grpc")),
                ops: format!("http://{}", n["ops"].as_str().expect("ops")),
            })
            .collect();
        let shards: Vec<String> = layout["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .map(|s| s.as_str().expect("shard name").to_owned())
            .collect();
        std::fs::create_dir_all(root.join("logs")).expect("logs dir");
        // Partial tiles are collected one second after the published tree
        // outgrew them, so every failover test also runs leaders that
        // delete tiles while others take over; the final checks (every
        // proof, the tiles rebuilding to the root) catch a deletion of
        // anything still needed.
        for n in &nodes {
            let file = root.join(format!("node{}", n.id)).join("sequencer.toml");
            let text = std::fs::read_to_string(&file).expect("sequencer.toml");
            assert!(text.contains("data_dir = \"data\"\n"), "{text}");
            let text = text.replace(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\npartial_tile_grace_s = 1\n",
            );
            // Leaders move only when a test says so (`balance_every`):
            // tests check who leads. `[registry]` is the file's last table.
            assert!(text.contains("[registry]"), "{text}");
            let text = format!("{text}balance_interval_s = 0\n");
            std::fs::write(&file, text).expect("sequencer.toml");
        }
        LocalCluster {
            root: root.to_owned(),
            frontend: listen.to_string(),
            nodes,
            shards,
            procs: BTreeMap::new(),
            netns: BTreeMap::new(),
            env: Vec::new(),
            global_args: Vec::new(),
        }
    }

    /// Turns on automatic leader placement every `seconds` on every node.
    /// Call before starting the nodes.
    pub fn balance_every(&self, seconds: u64) {
        for n in &self.nodes {
            let file = self
                .root
                .join(format!("node{}", n.id))
                .join("sequencer.toml");
            let text = std::fs::read_to_string(&file).expect("sequencer.toml");
            let text = text.replace(
                "balance_interval_s = 0\n",
                &format!("balance_interval_s = {seconds}\n"),
            );
            std::fs::write(&file, text).expect("sequencer.toml");
        }
    }

    /// Moves every sequencer node into its own namespace of `net`: rewrites
    /// the node addresses in every configuration file to the node's address
    /// there, and starts the node inside it.
    pub fn place_in(&mut self, net: &Netns) {
        let files = [
            self.root.join("cluster.toml"),
            self.root.join("collector.toml"),
            self.root.join("frontend.toml"),
        ];
        let mut files: Vec<PathBuf> = files.into_iter().collect();
        for n in &self.nodes {
            files.push(
                self.root
                    .join(format!("node{}", n.id))
                    .join("sequencer.toml"),
            );
        }
        for n in &mut self.nodes {
            let ip = net.addr(n.id);
            for url in [&mut n.grpc, &mut n.ops] {
                let old = url.trim_start_matches("http://").to_owned();
                let new = old.replace("127.0.0.1", &ip);
                for f in &files {
                    let text = std::fs::read_to_string(f).expect("config");
                    std::fs::write(f, text.replace(&old, &new)).expect("config");
                }
                *url = format!("http://{new}");
            }
            self.netns.insert(format!("node{}", n.id), net.ns(n.id));
        }
    }

    pub fn base_url(&self) -> String {
        self.base_url_of("dev")
    }

    pub fn base_url_of(&self, shard: &str) -> String {
        format!("http://{}/{shard}/", self.frontend)
    }

    /// The public key of `shard`'s log.
    pub fn log_key_of(&self, shard: &str) -> cairn_sigsum::PublicKey {
        let file = if shard == "dev" {
            self.root.join("log.key.pub")
        } else {
            self.root.join("keys").join(format!("{shard}.key.pub"))
        };
        let text = std::fs::read(&file).expect("public key file");
        cairn_sigsum::key::parse_public_key_file(&text).expect("public key")[0].0
    }

    pub fn policy(&self) -> cairn_sigsum::policy::Policy {
        let text = std::fs::read(self.root.join("policy")).expect("policy");
        cairn_sigsum::policy::Policy::parse(&text).expect("policy parses")
    }

    pub fn log_key(&self) -> cairn_sigsum::PublicKey {
        let text = std::fs::read(self.root.join("log.key.pub")).expect("log.key.pub");
        cairn_sigsum::key::parse_public_key_file(&text).expect("public key")[0].0
    }

    /// Moves the shard's tiles from the shared local directory to the
    /// object store `file` describes (an `[s3]` table, as for `cairnd dev
    /// --object-store`): every `tiles = DIR` line of the sequencers', the
    /// frontend's and the collector's configurations becomes
    /// `object_store = FILE`. Call before starting anything.
    pub fn use_object_store(&self, file: &Path) {
        let mut configs: Vec<PathBuf> = self
            .nodes
            .iter()
            .map(|n| self.config(&format!("node{}", n.id)).1)
            .collect();
        configs.push(self.config("frontend").1);
        configs.push(self.config("collector").1);
        for config in configs {
            let text = std::fs::read_to_string(&config).expect("configuration");
            let mut moved = 0;
            let rewritten: Vec<String> = text
                .lines()
                .map(|line| {
                    if line.trim_start().starts_with("tiles = ") {
                        moved += 1;
                        format!("object_store = {:?}", file.display().to_string())
                    } else {
                        line.to_owned()
                    }
                })
                .collect();
            // The shard's store, and the registry's where there is one.
            assert!(moved >= 1, "{} names no tiles directory", config.display());
            std::fs::write(&config, rewritten.join("\n") + "\n").expect("rewrite");
        }
    }

    /// The configuration file of process `name` (`node<i>`, `witness`,
    /// `collector`, `frontend`).
    fn config(&self, name: &str) -> (String, PathBuf) {
        match name {
            "witness" => (
                "witness".into(),
                self.root.join("witness").join("witness.toml"),
            ),
            "collector" => ("collector".into(), self.root.join("collector.toml")),
            "frontend" => ("frontend".into(), self.root.join("frontend.toml")),
            node => (
                "sequencer".into(),
                self.root.join(node).join("sequencer.toml"),
            ),
        }
    }

    /// Sets `key=value` in the environment of every process started from
    /// now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Passes `arg` to every process started from now on, before its role
    /// (e.g. `--log-format`).
    pub fn global_arg(&mut self, arg: &str) {
        self.global_args.push(arg.to_owned());
    }

    /// Starts process `name` (its output appended to `logs/<name>.log`).
    pub fn start(&mut self, name: &str) {
        assert!(!self.procs.contains_key(name), "{name} is running");
        let (role, config) = self.config(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("logs").join(format!("{name}.log")))
            .expect("log file");
        let mut command = match self.netns.get(name) {
            // `ip netns exec` execs cairnd: the child's pid is cairnd's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_cairnd")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_cairnd")),
        };
        let child = command
            .args(&self.global_args)
            .args([role.as_str(), "--config"])
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("CAIRN_TEST_LOG")
                    .unwrap_or_else(|_| "info,openraft=warn,openraft::replication=error".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.procs.insert(name.to_owned(), child);
    }

    /// Starts every process and creates the group; waits until the
    /// frontend serves a cosigned tree head.
    pub async fn start_all(&mut self) {
        let names: Vec<String> = self.nodes.iter().map(|n| format!("node{}", n.id)).collect();
        for n in &names {
            self.start(n);
        }
        for n in ["witness", "collector", "frontend"] {
            self.start(n);
        }
        self.init_group().await;
        self.wait_published(1).await;
    }

    /// Every node as a Raft member (id and gRPC URL).
    pub fn members(&self) -> Vec<cairn_proto::v1::Member> {
        self.nodes
            .iter()
            .map(|n| cairn_proto::v1::Member {
                id: n.id,
                addr: n.grpc.clone(),
            })
            .collect()
    }

    /// Creates every shard's group on all nodes: InitShard on node `i mod
    /// N` for shard `i`, so that the first leaders spread over the nodes.
    pub async fn init_group(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        for n in self.nodes.clone() {
            while status(&n.grpc).await.is_err() {
                self.assert_all_running();
                assert!(Instant::now() < deadline, "node {} never answered", n.id);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // The cluster registry's group, on every node.
        admin(&self.nodes[0].grpc)
            .init_shard(cairn_proto::v1::InitShardRequest {
                shard: "@meta".into(),
                voters: self.members(),
            })
            .await
            .unwrap_or_else(|e| panic!("InitShard @meta: {e}"));
        for (i, shard) in self.shards.iter().enumerate() {
            let mut voters = self.members();
            let first = i % voters.len();
            voters.rotate_left(first);
            admin(&voters[0].addr)
                .init_shard(cairn_proto::v1::InitShardRequest {
                    shard: shard.clone(),
                    voters,
                })
                .await
                .unwrap_or_else(|e| panic!("InitShard {shard}: {e}"));
        }
    }

    /// Waits until the frontend's get-tree-head serves a head of at least
    /// `size` leaves... or any head at all for size 1 on a fresh log (the
    /// empty tree is published first).
    pub async fn wait_published(&mut self, min_size: u64) -> u64 {
        self.wait_published_of("dev", min_size).await
    }

    /// [`LocalCluster::wait_published`] for `shard`.
    pub async fn wait_published_of(&mut self, shard: &str, min_size: u64) -> u64 {
        let client = cairn_client::LogClient::new(&self.base_url_of(shard)).expect("client");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(head) = client.get_tree_head().await
                && (head.tree_head().size >= min_size || min_size <= 1)
            {
                return head.tree_head().size;
            }
            self.assert_all_running();
            assert!(
                Instant::now() < deadline,
                "no published head of size >= {min_size} within {START_DEADLINE:?}\n{}",
                self.log_tails()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn assert_all_running(&mut self) {
        let mut dead = Vec::new();
        for (name, child) in &mut self.procs {
            if let Ok(Some(status)) = child.try_wait() {
                dead.push(format!("{name} exited: {status}"));
            }
        }
        assert!(dead.is_empty(), "{}\n{}", dead.join("\n"), self.log_tails());
    }

    /// The last lines of every process's log.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        let Ok(dir) = std::fs::read_dir(self.root.join("logs")) else {
            return out;
        };
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            out.push_str(&format!("--- {} ---\n{}\n", f.display(), tail.join("\n")));
        }
        out
    }

    fn pid(&self, name: &str) -> Pid {
        let child = self
            .procs
            .get(name)
            .unwrap_or_else(|| panic!("{name} not running"));
        Pid::from_raw(child.id() as i32)
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self, name: &str) {
        let mut child = self
            .procs
            .remove(name)
            .unwrap_or_else(|| panic!("{name} not running"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGSTOP: the process stays, frozen.
    pub fn freeze(&self, name: &str) {
        kill(self.pid(name), Signal::SIGSTOP).expect("SIGSTOP");
    }

    /// SIGCONT.
    pub fn thaw(&self, name: &str) {
        kill(self.pid(name), Signal::SIGCONT).expect("SIGCONT");
    }

    /// Every node's Status (unreachable nodes left out).
    /// The admin client of the current leader.
    pub async fn leader_admin(&mut self) -> AdminClient<tonic::transport::Channel> {
        let id = self.leader().await;
        let node = self.nodes.iter().find(|n| n.id == id).expect("leader");
        admin(&node.grpc)
    }

    pub async fn statuses(&self) -> Vec<StatusResponse> {
        self.statuses_of("dev").await
    }

    /// Every node's Status of `shard` (unreachable nodes left out).
    pub async fn statuses_of(&self, shard: &str) -> Vec<StatusResponse> {
        let asks = self.nodes.iter().map(|n| status_of(&n.grpc, shard));
        futures::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    }

    /// The leader as the reachable nodes agree on it (highest term),
    /// waiting for one.
    pub async fn leader(&mut self) -> u64 {
        self.leader_of("dev").await
    }

    /// [`LocalCluster::leader`] of `shard`.
    pub async fn leader_of(&mut self, shard: &str) -> u64 {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let statuses = self.statuses_of(shard).await;
            if let Some(s) = statuses
                .iter()
                .filter(|s| s.role == "leader" && s.cleared)
                .max_by_key(|s| s.term)
            {
                return s.node_id;
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {START_DEADLINE:?}\n{}",
                self.log_tails()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for (_, child) in self.procs.iter_mut() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Network namespaces, one per sequencer node, on a bridge in the root
/// namespace (where the frontend, collector and witness run), so that one
/// node can be cut off from everyone with iptables while it keeps running.
/// Removed on drop.
pub struct Netns {
    tag: u32,
}

impl Netns {
    /// Namespaces for nodes `1..=n`. Needs root and `ip`/`iptables`.
    pub fn setup(n: u64) -> Netns {
        let tag = std::process::id() % 200 + 20;
        let net = Netns { tag };
        net.cleanup();
        let bridge = net.bridge();
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net.addr(254)),
            "dev",
            &bridge,
        ]);
        run(&["ip", "link", "set", &bridge, "up"]);
        // Docker sets FORWARD to DROP and bridged packets may traverse it.
        run(&[
            "iptables", "-I", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
        ]);
        for i in 1..=n {
            let ns = net.ns(i);
            let (inner, outer) = (format!("cv{tag}-{i}"), format!("cv{tag}-{i}b"));
            run(&["ip", "netns", "add", &ns]);
            run(&[
                "ip", "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            run(&["ip", "link", "set", &inner, "netns", &ns]);
            run(&["ip", "link", "set", &outer, "master", &bridge]);
            run(&["ip", "link", "set", &outer, "up"]);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.addr(i)),
                "dev",
                &inner,
            ]);
            run(&["ip", "-n", &ns, "link", "set", &inner, "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn bridge(&self) -> String {
        format!("cbr{}", self.tag)
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: u64) -> String {
        format!("cairn{}-n{i}", self.tag)
    }

    /// Node `i`'s address (254: the bridge, in the root namespace).
    pub fn addr(&self, i: u64) -> String {
        format!("10.231.{}.{i}", self.tag)
    }

    /// Drops every packet in and out of node `i`'s namespace (loopback
    /// aside): the node runs on, cut off from everyone.
    pub fn cut(&self, i: u64) {
        let ns = self.ns(i);
        run(&[
            "ip", "netns", "exec", &ns, "iptables", "-A", "INPUT", "!", "-i", "lo", "-j", "DROP",
        ]);
        run(&[
            "ip", "netns", "exec", &ns, "iptables", "-A", "OUTPUT", "!", "-o", "lo", "-j", "DROP",
        ]);
    }

    /// Undoes [`Netns::cut`].
    pub fn heal(&self, i: u64) {
        run(&["ip", "netns", "exec", &self.ns(i), "iptables", "-F"]);
    }

    fn cleanup(&self) {
        for i in 1..=9 {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(i)])
                .output();
        }
        let bridge = self.bridge();
        let _ = Command::new("iptables")
            .args([
                "-D", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
            ])
            .output();
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn admin(url: &str) -> AdminClient<tonic::transport::Channel> {
    AdminClient::new(
        tonic::transport::Endpoint::from_shared(url.to_owned())
            .expect("url")
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy(),
    )
}

/// One node's Status, bounded by 0.7 s.
pub async fn status(url: &str) -> Result<StatusResponse, tonic::Status> {
    status_of(url, "dev").await
}

/// One node's Status of `shard`, bounded by 0.7 s.
pub async fn status_of(url: &str, shard: &str) -> Result<StatusResponse, tonic::Status> {
    // Short: a frozen node must not slow down polling the others.
    let mut request = tonic::Request::new(StatusRequest {
        shard: shard.into(),
    });
    request.set_timeout(Duration::from_millis(500));
    match tokio::time::timeout(Duration::from_millis(700), admin(url).status(request)).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer")),
    }
}
