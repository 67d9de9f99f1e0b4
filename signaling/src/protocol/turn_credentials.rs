//! Short-lived TURN credentials the server hands out with `allocated` and `joined`, in coturn's
//! shared-secret scheme (`use-auth-secret` / `static-auth-secret`, the "TURN REST API"): the user
//! name is `EXPIRY:ID` (`EXPIRY` in Unix seconds), the password base64(HMAC-SHA1(secret, user
//! name)). A TURN server with the same secret checks the password and refuses the name once
//! `EXPIRY` has passed; it needs no list of users, and the signaling server keeps nothing.
//!
//! ```
//! use p2p_signaling::protocol::TurnCredentials;
//! let urls = vec!["turn:turn.example.org:3478".to_owned()];
//! let credentials = TurnCredentials::mint(&urls, b"north", 1_700_000_000, "c1");
//! assert_eq!(credentials.username, "1700000000:c1");
//! assert_eq!(credentials.credential, "S1l/E08S9BwozHnGL4NxeZ2Vp3Q=");
//! assert_eq!(credentials.expires(), Some(1_700_000_000));
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Most URLs a client takes from a server.
pub const MAX_TURN_URLS: usize = 8;
/// Longest URL, user name or credential a client takes from a server.
pub const MAX_TURN_FIELD: usize = 256;

/// A TURN relay's URLs and the credentials to use it, as `allocated` and `joined` carry them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnCredentials {
    /// The relay's URLs, such as `turn:turn.example.org:3478?transport=tcp`.
    pub urls: Vec<String>,
    /// `EXPIRY:ID`: the Unix time after which the relay refuses it, and an id for its logs.
    pub username: String,
    /// base64(HMAC-SHA1(secret, `username`)).
    pub credential: String,
}

impl std::fmt::Debug for TurnCredentials {
    // The credential stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl TurnCredentials {
    /// Credentials for `urls` that expire at `expiry` (Unix seconds), for the user `id`.
    pub fn mint(urls: &[String], secret: &[u8], expiry: u64, id: &str) -> Self {
        let username = format!("{expiry}:{id}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
        let tag = ring::hmac::sign(&key, username.as_bytes());
        Self {
            urls: urls.to_vec(),
            username,
            credential: STANDARD.encode(tag.as_ref()),
        }
    }

    /// When the relay stops taking them (Unix seconds), if the user name says.
    pub fn expires(&self) -> Option<u64> {
        self.username.split_once(':')?.0.parse().ok()
    }

    /// Whether a client can take these from a server: at least one URL, at most
    /// [`MAX_TURN_URLS`], no field empty or longer than [`MAX_TURN_FIELD`] bytes.
    pub fn is_reasonable(&self) -> bool {
        let fits = |s: &String| !s.is_empty() && s.len() <= MAX_TURN_FIELD;
        !self.urls.is_empty()
            && self.urls.len() <= MAX_TURN_URLS
            && self.urls.iter().all(fits)
            && fits(&self.username)
            && fits(&self.credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_coturns_scheme() {
        // Python: base64(hmac.new(b"north", b"1700000000:c1", "sha1").digest())
        let urls = vec!["turn:a:3478".to_owned()];
        let minted = TurnCredentials::mint(&urls, b"north", 1_700_000_000, "c1");
        assert_eq!(minted.credential, "S1l/E08S9BwozHnGL4NxeZ2Vp3Q=");
        assert!(minted.is_reasonable());
        assert!(!format!("{minted:?}").contains(&minted.credential));
        let mut other = minted.clone();
        other.urls = vec!["x".repeat(MAX_TURN_FIELD + 1)];
        assert!(!other.is_reasonable());
        other.urls = vec!["turn:a".to_owned(); MAX_TURN_URLS + 1];
        assert!(!other.is_reasonable());
        other.urls = Vec::new();
        assert!(!other.is_reasonable());
    }
}
