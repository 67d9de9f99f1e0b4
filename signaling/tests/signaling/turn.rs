//! `[turn]`: the server hands each client that allocates or joins a room short-lived credentials
//! for the relay (coturn's shared-secret scheme), and none when it knows no relay.

use std::time::{SystemTime, UNIX_EPOCH};

use p2p_signaling::protocol::{RoomId, TurnCredentials};
use p2p_signaling::{ClientOptions, SignalingClient};

use crate::common::Server;

const CONFIG: &str = r#"
[turn]
urls = ["turn:turn.example.org:3478", "turns:turn.example.org:5349"]
secret = "a shared secret"
ttl_secs = 300
"#;

#[tokio::test]
async fn allocating_and_joining_bring_credentials_signed_with_the_secret() {
    let server = Server::start(CONFIG);
    let (sender, _sender_events) = SignalingClient::connect(&server.url, ClientOptions::default())
        .await
        .unwrap();
    let (receiver, _receiver_events) =
        SignalingClient::connect(&server.url, ClientOptions::default())
            .await
            .unwrap();
    assert_eq!(sender.turn_credentials(), None, "none before a room");
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let room = sender.allocate().await.unwrap();
    receiver.join(&room).await.unwrap();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let mut names = Vec::new();
    for client in [&sender, &receiver] {
        let got = client.turn_credentials().expect("credentials");
        assert_eq!(
            got.urls,
            ["turn:turn.example.org:3478", "turns:turn.example.org:5349"]
        );
        let expiry = got.expires().expect("EXPIRY:ID");
        assert!((before + 300..=after + 300).contains(&expiry), "{expiry}");
        let (_, id) = got.username.split_once(':').unwrap();
        let again = TurnCredentials::mint(&got.urls, b"a shared secret", expiry, id);
        assert_eq!(got.credential, again.credential);
        names.push(got.username);
    }
    assert_ne!(names[0], names[1], "each connection has a name of its own");
}

#[tokio::test]
async fn a_server_without_a_relay_hands_out_nothing() {
    let server = Server::start("");
    let (client, _events) = SignalingClient::connect(&server.url, ClientOptions::default())
        .await
        .unwrap();
    client
        .join(&RoomId::new("some-room").unwrap())
        .await
        .unwrap();
    assert_eq!(client.turn_credentials(), None);
}
