//! A full walk of a watched folder: what the daemon compares with its index at start-up, and what
//! the watcher walks when a folder appears or events were lost.
//!
//! Symbolic links are never followed (below the folder's root) nor reported, special files
//! (sockets, pipes, devices) are left out, and so are names that are not UTF-8 (with a warning):
//! a path must be valid UTF-8 to be sent to a peer.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{FolderFilter, Glob};

/// Why a folder cannot be walked or watched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The folder (or the current directory, for a relative one) could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The path is not a folder.
    #[error("{} is not a folder; check the [[folders]] path", .0.display())]
    NotAFolder(PathBuf),
    /// The system's limit on watched folders was reached.
    #[error(
        "cannot watch {}: too many folders are watched; raise the limit, e.g. \
         `sudo sysctl fs.inotify.max_user_watches=524288`", .0.display()
    )]
    TooManyWatches(PathBuf),
    /// The system's watching could not be started (e.g. past its limit of inotify instances).
    #[error("cannot start watching folders: {0}")]
    Init(notify::Error),
    /// The watch could not be set up.
    #[error("cannot watch {}: {source}", .path.display())]
    Watch {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: notify::Error,
    },
    /// The watcher's thread could not be started.
    #[error("cannot start the folder watcher: {0}")]
    Thread(io::Error),
}

/// A regular file found by [`scan_folder`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScannedEntry {
    /// Relative to the folder, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, in nanoseconds since the Unix epoch (negative before 1970).
    pub mtime_ns: i128,
}

/// Walks the folder at `root`: every regular file that [`is_syncable`](super::is_syncable) with
/// `ignore`, sorted by path. Folders that are ignored are not entered; a sub-folder that cannot be
/// read is skipped with a warning, only the root itself is an error.
pub fn scan_folder(root: &Path, ignore: &[Glob]) -> Result<Vec<ScannedEntry>, WatchError> {
    let root = check_root(root)?;
    let filter = FolderFilter::new(ignore.to_vec());
    let mut entries = Vec::new();
    walk(&root, "", &filter, &AtomicBool::new(false), |path, meta| {
        entries.push(ScannedEntry {
            path,
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
        });
    })?;
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// Nanoseconds since the Unix epoch of the last modification.
pub(super) fn mtime_ns(meta: &Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// Checks that `root` is a folder (following a link at the root itself) and returns it absolute.
pub(super) fn check_root(root: &Path) -> Result<PathBuf, WatchError> {
    let absolute = std::path::absolute(root).map_err(|source| WatchError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let meta = fs::metadata(&absolute).map_err(|source| WatchError::Io {
        path: absolute.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(WatchError::NotAFolder(absolute));
    }
    Ok(absolute)
}

/// Walks the folder `start` (relative to `root`, `""` for the root itself) without following
/// links, calling `visit` with each syncable regular file's relative path and metadata. Stops
/// early, without an error, once `cancel` is set. Only reading `start` itself is an error.
pub(super) fn walk(
    root: &Path,
    start: &str,
    filter: &FolderFilter,
    cancel: &AtomicBool,
    mut visit: impl FnMut(String, &Metadata),
) -> Result<(), WatchError> {
    let mut pending = vec![start.to_owned()];
    while let Some(dir_rel) = pending.pop() {
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        let dir = join(root, &dir_rel);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(source) if dir_rel == start => return Err(WatchError::Io { path: dir, source }),
            Err(e) => {
                skip_unreadable(&dir, &e);
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "cannot list: {e}");
                    break;
                }
            };
            let file_name = entry.file_name();
            let Some(name) = utf8_name(&file_name, &entry.path()) else {
                continue;
            };
            let rel = if dir_rel.is_empty() {
                name.to_owned()
            } else {
                format!("{dir_rel}/{name}")
            };
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(e) => {
                    skip_unreadable(&entry.path(), &e);
                    continue;
                }
            };
            if file_type.is_dir() {
                if filter.enters_dir(&rel) {
                    pending.push(rel);
                }
            } else if file_type.is_file() && filter.syncs_file(&rel) {
                // `DirEntry::metadata` does not follow links.
                match entry.metadata() {
                    Ok(meta) => visit(rel, &meta),
                    Err(e) => skip_unreadable(&entry.path(), &e),
                }
            } else if file_type.is_symlink() {
                tracing::debug!(path = %entry.path().display(), "symbolic link not synced");
            }
        }
    }
    Ok(())
}

fn skip_unreadable(path: &Path, e: &io::Error) {
    if e.kind() == io::ErrorKind::NotFound {
        tracing::debug!(path = %path.display(), "gone while walking");
    } else {
        tracing::warn!(path = %path.display(), "skipped, cannot read: {e}");
    }
}

fn utf8_name<'a>(name: &'a OsStr, path: &Path) -> Option<&'a str> {
    let name = name.to_str();
    if name.is_none() {
        tracing::warn!(
            path = %path.display(),
            "not synced: the name is not valid UTF-8; rename it to sync it"
        );
    }
    name
}

/// `root` joined with a relative `/`-separated path.
pub(super) fn join(root: &Path, rel: &str) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(rel.split('/').filter(|c| !c.is_empty()));
    path
}

/// The `/`-separated path of `path` relative to `root`, or `None` when it is the root itself, is
/// not under it, or is not UTF-8.
pub(super) fn relative(root: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    let mut rel = String::new();
    for component in rest.components() {
        let Component::Normal(name) = component else {
            return None;
        };
        let Some(name) = name.to_str() else {
            // Warned about by the walks; events would repeat it for every write.
            tracing::debug!(path = %path.display(), "not UTF-8, not synced");
            return None;
        };
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(name);
    }
    (!rel.is_empty()).then_some(rel)
}

/// Whether the file at `rel` is a regular file reached through real folders only (no link on the
/// way), with its metadata; `Ok(None)` when it is gone or something else.
pub(super) fn regular_file(root: &Path, rel: &str) -> io::Result<Option<Metadata>> {
    let path = join(root, rel);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() {
        return Ok(None);
    }
    let mut dir = root.to_path_buf();
    let mut parents = rel.split('/').filter(|c| !c.is_empty()).peekable();
    while let Some(component) = parents.next() {
        if parents.peek().is_none() {
            break;
        }
        dir.push(component);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(meta))
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    use super::*;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn write(root: &Path, rel: &str, contents: &[u8]) {
        let path = join(root, rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    }

    #[test]
    fn scan_folder_lists_syncable_regular_files_only() {
        let dir = tempdir();
        let root = dir.path();
        write(root, "a.txt", b"hello");
        write(root, "sub/deep/b.bin", &[0; 1000]);
        write(root, "sub/c.txt.part", b"partial");
        write(root, "sub/.c.txt.swp", b"swap");
        write(root, "notes.tmp", b"tmp");
        write(root, "x.raw", b"raw");
        write(root, "cache/big", b"cached");
        write(root, ".p2phost/state", b"state");
        write(
            root,
            "r.sync-conflict-20260501-101500-MFZWI3D.txt",
            b"conflict",
        );
        let outside = tempdir();
        write(outside.path(), "secret.txt", b"secret");
        symlink(join(root, "a.txt"), join(root, "link.txt")).unwrap_or_else(|e| panic!("{e}"));
        symlink(outside.path(), join(root, "linkdir")).unwrap_or_else(|e| panic!("{e}"));
        let bad_name = join(root, "sub").join(OsStr::from_bytes(b"bad-\xff.txt"));
        fs::write(&bad_name, b"x").unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir(join(root, "empty")).unwrap_or_else(|e| panic!("{e}"));

        let ignore = [
            Glob::new("*.raw").unwrap_or_else(|e| panic!("{e}")),
            Glob::new("cache/**").unwrap_or_else(|e| panic!("{e}")),
        ];
        let entries = scan_folder(root, &ignore).unwrap_or_else(|e| panic!("{e}"));
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "a.txt",
                "r.sync-conflict-20260501-101500-MFZWI3D.txt",
                "sub/deep/b.bin"
            ]
        );
        let meta = fs::metadata(join(root, "sub/deep/b.bin")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries[2].size, 1000);
        assert_eq!(entries[2].mtime_ns, mtime_ns(&meta));
        assert!(entries[2].mtime_ns > 1_600_000_000 * 1_000_000_000);
    }

    #[test]
    fn scan_folder_refuses_a_missing_root_or_a_file() {
        let dir = tempdir();
        let missing = dir.path().join("missing");
        assert!(matches!(
            scan_folder(&missing, &[]),
            Err(WatchError::Io { .. })
        ));
        write(dir.path(), "f", b"x");
        assert!(matches!(
            scan_folder(&dir.path().join("f"), &[]),
            Err(WatchError::NotAFolder(_))
        ));
        assert!(matches!(
            check_root(&dir.path().join("f")),
            Err(WatchError::NotAFolder(_))
        ));
    }

    #[test]
    fn relative_paths_and_links_on_the_way() {
        let dir = tempdir();
        let root = dir.path();
        assert_eq!(
            relative(root, &root.join("a/b.txt")),
            Some("a/b.txt".into())
        );
        assert_eq!(relative(root, root), None);
        assert_eq!(relative(root, Path::new("/elsewhere/x")), None);
        let bad = root.join(OsStr::from_bytes(b"\xfe"));
        assert_eq!(relative(root, &bad), None);

        write(root, "real/f.txt", b"x");
        symlink(join(root, "real"), join(root, "via")).unwrap_or_else(|e| panic!("{e}"));
        let found = |rel: &str| regular_file(root, rel).unwrap_or_else(|e| panic!("{e}"));
        assert!(found("real/f.txt").is_some());
        assert!(found("via/f.txt").is_none());
        assert!(found("real").is_none());
        assert!(found("real/missing").is_none());
    }
}
