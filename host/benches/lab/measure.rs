//! One cell, measured twice over the same lab path: `p2phost send` / `p2phost receive`, then the
//! plain TCP copy of [`crate::tcp_copy`] along the path p2phost's data took.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::net::{Exit, Netns, Process};
use crate::peer::{Side, transfer};
use crate::topology::{Lab, Site, TURN_IP};
use crate::wire::Path as WirePath;

/// Per transfer: a broken cell ends here instead of hanging (the relay has moved as little as
/// 0.04 MB/s here, 4 MiB in 100 s). Never a speed bound.
const LIMIT: Duration = Duration::from_secs(600);
/// The TCP baseline's ports: the receiver's (forwarded by its router), and the relay's.
const DIRECT_PORT: u16 = 9000;
const RELAY_PORT: u16 = 9001;

/// Times of one copy, from the receiver's start.
pub struct Timed {
    pub first_byte: f64,
    pub done: f64,
    pub bytes: u64,
}

impl Timed {
    /// MB/s from the first byte to done: the data's rate, without the connection's setup.
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / (self.done - self.first_byte)
    }

    /// From a receiver's events: the first that `is_first` picks, and `done`.
    fn from(
        exit: &Exit,
        started: Instant,
        is_first: impl Fn(&serde_json::Value) -> bool,
        bytes: u64,
    ) -> Result<Self, String> {
        let since = |t: Instant| t.duration_since(started).as_secs_f64();
        let first = exit.lines.iter().find_map(|(t, line)| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            is_first(&event).then_some(*t)
        });
        let done = exit.time_of("done");
        match (first, done) {
            (Some(first), Some(done)) => Ok(Self {
                first_byte: since(first),
                done: since(done),
                bytes,
            }),
            _ => Err("the receiver printed no first-byte or no done event".to_owned()),
        }
    }
}

/// p2phost's figures and the path its receiver reported.
pub fn p2phost(
    lab: &Lab,
    from: Side<'_>,
    to: Side<'_>,
    code: &str,
    file: &Path,
    out: &Path,
) -> Result<(Timed, String), String> {
    let data = std::fs::read(file).unwrap();
    let done = transfer(lab, from, to, code, file, out, LIMIT);
    if !done.succeeded() {
        return Err(format!("p2phost failed\n{}", done.describe()));
    }
    same(file, &out.join(file.file_name().unwrap()), &data)?;
    let path = done
        .reported()
        .1
        .map_or_else(|| "no path event".to_owned(), |r| r.to_string());
    // The first byte stored: p2phost prints its first `progress` event (bytes > 0) at once for
    // the first data frame it writes, and throttles only the ones after it.
    let first = |e: &serde_json::Value| e["event"] == "progress" && e["bytes"].as_u64() > Some(0);
    let timed = Timed::from(&done.receiver, done.started, first, data.len() as u64)?;
    Ok((timed, path))
}

/// How the baseline goes, given the path p2phost's data took: the cell's sites and hosts.
pub struct Baseline<'a> {
    pub path: WirePath,
    pub sender_site: &'a Site,
    pub receiver_site: &'a Site,
    pub from: &'a Netns,
    pub to: &'a Netns,
}

impl Baseline<'_> {
    /// What the TCP copy goes through, for the table's legend.
    pub fn describe(&self) -> &'static str {
        match (self.path, self.same_site()) {
            (WirePath::Direct, true) => "lan",
            (WirePath::Direct, false) => "fwd",
            (WirePath::Relay, _) => "relay",
        }
    }

    fn same_site(&self) -> bool {
        std::ptr::eq(self.sender_site, self.receiver_site)
    }

    /// Copies `file` to `out` over TCP; its figures.
    pub fn copy(&self, lab: &Lab, file: &Path, out: &Path) -> Result<Timed, String> {
        let exe = std::env::current_exe().unwrap();
        let lan_addr = ipv4_of(self.to, "eth0");
        // Where the receiver listens (or the relay it connects to), and where the sender goes.
        let (mode, listen, target, relay) = match (self.path, self.same_site()) {
            (WirePath::Direct, true) => {
                let addr = format!("{lan_addr}:{DIRECT_PORT}");
                ("listen", addr.clone(), addr, None)
            }
            (WirePath::Direct, false) => {
                let public = ipv4_of(&self.receiver_site.router, "wan");
                forward_port(&self.receiver_site.router, &lan_addr);
                let listen = format!("{lan_addr}:{DIRECT_PORT}");
                ("listen", listen, format!("{public}:{DIRECT_PORT}"), None)
            }
            (WirePath::Relay, _) => {
                let addr = format!("{TURN_IP}:{RELAY_PORT}");
                let mut command = lab.internet.command(&exe);
                command.args(["tcp-relay", &addr]);
                ("relay", addr.clone(), addr, Some(Process::spawn(command)))
            }
        };
        let mut receive = self.to.command(&exe);
        receive.args(["tcp-recv", mode, &listen]).arg(out);
        let mut send = self.from.command(&exe);
        let send_mode = if mode == "relay" { "relay" } else { "direct" };
        send.args(["tcp-send", send_mode, &target]).arg(file);
        let started = Instant::now();
        let receiver = Process::spawn(receive);
        let sender = Process::spawn(send);
        let received = receiver.wait(LIMIT);
        let sent = sender.wait(Duration::from_secs(10));
        if let Some(relay) = relay {
            relay.wait(Duration::from_secs(10));
        }
        if received.code != Some(0) || sent.code != Some(0) {
            return Err(format!(
                "the TCP copy failed: receiver {:?} {}, sender {:?} {}",
                received.code, received.stderr, sent.code, sent.stderr
            ));
        }
        let data = std::fs::read(file).unwrap();
        same(file, out, &data)?;
        let first = |e: &serde_json::Value| e["event"] == "first";
        Timed::from(&received, started, first, data.len() as u64)
    }
}

/// A home router's port forward, as a user behind it would set one up for a TCP copy: the WAN's
/// [`DIRECT_PORT`] goes to the host; its firewall lets such connections through.
fn forward_port(router: &Netns, host: &str) {
    router.nft(&format!(
        r#"
table ip portfwd {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "wan" tcp dport {DIRECT_PORT} dnat to {host}:{DIRECT_PORT}
    }}
}}
insert rule ip router forward iifname "wan" ct status dnat accept
"#
    ));
}

/// The IPv4 address of `dev` in `ns`.
fn ipv4_of(ns: &Netns, dev: &str) -> String {
    let out = crate::net::run(std::process::Command::new("ip").args([
        "-n",
        ns.name(),
        "-4",
        "-o",
        "addr",
        "show",
        "dev",
        dev,
    ]))
    .unwrap();
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no IPv4 address on {dev} in {}: {out}", ns.name()))
        .to_owned()
}

fn same(sent: &Path, received: &Path, data: &[u8]) -> Result<(), String> {
    let copy = std::fs::read(received).map_err(|e| format!("{}: {e}", received.display()))?;
    if copy == data {
        Ok(())
    } else {
        Err(format!(
            "{} differs from {}",
            received.display(),
            sent.display()
        ))
    }
}
