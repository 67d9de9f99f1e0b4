//! Daemon sync benchmark (issue 6): two real `p2phost run` daemons on loopback, A serving
//! signaling, each with a send-receive folder; figures beside baselines measured in the same run,
//! and beside Syncthing when it is installed.
//!
//! `cargo bench -p p2phost --bench sync` (env `BENCH_LATENCY_FILES`, default 100;
//! `BENCH_BURST_FILES`, default 10000; `BENCH_PHASES`, default `latency,burst`;
//! `BENCH_SYNCTHING` = `auto` (default: when `syncthing` is on the PATH), `1` or `0`;
//! `BENCH_SYNCTHING_DELAY`, Syncthing's `fsWatcherDelayS`, default 1). `bench/compare_sync.sh`
//! installs Syncthing (Debian's package) and runs this.
//!
//! 1. **One file at a time**: a 64 KiB file of random bytes is written to `NAME.tmp` in A's folder
//!    and renamed to `NAME` (as editors save); the clock starts when the rename returns and stops
//!    when B's copy reads equal (polled every millisecond); the next file is dropped 50 ms later.
//!    For p2phost the daemon's log splits each figure: drop → `queued` on A (the watcher: its
//!    debounce window and 500 ms settle, then the hash and the queue's commit) and `queued` →
//!    arrived (connection, transfer, B's fsync and rename); and the daemon's watcher runs alone
//!    (`sync::FolderWatcher`, same settle time, in this process: drop → its `Change`), which
//!    shows what the settle time costs on its own. Baselines, same files: `p2phost send`
//!    started the moment the file lands and `p2phost receive` the moment its code appears (one-off
//!    transfers through an in-process signaling server: no watcher, a fresh connection, two
//!    process starts); and a floor, inotify + local copy: this process watches a folder and copies
//!    each file that lands to another (write, fsync, rename), no settle, no network.
//! 2. **A burst**: a tree of small files (1–4 KiB, 200 folders two levels deep) is written to a
//!    staging folder, synced to disk, then renamed into A's folder in one step; the clock stops
//!    when every file is on B with its size (B's folder walked every 250 ms), and then every
//!    file's content is compared. Peak RSS (`VmHWM`) and CPU seconds of each daemon, started
//!    fresh for this phase. Baselines: `cp -r` of the staged tree on the same disk (and the `sync`
//!    after it, timed apart), and one `p2phost send` of the tree as a folder.
//! 3. **Syncthing**, when installed: the same two phases with two instances set up as in
//!    `common/syncthing.rs`, the same files, the same clocks.
//!
//! Every process (daemons, Syncthing, one-off peers) is its own; this process only writes files,
//! watches the folders and reads `/proc`. Nothing is asserted about speed; a file that never
//! arrives, or arrives different, stops the benchmark with the logs.

// A benchmark's main prints its table and may panic on any failure: that is its whole job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/daemon.rs"]
mod daemon;
#[allow(dead_code)]
#[path = "common/files.rs"]
mod files;
#[path = "common/peer.rs"]
mod peer;
#[path = "common/syncthing.rs"]
mod syncthing;
use daemon::DaemonPair;
use files::{next, start_signaling};
use p2phost::sync::FolderWatcher;
use peer::{Peer, cpu_seconds, peak_rss_kib};
use syncthing::SyncthingPair;

/// Size of each file of the one-at-a-time phase.
const LATENCY_BYTES: usize = 64 * 1024;
/// How often the receiving side is looked at in the one-at-a-time phase.
const FILE_POLL: Duration = Duration::from_millis(1);
/// Pause between an arrival and the next drop.
const BETWEEN: Duration = Duration::from_millis(50);
/// How often the receiving folder is walked in the burst phase.
const TREE_POLL: Duration = Duration::from_millis(250);
/// How long one file may take before the benchmark gives up.
const FILE_PATIENCE: Duration = Duration::from_secs(60);
/// How long a burst may take.
const BURST_PATIENCE: Duration = Duration::from_secs(1800);
/// Other work beyond this many cores (on average) beside a burst disturbed it.
const DISTURBED_CORES: f64 = 0.5;
/// The daemon's settle time (`daemon::SETTLE`), for the text.
const SETTLE_MS: u64 = 500;

fn main() {
    let latency_files = env_number("BENCH_LATENCY_FILES", 100);
    let burst_files = env_number("BENCH_BURST_FILES", 10_000);
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "latency,burst".into());
    let syncthing_delay = env_number("BENCH_SYNCTHING_DELAY", 1) as u32;
    let syncthing = match std::env::var("BENCH_SYNCTHING").as_deref() {
        Ok("0") => None,
        Ok("1") => Some(syncthing::version().expect(
            "BENCH_SYNCTHING=1 but `syncthing` is not installed (Debian: apt-get install syncthing)",
        )),
        _ => syncthing::version(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // For the one-off baselines; served by the runtime's threads.
    let (url, stun) = runtime.block_on(start_signaling());
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "daemon sync benchmark on loopback: {cores} cores shared by every process; load average {} at the start",
        load_average()
    );
    println!(
        "p2phost release (daemons: settle {SETTLE_MS} ms); {}",
        syncthing.as_deref().map_or_else(
            || if std::env::var("BENCH_SYNCTHING").as_deref() == Ok("0") {
                "Syncthing left out (BENCH_SYNCTHING=0)".to_owned()
            } else {
                "Syncthing not installed (apt-get install syncthing, or bench/compare_sync.sh)"
                    .to_owned()
            },
            |v| format!("{v}, fsWatcherDelayS={syncthing_delay}")
        )
    );
    let oneshot = OneShot { url, stun };

    if phases.contains("latency") {
        println!();
        println!(
            "1. one file at a time: {latency_files} files of {} KiB, written as NAME.tmp and renamed into place; time until the other side's copy reads equal",
            LATENCY_BYTES / 1024
        );
        print_latency_header();
        let base = dir.path().join("latency-p2phost");
        let (totals, queued) = latency_daemons(&base, &runtime, latency_files);
        print_latency("p2phost daemons", &totals);
        let to_queued: Vec<Duration> = queued.iter().flatten().copied().collect();
        let after_queued: Vec<Duration> = totals
            .iter()
            .zip(&queued)
            .filter_map(|(total, queued)| queued.map(|q| total.saturating_sub(q)))
            .collect();
        print_latency("  drop -> queued on A", &to_queued);
        print_latency("  queued -> on B", &after_queued);
        let base = dir.path().join("latency-watcher");
        print_latency(
            "  watcher alone",
            &latency_watcher(&base, &runtime, latency_files),
        );
        let base = dir.path().join("latency-oneshot");
        print_latency(
            "p2phost send/receive",
            &latency_oneshot(&base, &oneshot, latency_files),
        );
        let base = dir.path().join("latency-floor");
        print_latency("inotify + local copy", &latency_floor(&base, latency_files));
        if syncthing.is_some() {
            let base = dir.path().join("latency-syncthing");
            print_latency(
                &format!("Syncthing (delay {syncthing_delay} s)"),
                &latency_syncthing(&base, syncthing_delay, latency_files),
            );
        }
        println!("load average {} after phase 1", load_average());
    }

    if phases.contains("burst") {
        let tree = Tree::new(burst_files);
        println!();
        println!(
            "2. a burst: {} files of 1-4 KiB ({:.1} MB) in 200 folders, renamed into the folder in one step; time until all are on the other side",
            tree.files.len(),
            tree.bytes as f64 / 1e6
        );
        print_burst_header();
        let base = dir.path().join("burst-p2phost");
        let (figures, notes) = burst_daemons(&base, &runtime, &tree);
        print_burst("p2phost daemons", &figures, tree.files.len());
        for note in notes {
            println!("  {note}");
        }
        let base = dir.path().join("burst-oneshot");
        print_burst(
            "p2phost send (folder)",
            &burst_oneshot(&base, &oneshot, &tree),
            tree.files.len(),
        );
        let base = dir.path().join("burst-cp");
        let (figures, sync_seconds) = burst_cp(&base, &tree);
        print_burst("cp -r", &figures, tree.files.len());
        println!("  then sync: {sync_seconds:.2} s (cp does not sync; the others sync every file)");
        if syncthing.is_some() {
            let base = dir.path().join("burst-syncthing");
            print_burst(
                &format!("Syncthing (delay {syncthing_delay} s)"),
                &burst_syncthing(&base, syncthing_delay, &tree),
                tree.files.len(),
            );
        }
        println!("load average {} after phase 2", load_average());
    }
}

// ---------------------------------------------------------------------------------------------
// Phase 1: one file at a time.

/// The content of file `i`: random bytes of its own.
fn latency_content(i: usize) -> Vec<u8> {
    random_bytes(0xD1B5_4A32_D192_ED03 ^ i as u64, LATENCY_BYTES)
}

fn latency_name(i: usize) -> String {
    format!("file-{i:03}.bin")
}

/// Writes `NAME.tmp` in `dir` and renames it to `NAME`: when that returns, and the wall clock then.
fn drop_file(dir: &Path, name: &str, data: &[u8]) -> (Instant, SystemTime) {
    let temporary = dir.join(format!("{name}.tmp"));
    std::fs::write(&temporary, data).unwrap();
    std::fs::rename(&temporary, dir.join(name)).unwrap();
    (Instant::now(), SystemTime::now())
}

/// Waits until `path` reads `data`; the time since `since`.
fn wait_for_file(path: &Path, data: &[u8], since: Instant, logs: impl Fn() -> String) -> Duration {
    loop {
        let arrived = std::fs::metadata(path).is_ok_and(|m| m.len() == data.len() as u64)
            && std::fs::read(path).is_ok_and(|d| d == data);
        if arrived {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < FILE_PATIENCE,
            "{} never arrived whole\n{}",
            path.display(),
            logs()
        );
        std::thread::sleep(FILE_POLL);
    }
}

/// Per file: the total, and drop → `queued` from A's log.
fn latency_daemons(
    base: &Path,
    runtime: &tokio::runtime::Runtime,
    files: usize,
) -> (Vec<Duration>, Vec<Option<Duration>>) {
    std::fs::create_dir_all(base).unwrap();
    let mut pair = DaemonPair::start(base, runtime);
    let source = pair.a.folder().join("latency");
    let target = pair.b.folder().join("latency");
    std::fs::create_dir_all(&source).unwrap();
    // The watcher walks a new folder: let that pass.
    std::thread::sleep(Duration::from_secs(1));
    let mut totals = Vec::new();
    let mut dropped = Vec::new();
    for i in 0..files {
        let (name, data) = (latency_name(i), latency_content(i));
        let (since, wall) = drop_file(&source, &name, &data);
        totals.push(wait_for_file(&target.join(&name), &data, since, || {
            pair.logs()
        }));
        dropped.push((format!("latency/{name}"), wall));
        std::thread::sleep(BETWEEN);
    }
    let queued = queued_times(&pair.a.log_text());
    pair.stop();
    let to_queued = dropped
        .iter()
        .map(|(path, wall)| {
            queued
                .get(path)
                .and_then(|at| at.duration_since(*wall).ok())
        })
        .collect();
    (totals, to_queued)
}

/// The daemon's watcher on its own: a `FolderWatcher` with the daemon's settle time, in this
/// process, timed from the drop to its `Change`.
fn latency_watcher(base: &Path, runtime: &tokio::runtime::Runtime, files: usize) -> Vec<Duration> {
    std::fs::create_dir_all(base).unwrap();
    let settle = Duration::from_millis(SETTLE_MS);
    let (watcher, mut changes) =
        FolderWatcher::start(vec![(0, base.to_path_buf(), Vec::new())], settle).unwrap();
    let mut totals = Vec::new();
    for i in 0..files {
        let (name, data) = (latency_name(i), latency_content(i));
        let (since, _) = drop_file(base, &name, &data);
        let change = runtime
            .block_on(async { tokio::time::timeout(FILE_PATIENCE, changes.recv()).await })
            .expect("the watcher never reported the file")
            .expect("the watcher stopped");
        totals.push(since.elapsed());
        assert_eq!(change.path, name);
        std::thread::sleep(BETWEEN);
    }
    drop(watcher);
    totals
}

/// The addresses of a signaling server for one-off transfers.
struct OneShot {
    url: String,
    stun: String,
}

impl OneShot {
    fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_p2phost"));
        command
            .arg(subcommand)
            .args(["--json", "--server", &self.url, "--stun", &self.stun]);
        command
    }

    /// Sends `source` to `out` with two processes; the receiver starts when the code appears.
    /// Both peers, once the receiver has exited.
    fn transfer(&self, source: &Path, out: &Path) -> (Peer, Peer) {
        let mut sender = Peer::spawn(self.command("send").arg(source));
        let code = sender.event("code")["code"].as_str().unwrap().to_owned();
        let receiver = Peer::spawn(
            self.command("receive")
                .args(["--yes", "--out"])
                .arg(out)
                .arg(code),
        );
        (sender, receiver)
    }
}

/// Polls both until they have exited (successfully: `Peer::poll` asserts it).
fn wait_exit(sender: &mut Peer, receiver: &mut Peer) {
    let deadline = Instant::now() + BURST_PATIENCE;
    while !(sender.exited && receiver.exited) {
        assert!(Instant::now() < deadline, "a one-off peer never exited");
        if !sender.exited {
            sender.poll();
        }
        if !receiver.exited {
            receiver.poll();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn latency_oneshot(base: &Path, oneshot: &OneShot, files: usize) -> Vec<Duration> {
    let (source, out) = (base.join("source"), base.join("out"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let mut totals = Vec::new();
    for i in 0..files {
        let (name, data) = (latency_name(i), latency_content(i));
        let (since, _) = drop_file(&source, &name, &data);
        let (mut sender, mut receiver) = oneshot.transfer(&source.join(&name), &out);
        totals.push(wait_for_file(&out.join(&name), &data, since, String::new));
        wait_exit(&mut sender, &mut receiver);
        std::thread::sleep(BETWEEN);
    }
    totals
}

/// The floor: this process watches `source` with inotify (notify, no debouncing) and copies
/// every file that lands there to `target` (write `.part`, fsync, rename).
fn latency_floor(base: &Path, files: usize) -> Vec<Duration> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let (source, target) = (base.join("source"), base.join("target"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    let into = target.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) {
            return;
        }
        for path in &event.paths {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") || !path.is_file() {
                continue;
            }
            let Ok(data) = std::fs::read(path) else {
                continue;
            };
            let part = into.join(format!("{name}.part"));
            let mut file = std::fs::File::create(&part).unwrap();
            file.write_all(&data).unwrap();
            file.sync_all().unwrap();
            std::fs::rename(&part, into.join(name)).unwrap();
        }
    })
    .unwrap();
    watcher.watch(&source, RecursiveMode::NonRecursive).unwrap();
    let mut totals = Vec::new();
    for i in 0..files {
        let (name, data) = (latency_name(i), latency_content(i));
        let (since, _) = drop_file(&source, &name, &data);
        totals.push(wait_for_file(
            &target.join(&name),
            &data,
            since,
            String::new,
        ));
        std::thread::sleep(BETWEEN);
    }
    totals
}

fn latency_syncthing(base: &Path, delay_s: u32, files: usize) -> Vec<Duration> {
    std::fs::create_dir_all(base).unwrap();
    let mut pair = SyncthingPair::start(base, delay_s);
    let source = pair.folder_a().join("latency");
    let target = pair.folder_b().join("latency");
    std::fs::create_dir_all(&source).unwrap();
    // Let the new folder reach B first, as the daemons' phase lets their watcher settle.
    let deadline = Instant::now() + FILE_PATIENCE;
    while !target.is_dir() {
        assert!(Instant::now() < deadline, "no folder on B\n{}", pair.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut totals = Vec::new();
    for i in 0..files {
        let (name, data) = (latency_name(i), latency_content(i));
        let (since, _) = drop_file(&source, &name, &data);
        totals.push(wait_for_file(&target.join(&name), &data, since, || {
            pair.logs()
        }));
        std::thread::sleep(BETWEEN);
    }
    pair.stop();
    totals
}

/// When A's daemon queued each path (its `queued` log lines), by path.
fn queued_times(log: &str) -> HashMap<String, SystemTime> {
    log.lines()
        .filter(|line| line.contains(" queued "))
        .filter_map(|line| {
            let path = line.split_once(" path=\"")?.1.split_once('"')?.0;
            Some((path.to_owned(), log_time(line)?))
        })
        .collect()
}

/// The time at the start of a tracing log line: `2026-11-26T15:39:10.444272Z`.
fn log_time(line: &str) -> Option<SystemTime> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut date = date.split('-').map(|n| n.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock = clock.split(':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    let nanos: u32 = format!("{fraction:0<9}").get(..9)?.parse().ok()?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(seconds).ok()?, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn print_latency_header() {
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "path", "p50 ms", "p99 ms", "mean ms", "max ms", "files"
    );
}

fn print_latency(name: &str, samples: &[Duration]) {
    if samples.is_empty() {
        println!("{name:<26} (no samples)");
        return;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{name:<26} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6}",
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        mean,
        ms[ms.len() - 1],
        ms.len()
    );
}

/// Nearest rank, of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------------
// Phase 2: a burst of small files.

/// The burst's files: relative path under `burst/`, content.
struct Tree {
    files: Vec<(String, Vec<u8>)>,
    bytes: u64,
}

impl Tree {
    /// 1–4 KiB each, in 20 × 10 folders, the same every run.
    fn new(count: usize) -> Self {
        let mut sizes = 0x2545_F491_4F6C_DD1D_u64;
        let files: Vec<(String, Vec<u8>)> = (0..count)
            .map(|i| {
                let size = 1024 + (next(&mut sizes) % (3 * 1024 + 1)) as usize;
                let path = format!("d{:02}/e{:02}/f{i:05}.bin", i % 20, (i / 20) % 10);
                (path, random_bytes(i as u64 + 1, size))
            })
            .collect();
        let bytes = files.iter().map(|(_, d)| d.len() as u64).sum();
        Self { files, bytes }
    }

    /// Writes the tree under `root` and syncs it all to disk.
    fn write(&self, root: &Path) {
        for (path, data) in &self.files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        sync_disk();
    }

    /// Panics unless every file under `root` is whole.
    fn verify(&self, root: &Path, what: &str) {
        let bad: Vec<&str> = self
            .files
            .iter()
            .filter(|(path, data)| std::fs::read(root.join(path)).ok().as_ref() != Some(data))
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(
            bad.is_empty(),
            "{what}: {} files differ, e.g. {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
    }
}

/// What one burst measured.
struct Burst {
    /// From the rename into the folder (or the command's start) to the last file on B.
    total: Duration,
    /// To the first file on B.
    first: Option<Duration>,
    /// Peak RSS (MiB) and CPU seconds of the two processes, A / sender first.
    rss_mib: [f64; 2],
    cpu: [f64; 2],
    /// CPU seconds the rest of the machine used meanwhile (this process included).
    cpu_other: f64,
}

/// Waits until every file of `tree` is under `root` with its size, walking every
/// [`TREE_POLL`]; then checks every file's content.
fn wait_for_tree(
    root: &Path,
    tree: &Tree,
    since: Instant,
    what: &str,
    logs: impl Fn() -> String,
) -> (Duration, Option<Duration>) {
    let mut remaining: Vec<usize> = (0..tree.files.len()).collect();
    let mut first = None;
    let mut reported = Instant::now();
    loop {
        remaining.retain(|&i| {
            let (path, data) = &tree.files[i];
            std::fs::metadata(root.join(path)).map_or(true, |m| m.len() != data.len() as u64)
        });
        if first.is_none() && remaining.len() < tree.files.len() {
            first = Some(since.elapsed());
        }
        if remaining.is_empty() {
            let total = since.elapsed();
            tree.verify(root, what);
            return (total, first);
        }
        assert!(
            since.elapsed() < BURST_PATIENCE,
            "{what}: {} files never arrived\n{}",
            remaining.len(),
            logs()
        );
        if reported.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "  ({what}: {} of {} after {:.0} s)",
                tree.files.len() - remaining.len(),
                tree.files.len(),
                since.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
        std::thread::sleep(TREE_POLL);
    }
}

/// Measures two long-running processes through a burst dropped into `source`.
fn burst_between(
    pids: [u32; 2],
    stage: &Path,
    source: &Path,
    target: &Path,
    tree: &Tree,
    what: &str,
    logs: impl Fn() -> String,
) -> Burst {
    let cpu_before = pids.map(|pid| cpu_seconds(pid).unwrap_or_default());
    let machine_before = machine_cpu_seconds();
    std::fs::rename(stage, source).unwrap();
    let since = Instant::now();
    let (total, first) = wait_for_tree(target, tree, since, what, logs);
    let cpu = [0, 1].map(|i| cpu_seconds(pids[i]).unwrap_or_default() - cpu_before[i]);
    let machine = machine_cpu_seconds() - machine_before;
    Burst {
        total,
        first,
        rss_mib: pids.map(|pid| peak_rss_kib(pid).unwrap_or_default() as f64 / 1024.0),
        cpu,
        // Read at slightly different moments: a hair below zero on an idle machine.
        cpu_other: (machine - cpu[0] - cpu[1]).max(0.0),
    }
}

fn burst_daemons(
    base: &Path,
    runtime: &tokio::runtime::Runtime,
    tree: &Tree,
) -> (Burst, Vec<String>) {
    std::fs::create_dir_all(base).unwrap();
    let stage = base.join("stage");
    tree.write(&stage);
    let mut pair = DaemonPair::start(base, runtime);
    let rss_idle = [pair.a.pid(), pair.b.pid()]
        .map(|pid| peak_rss_kib(pid).unwrap_or_default() as f64 / 1024.0);
    let dropped = SystemTime::now();
    let figures = burst_between(
        [pair.a.pid(), pair.b.pid()],
        &stage,
        &pair.a.folder().join("burst"),
        &pair.b.folder().join("burst"),
        tree,
        "p2phost daemons",
        || pair.logs(),
    );
    let (log_a, log_b) = (pair.a.log_text(), pair.b.log_text());
    pair.stop();
    let queued = queued_times(&log_a);
    let last_queued = queued
        .values()
        .max()
        .and_then(|t| t.duration_since(dropped).ok());
    let transfers = log_a.lines().filter(|l| l.contains(" sent ")).count();
    let received = log_b.lines().filter(|l| l.contains(" received ")).count();
    let notes = vec![
        format!(
            "A queued {} files, the last {:.1} s after the drop; A sent {transfers} transfers, B logged {received}",
            queued.len(),
            last_queued.map_or(f64::NAN, |d| d.as_secs_f64()),
        ),
        format!(
            "peak RSS before the burst (start-up): A {:.1} MiB, B {:.1} MiB",
            rss_idle[0], rss_idle[1]
        ),
    ];
    (figures, notes)
}

fn burst_oneshot(base: &Path, oneshot: &OneShot, tree: &Tree) -> Burst {
    let (stage, out) = (base.join("burst"), base.join("out"));
    tree.write(&stage);
    std::fs::create_dir_all(&out).unwrap();
    let machine_before = machine_cpu_seconds();
    let since = Instant::now();
    let (mut sender, mut receiver) = oneshot.transfer(&stage, &out);
    let mut first = None;
    let first_path = out.join("burst").join(&tree.files[0].0);
    while !receiver.exited {
        sender.poll();
        receiver.poll();
        if first.is_none() && first_path.exists() {
            first = Some(since.elapsed());
        }
        assert!(since.elapsed() < BURST_PATIENCE, "p2phost send never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
    let total = since.elapsed();
    wait_exit(&mut sender, &mut receiver);
    tree.verify(&out.join("burst"), "p2phost send");
    let cpu = [sender.cpu_seconds, receiver.cpu_seconds];
    Burst {
        total,
        first,
        rss_mib: [sender.peak_rss_kib, receiver.peak_rss_kib].map(|k| k as f64 / 1024.0),
        cpu,
        cpu_other: (machine_cpu_seconds() - machine_before - cpu[0] - cpu[1]).max(0.0),
    }
}

/// `cp -r` of the staged tree, and how long the `sync` after it takes.
fn burst_cp(base: &Path, tree: &Tree) -> (Burst, f64) {
    let (stage, out) = (base.join("burst"), base.join("out"));
    tree.write(&stage);
    let machine_before = machine_cpu_seconds();
    let since = Instant::now();
    // bash's `time` gives cp's own CPU seconds (user, system) on stderr.
    let output = Command::new("bash")
        .arg("-c")
        .arg("TIMEFORMAT='%U %S'; time cp -r \"$0\" \"$1\"")
        .arg(&stage)
        .arg(&out)
        .output()
        .unwrap();
    let total = since.elapsed();
    assert!(output.status.success(), "cp -r failed: {output:?}");
    let machine = machine_cpu_seconds() - machine_before;
    let cp_cpu: f64 = String::from_utf8_lossy(&output.stderr)
        .split_whitespace()
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    let synced = Instant::now();
    sync_disk();
    let sync_seconds = synced.elapsed().as_secs_f64();
    tree.verify(&out, "cp -r");
    let figures = Burst {
        total,
        first: None,
        rss_mib: [f64::NAN; 2],
        cpu: [cp_cpu, f64::NAN],
        cpu_other: (machine - cp_cpu).max(0.0),
    };
    (figures, sync_seconds)
}

fn burst_syncthing(base: &Path, delay_s: u32, tree: &Tree) -> Burst {
    std::fs::create_dir_all(base).unwrap();
    let stage = base.join("stage");
    tree.write(&stage);
    let mut pair = SyncthingPair::start(base, delay_s);
    let figures = burst_between(
        pair.pids(),
        &stage,
        &pair.folder_a().join("burst"),
        &pair.folder_b().join("burst"),
        tree,
        "Syncthing",
        || pair.logs(),
    );
    pair.stop();
    figures
}

fn print_burst_header() {
    println!(
        "{:<26} {:>8} {:>8} {:>8} {:>10} {:>10} {:>7} {:>7} {:>7}",
        "path", "total s", "first s", "files/s", "RSS A", "RSS B", "CPU A", "CPU B", "CPU oth"
    );
}

fn print_burst(name: &str, burst: &Burst, files: usize) {
    let seconds = |v: f64| {
        if v.is_nan() {
            "-".to_owned()
        } else {
            format!("{v:.2}")
        }
    };
    let mib = |v: f64| {
        if v.is_nan() {
            "-".to_owned()
        } else {
            format!("{v:.1} MiB")
        }
    };
    println!(
        "{name:<26} {:>8.2} {:>8} {:>8.0} {:>10} {:>10} {:>7} {:>7} {:>7}",
        burst.total.as_secs_f64(),
        seconds(burst.first.map_or(f64::NAN, |d| d.as_secs_f64())),
        files as f64 / burst.total.as_secs_f64(),
        mib(burst.rss_mib[0]),
        mib(burst.rss_mib[1]),
        seconds(burst.cpu[0]),
        seconds(burst.cpu[1]),
        seconds(burst.cpu_other),
    );
    if burst.cpu_other / burst.total.as_secs_f64() > DISTURBED_CORES {
        println!(
            "  * disturbed: other work used {:.1} cores on average beside it; compare with care",
            burst.cpu_other / burst.total.as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// `len` bytes from xorshift64* seeded with `seed`.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&next(&mut state).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

fn sync_disk() {
    let status = Command::new("sync").status().unwrap();
    assert!(status.success(), "sync failed");
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU seconds all processors have spent running tasks since boot (`/proc/stat`: user, nice,
/// system, steal).
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
    let busy: u64 = [0, 1, 2, 7].iter().filter_map(|&i| ticks.get(i)).sum();
    // USER_HZ is 100 on Linux.
    busy as f64 / 100.0
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}
