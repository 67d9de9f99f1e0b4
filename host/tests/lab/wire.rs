//! The path a transfer took, as the network saw it: nftables counters in each router count what
//! its hosts send out to the relay and to other sites, and what their LAN bridge carries between
//! two hosts. This does not rely on p2phost's own report (its `path` event), so the two can be
//! checked against each other.

use crate::net::Netns;
use crate::topology::TURN_IP;

/// Counters added to every router, counted after its firewall (postrouting), so what it drops is
/// not counted. `relay`: anything to the TURN server (to its port, or to a relayed address on
/// it); `direct`: UDP to another site's public address; `lan`: frames bridged host to host.
pub fn counters() -> String {
    format!(
        r#"
table ip wire {{
    counter relay {{}}
    counter direct {{}}
    chain postrouting {{
        type filter hook postrouting priority 300; policy accept;
        oifname "wan" ip daddr {TURN_IP} counter name "relay"
        oifname "wan" ip daddr 198.18.1.0/24 meta l4proto udp counter name "direct"
    }}
}}
table bridge wire {{
    counter lan {{}}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        counter name "lan"
    }}
}}
"#
    )
}

/// The path data took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Peer to peer: between two sites' public addresses, or across one LAN.
    Direct,
    /// Through the TURN server.
    Relay,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Relay => "relay",
        }
    }
}

/// Bytes a router counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counted {
    pub relay: u64,
    pub direct: u64,
    pub lan: u64,
}

impl Counted {
    /// Reads `router`'s counters.
    pub fn read(router: &Netns) -> Self {
        Self {
            relay: counter(router, "ip", "wire", "relay").bytes,
            direct: counter(router, "ip", "wire", "direct").bytes,
            lan: counter(router, "bridge", "wire", "lan").bytes,
        }
    }

    /// The path that carried at least `payload` bytes out of the sender's router, if one did.
    pub fn path(self, payload: u64) -> Option<Path> {
        if self.relay >= payload {
            Some(Path::Relay)
        } else if self.direct >= payload || self.lan >= payload {
            Some(Path::Direct)
        } else {
            None
        }
    }
}

/// What a named nftables counter counted.
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Reads the named counter `FAMILY TABLE NAME` in `ns`.
pub fn counter(ns: &Netns, family: &str, table: &str, name: &str) -> Counter {
    let json = ns.nft_output(&["-j", "list", "counter", family, table, name]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|item| {
            let counter = &item["counter"];
            Some(Counter {
                packets: counter["packets"].as_u64()?,
                bytes: counter["bytes"].as_u64()?,
            })
        })
        .unwrap_or_else(|| panic!("no counter {family} {table} {name} in {json}"))
}
