//! Taking what trusted peers send: each offer arrives on a data channel pinned to the peer,
//! labelled with the folder it is for; the files go into this host's folder of that id, if the
//! folder receives from that peer. Received files are indexed as the peer's, so they are never
//! sent back to it, and queued for the folder's other peers.
//!
//! # Conflicts
//!
//! An offered file *conflicts* when this host holds a different version under its name that the
//! sending peer has not seen: changed since it was last synced, or still queued for that peer
//! (unless it came from that peer). A copy with the same content is no conflict, however it was
//! made. Both hosts see the conflict, each in its own inbox and perhaps at the same moment, and
//! must settle it the same way without asking each other, so the rule looks only at what both
//! know, their two peer ids:
//!
//! - The host whose id sorts first (as `p2phost id` prints it) keeps its version under the name:
//!   it declines the whole offer (the sender retries it later, with backoff) and sends its own
//!   version, which is queued for that peer anyway.
//! - The other host renames its version to `NAME.sync-conflict-YYYYMMDD-HHMMSS-BY.EXT` (BY: the
//!   first group of its own id), takes the incoming file under the name, and queues the name back
//!   to the sender. The copy syncs as a file of its own.
//!
//! Sending the name back repairs the one order the rule alone cannot: the losing host's version
//! was already on its way when it took the winner's, and arrived after the winner's own version
//! had been delivered (so the winner saw nothing left to protect and took it). Where the winner
//! still has the name, the file sent back is identical and changes nothing.
//!
//! The first host keeps the name only while its version can reach the peer: the folder sends to
//! that peer, and sending the file there has not failed [`YIELD_AFTER`] times in a row (a peer
//! whose folder does not take this host's files would otherwise be declined forever). Past that,
//! it keeps its own version as a conflict copy, takes the incoming one, and sends nothing back.
//!
//! Deletions are not synced, so a conflict is always between two versions of content.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::Shared;
use super::local::{self, hash_file, stat};
use crate::identity::PeerId;
use crate::oneshot::{self, Observer};
use crate::session::{Incoming, PairSignaling};
use crate::store::{Destination, StoreError};
use crate::sync::{IndexEntry, Origin, conflict_name};
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
        let _ = oneshot::receive_over(link, &scratch, false, hooks, &mut refuse, &shared.stopping)
            .await;
        return Err(reason);
    };
    let entry = &shared.config.folders[folder];
    let root = entry.path.clone();
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let hooks = shared.hooks_off_thread().await?;
    shared.live().transfer_started(&name, &entry.id, 0);
    let mut observer = Receiving {
        shared: Arc::clone(shared),
        folder,
        peer,
        files: Vec::new(),
        kept: Vec::new(),
        send_back: Vec::new(),
    };
    let result =
        oneshot::receive_over(link, &root, true, hooks, &mut observer, &shared.stopping).await;
    shared.live().transfer_ended(&name, &entry.id);
    let files = std::mem::take(&mut observer.files);
    let outcome = match result {
        Ok(report) => {
            tracing::info!(
                peer = %name, folder = %entry.id, files = report.files, bytes = report.bytes,
                seconds = format_args!("{:.2}", report.seconds), "received"
            );
            record(shared, folder, &peer, &files, &observer.send_back);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    };
    {
        let mut receiving = shared.receiving();
        for (path, _) in &files {
            receiving.remove(&(folder, path.clone()));
        }
    }
    // A change kept against the offer may have been reported while it was being received, and
    // then passed over: queue it now (nothing happens if it is queued already).
    let kept = std::mem::take(&mut observer.kept);
    if !kept.is_empty() {
        let shared = Arc::clone(shared);
        let _ = tokio::task::spawn_blocking(move || {
            for path in &kept {
                local::consider(&shared, folder, path);
            }
        })
        .await;
    }
    outcome
}

/// Indexes the received files as `peer`'s and queues them for the folder's other peers, and
/// for `peer` itself those in `send_back` (conflicts this host lost: see the module docs).
fn record(
    shared: &Shared,
    folder: usize,
    peer: &PeerId,
    files: &[(String, [u8; 32])],
    send_back: &[String],
) {
    let entry = &shared.config.folders[folder];
    let origin = Origin::Peer(peer.to_string());
    let mut woken = Vec::new();
    let written = shared.state.write(|batch| {
        for (path, hash) in files {
            let Ok(Some((size, mtime_ns))) = stat(&entry.path.join(path)) else {
                continue;
            };
            let mut to = shared.router.destinations(folder, path, Some(peer));
            if send_back.contains(path) {
                to.push(*peer);
            }
            let indexed = IndexEntry {
                size,
                mtime_ns,
                hash: *hash,
                origin: origin.clone(),
            };
            super::record_and_queue(batch, &entry.id, path, &indexed, &to)?;
            woken.extend(to);
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

/// The receiving side's say on an offer: marks its files as being received, and settles
/// conflicts with local changes (see the module docs).
struct Receiving {
    shared: Arc<Shared>,
    folder: usize,
    peer: PeerId,
    /// The offered files and their hashes.
    files: Vec<(String, [u8; 32])>,
    /// Local changes that keep their name: the offer was declined for them.
    kept: Vec<String>,
    /// Files taken over a local change that was moved to a conflict copy: sent back to the peer.
    send_back: Vec<String>,
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
        within_folder(&entry.path, offer)?;
        // Every file is judged before anything is renamed: a declined offer changes nothing.
        let mut copies = Vec::new();
        for (path, hash) in &self.files {
            match judge(&self.shared, self.folder, path, hash, &self.peer)? {
                Verdict::Take => {}
                Verdict::Keep => self.kept.push(path.clone()),
                verdict @ (Verdict::Yield | Verdict::Yielded) => copies.push((path, verdict)),
            }
        }
        if let Some(first) = self.kept.first() {
            tracing::warn!(
                folder = %entry.id, path = %first, files = self.kept.len(),
                "conflict: both sides changed the file; this host's version keeps the name \
                 (its id sorts first), the offer is declined until the peer has it"
            );
            let more = match self.kept.len() - 1 {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            return Err(format!(
                "conflict: {first}{more} changed on both hosts; the version of {} keeps the \
                 name and is sent to you, yours becomes a conflict copy",
                self.shared.identity.id()
            ));
        }
        for (path, verdict) in copies {
            keep_as_copy(&self.shared, &entry.id, &entry.path, path)?;
            let back = verdict == Verdict::Yield
                && self
                    .shared
                    .router
                    .destinations(self.folder, path, None)
                    .contains(&self.peer);
            if back {
                self.send_back.push(path.clone());
            }
        }
        Ok(())
    }

    fn hook_failed(&mut self, error: &crate::hooks::HookError) {
        tracing::warn!("{error}");
    }
}

/// Refuses an offer with a file whose way into the folder at `root` passes a symbolic link (or
/// something else that is not a folder): judging it would look, and a conflict copy would
/// rename, outside the folder. Checked before anything is judged; the receive would refuse the
/// link anyway, but only after the copy was made.
fn within_folder(root: &std::path::Path, offer: &ValidManifest) -> Result<(), String> {
    let destination = Destination::open(root).map_err(|e| e.to_string())?;
    for file in &offer.files {
        if let Err(e) = destination.parent_of(&file.path, false) {
            tracing::warn!(path = %file.path, "not received: {e}");
            // Said to the peer: the folder's path here is none of its business.
            return Err(match e {
                StoreError::Symlink(_) | StoreError::NotAFolder(_) => format!(
                    "{}: a folder on its way is a symbolic link or a file on the receiving \
                     side; not received",
                    file.path
                ),
                other => other.to_string(),
            });
        }
    }
    Ok(())
}

/// Failures in a row, sending a file to a peer, after which this host stops keeping the name of
/// that file against the peer's version (the peer's folder may not take files from it at all).
pub(super) const YIELD_AFTER: u32 = 3;

/// What to do with an offered file, given what this host has under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Nothing here the peer has not seen, or the same content: write it.
    Take,
    /// A conflict this host wins: decline the offer.
    Keep,
    /// A conflict this host loses: move the local version to a copy, take the file, send it back.
    Yield,
    /// A conflict this host would win but its version cannot reach the peer: move the local
    /// version to a copy, take the file, send nothing back.
    Yielded,
}

/// The verdict on `path` of folder `folder`, offered by `peer` with content `incoming`.
fn judge(
    shared: &Shared,
    folder: usize,
    path: &str,
    incoming: &[u8; 32],
    peer: &PeerId,
) -> Result<Verdict, String> {
    let entry = &shared.config.folders[folder];
    let full = entry.path.join(path);
    let Some((size, mtime_ns)) =
        stat(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?
    else {
        return Ok(Verdict::Take);
    };
    let key = peer.to_string();
    let known = shared
        .state
        .recorded(&entry.id, path)
        .map_err(|e| e.to_string())?;
    let queued = shared
        .state
        .queued(&key, &entry.id, path)
        .map_err(|e| e.to_string())?;
    let touched = known
        .as_ref()
        .is_none_or(|k| k.size != size || k.mtime_ns != mtime_ns);
    // What came from this peer (and is queued back to it after a conflict) is no news to it.
    let from_peer = known
        .as_ref()
        .is_some_and(|k| k.origin == Origin::Peer(key.clone()));
    let unsent = queued.is_some() && !from_peer;
    if !touched && !unsent {
        return Ok(Verdict::Take);
    }
    let local = hash_file(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
    if &local == incoming {
        return Ok(Verdict::Take);
    }
    if !unsent && known.as_ref().is_some_and(|k| k.hash == local) {
        // Touched, not changed.
        return Ok(Verdict::Take);
    }
    if shared.identity.id().to_string() > key {
        return Ok(Verdict::Yield);
    }
    let reaches_peer = shared
        .router
        .destinations(folder, path, None)
        .contains(peer)
        && queued.is_none_or(|job| job.attempts < YIELD_AFTER);
    Ok(if reaches_peer {
        Verdict::Keep
    } else {
        Verdict::Yielded
    })
}

/// Renames the local `path` to a conflict copy named by this host, which then syncs as a file of
/// its own.
fn keep_as_copy(
    shared: &Shared,
    folder: &str,
    root: &std::path::Path,
    path: &str,
) -> Result<(), String> {
    let full = root.join(path);
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
