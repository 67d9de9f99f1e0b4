//! The Rust guest SDK for p2phost plugins: implement [`Plugin`] (only [`Plugin::describe`] is
//! required, every hook defaults to "go on") and export it with [`export_plugin!`]. The contract
//! is the WIT world `p2phost:plugin/plugin@0.1.0` in `plugin-api/wit/`; build with
//! `plugins/build.sh`.
//!
//! ```ignore
//! use p2p_plugin_api::{ChunkAction, Description, FileInfo, Plugin};
//!
//! #[derive(Default)]
//! struct Count(u64);
//!
//! impl Plugin for Count {
//!     fn describe(&self) -> Description {
//!         Description::new("count", env!("CARGO_PKG_VERSION")).chunk(true)
//!     }
//!     fn chunk(&mut self, _file: &FileInfo, _offset: u64, data: Vec<u8>) -> ChunkAction {
//!         self.0 += data.len() as u64;
//!         ChunkAction::Pass
//!     }
//! }
//!
//! p2p_plugin_api::export_plugin!(Count);
//! ```
//!
//! One instance of the plugin serves one transfer (the host instantiates the component per
//! transfer), so a plugin keeps per-transfer state in `self`.
//!
//! A panic aborts the call (plugins build with `panic = "abort"`), but not silently: the exported
//! functions install a panic hook that sends the message (`panicked at src/lib.rs:42:9: boom`, at
//! most 1024 bytes) to the host's log at error level, and the host names it in the error it
//! reports for the trap.

mod panic_hook;

use std::cell::RefCell;

/// The bindings generated from `plugin-api/wit/` (wit-bindgen). Plugins use the re-exports at the
/// crate root; this module is public for [`export_plugin!`].
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        export_macro_name: "__export_plugin_world",
        pub_export_macro: true,
        default_bindings_module: "::p2p_plugin_api::bindings",
    });
}

pub use bindings::p2phost::plugin::host::Level;
pub use bindings::p2phost::plugin::types::{
    ChunkAction, Description, FileInfo, Outcome, PreSendDecision, Side,
};

/// The version of the WIT package this SDK implements; the host refuses an incompatible one.
pub const WIT_VERSION: &str = "0.1.0";

/// A plugin. Only `describe` is required; a hook the plugin does not list in its
/// [`Description`] is never called by the host, and the defaults below go on.
pub trait Plugin: Default + 'static {
    /// Its name (used in every error it causes), version, hooks, whether its chunk hook needs the
    /// bytes, and the encoding it provides. Called before `configure`.
    fn describe(&self) -> Description;

    /// The operator's settings from the plugin's `[[plugins]]` table, as key-value pairs in the
    /// order written. Called once per transfer, before any hook. An `Err` refuses the plugin.
    fn configure(&mut self, settings: Vec<(String, String)>) -> Result<(), String> {
        let _ = settings;
        Ok(())
    }

    /// Before a file is offered (sender) or accepted (receiver).
    fn pre_send(&mut self, file: &FileInfo) -> PreSendDecision {
        let _ = file;
        PreSendDecision::Continue
    }

    /// Each chunk of a file, in order. `offset` is where `data` starts in the plain file. See the
    /// README for when an encoding plugin is called and what it must return.
    fn chunk(&mut self, file: &FileInfo, offset: u64, data: Vec<u8>) -> ChunkAction {
        let _ = (file, offset, data);
        ChunkAction::Pass
    }

    /// After a file is done or failed. An `Err` is reported, not fatal.
    fn complete(&mut self, file: &FileInfo, outcome: Outcome) -> Result<(), String> {
        let _ = (file, outcome);
        Ok(())
    }
}

impl Description {
    /// A description with no hooks, no encoding; add them with the methods below.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            pre_send: false,
            chunk: false,
            complete: false,
            needs_bytes: false,
            encoding: None,
        }
    }

    /// It implements `pre_send`.
    #[must_use]
    pub fn pre_send(mut self) -> Self {
        self.pre_send = true;
        self
    }

    /// It implements `chunk`; with `needs_bytes` false it gets an empty `data` (only offsets).
    #[must_use]
    pub fn chunk(mut self, needs_bytes: bool) -> Self {
        self.chunk = true;
        self.needs_bytes = needs_bytes;
        self
    }

    /// It implements `complete`.
    #[must_use]
    pub fn complete(mut self) -> Self {
        self.complete = true;
        self
    }

    /// It provides this encoding (such as "lz4"): its chunk hook encodes on the sending side and
    /// decodes on the receiving side. Implies a chunk hook that needs the bytes.
    #[must_use]
    pub fn encoding(mut self, encoding: &str) -> Self {
        self.chunk = true;
        self.needs_bytes = true;
        self.encoding = Some(encoding.to_owned());
        self
    }
}

/// A line in the host's log, under the plugin's name.
pub fn log(level: Level, message: &str) {
    bindings::p2phost::plugin::host::log(level, message);
}

/// The settings' last value for `key`, if any.
pub fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Holds the one instance of a plugin for [`export_plugin!`]. Not for plugins to use.
#[doc(hidden)]
pub struct Slot<P> {
    cell: RefCell<Option<P>>,
}

impl<P: Plugin> Slot<P> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        Self {
            cell: RefCell::new(None),
        }
    }

    /// Runs `f` on the instance, made on first use; every export comes through here, so this is
    /// also where the panic hook is installed, before any of the plugin's code runs.
    #[doc(hidden)]
    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        panic_hook::install();
        let mut slot = self.cell.borrow_mut();
        f(slot.get_or_insert_with(P::default))
    }
}

impl<P: Plugin> Default for Slot<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// Exports a [`Plugin`] type as the component's `describe`, `configure`, `pre-send`, `chunk` and
/// `complete`: `p2p_plugin_api::export_plugin!(MyPlugin);` once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __P2P_PLUGIN: $crate::Slot<$plugin> = const { $crate::Slot::new() };
            }

            fn __p2p_with<R>(f: impl FnOnce(&mut $plugin) -> R) -> R {
                __P2P_PLUGIN.with(|slot| slot.with(f))
            }

            struct __P2pPluginExport;

            impl $crate::bindings::Guest for __P2pPluginExport {
                fn describe() -> $crate::Description {
                    __p2p_with(|p| <$plugin as $crate::Plugin>::describe(p))
                }
                fn configure(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    __p2p_with(|p| <$plugin as $crate::Plugin>::configure(p, settings))
                }
                fn pre_send(file: $crate::FileInfo) -> $crate::PreSendDecision {
                    __p2p_with(|p| <$plugin as $crate::Plugin>::pre_send(p, &file))
                }
                fn chunk(
                    file: $crate::FileInfo,
                    offset: u64,
                    data: ::std::vec::Vec<u8>,
                ) -> $crate::ChunkAction {
                    __p2p_with(|p| <$plugin as $crate::Plugin>::chunk(p, &file, offset, data))
                }
                fn complete(
                    file: $crate::FileInfo,
                    outcome: $crate::Outcome,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    __p2p_with(|p| <$plugin as $crate::Plugin>::complete(p, &file, outcome))
                }
            }

            $crate::bindings::__export_plugin_world!(__P2pPluginExport with_types_in $crate::bindings);
        };
    };
}
