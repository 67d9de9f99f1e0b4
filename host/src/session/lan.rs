//! LAN mode: two machines on one network and no signaling server anywhere. The sender serves
//! signaling itself (the server is a library) on every interface, and announces it over
//! mDNS/DNS-SD as a `_p2phost._tcp` service whose TXT record names the code's nameplate; the
//! receiver browses for that nameplate and joins the room there. Nothing else changes: the PAKE
//! over the code, the sealed descriptions, the DTLS data channel.
//!
//! The announcement carries the nameplate only, never anything derived from the words, so a
//! listener on the LAN learns no more than a signaling server would. A host that announces the
//! same nameplate can at most spend the sender's one guess, as a hostile server can; two hosts
//! that announce it make the receiver stop and say so rather than pick one.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use p2p_signaling::{ServerConfig, SignalingServer};

use super::SessionError;

/// The DNS-SD service type p2phost senders announce.
const SERVICE_TYPE: &str = "_p2phost._tcp.local.";
/// The TXT key holding the nameplate.
const NAMEPLATE_KEY: &str = "nameplate";
/// How long the receiver looks for the sender.
pub(super) const SEARCH_TIME: Duration = Duration::from_secs(5);
/// How long the receiver keeps listening after the first answer, to notice a second sender with
/// the same nameplate.
const SETTLE_TIME: Duration = Duration::from_millis(500);
/// Nameplates a LAN sender picks from at random: two digits, so the code stays as short as a
/// server's, and two senders on one network rarely pick the same.
pub(super) const LAN_NAMEPLATES: std::ops::RangeInclusive<u32> = 10..=99;

/// A sender's own signaling server and its announcement; both end when this is dropped.
pub(super) struct LanServer {
    url: String,
    server: tokio::task::JoinHandle<()>,
    mdns: ServiceDaemon,
}

impl std::fmt::Debug for LanServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl LanServer {
    /// Serves signaling on every interface and announces it for `nameplate`.
    pub(super) async fn start(nameplate: u32) -> Result<Self, SessionError> {
        let mut config = ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            ..ServerConfig::default()
        };
        // Peers on one LAN connect over their host candidates: no STUN needed.
        config.stun.enabled = false;
        let server = SignalingServer::bind(&config)
            .await
            .map_err(|e| lan_error(format!("cannot serve signaling on this host: {e}")))?;
        let port = server.local_addr().port();
        let server = tokio::spawn(server.run(std::future::pending()));
        let mdns = ServiceDaemon::new()
            .map_err(|e| lan_error(format!("cannot start mDNS on this host: {e}")))?;
        let tag = format!("{:08x}", rand_u32());
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &format!("p2phost {nameplate} {tag}"),
            &format!("p2phost-{tag}.local."),
            "",
            port,
            [(NAMEPLATE_KEY, nameplate.to_string())].as_slice(),
        )
        .map_err(|e| lan_error(format!("cannot describe the service: {e}")))?
        // The addresses of every interface, kept up to date by mdns-sd.
        .enable_addr_auto();
        if let Err(e) = mdns.register(info) {
            server.abort();
            let _ = mdns.shutdown();
            return Err(lan_error(format!(
                "cannot announce on the local network: {e}"
            )));
        }
        Ok(Self {
            url: format!("ws://127.0.0.1:{port}"),
            server,
            mdns,
        })
    }

    /// Where this host reaches its own server.
    pub(super) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for LanServer {
    fn drop(&mut self) {
        self.server.abort();
        // Sends goodbye packets, so receivers forget the service at once.
        let _ = self.mdns.shutdown();
    }
}

/// The signaling URL of the sender on the local network that announces `nameplate`, if one does
/// within `wait`.
pub(super) async fn find(nameplate: u32, wait: Duration) -> Result<Option<String>, SessionError> {
    tokio::task::spawn_blocking(move || find_blocking(nameplate, wait))
        .await
        .map_err(|e| lan_error(format!("the search stopped: {e}")))?
}

fn find_blocking(nameplate: u32, wait: Duration) -> Result<Option<String>, SessionError> {
    let mdns = ServiceDaemon::new()
        .map_err(|e| lan_error(format!("cannot start mDNS on this host: {e}")))?;
    let found = search(&mdns, nameplate, wait);
    let _ = mdns.shutdown();
    let found = found?;
    let mut senders = found.values();
    match (senders.next(), senders.next()) {
        (Some(address), None) => Ok(Some(format!("ws://{address}"))),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(lan_error(format!(
            "{} senders on this network announce nameplate {nameplate}: ask the sender for a \
             new code",
            found.len()
        ))),
    }
}

/// The senders that announce `nameplate`, by service name, with the address to reach each at.
fn search(
    mdns: &ServiceDaemon,
    nameplate: u32,
    wait: Duration,
) -> Result<BTreeMap<String, SocketAddr>, SessionError> {
    let events = mdns
        .browse(SERVICE_TYPE)
        .map_err(|e| lan_error(format!("cannot search the local network: {e}")))?;
    let wanted = nameplate.to_string();
    let mut deadline = std::time::Instant::now() + wait;
    let mut found = BTreeMap::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        let ServiceEvent::ServiceResolved(service) = event else {
            continue;
        };
        if service.get_property_val_str(NAMEPLATE_KEY) != Some(wanted.as_str()) {
            continue;
        }
        // One address per sender: an IPv4 one where it has one (a link-local IPv6 address would
        // need its scope in the URL).
        let mut addresses: Vec<IpAddr> = service
            .get_addresses()
            .iter()
            .map(mdns_sd::ScopedIp::to_ip_addr)
            .filter(|ip| match ip {
                IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
                IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
            })
            .collect();
        addresses.sort_by_key(|ip| (!ip.is_ipv4(), *ip));
        if let Some(ip) = addresses.first() {
            if found.is_empty() {
                deadline = deadline.min(std::time::Instant::now() + SETTLE_TIME);
            }
            found.insert(
                service.get_fullname().to_owned(),
                SocketAddr::new(*ip, service.get_port()),
            );
        }
    }
    Ok(found)
}

fn lan_error(message: String) -> SessionError {
    SessionError::Lan(message)
}

fn rand_u32() -> u32 {
    use chacha20poly1305::aead::OsRng;
    use chacha20poly1305::aead::rand_core::RngCore;
    OsRng.next_u32()
}

/// A nameplate for a LAN sender.
pub(super) fn lan_nameplate() -> u32 {
    let span = LAN_NAMEPLATES.end() - LAN_NAMEPLATES.start() + 1;
    LAN_NAMEPLATES.start() + rand_u32() % span
}
