//! SIGTERM and SIGINT: members get a close frame, and the process exits 0 within 5 s.

use std::process::Command;
use std::time::{Duration, Instant};

use p2p_signaling::Event;

use crate::common::{Server, next_event};

async fn stops_cleanly_on(signal: &str) {
    let mut server = Server::start("");
    let (a, mut a_events) = server.client().await;
    let (b, mut b_events) = server.client().await;
    let room = a.allocate().await.unwrap();
    b.join(&room).await.unwrap();
    assert!(matches!(
        next_event(&mut a_events).await,
        Event::PeerJoined { .. }
    ));

    let started = Instant::now();
    let status = Command::new("kill")
        .args([signal, &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for events in [&mut a_events, &mut b_events] {
        match next_event(events).await {
            Event::Closed { reason } => assert!(reason.contains("shutting_down"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn sigterm_closes_members_and_exits_zero() {
    stops_cleanly_on("-TERM").await;
}

#[tokio::test]
async fn sigint_closes_members_and_exits_zero() {
    stops_cleanly_on("-INT").await;
}
