//! # p2phost
//!
//! The runtime of p2phost: it moves files between two peers over a WebRTC data channel that a
//! signaling server introduced, authenticated by a short code the server never learns.
//!
//! This crate grows issue by issue. Present so far:
//! - [`code`]: transfer codes (`7-guitar-orbit`), the SPAKE2 handshake over them, and the sealing of
//!   every later signaling payload with the derived keys, so a malicious signaling server can neither
//!   read nor alter nor replay what the peers exchange.
//! - [`store`]: files on disk as the receiver writes them: every path from a peer validated before it
//!   touches disk, data written to `NAME.part`, verified, synced and renamed without ever replacing a
//!   file unless told to, and resumed from the last verified chunk group.
//! - [`session`]: two peers meeting on the signaling server, authenticating with the code, and
//!   opening a WebRTC data channel whose offer and answer travel sealed.
//! - [`oneshot`]: `send` and `receive`, the session and the peer protocol put together.
//! - [`hooks`]: the transfer lifecycle hooks, run by sandboxed WASM plugins and Lua scripts.
//! - [`config`]: the config file, its errors located at line and column.
//! - [`daemon`]: `p2phost run`: watch folders synced with trusted peers.
//! - [`identity`]: a daemon's persistent certificate and the peer id derived from it.
//! - [`sync`]: watch-folder sync: patterns, routing, the queue.
//! - [`transfer`]: the peer protocol over the data channel, as sans-IO state machines for the
//!   sending and the receiving side, and its wire frames.

pub mod code;
pub mod config;
pub mod daemon;
pub mod hooks;
pub mod identity;
pub mod oneshot;
pub mod session;
pub mod store;
pub mod sync;
pub mod transfer;
