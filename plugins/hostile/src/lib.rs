//! Hostile guests for the sandbox tests, one plugin whose misbehaviour the settings choose:
//! `mode` = `loop` (never returns: the CPU deadline must stop it), `memory` (grows its memory a
//! page at a time until the host refuses, then traps: the memory limit must stop it), `trap`
//! (executes `unreachable`), `panic` (a Rust panic, which is a trap too: panic=abort) or `none`;
//! `hook` = `configure`, `pre-send`, `chunk` or `complete`, where it misbehaves. Defaults:
//! `mode = "trap"`, `hook = "chunk"`. It describes itself as implementing every hook, with bytes.
//! Two more settings check what the host reports: `panic_bytes` = N makes the panic's message N
//! bytes long (the message must reach the error bounded), and `log_error` = text is logged at
//! error level by `configure` (a later call's trap must not be blamed on it).
//!
//! Two modes test what the host copies out of the guest, sized by `bytes` (default 1 MiB) and
//! `copies` (default 100): `copies` returns, from `hook`, a route of `copies` peer names that all
//! point at one `bytes`-long string (pre-send: a host that copies each holds `copies * bytes`
//! while the guest holds `bytes`), a replacement of `bytes` bytes (chunk) or an error message of
//! `bytes` bytes (complete); `log` logs one line of `bytes` bytes.

use p2p_plugin_api::{
    ChunkAction, Description, FileInfo, Level, Outcome, Plugin, PreSendDecision, log, setting,
};

/// What to do wrong, and where.
pub struct Hostile {
    mode: String,
    hook: String,
    /// The length of the panic's message, when not the default one.
    panic_bytes: Option<usize>,
    /// Sizes for `copies` and `log`.
    bytes: usize,
    copies: usize,
}

impl Default for Hostile {
    fn default() -> Self {
        Self {
            mode: "trap".into(),
            hook: "chunk".into(),
            panic_bytes: None,
            bytes: 1 << 20,
            copies: 100,
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
            if !["loop", "memory", "trap", "panic", "copies", "log", "none"].contains(&mode) {
                return Err(format!(
                    "mode {mode:?}: loop, memory, trap, panic, copies, log or none"
                ));
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
        for (key, slot) in [("bytes", &mut self.bytes), ("copies", &mut self.copies)] {
            if let Some(n) = setting(&settings, key) {
                *slot = n.parse().map_err(|_| format!("{key} {n:?}: a number"))?;
            }
        }
        if let Some(text) = setting(&settings, "log_error") {
            log(Level::Error, text);
        }
        self.misbehave("configure");
        Ok(())
    }

    fn pre_send(&mut self, _file: &FileInfo) -> PreSendDecision {
        if self.copying("pre-send") {
            return PreSendDecision::Route(aliases(self.copies, self.bytes));
        }
        self.misbehave("pre-send");
        PreSendDecision::Continue
    }

    fn chunk(&mut self, _file: &FileInfo, _offset: u64, _data: Vec<u8>) -> ChunkAction {
        if self.copying("chunk") {
            return ChunkAction::Replace(vec![b'r'; self.bytes]);
        }
        self.misbehave("chunk");
        ChunkAction::Pass
    }

    fn complete(&mut self, _file: &FileInfo, _outcome: Outcome) -> Result<(), String> {
        if self.copying("complete") {
            return Err("e".repeat(self.bytes));
        }
        self.misbehave("complete");
        Ok(())
    }
}

impl Hostile {
    fn copying(&self, hook: &str) -> bool {
        hook == self.hook && self.mode == "copies"
    }

    fn misbehave(&self, hook: &str) {
        if hook != self.hook {
            return;
        }
        match self.mode.as_str() {
            "log" => log(Level::Info, &"l".repeat(self.bytes)),
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

/// `copies` strings that all own one buffer of `bytes` bytes: several owners of one allocation,
/// which safe Rust forbids and a hostile guest does on purpose. The guest's memory holds `bytes`
/// (and a list of `copies` pointers); a host that lifts each string copies `copies * bytes`. The
/// guest frees the buffer once per copy after the call: it is not expected to survive it.
#[allow(unsafe_code)]
fn aliases(copies: usize, bytes: usize) -> Vec<String> {
    let one = std::mem::ManuallyDrop::new("p".repeat(bytes));
    (0..copies)
        // SAFETY: none, on purpose (see above); the buffer is never written.
        .map(|_| unsafe {
            String::from_raw_parts(one.as_ptr().cast_mut(), one.len(), one.capacity())
        })
        .collect()
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
