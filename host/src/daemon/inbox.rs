//! Taking what trusted peers send: each offer arrives on a data channel pinned to the peer,
//! labelled with the folder it is for; the files go into this host's folder of that id, if the
//! folder receives from that peer. Received files are indexed as the peer's, so they are never
//! sent back to it, and queued for the folder's other peers.
//!
//! A file that changed on both hosts is settled by the rule of [`super::conflict`], when the
//! offer arrives and again when each file takes its name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, mpsc};

use super::Shared;
use super::conflict::{Replaced, Stamp, Verdict, judge, keep_as_copy, settle_replaced};
use super::local::{self, stat};
use crate::identity::PeerId;
use crate::oneshot::{self, Observer};
use crate::session::{Incoming, PairSignaling};
use crate::store::{Destination, Placed, StoreError};
use crate::sync::{IndexEntry, Origin};
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
    shared.note_path(&peer, &link).await;
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
    let (number, stop, superseded) = shared.receives.supersede(peer, folder);
    if superseded {
        tracing::info!(
            peer = %name, folder = %entry.id,
            "the peer came back: the transfer from its previous connection is dropped"
        );
    }
    let in_flight = shared.in_flight(&name, &entry.id, 0);
    let mut observer = Receiving {
        shared: Arc::clone(shared),
        folder,
        peer,
        files: Vec::new(),
        kept: Vec::new(),
        send_back: Vec::new(),
    };
    let peer_connection = Arc::clone(&link.peer_connection);
    let receiving =
        oneshot::receive_over(link, &root, true, hooks, &mut observer, &shared.stopping);
    let result = tokio::select! {
        result = receiving => {
            result.map_err(|e| e.to_string())
        }
        () = stop.notified() => {
            let _ = peer_connection.close().await;
            Err("the peer came back with a new transfer for this folder, which takes over from \
                 this one"
                .to_owned())
        }
    };
    shared.receives.release(peer, folder, number);
    drop(in_flight);
    let files = std::mem::take(&mut observer.files);
    // What took its name is indexed even if the transfer broke off later.
    let mut kept = record(shared, folder, &peer, &files, &observer.send_back);
    let outcome = match result {
        Ok(report) => {
            tracing::info!(
                peer = %name, folder = %entry.id, files = report.files, bytes = report.bytes,
                seconds = format_args!("{:.2}", report.seconds), "received"
            );
            Ok(())
        }
        Err(e) => Err(e),
    };
    shared.unmark_receiving(folder, files.iter().map(|f| f.path.as_str()));
    // Local changes kept against the offer, or found when a file took its name, may have been
    // reported while the files were being received, and then passed over: queue them now
    // (nothing happens for what is queued already).
    kept.append(&mut observer.kept);
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

/// Receives under way, by peer and folder: each one's number, and what stops it.
type Running = HashMap<(PeerId, usize), (u64, Arc<Notify>)>;

/// The receive under way from each peer into each folder.
#[derive(Debug, Default)]
pub(super) struct Receives(Mutex<Running>);

impl Receives {
    fn lock(&self) -> MutexGuard<'_, Running> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a receive from `peer` into `folder`, and stops the one under way, if any: a
    /// peer sends one transfer per folder at a time, so an older one belongs to a connection the
    /// peer has given up (it restarted, or its side failed), which would otherwise be held until
    /// it times out. The new receive's number, and what stops it in turn.
    fn supersede(&self, peer: PeerId, folder: usize) -> (u64, Arc<Notify>, bool) {
        static NUMBERS: AtomicU64 = AtomicU64::new(0);
        let number = NUMBERS.fetch_add(1, Ordering::Relaxed);
        let stop = Arc::new(Notify::new());
        let older = self
            .lock()
            .insert((peer, folder), (number, Arc::clone(&stop)));
        if let Some((_, older)) = &older {
            // Stored if the older one is not waiting yet: it stops as soon as it does.
            older.notify_one();
        }
        (number, stop, older.is_some())
    }

    /// Ends receive `number` from `peer` into `folder`, unless a newer one took its place.
    fn release(&self, peer: PeerId, folder: usize, number: u64) {
        let mut running = self.lock();
        if running
            .get(&(peer, folder))
            .is_some_and(|(current, _)| *current == number)
        {
            running.remove(&(peer, folder));
        }
    }
}

/// Indexes the received files that took their names as `peer`'s and queues them for the
/// folder's other peers, and for `peer` itself those in `send_back` (conflicts this host lost:
/// see [`super::conflict`]). Returns the files changed since they took their names, which the
/// watcher passed over as this host's own writes.
fn record(
    shared: &Shared,
    folder: usize,
    peer: &PeerId,
    files: &[Offered],
    send_back: &[String],
) -> Vec<String> {
    let entry = &shared.config.folders[folder];
    let origin = Origin::Peer(peer.to_string());
    let mut woken = Vec::new();
    let mut changed = Vec::new();
    let written = shared.state.write(|batch| {
        for file in files {
            let Some((size, mtime_ns)) = file.placed else {
                continue;
            };
            if stat(&entry.path.join(&file.path)).ok().flatten() != Some((size, mtime_ns)) {
                changed.push(file.path.clone());
            }
            let mut to = shared.router.destinations(folder, &file.path, Some(peer));
            if send_back.contains(&file.path) {
                to.push(*peer);
            }
            let indexed = IndexEntry {
                size,
                mtime_ns,
                hash: file.hash,
                origin: origin.clone(),
            };
            super::record_and_queue(batch, &entry.id, &file.path, &indexed, &to)?;
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
    changed
}

/// A file of the offer being received.
struct Offered {
    path: String,
    hash: [u8; 32],
    /// What was under its name when the offer was judged.
    before: Option<Stamp>,
    /// Size and modification time of the received file as it took its name; `None` until then,
    /// or when a local change kept the name.
    placed: Option<(u64, i128)>,
}

/// The receiving side's say on an offer: marks its files as being received, and settles
/// conflicts with local changes (see [`super::conflict`]).
struct Receiving {
    shared: Arc<Shared>,
    folder: usize,
    peer: PeerId,
    /// The offered files, in the offer's order.
    files: Vec<Offered>,
    /// Local changes that keep their name, and conflict copies: queued once the transfer ends.
    kept: Vec<String>,
    /// Files taken over a local change that was moved to a conflict copy: sent back to the peer.
    send_back: Vec<String>,
}

impl Observer for Receiving {
    fn offer(&mut self, offer: &ValidManifest) -> Result<(), String> {
        let entry = &self.shared.config.folders[self.folder];
        for file in &offer.files {
            self.files.push(Offered {
                path: file.path.to_string(),
                hash: *file.hash.as_bytes(),
                before: None,
                placed: None,
            });
        }
        within_folder(&entry.path, offer)?;
        self.shared
            .mark_receiving(self.folder, self.files.iter().map(|f| f.path.as_str()));
        // Every file is judged before anything is renamed: a declined offer changes nothing.
        let mut copies = Vec::new();
        let mut declined = Vec::new();
        for (index, file) in self.files.iter_mut().enumerate() {
            let (verdict, stamp) = judge(
                &self.shared,
                self.folder,
                &file.path,
                &file.hash,
                &self.peer,
            )?;
            file.before = stamp;
            match verdict {
                Verdict::Take => {}
                Verdict::Keep => declined.push(file.path.clone()),
                Verdict::Yield | Verdict::Yielded => copies.push((index, verdict)),
            }
        }
        if let Some(first) = declined.first() {
            tracing::warn!(
                folder = %entry.id, path = %first, files = declined.len(),
                "conflict: both sides changed the file; this host's version keeps the name \
                 (its id sorts first), the offer is declined until the peer has it"
            );
            let more = match declined.len() - 1 {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            let reason = format!(
                "conflict: {first}{more} changed on both hosts; the version of {} keeps the \
                 name and is sent to you, yours becomes a conflict copy",
                self.shared.identity.id()
            );
            self.kept.append(&mut declined);
            return Err(reason);
        }
        let own = self.shared.identity.id();
        for (index, verdict) in copies {
            let path = self.files[index].path.clone();
            let full = entry.path.join(&path);
            let copy = keep_as_copy(&self.shared, self.folder, &path, &full, &own)?;
            tracing::warn!(
                folder = %entry.id, path, copy,
                "conflict: both sides changed the file; the local version is kept as a copy"
            );
            let back = verdict == Verdict::Yield
                && self
                    .shared
                    .router
                    .destinations(self.folder, &path, None)
                    .contains(&self.peer);
            if back {
                self.send_back.push(path);
            }
        }
        Ok(())
    }

    fn placed(&mut self, index: usize, placed: &Placed) -> Result<PathBuf, String> {
        let Some(file) = self.files.get_mut(index) else {
            return Err(format!("file {index} of the offer is not known"));
        };
        let settled = settle_replaced(
            &self.shared,
            self.folder,
            &self.peer,
            &file.path,
            file.before,
            placed,
        )?;
        match settled {
            Replaced::Unchanged => {}
            Replaced::Copied(copy) => self.kept.push(copy),
            Replaced::Kept(copy) => {
                // The received file is the copy now: what the complete hooks are told.
                let received = self.shared.config.folders[self.folder].path.join(&copy);
                self.kept.push(file.path.clone());
                self.kept.push(copy);
                return Ok(received);
            }
        }
        let modified = placed
            .received
            .modified()
            .map_err(|e| format!("cannot read {}: {e}", placed.path.display()))?;
        file.placed = Some((placed.received.len(), local::nanos(modified)));
        Ok(placed.path.clone())
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

/// Declines every offer with a reason.
struct Refuse(String);

impl Observer for Refuse {
    fn offer(&mut self, _offer: &ValidManifest) -> Result<(), String> {
        Err(self.0.clone())
    }
}
