//! A thousand concurrent connections open and close, and the server is as it was.

use futures_util::future::join_all;
use p2p_signaling::Event;

use crate::common::{Server, next_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_come_and_go() {
    const N: usize = 1000;
    // Every client is 127.0.0.1: 500 receivers joining their codes at once.
    let server = Server::start(
        "[limits]\nmax_connections_per_ip = 2000\nmax_nameplate_joins_per_min = 1000\n",
    );
    let clients = join_all((0..N).map(|_| server.client())).await;
    server.wait_metric("p2p_signal_connections", N as f64).await;

    // Half of them pair up in rooms while all are open.
    let mut pairs = Vec::new();
    for pair in clients.chunks(2) {
        let room = pair[0].0.allocate().await.unwrap();
        pair[1].0.join(&room).await.unwrap();
        pairs.push(room);
    }
    assert_eq!(server.metric("p2p_signal_rooms").await, (N / 2) as f64);
    assert_eq!(
        pairs.iter().filter_map(|r| r.nameplate_number()).max(),
        Some((N / 2) as u32)
    );

    join_all(clients.iter().map(|(c, _)| c.close())).await;
    drop(clients);
    server.wait_metric("p2p_signal_connections", 0.0).await;
    server.wait_metric("p2p_signal_rooms", 0.0).await;

    // Still answering, and nameplates start again from 1.
    assert_eq!(server.get("/healthz").await.0, 200);
    let (a, _a_events) = server.client().await;
    let (b, mut b_events) = server.client().await;
    let room = a.allocate().await.unwrap();
    assert_eq!(room.as_str(), "1");
    b.join(&room).await.unwrap();
    a.send(&room, "after the crowd").await.unwrap();
    assert_eq!(
        next_event(&mut b_events).await,
        Event::Message {
            room,
            payload: "after the crowd".into()
        }
    );
}
