//! Daemon mode's links: trusted hosts meet in their pair room on a real signaling server and open
//! real data channels pinned to each other's certificates; anyone else is refused before a byte
//! of data flows.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use p2p_signaling::protocol::RoomId;
use p2phost::identity::{Identity, PeerId};
use p2phost::session::{
    Connected, Incoming, PairSignaling, SessionError, SessionOptions, pair_room,
};
use tokio::sync::mpsc;

use crate::session::{next_message, server};

fn identity(dir: &tempfile::TempDir, name: &str) -> Identity {
    Identity::create(&dir.path().join(name)).unwrap()
}

fn as_host(options: &SessionOptions, identity: &Identity) -> SessionOptions {
    SessionOptions {
        identity: Some(identity.clone()),
        step_timeout: Duration::from_secs(5),
        ..options.clone()
    }
}

type Accepted = mpsc::Receiver<(PeerId, Result<Connected, SessionError>)>;

/// Accepts every offer that arrives, reporting each outcome.
fn accept_all(signaling: Arc<PairSignaling>, mut offers: mpsc::Receiver<Incoming>) -> Accepted {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(offer) = offers.recv().await {
            let signaling = Arc::clone(&signaling);
            let tx = tx.clone();
            tokio::spawn(async move {
                let peer = offer.peer;
                let _ = tx.send((peer, signaling.accept(offer).await)).await;
            });
        }
    });
    rx
}

async fn next_accepted(accepted: &mut Accepted) -> (PeerId, Result<Connected, SessionError>) {
    tokio::time::timeout(Duration::from_secs(15), accepted.recv())
        .await
        .expect("an offer within 15 s")
        .expect("the acceptor runs")
}

async fn talk(a: &Connected, b: &Connected) {
    a.channel
        .send(BytesMut::from(&b"from a"[..]))
        .await
        .unwrap();
    assert_eq!(next_message(&b.channel).await, b"from a");
    b.channel
        .send(BytesMut::from(&b"from b"[..]))
        .await
        .unwrap();
    assert_eq!(next_message(&a.channel).await, b"from b");
}

async fn close(links: impl IntoIterator<Item = Connected>) {
    for link in links {
        let _ = link.peer_connection.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trusted_hosts_meet_in_their_room_and_talk_both_ways() {
    let options = server().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (identity(&dir, "a"), identity(&dir, "b"));
    let (host_a, offers_a) = PairSignaling::start(as_host(&options, &a), &[b.id()])
        .await
        .unwrap();
    let (host_b, offers_b) = PairSignaling::start(as_host(&options, &b), &[a.id()])
        .await
        .unwrap();
    // A sees B arrive in their room.
    let mut present = host_a.presence(&b.id()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), present.wait_for(|here| *here))
        .await
        .unwrap()
        .unwrap();
    let (host_a, host_b) = (Arc::new(host_a), Arc::new(host_b));
    let mut accepted_by_a = accept_all(Arc::clone(&host_a), offers_a);
    let mut accepted_by_b = accept_all(Arc::clone(&host_b), offers_b);

    // A offers, B accepts; each names the other by the id its certificate proved.
    let ours = host_a.connect(&b.id(), "test").await.unwrap();
    let (from, theirs) = next_accepted(&mut accepted_by_b).await;
    let theirs = theirs.unwrap();
    assert_eq!(from, a.id());
    assert_eq!(ours.verification, b.id().to_string());
    assert_eq!(theirs.verification, a.id().to_string());
    // The label the offering side chose arrives inside DTLS.
    assert_eq!(theirs.channel.label().await.unwrap(), "test");
    talk(&ours, &theirs).await;
    close([ours, theirs]).await;

    // B offers, A accepts.
    let ours = host_b.connect(&a.id(), "test").await.unwrap();
    let (from, theirs) = next_accepted(&mut accepted_by_a).await;
    assert_eq!(from, b.id());
    let theirs = theirs.unwrap();
    talk(&ours, &theirs).await;
    close([ours, theirs]).await;

    // Two sessions at once, as a daemon sending two folders opens them.
    let b_id = b.id();
    let (first, second) = tokio::join!(host_a.connect(&b_id, "one"), host_a.connect(&b_id, "two"));
    let (first, second) = (first.unwrap(), second.unwrap());
    let (_, one) = next_accepted(&mut accepted_by_b).await;
    let (_, two) = next_accepted(&mut accepted_by_b).await;
    let (one, two) = (one.unwrap(), two.unwrap());
    // Which accepted session belongs to which offer is up to the network: both carry data.
    for link in [&first, &second] {
        link.channel
            .send(BytesMut::from(&b"ping"[..]))
            .await
            .unwrap();
    }
    assert_eq!(next_message(&one.channel).await, b"ping");
    assert_eq!(next_message(&two.channel).await, b"ping");
    close([first, second, one, two]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_another_certificate_in_the_pair_room_is_refused_both_ways() {
    let options = server().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b, mallory) = (
        identity(&dir, "a"),
        identity(&dir, "b"),
        identity(&dir, "mallory"),
    );
    // A trusts B, and Mallory sits where A looks for B. The server keeps Mallory out of their
    // pair room (see the next test), so they meet in a plain room here: what a server that lets
    // anyone in would do. The certificate pinning alone must still keep Mallory out.
    let room = RoomId::new("a-server-that-lets-anyone-in").unwrap();
    let (host_a, offers_a) =
        PairSignaling::with_rooms(as_host(&options, &a), vec![(b.id(), room.clone())])
            .await
            .unwrap();
    let (impostor, offers_m) =
        PairSignaling::with_rooms(as_host(&options, &mallory), vec![(a.id(), room)])
            .await
            .unwrap();
    let (host_a, impostor) = (Arc::new(host_a), Arc::new(impostor));
    let mut accepted_by_a = accept_all(Arc::clone(&host_a), offers_a);
    let mut accepted_by_m = accept_all(Arc::clone(&impostor), offers_m);

    // Mallory offers: A sees a certificate that is not B's and refuses; Mallory is told.
    let offered = impostor.connect(&a.id(), "test").await;
    assert!(
        matches!(offered, Err(SessionError::PeerRefused)),
        "{offered:?}"
    );
    let (claimed, refused) = next_accepted(&mut accepted_by_a).await;
    assert_eq!(claimed, b.id(), "the offer came through B's room");
    let refused = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        refused.contains("not the trusted peer") && refused.contains(&mallory.id().to_string()),
        "{refused}"
    );

    // A offers to "B": the answer comes from Mallory's certificate, and A refuses it.
    let connected = host_a.connect(&b.id(), "test").await;
    let error = connected.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.contains("not the trusted peer") && error.contains(&mallory.id().to_string()),
        "{error}"
    );
    // Mallory answered, and got no channel.
    let (_, answered) = next_accepted(&mut accepted_by_m).await;
    assert!(answered.is_err(), "{answered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_host_that_knows_both_ids_cannot_sit_in_their_pair_room() {
    let options = server().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b, mallory) = (
        identity(&dir, "a"),
        identity(&dir, "b"),
        identity(&dir, "mallory"),
    );
    // A waits for B, who is offline. Ids are public: Mallory knows the room's name.
    let (host_a, _offers_a) = PairSignaling::start(as_host(&options, &a), &[b.id()])
        .await
        .unwrap();
    let mut present = host_a.presence(&b.id()).unwrap();
    let room = pair_room(&a.id(), &b.id());
    for claimed in [b.id(), a.id()] {
        let squatted =
            PairSignaling::with_rooms(as_host(&options, &mallory), vec![(claimed, room.clone())])
                .await;
        let refused = match squatted {
            Ok(_) => panic!("a third host sat in the pair room of A and B"),
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("bad_proof"), "{refused}");
    }
    // A never saw anyone arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!*present.borrow_and_update(), "A saw a peer in B's seat");

    // B comes online, takes its seat and talks with A.
    let (host_b, offers_b) = PairSignaling::start(as_host(&options, &b), &[a.id()])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), present.wait_for(|here| *here))
        .await
        .unwrap()
        .unwrap();
    let mut accepted_by_b = accept_all(Arc::new(host_b), offers_b);
    let ours = host_a.connect(&b.id(), "test").await.unwrap();
    let (from, theirs) = next_accepted(&mut accepted_by_b).await;
    assert_eq!(from, a.id());
    let theirs = theirs.unwrap();
    talk(&ours, &theirs).await;
    close([ours, theirs]).await;
}
