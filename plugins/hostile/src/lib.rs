//! Hostile guests for the sandbox tests, one plugin whose misbehaviour the settings choose:
//! `mode` = `loop` (never returns: the CPU deadline must stop it), `memory` (grows its memory a
//! page at a time until the host refuses, then traps: the memory limit must stop it), `trap`
//! (executes `unreachable`), `panic` (a Rust panic, which is a trap too: panic=abort) or `none`;
//! `hook` = `configure`, `pre-send`, `chunk` or `complete`, where it misbehaves. Defaults:
//! `mode = "trap"`, `hook = "chunk"`. It describes itself as implementing every hook, with bytes.
//! Two more settings check what the host reports: `panic_bytes` = N makes the panic's message N
//! bytes long (the message must reach the error bounded), and `log_error` = text is logged at
//! error level by `configure` (a later call's trap must not be blamed on it).

use p2p_plugin_api::{
    ChunkAction, Description, FileInfo, Level, Outcome, Plugin, PreSendDecision, log, setting,
};

/// What to do wrong, and where.
pub struct Hostile {
    mode: String,
    hook: String,
    /// The length of the panic's message, when not the default one.
    panic_bytes: Option<usize>,
}

impl Default for Hostile {
    fn default() -> Self {
        Self {
            mode: "trap".into(),
            hook: "chunk".into(),
            panic_bytes: None,
        }
    }
}

impl Plugin for Hostile {
    fn describe(&self) -> Description {
        Description::new("hostile", env!("CARGO_PKG_VERSION"))
            .pre_send()
            .chunk(true)
            .complete()
    }

    fn configure(&mut self, settings: Vec<(String, String)>) -> Result<(), String> {
        if let Some(mode) = setting(&settings, "mode") {
            if !["loop", "memory", "trap", "panic", "none"].contains(&mode) {
                return Err(format!("mode {mode:?}: loop, memory, trap, panic or none"));
            }
            self.mode = mode.to_owned();
        }
        if let Some(hook) = setting(&settings, "hook") {
            if !["configure", "pre-send", "chunk", "complete"].contains(&hook) {
                return Err(format!(
                    "hook {hook:?}: configure, pre-send, chunk or complete"
                ));
            }
            self.hook = hook.to_owned();
        }
        if let Some(bytes) = setting(&settings, "panic_bytes") {
            let bytes = bytes
                .parse()
                .map_err(|_| format!("panic_bytes {bytes:?}: a number of bytes"))?;
            self.panic_bytes = Some(bytes);
        }
        if let Some(text) = setting(&settings, "log_error") {
            log(Level::Error, text);
        }
        self.misbehave("configure");
        Ok(())
    }

    fn pre_send(&mut self, _file: &FileInfo) -> PreSendDecision {
        self.misbehave("pre-send");
        PreSendDecision::Continue
    }

    fn chunk(&mut self, _file: &FileInfo, _offset: u64, _data: Vec<u8>) -> ChunkAction {
        self.misbehave("chunk");
        ChunkAction::Pass
    }

    fn complete(&mut self, _file: &FileInfo, _outcome: Outcome) -> Result<(), String> {
        self.misbehave("complete");
        Ok(())
    }
}

impl Hostile {
    fn misbehave(&self, hook: &str) {
        if hook != self.hook {
            return;
        }
        match self.mode.as_str() {
            "loop" => spin(),
            "memory" => bomb(),
            "trap" => trap(),
            "panic" => match self.panic_bytes {
                None => panic!("hostile plugin panics in {hook}"),
                Some(bytes) => {
                    let long: String = "boom ".chars().cycle().take(bytes).collect();
                    panic!("{long}")
                }
            },
            _ => {}
        }
    }
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[cfg(target_arch = "wasm32")]
fn bomb() -> ! {
    let mut pages = 0usize;
    while core::arch::wasm32::memory_grow(0, 1) != usize::MAX {
        pages += 1;
    }
    panic!("memory.grow refused after {pages} more pages");
}

#[cfg(not(target_arch = "wasm32"))]
fn bomb() -> ! {
    panic!("the memory bomb only goes off in wasm32");
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

p2p_plugin_api::export_plugin!(Hostile);
