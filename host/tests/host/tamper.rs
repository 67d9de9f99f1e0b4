//! A signaling server that tampers (DESIGN §4): `p2phost send` and `p2phost receive` talk through
//! a proxy that alters, replays, reorders or reflects what the server relays, or runs its own PAKE
//! in the middle. Both sides must refuse and nothing may be written.
//!
//! Swapping the DTLS fingerprints is not among the cases: the SDP that carries them travels sealed,
//! so a server cannot find them, let alone swap them; all it can do is change sealed bytes, which
//! the flipped-bit cases cover. That the DTLS layer itself drops a certificate that does not match
//! the fingerprint is tested in `host/src/session/fingerprint_tests.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p2phost::code::{Handshake, Role, SessionKeys, TransferCode};

use crate::support::{Exit, Running, Servers, signaling, start_receive, start_send, tree};
use crate::tamper_proxy::{self, Tamper, To, flip_a_bit};

/// Generous: every process here ends in seconds, unless a bug makes it wait out a 30 s timeout.
const EXIT_LIMIT: Duration = Duration::from_secs(45);

/// Both peers, started through a proxy.
struct Started {
    sender: Running,
    receiver: Running,
    out: PathBuf,
    input: PathBuf,
    dir: tempfile::TempDir,
}

struct Outcome {
    sender: Exit,
    receiver: Exit,
    out: PathBuf,
    input: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts a transfer of a small file through a proxy that applies `tamper`; `learn_code` sees the
/// sender's code before the receiver starts.
async fn start_through(
    servers: &Servers,
    tamper: Tamper,
    learn_code: impl FnOnce(&str),
) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("secret.txt");
    std::fs::write(
        &input,
        b"the server must not be able to change this".repeat(100),
    )
    .unwrap();
    let out = dir.path().join("out");
    let proxied = Servers {
        url: tamper_proxy::start(&servers.url, tamper).await,
        stun: servers.stun.clone(),
    };
    let (sender, code) = start_send(&proxied, &[&input]).await;
    learn_code(&code);
    let receiver = start_receive(&proxied, &out, &code);
    Started {
        sender,
        receiver,
        out,
        input,
        dir,
    }
}

impl Started {
    async fn outcome(self) -> Outcome {
        let (sender, receiver) =
            tokio::join!(self.sender.exit(EXIT_LIMIT), self.receiver.exit(EXIT_LIMIT));
        Outcome {
            sender,
            receiver,
            out: self.out,
            input: self.input,
            _dir: self.dir,
        }
    }
}

/// One transfer of a small file through a proxy that applies `tamper`, to its end.
async fn transfer_through(servers: &Servers, tamper: Tamper) -> Outcome {
    start_through(servers, tamper, |_| ()).await.outcome().await
}

/// The side that opened a tampered message says so and exits 3; the other side exits non-zero
/// too (3 if it saw tampering itself, 6 if all it saw was its peer giving up); nothing is written.
fn assert_refused(outcome: &Outcome, detected_by: &[To]) {
    for (side, exit) in [
        (To::Sender, &outcome.sender),
        (To::Receiver, &outcome.receiver),
    ] {
        if detected_by.contains(&side) {
            assert_eq!(exit.code, Some(3), "{side:?}: {exit:?}");
            assert!(
                exit.stderr.contains("wrong code or tampering"),
                "{side:?}: {}",
                exit.stderr
            );
            assert_eq!(exit.last_event()["kind"], "wrong_code", "{side:?}");
        } else {
            assert!(
                matches!(exit.code, Some(3 | 6)),
                "{side:?} should fail as tampered or as left by its peer: {exit:?}"
            );
        }
    }
    assert_nothing_written(&outcome.out);
}

/// Not a final file, not a part file: the receiver never got as far as an offer.
fn assert_nothing_written(out: &Path) {
    assert!(!out.exists(), "{out:?} holds {:?}", tree(out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_proxy_lets_the_transfer_through() {
    // Proves the proxy works, so the cases below fail because of what they change and nothing else.
    let servers = signaling().await;
    let outcome = transfer_through(&servers, tamper_proxy::honest()).await;
    assert_eq!(outcome.receiver.code, Some(0), "{:?}", outcome.receiver);
    assert_eq!(outcome.sender.code, Some(0), "{:?}", outcome.sender);
    assert_eq!(outcome.sender.last_event()["event"], "done");
    assert_eq!(
        std::fs::read(outcome.out.join("secret.txt")).unwrap(),
        std::fs::read(&outcome.input).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_a_sealed_payload_is_refused() {
    let servers = signaling().await;

    // The sealed SDP offer, which carries the sender's DTLS fingerprint.
    let offer = Box::new(|to, index, payload: String| match (to, index) {
        (To::Receiver, 2) => vec![flip_a_bit(&payload)],
        _ => vec![payload],
    });
    // The receiver refuses it, and its sealed abort tells the sender at once.
    assert_refused(
        &transfer_through(&servers, offer).await,
        &[To::Sender, To::Receiver],
    );

    // The first sealed message after the PAKE: the receiver's key confirmation.
    let confirmation = Box::new(|to, index, payload: String| match (to, index) {
        (To::Sender, 1) => vec![flip_a_bit(&payload)],
        _ => vec![payload],
    });
    assert_refused(
        &transfer_through(&servers, confirmation).await,
        &[To::Sender],
    );

    // Every sealed message, both ways: both confirmations fail.
    let every = Box::new(|_, index, payload: String| {
        if index >= 1 {
            vec![flip_a_bit(&payload)]
        } else {
            vec![payload]
        }
    });
    assert_refused(
        &transfer_through(&servers, every).await,
        &[To::Sender, To::Receiver],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_reordered_or_reflected_messages_are_refused() {
    let servers = signaling().await;

    // The sender's key confirmation delivered twice: the copy arrives where the offer should.
    let replay = Box::new(|to, index, payload: String| match (to, index) {
        (To::Receiver, 1) => vec![payload.clone(), payload],
        _ => vec![payload],
    });
    assert_refused(&transfer_through(&servers, replay).await, &[To::Receiver]);

    // The sender's confirmation and offer swapped: held back, then delivered after the offer.
    let mut held = None;
    let swap = Box::new(move |to, index, payload: String| match (to, index) {
        (To::Receiver, 1) => {
            held = Some(payload);
            vec![]
        }
        (To::Receiver, 2) => vec![payload, held.take().unwrap()],
        _ => vec![payload],
    });
    assert_refused(&transfer_through(&servers, swap).await, &[To::Receiver]);

    // The receiver's own confirmation reflected back to it in place of the sender's offer (the
    // sender sends its offer only after that confirmation reached it, so it is at hand).
    let mut receivers = None;
    let reflect = Box::new(move |to, index, payload: String| match (to, index) {
        (To::Sender, 1) => {
            receivers = Some(payload.clone());
            vec![payload]
        }
        (To::Receiver, 2) => vec![receivers.clone().unwrap()],
        _ => vec![payload],
    });
    assert_refused(&transfer_through(&servers, reflect).await, &[To::Receiver]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offer_in_place_of_the_answer_is_refused_by_the_sender() {
    let servers = signaling().await;
    let mut offer = None;
    let reflect = Box::new(move |to, index, payload: String| match (to, index) {
        (To::Receiver, 2) => {
            offer = Some(payload.clone());
            vec![payload]
        }
        (To::Sender, 2) => vec![offer.clone().unwrap()],
        _ => vec![payload],
    });
    let started = start_through(&servers, reflect, |_| ()).await;
    let sender = started.sender.exit(EXIT_LIMIT).await;
    assert_eq!(sender.code, Some(3), "{sender:?}");
    assert!(
        sender.stderr.contains("wrong code or tampering"),
        "{}",
        sender.stderr
    );
    // The receiver has sent its answer and waits for the data channel; the sender tells it at
    // once that there will be none (not after its 30 s step timeout).
    let before = std::time::Instant::now();
    let receiver = started.receiver.exit(EXIT_LIMIT).await;
    assert_eq!(receiver.code, Some(3), "{receiver:?}");
    assert!(
        receiver
            .stderr
            .contains("refused the connection: wrong code or tampering"),
        "{}",
        receiver.stderr
    );
    // A functional bound, not a speed check: the step timeout would be 30 s.
    assert!(before.elapsed() < std::time::Duration::from_secs(20));
    assert_nothing_written(&started.out);
}

/// A proxy that runs SPAKE2 itself with a guessed code, once with each peer: it stands in for the
/// receiver towards the sender and for the sender towards the receiver.
struct ManInTheMiddle {
    /// The proxy's handshakes and the messages they start with, until the peer's message arrives.
    as_sender: Option<Handshake>,
    as_receiver: Option<Handshake>,
    to_receiver: String,
    to_sender: String,
    keys_with_sender: Option<SessionKeys>,
    keys_with_receiver: Option<SessionKeys>,
    /// Real key confirmations the proxy's keys opened: with a wrong guess, none.
    opened: Arc<AtomicUsize>,
}

fn pake_message(message: &[u8]) -> String {
    format!("pake {}", URL_SAFE_NO_PAD.encode(message))
}

fn finish(handshake: Option<Handshake>, payload: &str) -> SessionKeys {
    let message = URL_SAFE_NO_PAD
        .decode(payload.strip_prefix("pake ").unwrap())
        .unwrap();
    handshake.unwrap().finish(&message).unwrap()
}

impl ManInTheMiddle {
    fn new(guess: &TransferCode, opened: Arc<AtomicUsize>) -> Self {
        let (as_sender, to_receiver) = Handshake::start(guess, Role::Sender);
        let (as_receiver, to_sender) = Handshake::start(guess, Role::Receiver);
        Self {
            as_sender: Some(as_sender),
            as_receiver: Some(as_receiver),
            to_receiver: pake_message(&to_receiver),
            to_sender: pake_message(&to_sender),
            keys_with_sender: None,
            keys_with_receiver: None,
            opened,
        }
    }

    fn tamper(&mut self, to: To, index: usize, payload: String) -> Vec<String> {
        match (to, index) {
            // The sender's PAKE message: finish the exchange with the sender, and give the
            // receiver the proxy's message instead.
            (To::Receiver, 0) => {
                self.keys_with_sender = Some(finish(self.as_receiver.take(), &payload));
                vec![self.to_receiver.clone()]
            }
            (To::Sender, 0) => {
                self.keys_with_receiver = Some(finish(self.as_sender.take(), &payload));
                vec![self.to_sender.clone()]
            }
            // A peer's key confirmation: try to open it, and pass on the proxy's own.
            (To::Receiver, 1) => swap_confirmation(
                &self.opened,
                &mut self.keys_with_sender,
                &mut self.keys_with_receiver,
                &payload,
            ),
            (To::Sender, 1) => swap_confirmation(
                &self.opened,
                &mut self.keys_with_receiver,
                &mut self.keys_with_sender,
                &payload,
            ),
            _ => vec![payload],
        }
    }
}

/// Tries the proxy's keys with the author of `confirmation` on it (counting in `opened` if they
/// open it), and returns the proxy's own confirmation for the other peer.
fn swap_confirmation(
    opened: &AtomicUsize,
    keys_with_author: &mut Option<SessionKeys>,
    keys_with_recipient: &mut Option<SessionKeys>,
    confirmation: &str,
) -> Vec<String> {
    let author = keys_with_author.as_mut().unwrap();
    if author.check_confirmation(confirmation).is_ok() {
        opened.fetch_add(1, Ordering::SeqCst);
    }
    vec![
        keys_with_recipient
            .as_mut()
            .unwrap()
            .confirmation()
            .unwrap(),
    ]
}

/// A code for the same room with other words: what a server that knows only the nameplate can try.
fn a_wrong_guess(code: &str) -> TransferCode {
    let nameplate = code.split('-').next().unwrap();
    let words = if code.ends_with("-aardvark-adroitness") {
        "absurd-adroitness"
    } else {
        "aardvark-adroitness"
    };
    TransferCode::parse(&format!("{nameplate}-{words}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_man_in_the_middle_fails_on_both_sides_after_one_guess() {
    let servers = signaling().await;
    // The proxy needs the nameplate to guess, and the sender shows the code only once the proxy
    // is up: the proxy's man in the middle is set up through this slot when the code is known.
    let slot: Arc<std::sync::Mutex<Option<ManInTheMiddle>>> = Arc::default();
    let opened = Arc::new(AtomicUsize::new(0));
    let in_proxy = Arc::clone(&slot);
    let tamper = Box::new(move |to, index, payload| {
        let mut mitm = in_proxy.lock().unwrap();
        mitm.as_mut().unwrap().tamper(to, index, payload)
    });
    let learn_code = |code: &str| {
        let mitm = ManInTheMiddle::new(&a_wrong_guess(code), Arc::clone(&opened));
        *slot.lock().unwrap() = Some(mitm);
    };
    let outcome = start_through(&servers, tamper, learn_code)
        .await
        .outcome()
        .await;
    // Both exit (the sender gives up its nameplate rather than wait for another receiver), so
    // the proxy had one guess, and a second needs a new code.
    assert_refused(&outcome, &[To::Sender, To::Receiver]);
    assert_eq!(
        opened.load(Ordering::SeqCst),
        0,
        "the guess opened a confirmation"
    );
}
