//! Watching the sync folders: a [`Change`] for each file once it has stopped changing.
//!
//! Three stages, each on its own thread, joined by bounded channels:
//!
//! 1. notify's inotify thread reads the kernel's events (links are not followed);
//! 2. the debouncer (`notify-debouncer-full`) merges a path's raw events over a short window
//!    (a quarter of `settle`, 20 ms to 500 ms) and stitches renames together; its handler hands
//!    each batch on with `blocking_send`;
//! 3. the settler keeps one deadline per file, pushed back by every new event, and checks the file
//!    when it passes: still there, a regular file reached through real folders (no link on the
//!    way), and not modified within `settle` by its mtime (which also catches writes that raise no
//!    event, like `mmap`). Then it sends the [`Change`].
//!
//! So a file written in many pieces, or written as `x.p2phost-part` and renamed to `x`, gives one
//! [`Change`] for `x`. A folder that appears (created, or moved in) is walked, since inotify misses
//! what is created in it before its watch is added; when the kernel drops events (queue overflow)
//! every folder is walked and every file looked at again. Deletions are not reported, nor are
//! files that are gone when their deadline passes.
//!
//! A file is not reported again while it stays as reported (same size, mtime, ctime and inode),
//! for ten minutes after the report (or ten times `settle`): a walk after lost events, or an event
//! that changed nothing, does not repeat it. Still, a [`Change`] says "look at this file", not
//! "this file differs from what the peers have": the daemon compares it with its index, which also
//! tells a file just received from a peer (written as `NAME.p2phost-part`, renamed into place) from a
//! local change.
//!
//! Memory: one entry per file with pending events, in the debouncer and in the settler, and one
//! per file reported within those ten minutes; when the receiver of the changes falls behind, the
//! stages wait on each other instead of buffering.
//!
//! Start the watcher before the start-up scan ([`scan_folder`](super::scan_folder)): a file
//! changed in between is then seen by both, never by neither.

use std::collections::HashMap;
use std::fmt;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache, new_debouncer_opt,
};
use tokio::sync::{mpsc, oneshot};

use super::folder_scan::{WatchError, check_root, mtime_ns, regular_file, relative, walk};
use super::{FolderFilter, Glob};

/// Which folder a [`Change`] is in: the caller's own key (e.g. its index in the config).
pub type FolderKey = usize;

/// A file that was created or modified and has stopped changing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// The folder.
    pub folder: FolderKey,
    /// Relative to the folder's root, `/`-separated, valid UTF-8.
    pub path: String,
}

/// How the watcher behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// How long a file must stay unchanged before it is reported.
    pub settle: Duration,
    /// Walk every folder this often and report the files whose size or mtime changed since the
    /// previous walk, in case events were missed (e.g. past the system's limit of watches). The
    /// watcher then keeps the size and mtime of every file. Off by default.
    pub rescan_every: Option<Duration>,
    /// Report a file that never stops changing anyway, this long after its first event. Off by
    /// default: a file written without pause (a log) is never reported.
    pub max_delay: Option<Duration>,
    /// Changes buffered for the receiver (at least 1).
    pub capacity: usize,
}

impl WatchOptions {
    /// Reports a file once it has been unchanged for `settle`; no periodic walk, no maximum delay.
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            rescan_every: None,
            max_delay: None,
            capacity: 1024,
        }
    }

    /// Also walks every folder every `every`.
    #[must_use]
    pub fn rescan_every(mut self, every: Duration) -> Self {
        self.rescan_every = Some(every);
        self
    }

    /// Reports a file at most `max_delay` after its first event, even if it is still changing.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }
}

/// Batches of debounced events waiting for the settler.
const EVENT_BATCHES: usize = 16;

/// Watches folders until dropped.
pub struct FolderWatcher {
    debouncer: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    /// Dropped to stop the settler.
    stop: Option<oneshot::Sender<()>>,
    /// Set to cut a walk short.
    cancel: Arc<AtomicBool>,
    settler: Option<thread::JoinHandle<()>>,
    folders: usize,
}

impl fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FolderWatcher")
            .field("folders", &self.folders)
            .finish_non_exhaustive()
    }
}

impl FolderWatcher {
    /// Watches `folders` (key, root, ignore patterns), reporting each file once it has been
    /// unchanged for `settle`.
    pub fn start(
        folders: Vec<(FolderKey, PathBuf, Vec<Glob>)>,
        settle: Duration,
    ) -> Result<(Self, mpsc::Receiver<Change>), WatchError> {
        Self::start_with(folders, WatchOptions::new(settle))
    }

    /// [`start`](Self::start) with more options.
    pub fn start_with(
        folders: Vec<(FolderKey, PathBuf, Vec<Glob>)>,
        options: WatchOptions,
    ) -> Result<(Self, mpsc::Receiver<Change>), WatchError> {
        let folders = folders
            .into_iter()
            .map(|(key, root, ignore)| {
                Ok(Folder {
                    key,
                    root: check_root(&root)?,
                    filter: FolderFilter::new(ignore),
                })
            })
            .collect::<Result<Vec<_>, WatchError>>()?;
        let (events_tx, events_rx) = mpsc::channel(EVENT_BATCHES);
        let (changes_tx, changes_rx) = mpsc::channel(options.capacity.max(1));

        let handler = move |result: DebounceEventResult| match result {
            // An error means the settler has stopped: the watcher is being dropped.
            Ok(events) => drop(events_tx.blocking_send(events)),
            Err(errors) => errors.iter().for_each(log_notify_error),
        };
        let debounce =
            (options.settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut debouncer = new_debouncer_opt::<_, RecommendedWatcher, RecommendedCache>(
            debounce,
            None,
            handler,
            RecommendedCache::new(),
            config,
        )
        .map_err(WatchError::Init)?;
        for folder in &folders {
            debouncer
                .watch(&folder.root, RecursiveMode::Recursive)
                .map_err(|e| watch_error(&folder.root, e))?;
            tracing::debug!(root = %folder.root.display(), "watching");
        }

        let cancel = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = oneshot::channel();
        let count = folders.len();
        let settler = Settler {
            folders,
            options,
            pending: HashMap::new(),
            next_wake: None,
            snapshot: None,
            reported: HashMap::new(),
            pruned: Instant::now(),
            cancel: Arc::clone(&cancel),
            changes: changes_tx,
        };
        let span = tracing::info_span!("folder_watcher");
        // The runtime is built in its thread and stays there: a runtime must not be dropped
        // where the caller's runtime may be running.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let settler = thread::Builder::new()
            .name("p2phost-watch".into())
            .spawn(move || {
                let _entered = span.entered();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        drop(ready_tx.send(Ok(())));
                        runtime.block_on(settler.run(events_rx, stop_rx));
                    }
                    Err(e) => drop(ready_tx.send(Err(e))),
                }
            })
            .map_err(WatchError::Thread)?;
        let ready = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the thread stopped at start")));
        if let Err(e) = ready {
            drop(settler.join());
            return Err(WatchError::Thread(e));
        }
        let watcher = Self {
            debouncer: Some(debouncer),
            stop: Some(stop_tx),
            cancel,
            settler: Some(settler),
            folders: count,
        };
        Ok((watcher, changes_rx))
    }
}

impl Drop for FolderWatcher {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        drop(self.stop.take());
        // Stops inotify now and the debouncer's thread within one tick.
        drop(self.debouncer.take());
        if let Some(settler) = self.settler.take()
            && settler.join().is_err()
        {
            tracing::error!("the folder watcher's thread panicked");
        }
    }
}

fn watch_error(path: &Path, error: notify::Error) -> WatchError {
    match error.kind {
        notify::ErrorKind::MaxFilesWatch => WatchError::TooManyWatches(path.to_path_buf()),
        _ => WatchError::Watch {
            path: path.to_path_buf(),
            source: error,
        },
    }
}

fn log_notify_error(error: &notify::Error) {
    if matches!(error.kind, notify::ErrorKind::MaxFilesWatch) {
        tracing::warn!(
            "too many folders watched: changes in new folders are missed; raise the limit, e.g. \
             `sudo sysctl fs.inotify.max_user_watches=524288`, or set a periodic rescan"
        );
    } else {
        tracing::warn!(paths = ?error.paths, "watching: {error}");
    }
}

/// A watched folder.
struct Folder {
    key: FolderKey,
    /// Absolute.
    root: PathBuf,
    filter: FolderFilter,
}

/// A file's place in the settler: index of its folder, relative path.
type Key = (usize, String);

/// A file with events not reported yet.
struct Pending {
    first: Instant,
    deadline: Instant,
}

/// What an event asks the settler to look at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A file (a folder there is not reported).
    File,
    /// A new folder: walk it.
    Dir,
    /// Either: look.
    Unknown,
}

/// The settler was stopped, or nobody receives the changes any more.
struct Stopped;

/// What the check at a file's deadline found.
enum Check {
    Ready(Fingerprint),
    /// Modified within `settle` by its mtime: look again after this.
    Wait(Duration, Fingerprint),
    Gone,
}

/// What tells a file's versions apart without reading it: size, mtime, ctime (any change to the
/// inode, a `chmod` too) and inode (a file renamed into place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
}

impl Fingerprint {
    fn of(meta: &Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            inode: meta.ino(),
        }
    }
}

/// A file's last report.
struct Reported {
    fingerprint: Fingerprint,
    at: Instant,
}

/// How long a report is remembered: at least ten minutes, and ten times `settle`.
fn remember_for(settle: Duration) -> Duration {
    (settle * 10).max(Duration::from_secs(600))
}

struct Settler {
    folders: Vec<Folder>,
    options: WatchOptions,
    pending: HashMap<Key, Pending>,
    /// The earliest deadline, or earlier.
    next_wake: Option<Instant>,
    /// Size and mtime of every file at the last walk, with `rescan_every`.
    snapshot: Option<HashMap<Key, (u64, i128)>>,
    /// Recent reports: a file unchanged since is not reported again.
    reported: HashMap<Key, Reported>,
    /// When old reports were last forgotten.
    pruned: Instant,
    cancel: Arc<AtomicBool>,
    changes: mpsc::Sender<Change>,
}

impl Settler {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Vec<DebouncedEvent>>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut rescan = self.options.rescan_every.map(|every| {
            self.snapshot = Some(self.walk_all());
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            let wake = self.next_wake;
            let sleep =
                tokio::time::sleep_until(wake.map_or_else(tokio::time::Instant::now, |w| {
                    tokio::time::Instant::from_std(w)
                }));
            tokio::select! {
                biased;
                _ = &mut stop => return,
                () = sleep, if wake.is_some() => {
                    if self.sweep(&mut stop).await.is_err() {
                        return;
                    }
                }
                batch = events.recv() => match batch {
                    Some(batch) => self.ingest(batch),
                    None => return,
                },
                () = tick(&mut rescan) => self.rescan(),
            }
        }
    }

    /// Takes in a batch of debounced events.
    fn ingest(&mut self, batch: Vec<DebouncedEvent>) {
        let now = Instant::now();
        let mut lost_events = false;
        let mut touched = Vec::new();
        for event in &batch {
            if event.need_rescan() {
                lost_events = true;
                continue;
            }
            self.warn_if_root_went_away(event);
            let Some((path, target)) = target(event) else {
                continue;
            };
            for (index, folder) in self.folders.iter().enumerate() {
                let Some(rel) = relative(&folder.root, path) else {
                    continue;
                };
                let is_dir = match target {
                    Target::File => false,
                    Target::Dir | Target::Unknown => {
                        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
                    }
                };
                if is_dir {
                    if !folder.filter.enters_dir(&rel) {
                        continue;
                    }
                    tracing::debug!(folder = folder.key, dir = %rel, "new folder, walking it");
                    let walked = walk(
                        &folder.root,
                        &rel,
                        &folder.filter,
                        &self.cancel,
                        |rel, _| {
                            touched.push((index, rel));
                        },
                    );
                    if let Err(e) = walked {
                        tracing::debug!(folder = folder.key, dir = %rel, "cannot walk: {e}");
                    }
                } else if folder.filter.syncs_file(&rel) {
                    touched.push((index, rel));
                }
            }
        }
        for key in touched {
            self.touch(key, now);
        }
        if lost_events {
            tracing::warn!(
                "file events were lost (the kernel's queue overflowed); walking every folder"
            );
            let all = self.walk_all();
            let now = Instant::now();
            for key in all.keys() {
                self.touch(key.clone(), now);
            }
            if self.snapshot.is_some() {
                self.snapshot = Some(all);
            }
        }
    }

    fn warn_if_root_went_away(&self, event: &DebouncedEvent) {
        let gone = matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        );
        if let (true, Some(path)) = (gone, event.paths.first())
            && let Some(folder) = self.folders.iter().find(|f| &f.root == path)
        {
            tracing::warn!(
                folder = folder.key,
                root = %folder.root.display(),
                "the folder was removed or moved away; it is no longer watched"
            );
        }
    }

    /// Records an event for `key`: its deadline moves to `settle` from now.
    fn touch(&mut self, key: Key, now: Instant) {
        let pending = self.pending.entry(key).or_insert(Pending {
            first: now,
            deadline: now,
        });
        let mut deadline = now + self.options.settle;
        if let Some(max_delay) = self.options.max_delay {
            deadline = deadline.min(pending.first + max_delay);
        }
        pending.deadline = deadline;
        self.next_wake = Some(self.next_wake.map_or(deadline, |wake| wake.min(deadline)));
    }

    /// Checks the files whose deadline passed and sends those ready.
    async fn sweep(&mut self, stop: &mut oneshot::Receiver<()>) -> Result<(), Stopped> {
        let now = Instant::now();
        let now_system = SystemTime::now();
        let due: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(key, _)| key.clone())
            .collect();
        let mut ready = Vec::new();
        for key in due {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            let Some(pending) = self.pending.remove(&key) else {
                continue;
            };
            match self.check(&key, now_system) {
                Check::Ready(fingerprint) => ready.push((key, fingerprint)),
                Check::Gone => {}
                Check::Wait(wait, fingerprint) => {
                    let mut deadline = now + wait;
                    if let Some(max_delay) = self.options.max_delay {
                        deadline = deadline.min(pending.first + max_delay);
                    }
                    if deadline <= now {
                        ready.push((key, fingerprint));
                    } else {
                        self.pending.insert(
                            key,
                            Pending {
                                deadline,
                                ..pending
                            },
                        );
                    }
                }
            }
        }
        self.next_wake = self.pending.values().map(|p| p.deadline).min();
        let remember = remember_for(self.options.settle);
        if now.duration_since(self.pruned) >= remember / 2 {
            self.reported
                .retain(|_, reported| now.duration_since(reported.at) < remember);
            self.pruned = now;
        }
        ready.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, fingerprint) in ready {
            let unchanged = self
                .reported
                .get(&key)
                .is_some_and(|reported| reported.fingerprint == fingerprint);
            if unchanged {
                tracing::trace!(path = %key.1, "unchanged since reported");
                continue;
            }
            self.reported.insert(
                key.clone(),
                Reported {
                    fingerprint,
                    at: now,
                },
            );
            let (index, path) = key;
            let change = Change {
                folder: self.folders[index].key,
                path,
            };
            tracing::trace!(folder = change.folder, path = %change.path, "changed");
            tokio::select! {
                sent = self.changes.send(change) => sent.map_err(|_| Stopped)?,
                _ = &mut *stop => return Err(Stopped),
            }
        }
        Ok(())
    }

    /// Whether the file at `key` is ready to report.
    fn check(&self, (index, rel): &Key, now: SystemTime) -> Check {
        let folder = &self.folders[*index];
        match regular_file(&folder.root, rel) {
            Ok(Some(meta)) => {
                let fingerprint = Fingerprint::of(&meta);
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok());
                match age {
                    Some(age) if age < self.options.settle => {
                        Check::Wait(self.options.settle - age, fingerprint)
                    }
                    _ => Check::Ready(fingerprint),
                }
            }
            Ok(None) => Check::Gone,
            Err(e) => {
                log_unreadable(&folder.root, rel, &e);
                Check::Gone
            }
        }
    }

    /// The periodic walk: reports what changed since the last one.
    fn rescan(&mut self) {
        let all = self.walk_all();
        let now = Instant::now();
        let changed: Vec<Key> = match &self.snapshot {
            Some(before) => all
                .iter()
                .filter(|(key, now)| before.get(*key) != Some(*now))
                .map(|(key, _)| key.clone())
                .collect(),
            None => all.keys().cloned().collect(),
        };
        if !changed.is_empty() {
            tracing::debug!(files = changed.len(), "the periodic walk found changes");
        }
        for key in changed {
            self.touch(key, now);
        }
        self.snapshot = Some(all);
    }

    /// Size and mtime of every syncable file of every folder.
    fn walk_all(&self) -> HashMap<Key, (u64, i128)> {
        let mut all = HashMap::new();
        for (index, folder) in self.folders.iter().enumerate() {
            let walked = walk(
                &folder.root,
                "",
                &folder.filter,
                &self.cancel,
                |rel, meta| {
                    all.insert((index, rel), (meta.len(), mtime_ns(meta)));
                },
            );
            if let Err(e) = walked {
                tracing::warn!(folder = folder.key, "cannot walk the folder: {e}");
            }
        }
        all
    }
}

fn log_unreadable(root: &Path, rel: &str, e: &io::Error) {
    tracing::warn!(root = %root.display(), path = %rel, "cannot read, not reported: {e}");
}

/// The path an event is about, and what to do with it; `None` for events that change nothing to
/// report (reads, deletions, the old name of a rename).
fn target(event: &DebouncedEvent) -> Option<(&Path, Target)> {
    let (path, target) = match event.kind {
        EventKind::Create(CreateKind::File) => (event.paths.first(), Target::File),
        EventKind::Create(CreateKind::Folder) => (event.paths.first(), Target::Dir),
        EventKind::Create(_) | EventKind::Any => (event.paths.first(), Target::Unknown),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            (event.paths.last(), Target::Unknown)
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Any)) => {
            (event.paths.first(), Target::Unknown)
        }
        EventKind::Modify(ModifyKind::Name(_)) => return None,
        EventKind::Modify(_) | EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            (event.paths.first(), Target::File)
        }
        EventKind::Access(_) | EventKind::Remove(_) | EventKind::Other => return None,
    };
    path.map(|path| (path.as_path(), target))
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "watcher_tests.rs"]
mod tests;
