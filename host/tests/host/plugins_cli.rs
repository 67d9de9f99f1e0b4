//! WASM plugins on real transfers: `p2phost send/receive --plugin FILE.wasm` with real processes,
//! a real signaling server and the example plugins built by `plugins/build.sh` (the test command
//! runs it first; missing components fail these tests rather than skip them).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Exit, Running, Servers, signaling, tree};

const LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn component(name: &str) -> PathBuf {
    let dir = std::env::var_os("P2P_PLUGINS_OUT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/out"),
        PathBuf::from,
    );
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run plugins/build.sh",
        path.display()
    );
    path
}

fn start(servers: &Servers, command: &str, extra: Vec<OsString>) -> Running {
    let mut args: Vec<OsString> = vec![command.into(), "--json".into()];
    for arg in ["--server", &servers.url, "--stun", &servers.stun] {
        args.push(arg.into());
    }
    args.extend(extra);
    Running::spawn(&args)
}

/// Sends `inputs` with `send_extra` and receives into `out` with `receive_extra`.
pub(crate) async fn transfer(
    servers: &Servers,
    send_extra: Vec<OsString>,
    inputs: &[&Path],
    out: &Path,
    receive_extra: Vec<OsString>,
) -> (Exit, Exit) {
    let mut args = send_extra;
    args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
    let mut sender = start(servers, "send", args);
    let code = loop {
        let event: serde_json::Value = serde_json::from_str(&sender.next_line().await).unwrap();
        if event["event"] == "code" {
            break event["code"].as_str().unwrap().to_owned();
        }
    };
    let mut args = receive_extra;
    args.extend([
        "--yes".into(),
        "--out".into(),
        out.as_os_str().to_owned(),
        code.into(),
    ]);
    let receiver = start(servers, "receive", args);
    let received = receiver.exit(LIMIT).await;
    (sender.exit(LIMIT).await, received)
}

fn plugin(name: &str) -> Vec<OsString> {
    vec!["--plugin".into(), component(name).into()]
}

/// Text that compresses: lines of words.
fn text_corpus(len: usize) -> Vec<u8> {
    let words = [
        "peer", "to", "peer", "transfer", "over", "a", "data", "channel", "sealed",
    ];
    let mut text = Vec::with_capacity(len + 16);
    let mut i = 0usize;
    while text.len() < len {
        text.extend_from_slice(words[i % words.len()].as_bytes());
        text.push(if i % 11 == 10 { b'\n' } else { b' ' });
        i = i.wrapping_mul(31).wrapping_add(7) % 1_000_003;
    }
    text.truncate(len);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_halves_the_wire_bytes_of_text_and_the_copy_is_identical() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.txt");
    let text = text_corpus(3_000_000);
    std::fs::write(&file, &text).unwrap();
    let out = dir.path().join("out");

    let (sent, received) = transfer(
        &servers,
        plugin("compress"),
        &[&file],
        &out,
        plugin("compress"),
    )
    .await;
    assert_eq!(received.code, Some(0), "{received:?}");
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let done = sent.last_event();
    let (bytes, wire) = (
        done["bytes"].as_u64().unwrap(),
        done["wire_bytes"].as_u64().unwrap(),
    );
    assert_eq!(bytes, text.len() as u64);
    assert!(
        wire * 2 <= bytes,
        "wire_bytes {wire} of {bytes}: not halved"
    );
    assert_eq!(std::fs::read(out.join("corpus.txt")).unwrap(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_without_the_encoding_plugin_refuses_naming_it() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.txt");
    std::fs::write(&file, text_corpus(200_000)).unwrap();
    let out = dir.path().join("out");

    let (sent, received) = transfer(&servers, plugin("compress"), &[&file], &out, vec![]).await;
    assert_eq!(received.code, Some(4), "{received:?}");
    assert!(
        received.stderr.contains("\"lz4\"") && received.stderr.contains("--plugin"),
        "{}",
        received.stderr
    );
    assert_eq!(sent.code, Some(4), "{sent:?}");
    assert!(sent.stderr.contains("lz4"), "{}", sent.stderr);
    assert!(!out.join("corpus.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_stops_the_eicar_signature_even_across_chunks_and_nothing_is_stored() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    // The signature straddles the boundary of the first two 65,522-byte chunks.
    let mut data = vec![b'.'; 65_522 - 30];
    data.extend_from_slice(eicar);
    data.extend(vec![b'.'; 100_000]);
    let file = dir.path().join("innocent.bin");
    std::fs::write(&file, &data).unwrap();
    let out = dir.path().join("out");

    // The receiver scans: the sender sends, the receiver's plugin stops it.
    let (sent, received) = transfer(&servers, vec![], &[&file], &out, plugin("scan")).await;
    assert_eq!(received.code, Some(8), "{received:?}");
    assert!(received.stderr.contains("scan"), "{}", received.stderr);
    assert_eq!(received.last_event()["kind"], "plugin");
    assert_eq!(sent.code, Some(8), "{sent:?}");
    assert!(
        !out.join("innocent.bin").exists(),
        "nothing under the final name"
    );
    // A clean file goes through the same plugin.
    let clean = dir.path().join("clean.bin");
    std::fs::write(&clean, vec![b'.'; 200_000]).unwrap();
    let out2 = dir.path().join("out2");
    let (sent, received) = transfer(&servers, vec![], &[&clean], &out2, plugin("scan")).await;
    assert_eq!(
        (sent.code, received.code),
        (Some(0), Some(0)),
        "{received:?}"
    );
    assert_eq!(tree(&out2).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_fails_the_transfer_with_its_name_and_inspect_describes_plugins() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![1u8; 10_000]).unwrap();
    let out = dir.path().join("out");
    let mut hostile = plugin("hostile");
    hostile.extend(["--setting".into(), "mode=loop".into()]);
    let (sent, received) = transfer(&servers, hostile, &[&file], &out, vec![]).await;
    assert_eq!(sent.code, Some(8), "{sent:?}");
    assert!(
        sent.stderr.contains("hostile") && sent.stderr.contains("deadline"),
        "{}",
        sent.stderr
    );
    assert_ne!(received.code, Some(0), "{received:?}");
    assert!(!out.join("data.bin").exists());

    let inspected = std::process::Command::new(crate::support::BIN)
        .args(["plugin", "inspect"])
        .arg(component("compress"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspected.stdout);
    assert!(inspected.status.success(), "{text}");
    assert!(
        text.contains("encoding:    lz4") && text.contains("p2phost:plugin@0.1.0"),
        "{text}"
    );
    let not_a_plugin = dir.path().join("not.wasm");
    std::fs::write(&not_a_plugin, b"\0asm\x01\0\0\0").unwrap();
    let refused = std::process::Command::new(crate::support::BIN)
        .args(["plugin", "inspect"])
        .arg(&not_a_plugin)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_plugin_fails_the_transfer_with_its_panic_message_on_both_sides() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![2u8; 100_000]).unwrap();
    let out = dir.path().join("out");
    // The receiver's plugin panics on the first chunk that arrives.
    let mut hostile = plugin("hostile");
    hostile.extend(["--setting".into(), "mode=panic".into()]);
    let (sent, received) = transfer(&servers, vec![], &[&file], &out, hostile).await;

    // Not just "unreachable": the message and where it panicked, from the SDK's panic hook.
    let message = "hostile plugin panics in chunk";
    assert_eq!(received.code, Some(8), "{received:?}");
    assert_eq!(received.last_event()["kind"], "plugin");
    let error = received.stderr.lines().last().unwrap_or_default();
    assert!(
        error.contains("hostile: trap in chunk: panicked at ")
            && error.contains("src/lib.rs:")
            && error.ends_with(message),
        "{}",
        received.stderr
    );
    // The peer is told the same reason.
    assert_eq!(sent.code, Some(8), "{sent:?}");
    assert!(
        sent.stderr.contains("hostile: trap in chunk: panicked at ")
            && sent.stderr.contains(message),
        "{}",
        sent.stderr
    );
    assert!(!out.join("data.bin").exists());
}
