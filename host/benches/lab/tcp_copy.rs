//! The baseline: a plain TCP copy, the bench binary run again with a role argument inside a lab
//! namespace (as `benches/transfer.rs` does on loopback). No protocol beyond TCP's own: the sender
//! streams the file in 64 KiB writes and closes; the receiver writes what it reads, syncs the file
//! (as p2phost's receiver does before `done`) and prints JSON events (`first`, `done`) that the
//! driver times as it times p2phost's.
//!
//! - `tcp-recv listen ADDR OUT`: accepts one connection on ADDR (reached through the router's port
//!   forward, or across the LAN).
//! - `tcp-recv relay ADDR OUT` / `tcp-send relay ADDR FILE`: both connect out to the relay, as two
//!   TURN clients do, and say which end they are in their first byte.
//! - `tcp-send direct ADDR FILE`: connects to ADDR.
//! - `tcp-relay ADDR`: takes one receiver and one sender, in either order, copies the sender's
//!   bytes to the receiver, then exits.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes per read and per write: p2phost's frame size.
const PIECE: usize = 64 * 1024;
/// The first byte on a relay connection: which end this is.
const RECEIVER: u8 = b'R';
const SENDER: u8 = b'S';

/// Runs the role named by `args[0]`, if it is one; false otherwise (then the driver runs).
pub fn run_role(args: &[String]) -> bool {
    let arg = |i: usize| args[i].as_str();
    match args.first().map(String::as_str) {
        Some("tcp-recv") => receive(arg(1) == "relay", arg(2), Path::new(arg(3))),
        Some("tcp-send") => send(arg(1) == "relay", arg(2), Path::new(arg(3))),
        Some("tcp-relay") => relay(arg(1)),
        _ => return false,
    }
    true
}

fn receive(via_relay: bool, addr: &str, out: &Path) {
    let mut stream = if via_relay {
        let mut stream = connect(addr);
        stream.write_all(&[RECEIVER]).unwrap();
        stream
    } else {
        TcpListener::bind(addr).unwrap().accept().unwrap().0
    };
    let mut file = File::create(out).unwrap();
    let mut buf = vec![0; PIECE];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if total == 0 {
            println!(r#"{{"event":"first"}}"#);
        }
        file.write_all(&buf[..n]).unwrap();
        total += n as u64;
    }
    file.sync_all().unwrap();
    println!(r#"{{"event":"done","bytes":{total}}}"#);
}

fn send(via_relay: bool, addr: &str, path: &Path) {
    let mut stream = connect(addr);
    if via_relay {
        stream.write_all(&[SENDER]).unwrap();
    }
    let mut file = File::open(path).unwrap();
    let mut buf = vec![0; PIECE];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).unwrap();
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    // Until the receiver has read everything and closed: an early close could reset the rest.
    let _ = stream.read(&mut buf);
}

/// Connects, retrying while nothing listens yet: the driver starts both ends at once, as it
/// starts p2phost's, and does not wait for a listener.
fn connect(addr: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => return stream,
            Err(e) if Instant::now() >= deadline => panic!("connecting to {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn relay(addr: &str) {
    let listener = TcpListener::bind(addr).unwrap();
    let (mut receiver, mut sender) = (None, None);
    while receiver.is_none() || sender.is_none() {
        let mut stream = listener.accept().unwrap().0;
        let mut role = [0];
        stream.read_exact(&mut role).unwrap();
        match role[0] {
            RECEIVER => receiver = Some(stream),
            SENDER => sender = Some(stream),
            other => panic!("unknown role byte {other}"),
        }
    }
    let (mut receiver, mut sender) = (receiver.unwrap(), sender.unwrap());
    let mut buf = vec![0; PIECE];
    loop {
        let n = sender.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        receiver.write_all(&buf[..n]).unwrap();
    }
    receiver.shutdown(std::net::Shutdown::Write).unwrap();
}
