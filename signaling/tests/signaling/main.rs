//! End-to-end tests: each starts the real `p2p-signal` binary on port 0 and talks to it over real
//! sockets. One test binary for the whole area keeps link time down.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod bad_input;
mod bounds;
mod cli;
mod common;
mod corpus;
mod http;
mod many_connections;
mod relay;
mod shutdown;
mod squatters;
mod stun;
mod tls;
mod turn;
