//! The sender's offer: what files, how big, and their BLAKE3 hashes (whole and per chunk group).
//! The receiver validates every field of it before anything touches disk.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::store::{ChunkGroups, PathError, SafePath};

/// Most files (and, separately, directories) one transfer may hold.
pub const MAX_FILES: usize = 100_000;
/// Smallest and largest chunk (bytes of file data per chunk frame).
pub const CHUNK_SIZE_RANGE: (u32, u32) = (1024, 1024 * 1024);
/// Smallest and largest chunk group (bytes per hash).
pub const GROUP_SIZE_RANGE: (u64, u64) = (64 * 1024, 256 * 1024 * 1024);

/// Most encodings an offer may list (one chunk byte names them, 0 being none).
pub const MAX_ENCODINGS: usize = 16;

/// The manifest as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Bytes of file data per chunk frame.
    pub chunk_size: u32,
    /// Bytes per hashed chunk group.
    pub group_size: u64,
    /// The files, in the order they are sent.
    pub files: Vec<FileEntry>,
    /// Directories to create, empty ones included.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Encodings (provided by plugins) that chunks may be in: a chunk's encoding byte `n` names
    /// the `n`-th (1-based). The receiver needs a plugin for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encodings: Vec<String>,
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Unix permission bits (only the executable bits are applied).
    pub mode: u32,
    /// BLAKE3 of the whole file, hex.
    pub hash: String,
    /// BLAKE3 of each chunk group, hex.
    pub groups: Vec<String>,
}

impl FileEntry {
    /// The entry for a file of `size` bytes whose hashes were computed with [`ChunkGroups::compute`].
    pub fn new(
        path: String,
        size: u64,
        mode: u32,
        groups: &ChunkGroups,
        hash: blake3::Hash,
    ) -> Self {
        Self {
            path,
            size,
            mode,
            hash: hash.to_hex().to_string(),
            groups: groups
                .hashes
                .iter()
                .map(|h| h.to_hex().to_string())
                .collect(),
        }
    }
}

/// A manifest whose every field was checked.
#[derive(Debug, Clone)]
pub struct ValidManifest {
    /// Bytes of file data per chunk frame.
    pub chunk_size: u32,
    /// The files.
    pub files: Vec<ValidFile>,
    /// The directories.
    pub dirs: Vec<SafePath>,
    /// Sum of the file sizes.
    pub total_bytes: u64,
    /// Encodings chunks may be in (see [`Manifest::encodings`]).
    pub encodings: Vec<String>,
}

/// A checked file entry.
#[derive(Debug, Clone)]
pub struct ValidFile {
    /// Where it goes, under the destination.
    pub path: SafePath,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Whole-file hash.
    pub hash: blake3::Hash,
    /// Chunk-group hashes.
    pub groups: ChunkGroups,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A path is unsafe.
    #[error("unsafe path in the offer: {0}")]
    Path(#[from] PathError),
    /// Too many files or directories.
    #[error("the offer lists {0} entries; the limit is {MAX_FILES}")]
    TooMany(usize),
    /// The same path twice, or a file where a directory is needed.
    #[error("the offer names {0:?} twice, or as both a file and a directory")]
    Duplicate(String),
    /// A hash that is not 64 hex digits, or a group count that does not fit the size.
    #[error(
        "bad hash data for {0:?}: a file needs one BLAKE3 hash (64 hex digits) per chunk group"
    )]
    BadHash(String),
    /// Chunk or group size out of range.
    #[error("chunk size {0} or group size {1} out of range")]
    BadSizes(u32, u64),
    /// Encoding names that are not short printable ASCII, or too many of them.
    #[error("the offer's encodings must be at most {MAX_ENCODINGS} short printable names")]
    BadEncodings,
    /// The sizes add up past 2^64.
    #[error("the file sizes add up past 2^64 bytes")]
    TotalOverflow,
}

impl Manifest {
    /// Checks everything a hostile sender could get wrong.
    pub fn validate(&self) -> Result<ValidManifest, ManifestError> {
        let (chunk_min, chunk_max) = CHUNK_SIZE_RANGE;
        let (group_min, group_max) = GROUP_SIZE_RANGE;
        if !(chunk_min..=chunk_max).contains(&self.chunk_size)
            || !(group_min..=group_max).contains(&self.group_size)
        {
            return Err(ManifestError::BadSizes(self.chunk_size, self.group_size));
        }
        for count in [self.files.len(), self.dirs.len()] {
            if count > MAX_FILES {
                return Err(ManifestError::TooMany(count));
            }
        }
        let mut seen_files = HashSet::new();
        let mut needed_dirs = HashSet::new();
        let mut total: u64 = 0;
        let mut files = Vec::with_capacity(self.files.len());
        for entry in &self.files {
            let path = SafePath::from_peer(&entry.path)?;
            let bad_hash = || ManifestError::BadHash(entry.path.clone());
            let hash = blake3::Hash::from_hex(&entry.hash).map_err(|_| bad_hash())?;
            let groups = entry
                .groups
                .iter()
                .map(|h| blake3::Hash::from_hex(h).map_err(|_| bad_hash()))
                .collect::<Result<Vec<_>, _>>()?;
            let groups = ChunkGroups {
                group_size: self.group_size,
                hashes: groups,
            };
            if groups.hashes.len() != groups.groups_for(entry.size) {
                return Err(bad_hash());
            }
            total = total
                .checked_add(entry.size)
                .ok_or(ManifestError::TotalOverflow)?;
            if !seen_files.insert(path.to_string()) {
                return Err(ManifestError::Duplicate(entry.path.clone()));
            }
            let text = path.to_string();
            let mut prefix = text.as_str();
            while let Some((parent, _)) = prefix.rsplit_once('/') {
                needed_dirs.insert(parent.to_owned());
                prefix = parent;
            }
            files.push(ValidFile {
                path,
                size: entry.size,
                mode: entry.mode,
                hash,
                groups,
            });
        }
        let mut dirs = Vec::with_capacity(self.dirs.len());
        for dir in &self.dirs {
            let path = SafePath::from_peer(dir)?;
            if seen_files.contains(&path.to_string()) {
                return Err(ManifestError::Duplicate(dir.clone()));
            }
            dirs.push(path);
        }
        if let Some(clash) = needed_dirs.iter().find(|d| seen_files.contains(*d)) {
            return Err(ManifestError::Duplicate(clash.clone()));
        }
        if self.encodings.len() > MAX_ENCODINGS
            || self
                .encodings
                .iter()
                .any(|e| e.is_empty() || e.len() > 64 || !e.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(ManifestError::BadEncodings);
        }
        Ok(ValidManifest {
            chunk_size: self.chunk_size,
            files,
            dirs,
            total_bytes: total,
            encodings: self.encodings.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, data: &[u8]) -> FileEntry {
        let (groups, hash) = ChunkGroups::compute(&mut &data[..], data.len() as u64, 65536)
            .unwrap_or_else(|e| panic!("{e}"));
        FileEntry::new(path.into(), data.len() as u64, 0o644, &groups, hash)
    }

    fn manifest(files: Vec<FileEntry>, dirs: Vec<&str>) -> Manifest {
        Manifest {
            chunk_size: 65536,
            group_size: 65536,
            files,
            dirs: dirs.into_iter().map(String::from).collect(),
            encodings: Vec::new(),
        }
    }

    #[test]
    fn a_sound_manifest_validates() {
        let m = manifest(
            vec![entry("a/b.txt", b"hello"), entry("c", b"")],
            vec!["a", "empty/dir"],
        );
        let valid = m.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(valid.total_bytes, 5);
        assert_eq!(valid.files.len(), 2);
        assert_eq!(valid.dirs.len(), 2);
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let bad_path = manifest(vec![entry("../../etc/passwd", b"x")], vec![]);
        assert!(matches!(bad_path.validate(), Err(ManifestError::Path(_))));
        let abs = manifest(vec![entry("/abs", b"x")], vec![]);
        assert!(matches!(abs.validate(), Err(ManifestError::Path(_))));
        let nul = manifest(vec![], vec!["a\0b"]);
        assert!(matches!(nul.validate(), Err(ManifestError::Path(_))));
        let twice = manifest(vec![entry("a", b"x"), entry("a", b"y")], vec![]);
        assert!(matches!(twice.validate(), Err(ManifestError::Duplicate(_))));
        let file_as_dir = manifest(vec![entry("a", b"x"), entry("a/b", b"y")], vec![]);
        assert!(matches!(
            file_as_dir.validate(),
            Err(ManifestError::Duplicate(_))
        ));
        let dir_as_file = manifest(vec![entry("a", b"x")], vec!["a"]);
        assert!(matches!(
            dir_as_file.validate(),
            Err(ManifestError::Duplicate(_))
        ));

        let mut lying = entry("big", b"x");
        lying.size = 1 << 40;
        assert!(matches!(
            manifest(vec![lying], vec![]).validate(),
            Err(ManifestError::BadHash(_))
        ));
        let mut not_hex = entry("f", b"x");
        not_hex.hash = "zz".into();
        assert!(matches!(
            manifest(vec![not_hex], vec![]).validate(),
            Err(ManifestError::BadHash(_))
        ));

        let mut a = entry("a", b"");
        a.size = u64::MAX;
        a.groups = vec![];
        let mut huge = manifest(vec![a], vec![]);
        huge.group_size = GROUP_SIZE_RANGE.1;
        assert!(huge.validate().is_err());

        let many = manifest(vec![], vec!["d"; MAX_FILES + 1]);
        assert!(matches!(many.validate(), Err(ManifestError::TooMany(_))));
        let mut sizes = manifest(vec![], vec![]);
        sizes.chunk_size = 0;
        assert!(matches!(sizes.validate(), Err(ManifestError::BadSizes(..))));
    }
}
