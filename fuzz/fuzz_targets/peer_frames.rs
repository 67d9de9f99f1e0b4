//! Frames from a hostile sender to a receiver: length-prefixed (u16 BE) frames fed to the frame
//! decoder and the receiver state machine, which must refuse or accept without panicking, and never
//! hand out data for a file outside the accepted offer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2phost::transfer::{FrameDecoder, Receiver, ReceiverEvent};

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::default();
    let (mut receiver, _) = Receiver::new();
    let mut files = 0usize;
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let Some(frame) = rest.get(2..2 + len) else { break };
        rest = &rest[2 + len..];
        let Ok(Some(frame)) = decoder.decode(frame) else { continue };
        let Ok(events) = receiver.handle(frame) else { break };
        for event in events {
            match event {
                ReceiverEvent::Offer(manifest) => {
                    files = manifest.files.len();
                    let offsets = vec![0; files];
                    if receiver.accept(offsets).is_err() {
                        return;
                    }
                }
                ReceiverEvent::Data { file, .. } | ReceiverEvent::FileComplete(file) => {
                    assert!(file < files, "event for file {file} of {files}");
                }
                _ => {}
            }
        }
    }
});
