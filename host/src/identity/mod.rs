//! Who a host is to its peers in daemon mode: a persistent certificate, and the [`PeerId`] derived
//! from it (DESIGN §4).

mod peer_id;
mod store;

pub use peer_id::{PeerId, PeerIdError};
pub use store::{IDENTITY_FILE, Identity, IdentityError};
