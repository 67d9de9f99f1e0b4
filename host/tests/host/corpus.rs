//! Replays the peer-frame fuzz corpus (`fuzz/corpus/peer_frames/`): every hostile case ends in an
//! error from the decoder or the receiver, every seed is accepted, nothing panics.

use std::path::PathBuf;

use p2phost::transfer::{FrameDecoder, Receiver, ReceiverEvent};

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

#[test]
fn hostile_peer_frames_are_refused() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/peer_frames");
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
