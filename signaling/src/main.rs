//! `p2p-signal`: the signaling server with its embedded STUN responder.
//!
//! This file only reads the command line and the config file, then runs the library's server.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use p2p_signaling::config::TlsConfig;
use p2p_signaling::{ServerConfig, SignalingServer};
use tracing_subscriber::EnvFilter;

/// Signaling server for p2phost: relays sealed offers, answers and ICE candidates between the two
/// members of a room, and answers STUN Binding requests.
#[derive(Debug, Parser)]
#[command(name = "p2p-signal", version)]
struct Cli {
    /// TCP address for WebSocket clients, /healthz and /metrics [default: 127.0.0.1:8787].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// UDP address of the STUN responder [default: the --listen host, port 3478].
    #[arg(long, value_name = "ADDR", conflicts_with = "no_stun")]
    stun: Option<SocketAddr>,
    /// Do not run the STUN responder.
    #[arg(long)]
    no_stun: bool,
    /// TOML config file; flags given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// PEM certificate chain: serve wss:// instead of ws:// (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<ServerConfig> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::load(path)?,
            None => ServerConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(stun) = self.stun {
            config.stun.enabled = true;
            config.stun.listen = Some(stun);
        }
        if self.no_stun {
            config.stun.enabled = false;
        }
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls = Some(TlsConfig { cert, key });
        }
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = Cli::parse().into_config()?;
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("p2p-signal-rt")
        .enable_all()
        .build()
        .context("while starting the async runtime")?
        .block_on(serve(config))
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    // Watch for signals before announcing readiness, so a stop right after it still exits cleanly.
    let shutdown = shutdown_signal()?;
    let server = SignalingServer::bind(&config)
        .await
        .context("while starting the signaling server")?;
    // Scripts and tests wait for these exact lines.
    let mut ready = format!("signaling listening on {}\n", server.url());
    if let Some(stun) = server.stun_addr() {
        ready.push_str(&format!("stun listening on udp://{stun}\n"));
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(ready.as_bytes())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(url = %server.url(), stun = ?server.stun_addr(), "ready");
    server.run(shutdown).await;
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM; the handlers are in place when this returns.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("while watching SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("while watching SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
