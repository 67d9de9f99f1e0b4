//! Per-call latency of the hook engines (issue 5): what one pre-send, chunk or complete call costs
//! in each engine, what instantiating a hook for a transfer costs, and what loading costs, beside
//! baselines measured in the same run.
//!
//! `cargo bench -p p2phost --bench hooks_calls` (env `BENCH_CALLS`, default 10000 calls per row;
//! the components come from `bash plugins/build.sh`, in `plugins/out/` or `$P2P_PLUGINS_OUT`).
//!
//! In-process, through the library's public API (`p2phost::hooks`), on one thread: every row
//! times each call alone with `Instant` (the timer's own cost is the first row) and prints the
//! median, the 99th percentile and the mean (a script's garbage collection, say, shows in the
//! mean and the tail), and for chunk rows the MB/s a stream of such calls would sustain. Speed
//! is never asserted.

// A benchmark's main prints its table and may panic on any failure: that is its whole job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::borrow::Cow;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use p2phost::hooks::{
    ChunkAction, Description, FileInfo, Hook, HookChain, HookError, HookFactory, Hooks, LuaConfig,
    LuaScript, Outcome, PreSend, Processed, Side, WasmLimits, WasmPlugin, wasm::PluginEngine,
};
use p2phost::oneshot::CHUNK_SIZE;
use p2phost::transfer::frames::chunk_frame;

#[path = "common/files.rs"]
#[allow(dead_code, reason = "this bench uses only the generator")]
mod files;
#[path = "common/text.rs"]
mod text;

/// Every hook, doing nothing; the chunk handler takes the bytes when `bytes` is true.
fn lua_noop(bytes: bool) -> String {
    format!(
        "p2p.on(\"pre_send\", function(file) end)\n\
         p2p.on(\"chunk\", function(file, chunk) end, {{bytes={bytes}}})\n\
         p2p.on(\"complete\", function(file, outcome) end)\n"
    )
}

/// Loads and instantiations timed per row (each is milliseconds or less).
const LOADS: usize = 10;
const INSTANCES: usize = 500;

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS").map_or(10_000, |s| {
        s.parse().expect("BENCH_CALLS: a number of calls")
    });
    let plugins = std::env::var_os("P2P_PLUGINS_OUT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/out"),
        PathBuf::from,
    );
    let component = |name: &str| {
        let path = plugins.join(name);
        assert!(
            path.is_file(),
            "no {}: run plugins/build.sh first",
            path.display()
        );
        path
    };
    let (noop, compress, hostile) = (
        component("noop.wasm"),
        component("compress.wasm"),
        component("hostile.wasm"),
    );

    let chunk = CHUNK_SIZE as usize;
    let random = random_bytes(chunk);
    let text = text::text_corpus(chunk);
    let send = file_info(Side::Send);
    let receive = file_info(Side::Receive);
    let done = Outcome::Done {
        local_path: "/tmp/bench/file.bin".into(),
    };

    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "hook calls: {calls} calls per row ({INSTANCES} instantiations, {LOADS} loads), one thread, {cores} cores; chunk = {} bytes",
        CHUNK_SIZE
    );
    println!(
        "{:<14} {:<42} {:>9} {:>9} {:>9} {:>8}",
        "engine", "call", "p50 µs", "p99 µs", "mean µs", "MB/s"
    );

    // Baselines: the timer, a Rust hook behind the same trait object, a copy of the chunk.
    row("baseline", "timer alone (two Instant::now)", None, || {
        time(calls, || ())
    });
    let mut rust: Box<dyn Hook> = Box::new(RustNoop::default());
    row("baseline", "Rust dyn Hook chunk, 64 KiB", None, || {
        time(calls, || {
            black_box(rust.chunk(&send, 0, black_box(&random)).unwrap());
        })
    });
    let mut copy = vec![0u8; chunk];
    row("baseline", "memcpy 64 KiB", Some(chunk), || {
        time(calls, || {
            copy.copy_from_slice(black_box(&random));
            black_box(&mut copy);
        })
    });
    row(
        "baseline",
        "to_vec 64 KiB (alloc + copy)",
        Some(chunk),
        || {
            time(calls, || {
                black_box(black_box(&random[..]).to_vec());
            })
        },
    );

    // What oneshot send and receive wrap each hook call in: `block_in_place`, on the thread of
    // `Runtime::block_on` (as in p2phost's CLI) and in a task spawned on a worker (as a daemon
    // would run a transfer). Each call is followed by a yield, as the transfer loop awaits its
    // send between chunks: a worker's core handed away by `block_in_place` comes back there.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for (place, spawned) in [("in block_on", false), ("in a spawned task", true)] {
        for wrapped in [false, true] {
            let measure = yielding(calls, wrapped);
            let times = if spawned {
                runtime
                    .block_on(runtime.spawn(measure))
                    .expect("the timing task")
            } else {
                runtime.block_on(measure)
            };
            let call = if wrapped {
                format!("block_in_place + yield, {place}")
            } else {
                format!("yield alone, {place}")
            };
            row("baseline", &call, None, || times);
        }
    }
    drop(runtime);

    // WASM.
    let engine = PluginEngine::shared().expect("the wasmtime engine");
    let load = |path: &Path, settings: Vec<(String, String)>| {
        WasmPlugin::load(&engine, path, settings, WasmLimits::default()).expect("load the plugin")
    };
    row("noop.wasm", "load (read, compile, describe)", None, || {
        time(LOADS, || {
            black_box(load(&noop, vec![]));
        })
    });
    let noop_plugin = load(&noop, vec![]);
    row("noop.wasm", "instantiate + configure", None, || {
        time(INSTANCES, || {
            black_box(noop_plugin.instantiate().unwrap());
        })
    });
    let mut hook = noop_plugin.instantiate().unwrap();
    chunk_rows("noop.wasm", hook.as_mut(), &send, &random, calls);
    let mut chain = HookChain::new(vec![noop_plugin.instantiate().unwrap()]);
    row(
        "noop.wasm",
        "send path: HookChain + frame",
        Some(chunk),
        || time(calls, || send_path(&mut chain, &send, &random, 0)),
    );
    let mut chain = HookChain::new(vec![noop_plugin.instantiate().unwrap()]);
    row("noop.wasm", "receive path: HookChain", Some(chunk), || {
        time(calls, || receive_path(&mut chain, &receive, &random, 0))
    });

    let none = vec![("mode".to_owned(), "none".to_owned())];
    let hostile_plugin = load(&hostile, none);
    let mut hook = hostile_plugin.instantiate().unwrap();
    row("hostile.wasm", "pre-send (mode=none: no-op)", None, || {
        time(calls, || {
            black_box(hook.pre_send(&send).unwrap());
        })
    });
    row("hostile.wasm", "complete (mode=none: no-op)", None, || {
        time(calls, || {
            hook.complete(&send, &done).unwrap();
        })
    });

    row(
        "compress.wasm",
        "load (read, compile, describe)",
        None,
        || {
            time(LOADS, || {
                black_box(load(&compress, vec![]));
            })
        },
    );
    let compress_plugin = load(&compress, vec![]);
    row("compress.wasm", "instantiate + configure", None, || {
        time(INSTANCES, || {
            black_box(compress_plugin.instantiate().unwrap());
        })
    });
    let mut sender = compress_plugin.instantiate().unwrap();
    row(
        "compress.wasm",
        "pre-send (checks the extension)",
        None,
        || {
            time(calls, || {
                black_box(sender.pre_send(&send).unwrap());
            })
        },
    );
    let ChunkAction::Replace(packed) = sender.chunk(&send, 0, &text).unwrap() else {
        panic!("compress.wasm did not compress the text chunk");
    };
    row(
        "compress.wasm",
        "chunk send: compress 64 KiB text",
        Some(chunk),
        || {
            time(calls, || {
                black_box(sender.chunk(&send, 0, black_box(&text)).unwrap());
            })
        },
    );
    row(
        "compress.wasm",
        "chunk send: 64 KiB random (pass)",
        Some(chunk),
        || {
            time(calls, || {
                black_box(sender.chunk(&send, 0, black_box(&random)).unwrap());
            })
        },
    );
    let mut receiver = compress_plugin.instantiate().unwrap();
    row(
        "compress.wasm",
        "chunk receive: decompress",
        Some(chunk),
        || {
            time(calls, || {
                black_box(receiver.chunk(&receive, 0, black_box(&packed)).unwrap());
            })
        },
    );
    let mut chain = HookChain::new(vec![compress_plugin.instantiate().unwrap()]);
    row(
        "compress.wasm",
        "send path: HookChain + frame",
        Some(chunk),
        || time(calls, || send_path(&mut chain, &send, &text, 1)),
    );
    let mut chain = HookChain::new(vec![compress_plugin.instantiate().unwrap()]);
    row(
        "compress.wasm",
        "receive path: HookChain",
        Some(chunk),
        || time(calls, || receive_path(&mut chain, &receive, &packed, 1)),
    );
    println!(
        "{:<14} text chunk compresses to {} bytes ({:.3})",
        "compress.wasm",
        packed.len(),
        packed.len() as f64 / chunk as f64
    );

    // Lua.
    for (bytes, name) in [(false, "Lua"), (true, "Lua bytes")] {
        let source = lua_noop(bytes);
        let from_source =
            || LuaScript::from_source("noop.lua", source.as_bytes(), LuaConfig::default());
        row(name, "load (LuaScript::from_source)", None, || {
            time(LOADS * 10, || {
                black_box(from_source().unwrap());
            })
        });
        let script = from_source().unwrap();
        row(name, "instantiate", None, || {
            time(INSTANCES, || {
                black_box(script.instantiate().unwrap());
            })
        });
        let mut hook = script.instantiate().unwrap();
        if bytes {
            chunk_rows(name, hook.as_mut(), &send, &random, calls);
            let mut chain = HookChain::new(vec![script.instantiate().unwrap()]);
            row(name, "send path: HookChain + frame", Some(chunk), || {
                time(calls, || send_path(&mut chain, &send, &random, 0))
            });
            let mut chain = HookChain::new(vec![script.instantiate().unwrap()]);
            row(name, "receive path: HookChain", Some(chunk), || {
                time(calls, || receive_path(&mut chain, &receive, &random, 0))
            });
        } else {
            row(name, "pre-send", None, || {
                time(calls, || {
                    black_box(hook.pre_send(&send).unwrap());
                })
            });
            row(name, "chunk, no bytes", None, || {
                time(calls, || {
                    black_box(hook.chunk(&send, 0, black_box(&random)).unwrap());
                })
            });
            row(name, "complete", None, || {
                time(calls, || {
                    hook.complete(&send, &done).unwrap();
                })
            });
        }
    }
    hostile_rows(&send);
}

/// Hostile handlers at the default limits (issue 12): how long one call runs before the sandbox
/// stops it (worst of 3), and what stopped it.
fn hostile_rows(file: &FileInfo) {
    const CASES: &[(&str, &str)] = &[
        ("endless loop", "while true do end"),
        (
            "the issue's pattern",
            "local _ = string.find(string.rep('a', 3000), string.rep('a*', 12) .. 'b')",
        ),
        (
            "s < s, 7 MiB of NUL",
            "local s = string.rep('\\0', 7 * 1024 * 1024)\nwhile true do local _ = s < s end",
        ),
        (
            "5 x (s < s) per loop",
            "local s = string.rep('\\0', 7 * 1024 * 1024)\nwhile true do local _ = s < s or s < s or s < s or s < s or s < s end",
        ),
        (
            "s .. 'x', 5 MiB",
            "local s = string.rep('a', 5 * 1024 * 1024)\nwhile true do local _ = s .. 'x' end",
        ),
        (
            "format %q, 2 MiB of \\1",
            "local s = string.rep('\\1', 2 * 1024 * 1024)\nwhile true do local _ = string.format('%q', s) end",
        ),
        (
            "sort 200k x 1 MiB string",
            "local s = string.rep('a', 1024 * 1024)\nlocal t = {}\nfor i = 1, 200000 do t[i] = s end\ntable.sort(t)",
        ),
        (
            "table.move over nils",
            "table.move({}, 1, math.maxinteger - 1, 1)",
        ),
    ];
    println!("hostile Lua handlers, default limits: time until the call is stopped (worst of 3)");
    for (name, body) in CASES {
        let source = format!("p2p.on('pre_send', function(file)\n{body}\nend)");
        let script = LuaScript::from_source("hostile.lua", source.as_bytes(), LuaConfig::default())
            .expect("the hostile script loads");
        let mut worst = Duration::ZERO;
        let mut reason = String::new();
        for _ in 0..3 {
            let mut hook = script.instantiate().expect("an instance");
            let started = Instant::now();
            let result = hook.pre_send(file);
            worst = worst.max(started.elapsed());
            reason = match result {
                Err(e) => e.reason,
                Ok(decision) => format!("returned {decision:?}"),
            };
        }
        println!(
            "{:<14} {:<42} {:>9.0} ms  {reason}",
            "Lua hostile",
            name,
            worst.as_secs_f64() * 1000.0
        );
    }
}

/// What oneshot send does with a chunk read into its frame, when the transfer has hooks: the
/// chain borrows the bytes; an encoded chunk goes out in a new frame, a plain one in its own.
fn send_path(
    chain: &mut HookChain,
    file: &FileInfo,
    data: &[u8],
    encoding: u8,
) -> Option<BytesMut> {
    match chain
        .send_chunk(file, 0, black_box(data), encoding)
        .unwrap()
    {
        Processed::Plain => None,
        Processed::Encoded { data, encoding } => {
            let mut frame = chunk_frame(0, 0, encoding, data.len());
            frame.extend_from_slice(&data);
            Some(frame)
        }
    }
}

/// What oneshot receive does with a chunk when the transfer has hooks: the chain borrows the
/// bytes; a decoded chunk's buffer becomes the chunk's.
fn receive_path(
    chain: &mut HookChain,
    file: &FileInfo,
    data: &[u8],
    encoding: u8,
) -> Option<Bytes> {
    match chain
        .receive_chunk(file, 0, black_box(data), encoding)
        .unwrap()
    {
        Cow::Borrowed(_) => None,
        Cow::Owned(decoded) => Some(decoded.into()),
    }
}

/// The chunk rows of a hook that takes the bytes: with none, then with a whole chunk.
fn chunk_rows(engine: &str, hook: &mut dyn Hook, file: &FileInfo, data: &[u8], calls: usize) {
    row(engine, "chunk, no bytes (empty list)", None, || {
        time(calls, || {
            black_box(hook.chunk(file, 0, black_box(&[])).unwrap());
        })
    });
    row(engine, "chunk, 64 KiB", Some(data.len()), || {
        time(calls, || {
            black_box(hook.chunk(file, 0, black_box(data)).unwrap());
        })
    });
}

/// Runs `measure` and prints its p50, p99 and mean (and the throughput of the mean, over `bytes`
/// per call: what a stream of such calls would sustain).
fn row(engine: &str, call: &str, bytes: Option<usize>, measure: impl FnOnce() -> Vec<Duration>) {
    let mut times = measure();
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let (p50, p99) = (at(0.50), at(0.99));
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let mbps = bytes.map_or_else(String::new, |b| {
        format!("{:.0}", b as f64 / mean.as_secs_f64() / 1e6)
    });
    let fmt = |d: Duration| {
        let us = micros(d);
        if us >= 1000.0 {
            format!("{us:.0}")
        } else if us >= 10.0 {
            format!("{us:.1}")
        } else {
            format!("{us:.3}")
        }
    };
    println!(
        "{engine:<14} {call:<42} {:>9} {:>9} {:>9} {mbps:>8}",
        fmt(p50),
        fmt(p99),
        fmt(mean)
    );
}

/// Times `n` rounds of an empty closure run in `block_in_place` (or not, if `!wrapped`) and a
/// `yield_now`, after a tenth as many untimed ones.
async fn yielding(n: usize, wrapped: bool) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let start = Instant::now();
        if wrapped {
            tokio::task::block_in_place(|| black_box(()));
        }
        tokio::task::yield_now().await;
        if i >= n / 10 {
            times.push(start.elapsed());
        }
    }
    times
}

/// Times each of `n` calls of `f` alone (its result kept from the optimiser), after a tenth as
/// many untimed ones to warm up.
fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    for _ in 0..n / 10 {
        black_box(f());
    }
    (0..n)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect()
}

fn file_info(side: Side) -> FileInfo {
    FileInfo {
        path: "bench/file.bin".into(),
        size: 1 << 30,
        side,
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut bytes = Vec::with_capacity(n + 8);
    while bytes.len() < n {
        bytes.extend_from_slice(&files::next(&mut state).to_le_bytes());
    }
    bytes.truncate(n);
    bytes
}

/// The baseline hook: Rust, behind the same trait object as the engines, doing nothing.
struct RustNoop {
    description: Description,
}

impl Default for RustNoop {
    fn default() -> Self {
        Self {
            description: Description {
                name: "rust-noop".into(),
                version: String::new(),
                hooks: Hooks {
                    pre_send: true,
                    chunk: true,
                    complete: true,
                },
                needs_bytes: true,
                encoding: None,
            },
        }
    }
}

impl Hook for RustNoop {
    fn describe(&self) -> &Description {
        &self.description
    }

    fn pre_send(&mut self, _file: &FileInfo) -> Result<PreSend, HookError> {
        Ok(PreSend::Continue)
    }

    fn chunk(
        &mut self,
        _file: &FileInfo,
        _offset: u64,
        data: &[u8],
    ) -> Result<ChunkAction, HookError> {
        black_box(data);
        Ok(ChunkAction::Pass)
    }

    fn complete(&mut self, _file: &FileInfo, _outcome: &Outcome) -> Result<(), HookError> {
        Ok(())
    }
}
