//! A benchmark's view of a peer process: its JSON events, peak RSS and CPU time.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// A child process with its stdout read as JSON events, killed if the benchmark fails.
pub(crate) struct Peer {
    child: Child,
    events: mpsc::Receiver<Value>,
    /// Peak RSS seen so far (`VmHWM`), in KiB.
    pub(crate) peak_rss_kib: u64,
    /// User + system CPU seconds, as last read.
    pub(crate) cpu_seconds: f64,
    /// It has exited (successfully: `poll` asserts it).
    pub(crate) exited: bool,
}

impl Peer {
    pub(crate) fn spawn(command: &mut Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str(&line) {
                    let _ = tx.send(event);
                }
            }
        });
        Self {
            child,
            events,
            peak_rss_kib: 0,
            cpu_seconds: 0.0,
            exited: false,
        }
    }

    /// The next event named `name`, skipping others.
    pub(crate) fn event(&mut self, name: &str) -> Value {
        loop {
            let event = self
                .events
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("no {name:?} event: {e}"));
            if event["event"] == name {
                return event;
            }
            assert_ne!(event["event"], "error", "{event}");
        }
    }

    /// Records the peak RSS, the CPU time and whether the process has exited (it must succeed).
    /// An exited process keeps its CPU time readable until it is reaped here.
    pub(crate) fn poll(&mut self) {
        if let Some(kib) = peak_rss_kib(self.child.id()) {
            self.peak_rss_kib = self.peak_rss_kib.max(kib);
        }
        if let Some(seconds) = cpu_seconds(self.child.id()) {
            self.cpu_seconds = seconds;
        }
        if let Some(status) = self.child.try_wait().unwrap() {
            assert!(status.success(), "a peer failed: {status}");
            self.exited = true;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// User + system time from `/proc/PID/stat` (fields 14 and 15, after the parenthesised name).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks as f64 / 100.0)
}
