//! The sender's hashes of a file, one per chunk group: how every received byte is checked as it
//! arrives, and how a cut transfer finds where to resume.

use std::io::{self, Read};

/// The BLAKE3 hash of every chunk group of a file, in order; the last group may be short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkGroups {
    /// Bytes per group (the last one may hold fewer).
    pub group_size: u64,
    /// One hash per group.
    pub hashes: Vec<blake3::Hash>,
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
