//! The NAT lab (issue 13 §1): network namespaces, veth pairs, bridges and nftables, built and torn
//! down by the tests themselves, with real `p2phost` processes sending across them.
//!
//! ```text
//!            internet namespace: bridge "inet", 198.18.0.0/15 (RFC 2544 benchmarking range)
//!            198.18.0.1  p2p-signal (ws :8787) + its STUN (:3478)
//!            198.18.0.2  coturn (UDP and TCP :3478)
//!        ┌──────────────┬──────────────────┬───────────────────┐
//!   198.18.1.1     198.18.1.2          198.18.1.3          198.18.1.N      one NAT router per site,
//!     cone          symmetric          udp-blocked          same-lan       its WAN a veth on the bridge
//!   10.13.1.0/24   10.13.2.0/24       10.13.3.0/24       10.13.N.0/24     its LAN: a veth to one host,
//!      host            host               host           host   host      or a bridge to two
//! ```
//!
//! Needs root (network namespaces), `ip` (iproute2), `nft` (nftables) and `turnserver` (coturn),
//! which `test.sh` installs. Without root every test says so loudly and passes: CI runs as root.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    missing_docs,
    unreachable_pub
)]

mod daemon;
mod loss;
mod matrix;
mod net;
mod network_change;
mod peer;
mod servers;
mod topology;
mod wire;

/// Whether the lab can be built here: true when root. Otherwise says loudly why the test is
/// skipped (CI runs as root, so there the lab always runs).
pub fn can_build_lab(test: &str) -> bool {
    // The effective uid, the second field of `Uid:` in /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        eprintln!(
            "\n*** SKIPPED {test}: the NAT lab needs root (network namespaces); run as root, as CI does ***\n"
        );
    }
    root
}
