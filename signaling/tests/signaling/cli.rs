//! The command line and config file, as an operator meets them.

use std::process::Command;

use crate::common::{BIN, Server};

fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signal.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[limits]\nmax_frame_byte = 10\n",
    )
    .unwrap();
    let (ok, stderr) = run(&["--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("signal.toml"), "{stderr}");
    assert!(stderr.contains("line 3, column 1"), "{stderr}");
    assert!(
        stderr.contains("unknown field `max_frame_byte`"),
        "{stderr}"
    );

    std::fs::write(&path, "[limits]\nmax_messages_per_sec = 0\n").unwrap();
    let (ok, stderr) = run(&["--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("max_messages_per_sec"), "{stderr}");

    let (ok, stderr) = run(&["--config", "/nonexistent/signal.toml"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/signal.toml"), "{stderr}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, stderr) = run(&["--listen", &addr, "--no-stun"]);
    assert!(!ok);
    assert!(
        stderr.contains(&addr) && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn flags_override_the_config_file() {
    let server = Server::start_with(
        "listen = \"127.0.0.1:1\"\n[stun]\nlisten = \"127.0.0.1:1\"\n",
        &[],
    );
    // The file's port 1 would need root and be refused; the flags' port 0 won.
    assert_ne!(server.url, "ws://127.0.0.1:1");
    assert_ne!(server.stun.map(|s| s.port()), Some(1));
}
