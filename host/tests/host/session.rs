//! Two peers meet through a real signaling server on loopback, authenticate with the code, and talk
//! over a real WebRTC data channel.

use std::time::Duration;

use bytes::BytesMut;
use p2p_signaling::{ServerConfig, SignalingServer};
use p2phost::code::{PakeError, TransferCode};
use p2phost::session::{self, SenderRendezvous, SessionError, SessionOptions};
use webrtc::data_channel::{DataChannel, DataChannelEvent};

pub(crate) async fn server() -> SessionOptions {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    config.stun.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = SignalingServer::bind(&config).await.unwrap();
    let url = server.url();
    let stun = server.stun_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    SessionOptions {
        signaling_url: url,
        ice_servers: vec![format!("stun:{stun}")],
        bind: vec!["127.0.0.1:0".into()],
        step_timeout: Duration::from_secs(10),
        ..SessionOptions::default()
    }
}

pub(crate) async fn next_message(channel: &std::sync::Arc<dyn DataChannel>) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match channel.poll().await {
                Some(DataChannelEvent::OnMessage(message)) => return message.data.to_vec(),
                Some(DataChannelEvent::OnClose) | None => panic!("channel closed"),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("no message within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_meet_authenticate_and_talk_over_a_data_channel() {
    let options = server().await;
    let rendezvous = SenderRendezvous::open(options.clone(), 2).await.unwrap();
    let code = rendezvous.code().clone();
    assert_eq!(code.nameplate(), 1);
    let typed = TransferCode::parse(&code.to_string()).unwrap();
    let receiver = tokio::spawn(async move { session::receive(options, &typed).await });
    let sender = rendezvous.connect().await.unwrap();
    let receiver = receiver.await.unwrap().unwrap();
    assert_eq!(sender.verification, receiver.verification);

    sender
        .channel
        .send(BytesMut::from(&b"hello over DTLS"[..]))
        .await
        .unwrap();
    assert_eq!(next_message(&receiver.channel).await, b"hello over DTLS");
    receiver
        .channel
        .send(BytesMut::from(&b"and back"[..]))
        .await
        .unwrap();
    assert_eq!(next_message(&sender.channel).await, b"and back");
    let _ = sender.peer_connection.close().await;
    let _ = receiver.peer_connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_fails_on_both_sides() {
    let options = server().await;
    let rendezvous = SenderRendezvous::open(options.clone(), 2).await.unwrap();
    let right = rendezvous.code().to_string();
    // Same room, other words.
    let wrong_words = if right.ends_with("-aardvark-adroitness") {
        "absurd-adroitness"
    } else {
        "aardvark-adroitness"
    };
    let wrong =
        TransferCode::parse(&format!("{}-{wrong_words}", rendezvous.code().nameplate())).unwrap();
    let receiver = tokio::spawn(async move { session::receive(options, &wrong).await });
    let sender = rendezvous.connect().await;
    let receiver = receiver.await.unwrap();
    assert!(
        matches!(sender, Err(SessionError::Pake(PakeError::WrongCode))),
        "{sender:?}"
    );
    assert!(
        matches!(receiver, Err(SessionError::Pake(PakeError::WrongCode))),
        "{receiver:?}"
    );
}
