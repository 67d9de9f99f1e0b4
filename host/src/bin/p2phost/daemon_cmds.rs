//! `p2phost run` and `p2phost status`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use p2phost::config::Config;

use crate::identity_cmds::default_config_path;

fn config_at(path: Option<PathBuf>) -> anyhow::Result<(PathBuf, Config)> {
    let path = match path {
        Some(path) => path,
        None => default_config_path()?,
    };
    if !path.exists() {
        bail!(
            "{} does not exist: run `p2phost init --config {}` first",
            path.display(),
            path.display()
        );
    }
    let config = Config::load(&path)?;
    Ok((path, config))
}

/// `p2phost run`: until SIGINT or SIGTERM. `server` and `stun` override the config's.
pub(crate) async fn run(
    path: Option<PathBuf>,
    server: Option<String>,
    stun: Option<String>,
) -> anyhow::Result<()> {
    let (path, mut config) = config_at(path)?;
    if let Some(url) = server {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", ""));
        if !matches!(scheme, "ws" | "wss") || rest.is_empty() {
            bail!("--server {url:?}: expected a ws:// or wss:// URL, like ws://127.0.0.1:8787");
        }
        config.signaling.url = Some(url);
    }
    if let Some(url) = stun {
        if !(url.starts_with("stun:") || url.starts_with("stuns:")) {
            bail!("--stun {url:?}: expected a stun: URL, like stun:127.0.0.1:3478");
        }
        config.signaling.stun = Some(url);
    }
    if config.peers.is_empty() {
        tracing::warn!(
            "{} lists no [[peers]]: nothing will be sent or received",
            path.display()
        );
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    p2phost::daemon::run(config, stop)
        .await
        .with_context(|| format!("the daemon of {} stopped", path.display()))
}

/// `p2phost status`: the running daemon's answer.
pub(crate) async fn status(path: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let (_, config) = config_at(path)?;
    let status = p2phost::daemon::query_status(&config.identity.dir)
        .await
        .map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    println!("id:        {}", status.id);
    println!(
        "signaling: {}",
        if status.signaling {
            "connected"
        } else {
            "not connected"
        }
    );
    println!("queued:    {} files", status.queued);
    for peer in &status.peers {
        println!(
            "peer {}: {}, {} queued{}",
            peer.name,
            if peer.online { "online" } else { "offline" },
            peer.queued,
            peer.path
                .as_ref()
                .map(|path| format!(", last connected {path}"))
                .unwrap_or_default()
        );
    }
    for folder in &status.folders {
        println!("folder {} ({}): {}", folder.id, folder.mode, folder.path);
    }
    for transfer in &status.in_flight {
        println!(
            "transfer: folder {} with {} ({} files)",
            transfer.folder, transfer.peer, transfer.files
        );
    }
    Ok(())
}
