//! The command line's other paths: a code the user chose, the text a person reads, and a signaling
//! server that is down or silent.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BIN, Servers, signaling};

/// Runs `p2phost ARGS` with stdin closed, off the async runtime's threads.
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(servers: &Servers, words: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    all.extend([
        "--server".into(),
        servers.url.clone(),
        "--stun".into(),
        servers.stun.clone(),
    ]);
    all
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_code_works_with_the_receiver_waiting_first_and_text_output() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "chosen code").unwrap();
    let out = dir.path().join("out");
    let code = "42-aardvark-adroitness";

    let mut receive = args(&servers, &["receive", "--yes", "--out", &path(&out)]);
    receive.push(code.into());
    let receiver = tokio::spawn(run(receive));
    // The receiver waits in the room; the sender joins it with the same code.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut send = args(&servers, &["send", "--code", code]);
    send.push(path(&file));
    let sent = run(send).await;
    let received = receiver.await.unwrap();

    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(
        received.status.success(),
        "{}",
        String::from_utf8_lossy(&received.stderr)
    );
    assert!(
        text(&sent).contains(&format!("code: {code}")),
        "{}",
        text(&sent)
    );
    assert!(text(&sent).contains("sent 1 file, "), "{}", text(&sent));
    assert!(
        text(&received).contains("offer: 1 file, "),
        "{}",
        text(&received)
    );
    assert!(
        text(&received).contains("received 1 file, "),
        "{}",
        text(&received)
    );
    assert_eq!(
        std::fs::read(out.join("notes.txt")).unwrap(),
        b"chosen code"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_or_malformed_chosen_code_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "a").unwrap();
    for (code, says) in [
        ("7-aardvark", "too easy to guess"),
        ("guitar-orbit", "starts with a number"),
        ("7-nonsense-words", "nonsense"),
    ] {
        // Port 1: nothing listens, so a connection attempt would fail differently.
        let output = run(vec![
            "send".into(),
            "--server".into(),
            "ws://127.0.0.1:1".into(),
            "--code".into(),
            code.into(),
            path(&file),
        ])
        .await;
        assert_eq!(output.status.code(), Some(2), "{code}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--code") && stderr.contains(says),
            "{code}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_silent_server_fails_within_seconds_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "a").unwrap();
    // Refused at once, and accepted but never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("ws://{}", silent.local_addr().unwrap());
    for url in ["ws://127.0.0.1:1".to_owned(), silent_url] {
        for command in [
            // Without --no-lan the sender would serve the transfer itself on the local network
            // (LAN mode, tested in lan.rs); the receiver looks there and then fails alike.
            vec!["send".to_owned(), "--no-lan".into(), path(&file)],
            vec![
                "receive".to_owned(),
                "--yes".into(),
                "7-aardvark-adroitness".into(),
            ],
        ] {
            let started = Instant::now();
            let mut all = command.clone();
            all.extend(["--server".into(), url.clone(), "--json".into()]);
            let output = run(all).await;
            // Not a speed check: a hang would be the failure; the bound is far above the 5 s
            // connect deadline.
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{command:?} {url}"
            );
            assert_eq!(output.status.code(), Some(6), "{command:?} {url}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("signaling server") && stderr.contains("--server"),
                "{stderr}"
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let last: serde_json::Value =
                serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap();
            assert_eq!(last["event"], "error");
            assert_eq!(last["kind"], "connection");
        }
    }
    drop(silent);
}
