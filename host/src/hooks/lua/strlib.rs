//! The string functions the sandbox implements itself: `string.find`, `match`, `gmatch`,
//! `gsub` (on [`super::patterns`]) and `rep`, each charging its work to the call's budget.
//!
//! They are called through small Lua wrappers (`sandbox.lua`): an error a script may catch
//! (a bad argument, a malformed pattern) comes back as `(ERR, message)` and the wrapper raises
//! the message one level up, as Lua's own C functions do, so `pcall` gets the same string.
//! Only the limits come back as Rust errors. Where the work is a loop that calls the script
//! (`gsub` with a function or a table, `gmatch`'s iterator), the loop is in Lua and Rust finds
//! one match per call. A result built in Rust (`gsub` with a string, `rep`) is built only if it
//! fits in the memory the state has left: a host-side buffer never exceeds the script's limit.

use std::sync::Arc;

use mlua::{Function, Lua, LuaString, MultiValue, Table, Value};

use super::budget::CallBudget;
use super::patterns::{self, Matcher};
use super::sandbox::{LIMIT_MESSAGE, script_position};

/// Why a function stopped: a script error (`pcall` catches it as a string), or a limit.
enum Fail {
    Script(String),
    Stop(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Self {
        Self::Stop(e)
    }
}

impl From<patterns::Fail<mlua::Error>> for Fail {
    fn from(e: patterns::Fail<mlua::Error>) -> Self {
        match e {
            patterns::Fail::Pattern(msg) => Self::Script(msg),
            patterns::Fail::Limit(e) => Self::Stop(e),
        }
    }
}

type Res<T> = Result<T, Fail>;

/// Bytes of plain copying or scanning charged as one instruction.
const BYTES_PER_STEP: u64 = 16;

/// What the functions share: the budget they charge, the memory limit their results must fit
/// in, and the markers of a script error (`err`: to be raised where the script called;
/// `raise`: a message that already says where it comes from).
struct Lib {
    budget: Arc<CallBudget>,
    memory_limit: usize,
    err: Table,
    raise: Table,
}

impl Lib {
    /// Charges `n` steps; an error once the call must stop.
    fn charge(&self, lua: &Lua, n: u64) -> mlua::Result<()> {
        match self.budget.charge(n, || script_position(lua)) {
            None => Ok(()),
            Some(_) => Err(mlua::Error::runtime(LIMIT_MESSAGE)),
        }
    }

    fn charger<'l>(&'l self, lua: &'l Lua) -> impl FnMut(u64) -> mlua::Result<()> + 'l {
        move |n| self.charge(lua, n)
    }

    /// What the state may still allocate: a result built on the host side must fit.
    fn room(&self, lua: &Lua) -> usize {
        self.memory_limit.saturating_sub(lua.used_memory())
    }

    fn finish(&self, lua: &Lua, result: Res<MultiValue>) -> mlua::Result<MultiValue> {
        match result {
            Ok(values) => Ok(values),
            Err(Fail::Script(msg)) => Ok(MultiValue::from_vec(vec![
                Value::Table(self.err.clone()),
                Value::String(lua.create_string(msg)?),
            ])),
            Err(Fail::Stop(e)) => Err(e),
        }
    }
}

fn out_of_memory() -> Fail {
    Fail::Stop(mlua::Error::MemoryError("not enough memory".into()))
}

/// The functions `sandbox.lua` wraps, in a table, with `err`, the marker of a script error.
pub(super) fn functions(
    lua: &Lua,
    budget: &Arc<CallBudget>,
    memory_limit: usize,
) -> mlua::Result<Table> {
    let lib = Arc::new(Lib {
        budget: Arc::clone(budget),
        memory_limit,
        err: lua.create_table()?,
        raise: lua.create_table()?,
    });
    let t = lua.create_table()?;
    t.set("err", lib.err.clone())?;
    t.set("raise", lib.raise.clone())?;
    type Body = fn(&Lua, &Lib, &MultiValue) -> Res<MultiValue>;
    let bodies: [(&str, Body); 8] = [
        ("find", |lua, lib, a| find(lua, lib, a, true)),
        ("match", |lua, lib, a| find(lua, lib, a, false)),
        ("gmatch_start", gmatch_start),
        ("gmatch_next", gmatch_next),
        ("gsub_start", gsub_start),
        ("gsub_string", gsub_string),
        ("gsub_step", gsub_step),
        ("rep", rep),
    ];
    for (name, body) in bodies {
        let lib = Arc::clone(&lib);
        let f = lua.create_function(move |lua, args: MultiValue| {
            let result = body(lua, &lib, &args);
            lib.finish(lua, result)
        })?;
        t.set(name, f)?;
    }
    // Lua's own functions whose one call can take long (`string.format` of a big `%q`, say),
    // checked before each call: a call overruns its deadline by one such call, not a loop.
    let string: Table = lua.globals().get("string")?;
    for name in ["format", "pack", "unpack"] {
        let lib = Arc::clone(&lib);
        let inner: Function = string.get(name)?;
        let f = lua.create_function(move |lua, args: MultiValue| {
            lib.charge(lua, 1)?;
            let result = match inner.call::<MultiValue>(args) {
                Ok(values) => Ok(values),
                Err(mlua::Error::RuntimeError(msg)) => Err(lua_error(lua, name, &msg)),
                Err(e) => Err(Fail::Stop(e)),
            };
            match result {
                Err(Fail::Script(msg)) if has_position(&msg) => Ok(MultiValue::from_vec(vec![
                    Value::Table(lib.raise.clone()),
                    Value::String(lua.create_string(msg)?),
                ])),
                other => lib.finish(lua, other),
            }
        })?;
        t.set(name, f)?;
    }
    Ok(t)
}

/// An error of Lua's own function `name`, called from Rust: without mlua's traceback, and a bad
/// argument named (and numbered) as the script called it, as if the script had called it.
fn lua_error(lua: &Lua, name: &'static str, msg: &str) -> Fail {
    let msg = msg
        .split("\nstack traceback:")
        .next()
        .unwrap_or(msg)
        .trim_end();
    let parsed = msg.strip_prefix("bad argument #").and_then(|rest| {
        let (n, rest) = rest.split_once(" to '")?;
        let (_, extra) = rest.split_once("' (")?;
        Some((n.parse::<usize>().ok()?, extra.strip_suffix(')')?))
    });
    match parsed {
        Some((n, extra)) => Args::new(lua, &MultiValue::new(), name).error(n, extra),
        None => Fail::Script(msg.to_owned()),
    }
}

/// Whether an error message starts with `source:line: ` (raised by Lua code, a metamethod say,
/// which said where already).
fn has_position(msg: &str) -> bool {
    msg.split_once(": ").is_some_and(|(head, _)| {
        head.rsplit_once(':').is_some_and(|(src, line)| {
            !src.is_empty() && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// Arguments as Lua's `luaL_check*` read them, with its error messages.
struct Args<'a> {
    lua: &'a Lua,
    vals: &'a MultiValue,
    name: &'static str,
}

impl<'a> Args<'a> {
    fn new(lua: &'a Lua, vals: &'a MultiValue, name: &'static str) -> Self {
        Self { lua, vals, name }
    }

    fn get(&self, n: usize) -> Option<&Value> {
        self.vals.get(n - 1)
    }

    /// `bad argument #n to 'name' (msg)`, named as the script called the wrapper (a method
    /// call does not count `self`, as in Lua).
    fn error(&self, n: usize, msg: &str) -> Fail {
        let (name, method) = self
            .lua
            .inspect_stack(1, |d| {
                let names = d.names();
                (
                    names.name.map(|n| n.into_owned()),
                    names.name_what == Some("method"),
                )
            })
            .unwrap_or((None, false));
        let name = name.unwrap_or_else(|| self.name.to_owned());
        if method {
            if n == 1 {
                return Fail::Script(format!("calling '{name}' on bad self ({msg})"));
            }
            return Fail::Script(format!("bad argument #{} to '{name}' ({msg})", n - 1));
        }
        Fail::Script(format!("bad argument #{n} to '{name}' ({msg})"))
    }

    fn type_error(&self, n: usize, expected: &str) -> Fail {
        let got = type_name(self.get(n));
        self.error(n, &format!("{expected} expected, got {got}"))
    }

    fn string(&self, n: usize) -> Res<LuaString> {
        match self.get(n) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v @ (Value::Integer(_) | Value::Number(_))) => self
                .lua
                .coerce_string(v.clone())?
                .ok_or_else(|| self.type_error(n, "string")),
            _ => Err(self.type_error(n, "string")),
        }
    }

    fn opt_string(&self, n: usize) -> Res<Option<LuaString>> {
        match self.get(n) {
            None | Some(Value::Nil) => Ok(None),
            Some(_) => self.string(n).map(Some),
        }
    }

    fn integer(&self, n: usize) -> Res<i64> {
        let v = match self.get(n) {
            Some(Value::Integer(i)) => return Ok(*i),
            Some(v @ (Value::Number(_) | Value::String(_))) => v.clone(),
            _ => return Err(self.type_error(n, "number")),
        };
        if let Some(i) = self.lua.coerce_integer(v.clone())? {
            return Ok(i);
        }
        if self.lua.coerce_number(v)?.is_some() {
            return Err(self.error(n, "number has no integer representation"));
        }
        Err(self.type_error(n, "number"))
    }

    fn opt_integer(&self, n: usize, default: i64) -> Res<i64> {
        match self.get(n) {
            None | Some(Value::Nil) => Ok(default),
            Some(_) => self.integer(n),
        }
    }

    fn truthy(&self, n: usize) -> bool {
        !matches!(self.get(n), None | Some(Value::Nil | Value::Boolean(false)))
    }
}

/// A value's type as Lua's error messages name it (a table's `__name` if it has one).
fn type_name(v: Option<&Value>) -> String {
    let name = match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) => "light userdata",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(t)) => {
            let named = t
                .metatable()
                .and_then(|mt| mt.raw_get::<Value>("__name").ok());
            if let Some(Value::String(s)) = named {
                return s.to_string_lossy();
            }
            "table"
        }
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    };
    name.to_owned()
}

/// A 1-based start position relative to a string of `len` bytes, clipped to 1 (Lua's
/// `posrelatI`), as a 0-based offset (which may be past the end).
fn start_offset(pos: i64, len: usize) -> usize {
    let len = len as u64;
    let one_based = if pos > 0 {
        pos.unsigned_abs()
    } else if pos == 0 || pos.unsigned_abs() > len {
        1
    } else {
        len - pos.unsigned_abs() + 1
    };
    usize::try_from(one_based - 1).unwrap_or(usize::MAX)
}

fn int(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn nil() -> MultiValue {
    MultiValue::from_vec(vec![Value::Nil])
}

/// Pushes the match's values (captures, or the whole match when `whole` and it has none).
fn push_values<E, F: FnMut(u64) -> Result<(), E>>(
    lua: &Lua,
    out: &mut Vec<Value>,
    m: &Matcher<'_, E, F>,
    subject: &[u8],
    (start, end): (usize, usize),
    whole: bool,
) -> Res<()>
where
    Fail: From<patterns::Fail<E>>,
{
    for i in 0..m.value_count(whole) {
        out.push(match m.value(i, start, end)? {
            patterns::Value::Bytes(a, b) => Value::String(lua.create_string(&subject[a..b])?),
            patterns::Value::Position(p) => int(p),
        });
    }
    Ok(())
}

/// `string.find` (`find`) and `string.match`.
fn find(lua: &Lua, lib: &Lib, args: &MultiValue, find: bool) -> Res<MultiValue> {
    let a = Args::new(lua, args, if find { "find" } else { "match" });
    let (s, p) = (a.string(1)?, a.string(2)?);
    let init = a.opt_integer(3, 1)?;
    let (subject, pattern) = (s.as_bytes(), p.as_bytes());
    let init = start_offset(init, subject.len());
    if init > subject.len() {
        return Ok(nil());
    }
    if find && (a.truthy(4) || patterns::is_plain(&pattern)) {
        let found = memchr::memmem::find(&subject[init..], &pattern);
        // Charged for the bytes searched, up to the match: a loop that finds one line after
        // another in a big string pays for the string once, not once per line.
        let searched = found.map_or(subject.len() - init, |at| at + pattern.len());
        lib.charge(lua, searched as u64 / BYTES_PER_STEP + 1)?;
        return Ok(match found {
            Some(at) => {
                MultiValue::from_vec(vec![int(init + at + 1), int(init + at + pattern.len())])
            }
            None => nil(),
        });
    }
    let (anchor, pattern) = match pattern.strip_prefix(b"^") {
        Some(rest) => (true, rest),
        None => (false, &pattern[..]),
    };
    let mut m = Matcher::new(&subject, pattern, lib.charger(lua));
    let mut at = init;
    loop {
        if let Some(end) = m.match_at(at)? {
            m.flush()?;
            let mut out = Vec::new();
            if find {
                out.extend([int(at + 1), int(end)]);
            }
            push_values(lua, &mut out, &m, &subject, (at, end), !find)?;
            return Ok(MultiValue::from_vec(out));
        }
        if anchor || at >= subject.len() {
            break;
        }
        at += 1;
    }
    m.flush()?;
    Ok(nil())
}

/// `string.gmatch(s, pattern [, init])`, checked: the subject, the pattern and where to
/// start (0-based; past the end when `init` is).
fn gmatch_start(lua: &Lua, _lib: &Lib, args: &MultiValue) -> Res<MultiValue> {
    let a = Args::new(lua, args, "gmatch");
    let (s, p) = (a.string(1)?, a.string(2)?);
    let init = a.opt_integer(3, 1)?;
    let start = start_offset(init, s.as_bytes().len()).min(s.as_bytes().len() + 1);
    Ok(MultiValue::from_vec(vec![
        Value::String(s),
        Value::String(p),
        int(start),
    ]))
}

/// One step of a `gmatch` iterator: `(subject, pattern, from, last_end)` → the end of the next
/// match and its values, or nothing. A match ending where the last one ended is skipped (so an
/// empty match does not repeat). In `gmatch`, `^` is an ordinary character.
fn gmatch_next(lua: &Lua, lib: &Lib, args: &MultiValue) -> Res<MultiValue> {
    let (s, p, from, last) = internal_args(args)?;
    let (subject, pattern) = (s.as_bytes(), p.as_bytes());
    let mut m = Matcher::new(&subject, &pattern, lib.charger(lua));
    for at in from..=subject.len() {
        if let Some(end) = m.match_at(at)?
            && Some(end) != last
        {
            m.flush()?;
            let mut out = vec![int(end)];
            push_values(lua, &mut out, &m, &subject, (at, end), true)?;
            return Ok(MultiValue::from_vec(out));
        }
    }
    m.flush()?;
    Ok(MultiValue::new())
}

/// `(subject, pattern, from, last_end or nil)`, as `sandbox.lua` passes them.
fn internal_args(args: &MultiValue) -> Res<(LuaString, LuaString, usize, Option<usize>)> {
    let offset = |v: Option<&Value>| match v {
        Some(Value::Integer(i)) => usize::try_from(*i).ok(),
        _ => None,
    };
    match (args.front(), args.get(1)) {
        (Some(Value::String(s)), Some(Value::String(p))) => Ok((
            s.clone(),
            p.clone(),
            offset(args.get(2)).unwrap_or(usize::MAX),
            offset(args.get(3)),
        )),
        _ => Err(Fail::Script(
            "internal: bad arguments to a pattern step".into(),
        )),
    }
}

/// `string.gsub(s, pattern, repl [, n])`, checked in Lua's order: the subject, the pattern
/// (and whether it is anchored), the replacement (a number becomes its string), the most
/// replacements.
fn gsub_start(lua: &Lua, _lib: &Lib, args: &MultiValue) -> Res<MultiValue> {
    let a = Args::new(lua, args, "gsub");
    let (s, p) = (a.string(1)?, a.string(2)?);
    let len = i64::try_from(s.as_bytes().len()).unwrap_or(i64::MAX);
    let max = a.opt_integer(4, len.saturating_add(1))?;
    let repl = match a.get(3) {
        Some(Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
            Value::String(a.string(3)?)
        }
        Some(v @ (Value::Table(_) | Value::Function(_))) => v.clone(),
        _ => return Err(a.type_error(3, "string/function/table")),
    };
    let anchor = p.as_bytes().first() == Some(&b'^');
    Ok(MultiValue::from_vec(vec![
        Value::String(s),
        Value::String(p),
        repl,
        Value::Integer(max),
        Value::Boolean(anchor),
    ]))
}

/// `gsub` with a string replacement, whole: `(s, pattern, repl, max, anchor)` → the result
/// and the number of matches.
fn gsub_string(lua: &Lua, lib: &Lib, args: &MultiValue) -> Res<MultiValue> {
    let (s, p, _, _) = internal_args(args)?;
    let (Some(Value::String(repl)), Some(Value::Integer(max)), Some(Value::Boolean(anchor))) =
        (args.get(2), args.get(3), args.get(4))
    else {
        return Err(Fail::Script("internal: bad arguments to gsub".into()));
    };
    let (subject, pattern, repl) = (s.as_bytes(), p.as_bytes(), repl.as_bytes());
    let pattern = if *anchor { &pattern[1..] } else { &pattern[..] };
    let room = lib.room(lua);
    let mut m = Matcher::new(&subject, pattern, lib.charger(lua));
    let mut out = Vec::new();
    let (mut at, mut last, mut n, mut changed) = (0usize, None, 0i64, false);
    while n < *max {
        match m.match_at(at)? {
            Some(end) if Some(end) != last => {
                n += 1;
                expand(&mut out, &mut m, &subject, (at, end), &repl)?;
                changed = true;
                at = end;
                last = Some(end);
            }
            _ if at < subject.len() => {
                out.push(subject[at]);
                at += 1;
            }
            _ => break,
        }
        if out.len().saturating_add(subject.len() - at) > room {
            return Err(out_of_memory());
        }
        if *anchor {
            break;
        }
    }
    m.flush()?;
    let result = if changed {
        out.extend_from_slice(&subject[at..]);
        lib.charge(lua, out.len() as u64 / BYTES_PER_STEP)?;
        Value::String(lua.create_string(&out)?)
    } else {
        Value::String(s.clone())
    };
    Ok(MultiValue::from_vec(vec![result, Value::Integer(n)]))
}

/// Appends the replacement string for the match `start..end`: `%0` the match, `%1`-`%9` a
/// capture, `%%` a percent sign.
fn expand<F: FnMut(u64) -> mlua::Result<()>>(
    out: &mut Vec<u8>,
    m: &mut Matcher<'_, mlua::Error, F>,
    subject: &[u8],
    (start, end): (usize, usize),
    repl: &[u8],
) -> Res<()> {
    let before = out.len();
    let mut rest = repl;
    while let Some(at) = memchr::memchr(b'%', rest) {
        out.extend_from_slice(&rest[..at]);
        match rest.get(at + 1) {
            Some(b'%') => out.push(b'%'),
            Some(b'0') => out.extend_from_slice(&subject[start..end]),
            Some(&d) if d.is_ascii_digit() => match m.value(usize::from(d - b'1'), start, end)? {
                patterns::Value::Bytes(a, b) => out.extend_from_slice(&subject[a..b]),
                patterns::Value::Position(p) => out.extend_from_slice(p.to_string().as_bytes()),
            },
            _ => {
                return Err(Fail::Script(
                    "invalid use of '%' in replacement string".into(),
                ));
            }
        }
        rest = &rest[at + 2..];
    }
    out.extend_from_slice(rest);
    m.tick((out.len() - before) as u64 / BYTES_PER_STEP)?;
    Ok(())
}

/// One step of `gsub` with a function or table replacement: `(s, pattern, from, last_end,
/// anchor, first_only)` → the next match's start and end and its values (all of them for the
/// function, the first for the table), or nil. `sandbox.lua` copies the bytes between matches
/// and calls the script.
fn gsub_step(lua: &Lua, lib: &Lib, args: &MultiValue) -> Res<MultiValue> {
    let (s, p, from, last) = internal_args(args)?;
    let anchor = matches!(args.get(4), Some(Value::Boolean(true)));
    let first_only = matches!(args.get(5), Some(Value::Boolean(true)));
    let subject = s.as_bytes();
    let pattern = p.as_bytes();
    let pattern = if anchor { &pattern[1..] } else { &pattern[..] };
    let mut m = Matcher::new(&subject, pattern, lib.charger(lua));
    let mut at = from;
    while at <= subject.len() {
        if let Some(end) = m.match_at(at)?
            && Some(end) != last
        {
            m.flush()?;
            let mut out = vec![int(at), int(end)];
            if first_only {
                out.push(match m.value(0, at, end)? {
                    patterns::Value::Bytes(a, b) => {
                        Value::String(lua.create_string(&subject[a..b])?)
                    }
                    patterns::Value::Position(p) => int(p),
                });
            } else {
                push_values(lua, &mut out, &m, &subject, (at, end), true)?;
            }
            return Ok(MultiValue::from_vec(out));
        }
        if anchor {
            break;
        }
        at += 1;
    }
    m.flush()?;
    Ok(nil())
}

/// `string.rep(s, n [, sep])`, built in Rust: no loop of `n` empty copies, and only if the
/// result fits in the state's memory.
fn rep(lua: &Lua, lib: &Lib, args: &MultiValue) -> Res<MultiValue> {
    let a = Args::new(lua, args, "rep");
    let s = a.string(1)?;
    let n = a.integer(2)?;
    let sep = a.opt_string(3)?;
    let (s, sep) = (s.as_bytes(), sep.as_ref().map(|sep| sep.as_bytes()));
    let sep: &[u8] = sep.as_deref().unwrap_or(b"");
    let unit = s.len() as u64 + sep.len() as u64;
    if n <= 0 || unit == 0 {
        return Ok(MultiValue::from_vec(vec![Value::String(
            lua.create_string("")?,
        )]));
    }
    let n = n.unsigned_abs();
    // Lua's own bound (a string from `rep` fits an `int`), in its words; then the state's memory.
    if unit > u64::from(i32::MAX.unsigned_abs()) / n {
        return Err(Fail::Script("resulting string too large".into()));
    }
    let total = n * s.len() as u64 + (n - 1) * sep.len() as u64;
    if total > lib.room(lua) as u64 {
        return Err(out_of_memory());
    }
    lib.charge(lua, total / BYTES_PER_STEP)?;
    let mut unit_bytes = Vec::with_capacity(s.len() + sep.len());
    unit_bytes.extend_from_slice(&s);
    unit_bytes.extend_from_slice(sep);
    let times = usize::try_from(n - 1).map_err(|_| out_of_memory())?;
    let mut out = unit_bytes.repeat(times);
    out.extend_from_slice(&s);
    Ok(MultiValue::from_vec(vec![Value::String(
        lua.create_string(&out)?,
    )]))
}
