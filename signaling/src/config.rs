//! The server's configuration: a TOML file (`--config signal.toml`), overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::protocol::Limits;

/// The port the STUN responder uses when only the signaling address is given (the IANA STUN port).
pub const DEFAULT_STUN_PORT: u16 = 3478;

/// Everything `p2p-signal` can be told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the WebSocket (and `/healthz`, `/metrics`) listener; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The embedded STUN responder.
    pub stun: StunConfig,
    /// Certificate and key for `wss://`; plain `ws://` without them.
    pub tls: Option<TlsConfig>,
    /// The bounds on connections and rooms.
    pub limits: Limits,
    /// A TURN relay to hand clients short-lived credentials for; none when absent.
    pub turn: Option<TurnConfig>,
}

/// The `[turn]` table: a TURN deployment (coturn with `use-auth-secret` and the same
/// `static-auth-secret`) whose credentials each client gets when it joins a room.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    /// The relay's URLs, as clients should use them: `turn:HOST:3478`,
    /// `turn:HOST:3478?transport=tcp`, `turns:HOST:5349`.
    pub urls: Vec<String>,
    /// The secret shared with the relay (coturn's `static-auth-secret`).
    pub secret: String,
    /// How long credentials stay good, in seconds: long enough for a sender to wait for its
    /// receiver and for the transfer (the relay refuses refreshes once they expire).
    #[serde(default = "default_turn_ttl")]
    pub ttl_secs: u64,
}

/// A day, as coturn's documentation suggests for its REST credentials.
fn default_turn_ttl() -> u64 {
    86_400
}

impl std::fmt::Debug for TurnConfig {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// The `[stun]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StunConfig {
    /// Whether to answer STUN Binding requests at all.
    pub enabled: bool,
    /// UDP address to answer on; by default the signaling host on port 3478.
    pub listen: Option<SocketAddr>,
    /// Datagrams per second answered for one source address (an IPv4 address or an IPv6 /64),
    /// in bursts of up to that many; more are dropped unanswered and counted. ICE sends a handful
    /// of Binding requests per connection.
    pub max_requests_per_sec: u32,
}

/// The `[tls]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or holds unknown keys or wrong types; the message has line and column.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line, column and the offending text.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            stun: StunConfig::default(),
            tls: None,
            limits: Limits::default(),
            turn: None,
        }
    }
}

impl Default for StunConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            max_requests_per_sec: 50,
        }
    }
}

impl ServerConfig {
    /// Reads and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The UDP address of the STUN responder, or `None` when it is off.
    pub fn stun_addr(&self) -> Option<SocketAddr> {
        self.stun.enabled.then(|| {
            self.stun
                .listen
                .unwrap_or_else(|| SocketAddr::new(self.listen.ip(), DEFAULT_STUN_PORT))
        })
    }

    /// Refuses bounds that would make the server useless.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let positive = [
            ("max_frame_bytes", l.max_frame_bytes as u64),
            (
                "max_rooms_per_connection",
                l.max_rooms_per_connection as u64,
            ),
            ("max_connections_per_ip", l.max_connections_per_ip as u64),
            ("max_connections", l.max_connections as u64),
            ("max_rooms", l.max_rooms as u64),
            ("max_messages_per_sec", u64::from(l.max_messages_per_sec)),
            ("max_queued_bytes", l.max_queued_bytes as u64),
            ("idle_timeout_secs", l.idle_timeout_secs),
            ("room_ttl_secs", l.room_ttl_secs),
            ("write_timeout_secs", l.write_timeout_secs),
            (
                "max_nameplate_joins_per_min",
                u64::from(l.max_nameplate_joins_per_min),
            ),
        ];
        if self.stun.enabled && self.stun.max_requests_per_sec == 0 {
            return Err(ConfigError::Invalid(
                "stun.max_requests_per_sec is 0; it must be at least 1 (stun.enabled = false turns \
                 STUN off)"
                    .into(),
            ));
        }
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.{key} is 0; it must be at least 1"
                )));
            }
        }
        if l.max_members_per_room < 2 {
            return Err(ConfigError::Invalid(
                "limits.max_members_per_room must be at least 2, or no payload can be relayed"
                    .into(),
            ));
        }
        if l.max_queued_frames < 4 {
            // Each frame read reserves room for two replies (an error and a close) first.
            return Err(ConfigError::Invalid(
                "limits.max_queued_frames must be at least 4".into(),
            ));
        }
        if l.max_queued_bytes < 2 * l.max_frame_bytes {
            return Err(ConfigError::Invalid(
                "limits.max_queued_bytes must be at least twice limits.max_frame_bytes, so that a \
                 relayed frame always fits"
                    .into(),
            ));
        }
        const YEAR_SECS: u64 = 365 * 24 * 3600;
        for (key, value) in [
            ("idle_timeout_secs", l.idle_timeout_secs),
            ("room_ttl_secs", l.room_ttl_secs),
            ("write_timeout_secs", l.write_timeout_secs),
        ] {
            if value > YEAR_SECS {
                return Err(ConfigError::Invalid(format!(
                    "limits.{key} is over a year ({value} s); keep it at {YEAR_SECS} or less"
                )));
            }
        }
        if l.max_queued_frames > 1 << 20 {
            return Err(ConfigError::Invalid(
                "limits.max_queued_frames is over 1048576".into(),
            ));
        }
        if let Some(turn) = &self.turn {
            turn.validate()?;
        }
        if l.max_frame_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "limits.max_frame_bytes is over 16 MiB; signaling frames are small".into(),
            ));
        }
        Ok(())
    }
}

impl TurnConfig {
    /// Refuses a `[turn]` table clients could not use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::protocol::turn_credentials::{MAX_TURN_FIELD, MAX_TURN_URLS};
        if self.urls.is_empty() || self.urls.len() > MAX_TURN_URLS {
            return Err(ConfigError::Invalid(format!(
                "turn.urls needs 1 to {MAX_TURN_URLS} URLs, like [\"turn:turn.example.org:3478\"]"
            )));
        }
        for url in &self.urls {
            let scheme_ok = url.starts_with("turn:") || url.starts_with("turns:");
            if !scheme_ok || url.len() > MAX_TURN_FIELD || url.contains(char::is_whitespace) {
                return Err(ConfigError::Invalid(format!(
                    "turn.urls: {url:?} is not a TURN URL like turn:HOST:3478, \
                     turn:HOST:3478?transport=tcp or turns:HOST:5349"
                )));
            }
        }
        if self.secret.is_empty() {
            return Err(ConfigError::Invalid(
                "turn.secret is empty; use coturn's static-auth-secret".into(),
            ));
        }
        if self.ttl_secs == 0 || self.ttl_secs > 7 * 24 * 3600 {
            return Err(ConfigError::Invalid(format!(
                "turn.ttl_secs is {}; use 1 to 604800 (a week)",
                self.ttl_secs
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = ServerConfig::from_toml("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config, ServerConfig::default());
        assert_eq!(
            config.stun_addr(),
            Some("127.0.0.1:3478".parse().unwrap_or_else(|e| panic!("{e}")))
        );
    }

    #[test]
    fn reads_every_section() {
        let config = ServerConfig::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            [stun]
            listen = "0.0.0.0:3479"
            max_requests_per_sec = 7
            [tls]
            cert = "cert.pem"
            key = "key.pem"
            [limits]
            max_frame_bytes = 1024
            room_ttl_secs = 60
            max_nameplate_joins_per_min = 5
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.stun_addr().map(|a| a.port()), Some(3479));
        assert_eq!(config.limits.max_frame_bytes, 1024);
        assert_eq!(config.limits.max_members_per_room, 2);
        assert_eq!(config.limits.max_nameplate_joins_per_min, 5);
        assert_eq!(config.stun.max_requests_per_sec, 7);
        assert_eq!(config.tls.map(|t| t.key), Some(PathBuf::from("key.pem")));
    }

    #[test]
    fn reads_the_turn_table_and_refuses_a_useless_one() {
        let config = ServerConfig::from_toml(
            "[turn]\nurls = [\"turn:t.example:3478\", \"turns:t.example:5349\"]\nsecret = \"s3cret\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let turn = config.turn.unwrap_or_else(|| panic!("no [turn]"));
        assert_eq!(turn.ttl_secs, 86_400);
        assert!(!format!("{turn:?}").contains("s3cret"));
        for (text, key) in [
            ("[turn]\nurls = []\nsecret = \"s\"\n", "turn.urls"),
            (
                "[turn]\nurls = [\"http://x\"]\nsecret = \"s\"\n",
                "turn.urls",
            ),
            (
                "[turn]\nurls = [\"turn:x\"]\nsecret = \"\"\n",
                "turn.secret",
            ),
            (
                "[turn]\nurls = [\"turn:x\"]\nsecret = \"s\"\nttl_secs = 0\n",
                "turn.ttl_secs",
            ),
            ("[turn]\nurls = [\"turn:x\"]\n", "secret"),
            (
                "[turn]\nurls = [\"turn:x\"]\nsecret = \"s\"\nttl = 5\n",
                "ttl",
            ),
        ] {
            let err = ServerConfig::from_toml(text).err().map(|e| e.to_string());
            assert!(
                err.as_ref().is_some_and(|e| e.contains(key)),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err =
            ServerConfig::from_toml("listen = \"127.0.0.1:1\"\n[limits]\nmax_frame_byte = 5\n")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(err.contains("line 3, column 1"), "{err}");
        assert!(err.contains("max_frame_byte"), "{err}");

        let err = ServerConfig::from_toml("listen = \"nowhere\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn refuses_useless_bounds() {
        let err = ServerConfig::from_toml("[limits]\nmax_members_per_room = 1\n")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("max_members_per_room")));
        let err = ServerConfig::from_toml(
            "[stun]\nenabled = false\n[limits]\nmax_messages_per_sec = 0\n",
        )
        .err()
        .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("max_messages_per_sec")));
        let err = ServerConfig::from_toml("[limits]\nmax_queued_frames = 2\n")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("max_queued_frames")));
        for (text, key) in [
            (
                "[limits]\nmax_nameplate_joins_per_min = 0\n",
                "limits.max_nameplate_joins_per_min",
            ),
            (
                "[stun]\nmax_requests_per_sec = 0\n",
                "stun.max_requests_per_sec",
            ),
        ] {
            let err = ServerConfig::from_toml(text).err().map(|e| e.to_string());
            assert!(err.as_ref().is_some_and(|e| e.contains(key)), "{err:?}");
        }
        // A typo under [stun] is refused with its place, like any other key.
        let err = ServerConfig::from_toml("[stun]\nmax_request_per_sec = 5\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 2, column 1"), "{err}");
    }
}
