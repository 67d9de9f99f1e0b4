//! The sans-IO heart of the server: connections, rooms and bounds, with no sockets and no clock.
//!
//! The caller feeds it what happened ([`Hub::connect`], [`Hub::handle`], [`Hub::disconnect`],
//! [`Hub::handle_timeout`]) with the current time, and carries out the [`Output`]s it pushes: frames
//! to send and connections to close. Relayed payloads pass through untouched and are never kept.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::pair_room::{HostHash, HostProof, Nonce, ProofError, check_pair_join, encode_host};
use super::per_source::PerSource;
use super::rate::TokenBucket;
use super::{
    AdvertisedLimits, ClientMessage, ErrorKind, FrameError, Limits, PROTOCOL_VERSION, RoomId,
    ServerMessage,
};

/// Addresses the nameplate-join cap keeps a bucket for at once; past it they share one.
const NAMEPLATE_JOIN_SOURCES: usize = 65_536;

/// Names one connection for the lifetime of a [`Hub`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What arrived on a connection.
#[derive(Debug)]
pub enum Inbound {
    /// A text frame, decoded (or not) with [`ClientMessage::decode`].
    Text(Result<ClientMessage, FrameError>),
    /// A binary frame.
    Binary,
    /// A frame the transport refused unread because it was far over the size bound.
    Oversize,
    /// A ping or pong: proof of life that still counts against the rate bound.
    Control,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to `conn`.
    Send {
        /// The receiving connection.
        conn: ConnId,
        /// The frame.
        message: ServerMessage,
    },
    /// Close `conn` with a close frame, after the frames queued before this.
    Close {
        /// The connection to close.
        conn: ConnId,
        /// The WebSocket close code.
        code: u16,
        /// The close reason (the error kind's wire name).
        reason: &'static str,
    },
}

/// A connection refused at the door: send `message`, then close with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error frame to send.
    pub message: ServerMessage,
    /// Its kind.
    pub kind: ErrorKind,
}

#[derive(Debug)]
struct Conn {
    ip: IpAddr,
    /// Sent in `welcome`; a `prove` on this connection must sign it.
    nonce: Nonce,
    /// The host this connection proved to be, once it has.
    host: Option<HostHash>,
    greeted: bool,
    rooms: Vec<RoomId>,
    last_active: Instant,
    bucket: TokenBucket,
}

#[derive(Debug)]
struct Room {
    members: Vec<ConnId>,
    /// In a pair room, the host each member proved to be.
    hosts: Vec<(ConnId, HostHash)>,
    expires: Instant,
}

/// Rooms and connections, and the rules that bind them.
#[derive(Debug)]
pub struct Hub {
    limits: Limits,
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<RoomId, Room>,
    /// Nameplate numbers in use, so `allocate` finds the lowest free one.
    nameplates: BTreeSet<u32>,
    per_ip: HashMap<IpAddr, usize>,
    /// Nameplate joins per address (`max_nameplate_joins_per_min`).
    nameplate_joins: PerSource,
    next_conn: u64,
    shutting_down: bool,
}

impl Hub {
    /// An empty hub enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        let per_min = f64::from(limits.max_nameplate_joins_per_min.max(1));
        Self {
            nameplate_joins: PerSource::new(per_min / 60.0, per_min, NAMEPLATE_JOIN_SOURCES),
            limits,
            conns: HashMap::new(),
            rooms: HashMap::new(),
            nameplates: BTreeSet::new(),
            per_ip: HashMap::new(),
            next_conn: 0,
            shutting_down: false,
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Rooms open now.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// A new connection from `ip`, or the reason it is refused. `nonce` goes into its `welcome`:
    /// the caller draws it at random ([`Nonce::random`]), fresh for each connection, so that a
    /// pair-room proof made for one connection is worth nothing on any other.
    pub fn connect(&mut self, ip: IpAddr, nonce: Nonce, now: Instant) -> Result<ConnId, Refusal> {
        if self.shutting_down {
            return Err(refusal(
                ErrorKind::ShuttingDown,
                None,
                "the server is shutting down; connect again in a moment".into(),
            ));
        }
        if self.conns.len() >= self.limits.max_connections {
            return Err(refusal(
                ErrorKind::TooManyConnections,
                Some("max_connections"),
                format!(
                    "the server holds its limit of {} connections; try again later",
                    self.limits.max_connections
                ),
            ));
        }
        let ip = address_group(ip);
        let from_ip = self.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.limits.max_connections_per_ip {
            return Err(refusal(
                ErrorKind::TooManyConnections,
                Some("max_connections_per_ip"),
                format!(
                    "{ip} has {} connections open, the limit per address; close some first",
                    self.limits.max_connections_per_ip
                ),
            ));
        }
        *from_ip += 1;
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                ip,
                nonce,
                host: None,
                greeted: false,
                rooms: Vec::new(),
                last_active: now,
                bucket: TokenBucket::new(self.limits.max_messages_per_sec, now),
            },
        );
        Ok(id)
    }

    /// A frame arrived on `conn`.
    pub fn handle(&mut self, conn: ConnId, inbound: Inbound, now: Instant, out: &mut Vec<Output>) {
        let Some(state) = self.conns.get_mut(&conn) else {
            // Closed already; frames still in flight are dropped.
            return;
        };
        state.last_active = now;
        if !state.bucket.take(now) {
            let rate = self.limits.max_messages_per_sec;
            let message = format!("more than {rate} frames per second; slow down and reconnect");
            return self.fail(
                conn,
                ErrorKind::RateLimited,
                Some("max_messages_per_sec"),
                message,
                out,
            );
        }
        let greeted = state.greeted;
        match inbound {
            Inbound::Control => {}
            Inbound::Binary => self.fail(
                conn,
                ErrorKind::BinaryFrame,
                None,
                "binary frames are not part of the protocol; send JSON text frames".into(),
                out,
            ),
            Inbound::Oversize | Inbound::Text(Err(FrameError::TooLarge { .. })) => {
                let limit = self.limits.max_frame_bytes;
                let message = format!("frame over the limit of {limit} bytes; send smaller frames");
                self.fail(
                    conn,
                    ErrorKind::FrameTooLarge,
                    Some("max_frame_bytes"),
                    message,
                    out,
                );
            }
            Inbound::Text(Err(FrameError::Invalid(why))) => {
                let message = format!("{why}; see signaling/PROTOCOL.md for the frames");
                self.fail(conn, ErrorKind::BadFrame, None, message, out);
            }
            Inbound::Text(Ok(message)) if !greeted => self.greet(conn, message, out),
            Inbound::Text(Ok(message)) => self.dispatch(conn, message, now, out),
        }
    }

    fn greet(&mut self, conn: ConnId, message: ClientMessage, out: &mut Vec<Output>) {
        match message {
            ClientMessage::Hello { version } if version == PROTOCOL_VERSION => {
                let Some(state) = self.conns.get_mut(&conn) else {
                    return;
                };
                state.greeted = true;
                let limits = &self.limits;
                let welcome = ServerMessage::Welcome {
                    version: PROTOCOL_VERSION,
                    nonce: Some(state.nonce),
                    limits: AdvertisedLimits {
                        max_frame_bytes: limits.max_frame_bytes,
                        max_messages_per_sec: limits.max_messages_per_sec,
                        max_rooms_per_connection: limits.max_rooms_per_connection,
                        max_members_per_room: limits.max_members_per_room,
                        idle_timeout_secs: limits.idle_timeout_secs,
                        room_ttl_secs: limits.room_ttl_secs,
                    },
                };
                out.push(Output::Send {
                    conn,
                    message: welcome,
                });
            }
            ClientMessage::Hello { version } => {
                let message = format!(
                    "protocol version {version} is not spoken here; this server speaks version \
                     {PROTOCOL_VERSION}: upgrade the client or the server"
                );
                self.fail(conn, ErrorKind::VersionMismatch, None, message, out);
            }
            _ => self.fail(
                conn,
                ErrorKind::HelloRequired,
                None,
                format!(
                    "the first frame must be {{\"type\":\"hello\",\"version\":{PROTOCOL_VERSION}}}"
                ),
                out,
            ),
        }
    }

    fn dispatch(
        &mut self,
        conn: ConnId,
        message: ClientMessage,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        match message {
            ClientMessage::Hello { .. } => {
                let message = "hello was sent twice; send it once, first".to_owned();
                self.fail(conn, ErrorKind::BadFrame, None, message, out);
            }
            ClientMessage::Allocate { id } => self.allocate(conn, id, now, out),
            ClientMessage::Join { room, id, peer } => {
                self.join(conn, room, id, peer.as_deref(), now, out);
            }
            ClientMessage::Prove {
                certificate,
                signature,
                id,
            } => self.prove(
                conn,
                HostProof {
                    certificate,
                    signature,
                },
                id,
                out,
            ),
            ClientMessage::Send { room, payload, id } => self.relay(conn, room, payload, id, out),
            ClientMessage::Leave { room, id } => {
                if !self.leave_room(conn, &room, out) {
                    return not_in_room(conn, room, id, out);
                }
                out.push(Output::Send {
                    conn,
                    message: ServerMessage::Left { room, id },
                });
            }
        }
    }

    /// Checks the bounds that a new room membership for `conn` must respect; fails `conn` past one.
    fn may_take_room(
        &mut self,
        conn: ConnId,
        room: Option<&RoomId>,
        creates: bool,
        id: Option<u64>,
        out: &mut Vec<Output>,
    ) -> bool {
        let in_rooms = self.conns.get(&conn).map_or(0, |c| c.rooms.len());
        let limit = self.limits.max_rooms_per_connection;
        let (kind, bound, message) = if in_rooms >= limit {
            (
                ErrorKind::TooManyRooms,
                "max_rooms_per_connection",
                format!("this connection is in {limit} rooms, the limit; leave one first"),
            )
        } else if creates && self.rooms.len() >= self.limits.max_rooms {
            let limit = self.limits.max_rooms;
            (
                ErrorKind::ServerFull,
                "max_rooms",
                format!("the server holds its limit of {limit} rooms; try again later"),
            )
        } else {
            return true;
        };
        self.fail_request(conn, kind, Some(bound), room.cloned(), id, message, out);
        false
    }

    fn allocate(&mut self, conn: ConnId, id: Option<u64>, now: Instant, out: &mut Vec<Output>) {
        if !self.may_take_room(conn, None, true, id, out) {
            return;
        }
        let Some(number) = self.lowest_free_nameplate() else {
            let message = "no nameplate is free; try again later".to_owned();
            let kind = ErrorKind::ServerFull;
            return self.fail_request(conn, kind, Some("max_rooms"), None, id, message, out);
        };
        let room = RoomId::nameplate(number);
        self.create_room(conn, room.clone(), now);
        out.push(Output::Send {
            conn,
            // The server fills in `turn` on the way out (see `server::state`).
            message: ServerMessage::Allocated {
                room,
                id,
                turn: None,
            },
        });
    }

    fn join(
        &mut self,
        conn: ConnId,
        room: RoomId,
        id: Option<u64>,
        peer: Option<&str>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if self
            .rooms
            .get(&room)
            .is_some_and(|r| r.members.contains(&conn))
        {
            out.push(Output::Send {
                conn,
                message: ServerMessage::room_error(
                    ErrorKind::AlreadyInRoom,
                    room.clone(),
                    id,
                    format!("already a member of room {room}"),
                ),
            });
            return;
        }
        let exists = self.rooms.contains_key(&room);
        if !self.may_take_room(conn, Some(&room), !exists, id, out) {
            return;
        }
        let Some((ip, proved)) = self.conns.get(&conn).map(|c| (c.ip, c.host)) else {
            return;
        };
        if room.nameplate_number().is_some() && !self.nameplate_joins.take(ip, now) {
            let per_min = self.limits.max_nameplate_joins_per_min;
            let message = format!(
                "{ip} joined more than {per_min} nameplates in a minute, the limit per address; \
                 wait a minute (a transfer code is good for one receiver)"
            );
            let (kind, bound) = (
                ErrorKind::TooManyNameplateJoins,
                "max_nameplate_joins_per_min",
            );
            return self.fail_request(conn, kind, Some(bound), Some(room), id, message, out);
        }
        let host = match check_pair_join(&room, proved.as_ref(), peer) {
            Ok(host) => host,
            Err(e) => {
                let kind = ErrorKind::BadProof;
                return self.fail_request(conn, kind, None, Some(room), id, e.to_string(), out);
            }
        };
        if let Some(host) = host {
            self.take_seat_back(&room, &host, out);
        }
        let Some(members) = self.rooms.get(&room).map(|r| r.members.clone()) else {
            self.create_room(conn, room.clone(), now);
            if let (Some(host), Some(r)) = (host, self.rooms.get_mut(&room)) {
                r.hosts.push((conn, host));
            }
            out.push(Output::Send {
                conn,
                message: ServerMessage::Joined {
                    room,
                    members: 1,
                    id,
                    turn: None,
                },
            });
            return;
        };
        let limit = self.limits.max_members_per_room;
        if members.len() >= limit {
            let message = format!(
                "room {room} already has {limit} members; the code may have been used already, \
                 ask the sender for a new one"
            );
            let (kind, bound) = (ErrorKind::RoomFull, "max_members_per_room");
            return self.fail_request(conn, kind, Some(bound), Some(room), id, message, out);
        }
        for &other in &members {
            out.push(Output::Send {
                conn: other,
                message: ServerMessage::PeerJoined { room: room.clone() },
            });
        }
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.push(conn);
            if let Some(host) = host {
                r.hosts.push((conn, host));
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.push(room.clone());
        }
        out.push(Output::Send {
            conn,
            message: ServerMessage::Joined {
                room,
                members: members.len() + 1,
                id,
                turn: None,
            },
        });
    }

    /// `conn` proves which host it is: at most one signature is verified per connection, since
    /// a second `prove` ends it, as does one that does not verify.
    fn prove(&mut self, conn: ConnId, proof: HostProof, id: Option<u64>, out: &mut Vec<Output>) {
        let Some(state) = self.conns.get(&conn) else {
            return;
        };
        let verdict = match state.host {
            Some(_) => Err(ProofError::AlreadyProved),
            None => proof.verify(&state.nonce),
        };
        match verdict {
            Ok(host) => {
                if let Some(state) = self.conns.get_mut(&conn) {
                    state.host = Some(host);
                }
                out.push(Output::Send {
                    conn,
                    message: ServerMessage::Proved {
                        host: encode_host(&host),
                        id,
                    },
                });
            }
            Err(e) => {
                let kind = ErrorKind::BadProof;
                self.fail_request(conn, kind, None, None, id, e.to_string(), out);
            }
        }
    }

    /// A host that proved itself into a pair room where it sits already on another connection
    /// (one that died without closing, or an older process) takes its seat back: the old
    /// connection leaves the room and is told, the other host sees it leave and come back. So a
    /// pair room only ever holds its two different hosts.
    fn take_seat_back(&mut self, room: &RoomId, host: &HostHash, out: &mut Vec<Output>) {
        let Some(old) = self
            .rooms
            .get(room)
            .and_then(|r| r.hosts.iter().find(|(_, h)| h == host))
            .map(|&(c, _)| c)
        else {
            return;
        };
        if self.leave_room(old, room, out) {
            out.push(Output::Send {
                conn: old,
                message: ServerMessage::room_error(
                    ErrorKind::SeatTaken,
                    room.clone(),
                    None,
                    format!(
                        "the same host joined pair room {room} from another connection, which \
                         took this connection's seat: is this host running twice?"
                    ),
                ),
            });
        }
    }

    fn relay(
        &mut self,
        conn: ConnId,
        room: RoomId,
        payload: String,
        id: Option<u64>,
        out: &mut Vec<Output>,
    ) {
        let Some(members) = self
            .rooms
            .get(&room)
            .map(|r| &r.members)
            .filter(|m| m.contains(&conn))
        else {
            return not_in_room(conn, room, id, out);
        };
        let mut others = members.iter().copied().filter(|&m| m != conn).peekable();
        if others.peek().is_none() {
            out.push(Output::Send {
                conn,
                message: ServerMessage::room_error(
                    ErrorKind::NoPeer,
                    room.clone(),
                    id,
                    format!(
                        "nobody else is in room {room} yet; wait for peer_joined before sending"
                    ),
                ),
            });
            return;
        }
        for other in others {
            out.push(Output::Send {
                conn: other,
                message: ServerMessage::Message {
                    room: room.clone(),
                    payload: payload.clone(),
                },
            });
        }
    }

    /// `conn`'s socket ended: its rooms' other members are told.
    pub fn disconnect(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(count) = self.per_ip.get_mut(&state.ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&state.ip);
            }
        }
        for room in state.rooms {
            self.remove_member(conn, &room, out);
        }
    }

    /// Ends `conn` for a bound the transport enforces (such as a slow reader).
    pub fn evict(
        &mut self,
        conn: ConnId,
        kind: ErrorKind,
        bound: &str,
        message: String,
        out: &mut Vec<Output>,
    ) {
        self.fail(conn, kind, Some(bound), message, out);
    }

    /// Expires idle connections and old rooms.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.nameplate_joins.sweep_if_due(now);
        let idle = Duration::from_secs(self.limits.idle_timeout_secs);
        let mut silent: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_active) >= idle)
            .map(|(&id, _)| id)
            .collect();
        silent.sort_unstable();
        for conn in silent {
            let message = format!(
                "no frame for {} s; send a ping at least that often",
                self.limits.idle_timeout_secs
            );
            self.fail(
                conn,
                ErrorKind::IdleTimeout,
                Some("idle_timeout_secs"),
                message,
                out,
            );
        }

        let mut expired: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        expired.sort_unstable();
        for room in expired {
            let Some(state) = self.rooms.remove(&room) else {
                continue;
            };
            if let Some(n) = room.nameplate_number() {
                self.nameplates.remove(&n);
            }
            for member in state.members {
                if let Some(c) = self.conns.get_mut(&member) {
                    c.rooms.retain(|r| r != &room);
                }
                out.push(Output::Send {
                    conn: member,
                    message: ServerMessage::Error {
                        kind: ErrorKind::RoomExpired,
                        message: format!(
                            "room {room} lived {} s, its limit, and was removed; start again",
                            self.limits.room_ttl_secs
                        ),
                        bound: Some("room_ttl_secs".into()),
                        room: Some(room.clone()),
                        id: None,
                        fatal: false,
                    },
                });
            }
        }
    }

    /// The earliest instant at which [`Hub::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = Duration::from_secs(self.limits.idle_timeout_secs);
        let conns = self.conns.values().map(|c| c.last_active + idle);
        let rooms = self.rooms.values().map(|r| r.expires);
        conns.chain(rooms).min()
    }

    /// Refuses new connections from now on and closes every open one.
    pub fn shutdown(&mut self, out: &mut Vec<Output>) {
        self.shutting_down = true;
        let mut all: Vec<ConnId> = self.conns.keys().copied().collect();
        all.sort_unstable();
        for conn in all {
            self.conns.remove(&conn);
            out.push(Output::Close {
                conn,
                code: ErrorKind::ShuttingDown.close_code(),
                reason: ErrorKind::ShuttingDown.as_str(),
            });
        }
        self.rooms.clear();
        self.nameplates.clear();
        self.per_ip.clear();
    }

    fn fail(
        &mut self,
        conn: ConnId,
        kind: ErrorKind,
        bound: Option<&str>,
        message: String,
        out: &mut Vec<Output>,
    ) {
        let error = ServerMessage::fatal_error(kind, bound, message);
        self.fail_with(conn, kind, error, out);
    }

    /// Fails the request `id` about `room`: the error frame names both, so the client can match it.
    #[allow(clippy::too_many_arguments)]
    fn fail_request(
        &mut self,
        conn: ConnId,
        kind: ErrorKind,
        bound: Option<&str>,
        room: Option<RoomId>,
        id: Option<u64>,
        message: String,
        out: &mut Vec<Output>,
    ) {
        let mut error = ServerMessage::fatal_error(kind, bound, message);
        if let ServerMessage::Error {
            room: error_room,
            id: error_id,
            ..
        } = &mut error
        {
            *error_room = room;
            *error_id = id;
        }
        self.fail_with(conn, kind, error, out);
    }

    fn fail_with(
        &mut self,
        conn: ConnId,
        kind: ErrorKind,
        error: ServerMessage,
        out: &mut Vec<Output>,
    ) {
        if !self.conns.contains_key(&conn) {
            // Closed already: nothing to tell, nothing to count.
            return;
        }
        out.push(Output::Send {
            conn,
            message: error,
        });
        out.push(Output::Close {
            conn,
            code: kind.close_code(),
            reason: kind.as_str(),
        });
        self.disconnect(conn, out);
    }

    fn lowest_free_nameplate(&self) -> Option<u32> {
        let mut candidate = 1u32;
        for &used in &self.nameplates {
            if used > candidate {
                break;
            }
            if used == candidate {
                candidate = candidate.checked_add(1)?;
            }
        }
        Some(candidate)
    }

    fn create_room(&mut self, conn: ConnId, room: RoomId, now: Instant) {
        if let Some(n) = room.nameplate_number() {
            self.nameplates.insert(n);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.push(room.clone());
        }
        self.rooms.insert(
            room,
            Room {
                members: vec![conn],
                hosts: Vec::new(),
                expires: now + Duration::from_secs(self.limits.room_ttl_secs),
            },
        );
    }

    /// Takes `conn` out of `room`; `false` when it was not a member.
    fn leave_room(&mut self, conn: ConnId, room: &RoomId, out: &mut Vec<Output>) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let before = c.rooms.len();
        c.rooms.retain(|r| r != room);
        if c.rooms.len() == before {
            return false;
        }
        self.remove_member(conn, room, out);
        true
    }

    fn remove_member(&mut self, conn: ConnId, room: &RoomId, out: &mut Vec<Output>) {
        let Some(state) = self.rooms.get_mut(room) else {
            return;
        };
        state.members.retain(|&m| m != conn);
        state.hosts.retain(|&(m, _)| m != conn);
        if state.members.is_empty() {
            self.rooms.remove(room);
            if let Some(n) = room.nameplate_number() {
                self.nameplates.remove(&n);
            }
            return;
        }
        for &other in &state.members {
            out.push(Output::Send {
                conn: other,
                message: ServerMessage::PeerLeft { room: room.clone() },
            });
        }
    }
}

/// The address that per-address bounds count: an IPv4 address, or the /64 network of an IPv6
/// address, since one IPv6 host commonly holds a whole /64.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !((1u128 << 64) - 1),
            )),
        },
    }
}

fn refusal(kind: ErrorKind, bound: Option<&str>, message: String) -> Refusal {
    Refusal {
        message: ServerMessage::fatal_error(kind, bound, message),
        kind,
    }
}

fn not_in_room(conn: ConnId, room: RoomId, id: Option<u64>, out: &mut Vec<Output>) {
    out.push(Output::Send {
        conn,
        message: ServerMessage::room_error(
            ErrorKind::NotInRoom,
            room.clone(),
            id,
            format!("not a member of room {room}; join it first"),
        ),
    });
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
