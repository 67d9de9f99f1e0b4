//! The sender's side of the disk: the files and folders named on the command line, walked into the
//! list that becomes a manifest.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{ChunkGroups, PathError, SafePath};
use crate::transfer::{FileEntry, Manifest};

/// A regular file to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// Where it is read from.
    pub source: PathBuf,
    /// Where it goes on the other side, relative.
    pub path: SafePath,
    /// Size when scanned.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
}

/// What to send, and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Regular files, in a stable order (inputs as given, folders walked in name order).
    pub files: Vec<ScannedFile>,
    /// Every folder, empty ones included.
    pub dirs: Vec<SafePath>,
    /// Left out: symbolic links, special files (sockets, pipes, devices) and the part files of
    /// unfinished receives, with the reason.
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Why the inputs cannot be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// A path could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A name the receiver would refuse (not UTF-8, a reserved name, a `:` or `\`…).
    #[error("cannot send {}: {reason}; rename it first", .path.display())]
    Name {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Two inputs with the same name.
    #[error("two inputs are both named {0:?}; send them from different folders")]
    Duplicate(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ScanError + '_ {
    move |source| ScanError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Walks `inputs` (files or folders).
pub fn scan(inputs: &[PathBuf]) -> Result<Scan, ScanError> {
    let mut found = Scan::default();
    let mut tops = std::collections::HashSet::new();
    for input in inputs {
        let meta = fs::symlink_metadata(input).map_err(io_error(input))?;
        // `.` or `dir/..` have no name of their own: use the folder's real one.
        let name = match input.file_name() {
            Some(name) => Some(name.to_owned()),
            None => input
                .canonicalize()
                .map_err(io_error(input))?
                .file_name()
                .map(ToOwned::to_owned),
        };
        let name = name
            .as_deref()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ScanError::Name {
                path: input.clone(),
                reason: "it has no name, or the name is not UTF-8".into(),
            })?
            .to_owned();
        if !tops.insert(name.clone()) {
            return Err(ScanError::Duplicate(name));
        }
        walk(input, &name, &meta, &mut found)?;
    }
    Ok(found)
}

/// The files at `relative` paths ('/'-separated) inside `root`, offered under those paths (a
/// sync folder's changed files). Paths that are gone or are no longer regular files are left out
/// (listed in `skipped`): the folder changed since they were queued.
pub fn scan_within(root: &Path, relative: &[String]) -> Result<Scan, ScanError> {
    let mut found = Scan::default();
    let mut seen = std::collections::HashSet::new();
    for rel in relative {
        if !seen.insert(rel.as_str()) {
            continue;
        }
        let source = root.join(rel);
        let path = safe(&source, rel)?;
        match fs::symlink_metadata(&source) {
            Ok(meta) if meta.file_type().is_file() => found.files.push(ScannedFile {
                source,
                path,
                size: meta.len(),
                mode: meta.permissions().mode() & 0o7777,
            }),
            Ok(_) => found.skipped.push((source, "not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                found.skipped.push((source, "gone"));
            }
            Err(e) => return Err(io_error(&source)(e)),
        }
    }
    Ok(found)
}

fn safe(source: &Path, relative: &str) -> Result<SafePath, ScanError> {
    SafePath::from_peer(relative).map_err(|e: PathError| ScanError::Name {
        path: source.to_path_buf(),
        reason: e.to_string(),
    })
}

fn walk(
    source: &Path,
    relative: &str,
    meta: &fs::Metadata,
    found: &mut Scan,
) -> Result<(), ScanError> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        found.skipped.push((source.to_path_buf(), "symbolic link"));
    } else if kind.is_file() && super::is_part_name(relative.rsplit('/').next().unwrap_or("")) {
        // No receiver takes that name: it is p2phost's own, for what it has not finished receiving.
        found.skipped.push((
            source.to_path_buf(),
            "partial file of an unfinished receive",
        ));
    } else if kind.is_file() {
        found.files.push(ScannedFile {
            source: source.to_path_buf(),
            path: safe(source, relative)?,
            size: meta.len(),
            mode: meta.permissions().mode() & 0o7777,
        });
    } else if kind.is_dir() {
        found.dirs.push(safe(source, relative)?);
        let mut entries: Vec<_> = fs::read_dir(source)
            .map_err(io_error(source))?
            .collect::<Result<_, _>>()
            .map_err(io_error(source))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| ScanError::Name {
                path: path.clone(),
                reason: "the name is not UTF-8".into(),
            })?;
            let meta = fs::symlink_metadata(&path).map_err(io_error(&path))?;
            walk(&path, &format!("{relative}/{name}"), &meta, found)?;
        }
    } else {
        found
            .skipped
            .push((source.to_path_buf(), "not a regular file"));
    }
    Ok(())
}

impl Scan {
    /// Hashes every file into a manifest. A file that changed size since the scan is an error.
    pub fn manifest(&self, chunk_size: u32, group_size: u64) -> Result<Manifest, ScanError> {
        let mut files = Vec::with_capacity(self.files.len());
        for file in &self.files {
            let mut reader = open_no_follow(&file.source).map_err(io_error(&file.source))?;
            let (groups, hash) = ChunkGroups::compute(&mut reader, file.size, group_size)
                .map_err(io_error(&file.source))?;
            let path = file.path.to_string();
            files.push(FileEntry::new(path, file.size, file.mode, &groups, hash));
        }
        Ok(Manifest {
            chunk_size,
            group_size,
            files,
            dirs: self.dirs.iter().map(ToString::to_string).collect(),
            encodings: Vec::new(),
        })
    }
}

/// Opens an input for reading without following a symbolic link: a file swapped for a link after
/// the scan fails to open instead of sending what the link points at.
pub fn open_no_follow(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_folders_in_order_with_empty_ones_and_skips_links() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().join("photos");
        fs::create_dir_all(root.join("2026/empty")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("b.jpg"), b"bb").unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("a.jpg"), b"a").unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("2026/c.raw"), b"ccc").unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("d.bin.p2phost-part"), b"half").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("/etc/passwd", root.join("link"))
            .unwrap_or_else(|e| panic!("{e}"));
        let single = dir.path().join("notes.txt");
        fs::write(&single, b"n").unwrap_or_else(|e| panic!("{e}"));

        let found = scan(&[root.clone(), single]).unwrap_or_else(|e| panic!("{e}"));
        let files: Vec<String> = found.files.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(
            files,
            [
                "photos/2026/c.raw",
                "photos/a.jpg",
                "photos/b.jpg",
                "notes.txt"
            ]
        );
        let dirs: Vec<String> = found.dirs.iter().map(ToString::to_string).collect();
        assert_eq!(dirs, ["photos", "photos/2026", "photos/2026/empty"]);
        assert_eq!(
            found.skipped,
            vec![
                (
                    root.join("d.bin.p2phost-part"),
                    "partial file of an unfinished receive"
                ),
                (root.join("link"), "symbolic link")
            ]
        );

        let manifest = found
            .manifest(4096, 65536)
            .unwrap_or_else(|e| panic!("{e}"));
        let valid = manifest.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(valid.total_bytes, 7);
    }

    #[test]
    fn names_the_receiver_would_refuse_are_errors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let bad = dir.path().join("a:b");
        fs::write(&bad, b"x").unwrap_or_else(|e| panic!("{e}"));
        let err = scan(&[bad])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("a:b") && err.contains("rename"), "{err}");

        let one = dir.path().join("x/same");
        let two = dir.path().join("y/same");
        for p in [&one, &two] {
            fs::create_dir_all(p.parent().unwrap_or(dir.path())).unwrap_or_else(|e| panic!("{e}"));
            fs::write(p, b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(matches!(scan(&[one, two]), Err(ScanError::Duplicate(_))));
        assert!(matches!(
            scan(&[dir.path().join("missing")]),
            Err(ScanError::Io { .. })
        ));
    }

    #[test]
    fn an_input_swapped_for_a_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let secret = dir.path().join("secret");
        let input = dir.path().join("input");
        std::fs::write(&secret, b"not to be sent").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&input, b"ok").unwrap_or_else(|e| panic!("{e}"));
        assert!(open_no_follow(&input).is_ok());
        std::fs::remove_file(&input).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&secret, &input).unwrap_or_else(|e| panic!("{e}"));
        assert!(open_no_follow(&input).is_err());
    }
}
