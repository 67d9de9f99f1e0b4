//! Taking a seat that is not one's own: a third host in a pair room, a racer in fresh nameplates.
//! The real server, real sockets, real keys; `/metrics` must show every attempt.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::SinkExt;
use p2p_signaling::protocol::{
    ErrorKind, HostProof, PairKey, RoomId, ServerMessage, encode_host, pair_room,
};
use p2p_signaling::{ClientError, Event};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{
    Raw, Server, expect_fatal, next_event, next_frame, raw, raw_from, raw_welcomed,
};

/// A host's key, as `p2phost init` makes it: a self-signed ECDSA P-256 certificate.
fn host() -> PairKey {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["p2phost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    PairKey::new(cert.der(), &key.serialize_der()).unwrap()
}

async fn send(ws: &mut Raw, text: String) {
    ws.send(Message::text(text)).await.unwrap();
}

fn prove_frame(proof: &HostProof) -> String {
    format!(
        r#"{{"type":"prove","certificate":"{}","signature":"{}"}}"#,
        proof.certificate, proof.signature
    )
}

fn join_frame(room: &RoomId, peer: &[u8; 32]) -> String {
    format!(
        r#"{{"type":"join","room":"{room}","peer":"{}"}}"#,
        encode_host(peer)
    )
}

/// Ends with `bad_proof` and close code 1008.
async fn refused(ws: &mut Raw) {
    assert_eq!(
        expect_fatal(ws).await,
        (ErrorKind::BadProof, None, Some(1008))
    );
}

#[tokio::test]
async fn a_squatter_who_knows_both_ids_cannot_take_the_seat() {
    let server = Server::start("");
    let (a, b, mallory) = (host(), host(), host());
    let room = pair_room(&a.id(), &b.id());

    // A waits in its room for B, which is offline.
    let (host_a, mut a_events) = server.client().await;
    host_a.prove(&a).await.unwrap();
    assert_eq!(host_a.join_pair(&room, &b.id()).await.unwrap(), 1);

    // Mallory knows both ids, so the room's name, and A's certificate (it is public).
    // 1. Joining plainly.
    let (mut ws, _) = raw_welcomed(raw(&server.url).await).await;
    send(&mut ws, format!(r#"{{"type":"join","room":"{room}"}}"#)).await;
    refused(&mut ws).await;
    // 2. Proving its own host, then naming either id as the one to meet.
    for peer in [b.id(), a.id()] {
        let (mut ws, nonce) = raw_welcomed(raw(&server.url).await).await;
        send(&mut ws, prove_frame(&mallory.prove(&nonce).unwrap())).await;
        assert!(matches!(
            next_frame(&mut ws).await,
            Some(ServerMessage::Proved { .. })
        ));
        send(&mut ws, join_frame(&room, &peer)).await;
        refused(&mut ws).await;
    }
    // 3. Replaying A's proof, as it crossed the wire on A's connection.
    let seen = a.prove(host_a.nonce().unwrap()).unwrap();
    let (mut ws, _) = raw_welcomed(raw(&server.url).await).await;
    send(&mut ws, prove_frame(&seen)).await;
    refused(&mut ws).await;
    // 4. A's certificate with a signature of Mallory's key over the right nonce.
    let (mut ws, nonce) = raw_welcomed(raw(&server.url).await).await;
    let forged = HostProof {
        certificate: seen.certificate.clone(),
        signature: mallory.prove(&nonce).unwrap().signature,
    };
    send(&mut ws, prove_frame(&forged)).await;
    refused(&mut ws).await;

    // The seat is still free: B takes it, and the first A hears of anyone is B.
    let (host_b, _b_events) = server.client().await;
    host_b.prove(&b).await.unwrap();
    assert_eq!(host_b.join_pair(&room, &a.id()).await.unwrap(), 2);
    assert_eq!(
        next_event(&mut a_events).await,
        Event::PeerJoined { room: room.clone() }
    );
    host_b.send(&room, "offer").await.unwrap();
    assert_eq!(
        next_event(&mut a_events).await,
        Event::Message {
            room,
            payload: "offer".into()
        }
    );
    server
        .wait_metric("p2p_signal_rejects_total{kind=\"bad_proof\"}", 5.0)
        .await;
    assert_eq!(server.metric("p2p_signal_pair_joins_total").await, 2.0);
}

#[tokio::test]
async fn a_nameplate_racer_is_capped_per_address_and_counted() {
    let server = Server::start("[limits]\nmax_nameplate_joins_per_min = 3\n");
    let (sender, _events) = server.client().await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(sender.allocate().await.unwrap());
    }

    // The racer joins each fresh nameplate, spending the PAKE guess of whoever holds its code.
    let (racer, mut racer_events) = server.client().await;
    for code in &codes[..3] {
        assert_eq!(racer.join(code).await.unwrap(), 2);
    }
    match racer.join(&codes[3]).await {
        Err(ClientError::Server { kind, bound, .. }) => {
            assert_eq!(kind, ErrorKind::TooManyNameplateJoins);
            assert_eq!(bound.as_deref(), Some("max_nameplate_joins_per_min"));
        }
        other => panic!("{other:?}"),
    }
    loop {
        if let Event::Closed { reason } = next_event(&mut racer_events).await {
            assert!(reason.starts_with("too_many_nameplate_joins"), "{reason}");
            break;
        }
    }
    // A new connection from the same address is no way around it.
    let mut ws = raw_welcomed(raw(&server.url).await).await.0;
    send(
        &mut ws,
        format!(r#"{{"type":"join","room":"{}"}}"#, codes[3]),
    )
    .await;
    assert_eq!(
        expect_fatal(&mut ws).await,
        (
            ErrorKind::TooManyNameplateJoins,
            Some("max_nameplate_joins_per_min".into()),
            Some(1008)
        )
    );
    // The real receiver, at another address, is not bothered.
    let elsewhere = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut receiver = raw_welcomed(raw_from(&server.url, elsewhere).await).await.0;
    send(
        &mut receiver,
        format!(r#"{{"type":"join","room":"{}"}}"#, codes[3]),
    )
    .await;
    assert!(matches!(
        next_frame(&mut receiver).await,
        Some(ServerMessage::Joined { members: 2, .. })
    ));

    server
        .wait_metric(
            "p2p_signal_rejects_total{kind=\"too_many_nameplate_joins\"}",
            2.0,
        )
        .await;
    assert_eq!(server.metric("p2p_signal_nameplate_joins_total").await, 4.0);
}
