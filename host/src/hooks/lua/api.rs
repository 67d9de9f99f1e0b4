//! The `p2p` table a script sees: `p2p.on` to register handlers, the action constructors,
//! `p2p.log`, `p2p.settings` and the granted `p2p.move`. See `plugin-api/LUA.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use mlua::{Function, Lua, Table, UserData, Value, Variadic};

use super::move_file::move_into;
use super::sandbox::CallBudget;

/// Log lines one call may write; the rest are dropped, with one warning.
const LOG_LINES_PER_CALL: u32 = 100;
/// Longest log line kept, in bytes; longer ones are cut.
const LOG_LINE_MAX: usize = 2000;

/// What a handler returned. One type for all hooks, checked against the hook it came from.
#[derive(Debug, Clone)]
pub(super) enum Action {
    Continue,
    Reject(String),
    Route(Vec<String>),
    Pass,
    Replace(Vec<u8>),
    Abort(String),
}

// Actions reach Lua as opaque userdata, so a script cannot forge or alter one but only get it
// from the constructors below.
impl UserData for Action {}

impl Action {
    /// The constructor that made it, for error messages.
    pub(super) fn constructor(&self) -> &'static str {
        match self {
            Self::Continue => "p2p.continue()",
            Self::Reject(_) => "p2p.reject(msg)",
            Self::Route(_) => "p2p.route{...}",
            Self::Pass => "p2p.pass()",
            Self::Replace(_) => "p2p.replace(bytes)",
            Self::Abort(_) => "p2p.abort(msg)",
        }
    }

    /// A handler's return value: nothing (the default action) or an action.
    pub(super) fn from_return(value: Value) -> Result<Option<Self>, String> {
        match value {
            Value::Nil => Ok(None),
            Value::UserData(ud) => ud
                .borrow::<Self>()
                .map(|a| Some(a.clone()))
                .map_err(|_| "returned a userdata that is not a p2p action".to_owned()),
            other => Err(format!(
                "returned a {}, not a p2p action (or nothing)",
                other.type_name()
            )),
        }
    }
}

/// The handlers a script registered while it loaded.
#[derive(Debug, Default)]
pub(super) struct Registrations {
    pub(super) pre_send: Option<Function>,
    pub(super) chunk: Option<Function>,
    pub(super) complete: Option<Function>,
    pub(super) needs_bytes: bool,
}

/// Where `p2p.on` puts handlers: `Some` while the script loads, `None` afterwards, so that a
/// handler cannot change what the script said it does once the host has read it.
pub(super) type Registry = Arc<Mutex<Option<Registrations>>>;

/// What the `p2p` table is built from.
pub(super) struct ApiContext<'a> {
    pub(super) name: &'a str,
    pub(super) settings: &'a BTreeMap<String, String>,
    pub(super) move_dirs: &'a [PathBuf],
    pub(super) budget: &'a Arc<CallBudget>,
    pub(super) registry: &'a Registry,
    /// Where `p2p.move` last moved a file: later hooks are told the file's new place.
    pub(super) moved: &'a Arc<Mutex<Option<String>>>,
}

/// Installs the global `p2p` table.
pub(super) fn install(lua: &Lua, cx: &ApiContext<'_>) -> mlua::Result<()> {
    let p2p = lua.create_table()?;

    let registry = Arc::clone(cx.registry);
    p2p.set(
        "on",
        lua.create_function(
            move |_, (event, handler, opts): (String, Function, Option<Table>)| {
                let bytes = match &opts {
                    Some(t) => t.get::<Option<bool>>("bytes")?.unwrap_or(false),
                    None => false,
                };
                let mut guard = registry.lock().unwrap_or_else(PoisonError::into_inner);
                let regs = guard.as_mut().ok_or_else(|| {
                    mlua::Error::runtime("p2p.on: handlers are registered only while the script loads")
                })?;
                let slot = match event.as_str() {
                    "pre_send" => &mut regs.pre_send,
                    "chunk" => &mut regs.chunk,
                    "complete" => &mut regs.complete,
                    _ => {
                        return Err(mlua::Error::runtime(format!(
                            "p2p.on: unknown event {event:?} (expected \"pre_send\", \"chunk\" or \"complete\")"
                        )));
                    }
                };
                if slot.is_some() {
                    return Err(mlua::Error::runtime(format!(
                        "p2p.on: a {event:?} handler is already registered"
                    )));
                }
                if bytes && event != "chunk" {
                    return Err(mlua::Error::runtime(
                        "p2p.on: only a \"chunk\" handler can ask for bytes",
                    ));
                }
                *slot = Some(handler);
                regs.needs_bytes |= bytes;
                Ok(())
            },
        )?,
    )?;

    p2p.set(
        "continue",
        lua.create_function(|_, ()| Ok(Action::Continue))?,
    )?;
    p2p.set(
        "reject",
        lua.create_function(|_, msg: Option<String>| {
            Ok(Action::Reject(msg.unwrap_or_else(|| "rejected".to_owned())))
        })?,
    )?;
    p2p.set(
        "route",
        lua.create_function(|_, peers: Table| {
            let peers = peers
                .sequence_values::<String>()
                .collect::<mlua::Result<Vec<_>>>()?;
            if peers.is_empty() {
                return Err(mlua::Error::runtime("p2p.route: name at least one peer"));
            }
            Ok(Action::Route(peers))
        })?,
    )?;
    p2p.set("pass", lua.create_function(|_, ()| Ok(Action::Pass))?)?;
    p2p.set(
        "replace",
        lua.create_function(|_, bytes: mlua::LuaString| {
            Ok(Action::Replace(bytes.as_bytes().to_vec()))
        })?,
    )?;
    p2p.set(
        "abort",
        lua.create_function(|_, msg: Option<String>| {
            Ok(Action::Abort(msg.unwrap_or_else(|| "aborted".to_owned())))
        })?,
    )?;

    let name = cx.name.to_owned();
    let budget = Arc::clone(cx.budget);
    p2p.set(
        "log",
        lua.create_function(move |_, parts: Variadic<Value>| {
            let n = budget.log_lines.fetch_add(1, Ordering::Relaxed);
            if n == LOG_LINES_PER_CALL {
                tracing::warn!(script = %name, "more than {LOG_LINES_PER_CALL} log lines in one call; dropping the rest");
            }
            if n >= LOG_LINES_PER_CALL {
                return Ok(());
            }
            let mut line = parts
                .iter()
                .map(Value::to_string)
                .collect::<mlua::Result<Vec<_>>>()?
                .join(" ");
            if line.len() > LOG_LINE_MAX {
                let mut cut = LOG_LINE_MAX;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push('…');
            }
            tracing::info!(script = %name, "{line}");
            Ok(())
        })?,
    )?;

    let settings = lua.create_table()?;
    for (k, v) in cx.settings {
        settings.set(k.as_str(), v.as_str())?;
    }
    p2p.set("settings", settings)?;

    let dirs = cx.move_dirs.to_vec();
    let moved = Arc::clone(cx.moved);
    p2p.set(
        "move",
        lua.create_function(move |_, (path, dir): (String, String)| {
            let to = move_into(&dirs, Path::new(&path), &dir)
                .map(|p| p.to_string_lossy().into_owned())
                .map_err(|e| mlua::Error::runtime(format!("p2p.move: {e}")))?;
            *moved.lock().unwrap_or_else(PoisonError::into_inner) = Some(to.clone());
            Ok(to)
        })?,
    )?;

    lua.globals().set("p2p", p2p)
}
