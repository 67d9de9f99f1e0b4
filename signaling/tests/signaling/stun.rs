//! The embedded STUN responder, checked with a STUN codec we did not write (`stun_codec`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytecodec::{DecodeExt, EncodeExt};
use stun_codec::rfc5389::attributes::{Fingerprint, XorMappedAddress};
use stun_codec::rfc5389::{Attribute, methods::BINDING};
use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};
use tokio::net::UdpSocket;

use crate::common::Server;

async fn ask(socket: &UdpSocket, stun: SocketAddr, fingerprint: bool) -> Message<Attribute> {
    let transaction = TransactionId::new(rand_bytes());
    let mut request = Message::<Attribute>::new(MessageClass::Request, BINDING, transaction);
    if fingerprint {
        request.add_attribute(Fingerprint::new(&request).unwrap());
    }
    let bytes = MessageEncoder::new().encode_into_bytes(request).unwrap();
    socket.send_to(&bytes, stun).await.unwrap();
    let mut buf = [0u8; 1500];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("no STUN answer")
        .unwrap();
    assert_eq!(from, stun);
    let answer = MessageDecoder::<Attribute>::new()
        .decode_from_bytes(&buf[..len])
        .unwrap()
        .unwrap();
    assert_eq!(answer.class(), MessageClass::SuccessResponse);
    assert_eq!(answer.method(), BINDING);
    assert_eq!(answer.transaction_id(), transaction);
    answer
}

fn rand_bytes() -> [u8; 12] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_le_bytes();
    let mut id = [0u8; 12];
    id.copy_from_slice(&nanos[..12]);
    id
}

#[tokio::test]
async fn binding_requests_see_their_own_address() {
    let server = Server::start("");
    let stun = server.stun.unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap();

    let plain = ask(&socket, stun, false).await;
    let mapped = plain.get_attribute::<XorMappedAddress>().unwrap();
    assert_eq!(mapped.address(), me);
    assert!(plain.get_attribute::<Fingerprint>().is_none());

    // stun_codec checks the answer's FINGERPRINT while decoding.
    let fingerprinted = ask(&socket, stun, true).await;
    assert_eq!(
        fingerprinted
            .get_attribute::<XorMappedAddress>()
            .unwrap()
            .address(),
        me
    );
    assert!(fingerprinted.get_attribute::<Fingerprint>().is_some());

    // Garbage is counted and ignored, and the responder keeps answering.
    for junk in [&b""[..], b"\x00\x01\x00\x00", b"hello stun", &[0xffu8; 600]] {
        socket.send_to(junk, stun).await.unwrap();
    }
    ask(&socket, stun, false).await;
    server
        .wait_metric("p2p_signal_stun_malformed_total", 4.0)
        .await;
    assert_eq!(server.metric("p2p_signal_stun_requests_total").await, 3.0);
}

#[tokio::test]
async fn no_stun_means_no_answer() {
    // The config names a STUN port; --no-stun wins, and nothing answers there.
    let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap();
    drop(free);
    let server = Server::start_with(&format!("[stun]\nlisten = \"{port}\"\n"), &["--no-stun"]);
    assert!(server.stun.is_none());
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let request = MessageEncoder::new()
        .encode_into_bytes(Message::<Attribute>::new(
            MessageClass::Request,
            BINDING,
            TransactionId::new(rand_bytes()),
        ))
        .unwrap();
    socket.send_to(&request, port).await.unwrap();
    let mut buf = [0u8; 1500];
    let answer = tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await;
    assert!(!matches!(answer, Ok(Ok(_))), "something answered on {port}");
}

#[tokio::test]
async fn a_flood_from_one_source_is_cut_while_another_is_answered() {
    let server = Server::start("[stun]\nmax_requests_per_sec = 2\n");
    let stun = server.stun.unwrap();
    let flooder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    const SENT: usize = 100;
    for _ in 0..SENT {
        let request = MessageEncoder::new()
            .encode_into_bytes(Message::<Attribute>::new(
                MessageClass::Request,
                BINDING,
                TransactionId::new(rand_bytes()),
            ))
            .unwrap();
        flooder.send_to(&request, stun).await.unwrap();
    }
    // Answers come at once or not at all: read until the line goes quiet.
    let mut answered = 0;
    let mut buf = [0u8; 1500];
    while tokio::time::timeout(Duration::from_millis(500), flooder.recv_from(&mut buf))
        .await
        .is_ok()
    {
        answered += 1;
    }
    // Two a second, in bursts of two: a handful, however slow this machine is.
    assert!(answered >= 2, "{answered} answers");
    assert!(
        answered <= SENT / 4,
        "{answered} of {SENT} flooded requests answered"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.metric("p2p_signal_stun_rate_limited_total").await < (SENT / 2) as f64 {
        assert!(tokio::time::Instant::now() < deadline, "drops not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another source address is answered at once, with its own address.
    let other = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .unwrap();
    let me = other.local_addr().unwrap();
    let answer = ask(&other, stun, false).await;
    assert_eq!(
        answer
            .get_attribute::<XorMappedAddress>()
            .unwrap()
            .address(),
        me
    );
}
