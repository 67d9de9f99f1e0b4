//! Peer ids: the SHA-256 of a host's certificate, written so a person can read it aloud and a typo
//! is caught (Syncthing's device-id scheme).
//!
//! The 32 bytes are written in base32 (RFC 4648 alphabet, no padding: 52 characters), cut into
//! four runs of 13, each followed by a Luhn mod 32 check character (56 characters), shown in
//! eight groups of seven: `MFZWI3D-BONSGYC-…`. Parsing ignores case, dashes and spaces, reads
//! the digits 0, 1 and 8 as the letters O, I and B they are mistaken for, and refuses a wrong
//! length, a character outside the alphabet or a failed check.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The base32 alphabet of RFC 4648.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Characters of the base32 form of 32 bytes (256 bits / 5, rounded up).
const DATA_CHARS: usize = 52;
/// Each run of this many data characters gets a check character.
const RUN: usize = 13;
/// Characters of the written id, check characters included.
const ID_CHARS: usize = DATA_CHARS + DATA_CHARS / RUN;
/// Characters per dash-separated group when shown.
const GROUP: usize = 7;

/// A host's identity as its peers know it: the SHA-256 of its certificate (DER).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; 32]);

/// Why a text is not a peer id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerIdError {
    /// Too short or too long.
    #[error(
        "a peer id has {ID_CHARS} letters and digits (dashes aside), this has {0}; copy it whole from `p2phost id` on that machine"
    )]
    Length(usize),
    /// A character outside A–Z and 2–7.
    #[error("{0:?} cannot be in a peer id (only letters A-Z and digits 2-7)")]
    Character(char),
    /// A check character does not match: a typo.
    #[error("group {0} of the peer id has a typo (its check character does not match)")]
    Check(usize),
    /// The check characters match but the bits past 256 are not zero: not an id we wrote.
    #[error("this is not a peer id (its last character is impossible)")]
    Padding,
}

impl PeerId {
    /// The id of the certificate whose DER encoding is `der`.
    pub fn of_certificate(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The id of a SHA-256 certificate fingerprint (as WebRTC's SDP carries it).
    pub fn from_sha256(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The SHA-256 of the certificate.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as written, without dashes (56 characters).
    fn compact(&self) -> String {
        let data = base32(&self.0);
        let mut text = String::with_capacity(ID_CHARS);
        for run in data.as_bytes().chunks(RUN) {
            for &c in run {
                text.push(char::from(c));
            }
            text.push(char::from(luhn32(run)));
        }
        text
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let compact = self.compact();
        for (i, group) in compact.as_bytes().chunks(GROUP).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            // The alphabet is ASCII.
            f.write_str(std::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = PeerIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut chars = Vec::with_capacity(ID_CHARS);
        for c in text.chars() {
            if c == '-' || c == ' ' {
                continue;
            }
            let upper = match c.to_ascii_uppercase() {
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                other => other,
            };
            if !upper.is_ascii() || !ALPHABET.contains(&(upper as u8)) {
                return Err(PeerIdError::Character(c));
            }
            chars.push(upper as u8);
        }
        if chars.len() != ID_CHARS {
            return Err(PeerIdError::Length(chars.len()));
        }
        let mut data = Vec::with_capacity(DATA_CHARS);
        for (i, run) in chars.chunks(RUN + 1).enumerate() {
            let (body, check) = run.split_at(RUN);
            if luhn32(body) != check[0] {
                return Err(PeerIdError::Check(i + 1));
            }
            data.extend_from_slice(body);
        }
        let bytes = unbase32(&data).ok_or(PeerIdError::Padding)?;
        Ok(Self(bytes))
    }
}

impl serde::Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PeerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Base32 of 32 bytes: 52 characters, the last one carrying 1 bit of data and 4 zero bits.
fn base32(bytes: &[u8; 32]) -> String {
    let mut out = String::with_capacity(DATA_CHARS);
    let mut buffer: u16 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 31)]));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

/// The 32 bytes of 52 base32 characters, or `None` when the unused low bits are not zero.
fn unbase32(chars: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut filled = 0;
    let mut buffer: u16 = 0;
    let mut bits = 0;
    for &c in chars {
        let value = ALPHABET.iter().position(|&a| a == c)?;
        buffer = (buffer << 5) | value as u16;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            if filled == out.len() {
                return None;
            }
            out[filled] = (buffer >> bits) as u8;
            filled += 1;
        }
        buffer &= (1 << bits) - 1;
    }
    (filled == out.len() && buffer == 0).then_some(out)
}

/// The Luhn mod N check character of `run` over the base32 alphabet (N = 32).
fn luhn32(run: &[u8]) -> u8 {
    let n = ALPHABET.len() as u32;
    let mut factor = 1;
    let mut sum = 0;
    for &c in run {
        let code = ALPHABET.iter().position(|&a| a == c).unwrap_or(0) as u32;
        let addend = factor * code;
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / n + addend % n;
    }
    let remainder = sum % n;
    ALPHABET[((n - remainder) % n) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seed: u8) -> PeerId {
        PeerId::of_certificate(&[seed; 300])
    }

    #[test]
    fn it_reads_back_what_it_writes_in_eight_groups_of_seven() {
        for seed in 0..=255 {
            let id = id(seed);
            let text = id.to_string();
            assert_eq!(text.len(), 8 * 7 + 7, "{text}");
            assert!(text.split('-').all(|g| g.len() == 7), "{text}");
            assert_eq!(text.parse::<PeerId>(), Ok(id));
            // Case, spaces and missing dashes do not matter.
            let sloppy = text.to_lowercase().replace('-', " ");
            assert_eq!(sloppy.parse::<PeerId>(), Ok(id));
        }
    }

    #[test]
    fn the_bytes_are_the_certificates_sha256() {
        let der = b"certificate";
        let id = PeerId::of_certificate(der);
        let digest: [u8; 32] = Sha256::digest(der).into();
        assert_eq!(id.sha256(), &digest);
        assert_eq!(PeerId::from_sha256(digest), id);
        // Known answer: base32 of the all-zero digest is all A's, and each check of AAAA… is A.
        assert_eq!(PeerId::from_sha256([0; 32]).compact(), "A".repeat(56));
    }

    #[test]
    fn syncthings_example_device_id_reads_and_writes_back() {
        // The same scheme as Syncthing's device ids: its documented example passes our checks.
        let text = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
        let id: PeerId = text.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.to_string(), text);
        // Digits mistaken for letters are read as the letters.
        let misread = text.replace("IOI", "101");
        assert_eq!(misread.parse::<PeerId>(), Ok(id));
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let text = id(7).compact();
        for position in 0..text.len() {
            for &replacement in ALPHABET {
                let mut typo = text.clone().into_bytes();
                if typo[position] == replacement {
                    continue;
                }
                typo[position] = replacement;
                let typo = String::from_utf8(typo).unwrap_or_default();
                assert!(
                    typo.parse::<PeerId>().is_err(),
                    "{typo} (position {position}) was accepted"
                );
            }
        }
    }

    #[test]
    fn swapping_two_neighbouring_data_characters_is_caught() {
        // Luhn catches a swap of two neighbours inside a run, except of the pair A and 7 (as
        // base-10 Luhn misses 0 and 9); a swap with the check character itself can pass.
        for seed in 0..32 {
            let text = id(seed).compact().into_bytes();
            for run in 0..DATA_CHARS / RUN {
                for i in run * (RUN + 1)..run * (RUN + 1) + RUN - 1 {
                    let pair = [text[i], text[i + 1]];
                    if pair[0] == pair[1] || pair == *b"A7" || pair == *b"7A" {
                        continue;
                    }
                    let mut swapped = text.clone();
                    swapped.swap(i, i + 1);
                    let swapped = String::from_utf8(swapped).unwrap_or_default();
                    assert!(swapped.parse::<PeerId>().is_err(), "{swapped}");
                }
            }
        }
    }

    #[test]
    fn bad_text_says_what_is_wrong() {
        let good = id(1).to_string();
        assert_eq!("".parse::<PeerId>(), Err(PeerIdError::Length(0)));
        assert_eq!(
            good[..good.len() - 1].parse::<PeerId>(),
            Err(PeerIdError::Length(55))
        );
        assert_eq!(
            format!("{good}A").parse::<PeerId>(),
            Err(PeerIdError::Length(57))
        );
        let mut bad = good.clone();
        bad.replace_range(0..1, "9");
        assert_eq!(bad.parse::<PeerId>(), Err(PeerIdError::Character('9')));
        let mut bad = good.clone();
        bad.replace_range(0..1, "é");
        assert_eq!(bad.parse::<PeerId>(), Err(PeerIdError::Character('é')));
    }

    #[test]
    fn a_nonzero_padding_bit_is_refused_even_with_good_checks() {
        // The 52nd data character carries one bit: make it 'B' (low bits not zero) and recompute
        // the last check character.
        let mut text = PeerId::from_sha256([0; 32]).compact().into_bytes();
        text[3 * (RUN + 1) + RUN - 1] = b'B';
        let last_run = 3 * (RUN + 1);
        let check = luhn32(&text[last_run..last_run + RUN]);
        text[last_run + RUN] = check;
        let text = String::from_utf8(text).unwrap_or_default();
        assert_eq!(text.parse::<PeerId>(), Err(PeerIdError::Padding));
    }

    #[test]
    fn serde_writes_and_reads_the_text_form() {
        let id = id(3);
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(json, format!("\"{id}\""));
        let back: PeerId = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, id);
        assert!(serde_json::from_str::<PeerId>("\"ABC\"").is_err());
    }
}
