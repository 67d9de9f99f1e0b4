//! Drives the hub with several clients in one thread and virtual time.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

#[path = "hub_pair_tests.rs"]
mod pair;

struct Harness {
    hub: Hub,
    now: Instant,
    /// Each connection's nonce, as the server drew it.
    nonces: HashMap<ConnId, Nonce>,
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap_or_else(|e| panic!("{e}"))
}

impl Harness {
    fn new(limits: Limits) -> Self {
        Self {
            hub: Hub::new(limits),
            now: Instant::now(),
            nonces: HashMap::new(),
        }
    }

    /// Connects from `from` with a fresh nonce, as the server does.
    fn connect(&mut self, from: IpAddr) -> Result<ConnId, Refusal> {
        let nonce = Nonce::random().unwrap_or_else(|e| panic!("{e}"));
        let conn = self.hub.connect(from, nonce, self.now)?;
        self.nonces.insert(conn, nonce);
        Ok(conn)
    }

    fn frame(&mut self, conn: ConnId, message: ClientMessage) -> Vec<Output> {
        let mut out = Vec::new();
        self.hub
            .handle(conn, Inbound::Text(Ok(message)), self.now, &mut out);
        out
    }

    fn raw(&mut self, conn: ConnId, text: &str) -> Vec<Output> {
        let decoded = ClientMessage::decode(text, self.hub.limits().max_frame_bytes);
        let mut out = Vec::new();
        self.hub
            .handle(conn, Inbound::Text(decoded), self.now, &mut out);
        out
    }

    /// A connected client that has said hello.
    fn client(&mut self, from: IpAddr) -> ConnId {
        let conn = self.connect(from).unwrap_or_else(|r| panic!("{r:?}"));
        let out = self.frame(conn, ClientMessage::Hello { version: 1 });
        let sent = self.nonces.get(&conn).copied();
        assert!(
            matches!(
                &out[..],
                [Output::Send {
                    message: ServerMessage::Welcome { version: 1, nonce, .. },
                    ..
                }] if *nonce == sent
            ),
            "{out:?}"
        );
        conn
    }

    fn allocate(&mut self, conn: ConnId) -> RoomId {
        match &self.frame(conn, ClientMessage::Allocate { id: Some(1) })[..] {
            [
                Output::Send {
                    message:
                        ServerMessage::Allocated {
                            room,
                            id: Some(1),
                            turn: None,
                        },
                    ..
                },
            ] => room.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn join(&mut self, conn: ConnId, name: &str) -> Vec<Output> {
        self.frame(
            conn,
            ClientMessage::Join {
                room: room(name),
                id: None,
                peer: None,
            },
        )
    }

    fn send(&mut self, conn: ConnId, name: &str, payload: &str) -> Vec<Output> {
        self.frame(
            conn,
            ClientMessage::Send {
                room: room(name),
                payload: payload.into(),
                id: None,
            },
        )
    }
}

/// The kind of the fatal error in `out`, checking it is followed by a close of the same connection.
fn fatal_kind(out: &[Output], conn: ConnId) -> (ErrorKind, Option<String>) {
    let error = out.iter().position(|o| {
        matches!(o, Output::Send { conn: c, message: ServerMessage::Error { fatal: true, .. } } if *c == conn)
    });
    let close = out
        .iter()
        .position(|o| matches!(o, Output::Close { conn: c, .. } if *c == conn));
    match (error, close) {
        (Some(e), Some(c)) if e < c => match &out[e] {
            Output::Send {
                message: ServerMessage::Error { kind, bound, .. },
                ..
            } => (*kind, bound.clone()),
            _ => unreachable!(),
        },
        _ => panic!("no fatal error then close for {conn}: {out:?}"),
    }
}

fn nonfatal_kind(out: &[Output]) -> ErrorKind {
    match out {
        [
            Output::Send {
                message:
                    ServerMessage::Error {
                        kind, fatal: false, ..
                    },
                ..
            },
        ] => *kind,
        other => panic!("{other:?}"),
    }
}

#[test]
fn hello_comes_first_and_names_the_version() {
    let mut h = Harness::new(Limits::default());
    let a = h.connect(ip(1)).unwrap_or_else(|r| panic!("{r:?}"));
    let out = h.frame(a, ClientMessage::Allocate { id: None });
    assert_eq!(fatal_kind(&out, a).0, ErrorKind::HelloRequired);
    assert_eq!(h.hub.connection_count(), 0);

    let b = h.connect(ip(1)).unwrap_or_else(|r| panic!("{r:?}"));
    let out = h.frame(b, ClientMessage::Hello { version: 99 });
    assert_eq!(fatal_kind(&out, b).0, ErrorKind::VersionMismatch);

    let c = h.client(ip(1));
    let out = h.frame(c, ClientMessage::Hello { version: 1 });
    assert_eq!(fatal_kind(&out, c).0, ErrorKind::BadFrame);
}

#[test]
fn allocates_the_lowest_free_nameplate() {
    let mut h = Harness::new(Limits::default());
    let a = h.client(ip(1));
    let b = h.client(ip(1));
    let c = h.client(ip(1));
    assert_eq!(h.allocate(a), room("1"));
    assert_eq!(h.allocate(b), room("2"));
    // A joined numeric room is taken too.
    assert!(matches!(
        &h.join(c, "3")[..],
        [Output::Send {
            message: ServerMessage::Joined { members: 1, .. },
            ..
        }]
    ));
    let mut out = Vec::new();
    h.hub.disconnect(a, &mut out);
    assert!(out.is_empty(), "nobody else was in room 1: {out:?}");
    assert_eq!(h.allocate(c), room("1"));
    assert_eq!(h.allocate(b), room("4"));
}

#[test]
fn relays_both_ways_and_tells_members_who_comes_and_goes() {
    let mut h = Harness::new(Limits::default());
    let a = h.client(ip(1));
    let b = h.client(ip(2));
    let r = h.allocate(a);

    let out = h.join(b, r.as_str());
    assert_eq!(
        out,
        vec![
            Output::Send {
                conn: a,
                message: ServerMessage::PeerJoined { room: r.clone() }
            },
            Output::Send {
                conn: b,
                message: ServerMessage::Joined {
                    room: r.clone(),
                    members: 2,
                    id: None,
                    turn: None,
                }
            },
        ]
    );
    assert_eq!(
        h.send(a, r.as_str(), "offer"),
        vec![Output::Send {
            conn: b,
            message: ServerMessage::Message {
                room: r.clone(),
                payload: "offer".into()
            }
        }]
    );
    assert_eq!(
        h.send(b, r.as_str(), "answer"),
        vec![Output::Send {
            conn: a,
            message: ServerMessage::Message {
                room: r.clone(),
                payload: "answer".into()
            }
        }]
    );

    let out = h.frame(
        b,
        ClientMessage::Leave {
            room: r.clone(),
            id: Some(5),
        },
    );
    assert_eq!(
        out,
        vec![
            Output::Send {
                conn: a,
                message: ServerMessage::PeerLeft { room: r.clone() }
            },
            Output::Send {
                conn: b,
                message: ServerMessage::Left {
                    room: r.clone(),
                    id: Some(5)
                }
            },
        ]
    );
    assert_eq!(
        nonfatal_kind(&h.send(a, r.as_str(), "x")),
        ErrorKind::NoPeer
    );
    assert_eq!(
        nonfatal_kind(&h.send(b, r.as_str(), "x")),
        ErrorKind::NotInRoom
    );

    h.join(b, r.as_str());
    let mut out = Vec::new();
    h.hub.disconnect(a, &mut out);
    assert_eq!(
        out,
        vec![Output::Send {
            conn: b,
            message: ServerMessage::PeerLeft { room: r.clone() }
        }]
    );
    assert_eq!(h.hub.room_count(), 1);
}

#[test]
fn a_third_member_is_refused() {
    let mut h = Harness::new(Limits::default());
    let a = h.client(ip(1));
    let b = h.client(ip(2));
    let c = h.client(ip(3));
    let r = h.allocate(a);
    h.join(b, r.as_str());
    let out = h.join(c, r.as_str());
    assert_eq!(
        fatal_kind(&out, c),
        (ErrorKind::RoomFull, Some("max_members_per_room".into()))
    );
    // The two members noticed nothing.
    assert!(out.iter().all(|o| match o {
        Output::Send { conn, .. } | Output::Close { conn, .. } => *conn == c,
    }));
    assert_eq!(h.send(a, r.as_str(), "still here").len(), 1);
}

#[test]
fn joining_twice_is_a_gentle_error() {
    let mut h = Harness::new(Limits::default());
    let a = h.client(ip(1));
    let r = h.allocate(a);
    assert_eq!(
        nonfatal_kind(&h.join(a, r.as_str())),
        ErrorKind::AlreadyInRoom
    );
}

#[test]
fn rooms_per_connection_and_in_all_are_bounded() {
    let mut h = Harness::new(Limits {
        max_rooms_per_connection: 2,
        max_rooms: 3,
        ..Limits::default()
    });
    let a = h.client(ip(1));
    h.allocate(a);
    h.join(a, "rendezvous");
    let out = h.join(a, "third");
    assert_eq!(
        fatal_kind(&out, a),
        (
            ErrorKind::TooManyRooms,
            Some("max_rooms_per_connection".into())
        )
    );
    assert_eq!(h.hub.room_count(), 0, "a's rooms went with it");

    let b = h.client(ip(1));
    let c = h.client(ip(1));
    h.allocate(b);
    h.allocate(b);
    h.allocate(c);
    let out = h.frame(c, ClientMessage::Allocate { id: None });
    assert_eq!(
        fatal_kind(&out, c),
        (ErrorKind::ServerFull, Some("max_rooms".into()))
    );
}

#[test]
fn connections_per_ip_and_in_all_are_bounded() {
    let mut h = Harness::new(Limits {
        max_connections_per_ip: 2,
        max_connections: 3,
        ..Limits::default()
    });
    let a = h.client(ip(1));
    h.client(ip(1));
    let refused = h.connect(ip(1)).err().map(|r| r.message);
    assert!(
        matches!(&refused, Some(ServerMessage::Error { kind: ErrorKind::TooManyConnections, bound: Some(b), fatal: true, .. }) if b == "max_connections_per_ip"),
        "{refused:?}"
    );
    h.client(ip(2));
    let refused = h.connect(ip(3)).err().map(|r| r.message);
    assert!(
        matches!(&refused, Some(ServerMessage::Error { bound: Some(b), .. }) if b == "max_connections"),
        "{refused:?}"
    );
    h.hub.disconnect(a, &mut Vec::new());
    assert!(
        h.connect(ip(1)).is_ok(),
        "a closed connection frees its slot"
    );
}

#[test]
fn a_flood_is_cut_off_at_the_rate_bound() {
    let mut h = Harness::new(Limits {
        max_messages_per_sec: 10,
        ..Limits::default()
    });
    let a = h.client(ip(1)); // hello used one token
    let b = h.client(ip(2));
    let r = h.allocate(a); // and allocate another
    h.join(b, r.as_str());
    for _ in 0..8 {
        assert_eq!(h.send(a, r.as_str(), "x").len(), 1);
    }
    let out = h.send(a, r.as_str(), "x");
    assert_eq!(
        fatal_kind(&out, a),
        (ErrorKind::RateLimited, Some("max_messages_per_sec".into()))
    );
    assert!(out.contains(&Output::Send {
        conn: b,
        message: ServerMessage::PeerLeft { room: r.clone() }
    }));
}

#[test]
fn pings_count_toward_the_rate() {
    let mut h = Harness::new(Limits {
        max_messages_per_sec: 3,
        ..Limits::default()
    });
    let a = h.client(ip(1));
    let mut out = Vec::new();
    for _ in 0..3 {
        h.hub.handle(a, Inbound::Control, h.now, &mut out);
    }
    assert_eq!(fatal_kind(&out, a).0, ErrorKind::RateLimited);
}

#[test]
fn bad_frames_end_the_connection_with_a_reason() {
    let mut h = Harness::new(Limits {
        max_frame_bytes: 100,
        ..Limits::default()
    });
    let cases: [(&str, ErrorKind); 5] = [
        ("garbage", ErrorKind::BadFrame),
        (r#"{"type":"nope"}"#, ErrorKind::BadFrame),
        (r#"{"type":"allocate","admin":true}"#, ErrorKind::BadFrame),
        (r#"{"type":"join","room":"a b"}"#, ErrorKind::BadFrame),
        (&"x".repeat(101), ErrorKind::FrameTooLarge),
    ];
    for (text, kind) in cases {
        let a = h.client(ip(1));
        let out = h.raw(a, text);
        assert_eq!(fatal_kind(&out, a).0, kind, "{text}");
        let message = match &out[0] {
            Output::Send {
                message: ServerMessage::Error { message, .. },
                ..
            } => message.clone(),
            other => panic!("{other:?}"),
        };
        assert!(message.len() > 20, "{message}");
    }
    for (inbound, kind) in [
        (Inbound::Binary, ErrorKind::BinaryFrame),
        (Inbound::Oversize, ErrorKind::FrameTooLarge),
    ] {
        let a = h.client(ip(1));
        let mut out = Vec::new();
        h.hub.handle(a, inbound, h.now, &mut out);
        assert_eq!(fatal_kind(&out, a).0, kind);
    }
    assert_eq!(h.hub.connection_count(), 0);
}

#[test]
fn silent_connections_and_old_rooms_expire() {
    let mut h = Harness::new(Limits {
        idle_timeout_secs: 10,
        room_ttl_secs: 30,
        ..Limits::default()
    });
    let a = h.client(ip(1));
    let b = h.client(ip(2));
    let r = h.allocate(a);
    h.join(b, r.as_str());
    assert_eq!(h.hub.poll_timeout(), Some(h.now + Duration::from_secs(10)));

    // b keeps talking, a falls silent.
    h.now += Duration::from_secs(6);
    h.hub.handle(b, Inbound::Control, h.now, &mut Vec::new());
    h.now += Duration::from_secs(4);
    let mut out = Vec::new();
    h.hub.handle_timeout(h.now, &mut out);
    assert_eq!(
        fatal_kind(&out, a),
        (ErrorKind::IdleTimeout, Some("idle_timeout_secs".into()))
    );
    assert!(out.contains(&Output::Send {
        conn: b,
        message: ServerMessage::PeerLeft { room: r.clone() }
    }));

    // The room b is left in expires at its time to live; b's connection stays.
    for _ in 0..2 {
        h.now += Duration::from_secs(10);
        h.hub.handle(b, Inbound::Control, h.now, &mut Vec::new());
    }
    let mut out = Vec::new();
    h.hub.handle_timeout(h.now, &mut out);
    assert_eq!(nonfatal_kind(&out), ErrorKind::RoomExpired);
    assert_eq!(h.hub.room_count(), 0);
    assert_eq!(h.hub.connection_count(), 1);
    assert_eq!(
        nonfatal_kind(&h.send(b, r.as_str(), "x")),
        ErrorKind::NotInRoom
    );
}

#[test]
fn shutdown_closes_everyone_and_refuses_newcomers() {
    let mut h = Harness::new(Limits::default());
    let a = h.client(ip(1));
    let b = h.client(ip(2));
    let r = h.allocate(a);
    h.join(b, r.as_str());
    let mut out = Vec::new();
    h.hub.shutdown(&mut out);
    assert_eq!(
        out,
        vec![
            Output::Close {
                conn: a,
                code: 1001,
                reason: "shutting_down"
            },
            Output::Close {
                conn: b,
                code: 1001,
                reason: "shutting_down"
            },
        ]
    );
    assert_eq!((h.hub.connection_count(), h.hub.room_count()), (0, 0));
    assert!(h.connect(ip(1)).is_err());
}

#[test]
fn evicting_a_slow_reader_tells_its_peers() {
    let mut h = Harness::new(Limits::default());
    let a = h.client(ip(1));
    let b = h.client(ip(2));
    let r = h.allocate(a);
    h.join(b, r.as_str());
    let mut out = Vec::new();
    h.hub.evict(
        b,
        ErrorKind::SlowReader,
        "max_queued_frames",
        "slow".into(),
        &mut out,
    );
    assert_eq!(
        fatal_kind(&out, b),
        (ErrorKind::SlowReader, Some("max_queued_frames".into()))
    );
    assert!(out.contains(&Output::Send {
        conn: a,
        message: ServerMessage::PeerLeft { room: r }
    }));
}

#[test]
fn ipv6_hosts_are_counted_by_their_64() {
    let mut h = Harness::new(Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    });
    let host = |last: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
    h.client(host(1));
    h.client(host(2));
    assert!(h.connect(host(3)).is_err(), "same /64");
    let other_net = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
    assert!(h.connect(other_net).is_ok());
}
