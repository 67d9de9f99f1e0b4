//! Ctrl-C on either side of a one-off transfer: the side that stops tells the other, which
//! reports "cancelled by the other side" at once, and sending the same files again resumes.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::support::{Exit, Running, Servers, signaling, start_receive, start_send};

const LIMIT: Duration = Duration::from_secs(60);

/// A chunk hook that burns CPU on every chunk the sender sends, so the transfer lasts seconds
/// and can be cut in the middle on any machine. (Slowing the receiver instead would let the
/// sender put tens of MiB in flight at once, which the receiver stores before it reads the
/// cancel: the protocol keeps order.)
const SLOW: &str = r#"
p2p.on("chunk", function(file, chunk)
  local x = 0
  for i = 1, 1000000 do x = x + i end
end)
"#;

/// `p2phost send --json --script slow.lua FILE`, and its code.
async fn start_slow_send(servers: &Servers, file: &Path, script: &Path) -> (Running, String) {
    let mut args: Vec<OsString> = ["send", "--json", "--server", &servers.url, "--stun"]
        .iter()
        .map(Into::into)
        .collect();
    args.push(servers.stun.clone().into());
    args.extend(["--script".into(), script.as_os_str().to_owned()]);
    args.push(file.as_os_str().to_owned());
    let mut sender = Running::spawn(&args);
    let first: serde_json::Value = serde_json::from_str(&sender.next_line().await).unwrap();
    assert_eq!(first["event"], "code", "{first}");
    let code = first["code"].as_str().unwrap().to_owned();
    (sender, code)
}

/// Waits for a `progress` event that shows a few chunk groups (of 1 MiB, the unit of resume)
/// done and the transfer not finished.
async fn under_way(process: &mut Running) {
    loop {
        let line = process.next_line().await;
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        match event["event"].as_str() {
            Some("progress") if event["bytes"].as_u64() > Some(3 << 20) => {
                assert!(
                    event["bytes"].as_u64() < event["total"].as_u64(),
                    "finished before it could be cut: {line}"
                );
                return;
            }
            Some("done" | "error") => panic!("ended before it could be cut: {line}"),
            _ => {}
        }
    }
}

fn assert_cancelled(exit: &Exit, status: i32, who: &str) {
    let last = exit.last_event();
    assert_eq!(exit.code, Some(status), "{who}: {exit:?}");
    assert_eq!(last["event"], "error", "{who}: {exit:?}");
    assert_eq!(last["kind"], "cancelled", "{who}: {exit:?}");
}

fn data() -> Vec<u8> {
    (0..40_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Sends `file` again into `out` (no slow hook) and checks the copy resumed and is whole.
async fn resumes(servers: &Servers, file: &Path, out: &Path, data: &[u8]) {
    let (sender, code) = start_send(servers, &[file]).await;
    let receiver = start_receive(servers, out, &code);
    let received = receiver.exit(LIMIT).await;
    let sent = sender.exit(LIMIT).await;
    assert_eq!(received.code, Some(0), "{received:?}");
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let done = received.last_event();
    assert!(
        done["resumed_bytes"].as_u64().unwrap() > 0,
        "nothing was resumed: {done}"
    );
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_on_the_sender_is_reported_by_the_receiver_and_the_transfer_resumes() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    let data = data();
    std::fs::write(&file, &data).unwrap();
    let script = dir.path().join("slow.lua");
    std::fs::write(&script, SLOW).unwrap();
    let out = dir.path().join("out");

    let (mut sender, code) = start_slow_send(&servers, &file, &script).await;
    let receiver = start_receive(&servers, &out, &code);
    under_way(&mut sender).await;
    sender.signal("INT");
    let sent = sender.exit(LIMIT).await;
    let received = receiver.exit(LIMIT).await;
    assert_cancelled(&sent, 130, "sender");
    // Told, not left to notice the connection drop ("connection" after 10-15 s).
    assert_cancelled(&received, 9, "receiver");
    assert!(
        received.stderr.contains("cancelled by the other side"),
        "{}",
        received.stderr
    );
    assert!(
        !out.join("big.bin").exists(),
        "nothing under the final name"
    );

    resumes(&servers, &file, &out, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_on_the_receiver_is_reported_by_the_sender_and_the_transfer_resumes() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    let data = data();
    std::fs::write(&file, &data).unwrap();
    let script = dir.path().join("slow.lua");
    std::fs::write(&script, SLOW).unwrap();
    let out = dir.path().join("out");

    let (sender, code) = start_slow_send(&servers, &file, &script).await;
    let mut receiver = start_receive(&servers, &out, &code);
    under_way(&mut receiver).await;
    receiver.signal("INT");
    let received = receiver.exit(LIMIT).await;
    let sent = sender.exit(LIMIT).await;
    assert_cancelled(&received, 130, "receiver");
    assert_cancelled(&sent, 9, "sender");
    assert!(
        sent.stderr.contains("cancelled by the other side"),
        "{}",
        sent.stderr
    );

    resumes(&servers, &file, &out, &data).await;
}

/// Ctrl-C typed on a real terminal (a pseudo-terminal from util-linux's `script`) while the
/// receiver asks `accept?`: the terminal turns it into SIGINT, as it would for a user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_the_receivers_question_tells_the_sender() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"a few words").unwrap();
    let out = dir.path().join("out");
    let (sender, code) = start_send(&servers, &[&file]).await;

    let command = format!(
        "{} receive --server {} --stun {} --out {} {code}",
        crate::support::BIN,
        servers.url,
        servers.stun,
        out.display()
    );
    let mut terminal = tokio::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("util-linux's script");
    let mut screen = String::new();
    let mut stdout = terminal.stdout.take().unwrap();
    let asked = tokio::time::timeout(LIMIT, async {
        let mut buf = [0u8; 4096];
        while !screen.contains("accept?") {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "the receiver ended without asking: {screen}");
            screen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await;
    assert!(asked.is_ok(), "never asked: {screen}");
    let mut keyboard = terminal.stdin.take().unwrap();
    keyboard.write_all(b"\x03").await.unwrap();
    keyboard.flush().await.unwrap();
    let status = tokio::time::timeout(LIMIT, terminal.wait())
        .await
        .expect("the receiver did not end after Ctrl-C")
        .unwrap();
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest).await;
    assert_eq!(status.code(), Some(130), "{screen}{rest}");

    let sent = sender.exit(LIMIT).await;
    assert_cancelled(&sent, 9, "sender");
    assert!(!out.join("notes.txt").exists());
}
