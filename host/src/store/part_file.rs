//! A file being received: `NAME.part`, verified group by group, renamed into place at the end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::SafePath;
use super::replace::{self, Placed};

/// The BLAKE3 hash of every chunk group of a file, in order; the last group may be short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkGroups {
    /// Bytes per group (the last one may hold fewer).
    pub group_size: u64,
    /// One hash per group.
    pub hashes: Vec<blake3::Hash>,
}

/// Why a file could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The offer does not fit on the disk.
    #[error(
        "not enough space in {}: the offer needs {need} more bytes and {free} are free; free some space or receive elsewhere (--out)",
        .path.display()
    )]
    NoSpace {
        /// The folder received into.
        path: PathBuf,
        /// Bytes the transfer would write.
        need: u64,
        /// Bytes free there.
        free: u64,
    },
    /// The final name is taken and overwriting was not asked for.
    #[error("{} exists; it was left untouched (pass --overwrite to replace it)", .0.display())]
    Exists(PathBuf),
    /// A directory on the way is a symbolic link, which could lead outside the destination.
    #[error("{} is a symbolic link; refusing to write through it", .0.display())]
    Symlink(PathBuf),
    /// Received bytes do not match the sender's hash.
    #[error("{}: chunk group {group} does not match the sender's hash; the data was corrupted", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The group that failed.
        group: usize,
    },
    /// More or fewer bytes than announced, or a write out of order.
    #[error("{}: {message}", .path.display())]
    Length {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The announced hashes do not fit the announced size.
    #[error("{}: the sender's manifest has {got} chunk-group hashes for a size that needs {want}", .path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// Hashes the size needs.
        want: usize,
        /// Hashes announced.
        got: usize,
    },
}

impl ChunkGroups {
    /// Hashes `reader` (of `size` bytes) in groups of `group_size`; also returns the whole file's hash.
    pub fn compute(
        reader: &mut impl Read,
        size: u64,
        group_size: u64,
    ) -> io::Result<(Self, blake3::Hash)> {
        let group_size = group_size.max(1);
        let mut whole = blake3::Hasher::new();
        let mut hashes = Vec::new();
        let mut left = size;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let mut group = blake3::Hasher::new();
            let mut in_group = group_size.min(left);
            left -= in_group;
            while in_group > 0 {
                let want = usize::try_from(in_group.min(buf.len() as u64)).unwrap_or(buf.len());
                let chunk = &mut buf[..want];
                reader.read_exact(chunk)?;
                group.update(chunk);
                whole.update(chunk);
                in_group -= want as u64;
            }
            hashes.push(group.finalize());
        }
        Ok((Self { group_size, hashes }, whole.finalize()))
    }

    /// Groups needed for `size` bytes.
    pub fn groups_for(&self, size: u64) -> usize {
        usize::try_from(size.div_ceil(self.group_size.max(1))).unwrap_or(usize::MAX)
    }
}

/// A file being received.
#[derive(Debug)]
pub struct PartFile {
    final_path: PathBuf,
    part_path: PathBuf,
    file: File,
    size: u64,
    groups: ChunkGroups,
    overwrite: bool,
    written: u64,
    group: blake3::Hasher,
    /// The final file exists with exactly this content: nothing to write.
    already_there: bool,
    /// Permission bits to give the file before it gets its final name.
    mode: Option<u32>,
}

/// Whether `path` is a regular file of `size` bytes hashing to `hash`.
fn same_content(path: &Path, size: u64, hash: &blake3::Hash) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() != size {
        return false;
    }
    let mut hasher = blake3::Hasher::new();
    File::open(path)
        .and_then(|mut f| io::copy(&mut f, &mut hasher))
        .is_ok_and(|copied| copied == size && hasher.finalize() == *hash)
}

impl PartFile {
    /// Opens `path` under `root` for receiving `size` bytes. Returns the offset to resume from: the
    /// end of the last chunk group of an existing `NAME.part` that matches the sender's hashes (0
    /// for a new file, or for a part file of other content).
    pub fn open(
        root: &Path,
        path: &SafePath,
        size: u64,
        groups: ChunkGroups,
        file_hash: blake3::Hash,
        overwrite: bool,
    ) -> Result<(Self, u64), StoreError> {
        let final_path = path.under(root);
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };
        if groups.hashes.len() != groups.groups_for(size) {
            return Err(StoreError::Manifest {
                path: final_path,
                want: groups.groups_for(size),
                got: groups.hashes.len(),
            });
        }
        if !overwrite && fs::symlink_metadata(&final_path).is_ok() {
            // A file already received whole (by an earlier, cut attempt) is kept and not sent again.
            if same_content(&final_path, size, &file_hash) {
                let file = File::open(&final_path).map_err(io_err(&final_path))?;
                let part = Self {
                    mode: None,
                    part_path: final_path.clone(),
                    final_path,
                    file,
                    size,
                    groups,
                    overwrite,
                    written: size,
                    group: blake3::Hasher::new(),
                    already_there: true,
                };
                return Ok((part, size));
            }
            return Err(StoreError::Exists(final_path));
        }
        make_parents(root, &final_path)?;
        let part_path = Self::part_path(root, path);
        if fs::symlink_metadata(&part_path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(StoreError::Symlink(part_path));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part_path)
            .map_err(io_err(&part_path))?;

        let mut part = Self {
            mode: None,
            final_path,
            part_path,
            file: file.try_clone().map_err(io_err(root))?,
            size,
            groups,
            overwrite,
            written: 0,
            group: blake3::Hasher::new(),
            already_there: false,
        };
        let resume = part.verified_prefix(&mut file)?;
        file.set_len(resume).map_err(io_err(&part.part_path))?;
        file.seek(SeekFrom::Start(resume))
            .map_err(io_err(&part.part_path))?;
        part.file = file;
        Ok((part, resume))
    }

    /// Hashes the existing part file group by group, up to the first group that does not match, and
    /// leaves the hashers where that prefix ends.
    fn verified_prefix(&mut self, file: &mut File) -> Result<u64, StoreError> {
        let on_disk = file
            .metadata()
            .map_err(|source| StoreError::Io {
                path: self.part_path.clone(),
                source,
            })?
            .len()
            .min(self.size);
        let mut verified = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        for expected in &self.groups.hashes {
            let len = self.groups.group_size.min(self.size - verified);
            if verified + len > on_disk {
                break;
            }
            let mut group = blake3::Hasher::new();
            let mut left = len;
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                file.read_exact(&mut buf[..want])
                    .map_err(|source| StoreError::Io {
                        path: self.part_path.clone(),
                        source,
                    })?;
                group.update(&buf[..want]);
                left -= want as u64;
            }
            if group.finalize() != *expected {
                break;
            }
            verified += len;
        }
        self.written = verified;
        Ok(verified)
    }

    /// Bytes written and verified so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `bytes`, which must start at [`PartFile::written`]. Each chunk group is checked as it
    /// completes, so corruption fails the file early.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        if offset != self.written || self.written + bytes.len() as u64 > self.size {
            return Err(StoreError::Length {
                path: self.final_path.clone(),
                message: format!(
                    "{} bytes at offset {offset}, but {} of {} bytes are written",
                    bytes.len(),
                    self.written,
                    self.size
                ),
            });
        }
        self.file
            .write_all(bytes)
            .map_err(|source| StoreError::Io {
                path: self.part_path.clone(),
                source,
            })?;
        let group_size = self.groups.group_size;
        let mut rest = bytes;
        while !rest.is_empty() {
            let in_group = self.written % group_size;
            let room = usize::try_from(group_size - in_group).unwrap_or(usize::MAX);
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.group.update(now);
            self.written += now.len() as u64;
            rest = later;
            if self.written.is_multiple_of(group_size) || self.written == self.size {
                let index = usize::try_from((self.written - 1) / group_size).unwrap_or(usize::MAX);
                let done = std::mem::replace(&mut self.group, blake3::Hasher::new());
                if self.groups.hashes.get(index) != Some(&done.finalize()) {
                    return Err(StoreError::Corrupt {
                        path: self.final_path.clone(),
                        group: index,
                    });
                }
            }
        }
        Ok(())
    }

    /// Where the `.part` of `path` under `root` is written.
    pub fn part_path(root: &Path, path: &SafePath) -> PathBuf {
        path.under(root)
            .with_file_name(format!("{}.part", path.file_name()))
    }

    /// Gives the stored file the sender's permission bits within what the receiver's umask gave
    /// the `.part`: executables stay executable (where the file is readable), private files stay
    /// private, and nothing gets more than the umask allows or the special bits.
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o777);
        self
    }

    /// Checks the whole file was written, syncs it, and moves it to its final name. Without `overwrite` an
    /// existing file is never replaced, even one that appeared during the transfer.
    pub fn finish(self) -> Result<PathBuf, StoreError> {
        if self.already_there {
            return Ok(self.final_path);
        }
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };
        self.seal()?;
        drop(self.file);
        if self.overwrite {
            fs::rename(&self.part_path, &self.final_path).map_err(io_err(&self.final_path))?;
        } else {
            // A hard link fails if the name exists, atomically; rename would replace it.
            match fs::hard_link(&self.part_path, &self.final_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::Exists(self.final_path));
                }
                Err(e) => {
                    return Err(StoreError::Io {
                        path: self.final_path,
                        source: e,
                    });
                }
            }
            fs::remove_file(&self.part_path).map_err(io_err(&self.part_path))?;
        }
        if let Some(parent) = self.final_path.parent() {
            // Make the new name durable too; not every filesystem can sync a directory.
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(self.final_path)
    }

    /// Like [`PartFile::finish`] with `overwrite`, except that what was under the final name is
    /// not destroyed: the file takes the name atomically, and the version it replaced, if any,
    /// is left at [`Placed::replaced`] for the caller to compare with what it expected there,
    /// then delete or keep. Nothing saved under the name at any moment is lost on the way.
    pub fn finish_keeping_replaced(self) -> Result<Placed, StoreError> {
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };
        if self.already_there {
            let received = self.file.metadata().map_err(io_err(&self.final_path))?;
            return Ok(Placed {
                path: self.final_path,
                replaced: None,
                received,
            });
        }
        let received = self.seal()?;
        drop(self.file);
        let replaced = replace::place_keeping(&self.part_path, &self.final_path)
            .map_err(io_err(&self.final_path))?;
        if let Some(parent) = self.final_path.parent() {
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(Placed {
            path: self.final_path,
            replaced,
            received,
        })
    }

    /// Checks the whole file was written, gives it its mode and syncs it; its metadata then.
    fn seal(&self) -> Result<fs::Metadata, StoreError> {
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };
        if self.written != self.size {
            return Err(StoreError::Length {
                path: self.final_path.clone(),
                message: format!("ended after {} of {} bytes", self.written, self.size),
            });
        }
        // Every byte was checked: each chunk group as it completed (against the hashes of the
        // offer), and a resumed prefix group by group when the file was opened. Hashing the whole
        // file again cost the receiver a tenth of its CPU (docs/BENCHMARKS.md).
        #[cfg(unix)]
        if let Some(sender) = self.mode {
            use std::os::unix::fs::PermissionsExt;
            let created = self
                .file
                .metadata()
                .map_err(io_err(&self.part_path))?
                .permissions()
                .mode()
                & 0o777;
            let executable = sender & 0o111 & ((created & 0o444) >> 2);
            let mode = (created & (sender | 0o600)) | executable;
            self.file
                .set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_err(&self.part_path))?;
        }
        self.file.sync_all().map_err(io_err(&self.part_path))?;
        self.file.metadata().map_err(io_err(&self.part_path))
    }
}

/// Creates the directories between `root` and `path`, refusing to pass through a symbolic link.
fn make_parents(root: &Path, path: &Path) -> Result<(), StoreError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let relative = parent.strip_prefix(root).unwrap_or(Path::new(""));
    let mut at = root.to_path_buf();
    for component in relative.components() {
        at.push(component);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(StoreError::Symlink(at)),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::Io {
                    path: at,
                    source: io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"),
                });
            }
            Err(_) => fs::create_dir(&at).map_err(|source| StoreError::Io {
                path: at.clone(),
                source,
            })?,
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "part_file_tests.rs"]
mod tests;
