//! Drives either side of the peer protocol with a recorded stream of frames from a hostile peer:
//! what the fuzz targets (`fuzz/fuzz_targets/peer_frames.rs`, `receiver_frames.rs`) run and what
//! the tests replay their corpora with, so both exercise the same code.
//!
//! A stream is length-prefixed frames: `len: u16 BE | frame`, repeated. The replay stops at the
//! first refusal. Broken invariants of this side (data for a file outside the offer, a chunk
//! planned past a file's end) are bugs, caught by `debug_assert!` (on in tests and fuzz builds).

use super::{FileEntry, FrameDecoder, Manifest, Receiver, ReceiverEvent, Sender, SenderEvent};

/// Sizes of the files the sender offers in [`to_sender`]: a partial chunk, an empty file, more
/// than one chunk group.
pub const SENDER_FILE_SIZES: [u64; 3] = [2500, 0, 70_000];

/// How a replay ended without a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// The stream ended with the transfer still under way.
    Unfinished,
    /// The side reported the transfer complete.
    Completed,
}

/// The frames of a length-prefixed stream; `Err` if it ends inside a frame.
fn frames(mut data: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let Some((&[high, low], rest)) = data.split_first_chunk::<2>() else {
            data = &[];
            return Some(Err("a length prefix cut short".into()));
        };
        let len = usize::from(u16::from_be_bytes([high, low]));
        let Some(frame) = rest.get(..len) else {
            data = &[];
            return Some(Err("a frame cut short".into()));
        };
        data = &rest[len..];
        Some(Ok(frame))
    })
}

/// Feeds a hostile sender's `stream` to a receiver that accepts any valid offer from offset 0.
pub fn to_receiver(stream: &[u8]) -> Result<Replayed, String> {
    let mut decoder = FrameDecoder::default();
    let (mut receiver, _) = Receiver::new();
    let mut files = 0usize;
    for frame in frames(stream) {
        let Some(frame) = decoder.decode(frame?).map_err(|e| e.to_string())? else {
            continue;
        };
        for event in receiver.handle(frame).map_err(|e| e.to_string())? {
            match event {
                ReceiverEvent::Offer(manifest) => {
                    files = manifest.files.len();
                    receiver.accept(vec![0; files]).map_err(|e| e.to_string())?;
                }
                ReceiverEvent::Data { file, .. } | ReceiverEvent::FileComplete(file) => {
                    debug_assert!(file < files, "event for file {file} of {files}");
                }
                ReceiverEvent::Finished => return Ok(Replayed::Completed),
            }
        }
    }
    Ok(Replayed::Unfinished)
}

/// Feeds a hostile receiver's `stream` to a sender of [`SENDER_FILE_SIZES`], which plans every
/// chunk it may after each frame.
pub fn to_sender(stream: &[u8]) -> Result<Replayed, String> {
    let files = SENDER_FILE_SIZES
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
    let (mut sender, _) = Sender::new(Manifest {
        chunk_size: 1000,
        group_size: 65_536,
        files,
        dirs: Vec::new(),
        encodings: Vec::new(),
    });
    let mut decoder = FrameDecoder::default();
    for frame in frames(stream) {
        let Some(frame) = decoder.decode(frame?).map_err(|e| e.to_string())? else {
            continue;
        };
        if let SenderEvent::Completed { .. } = sender.handle(frame).map_err(|e| e.to_string())? {
            return Ok(Replayed::Completed);
        }
        while let Some(plan) = sender.next_chunk() {
            let size = SENDER_FILE_SIZES.get(plan.file as usize).copied();
            debug_assert!(
                size.is_some_and(|size| plan.offset + plan.len as u64 <= size),
                "{plan:?} outside the offer"
            );
        }
        let _ = sender.done();
    }
    Ok(Replayed::Unfinished)
}
