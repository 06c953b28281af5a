//! The cluster under test: the compose cluster of `deploy/compose`, driven
//! with `docker` and that directory's `cluster` script, as an operator
//! would. Only the nemesis uses this; the checker reads what clients see.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_sigsum::PublicKey;
use tokio::process::Command;

/// Host ports the harness publishes the cluster on (its own, so that it
/// runs beside a `cluster up` of the same directory's defaults).
#[derive(Clone, Debug)]
pub struct Ports {
    pub frontends: [u16; 2],
    pub store: u16,
    /// The fault proxies' control ports: the store's, then the witnesses'.
    pub controls: [u16; 4],
}

impl Ports {
    /// The ports from `base`: frontends `base` and `base + 1`, the store
    /// `base - 65`, the proxies' controls `base - 55` to `base - 52`.
    pub fn from_base(base: u16) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1024 + 65..u16::MAX).contains(&base),
            "port base {base} out of range"
        );
        Ok(Ports {
            frontends: [base, base + 1],
            store: base - 65,
            controls: [base - 55, base - 54, base - 53, base - 52],
        })
    }
}

/// The compose cluster, with the harness's additions (chaos-tests/compose.yml).
#[derive(Clone, Debug)]
pub struct Compose {
    /// `deploy/compose`, absolute.
    pub dir: PathBuf,
    /// The compose file merged over the cluster's, absolute.
    pub extra: PathBuf,
    /// The compose project (container and network names derive from it).
    pub project: String,
    pub ports: Ports,
}

/// Size of each sequencer's disk (sparse: only what is written is used).
const DISK_BYTES: u64 = 1 << 30;

/// Longest any one docker or script call may take.
const CALL_LIMIT: Duration = Duration::from_secs(180);

impl Compose {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let chaos = self.chaos_dir();
        c.env("COMPOSE_PROJECT_NAME", &self.project)
            .env("CAIRN_FRONTEND1_PORT", self.ports.frontends[0].to_string())
            .env("CAIRN_FRONTEND2_PORT", self.ports.frontends[1].to_string())
            .env("CAIRN_S3_PORT", self.ports.store.to_string())
            .env("CAIRN_COMPOSE_EXTRA", &self.extra)
            .env("CAIRN_CHAOS_CONFIG", chaos.join("config"))
            .env("CAIRN_CHAOS_CLOCKS", chaos.join("clocks"))
            .env("CAIRN_CHAOS_DISKS", chaos.join("disks"))
            .env("CAIRN_CHAOS_FAKETIME", faketime_library())
            .kill_on_drop(true);
        if let Ok(bin) = std::env::current_exe() {
            c.env("CAIRN_CHAOS_BIN", bin);
        }
        for (i, port) in self.ports.controls.iter().enumerate() {
            c.env(format!("CAIRN_CHAOS_CONTROL_PORT{i}"), port.to_string());
        }
        c
    }

    /// The harness's files: the derived config and the clock offsets.
    fn chaos_dir(&self) -> PathBuf {
        self.dir
            .join("state")
            .join(format!("chaos-{}", self.project))
    }

    /// Before `cluster up`: the keys and policy, then the configuration
    /// the roles run with here: deploy/compose/config with the S3 endpoint
    /// and the policy's witness URLs pointing at the fault proxies, the
    /// sequencers' disks, and a clock offset file of "+0" per sequencer
    /// and witness.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        self.cluster(&["keys"]).await?;
        let config = self.chaos_dir().join("config");
        std::fs::create_dir_all(&config)?;
        for entry in std::fs::read_dir(self.dir.join("config"))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), config.join(entry.file_name()))?;
            }
        }
        let rewrite = |file: &std::path::Path, from: &str, to: &str| -> anyhow::Result<()> {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            if !text.contains(from) {
                bail!("{} has no {from:?} to point at the proxy", file.display());
            }
            std::fs::write(file, text.replace(from, to))?;
            Ok(())
        };
        rewrite(
            &config.join("s3.toml"),
            "http://s3:9000",
            "http://s3proxy:9000",
        )?;
        rewrite(
            &config.join("collector.toml"),
            "policy = \"/etc/cairn/keys/policy\"",
            "policy = \"/etc/cairn/config/policy\"",
        )?;
        std::fs::copy(self.dir.join("state/keys/policy"), config.join("policy"))?;
        for n in 1..=3 {
            rewrite(
                &config.join("policy"),
                &format!("http://witness{n}:6965"),
                &format!("http://witness{n}proxy:6965"),
            )?;
        }
        self.make_disks().await?;
        let clocks = self.chaos_dir().join("clocks");
        std::fs::create_dir_all(&clocks)?;
        for name in [
            "node1", "node2", "node3", "witness1", "witness2", "witness3",
        ] {
            self.set_clock(name, 0)?;
        }
        Ok(())
    }

    /// Sets `container`'s wall clock `offset` seconds from the host's
    /// (libfaketime rereads the file within a second).
    pub fn set_clock(&self, service: &str, offset: i64) -> anyhow::Result<()> {
        let clocks = self.chaos_dir().join("clocks");
        let tmp = clocks.join(format!(".{service}"));
        std::fs::write(&tmp, format!("{offset:+}\n"))?;
        std::fs::rename(&tmp, clocks.join(service))?;
        Ok(())
    }

    /// The control of the fault proxy in front of the object store
    /// (`witness` 0) or of witness `witness` (1..=3).
    pub fn proxy(&self, witness: usize) -> crate::proxy::Control {
        crate::proxy::Control::new(format!("http://127.0.0.1:{}", self.ports.controls[witness]))
    }

    async fn run(&self, mut c: Command, what: &str) -> anyhow::Result<String> {
        let out = tokio::time::timeout(CALL_LIMIT, c.output())
            .await
            .with_context(|| format!("{what}: no answer within {CALL_LIMIT:?}"))?
            .with_context(|| format!("{what}: cannot run"))?;
        if !out.status.success() {
            bail!(
                "{what}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `cluster ARGS`.
    pub async fn cluster(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut c = self.command(&self.dir.join("cluster").display().to_string());
        c.args(args);
        self.run(c, &format!("cluster {}", args.join(" "))).await
    }

    /// `docker ARGS`.
    pub async fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut c = self.command("docker");
        c.args(args);
        self.run(c, &format!("docker {}", args.join(" "))).await
    }

    /// The container id of compose service `service`.
    pub async fn container(&self, service: &str) -> anyhow::Result<String> {
        let mut c = self.command("docker-compose");
        c.arg("-f")
            .arg(self.dir.join("docker-compose.yml"))
            .arg("-f")
            .arg(&self.extra)
            .args(["ps", "-q", service]);
        let id = self.run(c, &format!("docker-compose ps {service}")).await?;
        let id = id.trim().to_owned();
        if id.is_empty() {
            bail!("no container for {service}");
        }
        Ok(id)
    }

    /// `docker inspect --format FORMAT container`, trimmed.
    async fn inspect(&self, container: &str, format: &str) -> anyhow::Result<String> {
        let out = self
            .docker(&["inspect", "--format", format, container])
            .await?;
        Ok(out.trim().to_owned())
    }

    /// Returns once `container` logs a line containing `needle` (lines
    /// logged from now on); fails after `limit`.
    pub async fn await_log(
        &self,
        container: &str,
        needle: &str,
        limit: Duration,
    ) -> anyhow::Result<()> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut c = self.command("docker");
        c.args(["logs", "--follow", "--tail", "0", container])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().context("docker logs")?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut err = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let found = tokio::time::timeout(limit, async {
            loop {
                let line = tokio::select! {
                    l = out.next_line() => l?,
                    l = err.next_line() => l?,
                };
                match line {
                    Some(l) if l.contains(needle) => return Ok::<_, anyhow::Error>(()),
                    Some(_) => {}
                    None => bail!("{container}'s log ended"),
                }
            }
        })
        .await;
        let _ = child.kill().await;
        found.with_context(|| format!("{container} logged no {needle:?} within {limit:?}"))?
    }

    /// Whether `container` is running.
    pub async fn running(&self, container: &str) -> anyhow::Result<bool> {
        Ok(self.inspect(container, "{{.State.Running}}").await? == "true")
    }

    /// Everything `container` logged (stdout and stderr).
    pub async fn docker_logs(&self, container: &str) -> anyhow::Result<String> {
        let mut c = self.command("docker");
        c.args(["logs", container]);
        let out = tokio::time::timeout(CALL_LIMIT, c.output())
            .await
            .context("docker logs: no answer")?
            .context("docker logs")?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// The container's address on the compose network.
    pub async fn address(&self, container: &str) -> anyhow::Result<String> {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network()
        );
        let ip = self.inspect(container, &format).await?;
        if ip.is_empty() {
            bail!("container {container} has no address on {}", self.network());
        }
        Ok(ip)
    }

    /// `iptables ARGS` in the container's network namespace, entered from
    /// the host (the image has no iptables and its processes no
    /// capabilities). Needs root on the Docker host.
    pub async fn iptables(&self, container: &str, args: &[&str]) -> anyhow::Result<()> {
        let pid = self.inspect(container, "{{.State.Pid}}").await?;
        if pid == "0" || pid.is_empty() {
            bail!("container {container} is not running");
        }
        let mut c = self.command("nsenter");
        c.arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["iptables", "-w", "5"])
            .args(args);
        self.run(c, &format!("iptables {} in {container}", args.join(" ")))
            .await?;
        Ok(())
    }

    /// Node `node`'s data dir on the host: the mount point of its disk.
    pub fn node_data(&self, node: u64) -> PathBuf {
        self.chaos_dir().join("disks").join(format!("node{node}"))
    }

    /// The image file behind node `node`'s disk.
    pub fn node_disk_image(&self, node: u64) -> PathBuf {
        self.chaos_dir()
            .join("disks")
            .join(format!("node{node}.img"))
    }

    /// Makes and mounts each sequencer's disk: a sparse ext4 image of
    /// [`DISK_BYTES`] on a loop device, its root owned by the image's user.
    async fn make_disks(&self) -> anyhow::Result<()> {
        for node in 1..=3 {
            let (image, mount) = (self.node_disk_image(node), self.node_data(node));
            std::fs::create_dir_all(&mount)?;
            std::fs::File::create(&image)?.set_len(DISK_BYTES)?;
            let mut mkfs = self.command("mkfs.ext4");
            mkfs.args(["-q", "-F", "-E", "root_owner=10001:10001"])
                .arg(&image);
            self.run(mkfs, "mkfs.ext4").await?;
            self.mount_disk(node).await?;
        }
        Ok(())
    }

    /// Mounts node `node`'s disk image on its data dir.
    pub async fn mount_disk(&self, node: u64) -> anyhow::Result<()> {
        let mut mount = self.command("mount");
        mount
            .args(["-o", "loop"])
            .arg(self.node_disk_image(node))
            .arg(self.node_data(node));
        self.run(mount, &format!("mounting node {node}'s disk"))
            .await?;
        Ok(())
    }

    /// Runs `program ARGS` on the host (disk tools).
    pub async fn host(&self, program: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<String> {
        let mut c = self.command(program);
        c.args(args);
        self.run(c, program).await
    }

    /// Runs node `node` in a stand-in container `name`, on the node's data
    /// volume and network alias but with another shard's log key (made
    /// once, as `state/keys/other-shard.key`). Returns the stand-in's exit
    /// code and output if it exits within a minute, `None` if it still runs
    /// (it is left for the caller to remove).
    pub async fn run_with_other_key(
        &self,
        node: u64,
        name: &str,
    ) -> anyhow::Result<Option<(i32, String)>> {
        let dir = std::fs::canonicalize(&self.dir)
            .with_context(|| format!("resolving {}", self.dir.display()))?;
        let keys = dir.join("state/keys");
        if !keys.join("other-shard.key").exists() {
            self.cluster(&["cairn", "key", "generate", "-o", "/keys/other-shard.key"])
                .await?;
        }
        let config =
            std::env::temp_dir().join(format!("cairn-chaos-{}-config", std::process::id()));
        std::fs::create_dir_all(&config)?;
        let file = format!("node{node}.toml");
        let original = std::fs::read_to_string(dir.join("config").join(&file))?;
        let other = original.replace("/etc/cairn/keys/log.key", "/etc/cairn/keys/other-shard.key");
        if other == original {
            bail!("config/{file} names no /etc/cairn/keys/log.key to replace");
        }
        std::fs::write(config.join(&file), other)?;
        std::fs::copy(dir.join("config/s3.toml"), config.join("s3.toml"))?;
        self.docker(&["rm", "-f", name]).await.ok();
        let image = std::env::var("CAIRN_IMAGE").unwrap_or_else(|_| "cairn:latest".to_owned());
        let volume = format!("{}:/var/lib/cairn", self.node_data(node).display());
        let config_mount = format!("{}:/etc/cairn/config:ro", config.display());
        let keys_mount = format!("{}:/etc/cairn/keys:ro", keys.display());
        let alias = format!("node{node}");
        let path = format!("/etc/cairn/config/{file}");
        let network = self.network();
        self.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            &network,
            "--network-alias",
            &alias,
            "-v",
            &volume,
            "-v",
            &config_mount,
            "-v",
            &keys_mount,
            "-e",
            "AWS_ACCESS_KEY_ID=compose",
            "-e",
            "AWS_SECRET_ACCESS_KEY=compose",
            &image,
            "sequencer",
            "--config",
            &path,
        ])
        .await?;
        let exited =
            tokio::time::timeout(Duration::from_secs(60), self.docker(&["wait", name])).await;
        let _ = std::fs::remove_dir_all(&config);
        match exited {
            Err(_) => Ok(None),
            Ok(code) => {
                let code: i32 = code?.trim().parse().context("docker wait's exit code")?;
                Ok(Some((code, self.docker_logs(name).await?)))
            }
        }
    }

    /// The compose network's name.
    pub fn network(&self) -> String {
        format!("{}_cairn", self.project)
    }

    /// The node id of the shard's leader, as `cairn cluster status` says;
    /// `None` while there is none. Nodes that do not answer are skipped.
    pub async fn leader(&self) -> Option<u64> {
        let mut c = self.command(&self.dir.join("cluster").display().to_string());
        c.arg("status");
        let out = tokio::time::timeout(Duration::from_secs(30), c.output())
            .await
            .ok()?
            .ok()?;
        // The table is printed even when some node is unreachable.
        parse_leader(&String::from_utf8_lossy(&out.stdout))
    }

    /// The base URLs of the frontends' log, as clients use them.
    pub fn frontend_urls(&self) -> Vec<String> {
        self.ports
            .frontends
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/dev"))
            .collect()
    }

    /// The URL the shard's objects (`checkpoint`, `tile/…`) are under in
    /// the bucket, read directly as a CDN would.
    pub fn store_url(&self) -> String {
        format!("http://127.0.0.1:{}/cairn-tiles/dev", self.ports.store)
    }

    /// The log's policy, as `cluster up` wrote it.
    pub fn policy(&self) -> anyhow::Result<cairn_sigsum::policy::Policy> {
        let path = self.dir.join("state/keys/policy");
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        cairn_sigsum::policy::Policy::parse(&text)
            .with_context(|| format!("parsing {}", path.display()))
    }

    /// The log's public key, from the keys `cluster up` made.
    pub fn log_key(&self) -> anyhow::Result<PublicKey> {
        let path = self.dir.join("state/keys/log.key.pub");
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let keys = cairn_sigsum::key::parse_public_key_file(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        keys.into_iter()
            .next()
            .map(|(k, _)| k)
            .with_context(|| format!("no key in {}", path.display()))
    }
}

/// Where Debian's libfaketime package puts its multithreaded library, for
/// this machine's architecture (`CAIRN_CHAOS_FAKETIME` overrides it).
fn faketime_library() -> String {
    if let Ok(path) = std::env::var("CAIRN_CHAOS_FAKETIME") {
        return path;
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => other,
    };
    format!("/usr/lib/{arch}/faketime/libfaketimeMT.so.1")
}

/// The `id` column of the row whose role is `leader` in `cairn cluster
/// status` output.
fn parse_leader(table: &str) -> Option<u64> {
    table.lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            [_, id, "leader", ..] => id.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_read_from_the_status_table() {
        let table = "node                           id role       term leader\n\
                     http://node1:6970               1 follower      2      3\n\
                     http://node2:6970               unreachable: gone\n\
                     http://node3:6970               3 leader        2      3  node 1 lag 0\n";
        assert_eq!(parse_leader(table), Some(3));
        assert_eq!(
            parse_leader("node id role\nhttp://x 1 candidate 2 -\n"),
            None
        );
    }
}
