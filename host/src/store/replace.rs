//! Giving a file a name that may be taken without destroying what is there: an atomic exchange
//! where the system has one (Linux `renameat2(RENAME_EXCHANGE)`, macOS `RENAME_SWAP`), so that
//! the version that was under the name survives at the other name for the caller to inspect; and
//! a move that never replaces anything.
//!
//! A plain `rename` over a name destroys whatever is there at that instant, which may be a
//! version saved a moment after anyone last looked at it; these calls leave no such window.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Swaps the files at `a` and `b` atomically: afterwards `a` holds what `b` held and the other
/// way round. Both must exist ([`io::ErrorKind::NotFound`] otherwise).
/// [`io::ErrorKind::Unsupported`] where the system or the file system cannot swap.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
            Ok(()) => Ok(()),
            // EINVAL: the file system has no exchange (NFS, FAT, some FUSE); ENOSYS: an old kernel.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                Err(io::ErrorKind::Unsupported.into())
            }
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    {
        let _ = (a, b);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Moves `from` to `to` unless something is at `to`: then [`io::ErrorKind::AlreadyExists`], and
/// nothing moved. Atomic where the system can (`RENAME_NOREPLACE`), else a hard link then a
/// removal (the link fails if the name exists).
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::hard_link(from, to)?;
    fs::remove_file(from)
}

/// A received file under its final name, and where the version it replaced now is.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The file's final path.
    pub path: PathBuf,
    /// What was under that name until the file took it, now under this path; `None` if the
    /// name was free.
    pub replaced: Option<PathBuf>,
    /// The received file's metadata, taken from the file itself before it took the name: what
    /// the name holds now may already be a newer save.
    pub received: fs::Metadata,
}

/// Moves `part` to `name`, keeping what was there: a free name is taken without replacing
/// anything, a taken one swapped atomically, which leaves the previous version at `part`; its
/// path is returned.
pub(super) fn place_keeping(part: &Path, name: &Path) -> io::Result<Option<PathBuf>> {
    // The name may be freed and taken again between two tries; twice is already a race.
    for _ in 0..3 {
        match rename_no_replace(part, name) {
            Ok(()) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match exchange(part, name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => return place_aside(part, name),
            Err(e) => return Err(e),
        }
        if fs::symlink_metadata(part).is_ok_and(|m| m.is_dir()) {
            // A folder of that name: never ours to move.
            exchange(part, name)?;
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a folder has the name of the file",
            ));
        }
        return Ok(Some(part.to_path_buf()));
    }
    Err(io::Error::other(
        "the name kept being taken and freed while the file was being put there",
    ))
}

/// [`place_keeping`] where the file system cannot swap: moves the previous version to
/// `PART.replaced` first. Between the two moves the name is briefly free; a file saved there in
/// that instant fails this one (nothing is lost: both versions stay where they are).
fn place_aside(part: &Path, name: &Path) -> io::Result<Option<PathBuf>> {
    let mut aside = part.as_os_str().to_owned();
    aside.push(".replaced");
    let aside = PathBuf::from(aside);
    let replaced = match rename_no_replace(name, &aside) {
        Ok(()) => Some(aside),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    rename_no_replace(part, name)?;
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_swaps_and_needs_both_names() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "A").unwrap_or_else(|e| panic!("{e}"));
        fs::write(&b, "B").unwrap_or_else(|e| panic!("{e}"));
        exchange(&a, &b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_to_string(&a).ok().as_deref(), Some("B"));
        assert_eq!(fs::read_to_string(&b).ok().as_deref(), Some("A"));
        let missing = dir.path().join("missing");
        let err = exchange(&a, &missing).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::NotFound));
        assert_eq!(fs::read_to_string(&a).ok().as_deref(), Some("B"));
    }

    #[test]
    fn rename_no_replace_never_replaces() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        fs::write(&from, "new").unwrap_or_else(|e| panic!("{e}"));
        fs::write(&to, "kept").unwrap_or_else(|e| panic!("{e}"));
        let err = rename_no_replace(&from, &to).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::AlreadyExists));
        assert_eq!(fs::read_to_string(&to).ok().as_deref(), Some("kept"));
        fs::remove_file(&to).unwrap_or_else(|e| panic!("{e}"));
        rename_no_replace(&from, &to).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_to_string(&to).ok().as_deref(), Some("new"));
        assert!(!from.exists());
    }

    #[test]
    fn placing_keeps_what_was_under_the_name() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (part, name) = (dir.path().join("x.part"), dir.path().join("x"));
        fs::write(&part, "received").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(place_keeping(&part, &name).ok(), Some(None));
        assert_eq!(fs::read_to_string(&name).ok().as_deref(), Some("received"));
        fs::write(&part, "received again").unwrap_or_else(|e| panic!("{e}"));
        let replaced = place_keeping(&part, &name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(replaced.as_deref(), Some(part.as_path()));
        assert_eq!(
            fs::read_to_string(&name).ok().as_deref(),
            Some("received again")
        );
        assert_eq!(fs::read_to_string(&part).ok().as_deref(), Some("received"));
        // Where the file system cannot swap, the previous version goes aside first.
        fs::write(&part, "third").unwrap_or_else(|e| panic!("{e}"));
        let aside = place_aside(&part, &name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(aside, Some(dir.path().join("x.part.replaced")));
        assert_eq!(fs::read_to_string(&name).ok().as_deref(), Some("third"));
        // A folder under the name stays where it is.
        let folder = dir.path().join("d");
        fs::create_dir(&folder).unwrap_or_else(|e| panic!("{e}"));
        let part = dir.path().join("d.part");
        fs::write(&part, "file").unwrap_or_else(|e| panic!("{e}"));
        assert!(place_keeping(&part, &folder).is_err());
        assert!(folder.is_dir());
        assert_eq!(fs::read_to_string(&part).ok().as_deref(), Some("file"));
    }
}
