//! The server's bounds. Every bound has a default, a config key (the field name under `[limits]`)
//! and an error kind that names it when a client goes past it.

use serde::{Deserialize, Serialize};

/// Bounds the server enforces on every connection and room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest text frame a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Rooms one connection may be a member of at once.
    pub max_rooms_per_connection: usize,
    /// Members one room may hold (2 for transfer codes: sender and receiver).
    pub max_members_per_room: usize,
    /// Seconds a room lives after it was created; then its members are told and it is removed.
    pub room_ttl_secs: u64,
    /// Seconds a connection may stay silent (no frame, not even a ping) before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Connections open at once in all.
    pub max_connections: usize,
    /// Rooms open at once in all.
    pub max_rooms: usize,
    /// Frames per second a connection may send on average; a burst of one second's worth is allowed.
    pub max_messages_per_sec: u32,
    /// Frames queued for a client that does not read them before it is dropped as a slow reader.
    pub max_queued_frames: usize,
    /// Bytes queued for a client that does not read them before it is dropped as a slow reader.
    pub max_queued_bytes: usize,
    /// Seconds one write to a client may block before it is dropped as a slow reader.
    pub write_timeout_secs: u64,
    /// Joins of nameplate rooms per minute from one address (an IPv4 address or an IPv6 /64), in
    /// bursts of up to that many. A receiver joins one nameplate per transfer; a racer who joins
    /// every fresh nameplate to spend its one PAKE guess is stopped here, and counted.
    pub max_nameplate_joins_per_min: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_rooms_per_connection: 16,
            max_members_per_room: 2,
            room_ttl_secs: 3600,
            idle_timeout_secs: 120,
            max_connections_per_ip: 64,
            max_connections: 20_000,
            max_rooms: 100_000,
            max_messages_per_sec: 100,
            max_queued_frames: 256,
            max_queued_bytes: 1024 * 1024,
            write_timeout_secs: 10,
            max_nameplate_joins_per_min: 30,
        }
    }
}
