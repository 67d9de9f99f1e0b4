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

/// A signaling server (and STUN responder) running on this process's runtime, on loopback.
pub async fn signaling() -> Servers {
    let (servers, serve) = bind_signaling().await;
    tokio::spawn(serve);
    servers
}

/// A signaling server (and STUN responder) bound on loopback, and the future that serves it.
pub async fn bind_signaling() -> (Servers, impl std::future::Future<Output = ()> + Send) {
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
    (servers, server.run(std::future::pending()))
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

/// A `p2phost` process run by an async test: its stdout lines arrive as they are printed, and it
/// is killed if the test ends first (a failing assertion must not leave a process behind).
pub struct Running {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: tokio::task::JoinHandle<String>,
}

/// How a [`Running`] process ended.
#[derive(Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Exit {
    /// The last JSON event it printed (`--json`).
    pub fn last_event(&self) -> serde_json::Value {
        last_event(&self.stdout)
    }
}

impl Running {
    pub fn spawn(args: &[std::ffi::OsString]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// Like [`Running::spawn`], with these environment variables set too (such as `RUST_LOG`).
    pub fn spawn_with_env(args: &[std::ffi::OsString], env: &[(&str, &str)]) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut child = tokio::process::Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let _ = tx.send(line);
            }
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text).await;
            text
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// Sends it a signal by name (`INT`, `TERM`), as a user's Ctrl-C or `kill` would.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the process has exited already");
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// The next line it prints on stdout.
    pub async fn next_line(&mut self) -> String {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.lines.recv())
            .await
            .expect("no output within 30 s")
            .expect("the process ended without printing a line")
    }

    /// Waits for it to exit; past `limit` it is killed and the test fails.
    pub async fn exit(mut self, limit: std::time::Duration) -> Exit {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!("p2phost did not exit within {limit:?}");
            }
        };
        let mut stdout = String::new();
        while let Some(line) = self.lines.recv().await {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        Exit {
            code: status.code(),
            stdout,
            stderr: self.stderr.await.unwrap(),
        }
    }
}

fn common_args(command: &str, servers: &Servers) -> Vec<std::ffi::OsString> {
    [
        command,
        "--json",
        "--server",
        &servers.url,
        "--stun",
        &servers.stun,
    ]
    .iter()
    .map(Into::into)
    .collect()
}

/// Starts `p2phost send --json PATHS` and reads its code.
pub async fn start_send(servers: &Servers, paths: &[&Path]) -> (Running, String) {
    let mut args = common_args("send", servers);
    args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
    let mut sender = Running::spawn(&args);
    let first = sender.next_line().await;
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(event["event"], "code", "{first}");
    let code = event["code"].as_str().unwrap().to_owned();
    (sender, code)
}

/// Starts `p2phost receive --json --yes --out OUT CODE`.
pub fn start_receive(servers: &Servers, out: &Path, code: &str) -> Running {
    let mut args = common_args("receive", servers);
    args.extend(["--yes".into(), "--out".into(), out.as_os_str().to_owned()]);
    args.push(code.into());
    Running::spawn(&args)
}

/// A command that runs `p2phost` with at most `max_open` open files (`ulimit -n`), set by the
/// shell it is started through; append p2phost's arguments.
pub fn p2phost_with_open_file_limit(max_open: u32) -> Command {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!("ulimit -n {max_open} && exec \"$0\" \"$@\""),
        BIN,
    ]);
    command
}

/// Waits for `child` up to `limit`, killing it past that; its output either way.
pub fn wait_at_most(mut child: Child, limit: std::time::Duration) -> std::process::Output {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
