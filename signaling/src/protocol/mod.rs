//! The signaling protocol: frames ([`messages`]), room names ([`room_id`]), pair rooms and their
//! proofs ([`pair_room`](mod@pair_room)), bounds ([`limits`]) and the sans-IO [`Hub`] that holds rooms and decides
//! what every frame causes.

pub mod hub;
pub mod limits;
pub mod messages;
pub mod pair_room;
pub(crate) mod per_source;
mod rate;
pub mod room_id;
pub mod turn_credentials;

pub use hub::{ConnId, Hub, Inbound, Output, Refusal};
pub use limits::Limits;
pub use messages::{
    AdvertisedLimits, ClientMessage, ErrorKind, FrameError, PROTOCOL_VERSION, ServerMessage,
};
pub use pair_room::{
    HostHash, HostProof, Nonce, PairKey, ProofError, check_pair_join, encode_host, pair_room,
};
pub use room_id::{RoomId, RoomIdError};
pub use turn_credentials::TurnCredentials;
