//! Bytes from a TURN server over TCP or TLS, as the TURN-over-stream shim splits them (see
//! `p2phost::session::turn_framing::replay`): whatever arrives, in reads of whatever size, the
//! splitter yields the same messages or the same error, holds at most one message, and each
//! message goes back on a stream as it came.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = p2phost::session::turn_framing::replay(data);
});
