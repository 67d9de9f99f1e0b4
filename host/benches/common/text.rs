//! The text corpus of the hooks benchmarks: numbered lines of 4 to 15 words from a small
//! vocabulary, like a log or prose, generated deterministically: text lz4 can shrink.

use super::files::next;

const VOCABULARY: &str = "the transfer of a file peer to chunk plugin script and is sent received \
    over channel data with hook bytes in on signaling server code offer done error warning info \
    connection established closed hash verified stored network loopback time seconds memory \
    sandbox call returns pass replace abort compress";

/// The first `size` bytes of the corpus.
pub(crate) fn text_corpus(size: usize) -> Vec<u8> {
    let words: Vec<&str> = VOCABULARY.split_whitespace().collect();
    let mut text = String::with_capacity(size + 256);
    let (mut state, mut line) = (0x2545_F491_u64, 0u64);
    while text.len() < size {
        line += 1;
        text.push_str(&format!("{line:08} "));
        let r = next(&mut state);
        for i in 0..4 + r % 12 {
            let pick = (next(&mut state) >> (i % 4)) as usize % words.len();
            text.push_str(words[pick]);
            text.push(' ');
        }
        text.push('\n');
    }
    let mut bytes = text.into_bytes();
    bytes.truncate(size);
    bytes
}
