//! How a file being received is told apart from everything else in the folder: a name of
//! p2phost's own, and a mark on the file that ties it to the name it is for.
//!
//! - The name is `NAME.p2phost-part`: no other program writes that suffix, and a peer cannot
//!   offer it (it is a reserved name, see [`SafePath`](super::SafePath)), so a user's own
//!   `NAME.part` (a browser's download, notes) is never taken for one. A name too long for the
//!   suffix keeps a prefix and gets a hash of the whole name instead, within the 255-byte limit.
//! - A new part file is created exclusively (`O_CREAT | O_EXCL`, never through a link): a file that
//!   happens to have that name is never opened as new, truncated or renamed.
//! - Where the filesystem keeps user extended attributes (ext4, XFS, Btrfs, tmpfs, ZFS…), the part
//!   file carries `user.p2phost.part` = `NAME`, set when it is created and removed before it is
//!   renamed into place. A later attempt resumes only a part file with that mark; one without is
//!   someone else's, left untouched, and the receive stops with an error naming it. On a
//!   filesystem without them (FAT, exFAT, some network mounts) the name alone says it is ours.

use std::io;
use std::os::fd::AsFd;

use rustix::io::Errno;

use super::MAX_NAME_BYTES;

/// What p2phost appends to a file's name while receiving it.
pub const PART_SUFFIX: &str = ".p2phost-part";

/// The extended attribute that marks a part file as p2phost's; its value is the final name.
const MARK: &str = "user.p2phost.part";

/// Hex digits of the name's hash in the part name of a name too long to keep whole.
const HASH_DIGITS: usize = 16;

/// The name of the part file of `name`.
pub fn part_name(name: &str) -> String {
    if name.len() + PART_SUFFIX.len() <= MAX_NAME_BYTES {
        return format!("{name}{PART_SUFFIX}");
    }
    // `PREFIX~HASH.p2phost-part`, cut at a character boundary.
    let room = MAX_NAME_BYTES - PART_SUFFIX.len() - 1 - HASH_DIGITS;
    let mut cut = room.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    format!(
        "{}~{}{PART_SUFFIX}",
        &name[..cut],
        &hash.as_str()[..HASH_DIGITS]
    )
}

/// Whether `name` has the form of a part file's name (ASCII case aside, as some filesystems
/// ignore case).
pub fn is_part_name(name: &str) -> bool {
    name.len() > PART_SUFFIX.len()
        && name
            .get(name.len() - PART_SUFFIX.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(PART_SUFFIX))
}

/// Who made an existing file that has a part file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Maker {
    /// p2phost, for this name: it carries the mark.
    Us,
    /// Someone else: the filesystem keeps marks, and this file has none (or another's).
    Someone,
    /// The filesystem keeps no marks: the name is all there is to go by.
    Unknown,
}

/// Marks a part file just created for `name`. `Ok(false)`: the filesystem keeps no marks.
pub(crate) fn mark(file: impl AsFd, name: &str) -> io::Result<bool> {
    match rustix::fs::fsetxattr(file, MARK, name.as_bytes(), rustix::fs::XattrFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::NOTSUP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the part file for `name` is ours.
pub(crate) fn maker(file: impl AsFd, name: &str) -> io::Result<Maker> {
    let mut value = [0u8; MAX_NAME_BYTES + 1];
    match rustix::fs::fgetxattr(file, MARK, &mut value) {
        Ok(len) if value.get(..len) == Some(name.as_bytes()) => Ok(Maker::Us),
        Ok(_) | Err(Errno::NODATA | Errno::RANGE) => Ok(Maker::Someone),
        Err(Errno::NOTSUP) => Ok(Maker::Unknown),
        Err(e) => Err(e.into()),
    }
}

/// Takes the mark off a part file about to get its final name.
pub(crate) fn unmark(file: impl AsFd) -> io::Result<()> {
    match rustix::fs::fremovexattr(file, MARK) {
        Ok(()) | Err(Errno::NODATA | Errno::NOTSUP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn part_names_are_recognisable_and_fit_the_name_limit() {
        assert_eq!(part_name("notes.txt"), "notes.txt.p2phost-part");
        assert!(is_part_name("notes.txt.p2phost-part"));
        assert!(is_part_name("NOTES.TXT.P2PHOST-PART"));
        for other in [
            "notes.txt.part",
            ".p2phost-part",
            "p2phost-part",
            "a.p2phost-parts",
        ] {
            assert!(!is_part_name(other), "{other}");
        }
        // The longest names, ASCII and multi-byte: within the limit, distinct, recognisable.
        let long = "n".repeat(MAX_NAME_BYTES);
        let longer = format!("{}m", "n".repeat(MAX_NAME_BYTES - 1));
        let wide = "é".repeat(MAX_NAME_BYTES / 2);
        for name in [&long, &longer, &wide] {
            let part = part_name(name);
            assert!(part.len() <= MAX_NAME_BYTES, "{}", part.len());
            assert!(is_part_name(&part));
        }
        assert_ne!(part_name(&long), part_name(&longer));
        let fits = "f".repeat(MAX_NAME_BYTES - PART_SUFFIX.len());
        assert_eq!(part_name(&fits), format!("{fits}{PART_SUFFIX}"));
    }

    #[test]
    fn a_mark_tells_our_part_files_from_others() {
        let dir = tempfile::tempdir().unwrap();
        let ours = std::fs::File::create(dir.path().join("a")).unwrap();
        let theirs = std::fs::File::create(dir.path().join("b")).unwrap();
        if !mark(&ours, "x.txt").unwrap() {
            // This filesystem keeps no user attributes: nothing to tell them apart by.
            assert_eq!(maker(&theirs, "x.txt").unwrap(), Maker::Unknown);
            return;
        }
        assert_eq!(maker(&ours, "x.txt").unwrap(), Maker::Us);
        assert_eq!(maker(&ours, "y.txt").unwrap(), Maker::Someone);
        assert_eq!(maker(&theirs, "x.txt").unwrap(), Maker::Someone);
        unmark(&ours).unwrap();
        assert_eq!(maker(&ours, "x.txt").unwrap(), Maker::Someone);
        unmark(&ours).unwrap();
    }
}
