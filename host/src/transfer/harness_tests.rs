//! Both peers of the protocol in one process, deterministically: frames pass through in-memory
//! queues (where the tests cut, corrupt or drop them), the sender reads from memory, and the
//! receiver writes real part files into a temporary directory.

use std::collections::VecDeque;
use std::path::Path;

use super::frames::{encode_chunk, encode_control};
use super::*;
use crate::store::{ChunkGroups, Destination, PART_SUFFIX, PartFile, StoreError};

const MAX_FRAME: usize = 16 * 1024;
const CHUNK: u32 = 4096;
const GROUP: u64 = 64 * 1024;

struct Source {
    files: Vec<(String, Vec<u8>)>,
    dirs: Vec<String>,
}

impl Source {
    fn manifest(&self) -> Manifest {
        Manifest {
            chunk_size: CHUNK,
            group_size: GROUP,
            files: self
                .files
                .iter()
                .map(|(path, data)| {
                    let (groups, hash) =
                        ChunkGroups::compute(&mut &data[..], data.len() as u64, GROUP)
                            .unwrap_or_else(|e| panic!("{e}"));
                    FileEntry::new(path.clone(), data.len() as u64, 0o644, &groups, hash)
                })
                .collect(),
            dirs: self.dirs.clone(),
            encodings: Vec::new(),
        }
    }
}

fn sample() -> Source {
    let data = |len: usize, seed: u8| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
            .collect()
    };
    Source {
        files: vec![
            ("empty".into(), vec![]),
            ("one".into(), vec![42]),
            ("dir/big.bin".into(), data(300_000, 1)),
            ("dir/sub/unicode ✓.txt".into(), data(5000, 2)),
        ],
        dirs: vec!["dir".into(), "hollow/inside".into()],
    }
}

/// What the test does to the frames in flight from the sender.
#[derive(Clone, Copy)]
enum Meddle {
    None,
    /// Stop delivering after this many chunk frames (a cut connection).
    CutAfter(usize),
    /// Flip a byte in this chunk frame.
    Corrupt(usize),
    /// Drop this chunk frame.
    Drop(usize),
    /// The receiver declines.
    Decline,
    /// The sender gives up after this many chunk frames.
    SenderAbortsAfter(usize),
}

#[derive(Debug)]
struct Outcome {
    sender: Result<(u64, u64), TransferError>,
    receiver: Result<u64, String>,
    sent_bytes: u64,
}

fn frames(message: &Control) -> Vec<Vec<u8>> {
    encode_control(message, MAX_FRAME)
}

fn run(source: &Source, root: &Path, meddle: Meddle) -> Outcome {
    let (mut sender, first) = Sender::new(source.manifest());
    let (mut receiver, hello) = Receiver::new();
    let mut to_receiver: VecDeque<Vec<u8>> = first.iter().flat_map(frames).collect();
    let mut to_sender: VecDeque<Vec<u8>> = frames(&hello).into();
    let (mut sender_decoder, mut receiver_decoder) =
        (FrameDecoder::default(), FrameDecoder::default());
    let mut parts: Vec<Option<PartFile>> = Vec::new();
    let mut chunks_sent = 0usize;
    let mut sender_result = None;
    let mut receiver_result = None;

    for _ in 0..1_000_000 {
        if sender_result.is_some() && receiver_result.is_some() {
            break;
        }
        // The sender: answers, then one chunk per turn.
        if sender_result.is_none() {
            while let Some(frame) = to_sender.pop_front() {
                let decoded = sender_decoder.decode(&frame).map_err(TransferError::from);
                let Ok(Some(frame)) = decoded else {
                    sender_result = Some(decoded.map(|_| (0, 0)));
                    break;
                };
                match sender.handle(frame) {
                    Ok(SenderEvent::Completed { files, bytes }) => {
                        sender_result = Some(Ok((files, bytes)))
                    }
                    Ok(_) => {}
                    Err(e) => sender_result = Some(Err(e)),
                }
            }
            if sender_result.is_none() {
                if let Meddle::SenderAbortsAfter(n) = meddle
                    && chunks_sent == n
                {
                    let abort = Control::Error {
                        kind: "cancelled".into(),
                        message: "user pressed Ctrl-C".into(),
                    };
                    to_receiver.extend(frames(&abort));
                    sender_result = Some(Err(TransferError::Peer {
                        kind: "self".into(),
                        message: "aborted".into(),
                    }));
                } else if let Some(plan) = sender.next_chunk() {
                    let (_, data) = &source.files[plan.file as usize];
                    let bytes = &data[plan.offset as usize..plan.offset as usize + plan.len];
                    let mut frame = encode_chunk(plan.file, plan.offset, 0, bytes);
                    let index = chunks_sent;
                    chunks_sent += 1;
                    match meddle {
                        Meddle::CutAfter(n) if index >= n => break,
                        Meddle::Corrupt(n) if index == n => {
                            let last = frame.len() - 1;
                            frame[last] ^= 0xff;
                            to_receiver.push_back(frame);
                        }
                        Meddle::Drop(n) if index == n => {}
                        _ => to_receiver.push_back(frame),
                    }
                } else if let Some(done) = sender.done() {
                    to_receiver.extend(frames(&done));
                }
            }
        }
        // The receiver: everything that has arrived.
        while receiver_result.is_none() {
            let Some(frame) = to_receiver.pop_front() else {
                break;
            };
            let events = receiver_decoder
                .decode(&frame)
                .map_err(|e| e.to_string())
                .and_then(|f| match f {
                    Some(frame) => receiver.handle(frame).map_err(|e| e.to_string()),
                    None => Ok(Vec::new()),
                });
            let step = events.and_then(|events| {
                let mut pending: VecDeque<ReceiverEvent> = events.into();
                while let Some(event) = pending.pop_front() {
                    match event {
                        ReceiverEvent::Offer(manifest) => {
                            if matches!(meddle, Meddle::Decline) {
                                to_sender.extend(frames(&receiver.decline("not today")));
                                return Err("declined".into());
                            }
                            let destination = Destination::open(root).map_err(|e| e.to_string())?;
                            for dir in &manifest.dirs {
                                destination.make_dir(dir).map_err(|e| e.to_string())?;
                            }
                            let mut offsets = Vec::new();
                            for file in &manifest.files {
                                let (part, offset) = PartFile::open(
                                    &destination,
                                    &file.path,
                                    file.size,
                                    file.groups.clone(),
                                    file.hash,
                                    false,
                                )
                                .map_err(|e| e.to_string())?;
                                parts.push(Some(part));
                                offsets.push(offset);
                            }
                            let (accept, whole) =
                                receiver.accept(offsets).map_err(|e| e.to_string())?;
                            to_sender.extend(frames(&accept));
                            pending.extend(whole);
                        }
                        ReceiverEvent::Data { file, offset, data } => {
                            let part = parts[file].as_mut().ok_or("file already finished")?;
                            if let Err(e) = part.write(offset, &data) {
                                let error = Control::Error {
                                    kind: "corrupt".into(),
                                    message: e.to_string(),
                                };
                                to_sender.extend(frames(&error));
                                return Err(e.to_string());
                            }
                        }
                        ReceiverEvent::FileComplete(file) => {
                            let part = parts[file].take().ok_or("completed twice")?;
                            part.finish().map_err(|e: StoreError| e.to_string())?;
                        }
                        ReceiverEvent::Finished => {
                            to_sender.extend(frames(&receiver.received()));
                            return Ok(Some(receiver.received_bytes()));
                        }
                    }
                }
                Ok(None)
            });
            match step {
                Ok(Some(bytes)) => receiver_result = Some(Ok(bytes)),
                Ok(None) => {}
                Err(e) => {
                    if !e.contains("declined") && !e.contains("corrupt") {
                        let error = Control::Error {
                            kind: "receiver".into(),
                            message: e.clone(),
                        };
                        to_sender.extend(frames(&error));
                    }
                    receiver_result = Some(Err(e));
                }
            }
        }
        if matches!(meddle, Meddle::CutAfter(n) if chunks_sent > n) {
            return Outcome {
                sender: Err(TransferError::Unexpected("cut".into())),
                receiver: Err("cut".into()),
                sent_bytes: sender.planned_bytes(),
            };
        }
    }
    Outcome {
        sender: sender_result.unwrap_or_else(|| Err(TransferError::Unexpected("stalled".into()))),
        receiver: receiver_result.unwrap_or_else(|| Err("stalled".into())),
        sent_bytes: sender.planned_bytes(),
    }
}

fn assert_copied(source: &Source, root: &Path) {
    for (path, data) in &source.files {
        let on_disk = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&on_disk, data, "{path}");
    }
    for dir in &source.dirs {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    let leftovers: Vec<_> = walk(root)
        .into_iter()
        .filter(|p| p.ends_with(PART_SUFFIX))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.to_string_lossy().into_owned());
        }
    }
    found
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_whole_transfer() {
    let source = sample();
    let dir = tempdir();
    let outcome = run(&source, dir.path(), Meddle::None);
    let total: u64 = source.files.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(
        outcome.sender.as_ref().ok(),
        Some(&(4, total)),
        "{outcome:?}"
    );
    assert_eq!(outcome.receiver, Ok(total));
    assert_copied(&source, dir.path());
}

#[test]
fn a_cut_transfer_resumes_from_the_last_verified_group() {
    let source = sample();
    let dir = tempdir();
    // 20 chunks of 4 KiB: the big file is 80 KiB in, one whole 64 KiB group verified.
    let cut = run(&source, dir.path(), Meddle::CutAfter(20));
    assert!(cut.receiver.is_err());
    let again = run(&source, dir.path(), Meddle::None);
    let total: u64 = source.files.iter().map(|(_, d)| d.len() as u64).sum();
    // Not sent again: the 1-byte file finished before the cut, and the big file's first group.
    let kept = 1 + GROUP;
    assert_eq!(again.receiver, Ok(total - kept), "{again:?}");
    assert_eq!(again.sent_bytes, total - kept);
    assert_copied(&source, dir.path());
}

#[test]
fn a_corrupt_chunk_fails_both_sides_and_leaves_no_file() {
    let source = sample();
    let dir = tempdir();
    let outcome = run(&source, dir.path(), Meddle::Corrupt(3));
    assert!(
        matches!(&outcome.receiver, Err(e) if e.contains("corrupted")),
        "{outcome:?}"
    );
    assert!(
        matches!(&outcome.sender, Err(TransferError::Peer { kind, .. }) if kind == "corrupt"),
        "{outcome:?}"
    );
    assert!(!dir.path().join("dir/big.bin").exists());
}

#[test]
fn a_dropped_chunk_is_caught() {
    let source = sample();
    let dir = tempdir();
    let outcome = run(&source, dir.path(), Meddle::Drop(5));
    assert!(
        matches!(&outcome.receiver, Err(e) if e.contains("expected file")),
        "{outcome:?}"
    );
    assert!(outcome.sender.is_err());
    assert!(!dir.path().join("dir/big.bin").exists());
}

#[test]
fn either_side_can_abort() {
    let source = sample();
    let dir = tempdir();
    let declined = run(&source, dir.path(), Meddle::Decline);
    assert!(
        matches!(&declined.sender, Err(TransferError::Declined(r)) if r == "not today"),
        "{declined:?}"
    );
    assert_eq!(declined.sent_bytes, 0);
    assert!(walk(dir.path()).is_empty());

    let aborted = run(&source, dir.path(), Meddle::SenderAbortsAfter(10));
    assert!(
        matches!(&aborted.receiver, Err(e) if e.contains("cancelled by the other side")),
        "{aborted:?}"
    );
    assert!(!dir.path().join("dir/big.bin").exists());
}

#[test]
fn a_hostile_offer_is_refused_before_anything_is_written() {
    let mut source = sample();
    source.files.push(("../escape".into(), b"gotcha".to_vec()));
    let dir = tempdir();
    let outcome = run(&source, dir.path(), Meddle::None);
    assert!(
        matches!(&outcome.receiver, Err(e) if e.contains("unsafe path")),
        "{outcome:?}"
    );
    assert!(matches!(&outcome.sender, Err(TransferError::Peer { .. })));
    assert!(walk(dir.path()).is_empty());
    assert!(
        !dir.path()
            .parent()
            .map(|p| p.join("escape").exists())
            .unwrap_or(false)
    );
}

#[test]
fn version_mismatch_and_misordered_frames_are_violations() {
    let (mut sender, _) = Sender::new(sample().manifest());
    assert_eq!(
        sender.handle(Frame::Control(Control::Hello { version: 9 })),
        Err(TransferError::Version(9))
    );
    let (mut sender, _) = Sender::new(sample().manifest());
    assert!(matches!(
        sender.handle(Frame::Control(Control::Done {})),
        Err(TransferError::Unexpected(_))
    ));
    let (mut receiver, _) = Receiver::new();
    assert!(matches!(
        receiver.handle(Frame::Control(Control::Done {})),
        Err(TransferError::Unexpected(_))
    ));
}
