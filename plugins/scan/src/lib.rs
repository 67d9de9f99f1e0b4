//! A content check: aborts the transfer when a file's bytes contain the EICAR test signature or a
//! pattern from the settings, including a match split across two chunks (it keeps the last bytes
//! of each file's previous chunk). It runs on whichever side lists it; on the receiving side it
//! sees the decoded bytes, and an abort leaves nothing under the final name.
//!
//! Settings (each may repeat): `pattern = "text"`, `pattern_hex = "deadbeef"`, and
//! `eicar = "false"` to leave the EICAR signature out.

use std::collections::HashMap;

use memchr::memmem::Finder;
use p2p_plugin_api::{ChunkAction, Description, FileInfo, Outcome, Plugin};

/// The EICAR anti-virus test signature, in two halves so this source is no test file itself.
const EICAR: [&str; 2] = [
    r"X5O!P%@AP[4\PZX54(P^)7CC)7}$",
    "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
];
/// The longest pattern accepted (it bounds what is kept per file between chunks).
pub const MAX_PATTERN: usize = 4096;

struct Pattern {
    name: String,
    finder: Finder<'static>,
}

/// What it has seen of a file so far.
struct Seen {
    /// Where the next chunk should start; a chunk elsewhere (a resume) starts afresh.
    next: u64,
    /// The last bytes seen, one fewer than the longest pattern.
    tail: Vec<u8>,
}

/// The scanner: its patterns and, per file in flight, the tail of the previous chunk.
pub struct Scan {
    patterns: Vec<Pattern>,
    files: HashMap<String, Seen>,
}

impl Default for Scan {
    fn default() -> Self {
        let mut scan = Self {
            patterns: Vec::new(),
            files: HashMap::new(),
        };
        scan.add(
            "the EICAR test signature".into(),
            EICAR.concat().into_bytes(),
        );
        scan
    }
}

impl Plugin for Scan {
    fn describe(&self) -> Description {
        Description::new("scan", env!("CARGO_PKG_VERSION"))
            .chunk(true)
            .complete()
    }

    fn configure(&mut self, settings: Vec<(String, String)>) -> Result<(), String> {
        let mut eicar = true;
        let mut patterns = Vec::new();
        for (key, value) in settings {
            let bytes = match key.as_str() {
                "pattern" => value.clone().into_bytes(),
                "pattern_hex" => hex(&value)?,
                "eicar" => {
                    eicar = value
                        .parse()
                        .map_err(|_| format!("eicar: {value:?} is not true or false"))?;
                    continue;
                }
                _ => {
                    return Err(format!(
                        "unknown setting {key:?} (known: pattern, pattern_hex, eicar)"
                    ));
                }
            };
            if bytes.is_empty() || bytes.len() > MAX_PATTERN {
                return Err(format!("{key}: a pattern has 1 to {MAX_PATTERN} bytes"));
            }
            patterns.push((format!("{key} {value:?}"), bytes));
        }
        if !eicar {
            self.patterns.clear();
        }
        for (name, bytes) in patterns {
            self.add(name, bytes);
        }
        Ok(())
    }

    fn chunk(&mut self, file: &FileInfo, offset: u64, data: Vec<u8>) -> ChunkAction {
        match self.scan(&file.path, offset, &data) {
            None => ChunkAction::Pass,
            Some((name, at)) => {
                self.files.remove(&file.path);
                ChunkAction::Abort(format!("{} contains {name} at byte {at}", file.path))
            }
        }
    }

    fn complete(&mut self, file: &FileInfo, _outcome: Outcome) -> Result<(), String> {
        self.files.remove(&file.path);
        Ok(())
    }
}

impl Scan {
    fn add(&mut self, name: String, bytes: Vec<u8>) {
        self.patterns.push(Pattern {
            name,
            finder: Finder::new(&bytes).into_owned(),
        });
    }

    /// The first pattern found in `data` (at `offset` of `path`, following what was seen before)
    /// and the file offset where it starts.
    fn scan(&mut self, path: &str, offset: u64, data: &[u8]) -> Option<(String, u64)> {
        let keep = self
            .patterns
            .iter()
            .map(|p| p.finder.needle().len())
            .max()
            .unwrap_or(1)
            - 1;
        let seen = self.files.entry(path.to_owned()).or_insert(Seen {
            next: offset,
            tail: Vec::new(),
        });
        if seen.next != offset {
            seen.tail.clear();
        }
        // Matches that start in the tail end within the first `keep` bytes of this chunk.
        if !seen.tail.is_empty() {
            let mut window = seen.tail.clone();
            window.extend_from_slice(&data[..data.len().min(keep)]);
            for p in &self.patterns {
                if let Some(at) = p.finder.find(&window) {
                    let start = offset - seen.tail.len() as u64 + at as u64;
                    return Some((p.name.clone(), start));
                }
            }
        }
        for p in &self.patterns {
            if let Some(at) = p.finder.find(data) {
                return Some((p.name.clone(), offset + at as u64));
            }
        }
        if data.len() >= keep {
            seen.tail.clear();
            seen.tail.extend_from_slice(&data[data.len() - keep..]);
        } else {
            seen.tail.extend_from_slice(data);
            let excess = seen.tail.len().saturating_sub(keep);
            seen.tail.drain(..excess);
        }
        seen.next = offset + data.len() as u64;
        None
    }
}

fn hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("pattern_hex: {text:?} has an odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| format!("pattern_hex: {text:?} is not hexadecimal"))
        })
        .collect()
}

p2p_plugin_api::export_plugin!(Scan);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scan_with(settings: &[(&str, &str)]) -> Scan {
        let mut scan = Scan::default();
        let settings = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        scan.configure(settings).unwrap();
        scan
    }

    /// Feeds `bytes` in chunks of `size`; the offset of the first match, if any.
    fn feed(scan: &mut Scan, bytes: &[u8], size: usize) -> Option<u64> {
        for (i, chunk) in bytes.chunks(size).enumerate() {
            if let Some((_, at)) = scan.scan("f", (i * size) as u64, chunk) {
                return Some(at);
            }
        }
        None
    }

    #[test]
    fn eicar_found_at_every_split() {
        let eicar = EICAR.concat();
        let mut file = vec![b'.'; 300];
        file.extend_from_slice(eicar.as_bytes());
        file.extend_from_slice(&[b'.'; 50]);
        for size in [1, 2, 7, 64, 100, 301, 330, 1000] {
            assert_eq!(
                feed(&mut Scan::default(), &file, size),
                Some(300),
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn clean_bytes_pass_and_eicar_can_be_off() {
        assert_eq!(feed(&mut Scan::default(), &[b'x'; 10_000], 333), None);
        let mut scan = scan_with(&[("eicar", "false")]);
        assert_eq!(feed(&mut scan, EICAR.concat().as_bytes(), 10), None);
    }

    #[test]
    fn configured_patterns_across_chunks() {
        let mut scan = scan_with(&[("pattern", "secret"), ("pattern_hex", "00 ff 00")]);
        assert_eq!(feed(&mut scan, b"aaaasecretaaa", 5), Some(4));
        let mut scan = scan_with(&[("pattern_hex", "00ff00")]);
        assert_eq!(feed(&mut scan, &[1, 1, 0, 0xff, 0, 1], 3), Some(2));
        assert!(
            Scan::default()
                .configure(vec![("pattern_hex".into(), "0g".into())])
                .is_err()
        );
        assert!(
            Scan::default()
                .configure(vec![("nope".into(), "1".into())])
                .is_err()
        );
    }

    #[test]
    fn a_resumed_file_starts_afresh() {
        let mut scan = scan_with(&[("pattern", "abcd")]);
        assert_eq!(scan.scan("f", 0, b"xxab"), None);
        // Not at offset 4: the tail "ab" must not join "cd".
        assert_eq!(scan.scan("f", 100, b"cdxx"), None);
    }
}
