//! TURN messages on a byte stream, sans IO: what [`super::turn_stream`] needs to carry webrtc-rs's
//! TURN datagrams over TCP or TLS.
//!
//! Over UDP each datagram is one message. Over a stream (RFC 8656 §12.5) the messages follow each
//! other and each says how long it is:
//!
//! - a STUN message (first two bits `00`): a 20-byte header whose bytes 2–3 give the length of
//!   the attributes (a multiple of 4), and bytes 4–7 hold the magic cookie `0x2112A442`;
//! - a ChannelData message (first two bits `01`, channel `0x4000`–`0x4FFF`): a 4-byte header whose
//!   bytes 2–3 give the length of the data, padded on a stream to a multiple of 4 bytes.
//!
//! Anything else (first bits `10` or `11`, a reserved channel, a STUN header without the cookie)
//! means the stream is out of step or hostile: there is no way to find the next message, so the
//! splitter stops for good.
//!
//! ```
//! use p2phost::session::turn_framing::{Splitter, to_stream};
//! // A ChannelData message of 5 bytes goes on the stream padded to 12 and comes back as it was.
//! let datagram = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5];
//! let on_stream = to_stream(&datagram).unwrap();
//! assert_eq!(on_stream.len(), 12);
//! let mut splitter = Splitter::default();
//! splitter.push(&on_stream[..7]);
//! assert_eq!(splitter.next_message().unwrap(), None); // not all there yet
//! splitter.push(&on_stream[7..]);
//! assert_eq!(splitter.next_message().unwrap().as_deref(), Some(&datagram[..]));
//! ```

use bytes::{Buf, Bytes, BytesMut};

/// A STUN header's size.
pub const STUN_HEADER: usize = 20;
/// A ChannelData header's size.
pub const CHANNEL_HEADER: usize = 4;
/// The largest message on a stream: a STUN header and 65,532 bytes of attributes (the largest
/// multiple of 4 the length field holds), which is more than the largest padded ChannelData.
pub const MAX_MESSAGE: usize = STUN_HEADER + 65_532;
/// The magic cookie in bytes 4–7 of every STUN message (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// The STUN attribute ERROR-CODE.
const ATTR_ERROR_CODE: u16 = 0x0009;
/// The class bits of a STUN message type (RFC 8489 §5): `00` request, `11` error response.
const CLASS_MASK: u16 = 0x0110;
/// Longest reason phrase in a made-up error response (RFC 8489 §14.8: under 128 characters).
const MAX_REASON: usize = 127;

/// Why bytes are not a TURN message, or a stream not a sequence of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The first two bits are neither `00` (STUN) nor `01` (ChannelData).
    #[error("not a STUN or ChannelData message (first byte {0:#04x})")]
    UnknownKind(u8),
    /// A channel number outside `0x4000`–`0x4FFF` (the rest are reserved).
    #[error("channel number {0:#06x} is outside 0x4000-0x4FFF")]
    ReservedChannel(u16),
    /// A STUN header without the magic cookie.
    #[error("STUN message without the magic cookie")]
    NoMagicCookie,
    /// A STUN length that is not a multiple of 4.
    #[error("STUN attributes of {0} bytes, not a multiple of 4")]
    UnalignedLength(u16),
    /// A datagram shorter than its header.
    #[error("datagram of {0} bytes is shorter than a header")]
    TooShort(usize),
    /// A datagram whose length is not the one its header gives.
    #[error("datagram of {got} bytes, its header says {expected}")]
    LengthMismatch {
        /// The datagram's size.
        got: usize,
        /// The size its header gives.
        expected: usize,
    },
    /// The stream ended inside a message.
    #[error("the stream ended {0} bytes into a message")]
    Truncated(usize),
}

/// What the first bytes of a message say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// The message's size as a datagram.
    datagram: usize,
    /// Its size on a stream, padding included.
    stream: usize,
}

/// Reads the header at the start of `bytes`: `Ok(None)` while too few bytes are there to tell.
fn header(bytes: &[u8]) -> Result<Option<Header>, FramingError> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    match first >> 6 {
        0b00 => {
            if bytes.len() < 8 {
                return Ok(None);
            }
            if bytes[4..8] != MAGIC_COOKIE {
                return Err(FramingError::NoMagicCookie);
            }
            let length = u16::from_be_bytes([bytes[2], bytes[3]]);
            if !length.is_multiple_of(4) {
                return Err(FramingError::UnalignedLength(length));
            }
            let size = STUN_HEADER + usize::from(length);
            Ok(Some(Header {
                datagram: size,
                stream: size,
            }))
        }
        0b01 => {
            if bytes.len() < CHANNEL_HEADER {
                return Ok(None);
            }
            let channel = u16::from_be_bytes([bytes[0], bytes[1]]);
            if channel > 0x4FFF {
                return Err(FramingError::ReservedChannel(channel));
            }
            let size = CHANNEL_HEADER + usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            Ok(Some(Header {
                datagram: size,
                stream: size.next_multiple_of(4),
            }))
        }
        _ => Err(FramingError::UnknownKind(first)),
    }
}

/// A datagram from the TURN client, as it goes on the stream: checked, and a ChannelData message
/// padded to a multiple of 4 bytes. A ChannelData datagram may arrive padded already.
pub fn to_stream(datagram: &[u8]) -> Result<Vec<u8>, FramingError> {
    let Some(header) = header(datagram)? else {
        return Err(FramingError::TooShort(datagram.len()));
    };
    if datagram.len() < header.datagram.max(CHANNEL_HEADER) || datagram.len() > header.stream {
        return Err(FramingError::LengthMismatch {
            got: datagram.len(),
            expected: header.datagram,
        });
    }
    let mut framed = Vec::with_capacity(header.stream);
    framed.extend_from_slice(&datagram[..header.datagram]);
    framed.resize(header.stream, 0);
    Ok(framed)
}

/// Splits a byte stream from the TURN server back into messages, each as a datagram (padding
/// left out). Feed it with [`Splitter::push`], drain it with [`Splitter::next_message`] after each
/// push: it then holds at most one unfinished message besides what was pushed last.
#[derive(Debug, Default)]
pub struct Splitter {
    buffer: BytesMut,
    broken: Option<FramingError>,
}

impl Splitter {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.broken.is_none() {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The next whole message, `Ok(None)` until one is complete; an error is final (every later
    /// call returns it again), since the next message cannot be found.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FramingError> {
        if let Some(error) = &self.broken {
            return Err(error.clone());
        }
        let header = match header(&self.buffer) {
            Ok(Some(header)) => header,
            Ok(None) => return Ok(None),
            Err(error) => {
                self.buffer = BytesMut::new();
                self.broken = Some(error.clone());
                return Err(error);
            }
        };
        if self.buffer.len() < header.stream {
            // Room for the whole message at once, rather than growing by each read.
            self.buffer.reserve(header.stream - self.buffer.len());
            return Ok(None);
        }
        let message = self.buffer.split_to(header.datagram).freeze();
        self.buffer.advance(header.stream - header.datagram);
        Ok(Some(message))
    }

    /// Bytes of an unfinished message held.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// At the end of the stream: `Err` if it stopped inside a message (or was broken).
    pub fn finish(&self) -> Result<(), FramingError> {
        match &self.broken {
            Some(error) => Err(error.clone()),
            None if self.buffer.is_empty() => Ok(()),
            None => Err(FramingError::Truncated(self.buffer.len())),
        }
    }
}

/// A whole stream split at once: every message, or why it is not a sequence of whole messages.
/// What the fuzz target and its corpus replay run.
pub fn split_all(stream: &[u8]) -> Result<Vec<Bytes>, FramingError> {
    let mut splitter = Splitter::default();
    splitter.push(stream);
    let mut messages = Vec::new();
    while let Some(message) = splitter.next_message()? {
        messages.push(message);
    }
    splitter.finish()?;
    Ok(messages)
}

/// Splits `stream` whole and in reads of several sizes, and checks that every way gives the same
/// messages (or the same error), that the splitter never holds more than one message and a read,
/// and that each message goes back on a stream as it came: what the fuzz target
/// (`fuzz/fuzz_targets/turn_stream.rs`) runs and the tests replay its corpus with. A broken
/// check is a bug here, caught by `debug_assert!` (on in tests and fuzz builds).
pub fn replay(stream: &[u8]) -> Result<Vec<Bytes>, FramingError> {
    let whole = split_all(stream);
    for read in [1, 2, 3, 7, 13, 64, 1500] {
        let mut splitter = Splitter::default();
        let mut messages = Vec::new();
        let mut failed = None;
        'reading: for chunk in stream.chunks(read) {
            splitter.push(chunk);
            loop {
                match splitter.next_message() {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break 'reading;
                    }
                }
            }
            debug_assert!(splitter.pending() <= MAX_MESSAGE + read);
        }
        let pieces = match failed {
            Some(error) => Err(error),
            None => splitter.finish().map(|()| messages),
        };
        debug_assert_eq!(pieces, whole, "reads of {read}");
    }
    if let Ok(messages) = &whole {
        for message in messages {
            let framed = to_stream(message);
            debug_assert!(
                framed.as_ref().is_ok_and(|f| f.len() % 4 == 0),
                "{framed:?}"
            );
            if let Ok(framed) = framed {
                debug_assert_eq!(split_all(&framed).as_deref(), Ok(&[message.clone()][..]));
            }
        }
    }
    whole
}

/// If `datagram` is a STUN request, an error response to it naming `reason`, so that the TURN
/// client gives up on it at once rather than after its retransmissions: what the shim answers
/// when it cannot reach the server.
///
/// Mostly 500 (Server Error). But an Allocate without MESSAGE-INTEGRITY (the client's first,
/// unauthenticated attempt) gets 401 with a realm and a nonce: webrtc-rs 0.21 reports an error to
/// that first attempt under a transaction id its relayer does not match, and so waits for a
/// candidate that never comes; its authenticated second attempt then gets the 500, which it does
/// match.
pub fn error_response(datagram: &[u8], reason: &str) -> Option<Vec<u8>> {
    let header = header(datagram).ok()??;
    let message_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    let is_request = datagram[0] >> 6 == 0 && message_type & CLASS_MASK == 0;
    if !is_request || datagram.len() < STUN_HEADER || header.datagram != datagram.len() {
        return None;
    }
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let first_allocate = message_type == METHOD_ALLOCATE
        && !attribute_types(&datagram[STUN_HEADER..]).any(|t| t == ATTR_MESSAGE_INTEGRITY);
    let mut attributes = Vec::new();
    let mut error_code = vec![0, 0];
    if first_allocate {
        error_code.extend_from_slice(&[4, 1]);
        push_attribute(&mut attributes, ATTR_REALM, SHIM_REALM);
        push_attribute(&mut attributes, ATTR_NONCE, SHIM_NONCE);
    } else {
        error_code.extend_from_slice(&[5, 0]);
    }
    error_code.extend_from_slice(reason);
    let mut response = Vec::with_capacity(STUN_HEADER + 4 + error_code.len() + 3);
    response.extend_from_slice(&(message_type | CLASS_MASK).to_be_bytes());
    response.extend_from_slice(&[0, 0]);
    // The magic cookie and the transaction id, as in the request.
    response.extend_from_slice(&datagram[4..STUN_HEADER]);
    push_attribute(&mut response, ATTR_ERROR_CODE, &error_code);
    response.extend_from_slice(&attributes);
    // At most 4 + 4 + 127 + 3 + 4 + 12 + 4 + 12 bytes of attributes: it fits in a u16.
    let length = u16::try_from(response.len() - STUN_HEADER).ok()?;
    response[2..4].copy_from_slice(&length.to_be_bytes());
    Some(response)
}

/// The STUN method Allocate, as a request's message type.
const METHOD_ALLOCATE: u16 = 0x0003;
/// The STUN attribute MESSAGE-INTEGRITY.
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
/// The STUN attribute REALM.
const ATTR_REALM: u16 = 0x0014;
/// The STUN attribute NONCE.
const ATTR_NONCE: u16 = 0x0015;
/// The realm and nonce of the shim's made-up 401.
const SHIM_REALM: &[u8] = b"p2phost-shim";
const SHIM_NONCE: &[u8] = b"unreachable";

/// Appends one attribute, padded to 4 bytes. `value` is short (a reason, a realm, a nonce).
fn push_attribute(message: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    message.extend_from_slice(&kind.to_be_bytes());
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(value);
    message.resize(message.len().next_multiple_of(4), 0);
}

/// The types of the attributes in `body` (a STUN message after its header), up to the first one
/// that does not fit.
fn attribute_types(mut body: &[u8]) -> impl Iterator<Item = u16> + '_ {
    std::iter::from_fn(move || {
        let (&[t0, t1, l0, l1], rest) = body.split_first_chunk::<4>()?;
        let len = usize::from(u16::from_be_bytes([l0, l1])).next_multiple_of(4);
        body = rest.get(len..).unwrap_or(&[]);
        Some(u16::from_be_bytes([t0, t1]))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A STUN Binding request with `attributes` bytes of (zero) attributes.
    fn stun(attributes: usize) -> Vec<u8> {
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&u16::try_from(attributes).unwrap().to_be_bytes());
        message.extend_from_slice(&MAGIC_COOKIE);
        message.extend_from_slice(&[7; 12]);
        message.resize(STUN_HEADER + attributes, 0xAA);
        message
    }

    fn channel_data(channel: u16, data: &[u8]) -> Vec<u8> {
        let mut message = channel.to_be_bytes().to_vec();
        message.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        message.extend_from_slice(data);
        message
    }

    #[test]
    fn stun_goes_on_the_stream_as_it_is_and_channel_data_padded() {
        let request = stun(8);
        assert_eq!(to_stream(&request), Ok(request.clone()));
        for len in 0..9 {
            let data = vec![0x55; len];
            let message = channel_data(0x4001, &data);
            let framed = to_stream(&message).unwrap();
            assert_eq!(framed.len() % 4, 0, "{len}");
            assert_eq!(&framed[..message.len()], &message[..]);
            assert!(framed[message.len()..].iter().all(|&b| b == 0));
            // A datagram padded already is accepted and keeps its size.
            assert_eq!(to_stream(&framed), Ok(framed.clone()));
        }
    }

    #[test]
    fn bad_datagrams_are_refused() {
        assert_eq!(to_stream(&[]), Err(FramingError::TooShort(0)));
        assert_eq!(
            to_stream(&[0x00, 0x01, 0, 0]),
            Err(FramingError::TooShort(4))
        );
        assert_eq!(to_stream(&[0x80; 20]), Err(FramingError::UnknownKind(0x80)));
        assert_eq!(
            to_stream(&channel_data(0x5000, b"x")),
            Err(FramingError::ReservedChannel(0x5000))
        );
        let mut no_cookie = stun(0);
        no_cookie[4] = 0;
        assert_eq!(to_stream(&no_cookie), Err(FramingError::NoMagicCookie));
        let mut unaligned = stun(4);
        unaligned[3] = 3;
        assert_eq!(to_stream(&unaligned), Err(FramingError::UnalignedLength(3)));
        let mut long = stun(4);
        long.push(0);
        assert!(matches!(
            to_stream(&long),
            Err(FramingError::LengthMismatch { got: 25, .. })
        ));
        let short = &channel_data(0x4000, b"abcdef")[..7];
        assert!(matches!(
            to_stream(short),
            Err(FramingError::LengthMismatch { got: 7, .. })
        ));
    }

    #[test]
    fn the_stream_splits_into_the_messages_whatever_the_reads() {
        let messages = [
            stun(0),
            channel_data(0x4000, b"hello"),
            stun(12),
            channel_data(0x4FFF, &[]),
            channel_data(0x4123, &[9; 1000]),
        ];
        let stream: Vec<u8> = messages
            .iter()
            .flat_map(|m| to_stream(m).unwrap())
            .collect();
        for read in [1, 2, 3, 5, 7, 64, stream.len()] {
            let mut splitter = Splitter::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(read) {
                splitter.push(chunk);
                while let Some(message) = splitter.next_message().unwrap() {
                    out.push(message.to_vec());
                }
            }
            assert_eq!(splitter.finish(), Ok(()));
            assert_eq!(out, messages, "reads of {read}");
        }
        assert_eq!(split_all(&stream).unwrap().len(), messages.len());
    }

    #[test]
    fn a_broken_stream_stays_broken_and_a_cut_one_is_reported() {
        let mut stream = to_stream(&channel_data(0x4000, b"ok")).unwrap();
        stream.extend_from_slice(&[0xC0, 0, 0, 0]);
        stream.extend_from_slice(&stun(0));
        let mut splitter = Splitter::default();
        splitter.push(&stream);
        assert!(splitter.next_message().unwrap().is_some());
        assert_eq!(
            splitter.next_message(),
            Err(FramingError::UnknownKind(0xC0))
        );
        splitter.push(&stun(0));
        assert_eq!(
            splitter.next_message(),
            Err(FramingError::UnknownKind(0xC0))
        );
        assert_eq!(splitter.pending(), 0);

        let cut = &stun(8)[..25];
        assert_eq!(split_all(cut), Err(FramingError::Truncated(25)));
        // The largest STUN length is waited for, never refused: the splitter holds one message.
        let mut huge = stun(0);
        huge[2] = 0xFF;
        huge[3] = 0xFC;
        let mut splitter = Splitter::default();
        splitter.push(&huge);
        assert_eq!(splitter.next_message(), Ok(None));
        assert!(splitter.buffer.capacity() >= MAX_MESSAGE);
    }

    #[test]
    fn an_error_response_answers_a_request_only() {
        let request = stun(0);
        let reason = "TLS: invalid peer certificate: UnknownIssuer ".repeat(5);
        let response = error_response(&request, &reason).unwrap();
        assert_eq!(
            split_all(&response).map(|m| m.iter().map(Bytes::len).collect::<Vec<_>>()),
            Ok(vec![response.len()])
        );
        assert_eq!(&response[..2], &[0x01, 0x11], "Binding error response");
        assert_eq!(&response[4..20], &request[4..20], "same transaction");
        assert_eq!(&response[24..28], &[0, 0, 5, 0]);
        assert!(response.len() <= STUN_HEADER + 4 + 4 + MAX_REASON + 3);
        // An unauthenticated Allocate gets 401 with a realm and a nonce; an authenticated one 500.
        let mut allocate = stun(0);
        allocate[1] = 0x03;
        let response = error_response(&allocate, "down").unwrap();
        assert_eq!(&response[..2], &[0x01, 0x13], "Allocate error response");
        assert_eq!(&response[24..28], &[0, 0, 4, 1]);
        let types: Vec<u16> = attribute_types(&response[STUN_HEADER..]).collect();
        assert_eq!(types, [ATTR_ERROR_CODE, ATTR_REALM, ATTR_NONCE]);
        assert_eq!(split_all(&response).map(|m| m.len()), Ok(1));
        let mut signed = allocate.clone();
        push_attribute(&mut signed, ATTR_MESSAGE_INTEGRITY, &[0; 20]);
        signed[2..4].copy_from_slice(&24u16.to_be_bytes());
        let response = error_response(&signed, "down").unwrap();
        assert_eq!(&response[24..28], &[0, 0, 5, 0]);
        // Not for responses, indications or ChannelData.
        let mut indication = stun(0);
        indication[1] = 0x16; // Send indication: class bits 01
        assert_eq!(error_response(&indication, "x"), None);
        assert_eq!(error_response(&response, "x"), None);
        assert_eq!(error_response(&channel_data(0x4000, b"x"), "x"), None);
        // A reason cut inside a character stays valid UTF-8.
        let response = error_response(&request, &"é".repeat(100)).unwrap();
        let value_len = usize::from(u16::from_be_bytes([response[22], response[23]]));
        assert!(std::str::from_utf8(&response[28..24 + value_len]).is_ok());
    }
}
