//! Replays the fuzz corpora (`fuzz/corpus/`) through the parsers: hostile inputs are refused with
//! an error, seeds are accepted, and nothing panics.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use p2p_signaling::protocol::{
    ClientMessage, ErrorKind, Hub, Inbound, Limits, Nonce, Output, ServerMessage,
};
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
        let conn = hub
            .connect(Ipv4Addr::LOCALHOST.into(), Nonce([1; 32]), now)
            .unwrap();
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

/// The nonce the `pair_proof` seeds were signed over (`fuzz/fuzz_targets/pair_proof.rs`).
const PAIR_PROOF_NONCE: Nonce = Nonce([0x5a; 32]);

#[test]
fn hostile_proofs_joins_and_welcomes_are_refused() {
    let limits = Limits::default();
    for (name, bytes) in corpus("pair_proof") {
        let text = std::str::from_utf8(&bytes).unwrap();
        if name.contains("welcome") {
            // What a client reads from a server.
            let decoded = ServerMessage::decode(text);
            if name.starts_with("seed-") {
                assert!(
                    matches!(&decoded, Ok(ServerMessage::Welcome { nonce: Some(n), .. }) if *n == PAIR_PROOF_NONCE),
                    "{name}: {decoded:?}"
                );
            } else {
                assert!(decoded.is_err(), "{name} was accepted: {decoded:?}");
            }
            continue;
        }
        // What the server reads from a client, frame by frame, on the connection the seeds signed for.
        let mut hub = Hub::new(limits.clone());
        let now = Instant::now();
        let conn = hub
            .connect(Ipv4Addr::LOCALHOST.into(), PAIR_PROOF_NONCE, now)
            .unwrap();
        let mut out = Vec::new();
        let hello = ClientMessage::decode(r#"{"type":"hello","version":1}"#, 1024);
        hub.handle(conn, Inbound::Text(hello), now, &mut out);
        for frame in text.split('\n') {
            let decoded = ClientMessage::decode(frame, limits.max_frame_bytes);
            hub.handle(conn, Inbound::Text(decoded), now, &mut out);
        }
        let errors: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send {
                    message: ServerMessage::Error { kind, fatal, .. },
                    ..
                } => Some((*kind, *fatal)),
                _ => None,
            })
            .collect();
        if name.starts_with("seed-") {
            assert!(errors.is_empty(), "{name}: {out:?}");
            assert!(
                out.iter().any(|o| matches!(
                    o,
                    Output::Send {
                        message: ServerMessage::Proved { .. },
                        ..
                    }
                )),
                "{name}: {out:?}"
            );
            if text.contains("\"join\"") {
                assert!(
                    matches!(
                        out.last(),
                        Some(Output::Send {
                            message: ServerMessage::Joined { members: 1, .. },
                            ..
                        })
                    ),
                    "{name}: {out:?}"
                );
            }
            continue;
        }
        assert!(
            matches!(
                &errors[..],
                [(ErrorKind::BadProof | ErrorKind::BadFrame, true)]
            ),
            "{name}: {out:?}"
        );
        assert!(matches!(out.last(), Some(Output::Close { .. })), "{name}");
        assert_eq!((hub.connection_count(), hub.room_count()), (0, 0), "{name}");
    }
}
