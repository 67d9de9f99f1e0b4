//! The counters behind `GET /metrics`, in Prometheus text format (prometheus-client).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::protocol::ErrorKind;

/// Labels of the reject counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RejectLabels {
    kind: &'static str,
}

/// Every figure the server exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) connections: Gauge,
    pub(crate) connections_opened: Counter,
    pub(crate) rooms: Gauge,
    pub(crate) relayed_messages: Counter,
    pub(crate) relayed_bytes: Counter,
    rejects: Family<RejectLabels, Counter>,
    pub(crate) stun_requests: Counter,
    pub(crate) stun_malformed: Counter,
    pub(crate) stun_rate_limited: Counter,
    pub(crate) nameplate_joins: Counter,
    pub(crate) pair_joins: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("p2p_signal");
        let connections = Gauge::default();
        let connections_opened = Counter::default();
        let rooms = Gauge::default();
        let relayed_messages = Counter::default();
        let relayed_bytes = Counter::default();
        let rejects = Family::<RejectLabels, Counter>::default();
        let stun_requests = Counter::default();
        let stun_malformed = Counter::default();
        let stun_rate_limited = Counter::default();
        let nameplate_joins = Counter::default();
        let pair_joins = Counter::default();
        registry.register(
            "connections",
            "WebSocket connections open now",
            connections.clone(),
        );
        registry.register(
            "connections_opened",
            "WebSocket connections accepted since start",
            connections_opened.clone(),
        );
        registry.register("rooms", "Rooms open now", rooms.clone());
        registry.register(
            "relayed_messages",
            "Payloads relayed to a room member",
            relayed_messages.clone(),
        );
        registry.register(
            "relayed_bytes",
            "Payload bytes relayed to room members",
            relayed_bytes.clone(),
        );
        registry.register(
            "rejects",
            "Error frames sent, by kind (bounds passed, bad frames, refused requests)",
            rejects.clone(),
        );
        registry.register(
            "stun_requests",
            "STUN Binding requests answered",
            stun_requests.clone(),
        );
        registry.register(
            "stun_malformed",
            "UDP datagrams on the STUN port that were not a valid Binding request",
            stun_malformed.clone(),
        );
        registry.register(
            "stun_rate_limited",
            "STUN datagrams dropped unanswered: their source address sent more than \
             stun.max_requests_per_sec",
            stun_rate_limited.clone(),
        );
        registry.register(
            "nameplate_joins",
            "Nameplate rooms joined (every join of a transfer code's room by someone who did not \
             allocate it)",
            nameplate_joins.clone(),
        );
        registry.register(
            "pair_joins",
            "Pair rooms joined with a valid proof",
            pair_joins.clone(),
        );
        for kind in ErrorKind::ALL {
            // Zero rows from the start, so dashboards see every kind before the first reject.
            let _ = rejects.get_or_create(&RejectLabels {
                kind: kind.as_str(),
            });
        }
        Self {
            registry,
            connections,
            connections_opened,
            rooms,
            relayed_messages,
            relayed_bytes,
            rejects,
            stun_requests,
            stun_malformed,
            stun_rate_limited,
            nameplate_joins,
            pair_joins,
        }
    }

    pub(crate) fn reject(&self, kind: ErrorKind) {
        self.rejects
            .get_or_create(&RejectLabels {
                kind: kind.as_str(),
            })
            .inc();
    }

    /// The exposition text.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
