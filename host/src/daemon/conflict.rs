//! Settling a peer's version of a file against this host's, twice: when the offer arrives
//! ([`judge`]), and again when each received file takes its name ([`settle_replaced`]), since
//! the user may save the file while it is being received.
//!
//! # When the offer arrives
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
//! # When the file takes its name
//!
//! What was under the name when the offer was judged is remembered (a [`Stamp`]: none, or the
//! file's device, inode, size and modification time). The received file takes the name by an
//! atomic exchange, which leaves the version it replaced at the temporary name; that version is
//! compared with the stamp. Unchanged, it is deleted. Changed, or created since the offer, it is
//! a local change the peer has not seen, and nothing of it is lost; the same rule says which
//! version keeps the name:
//!
//! - This host's id sorts first (and its version can reach the peer): its version goes back
//!   under the name, and the received one becomes the copy, named by the peer (whose change lost
//!   its name). Both are queued for the peer, which takes them as it takes any file it has not
//!   changed since: both hosts end with this host's version under the name and the peer's in the
//!   copy, as if the conflict had been seen at the offer.
//! - Otherwise the received version keeps the name and the local one becomes the copy, named by
//!   this host; the copy is queued for the peer.
//!
//! Deletions are not synced, so a conflict is always between two versions of content.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::Shared;
use super::local::hash_file;
use crate::identity::PeerId;
use crate::store::Placed;
use crate::store::replace::{exchange, rename_no_replace};
use crate::sync::{Origin, conflict_name};

/// Failures in a row, sending a file to a peer, after which this host stops keeping the name of
/// that file against the peer's version (the peer's folder may not take files from it at all).
pub(super) const YIELD_AFTER: u32 = 3;

/// What to do with an offered file, given what this host has under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
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

/// What was under a name when an offer was judged, enough to tell whether it changed since.
/// Not the change time: the exchange that puts the received file in place changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    mtime_ns: i128,
    /// A regular file (not a link or anything else).
    file: bool,
}

impl Stamp {
    /// What is at `path` now; `None` for nothing.
    pub(super) fn of(path: &Path) -> std::io::Result<Option<Self>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Ok(Some(Self {
            device,
            inode,
            size: meta.len(),
            mtime_ns: super::local::nanos(meta.modified()?),
            file: meta.file_type().is_file(),
        }))
    }
}

/// The verdict on `path` of folder `folder`, offered by `peer` with content `incoming`, and what
/// is under its name as the verdict stands (`None` once a local version was moved to a copy).
pub(super) fn judge(
    shared: &Shared,
    folder: usize,
    path: &str,
    incoming: &[u8; 32],
    peer: &PeerId,
) -> Result<(Verdict, Option<Stamp>), String> {
    let entry = &shared.config.folders[folder];
    let full = entry.path.join(path);
    let stamp = Stamp::of(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
    let Some(Stamp {
        size,
        mtime_ns,
        file: true,
        ..
    }) = stamp
    else {
        return Ok((Verdict::Take, stamp));
    };
    let take = Ok((Verdict::Take, stamp));
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
        return take;
    }
    let local = hash_file(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
    if &local == incoming {
        return take;
    }
    if !unsent && known.as_ref().is_some_and(|k| k.hash == local) {
        // Touched, not changed.
        return take;
    }
    let verdict = if keeps_name(shared, folder, path, peer)? {
        Verdict::Keep
    } else if sorts_after(shared, peer) {
        Verdict::Yield
    } else {
        Verdict::Yielded
    };
    // A version moved to a copy leaves the name free.
    Ok((
        verdict,
        (verdict == Verdict::Keep).then_some(stamp).flatten(),
    ))
}

/// Whether this host's version of `path` keeps the name against `peer`'s: its id sorts first
/// and its version can reach the peer (see the module docs).
fn keeps_name(shared: &Shared, folder: usize, path: &str, peer: &PeerId) -> Result<bool, String> {
    if sorts_after(shared, peer) {
        return Ok(false);
    }
    let entry = &shared.config.folders[folder];
    let queued = shared
        .state
        .queued(&peer.to_string(), &entry.id, path)
        .map_err(|e| e.to_string())?;
    Ok(shared
        .router
        .destinations(folder, path, None)
        .contains(peer)
        && queued.is_none_or(|job| job.attempts < YIELD_AFTER))
}

/// Whether this host's id sorts after `peer`'s, as `p2phost id` prints them.
fn sorts_after(shared: &Shared, peer: &PeerId) -> bool {
    shared.identity.id().to_string() > peer.to_string()
}

/// What became of a local change found under a name when a received file took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Replaced {
    /// Nothing was there, or what the offer was judged against: the received file keeps the name.
    Unchanged,
    /// The received file keeps the name; the local change is the copy at this path.
    Copied(String),
    /// The local change keeps the name; the received file is the copy at this path.
    Kept(String),
}

/// Settles `path` of folder `folder`, just received from `peer` with `before` under its name
/// when the offer was judged (see the module docs).
pub(super) fn settle_replaced(
    shared: &Shared,
    folder: usize,
    peer: &PeerId,
    path: &str,
    before: Option<Stamp>,
    placed: &Placed,
) -> Result<Replaced, String> {
    let Some(replaced) = &placed.replaced else {
        return Ok(Replaced::Unchanged);
    };
    let now =
        Stamp::of(replaced).map_err(|e| format!("cannot read {}: {e}", replaced.display()))?;
    if now.is_none() || now == before {
        return Ok(Replaced::Unchanged);
    }
    let entry = &shared.config.folders[folder];
    if keeps_name(shared, folder, path, peer)? {
        match exchange(replaced, &placed.path) {
            Ok(()) => {
                let copy = keep_as_copy(shared, folder, path, replaced, peer)?;
                tracing::warn!(
                    folder = %entry.id, path, copy = %copy,
                    "conflict: the file changed here while the peer's version was being \
                     received; this host's version keeps the name (its id sorts first), the \
                     peer's is kept as a copy"
                );
                return Ok(Replaced::Kept(copy));
            }
            // A file system that cannot swap: the local change becomes the copy instead.
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(e) => {
                return Err(format!(
                    "cannot put the local change of {path} back under its name: {e}"
                ));
            }
        }
    }
    let own = shared.identity.id();
    let copy = keep_as_copy(shared, folder, path, replaced, &own)?;
    tracing::warn!(
        folder = %entry.id, path, copy = %copy,
        "conflict: the file changed here while the peer's version was being received; the \
         peer's version takes the name, the local change is kept as a copy"
    );
    Ok(Replaced::Copied(copy))
}

/// Moves `from`, a version of `path` of folder `folder`, to a conflict copy of `path` named by
/// `by` (whose change lost its name), which then syncs as a file of its own. Never replaces a
/// file: a copy of that name made within the same second takes the next second. The copy's
/// path in the folder.
pub(super) fn keep_as_copy(
    shared: &Shared,
    folder: usize,
    path: &str,
    from: &Path,
    by: &PeerId,
) -> Result<String, String> {
    let root = &shared.config.folders[folder].path;
    let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
    let by = by.to_string();
    let by = by.split('-').next().unwrap_or(&by);
    let now = SystemTime::now();
    let mut last = None;
    for second in 0..10 {
        let copy_name = conflict_name(name, now + Duration::from_secs(second), by);
        let copy = if dir.is_empty() {
            copy_name
        } else {
            format!("{dir}/{copy_name}")
        };
        match rename_no_replace(from, &root.join(&copy)) {
            Ok(()) => return Ok(copy),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(copy),
            Err(e) => {
                return Err(format!(
                    "cannot keep {} as the conflict copy {}: {e}",
                    from.display(),
                    root.join(&copy).display()
                ));
            }
        }
    }
    Err(format!(
        "cannot keep {} as a conflict copy: copies up to {} exist",
        from.display(),
        last.unwrap_or_default()
    ))
}
