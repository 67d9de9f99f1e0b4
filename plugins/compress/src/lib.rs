//! Per-chunk LZ4 compression (encoding `lz4`, block format with the plain size prepended).
//!
//! - Sending side: `pre-send` asks to encode every file except ones that are already compressed
//!   (by extension, see [`SKIP_EXTENSIONS`]; setting `skip` replaces the list, comma-separated);
//!   `chunk` compresses and returns `replace`, or `pass` when the chunk would not shrink, so the
//!   host sends it plain and marks it so in the chunk frame.
//! - Receiving side: the host calls `chunk` only for chunks marked `lz4`; it decompresses and
//!   returns `replace`, or `abort` on corrupt input or a plain size out of bounds (more than what is
//!   left of the file, or than setting `max_chunk_bytes`, 1 MiB by default).

use p2p_plugin_api::{ChunkAction, Description, FileInfo, Plugin, PreSendDecision, Side, setting};

/// Extensions of files that are compressed already: encoding them costs CPU for nothing.
pub const SKIP_EXTENSIONS: &[&str] = &[
    "7z", "avif", "br", "bz2", "gz", "heic", "jpeg", "jpg", "lz4", "mkv", "mov", "mp3", "mp4",
    "ogg", "png", "rar", "webm", "webp", "xz", "zip", "zst",
];

/// The largest plain chunk it will decode (the protocol's largest chunk).
const DEFAULT_MAX_CHUNK: usize = 1024 * 1024;

/// The compressor's settings.
pub struct Compress {
    skip: Vec<String>,
    max_chunk: usize,
}

impl Default for Compress {
    fn default() -> Self {
        Self {
            skip: SKIP_EXTENSIONS.iter().map(|s| (*s).to_owned()).collect(),
            max_chunk: DEFAULT_MAX_CHUNK,
        }
    }
}

impl Plugin for Compress {
    fn describe(&self) -> Description {
        Description::new("compress", env!("CARGO_PKG_VERSION"))
            .pre_send()
            .encoding("lz4")
    }

    fn configure(&mut self, settings: Vec<(String, String)>) -> Result<(), String> {
        for (key, _) in &settings {
            if key != "skip" && key != "max_chunk_bytes" {
                return Err(format!(
                    "unknown setting {key:?} (known: skip, max_chunk_bytes)"
                ));
            }
        }
        if let Some(list) = setting(&settings, "skip") {
            self.skip = list
                .split(',')
                .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect();
        }
        if let Some(max) = setting(&settings, "max_chunk_bytes") {
            self.max_chunk = max
                .parse()
                .map_err(|_| format!("max_chunk_bytes: {max:?} is not a number of bytes"))?;
        }
        Ok(())
    }

    fn pre_send(&mut self, file: &FileInfo) -> PreSendDecision {
        if file.side == Side::Send && !self.skips(&file.path) {
            PreSendDecision::Encode
        } else {
            PreSendDecision::Continue
        }
    }

    fn chunk(&mut self, file: &FileInfo, offset: u64, data: Vec<u8>) -> ChunkAction {
        match file.side {
            Side::Send => match encode(&data) {
                Some(encoded) => ChunkAction::Replace(encoded),
                None => ChunkAction::Pass,
            },
            Side::Receive => {
                let left = file.size.saturating_sub(offset);
                let max = self
                    .max_chunk
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                match decode(&data, max) {
                    Ok(plain) => ChunkAction::Replace(plain),
                    Err(why) => ChunkAction::Abort(format!(
                        "corrupt lz4 chunk at offset {offset} of {}: {why}",
                        file.path
                    )),
                }
            }
        }
    }
}

impl Compress {
    fn skips(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => {
                let ext = ext.to_ascii_lowercase();
                self.skip.contains(&ext)
            }
            _ => false,
        }
    }
}

/// The chunk compressed, if that makes it smaller.
pub fn encode(plain: &[u8]) -> Option<Vec<u8>> {
    let encoded = lz4_flex::block::compress_prepend_size(plain);
    (encoded.len() < plain.len()).then_some(encoded)
}

/// The chunk decompressed; its plain size must be at most `max` bytes.
pub fn decode(encoded: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let (size, block) = lz4_flex::block::uncompressed_size(encoded).map_err(|e| e.to_string())?;
    if size > max {
        return Err(format!(
            "it claims {size} plain bytes, more than the {max} allowed"
        ));
    }
    let plain = lz4_flex::block::decompress(block, size).map_err(|e| e.to_string())?;
    if plain.len() != size {
        return Err(format!(
            "{} plain bytes, not the {size} announced",
            plain.len()
        ));
    }
    Ok(plain)
}

p2p_plugin_api::export_plugin!(Compress);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_shrinks_and_round_trips() {
        let plain = b"the quick brown fox jumps over the lazy dog. ".repeat(1000);
        let encoded = encode(&plain).unwrap();
        assert!(encoded.len() * 2 <= plain.len());
        assert_eq!(decode(&encoded, plain.len()).unwrap(), plain);
    }

    #[test]
    fn incompressible_passes() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(encode(&noise).is_none());
    }

    #[test]
    fn bounds_and_garbage_are_refused() {
        let encoded = encode(&[b'a'; 10_000]).unwrap();
        assert!(decode(&encoded, 9_999).is_err());
        assert!(decode(&[0xff, 0xff, 0xff, 0x7f, 1, 2], usize::MAX).is_err());
        assert!(decode(&[1, 2], 100).is_err());
    }

    #[test]
    fn skips_compressed_extensions() {
        let c = Compress::default();
        assert!(c.skips("a/b/photo.JPG"));
        assert!(!c.skips("a/b/notes.txt"));
        assert!(!c.skips("a/.gz"));
    }
}
