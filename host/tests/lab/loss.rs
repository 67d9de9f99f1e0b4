//! Packet loss: this kernel has no netem, so an nftables rule in one router drops 1% of what it
//! forwards, at random, both ways (data out, acknowledgements in, and the signaling's TCP too).
//! A transfer across it still completes, identical. How fast is the next issue's concern.

use std::time::Duration;

use crate::peer::{Side, random_file, transfer};
use crate::topology::{Kind, Lab};
use crate::wire::{Counted, counter};

/// 10 in 1000 packets, drawn independently for each (`numgen random`); counted, so the test can
/// tell the rule really dropped some.
const LOSS: &str = r#"
table ip loss {
    counter seen {}
    counter dropped {}
    chain forward {
        type filter hook forward priority -20; policy accept;
        counter name "seen"
        numgen random mod 1000 < 10 counter name "dropped" drop
    }
}
"#;

const SIZE: u64 = 8 << 20;
/// Generous: a broken transfer fails here instead of hanging; not a speed bound.
const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn a_transfer_through_a_router_that_drops_1_percent_of_packets_completes_identical() {
    if !crate::can_build_lab(
        "a_transfer_through_a_router_that_drops_1_percent_of_packets_completes_identical",
    ) {
        return;
    }
    let lab = Lab::new();
    let (sending, receiving) = (lab.site(Kind::Cone), lab.site(Kind::Cone));
    sending.router.nft(LOSS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lossy.bin");
    let data = random_file(&file, SIZE);
    let out = dir.path().join("out");

    let done = transfer(
        &lab,
        Side {
            host: &sending.hosts[0],
            kind: Kind::Cone,
        },
        Side {
            host: &receiving.hosts[0],
            kind: Kind::Cone,
        },
        "60-aardvark-adroitness",
        &file,
        &out,
        LIMIT,
    );
    assert!(done.succeeded(), "{}", done.describe());
    assert!(
        std::fs::read(out.join("lossy.bin")).unwrap() == data,
        "the received file differs from the one sent"
    );
    let seen = counter(&sending.router, "ip", "loss", "seen");
    let dropped = counter(&sending.router, "ip", "loss", "dropped");
    // 8 MiB is thousands of packets: at 1%, none dropped would mean the rule did nothing.
    assert!(
        dropped.packets > 0,
        "the loss rule dropped nothing of {} packets",
        seen.packets
    );
    let path = Counted::read(&sending.router)
        .path(SIZE)
        .map_or("unknown", |p| p.name());
    eprintln!(
        "\n1% loss: 8 MiB arrived identical over the {path} path in {:.1} s (receive start to done); \
         the router dropped {} of {} packets ({:.2}%)",
        done.seconds().unwrap_or(f64::NAN),
        dropped.packets,
        seen.packets,
        100.0 * dropped.packets as f64 / seen.packets.max(1) as f64
    );
}
