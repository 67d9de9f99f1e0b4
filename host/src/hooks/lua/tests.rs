//! Tests of the Lua engine: the example scripts do their jobs, and hostile scripts are stopped
//! with errors that name them. Each sandbox probe is also run in a plain Lua state
//! (`probes_succeed_without_the_sandbox`), so these tests would fail if the sandbox were off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::move_file::{MoveError, move_into};
use super::*;

fn script_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

fn file(path: &str, size: u64, side: Side) -> FileInfo {
    FileInfo {
        path: path.to_owned(),
        size,
        side,
    }
}

fn with_settings(pairs: &[(&str, &str)]) -> LuaConfig {
    let mut config = LuaConfig::default();
    for (k, v) in pairs {
        config.settings.insert((*k).to_owned(), (*v).to_owned());
    }
    config
}

fn granted(dir: &Path) -> LuaConfig {
    let mut config = LuaConfig::default();
    config.grants.move_dirs = vec![dir.to_path_buf()];
    config
}

fn small_budget(instructions: u64) -> LuaConfig {
    let mut config = LuaConfig::default();
    config.limits.instructions_per_call = instructions;
    config
}

/// Loads a script from memory and expects loading to fail.
fn load_err(source: &str, config: LuaConfig) -> HookError {
    LuaScript::from_source("probe.lua", source, config).expect_err("the script should fail to load")
}

fn done(path: &Path) -> Outcome {
    Outcome::Done {
        local_path: path.to_string_lossy().into_owned(),
    }
}

/// Captures what the code under test logs through tracing, on this thread.
pub(super) fn capture_logs(f: impl FnOnce()) -> String {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink(Arc::default());
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
}

// ---- the example scripts ----

#[test]
fn size_limit_rejects_above_the_setting_and_passes_below() {
    let script = LuaScript::load(
        &script_path("size-limit.lua"),
        with_settings(&[("max_bytes", "1000")]),
    )
    .unwrap();
    let d = script.describe();
    assert_eq!(
        (d.name.as_str(), d.version.as_str()),
        ("size-limit", "script")
    );
    assert!(d.hooks.pre_send && !d.hooks.chunk && !d.hooks.complete);
    assert!(!d.needs_bytes && d.encoding.is_none());

    let mut hook = script.instantiate().unwrap();
    let small = file("a.txt", 1000, Side::Send);
    assert_eq!(hook.pre_send(&small).unwrap(), PreSend::Continue);
    let PreSend::Reject(msg) = hook
        .pre_send(&file("big.iso", 1001, Side::Receive))
        .unwrap()
    else {
        panic!("a file over the limit should be rejected");
    };
    assert!(
        msg.contains("big.iso") && msg.contains("1001 bytes"),
        "{msg}"
    );
    assert!(msg.contains("max_bytes = 1000"), "{msg}");
}

#[test]
fn size_limit_defaults_to_100_mib() {
    let script = LuaScript::load(&script_path("size-limit.lua"), LuaConfig::default()).unwrap();
    let mut hook = script.instantiate().unwrap();
    let limit = 100 << 20;
    assert_eq!(
        hook.pre_send(&file("a", limit, Side::Send)).unwrap(),
        PreSend::Continue
    );
    assert!(matches!(
        hook.pre_send(&file("a", limit + 1, Side::Send)).unwrap(),
        PreSend::Reject(m) if m.contains("100.0 MiB limit")
    ));
}

#[test]
fn size_limit_with_a_bad_setting_fails_to_load_naming_the_line() {
    let err = LuaScript::load(
        &script_path("size-limit.lua"),
        with_settings(&[("max_bytes", "lots")]),
    )
    .unwrap_err();
    assert_eq!(err.owner, "size-limit");
    assert!(err.reason.starts_with("size-limit.lua:"), "{err}");
    assert!(
        err.reason.contains("max_bytes must be a whole number"),
        "{err}"
    );
}

#[test]
fn route_by_type_moves_received_files_into_subfolders_of_the_granted_dir() {
    let dir = tempfile::tempdir().unwrap();
    let received = dir.path().join("Report.PDF");
    std::fs::write(&received, b"pdf").unwrap();
    let script = LuaScript::load(&script_path("route-by-type.lua"), granted(dir.path())).unwrap();
    assert!(script.describe().hooks.complete);

    let mut hook = script.instantiate().unwrap();
    // The sending side leaves files alone.
    hook.complete(&file("Report.PDF", 3, Side::Send), &done(&received))
        .unwrap();
    assert!(received.exists());

    hook.complete(&file("Report.PDF", 3, Side::Receive), &done(&received))
        .unwrap();
    let moved = dir.path().join("pdf/Report.PDF");
    assert_eq!(std::fs::read(&moved).unwrap(), b"pdf");
    assert!(!received.exists());

    // Never overwrite: a second file of the same name stays where it is.
    std::fs::write(&received, b"second").unwrap();
    let err = hook
        .complete(&file("Report.PDF", 6, Side::Receive), &done(&received))
        .unwrap_err();
    assert!(err.reason.contains("already exists"), "{err}");
    assert!(err.reason.starts_with("route-by-type.lua:"), "{err}");
    assert_eq!(std::fs::read(&moved).unwrap(), b"pdf");
    assert_eq!(std::fs::read(&received).unwrap(), b"second");

    // No extension: the fallback folder.
    let plain = dir.path().join("README");
    std::fs::write(&plain, b"r").unwrap();
    hook.complete(&file("README", 1, Side::Receive), &done(&plain))
        .unwrap();
    assert!(dir.path().join("other/README").exists());
}

#[test]
fn route_by_type_refuses_files_outside_the_granted_dir_and_without_a_grant() {
    let granted_dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("x.txt");
    std::fs::write(&outside, b"x").unwrap();

    let script = LuaScript::load(
        &script_path("route-by-type.lua"),
        granted(granted_dir.path()),
    )
    .unwrap();
    let err = script
        .instantiate()
        .unwrap()
        .complete(&file("x.txt", 1, Side::Receive), &done(&outside))
        .unwrap_err();
    assert_eq!(err.owner, "route-by-type");
    assert!(
        err.reason.contains("not inside a granted directory"),
        "{err}"
    );
    assert!(outside.exists() && !elsewhere.path().join("txt").exists());

    let ungranted =
        LuaScript::load(&script_path("route-by-type.lua"), LuaConfig::default()).unwrap();
    let err = ungranted
        .instantiate()
        .unwrap()
        .complete(&file("x.txt", 1, Side::Receive), &done(&outside))
        .unwrap_err();
    assert!(err.reason.contains("no directory is granted"), "{err}");
    assert!(outside.exists());
}

#[test]
fn notify_logs_a_summary_line_under_its_name() {
    let script = LuaScript::load(&script_path("notify.lua"), LuaConfig::default()).unwrap();
    let mut hook = script.instantiate().unwrap();
    let logs = capture_logs(|| {
        hook.complete(
            &file("docs/a.txt", 42, Side::Receive),
            &Outcome::Done {
                local_path: "/downloads/docs/a.txt".to_owned(),
            },
        )
        .unwrap();
        hook.complete(
            &file("b.bin", 7, Side::Send),
            &Outcome::Failed("peer went away".to_owned()),
        )
        .unwrap();
    });
    assert!(logs.contains("script=notify"), "{logs}");
    assert!(
        logs.contains("received docs/a.txt (42 bytes) at /downloads/docs/a.txt"),
        "{logs}"
    );
    assert!(
        logs.contains("not sent: b.bin (7 bytes): peer went away"),
        "{logs}"
    );
}

// ---- p2p.move's checks ----

#[test]
fn move_refuses_dotdot_absolute_and_symlinks() {
    let root = tempfile::tempdir().unwrap();
    let grants = vec![root.path().to_path_buf()];
    let f = root.path().join("f.txt");
    std::fs::write(&f, b"f").unwrap();

    for bad in ["..", "../x", "a/../../b", "/tmp", "", ".", "./a"] {
        assert!(
            matches!(move_into(&grants, &f, bad), Err(MoveError::BadDir(_))),
            "{bad:?} should be refused"
        );
    }

    let outside = tempfile::tempdir().unwrap();
    // A subfolder that is a symlink to elsewhere.
    std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
    assert!(matches!(
        move_into(&grants, &f, "link"),
        Err(MoveError::NotADir(_))
    ));
    // A file that is a symlink.
    let target = outside.path().join("secret");
    std::fs::write(&target, b"s").unwrap();
    let l = root.path().join("l.txt");
    std::os::unix::fs::symlink(&target, &l).unwrap();
    assert!(matches!(
        move_into(&grants, &l, "txt"),
        Err(MoveError::NotAFile(_))
    ));
    // A file reached through a symlinked parent is really outside.
    let through = root.path().join("link/secret");
    assert!(matches!(
        move_into(&grants, &through, "txt"),
        Err(MoveError::Outside(_))
    ));
    assert!(target.exists() && f.exists());

    // A nested plain subfolder is fine.
    let to = move_into(&grants, &f, "a/b").unwrap();
    assert_eq!(to, root.path().canonicalize().unwrap().join("a/b/f.txt"));
}

#[test]
fn move_from_a_script_refuses_dotdot_with_the_line() {
    let root = tempfile::tempdir().unwrap();
    let f = root.path().join("f.txt");
    std::fs::write(&f, b"f").unwrap();
    let src = "p2p.on('complete', function(file, out)\n  p2p.move(out.local_path, '../up')\nend)";
    let script = LuaScript::from_source("escape.lua", src, granted(root.path())).unwrap();
    let err = script
        .instantiate()
        .unwrap()
        .complete(&file("f.txt", 1, Side::Receive), &done(&f))
        .unwrap_err();
    assert!(err.reason.starts_with("escape.lua:2: p2p.move:"), "{err}");
    assert!(f.exists() && !root.path().parent().unwrap().join("up").exists());
}

// ---- the API ----

#[test]
fn chunk_handlers_get_bytes_only_when_they_ask() {
    let blind = "p2p.on('chunk', function(f, c)\n  assert(c.bytes == nil and c.size == 3 and c.offset == 9)\nend)";
    let script = LuaScript::from_source("blind.lua", blind, LuaConfig::default()).unwrap();
    assert!(script.describe().hooks.chunk && !script.describe().needs_bytes);
    let mut hook = script.instantiate().unwrap();
    let f = file("a", 12, Side::Send);
    assert_eq!(hook.chunk(&f, 9, b"abc").unwrap(), ChunkAction::Pass);

    let upper = r#"
        p2p.on("chunk", function(f, c)
          if c.bytes:find("EVIL", 1, true) then return p2p.abort("evil at " .. c.offset) end
          if f.side == "send" then return p2p.replace(c.bytes:upper()) end
          return p2p.pass()
        end, {bytes = true})"#;
    let script = LuaScript::from_source("upper.lua", upper, LuaConfig::default()).unwrap();
    assert!(script.describe().needs_bytes);
    let mut hook = script.instantiate().unwrap();
    assert_eq!(
        hook.chunk(&f, 0, b"ab\0c").unwrap(),
        ChunkAction::Replace(b"AB\0C".to_vec())
    );
    assert_eq!(
        hook.chunk(&file("a", 1, Side::Receive), 0, b"x").unwrap(),
        ChunkAction::Pass
    );
    assert_eq!(
        hook.chunk(&f, 4, b"xEVIL").unwrap(),
        ChunkAction::Abort("evil at 4".to_owned())
    );
}

#[test]
fn route_and_wrong_actions() {
    let src = r#"
        p2p.on("pre_send", function(f)
          if f.path == "r" then return p2p.route{"laptop", "nas"} end
          if f.path == "w" then return p2p.pass() end
          if f.path == "t" then return {} end
        end)"#;
    let mut hook = LuaScript::from_source("acts.lua", src, LuaConfig::default())
        .unwrap()
        .instantiate()
        .unwrap();
    assert_eq!(
        hook.pre_send(&file("r", 1, Side::Send)).unwrap(),
        PreSend::Route(vec!["laptop".to_owned(), "nas".to_owned()])
    );
    assert_eq!(
        hook.pre_send(&file("x", 1, Side::Send)).unwrap(),
        PreSend::Continue
    );
    let err = hook.pre_send(&file("w", 1, Side::Send)).unwrap_err();
    assert!(err.reason.contains("returned p2p.pass()"), "{err}");
    let err = hook.pre_send(&file("t", 1, Side::Send)).unwrap_err();
    assert!(err.reason.contains("returned a table"), "{err}");
}

#[test]
fn registration_mistakes_are_load_errors() {
    let err = load_err("p2p.on('pre-send', function() end)", LuaConfig::default());
    assert!(err.reason.contains("unknown event \"pre-send\""), "{err}");
    assert!(err.reason.starts_with("probe.lua:1:"), "{err}");
    let err = load_err(
        "p2p.on('complete', function() end)\np2p.on('complete', function() end)",
        LuaConfig::default(),
    );
    assert!(
        err.reason.starts_with("probe.lua:2:") && err.reason.contains("already"),
        "{err}"
    );

    // Registering later, from a handler, is refused.
    let src = "p2p.on('pre_send', function() p2p.on('chunk', function() end) end)";
    let script = LuaScript::from_source("late.lua", src, LuaConfig::default()).unwrap();
    let err = script
        .instantiate()
        .unwrap()
        .pre_send(&file("a", 1, Side::Send))
        .unwrap_err();
    assert!(err.reason.contains("only while the script loads"), "{err}");
}

#[test]
fn settings_are_strings() {
    let src = "assert(p2p.settings.k == '5' and p2p.settings.missing == nil)";
    LuaScript::from_source("s.lua", src, with_settings(&[("k", "5")])).unwrap();
}

// ---- hostile scripts ----

#[test]
fn an_infinite_loop_hits_the_instruction_limit_in_about_the_budget() {
    let src = "p2p.on('pre_send', function(f)\n  if f.path == 'spin' then\n    while true do end\n  end\n  for i = 1, tonumber(f.path) do end\nend)";
    let script = LuaScript::from_source("spin.lua", src, small_budget(1_000_000)).unwrap();
    let mut hook = script.instantiate().unwrap();

    let started = Instant::now();
    let err = hook.pre_send(&file("spin", 1, Side::Send)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.owner, "spin");
    assert_eq!(
        err.reason,
        "spin.lua:3: instruction limit exceeded (1000000 instructions per call)"
    );
    // The budget is per call and is what is enforced: a loop of about a fifth of it runs
    // (each iteration is one instruction), one of twice it does not.
    assert_eq!(
        hook.pre_send(&file("200000", 1, Side::Send)).unwrap(),
        PreSend::Continue
    );
    let err = hook.pre_send(&file("2000000", 1, Side::Send)).unwrap_err();
    assert!(err.reason.contains("instruction limit"), "{err}");
    assert_eq!(
        hook.pre_send(&file("200000", 1, Side::Send)).unwrap(),
        PreSend::Continue
    );
}

#[test]
fn an_infinite_loop_at_load_time_is_stopped() {
    let err = load_err("while true do end", small_budget(100_000));
    assert_eq!(err.owner, "probe");
    assert!(
        err.reason.starts_with("probe.lua:1: instruction limit"),
        "{err}"
    );
}

#[test]
fn pcall_cannot_swallow_the_instruction_limit() {
    let src = "while true do pcall(function() while true do end end) end";
    let err = load_err(src, small_budget(100_000));
    assert!(err.reason.contains("instruction limit exceeded"), "{err}");
    let src = "while true do xpcall(function() while true do end end, function() end) end";
    let err = load_err(src, small_budget(100_000));
    assert!(err.reason.contains("instruction limit exceeded"), "{err}");
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let src = "p2p.on('pre_send', function()\n  local t = {} while true do t[#t+1] = string.rep('x', 1e6) end\nend)";
    let script = LuaScript::from_source("bomb.lua", src, LuaConfig::default()).unwrap();
    let err = script
        .instantiate()
        .unwrap()
        .pre_send(&file("a", 1, Side::Send))
        .unwrap_err();
    assert_eq!(err.owner, "bomb");
    assert!(err.reason.contains("memory limit exceeded"), "{err}");
    // One big allocation is refused too.
    let err = load_err("local s = string.rep('x', 1e9)", LuaConfig::default());
    assert!(err.reason.contains("memory limit exceeded"), "{err}");
}

/// Each probe, and the name its error must mention.
const PROBES: &[(&str, &str)] = &[
    ("io.open(PATH)", "global 'io'"),
    ("os.execute('true')", "global 'os'"),
    ("require('string')", "global 'require'"),
    ("load('return 1')()", "global 'load'"),
    ("loadfile(PATH)", "global 'loadfile'"),
    ("dofile(PATH)", "global 'dofile'"),
    ("collectgarbage('count')", "global 'collectgarbage'"),
    ("print('to stdout')", "global 'print'"),
    ("string.dump(function() end)", "field 'dump'"),
    ("('x').dump(function() end)", "field 'dump'"),
    ("coroutine.wrap(function() end)()", "global 'coroutine'"),
    ("package.loadlib('libc.so.6', 'system')", "global 'package'"),
];

fn probe_source(probe: &str, path: &Path) -> String {
    probe.replace("PATH", &format!("{:?}", path.to_string_lossy()))
}

#[test]
fn sandboxed_globals_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("ok.lua");
    std::fs::write(&existing, "return 1").unwrap();
    for (probe, names) in PROBES {
        let err = load_err(&probe_source(probe, &existing), LuaConfig::default());
        assert!(err.reason.contains(names), "{probe}: {err}");
        assert!(err.reason.starts_with("probe.lua:1:"), "{probe}: {err}");
    }
    let err = load_err("debug.getinfo(1)", LuaConfig::default());
    assert!(err.reason.contains("global 'debug'"), "{err}");
}

/// The control for `sandboxed_globals_are_missing`: in Lua with its usual libraries each probe
/// runs without error, so that test fails if the sandbox is off. (`debug` cannot be loaded into
/// a state without unsafe code, which this crate forbids.)
#[test]
fn probes_succeed_without_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("ok.lua");
    std::fs::write(&existing, "return 1").unwrap();
    for (probe, _) in PROBES {
        if probe.starts_with("print") || probe.starts_with("package.loadlib") {
            continue; // would write to the test's stdout / is refused by mlua's safe mode
        }
        let lua = mlua::Lua::new();
        lua.load(probe_source(probe, &existing))
            .exec()
            .unwrap_or_else(|e| panic!("{probe} fails even without the sandbox: {e}"));
    }
}

#[test]
fn os_time_only_when_granted() {
    let src = "assert(os.time() > 0 and os.clock() >= 0 and os.date('%Y') ~= nil)";
    load_err(src, LuaConfig::default());
    let mut config = LuaConfig::default();
    config.grants.allow_os_time = true;
    LuaScript::from_source("time.lua", src, config.clone()).unwrap();
    let err = load_err("os.execute('true')", config.clone());
    assert!(err.reason.contains("field 'execute'"), "{err}");
    let err = load_err("os.remove('/tmp/x')", config);
    assert!(err.reason.contains("field 'remove'"), "{err}");
}

#[test]
fn bytecode_is_refused() {
    let lua = mlua::Lua::new();
    let f = lua.load("return 1").into_function().unwrap();
    let bytecode = f.dump(false);
    let err = LuaScript::from_source("bin.lua", bytecode, LuaConfig::default()).unwrap_err();
    assert!(err.reason.contains("binary"), "{err}");
}

#[test]
fn a_script_error_names_the_script_and_line() {
    let src = "p2p.on('pre_send', function(file)\n  local t = nil\n  return t.x\nend)";
    let script = LuaScript::from_source("broken.lua", src, LuaConfig::default()).unwrap();
    let err = script
        .instantiate()
        .unwrap()
        .pre_send(&file("a", 1, Side::Send))
        .unwrap_err();
    assert_eq!(err.owner, "broken");
    assert_eq!(
        err.reason,
        "broken.lua:3: attempt to index a nil value (local 't')"
    );
    assert_eq!(
        err.to_string(),
        "broken: broken.lua:3: attempt to index a nil value (local 't')"
    );

    let err = load_err("local x = = 1", LuaConfig::default());
    assert!(err.reason.starts_with("probe.lua:1:"), "{err}");

    // A complete hook fails with an error, too (the caller decides it is not fatal).
    let src = "p2p.on('complete', function()\n  error('index full')\nend)";
    let err = LuaScript::from_source("idx.lua", src, LuaConfig::default())
        .unwrap()
        .instantiate()
        .unwrap()
        .complete(
            &file("a", 1, Side::Receive),
            &Outcome::Failed("x".to_owned()),
        )
        .unwrap_err();
    assert_eq!(err.reason, "idx.lua:2: index full");
}

#[test]
fn a_fresh_instance_after_a_failure_still_works() {
    let src = r#"
        count = (count or 0)
        p2p.on("pre_send", function(f)
          count = count + 1
          if f.path == "spin" then while true do end end
          if f.path == "bomb" then local t = {} while true do t[#t+1] = string.rep("x", 1e6) end end
          if f.path == "count" then return p2p.reject(tostring(count)) end
        end)"#;
    let script = LuaScript::from_source("flaky.lua", src, small_budget(1_000_000)).unwrap();
    let mut first = script.instantiate().unwrap();
    assert!(first.pre_send(&file("spin", 1, Side::Send)).is_err());
    assert!(first.pre_send(&file("bomb", 1, Side::Send)).is_err());
    let mut second = script.instantiate().unwrap();
    // A new state: nothing carried over from the first (the count starts again).
    assert_eq!(
        second.pre_send(&file("count", 1, Side::Send)).unwrap(),
        PreSend::Reject("1".to_owned())
    );
}

#[test]
fn a_log_flood_is_capped() {
    let src = "p2p.on('complete', function() for i = 1, 1000 do p2p.log('line', i) end end)";
    let mut hook = LuaScript::from_source("loud.lua", src, LuaConfig::default())
        .unwrap()
        .instantiate()
        .unwrap();
    let logs = capture_logs(|| {
        hook.complete(&file("a", 1, Side::Send), &Outcome::Failed("x".to_owned()))
            .unwrap();
    });
    assert!(
        logs.contains("line 100") && !logs.contains("line 101"),
        "{logs}"
    );
    assert!(logs.contains("dropping the rest"), "{logs}");
}

#[test]
fn finalizers_are_refused() {
    // Lua runs finalizers with hooks off, so one that loops would never be stopped: the
    // sandbox refuses `__gc` (this test hangs if it does not).
    let err = load_err(
        "setmetatable({}, {__gc = function() while true do end end})",
        small_budget(100_000),
    );
    assert!(
        err.reason
            .starts_with("probe.lua:1: __gc metamethods are not available"),
        "{err}"
    );
    // Other metatables still work.
    LuaScript::from_source(
        "mt.lua",
        "assert(setmetatable({}, {__index = function() return 1 end}).x == 1)",
        LuaConfig::default(),
    )
    .unwrap();
}
