//! Pair-room proofs and the welcome that carries their nonce, as both sides read them: the bytes
//! are read once as a server frame (a hostile server's `welcome`, read by the client), then split
//! into frames at newlines and fed to one connection of a hub, after a hello, as a hostile client
//! would send `prove` and `join` (every field base64url, the certificate parsed as X.509, the
//! signature checked against the connection's nonce). Nothing may panic; a connection proves at
//! most one host, and only a pair room its host is named in lets it in.
//!
//! The seeds in `fuzz/corpus/pair_proof/` were signed by a real P-256 key (made with rcgen) over
//! [`NONCE`]; `signaling/tests/signaling/corpus.rs` replays them with the same nonce.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2p_signaling::protocol::{
    ClientMessage, HostProof, Hub, Inbound, Limits, Nonce, Output, ServerMessage, check_pair_join,
};

/// The nonce the hub gives the fuzzed connection, and that the corpus's seeds sign.
const NONCE: Nonce = Nonce([0x5a; 32]);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The client side: whatever a server sends as its welcome.
    if let Ok(welcome @ ServerMessage::Welcome { .. }) = ServerMessage::decode(&text) {
        let again = ServerMessage::decode(&welcome.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&welcome),
            "a welcome that reads does not write back"
        );
    }
    let limits = Limits::default();
    let max = limits.max_frame_bytes;
    let mut hub = Hub::new(limits);
    let now = Instant::now();
    let mut out = Vec::new();
    let Ok(conn) = hub.connect(Ipv4Addr::LOCALHOST.into(), NONCE, now) else {
        return;
    };
    let hello = ClientMessage::decode(r#"{"type":"hello","version":1}"#, max);
    hub.handle(conn, Inbound::Text(hello), now, &mut out);
    let mut proved = 0;
    for (i, frame) in text.split('\n').enumerate() {
        let decoded = ClientMessage::decode(frame, max);
        // The pure checks, straight.
        match &decoded {
            Ok(ClientMessage::Prove {
                certificate,
                signature,
                ..
            }) => {
                let proof = HostProof {
                    certificate: certificate.clone(),
                    signature: signature.clone(),
                };
                if proof.verify(&NONCE).is_ok() {
                    assert!(
                        proof.verify(&Nonce([0xa5; 32])).is_err(),
                        "a proof good for two nonces"
                    );
                }
            }
            Ok(ClientMessage::Join { room, peer, .. }) => {
                if let Ok(Some(_)) = check_pair_join(room, None, peer.as_deref()) {
                    panic!("a pair room joined without a proved host");
                }
            }
            _ => {}
        }
        let at = now + Duration::from_millis(i as u64);
        let before = out.len();
        hub.handle(conn, Inbound::Text(decoded), at, &mut out);
        proved += out[before..]
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        message: ServerMessage::Proved { .. },
                        ..
                    }
                )
            })
            .count();
        assert!(proved <= 1, "one connection proved two hosts");
    }
    hub.disconnect(conn, &mut out);
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.room_count(), 0);
});
