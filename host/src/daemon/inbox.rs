//! Taking what trusted peers send: each offer arrives on a data channel pinned to the peer,
//! labelled with the folder it is for; the files go into this host's folder of that id, if the
//! folder receives from that peer. A local change that the incoming file would replace is kept
//! as a conflict copy; received files are indexed as the peer's, so they are never sent back to
//! it, and queued for the folder's other peers.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::Shared;
use super::local::{hash_file, stat};
use crate::identity::PeerId;
use crate::oneshot::{self, Observer};
use crate::session::{Incoming, PairSignaling};
use crate::sync::{FileVersion, IndexEntry, Origin, conflict_name};
use crate::transfer::ValidManifest;

/// A sync transfer's data channel label: this, then the folder id.
pub(super) const LABEL_PREFIX: &str = "sync/";

/// Accepts every offer, each in its own task.
pub(super) async fn accept_all(
    shared: Arc<Shared>,
    pair: Arc<PairSignaling>,
    mut offers: mpsc::Receiver<Incoming>,
) {
    while let Some(offer) = offers.recv().await {
        let shared = Arc::clone(&shared);
        let pair = Arc::clone(&pair);
        tokio::spawn(async move {
            let peer = offer.peer;
            let name = shared.name(&peer);
            if let Err(e) = receive(&shared, &pair, offer).await {
                tracing::warn!(peer = %name, "not received: {e}");
            }
        });
    }
}

async fn receive(
    shared: &Arc<Shared>,
    pair: &PairSignaling,
    offer: Incoming,
) -> Result<(), String> {
    let peer = offer.peer;
    let name = shared.name(&peer);
    let link = pair.accept(offer).await.map_err(|e| e.to_string())?;
    let label = link.channel.label().await.map_err(|e| e.to_string())?;
    let folder = label
        .strip_prefix(LABEL_PREFIX)
        .and_then(|id| shared.router.folder_index(id))
        .filter(|index| shared.router.accepts_from(*index, &peer));
    let Some(folder) = folder else {
        // Said to the peer through the transfer protocol, so it knows why.
        let reason = format!(
            "this host has no folder {:?} that receives from {}",
            label.strip_prefix(LABEL_PREFIX).unwrap_or(&label),
            shared.identity.id()
        );
        let mut refuse = Refuse(reason.clone());
        let hooks = crate::hooks::HookChain::new(Vec::new());
        let scratch = shared.config.identity.dir.join("refused");
        let _ = oneshot::receive_over(link, &scratch, false, hooks, &mut refuse).await;
        return Err(reason);
    };
    let entry = &shared.config.folders[folder];
    let root = entry.path.clone();
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let hooks = {
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || shared.hooks())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    shared.live().transfer_started(&name, &entry.id, 0);
    let mut observer = Receiving {
        shared: Arc::clone(shared),
        folder,
        peer,
        files: Vec::new(),
    };
    let result = oneshot::receive_over(link, &root, true, hooks, &mut observer).await;
    shared.live().transfer_ended(&name, &entry.id);
    let files = std::mem::take(&mut observer.files);
    let outcome = match result {
        Ok(report) => {
            tracing::info!(
                peer = %name, folder = %entry.id, files = report.files, bytes = report.bytes,
                seconds = format_args!("{:.2}", report.seconds), "received"
            );
            record(shared, folder, &peer, &files);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    };
    let mut receiving = shared.receiving();
    for (path, _) in &files {
        receiving.remove(&(folder, path.clone()));
    }
    outcome
}

/// Indexes the received files as `peer`'s and queues them for the folder's other peers.
fn record(shared: &Shared, folder: usize, peer: &PeerId, files: &[(String, [u8; 32])]) {
    let entry = &shared.config.folders[folder];
    let origin = Origin::Peer(peer.to_string());
    let mut woken = Vec::new();
    let written = shared.state.write(|batch| {
        for (path, hash) in files {
            let Ok(Some((size, mtime_ns))) = stat(&entry.path.join(path)) else {
                continue;
            };
            batch.record(
                &entry.id,
                path,
                &IndexEntry {
                    size,
                    mtime_ns,
                    hash: *hash,
                    origin: origin.clone(),
                },
            )?;
            let version = FileVersion {
                size,
                mtime_ns,
                hash: Some(*hash),
            };
            for other in shared.router.destinations(folder, path, Some(peer)) {
                batch.enqueue(&other.to_string(), &entry.id, path, version)?;
                woken.push(other);
            }
        }
        Ok(())
    });
    if let Err(e) = written {
        tracing::warn!("received, but cannot index the files: {e}");
    }
    for other in woken {
        shared.wake(&other);
    }
}

/// The receiving side's say on an offer: marks its files as being received, and moves local
/// changes they would replace out of the way.
struct Receiving {
    shared: Arc<Shared>,
    folder: usize,
    peer: PeerId,
    /// The offered files and their hashes.
    files: Vec<(String, [u8; 32])>,
}

impl Observer for Receiving {
    fn offer(&mut self, offer: &ValidManifest) -> Result<(), String> {
        let entry = &self.shared.config.folders[self.folder];
        {
            let mut receiving = self.shared.receiving();
            for file in &offer.files {
                let path = file.path.to_string();
                receiving.insert((self.folder, path.clone()));
                self.files.push((path, *file.hash.as_bytes()));
            }
        }
        for file in &offer.files {
            let path = file.path.to_string();
            keep_local_change(
                &self.shared,
                &entry.id,
                &entry.path,
                &path,
                file.hash.as_bytes(),
                &self.peer,
            )?;
        }
        Ok(())
    }

    fn hook_failed(&mut self, error: &crate::hooks::HookError) {
        tracing::warn!("{error}");
    }
}

/// If the local `path` holds a change this host has not synced (it differs from the incoming
/// file, and from what was last synced or is still queued for the sending peer), renames it to a
/// conflict copy, which then syncs as a file of its own.
fn keep_local_change(
    shared: &Shared,
    folder: &str,
    root: &std::path::Path,
    path: &str,
    incoming: &[u8; 32],
    peer: &PeerId,
) -> Result<(), String> {
    let full = root.join(path);
    let Ok(Some((size, mtime_ns))) = stat(&full) else {
        return Ok(());
    };
    let known = shared
        .state
        .recorded(folder, path)
        .map_err(|e| e.to_string())?;
    let unchanged_since_sync = known
        .as_ref()
        .is_some_and(|k| k.size == size && k.mtime_ns == mtime_ns);
    let still_queued = shared
        .state
        .is_queued(&peer.to_string(), folder, path)
        .map_err(|e| e.to_string())?;
    if unchanged_since_sync && !still_queued {
        return Ok(());
    }
    let local = hash_file(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
    if &local == incoming {
        return Ok(());
    }
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
        .to_owned();
    let by = shared.identity.id().to_string();
    let by = by.split('-').next().unwrap_or(&by);
    let copy = full.with_file_name(conflict_name(&name, SystemTime::now(), by));
    // A hard link then a removal: never replaces a file of that name.
    std::fs::hard_link(&full, &copy)
        .and_then(|()| std::fs::remove_file(&full))
        .map_err(|e| {
            format!(
                "cannot keep the local change of {path} as {}: {e}",
                copy.display()
            )
        })?;
    tracing::warn!(
        folder, path, copy = %copy.display(),
        "conflict: both sides changed the file; the local version is kept as a copy"
    );
    Ok(())
}

/// Declines every offer with a reason.
struct Refuse(String);

impl Observer for Refuse {
    fn offer(&mut self, _offer: &ValidManifest) -> Result<(), String> {
        Err(self.0.clone())
    }
}
