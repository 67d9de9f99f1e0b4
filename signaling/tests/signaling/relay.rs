//! Two clients meet in a room and relay payloads both ways.

use p2p_signaling::protocol::{ErrorKind, RoomId};
use p2p_signaling::{ClientError, Event};

use crate::common::{Server, next_event};

#[tokio::test]
async fn two_clients_relay_both_ways() {
    let server = Server::start("");
    let (a, mut a_events) = server.client().await;
    let (b, mut b_events) = server.client().await;

    let room = a.allocate().await.unwrap();
    assert_eq!(room.as_str(), "1", "the first nameplate is 1");
    assert_eq!(b.join(&room).await.unwrap(), 2);
    assert_eq!(
        next_event(&mut a_events).await,
        Event::PeerJoined { room: room.clone() }
    );

    // Payloads pass byte for byte, escapes and all.
    let offer = "{\"sdp\":\"v=0\\r\\n\"}\u{1F600}\n\t\"quoted\"";
    a.send(&room, offer).await.unwrap();
    assert_eq!(
        next_event(&mut b_events).await,
        Event::Message {
            room: room.clone(),
            payload: offer.into()
        }
    );
    for i in 0..50 {
        b.send(&room, format!("candidate {i}")).await.unwrap();
    }
    for i in 0..50 {
        assert_eq!(
            next_event(&mut a_events).await,
            Event::Message {
                room: room.clone(),
                payload: format!("candidate {i}")
            }
        );
    }

    b.leave(&room).await.unwrap();
    assert_eq!(
        next_event(&mut a_events).await,
        Event::PeerLeft { room: room.clone() }
    );
    a.send(&room, "anyone?").await.unwrap();
    assert!(matches!(
        next_event(&mut a_events).await,
        Event::Error {
            kind: ErrorKind::NoPeer,
            fatal: false,
            ..
        }
    ));

    // A peer whose connection drops is reported as gone too.
    b.join(&room).await.unwrap();
    assert_eq!(
        next_event(&mut a_events).await,
        Event::PeerJoined { room: room.clone() }
    );
    b.close().await;
    assert_eq!(
        next_event(&mut a_events).await,
        Event::PeerLeft { room: room.clone() }
    );

    let relayed = server.metric("p2p_signal_relayed_messages_total").await;
    assert_eq!(relayed, 51.0);
}

#[tokio::test]
async fn nameplates_are_handed_out_lowest_first() {
    let server = Server::start("");
    let (a, _a_events) = server.client().await;
    let (b, _b_events) = server.client().await;
    assert_eq!(a.allocate().await.unwrap().as_str(), "1");
    assert_eq!(b.allocate().await.unwrap().as_str(), "2");
    a.leave(&RoomId::nameplate(1)).await.unwrap();
    assert_eq!(b.allocate().await.unwrap().as_str(), "1");
    assert_eq!(a.allocate().await.unwrap().as_str(), "3");
}

#[tokio::test]
async fn a_third_member_is_refused_and_the_pair_goes_on() {
    let server = Server::start("");
    let (a, _a_events) = server.client().await;
    let (b, mut b_events) = server.client().await;
    let (c, mut c_events) = server.client().await;
    let room = a.allocate().await.unwrap();
    b.join(&room).await.unwrap();

    match c.join(&room).await {
        Err(ClientError::Server {
            kind: ErrorKind::RoomFull,
            message,
            bound,
        }) => {
            assert!(message.contains("2 members"), "{message}");
            assert_eq!(bound.as_deref(), Some("max_members_per_room"));
        }
        other => panic!("{other:?}"),
    }
    // The error answered the join, and the server closed c's connection after it.
    match next_event(&mut c_events).await {
        Event::Closed { reason } => assert!(reason.starts_with("room_full: "), "{reason}"),
        other => panic!("{other:?}"),
    }

    a.send(&room, "still private").await.unwrap();
    assert_eq!(
        next_event(&mut b_events).await,
        Event::Message {
            room,
            payload: "still private".into()
        }
    );
    assert_eq!(
        server
            .metric("p2p_signal_rejects_total{kind=\"room_full\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn rendezvous_rooms_take_any_valid_name() {
    let server = Server::start("");
    let (a, _a_events) = server.client().await;
    let (b, mut b_events) = server.client().await;
    let room = RoomId::new("3f1c9a0b".repeat(8)).unwrap();
    assert_eq!(a.join(&room).await.unwrap(), 1);
    assert_eq!(b.join(&room).await.unwrap(), 2);
    a.send(&room, "hi").await.unwrap();
    assert_eq!(
        next_event(&mut b_events).await,
        Event::Message {
            room,
            payload: "hi".into()
        }
    );
}
