//! A host with no route but loopback (a network namespace with only `lo` up, as in a container
//! without outside network or an isolated machine): `send` and `receive` still connect. They
//! used to fail at once with "creating the peer connection: io error: No such device", from
//! webrtc-rs joining the mDNS group where no multicast route exists.
//!
//! Needs root (network namespaces) and `ip` from iproute2, which `test.sh` installs.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::{BIN, Servers, bind_signaling, tree};

const LIMIT: Duration = Duration::from_secs(60);

/// A network namespace with only `lo`, removed on drop.
struct LoopbackOnly {
    name: String,
}

impl LoopbackOnly {
    fn new(tag: &str) -> Self {
        let name = format!("p2phost-{tag}-{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name]).expect("ip netns add (the test needs root and iproute2)");
        let ns = Self { name };
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]).unwrap();
        ns
    }

    /// A signaling server (and its STUN responder) on this namespace's loopback, served by a
    /// thread of this process that moved into the namespace.
    fn signaling(&self) -> Servers {
        let path = format!("/run/netns/{}", self.name);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
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
                let (servers, serve) = bind_signaling().await;
                tx.send(servers).unwrap();
                serve.await;
            });
        });
        rx.recv_timeout(LIMIT).expect("the server did not start")
    }

    /// `p2phost ARGS…` run inside the namespace.
    fn p2phost(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, BIN]).args(args);
        command
    }
}

impl Drop for LoopbackOnly {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Waits for `child` up to [`LIMIT`], killing it past that.
fn wait(child: std::process::Child) -> Output {
    crate::support::wait_at_most(child, LIMIT)
}

#[test]
fn a_host_with_only_loopback_sends_and_receives() {
    let ns = LoopbackOnly::new("lo");
    let servers = ns.signaling();
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/data.bin"), &data).unwrap();
    let out = dir.path().join("out");
    let server = ["--server", &servers.url, "--stun", &servers.stun];

    let mut sender = ns
        .p2phost(&["send", "--json", "--quiet"])
        .args(server)
        .arg(dir.path().join("in/data.bin"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sender.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    let code = match serde_json::from_str::<serde_json::Value>(&first) {
        Ok(event) => event["code"].as_str().unwrap().to_owned(),
        Err(e) => panic!("{e}: {first:?}; sender: {:?}", wait(sender)),
    };

    let received = wait(
        ns.p2phost(&["receive", "--yes", "--quiet"])
            .args(server)
            .arg("--out")
            .arg(&out)
            .arg(&code)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let sent = wait(sender);
    assert!(
        received.status.success() && sent.status.success(),
        "receiver: {received:?}\nsender: {sent:?}"
    );
    assert_eq!(tree(&out), vec![("data.bin".to_owned(), data)]);
}
