//! The WASM backend against real plugins built by `plugins/build.sh`: the examples work through
//! it, and the hostile guests (endless loop, memory bomb, trap, panic) are stopped with an error
//! naming the plugin and the cause, while the host goes on serving other instances.
//!
//! The components must be built first (`plugins/build.sh`, which the test command runs): when
//! they are missing these tests fail and say so, rather than skip.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use p2phost::hooks::wasm::{self, PluginEngine, WasmError, WasmLimits, WasmPlugin};
use p2phost::hooks::{ChunkAction, FileInfo, HookError, HookFactory, Outcome, PreSend, Side};

/// Where `plugins/build.sh` puts the components: `P2P_PLUGINS_OUT` when the test command
/// sets it, else the script's default output folder.
fn plugins_dir() -> PathBuf {
    std::env::var_os("P2P_PLUGINS_OUT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/out"),
        PathBuf::from,
    )
}

fn component(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run plugins/build.sh first (or set P2P_PLUGINS_OUT to its output folder)",
        path.display()
    );
    path
}

fn engine() -> PluginEngine {
    PluginEngine::shared().unwrap()
}

fn load(name: &str, settings: &[(&str, &str)], limits: WasmLimits) -> WasmPlugin {
    let settings = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    WasmPlugin::load(&engine(), &component(name), settings, limits).unwrap()
}

fn file(side: Side, size: u64) -> FileInfo {
    FileInfo {
        path: "docs/notes.txt".into(),
        size,
        side,
    }
}

/// The host keeps serving: after a hostile guest is stopped, a fresh instance of another plugin
/// still works on the same engine.
fn noop_still_works() {
    let noop = load("noop", &[], WasmLimits::default());
    let mut hook = noop.instantiate().unwrap();
    let action = hook.chunk(&file(Side::Send, 3), 0, b"abc").unwrap();
    assert_eq!(action, ChunkAction::Pass);
}

/// The hostile guest, set to misbehave in `hook` (its settings take effect per instance, in
/// `configure`; `describe`, at load, stays harmless).
fn hostile(mode: &str, hook: &str, limits: WasmLimits) -> WasmPlugin {
    load("hostile", &[("mode", mode), ("hook", hook)], limits)
}

fn text(len: usize) -> Vec<u8> {
    let line = b"the quick brown fox jumps over the lazy dog, again and again and again\n";
    line.iter().copied().cycle().take(len).collect()
}

fn noise(len: usize) -> Vec<u8> {
    // xorshift: incompressible enough for LZ4, and the same every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn noop_describes_itself_and_passes_a_chunk() {
    let noop = load("noop", &[], WasmLimits::default());
    let d = noop.describe();
    assert_eq!(d.name, "noop");
    assert!(!d.version.is_empty());
    assert!(d.hooks.chunk && !d.hooks.pre_send && !d.hooks.complete);
    assert!(d.needs_bytes);
    assert_eq!(d.encoding, None);

    let mut hook = noop.instantiate().unwrap();
    let f = file(Side::Send, 1 << 16);
    // Hooks it does not implement are answered by the host.
    assert_eq!(hook.pre_send(&f).unwrap(), PreSend::Continue);
    let data = text(1 << 16);
    assert_eq!(hook.chunk(&f, 0, &data).unwrap(), ChunkAction::Pass);
    let done = Outcome::Done {
        local_path: "/tmp/x".into(),
    };
    hook.complete(&f, &done).unwrap();
}

#[test]
fn inspect_reports_the_description() {
    let d = wasm::inspect(&component("compress")).unwrap();
    assert_eq!(d.name, "compress");
    assert_eq!(d.encoding.as_deref(), Some("lz4"));
    assert!(d.hooks.pre_send && d.hooks.chunk && d.needs_bytes);
    assert_eq!(wasm::WIT_VERSION, "0.1.0");
}

#[test]
fn compress_round_trips_a_chunk_and_skips_incompressible_data() {
    let compress = load("compress", &[], WasmLimits::default());
    let plain = text(256 * 1024);
    let size = plain.len() as u64;

    let mut sender = compress.instantiate().unwrap();
    let sent = file(Side::Send, size);
    assert_eq!(sender.pre_send(&sent).unwrap(), PreSend::Encode);
    let ChunkAction::Replace(encoded) = sender.chunk(&sent, 0, &plain).unwrap() else {
        panic!("compress did not encode a text chunk");
    };
    assert!(
        encoded.len() < plain.len() / 2,
        "{} -> {} bytes",
        plain.len(),
        encoded.len()
    );

    let mut receiver = compress.instantiate().unwrap();
    let received = file(Side::Receive, size);
    let ChunkAction::Replace(decoded) = receiver.chunk(&received, 0, &encoded).unwrap() else {
        panic!("compress did not decode its own chunk");
    };
    assert!(decoded == plain, "decoded bytes differ from the original");

    let random = noise(64 * 1024);
    assert_eq!(sender.chunk(&sent, 0, &random).unwrap(), ChunkAction::Pass);
}

#[test]
fn compress_refuses_unknown_settings_by_name() {
    let compress = load("compress", &[("colour", "blue")], WasmLimits::default());
    let err = compress.instantiate().err().unwrap();
    assert_eq!(err.owner, "compress");
    assert!(err.reason.starts_with("refused its settings: "), "{err}");
}

fn chunk_error(plugin: &WasmPlugin) -> (HookError, Duration) {
    let mut hook = plugin.instantiate().unwrap();
    let started = Instant::now();
    let err = hook.chunk(&file(Side::Send, 4), 0, b"data").unwrap_err();
    let took = started.elapsed();
    // An instance that failed is never entered again: the same error, at once.
    let again = hook.chunk(&file(Side::Send, 4), 0, b"data").unwrap_err();
    assert_eq!(again, err);
    (err, took)
}

#[test]
fn an_endless_loop_meets_the_deadline() {
    let limits = WasmLimits {
        deadline: Duration::from_millis(300),
        ..WasmLimits::default()
    };
    let plugin = hostile("loop", "chunk", limits);
    let (err, took) = chunk_error(&plugin);
    assert_eq!(err.owner, "hostile");
    assert_eq!(err.reason, "deadline of 300 ms exceeded in chunk");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "stopped after {took:?}"
    );
    assert!(err.to_string().starts_with("hostile: deadline"), "{err}");
    noop_still_works();
}

#[test]
fn an_endless_loop_in_configure_fails_the_instance() {
    let limits = WasmLimits {
        deadline: Duration::from_millis(100),
        ..WasmLimits::default()
    };
    let plugin = hostile("loop", "configure", limits);
    let err = plugin.instantiate().err().unwrap();
    assert_eq!(err.reason, "deadline of 100 ms exceeded in configure");
    noop_still_works();
}

#[test]
fn a_memory_bomb_meets_the_memory_limit() {
    let limits = WasmLimits {
        memory_bytes: 16 << 20,
        ..WasmLimits::default()
    };
    let plugin = hostile("memory", "chunk", limits);
    let (err, _) = chunk_error(&plugin);
    assert_eq!(err.owner, "hostile");
    assert!(
        err.reason
            .starts_with("memory limit of 16 MiB exceeded in chunk"),
        "{err}"
    );
    noop_still_works();
}

#[test]
fn a_memory_limit_below_the_guest_s_start_fails_at_instantiation() {
    let limits = WasmLimits {
        memory_bytes: 64 * 1024,
        ..WasmLimits::default()
    };
    let err = WasmPlugin::load(&engine(), &component("noop"), vec![], limits).unwrap_err();
    let WasmError::Hook(err) = err else {
        panic!("expected a hook error, got {err}");
    };
    assert!(
        err.reason
            .starts_with("memory limit of 65536 bytes exceeded in instantiate"),
        "{err}"
    );
}

#[test]
fn a_trap_names_the_plugin_and_a_panic_its_message_too() {
    for (mode, hook) in [("trap", "chunk"), ("panic", "pre-send"), ("panic", "chunk")] {
        let plugin = hostile(mode, hook, WasmLimits::default());
        let mut instance = plugin.instantiate().unwrap();
        let f = file(Side::Send, 4);
        let err = match hook {
            "chunk" => instance.chunk(&f, 0, b"data").unwrap_err(),
            _ => instance.pre_send(&f).unwrap_err(),
        };
        assert_eq!(err.owner, "hostile");
        if mode == "trap" {
            // A bare trap, with nothing said before it: the trap is all there is to tell.
            assert_eq!(
                err.reason,
                format!("trap in {hook}: wasm `unreachable` instruction executed")
            );
        } else {
            // The SDK's panic hook sent the message through `log` just before the trap.
            let prefix = format!("trap in {hook}: panicked at ");
            let suffix = format!(": hostile plugin panics in {hook}");
            assert!(
                err.reason.starts_with(&prefix)
                    && err.reason.ends_with(&suffix)
                    && err.reason.contains("src/lib.rs:"),
                "{err}"
            );
            assert!(err.to_string().starts_with("hostile: trap in "), "{err}");
        }
        noop_still_works();
    }
}

#[test]
fn a_panic_in_configure_fails_the_instance_with_its_message() {
    let plugin = hostile("panic", "configure", WasmLimits::default());
    let err = plugin.instantiate().err().unwrap();
    assert_eq!(err.owner, "hostile");
    assert!(
        err.reason.starts_with("trap in configure: panicked at ")
            && err.reason.ends_with(": hostile plugin panics in configure"),
        "{err}"
    );
}

#[test]
fn a_huge_panic_message_reaches_the_error_bounded() {
    let plugin = load(
        "hostile",
        &[("mode", "panic"), ("panic_bytes", "1000000")],
        WasmLimits::default(),
    );
    let (err, _) = chunk_error(&plugin);
    assert!(
        err.reason.starts_with("trap in chunk: panicked at ")
            && err.reason.contains(": boom boom boom"),
        "{err}"
    );
    // The SDK cuts it to 1024 bytes, the host keeps at most 1024 characters of a line.
    let chars = err.reason.chars().count();
    assert!(
        chars <= "trap in chunk: ".len() + 1025,
        "{chars} characters"
    );
    assert!(err.reason.ends_with('…'), "{err}");
}

#[test]
fn an_error_line_of_an_earlier_call_is_not_blamed_for_a_trap() {
    // `configure` logs an error line and succeeds; `chunk` traps without a word.
    let plugin = load(
        "hostile",
        &[("mode", "trap"), ("log_error", "stale complaint")],
        WasmLimits::default(),
    );
    let (err, _) = chunk_error(&plugin);
    assert_eq!(
        err.reason,
        "trap in chunk: wasm `unreachable` instruction executed"
    );
}

/// `noop.wasm` with `from` rewritten to `to` in place (same length, so it stays a valid
/// component), saved as `name` in `dir`.
fn rewritten(dir: &Path, name: &str, from: &[u8], to: &[u8]) -> PathBuf {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(component("noop")).unwrap();
    let mut replaced = 0;
    for i in 0..=bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            replaced += 1;
        }
    }
    assert!(
        replaced > 0,
        "noop.wasm has no {:?}",
        String::from_utf8_lossy(from)
    );
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn a_plugin_built_against_another_contract_is_refused() {
    // What a plugin built against p2phost:plugin@0.2.0 looks like to the host.
    let dir = tempfile::tempdir().unwrap();
    let old = rewritten(
        dir.path(),
        "old.wasm",
        b"p2phost:plugin/types@0.1.0",
        b"p2phost:plugin/types@0.2.0",
    );
    let err = wasm::inspect(&old).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "plugin old.wasm was built against an incompatible contract: p2phost:plugin@0.2.0; \
             this host implements p2phost:plugin@0.1.0"
        ),
        "{err}"
    );

    // The right version but not the world's exports: the type-check refuses it, just as clearly.
    let odd = rewritten(dir.path(), "odd.wasm", b"describe", b"describf");
    let err = wasm::inspect(&odd).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "plugin odd.wasm was built against an incompatible contract: p2phost:plugin@0.1.0; \
             this host implements p2phost:plugin@0.1.0 ("
        ),
        "{err}"
    );
    assert!(err.contains("describe"), "{err}");
}

/// The peak resident memory of this process, in kB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// What a plugin hands the host is bounded, whatever its own memory (issue 12): a route of 120
/// peer names that all point at one 1 MiB string made the host copy 120 MiB out of a plugin
/// limited to 16 MiB. Run in a child process (this test binary, this test alone) whose peak
/// resident memory is measured around the call.
#[test]
fn a_plugin_cannot_make_the_host_copy_more_than_a_chunk() {
    const CHILD: &str = "P2P_PLUGIN_COPIES_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return copies_child();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "plugins_sandbox::a_plugin_cannot_make_the_host_copy_more_than_a_chunk",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let grew: u64 = stdout
        .lines()
        .find_map(|l| l.split_once("grew kB: ").map(|(_, v)| v))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure in the child's output:\n{stdout}\n{stderr}"));
    assert!(
        grew < 16 * 1024,
        "the call grew the host by {grew} kB:\n{stdout}"
    );
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
}

#[allow(
    clippy::print_stdout,
    reason = "the child reports its figure to the parent test"
)]
fn copies_child() {
    let limits = WasmLimits {
        memory_bytes: 16 << 20,
        ..WasmLimits::default()
    };
    let settings = [
        ("mode", "copies"),
        ("hook", "pre-send"),
        ("copies", "120"),
        ("bytes", "1048576"),
    ];
    let mut hook = load("hostile", &settings, limits).instantiate().unwrap();
    let before = peak_kib();
    let result = hook.pre_send(&file(Side::Send, 1));
    println!("grew kB: {}", peak_kib().saturating_sub(before));
    let err = result.unwrap_err();
    assert_eq!(err.owner, "hostile");
    assert_eq!(
        err.reason,
        "pre-send: the plugin gave the host more than 1.1 MiB in one value (at most a chunk's worth)"
    );
}

#[test]
fn every_value_a_plugin_hands_the_host_is_bounded() {
    let hostile = |mode: &str, hook: &str, bytes: &str| {
        let settings = [("mode", mode), ("hook", hook), ("bytes", bytes)];
        load("hostile", &settings, WasmLimits::default())
            .instantiate()
            .unwrap()
    };
    let two_mib = "2097152";
    let refused = |err: HookError, what: &str| {
        assert_eq!(err.owner, "hostile");
        assert!(
            err.reason.starts_with(&format!(
                "{what}: the plugin gave the host more than 1.1 MiB"
            )),
            "{err}"
        );
    };
    let chunk = hostile("copies", "chunk", two_mib).chunk(&file(Side::Send, 1), 0, b"x");
    refused(chunk.unwrap_err(), "chunk");
    let done = Outcome::Failed("x".into());
    let complete = hostile("copies", "complete", two_mib).complete(&file(Side::Send, 1), &done);
    refused(complete.unwrap_err(), "complete");
    let log = hostile("log", "chunk", two_mib).chunk(&file(Side::Send, 1), 0, b"x");
    assert!(log.unwrap_err().reason.contains("more than 1.1 MiB"));
    // A chunk's worth passes, and a long log line is cut.
    let action = hostile("copies", "chunk", "1048576")
        .chunk(&file(Side::Send, 1), 0, b"x")
        .unwrap();
    assert_eq!(action, ChunkAction::Replace(vec![b'r'; 1 << 20]));
    let mut hook = hostile("log", "chunk", "1048576");
    assert_eq!(
        hook.chunk(&file(Side::Send, 1), 0, b"x").unwrap(),
        ChunkAction::Pass
    );
    assert_eq!(wasm::MAX_LIFT, 1_114_112);
}
