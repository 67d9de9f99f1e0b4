//! The one wasmtime [`Engine`] a process needs for its plugins, and the ticker thread that drives
//! its epoch: every [`TICK`] the epoch goes up by one, and each hook call gets a deadline counted
//! in ticks (epoch interruption costs a load and compare per loop header and call, far less than
//! fuel metering).

use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine};

use super::WasmError;

/// How often the ticker thread bumps the epoch: the granularity of the CPU deadline.
pub const TICK: Duration = Duration::from_millis(10);

/// The wasm stack limit: deep enough for real plugins, small enough that runaway recursion traps
/// quickly instead of eating the host thread's stack.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// One compiler and runtime for every plugin of a process (cheap to clone: a shared handle).
///
/// Built with the component model, cranelift, epoch interruption and a wasm stack limit; nothing
/// else (no WASI, no async, no fuel). A background thread bumps its epoch every [`TICK`] for as
/// long as the engine or a plugin compiled by it is alive.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// A new engine and its ticker thread. Most callers want [`PluginEngine::shared`].
    pub fn new() -> Result<Self, WasmError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK);
        let engine = Engine::new(&config).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        // The ticker holds only a weak handle, so it ends once the last engine clone (kept by
        // every compiled plugin) is gone, instead of keeping a dead engine ticking forever.
        let weak = engine.weak();
        thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                loop {
                    thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(Self { engine })
    }

    /// The process-wide engine, made on first use (compiled plugins can only run on the engine
    /// that compiled them, so one per process keeps that simple).
    pub fn shared() -> Result<Self, WasmError> {
        static SHARED: OnceLock<Result<PluginEngine, WasmError>> = OnceLock::new();
        SHARED.get_or_init(Self::new).clone()
    }

    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How many ticks cover `deadline`: rounded up, plus one because the current tick is already
    /// partly gone when the deadline is set.
    pub(super) fn ticks_for(deadline: Duration) -> u64 {
        let tick = TICK.as_nanos();
        let ticks = deadline.as_nanos().div_ceil(tick).max(1) + 1;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_deadline() {
        assert_eq!(PluginEngine::ticks_for(Duration::from_millis(500)), 51);
        assert_eq!(PluginEngine::ticks_for(Duration::from_millis(1)), 2);
        assert_eq!(PluginEngine::ticks_for(Duration::ZERO), 2);
        assert_eq!(PluginEngine::ticks_for(Duration::MAX), u64::MAX);
    }
}
