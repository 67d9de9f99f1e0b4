//! Transfer lifecycle hooks: what WASM plugins and Lua scripts see of a transfer and what they may
//! do about it (DESIGN §6). Every engine implements [`Hook`]; a [`HookChain`] runs them in the
//! order the operator listed them.
//!
//! | hook | when | may |
//! |---|---|---|
//! | pre-send | before a file is offered (sender), before it is accepted (receiver) | continue, reject, route, choose an encoding |
//! | chunk | each chunk, in order, both sides | pass, replace (encode on send, decode on receive), abort |
//! | complete | after a file is verified, or failed | act; a failure is reported, not fatal |
//!
//! Integrity stays the host's job: BLAKE3 is checked on the decoded bytes whatever a hook returns.

mod chain;

pub mod wasm;

use std::fmt;

mod lua;
pub use lua::{LuaConfig, LuaGrants, LuaLimits, LuaScript};

pub use wasm::{PluginEngine, WasmError, WasmLimits, WasmPlugin};

pub use chain::{Admission, HookChain, Processed, Route};

mod setup;
pub use setup::{HookSpec, LoadError, load_all};

/// Which side of a transfer a hook runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The sender: chunk hooks encode.
    Send,
    /// The receiver: chunk hooks decode.
    Receive,
}

/// What a hook learns of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The path relative to the transfer's root, `/`-separated (as in the offer).
    pub path: String,
    /// Size in bytes (before any encoding).
    pub size: u64,
    /// This side.
    pub side: Side,
}

/// A pre-send hook's decision about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreSend {
    /// Go on.
    Continue,
    /// Leave the file out (sender) or refuse the transfer (receiver), with a reason for people.
    Reject(String),
    /// Send the file to these named peers only (daemon mode; a one-off transfer has one peer).
    Route(Vec<String>),
    /// Encode the file's chunks with this hook's encoding.
    Encode,
}

/// A chunk hook's decision about a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkAction {
    /// Leave the bytes as they are.
    Pass,
    /// Use these bytes instead (encoded on the sending side, decoded on the receiving side).
    Replace(Vec<u8>),
    /// Stop the transfer, with a reason for people.
    Abort(String),
}

/// How a file ended, for the complete hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent, or received and verified, under this local path (receiver) or source (sender).
    Done {
        /// Where the file is on this side.
        local_path: String,
    },
    /// It failed, for this reason.
    Failed(String),
}

/// What a hook says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The plugin's or script's name, used in every error it causes.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Which hooks it implements.
    pub hooks: Hooks,
    /// Whether its chunk hook needs the bytes (else it gets none, and costs nothing per chunk).
    pub needs_bytes: bool,
    /// The encoding it provides, if any (e.g. `lz4`); a receiver needs the same hook to decode.
    pub encoding: Option<String>,
}

/// The hooks a plugin or script implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hooks {
    /// pre-send
    pub pre_send: bool,
    /// chunk
    pub chunk: bool,
    /// complete
    pub complete: bool,
}

/// Why a hook failed: always names the plugin or script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{owner}: {reason}")]
pub struct HookError {
    /// The plugin's or script's name (and, for a script, the line where it failed).
    pub owner: String,
    /// What went wrong: a trap, a deadline, a memory limit, a script error, an abort.
    pub reason: String,
}

/// One plugin or script, instantiated for one transfer.
pub trait Hook: Send {
    /// What it says about itself.
    fn describe(&self) -> &Description;

    /// Before a file is offered or accepted.
    fn pre_send(&mut self, file: &FileInfo) -> Result<PreSend, HookError>;

    /// Each chunk of a file, in order: `data` starts at `offset` of the file (before encoding).
    fn chunk(
        &mut self,
        file: &FileInfo,
        offset: u64,
        data: &[u8],
    ) -> Result<ChunkAction, HookError>;

    /// After a file is done or failed.
    fn complete(&mut self, file: &FileInfo, outcome: &Outcome) -> Result<(), HookError>;

    /// Where the last [`Hook::complete`] call moved the file, if it moved it (a script's
    /// `p2p.move`): the hooks after it are told the new place.
    fn moved_to(&mut self) -> Option<String> {
        None
    }
}

impl fmt::Debug for dyn Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hook").field(&self.describe().name).finish()
    }
}

/// A loaded plugin or script, ready to make a [`Hook`] for each transfer (compiled once,
/// instantiated per transfer).
pub trait HookFactory: Send + Sync {
    /// What the hook says about itself.
    fn describe(&self) -> &Description;

    /// A fresh instance for one transfer.
    fn instantiate(&self) -> Result<Box<dyn Hook>, HookError>;
}
