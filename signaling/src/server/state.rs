//! The server's shared state: the sans-IO [`Hub`] plus a send queue per connection, behind one lock.
//!
//! Every event takes the lock briefly, feeds the hub and carries out its outputs by queueing frames
//! without waiting; nothing under the lock touches a socket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

use super::metrics::Metrics;
use crate::config::TurnConfig;
use crate::protocol::{
    ConnId, ErrorKind, Hub, Inbound, Limits, Nonce, Output, Refusal, ServerMessage, TurnCredentials,
};

/// One item for a connection's writer.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame.
    Text(Utf8Bytes),
    /// A close frame; the writer stops after it.
    Close(u16, &'static str),
}

impl Outbound {
    /// The bytes it counts against `max_queued_bytes`.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Close(..) => 0,
        }
    }
}

/// Slots reserved in a connection's own send queue.
pub(crate) type Reserved<'a> = mpsc::PermitIterator<'a, Outbound>;

#[derive(Debug)]
struct ConnHandle {
    queue: mpsc::Sender<Outbound>,
    /// Text bytes queued and not yet written, shared with the writer.
    queued_bytes: Arc<AtomicUsize>,
    /// Tells the connection task to stop reading: the hub closed the connection.
    stop: Arc<Notify>,
}

#[derive(Debug)]
struct Shared {
    hub: Hub,
    handles: HashMap<ConnId, ConnHandle>,
}

/// What a connection task gets when the hub lets it in.
pub(crate) struct Admitted {
    pub(crate) conn: ConnId,
    /// The connection's own end of its send queue, to reserve room for replies before a frame is
    /// handled: a client is slowed down by its own replies, never dropped for them.
    pub(crate) replies: mpsc::Sender<Outbound>,
    pub(crate) queue: mpsc::Receiver<Outbound>,
    pub(crate) queued_bytes: Arc<AtomicUsize>,
    pub(crate) stop: Arc<Notify>,
}

/// The state every connection task and the timer share.
#[derive(Debug)]
pub(crate) struct AppState {
    shared: Mutex<Shared>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    live_tasks: AtomicUsize,
    all_done: Notify,
    /// The TURN relay whose credentials go out with `allocated` and `joined`.
    turn: Option<TurnConfig>,
}

/// Counts a running connection task until dropped.
pub(crate) struct LiveTask(Arc<AppState>);

impl Drop for LiveTask {
    fn drop(&mut self) {
        if self.0.live_tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_done.notify_waiters();
        }
    }
}

impl AppState {
    pub(crate) fn new(limits: Limits, metrics: Arc<Metrics>, turn: Option<TurnConfig>) -> Self {
        Self {
            shared: Mutex::new(Shared {
                hub: Hub::new(limits.clone()),
                handles: HashMap::new(),
            }),
            metrics,
            limits,
            live_tasks: AtomicUsize::new(0),
            all_done: Notify::new(),
            turn,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic under the lock leaves the maps consistent enough to go on serving other rooms.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn live_task(self: &Arc<Self>) -> LiveTask {
        self.live_tasks.fetch_add(1, Ordering::AcqRel);
        LiveTask(Arc::clone(self))
    }

    /// Waits until every connection task has ended.
    pub(crate) async fn all_tasks_done(&self) {
        loop {
            let notified = self.all_done.notified();
            if self.live_tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn connect(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        // Drawn before the lock: the hub only keeps it.
        let nonce = Nonce::random().map_err(|e| {
            tracing::error!("refusing a connection: {e}");
            self.metrics.reject(ErrorKind::ServerFull);
            Refusal {
                message: ServerMessage::fatal_error(
                    ErrorKind::ServerFull,
                    None,
                    "the server cannot draw random numbers now; try again later".into(),
                ),
                kind: ErrorKind::ServerFull,
            }
        })?;
        let mut shared = self.lock();
        let refused = shared.hub.connect(ip, nonce, Instant::now());
        let conn = refused.inspect_err(|r| self.metrics.reject(r.kind))?;
        let (queue, receiver) = mpsc::channel(self.limits.max_queued_frames);
        let stop = Arc::new(Notify::new());
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let replies = queue.clone();
        shared.handles.insert(
            conn,
            ConnHandle {
                queue,
                queued_bytes: Arc::clone(&queued_bytes),
                stop: Arc::clone(&stop),
            },
        );
        self.metrics.connections_opened.inc();
        self.update_gauges(&shared);
        Ok(Admitted {
            conn,
            replies,
            queue: receiver,
            queued_bytes,
            stop,
        })
    }

    /// Feeds a frame from `conn`; `reserved` holds queue slots for `conn`'s own replies. Returns
    /// whether the connection is still open.
    pub(crate) fn handle(&self, conn: ConnId, inbound: Inbound, reserved: Reserved<'_>) -> bool {
        let mut out = Vec::new();
        let mut shared = self.lock();
        shared.hub.handle(conn, inbound, Instant::now(), &mut out);
        self.carry_out_with(&mut shared, out, Some((conn, reserved)));
        shared.handles.contains_key(&conn)
    }

    pub(crate) fn disconnect(&self, conn: ConnId) {
        let mut out = Vec::new();
        let mut shared = self.lock();
        shared.handles.remove(&conn);
        shared.hub.disconnect(conn, &mut out);
        self.carry_out(&mut shared, out);
    }

    /// Ends a connection whose client stopped reading.
    pub(crate) fn evict_slow_reader(&self, conn: ConnId) {
        let mut out = Vec::new();
        let mut shared = self.lock();
        shared.handles.remove(&conn);
        self.evict(&mut shared, conn, "write_timeout_secs", &mut out);
        self.carry_out(&mut shared, out);
    }

    fn evict(&self, shared: &mut Shared, conn: ConnId, bound: &str, out: &mut Vec<Output>) {
        let message = format!(
            "the client did not read the frames sent to it (limits: {} frames, {} bytes queued); \
             read faster",
            self.limits.max_queued_frames, self.limits.max_queued_bytes
        );
        shared
            .hub
            .evict(conn, ErrorKind::SlowReader, bound, message, out);
    }

    pub(crate) fn tick(&self) {
        let mut out = Vec::new();
        let mut shared = self.lock();
        shared.hub.handle_timeout(Instant::now(), &mut out);
        self.carry_out(&mut shared, out);
    }

    pub(crate) fn shutdown(&self) {
        let mut out = Vec::new();
        let mut shared = self.lock();
        shared.hub.shutdown(&mut out);
        self.carry_out(&mut shared, out);
    }

    fn carry_out(&self, shared: &mut Shared, out: Vec<Output>) {
        self.carry_out_with(shared, out, None);
    }

    /// Queues every output without waiting. A connection whose queue is full, or holds more than
    /// `max_queued_bytes`, when another member's frame arrives is a slow reader and is evicted; its
    /// own replies go into the slots its reader reserved. A closed connection's reader is told to stop.
    fn carry_out_with(
        &self,
        shared: &mut Shared,
        mut out: Vec<Output>,
        mut own: Option<(ConnId, Reserved<'_>)>,
    ) {
        let mut slow = Vec::new();
        while !out.is_empty() {
            for output in out.drain(..) {
                let (conn, item) = match output {
                    Output::Send { conn, mut message } => {
                        self.hand_out_turn(conn, &mut message);
                        self.count(&message);
                        (conn, Outbound::Text(message.encode().into()))
                    }
                    Output::Close { conn, code, reason } => (conn, Outbound::Close(code, reason)),
                };
                let Some(handle) = shared.handles.get(&conn) else {
                    continue;
                };
                let closing = matches!(item, Outbound::Close(..));
                let bytes = item.len();
                let reserved = match &mut own {
                    Some((me, reserved)) if *me == conn => reserved.next(),
                    _ => None,
                };
                let queued = handle.queued_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
                let overflow = match reserved {
                    Some(permit) => {
                        permit.send(item);
                        None
                    }
                    None if queued > self.limits.max_queued_bytes && !closing => {
                        Some("max_queued_bytes")
                    }
                    None => handle
                        .queue
                        .try_send(item)
                        .err()
                        .map(|_| "max_queued_frames"),
                };
                if closing {
                    if let Some(handle) = shared.handles.remove(&conn) {
                        handle.stop.notify_one();
                    }
                } else if let Some(bound) = overflow {
                    slow.push((conn, bound));
                }
            }
            for (conn, bound) in slow.drain(..) {
                if let Some(handle) = shared.handles.remove(&conn) {
                    handle.stop.notify_one();
                    tracing::info!(%conn, bound, "dropping a slow reader");
                    self.evict(shared, conn, bound, &mut out);
                }
            }
        }
        self.update_gauges(shared);
    }

    /// Fills in fresh TURN credentials, when this server knows a relay, in the answer to an
    /// `allocate` or a `join` (which only ever goes to the connection that asked).
    fn hand_out_turn(&self, conn: ConnId, message: &mut ServerMessage) {
        let Some(config) = &self.turn else {
            return;
        };
        if let ServerMessage::Allocated { turn, .. } | ServerMessage::Joined { turn, .. } = message
        {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            let expiry = now.saturating_add(config.ttl_secs);
            *turn = Some(Box::new(TurnCredentials::mint(
                &config.urls,
                config.secret.as_bytes(),
                expiry,
                &format!("p2phost-{conn}"),
            )));
        }
    }

    fn count(&self, message: &ServerMessage) {
        match message {
            ServerMessage::Error { kind, .. } => self.metrics.reject(*kind),
            ServerMessage::Joined { room, .. } if room.nameplate_number().is_some() => {
                self.metrics.nameplate_joins.inc();
            }
            ServerMessage::Joined { room, .. } if room.is_pair_room() => {
                self.metrics.pair_joins.inc();
            }
            ServerMessage::Message { payload, .. } => {
                self.metrics.relayed_messages.inc();
                self.metrics.relayed_bytes.inc_by(payload.len() as u64);
            }
            _ => {}
        }
    }

    fn update_gauges(&self, shared: &Shared) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics
            .connections
            .set(gauge(shared.hub.connection_count()));
        self.metrics.rooms.set(gauge(shared.hub.room_count()));
    }
}
