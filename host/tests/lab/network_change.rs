//! A daemon pair across two cone NATs survives a network change, as a laptop's link does: one
//! router's uplink goes down for 10 s and comes back, or the router gets a new public address
//! (its NAT mappings go with either, as on a real router). Files dropped in the watched folder
//! during and after the change arrive. Prints how long that took once the network was back.

use std::time::{Duration, Instant};

use crate::daemon::{Daemon, drop_file, wait_until};
use crate::net::Netns;
use crate::peer::random_file;
use crate::topology::{Kind, Lab, SIGNALING_IP, Site};

/// For each step; a daemon that does not recover fails here. Not a speed bound.
const PATIENCE: Duration = Duration::from_secs(120);
const OUTAGE: Duration = Duration::from_secs(10);

/// Two daemons that trust each other, on two cone sites, each seeing the other online, and a
/// first file across to show the link works.
struct Pair {
    // Daemons before sites and lab: drop order.
    a: Daemon,
    b: Daemon,
    site_a: Site,
    _site_b: Site,
    _base: tempfile::TempDir,
    lab: Lab,
}

impl Pair {
    fn start() -> Self {
        let lab = Lab::new();
        let (site_a, site_b) = (lab.site(Kind::Cone), lab.site(Kind::Cone));
        let base = tempfile::tempdir().unwrap();
        let mut a = Daemon::init(base.path(), "a");
        let mut b = Daemon::init(base.path(), "b");
        a.configure(&lab, &b);
        b.configure(&lab, &a);
        a.start(&site_a.hosts[0]);
        b.start(&site_b.hosts[0]);
        let pair = Self {
            a,
            b,
            site_a,
            _site_b: site_b,
            _base: base,
            lab,
        };
        let met = wait_until(PATIENCE, || {
            pair.a.sees_online(&pair.b) && pair.b.sees_online(&pair.a)
        });
        assert!(met.is_some(), "the daemons never met\n{}", pair.logs());
        let before = b"sent before the change\n".repeat(100);
        pair.send(&pair.a, &pair.b, "before.txt", &before, Instant::now());
        pair
    }

    fn router_a(&self) -> &Netns {
        &self.site_a.router
    }

    /// Drops `name` in `from`'s folder and waits for it at `to`; the time from `since` to its
    /// arrival.
    fn send(&self, from: &Daemon, to: &Daemon, name: &str, data: &[u8], since: Instant) -> f64 {
        drop_file(&from.folder().join(name), data);
        self.arrives(to, name, data, since)
    }

    /// Waits until `to` holds `name` with `data`; the time from `since` to then.
    fn arrives(&self, to: &Daemon, name: &str, data: &[u8], since: Instant) -> f64 {
        let path = to.folder().join(name);
        let arrived = wait_until(PATIENCE, || std::fs::read(&path).is_ok_and(|d| d == data));
        let Some(arrived) = arrived else {
            panic!("{name} never arrived within {PATIENCE:?}\n{}", self.logs());
        };
        arrived.duration_since(since).as_secs_f64()
    }

    fn logs(&self) -> String {
        format!(
            "signaling: {}\n{}\n{}",
            self.lab.signaling.url,
            self.a.log_text(),
            self.b.log_text()
        )
    }
}

#[test]
fn a_daemon_pair_recovers_from_a_10_s_outage_and_delivers_what_was_dropped_meanwhile() {
    if !crate::can_build_lab(
        "a_daemon_pair_recovers_from_a_10_s_outage_and_delivers_what_was_dropped_meanwhile",
    ) {
        return;
    }
    let pair = Pair::start();
    pair.router_a().ip(&["link", "set", "wan", "down"]);
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let during = random_file(&dir.path().join("during.bin"), 1 << 20);
    drop_file(&pair.a.folder().join("during.bin"), &during);
    std::thread::sleep(OUTAGE.saturating_sub(down.elapsed()));
    pair.router_a().ip(&["link", "set", "wan", "up"]);
    // Taking the link down removed the default route through it.
    pair.router_a()
        .ip(&["route", "add", "default", "via", SIGNALING_IP]);
    let up = Instant::now();
    let recovered = pair.arrives(&pair.b, "during.bin", &during, up);
    let after = pair.send(
        &pair.a,
        &pair.b,
        "after.txt",
        &b"sent after the outage\n".repeat(100),
        Instant::now(),
    );
    eprintln!(
        "\nlink down {:.0} s: the file dropped during the outage arrived {recovered:.1} s after \
         the link came back; one dropped afterwards took {after:.1} s",
        up.duration_since(down).as_secs_f64()
    );
}

#[test]
fn a_daemon_pair_recovers_when_a_routers_public_address_changes() {
    if !crate::can_build_lab("a_daemon_pair_recovers_when_a_routers_public_address_changes") {
        return;
    }
    let pair = Pair::start();
    // The ISP hands the router another address: every mapping through the old one is gone
    // (masquerade forgets them), and the server sees a's connections come from elsewhere.
    let old = pair
        .router_a()
        .command("ip")
        .args(["-4", "-o", "addr", "show", "dev", "wan"])
        .output()
        .unwrap();
    let old = String::from_utf8_lossy(&old.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("198.18.1."))
        .unwrap()
        .to_owned();
    let new = old.replacen("198.18.1.", "198.18.2.", 1);
    pair.router_a().ip(&["addr", "del", &old, "dev", "wan"]);
    pair.router_a().ip(&["addr", "add", &new, "dev", "wan"]);
    // The default route went with the old address's subnet route.
    pair.router_a()
        .ip(&["route", "add", "default", "via", SIGNALING_IP]);
    let changed = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // First towards a, which has not sent anything since: nothing tells it yet that its
    // connection to the signaling server is dead.
    let to_a = random_file(&dir.path().join("to-a.bin"), 1 << 20);
    let to_a = pair.send(&pair.b, &pair.a, "to-a.bin", &to_a, changed);
    let from_a = random_file(&dir.path().join("from-a.bin"), 1 << 20);
    let from_a = pair.send(&pair.a, &pair.b, "from-a.bin", &from_a, Instant::now());
    eprintln!(
        "\npublic address {old} → {new}: a file dropped at b at once arrived at a {to_a:.1} s \
         later; then one from a took {from_a:.1} s"
    );
}

/// A daemon must notice that its signaling connection died: a write into a dead TCP connection
/// succeeds, and only TCP giving up would tell it (979 s here, before the client counted
/// unanswered pings); meanwhile the server drops it as idle and its peer's offers go nowhere.
#[test]
fn a_daemon_pair_recovers_when_a_host_moves_to_a_new_address() {
    if !crate::can_build_lab("a_daemon_pair_recovers_when_a_host_moves_to_a_new_address") {
        return;
    }
    let pair = Pair::start();
    // A laptop that joins another network: its own address changes (here on the same LAN, so
    // the test needs no second site). Its connections from the old address are dead, and no
    // reset comes back to tell it: packets from an address it no longer has never leave.
    let host = &pair.site_a.hosts[0];
    let old = host
        .command("ip")
        .args(["-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    let old = String::from_utf8_lossy(&old.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("10.13."))
        .unwrap()
        .to_owned();
    let new = old.replacen(".2/24", ".9/24", 1);
    host.ip(&["addr", "del", &old, "dev", "eth0"]);
    host.ip(&["addr", "add", &new, "dev", "eth0"]);
    // The default route went with the old address.
    host.ip(&[
        "route",
        "add",
        "default",
        "via",
        &new.replacen(".9/24", ".1", 1),
    ]);
    let changed = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let to_a = random_file(&dir.path().join("to-a.bin"), 1 << 20);
    let to_a = pair.send(&pair.b, &pair.a, "to-a.bin", &to_a, changed);
    let from_a = random_file(&dir.path().join("from-a.bin"), 1 << 20);
    let from_a = pair.send(&pair.a, &pair.b, "from-a.bin", &from_a, Instant::now());
    eprintln!(
        "\nhost address {old} → {new}: a file dropped at b at once arrived at a {to_a:.1} s \
         later; then one from a took {from_a:.1} s"
    );
}
