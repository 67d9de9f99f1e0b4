//! Transfer codes and what they secure.
//!
//! A code such as `7-guitar-orbit` names a room on the signaling server (the nameplate, `7`) and
//! carries a password (the words) that the server never sees. Both peers run SPAKE2 over the
//! password ([`pake`]); the key it yields seals every later signaling payload ([`seal`]), with the
//! direction and a sequence number bound in, so the server cannot read, alter, replay, reorder or
//! swap what the peers say. A wrong code fails on both sides after one guess.
//!
//! Everything here is sans-IO: bytes in, bytes out. The session sends the messages.

pub mod pake;
pub mod seal;
mod transfer_code;

pub use pake::{Handshake, PakeError, Role, SessionKeys};
pub use seal::{Opener, SealError, Sealer};
pub use transfer_code::{CodeError, DEFAULT_WORDS, MAX_WORDS, TransferCode};
