//! Lua scripts as transfer hooks (DESIGN §6; the script-facing reference is `plugin-api/LUA.md`).
//!
//! A [`LuaScript`] reads a `.lua` file once and checks that it loads; for each transfer,
//! [`HookFactory::instantiate`] builds a fresh Lua 5.4 state, runs the script in it (which calls
//! `p2p.on(...)` to register its handlers) and returns it as a [`Hook`]. Nothing survives from one
//! transfer to the next, so a script that failed or ran out of memory cannot spoil the next one.
//!
//! ```lua
//! p2p.on("pre_send", function(file)
//!   if file.size > 1024 then return p2p.reject("too big") end
//! end)
//! ```
//!
//! The sandbox ([`LuaGrants`], [`LuaLimits`]): no `io`, `os`, `package`, `debug`, `load*`, unless
//! granted; a memory limit on the whole state (which what the host copies for a script respects
//! too), and an instruction budget and a deadline per call (which the library functions that
//! could loop inside one C call respect too: patterns are matched in Rust). Every failure — a
//! Lua error, a limit, a bad return value — becomes a [`HookError`] whose owner is the script's
//! name and whose reason starts with `file.lua:LINE:` where Lua knows the line.
//!
//! Calls are synchronous and may take up to their deadline: the caller runs them off the async
//! runtime.

mod api;
mod budget;
#[cfg(test)]
mod limits_tests;
mod move_file;
mod patterns;
#[cfg(test)]
mod patterns_tests;
mod sandbox;
mod strlib;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mlua::chunk::ChunkMode;
use mlua::{Function, IntoLuaMulti, Lua, Table, Value};

use super::{
    ChunkAction, Description, FileInfo, Hook, HookError, HookFactory, Hooks, Outcome, PreSend, Side,
};
use api::{Action, ApiContext, REASON_MAX, Registrations, Registry, bounded_text};
use budget::{CallBudget, Stop};

/// What the operator grants a script beyond the sandbox. Nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LuaGrants {
    /// `os.time`, `os.clock`, `os.date` and `os.difftime` (and nothing else of `os`).
    pub allow_os_time: bool,
    /// Directories inside which `p2p.move` may move files into subfolders; empty: no moves.
    pub move_dirs: Vec<PathBuf>,
}

/// Resource limits of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LuaLimits {
    /// Most memory the Lua state may hold, in bytes (default 16 MiB).
    pub memory_bytes: usize,
    /// Most Lua VM instructions one call may run, loading the script included (default 10
    /// million, roughly 50–100 ms of plain Lua); the pattern functions and `string.rep` charge
    /// their work in the same units.
    pub instructions_per_call: u64,
    /// Most wall-clock time one call may take (default 1 s), checked with the instructions. It
    /// is what bounds a call whose instructions are slow ones (comparing or joining long
    /// strings); a call overruns it by at most the time between two checks.
    pub deadline: Duration,
}

impl Default for LuaLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 16 << 20,
            instructions_per_call: 10_000_000,
            deadline: Duration::from_secs(1),
        }
    }
}

/// How the operator set up one script: its settings, grants and limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LuaConfig {
    /// Seen by the script as the strings of `p2p.settings`.
    pub settings: BTreeMap<String, String>,
    /// What it may do beyond the sandbox.
    pub grants: LuaGrants,
    /// How much memory and CPU it may use.
    pub limits: LuaLimits,
}

/// A script read from disk and checked, ready to be instantiated for each transfer.
#[derive(Debug)]
pub struct LuaScript {
    /// The file stem, e.g. `size-limit`: the name in every error and log line.
    name: String,
    /// The file name, e.g. `size-limit.lua`: where Lua's error messages say the line is.
    file_name: String,
    source: Vec<u8>,
    config: LuaConfig,
    description: Description,
}

impl LuaScript {
    /// Reads the script at `path` and checks that it loads and registers its handlers.
    pub fn load(path: &Path, config: LuaConfig) -> Result<Self, HookError> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let source = std::fs::read(path).map_err(|e| HookError {
            owner: stem(&file_name).to_owned(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::from_source(&file_name, source, config)
    }

    /// A script from memory, named as if read from a file called `file_name`.
    pub fn from_source(
        file_name: &str,
        source: impl Into<Vec<u8>>,
        config: LuaConfig,
    ) -> Result<Self, HookError> {
        let mut script = Self {
            name: stem(file_name).to_owned(),
            file_name: file_name.to_owned(),
            source: source.into(),
            config,
            description: Description {
                name: stem(file_name).to_owned(),
                version: "script".to_owned(),
                hooks: Hooks::default(),
                needs_bytes: false,
                encoding: None,
            },
        };
        // Loading once now reports a syntax error, a bad registration or a failing top level
        // when the operator starts the host, not in the middle of the first transfer.
        let instance = script.instance()?;
        let regs = &instance.regs;
        script.description.hooks = Hooks {
            pre_send: regs.pre_send.is_some(),
            chunk: regs.chunk.is_some(),
            complete: regs.complete.is_some(),
        };
        script.description.needs_bytes = regs.needs_bytes;
        Ok(script)
    }

    fn instance(&self) -> Result<LuaInstance, HookError> {
        let limits = &self.config.limits;
        let budget = Arc::new(CallBudget::new(
            limits.instructions_per_call,
            limits.deadline,
        ));
        let registry: Registry = Arc::new(Mutex::new(Some(Registrations::default())));
        let moved = Arc::new(Mutex::new(None));
        let errors = ErrorContext {
            name: self.name.clone(),
            file_name: self.file_name.clone(),
            budget: Arc::clone(&budget),
            memory_bytes: self.config.limits.memory_bytes,
        };
        let lua = sandbox::new_state(&self.config.limits, &self.config.grants, &budget)
            .and_then(|lua| {
                api::install(
                    &lua,
                    &ApiContext {
                        name: &self.name,
                        settings: &self.config.settings,
                        move_dirs: &self.config.grants.move_dirs,
                        budget: &budget,
                        registry: &registry,
                        moved: &moved,
                    },
                )?;
                Ok(lua)
            })
            .map_err(|e| errors.error(&e))?;
        budget.start();
        lua.load(&self.source[..])
            .set_name(format!("@{}", self.file_name))
            // Never bytecode: Lua does not verify it, and crafted bytecode can break the VM.
            .set_mode(ChunkMode::Text)
            .exec()
            .map_err(|e| errors.error(&e))?;
        let regs = registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        Ok(LuaInstance {
            lua,
            regs,
            errors,
            description: self.description.clone(),
            moved,
        })
    }
}

impl HookFactory for LuaScript {
    fn describe(&self) -> &Description {
        &self.description
    }

    fn instantiate(&self) -> Result<Box<dyn Hook>, HookError> {
        Ok(Box::new(self.instance()?))
    }
}

/// The file stem of a script's file name: `size-limit.lua` → `size-limit`.
fn stem(file_name: &str) -> &str {
    let stem = Path::new(file_name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file_name);
    if stem.is_empty() { file_name } else { stem }
}

/// Turns mlua's errors into the script's [`HookError`].
#[derive(Debug)]
struct ErrorContext {
    name: String,
    file_name: String,
    budget: Arc<CallBudget>,
    memory_bytes: usize,
}

impl ErrorContext {
    fn error(&self, err: &mlua::Error) -> HookError {
        let reason = match self.budget.stopped() {
            Some(Stop::Instructions) => format!(
                "{}instruction limit exceeded ({} instructions per call)",
                self.budget.stopped_at(),
                self.budget.limit()
            ),
            Some(Stop::Deadline) => format!(
                "{}deadline of {} ms exceeded",
                self.budget.stopped_at(),
                self.budget.deadline().as_millis()
            ),
            None => self.reason(err),
        };
        self.fail(reason)
    }

    /// The script's error; its reason is cut to [`REASON_MAX`] bytes (it is logged and sent to
    /// the peer, and a script's error message can be as long as its memory allows).
    fn fail(&self, reason: String) -> HookError {
        let reason = if reason.len() > REASON_MAX {
            bounded_text(reason.as_bytes(), REASON_MAX)
        } else {
            reason
        };
        HookError {
            owner: self.name.clone(),
            reason,
        }
    }

    fn reason(&self, err: &mlua::Error) -> String {
        match err {
            mlua::Error::MemoryError(_) => format!(
                "memory limit exceeded ({} bytes for the script's state)",
                self.memory_bytes
            ),
            // Already `file.lua:LINE: message`.
            mlua::Error::SyntaxError { message, .. } => message.clone(),
            // The message, then mlua's traceback: the message already starts with the line.
            mlua::Error::RuntimeError(msg) => first_part(msg).to_owned(),
            // An error raised by a host function (`p2p.move`, a bad argument): the line is the
            // script's frame in the traceback.
            mlua::Error::CallbackError { traceback, cause } => {
                let inner = self.reason(cause);
                match self.line_in(traceback) {
                    Some(loc) if !inner.starts_with(&self.file_name) => format!("{loc}{inner}"),
                    _ => inner,
                }
            }
            mlua::Error::WithContext { cause, .. } => self.reason(cause),
            other => first_part(&other.to_string()).to_owned(),
        }
    }

    /// The first `file.lua:LINE:` of this script in a traceback.
    fn line_in(&self, traceback: &str) -> Option<String> {
        traceback.lines().find_map(|l| {
            let rest = l.trim_start().strip_prefix(&self.file_name)?;
            line_prefix(&self.file_name, rest)
        })
    }
}

/// `file.lua:LINE: ` if `rest` (what follows the file name) is `:LINE:...`.
fn line_prefix(file_name: &str, rest: &str) -> Option<String> {
    let digits = rest.strip_prefix(':')?;
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    (end > 0 && digits[end..].starts_with(':')).then(|| format!("{file_name}:{}: ", &digits[..end]))
}

/// A Lua error message without the traceback mlua appends.
fn first_part(msg: &str) -> &str {
    msg.split("\nstack traceback:")
        .next()
        .unwrap_or(msg)
        .trim_end()
}

/// One script's state for one transfer.
struct LuaInstance {
    lua: Lua,
    regs: Registrations,
    errors: ErrorContext,
    description: Description,
    /// Set by `p2p.move` during a complete call.
    moved: Arc<Mutex<Option<String>>>,
}

impl LuaInstance {
    fn file_table(&self, file: &FileInfo) -> mlua::Result<Table> {
        let t = self.lua.create_table()?;
        t.set("path", file.path.as_str())?;
        t.set("size", file.size)?;
        t.set(
            "side",
            match file.side {
                Side::Send => "send",
                Side::Receive => "receive",
            },
        )?;
        Ok(t)
    }

    /// Calls a handler with a fresh budget and reads back the action it returned.
    fn call(
        &self,
        handler: &Function,
        args: impl IntoLuaMulti,
    ) -> Result<Option<Action>, HookError> {
        let value = self.call_raw(handler, args)?;
        Action::from_return(value).map_err(|msg| self.errors.fail(msg))
    }

    fn call_raw(&self, handler: &Function, args: impl IntoLuaMulti) -> Result<Value, HookError> {
        self.errors.budget.start();
        handler
            .call::<Value>(args)
            .map_err(|e| self.errors.error(&e))
    }

    fn wrong(&self, hook: &str, action: &Action, expected: &str) -> HookError {
        self.errors.fail(format!(
            "the {hook} handler returned {}; it may return {expected}",
            action.constructor()
        ))
    }
}

impl Hook for LuaInstance {
    fn describe(&self) -> &Description {
        &self.description
    }

    fn pre_send(&mut self, file: &FileInfo) -> Result<PreSend, HookError> {
        let Some(handler) = &self.regs.pre_send else {
            return Ok(PreSend::Continue);
        };
        let file_t = self.file_table(file).map_err(|e| self.errors.error(&e))?;
        match self.call(handler, file_t)? {
            None | Some(Action::Continue) => Ok(PreSend::Continue),
            Some(Action::Reject(msg)) => Ok(PreSend::Reject(msg)),
            Some(Action::Route(peers)) => Ok(PreSend::Route(peers)),
            Some(other) => Err(self.wrong(
                "pre_send",
                &other,
                "p2p.continue(), p2p.reject(msg), p2p.route{...} or nothing",
            )),
        }
    }

    fn chunk(
        &mut self,
        file: &FileInfo,
        offset: u64,
        data: &[u8],
    ) -> Result<ChunkAction, HookError> {
        let Some(handler) = &self.regs.chunk else {
            return Ok(ChunkAction::Pass);
        };
        let args = (|| {
            let chunk = self.lua.create_table()?;
            chunk.set("offset", offset)?;
            chunk.set("size", data.len())?;
            // The bytes are copied into Lua only for a script that asked for them.
            if self.regs.needs_bytes {
                chunk.set("bytes", self.lua.create_string(data)?)?;
            }
            Ok((self.file_table(file)?, chunk))
        })()
        .map_err(|e: mlua::Error| self.errors.error(&e))?;
        match self.call(handler, args)? {
            None | Some(Action::Pass) => Ok(ChunkAction::Pass),
            Some(Action::Replace(bytes)) => Ok(ChunkAction::Replace(bytes)),
            Some(Action::Abort(msg)) => Ok(ChunkAction::Abort(msg)),
            Some(other) => Err(self.wrong(
                "chunk",
                &other,
                "p2p.pass(), p2p.replace(bytes), p2p.abort(msg) or nothing",
            )),
        }
    }

    fn complete(&mut self, file: &FileInfo, outcome: &Outcome) -> Result<(), HookError> {
        let Some(handler) = &self.regs.complete else {
            return Ok(());
        };
        let args = (|| {
            let out = self.lua.create_table()?;
            match outcome {
                Outcome::Done { local_path } => {
                    out.set("ok", true)?;
                    out.set("local_path", local_path.as_str())?;
                }
                Outcome::Failed(reason) => {
                    out.set("ok", false)?;
                    out.set("error", reason.as_str())?;
                }
            }
            Ok((self.file_table(file)?, out))
        })()
        .map_err(|e: mlua::Error| self.errors.error(&e))?;
        self.moved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // What a complete handler returns does not matter; it fails by raising an error.
        self.call_raw(handler, args).map(|_| ())
    }

    fn moved_to(&mut self) -> Option<String> {
        self.moved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
