//! `p2phost run`: real daemons on loopback, one serving signaling, real folders.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use p2phost::daemon::Status;

use crate::support::BIN;

/// Long enough for a few transfers on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A host: its folder of config, identity and log, and its process when running.
struct Host {
    name: &'static str,
    root: PathBuf,
    id: String,
    child: Option<Child>,
}

impl Host {
    /// `p2phost init` in `base/name`.
    fn init(base: &Path, name: &'static str) -> Self {
        let root = base.join(name);
        let output = Command::new(BIN)
            .args(["init", "--config"])
            .arg(root.join("share.toml"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let id = stdout
            .lines()
            .find_map(|l| l.strip_prefix("this host's id: "))
            .unwrap()
            .to_owned();
        std::fs::remove_file(root.join("share.toml")).unwrap();
        Self {
            name,
            root,
            id,
            child: None,
        }
    }

    fn config(&self) -> PathBuf {
        self.root.join("share.toml")
    }

    fn folder(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    /// Writes its config: `signaling` lines, its peers, a send-receive folder "share" with all
    /// of them, and `extra`.
    fn configure(&self, signaling: &str, peers: &[&Self], extra: &str) {
        let mut text = format!("[identity]\ndir = \"identity\"\n\n[signaling]\n{signaling}\n");
        for peer in peers {
            text.push_str(&format!(
                "\n[[peers]]\nname = \"{}\"\nid = \"{}\"\n",
                peer.name, peer.id
            ));
        }
        let names: Vec<String> = peers.iter().map(|p| format!("\"{}\"", p.name)).collect();
        text.push_str(&format!(
            "\n[[folders]]\npath = \"share\"\npeers = [{}]\n\n{extra}",
            names.join(", ")
        ));
        std::fs::write(self.config(), text).unwrap();
    }

    fn start(&mut self) {
        self.start_with(&[]);
    }

    /// `p2phost run --config … EXTRA…`.
    fn start_with(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(self.config())
            .args(extra)
            .env("RUST_LOG", "warn,p2phost=info,p2p_signaling=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no chance to clean up.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and the exit status.
    fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        None
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    async fn status(&self) -> Option<Status> {
        p2phost::daemon::query_status(&self.root.join("identity"))
            .await
            .ok()
    }

    /// Waits until this host sees `peer` online.
    async fn wait_online(&self, peer: &Self) {
        let seen = wait_for(|| async {
            self.status()
                .await
                .is_some_and(|s| s.peers.iter().any(|p| p.id == peer.id && p.online))
        })
        .await;
        assert!(
            seen,
            "{} never saw {} online; log:\n{}",
            self.name,
            peer.name,
            self.log_text()
        );
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 100 ms for up to [`PATIENCE`].
async fn wait_for<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits until `path` holds exactly `data`.
async fn wait_for_file(path: &Path, data: &[u8], logs: &[&Host]) {
    let arrived = wait_for(|| async { std::fs::read(path).is_ok_and(|d| d == data) }).await;
    if !arrived {
        let logs: Vec<String> = logs
            .iter()
            .map(|h| format!("--- {}:\n{}", h.name, h.log_text()))
            .collect();
        panic!(
            "{} never arrived whole\n{}",
            path.display(),
            logs.join("\n")
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a file the way editors do: to a temporary name, then renamed.
fn drop_file(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, data).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Every regular file under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    found
}

/// Two hosts that trust each other: `a` serves signaling, `b` uses it.
fn pair(base: &Path, extra: &str) -> (Host, Host) {
    let a = Host::init(base, "a");
    let b = Host::init(base, "b");
    let port = free_port();
    a.configure(&format!("serve = \"127.0.0.1:{port}\""), &[&b], extra);
    b.configure(
        &format!("url = \"ws://127.0.0.1:{port}\"\nstun = \"stun:127.0.0.1:{port}\""),
        &[&a],
        extra,
    );
    (a, b)
}

/// [`pair`], both running and each seeing the other online.
async fn running_pair(base: &Path, extra: &str) -> (Host, Host) {
    let (mut a, mut b) = pair(base, extra);
    a.start();
    b.start();
    a.wait_online(&b).await;
    b.wait_online(&a).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_sync_both_ways_are_updated_when_changed_and_never_echo() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = running_pair(dir.path(), "").await;

    let hello = b"hello from a\n".repeat(1000);
    drop_file(&a.folder("share").join("docs/hello.txt"), &hello);
    wait_for_file(&b.folder("share").join("docs/hello.txt"), &hello, &[&a, &b]).await;

    // Changed on a: b gets the new version.
    let changed = b"hello again, changed\n".repeat(3000);
    drop_file(&a.folder("share").join("docs/hello.txt"), &changed);
    wait_for_file(
        &b.folder("share").join("docs/hello.txt"),
        &changed,
        &[&a, &b],
    )
    .await;

    // And the other way round.
    let reply = b"reply from b".to_vec();
    drop_file(&b.folder("share").join("reply.txt"), &reply);
    wait_for_file(&a.folder("share").join("reply.txt"), &reply, &[&a, &b]).await;

    // No echo: after a while, each side received only what the other created, and nothing is
    // queued any more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_quiet(&a, &b).await;
    let received_by_a = a.log_text().matches("received").count();
    let received_by_b = b.log_text().matches("received").count();
    assert_eq!(received_by_a, 1, "a:\n{}", a.log_text());
    assert_eq!(received_by_b, 2, "b:\n{}", b.log_text());
    assert_eq!(
        files_under(&a.folder("share")),
        ["docs/hello.txt", "reply.txt"]
    );
    assert_eq!(
        files_under(&b.folder("share")),
        ["docs/hello.txt", "reply.txt"]
    );

    // A clean stop.
    assert_eq!(a.stop(), Some(0), "{}", a.log_text());
    assert_eq!(b.stop(), Some(0), "{}", b.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_200_files_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = running_pair(dir.path(), "").await;
    let mut expected = Vec::new();
    for i in 0..200 {
        let path = format!("burst/{}/file-{i:03}.bin", i % 7);
        let data = format!("file {i}\n").repeat(i * 13 + 1).into_bytes();
        drop_file(&a.folder("share").join(&path), &data);
        expected.push((path, data));
    }
    for (path, data) in &expected {
        wait_for_file(&b.folder("share").join(path), data, &[&a, &b]).await;
    }
    assert_eq!(files_under(&b.folder("share")).len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_peer_gets_what_was_queued_for_it_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), "");
    a.start();
    let started = wait_for(|| async { a.status().await.is_some() }).await;
    assert!(started, "{}", a.log_text());
    for i in 0..3 {
        drop_file(
            &a.folder("share").join(format!("n{i}.txt")),
            format!("note {i}").as_bytes(),
        );
    }
    let queued = wait_for(|| async {
        a.status()
            .await
            .is_some_and(|s| s.queued == 3 && s.peers.iter().all(|p| !p.online && p.queued == 3))
    })
    .await;
    assert!(queued, "{:?}\n{}", a.status().await, a.log_text());
    // Queued durably: a restart of a loses nothing.
    assert_eq!(a.stop(), Some(0));
    a.start();
    b.start();
    for i in 0..3 {
        wait_for_file(
            &b.folder("share").join(format!("n{i}.txt")),
            format!("note {i}").as_bytes(),
            &[&a, &b],
        )
        .await;
    }
}

/// A chunk hook that makes receiving the first 8 MiB of a file over 1 MB take at least 10 ms of
/// the daemon's CPU time per chunk (`os.clock`, granted): a transfer is caught in flight on any
/// machine, however fast, and what comes after goes at full speed, so a busy machine does not
/// make a resend take minutes.
const SLOW_START: &str = "p2p.on('chunk', function(file, chunk)\n\
       if file.side == 'receive' and file.size > 1000000 and chunk.offset < 8388608 then\n\
         local resume = os.clock() + 0.01\n\
         while os.clock() < resume do end\n\
       end\n\
     end)\n";

/// 16 MiB that no two chunk groups share.
fn big_file() -> Vec<u8> {
    (0..16u32 * 1024 * 1024 / 4)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect()
}

/// Waits until `host`'s part file of `name` in "share" holds more than 2 MiB.
async fn wait_in_flight(host: &Host, name: &str, logs: &[&Host]) {
    let part = host.folder("share").join(p2phost::store::part_name(name));
    let in_flight =
        wait_for(|| async { std::fs::metadata(&part).is_ok_and(|m| m.len() > 2 * 1024 * 1024) })
            .await;
    let logs: Vec<String> = logs.iter().map(|h| h.log_text()).collect();
    assert!(in_flight, "no partial file seen\n{}", logs.join("\n"));
}

/// A daemon stopped (SIGTERM) in the middle of sending tells its peer, which lets go of the
/// transfer at once instead of waiting for the connection to time out, and gets the rest once
/// the sender is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_stopped_mid_transfer_tells_its_peer_and_finishes_after_a_restart() {
    // Slow on the sending side: the sender is still reading the file when it is stopped (a slow
    // receiver would have it all in flight already, and get it whole).
    const SLOW_SEND: &str = "p2p.on('chunk', function(file, chunk)\n\
           if file.side == 'send' and file.size > 1000000 then\n\
             local resume = os.clock() + 0.02\n\
             while os.clock() < resume do end\n\
           end\n\
         end)\n";
    let dir = tempfile::tempdir().unwrap();
    let hooks = timed_script(dir.path(), "slow-send.lua", SLOW_SEND);
    let (mut a, b) = running_pair(dir.path(), &hooks).await;
    let big = big_file();
    drop_file(&a.folder("share").join("big.bin"), &big);
    wait_in_flight(&b, "big.bin", &[&a, &b]).await;
    assert_eq!(a.stop(), Some(0), "{}", a.log_text());
    wait_for_log(&b, "cancelled by the other side").await;
    assert!(
        !b.log_text().contains("disconnected for"),
        "{}",
        b.log_text()
    );
    assert!(!b.folder("share").join("big.bin").exists());
    a.start();
    wait_for_file(&b.folder("share").join("big.bin"), &big, &[&a, &b]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(files_under(&b.folder("share")), ["big.bin"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_killed_mid_transfer_finishes_after_a_restart_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = timed_script(dir.path(), "slow-start.lua", SLOW_START);
    let (mut a, b) = running_pair(dir.path(), &hooks).await;
    let big = big_file();
    drop_file(&a.folder("share").join("big.bin"), &big);
    wait_in_flight(&b, "big.bin", &[&a, &b]).await;
    a.kill();
    assert!(!b.folder("share").join("big.bin").exists());
    a.start();
    wait_for_file(&b.folder("share").join("big.bin"), &big, &[&a, &b]).await;
    // One file, no leftovers, no conflict copies.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(files_under(&b.folder("share")), ["big.bin"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_mid_transfer_is_sent_the_rest_as_soon_as_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = timed_script(dir.path(), "slow-start.lua", SLOW_START);
    let (a, mut b) = running_pair(dir.path(), &hooks).await;
    let big = big_file();
    drop_file(&a.folder("share").join("big.bin"), &big);
    wait_in_flight(&b, "big.bin", &[&a, &b]).await;
    b.kill();
    b.start();
    wait_for_file(&b.folder("share").join("big.bin"), &big, &[&a, &b]).await;
    // A dropped the transfer with b's previous connection when b came back, rather than wait
    // until that connection timed out.
    assert!(
        a.log_text().contains("the peer came back"),
        "{}",
        a.log_text()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(files_under(&b.folder("share")), ["big.bin"]);
    wait_quiet(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_not_trusted_gets_nothing_and_gives_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), "");
    // Mallory trusts a, and has a folder of the same id; a does not trust mallory.
    let mut mallory = Host::init(dir.path(), "mallory");
    let port = {
        let config = std::fs::read_to_string(b.config()).unwrap();
        config
            .lines()
            .find_map(|l| l.strip_prefix("url = \"ws://127.0.0.1:"))
            .map(|rest| rest.trim_end_matches('"').to_owned())
            .unwrap()
    };
    mallory.configure(
        &format!("url = \"ws://127.0.0.1:{port}\"\nstun = \"stun:127.0.0.1:{port}\""),
        &[&a],
        "",
    );
    a.start();
    b.start();
    mallory.start();
    a.wait_online(&b).await;
    drop_file(&a.folder("share").join("secret.txt"), b"for b only");
    drop_file(&mallory.folder("share").join("junk.txt"), b"from mallory");
    wait_for_file(
        &b.folder("share").join("secret.txt"),
        b"for b only",
        &[&a, &b],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!mallory.folder("share").join("secret.txt").exists());
    assert!(!a.folder("share").join("junk.txt").exists());
    // Mallory never even meets a: their pair room is one a never joins.
    let status = mallory.status().await.unwrap();
    assert!(status.peers.iter().all(|p| !p.online), "{status:?}");
    assert_eq!(status.queued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configs_plugins_and_scripts_run_on_daemon_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let compress = crate::plugins_cli::component("compress");
    let notify = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/notify.lua");
    let hooks = format!(
        "[[plugins]]\npath = \"{}\"\n\n[[scripts]]\npath = \"{}\"\n",
        compress.display(),
        notify.display()
    );
    let (a, b) = running_pair(dir.path(), &hooks).await;
    let text = b"compress me, I am very repetitive text\n".repeat(50_000);
    drop_file(&a.folder("share").join("log.txt"), &text);
    wait_for_file(&b.folder("share").join("log.txt"), &text, &[&a, &b]).await;
    let sent = wait_for(|| async { a.log_text().contains("sent log.txt") }).await;
    assert!(sent, "{}", a.log_text());
    assert!(
        b.log_text().contains("received log.txt"),
        "{}",
        b.log_text()
    );
    assert!(b.log_text().contains("script=notify"), "{}", b.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_route_keeps_files_here_or_sends_them() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("keep-private.lua");
    std::fs::write(
        &script,
        "p2p.on('pre_send', function(file)\n\
           if file.path:match('%.private$') then return p2p.route{} end\n\
           if file.path:match('%.secret$') then return p2p.reject('secrets stay') end\n\
           if file.path:match('^shared/') then return p2p.route{'b'} end\n\
         end)\n",
    )
    .unwrap();
    let hooks = format!("[[scripts]]\npath = \"{}\"\n", script.display());
    let (a, b) = running_pair(dir.path(), &hooks).await;
    drop_file(&a.folder("share").join("diary.private"), b"mine");
    drop_file(&a.folder("share").join("keys.secret"), b"mine too");
    drop_file(&a.folder("share").join("shared/plan.txt"), b"for b");
    drop_file(
        &a.folder("share").join("notes.txt"),
        b"for the folder's peers",
    );
    wait_for_file(
        &b.folder("share").join("shared/plan.txt"),
        b"for b",
        &[&a, &b],
    )
    .await;
    wait_for_file(
        &b.folder("share").join("notes.txt"),
        b"for the folder's peers",
        &[&a, &b],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        files_under(&b.folder("share")),
        ["notes.txt", "shared/plan.txt"],
        "{}",
        a.log_text()
    );
    assert!(a.log_text().contains("secrets stay"), "{}", a.log_text());
    let status = a.status().await.unwrap();
    assert_eq!(status.queued, 0);
    // `status` tells how the last connection with the peer went: on loopback, directly.
    let peer = &status.peers[0];
    assert_eq!(peer.path_kind.as_deref(), Some("direct"), "{status:?}");
    assert!(
        peer.path
            .as_deref()
            .is_some_and(|p| p.starts_with("directly (udp")),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_overrides_the_configs_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), "");
    let config = std::fs::read_to_string(b.config()).unwrap();
    let url = config
        .lines()
        .find_map(|l| l.strip_prefix("url = \""))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .unwrap();
    // B's file names a server where there is none; the command line names A's.
    std::fs::write(
        b.config(),
        config
            .replace(&url, "ws://127.0.0.1:9")
            .replace("stun = ", "# stun = "),
    )
    .unwrap();
    let stun = url.replace("ws://", "stun:");
    a.start();
    b.start_with(&["--server", &url, "--stun", &stun]);
    b.wait_online(&a).await;
    drop_file(
        &a.folder("share").join("x.txt"),
        b"through the server the flag named",
    );
    wait_for_file(
        &b.folder("share").join("x.txt"),
        b"through the server the flag named",
        &[&a, &b],
    )
    .await;
}

#[test]
fn a_bad_config_stops_run_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("share.toml");
    std::fs::write(
        &config,
        "[signaling]\nurl = \"ws://x\"\n\n[[folders]]\npath = \"a\"\nmode = \"mirror\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("share.toml:6:8: unknown variant `mirror`"),
        "{stderr}"
    );
    // No identity yet: run says how to make one.
    std::fs::write(&config, "[identity]\ndir = \"nowhere\"\n").unwrap();
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("run `p2phost init`"),
        "{output:?}"
    );
}

/// Every file under `root` with its content, by relative path.
fn contents_under(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    files_under(root)
        .into_iter()
        .filter_map(|path| Some((path.clone(), std::fs::read(root.join(&path)).ok()?)))
        .collect()
}

/// Whether `name` is `STEM.sync-conflict-YYYYMMDD-HHMMSS-XXXXXXX.EXT` with a by-group of `by`.
fn is_conflict_copy_of(name: &str, stem: &str, ext: &str, by: &str) -> bool {
    let Some(middle) = name
        .strip_prefix(&format!("{stem}.sync-conflict-"))
        .and_then(|rest| rest.strip_suffix(&format!(".{ext}")))
    else {
        return false;
    };
    let parts: Vec<&str> = middle.split('-').collect();
    matches!(
        parts.as_slice(),
        [date, time, group]
            if date.len() == 8
                && date.bytes().all(|c| c.is_ascii_digit())
                && time.len() == 6
                && time.bytes().all(|c| c.is_ascii_digit())
                && *group == by
    )
}

/// Waits until neither host has anything queued or in flight.
async fn wait_quiet(a: &Host, b: &Host) {
    let quiet = wait_for(|| async {
        let (sa, sb) = (a.status().await, b.status().await);
        sa.is_some_and(|s| s.queued == 0 && s.in_flight.is_empty())
            && sb.is_some_and(|s| s.queued == 0 && s.in_flight.is_empty())
    })
    .await;
    assert!(
        quiet,
        "queues never emptied:\n--- a:\n{}\n--- b:\n{}",
        a.log_text(),
        b.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_on_both_sides_keeps_both_versions_alike_on_both_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, mut b) = running_pair(dir.path(), "").await;
    let first = b"the first version\n".repeat(100);
    drop_file(&a.folder("share").join("notes.txt"), &first);
    wait_for_file(&b.folder("share").join("notes.txt"), &first, &[&a, &b]).await;
    wait_quiet(&a, &b).await;

    // While the link is down, each side changes the file its own way.
    assert_eq!(b.stop(), Some(0), "{}", b.log_text());
    let by_a = b"changed on a\n".repeat(200);
    drop_file(&a.folder("share").join("notes.txt"), &by_a);
    let queued = wait_for(|| async { a.status().await.is_some_and(|s| s.queued == 1) }).await;
    assert!(queued, "{:?}\n{}", a.status().await, a.log_text());
    let by_b = b"changed on b, differently\n".repeat(150);
    drop_file(&b.folder("share").join("notes.txt"), &by_b);
    b.start();

    // Both hosts end up with the same two files: the name and one conflict copy.
    let on_a = wait_alike(&a, &b, 2).await;
    wait_quiet(&a, &b).await;

    // The rule: the host whose id sorts first keeps its version under the name; the other's is
    // the copy, named by the host whose change lost its name.
    let (kept, copied, loser) = if a.id < b.id {
        (&by_a, &by_b, &b)
    } else {
        (&by_b, &by_a, &a)
    };
    let by = loser.id.split('-').next().unwrap();
    assert!(
        on_a.get("notes.txt") == Some(kept),
        "notes.txt holds the version of the host whose id sorts last\n--- a:\n{}\n--- b:\n{}",
        a.log_text(),
        b.log_text()
    );
    let (copy, data) = on_a
        .iter()
        .find(|(name, _)| name.as_str() != "notes.txt")
        .unwrap();
    assert!(
        is_conflict_copy_of(copy, "notes", "txt", by),
        "{copy} is not a conflict copy by {by}"
    );
    assert_eq!(data, copied, "{copy}");

    // Settled: nothing more is sent either way, nothing changes.
    let received = (
        a.log_text().matches("received").count(),
        b.log_text().matches("received").count(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_quiet(&a, &b).await;
    assert_eq!(
        (
            a.log_text().matches("received").count(),
            b.log_text().matches("received").count(),
        ),
        received,
        "still sending:\n--- a:\n{}\n--- b:\n{}",
        a.log_text(),
        b.log_text()
    );
    assert_eq!(contents_under(&a.folder("share")), on_a);
    assert_eq!(contents_under(&b.folder("share")), on_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_made_alike_on_both_sides_syncs_without_a_conflict_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), "");
    // The same content, made on each side independently: while the hosts are apart, and
    // while they are together.
    let apart = b"written on both hosts while apart\n".repeat(500);
    drop_file(&a.folder("share").join("apart.txt"), &apart);
    drop_file(&b.folder("share").join("apart.txt"), &apart);
    a.start();
    b.start();
    a.wait_online(&b).await;
    b.wait_online(&a).await;
    let together = b"written on both hosts at once\n".repeat(700);
    drop_file(&a.folder("share").join("together.txt"), &together);
    drop_file(&b.folder("share").join("together.txt"), &together);
    // Something to wait for that only one side has.
    drop_file(&a.folder("share").join("last.txt"), b"last");
    wait_for_file(&b.folder("share").join("last.txt"), b"last", &[&a, &b]).await;
    wait_quiet(&a, &b).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_quiet(&a, &b).await;
    for host in [&a, &b] {
        assert_eq!(
            files_under(&host.folder("share")),
            ["apart.txt", "last.txt", "together.txt"],
            "{}:\n{}",
            host.name,
            host.log_text()
        );
        assert_eq!(
            std::fs::read(host.folder("share").join("apart.txt")).unwrap(),
            apart
        );
        assert_eq!(
            std::fs::read(host.folder("share").join("together.txt")).unwrap(),
            together
        );
        assert!(!host.log_text().contains("conflict"), "{}", host.log_text());
    }
}

/// A daemon receives with overwrite (the peer's newer version replaces the file): still, a
/// `NAME.part` of the user's own in the folder is not p2phost's and stays byte for byte as it was
/// (it used to be truncated and renamed to `NAME`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_receiving_a_file_leaves_the_users_own_part_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = running_pair(dir.path(), "").await;
    let users = b"my own half-written notes, not made by p2phost (52B)".to_vec();
    std::fs::write(b.folder("share").join("notes.txt.part"), &users).unwrap();
    drop_file(&a.folder("share").join("notes.txt"), b"from a");
    wait_for_file(&b.folder("share").join("notes.txt"), b"from a", &[&a, &b]).await;
    assert_eq!(
        std::fs::read(b.folder("share").join("notes.txt.part")).unwrap(),
        users,
        "{}",
        b.log_text()
    );
    assert_eq!(
        files_under(&b.folder("share")),
        ["notes.txt", "notes.txt.part"]
    );
}

/// A folder of the user's own in the sync folder may be a link to elsewhere (`docs ->
/// ../outside`); the peer has a real `docs/`. Its `docs/x.txt` must change nothing outside the
/// folder: not the file there, not a conflict copy of it (the host that yields a conflict used to
/// rename the file outside to a conflict copy before the write through the link was refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_changes_nothing_through_a_link_in_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(dir.path(), "");
    // The receiver is the host that yields a conflict: the one whose id sorts last.
    let (mut sender, mut receiver) = if a.id < b.id { (a, b) } else { (b, a) };
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("x.txt"), b"the user's own, outside the folder").unwrap();
    std::fs::create_dir_all(receiver.folder("share")).unwrap();
    std::os::unix::fs::symlink("../../outside", receiver.folder("share").join("docs")).unwrap();
    drop_file(&sender.folder("share").join("docs/x.txt"), b"from the peer");
    sender.start();
    receiver.start();
    let tried = wait_for(|| async { receiver.log_text().contains("not received") }).await;
    assert!(tried, "{}\n{}", sender.log_text(), receiver.log_text());
    assert_eq!(
        contents_under(&outside),
        [(
            "x.txt".to_owned(),
            b"the user's own, outside the folder".to_vec()
        )]
        .into(),
        "{}",
        receiver.log_text()
    );
    assert!(
        receiver.log_text().contains("symbolic link"),
        "{}",
        receiver.log_text()
    );
}

/// The config lines that load `script` (written into `dir`) with the clock granted.
fn timed_script(dir: &Path, name: &str, script: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    format!(
        "[[scripts]]\npath = \"{}\"\ngrants = {{ allow_os_time = true }}\n",
        path.display()
    )
}

/// A chunk hook that makes receiving a file of more than 1 MB take seconds, and logs its first
/// chunk: time for the user to save the file while it is on its way. Each chunk waits for 20 ms
/// of the daemon's CPU time (`os.clock`, granted), which a faster machine does not shorten.
const SLOW_RECEIVE: &str = "p2p.on('chunk', function(file, chunk)\n\
       if file.side == 'receive' and file.size > 1000000 then\n\
         if chunk.offset == 0 then p2p.log('slowly receiving ' .. file.path) end\n\
         local resume = os.clock() + 0.02\n\
         while os.clock() < resume do end\n\
       end\n\
     end)\n";

/// Waits until `host`'s log says `text`.
async fn wait_for_log(host: &Host, text: &str) {
    let said = wait_for(|| async { host.log_text().contains(text) }).await;
    assert!(
        said,
        "{} never logged {text:?}:\n{}",
        host.name,
        host.log_text()
    );
}

/// Waits until both hosts hold the same `count` files with the same contents; those files.
async fn wait_alike(
    a: &Host,
    b: &Host,
    count: usize,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let alike = wait_for(|| async {
        let on_a = contents_under(&a.folder("share"));
        on_a.len() == count && on_a == contents_under(&b.folder("share"))
    })
    .await;
    let (on_a, on_b) = (
        contents_under(&a.folder("share")),
        contents_under(&b.folder("share")),
    );
    assert!(
        alike,
        "the hosts never agreed on {count} files: a has {:?}, b has {:?}\n--- a:\n{}\n--- b:\n{}",
        on_a.iter().map(|(p, d)| (p, d.len())).collect::<Vec<_>>(),
        on_b.iter().map(|(p, d)| (p, d.len())).collect::<Vec<_>>(),
        a.log_text(),
        b.log_text()
    );
    on_a
}

/// Checks that `files` hold both versions of `stem.ext` by the conflict rule: the version of the
/// host whose id sorts first under the name, the other's in a copy named by that other host.
fn check_both_kept(
    files: &std::collections::BTreeMap<String, Vec<u8>>,
    (stem, ext): (&str, &str),
    (a, by_a): (&Host, &[u8]),
    (b, by_b): (&Host, &[u8]),
) {
    let (kept, copied, loser) = if a.id < b.id {
        (by_a, by_b, b)
    } else {
        (by_b, by_a, a)
    };
    let name = format!("{stem}.{ext}");
    let by = loser.id.split('-').next().unwrap();
    assert!(
        files.get(&name).is_some_and(|d| d == kept),
        "{name} does not hold the version of the host whose id sorts first\n--- a:\n{}\n--- b:\n{}",
        a.log_text(),
        b.log_text()
    );
    let copies: Vec<_> = files
        .iter()
        .filter(|(path, _)| is_conflict_copy_of(path, stem, ext, by))
        .collect();
    assert!(
        matches!(copies.as_slice(), [(_, data)] if data.as_slice() == copied),
        "no one copy of {name} by {by} with the other version: {:?}\n--- a:\n{}\n--- b:\n{}",
        files.keys().collect::<Vec<_>>(),
        a.log_text(),
        b.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_saved_while_the_peers_version_is_received_is_kept_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = timed_script(dir.path(), "slow.lua", SLOW_RECEIVE);
    let (a, b) = running_pair(dir.path(), &hooks).await;

    // X.txt, synced; then changed on a, and saved on b while a's version is on its way.
    let first = b"the first version\n".repeat(100);
    drop_file(&a.folder("share").join("X.txt"), &first);
    wait_for_file(&b.folder("share").join("X.txt"), &first, &[&a, &b]).await;
    wait_quiet(&a, &b).await;
    let by_a = b"changed on a, and big\n".repeat(400_000);
    drop_file(&a.folder("share").join("X.txt"), &by_a);
    wait_for_log(&b, "slowly receiving X.txt").await;
    let by_b = b"saved on b meanwhile\n".repeat(300);
    drop_file(&b.folder("share").join("X.txt"), &by_b);
    let files = wait_alike(&a, &b, 2).await;
    check_both_kept(&files, ("X", "txt"), (&a, &by_a), (&b, &by_b));

    // Y.txt: new on b, and made on a too while b's is on its way. The other way round, so that
    // whatever the ids, one receiving host keeps the name and the other yields it.
    let new_on_b = b"new on b, and big\n".repeat(500_000);
    drop_file(&b.folder("share").join("Y.txt"), &new_on_b);
    wait_for_log(&a, "slowly receiving Y.txt").await;
    let new_on_a = b"made on a meanwhile\n".repeat(200);
    drop_file(&a.folder("share").join("Y.txt"), &new_on_a);
    let files = wait_alike(&a, &b, 4).await;
    check_both_kept(&files, ("Y", "txt"), (&a, &new_on_a), (&b, &new_on_b));

    // Logged where it happened, and settled: nothing more moves.
    wait_quiet(&a, &b).await;
    for host in [&a, &b] {
        assert!(
            host.log_text()
                .contains("the file changed here while the peer's version was being received"),
            "{}:\n{}",
            host.name,
            host.log_text()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_quiet(&a, &b).await;
    assert_eq!(contents_under(&a.folder("share")), files);
    assert_eq!(contents_under(&b.folder("share")), files);
}
