//! Network namespaces and what runs inside them: `ip`, `sysctl`, `nft` rulesets and long-running
//! processes, each through `ip netns exec` (a test may not use `unsafe`, so no `setns` in a
//! `pre_exec` hook).
//!
//! Names are unique per test process (they carry its pid, see [`unique_prefix`]); interfaces are
//! created directly inside their namespaces, so none ever appears in the machine's own namespace
//! and their short fixed names (`wan`, `lan`, `eth0`) cannot clash with anyone else's.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `p2plab-PID-N`: a fresh prefix for one lab. The pid keeps two test runs apart, N two labs of
/// one run (tests run in parallel threads). The first call also deletes the namespaces of runs
/// that were killed before they could clean up: those whose pid no longer runs.
pub fn unique_prefix() -> String {
    static LABS: AtomicUsize = AtomicUsize::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let listed = run(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
        for name in listed.lines().filter_map(|l| l.split_whitespace().next()) {
            let pid = name
                .strip_prefix("p2plab-")
                .and_then(|r| r.split('-').next());
            if pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = run(Command::new("ip").args(["netns", "del", name]));
            }
        }
    });
    format!(
        "p2plab-{}-{}",
        std::process::id(),
        LABS.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named network namespace, deleted on drop (even when the test panics). Processes started in
/// it must be gone first: a namespace lives on, unnamed, while a process is inside.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `name` with `lo` up and IPv6 off (the lab is an IPv4 internet: link-local IPv6
    /// between two hosts would be a path of its own). A leftover of the same name, from a run
    /// killed before it could clean up, is deleted first.
    pub fn new(name: String) -> Self {
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        run(Command::new("ip").args(["netns", "add", &name]))
            .unwrap_or_else(|e| panic!("{e} (the lab needs root and iproute2)"));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1");
        // Where br_netfilter is loaded (Docker loads it), bridged frames would pass this
        // namespace's IPv4 hooks too: the same-LAN bridge would then go through the NAT's
        // forward filter. A switch is not a router; keep them apart.
        ns.sysctl("net.bridge.bridge-nf-call-iptables", "0");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS…`; panics with ip's message when it fails.
    pub fn ip(&self, args: &[&str]) {
        run(Command::new("ip").args(["-n", &self.name]).args(args)).unwrap();
    }

    /// Sets a sysctl of this namespace; a key that does not exist here (no br_netfilter) is
    /// skipped (`-e`).
    pub fn sysctl(&self, key: &str, value: &str) {
        run(self
            .command("sysctl")
            .args(["-q", "-e", "-w", &format!("{key}={value}")]))
        .unwrap();
    }

    /// Applies an nftables ruleset in this namespace (`nft -f -`).
    pub fn nft(&self, ruleset: &str) {
        run_with_input(self.command("nft").args(["-f", "-"]), ruleset)
            .unwrap_or_else(|e| panic!("{e}\nruleset:\n{ruleset}"));
    }

    /// `nft ARGS…` in this namespace, its stdout.
    pub fn nft_output(&self, args: &[&str]) -> String {
        run(self.command("nft").args(args)).unwrap()
    }

    /// `PROGRAM` to be run inside this namespace (`ip netns exec NAME PROGRAM`, which execs it:
    /// the child's pid is the program's own, so killing the child kills the program).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program.as_ref());
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Runs `command` to the end; its stdout, or what it said on stderr.
pub fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    checked(command, output)
}

fn run_with_input(command: &mut Command, input: &str) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{command:?}: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .map_err(|e| format!("{command:?}: {e}"))?;
    let output = child.wait_with_output().unwrap();
    checked(command, output)
}

fn checked(command: &Command, output: Output) -> Result<String, String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{command:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A long-running process (a `p2phost`, coturn) started in a namespace: its stdout lines arrive
/// with the time they were read; it is killed when dropped, so a failing test leaves nothing
/// running (and its namespace can go).
pub struct Process {
    child: Child,
    lines: Receiver<(Instant, String)>,
    stderr: Option<JoinHandle<String>>,
}

/// How a [`Process`] ended: its exit code (None when it had to be killed), stdout lines with the
/// time each was read, and stderr.
#[derive(Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub lines: Vec<(Instant, String)>,
    pub stderr: String,
}

impl Exit {
    /// Its stdout lines parsed as JSON (`--json` output); other lines are left out.
    pub fn events(&self) -> impl Iterator<Item = serde_json::Value> + '_ {
        self.lines
            .iter()
            .filter_map(|(_, line)| serde_json::from_str(line).ok())
    }

    /// The time it printed the JSON event `name` first.
    pub fn time_of(&self, name: &str) -> Option<Instant> {
        self.lines.iter().find_map(|(at, line)| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            (event["event"] == name).then_some(*at)
        })
    }

    pub fn last_event(&self) -> serde_json::Value {
        self.events().last().unwrap_or_default()
    }
}

impl Process {
    /// Starts `command`, its stdout and stderr captured.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut text);
            text
        });
        Self {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// Waits for it to exit; past `limit` it is killed (code None).
    pub fn wait(mut self, limit: Duration) -> Exit {
        let deadline = Instant::now() + limit;
        let mut code = None;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                code = Some(status.code().unwrap_or(-1));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if code.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // What it printed: the reader thread ends at end of file; a grandchild that kept the
        // pipe open cannot hold this up for more than a few seconds.
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap_or_default();
        Exit {
            code,
            lines,
            stderr,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
