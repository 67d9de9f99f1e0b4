//! The folder a transfer is received into, and every folder under it, reached without following a
//! symbolic link.
//!
//! The folder itself (`--out`, or a sync folder) is the user's choice and may be reached through
//! links (`~/Downloads -> /data/dl`): it is opened once, by path, and held open. Everything below
//! it is named by the peer, so it is reached from that handle one name at a time with `openat`
//! (`O_NOFOLLOW | O_DIRECTORY`) and created with `mkdirat`: a link anywhere on the way is an error,
//! never a way out. What is done in a folder (a part file created, opened, renamed into place) is
//! done relative to the handle of the folder so reached, so a link swapped in on the way while a
//! transfer runs leads nowhere: nothing is named by path from the destination down.
//!
//! Walking costs one `openat` per folder level each time a part file is opened, never per chunk;
//! a part file's folder is held only while the part file is open (see
//! [`PartFiles`](super::PartFiles)), so an offer of any number of folders holds few.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{SafePath, StoreError};

/// The folder received into, held open.
#[derive(Debug)]
pub struct Destination {
    dir: OwnedFd,
    path: PathBuf,
}

/// A folder in a [`Destination`], open for the `*at` calls that follow ([`Destination::at`]).
#[derive(Debug)]
pub(crate) enum Folder {
    /// The destination itself.
    Root,
    /// A folder below it.
    Below(OwnedFd),
}

fn io_error(path: &Path, errno: Errno) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: io::Error::from(errno),
    }
}

/// Opens the folder `name` in `parent`, not through a link.
fn open_folder(parent: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Why `name` in `parent` could not be opened as a folder: a link, something else, or `errno`.
fn not_a_folder(parent: BorrowedFd<'_>, name: &str, at: &Path, errno: Errno) -> StoreError {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
            StoreError::Symlink(at.to_path_buf())
        }
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) != FileType::Directory => {
            StoreError::NotAFolder(at.to_path_buf())
        }
        _ => io_error(at, errno),
    }
}

impl Destination {
    /// Opens `path`, creating it (and its parents) first if needed. The path is the user's:
    /// links on the way to it are followed.
    pub fn open(path: &Path) -> Result<Arc<Self>, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(e.into()))?;
        Ok(Arc::new(Self {
            dir,
            path: path.to_path_buf(),
        }))
    }

    /// Where it is, as the user named it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle of `folder`, for the `*at` calls.
    pub(crate) fn at<'a>(&'a self, folder: &'a Folder) -> BorrowedFd<'a> {
        match folder {
            Folder::Root => self.dir.as_fd(),
            Folder::Below(fd) => fd.as_fd(),
        }
    }

    /// Creates the folder `dir` and every folder on the way to it that is missing.
    pub fn make_dir(&self, dir: &SafePath) -> Result<(), StoreError> {
        self.walk(dir.components(), true).map(drop)
    }

    /// The folder that holds `path`, created if `create`; `None` if it does not exist and
    /// `create` is false.
    pub(crate) fn parent_of(
        &self,
        path: &SafePath,
        create: bool,
    ) -> Result<Option<Folder>, StoreError> {
        let components = path.components();
        let folders = &components[..components.len().saturating_sub(1)];
        self.walk(folders, create)
    }

    /// Opens each of `names` in turn from the destination, without following links; creates the
    /// missing ones if `create`.
    fn walk(&self, names: &[String], create: bool) -> Result<Option<Folder>, StoreError> {
        let mut at = self.path.clone();
        let mut current = Folder::Root;
        for name in names {
            at.push(name);
            let parent = self.at(&current);
            let next = match open_folder(parent, name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(parent, name.as_str(), Mode::from_raw_mode(0o777)) {
                        // Made by someone else meanwhile: opened below like any other.
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io_error(&at, e)),
                    }
                    open_folder(parent, name).map_err(|e| not_a_folder(parent, name, &at, e))?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(not_a_folder(parent, name, &at, e)),
            };
            current = Folder::Below(next);
        }
        Ok(Some(current))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn path(p: &str) -> SafePath {
        SafePath::from_peer(p).unwrap()
    }

    #[test]
    fn makes_folders_inside_and_none_through_a_link() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let outside = parent.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let dest = Destination::open(&out).unwrap();
        dest.make_dir(&path("a/b/c")).unwrap();
        assert!(out.join("a/b/c").is_dir());
        // Again: nothing to do, no error.
        dest.make_dir(&path("a/b")).unwrap();

        std::os::unix::fs::symlink("../outside", out.join("link")).unwrap();
        std::os::unix::fs::symlink("../../outside", out.join("a/deep")).unwrap();
        for through in ["link", "link/pwned/deeper", "a/deep/x"] {
            match dest.make_dir(&path(through)) {
                Err(StoreError::Symlink(at)) => {
                    assert!(at.ends_with("link") || at.ends_with("deep"), "{at:?}");
                }
                other => panic!("{through}: {other:?}"),
            }
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

        std::fs::write(out.join("file"), b"x").unwrap();
        assert!(matches!(
            dest.make_dir(&path("file/sub")),
            Err(StoreError::NotAFolder(_))
        ));
        assert!(
            dest.parent_of(&path("none/here/f"), false)
                .unwrap()
                .is_none()
        );
        assert!(dest.parent_of(&path("f"), false).unwrap().is_some());
    }

    #[test]
    fn the_destination_itself_may_be_reached_through_a_link() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", parent.path().join("Downloads")).unwrap();
        let dest = Destination::open(&parent.path().join("Downloads")).unwrap();
        dest.make_dir(&path("x/y")).unwrap();
        assert!(parent.path().join("real/x/y").is_dir());
    }
}
