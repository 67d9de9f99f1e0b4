//! The no-op plugin: a chunk hook that takes the bytes and passes them, so a benchmark measures
//! what a plugin costs per chunk (the copy in, the call) and nothing else.

use p2p_plugin_api::{ChunkAction, Description, FileInfo, Plugin};

/// Passes every chunk.
#[derive(Default)]
pub struct Noop;

impl Plugin for Noop {
    fn describe(&self) -> Description {
        Description::new("noop", env!("CARGO_PKG_VERSION")).chunk(true)
    }

    fn chunk(&mut self, _file: &FileInfo, _offset: u64, _data: Vec<u8>) -> ChunkAction {
        ChunkAction::Pass
    }
}

p2p_plugin_api::export_plugin!(Noop);
