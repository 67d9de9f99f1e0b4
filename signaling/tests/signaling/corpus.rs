//! Replays the fuzz corpora (`fuzz/corpus/`) through the parsers: hostile inputs are refused with
//! an error, seeds are accepted, and nothing panics.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use p2p_signaling::protocol::{ClientMessage, Hub, Inbound, Limits, Output, ServerMessage};
use p2p_signaling::stun::answer_binding;

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(
        files.iter().any(|(n, _)| n.starts_with("hostile-")),
        "no hostile cases in {name}"
    );
    files
}

#[test]
fn hostile_frames_are_refused_and_end_the_connection() {
    let limits = Limits::default();
    for (name, bytes) in corpus("frames") {
        let decoded = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                ClientMessage::decode(text, limits.max_frame_bytes).map_err(|e| e.to_string())
            });
        if name.starts_with("seed-") {
            assert!(decoded.is_ok(), "{name}: {decoded:?}");
            continue;
        }
        assert!(decoded.is_err(), "{name} was accepted: {decoded:?}");
        // The client side refuses it too.
        if let Ok(text) = std::str::from_utf8(&bytes) {
            assert!(ServerMessage::decode(text).is_err(), "{name}");
        }
        // And the hub answers it with a fatal error and a close.
        let mut hub = Hub::new(limits.clone());
        let now = Instant::now();
        let conn = hub.connect(Ipv4Addr::LOCALHOST.into(), now).unwrap();
        let mut out = Vec::new();
        let inbound = match std::str::from_utf8(&bytes) {
            Ok(text) => Inbound::Text(ClientMessage::decode(text, limits.max_frame_bytes)),
            Err(_) => Inbound::Binary,
        };
        hub.handle(conn, inbound, now, &mut out);
        assert!(
            matches!(
                &out[..],
                [
                    Output::Send {
                        message: ServerMessage::Error { fatal: true, .. },
                        ..
                    },
                    Output::Close { .. }
                ]
            ),
            "{name}: {out:?}"
        );
        assert_eq!(hub.connection_count(), 0, "{name}");
    }
}

#[test]
fn hostile_datagrams_get_no_stun_answer() {
    let from = SocketAddr::from(([192, 0, 2, 1], 40000));
    for (name, bytes) in corpus("stun") {
        let answer = answer_binding(&bytes, from);
        if name.starts_with("seed-") {
            let answer = answer.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                answer.len() <= 64,
                "{name}: answer of {} bytes",
                answer.len()
            );
        } else {
            assert!(answer.is_err(), "{name} was answered");
        }
    }
}
