//! A STUN or TURN server that never answers (a firewall that drops UDP to it, a server that is
//! down) must not hold up a transfer between peers that can reach each other directly. Each side
//! sends its description at once and its candidates as it finds them (trickle ICE), so the host
//! candidates connect while the silent server's requests are still being retried.
//!
//! Before trickle ICE each side waited for candidate gathering to give up on the silent server,
//! and a 32 MiB transfer took 22 s where 0.4 s was the transfer. The bound here is far from both:
//! it fails if the wait for gathering comes back, not if a machine is slow.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{BIN, finish, signaling, tree};

/// Far below the 20 s webrtc-rs's gatherer waits for a silent server, far above a setup (<1 s).
const BOUND: Duration = Duration::from_secs(10);

/// A UDP socket on loopback that reads everything and answers nothing; counts what it read.
struct SilentServer {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl SilentServer {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            while socket.recv_from(&mut buffer).is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        Self { addr, requests }
    }
}

/// `send` and `receive` of one file with `servers_args` (the ICE server flags) on both sides;
/// returns how long `receive` took, exec to exit.
async fn transfer_with(servers_args: &[String], tag: &str) -> Duration {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(format!("{tag}.bin"));
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();

    let mut sender = Command::new(BIN)
        .args(["send", "--json", "--server", &servers.url])
        .args(servers_args)
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = {
        use std::io::BufRead;
        let mut first = String::new();
        std::io::BufReader::new(sender.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let event: serde_json::Value = serde_json::from_str(&first).unwrap();
        event["code"].as_str().unwrap().to_owned()
    };
    let receive_args: Vec<std::ffi::OsString> = ["receive", "--json", "--yes", "--server"]
        .iter()
        .map(Into::into)
        .chain([servers.url.clone().into()])
        .chain(servers_args.iter().map(Into::into))
        .chain(["--out".into(), out.clone().into_os_string(), code.into()])
        .collect();
    let started = Instant::now();
    let received = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(receive_args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        received.status.success(),
        "receive failed: {}",
        String::from_utf8_lossy(&received.stderr)
    );
    let (status, stdout) = finish(sender);
    assert_eq!(status, 0, "send failed: {stdout}");
    // Both on loopback: straight to each other, and both say so.
    for output in [stdout.as_str(), &String::from_utf8_lossy(&received.stdout)] {
        let path = output
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|event| event["event"] == "path")
            .unwrap_or_else(|| panic!("no path event in {output}"));
        assert_eq!(path["path"], "direct", "{path}");
        assert_eq!(path["protocol"], "udp", "{path}");
    }
    assert_eq!(tree(&out), vec![(format!("{tag}.bin"), data)]);
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stun_server_that_never_answers_does_not_hold_up_the_transfer() {
    let silent = SilentServer::start();
    let took = transfer_with(&["--stun".into(), format!("stun:{}", silent.addr)], "stun").await;
    // The peers did ask it: the test is about a server that is there and silent.
    assert!(
        silent.requests.load(Ordering::Relaxed) > 0,
        "nobody asked the STUN server"
    );
    assert!(
        took < BOUND,
        "receive took {took:?} with a silent STUN server: does the setup wait for gathering?"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_server_that_never_answers_does_not_hold_up_the_transfer() {
    let silent = SilentServer::start();
    let servers = signaling().await;
    let took = transfer_with(
        &[
            "--stun".into(),
            servers.stun.clone(),
            "--turn".into(),
            format!("turn:{}", silent.addr),
            "--turn-user".into(),
            "alice".into(),
            "--turn-pass".into(),
            "secret".into(),
        ],
        "turn",
    )
    .await;
    assert!(
        silent.requests.load(Ordering::Relaxed) > 0,
        "nobody asked the TURN server"
    );
    assert!(
        took < BOUND,
        "receive took {took:?} with a silent TURN server: does the setup wait for gathering?"
    );
}
