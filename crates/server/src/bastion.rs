//! `cairnd bastion --config FILE`: a C2SP https-bastion (sigsum-protocol.md
//! §8). Witnesses that accept no inbound connections dial out to it (a
//! `[bastion]` table in `cairnd witness`'s file); logs reach each of them at
//! `https://<bastion>/<hex SHA-256 of the witness key>/add-checkpoint`.
//!
//! The configuration file is [`cairn_bastion::BastionFileConfig`]; as in
//! the other roles' files, relative paths in it are relative to the file's
//! directory. The bastion keeps no state: a restarted bastion is found by
//! its witnesses again when they reconnect.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cairn_bastion::{Bastion, BastionFileConfig};
use tokio::sync::watch;

use crate::shutdown::{stopped, wait_for_signal};

/// Runs the bastion configured in `config` until Ctrl-C or SIGTERM, then
/// closes every connection (witnesses reconnect to its successor).
pub async fn run(config: PathBuf) -> anyhow::Result<()> {
    let context = || format!("bastion configuration {}", config.display());
    let mut file = BastionFileConfig::load(&config).with_context(context)?;
    let base = config.parent().unwrap_or(Path::new(""));
    file.certificate = base.join(&file.certificate);
    file.private_key = base.join(&file.private_key);
    let bastion = Bastion::new(file.bastion_config().with_context(context)?)?;
    let listener = tokio::net::TcpListener::bind(file.listen)
        .await
        .with_context(|| format!("listen {}", file.listen))?;
    print!("{}", banner(&file, listener.local_addr()?));

    let (stop_tx, stop_rx) = watch::channel(false);
    let serving = {
        let bastion = bastion.clone();
        tokio::spawn(async move { bastion.serve(listener, stopped(stop_rx)).await })
    };
    wait_for_signal().await;
    tracing::info!(
        backends = bastion.connected_backends().len(),
        "shutting down: closing every client and backend connection"
    );
    stop_tx.send_replace(true);
    serving.await.context("bastion task")?;
    Ok(())
}

/// What an operator needs at start: where it listens, who may connect, and
/// how witnesses and logs use it.
fn banner(file: &BastionFileConfig, addr: SocketAddr) -> String {
    let allowed = match &file.allowed_backends {
        None => "any Ed25519 key".to_owned(),
        Some(list) => format!("{} key hash(es) in allowed_backends", list.len()),
    };
    format!(
        "cairnd bastion: a C2SP https-bastion\n\
         \x20 listen:      {addr} (TLS, clients and witnesses alike)\n\
         \x20 certificate: {}\n\
         \x20 backends:    {allowed}\n\
         \nWitnesses connect with, in their cairnd witness file:\n\
         [bastion]\n\
         address = \"<this bastion's name>:{port}\"\n\
         \nLogs reach each witness at https://<this bastion's name>{colon_port}/<hex SHA-256 of the witness key>\n",
        file.certificate.display(),
        port = addr.port(),
        colon_port = if addr.port() == 443 {
            String::new()
        } else {
            format!(":{}", addr.port())
        },
    )
}
