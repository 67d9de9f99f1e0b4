//! `p2p.move(path, dir)`: the one filesystem power a script can be granted.
//!
//! A received file that lies inside a directory the operator granted may be moved into a
//! subfolder of that same directory, and nowhere else. The checks, in order:
//! - some directory must be granted at all;
//! - `dir` is relative and made only of plain names (no `..`, `.`, root or drive prefix);
//! - the file is a regular file, not a symlink, and its real parent lies inside a granted
//!   directory (so a symlinked parent pointing elsewhere does not count as inside);
//! - every part of the subfolder that already exists is a real directory, not a symlink; the
//!   missing parts are created;
//! - the target name must be free: the move is a hard link (which fails if the name exists, with
//!   no window for a race) followed by removing the old name, so nothing is ever overwritten.
//!
//! The checks happen just before use; they guard against a script, not against another local
//! user racing the host inside the granted directory.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a move was refused; the message is shown to the operator as the script's error.
#[derive(Debug, thiserror::Error)]
pub(super) enum MoveError {
    #[error("no directory is granted to this script (the operator grants some with move_dirs)")]
    NotGranted,
    #[error("{0:?} is not a plain relative folder name (no '..', '.', or absolute paths)")]
    BadDir(String),
    #[error("{0} is not inside a granted directory")]
    Outside(PathBuf),
    #[error("{0} is not a regular file (symlinks are not moved)")]
    NotAFile(PathBuf),
    #[error("{0} exists and is not a directory, or is a symlink")]
    NotADir(PathBuf),
    #[error("{0} already exists; nothing is overwritten")]
    Exists(PathBuf),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MoveError {
    move |source| MoveError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Moves `file` into `<granted root>/<dir>/<file name>`, where the granted root is the granted
/// directory the file is in. Returns the new path.
pub(super) fn move_into(granted: &[PathBuf], file: &Path, dir: &str) -> Result<PathBuf, MoveError> {
    if granted.is_empty() {
        return Err(MoveError::NotGranted);
    }
    let sub = Path::new(dir);
    let plain = sub.components().all(|c| matches!(c, Component::Normal(_)));
    if dir.is_empty() || !plain {
        return Err(MoveError::BadDir(dir.to_owned()));
    }

    let meta = fs::symlink_metadata(file).map_err(io_err("cannot read", file))?;
    if !meta.file_type().is_file() {
        return Err(MoveError::NotAFile(file.to_path_buf()));
    }
    let (Some(parent), Some(name)) = (file.parent(), file.file_name()) else {
        return Err(MoveError::NotAFile(file.to_path_buf()));
    };
    // An empty parent means a bare file name, relative to the working directory.
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let real_parent = parent
        .canonicalize()
        .map_err(io_err("cannot resolve", parent))?;
    // Granted directories that do not exist (yet) simply match nothing.
    let root = granted
        .iter()
        .filter_map(|g| g.canonicalize().ok())
        .find(|g| real_parent.starts_with(g))
        .ok_or_else(|| MoveError::Outside(file.to_path_buf()))?;

    let mut target_dir = root;
    for part in sub.components() {
        target_dir.push(part);
        match fs::symlink_metadata(&target_dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(MoveError::NotADir(target_dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&target_dir).map_err(io_err("cannot create", &target_dir))?;
            }
            Err(e) => return Err(io_err("cannot read", &target_dir)(e)),
        }
    }
    let target = target_dir.join(name);
    let real_file = real_parent.join(name);
    if real_file == target {
        return Ok(target);
    }
    match fs::hard_link(&real_file, &target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(MoveError::Exists(target));
        }
        Err(e) => return Err(io_err("cannot move to", &target)(e)),
    }
    fs::remove_file(&real_file).map_err(io_err("moved, but cannot remove", &real_file))?;
    Ok(target)
}
