//! WASM plugins: components built against the WIT world `p2phost:plugin/plugin@0.1.0`
//! (`plugin-api/wit`), run by wasmtime in a sandbox (DESIGN §6).
//!
//! - **Compile once, instantiate per transfer.** [`WasmPlugin::load`] compiles the component with
//!   cranelift, links the only import a plugin gets (`host.log`, which lands in the host's log
//!   under the plugin's name), type-checks it against the contract, and asks it to `describe()`
//!   itself. [`HookFactory::instantiate`] then gives each transfer a fresh store and instance, and
//!   calls `configure(settings)` before any hook.
//! - **Sandbox.** No WASI: the world imports only `host`, and a component asking for anything else
//!   is refused at load. Each store has a memory cap, a table-element cap and an instance cap
//!   ([`WasmLimits`]); each call has a CPU deadline enforced by epoch interruption (a ticker thread
//!   per process, see [`PluginEngine`]); the engine caps the wasm stack. A trap, a deadline or a
//!   limit becomes a [`HookError`] naming the plugin and which of those it was; the instance is
//!   not used again, and the host goes on.
//! - **Its log is the host's.** `host.log` lines go to tracing with a `plugin` field, control
//!   characters escaped, at most 1024 characters each and 100 lines per call (the rest are
//!   counted in one warning).
//! - **A panic says why.** The last line a plugin logs at error level in a call (even past the
//!   line cap) is kept; if the call then traps, that line names the cause in the [`HookError`]
//!   instead of a bare `unreachable`. The Rust SDK's panic hook sends a panic's message that way
//!   (`hostile: trap in chunk: panicked at src/lib.rs:42:9: boom`).
//! - **Only what it asked for.** A hook the plugin's description leaves out is not called (the
//!   host answers continue / pass / ok for it), and a chunk hook that does not need bytes gets an
//!   empty list, so it costs one call and no copy.
//!
//! Calls are synchronous and may take up to the deadline: run them off the async runtime
//! (`spawn_blocking` or a dedicated thread).
//!
//! ```no_run
//! use p2phost::hooks::{HookFactory, wasm::{PluginEngine, WasmLimits, WasmPlugin}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = PluginEngine::shared()?;
//! let plugin = WasmPlugin::load(&engine, "compress.wasm".as_ref(), vec![], WasmLimits::default())?;
//! let mut hook = plugin.instantiate()?; // once per transfer
//! # let _ = &mut hook;
//! # Ok(())
//! # }
//! ```

mod bindings;
mod engine;
mod plugin;

use std::path::PathBuf;
use std::time::Duration;

pub use engine::{MAX_WASM_STACK, PluginEngine, TICK};
pub use plugin::{MAX_LIFT, WasmPlugin, inspect};

#[cfg(doc)]
use super::{HookError, HookFactory};

/// The WIT package plugins are built against.
pub const WIT_PACKAGE: &str = "p2phost:plugin";

/// The version of the WIT contract this host implements; plugins built against a
/// semver-compatible version (`0.1.x`) load, others are refused.
pub const WIT_VERSION: &str = "0.1.0";

/// What one plugin instance may use, per transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmLimits {
    /// Linear memory, all memories of the instance together, in bytes. A Rust guest starts with
    /// about 1.1 MiB, so a cap below ~2 MiB fails at instantiation.
    pub memory_bytes: usize,
    /// CPU time of one call (describe, configure, or a hook), enforced to within [`TICK`].
    pub deadline: Duration,
    /// Elements of all tables together (function tables of the guest).
    pub table_elements: usize,
    /// Core instances in one component instance (a component made by `wit-component` has a few).
    pub instances: usize,
}

impl Default for WasmLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 * 1024 * 1024,
            deadline: Duration::from_millis(500),
            table_elements: 10_000,
            instances: 32,
        }
    }
}

/// Why a WASM plugin could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WasmError {
    /// The wasmtime engine could not be set up (a host problem, not the plugin's).
    #[error("cannot set up the WASM engine: {0}")]
    Engine(String),
    /// The file could not be read.
    #[error("cannot read plugin {path}: {reason}")]
    Read {
        /// The plugin's file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is a core module, not a component.
    #[error(
        "plugin {path} is a core WASM module, not a component: wrap it with `wasm-tools component new` (plugins/build.sh does)"
    )]
    CoreModule {
        /// The plugin's file.
        path: PathBuf,
    },
    /// The file is not valid WASM, or cranelift could not compile it.
    #[error("cannot compile plugin {path}: {reason}")]
    Compile {
        /// The plugin's file.
        path: PathBuf,
        /// wasmtime's error chain.
        reason: String,
    },
    /// The component was built against another contract version, or imports something the host
    /// does not offer.
    #[error(
        "plugin {plugin} was built against an incompatible contract: {found}; this host implements {WIT_PACKAGE}@{WIT_VERSION} ({reason})"
    )]
    IncompatibleContract {
        /// The plugin's file name.
        plugin: String,
        /// What the component says it was built against.
        found: String,
        /// The type-check failure.
        reason: String,
    },
    /// Instantiating it, `describe()` or `configure()` failed (trap, deadline, limit, refusal).
    #[error("{0}")]
    Hook(#[from] super::HookError),
}
