//! The host's integration tests: real sockets, a real signaling server, real WebRTC.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod cancel;
mod cli;
mod config_cli;
mod corpus;
mod daemon;
mod files;
mod hostile_peer;
mod init_cli;
mod lan;
mod no_route;
mod options;
mod plugins_cli;
mod plugins_sandbox;
mod scripts_cli;
mod session;
mod support;
mod tamper;
mod tamper_proxy;
mod trusted;
mod turn;
mod unreachable_servers;
