//! Files on disk, as the receiver writes them.
//!
//! - [`SafePath`]: a relative path from a peer, validated before anything touches disk.
//! - [`scan`]: the sender's inputs, walked into the list of files and folders to offer.
//! - [`Destination`]: the folder received into; every folder under it is reached and created
//!   without following links.
//! - [`PartFile`]: a file being received: written as `NAME.p2phost-part` (a name and a mark of
//!   p2phost's own, see [`part_name`]), checked chunk group by chunk group against the sender's
//!   BLAKE3 hashes (which is also how a cut transfer resumes), then synced and moved to its final
//!   name without replacing anything unless asked to; [`PartFiles`] keeps few of them open.
//! - [`replace`]: moves that never destroy what is under a name (an atomic exchange, a rename
//!   that refuses a taken name), for a receive that replaces files yet must see what it replaced.

mod chunk_groups;
mod destination;
mod part_file;
mod part_files;
mod part_name;
pub mod replace;
mod safe_path;
mod scan;
mod space;

pub use chunk_groups::ChunkGroups;
pub use destination::Destination;
pub use part_file::{PartFile, StoreError};
pub use part_files::{MAX_OPEN_PARTS, PartFiles};
pub use part_name::{PART_SUFFIX, is_part_name, part_name};
pub use replace::Placed;
pub use safe_path::{MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, PathError, SafePath};
pub use scan::{Scan, ScanError, ScannedFile, open_no_follow, scan, scan_within};
pub use space::{available_bytes, check_space};
