//! Transfer benchmark (issue 4): one file of random bytes moved over loopback by `p2phost send` /
//! `p2phost receive`, beside, in the same run, a raw TCP copy and a bare tuned WebRTC data channel.
//!
//! `cargo bench -p p2phost --bench transfer` (env `BENCH_SIZES`, default `64MiB,1GiB`).
//!
//! Every path runs as two processes, as p2phost does (DESIGN §9: a fair baseline does not share a
//! process). The baselines are this binary run again with a role argument:
//! - `bare-send` / `bare-recv`: the session p2phost uses (`p2phost::session`: the same signaling,
//!   SPAKE2, tuned runtime and settings), then no protocol: an 8-byte length, the file in 64 KiB
//!   messages, a 1-byte acknowledgement back.
//! - `tcp-send` / `tcp-recv`: read 64 KiB, write it to a loopback `TcpStream`; the other side
//!   writes what it reads to a file.
//!
//! Every receiver writes to disk and syncs the file before it reports done, as p2phost does. This
//! process watches each receiver's output file (every 1 ms) and the peak RSS (`VmHWM`) of both
//! processes (every 10 ms), checks the copy with BLAKE3 and prints the figures. It never asserts
//! speed.

// A benchmark's main prints its table and may panic on any failure: that is its whole job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use p2phost::code::{DEFAULT_WORDS, TransferCode};
use p2phost::session::{self, Connected, SenderRendezvous, SessionOptions};
use serde_json::{Value, json};
use webrtc::data_channel::DataChannelEvent;

#[path = "common/files.rs"]
mod files;
#[path = "common/peer.rs"]
mod peer;
use files::{blake3_of, human, write_random_file};
use peer::Peer;

/// Bytes per read, per data-channel message and per TCP write: p2phost's frame size.
const PIECE: usize = 64 * 1024;
/// How often the output file is looked at, for the time to first byte and to last byte.
const FILE_POLL: Duration = Duration::from_millis(1);
/// How often the peak RSS is read, in `FILE_POLL` ticks.
const RSS_EVERY: u32 = 10;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bare-send") => bare_send(&args[1], &args[2], Path::new(&args[3])),
        Some("bare-recv") => bare_recv(&args[1], &args[2], Path::new(&args[3]), &args[4]),
        Some("tcp-send") => tcp_send(&args[1], Path::new(&args[2])),
        Some("tcp-recv") => tcp_recv(Path::new(&args[1])),
        // `cargo bench` passes `--bench`.
        _ => run(),
    }
}

// ---------------------------------------------------------------------------------------------
// The driver: files, processes, figures.

#[derive(Clone, Copy)]
enum Route {
    P2phost,
    Bare,
    Tcp,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Self::P2phost => "p2phost",
            Self::Bare => "bare channel",
            Self::Tcp => "raw TCP",
        }
    }
}

/// What one transfer measured.
struct Figures {
    /// File bytes / seconds as the receiver reports them (to the file stored and synced).
    stored_mbps: f64,
    /// File bytes / time from the first to the last byte on disk, as this process saw them.
    wire_mbps: f64,
    /// `receive` start to its exit.
    wall: Duration,
    /// `receive` start to the first byte on disk.
    first_byte: Duration,
    rss_send_mib: f64,
    rss_recv_mib: f64,
    /// CPU seconds (user + system) of each process, start to exit.
    cpu_send: f64,
    cpu_recv: f64,
}

struct Signaling {
    url: String,
    stun: String,
}

fn run() {
    let sizes = parse_sizes(&std::env::var("BENCH_SIZES").unwrap_or_else(|_| "64MiB,1GiB".into()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The server runs on the runtime's worker threads while this thread watches the transfers.
    let signaling = runtime.block_on(start_signaling());
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "transfer benchmark: one file of random bytes on loopback; {cores} cores shared by both peers and this watcher"
    );
    println!(
        "{:>8}  {:<15} {:>11} {:>9} {:>7} {:>10} {:>9} {:>9} {:>11}",
        "size",
        "path",
        "stored MB/s",
        "wire MB/s",
        "wall s",
        "1st byte",
        "RSS send",
        "RSS recv",
        "CPU s s/r"
    );
    let mut all = Vec::new();
    for size in sizes {
        let source = dir.path().join(format!("source-{size}.bin"));
        write_random_file(&source, size);
        let hash = blake3_of(&source);
        let mut row = Vec::new();
        for route in [Route::P2phost, Route::Bare, Route::Tcp] {
            let out = dir
                .path()
                .join(format!("out-{}", route.name().replace(' ', "-")));
            std::fs::create_dir_all(&out).unwrap();
            let figures = measure(route, &signaling, &source, &out, size);
            let received = out.join(source.file_name().unwrap());
            assert_eq!(
                blake3_of(&received),
                hash,
                "{}: the copy differs",
                route.name()
            );
            std::fs::remove_dir_all(&out).unwrap();
            print_row(size, route.name(), &figures);
            row.push(figures);
        }
        print_ratio(size, "p2phost / bare", &row[0], &row[1]);
        print_ratio(size, "p2phost / TCP", &row[0], &row[2]);
        std::fs::remove_file(&source).unwrap();
        all.push((size, row));
    }
    print_aims(&all);
}

fn print_row(size: u64, name: &str, f: &Figures) {
    println!(
        "{:>8}  {:<15} {:>11.1} {:>9.1} {:>7.2} {:>7.0} ms {:>5.1} MiB {:>5.1} MiB {:>5.2}/{:<5.2}",
        human(size),
        name,
        f.stored_mbps,
        f.wire_mbps,
        f.wall.as_secs_f64(),
        f.first_byte.as_secs_f64() * 1e3,
        f.rss_send_mib,
        f.rss_recv_mib,
        f.cpu_send,
        f.cpu_recv,
    );
}

fn print_ratio(size: u64, name: &str, a: &Figures, b: &Figures) {
    println!(
        "{:>8}  {:<15} {:>10.2}x {:>8.2}x {:>6.2}x",
        human(size),
        name,
        a.stored_mbps / b.stored_mbps,
        a.wire_mbps / b.wire_mbps,
        a.wall.as_secs_f64() / b.wall.as_secs_f64(),
    );
}

/// The issue's aims against the p2phost rows.
fn print_aims(all: &[(u64, Vec<Figures>)]) {
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let each = |f: &dyn Fn(&[Figures]) -> String| {
        all.iter()
            .map(|(size, row)| format!("{}: {}", human(*size), f(row)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\naims (issue 4), p2phost:");
    let ratios: Vec<f64> = all
        .iter()
        .map(|(_, r)| r[0].stored_mbps / r[1].stored_mbps)
        .collect();
    println!(
        "  >= 0.8x the bare channel (stored MB/s)  {:<40} {}",
        each(&|r| format!("{:.2}x", r[0].stored_mbps / r[1].stored_mbps)),
        met(ratios.iter().all(|&r| r >= 0.8))
    );
    println!(
        "  first byte < 100 ms                     {:<40} {}",
        each(&|r| format!("{:.0} ms", r[0].first_byte.as_secs_f64() * 1e3)),
        met(all
            .iter()
            .all(|(_, r)| r[0].first_byte < Duration::from_millis(100)))
    );
    println!(
        "  peak RSS < 64 MiB each side             {:<40} {}",
        each(&|r| format!("{:.0}/{:.0} MiB", r[0].rss_send_mib, r[0].rss_recv_mib)),
        met(all
            .iter()
            .all(|(_, r)| r[0].rss_send_mib < 64.0 && r[0].rss_recv_mib < 64.0))
    );
    if let (Some((_, first)), Some((_, last))) = (all.first(), all.last()) {
        // "Flat": the largest file costs at most a quarter more memory than the smallest.
        let growth = (last[0].rss_send_mib / first[0].rss_send_mib)
            .max(last[0].rss_recv_mib / first[0].rss_recv_mib);
        println!(
            "  RSS flat from smallest to largest       {:<40} {}",
            format!("x{growth:.2} at most (flat: <= x1.25)"),
            met(growth <= 1.25)
        );
    }
}

/// A transfer under way: both processes and where the receiver writes.
struct Launched {
    sender: Peer,
    receiver: Peer,
    /// When the receiving side was started.
    started: Instant,
    /// The file being written, and the temporary name it may have meanwhile.
    file: PathBuf,
    partial: Option<PathBuf>,
}

/// Runs one transfer of `source` into `out` along `route`, watching it from here.
fn measure(route: Route, signaling: &Signaling, source: &Path, out: &Path, size: u64) -> Figures {
    let file = out.join(source.file_name().unwrap());
    let Launched {
        mut sender,
        mut receiver,
        started,
        file,
        partial,
    } = match route {
        Route::P2phost => launch_p2phost(signaling, source, out, file),
        Route::Bare => launch_bare(signaling, source, file),
        Route::Tcp => launch_tcp(source, file),
    };
    let watched = watch(
        &mut sender,
        &mut receiver,
        started,
        &file,
        partial.as_deref(),
        size,
    );
    let done = receiver.event("done");
    let bytes = done["bytes"].as_u64().unwrap();
    assert_eq!(bytes, size, "{}: reported {bytes} bytes", route.name());
    let (first, last) = (watched.first_byte.unwrap(), watched.last_byte.unwrap());
    Figures {
        stored_mbps: bytes as f64 / done["seconds"].as_f64().unwrap() / 1e6,
        wire_mbps: bytes as f64 / (last - first).as_secs_f64().max(1e-6) / 1e6,
        wall: watched.receiver_exit,
        first_byte: first,
        rss_send_mib: sender.peak_rss_kib as f64 / 1024.0,
        rss_recv_mib: receiver.peak_rss_kib as f64 / 1024.0,
        cpu_send: sender.cpu_seconds,
        cpu_recv: receiver.cpu_seconds,
    }
}

fn launch_p2phost(signaling: &Signaling, source: &Path, out: &Path, file: PathBuf) -> Launched {
    let p2phost = || Command::new(env!("CARGO_BIN_EXE_p2phost"));
    let mut sender = Peer::spawn(
        p2phost()
            .args(["send", "--json", "--server", &signaling.url])
            .args(["--stun", &signaling.stun])
            .arg(source),
    );
    let code = sender.event("code")["code"].as_str().unwrap().to_owned();
    // The sender hashes its files while its code is shown. The receiver starts once that is done,
    // as when a person types the code: the time to the first byte is then the connection's and
    // the protocol's, not the hashing's (which is reported beside).
    let shown = Instant::now();
    sender.event("ready");
    eprintln!(
        "  (p2phost sender: offer ready {:.2} s after its code; the receiver starts then)",
        shown.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let receiver = Peer::spawn(
        p2phost()
            .args(["receive", "--json", "--yes", "--server", &signaling.url])
            .args(["--stun", &signaling.stun, "--out"])
            .arg(out)
            .arg(&code),
    );
    let name = file.file_name().unwrap().to_str().unwrap();
    let part = file.with_file_name(p2phost::store::part_name(name));
    Launched {
        sender,
        receiver,
        started,
        file,
        partial: Some(part),
    }
}

fn launch_bare(signaling: &Signaling, source: &Path, file: PathBuf) -> Launched {
    let this = std::env::current_exe().unwrap();
    let mut sender = Peer::spawn(
        Command::new(&this)
            .args(["bare-send", &signaling.url, &signaling.stun])
            .arg(source),
    );
    let code = sender.event("code")["code"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let receiver = Peer::spawn(
        Command::new(&this)
            .args(["bare-recv", &signaling.url, &signaling.stun])
            .arg(&file)
            .arg(&code),
    );
    Launched {
        sender,
        receiver,
        started,
        file,
        partial: None,
    }
}

/// The receiver starts first here: it listens, the sender connects.
fn launch_tcp(source: &Path, file: PathBuf) -> Launched {
    let this = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut receiver = Peer::spawn(Command::new(&this).arg("tcp-recv").arg(&file));
    let port = receiver.event("listening")["port"].to_string();
    let sender = Peer::spawn(Command::new(&this).args(["tcp-send", &port]).arg(source));
    Launched {
        sender,
        receiver,
        started,
        file,
        partial: None,
    }
}

struct Watched {
    first_byte: Option<Duration>,
    last_byte: Option<Duration>,
    receiver_exit: Duration,
}

/// Polls the output file and both processes until both have exited successfully.
fn watch(
    sender: &mut Peer,
    receiver: &mut Peer,
    started: Instant,
    file: &Path,
    partial: Option<&Path>,
    size: u64,
) -> Watched {
    let mut watched = Watched {
        first_byte: None,
        last_byte: None,
        receiver_exit: Duration::ZERO,
    };
    let mut tick = 0u32;
    while !(sender.exited && receiver.exited) {
        if watched.last_byte.is_none() {
            let on_disk = [Some(file), partial]
                .into_iter()
                .flatten()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0);
            if on_disk > 0 && watched.first_byte.is_none() {
                watched.first_byte = Some(started.elapsed());
            }
            if on_disk >= size {
                watched.last_byte = Some(started.elapsed());
            }
        }
        if tick.is_multiple_of(RSS_EVERY) {
            sender.poll();
            if !receiver.exited {
                receiver.poll();
                if receiver.exited {
                    watched.receiver_exit = started.elapsed();
                }
            }
        }
        tick += 1;
        std::thread::sleep(FILE_POLL);
    }
    watched
}

async fn start_signaling() -> Signaling {
    let (url, stun) = files::start_signaling().await;
    Signaling { url, stun }
}

/// `64MiB,1GiB,4096` → bytes.
fn parse_sizes(text: &str) -> Vec<u64> {
    text.split(',')
        .map(|s| {
            let s = s.trim();
            let (digits, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let scale = match unit.trim() {
                "" | "B" => 1,
                "KiB" => 1 << 10,
                "MiB" => 1 << 20,
                "GiB" => 1 << 30,
                other => panic!("BENCH_SIZES: unknown unit {other:?} (B, KiB, MiB, GiB)"),
            };
            digits.parse::<u64>().unwrap() * scale
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The roles, each its own process. Each prints JSON events like `p2phost --json`; the receiver's
// last is `{"event":"done","bytes":N,"seconds":F}`, timed from the first data to the file synced.

fn say(event: Value) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{event}").unwrap();
    out.flush().unwrap();
}

fn say_done(bytes: u64, started: Instant) {
    say(json!({"event": "done", "bytes": bytes, "seconds": started.elapsed().as_secs_f64()}));
}

/// The options `p2phost` itself uses for these flags.
fn session_options(url: &str, stun: &str) -> SessionOptions {
    SessionOptions {
        signaling_url: url.into(),
        ice_servers: vec![stun.into()],
        bind: vec!["0.0.0.0:0".into()],
        ..SessionOptions::default()
    }
}

/// Fills `buf` from `file` unless the file ends first; returns the bytes read.
fn fill(file: &mut File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

fn bare_send(url: &str, stun: &str, source: &Path) {
    // The same runtime as `p2phost`'s main: tokio's default multi-thread one.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let rendezvous = SenderRendezvous::open(session_options(url, stun), DEFAULT_WORDS)
            .await
            .unwrap();
        say(json!({"event": "code", "code": rendezvous.code().to_string()}));
        let Connected {
            channel,
            peer_connection,
            ..
        } = rendezvous.connect().await.unwrap();
        // The channel's events must be drained or it stalls; the one message back is the ack.
        let polled = channel.clone();
        let acked = tokio::spawn(async move {
            while let Some(event) = polled.poll().await {
                if let DataChannelEvent::OnMessage(_) = event {
                    return;
                }
            }
            panic!("the channel closed before the receiver's acknowledgement");
        });
        let mut file = File::open(source).unwrap();
        let size = file.metadata().unwrap().len();
        channel
            .send(BytesMut::from(&size.to_be_bytes()[..]))
            .await
            .unwrap();
        loop {
            // Read straight into the message buffer: the least copying this API allows.
            let mut piece = BytesMut::zeroed(PIECE);
            let n = fill(&mut file, &mut piece);
            if n == 0 {
                break;
            }
            piece.truncate(n);
            channel.send(piece).await.unwrap();
        }
        acked.await.unwrap();
        let _ = peer_connection.close().await;
    });
}

fn bare_recv(url: &str, stun: &str, out: &Path, code: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let code = TransferCode::parse(code).unwrap();
        let Connected {
            channel,
            peer_connection,
            ..
        } = session::receive(session_options(url, stun), &code)
            .await
            .unwrap();
        let mut file = File::create(out).unwrap();
        let (mut size, mut written, mut started) = (None, 0u64, Instant::now());
        while let Some(event) = channel.poll().await {
            let DataChannelEvent::OnMessage(message) = event else {
                continue;
            };
            match size {
                None => {
                    size = Some(u64::from_be_bytes(message.data[..8].try_into().unwrap()));
                    started = Instant::now();
                }
                Some(_) => {
                    file.write_all(&message.data).unwrap();
                    written += message.data.len() as u64;
                }
            }
            if size == Some(written) {
                break;
            }
        }
        assert_eq!(size, Some(written), "the channel closed early");
        file.sync_all().unwrap();
        say_done(written, started);
        channel.send(BytesMut::from(&b"k"[..])).await.unwrap();
        // Keep polling until the sender, acknowledged, closes (the ack must get out first).
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !matches!(channel.poll().await, None | Some(DataChannelEvent::OnClose)) {}
        })
        .await;
        let _ = peer_connection.close().await;
    });
}

fn tcp_send(port: &str, source: &Path) {
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let mut file = File::open(source).unwrap();
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = fill(&mut file, &mut buf);
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).unwrap();
    }
}

fn tcp_recv(out: &Path) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    say(json!({"event": "listening", "port": listener.local_addr().unwrap().port()}));
    let (mut stream, _) = listener.accept().unwrap();
    let started = Instant::now();
    let mut file = File::create(out).unwrap();
    let mut buf = vec![0u8; PIECE];
    let mut written = 0u64;
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).unwrap();
        written += n as u64;
    }
    file.sync_all().unwrap();
    say_done(written, started);
}
