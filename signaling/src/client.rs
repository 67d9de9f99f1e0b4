//! A client for the signaling server, as the host uses it: connect (with `hello`), allocate or join
//! rooms, send payloads, and read events. One background task owns the socket and keeps it alive
//! with pings; there is no reconnecting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::protocol::{
    AdvertisedLimits, ClientMessage, ErrorKind, HostHash, Nonce, PROTOCOL_VERSION, PairKey,
    ProofError, RoomId, ServerMessage, TurnCredentials, encode_host,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TLS settings for `wss://` (for a private CA or a self-signed server); the Mozilla root store
    /// when `None`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How long connecting and the `hello`/`welcome` exchange may take.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            tls: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server told this client, unasked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Another member of `room` sent `payload`.
    Message {
        /// The room.
        room: RoomId,
        /// The payload as the peer sent it.
        payload: String,
    },
    /// Another member joined `room`.
    PeerJoined {
        /// The room.
        room: RoomId,
    },
    /// Another member left `room`.
    PeerLeft {
        /// The room.
        room: RoomId,
    },
    /// An error frame that answers no pending request (a payload to a room with no peer, an expired
    /// room, or the fatal error before a close).
    Error {
        /// The kind.
        kind: ErrorKind,
        /// The server's message.
        message: String,
        /// The room concerned.
        room: Option<RoomId>,
        /// Whether the server closes the connection after it.
        fatal: bool,
    },
    /// The connection ended; no event follows.
    Closed {
        /// Why, as far as is known.
        reason: String,
    },
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached, or the WebSocket handshake failed.
    #[error("cannot connect to the signaling server {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        source: Box<tungstenite::Error>,
    },
    /// Connecting took longer than [`ClientOptions::connect_timeout`].
    #[error("the signaling server {url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The server answered with an error frame.
    #[error("signaling server refused: {message} ({})", .kind.as_str())]
    Server {
        /// The kind.
        kind: ErrorKind,
        /// The server's message.
        message: String,
        /// The config key of the server's bound that was passed, if one was.
        bound: Option<String>,
    },
    /// The server sent something this client does not understand.
    #[error("signaling protocol error: {0}")]
    Protocol(String),
    /// The connection is closed.
    #[error("signaling connection closed: {0}")]
    Closed(String),
    /// A pair-room proof could not be made.
    #[error("cannot prove this host's identity to the signaling server: {0}")]
    Proof(#[from] ProofError),
}

enum Command {
    Request {
        message: ClientMessage,
        id: u64,
        reply: oneshot::Sender<Result<ServerMessage, ClientError>>,
    },
    Send(ClientMessage),
    /// Close after everything queued before; the sender is told when the socket is closed.
    Close(oneshot::Sender<()>),
}

/// A connected signaling client; clones share the connection.
#[derive(Debug, Clone)]
pub struct SignalingClient {
    commands: mpsc::Sender<Command>,
    next_id: Arc<AtomicU64>,
    limits: AdvertisedLimits,
    /// The server's nonce for this connection, which pair-room proofs sign.
    nonce: Option<Nonce>,
    /// The TURN credentials of the server's latest `allocated` or `joined`, if it gave any.
    turn: Arc<Mutex<Option<TurnCredentials>>>,
}

/// The events of a [`SignalingClient`], in the order the server sent them.
///
/// Keep reading them: the connection task waits while this buffer (256 events) is full, and replies
/// to requests queue behind the events.
#[derive(Debug)]
pub struct ClientEvents {
    events: mpsc::Receiver<Event>,
}

impl ClientEvents {
    /// The next event; `None` once [`Event::Closed`] has been returned.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

impl SignalingClient {
    /// Connects to `url` (`ws://` or `wss://`) and exchanges `hello`/`welcome`.
    pub async fn connect(
        url: &str,
        options: ClientOptions,
    ) -> Result<(Self, ClientEvents), ClientError> {
        let timeout = options.connect_timeout;
        let handshake = async {
            let connector = options.tls.map(Connector::Rustls);
            let (mut socket, _response) =
                tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector)
                    .await
                    .map_err(|e| ClientError::Connect {
                        url: url.to_owned(),
                        source: Box::new(e),
                    })?;
            let hello = ClientMessage::Hello {
                version: PROTOCOL_VERSION,
            };
            socket
                .send(Message::text(hello.encode()))
                .await
                .map_err(|e| ClientError::Closed(e.to_string()))?;
            match reply_result(next_server_message(&mut socket).await?)? {
                ServerMessage::Welcome { limits, nonce, .. } => Ok((socket, limits, nonce)),
                other => Err(ClientError::Protocol(format!(
                    "expected welcome, got {other:?}"
                ))),
            }
        };
        let (socket, limits, nonce) =
            tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| ClientError::Timeout {
                    url: url.to_owned(),
                    timeout,
                })??;
        let (commands, command_rx) = mpsc::channel(64);
        let (event_tx, events) = mpsc::channel(256);
        // Ping at a third of the server's idle timeout, so two lost pings still keep us in.
        let ping_every = Duration::from_secs(limits.idle_timeout_secs.max(3) / 3);
        tokio::spawn(drive(socket, command_rx, event_tx, ping_every));
        let client = Self {
            commands,
            next_id: Arc::new(AtomicU64::new(1)),
            limits,
            nonce,
            turn: Arc::default(),
        };
        Ok((client, ClientEvents { events }))
    }

    /// The bounds the server announced.
    pub fn limits(&self) -> &AdvertisedLimits {
        &self.limits
    }

    /// Takes the lowest free nameplate room and joins it.
    pub async fn allocate(&self) -> Result<RoomId, ClientError> {
        let id = self.next_id();
        match self
            .request(ClientMessage::Allocate { id: Some(id) }, id)
            .await?
        {
            ServerMessage::Allocated { room, turn, .. } => {
                self.keep_turn(turn);
                Ok(room)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Joins `room`; returns how many members it has now, this client included.
    pub async fn join(&self, room: &RoomId) -> Result<usize, ClientError> {
        let id = self.next_id();
        let message = ClientMessage::Join {
            room: room.clone(),
            id: Some(id),
            peer: None,
        };
        match self.request(message, id).await? {
            ServerMessage::Joined { members, turn, .. } => {
                self.keep_turn(turn);
                Ok(members)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// The TURN relay and short-lived credentials the server gave with its latest answer to
    /// [`SignalingClient::allocate`], [`SignalingClient::join`] or
    /// [`SignalingClient::join_pair`]; `None` if it gave none (it knows no relay, or is older).
    pub fn turn_credentials(&self) -> Option<TurnCredentials> {
        self.turn.lock().ok()?.clone()
    }

    /// Keeps credentials from a reply; ones out of all proportion are left out.
    fn keep_turn(&self, turn: Option<Box<TurnCredentials>>) {
        let Some(turn) = turn else {
            return;
        };
        if !turn.is_reasonable() {
            tracing::warn!("the signaling server sent unusable TURN credentials; left out");
            return;
        }
        if let Ok(mut kept) = self.turn.lock() {
            *kept = Some(*turn);
        }
    }

    /// Proves to the server that this connection is the host of `key`, with a signature over
    /// this connection's nonce: once per connection, before [`SignalingClient::join_pair`].
    pub async fn prove(&self, key: &PairKey) -> Result<(), ClientError> {
        let nonce = self.nonce.as_ref().ok_or_else(|| {
            ClientError::Protocol(
                "the signaling server sent no nonce in its welcome: it is older than pair-room \
                 proofs and cannot keep others out of this host's rooms; upgrade p2p-signal"
                    .into(),
            )
        })?;
        let proof = key.prove(nonce)?;
        let id = self.next_id();
        let message = ClientMessage::Prove {
            certificate: proof.certificate,
            signature: proof.signature,
            id: Some(id),
        };
        match self.request(message, id).await? {
            ServerMessage::Proved { host, .. } if host == encode_host(&key.id()) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Joins the pair room `room` to meet `peer` (the SHA-256 of its certificate), once this
    /// connection has proved its host ([`SignalingClient::prove`]); returns how many members it
    /// has now. The room is [`crate::protocol::pair_room()`] of both ids; the server refuses any
    /// other (`bad_proof`).
    pub async fn join_pair(&self, room: &RoomId, peer: &HostHash) -> Result<usize, ClientError> {
        let id = self.next_id();
        let message = ClientMessage::Join {
            room: room.clone(),
            id: Some(id),
            peer: Some(encode_host(peer)),
        };
        match self.request(message, id).await? {
            ServerMessage::Joined { members, turn, .. } => {
                self.keep_turn(turn);
                Ok(members)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// The nonce the server sent for this connection, if it sent one.
    pub fn nonce(&self) -> Option<&Nonce> {
        self.nonce.as_ref()
    }

    /// Leaves `room`.
    pub async fn leave(&self, room: &RoomId) -> Result<(), ClientError> {
        let id = self.next_id();
        let message = ClientMessage::Leave {
            room: room.clone(),
            id: Some(id),
        };
        match self.request(message, id).await? {
            ServerMessage::Left { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Relays `payload` to the other members of `room`. Errors the server reports later arrive as
    /// [`Event::Error`].
    pub async fn send(&self, room: &RoomId, payload: impl Into<String>) -> Result<(), ClientError> {
        let message = ClientMessage::Send {
            room: room.clone(),
            payload: payload.into(),
            id: None,
        };
        self.commands
            .send(Command::Send(message))
            .await
            .map_err(|_| ClientError::Closed("the connection task has ended".into()))
    }

    /// Sends everything queued, closes the connection with a close frame, and returns once it is
    /// closed (or after a few seconds).
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Close(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), closed).await;
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn request(&self, message: ClientMessage, id: u64) -> Result<ServerMessage, ClientError> {
        let (reply, answer) = oneshot::channel();
        let closed = || ClientError::Closed("the connection task has ended".into());
        self.commands
            .send(Command::Request { message, id, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn unexpected(message: &ServerMessage) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {message:?}"))
}

async fn next_server_message(socket: &mut Socket) -> Result<ServerMessage, ClientError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return ServerMessage::decode(text.as_str())
                    .map_err(|e| ClientError::Protocol(e.to_string()));
            }
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map_or_else(String::new, |f| f.reason.to_string());
                return Err(ClientError::Closed(reason));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ClientError::Closed(e.to_string())),
            None => return Err(ClientError::Closed("end of stream".into())),
        }
    }
}

type Pending = HashMap<u64, oneshot::Sender<Result<ServerMessage, ClientError>>>;

/// Owns the socket: writes commands, routes replies to their requests and the rest to events.
async fn drive(
    mut socket: Socket,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    ping_every: Duration,
) {
    let mut pending: Pending = HashMap::new();
    let mut fatal: Option<Fatal> = None;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let reason = loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Request { message, id, reply }) => {
                    pending.insert(id, reply);
                    if let Err(e) = socket.send(Message::text(message.encode())).await {
                        break e.to_string();
                    }
                }
                Some(Command::Send(message)) => {
                    if let Err(e) = socket.send(Message::text(message.encode())).await {
                        break e.to_string();
                    }
                }
                Some(Command::Close(done)) => {
                    let _ = socket.close(None).await;
                    let _ = done.send(());
                    break "closed by this client".to_owned();
                }
                None => {
                    let _ = socket.close(None).await;
                    break "closed by this client".to_owned();
                }
            },
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let message = match ServerMessage::decode(text.as_str()) {
                        Ok(message) => message,
                        Err(e) => break format!("unreadable frame from the server: {e}"),
                    };
                    if let Some(event) = route(message, &mut pending, &mut fatal)
                        && events.send(event).await.is_err()
                    {
                        // Nobody listens any more; keep serving requests until all handles drop.
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    break frame.map_or_else(|| "closed by the server".to_owned(), |f| {
                        format!("closed by the server: {}", f.reason)
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "the server ended the connection".to_owned(),
            },
            _ = ping.tick() => {
                if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                    break e.to_string();
                }
            }
        }
    };
    for (_, reply) in pending.drain() {
        let error = match &fatal {
            Some(f) => ClientError::Server {
                kind: f.kind,
                message: f.message.clone(),
                bound: f.bound.clone(),
            },
            None => ClientError::Closed(reason.clone()),
        };
        let _ = reply.send(Err(error));
    }
    let reason = fatal.map_or(reason, |f| format!("{}: {}", f.kind.as_str(), f.message));
    let _ = events.send(Event::Closed { reason }).await;
}

/// A reply, or the error frame that came instead of it as an error.
fn reply_result(message: ServerMessage) -> Result<ServerMessage, ClientError> {
    match message {
        ServerMessage::Error {
            kind,
            message,
            bound,
            ..
        } => Err(ClientError::Server {
            kind,
            message,
            bound,
        }),
        other => Ok(other),
    }
}

/// The fatal error the server sent before closing.
struct Fatal {
    kind: ErrorKind,
    message: String,
    bound: Option<String>,
}

fn route(
    message: ServerMessage,
    pending: &mut Pending,
    fatal: &mut Option<Fatal>,
) -> Option<Event> {
    if let ServerMessage::Error {
        kind,
        message,
        bound,
        fatal: true,
        ..
    } = &message
    {
        *fatal = Some(Fatal {
            kind: *kind,
            message: message.clone(),
            bound: bound.clone(),
        });
    }
    let reply_to = match &message {
        ServerMessage::Allocated { id, .. }
        | ServerMessage::Proved { id, .. }
        | ServerMessage::Joined { id, .. }
        | ServerMessage::Left { id, .. } => *id,
        ServerMessage::Error { id, .. } => *id,
        _ => None,
    };
    if let Some(reply) = reply_to.and_then(|id| pending.remove(&id)) {
        let _ = reply.send(reply_result(message));
        return None;
    }
    match message {
        ServerMessage::Message { room, payload } => Some(Event::Message { room, payload }),
        ServerMessage::PeerJoined { room } => Some(Event::PeerJoined { room }),
        ServerMessage::PeerLeft { room } => Some(Event::PeerLeft { room }),
        ServerMessage::Error {
            kind,
            message,
            room,
            fatal,
            ..
        } => Some(Event::Error {
            kind,
            message,
            room,
            fatal,
        }),
        other => {
            tracing::debug!(?other, "reply to no pending request");
            None
        }
    }
}
