//! # p2p-signaling
//!
//! The signaling server of p2phost and its client. Two peers that want a WebRTC data channel
//! between them meet in a *room* on this server and exchange offers, answers and ICE candidates
//! through it. The server relays those payloads without reading them (peers seal them with a key
//! the server never learns), stores nothing, and bounds everything a client can make it do. An
//! embedded STUN responder tells peers their public address.
//!
//! - [`protocol`]: the JSON frames ([`protocol::ClientMessage`], [`protocol::ServerMessage`]), the
//!   bounds ([`protocol::Limits`]), the pair rooms only their two hosts may enter
//!   ([`protocol::pair_room`](mod@protocol::pair_room)) and the sans-IO [`protocol::Hub`] that decides what each frame
//!   causes. `signaling/PROTOCOL.md` describes the wire format with an example per message.
//! - [`server`]: [`SignalingServer`], which runs the hub behind axum's WebSocket, with `/healthz`,
//!   `/metrics` and optional TLS.
//! - [`stun`]: the STUN Binding responder.
//! - [`client`]: [`SignalingClient`], the client the host uses.
//! - [`config`]: [`ServerConfig`], read from TOML.
//!
//! ## The hub as a state machine
//!
//! The hub owns no socket and no clock. Feed it events with the time, and carry out its outputs:
//!
//! ```
//! use std::net::Ipv4Addr;
//! use std::time::Instant;
//! use p2p_signaling::protocol::{ClientMessage, Hub, Inbound, Limits, Nonce, Output, ServerMessage};
//!
//! let mut hub = Hub::new(Limits::default());
//! let now = Instant::now();
//! let mut out = Vec::new();
//! // Each connection gets a fresh random nonce, which its `welcome` carries.
//! let nonce = Nonce::random().expect("the system's random generator");
//! let a = hub.connect(Ipv4Addr::LOCALHOST.into(), nonce, now).expect("room for one connection");
//! hub.handle(a, Inbound::Text(ClientMessage::decode(r#"{"type":"hello","version":1}"#, 1024)), now, &mut out);
//! hub.handle(a, Inbound::Text(ClientMessage::decode(r#"{"type":"allocate"}"#, 1024)), now, &mut out);
//! assert!(matches!(&out[1], Output::Send { message: ServerMessage::Allocated { .. }, .. }));
//! // A server loop would now send each output's frame, and call `hub.handle_timeout(now, &mut out)`
//! // at `hub.poll_timeout()`.
//! ```
//!
//! ## Running a server and two clients
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use p2p_signaling::{ClientOptions, Event, ServerConfig, SignalingClient, SignalingServer};
//!
//! let server = SignalingServer::bind(&ServerConfig::default()).await?;
//! let url = server.url();
//! tokio::spawn(server.run(std::future::pending()));
//!
//! let (sender, mut sender_events) = SignalingClient::connect(&url, ClientOptions::default()).await?;
//! let room = sender.allocate().await?; // "1": the nameplate of a code
//! let (receiver, mut receiver_events) = SignalingClient::connect(&url, ClientOptions::default()).await?;
//! receiver.join(&room).await?;
//! assert!(matches!(sender_events.next().await, Some(Event::PeerJoined { .. })));
//! sender.send(&room, "sealed offer").await?;
//! assert!(matches!(receiver_events.next().await, Some(Event::Message { .. })));
//! # Ok(()) }
//! ```

pub mod client;
pub mod config;
pub mod protocol;
pub mod server;
pub mod stun;

pub use client::{ClientError, ClientEvents, ClientOptions, Event, SignalingClient};
pub use config::{ServerConfig, TurnConfig};
pub use server::{ServerError, SignalingServer};
