//! The control socket: `p2phost status` asks the running daemon, over a Unix socket in the
//! identity folder that only its owner can use, for peers online, folders, queue length and
//! transfers in flight. One request line in, one JSON line out.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{DaemonError, Shared};

/// The socket, inside the identity folder.
pub const CONTROL_SOCKET: &str = "control.sock";

/// The longest request line read.
const MAX_REQUEST: usize = 256;

/// What changes while the daemon runs.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) signaling: bool,
    online: BTreeMap<String, bool>,
    /// The network path of the latest connection with each peer.
    paths: BTreeMap<String, crate::session::NetworkPath>,
    /// Transfers in flight, by number: peer, folder, files. Two may share a peer and a folder
    /// (a send and a receive, or a receive and the one it takes over from).
    in_flight: BTreeMap<u64, (String, String, usize)>,
    next_transfer: u64,
}

impl Live {
    pub(crate) fn set_online(&mut self, peer: &str, online: bool) {
        self.online.insert(peer.to_owned(), online);
    }

    /// A connection with `peer` took `path`.
    pub(crate) fn set_path(&mut self, peer: &str, path: crate::session::NetworkPath) {
        self.paths.insert(peer.to_owned(), path);
    }

    /// A transfer with `peer` for `folder` started; its number, for [`Live::transfer_ended`].
    pub(crate) fn transfer_started(&mut self, peer: &str, folder: &str, files: usize) -> u64 {
        let number = self.next_transfer;
        self.next_transfer += 1;
        self.in_flight
            .insert(number, (peer.to_owned(), folder.to_owned(), files));
        number
    }

    pub(crate) fn transfer_ended(&mut self, number: u64) {
        self.in_flight.remove(&number);
    }

    /// Whether no transfer is in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }
}

/// The daemon's answer to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This host's peer id.
    pub id: String,
    /// Whether it is connected to the signaling server.
    pub signaling: bool,
    /// The trusted peers.
    pub peers: Vec<PeerStatus>,
    /// The sync folders.
    pub folders: Vec<FolderStatus>,
    /// Files queued for all peers.
    pub queued: u64,
    /// Transfers running now.
    pub in_flight: Vec<TransferStatus>,
}

/// A trusted peer, in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its name in the config.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Whether it is in its room now.
    pub online: bool,
    /// Files queued for it.
    pub queued: u64,
    /// The network path of the latest connection with it: `direct (…)` or `via relay …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `direct` or `relay`, for scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_kind: Option<String>,
}

/// A sync folder, in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderStatus {
    /// Its id.
    pub id: String,
    /// Where it is.
    pub path: String,
    /// `send`, `receive` or `send-receive`.
    pub mode: String,
}

/// A transfer running now, in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStatus {
    /// The peer's name.
    pub peer: String,
    /// The folder's id.
    pub folder: String,
    /// Files in it (0 while a received offer is not known yet).
    pub files: usize,
}

fn status(shared: &Shared) -> Status {
    let live = shared.live();
    Status {
        id: shared.identity.id().to_string(),
        signaling: live.signaling,
        peers: shared
            .config
            .peers
            .iter()
            .map(|p| PeerStatus {
                name: p.name.clone(),
                id: p.id.to_string(),
                online: live.online.get(&p.name).copied().unwrap_or(false),
                queued: shared
                    .state
                    .queue_len_for(&p.id.to_string())
                    .unwrap_or_default(),
                path: live.paths.get(&p.name).map(ToString::to_string),
                path_kind: live.paths.get(&p.name).map(|path| path.kind().to_owned()),
            })
            .collect(),
        folders: shared
            .config
            .folders
            .iter()
            .map(|f| FolderStatus {
                id: f.id.clone(),
                path: f.path.display().to_string(),
                mode: match f.mode {
                    crate::config::FolderMode::Send => "send",
                    crate::config::FolderMode::Receive => "receive",
                    crate::config::FolderMode::SendReceive => "send-receive",
                }
                .to_owned(),
            })
            .collect(),
        queued: shared.state.queue_len().unwrap_or_default(),
        in_flight: live
            .in_flight
            .values()
            .map(|(peer, folder, files)| TransferStatus {
                peer: peer.clone(),
                folder: folder.clone(),
                files: *files,
            })
            .collect(),
    }
}

/// Listens on the control socket until `shutdown`.
pub(super) fn serve(
    shared: Arc<Shared>,
    _shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    let path = shared.config.identity.dir.join(CONTROL_SOCKET);
    let error = |source| DaemonError::Control {
        path: path.clone(),
        source,
    };
    // A socket left by a daemon that did not stop cleanly: nothing listens on it any more
    // (the state database's lock already proved no other daemon runs here).
    if std::fs::symlink_metadata(&path).is_ok() {
        std::fs::remove_file(&path).map_err(error)?;
    }
    let listener = UnixListener::bind(&path).map_err(error)?;
    // The folder is the owner's alone already; the socket too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let _ = answer(&shared, stream).await;
            });
        }
    }))
}

async fn answer(shared: &Shared, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    reader.read_line(&mut line).await?;
    let reply = match line.trim() {
        "status" => serde_json::to_string(&status(shared)).unwrap_or_default(),
        other => serde_json::json!({
            "error": format!("unknown request {other:?}; the only one is \"status\"")
        })
        .to_string(),
    };
    write.write_all(reply.as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await
}

/// Asks the daemon whose identity folder is `dir` for its status.
pub async fn query_status(dir: &Path) -> Result<Status, String> {
    let path = dir.join(CONTROL_SOCKET);
    let mut stream = UnixStream::connect(&path).await.map_err(|e| {
        format!(
            "no daemon answers at {} ({e}): is `p2phost run` running with this config?",
            path.display()
        )
    })?;
    stream
        .write_all(b"status\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .take(16 * 1024 * 1024)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("the daemon's answer is unreadable: {e}"))
}
