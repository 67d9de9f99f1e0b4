//! A fresh, locked-down Lua state: which libraries a script gets, and the limits on it.
//!
//! - Libraries: `string` (without `string.dump`), `table`, `math`, `utf8` and the safe half of
//!   the base library. No `io`, `os`, `package`/`require`, `debug`, `coroutine`, `load`,
//!   `loadfile`, `dofile`, `collectgarbage`, `print` or `warn`; `os.time`, `os.clock`, `os.date`
//!   and `os.difftime` only when granted.
//! - Memory: Lua's allocator refuses to grow the state past the limit (a Lua "not enough memory"
//!   error), and what the host builds or copies for a script is bounded too (`api.rs`,
//!   `strlib.rs`).
//! - CPU: a count hook fires every [`check_every`] VM instructions, on the main state and on
//!   any thread, charges them to the call's [`CallBudget`] and stops the call once it has used
//!   its instructions or passed its deadline. Library functions that could loop inside one C
//!   call, where the hook never fires, are replaced (`sandbox.lua`, `strlib.rs`). `pcall` and
//!   `xpcall` cannot catch their way past a limit, and `__gc` finalizers, which Lua runs with
//!   hooks off, are refused.

use std::sync::{Arc, OnceLock};

use mlua::chunk::ChunkMode;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

use super::budget::CallBudget;
use super::strlib;
use super::{LuaGrants, LuaLimits};

/// The message of the error a stopped call raises (the caller reports it in its own words).
pub(super) const LIMIT_MESSAGE: &str = "instruction limit exceeded";

/// The chunk name of the sandbox's own Lua code (`sandbox.lua`), as Lua shows it.
const SANDBOX_CHUNK: &str = "sandbox";

/// The prelude (`sandbox.lua`) compiled once per process: each transfer's state loads its
/// bytecode instead of parsing 300 lines again. It is ours and made by this very Lua, so it is
/// loaded as bytecode where a script's never is; `None` (never expected) falls back to the text.
fn prelude() -> Option<&'static [u8]> {
    static BYTECODE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BYTECODE
        .get_or_init(|| {
            let lua = Lua::new_with(StdLib::NONE, LuaOptions::new()).ok()?;
            let f = lua
                .load(include_str!("sandbox.lua"))
                .set_name(format!("={SANDBOX_CHUNK}"))
                .set_mode(ChunkMode::Text)
                .into_function()
                .ok()?;
            // With its debug information: `script_position` tells its frames by their source.
            Some(f.dump(false))
        })
        .as_deref()
}

/// How many VM instructions run between two checks of the budget and the deadline.
///
/// One instruction can cost up to about the size of the state's largest string: `s < s` on a
/// string of NUL bytes calls `strcoll` once per byte, 10 to 30 ms per MiB here. A check every
/// `160 MiB / memory limit` instructions (10 at the default 16 MiB; at most 100, at least 1)
/// keeps the time between two checks, hence a call's overrun of its deadline, to a fraction of
/// a second whatever the instructions are; each check costs about as much as a few
/// instructions.
pub(super) fn check_every(memory_bytes: usize, instructions_per_call: u64) -> u32 {
    const SCALE: usize = 160 << 20;
    let by_memory = (SCALE / memory_bytes.max(1)).clamp(1, 100);
    let step = u64::try_from(by_memory)
        .unwrap_or(1)
        .min(instructions_per_call.max(1));
    u32::try_from(step).unwrap_or(1)
}

/// `file.lua:LINE: ` of the innermost frame of the script itself (not of the sandbox's own Lua
/// code, nor a C function), for the message of a stopped call.
pub(super) fn script_position(lua: &Lua) -> Option<String> {
    (0..64).find_map(|level| {
        lua.inspect_stack(level, |d| {
            let line = d.current_line()?;
            let src = d.source().short_src?.into_owned();
            (src != SANDBOX_CHUNK).then(|| format!("{src}:{line}: "))
        })
        .flatten()
    })
}

/// A new state with the sandboxed libraries, the memory limit and the per-call limits.
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

    let step = check_every(limits.memory_bytes, limits.instructions_per_call);
    let hook_budget = Arc::clone(budget);
    // A global hook, not a per-thread one, so that any thread the state makes is counted too.
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(step),
        move |lua, _| match hook_budget.charge(u64::from(step), || script_position(lua)) {
            Some(_) => Err(mlua::Error::runtime(LIMIT_MESSAGE)),
            None => Ok(VmState::Continue),
        },
    )?;

    // Lua's own format, pack and unpack, before the prelude wraps them (see below).
    let originals =
        ["format", "pack", "unpack"].map(|name| string.raw_get::<Value>(name).map(|f| (name, f)));
    let check_budget = Arc::clone(budget);
    let exhausted = lua.create_function(move |_, ()| Ok(check_budget.stopped().is_some()))?;
    let lib = strlib::functions(&lua, budget, limits.memory_bytes)?;
    let chunk = match prelude() {
        Some(bytecode) => lua.load(bytecode).set_mode(ChunkMode::Binary),
        None => lua
            .load(include_str!("sandbox.lua"))
            .set_mode(ChunkMode::Text),
    };
    chunk.set_name(format!("={SANDBOX_CHUNK}")).call::<()>((
        globals.raw_get::<Value>("pcall")?,
        globals.raw_get::<Value>("xpcall")?,
        exhausted,
        LIMIT_MESSAGE,
        lib,
    ))?;
    // Lua names a function in a "bad argument" message by looking for it among the loaded
    // modules; format, pack and unpack are called from Rust (strlib.rs), so register them
    // under their own names (the table is out of a script's reach: no `package`, no `debug`).
    let loaded: Table = lua.named_registry_value("_LOADED")?;
    for original in originals {
        let (name, f) = original?;
        loaded.raw_set(name, f)?;
    }
    Ok(lua)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_come_more_often_as_strings_can_grow_longer() {
        assert_eq!(check_every(16 << 20, 10_000_000), 10);
        assert_eq!(check_every(1 << 20, 10_000_000), 100);
        assert_eq!(check_every(64 << 20, 10_000_000), 2);
        assert_eq!(check_every(1 << 30, 10_000_000), 1);
        assert_eq!(check_every(16 << 20, 5), 5);
        assert_eq!(check_every(0, 0), 1);
    }
}
