//! Giving a file a name that may be taken without destroying what is there: an atomic exchange
//! where the system has one (Linux `renameat2(RENAME_EXCHANGE)`, macOS `RENAME_SWAP`), so that
//! the version that was under the name survives at the other name for the caller to inspect; and
//! a move that never replaces anything.
//!
//! A plain `rename` over a name destroys whatever is there at that instant, which may be a
//! version saved a moment after anyone last looked at it; these calls leave no such window.
//! Each works on names in open folders (`*at` calls, no link followed on the way), with a path
//! form for callers that hold paths.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType};
use rustix::io::Errno;

use super::part_name::part_name;

/// Swaps `a` and `b` in `folder` atomically: afterwards `a` holds what `b` held and the other way
/// round. Both must exist ([`io::ErrorKind::NotFound`] otherwise).
/// [`io::ErrorKind::Unsupported`] where the system or the file system cannot swap.
pub fn exchange_at(folder: impl AsFd, a: &str, b: &str) -> io::Result<()> {
    swap(folder.as_fd(), a.as_ref(), b.as_ref())
}

/// [`exchange_at`] for two paths.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    swap(CWD, a, b)
}

fn swap(folder: std::os::fd::BorrowedFd<'_>, a: &Path, b: &Path) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    {
        use rustix::fs::{RenameFlags, renameat_with};
        match renameat_with(folder, a, folder, b, RenameFlags::EXCHANGE) {
            Ok(()) => Ok(()),
            // EINVAL: the file system has no exchange (NFS, FAT, some FUSE); ENOSYS: an old kernel.
            Err(Errno::INVAL | Errno::NOSYS) => Err(io::ErrorKind::Unsupported.into()),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    {
        let _ = (folder, a, b);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Moves `from` to `to` in `folder` unless something is at `to`: then
/// [`io::ErrorKind::AlreadyExists`], and nothing moved. Atomic where the system can
/// (`RENAME_NOREPLACE`), else a hard link then a removal (the link fails if the name exists).
pub fn rename_no_replace_at(folder: impl AsFd, from: &str, to: &str) -> io::Result<()> {
    move_unless_taken(folder.as_fd(), from.as_ref(), to.as_ref())
}

/// [`rename_no_replace_at`] for two paths.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    move_unless_taken(CWD, from, to)
}

fn move_unless_taken(
    folder: std::os::fd::BorrowedFd<'_>,
    from: &Path,
    to: &Path,
) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    {
        use rustix::fs::{RenameFlags, renameat_with};
        match renameat_with(folder, from, folder, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::INVAL | Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    rustix::fs::linkat(folder, from, folder, to, AtFlags::empty())?;
    Ok(rustix::fs::unlinkat(folder, from, AtFlags::empty())?)
}

/// A received file under its final name, and where the version it replaced now is.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The file's final path.
    pub path: PathBuf,
    /// What was under that name until the file took it, now under this path (a part-file name of
    /// p2phost's own, which sync folders ignore); `None` if the name was free.
    pub replaced: Option<PathBuf>,
    /// The received file's metadata, taken from the file itself before it took the name: what
    /// the name holds now may already be a newer save.
    pub received: fs::Metadata,
}

/// Moves `part` to `name` in `folder`, keeping what was there: a free name is taken without
/// replacing anything, a taken one swapped atomically, which leaves the previous version at
/// `part`; the name it is left under is returned.
pub(super) fn place_keeping(
    folder: &impl AsFd,
    part: &str,
    name: &str,
) -> io::Result<Option<String>> {
    // The name may be freed and taken again between two tries; twice is already a race.
    for _ in 0..3 {
        match rename_no_replace_at(folder, part, name) {
            Ok(()) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match exchange_at(folder, part, name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                return place_aside(folder, part, name);
            }
            Err(e) => return Err(e),
        }
        let moved = rustix::fs::statat(folder, part, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(moved.st_mode) == FileType::Directory {
            // A folder of that name: never ours to move.
            exchange_at(folder, part, name)?;
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a folder has the name of the file",
            ));
        }
        return Ok(Some(part.to_owned()));
    }
    Err(io::Error::other(
        "the name kept being taken and freed while the file was being put there",
    ))
}

/// [`place_keeping`] where the file system cannot swap: moves the previous version aside to a
/// part-file name of its own first. Between the two moves the name is briefly free; a file saved
/// there in that instant fails this one (nothing is lost: both versions stay where they are).
fn place_aside(folder: &impl AsFd, part: &str, name: &str) -> io::Result<Option<String>> {
    let aside = part_name(&format!("{name}.replaced"));
    let replaced = match rename_no_replace_at(folder, name, &aside) {
        Ok(()) => Some(aside),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    rename_no_replace_at(folder, part, name)?;
    Ok(replaced)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exchange_swaps_and_needs_both_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "A").unwrap();
        fs::write(&b, "B").unwrap();
        exchange(&a, &b).unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "B");
        assert_eq!(fs::read_to_string(&b).unwrap(), "A");
        let missing = dir.path().join("missing");
        let err = exchange(&a, &missing).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::NotFound));
        assert_eq!(fs::read_to_string(&a).unwrap(), "B");
    }

    #[test]
    fn rename_no_replace_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        fs::write(&from, "new").unwrap();
        fs::write(&to, "kept").unwrap();
        let err = rename_no_replace(&from, &to).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::AlreadyExists));
        assert_eq!(fs::read_to_string(&to).unwrap(), "kept");
        fs::remove_file(&to).unwrap();
        rename_no_replace(&from, &to).unwrap();
        assert_eq!(fs::read_to_string(&to).unwrap(), "new");
        assert!(!from.exists());
    }

    #[test]
    fn placing_keeps_what_was_under_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let folder = fs::File::open(dir.path()).unwrap();
        let (part, name) = ("x.p2phost-part", "x");
        let read = |n: &str| fs::read_to_string(dir.path().join(n)).unwrap();
        fs::write(dir.path().join(part), "received").unwrap();
        assert_eq!(place_keeping(&folder, part, name).unwrap(), None);
        assert_eq!(read(name), "received");
        fs::write(dir.path().join(part), "received again").unwrap();
        let replaced = place_keeping(&folder, part, name).unwrap();
        assert_eq!(replaced.as_deref(), Some(part));
        assert_eq!(read(name), "received again");
        assert_eq!(read(part), "received");
        // Where the file system cannot swap, the previous version goes aside first, under a
        // part-file name of p2phost's own.
        fs::write(dir.path().join(part), "third").unwrap();
        let aside = place_aside(&folder, part, name).unwrap();
        assert_eq!(aside, Some(part_name("x.replaced")));
        assert!(super::super::is_part_name(&part_name("x.replaced")));
        assert_eq!(read(name), "third");
        // A folder under the name stays where it is.
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d.p2phost-part"), "file").unwrap();
        assert!(place_keeping(&folder, "d.p2phost-part", "d").is_err());
        assert!(dir.path().join("d").is_dir());
        assert_eq!(read("d.p2phost-part"), "file");
    }
}
