//! `/healthz` and `/metrics`.

use crate::common::Server;

#[tokio::test]
async fn healthz_and_metrics() {
    let server = Server::start("");
    assert_eq!(server.get("/healthz").await, (200, "ok\n".to_owned()));

    let (a, _a_events) = server.client().await;
    let (b, _b_events) = server.client().await;
    let room = a.allocate().await.unwrap();
    b.join(&room).await.unwrap();
    a.send(&room, "12345").await.unwrap();
    b.send(&room, "678").await.unwrap();
    server
        .wait_metric("p2p_signal_relayed_bytes_total", 8.0)
        .await;

    let (status, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "p2p_signal_connections 2",
        "p2p_signal_connections_opened_total 2",
        "p2p_signal_rooms 1",
        "p2p_signal_relayed_messages_total 2",
        "p2p_signal_relayed_bytes_total 8",
        "# TYPE p2p_signal_rejects counter",
        "p2p_signal_rejects_total{kind=\"room_full\"} 0",
        "p2p_signal_stun_requests_total 0",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from\n{text}"
        );
    }
}
