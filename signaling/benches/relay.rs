//! Relay benchmark: N rooms of 2 clients relaying payloads through `p2p-signal`, beside a bare
//! tokio-tungstenite relay written for this benchmark and measured in the same run.
//!
//! `cargo bench -p p2p-signaling --bench relay` (env `BENCH_SECONDS`, default 5 per phase).
//!
//! Both servers run as their own process; this process is the load. Per room count it prints:
//! - saturated throughput: every room plays ping-pong as fast as it can (messages/s, and latency
//!   at saturation, which is mostly queueing);
//! - paced latency: 5,000 messages/s in all, spread evenly over the rooms, one way; p50/p99
//!   one-way relay latency at that load;
//! - WebSocket handshakes per second alone (up to 1,000, 64 at a time), the time to open all rooms
//!   (hello and join included), and the server's peak RSS.
//!
//! The p2p-signal config raises the per-IP, per-connection-rate and total bounds, since every
//! client here comes from 127.0.0.1 and ping-pong exceeds the default 100 frames/s.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const BARE_ENV: &str = "P2P_BENCH_BARE_RELAY";
const PAYLOAD_BYTES: usize = 512;
/// Messages per second offered in all during the paced phase, spread over the rooms.
const PACED_TOTAL_HZ: f64 = 5000.0;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn main() {
    if std::env::var_os(BARE_ENV).is_some() {
        return tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(bare_relay());
    }
    // Both servers and 20,000 client sockets live on this machine.
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let want = 65_536.max(soft);
    if rlimit::setrlimit(rlimit::Resource::NOFILE, want, want.max(hard)).is_err() {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    }
    let (limit, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    println!("open-file limit {limit} (10,000 client sockets here, as many in each server)");
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(Duration::from_secs(seconds)));
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Signal,
    Bare,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Signal => "p2p-signal",
            Self::Bare => "bare relay",
        }
    }
}

struct Figures {
    throughput: f64,
    saturated_p50: Duration,
    saturated_p99: Duration,
    paced_p50: Duration,
    paced_p99: Duration,
    paced_rate: f64,
    connect_secs: f64,
    handshakes_per_sec: f64,
    peak_rss_mib: f64,
}

async fn run(phase: Duration) {
    println!(
        "relay benchmark: {PAYLOAD_BYTES}-byte payloads, {} s per phase, 2 cores shared by server and load",
        phase.as_secs()
    );
    println!(
        "{:>6} {:>11} {:>11} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>6} {:>8} {:>8}",
        "rooms",
        "server",
        "msgs/s",
        "sat p50",
        "sat p99",
        "paced/s",
        "p50",
        "p99",
        "ws/s",
        "connect",
        "peak RSS"
    );
    let room_counts: Vec<usize> = std::env::var("BENCH_ROOMS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 1000, 5000]);
    for rooms in room_counts {
        let mut results = Vec::new();
        for target in [Target::Signal, Target::Bare] {
            let figures = measure(target, rooms, phase).await;
            println!(
                "{rooms:>6} {:>11} {:>11.0} {:>9} {:>9} | {:>9.0} {:>9} {:>9} | {:>6.0} {:>7.2}s {:>5.1} MiB",
                target.name(),
                figures.throughput,
                fmt(figures.saturated_p50),
                fmt(figures.saturated_p99),
                figures.paced_rate,
                fmt(figures.paced_p50),
                fmt(figures.paced_p99),
                figures.handshakes_per_sec,
                figures.connect_secs,
                figures.peak_rss_mib,
            );
            results.push(figures);
        }
        println!(
            "{rooms:>6} {:>11} {:>10.2}x {:>31} {:>8.2}x p99 vs bare",
            "ratio",
            results[0].throughput / results[1].throughput,
            "",
            results[0].paced_p99.as_secs_f64() / results[1].paced_p99.as_secs_f64().max(1e-9),
        );
    }
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.0}µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    }
}

/// A server process, killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn start(target: Target) -> Self {
        let mut command = match target {
            Target::Signal => {
                let config =
                    std::env::temp_dir().join(format!("p2p-bench-{}.toml", std::process::id()));
                std::fs::write(
                    &config,
                    "[limits]\nmax_connections_per_ip = 100000\nmax_connections = 100000\n\
                     max_messages_per_sec = 1000000\nmax_rooms = 100000\n",
                )
                .unwrap();
                let mut c = Command::new(env!("CARGO_BIN_EXE_p2p-signal"));
                c.args(["--listen", "127.0.0.1:0", "--no-stun", "--config"])
                    .arg(config);
                c.env("RUST_LOG", "warn");
                c
            }
            Target::Bare => {
                let mut c = Command::new(std::env::current_exe().unwrap());
                c.env(BARE_ENV, "1");
                c
            }
        };
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_owned();
        Self { child, url }
    }

    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

#[derive(Deserialize)]
struct Relayed {
    #[serde(default)]
    payload: String,
    #[serde(rename = "type", default)]
    kind: String,
}

async fn connect(url: &str) -> Ws {
    loop {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => return ws,
            // A burst of connects can overflow the listen backlog; try again.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// Opens a room's two members and waits until both are in.
async fn open_pair(target: Target, url: &str, room: usize) -> (Ws, Ws) {
    let name = format!("r{room}");
    let mut a = connect(url).await;
    let mut b = connect(url).await;
    match target {
        Target::Signal => {
            for ws in [&mut a, &mut b] {
                ws.send(Message::text(r#"{"type":"hello","version":1}"#))
                    .await
                    .unwrap();
                assert!(next_text(ws).await.contains("welcome"));
                ws.send(Message::text(format!(
                    r#"{{"type":"join","room":"{name}"}}"#
                )))
                .await
                .unwrap();
                assert!(next_text(ws).await.contains("joined"));
            }
        }
        Target::Bare => {
            a.send(Message::text(name.clone())).await.unwrap();
            assert_eq!(next_text(&mut a).await, "joined");
            b.send(Message::text(name)).await.unwrap();
            assert_eq!(next_text(&mut b).await, "joined");
        }
    }
    assert!(next_text(&mut a).await.contains("peer_joined"));
    (a, b)
}

fn frame(room: usize) -> impl Fn() -> Message {
    let pad = "x".repeat(PAYLOAD_BYTES - 20);
    move || {
        let stamp = epoch().elapsed().as_nanos();
        Message::text(format!(
            r#"{{"type":"send","room":"r{room}","payload":"{stamp:020}{pad}"}}"#
        ))
    }
}

/// One-way latency from the stamp in a received frame.
fn latency(text: &str) -> Option<Duration> {
    let relayed: Relayed = serde_json::from_str(text).ok()?;
    if relayed.kind != "message" && relayed.kind != "send" {
        return None;
    }
    let sent: u64 = relayed.payload.get(..20)?.parse().ok()?;
    let now = u64::try_from(epoch().elapsed().as_nanos()).ok()?;
    Some(Duration::from_nanos(now.saturating_sub(sent)))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn measure(target: Target, rooms: usize, phase: Duration) -> Figures {
    let server = ServerProcess::start(target);
    // WebSocket handshakes alone, 64 at a time, each closed again.
    let handshakes = rooms.min(1000);
    let started = Instant::now();
    for chunk in (0..handshakes).collect::<Vec<_>>().chunks(64) {
        let opened =
            futures_util::future::join_all(chunk.iter().map(|_| connect(&server.url))).await;
        drop(opened);
    }
    let handshakes_per_sec = handshakes as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(rooms);
    // Open rooms 64 at a time, as a crowd of peers would arrive.
    for chunk in (0..rooms).collect::<Vec<_>>().chunks(64) {
        let opened = futures_util::future::join_all(
            chunk.iter().map(|&r| open_pair(target, &server.url, r)),
        )
        .await;
        pairs.extend(opened);
    }
    let connect_secs = started.elapsed().as_secs_f64();

    // Saturated ping-pong: each room keeps one message in flight, bouncing between its members.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (room, (a, b)) in pairs.into_iter().enumerate() {
        let stop = Arc::clone(&stop);
        let count = Arc::clone(&count);
        tasks.push(tokio::spawn(ping_pong(room, a, b, stop, count, phase)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = count.load(Ordering::Relaxed);
    let measured = Instant::now();
    tokio::time::sleep(phase).await;
    let throughput =
        (count.load(Ordering::Relaxed) - before) as f64 / measured.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut saturated = Vec::new();
    let mut pairs = Vec::new();
    for task in tasks {
        let (pair, lat) = task.await.unwrap();
        saturated.extend(lat);
        pairs.push(pair);
    }
    saturated.sort_unstable();

    // Paced: PACED_TOTAL_HZ messages/s in all, one way.
    let paced_started = Instant::now();
    let mut tasks = Vec::new();
    for (room, (a, b)) in pairs.into_iter().enumerate() {
        tasks.push(tokio::spawn(paced(room, rooms, a, b, phase)));
    }
    let mut paced_lat = Vec::new();
    for task in tasks {
        paced_lat.extend(task.await.unwrap());
    }
    paced_lat.sort_unstable();
    let paced_rate = paced_lat.len() as f64 / paced_started.elapsed().as_secs_f64();

    Figures {
        throughput,
        saturated_p50: percentile(&saturated, 0.5),
        saturated_p99: percentile(&saturated, 0.99),
        paced_p50: percentile(&paced_lat, 0.5),
        paced_p99: percentile(&paced_lat, 0.99),
        paced_rate,
        connect_secs,
        handshakes_per_sec,
        peak_rss_mib: server.peak_rss_mib(),
    }
}

async fn ping_pong(
    room: usize,
    mut a: Ws,
    mut b: Ws,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    phase: Duration,
) -> ((Ws, Ws), Vec<Duration>) {
    let make = frame(room);
    let mut latencies = Vec::new();
    let deadline = Instant::now() + phase * 2 + Duration::from_secs(10);
    a.send(make()).await.unwrap();
    let mut to_b = true;
    loop {
        let receiver = if to_b { &mut b } else { &mut a };
        let text = next_text(receiver).await;
        if let Some(l) = latency(&text) {
            latencies.push(l);
        }
        count.fetch_add(1, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        // The receiver answers: the message goes back the other way.
        to_b = !to_b;
        let replier = if to_b { &mut a } else { &mut b };
        replier.send(make()).await.unwrap();
    }
    ((a, b), latencies)
}

async fn paced(room: usize, rooms: usize, mut a: Ws, mut b: Ws, phase: Duration) -> Vec<Duration> {
    let make = frame(room);
    let per_room_hz = PACED_TOTAL_HZ / rooms as f64;
    let period = Duration::from_secs_f64(1.0 / per_room_hz);
    let messages = (phase.as_secs_f64() * per_room_hz).round().max(1.0) as usize;
    // Spread the rooms over the period so the load is smooth, not a synchronized burst.
    let offset = period.mul_f64(room as f64 / rooms as f64);
    let sender = tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        for _ in 0..messages {
            ticks.tick().await;
            a.send(make()).await.unwrap();
        }
        a
    });
    let mut latencies = Vec::with_capacity(messages);
    while latencies.len() < messages {
        let text = next_text(&mut b).await;
        if let Some(l) = latency(&text) {
            latencies.push(l);
        }
    }
    drop(sender.await.unwrap());
    latencies
}

/// The baseline: the least a WebSocket relay must do. The first frame names the room; later frames
/// go verbatim to the room's other member. Same runtime, same lock-per-frame and batching writer.
async fn bare_relay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!(
        "bare relay listening on ws://{}",
        listener.local_addr().unwrap()
    );
    let rooms: Arc<Mutex<HashMap<String, Vec<mpsc::Sender<Message>>>>> = Arc::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let rooms = Arc::clone(&rooms);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            // The same buffer sizes p2p-signal uses, so the comparison is of the relaying alone.
            let config = WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(16 * 1024);
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let Some(Ok(Message::Text(room))) = stream.next().await else {
                return;
            };
            let room = room.as_str().to_owned();
            let (tx, mut rx) = mpsc::channel::<Message>(256);
            {
                let mut rooms = rooms.lock().unwrap();
                let members = rooms.entry(room.clone()).or_default();
                let _ = tx.try_send(Message::text("joined"));
                for other in members.iter() {
                    let _ = other.try_send(Message::text(r#"{"type":"peer_joined"}"#));
                }
                members.push(tx.clone());
            }
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    let sent = if rx.is_empty() {
                        sink.send(message).await
                    } else {
                        sink.feed(message).await
                    };
                    if sent.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(_) = message {
                    let rooms = rooms.lock().unwrap();
                    if let Some(members) = rooms.get(&room) {
                        for member in members.iter().filter(|m| !m.same_channel(&tx)) {
                            let _ = member.try_send(message.clone());
                        }
                    }
                }
            }
            let mut rooms = rooms.lock().unwrap();
            if let Some(members) = rooms.get_mut(&room) {
                members.retain(|m| !m.same_channel(&tx));
                if members.is_empty() {
                    rooms.remove(&room);
                }
            }
        });
    }
}
