//! Who a host is to its peers in daemon mode: a persistent certificate, and the [`PeerId`] derived
//! from it (DESIGN §4).

mod peer_id;

pub use peer_id::{PeerId, PeerIdError};
