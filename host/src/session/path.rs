//! Which network path a connection took: straight to the peer, or through a TURN relay, as the
//! ICE agent's selected candidate pair says. Users of croc and magic-wormhole expect to be told,
//! because a relay is slower and is a third party on the path.

use std::sync::Arc;

use webrtc::peer_connection::{PeerConnection, RTCStatsReportEntry, StatsSelector};

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
    /// The relayed address in use (`IP:PORT`), when the path is relayed: this side's relay if it
    /// uses one, else the peer's.
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
            Some(relay) if self.relayed => write!(f, "via relay {relay} ({})", self.protocol),
            _ => write!(
                f,
                "directly ({}, {} to {} {})",
                self.protocol, self.local, self.remote, self.remote_address
            ),
        }
    }
}

/// The path `peer_connection` uses now, if ICE has selected one. `relay_protocol` is how this
/// side reaches its TURN server (`udp`, `tcp` or `tls`), which webrtc-rs does not know when a
/// stream carries its datagrams.
pub async fn network_path(
    peer_connection: &Arc<dyn PeerConnection>,
    relay_protocol: &str,
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
    let local = candidate(&pair.local_candidate_id)?;
    let remote = candidate(&pair.remote_candidate_id)?;
    let address = |address: &Option<String>, port: u16| {
        format!("{}:{port}", address.as_deref().unwrap_or("?"))
    };
    let local_type = local.candidate_type.to_string();
    let remote_type = remote.candidate_type.to_string();
    let local_relayed = local_type == "relay";
    let relayed = local_relayed || remote_type == "relay";
    Some(NetworkPath {
        relayed,
        protocol: if local_relayed {
            relay_protocol.to_owned()
        } else {
            local.protocol.to_lowercase()
        },
        relay: relayed.then(|| {
            if local_relayed {
                address(&local.address, local.port)
            } else {
                address(&remote.address, remote.port)
            }
        }),
        local_address: address(&local.address, local.port),
        remote_address: address(&remote.address, remote.port),
        local: local_type,
        remote: remote_type,
    })
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
    }
}
