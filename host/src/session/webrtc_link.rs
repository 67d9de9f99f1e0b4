//! The WebRTC half of a session: a peer connection, one reliable ordered data channel, and the SDP
//! offer and answer exchanged through a [`Signal`]: sealed under the code's keys for one-off
//! transfers, or checked against a trusted peer's certificate in daemon mode.

use std::sync::Arc;

use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState, RTCSdpType,
    RTCSessionDescription, SettingEngineBuilder,
};

use super::tuned_runtime::{SetupDone, TunedRuntime};
use super::{Connected, SessionError, SessionOptions};

/// Bytes queued in the data channel before `send` waits.
const SEND_BUFFER_LIMIT: usize = 4 * 1024 * 1024;

/// SCTP receive window.
const SCTP_RECEIVE_BUFFER: u32 = 4 * 1024 * 1024;
/// SCTP packet size: fits a 1500-byte path with the DTLS, UDP and IP headers.
const SCTP_MTU: u32 = 1400;

/// The data channel's label in one-off transfers.
pub(super) const LABEL: &str = "p2phost";

/// How the descriptions travel between the peers, and how each side gives up on the other.
#[async_trait::async_trait]
pub(super) trait Signal: Send {
    /// Sends this side's description.
    async fn send_description(
        &mut self,
        description: &RTCSessionDescription,
    ) -> Result<(), SessionError>;

    /// The peer's description, of type `expected`, checked; or why there is none.
    async fn receive_description(
        &mut self,
        expected: RTCSdpType,
        doing: &'static str,
    ) -> Result<RTCSessionDescription, SessionError>;

    /// Resolves when the peer says it gave up; never if it does not.
    async fn aborted(&mut self) -> SessionError;

    /// Tells the peer that this side gave up and why, and ends; returns `error`.
    async fn abort(self, error: SessionError) -> SessionError;

    /// Ends the signaling once the data channel is open.
    async fn finish(self);
}

/// A description as JSON, checked for its type.
pub(super) fn parse_description(
    json: &[u8],
    expected: RTCSdpType,
) -> Result<RTCSessionDescription, SessionError> {
    let description: RTCSessionDescription = serde_json::from_slice(json)
        .map_err(|e| SessionError::Protocol(format!("not a session description: {e}")))?;
    if description.sdp_type != expected {
        return Err(SessionError::Protocol(format!(
            "expected an SDP {expected}, got {}",
            description.sdp_type
        )));
    }
    Ok(description)
}

/// Forwards the connection's events to the session.
struct Handler {
    gathered: mpsc::Sender<()>,
    failed: mpsc::Sender<()>,
    state: watch::Sender<RTCPeerConnectionState>,
    channels: mpsc::Sender<Arc<dyn DataChannel>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "peer connection state");
        let _ = self.state.send(state);
        if state == RTCPeerConnectionState::Failed {
            let _ = self.failed.try_send(());
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // This runs inside the connection's event loop: hand the channel over, nothing more.
        let _ = self.channels.try_send(channel);
    }
}

struct Link {
    peer_connection: Arc<dyn PeerConnection>,
    setup_done: SetupDone,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathered: mpsc::Receiver<()>,
    failed: mpsc::Receiver<()>,
    channels: mpsc::Receiver<Arc<dyn DataChannel>>,
}

fn webrtc_error(context: &'static str) -> impl FnOnce(webrtc::error::Error) -> SessionError {
    move |e| SessionError::WebRtc(format!("{context}: {e}"))
}

async fn build(options: &SessionOptions) -> Result<Link, SessionError> {
    let (gathered_tx, gathered) = mpsc::channel(1);
    let (failed_tx, failed) = mpsc::channel(1);
    let (channels_tx, channels) = mpsc::channel(4);
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let mut configuration = RTCConfigurationBuilder::new();
    let mut servers = Vec::new();
    if !options.ice_servers.is_empty() {
        servers.push(RTCIceServer {
            urls: options.ice_servers.clone(),
            ..Default::default()
        });
    }
    if let Some(turn) = &options.turn {
        servers.push(RTCIceServer {
            urls: turn.urls.clone(),
            username: turn.username.clone(),
            credential: turn.password.clone(),
        });
    }
    if !servers.is_empty() {
        configuration = configuration.with_ice_servers(servers);
    }
    if options.relay_only {
        configuration = configuration.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
    }
    if let Some(identity) = &options.identity {
        configuration = configuration.with_certificates(vec![certificate(identity)?]);
    }
    // DESIGN §9: with a 4 MiB SCTP receive window and 1400-byte SCTP packets the channel runs
    // several times faster on loopback than with the defaults.
    let settings = SettingEngineBuilder::new()
        .with_sctp_max_receive_buffer_size(SCTP_RECEIVE_BUFFER)
        .with_sctp_mtu(SCTP_MTU)
        .with_multicast_dns_mode(multicast_dns_mode())
        .build();
    let (runtime, setup_done) = TunedRuntime::new();
    let peer_connection = PeerConnectionBuilder::new()
        .with_configuration(configuration.build())
        .with_setting_engine(settings)
        .with_runtime(Arc::new(runtime))
        .with_handler(Arc::new(Handler {
            gathered: gathered_tx,
            failed: failed_tx,
            state: state_tx,
            channels: channels_tx,
        }))
        .with_udp_addrs(options.bind.clone())
        // Bounds memory: `send` waits once this much is queued (unbounded by default).
        .with_data_channel_send_buffer_limit(SEND_BUFFER_LIMIT)
        .build()
        .await
        .map_err(webrtc_error("creating the peer connection"))?;
    Ok(Link {
        peer_connection: Arc::new(peer_connection),
        setup_done,
        state,
        gathered,
        failed,
        channels,
    })
}

/// The mDNS group webrtc-rs joins to resolve a peer's `.local` candidates (a browser hides its
/// addresses behind them).
const MDNS_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 251);

/// webrtc-rs's default (resolve `.local` candidates) where this host can join the mDNS group,
/// else no mDNS at all: webrtc-rs joins it on every interface when it creates the connection,
/// and on a host with no route for it (only `lo`, or no default route) that fails with ENODEV,
/// which used to make every connection fail. Asked again for each connection, since the
/// network can change under a daemon.
fn multicast_dns_mode() -> MulticastDnsMode {
    let joined = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|socket| socket.join_multicast_v4(&MDNS_GROUP, &std::net::Ipv4Addr::UNSPECIFIED));
    match joined {
        Ok(()) => MulticastDnsMode::QueryOnly,
        Err(e) => {
            tracing::debug!(
                "no mDNS (joining {MDNS_GROUP}: {e}): .local candidates stay unresolved"
            );
            MulticastDnsMode::Disabled
        }
    }
}

/// The host's persistent certificate, as webrtc-rs takes it.
fn certificate(
    identity: &crate::identity::Identity,
) -> Result<webrtc::peer_connection::RTCCertificate, SessionError> {
    let provider = webrtc::peer_connection::crypto::default_provider()
        .map_err(|e| SessionError::WebRtc(format!("loading the crypto provider: {e}")))?;
    let der = rustls_pki_types::CertificateDer::from(identity.certificate_der().to_vec());
    webrtc::peer_connection::RTCCertificate::from_pkcs8(
        provider.crypto(),
        webrtc::peer_connection::crypto::SignatureScheme::EcdsaP256Sha256,
        vec![der],
        identity.key_pkcs8_der(),
        // webrtc-rs checks only this date (year 4000), and peers pin the certificate itself.
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(64_060_588_800),
    )
    .map_err(webrtc_error("loading this host's certificate"))
}

impl Link {
    /// Ends the signaling (its work is done) and hands over the link.
    async fn connected(
        self,
        signal: impl Signal,
        data: Arc<dyn DataChannel>,
        early_messages: Vec<Bytes>,
        verification: String,
    ) -> Connected {
        self.setup_done.mark();
        signal.finish().await;
        Connected {
            channel: data,
            early_messages,
            peer_connection: self.peer_connection,
            state: self.state,
            verification,
        }
    }

    /// Ends a connection that never came up: its timers back to normal first, so that its close
    /// (and a TURN allocation's release) gets the time it asks for.
    async fn discard(&self) {
        self.setup_done.mark();
        let _ = self.peer_connection.close().await;
    }

    /// Sets `description` as the local one and, once ICE gathering is done, sends it (with every
    /// candidate in it) to the peer.
    async fn publish(
        &mut self,
        description: RTCSessionDescription,
        signal: &mut impl Signal,
        options: &SessionOptions,
    ) -> Result<(), SessionError> {
        self.peer_connection
            .set_local_description(description)
            .await
            .map_err(webrtc_error("setting the local description"))?;
        let local = self.gathered_description(options).await?;
        signal.send_description(&local).await
    }

    /// Waits for ICE gathering, then returns the local description with every candidate in it.
    async fn gathered_description(
        &mut self,
        options: &SessionOptions,
    ) -> Result<RTCSessionDescription, SessionError> {
        tokio::time::timeout(options.step_timeout, self.gathered.recv())
            .await
            .map_err(|_| SessionError::Timeout("gathering network candidates"))?;
        self.peer_connection
            .local_description()
            .await
            .ok_or_else(|| SessionError::WebRtc("no local description after gathering".into()))
    }
}

fn no_path() -> SessionError {
    SessionError::WebRtc(
        "the peer connection failed: no network path between the peers (try a TURN server: --turn)"
            .into(),
    )
}

/// Messages the peer may send before this side sees its channel open: its first protocol
/// messages, a handful.
const MAX_EARLY_MESSAGES: usize = 64;

/// Waits until `channel` reports open, or the connection fails. Returns the messages that arrived
/// before the open event: webrtc-rs can deliver the peer's first messages ahead of it.
async fn wait_open(
    link: &mut Link,
    channel: &Arc<dyn DataChannel>,
    options: &SessionOptions,
) -> Result<Vec<Bytes>, SessionError> {
    let mut early = Vec::new();
    let open = async {
        loop {
            tokio::select! {
                event = channel.poll() => match event {
                    Some(DataChannelEvent::OnOpen) => return Ok(()),
                    Some(DataChannelEvent::OnMessage(message)) => {
                        // Counted in messages of up to the largest frame (64 KiB) each.
                        if early.len() == MAX_EARLY_MESSAGES || message.data.len() > 64 * 1024 {
                            return Err(SessionError::Protocol(format!(
                                "more than {MAX_EARLY_MESSAGES} messages, or one over 64 KiB, before the channel opened"
                            )));
                        }
                        early.push(message.data.freeze());
                    }
                    Some(DataChannelEvent::OnClose) | None => {
                        return Err(SessionError::WebRtc("the data channel closed before opening".into()));
                    }
                    Some(_) => {}
                },
                _ = link.failed.recv() => return Err(no_path()),
            }
        }
    };
    tokio::time::timeout(options.step_timeout, open)
        .await
        .map_err(|_| SessionError::Timeout("opening the data channel"))??;
    Ok(early)
}

/// The offering side.
pub(super) async fn offer(
    mut signal: impl Signal,
    label: &str,
    verification: String,
    options: &SessionOptions,
) -> Result<Connected, SessionError> {
    let mut link = match build(options).await {
        Ok(link) => link,
        Err(e) => return Err(signal.abort(e).await),
    };
    match offer_steps(&mut link, &mut signal, label, options).await {
        Ok((data, early)) => Ok(link.connected(signal, data, early, verification).await),
        Err(e) => {
            link.discard().await;
            // The answerer waits for the data channel: tell it none will come, and why.
            Err(signal.abort(e).await)
        }
    }
}

async fn offer_steps(
    link: &mut Link,
    signal: &mut impl Signal,
    label: &str,
    options: &SessionOptions,
) -> Result<(Arc<dyn DataChannel>, Vec<Bytes>), SessionError> {
    let pc = Arc::clone(&link.peer_connection);
    // The channel must exist before the offer, so the offer negotiates SCTP.
    let data = pc
        .create_data_channel(label, None)
        .await
        .map_err(webrtc_error("creating the data channel"))?;
    let offer = pc
        .create_offer(None)
        .await
        .map_err(webrtc_error("creating the offer"))?;
    link.publish(offer, signal, options).await?;
    let answer = signal
        .receive_description(RTCSdpType::Answer, "waiting for the answer")
        .await?;
    pc.set_remote_description(answer)
        .await
        .map_err(webrtc_error("applying the answer"))?;
    let early = wait_open(link, &data, options).await?;
    Ok((data, early))
}

/// The answering side.
pub(super) async fn answer(
    mut signal: impl Signal,
    verification: String,
    options: &SessionOptions,
) -> Result<Connected, SessionError> {
    // The connection is built once the offer is here: no sockets and timers while waiting.
    let offer = match signal
        .receive_description(RTCSdpType::Offer, "waiting for the offer")
        .await
    {
        Ok(offer) => offer,
        Err(e) => return Err(signal.abort(e).await),
    };
    let mut link = match build(options).await {
        Ok(link) => link,
        Err(e) => return Err(signal.abort(e).await),
    };
    match answer_steps(&mut link, offer, &mut signal, options).await {
        Ok(data) => Ok(link.connected(signal, data, Vec::new(), verification).await),
        Err(e) => {
            link.discard().await;
            Err(signal.abort(e).await)
        }
    }
}

async fn answer_steps(
    link: &mut Link,
    offer: RTCSessionDescription,
    signal: &mut impl Signal,
    options: &SessionOptions,
) -> Result<Arc<dyn DataChannel>, SessionError> {
    let pc = Arc::clone(&link.peer_connection);
    pc.set_remote_description(offer)
        .await
        .map_err(webrtc_error("applying the offer"))?;
    let answer = pc
        .create_answer(None)
        .await
        .map_err(webrtc_error("creating the answer"))?;
    link.publish(answer, signal, options).await?;
    let arrival = link.channels.recv();
    // An offerer that refuses the answer (tampering) or fails says so: stop now rather than
    // after the timeout.
    tokio::select! {
        data = tokio::time::timeout(options.step_timeout, arrival) => data
            .map_err(|_| SessionError::Timeout("waiting for the sender's data channel"))?
            .ok_or_else(|| SessionError::WebRtc("the connection ended before a data channel".into())),
        gave_up = signal.aborted() => Err(gave_up),
        _ = link.failed.recv() => Err(no_path()),
    }
}

#[cfg(test)]
#[path = "fingerprint_tests.rs"]
mod fingerprint_tests;
