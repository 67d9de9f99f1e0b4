//! The TURN fallback: two `p2phost` processes that may only use relayed candidates move a file
//! through a real coturn server on loopback, over UDP, TCP and TLS.

use std::ffi::OsString;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use p2p_signaling::protocol::TurnCredentials;
use p2p_signaling::{ServerConfig, SignalingServer, TurnConfig};

use crate::support::{BIN, Running, Servers, signaling};

/// How the test coturn checks credentials.
pub(crate) enum Auth {
    /// The long-term user `alice`, password `secret`.
    User,
    /// coturn's REST scheme (`use-auth-secret`) with this shared secret.
    Secret(&'static str),
}

/// Which client listeners the test coturn opens.
pub(crate) enum Listeners<'a> {
    /// UDP and TCP on one port.
    UdpTcp,
    /// TCP only: a client that reaches it came over TCP.
    TcpOnly,
    /// TLS only, with this certificate chain and key (PEM files).
    TlsOnly { chain: &'a Path, key: &'a Path },
}

/// A coturn `turnserver` on 127.0.0.1, killed when dropped.
pub(crate) struct Coturn {
    child: Child,
    /// Its port: UDP and TCP, or TLS.
    pub(crate) port: u16,
    /// coturn's log.
    pub(crate) log: PathBuf,
}

/// A port free on 127.0.0.1 for both UDP and TCP (coturn listens on both).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on `port`.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "coturn never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Coturn {
    /// Starts coturn with these client listeners.
    pub(crate) fn start(dir: &Path, auth: Auth, listeners: Listeners<'_>) -> Self {
        let port = free_port();
        let mut command = Command::new("turnserver");
        command
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg("--realm=p2phost.test");
        match auth {
            Auth::User => command.args(["--user=alice:secret", "--lt-cred-mech"]),
            Auth::Secret(secret) => command
                .arg("--use-auth-secret")
                .arg(format!("--static-auth-secret={secret}")),
        };
        match listeners {
            Listeners::UdpTcp => command
                .arg(format!("--listening-port={port}"))
                .arg("--no-tls"),
            Listeners::TcpOnly => command
                .arg(format!("--listening-port={port}"))
                .args(["--no-udp", "--no-tls"]),
            Listeners::TlsOnly { chain, key } => command
                .arg(format!("--tls-listening-port={port}"))
                .arg(format!("--cert={}", chain.display()))
                .arg(format!("--pkey={}", key.display()))
                // Its plain listener on a port of its own, unused: coturn always opens one.
                .arg(format!("--listening-port={}", free_port()))
                .args(["--no-udp", "--no-tcp"]),
        };
        let log = dir.join(format!("turn-{port}.log"));
        let child = command
            // Loopback peers are refused by default (a relay must not reach its own host).
            .args(["--allow-loopback-peers", "--no-dtls", "--no-cli"])
            .arg(format!(
                "--pidfile={}",
                dir.join(format!("turnserver-{port}.pid")).display()
            ))
            .arg(format!(
                "--userdb={}",
                dir.join(format!("turndb-{port}")).display()
            ))
            // -v logs each allocation; --simple-log keeps the file name as given.
            .args(["-v", "--simple-log"])
            .arg(format!("--log-file={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start turnserver ({e}): install coturn (./test.sh does)")
            });
        let coturn = Self { child, port, log };
        wait_listening(port);
        // The UDP listener comes up with the TCP one; a moment for coturn's relay threads.
        std::thread::sleep(Duration::from_millis(200));
        coturn
    }

    /// coturn's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Allocations coturn made.
    pub(crate) fn allocations(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("ALLOCATE processed, success"))
            .count()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a certificate it issued for 127.0.0.1, as PEM files in `dir`: (CA, chain, key).
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("p2phost test CA {name}"));
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-chain.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem() + &ca.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

/// `--turn URL` with the test user's credentials.
fn user_flags(url: &str) -> Vec<OsString> {
    [
        "--turn",
        url,
        "--turn-user",
        "alice",
        "--turn-pass",
        "secret",
    ]
    .map(OsString::from)
    .to_vec()
}

/// `p2phost COMMAND` allowed to use only relayed candidates, with `turn` flags (none: the
/// signaling server's relays).
pub(crate) fn relayed(
    servers: &Servers,
    turn: &[OsString],
    command: &str,
    rest: &[OsString],
) -> Running {
    let mut args: Vec<OsString> = vec![command.into()];
    for arg in ["--json", "--server", &servers.url, "--stun", &servers.stun] {
        args.push(arg.into());
    }
    args.extend(turn.iter().cloned());
    args.push("--relay-only".into());
    args.extend(rest.iter().cloned());
    Running::spawn(&args)
}

/// A relay-only transfer of a small file: the receiver's and the sender's outcome, and whether
/// the file arrived identical.
pub(crate) struct Relayed {
    pub(crate) receiver: crate::support::Exit,
    pub(crate) sender: crate::support::Exit,
    pub(crate) identical: bool,
}

/// Sends a small file relay-only, the sender with `sender_turn` flags, the receiver with
/// `receiver_turn`, through the signaling server `servers`.
pub(crate) async fn relayed_transfer(
    servers: &Servers,
    dir: &Path,
    code: &str,
    sender_turn: &[OsString],
    receiver_turn: &[OsString],
) -> Relayed {
    let file = dir.join(format!("relayed-{code}.bin"));
    // Small: webrtc-rs over coturn on loopback moves only ~150 KB/s (see the README).
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let out = dir.join(format!("out-{code}"));
    let sender = relayed(
        servers,
        sender_turn,
        "send",
        &["--code".into(), code.into(), file.clone().into()],
    );
    let receiver = relayed(
        servers,
        receiver_turn,
        "receive",
        &[
            "--yes".into(),
            "--out".into(),
            out.clone().into(),
            code.into(),
        ],
    );
    let limit = Duration::from_secs(90);
    let receiver = receiver.exit(limit).await;
    let sender = sender.exit(limit).await;
    let name = file.file_name().unwrap();
    let identical = std::fs::read(out.join(name)).is_ok_and(|got| got == data);
    Relayed {
        receiver,
        sender,
        identical,
    }
}

/// Asserts both sides succeeded, the file arrived identical, coturn allocated for both, and
/// both said the path went through a relay reached over `protocol`.
fn assert_relayed(relayed: &Relayed, turn: &Coturn, protocol: &str) {
    assert_eq!(
        relayed.receiver.code,
        Some(0),
        "receiver: {}",
        relayed.receiver.stderr
    );
    assert_eq!(
        relayed.sender.code,
        Some(0),
        "sender: {}",
        relayed.sender.stderr
    );
    assert!(relayed.identical, "the file arrived different");
    let allocations = turn.allocations();
    assert!(
        allocations >= 2,
        "{allocations} TURN allocations in coturn's log:\n{}",
        turn.log()
    );
    for side in [&relayed.sender, &relayed.receiver] {
        let path = side
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|event| event["event"] == "path")
            .unwrap_or_else(|| panic!("no path event in {}", side.stdout));
        assert_eq!(path["path"], "relay", "{path}");
        assert_eq!(path["local"], "relay", "{path}");
        assert_eq!(path["protocol"], protocol, "{path}");
        let relay = path["relay"].as_str().unwrap_or_default();
        assert!(relay.contains(&turn.port.to_string()), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_through_the_turn_relay_when_only_relayed_paths_are_allowed() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let turn = Coturn::start(dir.path(), Auth::User, Listeners::UdpTcp);
    let flags = user_flags(&format!("turn:127.0.0.1:{}", turn.port));
    let relayed = relayed_transfer(
        &servers,
        dir.path(),
        "31-aardvark-adroitness",
        &flags,
        &flags,
    )
    .await;
    assert_relayed(&relayed, &turn, "udp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_through_the_turn_relay_over_tcp() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    // coturn listens on TCP only, so whatever reaches it came over TCP.
    let turn = Coturn::start(dir.path(), Auth::User, Listeners::TcpOnly);
    let flags = user_flags(&format!("turn:127.0.0.1:{}?transport=tcp", turn.port));
    let relayed = relayed_transfer(
        &servers,
        dir.path(),
        "32-aardvark-adroitness",
        &flags,
        &flags,
    )
    .await;
    assert_relayed(&relayed, &turn, "tcp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_through_the_turn_relay_over_tls_and_a_wrong_certificate_is_named() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = certificates(dir.path(), "turn");
    // coturn listens on TLS only.
    let turn = Coturn::start(
        dir.path(),
        Auth::User,
        Listeners::TlsOnly {
            chain: &chain,
            key: &key,
        },
    );
    let url = format!("turns:127.0.0.1:{}", turn.port);
    let mut flags = user_flags(&url);
    flags.extend(["--turn-ca".into(), ca.into()]);
    let relayed = relayed_transfer(
        &servers,
        dir.path(),
        "33-aardvark-adroitness",
        &flags,
        &flags,
    )
    .await;
    assert_relayed(&relayed, &turn, "tls");
    let log = turn.log();
    let over_tls = log
        .lines()
        .filter(|l| l.contains("username=<alice>") && l.contains("method=TLS"))
        .count();
    assert!(
        over_tls >= 2,
        "no allocation over TLS in coturn's log:\n{log}"
    );

    // A receiver that trusts another CA (as one trusting only the public roots would) refuses the
    // server's certificate, and says so.
    let (other_ca, _, _) = certificates(dir.path(), "other");
    let mut wrong = user_flags(&url);
    wrong.extend(["--turn-ca".into(), other_ca.into()]);
    let refused = relayed_transfer(
        &servers,
        dir.path(),
        "34-aardvark-adroitness",
        &flags,
        &wrong,
    )
    .await;
    assert!(!refused.identical);
    assert_eq!(
        refused.receiver.code,
        Some(6),
        "{}",
        refused.receiver.stderr
    );
    let said = &refused.receiver.stdout;
    assert!(
        said.contains(&url)
            && said.contains("certificate is not valid")
            && said.contains("--turn-ca"),
        "{said}"
    );
    assert_ne!(refused.sender.code, Some(0));
}

/// A signaling server on loopback whose `[turn]` hands out credentials for `urls` signed with
/// `secret`.
async fn signaling_with_turn(urls: Vec<String>, secret: &str) -> Servers {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        turn: Some(TurnConfig {
            urls,
            secret: secret.to_owned(),
            ttl_secs: 600,
        }),
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

const SECRET: &str = "north-wind-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signaling_server_hands_out_relay_credentials_that_need_no_turn_flag() {
    let dir = tempfile::tempdir().unwrap();
    let turn = Coturn::start(dir.path(), Auth::Secret(SECRET), Listeners::UdpTcp);
    // Over TCP, so the shim carries the server's credentials too.
    let url = format!("turn:127.0.0.1:{}?transport=tcp", turn.port);
    let servers = signaling_with_turn(vec![url], SECRET).await;
    let relayed = relayed_transfer(&servers, dir.path(), "35-aardvark-adroitness", &[], &[]).await;
    assert_relayed(&relayed, &turn, "tcp");
    // Each side used credentials of its own, of the form EXPIRY:ID.
    let log = turn.log();
    let users: std::collections::BTreeSet<&str> = log
        .lines()
        .filter(|l| l.contains("ALLOCATE processed, success"))
        .filter_map(|l| l.split("user <").nth(1)?.split('>').next())
        .collect();
    assert!(users.len() >= 2, "{users:?}\n{log}");
    assert!(users.iter().all(|u| u.contains(":p2phost-c")), "{users:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_refuses_an_expired_or_forged_credential() {
    let dir = tempfile::tempdir().unwrap();
    let turn = Coturn::start(dir.path(), Auth::Secret(SECRET), Listeners::UdpTcp);
    let url = format!("turn:127.0.0.1:{}", turn.port);
    let servers = signaling().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let urls = [url.clone()];
    // Signed with the right secret, but an hour past its expiry.
    let expired = TurnCredentials::mint(&urls, SECRET.as_bytes(), now - 3600, "expired");
    // The expiry moved an hour ahead, keeping the expired one's password.
    let forged = TurnCredentials {
        username: format!("{}:expired", now + 3600),
        ..expired.clone()
    };
    let flags = |credentials: &TurnCredentials| -> Vec<OsString> {
        let (user, pass) = (&credentials.username, &credentials.credential);
        ["--turn", &url, "--turn-user", user, "--turn-pass", pass]
            .map(OsString::from)
            .to_vec()
    };
    // Each credential on both sides: a side that fails gives up at once and tells its peer,
    // which may then stop before it asked the relay itself.
    for (credentials, code) in [
        (&expired, "36-aardvark-adroitness"),
        (&forged, "39-aardvark-adroitness"),
    ] {
        let refused = relayed_transfer(
            &servers,
            dir.path(),
            code,
            &flags(credentials),
            &flags(credentials),
        )
        .await;
        assert!(!refused.identical);
        assert_eq!(
            refused.receiver.code,
            Some(6),
            "{}",
            refused.receiver.stdout
        );
        assert_eq!(refused.sender.code, Some(6), "{}", refused.sender.stdout);
    }
    assert_eq!(turn.allocations(), 0, "{}", turn.log());
    let log = turn.log();
    for credentials in [&expired, &forged] {
        let user = format!("user <{}>", credentials.username);
        assert!(
            log.lines().any(|l| l.contains(&user) && l.contains("401")),
            "no 401 for {user}:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_without_any_relay_is_a_usage_error() {
    // No --turn, and a signaling server that knows no relay.
    let servers = signaling().await;
    let receiver = relayed(
        &servers,
        &[],
        "receive",
        &["--yes".into(), "37-aardvark-adroitness".into()],
    );
    let sender = relayed(
        &servers,
        &[],
        "send",
        &["--code".into(), "37-aardvark-adroitness".into(), BIN.into()],
    );
    for side in [receiver, sender] {
        let exit = side.exit(Duration::from_secs(30)).await;
        assert_eq!(exit.code, Some(2), "{}", exit.stdout);
        assert!(
            exit.stdout.contains("--relay-only needs a TURN relay"),
            "{}",
            exit.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_relay_certificate_given_with_turn_ca_is_trusted() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    // As `openssl req -x509` makes them: webpki will not take it as its own CA, so it is pinned.
    let self_signed = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("self.pem"), dir.path().join("self-key.pem"));
    std::fs::write(&cert, self_signed.cert.pem()).unwrap();
    std::fs::write(&key, self_signed.signing_key.serialize_pem()).unwrap();
    let turn = Coturn::start(
        dir.path(),
        Auth::User,
        Listeners::TlsOnly {
            chain: &cert,
            key: &key,
        },
    );
    let mut flags = user_flags(&format!("turns:127.0.0.1:{}", turn.port));
    flags.extend(["--turn-ca".into(), cert.into()]);
    let relayed = relayed_transfer(
        &servers,
        dir.path(),
        "38-aardvark-adroitness",
        &flags,
        &flags,
    )
    .await;
    assert_relayed(&relayed, &turn, "tls");
}
