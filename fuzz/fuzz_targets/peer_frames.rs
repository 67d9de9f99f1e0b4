//! Frames from a hostile sender to a receiver (length-prefixed, see `p2phost::transfer::replay`):
//! the decoder and the receiver must refuse or go on without panicking, and never hand out data
//! for a file outside the accepted offer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = p2phost::transfer::replay::to_receiver(data);
});
