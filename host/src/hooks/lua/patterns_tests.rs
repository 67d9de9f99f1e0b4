//! The sandbox's own string and table functions against Lua's: the same calls, on a corpus of
//! hand-picked and generated patterns and subjects, run in a sandboxed state and in a plain Lua
//! state (whose functions are Lua's C ones), must give the same results and the same errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use mlua::{Function, Lua};

use super::budget::CallBudget;
use super::sandbox::new_state;
use super::{LuaGrants, LuaLimits};

/// Runs the calls on one subject and pattern and describes every result (or error) as text.
const HARNESS: &str = r##"
local function ser(...)
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    t[i] = type(v) .. ":" .. tostring(v)
  end
  return select("#", ...) .. "|" .. table.concat(t, ",")
end
return function(S, P)
  local out = {}
  local function try(f, ...) out[#out + 1] = ser(pcall(f, ...)) end
  try(string.find, S, P)
  try(string.find, S, P, 1, true)
  try(string.find, S, P, 2, 1)
  try(string.match, S, P)
  for _, i in ipairs({-100, -3, -1, 0, 1, 2, 5, #S, #S + 1, #S + 2}) do
    try(string.find, S, P, i)
    try(string.match, S, P, i)
  end
  -- Not in a tail call: Lua's C functions keep their caller's frame there, a wrapper
  -- written in Lua does not, so an error would lack its line (see LUA.md).
  try(function() local a, b = S:find(P) return a, b end)
  try(function() local a, b = S:match(P, 2.0) return a, b end)
  local function each(init)
    local r = {}
    for a, b, c in string.gmatch(S, P, init) do
      r[#r + 1] = ser(a, b, c)
      if #r > 50 then break end
    end
    return table.concat(r, ";")
  end
  try(each)
  try(each, 3)
  try(each, -2)
  try(string.gsub, S, P, "<%0>")
  try(string.gsub, S, P, "[%1|%%]", 2)
  try(string.gsub, S, P, "%2")
  try(string.gsub, S, P, 7.5)
  try(string.gsub, S, P, { a = "A", [""] = false, b = 5, ["1"] = true })
  try(string.gsub, S, P, function(...) return select("#", ...) .. ":" .. tostring((...)) end)
  try(string.gsub, S, P, function(a) if a == "" then return nil end return "(" .. tostring(a) .. ")" end, 3)
  try(string.gsub, S, P, function() return {} end)
  return table.concat(out, "\n")
end
"##;

/// A sandboxed state (with a budget no test reaches) and a plain one.
fn states() -> (Lua, Lua) {
    let budget = Arc::new(CallBudget::new(u64::MAX, Duration::from_secs(3600)));
    budget.start();
    let sandboxed = new_state(&LuaLimits::default(), &LuaGrants::default(), &budget).unwrap();
    (sandboxed, Lua::new())
}

fn harness(lua: &Lua) -> Function {
    lua.load(HARNESS).set_name("=harness").eval().unwrap()
}

fn run(f: &Function, lua: &Lua, subject: &[u8], pattern: &[u8]) -> Vec<u8> {
    let s = lua.create_string(subject).unwrap();
    let p = lua.create_string(pattern).unwrap();
    let out: mlua::LuaString = f.call((s, p)).unwrap();
    out.as_bytes().to_vec()
}

fn compare(cases: &[(Vec<u8>, Vec<u8>)]) {
    let (ours, lua) = states();
    let (f_ours, f_lua) = (harness(&ours), harness(&lua));
    for (subject, pattern) in cases {
        let got = run(&f_ours, &ours, subject, pattern);
        let want = run(&f_lua, &lua, subject, pattern);
        if got != want {
            let (got, want) = (
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
            );
            let diff = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .find(|(_, (g, w))| g != w)
                .map(|(i, (g, w))| format!("call {i}: ours {g:?}, Lua's {w:?}"));
            panic!(
                "subject {:?}, pattern {:?}: {}",
                String::from_utf8_lossy(subject),
                String::from_utf8_lossy(pattern),
                diff.unwrap_or_else(|| format!("ours {got:?}, Lua's {want:?}"))
            );
        }
    }
}

const SUBJECTS: &[&str] = &[
    "",
    "a",
    "hello world",
    "  key = value  ",
    "THE (quick) brown fox, 42 times!",
    "f(a(b)c)d(e",
    "aaa",
    "abcabcabc",
    "x=1, y=22, z=333",
    "[[nested [brackets] here]]",
    "tab\there\nnew line\0nul",
    "caf\u{e9} na\u{ef}ve",
    "%d %s %%",
    "$100 ^caret$",
    "a.b-c+d*e?f",
];

const PATTERNS: &[&str] = &[
    "",
    "a",
    "o",
    "l+",
    "l*",
    "l-",
    "l?",
    ".",
    ".-",
    ".*",
    "^h",
    "^a*",
    "d$",
    "$",
    "^$",
    "^",
    "a$b",
    "%a+",
    "%A+",
    "%d+",
    "%D",
    "%l",
    "%u+",
    "%s+",
    "%S+",
    "%w+",
    "%W",
    "%x+",
    "%p",
    "%P+",
    "%c",
    "%g+",
    "%z",
    "%.",
    "%%",
    "[aeiou]",
    "[^aeiou]+",
    "[a-f]+",
    "[%a_][%w_]*",
    "[]]",
    "[^]]+",
    "[a-]",
    "[-a]+",
    "[%]]",
    "[.]",
    "[^%s]+",
    "(%a+)",
    "(h)(e)(l)",
    "()ll()",
    "(a*(.)%w(%s*))",
    "%b()",
    "%b[]",
    "%bxy",
    "%f[%a]%a+",
    "%f[%A]",
    "%f[%w]%w+%f[%W]",
    "(%a)%1",
    "(a)(b)(c)%3%2%1",
    "((a)(b))%2",
    "(%d+)=(%d+)",
    "(%w+)%s*=%s*(%w+)",
    "^(%s*)(.-)(%s*)$",
    "a.-b",
    "a.*b",
    "a+?",
    "x*y*z*",
    "%$%d+",
    "%^",
    "\0",
    "[\0]",
    "%z?",
    "[%z]",
    // Malformed: the same error must come back.
    "%",
    "[a",
    "[^",
    "(",
    ")",
    "a)",
    "%b",
    "%ba",
    "%f",
    "%fa",
    "%1",
    "(%1)",
    "%0",
    "(()",
    "[%",
    "[a-",
    "(a)%2",
    "%g%",
    "((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))",
];

#[test]
fn hand_picked_patterns_match_as_in_lua() {
    let mut cases = Vec::new();
    for s in SUBJECTS {
        for p in PATTERNS {
            cases.push((s.as_bytes().to_vec(), p.as_bytes().to_vec()));
        }
    }
    // Deep nesting is "pattern too complex" in both.
    cases.push((b"aaaa".to_vec(), "a?".repeat(300).into_bytes()));
    cases.push((b"aaaa".to_vec(), "(a?)".repeat(30).into_bytes()));
    compare(&cases);
}

/// A small deterministic generator (xorshift), so that a failure names a case that reruns.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[test]
fn generated_patterns_match_as_in_lua() {
    const ITEMS: &[&str] = &[
        "a", "b", "c", ".", "%a", "%d", "%s", "%w", "%p", "%A", "[ab]", "[^a]", "[a-c]", "[%d_]",
        "%(", "%)", " ", "1",
    ];
    const EXTRAS: &[&str] = &[
        "(", ")", "()", "%b()", "%f[%w]", "%f[%W]", "%1", "%2", "$", "^",
    ];
    const SUFFIXES: &[&str] = &["", "", "", "*", "+", "-", "?"];
    const ALPHABET: &[u8] = b"abc(d) 1_\0\xe9";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = Vec::new();
    for _ in 0..3000 {
        let mut pattern = String::new();
        if rng.below(4) == 0 {
            pattern.push('^');
        }
        let mut repeats = 0;
        for _ in 0..rng.below(7) {
            if rng.below(5) == 0 {
                pattern.push_str(rng.pick(EXTRAS));
                continue;
            }
            pattern.push_str(rng.pick(ITEMS));
            // Few repetitions, so that Lua's own matcher (the reference) ends quickly.
            let suffix = rng.pick(SUFFIXES);
            if !suffix.is_empty() && repeats < 3 {
                repeats += 1;
                pattern.push_str(suffix);
            }
        }
        let subject: Vec<u8> = (0..rng.below(20))
            .map(|_| ALPHABET[rng.below(ALPHABET.len())])
            .collect();
        cases.push((subject, pattern.into_bytes()));
    }
    compare(&cases);
}

#[test]
fn rep_and_the_table_functions_behave_as_in_lua() {
    let probes = [
        "return string.rep('ab', 3)",
        "return string.rep('ab', 3, ', ')",
        "return string.rep('x', 0), string.rep('x', -5), string.rep('', 5)",
        "return string.rep(5, 2.0), ('x'):rep('3')",
        "return string.rep('x', 2.5)",
        "return string.rep('x')",
        "return string.rep({}, 1)",
        "return string.rep('x', 1e300)",
        "return ('x'):rep(math.maxinteger)",
        "local t = {1, 2, 3} table.insert(t, 4) table.insert(t, 1, 0) return table.concat(t, ',')",
        "local t = {1, 2, 3} table.insert(t, 5, 0)",
        "local t = {1, 2, 3} table.insert(t, 1, 2, 3)",
        "table.insert(nil, 1)",
        "table.insert()",
        "local t = {1, 2, 3} return table.remove(t), table.remove(t, 1), table.concat(t)",
        "local t = {} return table.remove(t), table.remove(t, 0), #t",
        "return table.concat({1, 2.5, 'x'}, '-'), table.concat({}, 'x'), table.concat({1, 2, 3}, ',', 2, 3)",
        "return table.concat({1, {}, 3})",
        "return table.unpack({1, 2, 3}), table.unpack({1, 2, 3}, 2), table.unpack({1, 2, 3}, 2, 5)",
        "return table.move({1, 2, 3}, 1, 3, 2)[3], table.concat(table.move({1, 2, 3}, 1, 3, 3, {}), ',', 3, 5)",
        "return table.concat(table.move({1, 2, 3, 4, 5}, 2, 5, 1), ',')",
        "return table.move({}, 1, math.maxinteger, 2)",
        "return table.move({}, -1, math.maxinteger, 2)",
        "local t = {5, 2, 8, 1, 9, 3} table.sort(t) return table.concat(t, ',')",
        "local t = {'pear', 'apple', 'fig'} table.sort(t) return table.concat(t, ',')",
        "local t = {5, 2, 8, 1, 9, 3, 7, 4, 6, 0, 11, 15, 13} table.sort(t, function(a, b) return a > b end) return table.concat(t, ',')",
        "local t = {3, 'x', 1} table.sort(t)",
        "local t = {{}, {}, {}} table.sort(t)",
        "table.sort({1, 2}, 5)",
        // The same on tables with metatables, which run in Lua in the sandbox.
        "local log = {} local t = setmetatable({}, {__newindex = function(t, k, v) log[#log + 1] = k rawset(t, k, v) end}) table.insert(t, 'a') table.insert(t, 1, 'b') table.insert(t, 2, 'c') return table.concat(t, ','), table.concat(log, ',')",
        "local t = setmetatable({1, 2, 3, 4}, {__len = function() return 3 end}) return table.remove(t), table.remove(t, 1), rawget(t, 1), rawget(t, 4)",
        "local t = setmetatable({}, {__index = function(_, i) return i * 2 end, __len = function() return 4 end}) return table.concat(t, '+'), table.unpack(t)",
        "local t = setmetatable({}, {__index = function(_, i) if i < 3 then return i end end, __len = function() return 4 end}) return table.concat(t, '+')",
        "local t = setmetatable({}, {__len = function() return 2.5 end}) table.insert(t, 1)",
        "local t = setmetatable({}, {__len = function() return 2.0 end}) table.insert(t, 'x') return rawget(t, 3)",
        "local t = setmetatable({9, 4, 7, 1, 8, 2, 6, 3, 5, 0, 12, 11, 10}, {__index = function() return 0 end}) table.sort(t) return table.concat(t, ',')",
        "local t = setmetatable({'b', 'c', 'a'}, {}) table.sort(t, function(a, b) return a < b end) return table.concat(t)",
        "local t = setmetatable({1, nil, 3}, {}) table.sort(t)",
        "return string.format('%5.2f|%q|%s', 3.14159, 'a\\nb', {1} ~= nil)",
        "return string.format('%d', 'x')",
        "return string.pack('i4', 7):byte(1, -1)",
    ];
    let (ours, lua) = states();
    for probe in probes {
        // The values returned, not in a tail call (see the harness).
        let split = probe
            .strip_prefix("return ")
            .map(|values| ("", values))
            .or_else(|| probe.rsplit_once(" return "))
            .filter(|(_, values)| !values.contains(" end"));
        let probe = match split {
            Some((head, values)) => {
                format!("{head} local r = table.pack({values}) return table.unpack(r, 1, r.n)")
            }
            None => probe.to_owned(),
        };
        let wrapped = format!(
            "local function ser(...) local t = {{}} for i = 1, select('#', ...) do local v = select(i, ...) t[i] = type(v) .. ':' .. tostring(v) end return table.concat(t, ',') end\n\
             return ser(pcall(function() {probe} end))"
        );
        let got: String = ours.load(&wrapped).set_name("=probe").eval().unwrap();
        let want: String = lua.load(&wrapped).set_name("=probe").eval().unwrap();
        assert_eq!(got, want, "{probe}");
    }
}

#[test]
fn the_looping_functions_are_the_sandboxs_own() {
    let (ours, _) = states();
    let globals = ours.globals();
    for (lib, names) in [
        (
            "string",
            &[
                "find", "match", "gmatch", "gsub", "rep", "format", "pack", "unpack",
            ][..],
        ),
        (
            "table",
            &["insert", "remove", "concat", "unpack", "move", "sort"][..],
        ),
    ] {
        let lib: mlua::Table = globals.get(lib).unwrap();
        for name in names {
            let f: Function = lib.get(*name).unwrap();
            let info = f.info();
            assert_eq!(
                (info.what, info.short_src.as_deref()),
                ("Lua", Some("sandbox")),
                "{name}"
            );
        }
    }
    // Methods on strings go through the same table.
    let same: bool = ours
        .load("return ('').find == string.find and ('').gsub == string.gsub")
        .eval()
        .unwrap();
    assert!(same);
}

#[test]
fn bad_arguments_are_named_as_the_script_called() {
    let (ours, lua) = states();
    for probe in [
        "local x = ('%d'):format('x') return x",
        "local x = string.format('%d', 'x') return x",
        "local f = string.format local x = f('%d', {}) return x",
        "local x = ('x'):rep({}) return x",
        "local x = ('x'):find({}) return x",
        "local x = string.gsub('x', 'x') return x",
        "local x = string.pack('i4', 'z') return x",
        "local x = string.format('%q', function() end) return x",
        "local x = string.format('%d', setmetatable({}, {__name = 'Thing'})) return x",
    ] {
        let wrapped = format!("return select(2, pcall(function() {probe} end))");
        let got: String = ours.load(&wrapped).set_name("=probe").eval().unwrap();
        let want: String = lua.load(&wrapped).set_name("=probe").eval().unwrap();
        assert_eq!(got, want, "{probe}");
    }
}
