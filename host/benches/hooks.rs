//! Hooks benchmark (issue 5): what a no-op chunk hook costs a transfer, and what the compress
//! plugin saves on the wire.
//!
//! `cargo bench -p p2phost --bench hooks` (env `BENCH_SIZE`, default `256MiB`; the components come
//! from `bash plugins/build.sh`, in `plugins/out/` or `$P2P_PLUGINS_OUT`).
//!
//! One file of random bytes is sent on loopback by the release `p2phost` (two processes, through an
//! in-process signaling server, as in `transfer.rs`) three ways, alternating, twice: no hooks,
//! `--plugin noop.wasm` on both sides, and a no-op Lua chunk hook (`{bytes = true}`) on both sides.
//! Then a text corpus with and without `--plugin compress.wasm` on both sides. Every copy is checked
//! with BLAKE3; speed is never asserted.

// A benchmark's main prints its table and may panic on any failure: that is its whole job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common/files.rs"]
mod files;
#[path = "common/peer.rs"]
mod peer;
use files::{blake3_of, human, next, start_signaling, write_random_file};
use peer::Peer;

/// The aim of issue 5 for the no-op hooks: at most this much slower than no hooks.
const AIM_OVERHEAD_PCT: f64 = 5.0;
/// The text corpus for the compression line.
const CORPUS: u64 = 64 << 20;

const LUA_NOOP: &str = "p2p.on(\"chunk\", function(file, chunk) end, {bytes=true})\n";

/// What one transfer measured.
struct Figures {
    /// File bytes / seconds of the receiver's `done` event.
    stored_mbps: f64,
    /// From starting the receiver (once the sender's offer is ready) until both have exited.
    wall: Duration,
    rss_send_mib: f64,
    rss_recv_mib: f64,
    /// The sender's `wire_bytes` over its `bytes`.
    wire_ratio: f64,
}

fn main() {
    let size = parse_size(&std::env::var("BENCH_SIZE").unwrap_or_else(|_| "256MiB".into()));
    let plugins = std::env::var_os("P2P_PLUGINS_OUT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/out"),
        PathBuf::from,
    );
    let noop = plugins.join("noop.wasm");
    let compress = plugins.join("compress.wasm");
    assert!(
        noop.is_file() && compress.is_file(),
        "no {} or {}: run plugins/build.sh first",
        noop.display(),
        compress.display()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, stun) = runtime.block_on(start_signaling());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("noop.lua");
    std::fs::write(&script, LUA_NOOP).unwrap();
    let hooks = |flag: &str, file: &Path| vec![OsString::from(flag), file.as_os_str().to_owned()];
    let variants = [
        ("no hooks", Vec::new()),
        ("noop.wasm", hooks("--plugin", &noop)),
        ("Lua chunk", hooks("--script", &script)),
    ];

    let source = dir.path().join("random.bin");
    write_random_file(&source, size);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "hooks benchmark: {} of random bytes on loopback, p2phost release; {cores} cores shared by both peers and this watcher",
        human(size)
    );
    println!(
        "{:<5} {:<11} {:>11} {:>7} {:>9} {:>9} {:>9}",
        "round", "hooks", "stored MB/s", "wall s", "RSS send", "RSS recv", "overhead"
    );
    // sums[v] = stored MB/s of variant v over the rounds.
    let mut sums = [0.0f64; 3];
    for round in 1..=2 {
        let mut base = 0.0;
        for (v, (name, extra)) in variants.iter().enumerate() {
            let f = transfer(&url, &stun, &source, dir.path(), extra);
            if v == 0 {
                base = f.stored_mbps;
            }
            sums[v] += f.stored_mbps;
            println!(
                "{round:<5} {name:<11} {:>11.1} {:>7.2} {:>5.1} MiB {:>5.1} MiB {:>8}",
                f.stored_mbps,
                f.wall.as_secs_f64(),
                f.rss_send_mib,
                f.rss_recv_mib,
                if v == 0 {
                    "-".to_owned()
                } else {
                    format!("{:+.1}%", overhead(base, f.stored_mbps))
                },
            );
        }
    }
    std::fs::remove_file(&source).unwrap();

    let text = dir.path().join("corpus.txt");
    write_text_file(&text, CORPUS);
    let plain = transfer(&url, &stun, &text, dir.path(), &[]);
    let packed = transfer(
        &url,
        &stun,
        &text,
        dir.path(),
        &hooks("--plugin", &compress),
    );
    println!(
        "\ncompression, {} text corpus: wire/bytes {:.3} without, {:.3} with compress.wasm; {:.1} MB/s without, {:.1} MB/s with ({:.2}x)",
        human(CORPUS),
        plain.wire_ratio,
        packed.wire_ratio,
        plain.stored_mbps,
        packed.stored_mbps,
        packed.stored_mbps / plain.stored_mbps,
    );

    println!(
        "\naim (issue 5): no-op hooks cost <= {AIM_OVERHEAD_PCT}% (mean stored MB/s of both rounds)"
    );
    for (v, (name, _)) in variants.iter().enumerate().skip(1) {
        let pct = overhead(sums[0], sums[v]);
        let met = if pct <= AIM_OVERHEAD_PCT {
            "met"
        } else {
            "NOT met"
        };
        println!("  {name:<11} {pct:+6.1}%  {met}");
    }
}

/// How much slower `mbps` is than `base`, in percent (negative: faster).
fn overhead(base: f64, mbps: f64) -> f64 {
    (base / mbps - 1.0) * 100.0
}

/// Sends `source` with `extra` flags on both sides, into a fresh directory, and checks the copy.
fn transfer(url: &str, stun: &str, source: &Path, dir: &Path, extra: &[OsString]) -> Figures {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let p2phost = |verb: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_p2phost"));
        command
            .args([verb, "--json", "--server", url, "--stun", stun])
            .args(extra);
        command
    };
    let mut sender = Peer::spawn(p2phost("send").arg(source));
    let code = sender.event("code")["code"].as_str().unwrap().to_owned();
    // As in transfer.rs: the receiver starts once the sender has hashed its file.
    sender.event("ready");
    let started = Instant::now();
    let mut receiver = Peer::spawn(
        p2phost("receive")
            .arg("--yes")
            .arg("--out")
            .arg(&out)
            .arg(code),
    );
    while !(sender.exited && receiver.exited) {
        sender.poll();
        receiver.poll();
        std::thread::sleep(Duration::from_millis(10));
    }
    let wall = started.elapsed();
    let (sent, stored) = (sender.event("done"), receiver.event("done"));
    let bytes = stored["bytes"].as_u64().unwrap();
    assert_eq!(bytes, std::fs::metadata(source).unwrap().len());
    let copy = out.join(source.file_name().unwrap());
    assert_eq!(blake3_of(&copy), blake3_of(source), "the copy differs");
    std::fs::remove_dir_all(&out).unwrap();
    Figures {
        stored_mbps: bytes as f64 / stored["seconds"].as_f64().unwrap() / 1e6,
        wall,
        rss_send_mib: sender.peak_rss_kib as f64 / 1024.0,
        rss_recv_mib: receiver.peak_rss_kib as f64 / 1024.0,
        wire_ratio: sent["wire_bytes"].as_f64().unwrap() / sent["bytes"].as_f64().unwrap(),
    }
}

/// `256MiB` → bytes (units B, KiB, MiB, GiB).
fn parse_size(s: &str) -> u64 {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => panic!("BENCH_SIZE: unknown unit {other:?} (B, KiB, MiB, GiB)"),
    };
    digits.parse::<u64>().unwrap() * scale
}

/// Lines of 4 to 15 words drawn from a small vocabulary, like a log or prose: text lz4 can shrink.
fn write_text_file(path: &Path, size: u64) {
    const VOCABULARY: &str = "the transfer of a file peer to chunk plugin script and is sent received \
        over channel data with hook bytes in on signaling server code offer done error warning info \
        connection established closed hash verified stored network loopback time seconds memory \
        sandbox call returns pass replace abort compress";
    let words: Vec<&str> = VOCABULARY.split_whitespace().collect();
    let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let (mut state, mut written, mut line) = (0x2545_F491_u64, 0u64, 0u64);
    let mut text = String::new();
    while written < size {
        text.clear();
        line += 1;
        text.push_str(&format!("{line:08} "));
        let r = next(&mut state);
        for i in 0..4 + r % 12 {
            let pick = (next(&mut state) >> (i % 4)) as usize % words.len();
            text.push_str(words[pick]);
            text.push(' ');
        }
        text.push('\n');
        let n = (text.len() as u64).min(size - written) as usize;
        file.write_all(&text.as_bytes()[..n]).unwrap();
        written += n as u64;
    }
    file.into_inner().unwrap().sync_all().unwrap();
}
