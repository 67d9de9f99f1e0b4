//! The lab's shape: an "internet" namespace (a bridge, the servers' public addresses) and sites,
//! each a NAT router namespace of one [`Kind`] with its hosts behind it.
//!
//! Addresses: the internet is 198.18.0.0/15 (RFC 2544's benchmarking range, never routed on the
//! real internet): 198.18.0.1 signaling and STUN, 198.18.0.2 TURN, 198.18.1.N the WAN address of
//! site N. Site N's LAN is 10.13.N.0/24, its router 10.13.N.1, its hosts .2 and .3. Every site's
//! LAN is a different /24, so a host candidate of one site never names a machine of another.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::net::{Netns, unique_prefix};
use crate::servers::{Coturn, Signaling};
use crate::wire;

/// The internet's bridge address, where the signaling server and its STUN listen; the routers'
/// default gateway.
pub const SIGNALING_IP: &str = "198.18.0.1";
/// Where coturn listens and relays.
pub const TURN_IP: &str = "198.18.0.2";
/// A next hop that no one answers for: the internet's default route, see [`Lab::new`].
const UPSTREAM_IP: &str = "198.18.0.254";

/// What kind of NAT a site's router is (RFC 4787 terms). Each is the router ruleset of
/// [`router_ruleset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Endpoint-independent mapping: plain `masquerade`, which keeps a socket's source port and
    /// so gives it the same public address and port towards every destination. Filtering is
    /// conntrack's: address-and-port-dependent (only replies to what went out come in).
    Cone,
    /// Endpoint-dependent mapping: `masquerade fully-random` gives each destination its own
    /// random public port, so what STUN saw is useless to the peer.
    Symmetric,
    /// A firewall that lets no UDP out to the internet, only TCP (as some corporate and hotel
    /// networks do); NAT as [`Kind::Cone`] otherwise.
    UdpBlocked,
    /// Two hosts on one LAN segment (a bridge) behind a [`Kind::Cone`] NAT: they must reach each
    /// other over their host candidates, as Linux does not hairpin.
    SameLan,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cone => "cone",
            Self::Symmetric => "symmetric",
            Self::UdpBlocked => "udp-blocked",
            Self::SameLan => "same-lan",
        }
    }
}

/// The nftables ruleset of a router of `kind`: a small home router's. Its stateful firewall on
/// the WAN (`input` drops what is not a reply) matters for hole punching, see
/// [`crate::matrix`]: without it an early check from the peer leaves a conntrack entry that
/// makes masquerade pick another port for the reply.
fn router_ruleset(kind: Kind) -> String {
    let masquerade = match kind {
        Kind::Symmetric => "masquerade fully-random",
        Kind::Cone | Kind::UdpBlocked | Kind::SameLan => "masquerade",
    };
    let udp = match kind {
        Kind::UdpBlocked => r#"oifname "wan" meta l4proto udp drop"#,
        Kind::Cone | Kind::Symmetric | Kind::SameLan => "",
    };
    format!(
        r#"
table ip router {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" {masquerade}
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        {udp}
        iifname "lan" oifname "wan" accept
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" drop
    }}
}}
"#
    )
}

/// The internet with its servers; sites are added with [`Lab::site`]. Dropping it stops the
/// servers, then deletes the internet namespace.
pub struct Lab {
    // Field order is drop order: the servers leave the namespace before it is deleted.
    pub signaling: Signaling,
    pub turn: Coturn,
    /// Where the servers run (the lab benchmark runs its TCP relay here too).
    pub internet: Netns,
    prefix: String,
    sites: AtomicU8,
    /// coturn's log, database and pid file.
    _dir: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Self {
        let prefix = unique_prefix();
        let internet = Netns::new(format!("{prefix}-inet"));
        internet.ip(&["link", "add", "inet", "type", "bridge"]);
        internet.ip(&["link", "set", "inet", "up"]);
        internet.ip(&["addr", "add", &format!("{SIGNALING_IP}/15"), "dev", "inet"]);
        internet.ip(&["addr", "add", &format!("{TURN_IP}/15"), "dev", "inet"]);
        // The internet routes nowhere else, yet it needs a default route: coturn, asked to relay
        // to a peer's private host candidate, closes the whole allocation when sendto fails with
        // "network unreachable" (the relay then never works). On the real internet such a packet
        // is dropped somewhere upstream, silently; here it goes to a next hop whose MAC no one
        // has, so the bridge floods it and every router ignores it.
        internet.ip(&[
            "neigh",
            "add",
            UPSTREAM_IP,
            "lladdr",
            "02:00:00:00:00:fe",
            "dev",
            "inet",
            "nud",
            "permanent",
        ]);
        internet.ip(&["route", "add", "default", "via", UPSTREAM_IP]);
        let dir = tempfile::tempdir().unwrap();
        let signaling = Signaling::start(&internet, SIGNALING_IP);
        let turn = Coturn::start(&internet, TURN_IP, dir.path());
        Self {
            signaling,
            turn,
            internet,
            prefix,
            sites: AtomicU8::new(0),
            _dir: dir,
        }
    }

    /// A new site of `kind` on the internet (two hosts for [`Kind::SameLan`], else one).
    pub fn site(&self, kind: Kind) -> Site {
        let n = self.sites.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(n < 250, "too many sites in one lab");
        let router = Netns::new(format!("{}-{}{n}", self.prefix, kind.name()));
        router.sysctl("net.ipv4.ip_forward", "1");
        let public = format!("198.18.1.{n}");

        // WAN: a veth from the router to a port of the internet's bridge.
        let port = format!("site{n}");
        router.ip(&[
            "link",
            "add",
            "wan",
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            self.internet.name(),
        ]);
        self.internet
            .ip(&["link", "set", &port, "master", "inet", "up"]);
        router.ip(&["addr", "add", &format!("{public}/15"), "dev", "wan"]);
        router.ip(&["link", "set", "wan", "up"]);
        router.ip(&["route", "add", "default", "via", SIGNALING_IP]);

        // LAN: a veth straight to the one host, or a bridge to two.
        let count = if kind == Kind::SameLan { 2 } else { 1 };
        if count > 1 {
            router.ip(&["link", "add", "lan", "type", "bridge"]);
        }
        let mut hosts = Vec::new();
        for i in 0..count {
            let host = Netns::new(format!("{}-{}{n}-h{i}", self.prefix, kind.name()));
            let (near, far) = if count > 1 {
                (format!("port{i}"), "eth0")
            } else {
                ("lan".to_owned(), "eth0")
            };
            router.ip(&[
                "link",
                "add",
                &near,
                "type",
                "veth",
                "peer",
                "name",
                far,
                "netns",
                host.name(),
            ]);
            if count > 1 {
                router.ip(&["link", "set", &near, "master", "lan", "up"]);
            }
            host.ip(&[
                "addr",
                "add",
                &format!("10.13.{n}.{}/24", i + 2),
                "dev",
                "eth0",
            ]);
            // A NIC puts each datagram on the wire as a packet of its own, and a router sees
            // them one by one; a veth would pass a socket's UDP GSO batch (webrtc-rs sends them)
            // through the router whole, as one packet, so the loss test's 1% would drop tens of
            // datagrams at a time. One segment per packet: the stack splits batches here.
            host.ip(&["link", "set", "eth0", "gso_max_segs", "1"]);
            host.ip(&["link", "set", "eth0", "up"]);
            host.ip(&["route", "add", "default", "via", &format!("10.13.{n}.1")]);
            hosts.push(host);
        }
        router.ip(&["addr", "add", &format!("10.13.{n}.1/24"), "dev", "lan"]);
        router.ip(&["link", "set", "lan", "up"]);
        router.nft(&router_ruleset(kind));
        router.nft(&wire::counters());
        Site { hosts, router }
    }
}

/// A NAT router and the hosts behind it; dropped, its namespaces go (and with them its veths,
/// their ends on the internet's bridge included).
pub struct Site {
    // Hosts before the router: drop order.
    pub hosts: Vec<Netns>,
    pub router: Netns,
}
