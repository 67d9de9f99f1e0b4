//! Replays the fuzz corpora of the host's targets through the same code the fuzz targets run:
//! `fuzz/corpus/peer_frames/` (a hostile sender against the receiver) and
//! `fuzz/corpus/receiver_frames/` (a hostile receiver against the sender), through
//! `p2phost::transfer::replay`; `fuzz/corpus/pair_message/` (what a hostile signaling server may
//! put in a pair room), through `p2phost::session::inspect_pair_message`; `fuzz/corpus/turn_stream/`
//! (what a TURN server sends over TCP or TLS), through `p2phost::session::turn_framing::replay`.
//! Every hostile case is refused, every seed goes through, nothing panics.

use std::path::Path;

use p2phost::identity::PeerId;
use p2phost::session::inspect_pair_message;
use p2phost::transfer::replay::{self, Replayed};

/// Runs `replay` over a corpus folder: `seed-*` entries must complete (`Ok` with a value
/// `completed` accepts), every other entry must be refused.
fn check_corpus<T: std::fmt::Debug, E: std::fmt::Debug>(
    folder: &str,
    replay: impl Fn(&[u8]) -> Result<T, E>,
    completed: impl Fn(&T) -> bool,
) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(folder);
    let mut hostile = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let result = replay(&std::fs::read(entry.path()).unwrap());
        if name.starts_with("seed-") {
            assert!(result.as_ref().is_ok_and(&completed), "{name}: {result:?}");
        } else {
            hostile += 1;
            assert!(result.is_err(), "{name} was accepted: {result:?}");
        }
    }
    assert!(
        hostile >= 10,
        "only {hostile} hostile cases in {}",
        dir.display()
    );
}

#[test]
fn hostile_peer_frames_are_refused() {
    check_corpus("peer_frames", replay::to_receiver, |r| {
        *r == Replayed::Completed
    });
}

#[test]
fn hostile_receiver_frames_are_refused_by_the_sender() {
    check_corpus("receiver_frames", replay::to_sender, |r| {
        *r == Replayed::Completed
    });
}

#[test]
fn hostile_pair_room_messages_are_refused() {
    // As `fuzz/fuzz_targets/pair_message.rs` reads them: bytes that are not UTF-8 read lossily
    // (`seed-invalid-utf8-in-sdp` is a good offer once they are), and the seeds carry this
    // certificate's fingerprint.
    let expected = PeerId::of_certificate(b"pair_message fuzz peer");
    let other = PeerId::of_certificate(b"another host");
    check_corpus(
        "pair_message",
        |data| {
            let text = String::from_utf8_lossy(data);
            let info = inspect_pair_message(&text, &expected)?;
            // A description accepted for the room's peer names no one else.
            if matches!(info.kind, "offer" | "answer") {
                assert!(inspect_pair_message(&text, &other).is_err(), "{text}");
            }
            Ok::<_, p2phost::session::SessionError>(info)
        },
        |_| true,
    );
}

#[test]
fn hostile_turn_streams_are_refused() {
    // As `fuzz/fuzz_targets/turn_stream.rs` reads them: what a TURN server (or whatever answers
    // in its place) sends over TCP or TLS, split whole and in reads of several sizes.
    check_corpus(
        "turn_stream",
        p2phost::session::turn_framing::replay,
        |messages| !messages.is_empty(),
    );
}
