//! Room names: the nameplate of a transfer code, a pair room named after two host ids, or any other
//! rendezvous name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest room name the server accepts; a rendezvous id (hex of a 256-bit hash) fits.
pub const MAX_ROOM_ID_LEN: usize = 64;

/// A validated room name: 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
///
/// Rooms whose name is a small decimal number without leading zeros are *nameplates*: the server
/// hands them out lowest-first through `allocate`, so transfer codes stay short.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

/// Why a string is not a valid room name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomIdError {
    /// The name is empty.
    #[error("room name is empty")]
    Empty,
    /// The name is longer than [`MAX_ROOM_ID_LEN`].
    #[error("room name is {0} bytes long; the limit is {MAX_ROOM_ID_LEN}")]
    TooLong(usize),
    /// The name holds a character outside `A-Z a-z 0-9 . _ -`.
    #[error("room name may only hold A-Z, a-z, 0-9, '.', '_' and '-'")]
    BadCharacter,
}

impl RoomId {
    /// Validates `name` as a room name.
    pub fn new(name: impl Into<String>) -> Result<Self, RoomIdError> {
        let name = name.into();
        if name.is_empty() {
            return Err(RoomIdError::Empty);
        }
        if name.len() > MAX_ROOM_ID_LEN {
            return Err(RoomIdError::TooLong(name.len()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(RoomIdError::BadCharacter);
        }
        Ok(Self(name))
    }

    /// The nameplate room for `number`.
    pub fn nameplate(number: u32) -> Self {
        Self(number.to_string())
    }

    /// The room's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a pair room (its name starts with `pair.`), which only the two hosts it is
    /// named after may join ([`super::pair_room`](mod@super::pair_room)).
    pub fn is_pair_room(&self) -> bool {
        self.0.starts_with(super::pair_room::PAIR_ROOM_PREFIX)
    }

    /// The nameplate number, when this room is one (decimal, no leading zero, fits in a `u32`).
    pub fn nameplate_number(&self) -> Option<u32> {
        let s = self.0.as_str();
        if s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

impl TryFrom<String> for RoomId {
    type Error = RoomIdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<RoomId> for String {
    fn from(value: RoomId) -> Self {
        value.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nameplates_and_rendezvous_ids() {
        assert_eq!(RoomId::new("7").map(|r| r.nameplate_number()), Ok(Some(7)));
        let hex = "a".repeat(64);
        assert_eq!(RoomId::new(hex).map(|r| r.nameplate_number()), Ok(None));
        assert_eq!(RoomId::new("07").map(|r| r.nameplate_number()), Ok(None));
        assert_eq!(
            RoomId::new("99999999999").map(|r| r.nameplate_number()),
            Ok(None)
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(RoomId::new(""), Err(RoomIdError::Empty));
        assert_eq!(RoomId::new("a".repeat(65)), Err(RoomIdError::TooLong(65)));
        for bad in ["a b", "a/b", "é", "a\0", "../x"] {
            assert_eq!(RoomId::new(bad), Err(RoomIdError::BadCharacter), "{bad:?}");
        }
    }
}
