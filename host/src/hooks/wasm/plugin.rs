//! One WASM plugin: [`WasmPlugin`] is the compiled component (a [`HookFactory`]); each transfer
//! gets a [`WasmHook`], its own store and instance, limits and deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{ResourceLimiter, Store, Trap};

use super::bindings::p2phost::plugin::{host, types as wit};
use super::bindings::{Plugin, PluginPre};
use super::engine::{MAX_WASM_STACK, PluginEngine};
use super::{WIT_PACKAGE, WIT_VERSION, WasmError, WasmLimits};
use crate::hooks::{
    ChunkAction, Description, FileInfo, Hook, HookError, HookFactory, Hooks, Outcome, PreSend, Side,
};

/// Longest text taken from a plugin (names, reasons, log lines), in characters: it ends up in
/// errors shown to people and sent to the peer.
const MAX_TEXT: usize = 1024;

/// Log lines a plugin may write per call; past that they are counted, not written, so a plugin
/// cannot flood the host's log (or terminal) for the length of its deadline.
const LOG_LINES_PER_CALL: u32 = 100;

/// Most bytes the host copies out of a plugin in one go (a hook's result, a log line): the
/// largest chunk the protocol allows, plus room for an encoding that grows it. wasmtime counts
/// every string and list it lifts against this ("hostcall fuel"); without it, a result could
/// name one buffer many times (a route of a thousand peers that all point at one megabyte) and
/// the host would copy it each time, far past the plugin's own memory limit.
pub const MAX_LIFT: usize = crate::transfer::manifest::CHUNK_SIZE_RANGE.1 as usize + (64 << 10);

/// A compiled, type-checked WASM plugin: makes a sandboxed instance per transfer.
pub struct WasmPlugin {
    engine: PluginEngine,
    pre: PluginPre<State>,
    description: Description,
    settings: Arc<[(String, String)]>,
    limits: WasmLimits,
    path: PathBuf,
}

impl std::fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("path", &self.path)
            .field("description", &self.description)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl WasmPlugin {
    /// Compiles the component at `path`, checks it against the contract, and asks it to describe
    /// itself (in a throwaway instance under `limits`). `settings` go to its `configure` at the
    /// start of every transfer.
    pub fn load(
        engine: &PluginEngine,
        path: &Path,
        settings: Vec<(String, String)>,
        limits: WasmLimits,
    ) -> Result<Self, WasmError> {
        let file = file_name(path);
        let bytes = std::fs::read(path).map_err(|e| WasmError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        // A core module's preamble is version 1 (a component's is 0x0d with layer 1): told apart
        // here, because the compiler's own error for it does not say what to do.
        if bytes.starts_with(b"\0asm\x01\0\0\0") {
            return Err(WasmError::CoreModule {
                path: path.to_owned(),
            });
        }
        let component =
            Component::new(engine.engine(), &bytes).map_err(|e| WasmError::Compile {
                path: path.to_owned(),
                reason: format!("{e:#}"),
            })?;
        let found = check_imports(engine, &component, &file)?;

        let mut linker = Linker::<State>::new(engine.engine());
        Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        // Both steps type-check the component against the contract: its imports against what we
        // link, its exports against the world. Either failing means another contract.
        let incompatible = |e: wasmtime::Error| WasmError::IncompatibleContract {
            plugin: file.clone(),
            found: found.clone(),
            reason: format!("{e:#}"),
        };
        let instance_pre = linker.instantiate_pre(&component).map_err(incompatible)?;
        let pre = PluginPre::new(instance_pre).map_err(incompatible)?;

        let mut plugin = Self {
            engine: engine.clone(),
            pre,
            description: placeholder(&file),
            settings: settings.into(),
            limits,
            path: path.to_owned(),
        };
        let mut instance = plugin.instance()?;
        let described = instance.call("describe", |p, s| p.call_describe(s))?;
        plugin.description = description(described, &file);
        Ok(plugin)
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limits each instance runs under.
    pub fn limits(&self) -> WasmLimits {
        self.limits
    }

    /// A fresh store and instance, not yet configured.
    fn instance(&self) -> Result<WasmHook, HookError> {
        let state = State {
            owner: self.description.name.clone(),
            limits: self.limits,
            memory_bytes: 0,
            hit: None,
            log_budget: LOG_LINES_PER_CALL,
            log_dropped: 0,
            last_error: None,
        };
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|state| state);
        store.set_hostcall_fuel(MAX_LIFT);
        let mut hook = WasmHook {
            store,
            plugin: None,
            description: self.description.clone(),
            ticks: PluginEngine::ticks_for(self.limits.deadline),
            broken: None,
        };
        let pre = &self.pre;
        let plugin = hook.call_store("instantiate", |store| pre.instantiate(store))?;
        hook.plugin = Some(plugin);
        Ok(hook)
    }
}

impl HookFactory for WasmPlugin {
    fn describe(&self) -> &Description {
        &self.description
    }

    fn instantiate(&self) -> Result<Box<dyn Hook>, HookError> {
        let mut hook = self.instance()?;
        let settings = Arc::clone(&self.settings);
        let configured = hook.call("configure", |p, s| p.call_configure(s, &settings))?;
        if let Err(reason) = configured {
            return Err(HookError {
                owner: hook.description.name.clone(),
                reason: format!("refused its settings: {}", clean(&reason)),
            });
        }
        Ok(Box::new(hook))
    }
}

/// What `p2phost plugin inspect FILE.wasm` shows: the plugin's description, after the same checks
/// as a load (a plugin built against an incompatible contract is refused with that error).
pub fn inspect(path: &Path) -> Result<Description, WasmError> {
    let engine = PluginEngine::shared()?;
    let plugin = WasmPlugin::load(&engine, path, Vec::new(), WasmLimits::default())?;
    Ok(plugin.description)
}

/// One plugin instance, for one transfer.
struct WasmHook {
    store: Store<State>,
    /// `None` only while instantiating.
    plugin: Option<Plugin>,
    description: Description,
    ticks: u64,
    /// Set by the first failed call: an instance that trapped may be half-way through changing
    /// its memory, so it is never entered again.
    broken: Option<HookError>,
}

impl WasmHook {
    /// Runs one call of the plugin under the deadline, turning any failure into a [`HookError`].
    fn call<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&Plugin, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, HookError> {
        let Some(plugin) = self.plugin.take() else {
            return Err(self.error(format!("{what} called before the instance exists")));
        };
        let result = self.call_store(what, |store| f(&plugin, store));
        self.plugin = Some(plugin);
        result
    }

    fn call_store<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, HookError> {
        if let Some(broken) = &self.broken {
            return Err(broken.clone());
        }
        // The deadline counts from now, per call: a transfer of many chunks is not one call.
        self.store.set_epoch_deadline(self.ticks);
        let state = self.store.data_mut();
        state.log_budget = LOG_LINES_PER_CALL;
        state.last_error = None;
        let result = f(&mut self.store);
        let state = self.store.data_mut();
        if state.log_dropped > 0 {
            tracing::warn!(
                plugin = state.owner.as_str(),
                "{} log lines dropped in {what}: at most {LOG_LINES_PER_CALL} per call",
                state.log_dropped
            );
            state.log_dropped = 0;
        }
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                let reason = failure(&e, self.store.data(), what);
                let error = self.error(reason);
                self.broken = Some(error.clone());
                Err(error)
            }
        }
    }

    fn error(&self, reason: String) -> HookError {
        HookError {
            owner: self.description.name.clone(),
            reason,
        }
    }
}

impl Hook for WasmHook {
    fn describe(&self) -> &Description {
        &self.description
    }

    fn pre_send(&mut self, file: &FileInfo) -> Result<PreSend, HookError> {
        if !self.description.hooks.pre_send {
            return Ok(PreSend::Continue);
        }
        let file = wit_file(file);
        let decision = self.call("pre-send", |p, s| p.call_pre_send(s, &file))?;
        Ok(match decision {
            wit::PreSendDecision::Continue => PreSend::Continue,
            wit::PreSendDecision::Reject(reason) => PreSend::Reject(clean(&reason)),
            wit::PreSendDecision::Route(peers) => {
                PreSend::Route(peers.iter().map(|p| clean(p)).collect())
            }
            wit::PreSendDecision::Encode => PreSend::Encode,
        })
    }

    fn chunk(
        &mut self,
        file: &FileInfo,
        offset: u64,
        data: &[u8],
    ) -> Result<ChunkAction, HookError> {
        if !self.description.hooks.chunk {
            return Ok(ChunkAction::Pass);
        }
        // A plugin that only counts chunks gets no bytes: no copy into its memory.
        let data = if self.description.needs_bytes {
            data
        } else {
            &[]
        };
        let file = wit_file(file);
        let action = self.call("chunk", |p, s| p.call_chunk(s, &file, offset, data))?;
        Ok(match action {
            wit::ChunkAction::Pass => ChunkAction::Pass,
            wit::ChunkAction::Replace(bytes) => ChunkAction::Replace(bytes),
            wit::ChunkAction::Abort(reason) => ChunkAction::Abort(clean(&reason)),
        })
    }

    fn complete(&mut self, file: &FileInfo, outcome: &Outcome) -> Result<(), HookError> {
        if !self.description.hooks.complete {
            return Ok(());
        }
        let file = wit_file(file);
        let outcome = match outcome {
            Outcome::Done { local_path } => wit::Outcome::Done(local_path.clone()),
            Outcome::Failed(reason) => wit::Outcome::Failed(reason.clone()),
        };
        self.call("complete", |p, s| p.call_complete(s, &file, &outcome))?
            .map_err(|reason| self.error(format!("complete failed: {}", clean(&reason))))
    }
}

/// What a store holds besides the instance: the plugin's name for its log lines, and the
/// resource limiter, which records which limit stopped the plugin so the error can say so.
struct State {
    owner: String,
    limits: WasmLimits,
    /// Linear memory granted so far, all memories together.
    memory_bytes: usize,
    hit: Option<LimitHit>,
    /// Log lines it may still write in this call, and how many it wrote past that.
    log_budget: u32,
    log_dropped: u64,
    /// The last line it logged at error level in this call, cleaned: a Rust guest's panic
    /// message arrives this way (the SDK's panic hook) just before the call traps, and the
    /// error names it.
    last_error: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum LimitHit {
    Memory { wanted: usize },
    Table { wanted: usize },
}

impl ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_bytes
            .saturating_add(desired.saturating_sub(current));
        if total > self.limits.memory_bytes {
            // An error, not `Ok(false)`: `memory.grow` returning -1 would let a Rust guest abort
            // with a bare `unreachable`; a trap here stops it at the cause and names it.
            self.hit = Some(LimitHit::Memory { wanted: total });
            wasmtime::bail!("memory limit exceeded");
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.table_elements {
            self.hit = Some(LimitHit::Table { wanted: desired });
            wasmtime::bail!("table limit exceeded");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.instances
    }

    fn tables(&self) -> usize {
        // A component made by wit-component has the guest's table and one or two for shims.
        16
    }

    fn memories(&self) -> usize {
        // The total is capped by `memory_bytes` anyway; this only bounds bookkeeping.
        16
    }
}

impl host::Host for State {
    fn log(&mut self, level: host::Level, message: String) {
        let error = matches!(level, host::Level::Error);
        if self.log_budget == 0 {
            self.log_dropped += 1;
            // Kept even past the line budget: a guest that logged a lot and then panicked still
            // gets its panic named.
            if error {
                self.last_error = Some(clean(&message));
            }
            return;
        }
        self.log_budget -= 1;
        let owner = self.owner.as_str();
        let message = clean(&message);
        match level {
            host::Level::Debug => tracing::debug!(plugin = owner, "{message}"),
            host::Level::Info => tracing::info!(plugin = owner, "{message}"),
            host::Level::Warn => tracing::warn!(plugin = owner, "{message}"),
            host::Level::Error => tracing::error!(plugin = owner, "{message}"),
        }
        if error {
            self.last_error = Some(message);
        }
    }
}

impl wit::Host for State {}

/// The reason a call failed, for people: which limit, the deadline, or the trap. For a trap, the
/// last error line the plugin logged in this call says why better than the trap does (a Rust
/// panic is a bare `unreachable`), so it takes the trap's place; the trap is kept when it is
/// not `unreachable`, which a panic never is.
fn failure(error: &wasmtime::Error, state: &State, what: &str) -> String {
    match state.hit {
        Some(LimitHit::Memory { wanted }) => {
            return format!(
                "memory limit of {} exceeded in {what} (it asked for {})",
                bytes(state.limits.memory_bytes),
                bytes(wanted)
            );
        }
        Some(LimitHit::Table { wanted }) => {
            return format!(
                "table limit of {} elements exceeded in {what} (it asked for {wanted})",
                state.limits.table_elements
            );
        }
        None => {}
    }
    // A trap's Display is its wasm backtrace; the cause is the `Trap` in the chain.
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "deadline of {} ms exceeded in {what}",
            state.limits.deadline.as_millis()
        ),
        Some(Trap::StackOverflow) => format!(
            "wasm stack limit of {} KiB exceeded in {what} (runaway recursion?)",
            MAX_WASM_STACK / 1024
        ),
        Some(trap) => {
            let said = state.last_error.as_deref();
            if let (Trap::UnreachableCodeReached, Some(said)) = (trap, said) {
                return format!("trap in {what}: {said}");
            }
            let trap = trap.to_string();
            // Its Display repeats that it is a trap: "wasm trap: wasm `unreachable` …".
            let trap = trap.strip_prefix("wasm trap: ").unwrap_or(&trap);
            match said {
                Some(said) => format!("trap in {what}: {trap} (its last error: {said})"),
                None => format!("trap in {what}: {trap}"),
            }
        }
        None => {
            let message = format!("{error:#}");
            // wasmtime's words when a lift runs past `MAX_LIFT` (its error type is private).
            if message.contains("fuel allocated for hostcalls has been exhausted") {
                return format!(
                    "{what}: the plugin gave the host more than {} in one value (at most a chunk's worth)",
                    bytes(MAX_LIFT)
                );
            }
            format!("{what} failed: {}", clean(&message))
        }
    }
}

/// `64 MiB`, or the exact byte count when it is not whole MiB.
fn bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n > MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

/// Which contract the component was built against, from the versions of the `p2phost:plugin`
/// interfaces it imports; refuses one built against an incompatible version, or importing
/// anything else (such as WASI), before the type-check would say so less clearly.
fn check_imports(
    engine: &PluginEngine,
    component: &Component,
    file: &str,
) -> Result<String, WasmError> {
    let ty = component.component_type();
    let mut found = None;
    for (name, _) in ty.imports(engine.engine()) {
        let Some(rest) = name
            .strip_prefix(WIT_PACKAGE)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Err(WasmError::IncompatibleContract {
                plugin: file.to_owned(),
                found: format!("it imports `{}`", clean(name)),
                reason: "plugins get no WASI or other imports: only p2phost:plugin/host".into(),
            });
        };
        let version = rest.split_once('@').map_or("", |(_, v)| v);
        if !compatible(version) {
            let version = if version.is_empty() {
                "an unversioned package".to_owned()
            } else {
                format!("{WIT_PACKAGE}@{}", clean(version))
            };
            return Err(WasmError::IncompatibleContract {
                plugin: file.to_owned(),
                found: version,
                reason: format!("it imports `{}`", clean(name)),
            });
        }
        found = Some(format!("{WIT_PACKAGE}@{}", clean(version)));
    }
    Ok(found.unwrap_or_else(|| "a world that imports no p2phost:plugin interface".into()))
}

/// Semver compatibility with [`WIT_VERSION`]: same major, and for `0.x` the same minor.
fn compatible(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.').map(str::parse::<u64>);
    let mut ours = WIT_VERSION.split('.').map(str::parse::<u64>);
    match (parts.next(), parts.next(), ours.next(), ours.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(our_major)), Some(Ok(our_minor))) => {
            major == our_major && (major != 0 || minor == our_minor)
        }
        _ => false,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The description used until the plugin has described itself: named after its file.
fn placeholder(file: &str) -> Description {
    Description {
        name: file.to_owned(),
        version: String::new(),
        hooks: Hooks::default(),
        needs_bytes: false,
        encoding: None,
    }
}

fn description(d: wit::Description, file: &str) -> Description {
    let name = clean(d.name.trim());
    Description {
        // A plugin that gives no name is known by its file, so its errors still say who.
        name: if name.is_empty() {
            file.to_owned()
        } else {
            name
        },
        version: clean(&d.version),
        hooks: Hooks {
            pre_send: d.pre_send,
            chunk: d.chunk,
            complete: d.complete,
        },
        needs_bytes: d.needs_bytes,
        encoding: d.encoding.map(|e| clean(&e)),
    }
}

fn wit_file(file: &FileInfo) -> wit::FileInfo {
    wit::FileInfo {
        path: file.path.clone(),
        size: file.size,
        side: match file.side {
            Side::Send => wit::Side::Send,
            Side::Receive => wit::Side::Receive,
        },
    }
}

/// Text from a plugin, safe to print: control characters escaped, at most [`MAX_TEXT`] chars.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_TEXT {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions() {
        assert!(compatible("0.1.0"));
        assert!(compatible("0.1.7"));
        assert!(compatible("0.1.0-rc1"));
        assert!(!compatible("0.2.0"));
        assert!(!compatible("1.1.0"));
        assert!(!compatible(""));
        assert!(!compatible("x"));
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(bytes(64 * 1024 * 1024), "64 MiB");
        assert_eq!(bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }

    #[test]
    fn plugin_text_is_cleaned() {
        assert_eq!(clean("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        let long = "x".repeat(5000);
        assert_eq!(clean(&long).chars().count(), MAX_TEXT + 1);
    }

    fn state(limits: WasmLimits) -> State {
        State {
            owner: "p".into(),
            limits,
            memory_bytes: 0,
            hit: None,
            log_budget: LOG_LINES_PER_CALL,
            log_dropped: 0,
            last_error: None,
        }
    }

    #[test]
    fn memory_limit_counts_all_memories_and_names_itself() {
        let limits = WasmLimits {
            memory_bytes: 4 << 20,
            ..WasmLimits::default()
        };
        let mut s = state(limits);
        assert!(s.memory_growing(0, 2 << 20, None).is_ok_and(|ok| ok));
        assert!(s.memory_growing(0, 2 << 20, None).is_ok_and(|ok| ok));
        assert!(s.memory_growing(2 << 20, 3 << 20, None).is_err());
        let reason = failure(&wasmtime::format_err!("boom"), &s, "chunk");
        assert_eq!(
            reason,
            "memory limit of 4 MiB exceeded in chunk (it asked for 5 MiB)"
        );
    }

    #[test]
    fn traps_are_told_apart() {
        let s = state(WasmLimits::default());
        let deadline = failure(&wasmtime::Error::new(Trap::Interrupt), &s, "chunk");
        assert_eq!(deadline, "deadline of 500 ms exceeded in chunk");
        let stack = failure(&wasmtime::Error::new(Trap::StackOverflow), &s, "pre-send");
        assert!(stack.starts_with("wasm stack limit of 512 KiB exceeded in pre-send"));
        let trap = failure(
            &wasmtime::Error::new(Trap::UnreachableCodeReached),
            &s,
            "chunk",
        );
        assert_eq!(
            trap,
            "trap in chunk: wasm `unreachable` instruction executed"
        );
        let other = failure(&wasmtime::format_err!("bad\nthing"), &s, "describe");
        assert_eq!(other, "describe failed: bad\\nthing");
    }

    #[test]
    fn log_lines_are_capped_per_call() {
        use host::Host as _;
        let mut s = state(WasmLimits::default());
        for _ in 0..LOG_LINES_PER_CALL + 5 {
            s.log(host::Level::Debug, "spam".into());
        }
        assert_eq!(s.log_budget, 0);
        assert_eq!(s.log_dropped, 5);
    }

    #[test]
    fn a_trap_is_named_by_the_last_error_line_of_the_call() {
        use host::Host as _;
        let mut s = state(WasmLimits::default());
        let unreachable = wasmtime::Error::new(Trap::UnreachableCodeReached);
        s.log(host::Level::Error, "first".into());
        s.log(host::Level::Info, "not an error".into());
        // Past the line budget the error line is not written, but still kept.
        s.log_budget = 0;
        s.log(
            host::Level::Error,
            "panicked at src/lib.rs:42:9: boom\n".into(),
        );
        assert_eq!(
            failure(&unreachable, &s, "chunk"),
            "trap in chunk: panicked at src/lib.rs:42:9: boom\\n"
        );
        // Another trap keeps its own words, the line comes after.
        let oob = wasmtime::Error::new(Trap::MemoryOutOfBounds);
        let reason = failure(&oob, &s, "chunk");
        assert!(reason.starts_with("trap in chunk: "), "{reason}");
        assert!(
            reason.ends_with("(its last error: panicked at src/lib.rs:42:9: boom\\n)"),
            "{reason}"
        );
        // The deadline and the limits are what stopped it, whatever it said.
        assert_eq!(
            failure(&wasmtime::Error::new(Trap::Interrupt), &s, "chunk"),
            "deadline of 500 ms exceeded in chunk"
        );
        // A hostile guest's line is bounded like any text from it.
        s.log(host::Level::Error, "x".repeat(1 << 20));
        let reason = failure(&unreachable, &s, "chunk");
        assert_eq!(
            reason.chars().count(),
            "trap in chunk: ".len() + MAX_TEXT + 1
        );
    }

    #[test]
    fn table_limit_names_itself() {
        let mut s = state(WasmLimits::default());
        assert!(s.table_growing(0, 100, None).is_ok_and(|ok| ok));
        assert!(s.table_growing(100, 20_000, None).is_err());
        let reason = failure(&wasmtime::format_err!("x"), &s, "instantiate");
        assert!(reason.starts_with("table limit of 10000 elements exceeded in instantiate"));
    }

    #[test]
    fn a_core_module_is_not_a_plugin() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("core.wasm");
        // The smallest core module: magic and version 1.
        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap_or_else(|e| panic!("{e}"));
        let engine = PluginEngine::shared().unwrap_or_else(|e| panic!("{e}"));
        let err = WasmPlugin::load(&engine, &path, vec![], WasmLimits::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("core WASM module, not a component"), "{err}");
        let err = inspect(&dir.path().join("missing.wasm"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("cannot read plugin"), "{err}");
    }
}
