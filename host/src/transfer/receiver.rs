//! The receiving side of the peer protocol.

use super::frames::{Chunk, Control, Frame, PROTOCOL_VERSION};
use super::{TransferError, ValidManifest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitManifest,
    AwaitDecision,
    Receiving,
    Finished,
}

/// What the driver must do after a frame from the sender.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ReceiverEvent {
    /// The sender's offer, validated: decide with [`Receiver::accept`] or [`Receiver::decline`].
    Offer(ValidManifest),
    /// Write `data` into file `file` at `offset` (always the next byte of that file).
    Data {
        /// Index of the file in the manifest.
        file: usize,
        /// Offset of `data`.
        offset: u64,
        /// The bytes.
        data: bytes::Bytes,
    },
    /// Every byte of file `file` has arrived: verify and move it into place.
    FileComplete(usize),
    /// The sender is done and every file is complete: answer with [`Receiver::received`].
    Finished,
}

/// The receiver's protocol state.
#[derive(Debug)]
pub struct Receiver {
    state: State,
    sizes: Vec<u64>,
    /// Per file, the offset the transfer resumes from.
    resume: Vec<u64>,
    file: usize,
    offset: u64,
    received_bytes: u64,
}

impl Receiver {
    /// A receiver, and the hello to send.
    pub fn new() -> (Self, Control) {
        let receiver = Self {
            state: State::AwaitHello,
            sizes: Vec::new(),
            resume: Vec::new(),
            file: 0,
            offset: 0,
            received_bytes: 0,
        };
        (
            receiver,
            Control::Hello {
                version: PROTOCOL_VERSION,
            },
        )
    }

    /// Handles a frame from the sender.
    pub fn handle(&mut self, frame: Frame) -> Result<Vec<ReceiverEvent>, TransferError> {
        match (self.state, frame) {
            (_, Frame::Control(Control::Error { kind, message })) => {
                self.state = State::Finished;
                Err(TransferError::from_peer(kind, message))
            }
            (State::AwaitHello, Frame::Control(Control::Hello { version })) => {
                if version != PROTOCOL_VERSION {
                    self.state = State::Finished;
                    return Err(TransferError::Version(version));
                }
                self.state = State::AwaitManifest;
                Ok(Vec::new())
            }
            (State::AwaitManifest, Frame::Control(Control::Manifest(manifest))) => {
                let valid = manifest
                    .validate()
                    .inspect_err(|_| self.state = State::Finished)?;
                self.sizes = valid.files.iter().map(|f| f.size).collect();
                self.state = State::AwaitDecision;
                Ok(vec![ReceiverEvent::Offer(valid)])
            }
            (State::Receiving, Frame::Chunk(chunk)) => self.chunk(chunk),
            (State::Receiving, Frame::Control(Control::Done {})) => {
                if self.file < self.sizes.len() {
                    self.state = State::Finished;
                    return Err(TransferError::Unexpected(format!(
                        "the sender said done with file {} at {} of {} bytes: the stream was cut",
                        self.file, self.offset, self.sizes[self.file]
                    )));
                }
                self.state = State::Finished;
                Ok(vec![ReceiverEvent::Finished])
            }
            (state, frame) => {
                self.state = State::Finished;
                let what = match frame {
                    Frame::Control(c) => format!("{c:?}"),
                    Frame::Chunk(c) => format!("a chunk of file {} at {}", c.file, c.offset),
                };
                Err(TransferError::Unexpected(format!(
                    "the sender sent {what} while the receiver was in state {state:?}"
                )))
            }
        }
    }

    fn chunk(&mut self, chunk: Chunk) -> Result<Vec<ReceiverEvent>, TransferError> {
        let expected = usize::try_from(chunk.file).ok() == Some(self.file)
            && chunk.offset == self.offset
            && !chunk.data.is_empty()
            && chunk.encoding == 0;
        let size = self.sizes.get(self.file).copied().unwrap_or(0);
        let end = self.offset + chunk.data.len() as u64;
        if !expected || end > size {
            self.state = State::Finished;
            return Err(TransferError::Unexpected(format!(
                "chunk of file {} at offset {} ({} bytes, encoding {}), expected file {} at offset {} of {size}",
                chunk.file,
                chunk.offset,
                chunk.data.len(),
                chunk.encoding,
                self.file,
                self.offset
            )));
        }
        self.received_bytes += chunk.data.len() as u64;
        let mut events = vec![ReceiverEvent::Data {
            file: self.file,
            offset: chunk.offset,
            data: chunk.data,
        }];
        self.offset = end;
        if end == size {
            events.push(ReceiverEvent::FileComplete(self.file));
            self.settle(self.file + 1, &mut events);
        }
        Ok(events)
    }

    /// Moves to the first file from `file` on with bytes still to come, completing the ones that
    /// are already whole on the way.
    fn settle(&mut self, mut file: usize, events: &mut Vec<ReceiverEvent>) {
        while let Some(&size) = self.sizes.get(file) {
            let offset = self.resume.get(file).copied().unwrap_or(0);
            if offset < size {
                self.file = file;
                self.offset = offset;
                return;
            }
            events.push(ReceiverEvent::FileComplete(file));
            file += 1;
        }
        self.file = file;
        self.offset = 0;
    }

    /// Accepts the offer, resuming each file at the given verified offset. Returns the message for
    /// the sender and the files that are already whole (to finish at once).
    pub fn accept(
        &mut self,
        offsets: Vec<u64>,
    ) -> Result<(Control, Vec<ReceiverEvent>), TransferError> {
        if self.state != State::AwaitDecision
            || offsets.len() != self.sizes.len()
            || offsets.iter().zip(&self.sizes).any(|(o, s)| o > s)
        {
            return Err(TransferError::Unexpected(
                "accept with offsets that do not fit the offer".into(),
            ));
        }
        self.state = State::Receiving;
        self.resume.clone_from(&offsets);
        let mut events = Vec::new();
        self.settle(0, &mut events);
        Ok((Control::Accept { offsets }, events))
    }

    /// Declines the offer.
    pub fn decline(&mut self, reason: impl Into<String>) -> Control {
        self.state = State::Finished;
        Control::Decline {
            reason: reason.into(),
        }
    }

    /// The closing message, once every file is stored.
    pub fn received(&self) -> Control {
        Control::Received {
            files: self.sizes.len() as u64,
            bytes: self.received_bytes,
        }
    }

    /// File bytes received in this session.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes
    }
}
