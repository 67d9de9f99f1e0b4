//! The TURN fallback: two `p2phost` processes that may only use relayed candidates move a file
//! through a real coturn server on loopback.

use std::ffi::{OsStr, OsString};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Running, Servers, signaling};

/// A coturn `turnserver` on 127.0.0.1, killed when dropped.
struct Coturn {
    child: Child,
    url: String,
}

impl Coturn {
    fn start(dir: &Path) -> Self {
        // A free port: bind, read, release (coturn binds it right after).
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .args([
                "--user=alice:secret",
                "--realm=p2phost.test",
                "--lt-cred-mech",
            ])
            // Loopback peers are refused by default (a relay must not reach its own host).
            .args([
                "--allow-loopback-peers",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
            ])
            .arg(format!(
                "--pidfile={}",
                dir.join("turnserver.pid").display()
            ))
            .arg(format!("--userdb={}", dir.join("turndb").display()))
            // -v logs each allocation; --simple-log keeps the file name as given.
            .args(["-v", "--simple-log"])
            .arg(format!("--log-file={}", dir.join("turn.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start turnserver ({e}): install coturn (./test.sh does)")
            });
        std::thread::sleep(std::time::Duration::from_millis(500));
        Self {
            child,
            url: format!("turn:127.0.0.1:{port}"),
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `p2phost COMMAND` allowed to use only the relay's candidates.
fn relayed(servers: &Servers, turn: &Coturn, command: &str, rest: &[&OsStr]) -> Running {
    let mut args: Vec<OsString> = vec![command.into()];
    for arg in ["--json", "--server", &servers.url, "--stun", &servers.stun] {
        args.push(arg.into());
    }
    for arg in [
        "--turn",
        &turn.url,
        "--turn-user",
        "alice",
        "--turn-pass",
        "secret",
    ] {
        args.push(arg.into());
    }
    args.push("--relay-only".into());
    args.extend(rest.iter().map(|&arg| arg.to_owned()));
    Running::spawn(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_through_the_turn_relay_when_only_relayed_paths_are_allowed() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let turn = Coturn::start(dir.path());
    let file = dir.path().join("relayed.bin");
    // Small: webrtc-rs over coturn on loopback moves only ~150 KB/s (see the README).
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let out = dir.path().join("out");
    let code = "31-aardvark-adroitness";

    let sender = relayed(
        &servers,
        &turn,
        "send",
        &["--code".as_ref(), code.as_ref(), file.as_os_str()],
    );
    let receiver = relayed(
        &servers,
        &turn,
        "receive",
        &[
            "--yes".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            code.as_ref(),
        ],
    );
    let limit = Duration::from_secs(60);
    let received = receiver.exit(limit).await;
    assert_eq!(received.code, Some(0), "receiver: {}", received.stderr);
    let sent = sender.exit(limit).await;
    assert_eq!(sent.code, Some(0), "sender: {}", sent.stderr);
    assert_eq!(std::fs::read(out.join("relayed.bin")).unwrap(), data);
    // The relay carried it: coturn logs an allocation for each peer.
    let log = std::fs::read_to_string(dir.path().join("turn.log")).unwrap_or_default();
    let allocations = log
        .lines()
        .filter(|l| l.contains("ALLOCATE processed, success"))
        .count();
    assert!(
        allocations >= 2,
        "{allocations} TURN allocations in coturn's log:\n{log}"
    );
}
