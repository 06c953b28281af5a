//! The faults, one row of the matrix each: what is done to the cluster,
//! and how it is undone. Containers are stopped, frozen and cut off with
//! `docker`, as the faults they stand for would do to a machine.

use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;

use crate::history::Recorder;
use crate::target::Compose;
use crate::workload::{Endpoints, Workload};

/// One fault of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Row {
    /// SIGKILL the leader's container; start it again when healing.
    LeaderKill,
    /// Freeze the leader (cgroup freezer, like SIGSTOP) past the election
    /// timeout; thaw it when healing.
    LeaderPause,
    /// Cut the leader off the network (a partition of one); reconnect.
    LeaderIsolate,
    /// SIGKILL a follower; start it again.
    FollowerKill,
    /// SIGKILL a frontend; start it again. Clients move to the other.
    FrontendKill,
    /// Stop one witness of three (the quorum of 2 still holds).
    WitnessDown,
    /// Stop two witnesses of three: no quorum, so no publication, while
    /// leaves are still committed; everything is published once they are
    /// back.
    QuorumLost,
    /// Freeze the object store: writes stall; nothing acknowledged is lost.
    StoreDown,
    /// 16 times the usual submitters for the fault's duration.
    Burst,
    /// An operator error: `cairn cluster init` on the live shard, which
    /// must be refused and change nothing.
    InitAgain,
}

/// What undoes a fault.
#[derive(Debug)]
pub enum Heal {
    Start(Vec<String>),
    Unpause(String),
    Reconnect { container: String, alias: String },
    StopBurst(Workload),
    Nothing,
}

impl Row {
    /// Every row, in matrix order.
    pub fn all() -> &'static [Row] {
        &[
            Row::LeaderKill,
            Row::LeaderPause,
            Row::LeaderIsolate,
            Row::FollowerKill,
            Row::FrontendKill,
            Row::WitnessDown,
            Row::QuorumLost,
            Row::StoreDown,
            Row::Burst,
            Row::InitAgain,
        ]
    }

    /// The row's name in tables and on the command line.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// Injects the fault, recording it; returns what heals it.
    pub async fn inject(
        self,
        cluster: &Compose,
        endpoints: &Endpoints,
        submitters: usize,
        recorder: &Recorder,
    ) -> anyhow::Result<(Heal, usize)> {
        let leader = || async {
            // A leader may be moments away after an earlier row.
            for _ in 0..50 {
                if let Some(id) = cluster.leader().await {
                    return Ok(id);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::bail!("no leader to inject the fault into")
        };
        let (heal, what) = match self {
            Row::LeaderKill | Row::FollowerKill => {
                let leader = leader().await?;
                let node = if self == Row::LeaderKill {
                    leader
                } else {
                    leader % 3 + 1
                };
                let c = cluster.container(&format!("node{node}")).await?;
                cluster.docker(&["kill", &c]).await?;
                (Heal::Start(vec![c]), format!("SIGKILL node {node}"))
            }
            Row::LeaderPause => {
                let node = leader().await?;
                let c = cluster.container(&format!("node{node}")).await?;
                cluster.docker(&["pause", &c]).await?;
                (Heal::Unpause(c), format!("froze node {node}"))
            }
            Row::LeaderIsolate => {
                let node = leader().await?;
                let c = cluster.container(&format!("node{node}")).await?;
                cluster
                    .docker(&["network", "disconnect", &cluster.network(), &c])
                    .await?;
                (
                    Heal::Reconnect {
                        container: c,
                        alias: format!("node{node}"),
                    },
                    format!("cut node {node} off the network"),
                )
            }
            Row::FrontendKill => {
                let c = cluster.container("frontend1").await?;
                cluster.docker(&["kill", &c]).await?;
                (Heal::Start(vec![c]), "SIGKILL frontend 1".to_owned())
            }
            Row::WitnessDown | Row::QuorumLost => {
                let names: &[&str] = if self == Row::WitnessDown {
                    &["witness1"]
                } else {
                    &["witness1", "witness2"]
                };
                let mut stopped = Vec::new();
                for name in names {
                    let c = cluster.container(name).await?;
                    cluster.docker(&["kill", &c]).await?;
                    stopped.push(c);
                }
                (
                    Heal::Start(stopped),
                    format!("SIGKILL {}", names.join(", ")),
                )
            }
            Row::StoreDown => {
                let c = cluster.container("s3").await?;
                cluster.docker(&["pause", &c]).await?;
                (Heal::Unpause(c), "froze the object store".to_owned())
            }
            Row::InitAgain => {
                let init = cluster
                    .cluster(&[
                        "cairn",
                        "cluster",
                        "init",
                        "--shard",
                        "dev",
                        "--node",
                        "1=http://node1:6970",
                        "--node",
                        "2=http://node2:6970",
                        "--node",
                        "3=http://node3:6970",
                    ])
                    .await;
                if init.is_ok() {
                    recorder.bad("`cairn cluster init` on the live shard succeeded".into());
                }
                (
                    Heal::Nothing,
                    "cairn cluster init on the live shard".to_owned(),
                )
            }
            Row::Burst => {
                let n = submitters * 16;
                (
                    Heal::StopBurst(Workload::submitters(endpoints, n, recorder)),
                    format!("{n} more submitters"),
                )
            }
        };
        let fault = recorder.fault(&self.name(), what);
        Ok((heal, fault))
    }
}

impl Heal {
    /// Undoes the fault.
    pub async fn heal(self, cluster: &Compose) -> anyhow::Result<()> {
        match self {
            Heal::Start(containers) => {
                for c in containers {
                    cluster.docker(&["start", &c]).await?;
                }
            }
            Heal::Unpause(c) => {
                cluster.docker(&["unpause", &c]).await?;
            }
            Heal::Reconnect { container, alias } => {
                cluster
                    .docker(&[
                        "network",
                        "connect",
                        "--alias",
                        &alias,
                        &cluster.network(),
                        &container,
                    ])
                    .await
                    .context("reconnecting the isolated node")?;
            }
            Heal::StopBurst(workload) => workload.stop().await,
            Heal::Nothing => {}
        }
        Ok(())
    }
}
