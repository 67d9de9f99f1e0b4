//! SPAKE2 over a transfer code: both peers end with the same keys if, and only if, they typed the
//! same code; a server in the middle learns nothing it could test passwords against offline.

use hkdf::Hkdf;
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::TransferCode;
use super::seal::{Direction, Opener, SealError, Sealer};

/// What the first sealed message of each side says; opening it proves both hold the same key.
const CONFIRMATION: &[u8] = b"p2phost-v1 key confirmation";

/// Which end of the transfer this side is. The roles are bound into the key exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Shows the code and sends the files.
    Sender,
    /// Types the code and receives the files.
    Receiver,
}

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PakeError {
    /// The peer's handshake message is malformed.
    #[error("the peer's key-exchange message is malformed: {0}")]
    BadMessage(String),
    /// The peers derived different keys: a mistyped code, or someone in the middle.
    #[error("wrong code or tampering: the peers do not share a key; check the code and try again")]
    WrongCode,
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// A started handshake: send [`Handshake::start`]'s message to the peer, then
/// [`Handshake::finish`] with the peer's.
pub struct Handshake {
    spake: Spake2<Ed25519Group>,
    role: Role,
}

/// The keys of one session.
pub struct SessionKeys {
    sealer: Sealer,
    opener: Opener,
    verification: String,
}

impl Handshake {
    /// Starts the exchange for `code` as `role`; returns the message for the peer.
    pub fn start(code: &TransferCode, role: Role) -> (Self, Vec<u8>) {
        let password = Password::new(code.password().as_bytes());
        let sender = Identity::new(b"p2phost-v1 sender");
        let receiver = Identity::new(b"p2phost-v1 receiver");
        let (spake, message) = match role {
            Role::Sender => Spake2::<Ed25519Group>::start_a(&password, &sender, &receiver),
            Role::Receiver => Spake2::<Ed25519Group>::start_b(&password, &sender, &receiver),
        };
        (Self { spake, role }, message)
    }

    /// Completes the exchange with the peer's message.
    pub fn finish(self, peer_message: &[u8]) -> Result<SessionKeys, PakeError> {
        let shared = self
            .spake
            .finish(peer_message)
            .map_err(|e| PakeError::BadMessage(format!("{e:?}")))?;
        let hkdf = Hkdf::<Sha256>::new(None, &shared);
        let derive = |info: &[u8]| {
            let mut key = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's output limit.
            let _ = hkdf.expand(info, &mut key);
            key
        };
        let to_receiver = derive(b"p2phost-v1 key sender->receiver");
        let to_sender = derive(b"p2phost-v1 key receiver->sender");
        let check = derive(b"p2phost-v1 verification");
        let (sealer, opener) = match self.role {
            Role::Sender => (
                Sealer::new(&to_receiver, Direction::SenderToReceiver),
                Opener::new(&to_sender, Direction::ReceiverToSender),
            ),
            Role::Receiver => (
                Sealer::new(&to_sender, Direction::ReceiverToSender),
                Opener::new(&to_receiver, Direction::SenderToReceiver),
            ),
        };
        let verification = format!(
            "{:02x}{:02x}-{:02x}{:02x}",
            check[0], check[1], check[2], check[3]
        );
        Ok(SessionKeys {
            sealer,
            opener,
            verification,
        })
    }
}

impl SessionKeys {
    /// A short string both sides show with `--verify`; equal on both sides only if no one is in the
    /// middle.
    pub fn verification(&self) -> &str {
        &self.verification
    }

    /// This side's key confirmation: the first sealed message it sends.
    pub fn confirmation(&mut self) -> Result<String, PakeError> {
        Ok(self.sealer.seal(CONFIRMATION)?)
    }

    /// Checks the peer's key confirmation, the first sealed message it sent.
    pub fn check_confirmation(&mut self, sealed: &str) -> Result<(), PakeError> {
        match self.opener.open(sealed) {
            Ok(text) if text == CONFIRMATION => Ok(()),
            _ => Err(PakeError::WrongCode),
        }
    }

    /// The sealer for what this side sends and the opener for what it receives.
    pub fn split(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> TransferCode {
        TransferCode::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn handshake(a: &str, b: &str) -> (SessionKeys, SessionKeys) {
        let (sender, to_receiver) = Handshake::start(&code(a), Role::Sender);
        let (receiver, to_sender) = Handshake::start(&code(b), Role::Receiver);
        let finish = |h: Handshake, m: &[u8]| h.finish(m).unwrap_or_else(|e| panic!("{e}"));
        (finish(sender, &to_sender), finish(receiver, &to_receiver))
    }

    fn seal(keys: &mut SessionKeys) -> String {
        keys.confirmation().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_same_code_gives_the_same_keys() {
        let (mut sender, mut receiver) =
            handshake("7-aardvark-adroitness", "7-aardvark-adroitness");
        assert_eq!(sender.verification(), receiver.verification());
        let from_sender = seal(&mut sender);
        let from_receiver = seal(&mut receiver);
        assert_eq!(receiver.check_confirmation(&from_sender), Ok(()));
        assert_eq!(sender.check_confirmation(&from_receiver), Ok(()));

        let (mut seal_s, _) = sender.split();
        let (_, mut open_r) = receiver.split();
        let offer = seal_s.seal(b"sdp offer").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(open_r.open(&offer).as_deref(), Ok(&b"sdp offer"[..]));
    }

    #[test]
    fn a_wrong_code_fails_on_both_sides() {
        for (a, b) in [
            ("7-aardvark-adroitness", "7-aardvark-adviser"),
            // The same words in another room are another password.
            ("7-aardvark-adroitness", "8-aardvark-adroitness"),
        ] {
            let (mut sender, mut receiver) = handshake(a, b);
            assert_ne!(sender.verification(), receiver.verification());
            let from_sender = seal(&mut sender);
            let from_receiver = seal(&mut receiver);
            assert_eq!(
                receiver.check_confirmation(&from_sender),
                Err(PakeError::WrongCode)
            );
            assert_eq!(
                sender.check_confirmation(&from_receiver),
                Err(PakeError::WrongCode)
            );
        }
    }

    #[test]
    fn two_senders_do_not_agree() {
        // A server that pairs two senders (or reflects a sender's message back) gets no key.
        let c = code("7-aardvark-adroitness");
        let (a, to_b) = Handshake::start(&c, Role::Sender);
        let (b, to_a) = Handshake::start(&c, Role::Sender);
        assert!(matches!(a.finish(&to_a), Err(PakeError::BadMessage(_))));
        let (reflected, _) = Handshake::start(&c, Role::Sender);
        assert!(matches!(
            reflected.finish(&to_b),
            Err(PakeError::BadMessage(_))
        ));
        drop(b);
    }

    #[test]
    fn malformed_peer_messages_are_refused() {
        let c = code("7-aardvark-adroitness");
        for bad in [&b""[..], &[0u8; 5], &[0xffu8; 33], &[0x41u8; 300]] {
            let (h, _) = Handshake::start(&c, Role::Sender);
            assert!(
                matches!(h.finish(bad), Err(PakeError::BadMessage(_))),
                "{bad:?}"
            );
        }
    }
}
