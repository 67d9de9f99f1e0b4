//! `p2phost send` and `p2phost receive` run as a user would, each in its host's namespace, and
//! what they report: exit, time from the receiver's start to its `done`, and the `path` event.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::net::{Exit, Netns, Process};
use crate::servers::{TURN_PASS, TURN_USER};
use crate::topology::{Kind, Lab};

/// The `p2phost` to run: `$LAB_BIN_DIR/p2phost` when that is set (so the lab benchmark, and the
/// tests too, can run release binaries built elsewhere), else the one cargo built beside this.
pub fn bin() -> PathBuf {
    std::env::var_os("LAB_BIN_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_p2phost")),
        |dir| PathBuf::from(dir).join("p2phost"),
    )
}

/// What one side of a transfer needs: its namespace and the TURN URL its network lets through.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub host: &'a Netns,
    pub kind: Kind,
}

impl Side<'_> {
    /// The servers' flags: the lab's signaling server and STUN, and TURN over UDP, or over TCP
    /// behind a firewall that drops UDP (the same coturn, which listens on both).
    fn server_args(&self, lab: &Lab) -> Vec<OsString> {
        let turn = match self.kind {
            Kind::UdpBlocked => &lab.turn.tcp_url,
            Kind::Cone | Kind::Symmetric | Kind::SameLan => &lab.turn.udp_url,
        };
        [
            "--json",
            "--server",
            &lab.signaling.url,
            "--stun",
            &lab.signaling.stun,
            "--turn",
            turn,
            "--turn-user",
            TURN_USER,
            "--turn-pass",
            TURN_PASS,
        ]
        .iter()
        .map(Into::into)
        .collect()
    }
}

/// The `path` event p2phost prints with `--json` once connected: `direct` or `relay`, the local
/// and remote candidate types (`host`, `srflx`, `prflx`, `relay`) and the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    pub path: String,
    pub local: String,
    pub remote: String,
    pub protocol: String,
}

impl Reported {
    fn from(exit: &Exit) -> Option<Self> {
        let event = exit.events().find(|e| e["event"] == "path")?;
        let text = |key: &str| event[key].as_str().unwrap_or("?").to_owned();
        Some(Self {
            path: text("path"),
            local: text("local"),
            remote: text("remote"),
            protocol: text("protocol"),
        })
    }
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}→{} {}",
            self.path, self.local, self.remote, self.protocol
        )
    }
}

/// A finished transfer.
pub struct Transfer {
    pub sender: Exit,
    pub receiver: Exit,
    /// When the receiver was started: the origin of its events' times.
    pub started: Instant,
}

impl Transfer {
    /// From the receiver's start to its `done` event.
    pub fn seconds(&self) -> Option<f64> {
        let done = self.receiver.time_of("done")?;
        Some(done.duration_since(self.started).as_secs_f64())
    }

    pub fn succeeded(&self) -> bool {
        self.sender.code == Some(0) && self.receiver.code == Some(0)
    }

    /// What each side reported as its path, if it said.
    pub fn reported(&self) -> (Option<Reported>, Option<Reported>) {
        (Reported::from(&self.sender), Reported::from(&self.receiver))
    }

    /// Both sides' exits, for a failure message.
    pub fn describe(&self) -> String {
        format!(
            "sender: exit {:?}, last event {}\n{}\nreceiver: exit {:?}, last event {}\n{}",
            self.sender.code,
            self.sender.last_event(),
            self.sender.stderr,
            self.receiver.code,
            self.receiver.last_event(),
            self.receiver.stderr
        )
    }
}

/// Sends `file` from `from` to `to` (into `out`) with the code `code` (chosen here, so both start
/// at once); each side is given `limit` to finish, then killed.
pub fn transfer(
    lab: &Lab,
    from: Side<'_>,
    to: Side<'_>,
    code: &str,
    file: &Path,
    out: &Path,
    limit: Duration,
) -> Transfer {
    let mut send = from.host.command(bin());
    send.arg("send")
        .args(from.server_args(lab))
        .args(["--code", code])
        .arg(file);
    let sender = Process::spawn(send);
    let mut receive = to.host.command(bin());
    receive
        .arg("receive")
        .args(to.server_args(lab))
        .arg("--yes")
        .arg("--out")
        .arg(out)
        .arg(code);
    let started = Instant::now();
    let receiver = Process::spawn(receive);
    let receiver = receiver.wait(limit);
    // The sender ends right after the receiver confirms; a few seconds are plenty.
    let sender = sender.wait(limit.saturating_sub(started.elapsed()) + Duration::from_secs(10));
    Transfer {
        sender,
        receiver,
        started,
    }
}

/// `bytes` random bytes written to `path`: a test file no codec can shrink.
pub fn random_file(path: &Path, bytes: u64) -> Vec<u8> {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .take(bytes)
        .read_to_end(&mut data)
        .unwrap();
    std::fs::write(path, &data).unwrap();
    data
}
