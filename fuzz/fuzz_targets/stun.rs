//! Datagrams on the STUN port: whatever arrives, the responder either refuses it or answers with a
//! Binding success that itself parses.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use p2p_signaling::stun::answer_binding;

fuzz_target!(|data: &[u8]| {
    let from = SocketAddr::from(([192, 0, 2, 1], 40000));
    if let Ok(answer) = answer_binding(data, from) {
        assert!(answer.len() >= 20 && answer.len() <= 64, "answer of {} bytes", answer.len());
        assert!(answer_binding(&answer, from).is_err(), "a response is not a request");
    }
});
