//! The faults, one row of the matrix each: what is done to the cluster,
//! and how it is undone. Containers are stopped, frozen and cut off with
//! `docker`, and links between them with `iptables` in their network
//! namespaces, as the faults they stand for would do to a machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;

use crate::history::Recorder;
use crate::proxy::Fault;
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
    /// The leader cut off from the other sequencers, both ways, while
    /// frontends, the collector and the store still reach it: the 3-node
    /// split with the leader in the minority.
    LeaderSplit,
    /// A follower cut off from the other sequencers: the split with the
    /// leader in the majority.
    FollowerSplit,
    /// One-way loss: the leader hears nothing from the other sequencers,
    /// while they still hear it.
    OneWay,
    /// A flapping link: the leader's links to the other sequencers cut and
    /// restored every second.
    Flapping,
    /// Every sequencer SIGKILLed at once (a whole-cluster crash); all are
    /// started again.
    ClusterKill,
    /// The leader's data dir restored from a backup taken `--hold`/2 s
    /// earlier, while the log went on: stop, restore, start.
    StaleRestore,
    /// An operator error: a follower restarted with another shard's log
    /// key. It must refuse to start; the original is started again.
    WrongKey,
    /// Half of the object store's answers are 503s (through the proxy).
    StoreErrors,
    /// Every object store request waits 2 s.
    StoreSlow,
    /// Half of the object store's answers are lost after the store acted:
    /// writes happen, their answers never arrive.
    StoreLost,
    /// Two witnesses of three answer 3 s late: the quorum needs one.
    WitnessSlow,
    /// One witness's cosignatures are corrupted: they must be dropped,
    /// never served.
    WitnessGarbage,
    /// One witness answers that it has cosigned a tree 10^6 leaves larger
    /// than the log's (409 with that size), as if the log lost leaves: the
    /// log must stop publishing (fail closed), and resume once the operator
    /// restarts it.
    WitnessAhead,
    /// The leader's and one witness's wall clocks jump an hour ahead, and
    /// back when healing.
    ClockJump,
    /// Membership change under a fault: a follower SIGKILLed, removed from
    /// the group while down, its data wiped and the node started empty;
    /// added back (caught up by snapshot) when healing.
    Membership,
    /// The leader's disk full: a file allocated over all its free space,
    /// then (`--hold`/2 s later) the node crashed and started on the full
    /// disk. Healed by deleting the file and restarting the node, as an
    /// operator would.
    DiskFull,
    /// Every write to the leader's disk fails (EIO: the image behind the
    /// loop device made immutable). Healed as a failed disk is: the node
    /// stopped, the filesystem checked and repaired, the node started.
    IoErrors,
    /// Power loss on the leader: its disk stops taking writes at one
    /// instant (what reached the device stays, what was still in the
    /// page cache is lost) and the node dies. It comes back as a machine
    /// does: the filesystem mounted again (journal replayed), the node
    /// started, after `--hold` s.
    PowerLoss,
    /// SIGKILL the leader just after it committed a batch of leaves, with
    /// the next batches in flight.
    KillMidBatch,
    /// SIGKILL the leader between writing tiles and committing their
    /// integration.
    KillMidIntegration,
    /// SIGKILL the leader just after it signed a new tree head, before
    /// witnesses cosign it.
    KillMidSigning,
    /// SIGKILL the leader after it committed a cosigned head and before the
    /// checkpoint object is written.
    KillMidPublication,
}

/// What undoes a fault.
#[derive(Debug)]
pub enum Heal {
    Start(Vec<String>),
    Unpause(String),
    Reconnect {
        container: String,
        alias: String,
    },
    StopBurst(Workload),
    /// Flush the iptables rules of these containers.
    Mend(Vec<String>),
    /// Stop the flapping task (it mends the link as it ends).
    StopFlapping {
        stop: Arc<AtomicBool>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
    /// Remove the stand-in container, start the original.
    Replace {
        stand_in: String,
        original: String,
    },
    /// Delete the filler file, restart the node.
    FreeDisk {
        node: u64,
        container: String,
    },
    /// Stop the node, make the image writable, repair and remount the
    /// filesystem, start the node.
    RepairDisk {
        node: u64,
        container: String,
    },
    /// Add node `id` back to the group.
    AddNode(u64),
    /// After a witness claimed to be ahead, the log halted publication
    /// (fail closed): witness 1's proxy passes again, and the operator
    /// restarts the halted leader and the collector (runbook,
    /// CairnCollectorHalted).
    WitnessBack,
    /// What an operator does with a node whose data went back: kill it,
    /// remove it from the group, wipe it, start it, add it back.
    Rejoin(u64),
    /// Let these fault proxies (0: the store's, 1..=3: the witnesses')
    /// pass everything again.
    Proxies(Vec<usize>),
    /// Set these services' clocks back to the host's.
    Clocks(Vec<String>),
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
            Row::LeaderSplit,
            Row::FollowerSplit,
            Row::OneWay,
            Row::Flapping,
            Row::ClusterKill,
            Row::StaleRestore,
            Row::WrongKey,
            Row::StoreErrors,
            Row::StoreSlow,
            Row::StoreLost,
            Row::WitnessSlow,
            Row::WitnessGarbage,
            Row::WitnessAhead,
            Row::ClockJump,
            Row::Membership,
            Row::DiskFull,
            Row::IoErrors,
            Row::PowerLoss,
            Row::KillMidBatch,
            Row::KillMidIntegration,
            Row::KillMidSigning,
            Row::KillMidPublication,
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
        hold: Duration,
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
            Row::LeaderSplit | Row::FollowerSplit | Row::OneWay => {
                let leader = leader().await?;
                let node = if self == Row::FollowerSplit {
                    leader % 3 + 1
                } else {
                    leader
                };
                let (c, peers) = node_and_peers(cluster, node).await?;
                cut(cluster, &c, &peers, self == Row::OneWay).await?;
                let what = match self {
                    Row::OneWay => format!("node {node} hears no other sequencer"),
                    _ => format!("node {node} cut off from the other sequencers"),
                };
                (Heal::Mend(vec![c]), what)
            }
            Row::Flapping => {
                let node = leader().await?;
                let (c, peers) = node_and_peers(cluster, node).await?;
                let stop = Arc::new(AtomicBool::new(false));
                let task = tokio::spawn(flap(cluster.clone(), c, peers, stop.clone()));
                (
                    Heal::StopFlapping { stop, task },
                    format!("node {node}'s links to the other sequencers flapping every 1 s"),
                )
            }
            Row::ClusterKill => {
                let mut all = Vec::new();
                for n in 1..=3 {
                    all.push(cluster.container(&format!("node{n}")).await?);
                }
                let mut args = vec!["kill"];
                args.extend(all.iter().map(String::as_str));
                cluster.docker(&args).await?;
                (Heal::Start(all), "SIGKILL every sequencer".to_owned())
            }
            Row::StaleRestore => {
                let node = leader().await?;
                let c = cluster.container(&format!("node{node}")).await?;
                let data = cluster.node_data(node);
                let backup = std::env::temp_dir()
                    .join(format!("cairn-chaos-{}-node{node}", std::process::id()));
                // Frozen while copied, so the backup is one moment's state,
                // as a filesystem snapshot would be.
                cluster.docker(&["pause", &c]).await?;
                let copied = copy_dir(&data, &backup).await;
                cluster.docker(&["unpause", &c]).await?;
                copied.context("backing up the leader's data dir")?;
                tokio::time::sleep(hold / 2).await;
                cluster.docker(&["kill", &c]).await?;
                let restored = restore_dir(&backup, &data).await;
                let _ = tokio::fs::remove_dir_all(&backup).await;
                restored.context("restoring the backup")?;
                cluster.docker(&["start", &c]).await?;
                (
                    Heal::Rejoin(node),
                    format!(
                        "node {node} restarted from a backup {:.0} s old",
                        (hold / 2).as_secs_f64()
                    ),
                )
            }
            Row::WrongKey => {
                let node = leader().await? % 3 + 1;
                let original = cluster.container(&format!("node{node}")).await?;
                let stand_in = format!("{}-wrong-key", cluster.project);
                cluster.docker(&["kill", &original]).await?;
                let ran = cluster.run_with_other_key(node, &stand_in).await;
                // It must fail, and say why: the key is not the log's.
                match ran {
                    Ok(Some((code, out))) if code != 0 && out.contains("key") => {}
                    Ok(Some((code, out))) => recorder.bad(format!(
                        "node {node} with another shard's key exited with {code} without naming the key: {}",
                        out.lines().last().unwrap_or_default()
                    )),
                    Ok(None) => recorder.bad(format!(
                        "node {node} started with another shard's key and kept running"
                    )),
                    Err(e) => {
                        cluster.docker(&["start", &original]).await.ok();
                        return Err(e);
                    }
                }
                (
                    Heal::Replace { stand_in, original },
                    format!("node {node} restarted with another shard's key"),
                )
            }
            Row::StoreErrors | Row::StoreSlow | Row::StoreLost => {
                let (fault, what) = match self {
                    Row::StoreErrors => (
                        Fault {
                            error_rate: 0.5,
                            ..Fault::default()
                        },
                        "half the object store's answers are 503",
                    ),
                    Row::StoreSlow => (
                        Fault {
                            delay_ms: 2000,
                            ..Fault::default()
                        },
                        "the object store answers 2 s late",
                    ),
                    _ => (
                        Fault {
                            lose_rate: 0.5,
                            ..Fault::default()
                        },
                        "half the object store's answers lost after it acted",
                    ),
                };
                cluster.proxy(0).set(&fault).await?;
                (Heal::Proxies(vec![0]), what.to_owned())
            }
            Row::WitnessSlow => {
                let slow = Fault {
                    delay_ms: 3000,
                    ..Fault::default()
                };
                for w in [1, 2] {
                    cluster.proxy(w).set(&slow).await?;
                }
                (
                    Heal::Proxies(vec![1, 2]),
                    "witnesses 1 and 2 answer 3 s late".to_owned(),
                )
            }
            Row::WitnessGarbage => {
                let garbage = Fault {
                    garbage: true,
                    ..Fault::default()
                };
                cluster.proxy(1).set(&garbage).await?;
                (
                    Heal::Proxies(vec![1]),
                    "witness 1's cosignatures corrupted".to_owned(),
                )
            }
            Row::WitnessAhead => {
                let size = endpoints
                    .frontends
                    .first()
                    .context("no frontend")?
                    .get_tree_head()
                    .await
                    .map_or(0, |h| h.tree_head().size);
                let ahead = Fault {
                    ahead: Some(size + 1_000_000),
                    ..Fault::default()
                };
                cluster.proxy(1).set(&ahead).await?;
                (
                    Heal::WitnessBack,
                    format!("witness 1 claims size {}", size + 1_000_000),
                )
            }
            Row::KillMidBatch
            | Row::KillMidIntegration
            | Row::KillMidSigning
            | Row::KillMidPublication => {
                // The debug lines the sequencer logs at each step.
                let (step, line) = match self {
                    Row::KillMidBatch => ("a batch committed", "append batch proposed"),
                    Row::KillMidIntegration => ("tiles written", "tiles written"),
                    Row::KillMidSigning => ("a new head signed", "signed a larger tree head"),
                    _ => ("a cosigned head committed", "cosigned head committed"),
                };
                let node = leader().await?;
                let c = cluster.container(&format!("node{node}")).await?;
                cluster.await_log(&c, line, Duration::from_secs(30)).await?;
                cluster.docker(&["kill", &c]).await?;
                (
                    Heal::Start(vec![c]),
                    format!("SIGKILL node {node} on {step}"),
                )
            }
            Row::Membership => {
                let node = leader().await? % 3 + 1;
                let c = cluster.container(&format!("node{node}")).await?;
                cluster.docker(&["kill", &c]).await?;
                remove_node(cluster, node).await?;
                empty_dir(&cluster.node_data(node))
                    .await
                    .context("wiping the removed node")?;
                cluster.docker(&["start", &c]).await?;
                (
                    Heal::AddNode(node),
                    format!("node {node} killed, removed from the group, wiped and started empty"),
                )
            }
            Row::DiskFull => {
                let node = leader().await?;
                let container = cluster.container(&format!("node{node}")).await?;
                let data = cluster.node_data(node);
                let avail = cluster
                    .host(
                        "df",
                        &["-B1".as_ref(), "--output=avail".as_ref(), data.as_os_str()],
                    )
                    .await?;
                let avail: u64 = avail
                    .lines()
                    .nth(1)
                    .and_then(|l| l.trim().parse().ok())
                    .context("df printed no free space")?;
                let filler = data.join("chaos-filler");
                cluster
                    .host(
                        "fallocate",
                        &[
                            "-l".as_ref(),
                            avail.to_string().as_ref(),
                            filler.as_os_str(),
                        ],
                    )
                    .await?;
                // RocksDB's preallocated WAL may outlast the hold; a crash
                // with the disk full meets ENOSPC at once: the node must
                // fail to start, saying why, not run on a partial write.
                tokio::time::sleep(hold / 2).await;
                cluster.docker(&["kill", &container]).await?;
                cluster.docker(&["start", &container]).await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                let running = cluster.running(&container).await?;
                let logs = cluster.docker_logs(&container).await?;
                if running || !logs.contains("No space left on device") {
                    eprintln!(
                        "cairn-chaos: disk-full: NOTE: node {node} restarted on a full disk without failing on it"
                    );
                }
                (
                    Heal::FreeDisk { node, container },
                    format!("node {node}'s disk full ({avail} bytes taken), then the node crashed"),
                )
            }
            Row::IoErrors => {
                let node = leader().await?;
                let container = cluster.container(&format!("node{node}")).await?;
                immutable(cluster, node, true).await?;
                (
                    Heal::RepairDisk { node, container },
                    format!("every write to node {node}'s disk fails"),
                )
            }
            Row::PowerLoss => {
                let node = leader().await?;
                let container = cluster.container(&format!("node{node}")).await?;
                let data = cluster.node_data(node);
                // The device dies first, so nothing written after this
                // instant reaches it, whatever the dying process does.
                immutable(cluster, node, true).await?;
                // It may already have died of the write errors.
                if cluster.running(&container).await? {
                    cluster.docker(&["kill", &container]).await.ok();
                }
                // Unmounting may fail to write back; that is the point.
                let _ = cluster.host("umount", &[data.as_os_str()]).await;
                immutable(cluster, node, false).await?;
                if cluster
                    .host("mountpoint", &["-q".as_ref(), data.as_os_str()])
                    .await
                    .is_ok()
                {
                    cluster.host("umount", &[data.as_os_str()]).await?;
                }
                cluster.mount_disk(node).await?;
                (
                    Heal::Start(vec![container]),
                    format!("power lost on node {node}: unwritten pages dropped"),
                )
            }
            Row::ClockJump => {
                let node = leader().await?;
                let jumped = vec![format!("node{node}"), "witness1".to_owned()];
                for service in &jumped {
                    cluster.set_clock(service, 3600)?;
                }
                (
                    Heal::Clocks(jumped),
                    format!("node {node}'s and witness 1's clocks 1 h ahead"),
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
            Heal::Mend(containers) => {
                for c in containers {
                    mend(cluster, &c).await?;
                }
            }
            Heal::StopFlapping { stop, task } => {
                stop.store(true, Ordering::Relaxed);
                task.await.context("the flapping task")??;
            }
            Heal::Replace { stand_in, original } => {
                cluster.docker(&["rm", "-f", &stand_in]).await.ok();
                cluster.docker(&["start", &original]).await?;
            }
            Heal::FreeDisk { node, container } => {
                tokio::fs::remove_file(cluster.node_data(node).join("chaos-filler")).await?;
                cluster.docker(&["restart", "-t", "20", &container]).await?;
            }
            Heal::RepairDisk { node, container } => {
                cluster.docker(&["kill", &container]).await.ok();
                let image = cluster.node_disk_image(node);
                let data = cluster.node_data(node);
                immutable(cluster, node, false).await?;
                cluster.host("umount", &[data.as_os_str()]).await?;
                // e2fsck exits 1 when it repaired something.
                let mut fsck = tokio::process::Command::new("e2fsck");
                let status = fsck
                    .args(["-f", "-y"])
                    .arg(&image)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await?;
                anyhow::ensure!(
                    matches!(status.code(), Some(0 | 1)),
                    "e2fsck of node {node}'s disk: {status}"
                );
                cluster.mount_disk(node).await?;
                cluster.docker(&["start", &container]).await?;
            }
            Heal::AddNode(node) => add_node(cluster, node).await?,
            Heal::WitnessBack => {
                cluster.proxy(1).set(&Fault::default()).await?;
                if let Some(node) = cluster.leader().await {
                    let c = cluster.container(&format!("node{node}")).await?;
                    cluster.docker(&["restart", "-t", "20", &c]).await?;
                }
                let c = cluster.container("collector").await?;
                cluster.docker(&["restart", "-t", "20", &c]).await?;
            }
            Heal::Rejoin(node) => {
                let c = cluster.container(&format!("node{node}")).await?;
                cluster.docker(&["kill", &c]).await?;
                remove_node(cluster, node).await?;
                empty_dir(&cluster.node_data(node)).await?;
                cluster.docker(&["start", &c]).await?;
                add_node(cluster, node).await?;
            }
            Heal::Proxies(proxies) => {
                for p in proxies {
                    cluster.proxy(p).set(&Fault::default()).await?;
                }
            }
            Heal::Clocks(services) => {
                for service in services {
                    cluster.set_clock(&service, 0)?;
                }
            }
            Heal::Nothing => {}
        }
        Ok(())
    }
}

/// Makes node `node`'s disk image immutable (`on`: its loop device fails
/// every write from now on) or writable again.
async fn immutable(cluster: &Compose, node: u64, on: bool) -> anyhow::Result<()> {
    let image = cluster.node_disk_image(node);
    let flag = if on { "+i" } else { "-i" };
    cluster
        .host("chattr", &[flag.as_ref(), image.as_os_str()])
        .await?;
    Ok(())
}

/// The other sequencers' gRPC URLs, as `--via` arguments.
fn via_others(node: u64) -> Vec<String> {
    (1..=3)
        .filter(|n| *n != node)
        .flat_map(|n| ["--via".to_owned(), format!("http://node{n}:6970")])
        .collect()
}

/// `cairn cluster remove-node` of `node`, through the others.
async fn remove_node(cluster: &Compose, node: u64) -> anyhow::Result<()> {
    let id = node.to_string();
    let via = via_others(node);
    let mut args = vec![
        "cairn",
        "cluster",
        "remove-node",
        "--shard",
        "dev",
        "--id",
        &id,
    ];
    args.extend(via.iter().map(String::as_str));
    cluster.cluster(&args).await?;
    Ok(())
}

/// `cairn cluster add-node` of `node` (empty, started), through the
/// others; returns once it caught up and votes.
async fn add_node(cluster: &Compose, node: u64) -> anyhow::Result<()> {
    let member = format!("{node}=http://node{node}:6970");
    let via = via_others(node);
    let mut args = vec![
        "cairn",
        "cluster",
        "add-node",
        "--shard",
        "dev",
        "--node",
        &member,
        "--timeout",
        "120",
    ];
    args.extend(via.iter().map(String::as_str));
    cluster
        .cluster(&args)
        .await
        .with_context(|| format!("adding node {node} back"))?;
    Ok(())
}

/// Node `node`'s container and the addresses of the other sequencers.
async fn node_and_peers(cluster: &Compose, node: u64) -> anyhow::Result<(String, Vec<String>)> {
    let c = cluster.container(&format!("node{node}")).await?;
    let mut peers = Vec::new();
    for other in (1..=3).filter(|n| *n != node) {
        let pc = cluster.container(&format!("node{other}")).await?;
        peers.push(cluster.address(&pc).await?);
    }
    Ok((c, peers))
}

/// Drops what `container` receives from `peers` and, unless `one_way`,
/// what it sends them. Established connections are cut too.
async fn cut(
    cluster: &Compose,
    container: &str,
    peers: &[String],
    one_way: bool,
) -> anyhow::Result<()> {
    for ip in peers {
        cluster
            .iptables(container, &["-A", "INPUT", "-s", ip, "-j", "DROP"])
            .await?;
        if !one_way {
            cluster
                .iptables(container, &["-A", "OUTPUT", "-d", ip, "-j", "DROP"])
                .await?;
        }
    }
    Ok(())
}

/// Removes every rule [`cut`] added.
async fn mend(cluster: &Compose, container: &str) -> anyhow::Result<()> {
    cluster.iptables(container, &["-F", "INPUT"]).await?;
    cluster.iptables(container, &["-F", "OUTPUT"]).await
}

/// Cuts and mends the links every second until `stop`, then mends them.
async fn flap(
    cluster: Compose,
    container: String,
    peers: Vec<String>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut down = false;
    while !stop.load(Ordering::Relaxed) {
        if down {
            mend(&cluster, &container).await?;
        } else {
            cut(&cluster, &container, &peers, false).await?;
        }
        down = !down;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    mend(&cluster, &container).await
}

/// `cp -a from to` (ownership and modes kept: the node runs as its own
/// user).
async fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let _ = tokio::fs::remove_dir_all(to).await;
    let status = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .await
        .context("running cp")?;
    anyhow::ensure!(
        status.success(),
        "cp -a {} {}: {status}",
        from.display(),
        to.display()
    );
    Ok(())
}

/// Removes everything in `dir` (a volume's root stays, with its owner).
async fn empty_dir(dir: &Path) -> anyhow::Result<()> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(e) = entries.next_entry().await? {
        let path: PathBuf = e.path();
        if e.file_type().await?.is_dir() {
            tokio::fs::remove_dir_all(&path).await?;
        } else {
            tokio::fs::remove_file(&path).await?;
        }
    }
    Ok(())
}

/// Replaces `data`'s contents with `backup`'s.
async fn restore_dir(backup: &Path, data: &Path) -> anyhow::Result<()> {
    empty_dir(data).await?;
    let status = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", backup.display()))
        .arg(data)
        .status()
        .await
        .context("running cp")?;
    anyhow::ensure!(status.success(), "restoring {}: {status}", backup.display());
    Ok(())
}
