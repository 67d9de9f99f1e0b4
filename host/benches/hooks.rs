//! Hooks benchmark (issue 5): what a no-op chunk hook costs a transfer, and what the compress
//! plugin saves on the wire.
//!
//! `cargo bench -p p2phost --bench hooks` (env `BENCH_SIZE`, default `256MiB`; `BENCH_ROUNDS`,
//! default 5; the components come from `bash plugins/build.sh`, in `plugins/out/` or
//! `$P2P_PLUGINS_OUT`). The cost of each call on its own is `benches/hooks_calls.rs`.
//!
//! One file of random bytes is sent on loopback by the release `p2phost` (two processes, through an
//! in-process signaling server, as in `transfer.rs`) three ways, in rounds whose order rotates: no
//! hooks, `--plugin noop.wasm` on both sides, and a no-op Lua chunk hook (`{bytes = true}`) on both
//! sides. Then a text corpus without and with `--plugin compress.wasm` on both sides, alternating,
//! as many rounds. Medians and ranges over the rounds, so the run-to-run noise shows beside the
//! overhead. Every copy is checked with BLAKE3; speed is never asserted.

// A benchmark's main prints its table and may panic on any failure: that is its whole job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common/files.rs"]
mod files;
#[path = "common/peer.rs"]
mod peer;
#[path = "common/text.rs"]
mod text;
use files::{blake3_of, human, start_signaling, write_random_file};
use peer::Peer;

/// The aim of issue 5 for the no-op hooks: at most this much slower than no hooks.
const AIM_OVERHEAD_PCT: f64 = 5.0;
/// The text corpus for the compression rows.
const CORPUS: usize = 64 << 20;

const LUA_NOOP: &str = "p2p.on(\"chunk\", function(file, chunk) end, {bytes=true})\n";

/// Other work that used more than this share of a core during a transfer disturbed it.
const DISTURBED_CORES: f64 = 0.5;

/// What one transfer measured.
struct Figures {
    /// File bytes / seconds of the receiver's `done` event.
    stored_mbps: f64,
    /// From starting the receiver (once the sender's offer is ready) until both have exited.
    wall: Duration,
    /// CPU seconds (user + system) of each process, from its start to its exit.
    cpu_send: f64,
    cpu_recv: f64,
    /// CPU seconds the rest of the machine's tasks used meanwhile (this watcher, and any other
    /// work that disturbs the run), and time the hypervisor stole.
    cpu_other: f64,
    rss_send_mib: f64,
    rss_recv_mib: f64,
    /// The sender's `wire_bytes` over its `bytes`.
    wire_ratio: f64,
}

fn main() {
    let size = parse_size(&std::env::var("BENCH_SIZE").unwrap_or_else(|_| "256MiB".into()));
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .map_or(5, |s| s.parse().expect("BENCH_ROUNDS: a number of rounds"));
    assert!(rounds > 0, "BENCH_ROUNDS: at least 1");
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
        "{rounds} rounds; within a round the order rotates (round 1: as listed, round 2 starts with the second, ...)"
    );
    println!(
        "{:<5} {:<11} {:>11} {:>7} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8}",
        "round",
        "hooks",
        "stored MB/s",
        "wall s",
        "CPU send",
        "CPU recv",
        "CPU other",
        "RSS send",
        "RSS recv",
        "overhead"
    );
    // mbps[v][r]: stored MB/s of variant v in round r; overheads[v][r] against that round's no hooks.
    let mut mbps = vec![Vec::new(); variants.len()];
    let mut overheads = vec![Vec::new(); variants.len()];
    // cpu[v][r]: CPU seconds of both processes together.
    let mut cpu = vec![Vec::new(); variants.len()];
    let mut disturbed = 0;
    for round in 0..rounds {
        let mut figures: Vec<Option<Figures>> = variants.iter().map(|_| None).collect();
        for k in 0..variants.len() {
            let v = (round + k) % variants.len();
            figures[v] = Some(transfer(&url, &stun, &source, dir.path(), &variants[v].1));
        }
        let figures: Vec<Figures> = figures.into_iter().map(Option::unwrap).collect();
        let base = figures[0].stored_mbps;
        for (v, f) in figures.iter().enumerate() {
            mbps[v].push(f.stored_mbps);
            disturbed += usize::from(f.disturbed());
            cpu[v].push(f.cpu_send + f.cpu_recv);
            let pct = overhead(base, f.stored_mbps);
            overheads[v].push(pct);
            println!(
                "{:<5} {:<11} {:>11.1} {:>7.2} {:>8.2} {:>8.2} {:>9} {:>5.1} MiB {:>5.1} MiB {:>8}",
                round + 1,
                variants[v].0,
                f.stored_mbps,
                f.wall.as_secs_f64(),
                f.cpu_send,
                f.cpu_recv,
                f.other(),
                f.rss_send_mib,
                f.rss_recv_mib,
                if v == 0 {
                    "-".to_owned()
                } else {
                    format!("{pct:+.1}%")
                },
            );
        }
    }
    std::fs::remove_file(&source).unwrap();

    println!("\nover {rounds} rounds: median (min..max)");
    println!(
        "{:<11} {:>22} {:>24} {:>10} {:>20}",
        "hooks", "stored MB/s", "overhead per round", "of medians", "CPU s, both peers"
    );
    for (v, (name, _)) in variants.iter().enumerate() {
        let (m, lo, hi) = spread(&mbps[v]);
        let (per_round, of_medians) = if v == 0 {
            ("-".to_owned(), "-".to_owned())
        } else {
            let (pm, plo, phi) = spread(&overheads[v]);
            (
                format!("{pm:+.1}% ({plo:+.1}..{phi:+.1})"),
                format!("{:+.1}%", overhead(spread(&mbps[0]).0, m)),
            )
        };
        let (c, clo, chi) = spread(&cpu[v]);
        println!(
            "{name:<11} {:>22} {per_round:>24} {of_medians:>10} {:>20}",
            format!("{m:.1} ({lo:.1}..{hi:.1})"),
            format!("{c:.2} ({clo:.2}..{chi:.2})"),
        );
    }
    let (_, lo, hi) = spread(&mbps[0]);
    let noise = (hi / lo - 1.0) * 100.0;
    println!("noise: the no-hooks runs alone spread {noise:.1}% (max / min - 1)");
    if disturbed > 0 {
        println!(
            "* {disturbed} transfers had more than {DISTURBED_CORES} of a core of other work beside them (CPU other): disturbed"
        );
    }

    let text = dir.path().join("corpus.txt");
    std::fs::write(&text, text::text_corpus(CORPUS)).unwrap();
    println!(
        "\ncompression, {} text corpus, {rounds} rounds alternating (round 2 starts with compress.wasm, ...)",
        human(CORPUS as u64)
    );
    println!(
        "{:<5} {:<13} {:>11} {:>7} {:>8} {:>8} {:>9} {:>10}",
        "round",
        "hooks",
        "stored MB/s",
        "wall s",
        "CPU send",
        "CPU recv",
        "CPU other",
        "wire/bytes"
    );
    let packing = [
        ("no hooks", Vec::new()),
        ("compress.wasm", hooks("--plugin", &compress)),
    ];
    let mut packed_mbps = [Vec::new(), Vec::new()];
    let mut packed_disturbed = 0;
    let mut wire = [0.0; 2];
    for round in 0..rounds {
        for k in 0..2 {
            let v = (round + k) % 2;
            let f = transfer(&url, &stun, &text, dir.path(), &packing[v].1);
            packed_mbps[v].push(f.stored_mbps);
            packed_disturbed += usize::from(f.disturbed());
            wire[v] = f.wire_ratio;
            println!(
                "{:<5} {:<13} {:>11.1} {:>7.2} {:>8.2} {:>8.2} {:>9} {:>10.3}",
                round + 1,
                packing[v].0,
                f.stored_mbps,
                f.wall.as_secs_f64(),
                f.cpu_send,
                f.cpu_recv,
                f.other(),
                f.wire_ratio
            );
        }
    }
    let ((plain, plain_lo, plain_hi), (packed, packed_lo, packed_hi)) =
        (spread(&packed_mbps[0]), spread(&packed_mbps[1]));
    println!(
        "compression: wire/bytes {:.3} without, {:.3} with compress.wasm; median {plain:.1} MB/s ({plain_lo:.1}..{plain_hi:.1}) without, {packed:.1} MB/s ({packed_lo:.1}..{packed_hi:.1}) with ({:.2}x)",
        wire[0],
        wire[1],
        packed / plain,
    );
    if packed_disturbed > 0 {
        println!("* {packed_disturbed} of these transfers were disturbed by other work");
    }

    println!(
        "\naim (issue 5): no-op hooks cost <= {AIM_OVERHEAD_PCT}% (median of the per-round overheads)"
    );
    for (v, (name, _)) in variants.iter().enumerate().skip(1) {
        let (pct, lo, hi) = spread(&overheads[v]);
        let met = if pct <= AIM_OVERHEAD_PCT {
            "met".to_owned()
        } else if pct < noise {
            format!("NOT met, but within the noise ({noise:.1}%)")
        } else {
            "NOT met".to_owned()
        };
        println!("  {name:<11} {pct:+6.1}%  {met}  (rounds {lo:+.1}..{hi:+.1})");
    }
}

/// Median, min and max.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

impl Figures {
    /// The other CPU, marked `*` if it disturbed the run.
    fn other(&self) -> String {
        let mark = if self.disturbed() { "*" } else { "" };
        format!("{:.2}{mark}", self.cpu_other)
    }

    fn disturbed(&self) -> bool {
        self.cpu_other > DISTURBED_CORES * self.wall.as_secs_f64()
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
    let busy_before = machine_cpu_seconds();
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
        cpu_send: sender.cpu_seconds,
        cpu_recv: receiver.cpu_seconds,
        cpu_other: (machine_cpu_seconds()
            - busy_before
            - sender.cpu_seconds
            - receiver.cpu_seconds)
            .max(0.0),
        rss_send_mib: sender.peak_rss_kib as f64 / 1024.0,
        rss_recv_mib: receiver.peak_rss_kib as f64 / 1024.0,
        wire_ratio: sent["wire_bytes"].as_f64().unwrap() / sent["bytes"].as_f64().unwrap(),
    }
}

/// CPU seconds all processors have spent running tasks since boot (`/proc/stat`: user, nice,
/// system and steal; not interrupt time, which no process is charged with, such as the kernel's
/// work for the loopback packets).
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let busy: u64 = [0, 1, 2, 7].iter().filter_map(|&i| ticks.get(i)).sum();
    // USER_HZ is 100 on Linux.
    busy as f64 / 100.0
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
