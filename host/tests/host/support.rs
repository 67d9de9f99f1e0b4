//! What the end-to-end tests share: an in-process signaling server, `p2phost` processes started
//! as a user would, and ways to read their output and compare folders.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use p2p_signaling::{ServerConfig, SignalingServer};

pub const BIN: &str = env!("CARGO_BIN_EXE_p2phost");

#[derive(Clone)]
pub struct Servers {
    pub url: String,
    pub stun: String,
}

pub async fn signaling() -> Servers {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    config.stun.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = SignalingServer::bind(&config).await.unwrap();
    let servers = Servers {
        url: server.url(),
        stun: format!("stun:{}", server.stun_addr().unwrap()),
    };
    tokio::spawn(server.run(std::future::pending()));
    servers
}

/// Starts `p2phost send --json PATHS` and returns it with its code.
pub fn send(servers: &Servers, paths: &[&Path]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "send",
            "--json",
            "--verify",
            "--server",
            &servers.url,
            "--stun",
            &servers.stun,
        ])
        .args(paths)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(event["event"], "code", "{first}");
    (child, event["code"].as_str().unwrap().to_owned())
}

pub fn receive(servers: &Servers, out: &Path, code: &str, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args([
            "receive",
            "--json",
            "--verify",
            "--yes",
            "--server",
            &servers.url,
            "--stun",
            &servers.stun,
        ])
        .arg("--out")
        .arg(out)
        .args(extra)
        .arg(code)
        .output()
        .unwrap()
}

/// `receive` on a blocking thread, so the in-process signaling server keeps running.
pub async fn receive_off_thread(servers: &Servers, out: &Path, code: &str) -> std::process::Output {
    let (servers, out, code) = (servers.clone(), out.to_path_buf(), code.to_owned());
    tokio::task::spawn_blocking(move || receive(&servers, &out, &code, &[]))
        .await
        .unwrap()
}

pub fn finish(child: Child) -> (i32, String) {
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Asserts the receiver and the sender both exited 0; returns the sender's stdout.
pub fn both_succeeded(received: &std::process::Output, sender: Child) -> String {
    assert!(
        received.status.success(),
        "{}",
        String::from_utf8_lossy(&received.stderr)
    );
    let (status, stdout) = finish(sender);
    assert_eq!(status, 0, "{stdout}");
    stdout
}

pub fn last_event(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap_or_default()
}

pub fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                found.push((format!("{name}/"), Vec::new()));
                stack.push(path);
            } else {
                found.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}
