//! Watch-folder sync for the daemon (DESIGN §7): which files go to which peers, decided without
//! I/O so it is tested without a disk or a network.

mod conflict;
mod glob;
mod plan;
mod state;

pub use conflict::{conflict_name, is_conflict_copy};
pub use glob::{Glob, GlobError};
pub use plan::{FolderRoute, Router};
pub use state::{
    Batch, FIRST_RETRY, FileVersion, IndexEntry, Job, MAX_RETRY, Origin, StateError, SyncState,
    backoff,
};

// Watching the folders: which files count, walks, and the debounced watcher.
mod filter;
mod folder_scan;
mod watcher;

pub use filter::{FolderFilter, P2PHOST_DIR, is_syncable, is_temporary_name};
pub use folder_scan::{ScannedEntry, WatchError, scan_folder};
pub use watcher::{Change, FolderKey, FolderWatcher, WatchOptions};
