//! One-off transfers, `p2phost send` and `p2phost receive`: a session, then the peer protocol
//! driven over its data channel, reading files on one side and writing `.part` files on the other.

mod cancel;
mod channel_io;
mod observer;
mod receive;
mod send;

pub use cancel::Cancel;
pub use observer::{Observer, Silent};
pub use receive::{ReceiveReport, receive, receive_over};
pub use send::{CodeChoice, SendReport, send, send_over};

use crate::code::PakeError;
use crate::session::SessionError;
use crate::store::{ScanError, StoreError};
use crate::transfer::TransferError;

/// Largest frame on the data channel: the SCTP message size every WebRTC peer accepts (RFC 8841).
pub const MAX_FRAME: usize = 64 * 1024;
/// File bytes per chunk frame: a frame's worth less the chunk header.
pub const CHUNK_SIZE: u32 = (MAX_FRAME - crate::transfer::frames::chunk_overhead()) as u32;
/// Bytes per hashed chunk group: the unit of resume and of early corruption checks.
pub const GROUP_SIZE: u64 = 1024 * 1024;

/// Runs file I/O that may block for long, such as an fsync, telling a multi-threaded runtime so,
/// which then keeps its other tasks (the data channel's driver among them) going elsewhere; a
/// current-thread runtime cannot, so there it simply runs. Not used for each chunk's read or
/// write: those hit the page cache, and announcing each of them cost ~10% of the throughput
/// (docs/BENCHMARKS.md).
pub(crate) fn blocking_io<T>(io: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(io),
        _ => io(),
    }
}

/// Why a one-off transfer failed; [`OneshotError::exit_code`] maps it to the process's exit status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OneshotError {
    /// Reaching the peer failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The peer protocol failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// Reading the inputs failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// Writing a file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data channel failed or closed early.
    #[error("the connection to the peer broke: {0}")]
    Channel(String),
    /// A plugin or script stopped the transfer (a trap, a deadline, a limit, an error, an abort).
    #[error("plugin or script {0}")]
    Hook(#[from] crate::hooks::HookError),
    /// A bug on this side.
    #[error("internal error: {0}")]
    Internal(String),
    /// The user did not accept the offer.
    #[error("the offer was refused: {0}")]
    Refused(String),
    /// This side stopped on purpose ([`Cancel::cancel`]); the peer was told, if there was one.
    #[error("cancelled; running the same transfer again resumes it")]
    Cancelled,
}

/// Exit status of a transfer this side cancelled: a shell's for a command stopped by Ctrl-C.
pub const EXIT_CANCELLED: i32 = 130;
/// Exit status of a transfer the peer cancelled.
pub const EXIT_PEER_CANCELLED: i32 = 9;

impl OneshotError {
    /// The exit status for this failure (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Session(
                SessionError::Pake(PakeError::WrongCode)
                | SessionError::Seal(_)
                | SessionError::PeerRefused,
            ) => 3,
            Self::Refused(_) | Self::Transfer(TransferError::Declined(_)) => 4,
            // --relay-only with no relay from the flags or the server: a usage error.
            Self::Session(SessionError::NoRelay) => 2,
            // Data that does not match the offer is the peer's fault, not the disk's.
            Self::Store(
                StoreError::Corrupt { .. }
                | StoreError::Length { .. }
                | StoreError::Manifest { .. },
            ) => 7,
            Self::Scan(_) | Self::Store(_) => 5,
            Self::Session(_) | Self::Channel(_) => 6,
            // A plugin or script stopped the transfer: on the peer's side, but still a hook's
            // doing, so both sides report it alike.
            Self::Hook(_) => 8,
            Self::Transfer(TransferError::Peer { kind, .. }) if kind == "plugin" => 8,
            Self::Transfer(TransferError::Cancelled) => EXIT_PEER_CANCELLED,
            Self::Cancelled => EXIT_CANCELLED,
            Self::Transfer(_) => 7,
            Self::Internal(_) => 1,
        }
    }

    /// What to tell the peer: local file errors name local paths, which are none of its business.
    pub fn for_peer(&self) -> String {
        match self {
            Self::Store(
                StoreError::Corrupt { .. }
                | StoreError::Length { .. }
                | StoreError::Manifest { .. },
            ) => "the data did not match the offer's hashes or sizes".into(),
            Self::Store(StoreError::Exists(path)) => format!(
                "{} exists on the receiving side (it can pass --overwrite)",
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ),
            Self::Store(StoreError::NoSpace { need, free, .. }) => {
                format!("not enough space on the receiving side: {need} bytes needed, {free} free")
            }
            Self::Scan(_) | Self::Store(_) => {
                "a file could not be read or written on this side (the details are on its screen)"
                    .into()
            }
            Self::Cancelled => "cancelled by the other side".into(),
            _ => self.to_string(),
        }
    }

    /// A short machine-readable name, for `--json`.
    pub fn kind(&self) -> &'static str {
        match self.exit_code() {
            2 => "usage",
            3 => "wrong_code",
            4 => "refused",
            5 => "io",
            6 => "connection",
            1 => "internal",
            8 => "plugin",
            EXIT_CANCELLED | EXIT_PEER_CANCELLED => crate::transfer::frames::CANCELLED_KIND,
            _ => "protocol",
        }
    }
}
