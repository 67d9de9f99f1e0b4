//! The `p2p` table a script sees: `p2p.on` to register handlers, the action constructors,
//! `p2p.log`, `p2p.settings` and the granted `p2p.move`. See `plugin-api/LUA.md`.
//!
//! Nothing a script passes is copied onto the host's heap beyond a small bound: an action keeps
//! its text, bytes or peers as a Lua value (inside the state's memory limit) until a handler
//! returns it, and only that one action is copied out, cut to size; a log line is built from at
//! most [`LOG_LINE_MAX`] bytes of its parts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use mlua::{AnyUserData, Function, Lua, LuaString, Table, UserData, Value, Variadic};

use super::budget::CallBudget;
use super::move_file::move_into;
use crate::transfer::manifest::CHUNK_SIZE_RANGE;

/// Log lines one call may write; the rest are dropped, with one warning.
const LOG_LINES_PER_CALL: u32 = 100;
/// Longest log line kept, in bytes; longer ones are cut.
const LOG_LINE_MAX: usize = 2000;
/// Longest reason (of `p2p.reject`, `p2p.abort`, an error) kept, in bytes: it is logged and
/// sent to the peer.
pub(super) const REASON_MAX: usize = 4096;
/// Most bytes `p2p.replace` takes: the largest chunk the protocol allows, plus room for an
/// encoding that grows it.
pub(super) const REPLACE_MAX: usize = CHUNK_SIZE_RANGE.1 as usize + (64 << 10);
/// Most peers `p2p.route` names, and the longest name (a configured peer's name is at most 64
/// bytes).
const ROUTE_PEERS_MAX: usize = 256;
const PEER_NAME_MAX: usize = 64;
/// Longest path or folder name `p2p.move` takes.
const MOVE_ARG_MAX: usize = 4096;

/// What a handler returned, copied out of Lua. One type for all hooks, checked against the
/// hook it came from.
#[derive(Debug, Clone)]
pub(super) enum Action {
    Continue,
    Reject(String),
    Route(Vec<String>),
    Pass,
    Replace(Vec<u8>),
    Abort(String),
}

/// Which action a userdata is. Its text, bytes or peers are its user value, a Lua value that
/// counts against the state's memory; a script cannot forge or alter one, only get it from the
/// constructors below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Continue,
    Reject,
    Route,
    Pass,
    Replace,
    Abort,
}

struct ActionTag(Kind);

impl UserData for ActionTag {}

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

    /// A handler's return value: nothing (the default action) or an action, copied out of Lua.
    pub(super) fn from_return(value: Value) -> Result<Option<Self>, String> {
        let ud = match value {
            Value::Nil => return Ok(None),
            Value::UserData(ud) => ud,
            other => {
                return Err(format!(
                    "returned a {}, not a p2p action (or nothing)",
                    other.type_name()
                ));
            }
        };
        let kind = ud
            .borrow::<ActionTag>()
            .map(|tag| tag.0)
            .map_err(|_| "returned a userdata that is not a p2p action".to_owned())?;
        let payload = || ud.user_value::<Value>().unwrap_or(Value::Nil);
        let text = |default: &str| match payload() {
            Value::String(s) => bounded_text(&s.as_bytes(), REASON_MAX),
            _ => default.to_owned(),
        };
        Ok(Some(match kind {
            Kind::Continue => Self::Continue,
            Kind::Pass => Self::Pass,
            Kind::Reject => Self::Reject(text("rejected")),
            Kind::Abort => Self::Abort(text("aborted")),
            Kind::Replace => match payload() {
                Value::String(s) => Self::Replace(s.as_bytes().to_vec()),
                _ => Self::Replace(Vec::new()),
            },
            Kind::Route => {
                let mut peers = Vec::new();
                if let Value::Table(t) = payload() {
                    for name in t.sequence_values::<LuaString>().take(ROUTE_PEERS_MAX) {
                        let name = name.map_err(|e| e.to_string())?;
                        peers.push(bounded_text(&name.as_bytes(), PEER_NAME_MAX));
                    }
                }
                Self::Route(peers)
            }
        }))
    }
}

/// Text from a script for people: lossy UTF-8, at most `max` bytes of it, and if cut, a mark
/// saying how long it was.
pub(super) fn bounded_text(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut kept = String::from_utf8_lossy(&bytes[..max]).into_owned();
    // A character cut in two became U+FFFD; drop it rather than show it.
    if kept.ends_with('\u{fffd}') {
        kept.pop();
    }
    format!("{kept}… ({} bytes in all)", bytes.len())
}

/// An action userdata carrying `payload` (a Lua value, so it is counted in the state's memory).
fn action(lua: &Lua, kind: Kind, payload: Option<Value>) -> mlua::Result<AnyUserData> {
    let ud = lua.create_userdata(ActionTag(kind))?;
    if let Some(payload) = payload {
        ud.set_user_value(payload)?;
    }
    Ok(ud)
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
            move |_, (event, handler, opts): (LuaString, Function, Option<Table>)| {
                let bytes = match &opts {
                    Some(t) => t.get::<Option<bool>>("bytes")?.unwrap_or(false),
                    None => false,
                };
                let mut guard = registry.lock().unwrap_or_else(PoisonError::into_inner);
                let regs = guard.as_mut().ok_or_else(|| {
                    mlua::Error::runtime("p2p.on: handlers are registered only while the script loads")
                })?;
                let event = bounded_text(&event.as_bytes(), 64);
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
        lua.create_function(|lua, ()| action(lua, Kind::Continue, None))?,
    )?;
    p2p.set(
        "pass",
        lua.create_function(|lua, ()| action(lua, Kind::Pass, None))?,
    )?;
    p2p.set(
        "reject",
        lua.create_function(|lua, msg: Option<LuaString>| {
            action(lua, Kind::Reject, msg.map(Value::String))
        })?,
    )?;
    p2p.set(
        "abort",
        lua.create_function(|lua, msg: Option<LuaString>| {
            action(lua, Kind::Abort, msg.map(Value::String))
        })?,
    )?;
    p2p.set(
        "route",
        lua.create_function(|lua, peers: Table| {
            action(
                lua,
                Kind::Route,
                Some(Value::Table(route_peers(lua, &peers)?)),
            )
        })?,
    )?;
    p2p.set(
        "replace",
        lua.create_function(|lua, bytes: LuaString| {
            let len = bytes.as_bytes().len();
            if len > REPLACE_MAX {
                return Err(mlua::Error::runtime(format!(
                    "p2p.replace: {len} bytes is more than a chunk can be ({REPLACE_MAX} bytes)"
                )));
            }
            action(lua, Kind::Replace, Some(Value::String(bytes)))
        })?,
    )?;

    let name = cx.name.to_owned();
    let budget = Arc::clone(cx.budget);
    // The real `tostring`, taken before the script can replace the global.
    let tostring: Function = lua.globals().get("tostring")?;
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
            let line = log_line(&parts, &tostring)?;
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
        lua.create_function(move |_, (path, dir): (LuaString, LuaString)| {
            let (path, dir) = (move_arg(&path, "path")?, move_arg(&dir, "folder")?);
            let to = move_into(&dirs, Path::new(&path), &dir)
                .map(|p| p.to_string_lossy().into_owned())
                .map_err(|e| mlua::Error::runtime(format!("p2p.move: {e}")))?;
            *moved.lock().unwrap_or_else(PoisonError::into_inner) = Some(to.clone());
            Ok(to)
        })?,
    )?;

    lua.globals().set("p2p", p2p)
}

/// The peers of `p2p.route{...}`, checked and copied into a table of the state's own (so the
/// script cannot change them afterwards, and they stay in its memory until returned).
fn route_peers(lua: &Lua, peers: &Table) -> mlua::Result<Table> {
    let mut names = Vec::new();
    for (i, name) in peers.sequence_values::<Value>().enumerate() {
        if i == ROUTE_PEERS_MAX {
            return Err(mlua::Error::runtime(format!(
                "p2p.route: more than {ROUTE_PEERS_MAX} peers"
            )));
        }
        let name = name?;
        let kind = name.type_name();
        let Some(name) = lua.coerce_string(name)? else {
            return Err(mlua::Error::runtime(format!(
                "p2p.route: peer {} is a {kind}, not a name",
                i + 1
            )));
        };
        let len = name.as_bytes().len();
        if len > PEER_NAME_MAX {
            return Err(mlua::Error::runtime(format!(
                "p2p.route: peer {} is {len} bytes long; a peer's name is at most {PEER_NAME_MAX}",
                i + 1
            )));
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(mlua::Error::runtime("p2p.route: name at least one peer"));
    }
    lua.create_sequence_from(names)
}

/// One `p2p.log` line: the parts through `tostring`, separated by spaces, cut at
/// [`LOG_LINE_MAX`] bytes. Only what fits is copied out of Lua.
fn log_line(parts: &[Value], tostring: &Function) -> mlua::Result<String> {
    let mut line = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if line.len() > LOG_LINE_MAX {
            break;
        }
        if i > 0 {
            line.push(b' ');
        }
        let room = LOG_LINE_MAX + 1 - line.len().min(LOG_LINE_MAX + 1);
        match part {
            Value::String(s) => {
                let bytes = s.as_bytes();
                line.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Value::Nil | Value::Boolean(_) | Value::Integer(_) | Value::Number(_) => {
                line.extend_from_slice(part.to_string()?.as_bytes());
            }
            _ => match tostring.call::<Value>(part)? {
                Value::String(s) => {
                    let bytes = s.as_bytes();
                    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                other => line.extend_from_slice(other.to_string()?.as_bytes()),
            },
        }
    }
    let mut text = String::from_utf8_lossy(&line).into_owned();
    if text.len() > LOG_LINE_MAX {
        let mut cut = LOG_LINE_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    Ok(text)
}

/// An argument of `p2p.move`, as text, refused if longer than any path could be.
fn move_arg(arg: &LuaString, what: &str) -> mlua::Result<String> {
    let len = arg.as_bytes().len();
    if len > MOVE_ARG_MAX {
        return Err(mlua::Error::runtime(format!(
            "p2p.move: the {what} is {len} bytes long (at most {MOVE_ARG_MAX})"
        )));
    }
    Ok(arg.to_str()?.to_owned())
}
