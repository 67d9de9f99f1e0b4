//! LAN mode: two machines on one network segment and no signaling server anywhere. The sender
//! serves signaling itself and announces it over mDNS; the receiver finds it by the code's
//! nameplate. A machine on another segment does not see the announcement and says so.
//!
//! Three network namespaces stand for the machines: `a` and `b` on one bridge, `c` on another,
//! with no route between the bridges and no server on any of them (each one's default
//! `ws://127.0.0.1:8787` refuses). Needs root and `ip` from iproute2, which `test.sh` installs.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::{BIN, tree};

const LIMIT: Duration = Duration::from_secs(60);

/// Network namespaces and the links between them, removed on drop.
struct Lan {
    tag: String,
    namespaces: Vec<String>,
}

impl Lan {
    /// `switch` holds the bridges; `a` and `b` hang off `br0`, `c` off `br1`.
    fn new() -> Self {
        let tag = format!("p2l{}", std::process::id() % 100_000);
        let mut lan = Self {
            tag: tag.clone(),
            namespaces: Vec::new(),
        };
        let switch = lan.namespace("sw");
        for bridge in ["br0", "br1"] {
            run(&switch, &["ip", "link", "add", bridge, "type", "bridge"]);
            run(&switch, &["ip", "link", "set", bridge, "up"]);
        }
        for (host, bridge, address) in [
            ("a", "br0", "10.77.0.1/24"),
            ("b", "br0", "10.77.0.2/24"),
            ("c", "br1", "10.78.0.1/24"),
        ] {
            let ns = lan.namespace(host);
            let (inside, outside) = (format!("{tag}{host}i"), format!("{tag}{host}o"));
            ip(&[
                "link", "add", &inside, "type", "veth", "peer", "name", &outside,
            ]);
            ip(&["link", "set", &inside, "netns", &ns]);
            ip(&["link", "set", &outside, "netns", &switch]);
            run(&switch, &["ip", "link", "set", &outside, "master", bridge]);
            run(&switch, &["ip", "link", "set", &outside, "up"]);
            run(&ns, &["ip", "addr", "add", address, "dev", &inside]);
            run(&ns, &["ip", "link", "set", &inside, "up"]);
        }
        lan
    }

    /// A new namespace with `lo` up.
    fn namespace(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.tag);
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run(&ns, &["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn host(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    /// `p2phost ARGS…` on machine `name`.
    fn p2phost(&self, name: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.host(name), BIN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and so their peers.
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (the test needs iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?} (the test needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(ns: &str, command: &[&str]) {
    let mut args = vec!["netns", "exec", ns];
    args.extend_from_slice(command);
    ip(&args);
}

/// Waits for `child` up to [`LIMIT`], killing it past that.
fn wait(child: std::process::Child) -> Output {
    crate::support::wait_at_most(child, LIMIT)
}

#[test]
fn two_machines_on_one_lan_transfer_with_no_server_and_another_segment_sees_nothing() {
    let lan = Lan::new();
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/lan.bin"), &data).unwrap();

    let mut sender = lan
        .p2phost("a", &["send", "--json"])
        .arg(dir.path().join("in/lan.bin"))
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sender.stdout.take().unwrap()));
    // LAN mode first, then the code.
    let mut before_code = Vec::new();
    let code = loop {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(event) if event["event"] == "code" => {
                break event["code"].as_str().unwrap().to_owned();
            }
            Ok(event) => before_code.push(event["event"].as_str().unwrap_or("").to_owned()),
            Err(_) => panic!("no code: {line:?}; sender: {:?}", wait(sender)),
        }
    };
    assert_eq!(before_code, ["lan"], "the sender did not say LAN mode");
    // The rest of its output, read as it comes so that the sender never blocks on it.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    // On the other segment: nothing announced there, so a clear error (exit 6, connection).
    let elsewhere = wait(
        lan.p2phost("c", &["receive", "--yes", "--out"])
            .arg(dir.path().join("out-c"))
            .arg(&code)
            .spawn()
            .unwrap(),
    );
    let said = String::from_utf8_lossy(&elsewhere.stderr);
    assert_eq!(elsewhere.status.code(), Some(6), "{said}");
    assert!(said.contains("on this network"), "{said}");
    assert!(!dir.path().join("out-c").exists());

    let received = wait(
        lan.p2phost("b", &["receive", "--yes", "--json", "--out"])
            .arg(dir.path().join("out-b"))
            .arg(&code)
            .spawn()
            .unwrap(),
    );
    assert!(
        received.status.success(),
        "receive on the same LAN: {}",
        String::from_utf8_lossy(&received.stderr)
    );
    let sent = wait(sender);
    let sender_said = rest.join().unwrap().join("\n");
    assert!(
        sent.status.success(),
        "{sender_said}\n{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(
        tree(&dir.path().join("out-b")),
        vec![("lan.bin".to_owned(), data)]
    );
    // Straight over the segment.
    let path = String::from_utf8_lossy(&received.stdout)
        .lines()
        .find(|line| line.contains(r#""event":"path""#))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(path.contains(r#""path":"direct""#), "{path}");
}
