//! The embedded STUN responder: answers RFC 5389/8489 Binding requests with the sender's address.
//!
//! [`answer_binding`] is the whole protocol (bytes in, bytes out, no socket) on top of the STUN codec of
//! webrtc-rs (`rtc-stun`); `serve` is the UDP loop around it, which answers each source address
//! at most `stun.max_requests_per_sec` times a second, so that the responder cannot be made to send
//! one address a flood of answers (with a forged source) or to spend its CPU on one sender.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc_stun::attributes::ATTR_FINGERPRINT;
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use rtc_stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;

use crate::protocol::hub::address_group;
use crate::protocol::per_source::PerSource;
use crate::server::metrics::Metrics;

/// Source addresses the rate limit keeps a bucket for at once (~50 bytes each); a bucket is
/// forgotten a second after it refilled, and past this many busy addresses the newcomers share one.
const STUN_SOURCES: usize = 16_384;

/// Why a datagram got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// Not a STUN message, or a malformed one.
    #[error("malformed STUN message: {0}")]
    Malformed(String),
    /// A well-formed STUN message that is not a Binding request (responses, indications, other methods).
    #[error("not a Binding request")]
    NotBindingRequest,
    /// The request's FINGERPRINT does not match its bytes.
    #[error("FINGERPRINT mismatch")]
    BadFingerprint,
}

/// The Binding success response to `packet` from `from`: XOR-MAPPED-ADDRESS, plus FINGERPRINT when
/// the request carried one.
pub fn answer_binding(packet: &[u8], from: SocketAddr) -> Result<Vec<u8>, StunError> {
    // RFC 5389 §6: the top two bits are zero, which is how STUN is told apart from DTLS and RTP on a
    // shared port. The codec does not check it.
    if packet.first().is_none_or(|&b| b & 0xC0 != 0) {
        return Err(StunError::Malformed(
            "the first two bits must be zero".into(),
        ));
    }
    let mut request = Message::new();
    request
        .unmarshal_binary(packet)
        .map_err(|e| StunError::Malformed(e.to_string()))?;
    if request.typ != BINDING_REQUEST {
        return Err(StunError::NotBindingRequest);
    }
    let fingerprinted = request.contains(ATTR_FINGERPRINT);
    if fingerprinted {
        // The codec checks against the last attribute's position, so FINGERPRINT must be last, as
        // RFC 5389 §15.5 requires.
        let last_is_fingerprint = request
            .attributes
            .0
            .last()
            .is_some_and(|a| a.typ == ATTR_FINGERPRINT);
        if !last_is_fingerprint || FINGERPRINT.check(&request).is_err() {
            return Err(StunError::BadFingerprint);
        }
    }

    let mapped = XorMappedAddress {
        ip: from.ip(),
        port: from.port(),
    };
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(request.transaction_id),
        Box::new(BINDING_SUCCESS),
        Box::new(mapped),
    ];
    if fingerprinted {
        setters.push(Box::new(FINGERPRINT));
    }
    let mut response = Message::new();
    response
        .build(&setters)
        .map_err(|e| StunError::Malformed(e.to_string()))?;
    Ok(response.raw)
}

/// Answers Binding requests on `socket` until the task is dropped, at most `per_sec` a second
/// (in bursts of as many) from one source address; everything else is counted and ignored.
pub(crate) async fn serve(socket: UdpSocket, metrics: Arc<Metrics>, per_sec: u32) {
    // Larger than any STUN message a client sends; longer datagrams are cut and then fail to parse.
    let mut buf = vec![0u8; 2048];
    let rate = f64::from(per_sec.max(1));
    let mut limit = PerSource::new(rate, rate, STUN_SOURCES);
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP port-unreachable from an earlier answer shows up here on some systems.
                tracing::debug!(error = %e, "stun receive failed");
                continue;
            }
        };
        let Some(packet) = buf.get(..len) else {
            continue;
        };
        // Before parsing: a flood costs a table lookup per datagram, no more.
        let now = Instant::now();
        limit.sweep_if_due(now);
        if !limit.take(address_group(from.ip()), now) {
            metrics.stun_rate_limited.inc();
            continue;
        }
        match answer_binding(packet, from) {
            Ok(answer) => {
                metrics.stun_requests.inc();
                if let Err(e) = socket.send_to(&answer, from).await {
                    tracing::debug!(%from, error = %e, "stun answer not sent");
                }
            }
            Err(e) => {
                metrics.stun_malformed.inc();
                tracing::debug!(%from, error = %e, "stun datagram ignored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rtc_stun::message::{Getter, TransactionId};

    use super::*;

    fn request(fingerprint: bool) -> Vec<u8> {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)];
        if fingerprint {
            setters.push(Box::new(FINGERPRINT));
        }
        m.build(&setters).unwrap_or_else(|e| panic!("{e}"));
        m.raw
    }

    fn decode(bytes: &[u8]) -> Message {
        let mut m = Message::new();
        m.unmarshal_binary(bytes).unwrap_or_else(|e| panic!("{e}"));
        m
    }

    #[test]
    fn answers_with_the_xor_mapped_address() {
        let from: SocketAddr = "203.0.113.7:40000"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let req = request(false);
        let answer = decode(&answer_binding(&req, from).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(answer.typ, BINDING_SUCCESS);
        assert_eq!(answer.transaction_id, decode(&req).transaction_id);
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&answer).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(SocketAddr::new(mapped.ip, mapped.port), from);
        assert!(!answer.contains(ATTR_FINGERPRINT));
    }

    #[test]
    fn fingerprints_when_asked_and_checks_the_request() {
        let from: SocketAddr = "[2001:db8::1]:3478"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let answer =
            decode(&answer_binding(&request(true), from).unwrap_or_else(|e| panic!("{e}")));
        assert!(FINGERPRINT.check(&answer).is_ok());

        let mut tampered = request(true);
        let last = tampered.len() - 1;
        tampered[last] ^= 0xff;
        assert!(matches!(
            answer_binding(&tampered, from),
            Err(StunError::BadFingerprint)
        ));
    }

    #[test]
    fn ignores_what_is_not_a_binding_request() {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(answer_binding(b"", from).is_err());
        assert!(answer_binding(b"GET / HTTP/1.1\r\n\r\n", from).is_err());
        let response = answer_binding(&request(false), from).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            answer_binding(&response, from),
            Err(StunError::NotBindingRequest)
        ));
    }
}
