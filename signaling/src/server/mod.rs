//! The signaling server: WebSocket rooms on `/`, `GET /healthz`, `GET /metrics`, and the embedded
//! STUN responder, all run by [`SignalingServer`].

mod connection;
mod listener;
pub(crate) mod metrics;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use listener::ClientAddr;
use metrics::Metrics;
use state::AppState;

/// How often idle connections and old rooms are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// Per-connection socket read buffer (tungstenite's default is 128 KiB).
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes gathered before a write reaches the socket, when frames are fed without a flush.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// How long open connections get to close after a shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listening socket could not be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        /// `tcp` or `udp`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause (address in use, permission denied…).
        source: std::io::Error,
    },
    /// The certificate or key could not be used.
    #[error("TLS: {path}: {message}")]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// A bound, not yet running, signaling server.
pub struct SignalingServer {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    local_addr: SocketAddr,
    stun: Option<UdpSocket>,
    stun_addr: Option<SocketAddr>,
    /// `stun.max_requests_per_sec`.
    stun_rate: u32,
    state: Arc<AppState>,
}

impl SignalingServer {
    /// Binds the WebSocket listener and the STUN socket (port 0 picks free ports).
    pub async fn bind(config: &ServerConfig) -> Result<Self, ServerError> {
        config.validate()?;
        let tls = config.tls.as_ref().map(listener::load_tls).transpose()?;
        let bind_err = |what, addr| move |source| ServerError::Bind { what, addr, source };
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(bind_err("tcp", config.listen))?;
        let local_addr = tcp.local_addr().map_err(bind_err("tcp", config.listen))?;
        let (stun, stun_addr) = match config.stun_addr() {
            Some(addr) => {
                let socket = UdpSocket::bind(addr).await.map_err(bind_err("udp", addr))?;
                let local = socket.local_addr().map_err(bind_err("udp", addr))?;
                (Some(socket), Some(local))
            }
            None => (None, None),
        };
        let metrics = Arc::new(Metrics::new());
        Ok(Self {
            listener: tcp,
            tls,
            local_addr,
            stun,
            stun_addr,
            stun_rate: config.stun.max_requests_per_sec,
            state: Arc::new(AppState::new(
                config.limits.clone(),
                metrics,
                config.turn.clone(),
            )),
        })
    }

    /// The address the WebSocket listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to: `ws://HOST:PORT` or `wss://HOST:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The STUN responder's UDP address, unless STUN is off.
    pub fn stun_addr(&self) -> Option<SocketAddr> {
        self.stun_addr
    }

    /// Serves until `shutdown` completes, then stops accepting, closes every connection with a close
    /// frame and returns within a few seconds.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let state = self.state;
        let stun_task = self.stun.map(|socket| {
            let metrics = Arc::clone(&state.metrics);
            tokio::spawn(crate::stun::serve(socket, metrics, self.stun_rate))
        });
        let sweeper = tokio::spawn({
            let state = Arc::clone(&state);
            async move {
                let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
                loop {
                    ticks.tick().await;
                    state.tick();
                }
            }
        });

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let accepting = tokio::spawn(listener::accept_loop(
            self.listener,
            self.tls,
            router(Arc::clone(&state)),
            Arc::clone(&state),
            stopped,
        ));

        shutdown.await;
        tracing::info!("shutting down: closing connections");
        let _ = stop.send(());
        state.shutdown();
        if tokio::time::timeout(SHUTDOWN_GRACE, state.all_tasks_done())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time; dropping them");
        }
        for task in [Some(sweeper), stun_task, Some(accepting)]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(upgrade))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
) -> Response {
    // The transport refuses frames far over the bound unread; frames just over it reach the hub,
    // which answers with an error frame that names the bound.
    let transport_cap = state.limits.max_frame_bytes.saturating_mul(2).max(4096);
    // Signaling frames are small: tungstenite's 128 KiB default buffers would cost ~140 KiB per
    // idle connection (1.4 GB at 10,000 connections).
    ws.max_message_size(transport_cap)
        .max_frame_size(transport_cap)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| connection::serve_connection(socket, state, peer))
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
