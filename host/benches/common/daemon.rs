//! Two `p2phost run` daemons on loopback for a benchmark, set up as a user would: `p2phost init`,
//! a config each, A serving signaling (and STUN) itself, B using it; a send-receive folder
//! `share` in each.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One host: its folder (config, identity, log, `share/`) and its process.
pub(crate) struct Daemon {
    name: &'static str,
    root: PathBuf,
    id: String,
    child: Option<Child>,
}

impl Daemon {
    /// `p2phost init` in `base/name`; the config it writes is replaced by [`configure`](Self::configure).
    fn init(base: &Path, name: &'static str) -> Self {
        let root = base.join(name);
        let output = Command::new(env!("CARGO_BIN_EXE_p2phost"))
            .args(["init", "--config"])
            .arg(root.join("share.toml"))
            .output()
            .unwrap();
        assert!(output.status.success(), "p2phost init: {output:?}");
        let id = String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("this host's id: "))
            .unwrap_or_else(|| panic!("no id in {output:?}"))
            .to_owned();
        Self {
            name,
            root,
            id,
            child: None,
        }
    }

    fn configure(&self, signaling: &str, peer: &Self) {
        let text = format!(
            "[identity]\ndir = \"identity\"\n\n[signaling]\n{signaling}\n\n\
             [[peers]]\nname = \"{}\"\nid = \"{}\"\n\n\
             [[folders]]\npath = \"share\"\npeers = [\"{}\"]\n",
            peer.name, peer.id, peer.name
        );
        std::fs::write(self.root.join("share.toml"), text).unwrap();
    }

    /// `p2phost run`, logging at its default level (info) to `daemon.log`.
    fn start(&mut self) {
        let log = std::fs::File::create(self.log()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_p2phost"))
            .args(["run", "--config"])
            .arg(self.root.join("share.toml"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The synced folder.
    pub(crate) fn folder(&self) -> PathBuf {
        self.root.join("share")
    }

    fn log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    async fn sees_online(&self, peer: &Self) -> bool {
        p2phost::daemon::query_status(&self.root.join("identity"))
            .await
            .is_ok_and(|s| s.peers.iter().any(|p| p.id == peer.id && p.online))
    }

    /// SIGTERM, then SIGKILL after 10 s.
    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A serves signaling on a free port; B uses it; each trusts the other.
pub(crate) struct DaemonPair {
    pub(crate) a: Daemon,
    pub(crate) b: Daemon,
}

impl DaemonPair {
    /// Starts both and waits until each sees the other online.
    pub(crate) fn start(base: &Path, runtime: &tokio::runtime::Runtime) -> Self {
        let mut a = Daemon::init(base, "a");
        let mut b = Daemon::init(base, "b");
        let port = free_port();
        a.configure(&format!("serve = \"127.0.0.1:{port}\""), &b);
        b.configure(
            &format!("url = \"ws://127.0.0.1:{port}\"\nstun = \"stun:127.0.0.1:{port}\""),
            &a,
        );
        a.start();
        b.start();
        let deadline = Instant::now() + Duration::from_secs(60);
        runtime.block_on(async {
            while !(a.sees_online(&b).await && b.sees_online(&a).await) {
                assert!(
                    Instant::now() < deadline,
                    "the daemons never met\n--- a:\n{}\n--- b:\n{}",
                    a.log_text(),
                    b.log_text()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { a, b }
    }

    pub(crate) fn logs(&self) -> String {
        format!(
            "--- a:\n{}\n--- b:\n{}",
            tail(&self.a.log_text()),
            tail(&self.b.log_text())
        )
    }

    pub(crate) fn stop(&mut self) {
        self.b.stop();
        self.a.stop();
    }
}

/// The last 40 lines.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops `child` with SIGTERM, then SIGKILL if it is still running after 10 s.
pub(crate) fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
