//! Frontends and collectors following the cluster registry: they poll it
//! from the sequencer nodes (`GetRegistry`) and start or stop serving
//! (cosigning) shards as records appear and retire, without a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_proto::v1::sequencer_client::SequencerClient;
use cairn_proto::v1::{GetRegistryRequest, ShardRecord};
use serde::Deserialize;
use tokio::sync::watch;

/// `[registry]` of a frontend or collector file: follow the cluster
/// registry of the `sequencers`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowFile {
    /// Root of the cluster's local object store (each shard under its
    /// prefix). Either this or `object_store`.
    pub tiles: Option<PathBuf>,
    /// A file describing the cluster's object store (`[local]`, `[s3]`,
    /// or for reads `[http]`), each shard under its prefix. Either this or
    /// `tiles`.
    pub object_store: Option<PathBuf>,
    /// Milliseconds between polls of the registry. Default 2000: a new
    /// shard is served within about that long of its creation.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
}

fn default_poll_ms() -> u64 {
    2000
}

impl FollowFile {
    /// Checks the table (no IO).
    pub fn check(&self) -> anyhow::Result<()> {
        crate::files::check_store_choice(
            "[registry]",
            self.tiles.as_deref(),
            self.object_store.as_deref(),
        )?;
        if self.poll_interval_ms == 0 {
            bail!("[registry] poll_interval_ms must be positive");
        }
        Ok(())
    }
}

/// Limit on one `GetRegistry` call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The registry of the node among `urls` that has applied the most of it
/// (nodes that do not answer are skipped); an error if none answered.
pub async fn fetch(urls: &[String]) -> anyhow::Result<Vec<ShardRecord>> {
    let calls = urls.iter().map(|url| async move {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .with_context(|| format!("{url:?}"))?
            .connect_timeout(CALL_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .connect_lazy();
        SequencerClient::new(channel)
            .get_registry(GetRegistryRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| anyhow::anyhow!("{url}: {}: {}", s.code(), s.message()))
    });
    let mut best: Option<cairn_proto::v1::Registry> = None;
    let mut failures = Vec::new();
    for answer in futures::future::join_all(calls).await {
        match answer {
            Ok(r)
                if best
                    .as_ref()
                    .is_none_or(|b| r.applied_index > b.applied_index) =>
            {
                best = Some(r)
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    match best {
        Some(r) => Ok(r.shards),
        None => bail!(
            "no sequencer answered with the registry: {}",
            failures.join("; ")
        ),
    }
}

/// Polls the registry every `interval` until `stop`, calling `apply` with
/// every shard's record (by name) after each successful poll (`apply` is
/// idempotent, so one that failed for a shard is retried at the next).
pub async fn follow(
    urls: Vec<String>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    mut apply: impl FnMut(&BTreeMap<String, ShardRecord>) + Send,
) {
    let mut warned = false;
    loop {
        match fetch(&urls).await {
            Ok(records) => {
                warned = false;
                let records: BTreeMap<_, _> =
                    records.into_iter().map(|r| (r.name.clone(), r)).collect();
                apply(&records);
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot read the cluster registry; retrying"
                    );
                    warned = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// A record's log key.
pub fn log_key(record: &ShardRecord) -> anyhow::Result<cairn_sigsum::PublicKey> {
    let key: [u8; 32] = record
        .log_key
        .as_slice()
        .try_into()
        .with_context(|| format!("shard {:?}: log key is not 32 bytes", record.name))?;
    Ok(cairn_sigsum::PublicKey(key))
}
