//! Pair rooms and nameplate racing, through the hub: who may take a seat, and what it costs to try.

use std::time::Duration;

use super::*;
use crate::protocol::pair_room::tests::host;
use crate::protocol::pair_room::{PairKey, pair_room};

impl Harness {
    /// `conn` sends `prove` with `proof`.
    fn prove_with(&mut self, conn: ConnId, proof: HostProof) -> Vec<Output> {
        self.frame(
            conn,
            ClientMessage::Prove {
                certificate: proof.certificate,
                signature: proof.signature,
                id: Some(4),
            },
        )
    }

    /// `conn` proves it is `key`'s host, signing its own nonce.
    fn prove(&mut self, conn: ConnId, key: &PairKey) -> Vec<Output> {
        let proof = key
            .prove(&self.nonces[&conn])
            .unwrap_or_else(|e| panic!("{e}"));
        self.prove_with(conn, proof)
    }

    /// `conn` joins pair room `room` to meet `peer`.
    fn join_peer(&mut self, conn: ConnId, room: &RoomId, peer: &HostHash) -> Vec<Output> {
        self.frame(
            conn,
            ClientMessage::Join {
                room: room.clone(),
                id: Some(5),
                peer: Some(encode_host(peer)),
            },
        )
    }

    /// A new connection from `from` that proves `key`'s host and joins `room` to meet `peer`.
    fn seat(&mut self, from: IpAddr, key: &PairKey, room: &RoomId, peer: &HostHash) -> ConnId {
        let conn = self.client(from);
        let out = self.prove(conn, key);
        assert!(
            matches!(&out[..], [Output::Send { message: ServerMessage::Proved { host, id: Some(4) }, .. }]
                if *host == encode_host(&key.id())),
            "{out:?}"
        );
        let out = self.join_peer(conn, room, peer);
        joined(&out, conn);
        conn
    }
}

fn joined(out: &[Output], conn: ConnId) -> usize {
    out.iter()
        .find_map(|o| match o {
            Output::Send {
                conn: c,
                message: ServerMessage::Joined { members, .. },
            } if *c == conn => Some(*members),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{conn} did not join: {out:?}"))
}

/// The fatal `bad_proof` error in `out`, its message.
fn bad_proof(out: &[Output], conn: ConnId) -> String {
    assert_eq!(fatal_kind(out, conn), (ErrorKind::BadProof, None));
    out.iter()
        .find_map(|o| match o {
            Output::Send {
                message: ServerMessage::Error { message, .. },
                ..
            } => Some(message.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn a_pair_room_admits_its_two_hosts_with_proofs() {
    let mut h = Harness::new(Limits::default());
    let (a, b) = (host(), host());
    let room = pair_room(&a.id(), &b.id());
    let ca = h.seat(ip(1), &a, &room, &b.id());
    let cb = h.client(ip(2));
    h.prove(cb, &b);
    let out = h.join_peer(cb, &room, &a.id());
    assert_eq!(joined(&out, cb), 2);
    assert!(out.contains(&Output::Send {
        conn: ca,
        message: ServerMessage::PeerJoined { room: room.clone() }
    }));
    let out = h.send(ca, room.as_str(), "offer");
    assert!(matches!(&out[..], [Output::Send { conn, .. }] if *conn == cb));
    // A proved connection joins other rooms as before.
    assert_eq!(joined(&h.join(ca, "9"), ca), 1);
}

#[test]
fn a_squatter_who_knows_both_ids_gets_no_seat() {
    let mut h = Harness::new(Limits::default());
    let (a, b, m) = (host(), host(), host());
    let room = pair_room(&a.id(), &b.id());
    let ca = h.client(ip(1));
    let proof_of_a = a.prove(&h.nonces[&ca]).unwrap_or_else(|e| panic!("{e}"));
    h.prove_with(ca, proof_of_a.clone());
    assert_eq!(joined(&h.join_peer(ca, &room, &b.id()), ca), 1);

    // Without proving anything.
    let cm = h.client(ip(66));
    let out = h.join_peer(cm, &room, &b.id());
    assert!(bad_proof(&out, cm).contains("send `prove`"));
    assert!(
        matches!(&out[0], Output::Send { message: ServerMessage::Error { id: Some(5), room: Some(r), .. }, .. } if *r == room),
        "the error answers the join: {out:?}"
    );
    // Proving its own host, then claiming to meet either of them.
    for peer in [b.id(), a.id()] {
        let cm = h.client(ip(66));
        h.prove(cm, &m);
        let out = h.join_peer(cm, &room, &peer);
        assert!(bad_proof(&out, cm).contains("name another room"));
    }
    // A's proof, seen on the wire, replayed on another connection, whose nonce differs.
    let cm = h.client(ip(66));
    let out = h.prove_with(cm, proof_of_a.clone());
    assert!(bad_proof(&out, cm).contains("does not verify"));
    // A's certificate (public) with a signature by the squatter's key.
    let cm = h.client(ip(66));
    let forged = HostProof {
        certificate: proof_of_a.certificate.clone(),
        signature: m
            .prove(&h.nonces[&cm])
            .unwrap_or_else(|e| panic!("{e}"))
            .signature,
    };
    let out = h.prove_with(cm, forged);
    assert!(bad_proof(&out, cm).contains("does not verify"));
    // One proof per connection: a proved connection cannot try another certificate.
    let cm = h.client(ip(66));
    h.prove(cm, &m);
    let out = h.prove(cm, &a);
    assert!(bad_proof(&out, cm).contains("proved its host already"));

    // Nobody sat down: A is alone, was told of nobody, and B still gets in.
    assert_eq!(h.hub.connection_count(), 1);
    let cb = h.client(ip(2));
    h.prove(cb, &b);
    let out = h.join_peer(cb, &room, &a.id());
    assert_eq!(joined(&out, cb), 2);
}

#[test]
fn a_pair_name_cannot_be_taken_without_proof_nor_a_peer_named_elsewhere() {
    let mut h = Harness::new(Limits::default());
    let (a, b) = (host(), host());
    // Names of the reserved shape: no proof, no room, even for names no two hosts derive.
    for name in ["pair.x", "pair.squat", "pair."] {
        let c = h.client(ip(1));
        let out = h.join(c, name);
        bad_proof(&out, c);
        let c = h.client(ip(1));
        h.prove(c, &a);
        let out = h.join_peer(c, &room(name), &b.id());
        assert!(bad_proof(&out, c).contains("name another room"));
    }
    // A peer on a room that is not a pair room.
    let c = h.client(ip(1));
    let out = h.join_peer(c, &room("7"), &b.id());
    assert!(bad_proof(&out, c).contains("not a pair room"));
    assert_eq!(h.hub.room_count(), 0);
}

#[test]
fn the_same_host_twice_takes_its_own_seat_back() {
    let mut h = Harness::new(Limits {
        max_members_per_room: 3,
        ..Limits::default()
    });
    let (a, b) = (host(), host());
    let room = pair_room(&a.id(), &b.id());
    let old = h.seat(ip(1), &a, &room, &b.id());
    let cb = h.seat(ip(2), &b, &room, &a.id());

    // A comes back on a new connection while the old one still sits there.
    let new = h.client(ip(3));
    h.prove(new, &a);
    let out = h.join_peer(new, &room, &b.id());
    assert_eq!(joined(&out, new), 2, "two hosts, never two seats for one");
    assert!(out.iter().any(|o| matches!(o,
        Output::Send { conn, message: ServerMessage::Error { kind: ErrorKind::SeatTaken, fatal: false, room: Some(r), .. } }
            if *conn == old && *r == room)));
    let to_b: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { conn, message } if *conn == cb => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        to_b,
        [
            ServerMessage::PeerLeft { room: room.clone() },
            ServerMessage::PeerJoined { room: room.clone() }
        ]
    );
    // The old connection stays open, out of the room.
    let out = h.send(old, room.as_str(), "stale");
    assert_eq!(nonfatal_kind(&out), ErrorKind::NotInRoom);
    let out = h.send(cb, room.as_str(), "offer");
    assert!(matches!(&out[..], [Output::Send { conn, .. }] if *conn == new));
    // B's seat is B's: a second B takes it back the same way, and the room holds two.
    let b2 = h.seat(ip(4), &b, &room, &a.id());
    let out = h.send(b2, room.as_str(), "offer");
    assert!(matches!(&out[..], [Output::Send { conn, .. }] if *conn == new));
    // A host cannot claim to meet itself.
    let c = h.client(ip(5));
    h.prove(c, &a);
    let out = h.join_peer(c, &pair_room(&a.id(), &a.id()), &a.id());
    assert!(bad_proof(&out, c).contains("cannot pair with itself"));
}

#[test]
fn racing_for_nameplates_is_capped_per_address() {
    let mut h = Harness::new(Limits {
        max_nameplate_joins_per_min: 3,
        ..Limits::default()
    });
    let sender = h.client(ip(1));
    let codes: Vec<RoomId> = (0..6).map(|_| h.allocate(sender)).collect();
    // A racer joins each fresh nameplate: three a minute, then it is cut off, and a new
    // connection from the same address does not start afresh.
    let racer = h.client(ip(66));
    for code in &codes[..3] {
        assert_eq!(joined(&h.join(racer, code.as_str()), racer), 2);
    }
    let out = h.join(racer, codes[3].as_str());
    assert_eq!(
        fatal_kind(&out, racer),
        (
            ErrorKind::TooManyNameplateJoins,
            Some("max_nameplate_joins_per_min".into())
        )
    );
    let again = h.client(ip(66));
    let out = h.join(again, codes[3].as_str());
    assert_eq!(fatal_kind(&out, again).0, ErrorKind::TooManyNameplateJoins);
    // The real receiver, elsewhere, is not bothered.
    let receiver = h.client(ip(2));
    assert_eq!(joined(&h.join(receiver, codes[3].as_str()), receiver), 2);
    // A third of a minute gives the racer one more join, no more.
    h.now += Duration::from_secs(21);
    let racer = h.client(ip(66));
    assert_eq!(joined(&h.join(racer, codes[4].as_str()), racer), 2);
    let out = h.join(racer, codes[5].as_str());
    assert_eq!(fatal_kind(&out, racer).0, ErrorKind::TooManyNameplateJoins);
    // Other rooms are not nameplates and do not count.
    let other = h.client(ip(66));
    assert_eq!(joined(&h.join(other, "rendezvous-x"), other), 1);
}
