//! The sending side of the peer protocol.

use super::frames::{Control, Frame, PROTOCOL_VERSION};
use super::{Manifest, TransferError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitAccept,
    Sending,
    AwaitReceived,
    Finished,
}

/// What a frame from the receiver meant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderEvent {
    /// Nothing for the driver to do.
    Nothing,
    /// The receiver accepted; `skipped` bytes are already there and will not be sent.
    Accepted {
        /// Bytes the resume offsets skip.
        skipped: u64,
    },
    /// The receiver stored everything.
    Completed {
        /// Files it stored.
        files: u64,
        /// Bytes it received in this session.
        bytes: u64,
    },
}

/// The next chunk to send: read `len` bytes of file `file` at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    /// Index of the file in the manifest.
    pub file: u32,
    /// Offset in the file.
    pub offset: u64,
    /// Bytes to read and send.
    pub len: usize,
}

/// The sender's protocol state.
#[derive(Debug)]
pub struct Sender {
    state: State,
    sizes: Vec<u64>,
    /// Per file, the offset the receiver asked to start from.
    resume: Vec<u64>,
    chunk_size: u64,
    file: usize,
    offset: u64,
    planned_bytes: u64,
}

impl Sender {
    /// Starts a transfer of `manifest`; the returned messages go to the receiver first (hello and
    /// the offer together, to save a round trip).
    pub fn new(manifest: Manifest) -> (Self, Vec<Control>) {
        let sender = Self {
            state: State::AwaitHello,
            sizes: manifest.files.iter().map(|f| f.size).collect(),
            resume: Vec::new(),
            chunk_size: u64::from(manifest.chunk_size.max(1)),
            file: 0,
            offset: 0,
            planned_bytes: 0,
        };
        let first = vec![
            Control::Hello {
                version: PROTOCOL_VERSION,
            },
            Control::Manifest(manifest),
        ];
        (sender, first)
    }

    /// Handles a frame from the receiver.
    pub fn handle(&mut self, frame: Frame) -> Result<SenderEvent, TransferError> {
        let message = match frame {
            Frame::Control(message) => message,
            Frame::Chunk(_) => return Err(self.violation("a chunk from the receiver")),
        };
        match (self.state, message) {
            (_, Control::Error { kind, message }) => {
                self.state = State::Finished;
                Err(TransferError::from_peer(kind, message))
            }
            (State::AwaitHello, Control::Hello { version }) => {
                if version != PROTOCOL_VERSION {
                    return Err(TransferError::Version(version));
                }
                self.state = State::AwaitAccept;
                Ok(SenderEvent::Nothing)
            }
            (State::AwaitAccept, Control::Decline { reason }) => {
                self.state = State::Finished;
                Err(TransferError::Declined(reason))
            }
            (State::AwaitAccept, Control::Accept { offsets }) => self.accept(offsets),
            (State::AwaitReceived, Control::Received { files, bytes }) => {
                self.state = State::Finished;
                Ok(SenderEvent::Completed { files, bytes })
            }
            (_, other) => Err(self.violation(&format!("{other:?}"))),
        }
    }

    fn accept(&mut self, offsets: Vec<u64>) -> Result<SenderEvent, TransferError> {
        if offsets.len() != self.sizes.len() {
            return Err(self.violation("an accept whose offsets do not match the files"));
        }
        if offsets.iter().zip(&self.sizes).any(|(o, s)| o > s) {
            return Err(self.violation("an accept offset past the end of its file"));
        }
        let skipped = offsets.iter().sum();
        self.resume = offsets;
        self.state = State::Sending;
        self.file = 0;
        self.offset = self.resume.first().copied().unwrap_or(0);
        Ok(SenderEvent::Accepted { skipped })
    }

    /// The next chunk to send, while sending; `None` once every byte has been planned, after which
    /// [`Sender::done`] gives the closing message.
    pub fn next_chunk(&mut self) -> Option<ChunkPlan> {
        if self.state != State::Sending {
            return None;
        }
        while let Some(&size) = self.sizes.get(self.file) {
            if self.offset < size {
                let len = (size - self.offset).min(self.chunk_size);
                let plan = ChunkPlan {
                    file: u32::try_from(self.file).ok()?,
                    offset: self.offset,
                    len: usize::try_from(len).ok()?,
                };
                self.offset += len;
                self.planned_bytes += len;
                return Some(plan);
            }
            self.file += 1;
            self.offset = self.resume.get(self.file).copied().unwrap_or(0);
        }
        None
    }

    /// `done`, once every chunk was planned; `None` before that, or when already sent.
    pub fn done(&mut self) -> Option<Control> {
        if self.state != State::Sending || self.file < self.sizes.len() {
            return None;
        }
        self.state = State::AwaitReceived;
        Some(Control::Done {})
    }

    /// File bytes planned for sending so far in this session.
    pub fn planned_bytes(&self) -> u64 {
        self.planned_bytes
    }

    fn violation(&mut self, what: &str) -> TransferError {
        let was = std::mem::replace(&mut self.state, State::Finished);
        TransferError::Unexpected(format!(
            "the receiver sent {what} while the sender was in state {was:?}"
        ))
    }
}
