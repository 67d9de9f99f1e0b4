//! The signaling protocol: frames ([`messages`]), room names ([`room_id`]), bounds ([`limits`]) and the
//! sans-IO [`Hub`] that holds rooms and decides what every frame causes.

pub mod hub;
pub mod limits;
pub mod messages;
mod rate;
pub mod room_id;

pub use hub::{ConnId, Hub, Inbound, Output, Refusal};
pub use limits::Limits;
pub use messages::{
    AdvertisedLimits, ClientMessage, ErrorKind, FrameError, PROTOCOL_VERSION, ServerMessage,
};
pub use room_id::{RoomId, RoomIdError};
