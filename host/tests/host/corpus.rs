//! Replays the peer-frame fuzz corpora through the same code the fuzz targets run
//! (`p2phost::transfer::replay`): `fuzz/corpus/peer_frames/` (a hostile sender against the
//! receiver) and `fuzz/corpus/receiver_frames/` (a hostile receiver against the sender). Every
//! hostile case is refused, every seed goes through, nothing panics.

use std::path::Path;

use p2phost::transfer::replay::{self, Replayed};

/// Runs `replay` over a corpus folder: `seed-*` entries must complete, every other entry must be
/// refused.
fn check_corpus(folder: &str, replay: impl Fn(&[u8]) -> Result<Replayed, String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(folder);
    let mut hostile = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let result = replay(&std::fs::read(entry.path()).unwrap());
        if name.starts_with("seed-") {
            assert_eq!(result, Ok(Replayed::Completed), "{name}");
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
    check_corpus("peer_frames", replay::to_receiver);
}

#[test]
fn hostile_receiver_frames_are_refused_by_the_sender() {
    check_corpus("receiver_frames", replay::to_sender);
}
