//! A file being received: `NAME.p2phost-part`, verified group by group, renamed into place at the
//! end.
//!
//! Every name is reached from the [`Destination`] without following links, and the part file is
//! opened only while bytes go into it, with its folder: none exists for a file that never got a
//! byte, and a [`PartFiles`](super::PartFiles) set keeps only a few open whatever the size of the
//! offer. The part file is created, opened again and renamed relative to its folder's handle.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::destination::Folder;
use super::part_name::{Maker, maker, mark, part_name, unmark};
use super::replace::{self, Placed};
use super::{ChunkGroups, Destination, SafePath};

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
    /// Something other than a folder where the offer has one.
    #[error("{} is in the way: the offer needs a folder there; it was left untouched", .0.display())]
    NotAFolder(PathBuf),
    /// A file has the name of a part file but p2phost did not make it (or not for this file).
    #[error(
        "{} is in the way: it has the name of a p2phost partial file but was not written by p2phost for this file; it was left untouched (move it away and receive again)",
        .0.display()
    )]
    ForeignPart(PathBuf),
    /// The part file was replaced by another file while the transfer ran.
    #[error("{} was replaced by another file during the transfer; it was left untouched", .0.display())]
    Replaced(PathBuf),
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

/// A file being received.
#[derive(Debug)]
pub struct PartFile {
    destination: Arc<Destination>,
    /// Where it goes, relative to the destination.
    path: SafePath,
    final_path: PathBuf,
    part_name: String,
    /// Open while bytes go into it, with the folder that holds it (reached without following a
    /// link when it was opened; named relative to it from then on).
    file: Option<File>,
    folder: Option<Folder>,
    /// Device and inode of the part file once it exists: it is opened again only if it is still
    /// that file.
    identity: Option<(u64, u64)>,
    /// It carries p2phost's mark (to take off before the rename).
    marked: bool,
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

/// Whether `name` in `folder` is a regular file of `size` bytes hashing to `hash`.
fn same_content(folder: BorrowedFd<'_>, name: &str, size: u64, hash: &blake3::Hash) -> bool {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::openat(folder, name, flags, Mode::empty()) else {
        return false;
    };
    let regular = rustix::fs::fstat(&fd).is_ok_and(|stat| {
        FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
            && u64::try_from(stat.st_size).ok() == Some(size)
    });
    let mut hasher = blake3::Hasher::new();
    regular
        && io::copy(&mut File::from(fd), &mut hasher)
            .is_ok_and(|copied| copied == size && hasher.finalize() == *hash)
}

/// Whether `name` in `folder` exists, whatever it is (a link included).
fn exists(folder: BorrowedFd<'_>, name: &str) -> bool {
    rustix::fs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

fn identity_of(fd: impl AsFd) -> io::Result<(u64, u64, FileType)> {
    let stat = rustix::fs::fstat(fd)?;
    Ok((
        stat.st_dev,
        stat.st_ino,
        FileType::from_raw_mode(stat.st_mode),
    ))
}

impl PartFile {
    /// Prepares to receive `path` under `destination`, `size` bytes. Returns the offset to resume
    /// from: the end of the last chunk group of an existing part file of ours that matches the
    /// sender's hashes (0 for a new file, or for a part file of other content). Creates nothing;
    /// a part file found is checked, cut to that offset and closed again.
    pub fn open(
        destination: &Arc<Destination>,
        path: &SafePath,
        size: u64,
        groups: ChunkGroups,
        file_hash: blake3::Hash,
        overwrite: bool,
    ) -> Result<(Self, u64), StoreError> {
        let final_path = path.under(destination.path());
        if groups.hashes.len() != groups.groups_for(size) {
            return Err(StoreError::Manifest {
                path: final_path,
                want: groups.groups_for(size),
                got: groups.hashes.len(),
            });
        }
        let mut part = Self {
            destination: Arc::clone(destination),
            path: path.clone(),
            final_path,
            part_name: part_name(path.file_name()),
            file: None,
            folder: None,
            identity: None,
            marked: false,
            size,
            groups,
            overwrite,
            written: 0,
            group: blake3::Hasher::new(),
            already_there: false,
            mode: None,
        };
        let Some(folder) = destination.parent_of(path, false)? else {
            return Ok((part, 0));
        };
        let folder = destination.at(&folder);
        if !overwrite && exists(folder, path.file_name()) {
            // A file already received whole (by an earlier, cut attempt) is kept and not sent again.
            if same_content(folder, path.file_name(), size, &file_hash) {
                part.already_there = true;
                part.written = size;
                return Ok((part, size));
            }
            return Err(StoreError::Exists(part.final_path));
        }
        let resume = part.resume(folder)?;
        Ok((part, resume))
    }

    /// Where the part file is, or would be.
    fn part_file_path(&self) -> PathBuf {
        self.final_path.with_file_name(&self.part_name)
    }

    /// An I/O error on the part file.
    fn io_error(&self) -> impl Fn(io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: self.part_file_path(),
            source,
        }
    }

    /// The verified length of an existing part file of ours (which is cut to it); 0 if there is
    /// none. One that is not ours is an error, and left as it is.
    fn resume(&mut self, folder: BorrowedFd<'_>) -> Result<u64, StoreError> {
        // Looked at before it is opened: opening a device or a pipe can block or act.
        match rustix::fs::statat(folder, self.part_name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(0),
            Err(e) => return Err(self.io_error()(e.into())),
            Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => return Err(StoreError::Symlink(self.part_file_path())),
                _ => return Err(StoreError::ForeignPart(self.part_file_path())),
            },
        }
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(folder, self.part_name.as_str(), flags, Mode::empty())
            .map_err(|e| self.io_error()(e.into()))?;
        let (dev, ino, kind) = identity_of(&fd).map_err(self.io_error())?;
        if kind != FileType::RegularFile {
            return Err(StoreError::ForeignPart(self.part_file_path()));
        }
        match maker(&fd, self.path.file_name()).map_err(self.io_error())? {
            Maker::Someone => return Err(StoreError::ForeignPart(self.part_file_path())),
            Maker::Us => self.marked = true,
            Maker::Unknown => {}
        }
        let mut file = File::from(fd);
        let resume = self.verified_prefix(&mut file)?;
        file.set_len(resume).map_err(self.io_error())?;
        self.identity = Some((dev, ino));
        Ok(resume)
    }

    /// Hashes the existing part file group by group, up to the first group that does not match, and
    /// leaves the hashers where that prefix ends.
    fn verified_prefix(&mut self, file: &mut File) -> Result<u64, StoreError> {
        let on_disk = file
            .metadata()
            .map_err(self.io_error())?
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
                file.read_exact(&mut buf[..want]).map_err(self.io_error())?;
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

    /// The part file, open for writing at [`PartFile::written`]: created (with the folders on its
    /// way) if it does not exist yet, opened again if it was closed.
    fn writable(&mut self) -> Result<&mut File, StoreError> {
        let file = match self.file.take() {
            Some(file) => file,
            None => self.open_part()?,
        };
        Ok(self.file.insert(file))
    }

    /// Opens the part file again (only if it is still the file it was), or creates it; keeps its
    /// folder open beside it.
    fn open_part(&mut self) -> Result<File, StoreError> {
        let destination = Arc::clone(&self.destination);
        let folder = destination
            .parent_of(&self.path, true)?
            .ok_or_else(|| StoreError::NotAFolder(self.part_file_path()))?;
        let file = match self.identity {
            None => self.create(destination.at(&folder))?,
            Some(identity) => self.reopen(destination.at(&folder), identity)?,
        };
        self.folder = Some(folder);
        Ok(file)
    }

    /// Opens the existing part file at the offset written so far, if it is the file `identity`.
    fn reopen(&self, folder: BorrowedFd<'_>, identity: (u64, u64)) -> Result<File, StoreError> {
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(folder, self.part_name.as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return Err(StoreError::Symlink(self.part_file_path())),
            Err(e) => return Err(self.io_error()(e.into())),
        };
        let (dev, ino, _) = identity_of(&fd).map_err(self.io_error())?;
        if (dev, ino) != identity {
            return Err(StoreError::Replaced(self.part_file_path()));
        }
        let mut file = File::from(fd);
        file.seek(SeekFrom::Start(self.written))
            .map_err(self.io_error())?;
        Ok(file)
    }

    /// Creates the part file, which must not exist: whatever has its name is not this transfer's.
    fn create(&mut self, folder: BorrowedFd<'_>) -> Result<File, StoreError> {
        let name = self.part_name.as_str();
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd: OwnedFd = match rustix::fs::openat(folder, name, flags, Mode::from_raw_mode(0o666))
        {
            Ok(fd) => fd,
            Err(Errno::EXIST) => return Err(StoreError::ForeignPart(self.part_file_path())),
            Err(e) => return Err(self.io_error()(e.into())),
        };
        match mark(&fd, self.path.file_name()) {
            Ok(marked) => self.marked = marked,
            Err(e) => {
                // Unmarked, it would look like someone else's next time: not kept.
                let _ = rustix::fs::unlinkat(folder, name, AtFlags::empty());
                return Err(self.io_error()(e));
            }
        }
        let (dev, ino, _) = identity_of(&fd).map_err(self.io_error())?;
        self.identity = Some((dev, ino));
        Ok(File::from(fd))
    }

    /// Closes the part file, if open; it is opened again when needed.
    pub fn close(&mut self) {
        self.file = None;
        self.folder = None;
    }

    /// Whether the part file is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Bytes written and verified so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `bytes`, which must start at [`PartFile::written`]. Each chunk group is checked as it
    /// completes, so corruption fails the file early. The part file is created by the first write.
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
        let file = self.writable()?;
        if let Err(source) = file.write_all(bytes) {
            return Err(StoreError::Io {
                path: self.part_file_path(),
                source,
            });
        }
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

    /// Where the part file of `path` under `root` is written.
    pub fn part_path(root: &Path, path: &SafePath) -> PathBuf {
        path.under(root).with_file_name(part_name(path.file_name()))
    }

    /// Gives the stored file the sender's permission bits within what the receiver's umask gave
    /// the part file: executables stay executable (where the file is readable), private files stay
    /// private, and nothing gets more than the umask allows or the special bits.
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o777);
        self
    }

    /// Checks the whole file was written, syncs it, and moves it to its final name. Without `overwrite` an
    /// existing file is never replaced, even one that appeared during the transfer.
    pub fn finish(mut self) -> Result<PathBuf, StoreError> {
        if self.already_there {
            return Ok(self.final_path);
        }
        let (_, folder) = self.seal()?;
        self.move_into_place(self.destination.at(&folder))?;
        Ok(self.final_path)
    }

    /// Like [`PartFile::finish`] with `overwrite`, except that what was under the final name is
    /// not destroyed: the file takes the name atomically, and the version it replaced, if any,
    /// is left at [`Placed::replaced`] (a part-file name of p2phost's own) for the caller to
    /// compare with what it expected there, then delete or keep. Nothing saved under the name at
    /// any moment is lost on the way.
    pub fn finish_keeping_replaced(mut self) -> Result<Placed, StoreError> {
        if self.already_there {
            let received = fs::symlink_metadata(&self.final_path).map_err(self.io_error())?;
            return Ok(Placed {
                path: self.final_path,
                replaced: None,
                received,
            });
        }
        let (received, folder) = self.seal()?;
        let folder = self.destination.at(&folder);
        self.check_still_ours(folder)?;
        let replaced = replace::place_keeping(&folder, &self.part_name, self.path.file_name())
            .map_err(|source| StoreError::Io {
                path: self.final_path.clone(),
                source,
            })?;
        // Make the new name durable too; not every filesystem can sync a directory.
        let _ = rustix::fs::fsync(folder);
        Ok(Placed {
            replaced: replaced.map(|name| self.final_path.with_file_name(name)),
            path: self.final_path,
            received,
        })
    }

    /// Checks the whole file was written, gives it its mode, takes p2phost's mark off and syncs
    /// it, then closes it; its metadata, and the folder it is in.
    fn seal(&mut self) -> Result<(fs::Metadata, Folder), StoreError> {
        if self.written != self.size {
            return Err(StoreError::Length {
                path: self.final_path.clone(),
                message: format!("ended after {} of {} bytes", self.written, self.size),
            });
        }
        // Every byte was checked: each chunk group as it completed (against the hashes of the
        // offer), and a resumed prefix group by group when the file was opened. Hashing the whole
        // file again cost the receiver a tenth of its CPU (docs/BENCHMARKS.md).
        // An empty file, or one resumed whole, gets its part file (or has it opened) here.
        self.writable()?;
        let (Some(file), Some(folder)) = (self.file.take(), self.folder.take()) else {
            return Err(StoreError::Replaced(self.part_file_path()));
        };
        #[cfg(unix)]
        if let Some(sender) = self.mode {
            use std::os::unix::fs::PermissionsExt;
            let created = file
                .metadata()
                .map_err(self.io_error())?
                .permissions()
                .mode()
                & 0o777;
            let executable = sender & 0o111 & ((created & 0o444) >> 2);
            let mode = (created & (sender | 0o600)) | executable;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(self.io_error())?;
        }
        if self.marked {
            unmark(&file).map_err(self.io_error())?;
        }
        file.sync_all().map_err(self.io_error())?;
        let metadata = file.metadata().map_err(self.io_error())?;
        Ok((metadata, folder))
    }

    /// Whether the part file in `folder` is still the file written: the name may have been given
    /// to another since it was closed.
    fn check_still_ours(&self, folder: BorrowedFd<'_>) -> Result<(), StoreError> {
        let same = rustix::fs::statat(folder, self.part_name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|stat| Some((stat.st_dev, stat.st_ino)) == self.identity);
        if same {
            Ok(())
        } else {
            Err(StoreError::Replaced(self.part_file_path()))
        }
    }

    /// Gives the synced part file its final name in `folder`, the folder it was opened in (so a
    /// link swapped in on the way since leads nowhere), and makes the name durable.
    fn move_into_place(&self, folder: BorrowedFd<'_>) -> Result<(), StoreError> {
        self.check_still_ours(folder)?;
        let (part, name) = (self.part_name.as_str(), self.path.file_name());
        let at_final = |e: Errno| StoreError::Io {
            path: self.final_path.clone(),
            source: e.into(),
        };
        if self.overwrite {
            rustix::fs::renameat(folder, part, folder, name).map_err(at_final)?;
        } else {
            // A hard link fails if the name exists, atomically; rename would replace it.
            match rustix::fs::linkat(folder, part, folder, name, AtFlags::empty()) {
                Ok(()) => {}
                Err(Errno::EXIST) => return Err(StoreError::Exists(self.final_path.clone())),
                Err(e) => return Err(at_final(e)),
            }
            rustix::fs::unlinkat(folder, part, AtFlags::empty())
                .map_err(|e| self.io_error()(e.into()))?;
        }
        // Make the new name durable too; not every filesystem can sync a directory.
        let _ = rustix::fs::fsync(folder);
        Ok(())
    }
}

#[cfg(test)]
#[path = "part_file_tests.rs"]
mod tests;
