//! `p2phost run` daemons on lab hosts: a config and identity each, trusting each other, one
//! shared folder; their status read over their control socket (a Unix socket in the identity
//! folder, which a test outside their network namespace still reaches: it is a file).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use p2phost::daemon::Status;

use crate::net::Netns;
use crate::peer::bin;
use crate::topology::Lab;

pub struct Daemon {
    name: &'static str,
    root: PathBuf,
    pub id: String,
    child: Option<Child>,
}

impl Daemon {
    /// `p2phost init` in `base/name` (run here: it only writes files); its config is written
    /// afresh by [`Daemon::configure`].
    pub fn init(base: &Path, name: &'static str) -> Self {
        let root = base.join(name);
        let output = std::process::Command::new(bin())
            .args(["init", "--config"])
            .arg(root.join("share.toml"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let id = String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("this host's id: "))
            .unwrap()
            .to_owned();
        Self {
            name,
            root,
            id,
            child: None,
        }
    }

    /// Its config: the lab's signaling server and STUN, `peer` trusted, folder "share" synced
    /// with it.
    pub fn configure(&self, lab: &Lab, peer: &Self) {
        let text = format!(
            "[identity]\ndir = \"identity\"\n\n[signaling]\nurl = \"{}\"\nstun = \"{}\"\n\n\
             [[peers]]\nname = \"{}\"\nid = \"{}\"\n\n[[folders]]\npath = \"share\"\npeers = [\"{}\"]\n",
            lab.signaling.url, lab.signaling.stun, peer.name, peer.id, peer.name
        );
        std::fs::write(self.root.join("share.toml"), text).unwrap();
    }

    /// `p2phost run` in `host`'s namespace, logging to `daemon.log`.
    pub fn start(&mut self, host: &Netns) {
        let log = std::fs::File::create(self.log()).unwrap();
        let child = host
            .command(bin())
            .args(["run", "--config"])
            .arg(self.root.join("share.toml"))
            .env("RUST_LOG", "warn,p2phost=debug,p2p_signaling=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn folder(&self) -> PathBuf {
        self.root.join("share")
    }

    fn log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    pub fn log_text(&self) -> String {
        format!(
            "--- {} ({}):\n{}",
            self.name,
            self.id,
            std::fs::read_to_string(self.log()).unwrap_or_default()
        )
    }

    pub fn status(&self) -> Option<Status> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(p2phost::daemon::query_status(&self.root.join("identity")))
            .ok()
    }

    /// Whether it sees `peer` in their room.
    pub fn sees_online(&self, peer: &Self) -> bool {
        self.status()
            .is_some_and(|s| s.peers.iter().any(|p| p.id == peer.id && p.online))
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

/// Polls `check` every 100 ms for up to `limit`; when it first held, or None.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Writes a file the way editors do: to a temporary name, then renamed into place.
pub fn drop_file(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, data).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}
