//! Changes on this host's disk: the start-up scan (what changed while the daemon was down) and
//! the watcher (what changes while it runs) both end here, as jobs queued for the peers.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{DaemonError, Shared};
use crate::hooks::{FileInfo, Route, Side};
use crate::identity::PeerId;
use crate::sync::{FolderWatcher, IndexEntry, Origin};

/// Starts watching every folder, after a scan of each for what changed while the daemon was down.
pub(super) fn watch(
    shared: Arc<Shared>,
    settle: Duration,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    let folders = shared
        .config
        .folders
        .iter()
        .enumerate()
        .filter(|(_, f)| f.mode.sends())
        .map(|(i, f)| (i, f.path.clone(), f.ignore.clone()))
        .collect::<Vec<_>>();
    for (_, root, _) in &folders {
        std::fs::create_dir_all(root)
            .map_err(|e| DaemonError::Watch(format!("cannot create {}: {e}", root.display())))?;
    }
    let (watcher, mut changes) = FolderWatcher::start(folders.clone(), settle)
        .map_err(|e| DaemonError::Watch(e.to_string()))?;
    Ok(tokio::spawn(async move {
        // Owned by the task: dropping it stops the watching.
        let _watcher = watcher;
        for (folder, root, ignore) in folders {
            let shared = Arc::clone(&shared);
            let scanned = tokio::task::spawn_blocking(move || {
                let entries = crate::sync::scan_folder(&root, &ignore)?;
                for entry in entries {
                    consider(&shared, folder, &entry.path);
                }
                Ok::<_, crate::sync::WatchError>(())
            })
            .await;
            match scanned {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("start-up scan: {e}"),
                Err(e) => tracing::warn!("start-up scan failed: {e}"),
            }
        }
        while let Some(change) = changes.recv().await {
            let shared = Arc::clone(&shared);
            let _ = tokio::task::spawn_blocking(move || {
                consider(&shared, change.folder, &change.path);
            })
            .await;
        }
    }))
}

/// Queues `path` of folder `folder` for its peers if it changed since it was last synced.
pub(super) fn consider(shared: &Shared, folder: usize, path: &str) {
    if let Err(e) = try_consider(shared, folder, path) {
        tracing::warn!(path, "cannot queue a change: {e}");
    }
}

fn try_consider(shared: &Shared, folder: usize, path: &str) -> Result<(), String> {
    if shared.is_receiving(folder, path) {
        return Ok(());
    }
    let Some(entry) = shared.config.folders.get(folder) else {
        return Ok(());
    };
    let full = entry.path.join(path);
    let Some((size, mtime_ns)) = stat(&full).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let known = shared
        .state
        .recorded(&entry.id, path)
        .map_err(|e| e.to_string())?;
    if known
        .as_ref()
        .is_some_and(|k| k.size == size && k.mtime_ns == mtime_ns)
    {
        // What was last synced (received, or sent): nothing new.
        return Ok(());
    }
    let hash = hash_file(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
    if known.as_ref().is_some_and(|k| k.hash == hash) {
        // Touched, not changed: remember the new time only.
        let origin = known.map_or(Origin::Local, |k| k.origin);
        let entry_id = entry.id.clone();
        let indexed = IndexEntry {
            size,
            mtime_ns,
            hash,
            origin,
        };
        return shared
            .state
            .write(|batch| super::record_and_queue(batch, &entry_id, path, &indexed, &[]))
            .map_err(|e| e.to_string());
    }
    let to: Vec<PeerId> = match route(shared, path, size)? {
        Route::Default => shared.router.destinations(folder, path, None),
        Route::Only(names) => shared.router.routed(folder, path, None, Some(&names)),
        Route::Reject(reason) => {
            tracing::info!(folder = %entry.id, path, "not sent: {reason}");
            Vec::new()
        }
    };
    let indexed = IndexEntry {
        size,
        mtime_ns,
        hash,
        origin: Origin::Local,
    };
    shared
        .state
        .write(|batch| super::record_and_queue(batch, &entry.id, path, &indexed, &to))
        .map_err(|e| e.to_string())?;
    if !to.is_empty() {
        tracing::info!(folder = %entry.id, path, peers = to.len(), "queued");
    }
    for peer in &to {
        shared.wake(peer);
    }
    Ok(())
}

/// What the config's scripts and plugins say about where the file goes (their pre-send hooks,
/// in a fresh instance, as for a transfer).
fn route(shared: &Shared, path: &str, size: u64) -> Result<Route, String> {
    if !shared.routes {
        return Ok(Route::Default);
    }
    let mut chain = shared.hooks().map_err(|e| e.to_string())?;
    let file = FileInfo {
        path: path.to_owned(),
        size,
        side: Side::Send,
    };
    chain.route(&file).map_err(|e| e.to_string())
}

/// Size and modification time of a regular file; `None` for anything else or nothing.
pub(super) fn stat(path: &Path) -> std::io::Result<Option<(u64, i128)>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => {
            let mtime = meta.modified()?;
            Ok(Some((meta.len(), nanos(mtime))))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn nanos(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// The BLAKE3 hash of a file's content.
pub(super) fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = crate::store::open_no_follow(path)?;
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(*hasher.finalize().as_bytes())
}
