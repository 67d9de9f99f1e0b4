//! Lua scripts on real transfers: `p2phost send/receive --script FILE.lua` with real processes,
//! a real signaling server and the example scripts of `scripts/`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Running, Servers, signaling, tree};

const LIMIT: Duration = Duration::from_secs(60);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// `p2phost COMMAND --json --server … --stun … EXTRA…`.
fn start(servers: &Servers, command: &str, extra: &[OsString]) -> Running {
    let mut args: Vec<OsString> = vec![command.into(), "--json".into()];
    for arg in ["--server", &servers.url, "--stun", &servers.stun] {
        args.push(arg.into());
    }
    args.extend(extra.iter().cloned());
    Running::spawn(&args)
}

/// The sender's code, and the events it printed before it (such as `skipped`).
async fn code_of(sender: &mut Running) -> (String, Vec<serde_json::Value>) {
    let mut before = Vec::new();
    loop {
        let event: serde_json::Value = serde_json::from_str(&sender.next_line().await).unwrap();
        if event["event"] == "code" {
            return (event["code"].as_str().unwrap().to_owned(), before);
        }
        before.push(event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limit_leaves_out_the_big_file_on_the_sending_side() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::write(inputs.join("small.txt"), vec![b's'; 1000]).unwrap();
    std::fs::write(inputs.join("big.bin"), vec![b'b'; 200_000]).unwrap();
    let out = dir.path().join("out");

    let mut sender = start(
        &servers,
        "send",
        &[
            "--script".into(),
            script("size-limit.lua").into(),
            "--setting".into(),
            "max_bytes=100000".into(),
            inputs.join("small.txt").into(),
            inputs.join("big.bin").into(),
        ],
    );
    let (code, before) = code_of(&mut sender).await;
    let receiver = start(
        &servers,
        "receive",
        &[
            "--yes".into(),
            "--out".into(),
            out.clone().into(),
            code.into(),
        ],
    );
    let received = receiver.exit(LIMIT).await;
    let sent = sender.exit(LIMIT).await;
    assert_eq!(received.code, Some(0), "{received:?}");
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert_eq!(sent.last_event()["files"], 1);
    // Left out before the code was shown, with the script's reason.
    let skipped = before
        .iter()
        .find(|e| e["event"] == "skipped")
        .cloned()
        .unwrap_or_default();
    assert!(
        skipped["path"].as_str().unwrap_or("").ends_with("big.bin")
            && skipped["why"].as_str().unwrap_or("").contains("size-limit"),
        "{before:?}"
    );
    assert_eq!(tree(&out), vec![("small.txt".to_owned(), vec![b's'; 1000])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_error_fails_the_transfer_on_both_sides_with_its_name_and_line() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.lua");
    std::fs::write(
        &broken,
        "p2p.on(\"chunk\", function(file, chunk)\n  local t = nil\n  return t.field\nend)\n",
    )
    .unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![7u8; 100_000]).unwrap();
    let out = dir.path().join("out");

    let mut sender = start(&servers, "send", &[file.clone().into()]);
    let (code, _) = code_of(&mut sender).await;
    let receiver = start(
        &servers,
        "receive",
        &[
            "--yes".into(),
            "--script".into(),
            broken.into(),
            "--out".into(),
            out.clone().into(),
            code.into(),
        ],
    );
    let received = receiver.exit(LIMIT).await;
    let sent = sender.exit(LIMIT).await;
    assert_eq!(received.code, Some(8), "{received:?}");
    assert!(
        received.stderr.contains("broken") && received.stderr.contains("broken.lua:3"),
        "{}",
        received.stderr
    );
    assert_eq!(received.last_event()["kind"], "plugin");
    assert_ne!(sent.code, Some(0), "{sent:?}");
    assert!(sent.stderr.contains("broken.lua:3"), "{}", sent.stderr);
    assert!(
        !out.join("data.bin").exists(),
        "nothing under the final name"
    );
}
