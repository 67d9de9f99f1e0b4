//! The frames of the signaling protocol: JSON text frames with a `type` field, unknown fields refused.

use serde::{Deserialize, Serialize};

use super::RoomId;
use super::pair_room::Nonce;
use super::turn_credentials::TurnCredentials;

/// The protocol version this crate speaks; the client's `hello` must name it.
pub const PROTOCOL_VERSION: u32 = 1;

/// A frame from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first frame of every connection.
    Hello {
        /// The protocol version the client speaks.
        version: u32,
    },
    /// Asks for the lowest free nameplate room and joins it.
    Allocate {
        /// Echoed in the reply, so a client can match replies to requests.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Joins a room, creating it when nobody is in it.
    Join {
        /// The room to join.
        room: RoomId,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// For a pair room (`pair.…`), and only for one: the id of the other host (43 characters
        /// of base64url), which with the host this connection proved names the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
    /// Proves which host this connection is, before it joins pair rooms: once per connection.
    Prove {
        /// The host's certificate, DER, unpadded base64url.
        certificate: String,
        /// The certificate key's ECDSA P-256 SHA-256 signature (ASN.1 DER, unpadded base64url)
        /// over the proof tag and this connection's nonce.
        signature: String,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Relays `payload` to the room's other members. The server does not look inside it.
    Send {
        /// The room, which the sender must have joined.
        room: RoomId,
        /// Opaque to the server (peers put sealed, base64-encoded data here).
        payload: String,
        /// Echoed in an error reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Leaves a room.
    Leave {
        /// The room to leave.
        room: RoomId,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

/// A frame from the server to a client. Clients ignore fields they do not know, so a newer server
/// can add some without breaking them; the server is strict about what clients send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `hello`: the version and the bounds this server enforces.
    Welcome {
        /// The protocol version the server speaks.
        version: u32,
        /// Random bytes for this connection alone, which a pair-room proof signs. Servers older
        /// than pair-room proofs send none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<Nonce>,
        /// The bounds a client must stay within.
        limits: AdvertisedLimits,
    },
    /// The answer to `allocate`: the client is now the first member of `room`.
    Allocated {
        /// The nameplate room.
        room: RoomId,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Short-lived credentials for the server's TURN relay, when it knows one (`[turn]`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<Box<TurnCredentials>>,
    },
    /// The answer to `prove`: the connection is now known as this host.
    Proved {
        /// The host's id (the SHA-256 of its certificate), unpadded base64url.
        host: String,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// The answer to `join`.
    Joined {
        /// The room joined.
        room: RoomId,
        /// Members in the room now, the client included.
        members: usize,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Short-lived credentials for the server's TURN relay, when it knows one (`[turn]`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<Box<TurnCredentials>>,
    },
    /// A payload another member of `room` sent.
    Message {
        /// The room it came through.
        room: RoomId,
        /// The payload, byte for byte as the sender gave it.
        payload: String,
    },
    /// Another member joined `room`.
    PeerJoined {
        /// The room.
        room: RoomId,
    },
    /// Another member left `room` (or its connection ended).
    PeerLeft {
        /// The room.
        room: RoomId,
    },
    /// The answer to `leave`.
    Left {
        /// The room left.
        room: RoomId,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Something went wrong; when `fatal`, the server closes the connection after this frame.
    Error {
        /// Machine-readable cause.
        kind: ErrorKind,
        /// What went wrong and what to do, for people.
        message: String,
        /// The config key of the bound that was passed, when a bound was passed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound: Option<String>,
        /// The room concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
        /// The id of the request that failed, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Whether the server closes the connection after this frame.
        fatal: bool,
    },
}

/// The bounds the server tells a client about in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertisedLimits {
    /// Largest text frame, in bytes.
    pub max_frame_bytes: usize,
    /// Frames per second, on average.
    pub max_messages_per_sec: u32,
    /// Rooms per connection.
    pub max_rooms_per_connection: usize,
    /// Members per room.
    pub max_members_per_room: usize,
    /// Seconds of silence before the server closes the connection; clients ping more often.
    pub idle_timeout_secs: u64,
    /// Seconds a room lives.
    pub room_ttl_secs: u64,
}

/// Machine-readable error kinds; the snake_case name is what goes on the wire and into `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The frame is not valid JSON, or not a known message, or has unknown or missing fields.
    BadFrame,
    /// A binary frame; the protocol is text only.
    BinaryFrame,
    /// A frame over `max_frame_bytes`.
    FrameTooLarge,
    /// The first frame was not `hello`.
    HelloRequired,
    /// `hello` named a version this server does not speak.
    VersionMismatch,
    /// A third member tried to join a room (`max_members_per_room`).
    RoomFull,
    /// The connection is in `max_rooms_per_connection` rooms already.
    TooManyRooms,
    /// The server holds `max_rooms` rooms already.
    ServerFull,
    /// `max_connections_per_ip` or `max_connections` reached.
    TooManyConnections,
    /// More frames per second than `max_messages_per_sec`.
    RateLimited,
    /// Silent for longer than `idle_timeout_secs`.
    IdleTimeout,
    /// The room lived `room_ttl_secs` and was removed.
    RoomExpired,
    /// The client did not read what the server sent it (`max_queued_frames`).
    SlowReader,
    /// Sending to, or leaving, a room the client is not in.
    NotInRoom,
    /// Joining a room the client is in already.
    AlreadyInRoom,
    /// Sending to a room with no other member to receive it.
    NoPeer,
    /// The server is shutting down.
    ShuttingDown,
    /// A `prove` that does not verify, or a pair-room join by a connection that did not prove
    /// one of the room's two hosts.
    BadProof,
    /// The same host joined the pair room from another connection, which took this one's seat.
    SeatTaken,
    /// More nameplate joins from one address than `max_nameplate_joins_per_min`.
    TooManyNameplateJoins,
}

impl ErrorKind {
    /// Every kind, so that counters for each can exist from the start.
    pub const ALL: [Self; 20] = [
        Self::BadFrame,
        Self::BinaryFrame,
        Self::FrameTooLarge,
        Self::HelloRequired,
        Self::VersionMismatch,
        Self::RoomFull,
        Self::TooManyRooms,
        Self::ServerFull,
        Self::TooManyConnections,
        Self::RateLimited,
        Self::IdleTimeout,
        Self::RoomExpired,
        Self::SlowReader,
        Self::NotInRoom,
        Self::AlreadyInRoom,
        Self::NoPeer,
        Self::ShuttingDown,
        Self::BadProof,
        Self::SeatTaken,
        Self::TooManyNameplateJoins,
    ];

    /// The wire name, as used in frames and as the `kind` label in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::BinaryFrame => "binary_frame",
            Self::FrameTooLarge => "frame_too_large",
            Self::HelloRequired => "hello_required",
            Self::VersionMismatch => "version_mismatch",
            Self::RoomFull => "room_full",
            Self::TooManyRooms => "too_many_rooms",
            Self::ServerFull => "server_full",
            Self::TooManyConnections => "too_many_connections",
            Self::RateLimited => "rate_limited",
            Self::IdleTimeout => "idle_timeout",
            Self::RoomExpired => "room_expired",
            Self::SlowReader => "slow_reader",
            Self::NotInRoom => "not_in_room",
            Self::AlreadyInRoom => "already_in_room",
            Self::NoPeer => "no_peer",
            Self::ShuttingDown => "shutting_down",
            Self::BadProof => "bad_proof",
            Self::SeatTaken => "seat_taken",
            Self::TooManyNameplateJoins => "too_many_nameplate_joins",
        }
    }

    /// The WebSocket close code the server uses when this error ends a connection.
    pub fn close_code(self) -> u16 {
        match self {
            Self::FrameTooLarge => 1009,
            Self::BinaryFrame => 1003,
            Self::ShuttingDown => 1001,
            Self::IdleTimeout => 1000,
            _ => 1008,
        }
    }
}

/// Why a text frame could not be read as a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Over the frame-size bound.
    #[error("frame of {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// `max_frame_bytes`.
        limit: usize,
    },
    /// Not JSON, not a known message, or fields unknown, missing or of the wrong type.
    #[error("not a valid signaling frame: {0}")]
    Invalid(String),
}

impl ClientMessage {
    /// Reads one text frame, refusing it unread when it is longer than `max_frame_bytes`.
    pub fn decode(text: &str, max_frame_bytes: usize) -> Result<Self, FrameError> {
        if text.len() > max_frame_bytes {
            return Err(FrameError::TooLarge {
                len: text.len(),
                limit: max_frame_bytes,
            });
        }
        serde_json::from_str(text).map_err(|e| FrameError::Invalid(e.to_string()))
    }

    /// The frame's JSON text.
    pub fn encode(&self) -> String {
        // Serializing these plain enums of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ServerMessage {
    /// Reads one text frame from the server.
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        serde_json::from_str(text).map_err(|e| FrameError::Invalid(e.to_string()))
    }

    /// The frame's JSON text.
    pub fn encode(&self) -> String {
        // Serializing these plain enums of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A fatal error frame; `bound` names the config key of the bound that was passed, if any.
    pub fn fatal_error(kind: ErrorKind, bound: Option<&str>, message: String) -> Self {
        Self::Error {
            kind,
            message,
            bound: bound.map(str::to_owned),
            room: None,
            id: None,
            fatal: true,
        }
    }

    /// A non-fatal error frame about `room`, answering request `id` if it had one.
    pub fn room_error(kind: ErrorKind, room: RoomId, id: Option<u64>, message: String) -> Self {
        Self::Error {
            kind,
            message,
            bound: None,
            room: Some(room),
            id,
            fatal: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomId {
        RoomId::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn client_frames_round_trip() {
        let frames = [
            ClientMessage::Hello { version: 1 },
            ClientMessage::Allocate { id: Some(3) },
            ClientMessage::Join {
                room: room("7"),
                id: None,
                peer: None,
            },
            ClientMessage::Join {
                room: room("pair.x"),
                id: Some(4),
                peer: Some("AAAA".into()),
            },
            ClientMessage::Prove {
                certificate: "MIIB".into(),
                signature: "MEUC".into(),
                id: Some(5),
            },
            ClientMessage::Send {
                room: room("7"),
                payload: "sealed\"bytes\n".into(),
                id: None,
            },
            ClientMessage::Leave {
                room: room("7"),
                id: Some(9),
            },
        ];
        for frame in frames {
            let text = frame.encode();
            assert_eq!(ClientMessage::decode(&text, 1024), Ok(frame), "{text}");
        }
    }

    #[test]
    fn refuses_unknown_fields_types_and_bad_rooms() {
        for bad in [
            r#"{"type":"hello","version":1,"extra":true}"#,
            r#"{"type":"shout"}"#,
            r#"{"version":1}"#,
            r#"{"type":"join","room":"../etc"}"#,
            r#"{"type":"join","room":""}"#,
            r#"{"type":"send","room":"1"}"#,
            r#"{"type":"hello","version":-1}"#,
            r#"{"type":"join","room":"pair.x","peer":7}"#,
            r#"{"type":"prove","certificate":"MIIB"}"#,
            r#"{"type":"prove","certificate":"MIIB","signature":"MEUC","host":"x"}"#,
            r#"{"type":"prove","certificate":["MIIB"],"signature":"MEUC"}"#,
            "not json",
            "",
        ] {
            assert!(
                matches!(
                    ClientMessage::decode(bad, 1024),
                    Err(FrameError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn welcome_carries_the_nonce_and_reads_without_one() {
        let welcome = ServerMessage::Welcome {
            version: 1,
            nonce: Some(Nonce([7; 32])),
            limits: AdvertisedLimits {
                max_frame_bytes: 1,
                max_messages_per_sec: 1,
                max_rooms_per_connection: 1,
                max_members_per_room: 2,
                idle_timeout_secs: 1,
                room_ttl_secs: 1,
            },
        };
        let text = welcome.encode();
        let seven = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";
        assert!(text.contains(&format!(r#""nonce":"{seven}""#)), "{text}");
        assert_eq!(ServerMessage::decode(&text), Ok(welcome));
        // A server older than pair-room proofs sends none; a mangled nonce is refused.
        let old = text.replace(&format!(r#""nonce":"{seven}","#), "");
        assert!(
            matches!(
                ServerMessage::decode(&old),
                Ok(ServerMessage::Welcome { nonce: None, .. })
            ),
            "{old}"
        );
        let bad = text.replace(seven, "BwcH");
        assert!(ServerMessage::decode(&bad).is_err(), "{bad}");
    }

    #[test]
    fn allocated_and_joined_carry_turn_credentials_and_read_without() {
        let turn = TurnCredentials::mint(&["turn:t:3478".to_owned()], b"s", 1_700_000_000, "c1");
        let joined = ServerMessage::Joined {
            room: room("7"),
            members: 2,
            id: Some(2),
            turn: Some(Box::new(turn)),
        };
        let text = joined.encode();
        assert!(
            text.contains(
                r#""turn":{"urls":["turn:t:3478"],"username":"1700000000:c1","credential":""#
            ),
            "{text}"
        );
        assert_eq!(ServerMessage::decode(&text), Ok(joined));
        // From a server that knows no relay, or an older one.
        assert!(matches!(
            ServerMessage::decode(r#"{"type":"allocated","room":"7","id":1}"#),
            Ok(ServerMessage::Allocated { turn: None, .. })
        ));
        // Mistyped credentials are refused with the frame.
        for bad in [
            r#"{"type":"joined","room":"7","members":1,"turn":{"urls":"turn:t","username":"u","credential":"c"}}"#,
            r#"{"type":"joined","room":"7","members":1,"turn":{"urls":["turn:t"],"username":"u"}}"#,
            r#"{"type":"allocated","room":"7","turn":"turn:t"}"#,
        ] {
            assert!(ServerMessage::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_oversize_frames_before_parsing() {
        let text = format!(
            r#"{{"type":"send","room":"1","payload":"{}"}}"#,
            "x".repeat(100)
        );
        assert_eq!(
            ClientMessage::decode(&text, 64),
            Err(FrameError::TooLarge {
                len: text.len(),
                limit: 64
            })
        );
    }

    #[test]
    fn error_frames_carry_kind_and_bound() {
        let frame = ServerMessage::fatal_error(
            ErrorKind::RateLimited,
            Some("max_messages_per_sec"),
            "x".into(),
        );
        let text = frame.encode();
        assert!(text.contains(r#""kind":"rate_limited""#), "{text}");
        assert!(text.contains(r#""bound":"max_messages_per_sec""#), "{text}");
        assert_eq!(ServerMessage::decode(&text), Ok(frame));
    }
}
