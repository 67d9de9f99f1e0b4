//! What a one-off transfer tells the program that runs it, as it happens: the code, the
//! verification string, the offer, and progress. The binary turns these into text, progress bars
//! or JSON events; tests and embedders may watch just what they need.

use crate::code::TransferCode;
use crate::transfer::ValidManifest;

/// Called by [`super::send`] and [`super::receive`] as a transfer goes; every method has a default
/// that does nothing.
pub trait Observer {
    /// An input the sender leaves out (a link, a special file), before anything is offered.
    fn skipped(&mut self, _path: &std::path::Path, _why: &str) {}

    /// A complete hook failed: reported, not fatal.
    fn hook_failed(&mut self, _error: &crate::hooks::HookError) {}

    /// The sender's code, as soon as there is one.
    fn code(&mut self, _code: &TransferCode) {}

    /// The signaling server could not be reached (`why`): the sender serves signaling itself
    /// and announces it on the local network (LAN mode). Called before [`Observer::code`].
    fn lan_mode(&mut self, _why: &str) {}

    /// The sender has hashed its `files` (`bytes` in all) and can make its offer.
    fn offer_ready(&mut self, _files: usize, _bytes: u64) {}

    /// The peer is authenticated and the data channel is open; both sides see the same string.
    fn connected(&mut self, _verification: &str) {}

    /// The network path the connection took (direct, or through a relay), once connected.
    fn path(&mut self, _path: &crate::session::NetworkPath) {}

    /// The receiver's decision on a validated offer: `Err(reason)` declines. Accepts by default.
    fn offer(&mut self, _offer: &ValidManifest) -> Result<(), String> {
        Ok(())
    }

    /// The receiver accepted: `total` bytes in the offer, of which `resumed` are on disk already.
    fn started(&mut self, _total: u64, _resumed: u64) {}

    /// `done` bytes of the total are sent (sender) or stored (receiver), resumed bytes included.
    fn progress(&mut self, _done: u64) {}

    /// In a receive that replaces files, file `index` of the offer took its final name,
    /// `placed.path`, and what was under that name until then is at `placed.replaced`. The
    /// observer may move that away to keep it (and may even put it back under the name); it
    /// returns where the received file is now. Whatever is left at `placed.replaced` is deleted
    /// once this returns `Ok`; `Err(reason)` fails the transfer and leaves it there.
    fn placed(
        &mut self,
        _index: usize,
        placed: &crate::store::Placed,
    ) -> Result<std::path::PathBuf, String> {
        Ok(placed.path.clone())
    }
}

/// An observer that watches nothing: accepts every offer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}
