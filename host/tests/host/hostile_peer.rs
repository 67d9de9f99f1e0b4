//! Hostile offers from a crafted sender (DESIGN §5): the test authenticates with the library like a
//! real sender, then speaks the peer protocol by hand, with manifests and chunks no honest sender
//! makes. The real `p2phost receive` must refuse each one with an error that names what was wrong,
//! and write nothing outside its folder (nothing at all, for a refused offer).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use p2phost::session::{SenderRendezvous, SessionOptions};
use p2phost::store::ChunkGroups;
use p2phost::transfer::frames::{MAX_CONTROL_BYTES, encode_chunk, encode_control};
use p2phost::transfer::{Control, FileEntry, Frame, FrameDecoder, Manifest, PROTOCOL_VERSION};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use crate::support::{Exit, Servers, signaling, start_receive, tree};

/// The largest frame honest peers send (the SCTP message size every WebRTC stack accepts).
const MAX_FRAME: usize = 64 * 1024;
/// Control frame that more parts follow (see `host/src/transfer/frames.rs`).
const CONTROL_MORE: u8 = 0x02;
/// Exit status of a peer-protocol error (README).
const PROTOCOL_ERROR: i32 = 7;
const EXIT_LIMIT: Duration = Duration::from_secs(45);

/// The crafted sender's end of a data channel.
struct CraftedSender {
    channel: Arc<dyn DataChannel>,
    peer_connection: Arc<dyn webrtc::peer_connection::PeerConnection>,
    incoming: mpsc::UnboundedReceiver<Vec<u8>>,
    decoder: FrameDecoder,
}

impl CraftedSender {
    fn new(link: p2phost::session::Connected) -> Self {
        let (tx, incoming) = mpsc::unbounded_channel();
        let polled = Arc::clone(&link.channel);
        // webrtc-rs stalls a channel whose events are not drained: poll until it closes.
        tokio::spawn(async move {
            while let Some(event) = polled.poll().await {
                match event {
                    DataChannelEvent::OnMessage(message) => {
                        let _ = tx.send(message.data.to_vec());
                    }
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
        });
        Self {
            channel: link.channel,
            peer_connection: link.peer_connection,
            incoming,
            decoder: FrameDecoder::default(),
        }
    }

    /// Sends one frame; `false` once the receiver has hung up.
    async fn send(&self, frame: &[u8]) -> bool {
        let sent = self.channel.send(BytesMut::from(frame));
        matches!(
            tokio::time::timeout(Duration::from_secs(10), sent).await,
            Ok(Ok(_))
        )
    }

    async fn send_control(&self, message: &Control) {
        for frame in encode_control(message, MAX_FRAME) {
            assert!(self.send(&frame).await, "the receiver hung up early");
        }
    }

    /// The receiver's next control message.
    async fn next_control(&mut self) -> Control {
        loop {
            let bytes = tokio::time::timeout(Duration::from_secs(20), self.incoming.recv())
                .await
                .expect("the receiver said nothing for 20 s")
                .expect("the receiver closed the channel");
            if let Some(Frame::Control(message)) = self.decoder.decode(&bytes).unwrap() {
                return message;
            }
        }
    }

    /// Sends `manifest` and waits for the receiver to accept it from the start.
    async fn offer_and_await_accept(&mut self, manifest: Manifest) {
        self.send_control(&Control::Manifest(manifest)).await;
        loop {
            match self.next_control().await {
                Control::Hello { .. } => {}
                Control::Accept { offsets } => {
                    assert!(offsets.iter().all(|&o| o == 0), "{offsets:?}");
                    return;
                }
                other => panic!("expected an accept, got {other:?}"),
            }
        }
    }
}

/// What the crafted sender does once the data channel is open.
type Play = Box<
    dyn FnOnce(CraftedSender) -> futures_util::future::BoxFuture<'static, CraftedSender> + Send,
>;

/// The library's session options for the crafted sender, against the in-process server.
fn options(servers: &Servers) -> SessionOptions {
    SessionOptions {
        signaling_url: servers.url.clone(),
        ice_servers: vec![servers.stun.clone()],
        bind: vec!["127.0.0.1:0".into()],
        step_timeout: Duration::from_secs(10),
        ..SessionOptions::default()
    }
}

/// One session: the crafted sender plays `play` to a real `p2phost receive --out PARENT/out`.
/// Returns the receiver's exit and the parent folder, to look at what was written.
async fn against_the_receiver(servers: &Servers, play: Play) -> (Exit, tempfile::TempDir) {
    against_the_receiver_in(servers, tempfile::tempdir().unwrap(), play).await
}

/// [`against_the_receiver`] into `PARENT/out` of a `parent` the test has prepared.
async fn against_the_receiver_in(
    servers: &Servers,
    parent: tempfile::TempDir,
    play: Play,
) -> (Exit, tempfile::TempDir) {
    let rendezvous = SenderRendezvous::open(options(servers), 2).await.unwrap();
    let receiver = start_receive(
        servers,
        &parent.path().join("out"),
        &rendezvous.code().to_string(),
    );
    let crafted = CraftedSender::new(rendezvous.connect().await.unwrap());
    crafted
        .send_control(&Control::Hello {
            version: PROTOCOL_VERSION,
        })
        .await;
    let crafted = play(crafted).await;
    let exit = receiver.exit(EXIT_LIMIT).await;
    let _ = crafted.peer_connection.close().await;
    (exit, parent)
}

/// Bytes per chunk group in these offers: the smallest a receiver accepts.
const GROUP: u64 = 65_536;

/// A manifest entry for `data` under `path`, with hashes that match.
fn entry(path: &str, data: &[u8]) -> FileEntry {
    let (groups, hash) = ChunkGroups::compute(&mut &data[..], data.len() as u64, GROUP).unwrap();
    FileEntry::new(path.into(), data.len() as u64, 0o644, &groups, hash)
}

fn manifest(files: Vec<FileEntry>, dirs: Vec<String>) -> Manifest {
    Manifest {
        chunk_size: 65_536,
        group_size: GROUP,
        files,
        dirs,
        encodings: Vec::new(),
    }
}

fn offering(manifest: Manifest) -> Play {
    Box::new(move |crafted| {
        Box::pin(async move {
            crafted.send_control(&Control::Manifest(manifest)).await;
            crafted
        })
    })
}

/// Sends `manifest` and, without waiting for an answer, the done of a sender with nothing to send
/// (an offer of folders only).
fn offering_then_done(manifest: Manifest) -> Play {
    Box::new(move |crafted| {
        Box::pin(async move {
            crafted.send_control(&Control::Manifest(manifest)).await;
            for frame in encode_control(&Control::Done {}, MAX_FRAME) {
                let _ = crafted.send(&frame).await;
            }
            crafted
        })
    })
}

/// The receiver failed with a protocol error whose message contains `names`.
fn assert_refused_naming(exit: &Exit, names: &str) {
    assert_eq!(exit.code, Some(PROTOCOL_ERROR), "{exit:?}");
    assert!(
        exit.stderr.contains(names),
        "expected {names:?} in {}",
        exit.stderr
    );
    assert_eq!(exit.last_event()["kind"], "protocol", "{}", exit.stdout);
}

/// A refused offer leaves the parent folder as it was: empty, not even `out` created.
fn assert_untouched(parent: &Path) {
    assert_eq!(tree(parent), Vec::<(String, Vec<u8>)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_paths_in_an_offer_are_refused() {
    let servers = signaling().await;
    // Absolute, into a folder of its own, which is checked as well as the receiver's parent.
    let absolute_probe = tempfile::tempdir().unwrap();
    let absolute = absolute_probe
        .path()
        .join("evil")
        .to_string_lossy()
        .into_owned();
    let cases: Vec<(String, &str)> = vec![
        ("../evil".into(), "contains '.' or '..'"),
        ("a/../../evil".into(), "contains '.' or '..'"),
        (absolute, "is absolute"),
        ("nul\0byte".into(), "not allowed in file names"),
        ("escape\x1b[31m".into(), "not allowed in file names"),
        ("bell\x07".into(), "not allowed in file names"),
        ("CON".into(), "reserved"),
        ("dir/nul.txt".into(), "reserved"),
        // A p2phost part file's name: the peer could pass it off as the partial file of another.
        ("notes.txt.p2phost-part".into(), "reserved"),
    ];
    for (path, names) in cases {
        let offer = manifest(vec![entry(&path, b"evil")], vec![]);
        let (exit, parent) = against_the_receiver(&servers, offering(offer)).await;
        assert_refused_naming(&exit, names);
        assert!(
            exit.stderr.contains("unsafe path in the offer"),
            "{path:?}: {}",
            exit.stderr
        );
        assert_untouched(parent.path());
        assert_untouched(absolute_probe.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconsistent_or_oversized_offers_are_refused() {
    let servers = signaling().await;
    let cases: Vec<(Play, &str)> = vec![
        (
            offering(manifest(
                vec![entry("same.txt", b"one"), entry("same.txt", b"two")],
                vec![],
            )),
            "names \"same.txt\" twice",
        ),
        (
            // "a" is a file, and the folder of "a/b".
            offering(manifest(
                vec![entry("a", b"file"), entry("a/b", b"under it")],
                vec![],
            )),
            "as both a file and a directory",
        ),
        (
            offering(manifest(
                vec![],
                (0..100_001).map(|i| format!("d{i}")).collect(),
            )),
            "lists 100001 entries; the limit is 100000",
        ),
        (
            // A petabyte, with none of the chunk-group hashes such a size needs.
            offering(manifest(
                vec![FileEntry {
                    size: 1 << 50,
                    ..entry("huge.bin", b"")
                }],
                vec![],
            )),
            "bad hash data for \"huge.bin\": a file needs one BLAKE3 hash",
        ),
        (ten_million_directories(), "control message over"),
    ];
    for (play, names) in cases {
        let (exit, parent) = against_the_receiver(&servers, play).await;
        assert_refused_naming(&exit, names);
        assert_untouched(parent.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_larger_than_the_free_space_is_refused_before_anything_is_written() {
    let servers = signaling().await;
    // 16 TiB, consistent (one hash per 256 MiB group, 4 MiB of JSON): no disk here has room.
    let group_size: u64 = 256 * 1024 * 1024;
    let size: u64 = 16 << 40;
    let hash = "00".repeat(32);
    let offer = Manifest {
        chunk_size: 65_536,
        group_size,
        files: vec![FileEntry {
            path: "huge.bin".into(),
            size,
            mode: 0o644,
            hash: hash.clone(),
            groups: vec![hash; usize::try_from(size / group_size).unwrap()],
        }],
        dirs: vec![],
        encodings: vec![],
    };
    let (exit, parent) = against_the_receiver(&servers, offering(offer)).await;
    assert_eq!(exit.code, Some(5), "{exit:?}");
    assert!(exit.stderr.contains("not enough space"), "{}", exit.stderr);
    assert!(exit.stderr.contains("--out"), "{}", exit.stderr);
    assert_eq!(exit.last_event()["kind"], "io", "{}", exit.stdout);
    assert_untouched(parent.path());
}

/// A manifest that declares ten million directories, about 110 MB of JSON: sent in parts until
/// the receiver's bound on a control message has been passed, which must stop it there rather
/// than buffer the rest.
fn ten_million_directories() -> Play {
    Box::new(|crafted| {
        Box::pin(async move {
            let mut json = String::from(
                r#"{"type":"manifest","chunk_size":65536,"group_size":65536,"files":[],"dirs":["#,
            );
            let body = MAX_FRAME - 1;
            let mut sent = 0;
            for i in 0..10_000_000u32 {
                json.push_str(&format!("\"d{i:07}\","));
                if json.len() < body {
                    continue;
                }
                let rest = json.split_off(body);
                let mut frame = vec![CONTROL_MORE];
                frame.extend_from_slice(json.as_bytes());
                assert!(
                    crafted.send(&frame).await,
                    "a part of the manifest was not sent"
                );
                sent += body;
                if sent > MAX_CONTROL_BYTES {
                    break;
                }
                json = rest;
            }
            crafted
        })
    })
}

/// A 200,000-byte file: four 64 KiB chunk groups.
fn sample() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect()
}

/// File bytes per chunk here: well inside a frame.
const CHUNK: usize = 32 * 1024;

/// Chunk frames' contents (file 0, offset, bytes) for `data`, the way an honest sender cuts it.
fn chunks_of(data: &[u8]) -> Vec<(u32, u64, Vec<u8>)> {
    data.chunks(CHUNK)
        .enumerate()
        .map(|(i, bytes)| (0, (i * CHUNK) as u64, bytes.to_vec()))
        .collect()
}

/// Offers `data` as `data.bin`, waits for the accept, then sends `chunks` and `done`.
fn offer_then_chunks(data: Vec<u8>, chunks: Vec<(u32, u64, Vec<u8>)>) -> Play {
    Box::new(move |mut crafted| {
        Box::pin(async move {
            let offer = manifest(vec![entry("data.bin", &data)], vec![]);
            crafted.offer_and_await_accept(offer).await;
            for (file, offset, bytes) in chunks {
                if !crafted.send(&encode_chunk(file, offset, 0, &bytes)).await {
                    break;
                }
            }
            for frame in encode_control(&Control::Done {}, MAX_FRAME) {
                let _ = crafted.send(&frame).await;
            }
            crafted
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_that_do_not_match_the_offer_are_refused() {
    let servers = signaling().await;
    let data = sample();

    // The same offer and chunks an honest sender sends go through: the refusals below come from
    // what each case changes, not from how the crafted sender talks.
    let (exit, parent) =
        against_the_receiver(&servers, offer_then_chunks(data.clone(), chunks_of(&data))).await;
    assert_eq!(exit.code, Some(0), "{exit:?}");
    assert_eq!(
        std::fs::read(parent.path().join("out/data.bin")).unwrap(),
        data
    );

    // Bytes other than the ones hashed in the offer, at the right places.
    let forged = chunks_of(&vec![0xAA; data.len()]);
    let (exit, parent) =
        against_the_receiver(&servers, offer_then_chunks(data.clone(), forged)).await;
    assert_eq!(exit.code, Some(PROTOCOL_ERROR), "{exit:?}");
    assert!(
        exit.stderr.contains("does not match the sender's hash"),
        "{}",
        exit.stderr
    );
    assert_no_final_file(parent.path());

    let past_the_end = data.len() as u64 + 4096;
    let mut overlong = chunks_of(&data[..6 * CHUNK]);
    // The seventh chunk starts at the right offset but runs 29,376 bytes past the end.
    overlong.push((0, (6 * CHUNK) as u64, vec![1; CHUNK]));
    let cases = [
        vec![(0, past_the_end, vec![1; 100])],
        overlong,
        // For a file the offer does not have.
        vec![(7, 0, vec![1; 100])],
    ];
    for chunks in cases {
        let (exit, parent) =
            against_the_receiver(&servers, offer_then_chunks(data.clone(), chunks)).await;
        assert_refused_naming(&exit, "protocol violation: chunk of file");
        assert_no_final_file(parent.path());
    }
}

/// Only a part file may be left (it is where a later attempt resumes from), never the final name.
fn assert_no_final_file(parent: &Path) {
    for (name, _) in tree(parent) {
        assert!(
            name == "out/" || name.ends_with(p2phost::store::PART_SUFFIX),
            "{name} was written"
        );
    }
}

/// `PARENT/out/link` -> `../outside`: a link the user (or anything else) made in the folder
/// received into. Returns the parent and the folder outside.
fn out_with_a_link_outside() -> (tempfile::TempDir, std::path::PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    let outside = parent.path().join("outside");
    std::fs::create_dir_all(parent.path().join("out")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink("../outside", parent.path().join("out/link")).unwrap();
    (parent, outside)
}

/// Folders an offer lists, through a link in the destination: the receiver must create nothing
/// outside `--out` (it used to create `outside/pwned/deeper` and exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_offered_through_a_link_in_the_destination_are_not_created_outside() {
    let servers = signaling().await;
    for dirs in [
        vec!["link/pwned/deeper".to_owned()],
        vec!["link".to_owned(), "link/pwned".to_owned()],
    ] {
        let (parent, outside) = out_with_a_link_outside();
        let offer = manifest(vec![], dirs.clone());
        let (exit, parent) =
            against_the_receiver_in(&servers, parent, offering_then_done(offer)).await;
        assert_eq!(
            tree(&outside),
            Vec::<(String, Vec<u8>)>::new(),
            "{dirs:?}: created outside --out; receiver: {exit:?}"
        );
        assert_eq!(exit.code, Some(5), "{dirs:?}: {exit:?}");
        assert!(
            exit.stderr.contains("symbolic link"),
            "{dirs:?}: {}",
            exit.stderr
        );
        assert_eq!(exit.last_event()["kind"], "io", "{}", exit.stdout);
        drop(parent);
    }
}

/// The same offer to the daemon's way of receiving: `receive_over` with `overwrite`, as
/// `daemon::inbox` calls it for a trusted peer, into a folder with a link in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_receiving_creates_no_folder_through_a_link() {
    use p2phost::hooks::HookChain;
    use p2phost::oneshot::{OneshotError, Silent, receive_over};
    use p2phost::store::StoreError;

    let servers = signaling().await;
    let (parent, outside) = out_with_a_link_outside();
    let root = parent.path().join("out");
    let rendezvous = SenderRendezvous::open(options(&servers), 2).await.unwrap();
    let code = rendezvous.code().clone();
    let receiving = tokio::spawn({
        let options = options(&servers);
        let root = root.clone();
        async move {
            let link = p2phost::session::receive(options, &code).await.unwrap();
            let cancel = p2phost::oneshot::Cancel::new();
            receive_over(
                link,
                &root,
                true,
                HookChain::new(Vec::new()),
                &mut Silent,
                &cancel,
            )
            .await
        }
    });
    let crafted = CraftedSender::new(rendezvous.connect().await.unwrap());
    crafted
        .send_control(&Control::Hello {
            version: PROTOCOL_VERSION,
        })
        .await;
    let data = b"through the link".to_vec();
    let offer = manifest(
        vec![entry("link/pwned/f.txt", &data)],
        vec!["link/pwned/deeper".into()],
    );
    crafted.send_control(&Control::Manifest(offer)).await;
    let result = tokio::time::timeout(EXIT_LIMIT, receiving)
        .await
        .expect("the receiver did not end")
        .unwrap();
    let _ = crafted.peer_connection.close().await;
    assert_eq!(
        tree(&outside),
        Vec::<(String, Vec<u8>)>::new(),
        "{result:?}"
    );
    assert!(
        matches!(result, Err(OneshotError::Store(StoreError::Symlink(_)))),
        "{result:?}"
    );
}

/// An offer of 100 files cut short in the first one: only that file has a part file to resume
/// from; the 99 that never got a byte leave nothing (every `.part` used to be created, and kept
/// open, at the accept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_never_got_a_byte_leave_no_part_file() {
    let servers = signaling().await;
    let data = sample();
    let play: Play = Box::new(move |mut crafted| {
        Box::pin(async move {
            let files = (0..100)
                .map(|i| entry(&format!("f{i:03}.bin"), &data))
                .collect();
            crafted
                .offer_and_await_accept(manifest(files, vec![]))
                .await;
            assert!(crafted.send(&encode_chunk(0, 0, 0, &data[..CHUNK])).await);
            for frame in encode_control(&Control::Done {}, MAX_FRAME) {
                let _ = crafted.send(&frame).await;
            }
            crafted
        })
    });
    let (exit, parent) = against_the_receiver(&servers, play).await;
    assert_refused_naming(&exit, "the stream was cut");
    let left: Vec<String> = tree(parent.path()).into_iter().map(|(n, _)| n).collect();
    let part = format!("out/{}", p2phost::store::part_name("f000.bin"));
    assert_eq!(left, ["out/".to_owned(), part.clone()]);
    assert_eq!(
        std::fs::read(parent.path().join(part)).unwrap(),
        &sample()[..CHUNK]
    );
}
