//! Pair rooms: the room two trusted hosts meet in, named after both their ids, that only those two
//! hosts may enter.
//!
//! A host's id is the SHA-256 of its certificate (an ECDSA P-256 certificate, DER). The room of ids
//! `a` and `b` is `pair.` and the unpadded base64url of SHA-256(tag, lower id, higher id): 48
//! characters, so every name that starts with `pair.` is reserved. Ids are public, so the name is
//! too; what keeps others out is that a connection must first *prove* which host it is: a `prove`
//! frame carries the host's certificate and a signature with its key over the connection's
//! [`Nonce`] ([`HostProof::verify`]). After that, the connection may join the pair rooms its host is
//! named in, and only those ([`check_pair_join`]). A connection proves one host, once: the server
//! verifies at most one signature per connection however many rooms it joins. A client makes a
//! proof with a [`PairKey`]. All of it is pure: bytes and the nonce in, a verdict out.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use super::RoomId;

/// What every pair-room name starts with; no other room may.
pub const PAIR_ROOM_PREFIX: &str = "pair.";

/// The largest certificate a proof may carry, DER. A P-256 certificate from rcgen is ~350 bytes.
pub const MAX_CERTIFICATE_BYTES: usize = 4096;

/// Hashed before both ids to name their room.
const ROOM_TAG: &[u8] = b"p2phost pair room v2\0";

/// Signed before the nonce, so that the signature means nothing anywhere else.
const PROOF_TAG: &[u8] = b"p2phost signaling host proof v1\0";

/// Longest DER ECDSA P-256 signature (two 33-byte integers and their headers).
const MAX_SIGNATURE_BYTES: usize = 72;

/// Base64 characters of 32 bytes without padding.
const HASH_B64_CHARS: usize = 43;

/// A host id as the signaling server sees it: the SHA-256 of the host's certificate.
pub type HostHash = [u8; 32];

/// The room the hosts with ids `a` and `b` meet in; the same whichever side computes it.
pub fn pair_room(a: &HostHash, b: &HostHash) -> RoomId {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut input = Vec::with_capacity(ROOM_TAG.len() + 64);
    input.extend_from_slice(ROOM_TAG);
    input.extend_from_slice(low);
    input.extend_from_slice(high);
    let name = format!(
        "{PAIR_ROOM_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(digest(&SHA256, &input))
    );
    // 5 + 43 characters of [A-Za-z0-9._-]: always a valid room name.
    RoomId::new(name).unwrap_or_else(|_| RoomId::nameplate(0))
}

/// A host id as it travels: 43 characters of unpadded base64url.
pub fn encode_host(host: &HostHash) -> String {
    URL_SAFE_NO_PAD.encode(host)
}

/// 32 random bytes the server picks for each connection and sends in `welcome`; a proof signs
/// it, so the proof is good on that connection only.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; 32]);

impl Nonce {
    /// A fresh nonce from the operating system's generator.
    pub fn random() -> Result<Self, ProofError> {
        let bytes: [u8; 32] = ring::rand::generate(&SystemRandom::new())
            .map_err(|_| ProofError::Random)?
            .expose();
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl Serialize for Nonce {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        decode_hash(&text)
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom("nonce is not 32 bytes of unpadded base64url"))
    }
}

/// What a `prove` frame carries, both fields unpadded base64url. They are checked by
/// [`HostProof::verify`], not when the frame is read, so that the error says which one is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProof {
    /// The host's certificate, DER.
    pub certificate: String,
    /// ECDSA P-256 SHA-256 signature (ASN.1 DER) by the certificate's key over
    /// [`signed_message`] of the connection's nonce.
    pub signature: String,
}

/// Why a proof or a pair-room join was refused, or a proof could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// A pair room joined on a connection that has not proved its host.
    #[error(
        "room {0} is a pair room: send `prove` (the host's certificate and a signature over this \
         connection's nonce) before joining it; see signaling/PROTOCOL.md"
    )]
    NotProved(RoomId),
    /// A pair room joined without naming the other host.
    #[error("joining pair room {0} needs `peer`: the id of the host to meet there")]
    NoPeer(RoomId),
    /// `peer` given for a room that is not a pair room.
    #[error("room {0} is not a pair room (pair.…): join it without `peer`")]
    NotAPairRoom(RoomId),
    /// A second `prove` on one connection.
    #[error("this connection proved its host already; one host per connection, proved once")]
    AlreadyProved,
    /// A field is not unpadded base64url, or has the wrong length.
    #[error("field {field} is not valid: {why}")]
    Field {
        /// `certificate`, `signature` or `peer`.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The proved host and the other id are the same host.
    #[error("a host cannot pair with itself: `peer` is this connection's own host")]
    SameHost,
    /// The proved host and the other id do not name this room.
    #[error(
        "this connection's host and `peer` name another room than {0}: only the two hosts a \
         pair room is named after may join it"
    )]
    WrongRoom(RoomId),
    /// The certificate is not a readable X.509 certificate.
    #[error("the certificate cannot be read: {0}")]
    Certificate(String),
    /// The signature does not verify with the certificate's key over this connection's nonce.
    #[error(
        "the signature does not verify with the certificate's key over this connection's nonce: \
         sign the nonce of this connection's welcome"
    )]
    Signature,
    /// The certificate's key is not ECDSA P-256.
    #[error("the certificate does not hold an ECDSA P-256 key")]
    KeyType,
    /// [`PairKey::new`] was given a key it cannot use.
    #[error("cannot sign host proofs with this key: {0}")]
    Key(String),
    /// The operating system's random generator failed.
    #[error("the system's random number generator failed")]
    Random,
}

/// The bytes a proof signs: a tag, then the connection's nonce.
pub fn signed_message(nonce: &Nonce) -> Vec<u8> {
    let mut message = Vec::with_capacity(PROOF_TAG.len() + 32);
    message.extend_from_slice(PROOF_TAG);
    message.extend_from_slice(&nonce.0);
    message
}

impl HostProof {
    /// The host this proof proves on the connection that was sent `nonce`: the SHA-256 of a
    /// certificate whose key signed the nonce.
    pub fn verify(&self, nonce: &Nonce) -> Result<HostHash, ProofError> {
        let certificate = decode_bounded(
            "certificate",
            &self.certificate,
            MAX_CERTIFICATE_BYTES,
            "a DER certificate",
        )?;
        let signature = decode_bounded(
            "signature",
            &self.signature,
            MAX_SIGNATURE_BYTES,
            "an ECDSA P-256 signature",
        )?;
        let der = CertificateDer::from(certificate.as_slice());
        let parsed = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| ProofError::Certificate(format!("{e:?}")))?;
        let message = signed_message(nonce);
        match parsed.verify_signature(webpki::ring::ECDSA_P256_SHA256, &message, &signature) {
            Ok(()) => Ok(sha256(&certificate)),
            Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => {
                Err(ProofError::KeyType)
            }
            Err(_) => Err(ProofError::Signature),
        }
    }
}

/// Whether a connection that proved `host` (if it did) may join `room` to meet `peer` (if
/// given): a pair room needs a proved host and the peer that, with it, names the room; any other
/// room refuses a `peer`. The host the connection sits in the room as, for a pair room.
pub fn check_pair_join(
    room: &RoomId,
    host: Option<&HostHash>,
    peer: Option<&str>,
) -> Result<Option<HostHash>, ProofError> {
    if !room.is_pair_room() {
        return match peer {
            None => Ok(None),
            Some(_) => Err(ProofError::NotAPairRoom(room.clone())),
        };
    }
    let host = host.ok_or_else(|| ProofError::NotProved(room.clone()))?;
    let peer = peer.ok_or_else(|| ProofError::NoPeer(room.clone()))?;
    let peer = decode_hash(peer).ok_or_else(|| ProofError::Field {
        field: "peer",
        why: format!("expected {HASH_B64_CHARS} base64url characters (32 bytes)"),
    })?;
    if *host == peer {
        return Err(ProofError::SameHost);
    }
    if pair_room(host, &peer) != *room {
        return Err(ProofError::WrongRoom(room.clone()));
    }
    Ok(Some(*host))
}

/// A host's certificate and key, ready to prove the host to a signaling server.
pub struct PairKey {
    certificate: Vec<u8>,
    id: HostHash,
    key: EcdsaKeyPair,
    random: SystemRandom,
}

impl fmt::Debug for PairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("PairKey")
            .field("id", &encode_host(&self.id))
            .finish_non_exhaustive()
    }
}

impl PairKey {
    /// The certificate (DER) and its ECDSA P-256 private key (PKCS#8 DER).
    pub fn new(certificate_der: &[u8], key_pkcs8_der: &[u8]) -> Result<Self, ProofError> {
        if certificate_der.len() > MAX_CERTIFICATE_BYTES {
            return Err(ProofError::Key(format!(
                "the certificate is {} bytes; servers take {MAX_CERTIFICATE_BYTES} at most",
                certificate_der.len()
            )));
        }
        let random = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8_der, &random)
            .map_err(|e| ProofError::Key(format!("not an ECDSA P-256 PKCS#8 key ({e})")))?;
        let pair = Self {
            certificate: certificate_der.to_vec(),
            id: sha256(certificate_der),
            key,
            random,
        };
        // A key that is not the certificate's would make proofs every server refuses: say so now.
        let probe = pair.prove(&Nonce([0; 32]))?;
        probe.verify(&Nonce([0; 32])).map_err(|e| match e {
            ProofError::Signature => {
                ProofError::Key("the key does not belong to the certificate".into())
            }
            other => other,
        })?;
        Ok(pair)
    }

    /// This host's id: the SHA-256 of its certificate.
    pub fn id(&self) -> HostHash {
        self.id
    }

    /// A proof of this host for the connection that was sent `nonce`.
    pub fn prove(&self, nonce: &Nonce) -> Result<HostProof, ProofError> {
        let signature = self
            .key
            .sign(&self.random, &signed_message(nonce))
            .map_err(|_| ProofError::Random)?;
        Ok(HostProof {
            certificate: URL_SAFE_NO_PAD.encode(&self.certificate),
            signature: URL_SAFE_NO_PAD.encode(signature.as_ref()),
        })
    }
}

fn sha256(bytes: &[u8]) -> HostHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// 32 bytes from exactly 43 base64url characters.
fn decode_hash(text: &str) -> Option<HostHash> {
    if text.len() != HASH_B64_CHARS {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// Decodes a base64url field, refusing it unread when it is longer than `max` bytes would be.
fn decode_bounded(
    field: &'static str,
    text: &str,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, ProofError> {
    if text.len() > max.div_ceil(3) * 4 {
        return Err(ProofError::Field {
            field,
            why: format!("longer than {max} bytes, too long for {what}"),
        });
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| ProofError::Field {
            field,
            why: format!("not unpadded base64url: {e}"),
        })?;
    if bytes.is_empty() {
        return Err(ProofError::Field {
            field,
            why: "empty".into(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
#[path = "pair_room_tests.rs"]
pub(crate) mod tests;
