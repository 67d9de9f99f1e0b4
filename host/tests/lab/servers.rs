//! The internet's servers: `p2p-signal` (as a library, with its STUN responder) served by a
//! thread of this process that moved into the internet namespace, and coturn started there.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p2p_signaling::{ServerConfig, SignalingServer};

use crate::net::{Netns, Process};

/// The static TURN user every lab host is given (server-issued credentials are issue 13 §3).
pub const TURN_USER: &str = "lab";
pub const TURN_PASS: &str = "lab-secret";
/// coturn's port, UDP and TCP alike.
const TURN_PORT: u16 = 3478;

/// A signaling server with its STUN responder, listening in a namespace; stopped on drop.
pub struct Signaling {
    pub url: String,
    pub stun: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: std::thread::JoinHandle<()>,
}

impl Signaling {
    /// Serves on `ip` port 8787 (WebSocket) and 3478 (STUN) inside `ns`, from a thread that
    /// moved into it with setns (network namespaces are per thread; the sockets stay in it).
    pub fn start(ns: &Netns, ip: &str) -> Self {
        let path = format!("/run/netns/{}", ns.name());
        let mut config = ServerConfig {
            listen: format!("{ip}:8787").parse().unwrap(),
            ..ServerConfig::default()
        };
        config.stun.listen = Some(format!("{ip}:3478").parse().unwrap());
        let (ready_tx, ready) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = SignalingServer::bind(&config).await.unwrap();
                let addresses = (
                    server.url(),
                    format!("stun:{}", server.stun_addr().unwrap()),
                );
                ready_tx.send(addresses).unwrap();
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let (url, stun) = ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the signaling server did not start");
        Self {
            url,
            stun,
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Signaling {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Its thread holds the namespace alive until it ends; it closes its connections first.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// coturn in a namespace, with one static long-term-credential user; killed on drop.
pub struct Coturn {
    /// `turn:IP:PORT` (UDP).
    pub udp_url: String,
    /// `turn:IP:PORT?transport=tcp`: the same server over TCP.
    pub tcp_url: String,
    // In a mutex only to make the lab shareable between threads (a `Process` is not `Sync`).
    _process: std::sync::Mutex<Process>,
}

impl Coturn {
    pub fn start(ns: &Netns, ip: &str, dir: &Path) -> Self {
        let log = dir.join("turn.log");
        let mut command = ns.command("turnserver");
        command
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls"])
            .arg(format!("--listening-ip={ip}"))
            .arg(format!("--relay-ip={ip}"))
            .arg(format!("--listening-port={TURN_PORT}"))
            .arg(format!("--user={TURN_USER}:{TURN_PASS}"))
            .args(["--realm=p2phost.lab", "--lt-cred-mech"])
            .arg(format!("--pidfile={}", dir.join("turn.pid").display()))
            .arg(format!("--userdb={}", dir.join("turndb").display()))
            .args(["--simple-log", "-v"])
            .arg(format!("--log-file={}", log.display()));
        let process = Process::spawn(command);
        // Ready once it says both listeners are open.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("UDP listener opened") && text.contains("TCP listener opened") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "coturn did not start (install coturn; ./test.sh does); its log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            udp_url: format!("turn:{ip}:{TURN_PORT}"),
            tcp_url: format!("turn:{ip}:{TURN_PORT}?transport=tcp"),
            _process: std::sync::Mutex::new(process),
        }
    }
}
