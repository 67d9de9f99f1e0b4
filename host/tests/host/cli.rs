//! `p2phost send` and `p2phost receive` as a user runs them: two processes, a real signaling server
//! on loopback, real files.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{
    BIN, both_succeeded, finish, last_event, receive_off_thread, send, signaling, tree,
};

fn sample_folder(root: &Path) -> std::path::PathBuf {
    let folder = root.join("photos");
    std::fs::create_dir_all(folder.join("2026/empty")).unwrap();
    std::fs::write(folder.join("zero"), b"").unwrap();
    std::fs::write(folder.join("one"), b"1").unwrap();
    std::fs::write(folder.join("2026/ünï ✓.txt"), "unicode names").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(folder.join("big.bin"), big).unwrap();
    for i in 0..50 {
        std::fs::write(
            folder.join(format!("2026/small-{i:02}.txt")),
            format!("file {i}"),
        )
        .unwrap();
    }
    folder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_goes_across_identical() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = sample_folder(dir.path());
    // The receiver creates its --out folder.
    let out = dir.path().join("new/out");

    let (sender, code) = send(&servers, &[&folder]);
    let received = receive_off_thread(&servers, &out, &code).await;
    let stdout = both_succeeded(&received, sender);
    let done = last_event(&stdout);
    assert_eq!(done["event"], "done");
    assert_eq!(done["files"], 54);
    assert_eq!(done["wire_bytes"], done["bytes"]);
    assert_eq!(tree(&out.join("photos")), tree(&folder));
    // --verify: both sides show the same string.
    let verification = |stdout: &str| {
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "verify")
            .map(|e| e["string"].clone())
    };
    let theirs = verification(&String::from_utf8_lossy(&received.stdout));
    assert!(theirs.is_some());
    assert_eq!(verification(&stdout), theirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_fails_both_and_writes_nothing() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = sample_folder(dir.path());
    let out = dir.path().join("out");
    let (sender, code) = send(&servers, &[&folder]);
    let nameplate = code.split('-').next().unwrap().to_owned();
    let wrong = if code.ends_with("-aardvark-adroitness") {
        format!("{nameplate}-absurd-adroitness")
    } else {
        format!("{nameplate}-aardvark-adroitness")
    };
    let received = receive_off_thread(&servers, &out, &wrong).await;
    assert_eq!(received.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&received.stderr).contains("wrong code"));
    let (status, stdout) = finish(sender);
    assert_eq!(status, 3, "{stdout}");
    assert_eq!(last_event(&stdout)["kind"], "wrong_code");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_file_is_left_alone_without_overwrite() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.txt");
    std::fs::write(&file, b"new version").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("report.txt"), b"original").unwrap();

    let (sender, code) = send(&servers, &[&file]);
    let received = receive_off_thread(&servers, &out, &code).await;
    assert_eq!(received.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&received.stderr);
    assert!(
        stderr.contains("report.txt") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_ne!(finish(sender).0, 0);
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), b"original");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_mid_transfer_resumes_with_only_the_rest() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    let data: Vec<u8> = (0..48_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let out = dir.path().join("out");
    let part = out.join(p2phost::store::part_name("big.bin"));

    // First attempt: kill -9 the receiver once a few MiB have landed.
    let (sender, code) = send(&servers, &[&file]);
    let mut receiver = Command::new(BIN)
        .args([
            "receive",
            "--json",
            "--yes",
            "--server",
            &servers.url,
            "--stun",
            &servers.stun,
        ])
        .arg("--out")
        .arg(&out)
        .arg(&code)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < 4 * 1024 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the transfer never started"
        );
        assert!(
            receiver.try_wait().unwrap().is_none(),
            "the receiver finished too fast to be cut"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    receiver.kill().unwrap();
    receiver.wait().unwrap();
    let (status, _) = finish(sender);
    assert_ne!(status, 0, "the sender must notice the receiver is gone");
    assert!(
        !out.join("big.bin").exists(),
        "nothing under the final name after a cut"
    );

    // Second attempt, new code: only the rest goes over the wire.
    let (sender, code) = send(&servers, &[&file]);
    let received = receive_off_thread(&servers, &out, &code).await;
    let stdout = both_succeeded(&received, sender);
    let done = last_event(&stdout);
    let wire = done["wire_bytes"].as_u64().unwrap();
    assert!(
        wire < data.len() as u64 - 1024 * 1024,
        "resent {wire} of {} bytes",
        data.len()
    );
    assert!(wire > 0);
    // What was not resent was resumed, and said so.
    assert_eq!(
        done["resumed_bytes"].as_u64().unwrap() + wire,
        data.len() as u64,
        "{done}"
    );
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), data);
    assert!(!part.exists());
}
