//! The peer protocol over the data channel, sans-IO.
//!
//! ```text
//! sender                                   receiver
//!   hello {version}        ─────────────▶
//!                          ◀───────────── hello {version}
//!   manifest {files, hashes} ───────────▶  validates every path and hash
//!                          ◀───────────── accept {offsets}   (or decline)
//!   chunk(file, offset, bytes) … ───────▶  writes NAME.part, checks each chunk group
//!   done                   ─────────────▶  checks each file, syncs, renames
//!                          ◀───────────── received {files, bytes}
//! ```
//!
//! Either side may send `error` at any point; the other stops at once. Resume is the receiver's
//! `accept` offsets: for each file, the end of the part already on disk that matches the sender's
//! chunk-group hashes.
//!
//! [`Sender`] and [`Receiver`] hold the protocol state and nothing else: the driver feeds them
//! frames, carries out what they return, and moves the bytes (reading files on one side, writing
//! [`crate::store::PartFile`]s on the other).

pub mod frames;
pub mod manifest;
mod receiver;
pub mod replay;
mod sender;

pub use frames::{Chunk, Control, Frame, FrameDecoder, FrameError, PROTOCOL_VERSION};
pub use manifest::{FileEntry, Manifest, ManifestError, ValidManifest};
pub use receiver::{Receiver, ReceiverEvent};
pub use sender::{ChunkPlan, Sender, SenderEvent};

/// Why a transfer stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The peer speaks another protocol version.
    #[error(
        "the peer speaks protocol version {0}, this side speaks {PROTOCOL_VERSION}: upgrade one of them"
    )]
    Version(u32),
    /// A frame arrived that the protocol does not allow now.
    #[error("protocol violation: {0}")]
    Unexpected(String),
    /// The peer's offer is unsafe or inconsistent.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A frame could not be read.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The receiver declined.
    #[error("the receiver declined: {0}")]
    Declined(String),
    /// The peer stopped on purpose: its user pressed Ctrl-C, or its daemon is shutting down.
    #[error("cancelled by the other side (sending the same files again resumes the transfer)")]
    Cancelled,
    /// The peer reported an error.
    #[error("the peer stopped: {message} ({kind})")]
    Peer {
        /// Its kind.
        kind: String,
        /// Its message.
        message: String,
    },
}

impl TransferError {
    /// What an `error` message from the peer stands for.
    pub(crate) fn from_peer(kind: String, message: String) -> Self {
        if kind == frames::CANCELLED_KIND {
            Self::Cancelled
        } else {
            Self::Peer { kind, message }
        }
    }
}

#[cfg(test)]
#[path = "harness_tests.rs"]
mod harness_tests;
