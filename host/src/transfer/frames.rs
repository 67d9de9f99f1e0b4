//! The frames on the data channel: control messages (JSON, split over several frames when long) and
//! chunk frames (binary header, then file bytes).
//!
//! ```text
//! control, last part   0x01 | JSON bytes
//! control, more parts  0x02 | JSON bytes
//! chunk                0x03 | file: u32 BE | offset: u64 BE | encoding: u8 | data
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::manifest::Manifest;

/// The peer protocol's version, sent first by both sides.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest control message, reassembled (a manifest of 100,000 files fits).
pub const MAX_CONTROL_BYTES: usize = 32 * 1024 * 1024;
const CONTROL_LAST: u8 = 0x01;
const CONTROL_MORE: u8 = 0x02;
const CHUNK: u8 = 0x03;
const CHUNK_HEADER: usize = 1 + 4 + 8 + 1;

/// The `kind` of an [`Control::Error`] that says the speaker stopped on purpose (its user pressed
/// Ctrl-C, its daemon is shutting down), not because something failed.
pub const CANCELLED_KIND: &str = "cancelled";

/// A control message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// The first message of each side.
    Hello {
        /// [`PROTOCOL_VERSION`] of the speaker.
        version: u32,
    },
    /// The sender's offer.
    Manifest(Manifest),
    /// The receiver takes the offer: for each file, the verified offset to send from.
    Accept {
        /// One offset per file of the manifest, in order.
        offsets: Vec<u64>,
    },
    /// The receiver declines the offer.
    Decline {
        /// Why, for the sender's user.
        reason: String,
    },
    /// The sender has sent every chunk.
    Done {},
    /// The receiver has verified and stored every file.
    Received {
        /// Files stored.
        files: u64,
        /// Bytes received in this session (after resume offsets).
        bytes: u64,
    },
    /// Either side gives up.
    Error {
        /// Machine-readable cause ([`CANCELLED_KIND`] when it stopped on purpose).
        kind: String,
        /// For people.
        message: String,
    },
}

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole control message (reassembled).
    Control(Control),
    /// File bytes.
    Chunk(Chunk),
}

/// File bytes at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the file in the manifest.
    pub file: u32,
    /// Offset of `data` in the file.
    pub offset: u64,
    /// The encoding applied by a plugin on the way (0: none).
    pub encoding: u8,
    /// The bytes (a view into the received frame, not a copy).
    pub data: Bytes,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// An empty frame.
    #[error("empty frame")]
    Empty,
    /// An unknown frame type byte.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// A chunk frame shorter than its header.
    #[error("chunk frame of {0} bytes is shorter than its header")]
    ShortChunk(usize),
    /// A control message over [`MAX_CONTROL_BYTES`].
    #[error("control message over {MAX_CONTROL_BYTES} bytes")]
    TooLarge,
    /// A chunk frame in the middle of a split control message.
    #[error("chunk frame inside a split control message")]
    Interleaved,
    /// Not a valid control message.
    #[error("invalid control message: {0}")]
    Invalid(String),
}

/// Encodes a control message into frames of at most `max_frame` bytes.
pub fn encode_control(message: &Control, max_frame: usize) -> Vec<Vec<u8>> {
    // Serializing these plain types cannot fail.
    let json = serde_json::to_vec(message).unwrap_or_default();
    let room = max_frame.saturating_sub(1).max(1);
    let parts: Vec<&[u8]> = if json.is_empty() {
        vec![&[]]
    } else {
        json.chunks(room).collect()
    };
    let last = parts.len() - 1;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut frame = Vec::with_capacity(part.len() + 1);
            frame.push(if i == last {
                CONTROL_LAST
            } else {
                CONTROL_MORE
            });
            frame.extend_from_slice(part);
            frame
        })
        .collect()
}

/// Encodes a chunk frame header followed by `data`.
pub fn encode_chunk(file: u32, offset: u64, encoding: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = chunk_frame(file, offset, encoding, data.len());
    frame.put_slice(data);
    frame.to_vec()
}

/// A chunk frame's header in a buffer with room for `len` data bytes, so the caller can read file
/// bytes straight into it (no copy between the read and the send).
pub fn chunk_frame(file: u32, offset: u64, encoding: u8, len: usize) -> BytesMut {
    let mut frame = BytesMut::with_capacity(CHUNK_HEADER + len);
    frame.put_u8(CHUNK);
    frame.put_u32(file);
    frame.put_u64(offset);
    frame.put_u8(encoding);
    frame
}

/// Bytes a chunk frame adds to its data.
pub const fn chunk_overhead() -> usize {
    CHUNK_HEADER
}

/// Reassembles frames into [`Frame`]s.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    partial: Vec<u8>,
}

impl FrameDecoder {
    /// Feeds one frame; returns a whole message when one is complete.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<Frame>, FrameError> {
        self.decode_bytes(Bytes::copy_from_slice(frame))
    }

    /// [`FrameDecoder::decode`] for a frame the caller owns: chunk data is a view into it.
    pub fn decode_bytes(&mut self, frame: Bytes) -> Result<Option<Frame>, FrameError> {
        let (&kind, body) = frame.split_first().ok_or(FrameError::Empty)?;
        match kind {
            CONTROL_MORE | CONTROL_LAST => {
                if self.partial.len() + body.len() > MAX_CONTROL_BYTES {
                    self.partial = Vec::new();
                    return Err(FrameError::TooLarge);
                }
                self.partial.extend_from_slice(body);
                if kind == CONTROL_MORE {
                    return Ok(None);
                }
                let json = std::mem::take(&mut self.partial);
                serde_json::from_slice(&json)
                    .map(|c| Some(Frame::Control(c)))
                    .map_err(|e| FrameError::Invalid(e.to_string()))
            }
            CHUNK => {
                if !self.partial.is_empty() {
                    return Err(FrameError::Interleaved);
                }
                if frame.len() < CHUNK_HEADER {
                    return Err(FrameError::ShortChunk(frame.len()));
                }
                let file = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
                let mut offset = [0u8; 8];
                offset.copy_from_slice(&frame[5..13]);
                Ok(Some(Frame::Chunk(Chunk {
                    file,
                    offset: u64::from_be_bytes(offset),
                    encoding: frame[13],
                    data: frame.slice(CHUNK_HEADER..),
                })))
            }
            other => Err(FrameError::UnknownType(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_split_and_reassemble() {
        let message = Control::Decline {
            reason: "x".repeat(1000),
        };
        let frames = encode_control(&message, 100);
        assert!(frames.len() > 10);
        let mut decoder = FrameDecoder::default();
        let mut out = None;
        for frame in &frames {
            assert!(frame.len() <= 100);
            out = decoder.decode(frame).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(out, Some(Frame::Control(message)));
        let done = encode_control(&Control::Done {}, 100);
        assert_eq!(done.len(), 1);
        assert_eq!(
            decoder.decode(&done[0]),
            Ok(Some(Frame::Control(Control::Done {})))
        );
    }

    #[test]
    fn chunks_round_trip() {
        let frame = encode_chunk(7, 1 << 40, 2, b"bytes");
        assert_eq!(frame.len(), chunk_overhead() + 5);
        let chunk = FrameDecoder::default().decode(&frame);
        assert_eq!(
            chunk,
            Ok(Some(Frame::Chunk(Chunk {
                file: 7,
                offset: 1 << 40,
                encoding: 2,
                data: Bytes::from_static(b"bytes")
            })))
        );
    }

    #[test]
    fn hostile_frames_are_refused() {
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.decode(&[]), Err(FrameError::Empty));
        assert_eq!(decoder.decode(&[9, 1, 2]), Err(FrameError::UnknownType(9)));
        assert_eq!(
            decoder.decode(&[CHUNK, 0, 0]),
            Err(FrameError::ShortChunk(3))
        );
        assert!(matches!(
            decoder.decode(b"\x01{\"type\":\"nope\"}"),
            Err(FrameError::Invalid(_))
        ));
        assert!(matches!(
            decoder.decode(b"\x01{\"type\":\"done\",\"extra\":1}"),
            Err(FrameError::Invalid(_))
        ));
        assert_eq!(decoder.decode(b"\x02{\"type\""), Ok(None));
        assert_eq!(
            decoder.decode(&encode_chunk(0, 0, 0, b"")),
            Err(FrameError::Interleaved)
        );
        let mut decoder = FrameDecoder::default();
        let big = vec![b' '; 1024 * 1024];
        let mut result = Ok(None);
        for _ in 0..40 {
            let mut frame = vec![CONTROL_MORE];
            frame.extend_from_slice(&big);
            result = decoder.decode(&frame);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(FrameError::TooLarge));
    }
}
