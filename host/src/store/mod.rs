//! Files on disk, as the receiver writes them.
//!
//! - [`SafePath`]: a relative path from a peer, validated before anything touches disk.
//! - [`scan`]: the sender's inputs, walked into the list of files and folders to offer.
//! - [`PartFile`]: a file being received: written as `NAME.part`, checked chunk group by chunk
//!   group against the sender's BLAKE3 hashes (which is also how a cut transfer resumes), then
//!   synced and moved to its final name without replacing anything unless asked to.
//! - [`replace`]: moves that never destroy what is under a name (an atomic exchange, a rename
//!   that refuses a taken name), for a receive that replaces files yet must see what it replaced.

mod part_file;
pub mod replace;
mod safe_path;
mod scan;
mod space;

pub use part_file::{ChunkGroups, PartFile, StoreError};
pub use replace::Placed;
pub use safe_path::{MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, PathError, SafePath};
pub use scan::{Scan, ScanError, ScannedFile, open_no_follow, scan, scan_within};
pub use space::{available_bytes, check_space};
