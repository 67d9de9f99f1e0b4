//! Starting the server binary and talking to it.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use p2p_signaling::protocol::{ErrorKind, Nonce, ServerMessage};
use p2p_signaling::{ClientEvents, ClientOptions, Event, SignalingClient};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_p2p-signal");
pub const WAIT: Duration = Duration::from_secs(10);

/// A running `p2p-signal`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub stun: Option<SocketAddr>,
    pub http: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server on free ports with `config` as its config file.
    pub fn start(config: &str) -> Self {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signal.toml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&path);
        cmd.args(["--listen", "127.0.0.1:0"]);
        if !args.contains(&"--no-stun") {
            cmd.args(["--stun", "127.0.0.1:0"]);
        }
        cmd.args(args);
        Self::spawn(cmd, dir)
    }

    fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env(
                "RUST_LOG",
                std::env::var("P2P_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, got) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut url = None;
        let mut stun = None;
        let stun_expected = !cmd.get_args().any(|a| a == "--no-stun");
        while url.is_none() || (stun_expected && stun.is_none()) {
            let line = got
                .recv_timeout(WAIT)
                .expect("server did not print its ready lines");
            if let Some(u) = line.strip_prefix("signaling listening on ") {
                url = Some(u.to_owned());
            } else if let Some(s) = line.strip_prefix("stun listening on udp://") {
                stun = Some(s.parse().unwrap());
            } else {
                panic!("unexpected stdout line {line:?}");
            }
        }
        let url = url.unwrap();
        let http = url
            .replacen("ws://", "http://", 1)
            .replacen("wss://", "https://", 1);
        Self {
            child,
            url,
            stun,
            http,
            _dir: dir,
        }
    }

    pub async fn client(&self) -> (SignalingClient, ClientEvents) {
        SignalingClient::connect(&self.url, ClientOptions::default())
            .await
            .unwrap()
    }

    /// GET `path` on the server's HTTP side: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.http);
        tokio::task::spawn_blocking(move || match ureq::get(&url).call() {
            Ok(mut response) => {
                let status = response.status().as_u16();
                (status, response.body_mut().read_to_string().unwrap())
            }
            Err(ureq::Error::StatusCode(code)) => (code, String::new()),
            Err(e) => panic!("GET {url}: {e}"),
        })
        .await
        .unwrap()
    }

    /// The value of one metric line (`name` with its labels, as printed).
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                (key == name).then(|| value.parse().unwrap())
            })
            .unwrap_or(0.0)
    }

    /// Waits until `name` reads `want`.
    pub async fn wait_metric(&self, name: &str, want: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.metric(name).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed at {got}, wanted {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebSocket with no protocol logic, to send what a well-behaved client would not.
pub type Raw = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn raw(url: &str) -> Raw {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// A raw connection that has said hello.
pub async fn raw_greeted(url: &str) -> Raw {
    raw_welcomed(raw(url).await).await.0
}

/// Says hello on `ws`; the nonce of its welcome.
pub async fn raw_welcomed(mut ws: Raw) -> (Raw, Nonce) {
    ws.send(Message::text(r#"{"type":"hello","version":1}"#))
        .await
        .unwrap();
    match next_frame(&mut ws).await {
        Some(ServerMessage::Welcome {
            nonce: Some(nonce), ..
        }) => (ws, nonce),
        other => panic!("no welcome with a nonce: {other:?}"),
    }
}

/// A raw connection to the plain `ws://` server at `url` from the local address `source` (any of
/// 127.0.0.0/8 on Linux), so that per-address bounds see another client.
pub async fn raw_from(url: &str, source: IpAddr) -> Raw {
    let addr: SocketAddr = url.trim_start_matches("ws://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap()
        .0
}

/// The next text frame, decoded; `None` at a close frame or end of stream.
pub async fn next_frame(ws: &mut Raw) -> Option<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame in time");
        match frame {
            Some(Ok(Message::Text(text))) => return Some(ServerMessage::decode(&text).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Reads frames until the server closes; returns the fatal error's kind and bound, and the close code.
pub async fn expect_fatal(ws: &mut Raw) -> (ErrorKind, Option<String>, Option<u16>) {
    let mut error = None;
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server did not close in time");
        match frame {
            Some(Ok(Message::Text(text))) => {
                if let Ok(ServerMessage::Error {
                    kind,
                    bound,
                    fatal: true,
                    message,
                    ..
                }) = ServerMessage::decode(&text)
                {
                    assert!(!message.is_empty());
                    error = Some((kind, bound));
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let (kind, bound) = error.expect("close without an error frame first");
                return (kind, bound, frame.map(|f| f.code.into()));
            }
            None | Some(Err(_)) => {
                let (kind, bound) = error.expect("connection ended without an error frame");
                return (kind, bound, None);
            }
            Some(Ok(_)) => {}
        }
    }
}

/// The next event, within [`WAIT`].
pub async fn next_event(events: &mut ClientEvents) -> Event {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("no event in time")
        .expect("events ended")
}
