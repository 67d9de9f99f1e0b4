//! Replays the peer-frame fuzz corpora: `fuzz/corpus/peer_frames/` (a hostile sender against the
//! receiver) and `fuzz/corpus/receiver_frames/` (a hostile receiver against the sender). Every
//! hostile case ends in an error from the decoder or the state machine, every seed goes through,
//! nothing panics.

use std::path::Path;

use p2phost::transfer::{
    FileEntry, FrameDecoder, Manifest, Receiver, ReceiverEvent, Sender, SenderEvent,
};

/// Feeds the length-prefixed frames; `Err` at the first refusal.
fn replay(mut data: &[u8]) -> Result<(), String> {
    let mut decoder = FrameDecoder::default();
    let (mut receiver, _) = Receiver::new();
    while data.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let frame = data.get(2..2 + len).ok_or("truncated corpus entry")?;
        data = &data[2 + len..];
        let Some(frame) = decoder.decode(frame).map_err(|e| e.to_string())? else {
            continue;
        };
        for event in receiver.handle(frame).map_err(|e| e.to_string())? {
            if let ReceiverEvent::Offer(manifest) = event {
                receiver
                    .accept(vec![0; manifest.files.len()])
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// The sender's offer in `fuzz_targets/receiver_frames.rs`: a partial chunk, an empty file,
/// several chunk groups.
const SIZES: [u64; 3] = [2500, 0, 70_000];

/// Feeds a hostile receiver's frames to a sender of [`SIZES`]; `Err` at the first refusal,
/// `Ok(true)` once it reports the transfer complete.
fn replay_to_sender(mut data: &[u8]) -> Result<bool, String> {
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
    let (mut sender, _) = Sender::new(Manifest {
        chunk_size: 1000,
        group_size: 65_536,
        files,
        dirs: Vec::new(),
    });
    let mut decoder = FrameDecoder::default();
    while data.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let frame = data.get(2..2 + len).ok_or("truncated corpus entry")?;
        data = &data[2 + len..];
        let Some(frame) = decoder.decode(frame).map_err(|e| e.to_string())? else {
            continue;
        };
        if let SenderEvent::Completed { .. } = sender.handle(frame).map_err(|e| e.to_string())? {
            return Ok(true);
        }
        while let Some(plan) = sender.next_chunk() {
            let size = SIZES[plan.file as usize];
            assert!(
                plan.offset + plan.len as u64 <= size,
                "{plan:?} past {size}"
            );
        }
        let _ = sender.done();
    }
    Ok(false)
}

/// Runs `replay` over a corpus folder: `seed-*` must pass, every other entry must be refused.
fn check_corpus(folder: &str, replay: impl Fn(&[u8]) -> Result<(), String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(folder);
    let mut hostile = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let result = replay(&std::fs::read(entry.path()).unwrap());
        if name.starts_with("seed-") {
            assert!(result.is_ok(), "{name}: {result:?}");
        } else {
            hostile += 1;
            assert!(result.is_err(), "{name} was accepted");
        }
    }
    assert!(
        hostile >= 10,
        "only {hostile} hostile cases in {}",
        dir.display()
    );
}

#[test]
fn hostile_peer_frames_are_refused() {
    check_corpus("peer_frames", replay);
}

#[test]
fn hostile_receiver_frames_are_refused_by_the_sender() {
    check_corpus("receiver_frames", |data| replay_to_sender(data).map(|_| ()));
    // The complete seed does complete: the replay is not vacuous.
    let seed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/receiver_frames/seed-hello-accept-received"),
    )
    .unwrap();
    assert_eq!(replay_to_sender(&seed), Ok(true));
}
