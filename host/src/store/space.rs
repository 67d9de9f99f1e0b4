//! Free space, checked before an offer is accepted: a transfer that cannot fit is refused at the
//! start, not after filling the disk.

use std::io;
use std::path::{Path, PathBuf};

use super::{SafePath, StoreError};

/// Bytes this user may still write on the filesystem that holds `dir`, or would hold it once
/// created (its nearest existing ancestor is asked).
pub fn available_bytes(dir: &Path) -> io::Result<u64> {
    let mut probe: PathBuf = dir.to_path_buf();
    while !probe.exists() {
        if !probe.pop() || probe.as_os_str().is_empty() {
            probe = PathBuf::from(".");
            break;
        }
    }
    let stats = rustix::fs::statvfs(&probe)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Checks that the files of an offer fit under `root`. `files` are (path, size); bytes already in
/// a part file from an earlier attempt are not needed again.
pub fn check_space<'a>(
    root: &Path,
    files: impl IntoIterator<Item = (&'a SafePath, u64)>,
) -> Result<(), StoreError> {
    let need: u64 = files
        .into_iter()
        .map(|(path, size)| {
            let part = super::PartFile::part_path(root, path);
            let have = std::fs::symlink_metadata(part).map_or(0, |m| m.len());
            size.saturating_sub(have)
        })
        .sum();
    let free = available_bytes(root).map_err(|source| StoreError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    if need > free {
        return Err(StoreError::NoSpace {
            path: root.to_path_buf(),
            need,
            free,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_folder_yet_to_be_created_is_measured_on_its_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(&dir.path().join("not/yet/here")).unwrap();
        assert!(free > 0);
        assert_eq!(free, available_bytes(dir.path()).unwrap());
    }

    #[test]
    fn an_offer_fits_unless_it_needs_more_than_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let small = SafePath::from_peer("a/small.bin").unwrap();
        let huge = SafePath::from_peer("a/huge.bin").unwrap();
        check_space(dir.path(), [(&small, 1024)]).unwrap();
        let err = check_space(dir.path(), [(&small, 1024), (&huge, 1 << 60)]).unwrap_err();
        assert!(
            matches!(err, StoreError::NoSpace { need, .. } if need == (1 << 60) + 1024),
            "{err}"
        );
    }

    #[test]
    fn bytes_already_in_a_part_file_are_not_needed_again() {
        let dir = tempfile::tempdir().unwrap();
        let huge = SafePath::from_peer("huge.bin").unwrap();
        let free = available_bytes(dir.path()).unwrap();
        // A sparse `.part` as long as the whole disk's free space and more: resuming it needs
        // only what is missing.
        let part = std::fs::File::create(dir.path().join("huge.bin.p2phost-part")).unwrap();
        part.set_len(free + 4096).unwrap();
        check_space(dir.path(), [(&huge, free + 8192)]).unwrap();
        // A margin of 1 GiB, in case other programs free space meanwhile.
        assert!(check_space(dir.path(), [(&huge, 2 * free + (1 << 30))]).is_err());
    }
}
