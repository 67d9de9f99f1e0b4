//! Two Syncthing instances on loopback for a benchmark: separate homes made by `syncthing
//! generate`, each told the other's device id at a static `tcp://127.0.0.1:PORT`; no global or
//! local discovery, relays, NAT traversal, STUN, usage or crash reporting, upgrades or low
//! priority; one send-receive folder `bench` shared by both, with the filesystem watcher on.
//!
//! Each runs as `STMONITORED=1 syncthing serve --no-browser --no-restart --no-upgrade`: one
//! process (without the monitor process that would restart it after a crash), so that its pid
//! is the one that syncs. The REST API (on a loopback port, with a fixed API key) tells when the
//! two are connected and idle.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::daemon::{free_port, terminate};

const API_KEY: &str = "p2phost-bench";
const FOLDER: &str = "bench";

/// `syncthing --version`'s first line, or `None` when it is not installed.
pub(crate) fn version() -> Option<String> {
    let output = Command::new("syncthing").arg("--version").output().ok()?;
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    })
}

struct Instance {
    home: PathBuf,
    folder: PathBuf,
    id: String,
    listen: u16,
    gui: u16,
    child: Option<Child>,
}

impl Instance {
    fn generate(base: &Path, name: &str) -> Self {
        let home = base.join(name);
        let output = Command::new("syncthing")
            .args(["generate", "--no-default-folder", "--skip-port-probing"])
            .arg(format!("--home={}", home.display()))
            .output()
            .unwrap();
        assert!(output.status.success(), "syncthing generate: {output:?}");
        let output = Command::new("syncthing")
            .args(["serve", "--device-id"])
            .arg(format!("--home={}", home.display()))
            .output()
            .unwrap();
        assert!(output.status.success(), "syncthing --device-id: {output:?}");
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let folder = base.join(format!("{name}-folder"));
        // The folder marker Syncthing expects in a folder it did not create itself.
        std::fs::create_dir_all(folder.join(".stfolder")).unwrap();
        Self {
            home,
            folder,
            id,
            listen: free_port(),
            gui: free_port(),
            child: None,
        }
    }

    /// Replaces the generated config.xml with one that knows `peer` and the shared folder.
    fn configure(&self, peer: &Self, watch_delay_s: u32) {
        let config = format!(
            r#"<configuration version="36">
    <folder id="{FOLDER}" label="{FOLDER}" path="{folder}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="true" fsWatcherDelayS="{watch_delay_s}" ignorePerms="false" autoNormalize="true">
        <device id="{me}"></device>
        <device id="{peer}"></device>
    </folder>
    <device id="{me}" name="self" compression="metadata" introducer="false">
        <address>dynamic</address>
    </device>
    <device id="{peer}" name="peer" compression="metadata" introducer="false">
        <address>tcp://127.0.0.1:{peer_port}</address>
    </device>
    <gui enabled="true" tls="false">
        <address>127.0.0.1:{gui}</address>
        <apikey>{API_KEY}</apikey>
    </gui>
    <options>
        <listenAddress>tcp://127.0.0.1:{listen}</listenAddress>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <relaysEnabled>false</relaysEnabled>
        <natEnabled>false</natEnabled>
        <stunKeepaliveStartS>0</stunKeepaliveStartS>
        <announceLANAddresses>false</announceLANAddresses>
        <urAccepted>-1</urAccepted>
        <crashReportingEnabled>false</crashReportingEnabled>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <startBrowser>false</startBrowser>
        <setLowPriority>false</setLowPriority>
    </options>
</configuration>
"#,
            folder = self.folder.display(),
            me = self.id,
            peer = peer.id,
            peer_port = peer.listen,
            gui = self.gui,
            listen = self.listen,
        );
        std::fs::write(self.home.join("config.xml"), config).unwrap();
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.home.join("syncthing.log")).unwrap();
        let child = Command::new("syncthing")
            .args(["serve", "--no-browser", "--no-restart", "--no-upgrade"])
            .arg(format!("--home={}", self.home.display()))
            .env("STMONITORED", "1")
            .env("STNOUPGRADE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// GET on the REST API, parsed; `None` while it does not answer.
    fn get(&self, path: &str) -> Option<serde_json::Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.gui)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.0 200")
            .then(|| serde_json::from_str(body).ok())
            .flatten()
    }

    fn connected_to(&self, peer: &Self) -> bool {
        self.get("/rest/system/connections")
            .is_some_and(|c| c["connections"][&peer.id]["connected"] == true)
    }

    fn idle(&self) -> bool {
        self.get(&format!("/rest/db/status?folder={FOLDER}"))
            .is_some_and(|s| s["state"] == "idle")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.home.join("syncthing.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two connected instances sharing one folder.
pub(crate) struct SyncthingPair {
    a: Instance,
    b: Instance,
}

impl SyncthingPair {
    /// Generates, configures and starts both; waits until they are connected and both idle.
    /// `watch_delay_s` is the folder's `fsWatcherDelayS` (Syncthing's default is 10).
    pub(crate) fn start(base: &Path, watch_delay_s: u32) -> Self {
        let mut a = Instance::generate(base, "a");
        let mut b = Instance::generate(base, "b");
        a.configure(&b, watch_delay_s);
        b.configure(&a, watch_delay_s);
        a.start();
        b.start();
        let pair = Self { a, b };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(pair.a.connected_to(&pair.b)
            && pair.b.connected_to(&pair.a)
            && pair.a.idle()
            && pair.b.idle())
        {
            assert!(
                Instant::now() < deadline,
                "the Syncthing instances never connected\n{}",
                pair.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pair
    }

    pub(crate) fn folder_a(&self) -> &Path {
        &self.a.folder
    }

    pub(crate) fn folder_b(&self) -> &Path {
        &self.b.folder
    }

    pub(crate) fn pids(&self) -> [u32; 2] {
        [&self.a, &self.b].map(|i| i.child.as_ref().map_or(0, Child::id))
    }

    pub(crate) fn logs(&self) -> String {
        format!(
            "--- syncthing a:\n{}\n--- syncthing b:\n{}",
            self.a.log_text(),
            self.b.log_text()
        )
    }

    pub(crate) fn stop(&mut self) {
        self.b.stop();
        self.a.stop();
    }
}
