//! Frames no client should send: each gets an error frame naming what was wrong, then a close,
//! is counted, and leaves the server serving everyone else.

use futures_util::{SinkExt, StreamExt};
use p2p_signaling::Event;
use p2p_signaling::protocol::{ErrorKind, ServerMessage};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::common::{Server, expect_fatal, next_event, raw, raw_greeted};

#[tokio::test]
async fn bad_frames_get_an_error_then_a_close() {
    let server = Server::start("[limits]\nmax_frame_bytes = 4096\n");
    // A pair in a room all along, to show the bad clients do not disturb it.
    let (a, _a_events) = server.client().await;
    let (b, mut b_events) = server.client().await;
    let room = a.allocate().await.unwrap();
    b.join(&room).await.unwrap();

    let cases: Vec<(Message, ErrorKind, Option<u16>)> = vec![
        (Message::text("garbage"), ErrorKind::BadFrame, Some(1008)),
        (
            Message::text("{\"type\":\"shout\"}"),
            ErrorKind::BadFrame,
            Some(1008),
        ),
        (
            Message::text("{\"type\":\"allocate\",\"admin\":true}"),
            ErrorKind::BadFrame,
            Some(1008),
        ),
        (
            Message::text("{\"type\":\"join\",\"room\":\"../../etc\"}"),
            ErrorKind::BadFrame,
            Some(1008),
        ),
        (
            Message::text("{\"type\":\"join\"}"),
            ErrorKind::BadFrame,
            Some(1008),
        ),
        (
            Message::binary(vec![0u8, 1, 2, 3]),
            ErrorKind::BinaryFrame,
            Some(1003),
        ),
        (
            Message::text("x".repeat(5000)),
            ErrorKind::FrameTooLarge,
            Some(1009),
        ),
        (
            Message::Frame(Frame::message(
                vec![b'{', 0xff, 0xfe, b'}'],
                OpCode::Data(Data::Text),
                true,
            )),
            ErrorKind::BadFrame,
            Some(1008),
        ),
    ];
    for (frame, kind, code) in cases {
        let mut ws = raw_greeted(&server.url).await;
        ws.send(frame.clone()).await.unwrap();
        let (got, _, got_code) = expect_fatal(&mut ws).await;
        assert_eq!((got, got_code), (kind, code), "{frame:?}");
    }

    // Frames far over the bound are refused by the transport unread. The server answers and closes
    // while the client may still be writing the frame's body, so the client can see a reset before
    // it reads the answer; the server's count below is what proves the refusal.
    let mut ws = raw_greeted(&server.url).await;
    if ws.send(Message::text("y".repeat(1 << 20))).await.is_ok()
        && let Some(Ok(Message::Text(text))) = ws.next().await
    {
        let answer = ServerMessage::decode(&text).unwrap();
        assert!(
            matches!(&answer, ServerMessage::Error { kind: ErrorKind::FrameTooLarge, bound: Some(b), .. } if b == "max_frame_bytes"),
            "{answer:?}"
        );
    }

    // Speaking before hello, and in an unknown version.
    let mut ws = raw(&server.url).await;
    ws.send(Message::text("{\"type\":\"allocate\"}"))
        .await
        .unwrap();
    assert_eq!(expect_fatal(&mut ws).await.0, ErrorKind::HelloRequired);
    let mut ws = raw(&server.url).await;
    ws.send(Message::text("{\"type\":\"hello\",\"version\":2}"))
        .await
        .unwrap();
    assert_eq!(expect_fatal(&mut ws).await.0, ErrorKind::VersionMismatch);

    for (kind, count) in [
        ("bad_frame", 6.0),
        ("binary_frame", 1.0),
        ("frame_too_large", 2.0),
        ("hello_required", 1.0),
    ] {
        let name = format!("p2p_signal_rejects_total{{kind=\"{kind}\"}}");
        assert_eq!(server.metric(&name).await, count, "{name}");
    }
    a.send(&room, "unharmed").await.unwrap();
    assert_eq!(
        next_event(&mut b_events).await,
        Event::Message {
            room,
            payload: "unharmed".into()
        }
    );
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn plain_http_on_the_websocket_path_is_refused_politely() {
    let server = Server::start("");
    let (status, _) = server.get("/").await;
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(server.get("/nope").await.0, 404);
}
