//! Signaling frames, as the server and the client read them: the bytes are split into frames at
//! newlines and fed to one connection of a hub, after a hello, as a hostile client would.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2p_signaling::protocol::{ClientMessage, Hub, Inbound, Limits, Nonce, ServerMessage};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let max = limits.max_frame_bytes;
    let mut hub = Hub::new(limits);
    let now = Instant::now();
    let mut out = Vec::new();
    let Ok(a) = hub.connect(Ipv4Addr::LOCALHOST.into(), Nonce([1; 32]), now) else { return };
    let Ok(b) = hub.connect(Ipv4Addr::LOCALHOST.into(), Nonce([2; 32]), now) else { return };
    for conn in [a, b] {
        let hello = ClientMessage::decode(r#"{"type":"hello","version":1}"#, max);
        hub.handle(conn, Inbound::Text(hello), now, &mut out);
    }
    let join = ClientMessage::decode(r#"{"type":"join","room":"1"}"#, max);
    hub.handle(b, Inbound::Text(join), now, &mut out);
    for (i, frame) in data.split(|&byte| byte == b'\n').enumerate() {
        let inbound = match std::str::from_utf8(frame) {
            Ok(text) => {
                // The client side parses the same bytes as server frames.
                let _ = ServerMessage::decode(text);
                Inbound::Text(ClientMessage::decode(text, max))
            }
            Err(_) => Inbound::Binary,
        };
        let at = now + Duration::from_millis(i as u64);
        hub.handle(a, inbound, at, &mut out);
        hub.handle_timeout(at, &mut out);
    }
    hub.disconnect(a, &mut out);
    hub.disconnect(b, &mut out);
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.room_count(), 0);
});
