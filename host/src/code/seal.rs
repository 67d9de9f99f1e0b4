//! Sealing signaling payloads: ChaCha20-Poly1305 under a key per direction, with the direction and a
//! sequence number in the associated data.
//!
//! Each side keeps its own counter, so a message the server drops, replays, reorders or carries the
//! wrong way fails to open. Sealed text is URL-safe base64, ready for a signaling frame.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const LABEL: &[u8] = b"p2phost-v1 sealed signaling";

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    SenderToReceiver = 1,
    ReceiverToSender = 2,
}

/// Why a sealed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Not base64 at all.
    #[error("a sealed message is not base64: the peer or the server sent garbage")]
    NotBase64,
    /// The tag did not verify: another key (a wrong code), or altered, replayed, reordered or
    /// misdirected on the way.
    #[error("wrong code or tampering: a sealed message did not verify")]
    Forged,
    /// 2^64 messages in one direction; never in practice.
    #[error("the message counter is exhausted")]
    Exhausted,
}

fn nonce(sequence: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&sequence.to_be_bytes());
    Nonce::from(nonce)
}

fn associated_data(direction: Direction, sequence: u64) -> Vec<u8> {
    let mut ad = Vec::with_capacity(LABEL.len() + 9);
    ad.extend_from_slice(LABEL);
    ad.push(direction as u8);
    ad.extend_from_slice(&sequence.to_be_bytes());
    ad
}

/// Seals what this side sends.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    direction: Direction,
    next: u64,
}

/// Opens what the peer sent, in order.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    direction: Direction,
    next: u64,
}

impl Sealer {
    pub(crate) fn new(key: &[u8; 32], direction: Direction) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            direction,
            next: 0,
        }
    }

    /// Seals `plaintext` as the next message of this direction.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<String, SealError> {
        let sequence = self.next;
        self.next = sequence.checked_add(1).ok_or(SealError::Exhausted)?;
        let ad = associated_data(self.direction, sequence);
        let sealed = self
            .cipher
            .encrypt(
                &nonce(sequence),
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            .map_err(|_| SealError::Exhausted)?;
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }
}

impl Opener {
    pub(crate) fn new(key: &[u8; 32], direction: Direction) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            direction,
            next: 0,
        }
    }

    /// Opens the next message of the peer's direction. After an error the channel is not to be
    /// trusted: end the session.
    pub fn open(&mut self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed.as_bytes())
            .map_err(|_| SealError::NotBase64)?;
        let ad = associated_data(self.direction, self.next);
        let plaintext = self
            .cipher
            .decrypt(
                &nonce(self.next),
                Payload {
                    msg: &bytes,
                    aad: &ad,
                },
            )
            .map_err(|_| SealError::Forged)?;
        self.next = self.next.checked_add(1).ok_or(SealError::Exhausted)?;
        Ok(plaintext)
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({:?}, next {})", self.direction, self.next)
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opener({:?}, next {})", self.direction, self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: u8) -> (Sealer, Opener) {
        let key = [key; 32];
        (
            Sealer::new(&key, Direction::SenderToReceiver),
            Opener::new(&key, Direction::SenderToReceiver),
        )
    }

    #[test]
    fn opens_in_order() {
        let (mut sealer, mut opener) = pair(1);
        for text in [&b"offer"[..], b"", b"candidate 1", &[0u8; 5000]] {
            let sealed = sealer.seal(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(opener.open(&sealed).as_deref(), Ok(text));
        }
    }

    #[test]
    fn refuses_replay_reorder_drop_and_tampering() {
        let (mut sealer, _) = pair(1);
        let first = sealer.seal(b"one").unwrap_or_else(|e| panic!("{e}"));
        let second = sealer.seal(b"two").unwrap_or_else(|e| panic!("{e}"));

        let (_, mut opener) = pair(1);
        assert_eq!(
            opener.open(&second),
            Err(SealError::Forged),
            "reordered or dropped"
        );
        assert_eq!(opener.open(&first).as_deref(), Ok(&b"one"[..]));
        assert_eq!(opener.open(&first), Err(SealError::Forged), "replayed");

        let (_, mut opener) = pair(1);
        let mut bytes = URL_SAFE_NO_PAD.decode(&first).unwrap_or_default();
        bytes[0] ^= 1;
        assert_eq!(
            opener.open(&URL_SAFE_NO_PAD.encode(bytes)),
            Err(SealError::Forged)
        );
        assert_eq!(opener.open("not base64!"), Err(SealError::NotBase64));
    }

    #[test]
    fn refuses_the_wrong_key_and_the_wrong_direction() {
        let (mut sealer, _) = pair(1);
        let sealed = sealer.seal(b"offer").unwrap_or_else(|e| panic!("{e}"));
        let (_, mut other_key) = pair(2);
        assert_eq!(other_key.open(&sealed), Err(SealError::Forged));
        // The same key the other way round: a message reflected back to its sender.
        let mut reflected = Opener::new(&[1; 32], Direction::ReceiverToSender);
        assert_eq!(reflected.open(&sealed), Err(SealError::Forged));
    }
}
