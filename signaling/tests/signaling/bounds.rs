//! Every bound, set low in a config file, and what a client sees past it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use p2p_signaling::protocol::{ClientMessage, ErrorKind, RoomId, ServerMessage};
use p2p_signaling::{ClientError, ClientOptions, Event, SignalingClient};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Server, expect_fatal, next_event, next_frame, raw_greeted};

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

/// The request failed with `want`, naming the bound `key`.
fn refused(result: Result<impl std::fmt::Debug, ClientError>, want: ErrorKind, key: &str) {
    match result {
        Err(ClientError::Server { kind, bound, .. }) if kind == want => {
            assert_eq!(bound.as_deref(), Some(key));
        }
        other => panic!("wanted {want:?}, got {other:?}"),
    }
}

/// The connection was closed after the fatal error.
async fn closed(events: &mut p2p_signaling::ClientEvents, want: ErrorKind) {
    match next_event(events).await {
        Event::Closed { reason } => assert!(reason.starts_with(want.as_str()), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn max_rooms_per_connection() {
    let server = Server::start("[limits]\nmax_rooms_per_connection = 2\n");
    let (a, mut events) = server.client().await;
    a.allocate().await.unwrap();
    a.join(&room("side")).await.unwrap();
    refused(
        a.join(&room("third")).await,
        ErrorKind::TooManyRooms,
        "max_rooms_per_connection",
    );
    closed(&mut events, ErrorKind::TooManyRooms).await;
}

#[tokio::test]
async fn max_members_per_room() {
    let server = Server::start("[limits]\nmax_members_per_room = 3\n");
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.client().await);
    }
    let r = clients[0].0.allocate().await.unwrap();
    assert_eq!(clients[1].0.join(&r).await.unwrap(), 2);
    assert_eq!(clients[2].0.join(&r).await.unwrap(), 3);
    refused(
        clients[3].0.join(&r).await,
        ErrorKind::RoomFull,
        "max_members_per_room",
    );
    closed(&mut clients[3].1, ErrorKind::RoomFull).await;
    // With three members a payload reaches both others.
    clients[0].0.send(&r, "to all").await.unwrap();
    for (_, events) in &mut clients[1..3] {
        loop {
            if let Event::Message { payload, .. } = next_event(events).await {
                assert_eq!(payload, "to all");
                break;
            }
        }
    }
}

#[tokio::test]
async fn max_rooms_and_max_connections() {
    let server = Server::start("[limits]\nmax_rooms = 2\nmax_connections = 2\n");
    let (a, _a) = server.client().await;
    let (b, mut b_events) = server.client().await;
    a.allocate().await.unwrap();
    a.allocate().await.unwrap();
    refused(b.allocate().await, ErrorKind::ServerFull, "max_rooms");
    closed(&mut b_events, ErrorKind::ServerFull).await;
    // b was closed for that; a and a newcomer fill the two connections.
    let (_c, _c_events) = server.client().await;
    refused(
        SignalingClient::connect(&server.url, ClientOptions::default()).await,
        ErrorKind::TooManyConnections,
        "max_connections",
    );
    assert_eq!(
        server
            .metric("p2p_signal_rejects_total{kind=\"too_many_connections\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn max_connections_per_ip() {
    let server = Server::start("[limits]\nmax_connections_per_ip = 3\n");
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(server.client().await);
    }
    let result = SignalingClient::connect(&server.url, ClientOptions::default()).await;
    match result {
        Err(ClientError::Server {
            kind: ErrorKind::TooManyConnections,
            message,
            bound,
        }) => {
            assert!(message.contains("127.0.0.1"), "{message}");
            assert_eq!(bound.as_deref(), Some("max_connections_per_ip"));
        }
        other => panic!("{other:?}"),
    }
    open.pop();
    server.wait_metric("p2p_signal_connections", 2.0).await;
    server.client().await;
}

#[tokio::test]
async fn room_ttl_secs() {
    let server = Server::start("[limits]\nroom_ttl_secs = 1\n");
    let (a, mut events) = server.client().await;
    let r = a.allocate().await.unwrap();
    match next_event(&mut events).await {
        Event::Error {
            kind: ErrorKind::RoomExpired,
            room: Some(expired),
            fatal: false,
            ..
        } => {
            assert_eq!(expired, r);
        }
        other => panic!("{other:?}"),
    }
    // The connection outlives its room.
    assert_eq!(a.allocate().await.unwrap(), r);
}

#[tokio::test]
async fn idle_timeout_secs() {
    let server = Server::start("[limits]\nidle_timeout_secs = 2\n");
    let mut silent = raw_greeted(&server.url).await;
    let (kind, bound, code) = expect_fatal(&mut silent).await;
    assert_eq!(
        (kind, bound.as_deref(), code),
        (
            ErrorKind::IdleTimeout,
            Some("idle_timeout_secs"),
            Some(1000)
        )
    );

    // The library client pings often enough to stay.
    let (a, _events) = server.client().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    a.allocate().await.unwrap();
}

#[tokio::test]
async fn max_messages_per_sec() {
    let server = Server::start("[limits]\nmax_messages_per_sec = 20\n");
    let (a, _a_events) = server.client().await;
    let (b, mut b_events) = server.client().await;
    let r = a.allocate().await.unwrap();
    b.join(&r).await.unwrap();

    let mut flood = raw_greeted(&server.url).await;
    let frame = Message::text(r#"{"type":"join","room":"flood"}"#);
    for _ in 0..200 {
        if flood.feed(frame.clone()).await.is_err() {
            break;
        }
    }
    let _ = flood.flush().await;
    let (kind, bound, _) = expect_fatal(&mut flood).await;
    assert_eq!(
        (kind, bound.as_deref()),
        (ErrorKind::RateLimited, Some("max_messages_per_sec"))
    );

    a.send(&r, "calm").await.unwrap();
    assert_eq!(
        next_event(&mut b_events).await,
        Event::Message {
            room: r,
            payload: "calm".into()
        }
    );
    assert_eq!(
        server
            .metric("p2p_signal_rejects_total{kind=\"rate_limited\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn max_queued_frames_drops_a_slow_reader() {
    slow_reader_is_dropped("max_queued_frames = 32\nmax_queued_bytes = 100000000\n").await;
}

#[tokio::test]
async fn max_queued_bytes_drops_a_slow_reader() {
    slow_reader_is_dropped("max_queued_frames = 100000\nmax_queued_bytes = 200000\n").await;
}

async fn slow_reader_is_dropped(queue_limits: &str) {
    let server = Server::start(&format!(
        "[limits]\n{queue_limits}max_messages_per_sec = 100000\nmax_frame_bytes = 65536\n"
    ));
    // The sender is raw, so it sends in small batches and stops as soon as the peer is gone.
    let mut sender = raw_greeted(&server.url).await;
    sender
        .send(Message::text(r#"{"type":"allocate"}"#))
        .await
        .unwrap();
    let room = match next_frame(&mut sender).await {
        Some(ServerMessage::Allocated { room, .. }) => room,
        other => panic!("{other:?}"),
    };
    // Joins, then never reads again.
    let mut slow = raw_greeted(&server.url).await;
    slow.send(Message::text(format!(
        r#"{{"type":"join","room":"{room}"}}"#
    )))
    .await
    .unwrap();
    assert!(matches!(
        next_frame(&mut sender).await,
        Some(ServerMessage::PeerJoined { .. })
    ));

    // A bystander pair, to show the slow reader holds up nobody else.
    let (c, _c_events) = server.client().await;
    let (d, mut d_events) = server.client().await;
    let side = c.allocate().await.unwrap();
    d.join(&side).await.unwrap();

    let payload = ClientMessage::Send {
        room: room.clone(),
        payload: "p".repeat(60_000),
        id: None,
    };
    let frame = Message::text(payload.encode());
    let mut left = false;
    for _ in 0..500 {
        for _ in 0..8 {
            sender.feed(frame.clone()).await.unwrap();
        }
        sender.flush().await.unwrap();
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(1), sender.next()).await
        {
            // The only frame the server sends the sender is the news that the reader is gone.
            match ServerMessage::decode(&text).unwrap() {
                ServerMessage::PeerLeft { room: gone } => assert_eq!(gone, room),
                other => panic!("{other:?}"),
            }
            left = true;
            break;
        }
    }
    if !left {
        assert!(matches!(
            next_frame(&mut sender).await,
            Some(ServerMessage::PeerLeft { .. })
        ));
    }
    c.send(&side, "flowing").await.unwrap();
    assert_eq!(
        next_event(&mut d_events).await,
        Event::Message {
            room: side,
            payload: "flowing".into()
        }
    );
    assert_eq!(
        server
            .metric("p2p_signal_rejects_total{kind=\"slow_reader\"}")
            .await,
        1.0
    );
    drop(slow);
}

/// Open file descriptors of the server process.
fn server_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
        .unwrap()
        .count()
}

#[tokio::test]
async fn a_closed_connection_is_let_go_even_when_its_client_does_not_read() {
    // Writes would block for a minute before the server gave up on them.
    let server = Server::start(
        "[limits]\nwrite_timeout_secs = 60\nmax_messages_per_sec = 100000\nmax_queued_frames = 4096\nmax_queued_bytes = 100000000\n",
    );
    let (sender, _sender_events) = server.client().await;
    let room = sender.allocate().await.unwrap();
    let baseline = server_fds(&server);

    let mut stuck = raw_greeted(&server.url).await;
    stuck
        .send(Message::text(format!(
            r#"{{"type":"join","room":"{room}"}}"#
        )))
        .await
        .unwrap();
    // Fill its socket buffers and its queue: it never reads.
    for _ in 0..400 {
        sender.send(&room, "q".repeat(60_000)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A bad frame: the hub closes the connection; its queued frames cannot leave.
    stuck.send(Message::text("garbage")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while server_fds(&server) > baseline {
        assert!(
            std::time::Instant::now() < deadline,
            "the server still holds the closed connection"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stuck);
}

#[tokio::test]
async fn sockets_that_never_upgrade_count_against_their_address() {
    use tokio::io::AsyncReadExt;
    let server = Server::start("[limits]\nmax_connections_per_ip = 3\n");
    let addr = server.url.trim_start_matches("ws://").to_owned();
    // Three sockets that connect and say nothing fill 127.0.0.1's slots.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), fourth.read(&mut buf))
        .await
        .expect("the fourth socket was neither served nor closed");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the fourth socket got {read:?}"
    );
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        server
            .metric("p2p_signal_rejects_total{kind=\"too_many_connections\"}")
            .await
            >= 1.0
    );
    server.client().await;
}

#[tokio::test]
async fn a_socket_that_sends_no_request_is_closed() {
    use tokio::io::AsyncReadExt;
    let server = Server::start("");
    let addr = server.url.trim_start_matches("ws://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 256];
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf))
        .await
        .expect("the server kept a silent socket open for 20 s");
    assert!(
        !matches!(read, Ok(n) if n > 0 && !buf.starts_with(b"HTTP/1.1 408")),
        "{read:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed too early"
    );
}
