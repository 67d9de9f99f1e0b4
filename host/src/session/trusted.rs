//! Daemon mode: trusted peers meet in a room named after both their ids, and every data channel
//! between them is pinned to the certificates those ids name (DESIGN §4).
//!
//! ```text
//! host A (id a)                   signaling server                 host B (id b)
//!   prove (A's cert, signed nonce) ─▶   ◀─ prove (B's cert, signed nonce)
//!   join pair_room(a, b), peer b ───▶   ◀─── join pair_room(a, b), peer a
//!   {"session":7,"kind":"offer","description":…} ──▶
//!                                 ◀── {"session":7,"kind":"answer","description":…}
//!   {"session":7,"kind":"candidate","candidate":…} ◀─▶ (each side's, as found)
//!   ══════ DTLS: each side's certificate must hash to the id the other trusts ══════
//! ```
//!
//! The server admits only the two hosts a pair room is named after: each first proves which host
//! it is, with its certificate and a signature by its key over the connection's nonce (signaling's
//! `protocol::pair_room`), so a third host that knows both ids cannot sit in the room while one of
//! them is away. That keeps the room free; it is not what makes the link safe. Descriptions travel
//! in the clear: each side refuses a description whose DTLS fingerprint is not the trusted peer's
//! id, and webrtc-rs refuses a certificate that does not match the fingerprint (proving possession
//! of its key). A server that lets anyone in can stop a connection but cannot take a peer's place.
//! Many sessions may run at once between two hosts; each is one peer connection, tagged by a
//! session number.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use p2p_signaling::protocol::{ErrorKind, PairKey, RoomId};
use p2p_signaling::{ClientEvents, Event, SignalingClient};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use webrtc::peer_connection::{RTCIceCandidateInit, RTCSdpType, RTCSessionDescription};

use super::webrtc_link::{self, Remote, Signal};
use super::{Connected, SessionError, SessionOptions};
use crate::identity::{Identity, PeerId};

/// The room two hosts meet in, named after both ids so both derive the same: `pair.` and a hash
/// of both, a name the server reserves for the two hosts it names.
pub fn pair_room(a: &PeerId, b: &PeerId) -> RoomId {
    p2p_signaling::protocol::pair_room(a.sha256(), b.sha256())
}

/// What travels in a pair room.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairMessage {
    /// Which connection attempt it belongs to (chosen at random by the offering side).
    session: u64,
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<RTCSessionDescription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    candidate: Option<RTCIceCandidateInit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Offer,
    Answer,
    /// One of the sender's network candidates (trickle ICE).
    Candidate,
    /// The sender gave up on this session: it refused what it got, or could not connect.
    Refused,
    Failed,
}

/// Sessions waiting for their next message, by room and number.
type Routes = Arc<Mutex<HashMap<(RoomId, u64), mpsc::Sender<PairMessage>>>>;

/// A trusted peer's offer, waiting for [`PairSignaling::accept`]. The session's later messages
/// (the offerer's candidates) wait in it too; dropping it forgets the session.
#[derive(Debug)]
pub struct Incoming {
    /// Who offers (checked when accepted).
    pub peer: PeerId,
    route: Route,
}

/// A session's place in [`Routes`] and the messages routed to it; it leaves the routes on drop.
struct Route {
    routes: Routes,
    room: RoomId,
    session: u64,
    messages: mpsc::Receiver<PairMessage>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("room", &self.room)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(self.room.clone(), self.session));
    }
}

/// Messages one session may have waiting: its description and every candidate of the peer.
const ROUTE_QUEUE: usize = 80;

/// One host's presence on the signaling server for all its trusted peers.
pub struct PairSignaling {
    client: SignalingClient,
    options: SessionOptions,
    /// Per trusted peer: its room, whether it is in it, and how many times it joined it.
    peers: HashMap<PeerId, (RoomId, watch::Receiver<bool>, watch::Receiver<u64>)>,
    routes: Routes,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for PairSignaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairSignaling")
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Offers not yet accepted that may wait; more are refused.
const MAX_PENDING_OFFERS: usize = 16;
/// Sessions one host may have open with its peers at once, per peer (both directions).
const MAX_SESSIONS_PER_PEER: usize = 8;

impl PairSignaling {
    /// Connects to the signaling server as `options.identity` and joins the room of each of
    /// `peers`. Offers from them come out of the returned receiver.
    pub async fn start(
        options: SessionOptions,
        peers: &[PeerId],
    ) -> Result<(Self, mpsc::Receiver<Incoming>), SessionError> {
        let own = options.identity.as_ref().map(Identity::id).ok_or_else(|| {
            SessionError::Protocol("daemon mode needs this host's identity".into())
        })?;
        let rooms = peers.iter().map(|p| (*p, pair_room(&own, p))).collect();
        Self::with_rooms(options, rooms).await
    }

    /// Like [`PairSignaling::start`], with the room of each peer given: for tests that put a host
    /// where it does not belong.
    pub async fn with_rooms(
        options: SessionOptions,
        rooms: Vec<(PeerId, RoomId)>,
    ) -> Result<(Self, mpsc::Receiver<Incoming>), SessionError> {
        let key = match &options.identity {
            Some(identity) => PairKey::new(identity.certificate_der(), identity.key_pkcs8_der())
                .map_err(p2p_signaling::ClientError::from)?,
            None => {
                return Err(SessionError::Protocol(
                    "daemon mode needs this host's identity".into(),
                ));
            }
        };
        let (client, events) = super::connect(&options).await?;
        client.prove(&key).await?;
        let mut peers = HashMap::new();
        let mut presence = HashMap::new();
        for (peer, room) in rooms {
            let members = join_room(&client, &room, &peer).await?;
            let (online, online_rx) = watch::channel(members >= 2);
            let (arrivals, arrivals_rx) = watch::channel(0);
            presence.insert(
                room.clone(),
                Seat {
                    peer,
                    online,
                    arrivals,
                },
            );
            peers.insert(peer, (room, online_rx, arrivals_rx));
        }
        let routes: Routes = Arc::default();
        let (incoming_tx, incoming) = mpsc::channel(MAX_PENDING_OFFERS);
        let dispatcher = tokio::spawn(dispatch(
            client.clone(),
            events,
            presence,
            Arc::clone(&routes),
            incoming_tx,
        ));
        Ok((
            Self {
                client,
                options,
                peers,
                routes,
                dispatcher,
            },
            incoming,
        ))
    }

    /// Whether `peer` is in its room now, as a watch that changes when it comes and goes.
    pub fn presence(&self, peer: &PeerId) -> Option<watch::Receiver<bool>> {
        self.peers.get(peer).map(|(_, online, _)| online.clone())
    }

    /// How many times `peer` has joined its room since this host did. A change means the peer
    /// came back (a restart, or a new connection to the server): what was under way with its
    /// previous connection is gone with it, and need not be waited out.
    pub fn arrivals(&self, peer: &PeerId) -> Option<watch::Receiver<u64>> {
        self.peers
            .get(peer)
            .map(|(_, _, arrivals)| arrivals.clone())
    }

    /// Whether the connection to the signaling server still runs.
    pub fn is_running(&self) -> bool {
        !self.dispatcher.is_finished()
    }

    /// Opens a data channel to `peer`, this side offering; the channel's `label` tells the peer
    /// what it is for (it travels inside DTLS, where the server cannot change it).
    pub async fn connect(&self, peer: &PeerId, label: &str) -> Result<Connected, SessionError> {
        let (room, _, _) = self
            .peers
            .get(peer)
            .ok_or_else(|| SessionError::Protocol(format!("{peer} is not a trusted peer")))?;
        let session = loop {
            let candidate = rand_u64();
            let taken = self.lock_routes().contains_key(&(room.clone(), candidate));
            if !taken {
                break candidate;
            }
        };
        let route = {
            let mut routes = self.lock_routes();
            let open = routes.keys().filter(|(r, _)| r == room).count();
            if open >= MAX_SESSIONS_PER_PEER {
                return Err(SessionError::Protocol(format!(
                    "{MAX_SESSIONS_PER_PEER} sessions with {peer} are open already"
                )));
            }
            register(&mut routes, &self.routes, room.clone(), session).0
        };
        let signal = self.signal(*peer, route);
        // The relay credentials of the latest join, good for the server's `ttl_secs` from then.
        let options = self
            .options
            .with_offered_turn(self.client.turn_credentials())?;
        super::turn_stream::connect_through(&options, |options| async move {
            webrtc_link::offer(signal, label, peer.to_string(), &options).await
        })
        .await
    }

    /// Answers an offer from [`PairSignaling::start`]'s receiver.
    pub async fn accept(&self, incoming: Incoming) -> Result<Connected, SessionError> {
        let Incoming { peer, route } = incoming;
        let open = self
            .lock_routes()
            .keys()
            .filter(|(r, _)| r == &route.room)
            .count();
        // This session is one of them.
        if open > MAX_SESSIONS_PER_PEER {
            let error = SessionError::Protocol(format!(
                "{MAX_SESSIONS_PER_PEER} sessions with {peer} are open already"
            ));
            return Err(self.signal(peer, route).abort(error).await);
        }
        let signal = self.signal(peer, route);
        let options = match self
            .options
            .with_offered_turn(self.client.turn_credentials())
        {
            Ok(options) => options,
            Err(e) => return Err(signal.abort(e).await),
        };
        super::turn_stream::connect_through(&options, |options| async move {
            webrtc_link::answer(signal, peer.to_string(), &options).await
        })
        .await
    }

    /// Leaves the server.
    pub async fn close(&self) {
        self.client.close().await;
        self.dispatcher.abort();
    }

    fn lock_routes(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(RoomId, u64), mpsc::Sender<PairMessage>>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn signal(&self, peer: PeerId, route: Route) -> PinnedSignal {
        PinnedSignal {
            client: self.client.clone(),
            route,
            peer,
        }
    }
}

/// Adds a route for `session` in `room` to `routes` (the locked `shared`); returns it and the
/// sender its messages go in by.
fn register(
    routes: &mut HashMap<(RoomId, u64), mpsc::Sender<PairMessage>>,
    shared: &Routes,
    room: RoomId,
    session: u64,
) -> (Route, mpsc::Sender<PairMessage>) {
    let (tx, messages) = mpsc::channel(ROUTE_QUEUE);
    routes.insert((room.clone(), session), tx.clone());
    let route = Route {
        routes: Arc::clone(shared),
        room,
        session,
        messages,
    };
    (route, tx)
}

impl Drop for PairSignaling {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

/// Joins `room` to meet `peer`: a pair room as the host this connection proved, any other room
/// (as tests use) plainly.
async fn join_room(
    client: &SignalingClient,
    room: &RoomId,
    peer: &PeerId,
) -> Result<usize, p2p_signaling::ClientError> {
    if room.is_pair_room() {
        client.join_pair(room, peer.sha256()).await
    } else {
        client.join(room).await
    }
}

fn rand_u64() -> u64 {
    use chacha20poly1305::aead::OsRng;
    use chacha20poly1305::aead::rand_core::RngCore;
    OsRng.next_u64()
}

/// A trusted peer's seat in its pair room, as the dispatcher reports it.
struct Seat {
    peer: PeerId,
    online: watch::Sender<bool>,
    arrivals: watch::Sender<u64>,
}

/// Routes the room's messages to their sessions, new offers to `incoming`, and presence to the
/// watches, until the connection ends.
async fn dispatch(
    client: SignalingClient,
    mut events: ClientEvents,
    presence: HashMap<RoomId, Seat>,
    routes: Routes,
    incoming: mpsc::Sender<Incoming>,
) {
    while let Some(event) = events.next().await {
        match event {
            Event::Message { room, payload } => {
                let Some(Seat { peer, .. }) = presence.get(&room) else {
                    continue;
                };
                let message = match parse_message(&payload) {
                    Ok(message) => message,
                    Err(e) => {
                        tracing::warn!(%peer, "{e}");
                        continue;
                    }
                };
                let route = routes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&(room.clone(), message.session))
                    .cloned();
                match (route, message.kind) {
                    (Some(route), _) => {
                        if route.try_send(message).is_err() {
                            tracing::debug!(%peer, "a session's queue is full; a message dropped");
                        }
                    }
                    (None, Kind::Offer) => {
                        let session = message.session;
                        // Routed from now on: the offerer's candidates follow at once, before
                        // the offer is accepted.
                        let (route, tx) = register(
                            &mut routes.lock().unwrap_or_else(PoisonError::into_inner),
                            &routes,
                            room.clone(),
                            session,
                        );
                        // The queue is new: there is room.
                        let _ = tx.try_send(message);
                        let offer = Incoming { peer: *peer, route };
                        if incoming.try_send(offer).is_err() {
                            tracing::warn!(%peer, "too many offers waiting; refusing one");
                            refuse(&client, &room, session, Kind::Failed).await;
                        }
                    }
                    // Late messages of a finished session.
                    (None, _) => {}
                }
            }
            Event::PeerJoined { room } => {
                if let Some(seat) = presence.get(&room) {
                    seat.arrivals.send_modify(|n| *n += 1);
                    let _ = seat.online.send(true);
                }
            }
            Event::PeerLeft { room } => {
                if let Some(seat) = presence.get(&room) {
                    let _ = seat.online.send(false);
                }
            }
            Event::Error {
                kind: ErrorKind::RoomExpired,
                room: Some(room),
                ..
            } => {
                // Rooms live an hour on the server; a daemon lives longer: join again.
                if let Some(seat) = presence.get(&room) {
                    match join_room(&client, &room, &seat.peer).await {
                        Ok(members) => {
                            let _ = seat.online.send(members >= 2);
                        }
                        Err(e) => tracing::warn!(%room, "cannot join the pair room again: {e}"),
                    }
                }
            }
            Event::Error {
                kind: ErrorKind::SeatTaken,
                room: Some(room),
                ..
            } => {
                // Not joined again: two processes with one identity would take turns forever.
                if let Some(seat) = presence.get(&room) {
                    tracing::warn!(
                        peer = %seat.peer,
                        "another connection of this host took its seat in the pair room: is \
                         this host running twice?"
                    );
                    let _ = seat.online.send(false);
                }
            }
            Event::Closed { reason } => {
                tracing::warn!("signaling connection closed: {reason}");
                break;
            }
            _ => {}
        }
    }
    for seat in presence.values() {
        let _ = seat.online.send(false);
    }
}

async fn refuse(client: &SignalingClient, room: &RoomId, session: u64, kind: Kind) {
    let message = PairMessage {
        session,
        kind,
        description: None,
        candidate: None,
    };
    if let Ok(json) = serde_json::to_string(&message) {
        let _ = client.send(room, json).await;
    }
}

/// One session's [`Signal`]: its messages in the pair room, descriptions pinned to the peer's id.
struct PinnedSignal {
    client: SignalingClient,
    route: Route,
    peer: PeerId,
}

impl PinnedSignal {
    async fn send(&self, message: &PairMessage) -> Result<(), SessionError> {
        let json = serde_json::to_string(message)
            .map_err(|e| SessionError::WebRtc(format!("encoding a message: {e}")))?;
        Ok(self.client.send(&self.route.room, json).await?)
    }
}

/// A pair-room message as the dispatcher reads it from the signaling server.
fn parse_message(payload: &str) -> Result<PairMessage, SessionError> {
    serde_json::from_str(payload)
        .map_err(|e| SessionError::Protocol(format!("unreadable message in the pair room: {e}")))
}

/// A pair-room message as a session takes it: an offer or an answer with its description, of
/// its kind's type and pinned to `peer` ([`check_fingerprints`]); a candidate with its candidate;
/// or the peer giving up, as the error it stands for.
fn checked(message: PairMessage, peer: &PeerId) -> Result<Remote, SessionError> {
    let expected = match message.kind {
        Kind::Offer => RTCSdpType::Offer,
        Kind::Answer => RTCSdpType::Answer,
        Kind::Candidate => {
            return match (message.candidate, message.description) {
                (Some(candidate), None) => {
                    Ok(Remote::Candidate(webrtc_link::check_candidate(candidate)?))
                }
                _ => Err(SessionError::Protocol(
                    "a candidate message without its candidate, or with a description".into(),
                )),
            };
        }
        Kind::Refused => return Err(SessionError::PeerRefused),
        Kind::Failed => return Err(SessionError::PeerFailed),
    };
    let (Some(description), None) = (message.description, message.candidate) else {
        return Err(SessionError::Protocol(
            "a description message without its SDP, or with a candidate".into(),
        ));
    };
    if description.sdp_type != expected {
        return Err(SessionError::Protocol(format!(
            "expected an SDP {expected}, got {}",
            description.sdp_type
        )));
    }
    check_fingerprints(&description.sdp, peer)?;
    Ok(Remote::Description(Box::new(description)))
}

/// A pair-room message that [`inspect_pair_message`] accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PairMessageInfo {
    /// The session (connection attempt) it belongs to.
    pub session: u64,
    /// `"offer"`, `"answer"`, `"candidate"`, `"refused"` or `"failed"`.
    pub kind: &'static str,
}

/// What this host does with a message that arrives in the pair room of `expected`, the trusted
/// peer: the dispatcher's parser (the JSON of one message, unknown fields refused), then, for an
/// offer or an answer, the checks a session makes before it uses the description (it is there,
/// its type is the message's kind, and every DTLS fingerprint is SHA-256 and names `expected`'s
/// certificate). Everything in a pair room comes from the network through a server that is not
/// trusted; the fuzz target `pair_message` feeds this arbitrary bytes.
pub fn inspect_pair_message(
    payload: &str,
    expected: &PeerId,
) -> Result<PairMessageInfo, SessionError> {
    let message = parse_message(payload)?;
    let session = message.session;
    let kind = match message.kind {
        Kind::Offer => "offer",
        Kind::Answer => "answer",
        Kind::Candidate => "candidate",
        Kind::Refused => "refused",
        Kind::Failed => "failed",
    };
    match checked(message, expected) {
        Ok(_) | Err(SessionError::PeerRefused | SessionError::PeerFailed) => {
            Ok(PairMessageInfo { session, kind })
        }
        Err(e) => Err(e),
    }
}

/// Checks that every DTLS fingerprint in `sdp` is SHA-256 and names `peer`'s certificate.
///
/// The DTLS handshake checks the certificate against the fingerprint webrtc-rs's SDP parser
/// reads, so the lines are read as that parser reads them: split at `\n`, `\r`s before the type
/// skipped, and an `a=` line's value trimmed of white space (Unicode's, both ends) with its key
/// running to the first `:`. Every such attribute whose key is `fingerprint` in any ASCII case
/// counts, not just the first of each section as the parser takes: a fingerprint written
/// `a= fingerprint:…` must not slip past this check and reach the handshake.
pub(super) fn check_fingerprints(sdp: &str, peer: &PeerId) -> Result<(), SessionError> {
    let mut found = 0;
    for line in sdp.split('\n') {
        let Some(attribute) = line.trim_start_matches('\r').strip_prefix("a=") else {
            continue;
        };
        let attribute = attribute.trim();
        let (key, value) = attribute.split_once(':').unwrap_or((attribute, ""));
        if !key.trim().eq_ignore_ascii_case("fingerprint") {
            continue;
        }
        found += 1;
        let (algorithm, hex) = value.split_once(' ').unwrap_or((value, ""));
        if !algorithm.eq_ignore_ascii_case("sha-256") {
            return Err(SessionError::WrongPeer(format!(
                "it announced a {algorithm:?} certificate fingerprint, not sha-256"
            )));
        }
        let bytes: Option<Vec<u8>> = hex
            .split(':')
            .map(|pair| {
                // Two hex digits: from_str_radix alone would also take "+a".
                (pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| u8::from_str_radix(pair, 16).ok())
                    .flatten()
            })
            .collect();
        match bytes {
            Some(bytes) if bytes.as_slice() == peer.sha256() => {}
            Some(bytes) if bytes.len() == 32 => {
                let mut digest = [0u8; 32];
                digest.copy_from_slice(&bytes);
                return Err(SessionError::WrongPeer(format!(
                    "its certificate is {}, not {peer}",
                    PeerId::from_sha256(digest)
                )));
            }
            _ => {
                return Err(SessionError::WrongPeer(
                    "its certificate fingerprint is malformed".into(),
                ));
            }
        }
    }
    if found == 0 {
        return Err(SessionError::WrongPeer(
            "its description has no certificate fingerprint".into(),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Signal for PinnedSignal {
    async fn send_description(
        &mut self,
        description: &RTCSessionDescription,
    ) -> Result<(), SessionError> {
        let kind = match description.sdp_type {
            RTCSdpType::Offer => Kind::Offer,
            _ => Kind::Answer,
        };
        self.send(&PairMessage {
            session: self.route.session,
            kind,
            description: Some(description.clone()),
            candidate: None,
        })
        .await
    }

    async fn send_candidate(
        &mut self,
        candidate: &RTCIceCandidateInit,
    ) -> Result<(), SessionError> {
        self.send(&PairMessage {
            session: self.route.session,
            kind: Kind::Candidate,
            description: None,
            candidate: Some(candidate.clone()),
        })
        .await
    }

    async fn receive(&mut self) -> Result<Remote, SessionError> {
        let message = self.route.messages.recv().await.ok_or_else(|| {
            p2p_signaling::ClientError::Closed("the signaling connection ended".into())
        })?;
        checked(message, &self.peer)
    }

    async fn abort(self, error: SessionError) -> SessionError {
        let kind = match error {
            SessionError::WrongPeer(_) | SessionError::Protocol(_) | SessionError::PeerRefused => {
                Kind::Refused
            }
            _ => Kind::Failed,
        };
        if let SessionError::WrongPeer(why) = &error {
            tracing::warn!(peer = %self.peer, "refused a connection in its room: {why}");
        }
        refuse(&self.client, &self.route.room, self.route.session, kind).await;
        error
    }

    async fn finish(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_room_and_other_pairs_another() {
        let a = PeerId::of_certificate(b"a");
        let b = PeerId::of_certificate(b"b");
        let c = PeerId::of_certificate(b"c");
        assert_eq!(pair_room(&a, &b), pair_room(&b, &a));
        assert_ne!(pair_room(&a, &b), pair_room(&a, &c));
        let name = pair_room(&a, &b);
        assert!(name.is_pair_room(), "{name}");
        assert_eq!(name.as_str().len(), 48);
    }

    fn sdp_with(fingerprints: &[&str]) -> String {
        let mut sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n".to_owned();
        for f in fingerprints {
            sdp.push_str(&format!("a=fingerprint:{f}\r\n"));
        }
        sdp
    }

    fn hex(id: &PeerId) -> String {
        id.sha256()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The id's hex, bytes below 16 written `+X` (which `u8::from_str_radix` reads as 0X).
    fn plus_signs(id: &PeerId) -> String {
        assert!(id.sha256().iter().any(|b| *b < 16));
        id.sha256()
            .iter()
            .map(|b| match b {
                0..16 => format!("+{b:X}"),
                _ => format!("{b:02X}"),
            })
            .collect::<Vec<_>>()
            .join(":")
    }

    #[test]
    fn only_the_trusted_certificate_passes() {
        let peer = PeerId::of_certificate(b"peer");
        let other = PeerId::of_certificate(b"other");
        let good = format!("sha-256 {}", hex(&peer));
        assert!(check_fingerprints(&sdp_with(&[&good]), &peer).is_ok());
        assert!(check_fingerprints(&sdp_with(&[&good.to_lowercase()]), &peer).is_ok());
        let cases = [
            sdp_with(&[]),
            sdp_with(&[&format!("sha-256 {}", hex(&other))]),
            sdp_with(&[&good, &format!("sha-256 {}", hex(&other))]),
            sdp_with(&[&format!("sha-1 {}", hex(&peer))]),
            sdp_with(&[&format!("sha-256 {}", &hex(&peer)[3..])]),
            sdp_with(&[&format!("sha-256 {}:00", hex(&peer))]),
            sdp_with(&["sha-256 zz"]),
            sdp_with(&["sha-256"]),
            // Read as the SDP parser reads them: white space after `a=`, any case of the key.
            format!(
                "{}a= fingerprint:sha-256 {}\r\n",
                sdp_with(&[&good]),
                hex(&other)
            ),
            format!(
                "{}a=\tFINGERPRINT:sha-256 {}\r\n",
                sdp_with(&[&good]),
                hex(&other)
            ),
            format!(
                "{}\ra=fingerprint:sha-256 {}\n",
                sdp_with(&[&good]),
                hex(&other)
            ),
            // A key without a value hides the next fingerprint from the parser.
            format!("a=fingerprint\r\n{}", sdp_with(&[&good])),
            // Hex digits only, two per byte.
            sdp_with(&[&format!("sha-256 {}", plus_signs(&peer))]),
            sdp_with(&[&format!("sha-256 {}", hex(&peer).replace(':', ""))]),
        ];
        for sdp in cases {
            assert!(
                matches!(
                    check_fingerprints(&sdp, &peer),
                    Err(SessionError::WrongPeer(_))
                ),
                "{sdp:?} passed"
            );
        }
        let err = check_fingerprints(&sdp_with(&[&format!("sha-256 {}", hex(&other))]), &peer)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&other.to_string()), "{err}");
    }
}
