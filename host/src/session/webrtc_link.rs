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
    RTCIceCandidateInit, RTCIceConnectionState, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSdpType,
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

/// How long a working pair with a peer-reflexive remote candidate waits for a better one before
/// it is nominated: time for the peer's trickled candidates to arrive on a LAN.
const PRFLX_ACCEPTANCE_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Time between two ICE connectivity checks (webrtc-rs: 200 ms).
const ICE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
/// Checks of one pair before it counts as failed: 1.4 s of them, as webrtc-rs's 7 × 200 ms.
const ICE_BINDING_REQUESTS: u16 = 28;

/// The data channel's label in one-off transfers.
pub(super) const LABEL: &str = "p2phost";

/// What the peer sends through the signaling during the setup.
#[derive(Debug)]
pub(super) enum Remote {
    /// Its offer or answer (boxed: a description is several times a candidate's size).
    Description(Box<RTCSessionDescription>),
    /// One of its network candidates, sent as soon as it found it (trickle ICE).
    Candidate(RTCIceCandidateInit),
}

/// How descriptions and candidates travel between the peers, and how each side gives up on the
/// other.
#[async_trait::async_trait]
pub(super) trait Signal: Send {
    /// Sends this side's description.
    async fn send_description(
        &mut self,
        description: &RTCSessionDescription,
    ) -> Result<(), SessionError>;

    /// Sends one of this side's candidates.
    async fn send_candidate(&mut self, candidate: &RTCIceCandidateInit)
    -> Result<(), SessionError>;

    /// The peer's next message, checked, without a time limit. The peer giving up is an error
    /// ([`SessionError::PeerRefused`] or [`SessionError::PeerFailed`]); so is the end of the
    /// signaling ([`SessionError::PeerLeft`] or [`SessionError::Signaling`]), which
    /// [`ends_signaling_only`] tells apart. Cancel-safe: nothing is lost if the future is dropped.
    async fn receive(&mut self) -> Result<Remote, SessionError>;

    /// Tells the peer that this side gave up and why, and ends; returns `error`.
    async fn abort(self, error: SessionError) -> SessionError;

    /// Ends the signaling once the data channel is open.
    async fn finish(self);
}

/// Whether `error` from [`Signal::receive`] only means that no more will come that way: the peer
/// left the room (it closes the signaling once its side is connected) or the server went away.
/// The connection itself may still come up.
fn ends_signaling_only(error: &SessionError) -> bool {
    matches!(error, SessionError::PeerLeft | SessionError::Signaling(_))
}

/// A description as JSON.
pub(super) fn parse_description(json: &[u8]) -> Result<RTCSessionDescription, SessionError> {
    serde_json::from_slice(json)
        .map_err(|e| SessionError::Protocol(format!("not a session description: {e}")))
}

/// A candidate as JSON.
pub(super) fn parse_candidate(json: &[u8]) -> Result<RTCIceCandidateInit, SessionError> {
    let candidate: RTCIceCandidateInit = serde_json::from_slice(json)
        .map_err(|e| SessionError::Protocol(format!("not an ICE candidate: {e}")))?;
    check_candidate(candidate)
}

/// `candidate`, if its line is not absurdly long.
pub(super) fn check_candidate(
    candidate: RTCIceCandidateInit,
) -> Result<RTCIceCandidateInit, SessionError> {
    if candidate.candidate.len() > MAX_CANDIDATE_LEN {
        return Err(SessionError::Protocol(format!(
            "an ICE candidate of {} bytes (at most {MAX_CANDIDATE_LEN})",
            candidate.candidate.len()
        )));
    }
    Ok(candidate)
}

/// The longest candidate line taken: a real one is under 200 bytes.
const MAX_CANDIDATE_LEN: usize = 1024;

/// Remote candidates one connection takes; more are ignored. A host has a few per interface and
/// server; the cap keeps a flood (from a server that forges them, in daemon mode) from making this
/// host probe many addresses.
const MAX_REMOTE_CANDIDATES: usize = 64;

/// Local candidates waiting to be sent.
const LOCAL_CANDIDATE_QUEUE: usize = 64;

/// `description`, if it is of type `expected`.
fn check_type(
    description: RTCSessionDescription,
    expected: RTCSdpType,
) -> Result<RTCSessionDescription, SessionError> {
    if description.sdp_type != expected {
        return Err(SessionError::Protocol(format!(
            "expected an SDP {expected}, got {}",
            description.sdp_type
        )));
    }
    Ok(description)
}

/// The peer's first message, which must be its description of type `expected`.
async fn receive_description(
    signal: &mut impl Signal,
    expected: RTCSdpType,
    doing: &'static str,
    options: &SessionOptions,
) -> Result<RTCSessionDescription, SessionError> {
    match tokio::time::timeout(options.step_timeout, signal.receive()).await {
        Err(_) => Err(SessionError::Timeout(doing)),
        Ok(Ok(Remote::Description(description))) => check_type(*description, expected),
        Ok(Ok(Remote::Candidate(_))) => Err(SessionError::Protocol(format!(
            "a candidate before the SDP {expected}"
        ))),
        Ok(Err(e)) => Err(e),
    }
}

/// Forwards the connection's events to the session.
struct Handler {
    candidates: mpsc::Sender<RTCIceCandidateInit>,
    gathered: mpsc::Sender<()>,
    relays: super::path::RelayUrls,
    failed: mpsc::Sender<()>,
    state: watch::Sender<RTCPeerConnectionState>,
    channels: mpsc::Sender<Arc<dyn DataChannel>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if !event.url.is_empty() {
            self.relays.note(&event.candidate, &event.url);
        }
        match event.candidate.to_json() {
            Ok(mut candidate) => {
                // Which server found it is this side's business, not the peer's.
                candidate.url = None;
                if self.candidates.try_send(candidate).is_err() {
                    tracing::debug!("too many local candidates waiting; one not sent");
                }
            }
            Err(e) => tracing::debug!("a local candidate that cannot be sent: {e}"),
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        tracing::debug!(%state, "ICE connection state");
    }

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
    relays: super::path::RelayUrls,
    setup_done: SetupDone,
    state: watch::Receiver<RTCPeerConnectionState>,
    candidates: mpsc::Receiver<RTCIceCandidateInit>,
    gathered: mpsc::Receiver<()>,
    failed: mpsc::Receiver<()>,
    channels: mpsc::Receiver<Arc<dyn DataChannel>>,
}

fn webrtc_error(context: &'static str) -> impl FnOnce(webrtc::error::Error) -> SessionError {
    move |e| SessionError::WebRtc(format!("{context}: {e}"))
}

async fn build(options: &SessionOptions) -> Result<Link, SessionError> {
    let (candidates_tx, candidates) = mpsc::channel(LOCAL_CANDIDATE_QUEUE);
    let relays = super::path::RelayUrls::default();
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
        // With trickle ICE the peer's checks often arrive before its candidate does, so the
        // first pair that works has a peer-reflexive remote: webrtc-rs waits 1 s before it
        // nominates such a pair, which was most of a connection's setup on a LAN.
        .with_prflx_acceptance_min_wait(Some(PRFLX_ACCEPTANCE_WAIT))
        // Nomination waits for the next check: checks every 50 ms (as browsers pace them), as
        // many of them as before in the same 1.4 s before a pair counts as failed.
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_BINDING_REQUESTS))
        .build();
    let (runtime, setup_done) = TunedRuntime::new();
    let peer_connection = PeerConnectionBuilder::new()
        .with_configuration(configuration.build())
        .with_setting_engine(settings)
        .with_runtime(Arc::new(runtime))
        .with_handler(Arc::new(Handler {
            candidates: candidates_tx,
            gathered: gathered_tx,
            relays: relays.clone(),
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
        relays,
        setup_done,
        state,
        candidates,
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
            relays: self.relays,
        }
    }

    /// Ends a connection that never came up: its timers back to normal first, so that its close
    /// (and a TURN allocation's release) gets the time it asks for.
    async fn discard(&self) {
        self.setup_done.mark();
        let _ = self.peer_connection.close().await;
    }

    /// Sets `description` as the local one and sends it to the peer at once: the candidates
    /// follow one by one as they are found ([`Link::exchange`]), so a candidate source that is
    /// slow or never answers (a STUN server behind a firewall) delays nothing.
    async fn publish(
        &mut self,
        description: RTCSessionDescription,
        signal: &mut impl Signal,
    ) -> Result<(), SessionError> {
        self.peer_connection
            .set_local_description(description.clone())
            .await
            .map_err(webrtc_error("setting the local description"))?;
        signal.send_description(&description).await
    }

    /// Trickles candidates both ways until what `until` names arrives, the connection fails, the
    /// peer gives up, or `step_timeout` passes. The offering side's wait starts with the answer:
    /// candidates that come before it are kept until it is applied, and the timeout starts
    /// again once it is.
    async fn exchange(
        &mut self,
        signal: &mut impl Signal,
        options: &SessionOptions,
        mut until: Until<'_>,
    ) -> Result<Arrived, SessionError> {
        let pc = Arc::clone(&self.peer_connection);
        let mut sending = true;
        let mut listening = true;
        let mut found = 0usize;
        let mut remote_count = 0usize;
        let mut early_candidates = Vec::new();
        let mut deadline = tokio::time::Instant::now() + options.step_timeout;
        loop {
            tokio::select! {
                done = until.event() => {
                    if let Some(done) = done? {
                        return Ok(done);
                    }
                }
                _ = self.failed.recv() => return Err(no_path()),
                // Gathering over without a single candidate: nothing can connect, so say so now
                // rather than at the timeout (a relay-only side whose relay failed).
                Some(()) = self.gathered.recv() => {
                    if found == 0 && self.candidates.is_empty() {
                        return Err(SessionError::WebRtc(
                            "this side found no network address to connect from (with \
                             --relay-only: the relay gave none)"
                                .into(),
                        ));
                    }
                }
                Some(candidate) = self.candidates.recv(), if sending => {
                    found += 1;
                    if let Err(e) = signal.send_candidate(&candidate).await {
                        // The signaling is gone; the candidates sent so far may be enough.
                        tracing::debug!("cannot send a local candidate: {e}");
                        sending = false;
                    }
                }
                remote = signal.receive(), if listening => match remote {
                    Ok(Remote::Candidate(candidate)) => {
                        remote_count += 1;
                        if remote_count > MAX_REMOTE_CANDIDATES {
                            tracing::debug!("more than {MAX_REMOTE_CANDIDATES} remote candidates; one ignored");
                        } else if until.waits_for_answer() {
                            early_candidates.push(candidate);
                        } else {
                            add_candidate(&pc, candidate).await;
                        }
                    }
                    Ok(Remote::Description(answer)) if until.waits_for_answer() => {
                        let answer = check_type(*answer, RTCSdpType::Answer)?;
                        pc.set_remote_description(answer)
                            .await
                            .map_err(webrtc_error("applying the answer"))?;
                        for candidate in early_candidates.drain(..) {
                            add_candidate(&pc, candidate).await;
                        }
                        until.answered();
                        deadline = tokio::time::Instant::now() + options.step_timeout;
                    }
                    Ok(Remote::Description(_)) => {
                        return Err(SessionError::Protocol("a second session description".into()));
                    }
                    Err(e) if ends_signaling_only(&e) && !until.waits_for_answer() => {
                        listening = false;
                    }
                    Err(e) => return Err(e),
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(SessionError::Timeout(until.doing()));
                }
            }
        }
    }
}

/// Gives `candidate` to the connection; one it cannot use (an unknown kind, a `.local` name with
/// no mDNS here) is skipped, as browsers do.
async fn add_candidate(pc: &Arc<dyn PeerConnection>, candidate: RTCIceCandidateInit) {
    if let Err(e) = pc.add_ice_candidate(candidate).await {
        tracing::debug!("a remote candidate skipped: {e}");
    }
}

/// What [`Link::exchange`] waits for.
enum Until<'a> {
    /// The offering side, before the answer: then its channel to open.
    Answer(&'a Arc<dyn DataChannel>),
    /// The offering side: its data channel open. `early` holds what the channel delivered before
    /// it reported open: webrtc-rs can deliver the peer's first messages ahead of that event.
    Open {
        channel: &'a Arc<dyn DataChannel>,
        early: Vec<Bytes>,
    },
    /// The answering side: the offerer's data channel.
    Channel(&'a mut mpsc::Receiver<Arc<dyn DataChannel>>),
}

/// What [`Link::exchange`] ends with.
enum Arrived {
    /// The offerer's channel is open; the messages that came before.
    Open(Vec<Bytes>),
    /// The answerer has the offerer's channel.
    Channel(Arc<dyn DataChannel>),
}

impl Until<'_> {
    fn waits_for_answer(&self) -> bool {
        matches!(self, Until::Answer(_))
    }

    fn answered(&mut self) {
        if let Until::Answer(channel) = *self {
            *self = Until::Open {
                channel,
                early: Vec::new(),
            };
        }
    }

    fn doing(&self) -> &'static str {
        match self {
            Until::Answer(_) => "waiting for the answer",
            Until::Open { .. } => "opening the data channel",
            Until::Channel(_) => "waiting for the sender's data channel",
        }
    }

    /// The next event of what is waited for: `Some` once it is there.
    async fn event(&mut self) -> Result<Option<Arrived>, SessionError> {
        match self {
            Until::Answer(_) => std::future::pending().await,
            Until::Open { channel, early } => match channel.poll().await {
                Some(DataChannelEvent::OnOpen) => Ok(Some(Arrived::Open(std::mem::take(early)))),
                Some(DataChannelEvent::OnMessage(message)) => {
                    // Counted in messages of up to the largest frame (64 KiB) each.
                    if early.len() == MAX_EARLY_MESSAGES || message.data.len() > 64 * 1024 {
                        return Err(SessionError::Protocol(format!(
                            "more than {MAX_EARLY_MESSAGES} messages, or one over 64 KiB, before the channel opened"
                        )));
                    }
                    early.push(message.data.freeze());
                    Ok(None)
                }
                Some(DataChannelEvent::OnClose) | None => Err(SessionError::WebRtc(
                    "the data channel closed before opening".into(),
                )),
                Some(_) => Ok(None),
            },
            Until::Channel(channels) => match channels.recv().await {
                Some(channel) => Ok(Some(Arrived::Channel(channel))),
                None => Err(SessionError::WebRtc(
                    "the connection ended before a data channel".into(),
                )),
            },
        }
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
    link.publish(offer, signal).await?;
    match link.exchange(signal, options, Until::Answer(&data)).await? {
        Arrived::Open(early) => Ok((data, early)),
        Arrived::Channel(_) => Err(SessionError::WebRtc(
            "the answering side opened a data channel".into(),
        )),
    }
}

/// The answering side.
pub(super) async fn answer(
    mut signal: impl Signal,
    verification: String,
    options: &SessionOptions,
) -> Result<Connected, SessionError> {
    // The connection is built once the offer is here: no sockets and timers while waiting.
    let offer = match receive_description(
        &mut signal,
        RTCSdpType::Offer,
        "waiting for the offer",
        options,
    )
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
    link.publish(answer, signal).await?;
    // The channels receiver moves out for the wait, as the loop borrows the rest of the link.
    let (_, placeholder) = mpsc::channel(1);
    let mut channels = std::mem::replace(&mut link.channels, placeholder);
    let arrived = link
        .exchange(signal, options, Until::Channel(&mut channels))
        .await;
    link.channels = channels;
    match arrived? {
        Arrived::Channel(data) => Ok(data),
        Arrived::Open(_) => Err(SessionError::WebRtc("no data channel".into())),
    }
}

#[cfg(test)]
#[path = "fingerprint_tests.rs"]
mod fingerprint_tests;
