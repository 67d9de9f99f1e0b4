//! Messages in a pair room (daemon mode), read as the daemon reads what the signaling server
//! relays: `p2phost::session::inspect_pair_message`, the dispatcher's JSON parser, then for an offer
//! or an answer the checks a session makes before it uses the description (its type, and every
//! DTLS fingerprint pinned to the room's peer). Nothing may panic, and a description accepted for
//! the room's peer is refused for any other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2phost::identity::PeerId;
use p2phost::session::inspect_pair_message;

/// The certificate of the room's peer: the seeds in `fuzz/corpus/pair_message/` carry its
/// fingerprint, and `host/tests/host/corpus.rs` replays them with the same one.
const CERTIFICATE: &[u8] = b"pair_message fuzz peer";

fuzz_target!(|data: &[u8]| {
    // The server's frames are text; other bytes are read lossily so that they reach the parser.
    let text = String::from_utf8_lossy(data);
    let expected = PeerId::of_certificate(CERTIFICATE);
    let Ok(info) = inspect_pair_message(&text, &expected) else {
        return;
    };
    if matches!(info.kind, "offer" | "answer") {
        let other = PeerId::of_certificate(b"another host");
        assert!(
            inspect_pair_message(&text, &other).is_err(),
            "a description pinned to two certificates"
        );
    }
});
