//! Which network path a connection took: straight to the peer, or through a TURN relay, as the
//! ICE agent's selected candidate pair says. Users of croc and magic-wormhole expect to be told,
//! because a relay is slower and is a third party on the path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidate, RTCIceCandidateType, RTCStatsReportEntry, StatsSelector,
};

/// The TURN URL each of a connection's relayed candidates came from, by the candidate's
/// address; a shim's loopback URL (TURN over TCP or TLS) is renamed to the relay's own.
#[derive(Debug, Clone, Default)]
pub(super) struct RelayUrls(Arc<Mutex<HashMap<String, String>>>);

impl RelayUrls {
    /// `candidate` was gathered through `url`.
    pub(super) fn note(&self, candidate: &RTCIceCandidate, url: &str) {
        if candidate.typ == RTCIceCandidateType::Relay {
            self.lock().insert(
                format!("{}:{}", candidate.address, candidate.port),
                url.to_owned(),
            );
        }
    }

    /// The relay webrtc-rs reaches at `local` (a shim's address) is really `url`.
    pub(super) fn rename(&self, local: &str, url: &str) {
        for seen in self.lock().values_mut() {
            if seen.contains(local) {
                url.clone_into(seen);
            }
        }
    }

    fn url_of(&self, address: &str) -> Option<String> {
        self.lock().get(address).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a connection reaches its peer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetworkPath {
    /// `true` when either side's candidate is a relay's.
    pub relayed: bool,
    /// This side's candidate type: `host`, `srflx` (its NAT's public address), `prflx` (learnt
    /// from the peer's checks) or `relay`.
    pub local: String,
    /// The peer's candidate type, as `local`.
    pub remote: String,
    /// `udp`, or how this side reaches its relay (`udp`, `tcp` or `tls`).
    pub protocol: String,
    /// The relay in use, when the path is relayed: this side's, as its TURN URL, or else the
    /// peer's relayed address (`IP:PORT`).
    pub relay: Option<String>,
    /// This side's address on the path (for a relayed candidate, the relay's).
    pub local_address: String,
    /// The peer's address on the path, as this side sends to it.
    pub remote_address: String,
}

impl NetworkPath {
    /// `direct` or `relay`, as the JSON event says it.
    pub fn kind(&self) -> &'static str {
        if self.relayed { "relay" } else { "direct" }
    }
}

impl std::fmt::Display for NetworkPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.relay {
            Some(relay) if self.relayed => {
                // `turns:HOST:PORT?transport=…` reads as HOST:PORT.
                let host = relay
                    .split_once(':')
                    .map_or(relay.as_str(), |(scheme, rest)| {
                        if scheme.starts_with("turn") {
                            rest
                        } else {
                            relay
                        }
                    });
                let host = host.split('?').next().unwrap_or(host);
                write!(f, "via relay {host} ({})", self.protocol)
            }
            _ => write!(
                f,
                "directly ({}, {} to {} {})",
                self.protocol, self.local, self.remote, self.remote_address
            ),
        }
    }
}

/// The path `peer_connection` uses now, if ICE has selected one; `relays` names the TURN server
/// behind each of its relayed candidates.
pub(super) async fn network_path(
    peer_connection: &Arc<dyn PeerConnection>,
    relays: &RelayUrls,
) -> Option<NetworkPath> {
    let report = peer_connection
        .get_stats(std::time::Instant::now(), StatsSelector::None)
        .await;
    let selected = report.iter().find_map(|entry| match entry {
        RTCStatsReportEntry::Transport(transport)
            if !transport.selected_candidate_pair_id.is_empty() =>
        {
            Some(transport.selected_candidate_pair_id.clone())
        }
        _ => None,
    });
    // Without a transport's word, the nominated pair that succeeded.
    let pair = report.iter().find_map(|entry| match entry {
        RTCStatsReportEntry::IceCandidatePair(pair)
            if selected
                .as_deref()
                .map_or(pair.nominated, |id| pair.stats.id == id) =>
        {
            Some(pair)
        }
        _ => None,
    })?;
    // A pair names its candidates by their own ids; their stats carry those ids after a prefix.
    let candidate = |id: &str| {
        report.iter().find_map(|entry| match entry {
            RTCStatsReportEntry::LocalCandidate(c) | RTCStatsReportEntry::RemoteCandidate(c)
                if c.stats.id == id || c.stats.id.ends_with(&format!("_{id}")) =>
            {
                Some(c)
            }
            _ => None,
        })
    };
    // A candidate learnt from the peer's checks (peer-reflexive, before or without its
    // signalled twin) may have no stats of its own.
    let side = |id: &str| match candidate(id) {
        Some(c) => Side {
            kind: c.candidate_type.to_string(),
            address: format!("{}:{}", c.address.as_deref().unwrap_or("?"), c.port),
            protocol: c.protocol.to_lowercase(),
        },
        None => {
            tracing::debug!(id, "no stats for a candidate of the selected pair");
            Side {
                kind: "prflx".into(),
                address: "?".into(),
                protocol: "udp".into(),
            }
        }
    };
    let local = side(&pair.local_candidate_id);
    let remote = side(&pair.remote_candidate_id);
    let local_relayed = local.kind == "relay";
    let relayed = local_relayed || remote.kind == "relay";
    let relay_url = local_relayed
        .then(|| relays.url_of(&local.address))
        .flatten();
    Some(NetworkPath {
        relayed,
        // webrtc-rs speaks UDP to every relay; the URL says how the datagrams travel.
        protocol: match &relay_url {
            Some(url) => relay_protocol(url).to_owned(),
            None => local.protocol,
        },
        relay: relayed.then(|| match relay_url {
            Some(url) => url,
            None if local_relayed => local.address.clone(),
            None => remote.address.clone(),
        }),
        local_address: local.address,
        remote_address: remote.address,
        local: local.kind,
        remote: remote.kind,
    })
}

/// One end of the selected pair.
struct Side {
    kind: String,
    address: String,
    protocol: String,
}

/// How a TURN URL's client reaches its server: `tls` for `turns:`, `tcp` for
/// `?transport=tcp`, else `udp`.
pub fn relay_protocol(url: &str) -> &'static str {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("turns:") {
        "tls"
    } else if lower.contains("transport=tcp") {
        "tcp"
    } else {
        "udp"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_name_their_transport() {
        assert_eq!(relay_protocol("turn:relay.example:3478"), "udp");
        assert_eq!(
            relay_protocol("turn:relay.example:3478?transport=udp"),
            "udp"
        );
        assert_eq!(
            relay_protocol("turn:relay.example:3478?transport=tcp"),
            "tcp"
        );
        assert_eq!(relay_protocol("TURNS:relay.example:5349"), "tls");
    }

    #[test]
    fn the_text_says_direct_or_names_the_relay() {
        let mut path = NetworkPath {
            relayed: false,
            local: "srflx".into(),
            remote: "host".into(),
            protocol: "udp".into(),
            relay: None,
            local_address: "198.18.0.2:4000".into(),
            remote_address: "198.18.0.3:5000".into(),
        };
        assert_eq!(path.kind(), "direct");
        assert_eq!(
            path.to_string(),
            "directly (udp, srflx to host 198.18.0.3:5000)"
        );
        path.relayed = true;
        path.local = "relay".into();
        path.protocol = "tcp".into();
        path.relay = Some("198.18.0.1:49152".into());
        assert_eq!(path.kind(), "relay");
        assert_eq!(path.to_string(), "via relay 198.18.0.1:49152 (tcp)");
        path.relay = Some("turn:relay.example:3478?transport=tcp".into());
        assert_eq!(path.to_string(), "via relay relay.example:3478 (tcp)");
    }
}
