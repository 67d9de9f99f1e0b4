//! `p2phost run`: the daemon (DESIGN §7). It keeps this host's identity on the signaling server,
//! in a room with each trusted peer; watches the sync folders; queues every new or changed file
//! for the peers its folder and the rules name, durably; sends each peer its queue whenever it is
//! online, over data channels pinned to the peer's certificate; and stores what peers send into
//! the folder of the same id, without sending it back.
//!
//! The parts: [`local`] turns changes seen on disk into queued jobs, [`outbox`] sends a peer its
//! queue, [`inbox`] takes what peers send, [`conflict`] settles a file changed on both hosts,
//! [`control`] answers `p2phost status`.

mod conflict;
mod control;
mod inbox;
mod local;
mod outbox;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::Config;
use crate::hooks::{HookChain, HookError, HookFactory, HookSpec, LoadError};
use crate::identity::{Identity, IdentityError, PeerId};
use crate::oneshot::Cancel;
use crate::session::{PairSignaling, SessionOptions};
use crate::sync::{Batch, FileVersion, IndexEntry, Router, StateError, SyncState};

pub use control::{CONTROL_SOCKET, Status, query_status};

/// The state database, inside the identity folder.
pub const STATE_FILE: &str = "state.redb";

/// Why the daemon could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// No usable identity.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A plugin or script could not be loaded.
    #[error(transparent)]
    Hooks(#[from] LoadError),
    /// The folders could not be watched.
    #[error("cannot watch the folders: {0}")]
    Watch(String),
    /// The embedded signaling server could not start.
    #[error("cannot serve signaling on {addr}: {reason}")]
    Serve {
        /// The address from `[signaling] serve`.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The control socket could not be made.
    #[error("cannot open the control socket {path}: {source}")]
    Control {
        /// The socket's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config lists no peers, or a peer with this host's own id.
    #[error("{0}")]
    Config(String),
}

/// What every part of the daemon shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) identity: Identity,
    pub(crate) router: Router,
    pub(crate) state: SyncState,
    hooks: Vec<Box<dyn HookFactory>>,
    /// Whether a hook has a pre-send hook, which may route files.
    routes: bool,
    pub(crate) session: SessionOptions,
    /// Rung when a peer's queue gets work.
    wake: HashMap<PeerId, Notify>,
    /// Files being received now, by folder index and path, and by how many receives: changes
    /// the watcher reports for them are the daemon's own writes.
    receiving: Mutex<HashMap<(usize, String), usize>>,
    /// The receive under way from each peer into each folder.
    receives: inbox::Receives,
    /// What `p2phost status` reports.
    pub(crate) status: Mutex<control::Live>,
    /// Thrown when the daemon stops: transfers in flight tell their peers they were cancelled,
    /// so a peer does not wait out a connection that is going away.
    pub(crate) stopping: Cancel,
}

impl Shared {
    /// A fresh chain of the config's plugins and scripts, for one transfer.
    pub(crate) fn hooks(&self) -> Result<HookChain, HookError> {
        let hooks = self
            .hooks
            .iter()
            .map(|factory| factory.instantiate())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HookChain::new(hooks))
    }

    /// [`Shared::hooks`] on a blocking thread (instantiating compiles nothing, but a script's
    /// top level runs).
    pub(crate) async fn hooks_off_thread(self: &Arc<Self>) -> Result<HookChain, String> {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || shared.hooks())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Tells `peer`'s sender that it has work.
    pub(crate) fn wake(&self, peer: &PeerId) {
        if let Some(notify) = self.wake.get(peer) {
            notify.notify_one();
        }
    }

    fn receiving(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, String), usize>> {
        self.receiving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `path` of folder `folder` is being received now.
    pub(crate) fn is_receiving(&self, folder: usize, path: &str) -> bool {
        self.receiving().contains_key(&(folder, path.to_owned()))
    }

    /// Marks `paths` of `folder` as being received, by one more receive.
    pub(crate) fn mark_receiving<'a>(&self, folder: usize, paths: impl Iterator<Item = &'a str>) {
        let mut receiving = self.receiving();
        for path in paths {
            *receiving.entry((folder, path.to_owned())).or_default() += 1;
        }
    }

    /// Undoes one [`Shared::mark_receiving`]: a receive that ends leaves the marks of another
    /// one of the same files (a peer's new connection) in place.
    pub(crate) fn unmark_receiving<'a>(&self, folder: usize, paths: impl Iterator<Item = &'a str>) {
        let mut receiving = self.receiving();
        for path in paths {
            let key = (folder, path.to_owned());
            if let Some(count) = receiving.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    receiving.remove(&key);
                }
            }
        }
    }

    pub(crate) fn live(&self) -> std::sync::MutexGuard<'_, control::Live> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports a transfer with `peer` for `folder` in flight until the returned guard is
    /// dropped, however the transfer ends (a task aborted with its signaling connection too).
    pub(crate) fn in_flight(&self, peer: &str, folder: &str, files: usize) -> InFlight<'_> {
        let number = self.live().transfer_started(peer, folder, files);
        InFlight {
            shared: self,
            number,
        }
    }

    /// A peer's name from the config, or its id.
    /// Notes the path a connection with `peer` took, for `p2phost status`.
    pub(crate) async fn note_path(&self, peer: &PeerId, link: &crate::session::Connected) {
        if let Some(path) = link.path().await {
            tracing::info!(peer = %self.name(peer), "connected {path}");
            self.live().set_path(&self.name(peer), path);
        }
    }

    pub(crate) fn name(&self, peer: &PeerId) -> String {
        self.router
            .name_of(peer)
            .map_or_else(|| peer.to_string(), ToOwned::to_owned)
    }
}

/// A transfer shown in flight by `p2phost status` while this lives.
pub(crate) struct InFlight<'a> {
    shared: &'a Shared,
    number: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.live().transfer_ended(self.number);
    }
}

/// Records `path` of `folder` as last synced at `entry`, and queues that version for `to`, in
/// the caller's one durable commit.
pub(crate) fn record_and_queue(
    batch: &mut Batch<'_>,
    folder: &str,
    path: &str,
    entry: &IndexEntry,
    to: &[PeerId],
) -> Result<(), StateError> {
    batch.record(folder, path, entry)?;
    let version = FileVersion {
        size: entry.size,
        mtime_ns: entry.mtime_ns,
        hash: Some(entry.hash),
    };
    for peer in to {
        batch.enqueue(&peer.to_string(), folder, path, version)?;
    }
    Ok(())
}

/// How long a stopping daemon gives its transfers in flight to tell their peers.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long a file must stay unchanged before it is sent.
const SETTLE: Duration = Duration::from_millis(500);
/// The first wait before connecting to the signaling server again, doubled up to a minute.
const RECONNECT: Duration = Duration::from_millis(500);

/// Runs the daemon of `config` until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let identity = Identity::load(&config.identity.dir)?;
    if config.peers.iter().any(|p| p.id == identity.id()) {
        return Err(DaemonError::Config(format!(
            "[[peers]] lists this host's own id ({}); list the other hosts",
            identity.id()
        )));
    }
    let state = SyncState::open(&config.identity.dir.join(STATE_FILE))?;
    let specs: Vec<HookSpec> = config.hooks.iter().map(|h| h.spec.clone()).collect();
    let hooks = tokio::task::spawn_blocking(move || crate::hooks::load_all(&specs))
        .await
        .map_err(|e| DaemonError::Watch(format!("loading hooks: {e}")))??;

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = shutdown_tx.send(true);
    });

    let served = match config.signaling.serve {
        Some(addr) => Some(serve(addr, shutdown_rx.clone()).await?),
        None => None,
    };
    let url = match (&config.signaling.url, &served) {
        (Some(url), _) => url.clone(),
        (None, Some((url, _))) => url.clone(),
        (None, None) => "ws://127.0.0.1:8787".to_owned(),
    };
    let host = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest))
        .map(|authority| authority.rsplit_once(':').map_or(authority, |(h, _)| h))
        .unwrap_or("127.0.0.1")
        .to_owned();
    let stun = match (&config.signaling.stun, &served) {
        (Some(stun), _) => stun.clone(),
        // Our own STUN responder, when this daemon serves and uses its own server.
        (None, Some((_, stun))) if config.signaling.url.is_none() => format!("stun:{stun}"),
        (None, _) => format!("stun:{host}:3478"),
    };
    let session = SessionOptions {
        signaling_url: url.clone(),
        ice_servers: vec![stun],
        bind: vec!["0.0.0.0:0".into()],
        step_timeout: Duration::from_secs(30),
        identity: Some(identity.clone()),
        // Trusted peers meet in pair rooms on a server; LAN mode (off by default) is for
        // one-off transfers.
        ..SessionOptions::default()
    };
    let router = Router::new(&config);
    let shared = Arc::new(Shared {
        wake: config.peers.iter().map(|p| (p.id, Notify::new())).collect(),
        receiving: Mutex::default(),
        receives: inbox::Receives::default(),
        status: Mutex::new(control::Live::default()),
        stopping: Cancel::new(),
        router,
        state,
        routes: hooks.iter().any(|h| h.describe().hooks.pre_send),
        hooks,
        session,
        identity,
        config,
    });
    tracing::info!(
        id = %shared.identity.id(),
        server = %url,
        peers = shared.config.peers.len(),
        folders = shared.config.folders.len(),
        "p2phost daemon started"
    );

    let control = control::serve(Arc::clone(&shared), shutdown_rx.clone())?;
    let watching = local::watch(Arc::clone(&shared), SETTLE)?;
    let connected = tokio::spawn(stay_connected(Arc::clone(&shared), shutdown_rx.clone()));

    let mut stop = shutdown_rx;
    let _ = stop.wait_for(|stopped| *stopped).await;
    tracing::info!("stopping: queued files stay queued, partial files resume next time");
    shared.stopping.cancel();
    // Transfers in flight tell their peers, which then let go at once and resume later.
    let told = tokio::time::timeout(STOP_GRACE, async {
        while !shared.live().is_idle() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let _ = told.await;
    connected.abort();
    watching.abort();
    control.abort();
    let _ = std::fs::remove_file(shared.config.identity.dir.join(CONTROL_SOCKET));
    Ok(())
}

/// Runs the embedded signaling server, with its STUN responder on the same port number over UDP
/// (so that several daemons on one machine do not fight over 3478); its URL and STUN address.
async fn serve(
    addr: SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(String, SocketAddr), DaemonError> {
    let mut config = p2p_signaling::ServerConfig {
        listen: addr,
        ..p2p_signaling::ServerConfig::default()
    };
    config.stun.listen = Some(addr);
    let server = p2p_signaling::SignalingServer::bind(&config)
        .await
        .map_err(|e| DaemonError::Serve {
            addr,
            reason: e.to_string(),
        })?;
    let url = server.url();
    let stun = server.stun_addr().unwrap_or(addr);
    tracing::info!(%url, %stun, "serving signaling and STUN");
    tokio::spawn(server.run(async move {
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    }));
    Ok((url, stun))
}

/// Keeps this host on the signaling server, in every pair room: connects, serves the peers
/// until the connection ends, and connects again after a growing pause.
async fn stay_connected(shared: Arc<Shared>, shutdown: tokio::sync::watch::Receiver<bool>) {
    let peers: Vec<PeerId> = shared.config.peers.iter().map(|p| p.id).collect();
    let mut pause = RECONNECT;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match PairSignaling::start(shared.session.clone(), &peers).await {
            Ok((pair, offers)) => {
                pause = RECONNECT;
                shared.live().signaling = true;
                let pair = Arc::new(pair);
                let mut tasks = Vec::new();
                tasks.push(tokio::spawn(inbox::accept_all(
                    Arc::clone(&shared),
                    Arc::clone(&pair),
                    offers,
                )));
                for peer in &peers {
                    tasks.push(tokio::spawn(outbox::serve_peer(
                        Arc::clone(&shared),
                        Arc::clone(&pair),
                        *peer,
                    )));
                }
                while pair.is_running() {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                shared.live().signaling = false;
                tracing::warn!("lost the signaling server; connecting again");
                for task in tasks {
                    task.abort();
                }
            }
            Err(e) => {
                tracing::warn!(
                    "cannot reach the signaling server {}: {e}; trying again in {:.1} s",
                    shared.session.signaling_url,
                    pause.as_secs_f64()
                );
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}
