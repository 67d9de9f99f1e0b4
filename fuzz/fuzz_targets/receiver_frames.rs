//! Frames from a hostile receiver to a sender (length-prefixed, see `p2phost::transfer::replay`):
//! the decoder and the sender must refuse or go on without panicking, and never plan a chunk
//! outside the files it offered.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = p2phost::transfer::replay::to_sender(data);
});
