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

mod path;
mod sealed_signal;
mod trusted;
mod tuned_runtime;
mod webrtc_link;

pub use path::{NetworkPath, network_path, relay_protocol};
pub use trusted::{Incoming, PairMessageInfo, PairSignaling, inspect_pair_message, pair_room};

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p2p_signaling::protocol::RoomId;
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
    /// Local UDP addresses to gather candidates on (`0.0.0.0:0` for every interface).
    pub bind: Vec<String>,
    /// How long each step may take: reaching the server, the peer's arrival excepted.
    pub step_timeout: Duration,
    /// This host's persistent certificate (daemon mode); a fresh one per connection if `None`.
    pub identity: Option<crate::identity::Identity>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            signaling_url: "ws://127.0.0.1:8787".into(),
            ice_servers: Vec::new(),
            turn: None,
            bind: vec!["0.0.0.0:0".into()],
            step_timeout: Duration::from_secs(30),
            identity: None,
        }
    }
}

/// A TURN relay and its long-term credentials.
#[derive(Clone)]
pub struct TurnServer {
    /// Like `turn:turn.example.org:3478`.
    pub url: String,
    /// The TURN user name.
    pub username: String,
    /// The TURN password.
    pub password: String,
    /// Use only relayed candidates: the peers never learn each other's addresses, and no direct
    /// path is tried.
    pub relay_only: bool,
}

impl std::fmt::Debug for TurnServer {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("relay_only", &self.relay_only)
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
    /// How this side reaches its TURN server, if it uses one: `udp`, `tcp` or `tls`.
    pub relay_protocol: &'static str,
}

impl Connected {
    /// The network path the connection uses now; `None` if ICE has not said.
    pub async fn path(&self) -> Option<NetworkPath> {
        network_path(&self.peer_connection, self.relay_protocol).await
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
}

impl SenderRendezvous {
    /// Connects to the signaling server, takes a nameplate and makes a code with `words` words.
    pub async fn open(options: SessionOptions, words: usize) -> Result<Self, SessionError> {
        let (client, events) = connect(&options).await?;
        let room = client.allocate().await?;
        let nameplate = room.nameplate_number().ok_or_else(|| {
            SessionError::Protocol(format!("the server allocated {room}, not a number"))
        })?;
        let code = TransferCode::generate(nameplate, words).map_err(|e| {
            SessionError::Protocol(format!("cannot make a code of {words} words: {e}"))
        })?;
        Ok(Self::waiting(client, events, room, code, options, 1))
    }

    /// Like [`SenderRendezvous::open`], with a code the user chose: joins its nameplate's room,
    /// where the receiver may be waiting already.
    pub async fn with_code(
        options: SessionOptions,
        code: TransferCode,
    ) -> Result<Self, SessionError> {
        let (client, events) = connect(&options).await?;
        let room = RoomId::nameplate(code.nameplate());
        let members = client.join(&room).await?;
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
        }
    }

    /// The code to show the user.
    pub fn code(&self) -> &TransferCode {
        &self.code
    }

    /// Waits for the receiver (without a time limit), then authenticates and connects.
    pub async fn connect(mut self) -> Result<Connected, SessionError> {
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
        webrtc_link::offer(signal, webrtc_link::LABEL, verification, &self.options).await
    }
}

/// The receiver's side: joins the code's room, authenticates and connects.
pub async fn receive(
    options: SessionOptions,
    code: &TransferCode,
) -> Result<Connected, SessionError> {
    let (client, mut events) = connect(&options).await?;
    let room = RoomId::nameplate(code.nameplate());
    let members = client.join(&room).await?;
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
    webrtc_link::answer(signal, verification, &options).await
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
