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
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            frontends: [17965, 17966],
            store: 17900,
        }
    }
}

/// The compose cluster.
#[derive(Clone, Debug)]
pub struct Compose {
    /// `deploy/compose`.
    pub dir: PathBuf,
    /// The compose project (container and network names derive from it).
    pub project: String,
    pub ports: Ports,
}

/// Longest any one docker or script call may take.
const CALL_LIMIT: Duration = Duration::from_secs(180);

impl Compose {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("COMPOSE_PROJECT_NAME", &self.project)
            .env("CAIRN_FRONTEND1_PORT", self.ports.frontends[0].to_string())
            .env("CAIRN_FRONTEND2_PORT", self.ports.frontends[1].to_string())
            .env("CAIRN_S3_PORT", self.ports.store.to_string())
            .kill_on_drop(true);
        c
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
            .args(["ps", "-q", service]);
        let id = self.run(c, &format!("docker-compose ps {service}")).await?;
        let id = id.trim().to_owned();
        if id.is_empty() {
            bail!("no container for {service}");
        }
        Ok(id)
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

    /// The URL of the shard's `checkpoint` object in the bucket.
    pub fn checkpoint_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/cairn-tiles/dev/checkpoint",
            self.ports.store
        )
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
