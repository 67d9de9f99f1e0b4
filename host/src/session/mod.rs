//! Connecting two peers: the rendezvous on the signaling server, the SPAKE2 handshake over it, and
//! a WebRTC data channel whose offer and answer travel sealed.
//!
//! ```text
//! sender                       signaling server                    receiver
//!   allocate → nameplate 7                                            (user types 7-word-word)
//!                                                       ◀── join 7
//!   ◀── peer_joined                                    
//!   "pake <base64>"  ──────────────────────────────────▶  "pake <base64>" ◀──
//!   sealed confirmation ──────────────────────────────▶  ◀── sealed confirmation
//!   sealed SDP offer  ─────────────────────────────────▶
//!   sealed "candidate {…}" ────────────────────────────▶  (each as it is found)
//!                                                       ◀── sealed SDP answer
//!                                                       ◀── sealed "candidate {…}"
//!   ═══════════════ DTLS data channel, fingerprints from the sealed SDP ═══════════════
//! ```
//!
//! The server sees the nameplate, the PAKE messages (useless without the words) and ciphertext.
//! Descriptions go out without waiting for candidate gathering and candidates follow one by one
//! (trickle ICE), so the first working pair connects even while a STUN or TURN server that does
//! not answer is still being asked.

mod lan;
mod path;
mod sealed_signal;
mod trusted;
mod tuned_runtime;
pub mod turn_framing;
mod turn_stream;
mod webrtc_link;

pub use path::{NetworkPath, relay_protocol};
pub use trusted::{Incoming, PairMessageInfo, PairSignaling, inspect_pair_message, pair_room};
pub use turn_stream::check_turn_url;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p2p_signaling::protocol::{RoomId, TurnCredentials};
use p2p_signaling::{ClientError, ClientEvents, ClientOptions, Event, SignalingClient};
use webrtc::data_channel::DataChannel;
use webrtc::peer_connection::PeerConnection;

use crate::code::{Handshake, PakeError, Role, SealError, Sealer, SessionKeys, TransferCode};

/// How to reach the other peer.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The signaling server, `ws://` or `wss://`.
    pub signaling_url: String,
    /// STUN server URLs for ICE, such as `stun:127.0.0.1:3478`.
    pub ice_servers: Vec<String>,
    /// A TURN relay, the fallback when no direct path works.
    pub turn: Option<TurnServer>,
    /// Use only relayed candidates: the peers never learn each other's addresses, and no direct
    /// path is tried. Needs a TURN relay: `turn`, or one the signaling server hands out.
    pub relay_only: bool,
    /// The certificates to trust for `turns:` servers (a private CA); the Mozilla roots, as for
    /// `wss://`, when empty.
    pub turn_ca: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// Local UDP addresses to gather candidates on (`0.0.0.0:0` for every interface).
    pub bind: Vec<String>,
    /// How long each step may take: reaching the server, the peer's arrival excepted.
    pub step_timeout: Duration,
    /// This host's persistent certificate (daemon mode); a fresh one per connection if `None`.
    pub identity: Option<crate::identity::Identity>,
    /// LAN mode: when the signaling server cannot be reached, a sender serves signaling itself
    /// and announces it on the local network over mDNS, and a receiver looks for it there.
    pub lan: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            signaling_url: "ws://127.0.0.1:8787".into(),
            ice_servers: Vec::new(),
            turn: None,
            relay_only: false,
            turn_ca: Vec::new(),
            bind: vec!["0.0.0.0:0".into()],
            step_timeout: Duration::from_secs(30),
            identity: None,
            lan: false,
        }
    }
}

impl SessionOptions {
    /// These options with the TURN relay the signaling server handed out (`offered`), unless
    /// they name one already (flags and config override the server). `Err` when only relayed
    /// paths are allowed and there is no relay either way.
    fn with_offered_turn(&self, offered: Option<TurnCredentials>) -> Result<Self, SessionError> {
        let mut options = self.clone();
        if options.turn.is_none()
            && let Some(offered) = offered
        {
            let urls: Vec<String> = offered
                .urls
                .into_iter()
                .filter(|url| match check_turn_url(url) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("the signaling server's TURN relay {url:?} left out: {e}");
                        false
                    }
                })
                .collect();
            if !urls.is_empty() {
                tracing::debug!(?urls, "TURN relay from the signaling server");
                options.turn = Some(TurnServer {
                    urls,
                    username: offered.username,
                    password: offered.credential,
                });
            }
        }
        if options.relay_only && options.turn.is_none() {
            return Err(SessionError::NoRelay);
        }
        Ok(options)
    }
}

/// A TURN relay and its long-term credentials.
#[derive(Clone)]
pub struct TurnServer {
    /// Its URLs, like `turn:turn.example.org:3478`, `turn:turn.example.org:3478?transport=tcp`
    /// or `turns:turn.example.org:5349` (TCP and TLS go through [`turn_stream`]).
    pub urls: Vec<String>,
    /// The TURN user name.
    pub username: String,
    /// The TURN password.
    pub password: String,
}

impl std::fmt::Debug for TurnServer {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why no data channel came about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The signaling server could not be reached.
    #[error("{0}; is p2p-signal running there? Another server: --server URL or P2PHOST_SERVER")]
    Unreachable(ClientError),
    /// The signaling server failed or refused.
    #[error(transparent)]
    Signaling(#[from] ClientError),
    /// The key exchange failed: a wrong code, or tampering.
    #[error(transparent)]
    Pake(#[from] PakeError),
    /// A sealed message did not open: tampering.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The WebRTC stack failed.
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// The peer sent something out of place.
    #[error("the peer broke the session protocol: {0}")]
    Protocol(String),
    /// The peer refused what it got through the signaling server and gave up.
    #[error("the peer refused the connection: wrong code or tampering")]
    PeerRefused,
    /// The peer could not set up its side of the connection.
    #[error(
        "the peer could not connect (no network path between the peers, or a timeout; try --turn)"
    )]
    PeerFailed,
    /// In daemon mode, the other side is not the trusted peer it should be.
    #[error("the host that answered is not the trusted peer: {0}")]
    WrongPeer(String),
    /// The peer left before the connection was up.
    #[error("the peer left before the connection was made")]
    PeerLeft,
    /// A step took too long.
    #[error("timed out while {0}")]
    Timeout(&'static str),
    /// LAN mode could not be set up.
    #[error("LAN mode: {0}")]
    Lan(String),
    /// No signaling server, and no sender on the local network with this nameplate.
    #[error(
        "{server}, and no sender with code {nameplate}-… on this network (LAN mode): is the code \
         right and the sender on this network? Another server: --server URL or P2PHOST_SERVER"
    )]
    NotOnLan {
        /// Why the server could not be reached.
        server: ClientError,
        /// The code's nameplate.
        nameplate: u32,
    },
    /// A TURN relay could not be used, and no connection came about without it.
    #[error("the TURN relay {url} could not be used: {cause}; so: {then}")]
    Relay {
        /// The relay's URL.
        url: String,
        /// Why it could not be used.
        cause: String,
        /// What then failed.
        then: Box<Self>,
    },
    /// Only relayed paths are allowed, and there is no relay.
    #[error(
        "--relay-only needs a TURN relay: give one with --turn URL, or use a signaling server that \
         hands out TURN credentials ([turn] in p2p-signal's config)"
    )]
    NoRelay,
}

/// A working link to the peer.
pub struct Connected {
    /// The reliable, ordered data channel. Keep polling its events.
    pub channel: Arc<dyn DataChannel>,
    /// Messages from the peer that arrived before the channel reported open: they come before
    /// anything `channel` delivers.
    pub early_messages: Vec<bytes::Bytes>,
    /// The peer connection; closing it ends the link.
    pub peer_connection: Arc<dyn PeerConnection>,
    /// The connection's state as it changes: `Disconnected` or `Failed` once the peer is gone.
    pub state: tokio::sync::watch::Receiver<webrtc::peer_connection::RTCPeerConnectionState>,
    /// The verification string both sides can compare (`--verify`).
    pub verification: String,
    /// The TURN URL each of this side's relayed candidates came from.
    relays: path::RelayUrls,
}

impl Connected {
    /// The network path the connection uses now; `None` if ICE has not said.
    pub async fn path(&self) -> Option<NetworkPath> {
        path::network_path(&self.peer_connection, &self.relays).await
    }
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("verification", &self.verification)
            .finish_non_exhaustive()
    }
}

/// The sender's side before the receiver arrives: it holds a nameplate and the code to show.
pub struct SenderRendezvous {
    client: SignalingClient,
    events: ClientEvents,
    room: RoomId,
    code: TransferCode,
    options: SessionOptions,
    /// The receiver joined first (possible with a code chosen by the user).
    peer_present: bool,
    /// In LAN mode, this sender's own signaling server, announced on the network, and why the
    /// configured server was not used.
    lan: Option<(lan::LanServer, String)>,
}

impl SenderRendezvous {
    /// Connects to the signaling server, takes a nameplate and makes a code with `words` words.
    pub async fn open(options: SessionOptions, words: usize) -> Result<Self, SessionError> {
        let (client, events) = match connect(&options).await {
            Err(SessionError::Unreachable(why)) if options.lan => {
                tracing::info!("{why}: LAN mode");
                let code = TransferCode::generate(lan::lan_nameplate(), words).map_err(|e| {
                    SessionError::Protocol(format!("cannot make a code of {words} words: {e}"))
                })?;
                return Self::on_lan(options, code, why).await;
            }
            connected => connected?,
        };
        let room = client.allocate().await?;
        let options = options.with_offered_turn(client.turn_credentials())?;
        let nameplate = room.nameplate_number().ok_or_else(|| {
            SessionError::Protocol(format!("the server allocated {room}, not a number"))
        })?;
        let code = TransferCode::generate(nameplate, words).map_err(|e| {
            SessionError::Protocol(format!("cannot make a code of {words} words: {e}"))
        })?;
        Ok(Self::waiting(client, events, room, code, options, 1))
    }

    /// LAN mode: serves signaling here, announced for `code`'s nameplate, and waits in its room.
    async fn on_lan(
        options: SessionOptions,
        code: TransferCode,
        why: ClientError,
    ) -> Result<Self, SessionError> {
        let server = lan::LanServer::start(code.nameplate()).await?;
        let local = SessionOptions {
            signaling_url: server.url().to_owned(),
            ..options.clone()
        };
        let (client, events) = connect(&local).await?;
        let room = RoomId::nameplate(code.nameplate());
        let members = client.join(&room).await?;
        let mut rendezvous = Self::waiting(client, events, room, code, options, members);
        rendezvous.lan = Some((server, why.to_string()));
        Ok(rendezvous)
    }

    /// In LAN mode (this sender serves signaling itself on the local network), why the
    /// configured server was not used.
    pub fn on_local_network(&self) -> Option<&str> {
        self.lan.as_ref().map(|(_, why)| why.as_str())
    }

    /// Like [`SenderRendezvous::open`], with a code the user chose: joins its nameplate's room,
    /// where the receiver may be waiting already.
    pub async fn with_code(
        options: SessionOptions,
        code: TransferCode,
    ) -> Result<Self, SessionError> {
        let (client, events) = match connect(&options).await {
            Err(SessionError::Unreachable(why)) if options.lan => {
                tracing::info!("{why}: LAN mode");
                return Self::on_lan(options, code, why).await;
            }
            connected => connected?,
        };
        let room = RoomId::nameplate(code.nameplate());
        let members = client.join(&room).await?;
        let options = options.with_offered_turn(client.turn_credentials())?;
        Ok(Self::waiting(client, events, room, code, options, members))
    }

    /// In `room` with `members` members, this side included.
    fn waiting(
        client: SignalingClient,
        events: ClientEvents,
        room: RoomId,
        code: TransferCode,
        options: SessionOptions,
        members: usize,
    ) -> Self {
        Self {
            client,
            events,
            room,
            code,
            options,
            peer_present: members >= 2,
            lan: None,
        }
    }

    /// The code to show the user.
    pub fn code(&self) -> &TransferCode {
        &self.code
    }

    /// Waits for the receiver (without a time limit), then authenticates and connects.
    pub async fn connect(mut self) -> Result<Connected, SessionError> {
        // In LAN mode the receiver's signaling runs through this host's server: it stays up
        // until the connection is made (or not).
        let _lan = self.lan.take();
        while !self.peer_present {
            match self.events.next().await {
                Some(Event::PeerJoined { .. }) => self.peer_present = true,
                Some(Event::Closed { reason }) => {
                    return Err(ClientError::Closed(reason).into());
                }
                Some(_) => {}
                None => return Err(ClientError::Closed("events ended".into()).into()),
            }
        }
        let mut channel = Channel {
            client: self.client,
            events: self.events,
            room: self.room,
            timeout: self.options.step_timeout,
        };
        let keys = match channel.authenticate(&self.code, Role::Sender).await {
            Ok(keys) => keys,
            Err(e) => return Err(channel.fail(e).await),
        };
        let verification = keys.verification().to_owned();
        let signal = sealed_signal::SealedSignal::new(channel, keys);
        turn_stream::connect_through(&self.options, |options| async move {
            webrtc_link::offer(signal, webrtc_link::LABEL, verification, &options).await
        })
        .await
    }
}

/// The receiver's side: joins the code's room, authenticates and connects.
pub async fn receive(
    options: SessionOptions,
    code: &TransferCode,
) -> Result<Connected, SessionError> {
    let (client, mut events) = match connect(&options).await {
        Err(SessionError::Unreachable(why)) if options.lan => {
            tracing::info!("{why}: looking for the sender on the local network");
            let Some(url) = lan::find(code.nameplate(), lan::SEARCH_TIME).await? else {
                return Err(SessionError::NotOnLan {
                    server: why,
                    nameplate: code.nameplate(),
                });
            };
            let local = SessionOptions {
                signaling_url: url,
                ..options.clone()
            };
            connect(&local).await?
        }
        connected => connected?,
    };
    let room = RoomId::nameplate(code.nameplate());
    let members = client.join(&room).await?;
    let options = options.with_offered_turn(client.turn_credentials())?;
    if members < 2 {
        // Nobody is there yet (the sender went away, or the code is mistyped): wait for a while.
        let arrived = tokio::time::timeout(options.step_timeout, async {
            loop {
                match events.next().await {
                    Some(Event::PeerJoined { .. }) => return Ok(()),
                    Some(Event::Closed { reason }) => return Err(ClientError::Closed(reason)),
                    Some(_) => {}
                    None => return Err(ClientError::Closed("events ended".into())),
                }
            }
        })
        .await
        .map_err(|_| SessionError::Timeout("waiting for the sender: is the code right?"))?;
        arrived?;
    }
    let mut channel = Channel {
        client,
        events,
        room,
        timeout: options.step_timeout,
    };
    let keys = match channel.authenticate(code, Role::Receiver).await {
        Ok(keys) => keys,
        Err(e) => return Err(channel.fail(e).await),
    };
    let verification = keys.verification().to_owned();
    let signal = sealed_signal::SealedSignal::new(channel, keys);
    turn_stream::connect_through(&options, |options| async move {
        webrtc_link::answer(signal, verification, &options).await
    })
    .await
}

/// The longest wait for the signaling server's WebSocket handshake.
const MAX_CONNECT_TIME: Duration = Duration::from_secs(5);

async fn connect(
    options: &SessionOptions,
) -> Result<(SignalingClient, ClientEvents), SessionError> {
    let client_options = ClientOptions {
        // A server that does not answer should be reported within seconds, not after a step.
        connect_timeout: options.step_timeout.min(MAX_CONNECT_TIME),
        ..ClientOptions::default()
    };
    SignalingClient::connect(&options.signaling_url, client_options)
        .await
        .map_err(SessionError::Unreachable)
}

/// The room, as a message pipe to the peer.
struct Channel {
    client: SignalingClient,
    events: ClientEvents,
    room: RoomId,
    timeout: Duration,
}

const PAKE_PREFIX: &str = "pake ";
/// A sealed message that tells the peer this side gave up during the WebRTC setup, so that it
/// stops at once rather than after a timeout: `abort refused` (what came through the server did
/// not verify) or `abort failed` (no network path, a timeout, a WebRTC error).
const ABORT_PREFIX: &str = "abort ";
const ABORT_REFUSED: &str = "refused";
const ABORT_FAILED: &str = "failed";

/// The error a sealed abort from the peer stands for, if `plain` is one.
fn abort_reason(plain: &[u8]) -> Option<SessionError> {
    let kind = std::str::from_utf8(plain)
        .ok()?
        .strip_prefix(ABORT_PREFIX)?;
    Some(match kind {
        ABORT_REFUSED => SessionError::PeerRefused,
        _ => SessionError::PeerFailed,
    })
}

impl Channel {
    async fn send(&self, payload: String) -> Result<(), SessionError> {
        Ok(self.client.send(&self.room, payload).await?)
    }

    /// The peer's next payload, within the step timeout.
    async fn next(&mut self, doing: &'static str) -> Result<String, SessionError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.next_untimed())
            .await
            .map_err(|_| SessionError::Timeout(doing))?
    }

    /// The peer's next payload, however long it takes. Cancel-safe.
    async fn next_untimed(&mut self) -> Result<String, SessionError> {
        loop {
            match self.events.next().await {
                Some(Event::Message { room, payload }) if room == self.room => {
                    return Ok(payload);
                }
                Some(Event::PeerLeft { .. }) => return Err(SessionError::PeerLeft),
                Some(Event::Closed { reason }) => {
                    return Err(ClientError::Closed(reason).into());
                }
                Some(_) => {}
                None => return Err(ClientError::Closed("events ended".into()).into()),
            }
        }
    }

    /// SPAKE2 over the room, then key confirmation both ways.
    async fn authenticate(
        &mut self,
        code: &TransferCode,
        role: Role,
    ) -> Result<SessionKeys, SessionError> {
        let (handshake, message) = Handshake::start(code, role);
        self.send(format!("{PAKE_PREFIX}{}", URL_SAFE_NO_PAD.encode(message)))
            .await?;
        let reply = self.next("waiting for the peer's key exchange").await?;
        let peer = reply
            .strip_prefix(PAKE_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .ok_or_else(|| SessionError::Protocol("expected the key-exchange message".into()))?;
        let mut keys = handshake.finish(&peer)?;
        self.send(keys.confirmation()?).await?;
        let confirmation = self.next("waiting for the peer's key confirmation").await?;
        keys.check_confirmation(&confirmation)?;
        Ok(keys)
    }

    /// Tells the peer, sealed, that this side gave up and why, then leaves.
    async fn abort(self, sealer: &mut Sealer, error: SessionError) -> SessionError {
        let kind = match error {
            SessionError::Pake(_)
            | SessionError::Seal(_)
            | SessionError::Protocol(_)
            | SessionError::PeerRefused => ABORT_REFUSED,
            _ => ABORT_FAILED,
        };
        if let Ok(sealed) = sealer.seal(format!("{ABORT_PREFIX}{kind}").as_bytes()) {
            let _ = self.send(sealed).await;
        }
        self.fail(error).await
    }

    async fn close(self) {
        self.client.close().await;
    }

    /// Ends the room after a failure, once what was sent (such as this side's key confirmation,
    /// which tells the peer the code was wrong) has left.
    async fn fail(self, error: SessionError) -> SessionError {
        self.close().await;
        error
    }
}
