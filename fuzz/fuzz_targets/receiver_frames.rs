//! Frames from a hostile receiver to a sender: length-prefixed (u16 BE) frames fed to the frame
//! decoder and the sender state machine, which must refuse or go on without panicking, and never
//! plan a chunk outside the files it offered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2phost::transfer::{FileEntry, FrameDecoder, Manifest, Sender};

/// Sizes of the offered files: a partial chunk, an empty file, several chunk groups.
const SIZES: [u64; 3] = [2500, 0, 70_000];

fuzz_target!(|data: &[u8]| {
    let files = SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| FileEntry {
            path: format!("f{i}"),
            size,
            mode: 0o644,
            hash: String::new(),
            groups: Vec::new(),
        })
        .collect();
    let manifest = Manifest {
        chunk_size: 1000,
        group_size: 65_536,
        files,
        dirs: Vec::new(),
    };
    let (mut sender, _) = Sender::new(manifest);
    let mut decoder = FrameDecoder::default();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let Some(frame) = rest.get(2..2 + len) else { break };
        rest = &rest[2 + len..];
        let Ok(Some(frame)) = decoder.decode(frame) else { continue };
        if sender.handle(frame).is_err() {
            break;
        }
        while let Some(plan) = sender.next_chunk() {
            let size = SIZES[plan.file as usize];
            assert!(plan.offset + plan.len as u64 <= size, "{plan:?} past {size}");
        }
        let _ = sender.done();
    }
});
