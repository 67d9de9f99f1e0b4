//! A fresh, locked-down Lua state: which libraries a script gets, and the two limits on it.
//!
//! - Libraries: `string` (without `string.dump`), `table`, `math`, `utf8` and the safe half of
//!   the base library. No `io`, `os`, `package`/`require`, `debug`, `coroutine`, `load`,
//!   `loadfile`, `dofile`, `collectgarbage`, `print` or `warn`; `os.time`, `os.clock`, `os.date`
//!   and `os.difftime` only when granted.
//! - Memory: Lua's allocator refuses to grow the state past the limit (a Lua "not enough memory"
//!   error).
//! - CPU: a count hook fires every [`STEP`] VM instructions, on the main state and on any thread,
//!   and errors once the call has used its budget. `pcall`/`xpcall` are wrapped so that a script
//!   cannot catch that error and carry on: once the budget is spent, leaving a protected call
//!   raises again; `__gc` finalizers, which Lua runs with hooks off, are refused. (Time spent inside one C function, such as a pathological `string.find`
//!   pattern, is not counted: the hook only fires between VM instructions.)

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mlua::chunk::ChunkMode;
use mlua::debug::Debug;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

use super::{LuaGrants, LuaLimits};

/// How many instructions run between two checks of the budget: small enough that a call stops
/// close to its limit, large enough that counting costs nothing measurable.
pub(super) const STEP: u32 = 1000;

/// What one call into the script may still spend, shared with the count hook.
#[derive(Debug)]
pub(super) struct CallBudget {
    limit: u64,
    used: AtomicU64,
    exhausted: AtomicBool,
    /// `file.lua:LINE: ` where the budget ran out, for the error message.
    stopped_at: Mutex<String>,
    /// `p2p.log` lines written during this call (capped, so a loop cannot flood the log).
    pub(super) log_lines: AtomicU32,
}

impl CallBudget {
    pub(super) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            exhausted: AtomicBool::new(false),
            stopped_at: Mutex::new(String::new()),
            log_lines: AtomicU32::new(0),
        }
    }

    /// Starts a call with the whole budget.
    pub(super) fn start(&self) {
        self.used.store(0, Ordering::Relaxed);
        self.exhausted.store(false, Ordering::Relaxed);
        self.stopped_at().clear();
        self.log_lines.store(0, Ordering::Relaxed);
    }

    /// Whether the current call ran out of instructions.
    pub(super) fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    /// `file.lua:LINE: ` where the current call ran out, or nothing if Lua did not know.
    pub(super) fn stopped_at(&self) -> MutexGuard<'_, String> {
        self.stopped_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `n` instructions; true once the call is over budget. The first time, notes
    /// where: the error raised from a hook carries no position of its own.
    fn spend(&self, n: u64, debug: &Debug) -> bool {
        let used = self.used.fetch_add(n, Ordering::Relaxed) + n;
        if used > self.limit
            && !self.exhausted.swap(true, Ordering::Relaxed)
            && let Some(line) = debug.current_line()
        {
            let src = debug.source();
            *self.stopped_at() = format!("{}:{line}: ", src.short_src.unwrap_or_default());
        }
        self.exhausted()
    }
}

/// The message of the error the count hook raises (the caller reports it in its own words).
const LIMIT_MESSAGE: &str = "instruction limit exceeded";

/// Runs before the script with the real `pcall`, `xpcall` and a budget check as arguments, and
/// replaces the globals with versions that re-raise once the budget is spent.
///
/// It also refuses `__gc` metamethods: Lua runs finalizers with hooks switched off (and when the
/// state is dropped, outside any call), so a looping finalizer would escape the budget. Lua
/// marks an object for finalization only if `__gc` is in its metatable when `setmetatable` is
/// called, so checking there is enough.
const PRELUDE: &str = r#"
local raw_pcall, raw_xpcall, exhausted, message = ...
local raw_setmetatable, rawget, type, error = setmetatable, rawget, type, error
setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not available to scripts", 2)
  end
  return raw_setmetatable(t, mt)
end
local function check(...)
  if exhausted() then error(message, 0) end
  return ...
end
pcall = function(...) return check(raw_pcall(...)) end
xpcall = function(...) return check(raw_xpcall(...)) end
"#;

/// A new state with the sandboxed libraries, the memory limit and the instruction budget.
pub(super) fn new_state(
    limits: &LuaLimits,
    grants: &LuaGrants,
    budget: &Arc<CallBudget>,
) -> mlua::Result<Lua> {
    let mut libs = StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8;
    if grants.allow_os_time {
        libs |= StdLib::OS;
    }
    let lua = Lua::new_with(libs, LuaOptions::new())?;
    lua.set_memory_limit(limits.memory_bytes)?;

    let globals = lua.globals();
    for name in [
        "collectgarbage",
        "dofile",
        "load",
        "loadfile",
        "print",
        "warn",
        "require",
    ] {
        globals.raw_remove(name)?;
    }
    // Bytecode could be turned back into a function only by `load`, which is gone, but a dump
    // also reveals the script's constants and upvalue names to whatever it is sent to.
    let string: Table = globals.raw_get("string")?;
    string.raw_remove("dump")?;
    if grants.allow_os_time {
        let os: Table = globals.raw_get("os")?;
        let safe = lua.create_table()?;
        for name in ["time", "clock", "date", "difftime"] {
            safe.raw_set(name, os.raw_get::<Value>(name)?)?;
        }
        globals.raw_set("os", safe)?;
    }

    let step =
        u32::try_from(limits.instructions_per_call.clamp(1, u64::from(STEP))).unwrap_or(STEP);
    let hook_budget = Arc::clone(budget);
    // A global hook, not a per-thread one, so that any thread the state makes is counted too.
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(step),
        move |_, debug| {
            if hook_budget.spend(u64::from(step), debug) {
                Err(mlua::Error::runtime(LIMIT_MESSAGE))
            } else {
                Ok(VmState::Continue)
            }
        },
    )?;

    let check_budget = Arc::clone(budget);
    let exhausted = lua.create_function(move |_, ()| Ok(check_budget.exhausted()))?;
    lua.load(PRELUDE)
        .set_name("=sandbox")
        .set_mode(ChunkMode::Text)
        .call::<()>((
            globals.raw_get::<Value>("pcall")?,
            globals.raw_get::<Value>("xpcall")?,
            exhausted,
            LIMIT_MESSAGE,
        ))?;
    Ok(lua)
}
