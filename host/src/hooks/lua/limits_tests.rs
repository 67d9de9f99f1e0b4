//! Hostile scripts against the two limits a script cannot see past: what it makes the host
//! hold (issue 12, item 1) and how long one call runs (item 2). Each hostile call runs on a
//! thread with a deadline, so that a regression fails the test instead of hanging it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

/// Runs `f` on its own thread; panics if it has not returned within `limit` (the thread is
/// left running: the test has failed either way).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what}: still running after {limit:?}"))
}

/// The safety net of the CPU tests: far above what any of them takes here, far below forever.
const NET: Duration = Duration::from_secs(60);

fn file() -> FileInfo {
    FileInfo {
        path: "a.txt".into(),
        size: 1,
        side: Side::Send,
    }
}

/// Runs `body` as a pre-send handler of a script named `hostile.lua` (the handler's first line
/// is line 2).
fn pre_send(body: &str, config: LuaConfig) -> Result<PreSend, HookError> {
    let src = format!("p2p.on('pre_send', function(file)\n{body}\nend)");
    let script = LuaScript::from_source("hostile.lua", src, config)?;
    script.instantiate()?.pre_send(&file())
}

fn pre_send_within(body: &'static str) -> Result<PreSend, HookError> {
    pre_send_with(body, LuaConfig::default())
}

fn pre_send_with(body: &'static str, config: LuaConfig) -> Result<PreSend, HookError> {
    within(NET, body, move || pre_send(body, config))
}

/// Default limits but a deadline so far away that only the instructions can stop a call
/// (a debug build on a busy machine is slow).
fn no_deadline() -> LuaConfig {
    let mut config = LuaConfig::default();
    config.limits.deadline = Duration::from_secs(600);
    config
}

fn reason(result: Result<PreSend, HookError>) -> String {
    match result {
        Err(e) => e.reason,
        Ok(other) => panic!("the call should have failed, it returned {other:?}"),
    }
}

fn assert_stopped(body: &'static str) {
    let reason = reason(pre_send_within(body));
    assert!(
        reason.contains("instruction limit exceeded")
            || reason.contains("deadline of 1000 ms exceeded"),
        "{body}: {reason}"
    );
    assert!(reason.starts_with("hostile.lua:"), "{body}: {reason}");
}

// ---- item 1: what a script makes the host hold ----

/// The issue's reproductions, run in a child process (this test binary, this test alone), which
/// reports its peak resident memory: on the unfixed host each took the process past 600 MB.
#[test]
fn host_side_copies_stay_within_the_scripts_memory() {
    const CHILD: &str = "P2P_LUA_HOST_COPIES_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return host_copies_child();
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "hooks::lua::limits_tests::host_side_copies_stay_within_the_scripts_memory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_kib: u64 = stdout
        .lines()
        .find_map(|l| l.split_once("peak kB: ").map(|(_, v)| v))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak in the child's output:\n{stdout}\n{stderr}"));
    // The test binary itself, a 16 MiB Lua state and the host's bounded copies: well under
    // this. The unfixed host held 100 copies of a 6 MiB string here.
    assert!(
        peak_kib < 200 * 1024,
        "peak resident memory {peak_kib} kB:\n{stdout}"
    );
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn host_copies_child() {
    // Everything runs first and the peak is printed before any check, so that the parent sees
    // the peak of a host that holds the copies (and fails on it) rather than a failed check.
    let results = [
        // The issue's first reproduction: one 6 MiB string, 100 `p2p.replace(big)` kept.
        "local big = string.rep('x', 6 * 1024 * 1024)\nlocal keep = {}\nfor i = 1, 100 do keep[i] = p2p.replace(big) end",
        // The same within the size a chunk may have: 300 references to one string in the
        // state, not 300 copies on the host; and 9,000 reasons and routes.
        "local big = string.rep('x', 1024 * 1024)\nlocal keep = {}\nfor i = 1, 300 do keep[i] = p2p.replace(big) end",
        "local big = string.rep('x', 1024 * 1024)\nlocal keep = {}\nfor i = 1, 3000 do keep[i] = p2p.reject(big) ; keep[-i] = p2p.abort(big) ; keep[i + 5000] = p2p.route{'a'} end",
        // The second: one `p2p.log` call with 50 copies of a 6 MiB string.
        "local big = string.rep('y', 6 * 1024 * 1024)\nlocal t = {}\nfor i = 1, 50 do t[i] = big end\np2p.log(table.unpack(t))",
        // A long error message.
        "error(string.rep('z', 2 * 1024 * 1024))",
    ]
    .map(|body| pre_send(body, no_deadline()));
    println!("peak kB: {}", peak_rss_kib());
    let [replace_big, replace_capped, reasons, log, long_error] = results;
    // A chunk cannot be 6 MiB, so the constructor refuses it, naming the line.
    assert_eq!(
        reason(replace_big),
        "hostile.lua:4: p2p.replace: 6291456 bytes is more than a chunk can be (1114112 bytes)"
    );
    assert!(replace_capped.is_ok(), "{replace_capped:?}");
    assert!(reasons.is_ok(), "{reasons:?}");
    assert!(log.is_ok(), "{log:?}");
    let long_error = reason(long_error);
    assert!(long_error.len() < 5000, "{} bytes", long_error.len());
    assert!(
        long_error.starts_with("hostile.lua:2: zzz")
            && long_error.ends_with("(2097167 bytes in all)"),
        "{long_error}"
    );
}

#[test]
fn reasons_and_log_lines_are_cut_with_a_mark() {
    let PreSend::Reject(msg) = pre_send(
        "return p2p.reject(string.rep('r', 100000))",
        LuaConfig::default(),
    )
    .unwrap() else {
        panic!("not a rejection");
    };
    assert_eq!(msg, format!("{}… (100000 bytes in all)", "r".repeat(4096)));
    // A default message still reads as before.
    assert_eq!(
        pre_send("return p2p.reject()", LuaConfig::default()).unwrap(),
        PreSend::Reject("rejected".into())
    );
    let src = "p2p.on('chunk', function() return p2p.abort(string.rep('é', 5000)) end)";
    let err = LuaScript::from_source("a.lua", src, LuaConfig::default())
        .unwrap()
        .instantiate()
        .unwrap()
        .chunk(&file(), 0, b"x")
        .unwrap();
    let ChunkAction::Abort(msg) = err else {
        panic!("not an abort: {err:?}");
    };
    // Cut on a character boundary: 2048 whole `é`, no half of one.
    assert!(msg.starts_with(&"é".repeat(2048)), "{msg}");
    assert!(msg.ends_with("… (10000 bytes in all)"), "{msg}");

    let logs = super::tests::capture_logs(|| {
        pre_send(
            "local big = string.rep('y', 100000)\np2p.log('start', big, big)",
            LuaConfig::default(),
        )
        .unwrap();
    });
    let line = logs.lines().find(|l| l.contains("start y")).unwrap();
    assert!(line.contains("yy… script=hostile"), "{line}");
    assert!(line.len() < 2200, "{} bytes", line.len());
}

#[test]
fn route_and_replace_are_bounded_at_the_call() {
    let too_many = reason(pre_send(
        "local t = {} for i = 1, 300 do t[i] = 'p' .. i end\nlocal a = p2p.route(t)\nreturn a",
        LuaConfig::default(),
    ));
    assert_eq!(too_many, "hostile.lua:3: p2p.route: more than 256 peers");
    let long = reason(pre_send(
        "return p2p.route{'ok', string.rep('n', 65)}",
        LuaConfig::default(),
    ));
    assert!(long.contains("peer 2 is 65 bytes long"), "{long}");
    // The peers are copied when the action is made: changing the table afterwards does nothing.
    let routed = pre_send(
        "local t = {'laptop', 'nas'}\nlocal a = p2p.route(t)\nt[1] = 'evil'\nreturn a",
        LuaConfig::default(),
    )
    .unwrap();
    assert_eq!(routed, PreSend::Route(vec!["laptop".into(), "nas".into()]));
    // A chunk's worth is fine.
    let src = "p2p.on('chunk', function() return p2p.replace(string.rep('b', 1024 * 1024)) end)";
    let action = LuaScript::from_source("r.lua", src, LuaConfig::default())
        .unwrap()
        .instantiate()
        .unwrap()
        .chunk(&file(), 0, b"x")
        .unwrap();
    assert_eq!(action, ChunkAction::Replace(vec![b'b'; 1024 * 1024]));
}

// ---- item 2: how long one call runs ----

#[test]
fn a_pathological_pattern_is_stopped_by_the_instruction_limit() {
    // The issue's case: hours of backtracking inside one C call with Lua's own matcher.
    let started = Instant::now();
    let reason = reason(pre_send_with(
        "local found = string.find(string.rep('a', 3000), string.rep('a*', 12) .. 'b')",
        no_deadline(),
    ));
    assert_eq!(
        reason,
        "hostile.lua:2: instruction limit exceeded (10000000 instructions per call)"
    );
    assert!(started.elapsed() < NET);
    for body in [
        "local _ = ('a'):rep(3000):match(('a*'):rep(12) .. 'b')",
        "for x in ('a'):rep(3000):gmatch(('a*'):rep(12) .. 'b') do end",
        "local _ = ('a'):rep(3000):gsub(('a*'):rep(12) .. 'b', 'x')",
        "local _ = ('a'):rep(3000):gsub(('a*'):rep(12) .. 'b', function() end)",
        "local _ = ('a'):rep(3000):gsub(('(a*)'):rep(12) .. 'b', {})",
        // A plain search is linear now (Lua's own is quadratic in the worst case).
        "for i = 1, 1e9 do string.find(('a'):rep(4e6), ('a'):rep(5e5) .. 'b', 1, true) end",
    ] {
        assert_stopped(body);
    }
}

#[test]
fn ordinary_uses_of_the_replaced_functions_fit_the_budget() {
    // What a chunk handler might do with a 1 MiB chunk: find each line, split, substitute.
    let body = "local s = string.rep(string.rep('x', 99) .. '\\n', 10486)\n\
        local n, i = 0, 1\n\
        while true do local j = s:find('\\n', i, true) if not j then break end n = n + 1 i = j + 1 end\n\
        assert(n == 10486)\n\
        local lines = 0 for line in s:gmatch('[^\\n]+') do lines = lines + 1 end\n\
        assert(lines == 10486)\n\
        local t, k = s:gsub('x+', '%0!')\n\
        assert(k == 10486 and #t == #s + k)\n\
        local words = {} for i = 1, 20000 do words[i] = tostring(i % 977) end\n\
        table.sort(words) table.insert(words, 1, 'z') table.remove(words, 2)\n\
        assert(#table.concat(words, ',') > 0)";
    assert_eq!(pre_send_with(body, no_deadline()), Ok(PreSend::Continue));
}

#[test]
fn library_loops_without_instructions_are_stopped() {
    // Each of these loops inside one C call of Lua's own library, where no instruction runs.
    assert_eq!(
        pre_send_within("assert(string.rep('', 1e15) == '')"),
        Ok(PreSend::Continue)
    );
    assert_eq!(
        pre_send_within(
            "assert(string.rep('', 1e15, '') == '' and ('ab'):rep(3, ',') == 'ab,ab,ab')"
        ),
        Ok(PreSend::Continue)
    );
    for body in [
        "table.move({}, 1, math.maxinteger - 1, 1)",
        "table.move({}, 1, 1e15, 2, {})",
        "local t = setmetatable({}, {__index = table.concat})\nlocal _ = table.concat(t, '', 1, 1e15)",
        "local t = setmetatable({}, {__len = function() return 1e15 end})\ntable.insert(t, 1, 'x')",
        "local t = setmetatable({}, {__len = function() return 1e15 end})\ntable.remove(t, 1)",
        // Sorting many references to one long string compared byte by byte.
        "local s = string.rep('a', 1024 * 1024)\nlocal t = {}\nfor i = 1, 200000 do t[i] = s end\ntable.sort(t)",
    ] {
        assert_stopped(body);
    }
}

#[test]
fn slow_instructions_are_stopped_by_the_deadline() {
    // Each is a few instructions per iteration but each instruction handles megabytes: far
    // fewer than 10 million instructions take hours. The deadline stops them.
    for body in [
        // `<` on strings calls strcoll once per NUL byte.
        "local s = string.rep('\\0', 7 * 1024 * 1024)\nwhile true do local _ = s < s end",
        "local s = string.rep('a', 5 * 1024 * 1024)\nwhile true do local _ = s .. 'x' end",
        "local s = string.rep('\\1', 2 * 1024 * 1024)\nwhile true do local _ = string.format('%q', s) end",
    ] {
        let started = Instant::now();
        let reason = reason(pre_send_within(body));
        assert!(
            reason.contains("deadline of 1000 ms exceeded"),
            "{body}: {reason}"
        );
        assert!(started.elapsed() < NET);
    }
}

/// What the worst calls take at the default limits, for the record:
/// `cargo test -p p2phost --lib --release worst_calls -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn worst_calls() {
    for body in [
        "while true do end",
        "return string.find(string.rep('a', 3000), string.rep('a*', 12) .. 'b')",
        "local s = string.rep('\\0', 7 * 1024 * 1024)\nwhile true do local _ = s < s end",
        "local s = string.rep('\\0', 7 * 1024 * 1024)\nwhile true do local _ = s < s or s < s or s < s or s < s or s < s end",
        "local s = string.rep('a', 5 * 1024 * 1024)\nwhile true do local _ = s .. 'x' end",
        "local s = string.rep('\\1', 2 * 1024 * 1024)\nwhile true do local _ = string.format('%q', s) end",
        "local s = string.rep('\\0', 3 * 1024 * 1024)\nwhile true do local _ = s:upper() end",
        "local s = string.rep('a', 1024 * 1024)\nlocal t = {}\nfor i = 1, 200000 do t[i] = s end\ntable.sort(t)",
    ] {
        let mut worst = Duration::ZERO;
        let mut last = String::new();
        for _ in 0..3 {
            let started = Instant::now();
            last = reason(pre_send_within(body));
            worst = worst.max(started.elapsed());
        }
        println!(
            "{:>8.0} ms  {}  -> {last}",
            worst.as_secs_f64() * 1000.0,
            body.replace('\n', " ")
        );
    }
}
