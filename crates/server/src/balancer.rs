//! Automatic leader placement: the registry's leader spreads the shards'
//! leaders over the nodes.
//!
//! Every `balance_interval_s` the node leading the meta group looks at
//! every shard the registry's nodes host (their Status) and, if one node
//! leads at least two shards more than a caught-up voter of one of them
//! (the rule of `cairn cluster balance`, which converges and never flaps),
//! hands that one shard's leadership over. One transfer per interval: a
//! transfer pauses that shard's writes for about an election, so they are
//! spaced out, and a node that returns after a failover gets its share
//! back within a few intervals. Only one node acts at a time (the meta
//! leader), so two nodes never fight over a shard.

use std::sync::Arc;
use std::time::Duration;

use cairn_sequencer::registry::MetaGroup;
use tokio::sync::watch;

/// Follows `meta` until `stop`; acts only while this node leads it.
pub async fn run(meta: Arc<MetaGroup>, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if !meta.is_leader() {
            continue;
        }
        let via = meta.member_addrs();
        let (moves, addrs) = match cairn_cli::cluster::balance_plan(&via, true).await {
            Ok(plan) => plan,
            Err(e) => {
                tracing::debug!(
                    error = format!("{e:#}"),
                    "no view of the cluster to balance"
                );
                continue;
            }
        };
        let Some(m) = moves.first() else { continue };
        let Some(addr) = addrs.get(&m.from) else {
            continue;
        };
        match cairn_cli::cluster::transfer(addr, m).await {
            Ok(leader) => tracing::info!(
                shard = %m.shard,
                from = m.from,
                to = m.to,
                leader,
                "spreading leaders: handed the shard's leadership over"
            ),
            Err(e) => tracing::warn!(
                shard = %m.shard,
                from = m.from,
                to = m.to,
                error = format!("{e:#}"),
                "spreading leaders: the transfer failed; trying again next interval"
            ),
        }
    }
}
