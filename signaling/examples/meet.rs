//! Two peers meet through a running `p2p-signal`, as `p2phost send` and `receive` will: a nameplate,
//! a join, payloads both ways, a third party refused, and a STUN query. Used by `./demo.sh`.
//!
//! `cargo run --example meet -- ws://127.0.0.1:8787 127.0.0.1:3478`

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use p2p_signaling::{ClientOptions, Event, SignalingClient};
use rtc_stun::message::{BINDING_REQUEST, Getter, Message, Setter, TransactionId};
use rtc_stun::xoraddr::XorMappedAddress;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:8787".into());
    let stun: Option<SocketAddr> = args.next().map(|a| a.parse()).transpose()?;

    let (alice, mut alice_events) = SignalingClient::connect(&url, ClientOptions::default())
        .await
        .with_context(|| format!("while connecting to {url}"))?;
    let room = alice.allocate().await?;
    println!("alice: got nameplate {room} (a code would read {room}-guitar-orbit)");

    let (bob, mut bob_events) = SignalingClient::connect(&url, ClientOptions::default()).await?;
    let members = bob.join(&room).await?;
    println!("bob:   joined room {room}, {members} members");
    expect(&mut alice_events, "peer_joined").await?;
    println!("alice: bob is here");

    alice.send(&room, "<sealed SDP offer>").await?;
    let offer = expect(&mut bob_events, "message").await?;
    println!("bob:   received {offer:?}");
    bob.send(&room, "<sealed SDP answer>").await?;
    let answer = expect(&mut alice_events, "message").await?;
    println!("alice: received {answer:?}");

    let (eve, _events) = SignalingClient::connect(&url, ClientOptions::default()).await?;
    match eve.join(&room).await {
        Ok(_) => bail!("a third member got into room {room}"),
        Err(e) => println!("eve:   refused: {e}"),
    }

    if let Some(stun) = stun {
        let me = ask_stun(stun).await?;
        println!("stun:  {stun} says this socket is seen as {me}");
    }
    bob.close().await;
    expect(&mut alice_events, "peer_left").await?;
    println!("alice: bob left; the server kept nothing");
    Ok(())
}

async fn expect(events: &mut p2p_signaling::ClientEvents, what: &str) -> anyhow::Result<String> {
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .with_context(|| format!("no {what} within 5 s"))?;
    match event {
        Some(Event::Message { payload, .. }) if what == "message" => Ok(payload),
        Some(Event::PeerJoined { .. }) if what == "peer_joined" => Ok(String::new()),
        Some(Event::PeerLeft { .. }) if what == "peer_left" => Ok(String::new()),
        other => bail!("expected {what}, got {other:?}"),
    }
}

async fn ask_stun(server: SocketAddr) -> anyhow::Result<SocketAddr> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let mut request = Message::new();
    let setters: Vec<Box<dyn Setter>> =
        vec![Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)];
    request.build(&setters)?;
    socket.send_to(&request.raw, server).await?;
    let mut buf = [0u8; 1500];
    let (len, _) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf))
        .await
        .context("no STUN answer within 3 s")??;
    let mut answer = Message::new();
    answer.unmarshal_binary(&buf[..len])?;
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&answer)?;
    Ok(SocketAddr::new(mapped.ip, mapped.port))
}
