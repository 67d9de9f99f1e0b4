//! The NAT-lab benchmark (issue 13, "Benchmark"): for each cell of the lab's path matrix (sender
//! NAT kind × receiver NAT kind, `tests/lab/matrix.rs`), one file moved by real `p2phost send` /
//! `p2phost receive` processes across the lab, and beside it, in the same run and over the same
//! lab path, a plain TCP copy ([`tcp_copy`]). It prints figures; it asserts no speed.
//!
//! `cargo bench -p p2phost --bench lab` (root: network namespaces; coturn, nftables, iproute2).
//! Environment:
//! - `LAB_BIN_DIR`: the directory of the `p2phost` to measure (default: the one cargo built with
//!   this bench, in the target's `release` dir under `cargo bench`).
//! - `LAB_DIRECT_SIZE` (default `32MiB`), `LAB_RELAY_SIZE` (default `4MiB`): the file for cells
//!   whose data goes direct, and for relayed ones (the relay moves well under 1 MB/s here).
//! - `LAB_CELLS`: which cells, comma-separated: `SENDER:RECEIVER` (`cone:symmetric`,
//!   `same-lan:same-lan`), `direct`, `relay` or `all` (the default).
//! - `LAB_GSO_MAX_SEGS` (default 65535, the kernel's): the hosts' links' `gso_max_segs`. The lab
//!   tests set it to 1, so that the loss test's router drops datagrams one at a time; that also
//!   makes a veth pass TCP one segment at a time, and a TCP copy then runs about 20 times slower
//!   (32 MiB between two namespaces: 0.06 s, and 1.2 s at 1), which no NIC with TCP segmentation
//!   offload would do to it: such a baseline would say nothing. Both copies of a cell run with the
//!   same setting; `1` runs the lab exactly as its tests do.
//!
//! The TCP copy's path, by the path the matrix expects for the cell:
//! - direct, two sites (`fwd`): the receiver's router forwards a TCP port to it (an nftables dnat,
//!   as a user would set up a port forward); the sender connects to that public address from
//!   behind its own NAT. Host → NAT → internet bridge → NAT → host, as p2phost's UDP went.
//! - direct, one LAN (`lan`): host to host across the LAN's bridge.
//! - relay (`relay`): both ends connect out to a TCP forwarder on the TURN server's address in
//!   the internet namespace, which copies the sender's stream to the receiver: TURN's shape (both
//!   behind their NATs, the data through a server), but TCP end to end where TURN carries UDP.
//!
//! Cells run one at a time: two relayed transfers at once have broken on two cores.

// A benchmark's main prints its table and may panic on any failure: that is its whole job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    unreachable_pub
)]

// The lab itself, shared with its tests; the bench uses only part of each module.
#[allow(dead_code)]
#[path = "../../tests/lab/matrix.rs"]
mod matrix;
#[allow(dead_code)]
#[path = "../../tests/lab/net.rs"]
mod net;
#[allow(dead_code)]
#[path = "../../tests/lab/peer.rs"]
mod peer;
#[allow(dead_code)]
#[path = "../../tests/lab/servers.rs"]
mod servers;
#[allow(dead_code)]
#[path = "../../tests/lab/topology.rs"]
mod topology;
#[allow(dead_code)]
#[path = "../../tests/lab/wire.rs"]
mod wire;

mod measure;
mod tcp_copy;

use matrix::{Cell, MATRIX};
use measure::{Baseline, Timed};
use peer::Side;
use topology::{Kind, Lab};
use wire::Path as WirePath;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; a role argument is this binary run again in a namespace.
    if !tcp_copy::run_role(&args) {
        run();
    }
}

fn run() {
    let direct_size = size_from_env("LAB_DIRECT_SIZE", 32 << 20);
    let relay_size = size_from_env("LAB_RELAY_SIZE", 4 << 20);
    let cells = selected_cells(&std::env::var("LAB_CELLS").unwrap_or_else(|_| "all".into()));
    let gso_max_segs = std::env::var("LAB_GSO_MAX_SEGS").unwrap_or_else(|_| "65535".into());
    println!(
        "NAT-lab benchmark: {} (files: {} MiB direct, {} MiB relayed; random bytes; hosts' \
         gso_max_segs {gso_max_segs})",
        peer::bin().display(),
        direct_size as f64 / f64::from(1 << 20),
        relay_size as f64 / f64::from(1 << 20),
    );
    println!(
        "p2phost: times from `receive` exec; first byte = its first `progress` event with bytes > 0 \
         (printed as the first data frame is stored), done = its `done` event; MB/s = size / (done - \
         first byte); path = the receiver's `path` event\nTCP copy: the same times and MB/s; via \
         fwd = port forward on the receiver's router, lan = across the LAN, relay = TCP forwarder on \
         the TURN server's address; ratio = p2phost MB/s / TCP MB/s\n"
    );
    println!("{:<53} {:<24} | TCP copy", "", "p2phost");
    println!(
        "{:<26} {:<26} {:>8} {:>7} {:>7} | {:<5} {:>7} {:>7} {:>7}",
        "cell", "path (p2phost)", "1st B s", "done s", "MB/s", "via", "done s", "MB/s", "ratio"
    );
    let lab = Lab::new();
    let mut failures = Vec::new();
    for &i in &cells {
        let cell = &MATRIX[i];
        let size = match cell.path {
            WirePath::Direct => direct_size,
            WirePath::Relay => relay_size,
        };
        let name = format!("{} → {}", cell.sender.name(), cell.receiver.name());
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_cell(&lab, i, cell, size, &gso_max_segs)
        })) {
            Ok(Ok(row)) => println!("{name:<26} {row}"),
            Ok(Err(why)) => {
                println!("{name:<26} FAILED");
                failures.push(format!("{name}: {why}"));
            }
            Err(_) => {
                println!("{name:<26} FAILED (panicked, see above)");
                failures.push(format!("{name}: panicked"));
            }
        }
    }
    // Before exit, which runs no destructors: coturn stops and the namespaces go.
    drop(lab);
    if !failures.is_empty() {
        eprintln!("\n{}", failures.join("\n\n"));
        std::process::exit(1);
    }
}

/// Runs one cell on sites of its own, p2phost then TCP; the table's row.
fn run_cell(
    lab: &Lab,
    index: usize,
    cell: &Cell,
    size: u64,
    gso_max_segs: &str,
) -> Result<String, String> {
    let sender_site = lab.site(cell.sender);
    let receiver_site = (cell.sender != Kind::SameLan).then(|| lab.site(cell.receiver));
    let receiver_site = receiver_site.as_ref().unwrap_or(&sender_site);
    let (from, to) = if std::ptr::eq(receiver_site, &sender_site) {
        (&sender_site.hosts[0], &sender_site.hosts[1])
    } else {
        (&sender_site.hosts[0], &receiver_site.hosts[0])
    };
    for host in [from, to] {
        host.ip(&["link", "set", "eth0", "gso_max_segs", gso_max_segs]);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.bin");
    peer::random_file(&file, size);
    let out = dir.path().join("out");
    let code = format!("{}-aardvark-adroitness", 60 + index);
    let (sending, receiving) = (
        Side {
            host: from,
            kind: cell.sender,
        },
        Side {
            host: to,
            kind: cell.receiver,
        },
    );
    let (p2p, path) = measure::p2phost(lab, sending, receiving, &code, &file, &out)?;
    let baseline = Baseline {
        path: cell.path,
        sender_site: &sender_site,
        receiver_site,
        from,
        to,
    };
    let tcp = baseline.copy(lab, &file, &dir.path().join("tcp.bin"))?;
    Ok(row(&p2p, &path, baseline.describe(), &tcp))
}

fn row(p2p: &Timed, path: &str, via: &str, tcp: &Timed) -> String {
    format!(
        "{path:<26} {:>8.2} {:>7.2} {:>7.2} | {via:<5} {:>7.3} {:>7.1} {:>7}",
        p2p.first_byte,
        p2p.done,
        p2p.mbps(),
        tcp.done,
        tcp.mbps(),
        ratio(p2p.mbps() / tcp.mbps())
    )
}

/// `0.16`, or `1/2400` when two decimals would round it to nothing (a relayed cell).
fn ratio(r: f64) -> String {
    if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("1/{:.0}", 1.0 / r)
    }
}

/// Indices into [`MATRIX`] of the cells `spec` names.
fn selected_cells(spec: &str) -> Vec<usize> {
    let names: Vec<String> = MATRIX
        .iter()
        .map(|c| format!("{}:{}", c.sender.name(), c.receiver.name()))
        .collect();
    let mut chosen = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let matches: Vec<usize> = (0..MATRIX.len())
            .filter(|&i| match item {
                "all" => true,
                "direct" => MATRIX[i].path == WirePath::Direct,
                "relay" => MATRIX[i].path == WirePath::Relay,
                name => names[i] == name,
            })
            .collect();
        assert!(
            !matches.is_empty(),
            "LAB_CELLS: no cell {item:?}; cells are all, direct, relay or one of {}",
            names.join(", ")
        );
        for i in matches {
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
    }
    chosen.sort_unstable();
    chosen
}

/// A size from `var`: bytes, or a number with `KiB`, `MiB` or `GiB`.
fn size_from_env(var: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(var) else {
        return default;
    };
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text.as_str(), ""), |at| text.split_at(at));
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        other => panic!("{var}: unknown unit {other:?} (B, KiB, MiB, GiB)"),
    };
    number
        .parse::<u64>()
        .unwrap_or_else(|e| panic!("{var}={text}: {e}"))
        << shift
}
