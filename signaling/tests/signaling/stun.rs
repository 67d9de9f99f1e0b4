//! The embedded STUN responder, checked with a STUN codec we did not write (`stun_codec`).

use std::net::SocketAddr;
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
